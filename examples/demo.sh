#!/usr/bin/env bash
# Brings the whole system up locally with demo data: the auth-server, the
# resource-server and the demo SPA, each on its own port, with a demo user,
# an admin and the SPA registered as a first-party public client.
#
# Where the databases live, first match wins:
#   1. AUTH_DATABASE_URL / RESOURCE_DATABASE_URL (or their _FILE forms): used
#      as given, nothing is dropped; demo users already there get new
#      passwords.
#   2. A PostgreSQL answering on 127.0.0.1:5432 (trust auth): the demo's own
#      databases oauth_demo_auth and oauth_demo_resource, reset on every run.
#   3. Otherwise a private throwaway cluster (initdb + pg_ctl from PATH or the
#      newest /usr/lib/postgresql/*/bin) in a temporary directory on a free
#      loopback port, run as `nobody` when the demo runs as root, removed on
#      exit. Without PostgreSQL installed, one line says what to install.
# Ctrl-C stops everything.
#
# Environment (defaults in brackets):
#   AUTH_PORT [8080], API_PORT [8081], SPA_PORT [5173]
#   AUTH_ADMIN_PORT [9080], API_ADMIN_PORT [9081]  /healthz and /metrics
#   DEMO_THROWAWAY_PG=1   the throwaway cluster even when 5432 answers (say,
#                         a server there that does not trust the demo)
#   DEMO_SKIP_BUILD=1     use the binaries already in target/debug
#   DEMO_PG_VERSIONS_DIR  [/usr/lib/postgresql] where versioned installs are
#                         looked for; tests point it elsewhere
set -euo pipefail
cd "$(dirname "$0")/.."

AUTH_PORT=${AUTH_PORT:-8080}
API_PORT=${API_PORT:-8081}
SPA_PORT=${SPA_PORT:-5173}
AUTH_ADMIN_PORT=${AUTH_ADMIN_PORT:-9080}
API_ADMIN_PORT=${API_ADMIN_PORT:-9081}
AUTH_DB=oauth_demo_auth
RESOURCE_DB=oauth_demo_resource
BIN=target/debug

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf '%s\n' "$*" >&2; exit 1; }

# --- PostgreSQL -------------------------------------------------------------

# The server holding the demo's own databases; PG_TMP is set only while a
# throwaway cluster exists.
PG_HOST=127.0.0.1 PG_PORT=5432 PG_USER="" PG_BIN="" PG_RUN_AS="" PG_TMP=""
PSQL=psql

pg_version() { "$1/pg_ctl" --version | sed -E 's/^[^0-9]*([0-9][0-9.]*).*/\1/'; }
newer() { [[ $1 != "$2" && $(printf '%s\n' "$1" "$2" | sort -V | tail -n 1) == "$1" ]]; }

# The directory of the newest initdb + pg_ctl pair, from PATH or the versioned
# directories Debian uses (its initdb is not on PATH); PATH wins a tie.
find_pg_bin() {
  local dir best="" best_version="" version
  for dir in "$(dirname "$(command -v pg_ctl || echo /nonexistent/pg_ctl)")" \
    "${DEMO_PG_VERSIONS_DIR:-/usr/lib/postgresql}"/*/bin; do
    [[ -x $dir/initdb && -x $dir/pg_ctl ]] || continue
    version=$(pg_version "$dir")
    if [[ -z $best ]] || newer "$version" "$best_version"; then
      best=$dir best_version=$version
    fi
  done
  [[ -n $best ]] && printf '%s\n' "$best"
}

# initdb and postgres refuse to run as root, so then the cluster belongs to
# PG_RUN_AS; the demo itself may stay root and reaches it over TCP. The
# subshell's cd keeps them out of a working directory they cannot read.
as_pg_user() (
  cd "$PG_TMP"
  if [[ -z $PG_RUN_AS ]]; then
    "$@"
  elif command -v runuser >/dev/null; then
    runuser -u "$PG_RUN_AS" -- "$@"
  else
    su -s "$BASH" "$PG_RUN_AS" -c "$(printf '%q ' "$@")"
  fi
)

# A loopback port nothing listens on, below the ephemeral range that
# outgoing connections take their ports from.
free_port() {
  local port
  for _ in $(seq 1 100); do
    port=$((20000 + RANDOM % 10000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      printf '%s\n' "$port"
      return 0
    fi
  done
  return 1
}

start_throwaway_pg() {
  PG_BIN=$(find_pg_bin) ||
    die "PostgreSQL is not installed: apt-get install postgresql (or set AUTH_DATABASE_URL and RESOURCE_DATABASE_URL)"
  if ((EUID == 0)); then
    PG_RUN_AS=nobody
    id -u "$PG_RUN_AS" >/dev/null 2>&1 || die "running as root, and there is no user $PG_RUN_AS to run PostgreSQL as"
  fi
  PG_PORT=$(free_port) || die "found no free loopback port for PostgreSQL"
  PG_USER=postgres
  [[ ! -x $PG_BIN/psql ]] || PSQL=$PG_BIN/psql
  PG_TMP=$(mktemp -d "${TMPDIR:-/tmp}/oauth-demo-pg.XXXXXX")
  [[ -z $PG_RUN_AS ]] || chown "$PG_RUN_AS:" "$PG_TMP"
  say "starting a throwaway PostgreSQL $(pg_version "$PG_BIN") on 127.0.0.1:$PG_PORT${PG_RUN_AS:+ as $PG_RUN_AS} (removed on exit)"

  as_pg_user "$PG_BIN/initdb" -D "$PG_TMP/data" -U "$PG_USER" --auth=trust \
    --no-locale -E UTF8 --no-sync >"$PG_TMP/initdb.log" 2>&1 ||
    { cat "$PG_TMP/initdb.log" >&2; die "initdb failed"; }
  # fsync off: nothing in this cluster outlives the demo.
  cat >>"$PG_TMP/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_TMP'
fsync = off
CONF
  as_pg_user "$PG_BIN/pg_ctl" start -D "$PG_TMP/data" -l "$PG_TMP/server.log" -w -t 60 >/dev/null ||
    { tail -n 20 "$PG_TMP/server.log" >&2 || true; die "the throwaway PostgreSQL did not start"; }
}

stop_throwaway_pg() {
  [[ -n $PG_TMP ]] || return 0
  if [[ -f $PG_TMP/data/postmaster.pid ]]; then
    as_pg_user "$PG_BIN/pg_ctl" stop -D "$PG_TMP/data" -m fast -w -t 30 >/dev/null 2>&1 ||
      as_pg_user "$PG_BIN/pg_ctl" stop -D "$PG_TMP/data" -m immediate -w >/dev/null 2>&1 || true
  fi
  rm -rf "$PG_TMP"
  PG_TMP=""
}

# --- stopping ---------------------------------------------------------------

# Whatever the demo started goes away on every exit: Ctrl-C, kill or error.
# INT and TERM just exit, so the script never carries on after a signal and
# cleanup runs once, from the EXIT trap, itself not interrupted by a second
# Ctrl-C.
pids=()
cleanup() {
  trap '' INT TERM
  if ((${#pids[@]})); then kill "${pids[@]}" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  stop_throwaway_pg
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- databases --------------------------------------------------------------

# Settings win: a database given by URL is used as it is. Only the others are
# the demo's own, need a local server, and are reset.
given() { local file="$1_FILE"; [[ -n ${!1:-} || -n ${!file:-} ]]; }
own=() # VAR=database
for var in AUTH_DATABASE_URL RESOURCE_DATABASE_URL; do
  if given "$var"; then
    say "$var as given: nothing is dropped there"
  elif [[ $var == AUTH_DATABASE_URL ]]; then
    own+=("$var=$AUTH_DB")
  else
    own+=("$var=$RESOURCE_DB")
  fi
done

# When 5432 does not answer, the demo starts its own cluster rather than the
# system one (`pg_ctlcluster ... start`, as it once did): that would leave a
# service running after the demo, works only for a Debian cluster started as
# root, and a stock cluster does not trust 127.0.0.1 anyway. The throwaway
# cluster is set up the way the demo needs and leaves nothing behind.
if ((${#own[@]})); then
  if [[ ${DEMO_THROWAWAY_PG:-} != 1 ]] && pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    say "using the PostgreSQL on 127.0.0.1:5432"
  else
    start_throwaway_pg
  fi
fi

if [[ ${DEMO_SKIP_BUILD:-} == 1 ]]; then
  say "using the binaries in $BIN (DEMO_SKIP_BUILD=1)"
else
  say "building (first time takes a few minutes)"
  cargo build --quiet --bin auth-server --bin resource-server --bin spa-server
fi

# The SPA's browser dependencies (jose, pinned in examples/spa/package-lock.json),
# which spa-server serves from examples/spa/node_modules.
if [[ ! -d examples/spa/node_modules ]]; then
  command -v npm >/dev/null || die "npm is needed for the demo SPA's dependencies: install Node.js 20 or newer"
  say "installing the SPA's npm dependencies (npm ci in examples/spa)"
  (cd examples/spa && npm ci --no-audit --no-fund --loglevel=error)
fi

if ((${#own[@]})); then
  say "resetting the demo databases"
  psql_args=(-X -q -h "$PG_HOST" -p "$PG_PORT" -d postgres)
  [[ -z $PG_USER ]] || psql_args+=(-U "$PG_USER")
  for pair in "${own[@]}"; do
    db=${pair#*=}
    PGOPTIONS="-c client_min_messages=warning" "$PSQL" "${psql_args[@]}" -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null ||
      die "cannot reset $db on $PG_HOST:$PG_PORT: set AUTH_DATABASE_URL and RESOURCE_DATABASE_URL, or DEMO_THROWAWAY_PG=1"
    export "${pair%%=*}=postgres://${PG_USER:+$PG_USER@}$PG_HOST:$PG_PORT/$db"
  done
fi

# The servers warn about AUTH_ variables they do not know: the ports above are
# the script's own.
export -n AUTH_PORT AUTH_ADMIN_PORT
export AUTH_LISTEN="127.0.0.1:$AUTH_PORT"
export AUTH_ADMIN_LISTEN="127.0.0.1:$AUTH_ADMIN_PORT"
export AUTH_ISSUER="http://127.0.0.1:$AUTH_PORT"
export AUTH_DEFAULT_AUDIENCE="http://127.0.0.1:$API_PORT/api"
export RESOURCE_LISTEN="127.0.0.1:$API_PORT"
export RESOURCE_ADMIN_LISTEN="127.0.0.1:$API_ADMIN_PORT"
export RESOURCE_ISSUER="$AUTH_ISSUER"
export RESOURCE_AUDIENCE="$AUTH_DEFAULT_AUDIENCE"
export RESOURCE_CORS_ORIGINS="http://127.0.0.1:$SPA_PORT"

# --- demo data --------------------------------------------------------------

# Passwords are new on every run and shown only here.
password() { head -c 18 /dev/urandom | base64 | tr -d '/+=' | cut -c1-20; }
DEMO_PASSWORD=$(password)
ADMIN_PASSWORD=$(password)

# A database given by URL may hold the user from an earlier run: then it gets
# this run's password and roles instead.
demo_user() { # username password role...
  local name=$1 pw=$2 roles=() role
  shift 2
  for role; do roles+=(--role "$role"); done
  if $BIN/auth-server user show "$name" >/dev/null 2>&1; then
    printf '%s' "$pw" | $BIN/auth-server user set-password "$name" --password-stdin >/dev/null
    $BIN/auth-server user set-roles "$name" "${roles[@]}" >/dev/null
  else
    printf '%s' "$pw" | $BIN/auth-server user create --username "$name" "${roles[@]}" --password-stdin >/dev/null
  fi
}

say "creating demo users and the SPA client"
demo_user demo "$DEMO_PASSWORD" user
demo_user admin "$ADMIN_PASSWORD" user admin
CLIENT_JSON=$($BIN/auth-server client create --name "Notes demo" --public --first-party \
  --redirect-uri "http://127.0.0.1:$SPA_PORT/callback" \
  --post-logout-redirect-uri "http://127.0.0.1:$SPA_PORT/" \
  --scope openid --scope profile --scope notes:read --scope notes:write --scope admin)
CLIENT_ID=$(printf '%s' "$CLIENT_JSON" | sed -E 's/.*"client_id":"([^"]+)".*/\1/')

# --- serving ----------------------------------------------------------------

wait_for() { # url
  for _ in $(seq 1 100); do
    curl -fs -o /dev/null "$1" && return 0
    sleep 0.2
  done
  echo "timed out waiting for $1" >&2
  return 1
}

mkdir -p target/demo-logs
say "starting auth-server on :$AUTH_PORT, resource-server on :$API_PORT, SPA on :$SPA_PORT (logs in target/demo-logs)"
$BIN/auth-server serve >target/demo-logs/auth-server.log 2>&1 & pids+=($!)
wait_for "http://127.0.0.1:$AUTH_ADMIN_PORT/healthz"
$BIN/resource-server serve >target/demo-logs/resource-server.log 2>&1 & pids+=($!)
wait_for "http://127.0.0.1:$API_ADMIN_PORT/healthz"
SPA_LISTEN="127.0.0.1:$SPA_PORT" SPA_CLIENT_ID="$CLIENT_ID" SPA_ISSUER="$AUTH_ISSUER" SPA_API="$AUTH_DEFAULT_AUDIENCE" \
  $BIN/spa-server >target/demo-logs/spa-server.log 2>&1 & pids+=($!)
wait_for "http://127.0.0.1:$SPA_PORT/"

cat <<MSG

  The notes app:   http://127.0.0.1:$SPA_PORT
  Sign in as       demo  / $DEMO_PASSWORD
  or the admin     admin / $ADMIN_PASSWORD
  Auth server:     $AUTH_ISSUER  (metadata: $AUTH_ISSUER/.well-known/oauth-authorization-server)
  API:             $AUTH_DEFAULT_AUDIENCE
  SPA client_id:   $CLIENT_ID

  Press Ctrl-C to stop.
MSG
wait

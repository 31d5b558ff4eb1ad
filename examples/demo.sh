#!/usr/bin/env bash
# Brings the whole system up locally with demo data: the auth-server, the
# resource-server and the demo SPA, each on its own port, with a demo user,
# an admin and the SPA registered as a first-party public client.
#
# The demo uses its own databases (oauth_demo_auth, oauth_demo_resource) and
# resets them on every run. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

AUTH_PORT=${AUTH_PORT:-8080}
API_PORT=${API_PORT:-8081}
SPA_PORT=${SPA_PORT:-5173}
AUTH_DB=oauth_demo_auth
RESOURCE_DB=oauth_demo_resource

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  say "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi

say "building (first time takes a few minutes)"
cargo build --quiet --bin auth-server --bin resource-server --bin spa-server
BIN=target/debug

say "resetting the demo databases"
for db in "$AUTH_DB" "$RESOURCE_DB"; do
  psql -q -h 127.0.0.1 -d postgres -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null
done

export AUTH_DATABASE_URL="postgres://127.0.0.1/$AUTH_DB"
export AUTH_LISTEN="127.0.0.1:$AUTH_PORT"
export AUTH_ISSUER="http://127.0.0.1:$AUTH_PORT"
export AUTH_DEFAULT_AUDIENCE="http://127.0.0.1:$API_PORT/api"
export RESOURCE_DATABASE_URL="postgres://127.0.0.1/$RESOURCE_DB"
export RESOURCE_LISTEN="127.0.0.1:$API_PORT"
export RESOURCE_ISSUER="$AUTH_ISSUER"
export RESOURCE_AUDIENCE="$AUTH_DEFAULT_AUDIENCE"
export RESOURCE_CORS_ORIGINS="http://127.0.0.1:$SPA_PORT"

# Passwords are new on every run and shown only here.
password() { head -c 18 /dev/urandom | base64 | tr -d '/+=' | cut -c1-20; }
DEMO_PASSWORD=$(password)
ADMIN_PASSWORD=$(password)

say "creating demo users and the SPA client"
printf '%s' "$DEMO_PASSWORD" | $BIN/auth-server user create --username demo --role user --password-stdin >/dev/null
printf '%s' "$ADMIN_PASSWORD" | $BIN/auth-server user create --username admin --role user --role admin --password-stdin >/dev/null
CLIENT_JSON=$($BIN/auth-server client create --name "Notes demo" --public --first-party \
  --redirect-uri "http://127.0.0.1:$SPA_PORT/callback" \
  --post-logout-redirect-uri "http://127.0.0.1:$SPA_PORT/" \
  --scope profile --scope notes:read --scope notes:write --scope admin)
CLIENT_ID=$(printf '%s' "$CLIENT_JSON" | sed -E 's/.*"client_id":"([^"]+)".*/\1/')

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

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
wait_for "http://127.0.0.1:9080/healthz"
$BIN/resource-server serve >target/demo-logs/resource-server.log 2>&1 & pids+=($!)
wait_for "http://127.0.0.1:9081/healthz"
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

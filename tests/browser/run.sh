#!/usr/bin/env bash
# Runs the real-browser end-to-end tests: installs what they need (Debian's
# Chromium, the npm packages from the lockfiles here and in examples/spa),
# audits both lockfiles, builds the three binaries and runs `npm test`.
# Quiet on success; on failure it prints the output of the step that failed.
#
# Needs node (>= 20), cargo and a reachable PostgreSQL (TEST_DATABASE_URL,
# default postgres://127.0.0.1). Artifacts (screenshots, console and server
# logs) go to target/browser-artifacts/.
#
#   BROWSER_TESTS_SKIP_BUILD=1   use the binaries in target/debug as they are
#   BROWSER_TESTS_UPDATE_DOCS=1  rewrite docs/images/*.png from this run
#   extra arguments              passed to `node --test` (e.g. a test file)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
artifacts="$root/target/browser-artifacts"
log=$(mktemp)
trap 'rm -f "$log"' EXIT

die() { printf 'browser tests: %s\n' "$*" >&2; exit 1; }

# Runs a step with its output captured; shows the output only on failure.
quietly() { # description command...
  local what=$1
  shift
  if ! "$@" >"$log" 2>&1; then
    cat "$log" >&2
    die "$what failed"
  fi
}

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

command -v node >/dev/null 2>&1 || die "node is not installed (Node.js 20 or newer is needed)"
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || die "Node.js 20 or newer is needed, found $(node --version)"
command -v npm >/dev/null 2>&1 || die "npm is not installed"

if [ ! -x /usr/bin/chromium ]; then
  command -v apt-get >/dev/null 2>&1 || die "/usr/bin/chromium is missing and apt-get is not available to install it"
  if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null 2>&1; then
    die "/usr/bin/chromium is missing; install it as root: apt-get install -y chromium"
  fi
  quietly "apt-get update" as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
  quietly "installing chromium" as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium
  [ -x /usr/bin/chromium ] || die "chromium was installed but /usr/bin/chromium is still missing"
fi

cd "$here"
# Never let playwright-core fetch a browser of its own.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
quietly "npm ci" npm ci --no-audit --no-fund --loglevel=error

# The demo SPA's browser dependencies (jose), which spa-server serves from
# examples/spa/node_modules: installed when missing or not the pinned ones.
spa="$root/examples/spa"
spa_deps_current() {
  (cd "$spa" && node -e '
    const want = require("./package-lock.json").packages;
    for (const [dir, { version }] of Object.entries(want)) {
      if (dir && require(`./${dir}/package.json`).version !== version) process.exit(1);
    }' 2>/dev/null)
}
if [ ! -d "$spa/node_modules" ] || ! spa_deps_current; then
  (cd "$spa" && quietly "npm ci in examples/spa" npm ci --no-audit --no-fund --loglevel=error)
fi

# Fails on high or critical advisories. If the advisory service itself
# cannot be reached (some registry mirrors do not offer it), that is a
# warning, or a failure with BROWSER_TESTS_STRICT_AUDIT=1.
audit() { # directory holding a package-lock.json
  if ! (cd "$1" && npm audit --omit=dev --audit-level=high --json) >"$log" 2>/dev/null; then
    if node -e 'process.exit(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).metadata?.vulnerabilities ? 0 : 1)' "$log" 2>/dev/null; then
      (cd "$1" && npm audit --omit=dev --audit-level=high) >&2 || true
      die "npm audit found high or critical vulnerabilities in ${1#"$root"/}/package-lock.json"
    fi
    reason=$(node -p 'JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).message' "$log" 2>/dev/null || head -c 300 "$log")
    [ "${BROWSER_TESTS_STRICT_AUDIT:-}" = 1 ] && die "npm audit could not run: $reason"
    printf 'browser tests: warning: npm audit could not run for %s (%s); skipped\n' "${1#"$root"/}" "$reason" >&2
  fi
  return 0
}
audit "$here"
audit "$spa"

binaries=(auth-server resource-server spa-server)
missing=()
for b in "${binaries[@]}"; do [ -x "$root/target/debug/$b" ] || missing+=("$b"); done
if [ "${BROWSER_TESTS_SKIP_BUILD:-}" != 1 ] || [ "${#missing[@]}" -gt 0 ]; then
  # A no-op when the binaries are up to date; never test stale ones.
  command -v cargo >/dev/null 2>&1 || die "cargo is needed to build ${missing[*]:-the binaries}"
  quietly "cargo build" cargo build --quiet --manifest-path "$root/Cargo.toml" \
    --bin auth-server --bin resource-server --bin spa-server
fi

rm -rf "$artifacts"
mkdir -p "$artifacts"
start=$(date +%s)
status=0
npm test --silent -- --test-reporter=spec "$@" >"$artifacts/test-output.txt" 2>&1 || status=$?
if [ "$status" -ne 0 ]; then
  cat "$artifacts/test-output.txt" >&2
  die "FAILED (output above and in target/browser-artifacts/test-output.txt; screenshots, console and server logs next to it)"
fi
summary=$(sed -nE 's/^ℹ (tests|pass|fail) ([0-9]+)$/\1 \2/p' "$artifacts/test-output.txt" | paste -sd, - | sed 's/,/, /g')
printf 'browser tests: ok (%s) in %ss\n' "${summary:-passed}" "$(( $(date +%s) - start ))"

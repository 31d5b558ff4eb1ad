#!/usr/bin/env bash
# Runs the OpenID Connect end-to-end test with openid-client: installs the
# npm packages from the lockfile, audits it, and runs `node --test` against
# target/debug/auth-server. Quiet on success; on failure it prints the test
# output (also in target/oidc-client-artifacts/, next to the server log).
#
# The binary is built only when it is missing (tests/run.sh has built it by
# then): build it yourself after changing the server, or set
# OIDC_CLIENT_TESTS_BUILD=1. Needs node (>= 20) and a reachable PostgreSQL
# (TEST_DATABASE_URL, default postgres://127.0.0.1).
#
#   OIDC_CLIENT_TESTS_STRICT_AUDIT=1   fail when npm audit cannot run
#   extra arguments                     passed to `node --test`
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
artifacts="$root/target/oidc-client-artifacts"
log=$(mktemp)
trap 'rm -f "$log"' EXIT

die() { printf 'oidc-client tests: %s\n' "$*" >&2; exit 1; }

command -v node >/dev/null 2>&1 || die "node is not installed (Node.js 20 or newer is needed)"
[ "$(node -p 'process.versions.node.split(".")[0]')" -ge 20 ] || die "Node.js 20 or newer is needed, found $(node --version)"
command -v npm >/dev/null 2>&1 || die "npm is not installed"

cd "$here"
if ! npm ci --no-audit --no-fund --loglevel=error >"$log" 2>&1; then
  cat "$log" >&2
  die "npm ci failed"
fi

# High or critical advisories fail the run; an unreachable advisory service
# is a warning (or a failure with OIDC_CLIENT_TESTS_STRICT_AUDIT=1).
if ! npm audit --omit=dev --audit-level=high --json >"$log" 2>/dev/null; then
  if node -e 'process.exit(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).metadata?.vulnerabilities ? 0 : 1)' "$log" 2>/dev/null; then
    npm audit --omit=dev --audit-level=high >&2 || true
    die "npm audit found high or critical vulnerabilities in tests/oidc-client/package-lock.json"
  fi
  reason=$(node -p 'JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).message' "$log" 2>/dev/null || head -c 300 "$log")
  [ "${OIDC_CLIENT_TESTS_STRICT_AUDIT:-}" = 1 ] && die "npm audit could not run: $reason"
  printf 'oidc-client tests: warning: npm audit could not run (%s); skipped\n' "$reason" >&2
fi

if [ ! -x "$root/target/debug/auth-server" ] || [ "${OIDC_CLIENT_TESTS_BUILD:-}" = 1 ]; then
  command -v cargo >/dev/null 2>&1 || die "cargo is needed to build target/debug/auth-server"
  if ! cargo build --quiet --manifest-path "$root/Cargo.toml" --bin auth-server >"$log" 2>&1; then
    cat "$log" >&2
    die "cargo build failed"
  fi
fi

mkdir -p "$artifacts"
start=$(date +%s)
status=0
npm test --silent -- --test-reporter=spec "$@" >"$artifacts/test-output.txt" 2>&1 || status=$?
if [ "$status" -ne 0 ]; then
  cat "$artifacts/test-output.txt" >&2
  die "FAILED (output above and in target/oidc-client-artifacts/test-output.txt; the server log next to it)"
fi
summary=$(sed -nE 's/^ℹ (tests|pass|fail) ([0-9]+)$/\1 \2/p' "$artifacts/test-output.txt" | paste -sd, - | sed 's/,/, /g')
printf 'oidc-client tests: ok (%s) in %ss\n' "${summary:-passed}" "$(( $(date +%s) - start ))"

#!/usr/bin/env bash
# The whole test suite: Rust unit, integration and end-to-end tests against
# the local Postgres, then the real-browser tests of the demo SPA, then the
# OpenID Connect flow driven by openid-client.
# Usage: bash tests/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "==> starting PostgreSQL" >&2
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi

# Each test creates (and drops) its own databases, so tests run in
# parallel; the bound keeps Postgres well under max_connections.
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-6}"

echo "==> cargo test --workspace" >&2
cargo test --workspace --locked

echo "==> browser tests" >&2
bash tests/browser/run.sh

echo "==> OpenID Connect client tests (openid-client)" >&2
bash tests/oidc-client/run.sh

#!/usr/bin/env bash
# Everything CI checks: services up, formatting, lints with warnings denied, and every test
# against real Postgres and Redis.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/services.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
  # nextest does not run doctests
  cargo test --workspace --locked --doc
else
  cargo test --workspace --locked --no-fail-fast
fi

# The published contract against the live server: schemathesis, bounded, as every role.
if [ ! -x .venv/bin/schemathesis ]; then
  python3 -m venv .venv
  .venv/bin/pip install -q schemathesis==4.32.5
fi
# The test build already compiled everything with the tests' features; this links the binaries.
cargo build --workspace --all-targets --locked
python3 scripts/contract.py

#!/usr/bin/env bash
# Brings up iMark on this machine: Postgres and Redis, the `imark` database, development secrets
# in imark.local.toml (made once, never committed), then the API on http://127.0.0.1:8080 with
# the worker and the ЧЗ emulator beside it.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/services.sh
if ! psql -h 127.0.0.1 -U postgres -w -tAc "SELECT 1 FROM pg_database WHERE datname = 'imark'" | grep -q 1; then
  psql -h 127.0.0.1 -U postgres -w -qc 'CREATE DATABASE imark'
fi

config=imark.local.toml
if [ ! -f "$config" ]; then
  secret() { head -c 32 /dev/urandom | base64 | tr -d '\n/+=' ; }
  cat > "$config" <<TOML
# Development settings made by scripts/run.sh. Keep this file private.
database_url = "postgres://postgres@127.0.0.1:5432/imark"
redis_url = "redis://127.0.0.1:6379"
listen_addr = "127.0.0.1:8080"
platform_key = "imk_pl_$(secret)"
jwt_keys = "dev1:$(secret)$(secret)"
master_keys = "dev1:$(head -c 32 /dev/urandom | base64 | tr -d '\n')"
api_key_pepper = "$(secret)$(secret)"
# lets tenants use the ЧЗ emulator (truemark-sandbox) on this machine over plain http
truemark_allow_local_urls = true
TOML
  chmod 600 "$config"
fi
# Files made before the emulator was allowed get the setting too.
grep -q '^truemark_allow_local_urls' "$config" ||
  printf '# lets tenants use the ЧЗ emulator on this machine over plain http\ntruemark_allow_local_urls = true\n' >> "$config"

platform_key=$(sed -n 's/^platform_key = "\(.*\)"$/\1/p' "$config")
cargo build --locked --workspace --bins

# The ЧЗ emulator with CRPT's acceptance catalogue, and the worker, run beside the API and stop
# with it.
pids=()
trap 'kill "${pids[@]}" 2>/dev/null' EXIT
if ! (exec 3<>/dev/tcp/127.0.0.1/8480) 2>/dev/null; then
  target/debug/truemark-sandbox > /tmp/imark-sandbox.log 2>&1 &
  pids+=($!)
fi
IMARK_CONFIG_FILE="$config" target/debug/imark-worker > /tmp/imark-worker.log 2>&1 &
pids+=($!)

cat <<TEXT

iMark is starting on http://127.0.0.1:8080 (Ctrl-C stops it, the worker and the emulator).
The ЧЗ emulator (truemark-sandbox) answers on http://127.0.0.1:8480 with the key
sandbox-api-key; its log is /tmp/imark-sandbox.log, the worker's /tmp/imark-worker.log.
The platform operator's key (from $config):

    $platform_key

Next: follow "Your first store token" in README.md.

TEXT
IMARK_CONFIG_FILE="$config" target/debug/imark-api serve

#!/usr/bin/env bash
# Brings up iMark on this machine: Postgres and Redis, the `imark` database, development secrets
# in imark.local.toml (made once, never committed), then the API on http://127.0.0.1:8080 with
# the worker and the ЧЗ emulator beside it, and a demo tenant on the emulator with requests to
# paste (kept in imark-demo.local.toml, reused on every run).
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

# The ЧЗ emulator with CRPT's acceptance catalogue, the worker and the API run together and stop
# together (Ctrl-C).
pids=()
trap 'kill "${pids[@]}" 2>/dev/null' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
if ! (exec 3<>/dev/tcp/127.0.0.1/8480) 2>/dev/null; then
  target/debug/truemark-sandbox > /tmp/imark-sandbox.log 2>&1 &
  pids+=($!)
fi
IMARK_CONFIG_FILE="$config" target/debug/imark-worker > /tmp/imark-worker.log 2>&1 &
pids+=($!)
IMARK_CONFIG_FILE="$config" target/debug/imark-api serve > /tmp/imark-api.log 2>&1 &
api_pid=$!
pids+=("$api_pid")

listen=$(sed -n 's/^listen_addr = "\(.*\)"$/\1/p' "$config")
api="http://${listen:-127.0.0.1:8080}"
# Whether /readyz answers 200 (bash's /dev/tcp: curl may be missing on a fresh machine).
ready() (
  exec 3<>"/dev/tcp/${listen%:*}/${listen##*:}" || exit 1
  printf 'GET /readyz HTTP/1.0\r\nHost: %s\r\n\r\n' "$listen" >&3
  read -r _ status _ <&3
  [ "$status" = 200 ]
)
is_ready=false
for _ in $(seq 120); do
  if ready 2>/dev/null; then is_ready=true; break; fi
  if ! kill -0 "$api_pid" 2>/dev/null; then
    echo "The API stopped; its log is /tmp/imark-api.log:" >&2
    tail -n 20 /tmp/imark-api.log >&2
    exit 1
  fi
  sleep 0.5
done
if [ "$is_ready" != true ]; then
  echo "The API did not become ready at $api/readyz within 60 s (is Postgres reachable?)." >&2
  echo "Stopping it, the worker and the emulator; the API's log is /tmp/imark-api.log:" >&2
  tail -n 20 /tmp/imark-api.log >&2
  exit 1
fi

cat <<TEXT

iMark runs on $api (Ctrl-C stops it, the worker and the emulator).
The ЧЗ emulator (truemark-sandbox) answers on http://127.0.0.1:8480 with the key
sandbox-api-key. Logs: /tmp/imark-api.log (followed below), /tmp/imark-worker.log,
/tmp/imark-sandbox.log. The platform operator's key (from $config):

    $platform_key

TEXT
# The demo tenant, its store, ЧЗ key and store key: made once, then reused (imark-demo.local.toml).
IMARK_CONFIG_FILE="$config" target/debug/imark-api demo --truemark-url http://127.0.0.1:8480 \
  --api-url "$api" --state-file imark-demo.local.toml ||
  echo "The demo tenant could not be set up (see above); the API runs on." >&2
printf '\nNext: README.md, "Your first store token", and docs/walkthrough.md. The API log:\n\n'

tail -n +1 -f --pid="$api_pid" /tmp/imark-api.log &
pids+=($!)
wait "$api_pid"

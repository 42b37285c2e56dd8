#!/usr/bin/env bash
# Makes sure Postgres (127.0.0.1:5432) and Redis (127.0.0.1:6379) are running, installing them
# from Debian's packages when they are absent. Safe to run again and again.
set -euo pipefail

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
postgres_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }
wait_for() {
  local what=$1 check=$2
  for _ in $(seq 1 60); do "$check" && return 0; sleep 0.5; done
  echo "services: $what did not come up" >&2
  return 1
}

# Marks a Postgres this script installed, so that later runs may still set it up for iMark. A
# Postgres it did not install is never reconfigured.
marker=/etc/postgresql/.installed-by-imark-services-sh
installed_postgres=false

missing=()
if ! postgres_up && ! ls /etc/postgresql/*/main >/dev/null 2>&1; then missing+=(postgresql); fi
if ! redis_up && ! command -v redis-server >/dev/null 2>&1; then missing+=(redis-server); fi
if ! command -v pg_isready >/dev/null 2>&1; then missing+=(postgresql-client); fi
if ! command -v redis-cli >/dev/null 2>&1; then missing+=(redis-tools); fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "services: installing ${missing[*]}"
  sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  if [[ " ${missing[*]} " == *" postgresql "* ]]; then
    installed_postgres=true
    sudo_if_needed touch "$marker"
  fi
fi
[ -f "$marker" ] && installed_postgres=true

if ! postgres_up; then
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  echo "services: starting PostgreSQL $version"
  sudo_if_needed pg_ctlcluster --skip-systemctl-redirect "$version" main start
  wait_for PostgreSQL postgres_up
fi
# A fresh Debian cluster asks for passwords over TCP; iMark's local set-up connects as the
# `postgres` role without one. Only a Postgres this script installed is made to trust loopback
# connections; anyone else's keeps its authentication, and we say what to do instead.
if ! psql -h 127.0.0.1 -U postgres -w -tAc 'SELECT 1' >/dev/null 2>&1; then
  version=$(ls /etc/postgresql 2>/dev/null | grep -v '^\.' | sort -V | tail -n 1) || true
  hba=/etc/postgresql/$version/main/pg_hba.conf
  if [ "$installed_postgres" != true ] || [ -z "$version" ]; then
    [ -n "$version" ] || { hba="the server's pg_hba.conf"; version=VERSION; }
    cat >&2 <<TEXT
services: cannot connect to Postgres on 127.0.0.1:5432 as the \`postgres\` role without a password.
This Postgres was not installed by scripts/services.sh, so its authentication is left alone.
iMark's development set-up (scripts/run.sh, the tests) connects as \`postgres\` without a
password. Either
  - on a development machine only, let loopback connections in: add these lines at the top of
    $hba and reload (sudo pg_ctlcluster $version main reload):
        host all all 127.0.0.1/32 trust
        host all all ::1/128 trust
  - or keep the password: give it to psql (~/.pgpass or PGPASSWORD), to iMark in the
    database_url of imark.local.toml, and to the tests as
    IMARK_TEST_DATABASE_URL=postgres://postgres:PASSWORD@127.0.0.1:5432/postgres
TEXT
    exit 1
  fi
  echo "services: trusting loopback connections in $hba (a Postgres this script installed)"
  sudo_if_needed sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  sudo_if_needed pg_ctlcluster --skip-systemctl-redirect "$version" main reload
  wait_for "PostgreSQL (trust)" postgres_up
fi

if ! redis_up; then
  echo "services: starting Redis"
  mkdir -p /tmp/imark-redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /tmp/imark-redis --logfile /tmp/imark-redis/redis.log
  wait_for Redis redis_up
fi

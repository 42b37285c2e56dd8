#!/usr/bin/env bash
# The load benchmark of docs/BENCHMARKS.md: builds the release binaries, makes sure Postgres,
# Redis and pgbench are there, and runs imark-bench, which starts the ЧЗ emulator and the API,
# measures POST /document beside its two anchors, the API's memory over a long run and failover.
# Results: target/bench/results-<time>.md and .json. Not part of CI: it takes about
# 10 minutes plus 18 steps of --step-seconds (20 s by default).
#
#   scripts/bench.sh                              # the documented run
#   scripts/bench.sh --duration 30 --step-seconds 5   # a smoke run of about two minutes
#
# Any argument goes to imark-bench (`target/release/imark-bench --help` lists them). The run
# drops and creates the database `imark_bench`; the machine should be otherwise idle (it prints
# the load average before and after).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/services.sh
if ! command -v pgbench >/dev/null 2>&1; then
  echo "bench: installing pgbench (postgresql-contrib)"
  if [ "$(id -u)" -eq 0 ]; then sudo_cmd=(); else sudo_cmd=(sudo); fi
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-contrib >/dev/null
fi

cargo build --locked --release --workspace --bins

echo "bench: $(nproc) CPUs; load average $(cut -d' ' -f1-3 /proc/loadavg); $(rustc --version); \
$(redis-server --version | cut -d' ' -f1-3); $(pgbench --version)" >&2
exec target/release/imark-bench --bin-dir target/release --out-dir target/bench "$@"

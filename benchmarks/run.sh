#!/usr/bin/env bash
# Benchmarks of DESIGN.md section 9, on this machine:
#   bash benchmarks/run.sh            # embedded SQLite, then Kafka + Redis (provisioned here)
#   bash benchmarks/run.sh sqlite     # only the embedded transport
#   bash benchmarks/run.sh kafka      # only Kafka + Redis
# Extra options after the mode go to `yadtq bench` (e.g. -n 50000 -w 2 -c 16).
# Reports rates and ratios; nothing here is asserted by the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-all}"; shift || true
out="${BENCH_OUT:-benchmarks/results}"
mkdir -p "$out"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"

if [ "$mode" = all ] || [ "$mode" = sqlite ]; then
  db="$(mktemp -d)/bench.db"
  echo "== embedded SQLite ($db)" >&2
  python3 -m yadtq bench --broker "sqlite:///$db" --backend "sqlite:///$db" "$@" \
    --json | tee "$out/sqlite-$stamp.json"
  rm -rf "$(dirname "$db")"
fi

if [ "$mode" = all ] || [ "$mode" = kafka ]; then
  echo "== Kafka + Redis (scripts/with-services.sh)" >&2
  bash scripts/with-services.sh bash -c '
    python3 -m yadtq bench --broker "kafka://$YADTQ_TEST_KAFKA" --backend "$YADTQ_TEST_REDIS" "$@" --json
  ' bench "$@" | tee "$out/kafka-redis-$stamp.json"
fi

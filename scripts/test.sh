#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs yadtq with its test tools,
# checks lint and types, provisions real Kafka and Redis on 127.0.0.1
# (scripts/services.sh), runs pytest against them, and stops them again.
# Extra arguments go to pytest (e.g. scripts/test.sh -k sqlite -x).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== installing yadtq and test tools" >&2
python3 -m pip install -q --disable-pip-version-check -e '.[test,dashboard]' 2>&1 | grep -v -i "running pip as the 'root' user" >&2 || true
python3 -c 'import yadtq, confluent_kafka, redis, msgpack, prometheus_client' # fail now if the install did not work

if ! command -v docker-compose >/dev/null 2>&1; then
  echo "== installing docker-compose (validates docker-compose.yml; no engine needed)" >&2
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose; } >/dev/null 2>&1 \
    || echo "warning: could not install docker-compose" >&2
fi

if ! { command -v chromium && command -v chromedriver; } >/dev/null 2>&1; then
  echo "== installing chromium and chromium-driver (the dashboard's browser tests)" >&2
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; } >/dev/null 2>&1 \
    || echo "warning: could not install chromium: the browser tests fail with CI set, else are skipped" >&2
fi
# Screenshots and other files tests leave for a person to look at.
export YADTQ_TEST_ARTEFACTS="${YADTQ_TEST_ARTEFACTS:-$PWD/test-artefacts}"

echo "== ruff" >&2
python3 -m ruff check yadtq examples tests benchmarks
echo "== mypy --strict" >&2
python3 -m mypy yadtq examples

# Python's fault handler from the start: a crash after pytest has stopped its own (one
# at interpreter exit, 2026-12-04: rc 139 after every test passed) prints every thread.
export PYTHONFAULTHANDLER=1
echo "== pytest (with real Kafka and Redis)" >&2
exec bash scripts/with-services.sh python3 -m pytest "$@"

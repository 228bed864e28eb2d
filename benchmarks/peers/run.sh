#!/usr/bin/env bash
# yadtq beside Huey, Celery (kombu's Kafka transport), Dramatiq and RQ, in one run:
#   bash benchmarks/peers/run.sh                     # 2 rounds of every system, about 11-14 min
#   bash benchmarks/peers/run.sh --rounds 1 --systems yadtq-kafka,huey
# Options go to compare.py (--help lists them). Provisions Kafka + Redis on
# 127.0.0.1 with scripts/services.sh (its own run dir, stopped at the end; set
# YADTQ_TEST_KAFKA and YADTQ_TEST_REDIS to use servers already running instead)
# and installs the peers, pinned, into a virtual environment of their own
# (PEERS_VENV, default ~/.cache/yadtq/peers-venv), and this checkout, editable, with
# its default dependencies only, into another (YADTQ_VENV, default
# ~/.cache/yadtq/yadtq-venv): each system runs with what its own install brings, not
# with the development environment's extras (opentelemetry-sdk there makes redis-py
# load its metrics modules, 2.5 MB of every yadtq process). The project's environment
# is not touched. Prints one Markdown table; every round's figures go to
# benchmarks/results/peers-<stamp>.json. Nothing here is asserted by tests.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# Asked for help or given options compare.py refuses: answer before installing or
# provisioning anything (compare.py checks its options, and --help exits, with no server).
for arg in "$@"; do
  case "$arg" in -h|--help) exec python3 benchmarks/peers/compare.py --help ;; esac
done
python3 benchmarks/peers/compare.py --check-options "$@"
venv="${PEERS_VENV:-${HOME:-/root}/.cache/yadtq/peers-venv}"
# redis-py < 8: from 8.0 on every socket read times out after 5 s by default, which
# breaks the peers' blocking result waits (BLPOP, XREAD BLOCK) on a loaded machine.
peers=(huey==3.5.4 celery==5.7.0 "kombu[confluentkafka]==5.7.0" "dramatiq[redis]==2.2.1" rq==2.12.0
       "redis>=5,<8")
out="${BENCH_OUT:-benchmarks/results}"
mkdir -p "$out"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"

if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import huey, celery, dramatiq, rq, confluent_kafka, redis
assert int(redis.__version__.split(".")[0]) < 8' 2>/dev/null; then
  echo "peers: installing ${peers[*]} into $venv" >&2
  python3 -m venv "$venv"
  # Without PYTHONPATH (set above for the harness): pip would see this checkout's
  # yadtq.egg-info on it and report yadtq's dependencies missing from the peers' venv.
  env -u PYTHONPATH "$venv/bin/pip" install -q --disable-pip-version-check "${peers[@]}"
fi

yvenv="${YADTQ_VENV:-${HOME:-/root}/.cache/yadtq/yadtq-venv}"
if [ ! -x "$yvenv/bin/python" ] || ! (cd / && "$yvenv/bin/python" -c 'import os, sys, yadtq
sys.exit(os.path.dirname(os.path.dirname(os.path.abspath(yadtq.__file__))) != sys.argv[1])' "$PWD") 2>/dev/null; then
  echo "peers: installing this checkout (editable, default dependencies) into $yvenv" >&2
  python3 -m venv "$yvenv"
  env -u PYTHONPATH "$yvenv/bin/pip" install -q --disable-pip-version-check -e .
fi

started_services=0
if [ -z "${YADTQ_TEST_KAFKA:-}" ] || [ -z "${YADTQ_TEST_REDIS:-}" ]; then
  export YADTQ_SERVICES_DIR="${YADTQ_SERVICES_DIR:-/tmp/yadtq-peers-services}"
  eval "$(bash scripts/services.sh up)"
  started_services=1
fi
cleanup() { if [ "$started_services" = 1 ]; then bash scripts/services.sh down >/dev/null; fi; }
trap cleanup EXIT

python3 benchmarks/peers/compare.py --peers-python "$venv/bin/python" --yadtq-python "$yvenv/bin/python" \
  --kafka "$YADTQ_TEST_KAFKA" --redis "$YADTQ_TEST_REDIS" --json "$out/peers-$stamp.json" "$@"

#!/usr/bin/env bash
# The fault suite alone (issue 8): provisions Kafka and Redis for the ledger
# (scripts/with-services.sh, unless YADTQ_TEST_KAFKA/REDIS are set), runs
# `pytest -m chaos` (the scenarios start and kill servers of their own), and
# prints one line per scenario: tasks sent, completed, lost, ran twice (why),
# failover time. Extra arguments go to pytest (e.g. scripts/chaos.sh -k soak).
#
#   bash scripts/chaos.sh                  # whole suite, ~10 min on 2 cores
#   YADTQ_CHAOS_REPORT=out.jsonl bash scripts/chaos.sh   # keep the raw figures
set -euo pipefail
cd "$(dirname "$0")/.."

report="${YADTQ_CHAOS_REPORT:-$(mktemp "${TMPDIR:-/tmp}/yadtq-chaos.XXXXXX.jsonl")}"
export YADTQ_CHAOS_REPORT="$report"
: >"$report"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

start="$(date +%s)"
rc=0
bash scripts/with-services.sh python3 -m pytest -m chaos tests/chaos -q -p no:cacheprovider "$@" || rc=$?
took=$(( $(date +%s) - start ))

python3 - "$report" "$took" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
print()
print(f"chaos suite: {len(rows)} scenario reports, {sys.argv[2]} s wall time "
      f"({__import__('datetime').datetime.utcnow():%Y-%m-%d %H:%M} UTC)")
head = f"{'scenario':40} {'sent':>6} {'done':>6} {'lost':>5} {'twice':>5} {'faults':>6} {'failover':>9}  why / note"
print(head)
print("-" * len(head))
for r in rows:
    fo = "-" if r.get("failover_s") is None else f"{r['failover_s']:.1f}s"
    why = "; ".join(r.get("twice_reasons") or [])
    extra = ", ".join(filter(None, [why, r.get("note", ""),
                                    f"send errors {r['send_errors']}" if r.get("send_errors") else "",
                                    f"worker exits {r['unexpected_exits']}" if r.get("unexpected_exits") else ""]))
    print(f"{r['scenario'][:40]:40} {r['sent']:>6} {r['completed']:>6} {r['lost']:>5} {r['twice']:>5} "
          f"{r.get('faults', 0):>6} {fo:>9}  {extra}")
    for d in r.get("details") or []:
        print(f"{'':40} {d}")
    if r.get("worst_failover"):
        print(f"{'':40} worst failover: {r['worst_failover']}")
PY
exit "$rc"

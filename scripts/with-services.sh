#!/usr/bin/env bash
# Run a command with a throwaway Kafka and Redis:
#
#   scripts/with-services.sh python -m pytest -q
#
# Starts both with scripts/services.sh, exports YADTQ_TEST_KAFKA and
# YADTQ_TEST_REDIS, runs the command, always stops the services afterwards
# (also on failure or Ctrl-C) and exits with the command's status.
#
# - If YADTQ_TEST_KAFKA and YADTQ_TEST_REDIS are both set already, the command
#   just runs against those; nothing is started or stopped.
# - Without YADTQ_SERVICES_DIR, a private run dir under ${TMPDIR:-/tmp} is
#   used, so parallel runs and a developer's own `services.sh up` (in the
#   default /tmp/yadtq-services) are left alone. With YADTQ_SERVICES_DIR set
#   to a dir whose services are already up, those are used and left running.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
services="$here/services.sh"

if [ $# -eq 0 ]; then
    echo "usage: $0 CMD [ARGS...]" >&2
    exit 2
fi

if [ -n "${YADTQ_TEST_KAFKA:-}" ] && [ -n "${YADTQ_TEST_REDIS:-}" ]; then
    exec "$@"
fi

own_dir=""
if [ -z "${YADTQ_SERVICES_DIR:-}" ]; then
    own_dir="$(mktemp -d "${TMPDIR:-/tmp}/yadtq-services.XXXXXX")"
    YADTQ_SERVICES_DIR="$own_dir"
fi
export YADTQ_SERVICES_DIR

stop_after=1
if [ -z "$own_dir" ] && bash "$services" status >/dev/null 2>&1; then
    stop_after=0
fi
keep_dir=0

# shellcheck disable=SC2317  # invoked via trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    if [ "$stop_after" -eq 1 ]; then
        bash "$services" down >/dev/null || true
    fi
    if [ -n "$own_dir" ] && [ "$keep_dir" -eq 0 ]; then
        rm -rf -- "$own_dir"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

if ! bash "$services" up >/dev/null; then
    # `up` has already stopped what it started; keep its logs to look at.
    stop_after=0
    keep_dir=1
    echo "with-services: could not start the services; logs in $YADTQ_SERVICES_DIR" >&2
    exit 1
fi
# shellcheck source=/dev/null
. "$YADTQ_SERVICES_DIR/env"

rc=0
"$@" || rc=$?
exit "$rc"

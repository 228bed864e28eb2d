#!/usr/bin/env bash
# Throwaway Redis Cluster and Redis Sentinel setups on 127.0.0.1, for tests and
# benchmarks (the plain Redis is scripts/services.sh's).
#
#   scripts/redis-cluster.sh cluster DIR [PRIMARIES]  a Redis Cluster of PRIMARIES
#                                 primaries (default 3), one replica each from 3
#                                 primaries on (none below); prints
#                                 redis+cluster://127.0.0.1:<port>,...
#   scripts/redis-cluster.sh sentinel DIR   a primary, one replica and three
#                                 Sentinels watching it as service "yadtq"; prints
#                                 redis+sentinel://127.0.0.1:<port>,.../yadtq
#   scripts/redis-cluster.sh down DIR       stop every server started in DIR, by the
#                                 pids in DIR/*.pid, and delete DIR
#
# Each server runs daemonized with its pid in DIR/<port>.pid and its data and log
# in DIR/<port>/; DIR/ports lists "<role> <port>" lines (role: node for a cluster
# node, else primary, replica or sentinel, as started). A setup is ready once every
# replica is in sync. A failed start stops what it started. YADTQ_KEEP_REDIS_DIR=1
# keeps DIR (logs) on `down`. Needs redis-server and redis-cli (scripts/services.sh
# install installs them).
set -euo pipefail

SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
READY_TIMEOUT="${YADTQ_SERVICES_TIMEOUT:-60}"
STOP_TIMEOUT=10

say() { printf 'redis-cluster: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# free_ports N: N free ports P, each with P+10000 free too (a cluster node's bus
# port is its port + 10000), below the ephemeral range (see scripts/free_ports.py).
free_ports() { python3 "$SCRIPTS/free_ports.py" "$1" 10000; }

# start_server DIR PORT ROLE [redis-server args...]
start_server() {
    local dir="$1" port="$2" role="$3"; shift 3
    mkdir -p "$dir/$port"
    redis-server "$@" --port "$port" --bind 127.0.0.1 --daemonize yes \
        --pidfile "$dir/$port.pid" --dir "$dir/$port" --logfile "$dir/$port/redis.log" \
        --loglevel warning </dev/null >>"$dir/$port/redis.out" 2>&1 \
        || die "redis-server on port $port failed to start (see $dir/$port)"
    echo "$role $port" >>"$dir/ports"
    local i
    for i in $(seq 200); do
        [ -s "$dir/$port.pid" ] && [ "$(redis-cli -p "$port" ping 2>/dev/null)" = "PONG" ] && return 0
        sleep 0.05
    done
    die "redis-server on port $port did not answer; its log ends: $(tail -n 2 "$dir/$port/redis.log" 2>/dev/null | tr '\n' ' ')"
}

wait_for() { # wait_for WHAT CMD...: until CMD succeeds or READY_TIMEOUT
    local what="$1"; shift
    local deadline=$(( $(date +%s) + READY_TIMEOUT ))
    until "$@"; do
        [ "$(date +%s)" -lt "$deadline" ] || die "$what not ready within ${READY_TIMEOUT}s"
        sleep 0.1
    done
}

cluster_ok() { # every node sees the cluster as ok with all slots assigned
    local port
    for port in "$@"; do
        redis-cli -p "$port" cluster info 2>/dev/null | grep -q 'cluster_state:ok' || return 1
    done
}

replicas_synced() { # every replica among the ports has its link to its primary up
    local port info
    for port in "$@"; do
        info="$(redis-cli -p "$port" info replication 2>/dev/null)" || return 1
        if grep -q '^role:slave' <<<"$info"; then
            grep -q '^master_link_status:up' <<<"$info" || return 1
        fi
    done
}

cmd_cluster() {
    local dir="$1" primaries="${2:-3}" ports port nodes=() url=""
    [ "$primaries" -ge 1 ] || die "need at least one primary"
    mkdir -p "$dir"
    trap 'rc=$?; [ $rc -eq 0 ] || cmd_down "$dir" >/dev/null 2>&1; exit $rc' EXIT
    local count=$(( primaries * 2 ))
    [ "$primaries" -ge 3 ] || count="$primaries"  # redis-cli wants 3 primaries for replicas
    read -r -a ports <<<"$(free_ports "$count")"
    for port in "${ports[@]}"; do
        start_server "$dir" "$port" node --cluster-enabled yes \
            --cluster-config-file "$dir/$port/nodes.conf" --cluster-node-timeout 2000 \
            --cluster-replica-validity-factor 0 --save '' --appendonly no --repl-diskless-sync-delay 0
        nodes+=("127.0.0.1:$port")
        url="${url:+$url,}127.0.0.1:$port"
    done
    local replicas=1
    [ "$primaries" -ge 3 ] || replicas=0
    if [ "$primaries" -ge 3 ]; then
        redis-cli --cluster create "${nodes[@]}" --cluster-replicas "$replicas" --cluster-yes \
            </dev/null >"$dir/create.log" 2>&1 || die "redis-cli --cluster create failed (see $dir/create.log)"
    else  # redis-cli --cluster create refuses fewer than 3 primaries: assign the slots by hand
        local i=0 per=$(( 16384 / primaries )) first last
        for port in "${ports[@]}"; do
            first=$(( i * per )); last=$(( i == primaries - 1 ? 16383 : (i + 1) * per - 1 ))
            redis-cli -p "$port" cluster addslotsrange "$first" "$last" >/dev/null
            [ "$port" = "${ports[0]}" ] || redis-cli -p "$port" cluster meet 127.0.0.1 "${ports[0]}" >/dev/null
            i=$(( i + 1 ))
        done
    fi
    wait_for "redis cluster" cluster_ok "${ports[@]}"
    wait_for "redis cluster replicas" replicas_synced "${ports[@]}"
    trap - EXIT
    say "redis cluster ready: $primaries primaries ($(( count - primaries )) replicas) in $dir"
    echo "redis+cluster://$url"
}

sentinels_agree() { # sentinels_agree PRIMARY_PORT SENTINEL_PORTS...: all know the replica
    local primary="$1" port; shift
    for port in "$@"; do
        redis-cli -p "$port" sentinel replicas yadtq 2>/dev/null | grep -q 127.0.0.1 || return 1
        [ "$(redis-cli -p "$port" sentinel get-master-addr-by-name yadtq 2>/dev/null | tail -n1)" = "$primary" ] || return 1
    done
}

cmd_sentinel() {
    local dir="$1" ports primary replica s url=""
    mkdir -p "$dir"
    trap 'rc=$?; [ $rc -eq 0 ] || cmd_down "$dir" >/dev/null 2>&1; exit $rc' EXIT
    read -r -a ports <<<"$(free_ports 5)"
    primary="${ports[0]}"; replica="${ports[1]}"
    start_server "$dir" "$primary" primary --save '' --appendonly no --repl-diskless-sync-delay 0
    start_server "$dir" "$replica" replica --save '' --appendonly no --repl-diskless-sync-delay 0 \
        --replicaof 127.0.0.1 "$primary"
    wait_for "redis replica" replicas_synced "$replica"
    for s in "${ports[@]:2}"; do
        mkdir -p "$dir/$s"
        cat >"$dir/$s/sentinel.conf" <<EOF
port $s
bind 127.0.0.1
sentinel monitor yadtq 127.0.0.1 $primary 2
sentinel down-after-milliseconds yadtq 1000
sentinel failover-timeout yadtq 5000
sentinel parallel-syncs yadtq 1
EOF
        start_server "$dir" "$s" sentinel "$dir/$s/sentinel.conf" --sentinel
        url="${url:+$url,}127.0.0.1:$s"
    done
    wait_for "redis sentinel" sentinels_agree "$primary" "${ports[@]:2}"
    trap - EXIT
    say "redis sentinel ready: primary $primary, replica $replica, sentinels ${ports[*]:2} in $dir"
    echo "redis+sentinel://$url/yadtq"
}

pid_alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

cmd_down() {
    local dir="$1" f pid pids=() deadline
    [ -d "$dir" ] || return 0
    for f in "$dir"/*.pid; do
        [ -f "$f" ] || continue
        pid="$(cat "$f" 2>/dev/null || true)"
        [[ "$pid" =~ ^[0-9]+$ ]] || continue
        # only a redis process (guards against a recycled pid)
        tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q redis || continue
        kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
    done
    deadline=$(( $(date +%s) + STOP_TIMEOUT ))
    for pid in "${pids[@]}"; do
        while pid_alive "$pid" && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.05; done
        pid_alive "$pid" && kill -KILL "$pid" 2>/dev/null || true
    done
    [ -n "${YADTQ_KEEP_REDIS_DIR:-}" ] || rm -rf -- "$dir"
    say "stopped ${#pids[@]} redis process(es)"
}

[ $# -ge 2 ] || { sed -n '2,20p' "$0" >&2; exit 2; }
command -v redis-server >/dev/null && command -v redis-cli >/dev/null \
    || die "redis-server and redis-cli are needed (scripts/services.sh install)"
case "$1" in
    cluster) cmd_cluster "$2" "${3:-3}" ;;
    sentinel) cmd_sentinel "$2" ;;
    down) cmd_down "$2" ;;
    *) sed -n '2,20p' "$0" >&2; exit 2 ;;
esac

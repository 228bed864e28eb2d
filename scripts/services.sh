#!/usr/bin/env bash
# Throwaway Kafka (single-node KRaft) and Redis on 127.0.0.1 for tests.
#
#   scripts/services.sh up       start both (or reuse the ones already running
#                                in the run dir) and print the env lines
#   scripts/services.sh down     stop both by pid and delete their data; prints
#                                "unset YADTQ_TEST_KAFKA YADTQ_TEST_REDIS" for eval
#   scripts/services.sh status   show what runs; exit 0 only if both are up
#   scripts/services.sh env      print the env file written by `up`
#   scripts/services.sh install  install java/mvn/redis-server if missing, fetch the
#                                kafka jars, and print the jar directory (for
#                                tests/chaos/servers.py, which runs its own servers)
#
# `up` prints, on stdout, exactly:
#   export YADTQ_TEST_KAFKA=127.0.0.1:<port>
#   export YADTQ_TEST_REDIS=redis://127.0.0.1:<port>/0
# so `eval "$(scripts/services.sh up)"` works; the same lines go to <rundir>/env.
# If YADTQ_TEST_KAFKA / YADTQ_TEST_REDIS are already set, that service is taken
# as given and not started.
#
# Settings (environment):
#   YADTQ_SERVICES_DIR      run dir: config, data, logs, pids (default /tmp/yadtq-services)
#   YADTQ_CACHE             jar cache root (default ~/.cache/yadtq)
#   YADTQ_SERVICES_TIMEOUT  readiness deadline per service, seconds (default 90)
#
# Needs python3, java 17+ and mvn (java/mvn are installed via apt if missing,
# as is redis-server). Progress goes to stderr, one line per step.
set -euo pipefail

SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

KAFKA_VERSION=4.1.1
KAFKA_ARTIFACT="kafka_2.13"
SLF4J_BINDING_VERSION=1.7.36
DEPENDENCY_PLUGIN_VERSION=3.8.1

CACHE_ROOT="${YADTQ_CACHE:-${HOME:-/root}/.cache/yadtq}"
KAFKA_HOME="$CACHE_ROOT/kafka-$KAFKA_VERSION"
KAFKA_LIB="$KAFKA_HOME/lib"
KAFKA_MARKER="$KAFKA_HOME/.complete"

RUN_DIR="${YADTQ_SERVICES_DIR:-/tmp/yadtq-services}"
ENV_FILE="$RUN_DIR/env"
KAFKA_DIR="$RUN_DIR/kafka"
KAFKA_PIDFILE="$RUN_DIR/kafka.pid"
KAFKA_PORTFILE="$RUN_DIR/kafka.port"
KAFKA_PROPS="$KAFKA_DIR/server.properties"
KAFKA_LOG="$KAFKA_DIR/server.log"   # log4j output
KAFKA_OUT="$KAFKA_DIR/kafka.out"    # JVM stdout/stderr
REDIS_DIR="$RUN_DIR/redis"
REDIS_PIDFILE="$RUN_DIR/redis.pid"
REDIS_PORTFILE="$RUN_DIR/redis.port"
REDIS_LOG="$REDIS_DIR/redis.log"

READY_TIMEOUT="${YADTQ_SERVICES_TIMEOUT:-90}"
STOP_TIMEOUT=20

# Pids of processes this invocation started; stopped again if `up` fails.
STARTED_PIDS=()

say() { printf 'services: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

now_ms() { date +%s%3N; }
since() { # since START_MS -> "3.1s"
    local d=$(( $(now_ms) - $1 ))
    printf '%d.%ds' $(( d / 1000 )) $(( (d % 1000) / 100 ))
}

# ---------------------------------------------------------------- processes

# pid_alive PID: the process exists and is not a zombie.
pid_alive() {
    local pid="$1" state
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    if [ -r "/proc/$pid/stat" ]; then
        state="$(sed -e 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)" || return 1
        [ "$state" != "Z" ] || return 1
    fi
    return 0
}

# pid_matches PID NEEDLE: alive and its command line contains NEEDLE
# (guards against a recycled pid after a reboot or a crash).
pid_matches() {
    local pid="$1" needle="$2"
    pid_alive "$pid" || return 1
    [ -r "/proc/$pid/cmdline" ] || return 0
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$needle"
}

read_file() { if [ -f "$1" ]; then cat "$1" 2>/dev/null || true; fi; }

kafka_pid() { read_file "$KAFKA_PIDFILE"; }
redis_pid() { read_file "$REDIS_PIDFILE"; }
kafka_port() { read_file "$KAFKA_PORTFILE"; }
redis_port() { read_file "$REDIS_PORTFILE"; }

kafka_running() { local p; p="$(kafka_pid)"; [ -n "$p" ] && pid_matches "$p" "$KAFKA_PROPS"; }
redis_running() {
    local p port
    p="$(redis_pid)"; port="$(redis_port)"
    [ -n "$p" ] && [ -n "$port" ] && pid_matches "$p" "redis-server 127.0.0.1:$port"
}

# stop_pids PID...: TERM, wait up to STOP_TIMEOUT s, then KILL what is left.
stop_pids() {
    local pid deadline left
    for pid in "$@"; do
        if pid_alive "$pid"; then kill -TERM "$pid" 2>/dev/null || true; fi
    done
    deadline=$(( $(date +%s) + STOP_TIMEOUT ))
    while :; do
        left=()
        for pid in "$@"; do pid_alive "$pid" && left+=("$pid"); done
        [ "${#left[@]}" -eq 0 ] && return 0
        [ "$(date +%s)" -ge "$deadline" ] && break
        sleep 0.1
    done
    for pid in "${left[@]}"; do
        say "pid $pid did not stop within ${STOP_TIMEOUT}s, killing it"
        kill -KILL "$pid" 2>/dev/null || true
    done
    sleep 0.2
}

tcp_open() { # tcp_open PORT
    python3 - "$1" <<'PY' 2>/dev/null
import socket, sys
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()
except OSError:
    sys.exit(1)
PY
}

# --------------------------------------------------------------- installing

APT_UPDATED=0
apt_install() {
    command -v apt-get >/dev/null || die "need $* but apt-get is not available; install it by hand"
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || die "need $* and root (or sudo) to install it"
        sudo=(sudo -n)
    fi
    local t0 log
    t0="$(now_ms)"
    mkdir -p "$CACHE_ROOT"
    log="$CACHE_ROOT/apt.log"
    say "installing $* via apt"
    if [ "$APT_UPDATED" -eq 0 ]; then
        "${sudo[@]}" apt-get update -qq </dev/null >"$log" 2>&1 || die "apt-get update failed (see $log)"
        APT_UPDATED=1
    fi
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        -o Dpkg::Use-Pty=0 "$@" </dev/null >>"$log" 2>&1 \
        || die "apt-get install $* failed (see $log)"
    say "installed $* ($(since "$t0"))"
}

ensure_tools() {
    command -v python3 >/dev/null || die "python3 is required"
    local want_kafka="$1" want_redis="$2" pkgs=()
    if [ "$want_redis" -eq 1 ]; then
        command -v redis-server >/dev/null && command -v redis-cli >/dev/null || pkgs+=(redis-server)
    fi
    if [ "$want_kafka" -eq 1 ]; then
        command -v java >/dev/null || pkgs+=(openjdk-17-jre-headless)
        if [ ! -f "$KAFKA_MARKER" ] && ! command -v mvn >/dev/null; then pkgs+=(maven); fi
    fi
    if [ "${#pkgs[@]}" -gt 0 ]; then apt_install "${pkgs[@]}"; fi
}

# Kafka broker jars from Maven Central into $KAFKA_LIB (once per version).
ensure_kafka_jars() {
    [ -f "$KAFKA_MARKER" ] && return 0
    mkdir -p "$KAFKA_HOME"
    local lockfd
    exec {lockfd}<"$KAFKA_HOME"
    flock "$lockfd"
    if [ -f "$KAFKA_MARKER" ]; then exec {lockfd}<&-; return 0; fi

    local t0 work mvnlog
    t0="$(now_ms)"
    say "fetching kafka $KAFKA_VERSION jars from Maven Central into $KAFKA_LIB"
    work="$(mktemp -d "$KAFKA_HOME/fetch.XXXXXX")"
    mvnlog="$KAFKA_HOME/mvn.log"
    cat >"$work/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.yadtq</groupId>
  <artifactId>kafka-broker-jars</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>$KAFKA_ARTIFACT</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-reload4j</artifactId>
      <version>$SLF4J_BINDING_VERSION</version>
    </dependency>
  </dependencies>
  <build>
    <pluginManagement>
      <plugins>
        <plugin>
          <groupId>org.apache.maven.plugins</groupId>
          <artifactId>maven-dependency-plugin</artifactId>
          <version>$DEPENDENCY_PLUGIN_VERSION</version>
        </plugin>
      </plugins>
    </pluginManagement>
  </build>
</project>
EOF
    if ! (cd "$work" && mvn -q -B -Dstyle.color=never dependency:copy-dependencies \
            -DincludeScope=runtime -DoutputDirectory="$work/lib") </dev/null >"$mvnlog" 2>&1; then
        rm -rf "$work"
        die "maven could not fetch the kafka jars (see $mvnlog)"
    fi
    ls "$work/lib"/kafka_*.jar >/dev/null 2>&1 || { rm -rf "$work"; die "maven fetched no kafka jar (see $mvnlog)"; }
    rm -rf "$KAFKA_LIB"
    mv "$work/lib" "$KAFKA_LIB"
    rm -rf "$work"
    echo "$KAFKA_ARTIFACT:$KAFKA_VERSION slf4j-reload4j:$SLF4J_BINDING_VERSION" >"$KAFKA_MARKER"
    say "kafka jars ready ($(find "$KAFKA_LIB" -name '*.jar' | wc -l) jars, $(since "$t0"))"
    exec {lockfd}<&-
}

# ----------------------------------------------------------------- starting

# free_ports N: N distinct free TCP ports on 127.0.0.1, space separated, below the
# ephemeral range (see scripts/free_ports.py).
free_ports() { python3 "$SCRIPTS/free_ports.py" "$1"; }

write_kafka_config() { # PORT CONTROLLER_PORT
    local port="$1" cport="$2"
    mkdir -p "$KAFKA_DIR"
    cat >"$KAFKA_PROPS" <<EOF
# generated by scripts/services.sh -- single node, KRaft, 127.0.0.1 only
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KAFKA_DIR/data
num.partitions=8
default.replication.factor=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
EOF
    cat >"$KAFKA_DIR/log4j.properties" <<EOF
# generated by scripts/services.sh
log4j.rootLogger=WARN, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=$KAFKA_LOG
log4j.appender.file.Append=true
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
# keep the one "Kafka Server started" line (used as a readiness signal)
log4j.logger.kafka.server.KafkaRaftServer=INFO
EOF
}

start_kafka() {
    local port cport t0 cluster_id pid
    read -r port cport <<<"$(free_ports 2)"
    t0="$(now_ms)"
    rm -rf "$KAFKA_DIR" "$KAFKA_PIDFILE" "$KAFKA_PORTFILE"
    write_kafka_config "$port" "$cport"

    local tool_jvm=(java -Xshare:auto -XX:TieredStopAtLevel=1 -XX:+UseSerialGC
        "-Dlog4j.configuration=file:$KAFKA_DIR/log4j.properties"
        -Dlog4j2.statusLoggerLevel=OFF -cp "$KAFKA_LIB/*")
    cluster_id="$("${tool_jvm[@]}" kafka.tools.StorageTool random-uuid </dev/null 2>>"$KAFKA_OUT" | tail -n1)" \
        || die "kafka StorageTool random-uuid failed (see $KAFKA_OUT)"
    [ -n "$cluster_id" ] || die "kafka StorageTool random-uuid printed nothing (see $KAFKA_OUT)"
    "${tool_jvm[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$KAFKA_PROPS" \
        </dev/null >>"$KAFKA_OUT" 2>&1 \
        || die "kafka StorageTool format failed (see $KAFKA_OUT)"

    local jvm=(java -Xmx512m -Xms128m -XX:+UseG1GC -XX:MaxGCPauseMillis=20
        -Djava.awt.headless=true
        "-Dlog4j.configuration=file:$KAFKA_DIR/log4j.properties"
        -Dlog4j2.statusLoggerLevel=OFF
        "-Dkafka.logs.dir=$KAFKA_DIR"
        -cp "$KAFKA_LIB/*" kafka.Kafka "$KAFKA_PROPS")
    local pidfile_tmp="$KAFKA_PIDFILE.tmp"
    rm -f "$pidfile_tmp"
    # The inner sh records its own pid and execs java, so the pid file holds
    # the JVM's pid; setsid keeps the broker out of the caller's terminal
    # signals (Ctrl-C) and process group.
    # shellcheck disable=SC2016  # $$ and $@ are for the inner sh
    local launcher=(nohup sh -c 'echo $$ >"$0"; exec "$@"' "$pidfile_tmp" "${jvm[@]}")
    if command -v setsid >/dev/null; then launcher=(setsid "${launcher[@]}"); fi
    "${launcher[@]}" </dev/null >>"$KAFKA_OUT" 2>&1 {LOCKFD}<&- &
    for _ in $(seq 100); do [ -s "$pidfile_tmp" ] && break; sleep 0.05; done
    pid="$(read_file "$pidfile_tmp")"
    [ -n "$pid" ] || die "kafka did not start (see $KAFKA_OUT)"
    mv "$pidfile_tmp" "$KAFKA_PIDFILE"
    echo "$port" >"$KAFKA_PORTFILE"
    STARTED_PIDS+=("$pid")
    KAFKA_T0="$t0"
}

start_redis() {
    local port t0 pid
    read -r port <<<"$(free_ports 1)"
    t0="$(now_ms)"
    rm -rf "$REDIS_DIR" "$REDIS_PIDFILE" "$REDIS_PORTFILE"
    mkdir -p "$REDIS_DIR"
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
        --daemonize yes --pidfile "$REDIS_PIDFILE" --dir "$REDIS_DIR" \
        --logfile "$REDIS_LOG" --loglevel warning \
        </dev/null >>"$REDIS_DIR/redis.out" 2>&1 {LOCKFD}<&- \
        || die "redis-server failed to start (see $REDIS_DIR/redis.out)"
    echo "$port" >"$REDIS_PORTFILE"
    # The daemon writes its pid file only after it has bound the port.
    for _ in $(seq 100); do
        [ -s "$REDIS_PIDFILE" ] && break
        grep -qiE 'could not create server|failed listening' "$REDIS_LOG" 2>/dev/null && break
        sleep 0.05
    done
    pid="$(redis_pid)"
    [ -n "$pid" ] || die "redis-server did not start on 127.0.0.1:$port (see $REDIS_LOG)"
    STARTED_PIDS+=("$pid")
    REDIS_T0="$t0"
}

# ---------------------------------------------------------------- readiness

wait_redis() {
    local port t0="$1" deadline
    port="$(redis_port)"
    deadline=$(( $(date +%s) + READY_TIMEOUT ))
    while :; do
        if [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null </dev/null)" = "PONG" ]; then
            say "redis ready on 127.0.0.1:$port ($(since "$t0"))"
            return 0
        fi
        redis_running || die "redis-server on 127.0.0.1:$port exited (see $REDIS_LOG)"
        [ "$(date +%s)" -lt "$deadline" ] || die "redis not ready on 127.0.0.1:$port within ${READY_TIMEOUT}s (see $REDIS_LOG)"
        sleep 0.05
    done
}

# Ready = the broker answers a metadata request listing itself
# (confluent_kafka AdminClient), or, without confluent_kafka, the port accepts
# connections and the log says the server started.
wait_kafka() {
    local port pid t0="$1" rc=0
    port="$(kafka_port)"; pid="$(kafka_pid)"
    python3 - "$port" "$pid" "$READY_TIMEOUT" "$KAFKA_LOG" "$KAFKA_OUT" <<'PY' || rc=$?
import os, signal, socket, sys, time

signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C: die quietly, no traceback
port, pid, timeout, log, out = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5]
deadline = time.monotonic() + timeout
MARKERS = ("Kafka Server started", "started (kafka.server")

def alive():
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        pass
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True

def tcp_open():
    try:
        socket.create_connection(("127.0.0.1", port), 0.5).close()
        return True
    except OSError:
        return False

def log_says_started():
    for path in (log, out):
        try:
            with open(path, errors="replace") as f:
                text = f.read()
        except OSError:
            continue
        if any(m in text for m in MARKERS):
            return True
    return False

def warm_up(admin, quiet):
    """Best effort, bounded: get the group coordinator (creates
    __consumer_offsets) and the producer-id manager loaded, so the first test
    does not pay ~3 s for its first group join or see "Coordinator load in
    progress" from an idempotent producer. Returns True when both are done."""
    import json
    from confluent_kafka import Producer
    until = min(deadline, time.monotonic() + 30)
    eos = {}
    def stats(s):
        eos.update(json.loads(s).get("eos") or {})
    producer = Producer({"bootstrap.servers": f"127.0.0.1:{port}", "enable.idempotence": True,
                         "retry.backoff.ms": 100, "statistics.interval.ms": 50,
                         "stats_cb": stats}, logger=quiet)
    group_ok = False
    # Not list_consumer_group_offsets(): librdkafka (up to at least 2.16)
    # segfaults when that call meets NOT_COORDINATOR on a fresh broker.
    while time.monotonic() < until and alive():
        if not group_ok:
            try:
                admin.describe_consumer_groups(["yadtq-services-warmup"], request_timeout=5)[
                    "yadtq-services-warmup"].result()
                group_ok = True
            except Exception:
                pass
        producer.poll(0.05)
        if group_ok and eos.get("idemp_state") == "Assigned":
            return True
        time.sleep(0.05)
    return False

try:
    import logging
    from confluent_kafka.admin import AdminClient
    quiet = logging.getLogger("yadtq.services.kafka-ready")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    quiet.setLevel(logging.CRITICAL)
except Exception:
    AdminClient = None

admin = None
while True:
    if not alive():
        sys.exit(2)
    left = deadline - time.monotonic()
    if left <= 0:
        sys.exit(1)
    if tcp_open():
        if AdminClient is None:
            if log_says_started():
                sys.exit(0)
        else:
            try:
                if admin is None:
                    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}",
                                         "socket.connection.setup.timeout.ms": 2000},
                                        logger=quiet)
                md = admin.list_topics(timeout=max(0.5, min(5.0, left)))
                ready = any(b.port == port for b in md.brokers.values())
            except Exception:
                ready = False
            if ready:
                try:
                    warmed = warm_up(admin, quiet)
                except Exception:
                    warmed = False
                if not alive():
                    sys.exit(2)
                sys.exit(0 if warmed else 3)
    time.sleep(0.1)
PY
    case "$rc" in
        0) say "kafka ready on 127.0.0.1:$port ($(since "$t0"))" ;;
        3) say "kafka ready on 127.0.0.1:$port ($(since "$t0"); coordinators still loading)" ;;
        2) die "kafka exited during start-up (see $KAFKA_OUT and $KAFKA_LOG)" ;;
        *) die "kafka not ready on 127.0.0.1:$port within ${READY_TIMEOUT}s (see $KAFKA_OUT and $KAFKA_LOG)" ;;
    esac
}

# ----------------------------------------------------------------- commands

write_env() { # KAFKA_ADDR REDIS_URL
    mkdir -p "$RUN_DIR"
    printf 'export YADTQ_TEST_KAFKA=%s\nexport YADTQ_TEST_REDIS=%s\n' "$1" "$2" >"$ENV_FILE.tmp"
    mv "$ENV_FILE.tmp" "$ENV_FILE"
    cat "$ENV_FILE"
}

lock_run_dir() {
    mkdir -p "$RUN_DIR"
    exec {LOCKFD}<"$RUN_DIR"
    if command -v flock >/dev/null; then flock "$LOCKFD"; fi
}

on_up_failure() {
    local rc=$?
    if [ "$rc" -ne 0 ] && [ "${#STARTED_PIDS[@]}" -gt 0 ]; then
        stop_pids "${STARTED_PIDS[@]}"
        rm -f "$KAFKA_PIDFILE" "$REDIS_PIDFILE" "$ENV_FILE"
    fi
    exit "$rc"
}

cmd_up() {
    local ext_kafka="${YADTQ_TEST_KAFKA:-}" ext_redis="${YADTQ_TEST_REDIS:-}"
    local need_kafka=1 need_redis=1
    [ -n "$ext_kafka" ] && need_kafka=0
    [ -n "$ext_redis" ] && need_redis=0
    if [ "$need_kafka" -eq 0 ] && [ "$need_redis" -eq 0 ]; then
        say "using YADTQ_TEST_KAFKA=$ext_kafka and YADTQ_TEST_REDIS=$ext_redis from the environment"
        write_env "$ext_kafka" "$ext_redis"
        return 0
    fi

    lock_run_dir
    trap on_up_failure EXIT

    local start_kafka_now=0 start_redis_now=0
    if [ "$need_kafka" -eq 1 ]; then
        if kafka_running && tcp_open "$(kafka_port)"; then
            say "kafka already running on 127.0.0.1:$(kafka_port) (pid $(kafka_pid)), reusing it"
        else
            if kafka_running; then stop_pids "$(kafka_pid)"; fi
            start_kafka_now=1
        fi
    fi
    if [ "$need_redis" -eq 1 ]; then
        if redis_running && [ "$(redis-cli -h 127.0.0.1 -p "$(redis_port)" ping 2>/dev/null </dev/null)" = "PONG" ]; then
            say "redis already running on 127.0.0.1:$(redis_port) (pid $(redis_pid)), reusing it"
        else
            if redis_running; then stop_pids "$(redis_pid)"; fi
            start_redis_now=1
        fi
    fi

    ensure_tools "$start_kafka_now" "$start_redis_now"
    if [ "$start_kafka_now" -eq 1 ]; then
        ensure_kafka_jars
        start_kafka
    fi
    if [ "$start_redis_now" -eq 1 ]; then start_redis; fi
    # Redis is up in milliseconds; Kafka boots meanwhile.
    if [ "$start_redis_now" -eq 1 ]; then wait_redis "$REDIS_T0"; fi
    if [ "$start_kafka_now" -eq 1 ]; then wait_kafka "$KAFKA_T0"; fi

    local kafka_addr="$ext_kafka" redis_url="$ext_redis"
    [ "$need_kafka" -eq 1 ] && kafka_addr="127.0.0.1:$(kafka_port)"
    [ "$need_redis" -eq 1 ] && redis_url="redis://127.0.0.1:$(redis_port)/0"
    write_env "$kafka_addr" "$redis_url"
    trap - EXIT
}

cmd_down() {
    if [ ! -d "$RUN_DIR" ]; then echo "unset YADTQ_TEST_KAFKA YADTQ_TEST_REDIS"; return 0; fi
    lock_run_dir
    local pids=()
    if kafka_running; then pids+=("$(kafka_pid)"); fi
    if redis_running; then pids+=("$(redis_pid)"); fi
    if [ "${#pids[@]}" -gt 0 ]; then
        local t0; t0="$(now_ms)"
        stop_pids "${pids[@]}"
        say "stopped ${#pids[@]} service process(es) ($(since "$t0"))"
    fi
    # Only what `up` creates: the run dir may be a directory the user chose.
    rm -rf "$KAFKA_DIR" "$REDIS_DIR"
    rm -f "$KAFKA_PIDFILE" "$KAFKA_PIDFILE.tmp" "$KAFKA_PORTFILE" \
          "$REDIS_PIDFILE" "$REDIS_PORTFILE" "$ENV_FILE" "$ENV_FILE.tmp"
    rmdir "$RUN_DIR" 2>/dev/null || true
    # For `eval "$(scripts/services.sh down)"` after `eval "$(... up)"`:
    # a later `up` would otherwise take the stale addresses as external.
    echo "unset YADTQ_TEST_KAFKA YADTQ_TEST_REDIS"
}

cmd_status() {
    local ok=0 port
    if [ -n "${YADTQ_TEST_KAFKA:-}" ]; then
        port="${YADTQ_TEST_KAFKA##*:}"
        if tcp_open "$port"; then echo "kafka: external, reachable at $YADTQ_TEST_KAFKA"; ok=$((ok + 1))
        else echo "kafka: external, NOT reachable at $YADTQ_TEST_KAFKA"; fi
    elif kafka_running; then
        echo "kafka: running (pid $(kafka_pid)) on 127.0.0.1:$(kafka_port)"; ok=$((ok + 1))
    else
        echo "kafka: not running"
    fi
    if [ -n "${YADTQ_TEST_REDIS:-}" ]; then
        # redis://host:port/db -> port
        port="${YADTQ_TEST_REDIS#*://}"; port="${port%%/*}"; port="${port##*:}"
        if tcp_open "$port"; then echo "redis: external, reachable at $YADTQ_TEST_REDIS"; ok=$((ok + 1))
        else echo "redis: external, NOT reachable at $YADTQ_TEST_REDIS"; fi
    elif redis_running; then
        echo "redis: running (pid $(redis_pid)) on 127.0.0.1:$(redis_port)"; ok=$((ok + 1))
    else
        echo "redis: not running"
    fi
    [ "$ok" -eq 2 ]
}

cmd_install() {
    ensure_tools 1 1
    ensure_kafka_jars
    echo "$KAFKA_LIB"
}

cmd_env() {
    [ -f "$ENV_FILE" ] || { say "no env file at $ENV_FILE (run: $0 up)"; return 1; }
    cat "$ENV_FILE"
}

usage() {
    echo "usage: $0 up|down|status|env|install" >&2
    exit 2
}

main() {
    [ $# -eq 1 ] || usage
    case "$1" in
        up) cmd_up ;;
        down) cmd_down ;;
        status) cmd_status ;;
        env) cmd_env ;;
        install) cmd_install ;;
        -h|--help|help) usage ;;
        *) usage ;;
    esac
}

main "$@"

#!/usr/bin/env bash
# Single-node Apache Kafka broker (KRaft, combined broker+controller, loopback only) for tests and CI.
#
#   broker.sh fetch          resolve the broker jars from Maven Central into the cache (once)
#   broker.sh start [DIR]    fetch if needed, format DIR/data, start the broker in the background,
#                            wait for it, print RDMT_KAFKA_BOOTSTRAP=127.0.0.1:<port> on stdout
#   broker.sh stop [DIR]     stop the broker started in DIR
#   broker.sh status [DIR]   exit 0 and print the bootstrap line if the broker in DIR is running
#
# stdout carries only the RDMT_KAFKA_BOOTSTRAP=... line, so `broker.sh start DIR >> "$GITHUB_ENV"` works;
# everything else goes to stderr. See docs/kafka-broker.md.
#
# Environment:
#   RDMT_KAFKA_VERSION        org.apache.kafka:kafka_2.13 version (default 4.4.0)
#   RDMT_KAFKA_CACHE          jar cache (default $HOME/.cache/rdmt/kafka-<version>)
#   RDMT_KAFKA_DIR            default DIR (default ${TMPDIR:-/tmp}/rdmt-kafka)
#   RDMT_KAFKA_PORT           PLAINTEXT port (default: a free port)
#   RDMT_KAFKA_CONTROLLER_PORT  CONTROLLER port (default: a free port)
#   RDMT_KAFKA_START_TIMEOUT  seconds to wait for the broker (default 90)
#   RDMT_KAFKA_HEAP_OPTS      JVM heap options (default "-Xms128m -Xmx512m")
#   JAVA_HOME / MVN           Java installation and Maven command to use
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VERSION="${RDMT_KAFKA_VERSION:-4.4.0}"
CACHE="${RDMT_KAFKA_CACHE:-${HOME}/.cache/rdmt/kafka-${VERSION}}"
LIB="${CACHE}/lib"
STAMP="${CACHE}/.fetched"
JAVA="${JAVA_HOME:+${JAVA_HOME}/bin/}java"
MVN="${MVN:-mvn}"
TIMEOUT="${RDMT_KAFKA_START_TIMEOUT:-90}"
HEAP_OPTS="${RDMT_KAFKA_HEAP_OPTS:--Xms128m -Xmx512m}"

NAME=broker
# shellcheck source=../lib/daemon.sh
source "${HERE}/../lib/daemon.sh"  # log, die, locked_fetch, pid_alive, stop_daemon, main_command

fetched() { [[ -f "$STAMP" ]] && [[ "$(cat "$STAMP")" == "$VERSION" ]] && compgen -G "${LIB}/kafka_2.13-*.jar" >/dev/null; }

resolve_jars() {
    log "resolving org.apache.kafka:kafka_2.13:${VERSION} into ${LIB}"
    local tmp="${CACHE}/lib.tmp.$$"
    rm -rf "$tmp"
    "$MVN" -q -B -Dstyle.color=never -f "${HERE}/pom.xml" -Dkafka.version="$VERSION" \
        dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" >"${CACHE}/mvn.log" 2>&1 \
        || { cat "${CACHE}/mvn.log" >&2; rm -rf "$tmp"; die "mvn failed to resolve kafka_2.13:${VERSION}"; }
    compgen -G "${tmp}/kafka_2.13-${VERSION}.jar" >/dev/null || { rm -rf "$tmp"; die "kafka_2.13-${VERSION}.jar missing"; }
    rm -rf "$LIB"
    mv "$tmp" "$LIB"
    echo "$VERSION" >"$STAMP"
    log "cached $(ls "$LIB" | wc -l) jars"
}

fetch() { locked_fetch resolve_jars; }

log_tail() {
    local dir="$1"
    for f in "${dir}/logs/server.log" "${dir}/logs/broker.out"; do
        if [[ -s "$f" ]]; then
            log "---- tail of $f ----"
            tail -n 40 "$f" >&2
        fi
    done
}

free_ports() {
    python3 - <<'EOF'
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
EOF
}

cluster_id() {
    # Same format as `kafka-storage random-uuid`: 16 random bytes, URL-safe base64 without padding,
    # not starting with '-' (Kafka rejects such ids on the command line).
    python3 - <<'EOF'
import base64, os
while True:
    cid = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
    if not cid.startswith("-"):
        print(cid)
        break
EOF
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start() {
    local dir="$1"
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    if pid_alive "$dir"; then
        log "broker already running in ${dir} (pid $(cat "${dir}/broker.pid"))"
        cat "${dir}/bootstrap"
        return 0
    fi
    fetch

    local port cport ports
    if [[ -f "${dir}/data/meta.properties" && -f "${dir}/ports" ]]; then
        # Restart on formatted storage: the metadata log records the controller endpoint, so keep the ports.
        ports="$(cat "${dir}/ports")"
    else
        ports="$(free_ports)"
    fi
    port="${RDMT_KAFKA_PORT:-${ports% *}}"
    cport="${RDMT_KAFKA_CONTROLLER_PORT:-${ports#* }}"
    [[ "$port" != "$cport" ]] || die "broker and controller port are both ${port}"
    port_open "$port" && die "port ${port} is already in use"

    mkdir -p "${dir}/data" "${dir}/logs"
    echo "${port} ${cport}" >"${dir}/ports"
    cat >"${dir}/server.properties" <<EOF
# Written by deploy/kafka/broker.sh: single-node KRaft, broker and controller in one process.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:${cport}
listeners=PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${cport}
advertised.listeners=PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${cport}
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
log.dirs=${dir}/data

# Single node: every internal topic has one replica (and one partition, to start fast).
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
share.coordinator.state.topic.num.partitions=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
EOF

    if [[ ! -f "${dir}/data/meta.properties" ]]; then
        local cid
        cid="$(cluster_id)"
        # Kafka 4.x: controller.quorum.bootstrap.servers (dynamic quorum) needs --standalone for a
        # one-controller quorum (it writes the initial voter set into the metadata log).
        if ! "$JAVA" -cp "${LIB}/*" -Dlog4j2.configurationFile="${HERE}/log4j2.xml" -Dkafka.logs.dir="${dir}/logs" \
            kafka.tools.StorageTool format --standalone -t "$cid" -c "${dir}/server.properties" \
            >"${dir}/logs/format.out" 2>&1; then
            cat "${dir}/logs/format.out" >&2
            die "formatting ${dir}/data failed"
        fi
    fi

    # stdin/stdout/stderr are redirected so callers capturing our output (subprocess.run) don't
    # wait for the broker to exit; nohup keeps it alive when a CI step's shell ends.
    # shellcheck disable=SC2086  # HEAP_OPTS is a list of options
    nohup "$JAVA" $HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="${HERE}/log4j2.xml" -Dkafka.logs.dir="${dir}/logs" \
        -cp "${LIB}/*" kafka.Kafka "${dir}/server.properties" \
        </dev/null >"${dir}/logs/broker.out" 2>&1 &
    local pid=$!
    echo "$pid" >"${dir}/broker.pid"
    echo "RDMT_KAFKA_BOOTSTRAP=127.0.0.1:${port}" >"${dir}/bootstrap"

    # Ready = the port accepts connections and the broker logged that it started (the socket is
    # bound before the broker has caught up with the metadata log and can serve requests).
    local deadline=$((SECONDS + TIMEOUT))
    until port_open "$port" && grep -q "Kafka Server started" "${dir}/logs/server.log" 2>/dev/null; do
        if ! kill -0 "$pid" 2>/dev/null; then
            log_tail "$dir"
            rm -f "${dir}/broker.pid"
            die "broker exited during startup (see ${dir}/logs)"
        fi
        if ((SECONDS >= deadline)); then
            log_tail "$dir"
            stop "$dir" || true
            die "broker not ready on 127.0.0.1:${port} after ${TIMEOUT}s (see ${dir}/logs)"
        fi
        sleep 0.2
    done
    log "broker pid ${pid} ready on 127.0.0.1:${port} (controller ${cport}, dir ${dir})"
    cat "${dir}/bootstrap"
}

stop() { stop_daemon "$1" 30; }

dir="${2:-${RDMT_KAFKA_DIR:-${TMPDIR:-/tmp}/rdmt-kafka}}"
main_command "${1:-}" "$dir" bootstrap

#!/usr/bin/env bash
# Apicurio Registry (in-memory storage, loopback only) with its Confluent-compatible API, for tests and CI.
#
#   registry.sh fetch          build the registry jar from Maven Central into the cache (once)
#   registry.sh start [DIR]    fetch if needed, start the registry in the background, wait for it,
#                              print RDMT_SCHEMA_REGISTRY_URL=http://127.0.0.1:<port>/apis/ccompat/v7 on stdout
#   registry.sh stop [DIR]     stop the registry started in DIR
#   registry.sh status [DIR]   exit 0 and print the URL line if the registry in DIR is running
#
# stdout carries only the RDMT_SCHEMA_REGISTRY_URL=... line; everything else goes to stderr. The registry
# keeps its schemas in memory: a restart starts empty. See docs/streaming.md (Schema Registry).
#
# Environment:
#   RDMT_REGISTRY_CACHE          jar cache (default $HOME/.cache/rdmt/apicurio-registry-<version>)
#   RDMT_REGISTRY_DIR            default DIR (default ${TMPDIR:-/tmp}/rdmt-registry)
#   RDMT_REGISTRY_PORT           HTTP port (default: a free port)
#   RDMT_REGISTRY_START_TIMEOUT  seconds to wait for the registry (default 90)
#   RDMT_REGISTRY_HEAP_OPTS      JVM heap options (default "-Xms64m -Xmx384m")
#   JAVA_HOME / MVN              Java installation and Maven command to use
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VERSION="2.4.2.Final"  # io.apicurio:apicurio-registry-app, see pom.xml
CACHE="${RDMT_REGISTRY_CACHE:-${HOME}/.cache/rdmt/apicurio-registry-${VERSION}}"
JAR="${CACHE}/apicurio-registry-${VERSION}-runner.jar"
STAMP="${CACHE}/.fetched"
JAVA="${JAVA_HOME:+${JAVA_HOME}/bin/}java"
MVN="${MVN:-mvn}"
TIMEOUT="${RDMT_REGISTRY_START_TIMEOUT:-90}"
HEAP_OPTS="${RDMT_REGISTRY_HEAP_OPTS:--Xms64m -Xmx384m}"
API="/apis/ccompat/v7"

NAME=registry
# shellcheck source=../lib/daemon.sh
source "${HERE}/../lib/daemon.sh"  # log, die, locked_fetch, pid_alive, stop_daemon, main_command

# The stamp holds the version and a digest of the build files, so a changed pom.xml rebuilds the jar.
recipe() { cat "${HERE}/pom.xml" "${HERE}/src/main/resources/application.properties" \
    "${HERE}/src/main/java/rdmt/registry/DynamicConfigProperties.java" | sha256sum | cut -c1-16; }
fetched() { [[ -f "$STAMP" && -f "$JAR" ]] && [[ "$(cat "$STAMP")" == "${VERSION} $(recipe)" ]]; }

build_jar() {
    log "building Apicurio Registry ${VERSION} into ${CACHE} (first time: a few minutes, ~120 MB of jars)"
    local build="${CACHE}/build.$$"
    rm -rf "$build"
    # -DskipUiBuild: Apicurio's POM otherwise asks for its web console as a separate artifact.
    "$MVN" -q -B -Dstyle.color=never -f "${HERE}/pom.xml" -Drdmt.build.dir="$build" -DskipUiBuild=true \
        package >"${CACHE}/mvn.log" 2>&1 \
        || { cat "${CACHE}/mvn.log" >&2; rm -rf "$build"; die "mvn failed to build the registry"; }
    [[ -f "${build}/rdmt-schema-registry-0-runner.jar" ]] || { rm -rf "$build"; die "no runner jar in ${build}"; }
    mv "${build}/rdmt-schema-registry-0-runner.jar" "$JAR"
    rm -rf "$build"
    echo "${VERSION} $(recipe)" >"$STAMP"
    log "cached $(du -h "$JAR" | cut -f1) ${JAR}"
}

fetch() { locked_fetch build_jar; }

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# 200 from the registry's readiness check and from the Confluent-compatible API.
ready() {
    python3 - "$1" "$API" <<'EOF'
import sys, urllib.request
port, api = sys.argv[1], sys.argv[2]
try:
    for path in ("/health/ready", f"{api}/subjects"):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            if response.status != 200:
                sys.exit(1)
except Exception:
    sys.exit(1)
EOF
}

start() {
    local dir="$1"
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    if pid_alive "$dir"; then
        log "registry already running in ${dir} (pid $(cat "${dir}/registry.pid"))"
        cat "${dir}/url"
        return 0
    fi
    fetch

    local port="${RDMT_REGISTRY_PORT:-$(free_port)}"
    # stdin/stdout/stderr are redirected so callers capturing our output (subprocess.run) don't wait
    # for the registry to exit; nohup keeps it alive when a CI step's shell ends.
    # shellcheck disable=SC2086  # HEAP_OPTS is a list of options
    nohup "$JAVA" $HEAP_OPTS -Djava.awt.headless=true \
        -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$port" \
        -jar "$JAR" </dev/null >"${dir}/registry.log" 2>&1 &
    local pid=$!
    echo "$pid" >"${dir}/registry.pid"
    echo "RDMT_SCHEMA_REGISTRY_URL=http://127.0.0.1:${port}${API}" >"${dir}/url"

    local deadline=$((SECONDS + TIMEOUT))
    until ready "$port"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 40 "${dir}/registry.log" >&2 || true
            rm -f "${dir}/registry.pid"
            die "registry exited during startup (see ${dir}/registry.log)"
        fi
        if ((SECONDS >= deadline)); then
            tail -n 40 "${dir}/registry.log" >&2 || true
            stop "$dir" || true
            die "registry not ready on 127.0.0.1:${port} after ${TIMEOUT}s (see ${dir}/registry.log)"
        fi
        sleep 0.3
    done
    log "registry pid ${pid} ready on 127.0.0.1:${port} (dir ${dir})"
    cat "${dir}/url"
}

stop() { stop_daemon "$1" 20; }

dir="${2:-${RDMT_REGISTRY_DIR:-${TMPDIR:-/tmp}/rdmt-registry}}"
main_command "${1:-}" "$dir" url

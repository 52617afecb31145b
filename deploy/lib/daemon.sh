# Shared by deploy/kafka/broker.sh and deploy/registry/registry.sh: a background Java process kept in a
# directory with its pid file. Source it after setting NAME (used in log lines).
# shellcheck shell=bash

log() { printf '%s.sh: %s\n' "$NAME" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# locked_fetch BUILD: unless `fetched` (the caller's) says the cache is complete, run BUILD (the caller's Maven
# step) once, serialised between concurrent callers on the same $CACHE (parallel CI jobs, pytest-xdist workers).
locked_fetch() {
    fetched && return 0
    mkdir -p "$CACHE"
    if command -v flock >/dev/null; then
        exec 9>"${CACHE}/.lock"
        flock 9
        if fetched; then exec 9>&-; return 0; fi
    fi
    command -v "$MVN" >/dev/null || die "Maven ('$MVN') not found; ${NAME}.sh resolves its jars from Maven Central"
    "$1"
    exec 9>&-  # release the lock; the daemon must not inherit it
}

# pid_alive DIR: the process of DIR/$NAME.pid is running.
pid_alive() { [[ -f "$1/${NAME}.pid" ]] && kill -0 "$(cat "$1/${NAME}.pid")" 2>/dev/null; }

# stop_daemon DIR SECONDS: SIGTERM the process of DIR/$NAME.pid, SIGKILL it after SECONDS, remove the pid file.
stop_daemon() {
    local dir="$1" seconds="$2"
    [[ -f "${dir}/${NAME}.pid" ]] || { log "no ${NAME}.pid in ${dir}"; return 0; }
    local pid
    pid="$(cat "${dir}/${NAME}.pid")"
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        local i
        for ((i = 0; i < seconds * 10; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "${NAME} pid ${pid} still running after ${seconds}s; killing"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        log "${NAME} pid ${pid} stopped"
    fi
    rm -f "${dir}/${NAME}.pid"
}

# main_command CMD DIR ADDRESS_FILE: the fetch|start|stop|status dispatch of both scripts.
main_command() {
    local cmd="$1" dir="$2" address_file="$3"
    case "$cmd" in
        fetch) fetch ;;
        start) start "$dir" ;;
        stop) stop "$dir" ;;
        status)
            pid_alive "$dir" || { log "no ${NAME} running in ${dir}"; return 1; }
            cat "${dir}/${address_file}"
            ;;
        *)
            echo "usage: $0 {fetch|start [DIR]|stop [DIR]|status [DIR]}" >&2
            exit 2
            ;;
    esac
}

# shellcheck shell=bash
# Shared by the peer comparison scripts: start and stop PostgreSQL 15 on loopback as
# shared/PEERS.md describes (initdb into a temp dir as the postgres user, our own pid,
# stop with pg_ctl), and read the server's CPU time.
# Sourced after the caller sets: tmp (a directory this run owns and removes).
# Optional before sourcing: pg_bin (default /usr/lib/postgresql/15/bin), pg_port (default: a
# free port), pg_ready_deadline_s (default 60).

pg_bin="${pg_bin:-/usr/lib/postgresql/15/bin}"
pg_port="${pg_port:-}"
pg_ready_deadline_s="${pg_ready_deadline_s:-60}"
pg_pid=""
# shellcheck disable=SC2154 # tmp is set by the sourcing script
pg_data="$tmp/pg/data"
pg_sock="$tmp/pg/sock"
pg_log="$tmp/pg/postgres.log"
# shellcheck disable=SC2034 # used by the sourcing script
clk_tck="$(getconf CLK_TCK)"

# Installs PostgreSQL from Debian when its server binaries are missing (needs root).
ensure_postgres() {
    if [[ ! -x "$pg_bin/postgres" || ! -x "$pg_bin/pgbench" ]]; then
        echo "== installing postgresql"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    fi
}

# Runs a command as the postgres user (initdb and the server refuse to run as root).
as_postgres() {
    if [[ "$(id -u)" == 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# psql against our server over loopback TCP as the superuser, stopping at the first error.
pg_psql() {
    "$pg_bin/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres "$@"
}

start_postgres() {
    [[ -n "$pg_port" ]] || pg_port="$(free_port)"
    # The postgres user must reach its directories inside our (root-owned, 0700) temp dir.
    chmod 0711 "$tmp"
    mkdir -p "$tmp/pg"
    if [[ "$(id -u)" == 0 ]]; then chown postgres: "$tmp/pg"; fi
    as_postgres mkdir -p "$pg_sock"
    echo "== initdb into $pg_data"
    as_postgres "$pg_bin/initdb" -D "$pg_data" -U postgres --auth=trust --encoding=UTF8 \
        --locale=C >"$tmp/pg/initdb.out" 2>&1 || {
        echo "error: initdb failed; its output:" >&2
        tail -n 30 "$tmp/pg/initdb.out" >&2
        exit 1
    }
    echo "== starting PostgreSQL on 127.0.0.1:$pg_port (fsync=on, synchronous_commit=on)"
    # pg_ctl -w returns once the server accepts connections; pg_isready below double-checks.
    if ! as_postgres "$pg_bin/pg_ctl" -D "$pg_data" -l "$pg_log" -w \
        -t "$pg_ready_deadline_s" -o "-c listen_addresses=127.0.0.1 -p $pg_port \
        -k $pg_sock -c fsync=on -c synchronous_commit=on -c max_connections=100" \
        start >"$tmp/pg/pg_ctl.out" 2>&1; then
        echo "error: PostgreSQL did not start; its log:" >&2
        tail -n 30 "$pg_log" "$tmp/pg/pg_ctl.out" >&2
        pg_pid="$(head -n 1 "$pg_data/postmaster.pid" 2>/dev/null || true)"
        exit 1
    fi
    pg_pid="$(head -n 1 "$pg_data/postmaster.pid")"
    local started=$SECONDS
    until "$pg_bin/pg_isready" -q -U postgres -h 127.0.0.1 -p "$pg_port"; do
        if ((SECONDS - started > pg_ready_deadline_s)); then
            echo "error: PostgreSQL not ready after ${pg_ready_deadline_s}s" >&2
            exit 1
        fi
        sleep 0.2
    done
    echo "   ready (postmaster pid $pg_pid)"
}

stop_postgres() {
    if [[ -n "$pg_pid" ]] && kill -0 "$pg_pid" 2>/dev/null; then
        echo "== stopping PostgreSQL (pid $pg_pid)"
        as_postgres "$pg_bin/pg_ctl" -D "$pg_data" -m fast -w -t 60 stop >/dev/null 2>&1 \
            || as_postgres "$pg_bin/pg_ctl" -D "$pg_data" -m immediate -w -t 30 stop \
                >/dev/null 2>&1 || true
        if kill -0 "$pg_pid" 2>/dev/null; then
            # Still there: end its backends, then the postmaster itself, by their own pids.
            local child
            for child in $(ps -o pid= --ppid "$pg_pid" 2>/dev/null || true); do
                kill -9 "$child" 2>/dev/null || true
            done
            kill -9 "$pg_pid" 2>/dev/null || true
        fi
    fi
    pg_pid=""
}

# Sum of utime+stime+cutime+cstime, in clock ticks, over fields of /proc/PID/stat.
proc_ticks() {
    local stat rest
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || { echo 0; return; }
    rest="${stat##*) }"
    local -a f
    read -r -a f <<<"$rest"
    # f[0] is field 3 (state): utime=f[11] stime=f[12] cutime=f[13] cstime=f[14].
    echo $((f[11] + f[12] + f[13] + f[14]))
}

# Server CPU so far, in clock ticks: the postmaster (with the children it has reaped, i.e. the
# backends of closed connections) plus every live child process.
postgres_cpu_ticks() {
    local total child
    total="$(proc_ticks "$pg_pid")"
    for child in $(ps -o pid= --ppid "$pg_pid" 2>/dev/null || true); do
        total=$((total + $(proc_ticks "$child")))
    done
    echo "$total"
}

# Waits (up to 10 s) until the postmaster has no more children than its background processes,
# so the backends of a finished run have exited and their CPU time is in the postmaster's.
postgres_settle() {
    local want="$1" started=$SECONDS
    while (($(ps -o pid= --ppid "$pg_pid" 2>/dev/null | wc -l) > want)); do
        ((SECONDS - started < 10)) || break
        sleep 0.1
    done
}

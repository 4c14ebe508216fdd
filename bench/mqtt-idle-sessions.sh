#!/usr/bin/env bash
# Many idle MQTT clients with persistent sessions on one Wharf server: what a session costs
# (server RSS and disk per session, CPU while idle), how fast sessions are made, and whether
# every one of them survives a restart, after SIGTERM and after kill -9.
#
#   bench/mqtt-idle-sessions.sh [--clients N] [--sources K] [--concurrency C] [--hold-s S]
#                               [--keep-alive-s A] [--timeout-s T]
#
# N (10,000) MQTT 3.1.1 clients `idle-0`.. with clean session 0, from K (4) loopback source
# addresses, C (100; Wharf's listen backlog is 128, and connects past it wait a 1 s SYN
# retransmit) setting up at once, each subscribed to `idle/{n}/#` at QoS 1 (wharf-peerbench
# mqtt idle: a raw client, no client library). Five steps on one data directory:
#   1. fresh server; every client connects and subscribes; all hold S (60) seconds idle
#      (server RSS per session, CPU while idle); disk used by the data directory per session;
#      then SIGTERM with the clients still connected (time until the server exits).
#   2. restart: time until /healthz answers 200 and until the MQTT port accepts; RSS with the
#      N sessions stored and none connected.
#   3. every client reconnects (session present must be 1 for all: no SUBSCRIBE is sent), holds
#      briefly; then kill -9 with the clients connected.
#   4. restart after kill -9: the same times.
#   5. every client reconnects again (session present for all), then disconnects.
# and a sixth on a new data directory: 6. the same N clients with clean sessions (no stored
# session, no queue), to tell what the connection costs from what the session costs.
# One process may hold 20,000 open files on this machine (ulimit -Hn), the server and the
# client each: keep N under ~18,000. Every wait has a deadline (T, 900 s, for a client run);
# the server's log goes to $tmp/server-*.log and its warnings are shown. Prints a table and a
# last JSON line. Environment: KEEP_TMP=1 keeps the data directory and logs.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# A server that does not answer by then has failed to start (recovery of N sessions included).
ready_deadline_s=300
# A server that has not exited this long after SIGTERM is reported and killed.
stop_deadline_s=120

clients=10000
sources=4
concurrency=100
hold_s=60
keep_alive_s=300
timeout_s=900
while (($#)); do
    case "$1" in
        -h | --help)
            sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        --clients) clients="$2"; shift 2 ;;
        --sources) sources="$2"; shift 2 ;;
        --concurrency) concurrency="$2"; shift 2 ;;
        --hold-s) hold_s="$2"; shift 2 ;;
        --keep-alive-s) keep_alive_s="$2"; shift 2 ;;
        --timeout-s) timeout_s="$2"; shift 2 ;;
        *) echo "error: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

echo "== building (release)"
(cd "$root" && cargo build --release -q -p wharf-cli -p wharf-peerbench)
wharf="$root/target/release/wharf"
peerbench="$root/target/release/wharf-peerbench"

tmp="$(mktemp -d /tmp/wharf-mqtt-idle.XXXXXX)"
data="$tmp/data"
server_pid=""
client_pid=""
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
http_port="$(free_port)"
mqtt_port="$(free_port)"

now_ms() { echo $(($(date +%s%N) / 1000000)); }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
healthy() { [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$http_port/healthz")" == 200 ]]; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
alive() { [[ -n "$1" ]] && kill -0 "$1" 2>/dev/null; }

cleanup() {
    if alive "$client_pid"; then kill "$client_pid" 2>/dev/null || true; fi
    if alive "$server_pid"; then
        kill "$server_pid" 2>/dev/null || true
        for _ in $(seq 1 100); do alive "$server_pid" || break; sleep 0.1; done
        if alive "$server_pid"; then kill -9 "$server_pid" 2>/dev/null || true; fi
    fi
    if [[ "${KEEP_TMP:-0}" == 1 ]]; then echo "data and logs kept in $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Facts of the run, one `key value` a line, for the table at the end.
facts="$tmp/facts"
: >"$facts"
fact() { echo "$1 $2" >>"$facts"; }

# Starts the server on $data and waits until /healthz answers 200 and the MQTT port accepts;
# records both times (ms from the start) under the step's name.
start_server() {
    local step="$1" log="$tmp/server-$1.log"
    local started
    started="$(now_ms)"
    env -u WHARF_CONFIG -u WHARF_ADMIN_TOKEN -u WHARF_AMQPS_ADDR -u WHARF_MQTTS_ADDR \
        -u WHARF_USER -u WHARF_PASSWORD -u WHARF_TLS_CERT -u WHARF_TLS_KEY -u WHARF_TLS_CLIENT_CA \
        "$wharf" serve --data-dir "$data" --http-addr "127.0.0.1:$http_port" \
        --mqtt-addr "127.0.0.1:$mqtt_port" --amqp-addr off >"$log" 2>&1 &
    server_pid=$!
    local healthy_ms="" mqtt_ms=""
    while [[ -z "$healthy_ms" || -z "$mqtt_ms" ]]; do
        if [[ -z "$healthy_ms" ]] && healthy; then healthy_ms=$(($(now_ms) - started)); fi
        if [[ -z "$mqtt_ms" ]] && port_open "$mqtt_port"; then mqtt_ms=$(($(now_ms) - started)); fi
        if (($(now_ms) - started > ready_deadline_s * 1000)) || ! alive "$server_pid"; then
            echo "error: the server did not come up (healthz ${healthy_ms:-no}, MQTT ${mqtt_ms:-no}); its log:" >&2
            tail -n 40 "$log" >&2
            exit 1
        fi
        sleep 0.05
    done
    fact "${step}_healthz_ms" "$healthy_ms"
    fact "${step}_mqtt_ms" "$mqtt_ms"
    echo "   server pid $server_pid: /healthz 200 after ${healthy_ms} ms, MQTT accepting after ${mqtt_ms} ms"
}

# Stops the server with SIGNAL and records how long it took to exit.
stop_server() {
    local step="$1" signal="$2" started
    started="$(now_ms)"
    kill "-$signal" "$server_pid"
    # stderr is silenced for bash's own notice of a job killed by a signal.
    {
        while alive "$server_pid"; do
            if (($(now_ms) - started > stop_deadline_s * 1000)); then
                echo "   the server had not exited ${stop_deadline_s} s after SIG$signal; killing it"
                fact "${step}_stop_timed_out" 1
                kill -9 "$server_pid" || true
            fi
            sleep 0.02
        done
        wait "$server_pid"
    } 2>/dev/null || true
    fact "${step}_stop_ms" $(($(now_ms) - started))
    echo "   server exited $(($(now_ms) - started)) ms after SIG$signal"
    server_pid=""
}

# Runs the idle clients in the background; returns once they hold (the `held:` line), or
# fails when they end or stall first. Their output goes to $tmp/clients-STEP.out.
clients_start() {
    local step="$1" hold="$2" linger="$3" out="$tmp/clients-$1.out"
    shift 3
    timeout --kill-after=10 "$((timeout_s + hold + linger + 60))" "$peerbench" mqtt idle \
        --clients "$clients" --sources "$sources" --concurrency "$concurrency" \
        --keep-alive-s "$keep_alive_s" --port "$mqtt_port" --hold-s "$hold" \
        --linger-s "$linger" --connect-timeout-s "$timeout_s" --server-pid "$server_pid" "$@" \
        >"$out" 2>&1 &
    client_pid=$!
    local started=$SECONDS
    until grep -q '^held:' "$out"; do
        if ! alive "$client_pid"; then
            echo "error: the clients ended before holding; their output:" >&2
            cat "$out" >&2
            exit 1
        fi
        if ((SECONDS - started > timeout_s + hold + 60)); then
            echo "error: the clients did not hold within $((timeout_s + hold + 60)) s" >&2
            exit 1
        fi
        sleep 0.2
    done
}

# Waits for the clients to end, shows their report and keeps its JSON line.
clients_finish() {
    local step="$1" out="$tmp/clients-$1.out"
    wait "$client_pid" || { echo "error: the clients failed; their output:" >&2; cat "$out" >&2; exit 1; }
    client_pid=""
    sed 's/^/   /' "$out"
    tail -n 1 "$out" >"$tmp/clients-$step.json"
    local present
    present="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["session_present"])' "$tmp/clients-$step.json")"
    fact "${step}_session_present" "$present"
}

# Others may share the machine: its load before and after is shown beside the figures.
fact load_start "$(cut -d' ' -f1 /proc/loadavg)"

echo "== 1. fresh server, $clients persistent sessions made, held ${hold_s} s, then SIGTERM"
start_server start
fact du_empty_bytes "$(du -sb "$data" | cut -f1)"
clients_start first "$hold_s" 120
fact du_sessions_bytes "$(du -sb "$data" | cut -f1)"
fact data_files "$(find "$data" -type f | wc -l)"
fact server_fds "$(ls "/proc/$server_pid/fd" | wc -l)"
stop_server first TERM
clients_finish first

echo "== 2. restart after SIGTERM"
start_server after_sigterm
fact after_sigterm_rss_kib "$(rss_kib "$server_pid")"
fact after_sigterm_fds "$(ls "/proc/$server_pid/fd" | wc -l)"

echo "== 3. every client back (session present expected for all), then kill -9"
clients_start again 10 120
stop_server again KILL
clients_finish again

echo "== 4. restart after kill -9"
start_server after_kill
fact after_kill_rss_kib "$(rss_kib "$server_pid")"

echo "== 5. every client back again, then DISCONNECT"
clients_start last 10 0
clients_finish last
fact du_end_bytes "$(du -sb "$data" | cut -f1)"
stop_server last TERM

echo "== 6. new data directory: the same clients with clean sessions, held 10 s"
data="$tmp/data-clean"
start_server clean
clients_start clean 10 0 --clean
clients_finish clean
fact load_end "$(cut -d' ' -f1 /proc/loadavg)"

# Every start warns that the server has no users (as this run wants): not counted.
server_problems() {
    cat "$tmp"/server-*.log | grep -E '\b(WARN|ERROR)\b' | grep -v 'no users or tokens' || true
}
warnings="$(server_problems | wc -l)"
fact server_warnings "$warnings"
if ((warnings > 0)); then
    echo "== server warnings and errors (first 20 of $warnings)"
    server_problems | head -n 20
fi

echo "== summary"
python3 - "$tmp" "$clients" <<'PY'
import json, sys

tmp, clients = sys.argv[1], int(sys.argv[2])
facts = dict(line.split() for line in open(f"{tmp}/facts") if line.strip())
runs = {step: json.load(open(f"{tmp}/clients-{step}.json")) for step in ("first", "again", "last", "clean")}
num = lambda key: float(facts[key]) if key in facts else None
first = runs["first"]
mib = lambda kib: None if kib is None else kib / 1024
per = lambda value, n: None if value is None or not n else value / n
rows = [
    ("clients / source addresses", f"{clients} / {first['sources']}"),
    ("sessions made (connected, subscribed)", first["connected"]),
    ("refused / failed", f"{first['refused']} / {first['failed']}"),
    ("sessions/s made (connect + SUBSCRIBE)", first["sessions_per_s"]),
    ("set-up p50 / p99 ms", f"{first['setup_p50_ms']:.1f} / {first['setup_p99_ms']:.1f}"),
    ("server CPU µs per session made", first["server_cpu_us_per_session"]),
    ("server RSS before MiB", mib(first["rss_before_kib"])),
    ("server RSS, all connected and idle MiB", mib(first["rss_idle_kib"])),
    ("server RSS per connected session KiB", first["rss_per_session_kib"]),
    ("server CPU % while idle", first["server_idle_cpu_percent"]),
    ("data dir per session bytes", per(num("du_sessions_bytes") - num("du_empty_bytes"), first["connected"])),
    ("data dir files / server fds, all connected", f"{facts.get('data_files')} / {facts.get('server_fds')}"),
    ("SIGTERM with all connected: exit ms", num("first_stop_ms")),
    ("restart after SIGTERM: /healthz ms", num("after_sigterm_healthz_ms")),
    ("restart after SIGTERM: MQTT accepts ms", num("after_sigterm_mqtt_ms")),
    ("RSS after restart, sessions offline MiB", mib(num("after_sigterm_rss_kib"))),
    ("RSS per offline session KiB", per(num("after_sigterm_rss_kib") - first["rss_before_kib"], clients) if first["rss_before_kib"] else None),
    ("reconnect: session present", f"{runs['again']['session_present']} of {clients}"),
    ("reconnect: sessions/s", runs["again"]["sessions_per_s"]),
    ("reconnect: refused / failed", f"{runs['again']['refused']} / {runs['again']['failed']}"),
    ("kill -9 with all connected: exit ms", num("again_stop_ms")),
    ("restart after kill -9: /healthz ms", num("after_kill_healthz_ms")),
    ("restart after kill -9: MQTT accepts ms", num("after_kill_mqtt_ms")),
    ("reconnect after kill -9: session present", f"{runs['last']['session_present']} of {clients}"),
    ("reconnect after kill -9: sessions/s", runs["last"]["sessions_per_s"]),
    ("reconnect after kill -9: refused / failed", f"{runs['last']['refused']} / {runs['last']['failed']}"),
    ("clean sessions: sessions/s", runs["clean"]["sessions_per_s"]),
    ("clean sessions: server RSS per connection KiB", runs["clean"]["rss_per_session_kib"]),
    ("server log warnings/errors", facts.get("server_warnings")),
    ("machine load (1 min) at start / end", f"{facts.get('load_start')} / {facts.get('load_end')}"),
]
show = lambda v: "-" if v is None else f"{v:,.1f}" if isinstance(v, float) else str(v)
for label, value in rows:
    print(f"  {label:44} {show(value):>16}")
restored = all(runs[s]["session_present"] == clients for s in ("again", "last"))
summary = {"clients": clients, "sources": first["sources"], "restored_all": restored,
           **{f"first_{k}": v for k, v in first.items()},
           **{f"again_{k}": v for k, v in runs["again"].items() if k in ("session_present", "sessions_per_s", "refused", "failed", "rss_idle_kib")},
           **{f"last_{k}": v for k, v in runs["last"].items() if k in ("session_present", "sessions_per_s", "refused", "failed", "rss_idle_kib")},
           **{f"clean_{k}": v for k, v in runs["clean"].items() if k in ("connected", "sessions_per_s", "refused", "failed", "rss_per_session_kib")},
           **{k: float(v) for k, v in facts.items()}}
print(json.dumps(summary))
if not restored:
    print("FAILED: not every session was present after a restart", file=sys.stderr)
    sys.exit(1)
PY

#!/usr/bin/env bash
# Wharf's AMQP door against RabbitMQ, the same Rust client (lapin, in wharf-peerbench) and the
# same settings against both, in one run on one machine.
#
#   bench/amqp-vs-rabbitmq.sh [--messages N] [--producers P] [--consumers C] [--batch B]
#                             [--body-bytes BYTES] [--window W] [--rate MSG_PER_S]
#
# Four measurements: a durable queue with persistent messages (delivery_mode 2) and a transient
# queue (delivery_mode 1), each against `wharf serve` (started from a temporary data directory
# with the AMQP door on a free loopback port, fsync always) and against RabbitMQ (started on
# loopback from temporary directories, shared/PEERS.md). Producers keep W unconfirmed
# publishes in flight (publisher confirms, default 256); consumers ack manually with prefetch
# 2 x B (default 256). Prints each run and a table with the ratios Wharf / RabbitMQ. Installs
# rabbitmq-server from Debian when it is missing (needs root). Environment: RABBITMQ_PORT
# (default 5672), KEEP_TMP=1 keeps the logs.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
rabbit_bin=/usr/lib/rabbitmq/bin
rabbit_port="${RABBITMQ_PORT:-5672}"
ready_deadline_s=120

for arg in "$@"; do
    case "$arg" in
        -h | --help)
            sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
    esac
done
# The defaults of the issue: 256 publishes in flight, prefetch 256.
args=(--batch 128 --window 256 "$@")

if [[ ! -x "$rabbit_bin/rabbitmq-server" ]]; then
    echo "== installing rabbitmq-server"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null
fi

echo "== building (release)"
(cd "$root" && cargo build --release -q -p wharf-cli -p wharf-peerbench)
wharf="$root/target/release/wharf"
peerbench="$root/target/release/wharf-peerbench"

tmp="$(mktemp -d /tmp/wharf-amqp-vs-rabbitmq.XXXXXX)"
source "$root/bench/peers.sh"
wharf_pid=""

stop_wharf() {
    if [[ -n "$wharf_pid" ]] && kill -0 "$wharf_pid" 2>/dev/null; then
        kill "$wharf_pid"
        wait "$wharf_pid" 2>/dev/null || true
    fi
    wharf_pid=""
}

cleanup() {
    stop_wharf
    stop_rabbit
    if [[ "${KEEP_TMP:-0}" == 1 ]]; then echo "logs kept in $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_wharf() {
    local amqp_port http_port
    amqp_port="$(free_port)"
    http_port="$(free_port)"
    rm -rf "$tmp/wharf-data"
    env -u WHARF_CONFIG -u WHARF_ADMIN_TOKEN -u WHARF_AMQPS_ADDR "$wharf" serve \
        --data-dir "$tmp/wharf-data" --http-addr "127.0.0.1:$http_port" \
        --amqp-addr "127.0.0.1:$amqp_port" >"$tmp/wharf.log" 2>&1 &
    wharf_pid=$!
    for _ in $(seq 1 300); do
        port_open "$amqp_port" && break
        sleep 0.1
    done
    wharf_url="amqp://guest:guest@127.0.0.1:$amqp_port/%2f"
}

echo "== Wharf, durable"
start_wharf
"$peerbench" rabbitmq --label wharf --url "$wharf_url" --server-pid "$wharf_pid" "${args[@]}" \
    | tee "$tmp/wharf-durable.out"
stop_wharf
echo "== Wharf, transient"
start_wharf
"$peerbench" rabbitmq --label wharf --transient --url "$wharf_url" --server-pid "$wharf_pid" \
    "${args[@]}" | tee "$tmp/wharf-transient.out"
stop_wharf

start_rabbit
rabbit_url="amqp://guest:guest@127.0.0.1:$rabbit_port/%2f"
echo "== RabbitMQ, durable"
"$peerbench" rabbitmq --url "$rabbit_url" --server-pid "$rabbit_pid" "${args[@]}" \
    | tee "$tmp/rabbitmq-durable.out"
echo "== RabbitMQ, transient"
"$peerbench" rabbitmq --transient --url "$rabbit_url" --server-pid "$rabbit_pid" "${args[@]}" \
    | tee "$tmp/rabbitmq-transient.out"
stop_rabbit

echo "== side by side"
python3 - "$tmp" <<'PY'
import json, sys

tmp = sys.argv[1]
last = lambda name: json.loads(open(f"{tmp}/{name}.out").read().strip().splitlines()[-1])
rows = [
    ("sends_per_s", "sends/s (confirmed)", "higher"),
    ("end_to_end_per_s", "end-to-end msg/s", "higher"),
    ("p50_ms", "latency p50 ms", "lower"),
    ("p99_ms", "latency p99 ms", "lower"),
    ("rss_mib", "server peak RSS MiB", "lower"),
    ("server_cpu_s", "server CPU s", "lower"),
    ("bench_cpu_s", "load generator CPU s", "lower"),
]
summary = {}
for kind in ("durable", "transient"):
    wharf, rabbit = last(f"wharf-{kind}"), last(f"rabbitmq-{kind}")
    print(f"{kind:24} {'wharf':>12} {'rabbitmq':>12} {'wharf/rabbitmq':>15}")
    for key, label, better in rows:
        w, r = wharf.get("wharf_" + key), rabbit.get("rabbitmq_" + key)
        ratio = w / r if isinstance(w, (int, float)) and isinstance(r, (int, float)) and r else None
        show = lambda v: "-" if v is None else f"{v:,.1f}" if isinstance(v, float) and v < 1000 else f"{v:,.0f}"
        print(f"  {label:22} {show(w):>12} {show(r):>12} {'-' if ratio is None else f'{ratio:.2f}x':>15}  ({better} is better)")
        summary[f"{kind}_wharf_{key}"], summary[f"{kind}_rabbitmq_{key}"] = w, r
        summary[f"{kind}_ratio_{key}"] = None if ratio is None else round(ratio, 3)
    summary["messages"] = wharf.get("messages")
print(json.dumps(summary))
PY

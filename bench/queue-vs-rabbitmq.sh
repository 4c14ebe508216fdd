#!/usr/bin/env bash
# Wharf's durable queue against RabbitMQ's, same workload, same machine, one run.
#
#   bench/queue-vs-rabbitmq.sh [--messages N] [--producers P] [--consumers C] [--batch B]
#                              [--body-bytes BYTES] [--rate MSG_PER_S]
#
# Runs `wharf bench queue` (which starts its own `wharf serve`), then starts RabbitMQ on
# loopback from temporary directories (shared/PEERS.md), runs `wharf-peerbench rabbitmq` with the
# same arguments (durable queue, persistent messages, publisher confirms with a window in
# flight, manual acks with prefetch), stops RabbitMQ by its own pid, and prints both figures side
# by side with the ratio Wharf / RabbitMQ. Only a comparison inside one run means anything: the
# machine's speed swings with load. Installs rabbitmq-server from Debian when it is missing
# (needs root). Environment: RABBITMQ_PORT (default 5672), KEEP_TMP=1 keeps the logs.
#
# Flat out (no --rate) the producers outrun the consumers and latency measures the backlog;
# for latencies that compare, add --rate below what both sustain (e.g. --rate 5000).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
rabbit_bin=/usr/lib/rabbitmq/bin
rabbit_port="${RABBITMQ_PORT:-5672}"
# RabbitMQ boots in 5-10 s on this kind of machine; a loaded one can take several times that.
ready_deadline_s=120

for arg in "$@"; do
    case "$arg" in
        -h | --help)
            sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
    esac
done

if [[ ! -x "$rabbit_bin/rabbitmq-server" ]]; then
    echo "== installing rabbitmq-server"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null
fi

echo "== building (release)"
(cd "$root" && cargo build --release -q -p wharf-cli -p wharf-peerbench)
wharf="$root/target/release/wharf"
peerbench="$root/target/release/wharf-peerbench"

tmp="$(mktemp -d /tmp/wharf-vs-rabbitmq.XXXXXX)"
source "$root/bench/peers.sh"

cleanup() {
    stop_rabbit
    if [[ "${KEEP_TMP:-0}" == 1 ]]; then echo "logs kept in $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

echo "== Wharf"
env -u WHARF_SERVER "$wharf" bench queue "$@" | tee "$tmp/wharf.out"

start_rabbit
echo "== RabbitMQ"
"$peerbench" rabbitmq --url "amqp://guest:guest@127.0.0.1:$rabbit_port/%2f" \
    --server-pid "$rabbit_pid" "$@" | tee "$tmp/rabbitmq.out"
stop_rabbit

echo "== side by side"
python3 - "$tmp/wharf.out" "$tmp/rabbitmq.out" <<'PY'
import json, sys

wharf = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
rabbit = json.loads(open(sys.argv[2]).read().strip().splitlines()[-1])
rows = [
    ("sends_per_s", "sends/s (confirmed)", "higher"),
    ("end_to_end_per_s", "end-to-end msg/s", "higher"),
    ("p50_ms", "latency p50 ms", "lower"),
    ("p99_ms", "latency p99 ms", "lower"),
    ("rss_mib", "server peak RSS MiB", "lower"),
    ("server_cpu_s", "server CPU s", "lower"),
    ("bench_cpu_s", "load generator CPU s", "lower"),
    ("seconds", "wall s", "lower"),
]
summary = {"messages": wharf.get("messages"), "body_bytes": wharf.get("body_bytes"),
           "producers": wharf.get("producers"), "consumers": wharf.get("consumers")}
print(f"{'':24} {'wharf':>12} {'rabbitmq':>12} {'wharf/rabbitmq':>15}")
for key, label, better in rows:
    w, r = wharf.get("wharf_" + key), rabbit.get("rabbitmq_" + key)
    ratio = w / r if isinstance(w, (int, float)) and isinstance(r, (int, float)) and r else None
    show = lambda v: "-" if v is None else f"{v:,.1f}" if isinstance(v, float) and v < 1000 else f"{v:,.0f}"
    print(f"{label:24} {show(w):>12} {show(r):>12} {'-' if ratio is None else f'{ratio:.2f}x':>15}  ({better} is better)")
    summary["wharf_" + key], summary["rabbitmq_" + key] = w, r
    summary["ratio_" + key] = None if ratio is None else round(ratio, 3)
for name, source in (("wharf", wharf), ("rabbitmq", rabbit)):
    cpu = source.get(name + "_server_cpu_s")
    if cpu is not None and source.get("messages"):
        summary[name + "_server_cpu_us_per_msg"] = round(cpu * 1e6 / source["messages"], 1)
print(json.dumps(summary))
PY

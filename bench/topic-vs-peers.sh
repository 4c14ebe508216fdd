#!/usr/bin/env bash
# Wharf's topics and request-reply against RabbitMQ's exchanges and NATS core request-reply,
# same workloads, same machine, one run.
#
#   bench/topic-vs-peers.sh [--messages N] [--bindings 1,100,100000] [--producers P]
#                           [--batch B] [--fanout-messages N] [--requests N] [--concurrency C]
#                           [--binding-budget-s S]
#
# Runs `wharf bench topic` and `wharf bench request` (each starts its own `wharf serve`), then
# starts RabbitMQ on loopback from temporary directories (shared/PEERS.md) and runs
# `wharf-peerbench rabbitmq-topic` (topic exchange, the same bindings to durable queues,
# persistent messages, publisher confirms with a window) and `rabbitmq-fanout` (fanout exchange
# to 100 durable queues, one confirmed publish at a time per producer), stops it, then starts
# nats-server and runs `wharf-peerbench nats-request` (core request-reply: in memory, no disk),
# stops it, and prints the figures side by side with the ratio Wharf / peer. RabbitMQ makes
# bindings slowly; past --binding-budget-s (default 120) it measures with those it made, and
# says so. Installs rabbitmq-server and nats-server from Debian when missing (needs root).
# Environment: RABBITMQ_PORT (default 5672), NATS_PORT (default 4222), KEEP_TMP=1 keeps logs.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
rabbit_bin=/usr/lib/rabbitmq/bin
rabbit_port="${RABBITMQ_PORT:-5672}"
nats_port="${NATS_PORT:-4222}"
# RabbitMQ boots in 5-10 s on this kind of machine; a loaded one can take several times that.
ready_deadline_s=120

messages=20000
bindings=1,100,100000
producers=4
batch=100
fanout_messages=2000
requests=10000
concurrency=4
binding_budget_s=120
while (($#)); do
    case "$1" in
        -h | --help)
            sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        --messages) messages="$2"; shift 2 ;;
        --bindings) bindings="$2"; shift 2 ;;
        --producers) producers="$2"; shift 2 ;;
        --batch) batch="$2"; shift 2 ;;
        --fanout-messages) fanout_messages="$2"; shift 2 ;;
        --requests) requests="$2"; shift 2 ;;
        --concurrency) concurrency="$2"; shift 2 ;;
        --binding-budget-s) binding_budget_s="$2"; shift 2 ;;
        *) echo "error: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

missing=()
[[ -x "$rabbit_bin/rabbitmq-server" ]] || missing+=(rabbitmq-server)
command -v nats-server >/dev/null || missing+=(nats-server)
if ((${#missing[@]})); then
    echo "== installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

echo "== building (release)"
(cd "$root" && cargo build --release -q -p wharf-cli -p wharf-peerbench)
wharf="$root/target/release/wharf"
peerbench="$root/target/release/wharf-peerbench"

tmp="$(mktemp -d /tmp/wharf-topic-vs-peers.XXXXXX)"
nats_pid=""

source "$root/bench/peers.sh"

stop_nats() {
    if [[ -n "$nats_pid" ]] && kill -0 "$nats_pid" 2>/dev/null; then
        echo "== stopping nats-server (pid $nats_pid)"
        kill "$nats_pid" 2>/dev/null || true
        wait "$nats_pid" 2>/dev/null || true
    fi
    nats_pid=""
}

cleanup() {
    stop_rabbit
    stop_nats
    if [[ "${KEEP_TMP:-0}" == 1 ]]; then echo "logs kept in $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

start_nats() {
    if port_open "$nats_port"; then
        echo "error: port $nats_port is taken; set NATS_PORT" >&2
        exit 1
    fi
    echo "== starting nats-server on 127.0.0.1:$nats_port"
    nats-server -a 127.0.0.1 -p "$nats_port" >"$tmp/nats.out" 2>&1 &
    nats_pid=$!
    local started=$SECONDS
    until port_open "$nats_port"; do
        if ((SECONDS - started > 30)) || ! kill -0 "$nats_pid" 2>/dev/null; then
            echo "error: nats-server not ready; its output:" >&2
            tail -n 30 "$tmp/nats.out" >&2
            exit 1
        fi
        sleep 0.1
    done
}

topic_args=(--messages "$messages" --bindings "$bindings" --producers "$producers"
    --batch "$batch")
request_args=(--requests "$requests" --concurrency "$concurrency")

echo "== Wharf topic"
env -u WHARF_SERVER "$wharf" bench topic "${topic_args[@]}" \
    --fanout-messages "$fanout_messages" | tee "$tmp/wharf-topic.out"
echo "== Wharf request-reply"
env -u WHARF_SERVER "$wharf" bench request "${request_args[@]}" | tee "$tmp/wharf-request.out"

start_rabbit
amqp_url="amqp://guest:guest@127.0.0.1:$rabbit_port/%2f"
echo "== RabbitMQ topic exchange"
"$peerbench" rabbitmq-topic --url "$amqp_url" --server-pid "$rabbit_pid" "${topic_args[@]}" \
    --binding-budget-s "$binding_budget_s" | tee "$tmp/rabbitmq-topic.out"
echo "== RabbitMQ fanout exchange"
"$peerbench" rabbitmq-fanout --url "$amqp_url" --server-pid "$rabbit_pid" \
    --producers "$producers" --fanout-messages "$fanout_messages" | tee "$tmp/rabbitmq-fanout.out"
stop_rabbit

start_nats
echo "== NATS request-reply"
"$peerbench" nats-request --url "nats://127.0.0.1:$nats_port" --server-pid "$nats_pid" \
    "${request_args[@]}" | tee "$tmp/nats-request.out"
stop_nats

echo "== side by side"
python3 - "$tmp" "$bindings" <<'PY'
import json, sys

tmp, bindings = sys.argv[1], [b for b in sys.argv[2].split(",") if b]
last = lambda name: json.loads(open(f"{tmp}/{name}.out").read().strip().splitlines()[-1])
wharf = {**last("wharf-topic"), **last("wharf-request")}
peers = {**last("rabbitmq-topic"), **last("rabbitmq-fanout"), **last("nats-request")}
rows = []
for count in bindings:
    made = peers.get(f"rabbitmq_topic_{count}_bindings_made")
    note = "" if made is None or str(made) == count else f" (rabbitmq made {made})"
    # Wharf's latency is one 100-message publish call; RabbitMQ's, one message's publish to
    # confirm with a window in flight. Both are what a producer waits for its confirmation.
    for key, label, better in (("msgs_per_s", "msg/s", "higher"), ("p50_ms", "confirm p50 ms", "lower"),
                               ("p99_ms", "confirm p99 ms", "lower"), ("setup_s", "binding setup s", "lower")):
        rows.append((f"topic {count} bindings {label}{note}", f"wharf_topic_{count}_{key}",
                     f"rabbitmq_topic_{count}_{key}", better))
for key, label, better in (("publishes_per_s", "publishes/s", "higher"), ("p50_ms", "p50 ms", "lower"),
                           ("p99_ms", "p99 ms", "lower")):
    rows.append((f"fanout to 100 queues {label}", f"wharf_fanout_{key}", f"rabbitmq_fanout_{key}", better))
for phase, name in (("", "concurrent"), ("_sequential", "sequential")):
    for key, label, better in (("round_trips_per_s", "round trips/s", "higher"),
                               ("p50_ms", "p50 ms", "lower"), ("p99_ms", "p99 ms", "lower")):
        rows.append((f"request {name} {label} (vs NATS)", f"wharf_request{phase}_{key}",
                     f"nats_request{phase}_{key}", better))
# Wharf's topic run holds both scenarios; RabbitMQ's are two runs: add them up.
for kind in ("server", "bench"):
    parts = [peers.get(f"rabbitmq_{run}_{kind}_cpu_s") for run in ("topic", "fanout")]
    peers[f"rabbitmq_topic_fanout_{kind}_cpu_s"] = None if None in parts else round(sum(parts), 3)
for source, peer, label in (("wharf_topic", "rabbitmq_topic_fanout", "topic + fanout"),
                            ("wharf_request", "nats_request", "request (vs NATS)")):
    rows.append((f"{label} server CPU s", f"{source}_server_cpu_s", f"{peer}_server_cpu_s", "lower"))
    rows.append((f"{label} load generator CPU s", f"{source}_bench_cpu_s", f"{peer}_bench_cpu_s", "lower"))

show = lambda v: "-" if v is None else f"{v:,.2f}" if isinstance(v, float) and v < 100 else f"{v:,.0f}"
width = max(len(label) for label, *_ in rows)
print(f"{'':{width}} {'wharf':>12} {'peer':>12} {'wharf/peer':>11}")
summary = {"messages": wharf.get("messages"), "bindings": wharf.get("bindings"),
           "requests": wharf.get("requests"), "concurrency": wharf.get("concurrency")}
for label, wharf_key, peer_key, better in rows:
    w, p = wharf.get(wharf_key), peers.get(peer_key)
    ratio = w / p if isinstance(w, (int, float)) and isinstance(p, (int, float)) and p else None
    print(f"{label:{width}} {show(w):>12} {show(p):>12} {'-' if ratio is None else f'{ratio:.2f}x':>11}  ({better} is better)")
    summary[wharf_key], summary[peer_key] = w, p
    summary["ratio_" + wharf_key.removeprefix("wharf_")] = None if ratio is None else round(ratio, 3)
for count in bindings:
    made = peers.get(f"rabbitmq_topic_{count}_bindings_made")
    summary[f"rabbitmq_topic_{count}_bindings_made"] = made
print(json.dumps(summary))
PY

#!/usr/bin/env bash
# Wharf's MQTT door against Mosquitto 2.0: the same client (rumqttc, in `wharf bench mqtt`), the
# same workloads and settings against both, in one run on one machine.
#
#   bench/mqtt-vs-mosquitto.sh [--only wharf|mosquitto] [--messages N] [--size BYTES]
#                              [--inflight W] [--subscribers S] [--fanout-messages M]
#                              [--fanout-rate MSG_PER_S] [--timeout-s S]
#
# Three workloads, MQTT 3.1.1, clean sessions, TCP_NODELAY on every socket:
#   pubsub QoS 0 and pubsub QoS 1: one subscriber on bench/t, then one publisher sending N
#     (default 100,000) messages of BYTES (1024) flat out, W (100) QoS 1 publishes in flight;
#     msg/s from the first publish to the last delivery, publisher msg/s, latency p50/p99
#     (at QoS 0 flat out, that latency is how deep the buffers fill, not a broker's delay).
#   fanout: S (1,000) subscribers on bench/fan, then M (200) QoS 0 messages paced at R/s (20,
#     so 20,000 deliveries/s, a quarter of Mosquitto's limit here); deliveries/s and publish-to-receipt
#     latency p50/p99 over all deliveries.
#   fanout flat out: the same with no pacing: the most deliveries/s the broker reaches (its
#     latency is then the depth of its queues, not a latency).
# Each workload gets a fresh broker: `wharf serve` from a temporary data directory with the
# MQTT door on a free loopback port (AMQP off), and Mosquitto from a temporary config (written
# below, with why each line). Wharf and Mosquitto alternate workload by workload, so a change
# in the machine's load falls on both. Broker CPU is utime+stime from /proc/PID/stat over the
# measured span (connection set-up excluded). A lost QoS 0 message is counted and shown (MQTT
# allows it); a lost QoS 1 message, or any wait past --timeout-s, fails the run. Prints each run
# and a table with the ratio Wharf / Mosquitto. Installs mosquitto from Debian when missing
# (needs root). Environment: KEEP_TMP=1 keeps configs and logs.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# A broker that does not accept connections by then has failed to start.
ready_deadline_s=30

only=""
messages=100000
size=1024
inflight=100
subscribers=1000
fanout_messages=200
fanout_rate=20
timeout_s=120
while (($#)); do
    case "$1" in
        -h | --help)
            sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        --only) only="$2"; shift 2 ;;
        --messages) messages="$2"; shift 2 ;;
        --size) size="$2"; shift 2 ;;
        --inflight) inflight="$2"; shift 2 ;;
        --subscribers) subscribers="$2"; shift 2 ;;
        --fanout-messages) fanout_messages="$2"; shift 2 ;;
        --fanout-rate) fanout_rate="$2"; shift 2 ;;
        --timeout-s) timeout_s="$2"; shift 2 ;;
        *) echo "error: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
case "$only" in
    "") brokers=(wharf mosquitto) ;;
    wharf | mosquitto) brokers=("$only") ;;
    *) echo "error: --only takes wharf or mosquitto" >&2; exit 2 ;;
esac

if [[ " ${brokers[*]} " == *" mosquitto "* ]] && ! command -v mosquitto >/dev/null; then
    echo "== installing mosquitto"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null
fi

# `wharf bench mqtt` is the load generator for both brokers.
echo "== building (release)"
(cd "$root" && cargo build --release -q -p wharf-cli)
wharf="$root/target/release/wharf"

tmp="$(mktemp -d /tmp/wharf-mqtt-vs-mosquitto.XXXXXX)"
broker_pid=""
broker_port=""

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

stop_broker() {
    if [[ -n "$broker_pid" ]] && kill -0 "$broker_pid" 2>/dev/null; then
        kill "$broker_pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$broker_pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$broker_pid" 2>/dev/null; then kill -9 "$broker_pid" 2>/dev/null || true; fi
        wait "$broker_pid" 2>/dev/null || true
    fi
    broker_pid=""
}

cleanup() {
    stop_broker
    if [[ "${KEEP_TMP:-0}" == 1 ]]; then echo "logs kept in $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Mosquitto's defaults drop messages a benchmark must count and cap its window below the
# publisher's; each line says why it is set.
write_mosquitto_config() {
    cat >"$tmp/mosquitto.conf" <<EOF
listener $broker_port 127.0.0.1
allow_anonymous true
persistence false
# An online subscriber with max_queued_messages (default 1000) messages waiting has further
# QoS 0 and QoS 1 messages dropped; 0 lifts the limit so a flat-out publisher loses nothing
# and end-to-end msg/s counts every message, as it must against Wharf.
max_queued_messages 0
# QoS 1 messages in flight to each subscriber (default 20): the publisher's window.
max_inflight_messages $inflight
# Nagle off, as Wharf and the client have it (default false).
set_tcp_nodelay true
EOF
}

start_broker() {
    local broker="$1" log="$tmp/$1-$2.log"
    broker_port="$(free_port)"
    if [[ "$broker" == mosquitto ]]; then
        write_mosquitto_config
        mosquitto -c "$tmp/mosquitto.conf" >"$log" 2>&1 &
    else
        rm -rf "$tmp/wharf-data"
        env -u WHARF_CONFIG -u WHARF_ADMIN_TOKEN -u WHARF_AMQPS_ADDR -u WHARF_MQTTS_ADDR \
            -u WHARF_USER -u WHARF_PASSWORD -u WHARF_TLS_CERT -u WHARF_TLS_KEY \
            -u WHARF_TLS_CLIENT_CA \
            "$wharf" serve --data-dir "$tmp/wharf-data" --http-addr "127.0.0.1:$(free_port)" \
            --mqtt-addr "127.0.0.1:$broker_port" --amqp-addr off >"$log" 2>&1 &
    fi
    broker_pid=$!
    local started=$SECONDS
    until port_open "$broker_port"; do
        if ((SECONDS - started > ready_deadline_s)) || ! kill -0 "$broker_pid" 2>/dev/null; then
            echo "error: $broker not accepting on 127.0.0.1:$broker_port; its output:" >&2
            tail -n 30 "$log" >&2
            exit 1
        fi
        sleep 0.1
    done
}

# One workload against one broker; the load generator's last line (JSON) goes to $tmp/BROKER-NAME.out.
run() {
    local broker="$1" name="$2"
    shift 2
    echo "== $broker: $name"
    start_broker "$broker" "$name"
    # The load generator ends every wait by --timeout-s; `timeout` is the backstop for a hung exit.
    timeout --kill-after=10 "$((timeout_s + 60))" "$wharf" bench mqtt "$@" --host 127.0.0.1 \
        --port "$broker_port" --label "$broker" --server-pid "$broker_pid" \
        --timeout-s "$timeout_s" | tee "$tmp/$broker-$name.out"
    stop_broker
}

# MQTT lets a broker drop QoS 0 messages (at most once): those runs report what was lost and
# count msg/s over what arrived; at QoS 1 a lost message fails the run.
for broker in "${brokers[@]}"; do
    run "$broker" pubsub-qos0 pubsub --qos 0 --messages "$messages" --size "$size" \
        --inflight "$inflight" --allow-loss
done
for broker in "${brokers[@]}"; do
    run "$broker" pubsub-qos1 pubsub --qos 1 --messages "$messages" --size "$size" \
        --inflight "$inflight"
done
for broker in "${brokers[@]}"; do
    run "$broker" fanout fanout --qos 0 --subscribers "$subscribers" \
        --messages "$fanout_messages" --rate "$fanout_rate" --size "$size" --allow-loss
done
for broker in "${brokers[@]}"; do
    run "$broker" fanout-max fanout --qos 0 --subscribers "$subscribers" \
        --messages "$fanout_messages" --rate 0 --size "$size" --allow-loss
done

echo "== side by side"
python3 - "$tmp" <<'PY'
import json, os, sys

tmp = sys.argv[1]

def last(broker, name):
    path = f"{tmp}/{broker}-{name}.out"
    if not os.path.exists(path):
        return {}
    return json.loads(open(path).read().strip().splitlines()[-1])

pubsub = [("end_to_end_per_s", "msg/s end to end (delivered)", "higher"),
          ("lost", "messages lost", "lower"),
          ("publish_per_s", "publisher msg/s", "higher"),
          ("p50_ms", "latency p50 ms", "lower"), ("p99_ms", "latency p99 ms", "lower"),
          ("server_cpu_us_per_message", "server CPU us per message published", "lower"),
          ("server_cpu_s", "server CPU s", "lower"), ("rss_mib", "server peak RSS MiB", "lower"),
          ("bench_cpu_s", "load generator CPU s", "lower")]
fanout = [("deliveries_per_s", "deliveries/s", "higher"), ("lost", "deliveries lost", "lower"),
          ("p50_ms", "latency p50 ms", "lower"), ("p99_ms", "latency p99 ms", "lower"),
          ("server_cpu_us_per_delivery", "server CPU us/delivery", "lower"),
          ("server_cpu_s", "server CPU s", "lower"), ("connect_s", "subscribers connected in s", "lower"),
          ("rss_mib", "server peak RSS MiB", "lower"), ("bench_cpu_s", "load generator CPU s", "lower")]
show = lambda v: "-" if v is None else f"{v:,.2f}" if isinstance(v, float) and v < 100 else f"{v:,.0f}"
summary = {}
print(f"{'workload':42} {'Wharf':>12} {'Mosquitto':>12} {'Wharf/Mosquitto':>16}")
for name, title, rows in (("pubsub-qos0", "pubsub QoS 0", pubsub), ("pubsub-qos1", "pubsub QoS 1", pubsub),
                          ("fanout", "fanout QoS 0", fanout), ("fanout-max", "fanout QoS 0", fanout)):
    wharf, mosquitto = last("wharf", name), last("mosquitto", name)
    shape = {**mosquitto, **wharf}
    if name.startswith("fanout"):
        rate = shape.get("rate")
        title += f", {shape.get('subscribers')} subscribers, {f'{rate} msg/s' if rate else 'flat out'}"
    print(f"{title} ({shape.get('messages')} x {shape.get('size')} B)")
    for key, label, better in rows:
        w, m = wharf.get("wharf_" + key), mosquitto.get("mosquitto_" + key)
        ratio = w / m if isinstance(w, (int, float)) and isinstance(m, (int, float)) and m else None
        print(f"  {label:40} {show(w):>12} {show(m):>12} {'-' if ratio is None else f'{ratio:.2f}x':>16}  ({better} is better)")
        slug = name.replace("-", "_")
        summary[f"{slug}_wharf_{key}"], summary[f"{slug}_mosquitto_{key}"] = w, m
        summary[f"{slug}_ratio_{key}"] = None if ratio is None else round(ratio, 3)
print(json.dumps(summary))
PY

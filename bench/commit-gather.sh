#!/usr/bin/env bash
# Commit gathering (`storage.commit_gather_us`) on and off, taking turns, in one run.
#
#   bench/commit-gather.sh [--gather-us N] [--rounds N] [--messages N] [--rate N]
#
# Each round starts a fresh `wharf serve` with `commit_gather_us = 0`, then one with N
# (default 2000), and drives each twice: the AMQP door with `wharf-peerbench rabbitmq` (4
# producers with a window of 256 unconfirmed publishes, 4 consumers, 1 KiB bodies), then the
# HTTP door with `wharf bench queue --format binary` (batches of 100) against a second fresh
# server. Prints, per run, the server's CPU (from /proc, user + system), its fdatasyncs and
# commits that waited (from /metrics), the end-to-end rate, p50 and p99. Only the comparison
# inside one run means anything: the machine's speed drifts between minutes. With --rate, both
# clients offer that many messages/s instead of sending flat out (latency at a fixed load).
# Environment: WHARF_BIN and PEERBENCH_BIN (default: target/release/*, built unless
# NO_BUILD=1).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
gather_us=2000
rounds=3
messages=200000
rate=0
while (($#)); do
    case "$1" in
        --gather-us) gather_us="$2"; shift 2 ;;
        --rounds) rounds="$2"; shift 2 ;;
        --messages) messages="$2"; shift 2 ;;
        --rate) rate="$2"; shift 2 ;;
        -h | --help)
            sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "unknown argument '$1' (see --help)" >&2
            exit 2
            ;;
    esac
done
for number in "$gather_us" "$rounds" "$messages" "$rate"; do
    if ! [[ "$number" =~ ^[0-9]+$ ]]; then
        echo "expected a number, not '$number'" >&2
        exit 2
    fi
done

if [[ "${NO_BUILD:-0}" != 1 ]]; then
    echo "== building (release)"
    (cd "$root" && cargo build --release -q -p wharf-cli -p wharf-peerbench)
fi
wharf="${WHARF_BIN:-$root/target/release/wharf}"
peerbench="${PEERBENCH_BIN:-$root/target/release/wharf-peerbench}"

tmp="$(mktemp -d /tmp/wharf-commit-gather.XXXXXX)"
server=""
cleanup() {
    if [[ -n "$server" ]]; then kill "$server" 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

http_port=7790
amqp_port=5690
tick="$(getconf CLK_TCK)"

# The server's user + system CPU so far, in milliseconds.
server_cpu_ms() {
    awk -v tick="$tick" '{ printf "%d", ($14 + $15) * 1000 / tick }' "/proc/$server/stat"
}

metric() {
    curl -sf "http://127.0.0.1:$http_port/metrics" | awk -v name="$1" '$1 == name { print $2 }'
}

# start_server GATHER_US: a fresh server on a fresh data directory.
start_server() {
    rm -rf "$tmp/data"
    printf '[storage]\ncommit_gather_us = %s\n' "$1" >"$tmp/wharf.toml"
    "$wharf" serve --config "$tmp/wharf.toml" --data-dir "$tmp/data" \
        --http-addr "127.0.0.1:$http_port" --amqp-addr "127.0.0.1:$amqp_port" \
        --mqtt-addr off >"$tmp/server.log" 2>&1 &
    server=$!
    for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$http_port/healthz" >/dev/null && return 0
        sleep 0.1
    done
    echo "the server did not start; its log:" >&2
    cat "$tmp/server.log" >&2
    exit 1
}

stop_server() {
    kill "$server"
    wait "$server" 2>/dev/null || true
    server=""
}

# run DOOR GATHER_US: one measured run, one line.
run() {
    local door="$1" gather="$2" before out rate_seen p50 p99
    start_server "$gather"
    before="$(server_cpu_ms)"
    if [[ "$door" == amqp ]]; then
        out="$("$peerbench" rabbitmq --url "amqp://guest:guest@127.0.0.1:$amqp_port/%2f" \
            --messages "$messages" --rate "$rate" 2>&1 | tail -n 1)"
        rate_seen="$(jq -r '.rabbitmq_end_to_end_per_s' <<<"$out")"
        p50="$(jq -r '.rabbitmq_p50_ms' <<<"$out")"
        p99="$(jq -r '.rabbitmq_p99_ms' <<<"$out")"
    else
        out="$(env -u WHARF_SERVER "$wharf" bench queue --server "http://127.0.0.1:$http_port" \
            --messages "$messages" --rate "$rate" --format binary 2>&1 | tail -n 1)"
        rate_seen="$(jq -r '.wharf_end_to_end_per_s' <<<"$out")"
        p50="$(jq -r '.wharf_p50_ms' <<<"$out")"
        p99="$(jq -r '.wharf_p99_ms' <<<"$out")"
    fi
    local cpu=$(($(server_cpu_ms) - before))
    printf '%-5s gather_us=%-6s server CPU %5d ms (%5.2f µs/msg)  fsyncs %6s  waited %6s  %7.0f msg/s  p50 %6.2f  p99 %6.2f ms\n' \
        "$door" "$gather" "$cpu" "$(bc -l <<<"$cpu * 1000 / $messages")" \
        "$(metric wharf_storage_fsyncs_total)" "$(metric wharf_storage_commit_gathers_total)" \
        "$rate_seen" "$p50" "$p99"
    stop_server
}

echo "== $rounds rounds, $messages messages each (rate $rate, 0: flat out), commit_gather_us 0 against $gather_us"
for round in $(seq "$rounds"); do
    echo "-- round $round"
    for door in amqp http; do
        run "$door" 0
        run "$door" "$gather_us"
    done
done

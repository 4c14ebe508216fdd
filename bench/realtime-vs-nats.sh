#!/usr/bin/env bash
# Wharf's real-time door against NATS core request-reply, same machine, one run.
#
#   bench/realtime-vs-nats.sh [--connections N] [--subscribers S] [--requests R]
#
# Runs `wharf bench realtime` (it starts its own `wharf serve`: idle WebSocket and event-stream
# memory per connection, fan-out latency, sequential request-reply over a WebSocket and over
# HTTP), then starts nats-server on loopback and runs `wharf-peerbench nats-request` with one
# requester and one responder (the same sequential round trips, 128 B bodies), stops it, and
# prints the request-reply p50/p99 side by side with the ratio Wharf / NATS. Installs
# nats-server from Debian when missing (needs root). Environment: NATS_PORT (default 4222),
# KEEP_TMP=1 keeps logs.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
nats_port="${NATS_PORT:-4222}"
connections=10000
subscribers=1000
requests=2000
while (($#)); do
    case "$1" in
        -h | --help)
            sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        --connections) connections="$2"; shift 2 ;;
        --subscribers) subscribers="$2"; shift 2 ;;
        --requests) requests="$2"; shift 2 ;;
        *) echo "error: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

if ! command -v nats-server >/dev/null; then
    echo "== installing nats-server"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server >/dev/null
fi

echo "== building (release)"
(cd "$root" && cargo build --release -q -p wharf-cli -p wharf-peerbench)
wharf="$root/target/release/wharf"
peerbench="$root/target/release/wharf-peerbench"

tmp="$(mktemp -d /tmp/wharf-realtime-vs-nats.XXXXXX)"
nats_pid=""
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

stop_nats() {
    if [[ -n "$nats_pid" ]] && kill -0 "$nats_pid" 2>/dev/null; then
        echo "== stopping nats-server (pid $nats_pid)"
        kill "$nats_pid" 2>/dev/null || true
        wait "$nats_pid" 2>/dev/null || true
    fi
    nats_pid=""
}

cleanup() {
    stop_nats
    if [[ "${KEEP_TMP:-0}" == 1 ]]; then echo "logs kept in $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

echo "== Wharf real-time"
env -u WHARF_SERVER "$wharf" bench realtime --connections "$connections" \
    --subscribers "$subscribers" --requests "$requests" | tee "$tmp/wharf-realtime.out"

if port_open "$nats_port"; then
    echo "error: port $nats_port is taken; set NATS_PORT" >&2
    exit 1
fi
echo "== starting nats-server on 127.0.0.1:$nats_port"
nats-server -a 127.0.0.1 -p "$nats_port" >"$tmp/nats.out" 2>&1 &
nats_pid=$!
started=$SECONDS
until port_open "$nats_port"; do
    if ((SECONDS - started > 30)) || ! kill -0 "$nats_pid" 2>/dev/null; then
        echo "error: nats-server not ready; its output:" >&2
        tail -n 30 "$tmp/nats.out" >&2
        exit 1
    fi
    sleep 0.1
done
echo "== NATS request-reply (one requester, one responder)"
"$peerbench" nats-request --url "nats://127.0.0.1:$nats_port" --server-pid "$nats_pid" \
    --concurrency 1 --requests "$requests" --sequential-requests "$requests" \
    | tee "$tmp/nats-request.out"
stop_nats

echo "== side by side"
python3 - "$tmp" <<'PY'
import json, sys

tmp = sys.argv[1]
last = lambda name: json.loads(open(f"{tmp}/{name}.out").read().strip().splitlines()[-1])
wharf, nats = last("wharf-realtime"), last("nats-request")
print(f"{'sequential request-reply':<34} {'Wharf':>10} {'NATS':>10} {'Wharf/NATS':>11}")
for door in ("websocket", "http"):
    for p in ("p50", "p99"):
        w, n = wharf[f"{door}_request_{p}_ms"], nats[f"nats_request_sequential_{p}_ms"]
        print(f"{door + ' ' + p + ' ms':<34} {w:>10.3f} {n:>10.3f} {w / n:>10.2f}x")
print(f"{'idle WebSocket KiB/connection':<34} {wharf['idle_websocket_kib_per_connection']:>10.1f}")
print(f"{'idle event stream KiB/connection':<34} {wharf['idle_event_stream_kib_per_connection']:>10.1f}")
print(f"{'fan-out to ' + str(wharf['fan_out_subscribers']) + ' p50/p99 ms':<34} "
      f"{wharf['fan_out_p50_ms']:>10.2f} {wharf['fan_out_p99_ms']:>10.2f}")
PY

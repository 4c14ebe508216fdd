#!/usr/bin/env bash
# A CPU profile of the server under the queue benchmark, as a flame graph.
#
#   bench/profile-queue.sh OUT.svg [wharf bench queue arguments...]
#
# Starts `wharf serve` (release build) on a temporary data directory, records the server's
# stacks with `perf record --call-graph dwarf` while `wharf bench queue --server ...` drives it
# with the given arguments (e.g. --messages 200000 --format binary), then folds them with
# inferno into OUT.svg and prints the twenty functions that spent the most CPU themselves.
# Installs perf (Debian's linux-perf) and inferno (cargo install) when they are missing.
# Environment: WHARF_BIN (default target/release/wharf; built when missing), PERF_FREQ
# (samples per second, default 799), KEEP_TMP=1 keeps the perf data.
set -euo pipefail

if [[ $# -lt 1 || "$1" == -h || "$1" == --help ]]; then
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
fi
out="$1"
shift
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
wharf="${WHARF_BIN:-$root/target/release/wharf}"
freq="${PERF_FREQ:-799}"

if ! command -v perf >/dev/null; then
    echo "== installing perf"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null
fi
if ! command -v inferno-flamegraph >/dev/null; then
    echo "== installing inferno"
    cargo install -q inferno --no-default-features --features cli
fi
if [[ ! -x "$wharf" ]]; then
    echo "== building (release)"
    (cd "$root" && cargo build --release -q -p wharf-cli)
fi

tmp="$(mktemp -d /tmp/wharf-profile.XXXXXX)"
server_pid=""
cleanup() {
    if [[ -n "$server_pid" ]]; then kill "$server_pid" 2>/dev/null || true; fi
    if [[ "${KEEP_TMP:-0}" == 1 ]]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$wharf" serve --data-dir "$tmp/data" --http-addr "127.0.0.1:$port" --amqp-addr off \
    >"$tmp/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$port/healthz" && break
    sleep 0.1
done

echo "== recording server pid $server_pid at $freq Hz"
perf record -q -F "$freq" --call-graph dwarf,32768 -p "$server_pid" -o "$tmp/perf.data" \
    2>"$tmp/perf.log" &
perf_pid=$!
sleep 0.5
"$wharf" bench queue --server "http://127.0.0.1:$port" "$@" 2>/dev/null | grep -v '^{'
kill -INT "$perf_pid"
wait "$perf_pid" || true

echo "== folding stacks into $out"
perf script -i "$tmp/perf.data" 2>/dev/null | inferno-collapse-perf >"$tmp/folded"
inferno-flamegraph --minwidth 1 --title "wharf serve under wharf bench queue $*" <"$tmp/folded" >"$out"
echo "== functions by their own CPU"
perf report -i "$tmp/perf.data" --no-children --sort symbol --stdio -g none 2>/dev/null \
    | grep "%" | sed "s/ *- *- *$//" | cut -c1-150 | head -n 20

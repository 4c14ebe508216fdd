#!/usr/bin/env bash
# Wharf's durable queue against PostgreSQL used as a job queue (and, with --with-rabbitmq,
# RabbitMQ's durable queue), same workload, same machine, one run.
#
#   bench/queue-vs-postgres.sh [--with-rabbitmq] [--rounds N] [wharf bench queue arguments...]
#
# Runs `wharf bench queue ARGS` (it starts its own `wharf serve`), then starts PostgreSQL 15 on
# loopback from a temporary directory (bench/postgres.sh: fsync and synchronous_commit on;
# autovacuum tuned for a queue table: naptime 1 s, no cost delay, 5,000 dead rows) and
# runs `wharf-peerbench postgres-queue ARGS`: a `jobs` table, producers inserting each batch as
# one multi-row INSERT, consumers taking batches with DELETE ... WHERE id IN (SELECT id ...
# ORDER BY id FOR UPDATE SKIP LOCKED LIMIT n) RETURNING, on an analysed table so that the plan
# uses the primary key (the plan is printed). PostgreSQL's server CPU is the postmaster's and
# all its children's. With --with-rabbitmq it also runs `wharf-peerbench rabbitmq ARGS` as
# bench/queue-vs-rabbitmq.sh does. Prints the figures side by side with server CPU per message,
# then one JSON line of everything. Only a comparison inside one run means anything; with
# --rounds N, Wharf and PostgreSQL take turns N times (PostgreSQL stays up, idle, while Wharf
# runs from the second round on) and the round with the median ratio of server CPU is shown,
# after every round's ratios: the machine's speed drifts between minutes.
# Environment: WHARF_BIN and PEERBENCH_BIN (default: target/release/*, built unless
# NO_BUILD=1), POSTGRES_PORT, RABBITMQ_PORT, KEEP_TMP=1 keeps the logs.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
with_rabbitmq=0
rounds=1
args=()
rounds_next=0
for arg in "$@"; do
    if ((rounds_next)); then
        rounds="$arg"
        rounds_next=0
        continue
    fi
    case "$arg" in
        --rounds) rounds_next=1 ;;
        --rounds=*) rounds="${arg#--rounds=}" ;;
        -h | --help)
            sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        --with-rabbitmq) with_rabbitmq=1 ;;
        *) args+=("$arg") ;;
    esac
done

if ! [[ "$rounds" =~ ^[1-9][0-9]*$ ]]; then
    echo "--rounds takes a positive number, not '$rounds'" >&2
    exit 2
fi

if [[ "${NO_BUILD:-0}" != 1 ]]; then
    echo "== building (release)"
    (cd "$root" && cargo build --release -q -p wharf-cli -p wharf-peerbench)
fi
wharf="${WHARF_BIN:-$root/target/release/wharf}"
peerbench="${PEERBENCH_BIN:-$root/target/release/wharf-peerbench}"

tmp="$(mktemp -d /tmp/wharf-queue-vs-postgres.XXXXXX)"
pg_port="${POSTGRES_PORT:-}"
# shellcheck source=bench/postgres.sh
source "$root/bench/postgres.sh"
if ((with_rabbitmq)); then
    rabbit_bin=/usr/lib/rabbitmq/bin
    rabbit_port="${RABBITMQ_PORT:-5672}"
    # RabbitMQ boots in 5-10 s on this kind of machine; a loaded one can take several times that.
    ready_deadline_s=120
    # shellcheck source=bench/peers.sh
    source "$root/bench/peers.sh"
fi

cleanup() {
    stop_postgres
    if ((with_rabbitmq)); then stop_rabbit; fi
    if [[ "${KEEP_TMP:-0}" == 1 ]]; then echo "logs kept in $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for round in $(seq "$rounds"); do
    echo "== Wharf (round $round of $rounds)"
    env -u WHARF_SERVER "$wharf" bench queue "${args[@]}" 2>"$tmp/wharf.err" |
        tee "$tmp/wharf.$round.out"

    if ((round == 1)); then
        ensure_postgres
        start_postgres
        # A queue table collects dead rows as fast as it is consumed, and every consumer's index
        # scan walks them until a vacuum removes them; the default autovacuum (a pass a minute,
        # throttled) never comes in a run this short. Tuned for a table emptied as fast as it is
        # filled: a look every second, unthrottled, once 5,000 rows are dead.
        pg_psql -c "ALTER SYSTEM SET autovacuum_naptime = 1" \
            -c "ALTER SYSTEM SET autovacuum_vacuum_cost_delay = 0" \
            -c "ALTER SYSTEM SET autovacuum_vacuum_threshold = 5000" \
            -c "ALTER SYSTEM SET autovacuum_vacuum_scale_factor = 0" \
            -c "SELECT pg_reload_conf()" >/dev/null
        background_procs="$(ps -o pid= --ppid "$pg_pid" | wc -l)"
    fi
    echo "== PostgreSQL (round $round of $rounds)"
    postgres_settle "$background_procs"
    server0="$(postgres_cpu_ticks)"
    "$peerbench" postgres-queue --url "host=127.0.0.1 port=$pg_port user=postgres dbname=postgres" \
        "${args[@]}" | tee "$tmp/postgres.$round.out"
    postgres_settle "$background_procs"
    server1="$(postgres_cpu_ticks)"
    echo "$(((server1 - server0) * 1000000 / clk_tck))" >"$tmp/postgres.$round.cpu_us"
done
stop_postgres

if ((with_rabbitmq)); then
    if [[ ! -x "$rabbit_bin/rabbitmq-server" ]]; then
        echo "== installing rabbitmq-server"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null
    fi
    start_rabbit
    echo "== RabbitMQ"
    # The RabbitMQ client takes the shape arguments; --format is Wharf's alone.
    rabbit_args=()
    skip=0
    for arg in "${args[@]}"; do
        if ((skip)); then skip=0; continue; fi
        case "$arg" in
            --format) skip=1 ;;
            --format=*) ;;
            *) rabbit_args+=("$arg") ;;
        esac
    done
    "$peerbench" rabbitmq --url "amqp://guest:guest@127.0.0.1:$rabbit_port/%2f" \
        --server-pid "$rabbit_pid" "${rabbit_args[@]}" | tee "$tmp/rabbitmq.out"
    stop_rabbit
fi

echo "== side by side"
python3 - "$tmp" "$rounds" <<'PY'
import json, os, sys

tmp, rounds = sys.argv[1], int(sys.argv[2])
def last_json(name):
    path = os.path.join(tmp, name)
    if not os.path.exists(path):
        return None
    return json.loads(open(path).read().strip().splitlines()[-1])

turns = []
for number in range(1, rounds + 1):
    wharf = last_json(f"wharf.{number}.out")
    pg = last_json(f"postgres.{number}.out")
    pg_cpu_us = int(open(os.path.join(tmp, f"postgres.{number}.cpu_us")).read())
    pg["postgres_server_cpu_s"] = pg_cpu_us / 1e6
    ours, theirs = wharf.get("wharf_server_cpu_s"), pg["postgres_server_cpu_s"]
    turns.append((ours / theirs if ours and theirs else float("inf"), number, wharf, pg))
ratios = [f"{ratio:.2f}x" for ratio, _, _, _ in turns]
ordered = sorted(turns, key=lambda turn: turn[0])
median_ratio, median_round, wharf, pg = ordered[(len(ordered) - 1) // 2]
if rounds > 1:
    print(f"  server CPU Wharf/PostgreSQL by round: {' '.join(ratios)}; "
          f"the median round ({median_round}) below")
rabbit = last_json("rabbitmq.out")
messages = wharf["messages"]
systems = [("wharf", "Wharf", wharf), ("postgres", "PostgreSQL", pg)]
if rabbit:
    systems.append(("rabbitmq", "RabbitMQ", rabbit))
for key, _, figures in systems:
    cpu = figures.get(f"{key}_server_cpu_s")
    figures[f"{key}_server_cpu_us_per_msg"] = round(cpu * 1e6 / messages, 2) if cpu else None
    bench = figures.get(f"{key}_bench_cpu_s")
    figures[f"{key}_bench_cpu_us_per_msg"] = round(bench * 1e6 / messages, 2) if bench else None
rows = [
    ("end_to_end_per_s", "end-to-end msg/s", "{:,.0f}"),
    ("sends_per_s", "sends/s (confirmed)", "{:,.0f}"),
    ("p50_ms", "latency p50 ms", "{:.2f}"),
    ("p99_ms", "latency p99 ms", "{:.2f}"),
    ("server_cpu_s", "server CPU s", "{:.2f}"),
    ("server_cpu_us_per_msg", "server CPU µs/msg", "{:.2f}"),
    ("bench_cpu_us_per_msg", "load generator CPU µs/msg", "{:.2f}"),
]
header = f"  {'figure':<28}" + "".join(f"{name:>14}" for _, name, _ in systems)
header += "".join(f"{'Wharf/' + name:>18}" for _, name, _ in systems[1:])
print(header)
summary = {"messages": messages, "format": wharf.get("format"), "rate": wharf.get("rate"),
           "rounds": rounds, "server_cpu_ratios": [round(turn[0], 3) for turn in turns]}
for field, label, shape in rows:
    line = f"  {label:<28}"
    for key, _, figures in systems:
        value = figures.get(f"{key}_{field}")
        summary[f"{key}_{field}"] = value
        line += f"{(shape.format(value) if value is not None else '-'):>14}"
    ours = wharf.get(f"wharf_{field}")
    for key, _, figures in systems[1:]:
        theirs = figures.get(f"{key}_{field}")
        ratio = f"{ours / theirs:.2f}x" if ours is not None and theirs else "-"
        line += f"{ratio:>18}"
    print(line)
print(json.dumps(summary))
PY

#!/usr/bin/env bash
# Wharf's event store against PostgreSQL 15 used as one, same machine, one run.
#
#   bench/events-vs-postgres.sh [--seconds N] [--writers 64] [--wharf PATH]
#
# Starts PostgreSQL on loopback from a temporary directory (shared/PEERS.md; fsync and
# synchronous_commit on, the defaults), creates the usual event table
#   events(position bigserial primary key, stream_id, version, event_id uuid, type, data jsonb,
#          metadata jsonb, created timestamptz, unique (stream_id, version))
# and appends with pgbench, one event (data: 512 bytes of JSON) per transaction, with the
# expected version checked the usual way: in one transaction read the stream's current version
# (max(version), the unique index) and insert version+1, the unique constraint refusing a
# conflicting writer. Each pgbench client appends to its own stream (distinct streams), first 1
# client then --writers clients (pgbench -j 2), each for --seconds (default 10). Then it reads
# $all (every event in position order, COPY to the client) and reports MB/s, and the server's
# CPU time (postmaster and all its backends) per append. It stops PostgreSQL, then runs
# `wharf bench events --seconds N` (Wharf's side, its own server), and prints the figures.
# --wharf PATH (or WHARF=PATH) picks the wharf binary; by default target/release/wharf, built
# when missing. Installs postgresql from Debian when missing (needs root). Environment:
# POSTGRES_PORT (default: a free port), KEEP_TMP=1 keeps the logs.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

seconds=10
writers=64
wharf="${WHARF:-}"
while (($#)); do
    case "$1" in
        -h | --help)
            sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        --seconds) seconds="$2"; shift 2 ;;
        --writers) writers="$2"; shift 2 ;;
        --wharf) wharf="$2"; shift 2 ;;
        *) echo "error: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
[[ "$seconds" =~ ^[1-9][0-9]*$ ]] || { echo "error: --seconds wants a positive integer" >&2; exit 2; }
[[ "$writers" =~ ^[1-9][0-9]*$ && "$writers" -le 90 ]] \
    || { echo "error: --writers wants 1..90 (max_connections is 100)" >&2; exit 2; }

tmp="$(mktemp -d /tmp/wharf-events-vs-postgres.XXXXXX)"
pg_port="${POSTGRES_PORT:-}"
# shellcheck source=bench/postgres.sh
source "$root/bench/postgres.sh"

cleanup() {
    stop_postgres
    if [[ "${KEEP_TMP:-0}" == 1 ]]; then echo "logs kept in $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ensure_postgres
start_postgres
background_procs="$(ps -o pid= --ppid "$pg_pid" | wc -l)"

pg_psql -c "select 'PostgreSQL ' || current_setting('server_version') || ', fsync=' \
    || current_setting('fsync') || ', synchronous_commit=' || current_setting('synchronous_commit') \
    || ', wal_sync_method=' || current_setting('wal_sync_method') || ', shared_buffers=' \
    || current_setting('shared_buffers')" -At | sed 's/^/   /'

pg_psql <<'SQL'
CREATE TABLE events (
    position bigserial PRIMARY KEY,
    stream_id text NOT NULL,
    version bigint NOT NULL,
    event_id uuid NOT NULL,
    type text NOT NULL,
    data jsonb NOT NULL,
    metadata jsonb NOT NULL,
    created timestamptz DEFAULT now(),
    UNIQUE (stream_id, version)
);
SQL

# The event body: a JSON object whose text (as jsonb prints it) is exactly 512 bytes, with a
# random (incompressible) filler.
data_json="$(python3 - <<'PY'
import json, secrets
body = {"account": "acc-000042", "amount": 1250, "currency": "EUR", "note": ""}
text = lambda b: json.dumps(b)  # jsonb::text uses the same ", " and ": " separators
body["note"] = secrets.token_hex(256)[: 512 - len(text(body))]
assert len(text(body)) == 512, len(text(body))
print(json.dumps(body))
PY
)"
cat >"$tmp/append.sql" <<SQL
\\set stream :stream_base + :client_id
BEGIN;
SELECT coalesce(max(version), -1) AS v FROM events WHERE stream_id = 'writer-' || :stream \\gset
INSERT INTO events (stream_id, version, event_id, type, data, metadata)
VALUES ('writer-' || :stream, :v + 1, gen_random_uuid(), 'FundsDeposited', '$data_json',
        '{"correlation_id": "pgbench", "schema": 1}');
END;
SQL

pg_stat() { pg_psql -At -c "$1"; }
shell_child_ticks() {
    local stat rest
    stat="$(cat "/proc/$$/stat")"
    rest="${stat##*) }"
    local -a f
    read -r -a f <<<"$rest"
    echo $((f[13] + f[14]))
}

# One pgbench run: append_run CLIENTS THREADS STREAM_BASE NAME; writes NAME.json in $tmp.
append_run() {
    local clients="$1" threads="$2" base="$3" name="$4"
    echo "== PostgreSQL appends: $clients writer(s), distinct streams, ${seconds}s"
    mkdir -p "$tmp/$name-log"
    local server0 bench0 server1 bench1
    postgres_settle "$background_procs"
    server0="$(postgres_cpu_ticks)"
    bench0="$(shell_child_ticks)"
    # -M prepared: the extended protocol with prepared statements, as client drivers use it.
    if ! "$pg_bin/pgbench" -n -h 127.0.0.1 -p "$pg_port" -U postgres -M prepared \
        -c "$clients" -j "$threads" -T "$seconds" -D "stream_base=$base" \
        -f "$tmp/append.sql" --log --log-prefix="$tmp/$name-log/tx" postgres \
        >"$tmp/$name.out" 2>"$tmp/$name.err"; then
        echo "error: pgbench failed:" >&2
        tail -n 20 "$tmp/$name.out" "$tmp/$name.err" >&2
        exit 1
    fi
    bench1="$(shell_child_ticks)"
    postgres_settle "$background_procs"
    server1="$(postgres_cpu_ticks)"
    grep -E '^(number of (transactions actually processed|failed)|latency average|tps)' \
        "$tmp/$name.out" | sed 's/^/   /'
    python3 - "$tmp/$name.out" "$tmp/$name-log" "$clients" \
        "$(((server1 - server0) * 1000000 / clk_tck))" "$(((bench1 - bench0) * 1000000 / clk_tck))" \
        "$(pg_stat "select count(*) from events where stream_id like 'writer-%' \
            and substr(stream_id, 8)::bigint between $base and $base + $clients - 1")" \
        >"$tmp/$name.json" <<'PY'
import glob, json, re, sys

out, logdir, clients, server_us, bench_us, rows = sys.argv[1:]
text = open(out).read()
grab = lambda pattern: re.search(pattern, text, re.M)
processed = int(grab(r"^number of transactions actually processed: (\d+)").group(1))
failed = grab(r"^number of failed transactions: (\d+)")
tps = float(grab(r"^tps = ([\d.]+) \(without initial connection time\)").group(1))
latencies = []
for path in glob.glob(f"{logdir}/tx*"):
    for line in open(path):
        fields = line.split()
        if len(fields) >= 3 and fields[2].isdigit():  # "failed"/"skipped" otherwise
            latencies.append(int(fields[2]))
latencies.sort()
pct = lambda p: round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] / 1000, 2) if latencies else None
print(json.dumps({
    "clients": int(clients), "appends": processed, "rows_in_table": int(rows),
    "failed": int(failed.group(1)) if failed else 0, "appends_per_s": round(tps, 1),
    "p50_ms": pct(0.50), "p99_ms": pct(0.99),
    "server_cpu_s": round(int(server_us) / 1e6, 3), "bench_cpu_s": round(int(bench_us) / 1e6, 3),
    "server_cpu_us_per_append": round(int(server_us) / processed, 1) if processed else None,
    "bench_cpu_us_per_append": round(int(bench_us) / processed, 1) if processed else None,
}))
PY
    python3 - "$tmp/$name.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"   p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms; server CPU {r['server_cpu_s']} s"
      f" = {r['server_cpu_us_per_append']} µs/append; pgbench CPU {r['bench_cpu_s']} s;"
      f" rows written {r['rows_in_table']:,}")
PY
}

append_run 1 1 0 append-1
append_run "$writers" "$((writers < 2 ? 1 : 2))" 1000 append-n

echo "== PostgreSQL plans"
pg_psql -At -c "explain (costs off) select coalesce(max(version), -1) from events \
    where stream_id = 'writer-0'" | sed 's/^/   append read: /'
pg_psql -At -c "explain (costs off) select position, stream_id, version, event_id, type, data, \
    metadata from events order by position" | sed "s/^/   \$all read:   /"

# $all: every event in position order, sent to the client with COPY (text format), timed three
# times; the data is what the appends just wrote, so it is in cache (warm read). MB/s counts the
# bytes the client received (COPY text of all seven columns, wc -c); also reported: the same
# rate counting only the events' data (sum of octet_length(data::text)), and events/s.
echo "== PostgreSQL \$all read (COPY ... ORDER BY position TO STDOUT, 3 runs)"
all_query="COPY (SELECT position, stream_id, version, event_id, type, data, metadata \
FROM events ORDER BY position) TO STDOUT"
postgres_settle "$background_procs"
read_server0="$(postgres_cpu_ticks)"
: >"$tmp/read-runs"
for _ in 1 2 3; do
    start_ns="$(date +%s%N)"
    bytes="$(pg_psql -c "$all_query" | wc -c)"
    end_ns="$(date +%s%N)"
    echo "$bytes $((end_ns - start_ns))" >>"$tmp/read-runs"
done
postgres_settle "$background_procs"
read_server1="$(postgres_cpu_ticks)"
pg_stat "select count(*), sum(octet_length(data::text)), pg_total_relation_size('events')
    from events" | tr '|' ' ' >"$tmp/read-table"
python3 - "$tmp/read-runs" "$tmp/read-table" "$(((read_server1 - read_server0) * 1000000 / clk_tck))" \
    >"$tmp/read.json" <<'PY'
import json, sys

runs = sorted((int(ns), int(b)) for b, ns in (l.split() for l in open(sys.argv[1])))
ns, copy_bytes = runs[len(runs) // 2]  # the median run
events, data_bytes, table_bytes = (int(v) for v in open(sys.argv[2]).read().split())
s = ns / 1e9
print(json.dumps({
    "events": events, "copy_bytes": copy_bytes, "data_bytes": data_bytes,
    "table_bytes": table_bytes, "seconds": round(s, 3),
    "mb_per_s": round(copy_bytes / 1e6 / s, 1), "data_mb_per_s": round(data_bytes / 1e6 / s, 1),
    "events_per_s": round(events / s), "runs_s": [round(r[0] / 1e9, 3) for r in runs],
    "server_cpu_us_per_event": round(int(sys.argv[3]) / (3 * events), 2) if events else None,
}))
PY
python3 - "$tmp/read.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"   {r['events']:,} events, {r['copy_bytes']:,} bytes sent ({r['data_bytes']:,} of them data,"
      f" table on disk {r['table_bytes']:,}); median of {r['runs_s']} s ="
      f" {r['mb_per_s']} MB/s ({r['data_mb_per_s']} MB/s of data, {r['events_per_s']:,} events/s)")
PY
stop_postgres

echo "== Wharf events"
if [[ -z "$wharf" ]]; then
    wharf="$root/target/release/wharf"
    if [[ ! -x "$wharf" ]]; then
        echo "== building (release)"
        (cd "$root" && cargo build --release -q -p wharf-cli) \
            || echo "note: building wharf failed; Wharf's figures will be missing" >&2
    fi
fi
: >"$tmp/wharf.out"
if ! env -u WHARF_SERVER "$wharf" bench events --seconds "$seconds" 2>&1 | tee "$tmp/wharf.out"; then
    echo "note: \`$wharf bench events --seconds $seconds\` failed (see above); Wharf's figures are missing"
fi

echo "== figures"
python3 - "$tmp" "$writers" "$seconds" <<'PY'
import json, sys

tmp, writers, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
one = json.load(open(f"{tmp}/append-1.json"))
many = json.load(open(f"{tmp}/append-n.json"))
read = json.load(open(f"{tmp}/read.json"))
wharf = None
try:
    wharf = json.loads(open(f"{tmp}/wharf.out").read().strip().splitlines()[-1])
except (ValueError, IndexError):
    pass
rows = [
    ("appends/s, 1 writer", one["appends_per_s"]),
    (f"appends/s, {writers} writers", many["appends_per_s"]),
    ("append p99 ms, 1 writer", one["p99_ms"]),
    (f"append p99 ms, {writers} writers", many["p99_ms"]),
    ("server CPU µs/append, 1 writer", one["server_cpu_us_per_append"]),
    (f"server CPU µs/append, {writers} writers", many["server_cpu_us_per_append"]),
    ("pgbench CPU µs/append, 1 writer", one["bench_cpu_us_per_append"]),
    (f"pgbench CPU µs/append, {writers} writers", many["bench_cpu_us_per_append"]),
    ("$all read MB/s (COPY bytes)", read["mb_per_s"]),
    ("$all read MB/s (data only)", read["data_mb_per_s"]),
    ("$all read events/s", read["events_per_s"]),
]
show = lambda v: "-" if v is None else f"{v:,.2f}" if isinstance(v, float) and v < 100 else f"{v:,.0f}"
width = max(len(label) for label, _ in rows)
print(f"{'PostgreSQL 15':{width}} {'figure':>12}")
for label, value in rows:
    print(f"{label:{width}} {show(value):>12}")
if wharf is None:
    print("wharf: no figures (wharf bench events failed or printed no JSON line)")
else:
    print("wharf:", json.dumps(wharf))
summary = {"seconds": seconds, "writers": writers, "event_data_bytes": 512}
for prefix, r in (("postgres_1_writer_", one), (f"postgres_{writers}_writers_", many)):
    for key in ("appends", "appends_per_s", "p50_ms", "p99_ms", "server_cpu_s",
                "server_cpu_us_per_append", "bench_cpu_s", "bench_cpu_us_per_append"):
        summary[prefix + key] = r[key]
for key in ("events", "copy_bytes", "data_bytes", "table_bytes", "mb_per_s", "data_mb_per_s",
            "events_per_s", "server_cpu_us_per_event"):
    summary["postgres_all_read_" + key] = read[key]
if wharf:
    summary.update({k if k.startswith("wharf") else "wharf_" + k: v for k, v in wharf.items()})
print(json.dumps(summary))
PY

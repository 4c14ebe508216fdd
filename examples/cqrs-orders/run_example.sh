#!/usr/bin/env bash
# The CQRS orders example end to end, with checks: exits non-zero on the first mismatch.
#
#   WHARF_URL=http://127.0.0.1:7700 bash examples/cqrs-orders/run_example.sh
#
# Needs python3 (standard library only) and a running Wharf server at $WHARF_URL. Order ids
# carry a random run id, so the script can run again against the same server; the read
# model's SQLite file is a fresh temporary one each run (it rebuilds from the first event).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export WHARF_URL=${WHARF_URL:-http://127.0.0.1:7700}
PYTHON=${PYTHON:-python3}
export PYTHONDONTWRITEBYTECODE=1  # leave no __pycache__ in the source tree
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export ORDERS_DB="$WORK/orders.sqlite3"
RUN=$("$PYTHON" -c 'import uuid; print(uuid.uuid4().hex[:8])')
A="$RUN-a" B="$RUN-b" C="$RUN-c" D="$RUN-d"

step() { printf '\n== %s\n' "$*"; }
fail() { printf '\nFAIL: %s\n' "$*" >&2; exit 1; }
orders() { "$PYTHON" "$HERE/orders.py" "$@"; }
read_model() { "$PYTHON" "$HERE/read_model.py" "$@"; }
# Runs a command expected to fail with exit status $1; its output is kept in $WORK/out.
expect_status() {
    local want=$1 got=0
    shift
    "$@" >"$WORK/out" 2>&1 || got=$?
    cat "$WORK/out"
    [ "$got" -eq "$want" ] || fail "expected exit status $want, got $got: $*"
}
# Checks the read model's rows of this run against the JSON given (a list of rows).
check_table() {
    read_model query --json >"$WORK/table.json"
    "$PYTHON" - "$WORK/table.json" "$RUN" "$1" <<'EOF'
import json, sys
table = json.load(open(sys.argv[1]))
rows = [r for r in table["orders"] if r["id"].startswith(sys.argv[2] + "-")]
expected = json.loads(sys.argv[3])
for row in expected:
    row["id"] = sys.argv[2] + "-" + row["id"]
if rows != expected:
    print("read model rows:", json.dumps(rows, indent=1), file=sys.stderr)
    print("expected:", json.dumps(expected, indent=1), file=sys.stderr)
    sys.exit("FAIL: the orders table does not match")
print(f"orders table OK: {len(rows)} row(s) of this run, position {table['position']}")
EOF
}

echo "Wharf at $WHARF_URL; run id $RUN; read model in $ORDERS_DB"

step "Commands: create 3 orders, pay 2, ship 1 (each appends with an expected version)"
orders create "$A" --customer alice --total 30
orders create "$B" --customer bob --total 12.5
orders create "$C" --customer carol --total 7
orders pay "$A" --amount 30
orders ship "$A"   # order A's 3rd event: loads from the snapshot saved at version 1

step "Two 'pay $B' commands at once: one appends, the other gets 409, reloads, is refused"
orders pay "$B" --amount 12.5 --think-time 1 >"$WORK/pay1" 2>&1 & first=$!
orders pay "$B" --amount 12.5 --think-time 1 >"$WORK/pay2" 2>&1 & second=$!
status1=0 status2=0
wait "$first" || status1=$?
wait "$second" || status2=$?
cat "$WORK/pay1" "$WORK/pay2"
if [ $((status1 + status2)) -ne 2 ] || [ $((status1 * status2)) -ne 0 ]; then
    fail "expected one pay to succeed (0) and one to be refused (2), got $status1 and $status2"
fi

step "Invalid commands are refused with exit status 2"
expect_status 2 orders ship "$C"                 # not paid yet
grep -q "cannot be shipped before it is paid" "$WORK/out" || fail "unexpected message"
expect_status 2 orders pay "$A" --amount 30      # paid already
expect_status 2 orders pay "$RUN-nope" --amount 1  # never created

step "Two raw appends with the same expected version: exactly one 409"
orders create "$D" --customer dave --total 20
orders race "$D"

step "Snapshots: order $A loads from its snapshot plus the events after it"
orders show "$A" | tee "$WORK/show"
grep -q '"loaded_from": "snapshot at version 1 + 1 event(s)"' "$WORK/show" ||
    fail "order $A did not load from its snapshot"

step "Read model: catch up once into SQLite"
read_model --once
read_model query
check_table '[
 {"id": "a", "customer": "alice", "total": 30,   "paid": 30,   "status": "shipped", "version": 2},
 {"id": "b", "customer": "bob",   "total": 12.5, "paid": 12.5, "status": "paid",    "version": 1},
 {"id": "c", "customer": "carol", "total": 7,    "paid": 0,    "status": "created", "version": 0},
 {"id": "d", "customer": "dave",  "total": 20,   "paid": 20,   "status": "paid",    "version": 1}]'
cp "$WORK/table.json" "$WORK/table-before.json"

step "Read model again: nothing new, nothing re-applied"
read_model --once | tee "$WORK/out"
grep -q "applied 0 event(s), skipped 0" "$WORK/out" || fail "the second run applied something"
read_model query --json >"$WORK/table.json"
cmp -s "$WORK/table.json" "$WORK/table-before.json" || fail "the table changed on a rerun"
echo "table unchanged"

step "Resume: a crash between the SQLite commit and the checkpoint does not double-apply"
orders ship "$B"
expect_status 70 read_model --once --crash-after-commit
read_model --once | tee "$WORK/out"
grep -q "applied 0 event(s), skipped 1" "$WORK/out" ||
    fail "the rerun did not skip the event applied before the crash"
check_table '[
 {"id": "a", "customer": "alice", "total": 30,   "paid": 30,   "status": "shipped", "version": 2},
 {"id": "b", "customer": "bob",   "total": 12.5, "paid": 12.5, "status": "shipped", "version": 2},
 {"id": "c", "customer": "carol", "total": 7,    "paid": 0,    "status": "created", "version": 0},
 {"id": "d", "customer": "dave",  "total": 20,   "paid": 20,   "status": "paid",    "version": 1}]'
"$PYTHON" - <<'EOF'
import json, os, sqlite3, urllib.request
url = os.environ["WHARF_URL"] + "/v1/events/projections/orders-read-model"
checkpoint = json.load(urllib.request.urlopen(url))["checkpoint"]
position = sqlite3.connect(os.environ["ORDERS_DB"]).execute(
    "SELECT position FROM projection_position").fetchone()[0]
assert checkpoint == position, f"checkpoint {checkpoint} != read model position {position}"
print(f"server checkpoint {checkpoint} == read model position {position}")
EOF

printf '\nAll checks passed.\n'

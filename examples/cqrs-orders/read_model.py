#!/usr/bin/env python3
"""The read side of the CQRS example: a checkpointed projection into SQLite.

The server keeps the projection `orders-read-model` (events of streams `order-...`) and its
checkpoint: the position in `$all` of the last event the read model applied. Each round reads
the next page after the checkpoint, applies it to the `orders` table in ONE SQLite
transaction that also records the page's last position, then POSTs that position as the new
checkpoint. A crash between the SQLite commit and the checkpoint replays the page on the next
start; the position kept in SQLite makes the replay skip what was applied (no double apply).

    python3 read_model.py --once        # catch up and exit
    python3 read_model.py               # follow: catch up, then poll
    python3 read_model.py query         # print the orders table
"""

import argparse
import json
import os
import sqlite3
import sys
import time

from wharf_http import EventStore, Problem

PROJECTION = "orders-read-model"
STREAM_PREFIX = "order-"
PAGE = 100
# Exit status of --crash-after-commit, the simulated crash between commit and checkpoint.
EXIT_SIMULATED_CRASH = 70

SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    id       TEXT PRIMARY KEY,
    customer TEXT NOT NULL,
    total    NUMERIC NOT NULL,
    paid     NUMERIC NOT NULL DEFAULT 0,
    status   TEXT NOT NULL,
    version  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS projection_position (
    name     TEXT PRIMARY KEY,
    position INTEGER NOT NULL
);
"""


def open_db(path):
    conn = sqlite3.connect(path, isolation_level=None)  # transactions are explicit below
    conn.executescript(SCHEMA)
    return conn


def local_position(conn):
    row = conn.execute("SELECT position FROM projection_position WHERE name = ?",
                       (PROJECTION,)).fetchone()
    return None if row is None else row[0]


def apply(conn, event):
    """Applies one event to the orders table (inside the caller's transaction)."""
    kind, data, version = event["type"], event.get("data") or {}, event["version"]
    order_id = data.get("order_id") or event["stream"][len(STREAM_PREFIX):]
    if kind == "OrderCreated":
        conn.execute("INSERT INTO orders (id, customer, total, paid, status, version) "
                     "VALUES (?, ?, ?, 0, 'created', ?)",
                     (order_id, data["customer"], data["total"], version))
    elif kind == "OrderPaid":
        conn.execute("UPDATE orders SET paid = ?, status = 'paid', version = ? WHERE id = ?",
                     (data["amount"], version, order_id))
    elif kind == "OrderShipped":
        conn.execute("UPDATE orders SET status = 'shipped', version = ? WHERE id = ?",
                     (version, order_id))
    else:
        return False  # an event type this read model does not know: skipped, still counted
    return True


def apply_page(conn, events, scanned_to):
    """Applies a page in one transaction; returns (applied, skipped, new local position).

    Events at or below the position SQLite holds were applied before (a replay after a crash
    between commit and checkpoint) and are skipped. `scanned_to` is the last position the
    page covered (past events the projection's filter left out).
    """
    applied = skipped = 0
    conn.execute("BEGIN IMMEDIATE")
    try:
        position = local_position(conn)
        for event in events:
            if position is not None and event["position"] <= position:
                skipped += 1
                continue
            apply(conn, event)
            applied += 1
            position = event["position"]
        if scanned_to is not None and (position is None or scanned_to > position):
            position = scanned_to
        if position is not None:
            conn.execute("INSERT INTO projection_position (name, position) VALUES (?, ?) "
                         "ON CONFLICT(name) DO UPDATE SET position = excluded.position",
                         (PROJECTION, position))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return applied, skipped, position


def reconcile(store, conn):
    """Creates the projection and lines its checkpoint up with SQLite; returns the checkpoint."""
    info = store.put_projection(PROJECTION, stream_prefix=STREAM_PREFIX)
    checkpoint, local = info["checkpoint"], local_position(conn)
    if checkpoint is not None and local is None:
        # A new (or lost) SQLite file: rebuild it from the first event.
        print(f"read model is empty but {PROJECTION} is checkpointed at {checkpoint}: "
              "resetting the projection to rebuild from the start")
        store.delete_projection(PROJECTION)
        checkpoint = store.put_projection(PROJECTION, stream_prefix=STREAM_PREFIX)["checkpoint"]
    elif checkpoint is not None and local < checkpoint:
        # SQLite restored from an older copy: move the checkpoint back to what it holds.
        print(f"read model is at {local}, behind the checkpoint {checkpoint}: rewinding")
        checkpoint = store.checkpoint(PROJECTION, local)["checkpoint"]
    elif local is not None and (checkpoint is None or local > checkpoint):
        print(f"read model is at {local}, ahead of the checkpoint {checkpoint}: the last run "
              "stopped between its commit and its checkpoint; that page will be skipped")
    return checkpoint


def catch_up(store, conn, args):
    """Applies every page after the checkpoint; returns (applied, skipped, checkpoint)."""
    checkpoint = reconcile(store, conn)
    total_applied = total_skipped = 0
    while True:
        page = store.projection_events(PROJECTION, args.limit)
        events, next_position = page["events"], page["next"]
        scanned_to = next_position - 1
        if scanned_to == (checkpoint if checkpoint is not None else -1):
            return total_applied, total_skipped, checkpoint  # nothing after the checkpoint
        applied, skipped, position = apply_page(conn, events, scanned_to)
        total_applied += applied
        total_skipped += skipped
        print(f"page of {len(events)} event(s) up to position {scanned_to}: applied {applied}, "
              f"skipped {skipped} already applied")
        if args.crash_after_commit:
            print("simulated crash: committed to SQLite, exiting before the checkpoint")
            sys.stdout.flush()
            os._exit(EXIT_SIMULATED_CRASH)
        checkpoint = store.checkpoint(PROJECTION, position)["checkpoint"]


def run(args):
    store, conn = EventStore(args.url), open_db(args.db)
    while True:
        applied, skipped, checkpoint = catch_up(store, conn, args)
        if args.once:
            print(f"caught up: applied {applied} event(s), skipped {skipped}; "
                  f"checkpoint {checkpoint}")
            return 0
        if applied or skipped:
            print(f"caught up at checkpoint {checkpoint}; polling every {args.interval}s")
        time.sleep(args.interval)


def query(args):
    conn = open_db(args.db)
    rows = conn.execute("SELECT id, customer, total, paid, status, version FROM orders "
                        "ORDER BY id").fetchall()
    if args.json:
        names = ("id", "customer", "total", "paid", "status", "version")
        print(json.dumps({"position": local_position(conn),
                          "orders": [dict(zip(names, row)) for row in rows]}))
        return 0
    header = ("id", "customer", "total", "paid", "status", "version")
    table = [header] + [tuple(str(v) for v in row) for row in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    print(f"({len(rows)} order(s); read model at position {local_position(conn)})")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="the Wharf server (default $WHARF_URL or "
                                      "http://127.0.0.1:7700)")
    parser.add_argument("--db", default=os.environ.get("ORDERS_DB", "orders.sqlite3"),
                        help="the SQLite file (default $ORDERS_DB or ./orders.sqlite3)")
    parser.add_argument("--once", action="store_true", help="catch up and exit")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between polls")
    parser.add_argument("--limit", type=int, default=PAGE, help="events per page (1-1000)")
    parser.add_argument("--crash-after-commit", action="store_true",
                        help="exit after the first SQLite commit, before its checkpoint (demo)")
    sub = parser.add_subparsers(dest="command")
    query_parser = sub.add_parser("query", help="print the orders table")
    query_parser.add_argument("--json", action="store_true", help="as JSON")
    query_parser.add_argument("--db", default=argparse.SUPPRESS, help="as above")
    args = parser.parse_args(argv)
    if args.command == "query":
        return query(args)
    try:
        return run(args)
    except KeyboardInterrupt:
        return 0
    except Problem as problem:
        print(f"error: unexpected answer from the server: {problem}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

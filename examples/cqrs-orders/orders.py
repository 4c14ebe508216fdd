#!/usr/bin/env python3
"""The command side of the CQRS example: an event-sourced order aggregate on Wharf.

Each order is one event stream, `order-{ID}`. A command loads the aggregate (its newest
snapshot, then the events after it), checks the business rules against that state, and
appends the new event with `expected_version` = the version it loaded (`no_stream` when
creating). If another writer appended in between, the server answers 409
`wrong_expected_version`: the command reloads and decides again (optimistic concurrency).

    python3 orders.py create 1 --customer alice --total 30
    python3 orders.py pay 1 --amount 30
    python3 orders.py ship 1
    python3 orders.py show 1

Exit status: 0 done, 2 a business rule refused the command, 3 still conflicting after
retries, 1 anything else (server unreachable, unexpected answer).
"""

import argparse
import json
import sys
import threading
import time
import uuid

from wharf_http import EventStore, Problem

STREAM_PREFIX = "order-"
# A snapshot every this many events: an order loads from its snapshot plus the events after.
SNAPSHOT_EVERY = 2
# Attempts of one command when other writers keep moving the stream (409 each time).
MAX_ATTEMPTS = 5

EXIT_RULE = 2
EXIT_CONFLICT = 3


class RuleViolation(Exception):
    """A command the order's current state does not allow."""


# --- the aggregate: state, events applied to it, and decisions ---------------------------

def initial_state(order_id):
    return {"order_id": order_id, "status": None, "customer": None, "total": 0, "paid": 0}


def apply(state, event):
    """The state after `event` (a pure function: also how snapshots are rebuilt)."""
    state = dict(state)
    kind, data = event["type"], event.get("data") or {}
    if kind == "OrderCreated":
        state.update(status="created", customer=data["customer"], total=data["total"])
    elif kind == "OrderPaid":
        state.update(status="paid", paid=data["amount"])
    elif kind == "OrderShipped":
        state.update(status="shipped")
    # Unknown event types are ignored, so old code can load streams newer code wrote.
    return state


def decide(command, state, args):
    """The events `command` produces in `state`, or RuleViolation."""
    order, status = state["order_id"], state["status"]
    if command == "create":
        if status is not None:
            raise RuleViolation(f"order {order} already exists (status {status})")
        if args.total <= 0:
            raise RuleViolation(f"the total must be positive, not {args.total}")
        return [("OrderCreated", {"order_id": order, "customer": args.customer,
                                  "total": args.total})]
    if status is None:
        raise RuleViolation(f"order {order} does not exist: create it first")
    if command == "pay":
        if status != "created":
            raise RuleViolation(f"order {order} cannot be paid: it is already {status}")
        if args.amount != state["total"]:
            raise RuleViolation(
                f"order {order} totals {state['total']}; a payment of {args.amount} does not match")
        return [("OrderPaid", {"order_id": order, "amount": args.amount})]
    if command == "ship":
        if status == "created":
            raise RuleViolation(f"order {order} cannot be shipped before it is paid")
        if status == "shipped":
            raise RuleViolation(f"order {order} is already shipped")
        return [("OrderShipped", {"order_id": order})]
    raise ValueError(command)


# --- loading and saving ------------------------------------------------------------------

def load(store, order_id):
    """(state, version, how) of the order; version None when its stream does not exist."""
    stream = STREAM_PREFIX + order_id
    snapshot = store.load_snapshot(stream)
    state, version, start = initial_state(order_id), None, 0
    if snapshot is not None:
        state, version, start = snapshot["state"], snapshot["version"], snapshot["version"] + 1
    events, stream_version = store.read_stream(stream, start)
    if events is None:  # no stream (a snapshot of a deleted stream does not count)
        return initial_state(order_id), None, "new stream"
    for event in events:
        state = apply(state, event)
        version = event["version"]
    if version is None:
        version = stream_version
    how = (f"snapshot at version {snapshot['version']} + {len(events)} event(s)"
           if snapshot else f"{len(events)} event(s), no snapshot")
    return state, version, how


def new_event(kind, data, correlation_id, causation_id):
    return {"id": str(uuid.uuid4()), "type": kind, "data": data,
            "metadata": {"correlation_id": correlation_id, "causation_id": causation_id}}


def maybe_snapshot(store, stream, state, first_version, version):
    """Saves a snapshot when this append crossed a multiple of SNAPSHOT_EVERY events."""
    if (version + 1) // SNAPSHOT_EVERY > first_version // SNAPSHOT_EVERY:
        store.save_snapshot(stream, version, state)
        print(f"  snapshot of {stream} saved at version {version}")


def handle(store, command, args):
    """Runs one command with optimistic concurrency; returns the exit status."""
    order_id, stream = args.order_id, STREAM_PREFIX + args.order_id
    command_id = str(uuid.uuid4())
    correlation_id = args.correlation_id or command_id
    for attempt in range(1, MAX_ATTEMPTS + 1):
        state, version, how = load(store, order_id)
        print(f"{command} {order_id}: loaded version {version} ({how}), status {state['status']}")
        try:
            decided = decide(command, state, args)
        except RuleViolation as violation:
            print(f"error: {command} {order_id} refused: {violation}", file=sys.stderr)
            return EXIT_RULE
        expected = "no_stream" if version is None else version
        if args.think_time:
            time.sleep(args.think_time)  # widens the window for a concurrent writer (demo)
        events = [new_event(kind, data, correlation_id, command_id) for kind, data in decided]
        try:
            answer = store.append(stream, expected, events)
        except Problem as problem:
            if problem.code != "wrong_expected_version":
                raise
            print(f"  conflict: expected version {expected}, but {stream} is at "
                  f"{problem.body.get('current_version')}; reloading and retrying "
                  f"(attempt {attempt} of {MAX_ATTEMPTS})", file=sys.stderr)
            continue
        for event in events:
            state = apply(state, event)
        print(f"  appended {', '.join(e['type'] for e in events)} to {stream} with "
              f"expected_version {json.dumps(expected)}: now version {answer['version']}, "
              f"position {answer['position']}")
        maybe_snapshot(store, stream, state, answer["first_version"], answer["version"])
        return 0
    print(f"error: {command} {order_id}: the stream kept changing; gave up after "
          f"{MAX_ATTEMPTS} attempts", file=sys.stderr)
    return EXIT_CONFLICT


def show(store, args):
    state, version, how = load(store, args.order_id)
    if version is None:
        print(f"error: order {args.order_id} does not exist", file=sys.stderr)
        return EXIT_RULE
    print(json.dumps({"version": version, "loaded_from": how, "state": state}, indent=2))
    return 0


def race(store, args):
    """Two appends racing with the same expected version: exactly one must win.

    Both writers load the order at the same version, then append an OrderPaid event with
    that version as expected_version at the same moment. The loser gets 409
    wrong_expected_version and nothing of its append is written.
    """
    state, version, _ = load(store, args.order_id)
    if version is None:
        print(f"error: order {args.order_id} does not exist", file=sys.stderr)
        return EXIT_RULE
    stream, start, results = STREAM_PREFIX + args.order_id, threading.Barrier(2), [None, None]

    def writer(index):
        event = new_event("OrderPaid", {"order_id": args.order_id, "amount": state["total"]},
                          f"race-{index}", f"race-{index}")
        start.wait()
        try:
            answer = store.append(stream, version, [event])
            results[index] = {"writer": index, "status": "appended", "version": answer["version"]}
        except Problem as problem:
            results[index] = {"writer": index, "status": problem.status, "code": problem.code,
                              "current_version": problem.body.get("current_version")}

    threads = [threading.Thread(target=writer, args=(i,)) for i in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for result in results:
        print(json.dumps(result))
    conflicts = [r for r in results if r["status"] == 409]
    winners = [r for r in results if r["status"] == "appended"]
    if len(conflicts) == 1 and len(winners) == 1:
        print(f"race on {stream} at expected_version {version}: one append won, one got 409")
        return 0
    print(f"error: expected exactly one 409 and one success, got {results}", file=sys.stderr)
    return 1


def number(text):
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text}") from None


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="the Wharf server (default $WHARF_URL or "
                                      "http://127.0.0.1:7700)")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name, help_text):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("order_id", metavar="ORDER_ID")
        p.add_argument("--correlation-id", help="metadata correlation_id (default: a new UUID)")
        p.add_argument("--think-time", type=float, default=0, metavar="SECONDS",
                       help="pause between loading and appending (to demonstrate a conflict)")
        return p

    create = command("create", "create an order")
    create.add_argument("--customer", required=True)
    create.add_argument("--total", type=number, required=True)
    command("pay", "pay an order").add_argument("--amount", type=number, required=True)
    command("ship", "ship a paid order")
    sub.add_parser("show", help="print an order's state").add_argument("order_id")
    sub.add_parser("race", help="two appends at the same expected version (demo)") \
        .add_argument("order_id")
    args = parser.parse_args(argv)
    if not args.order_id or "/" in args.order_id:
        parser.error(f"bad ORDER_ID: {args.order_id!r}")
    return args


def main(argv=None):
    args = parse_args(argv)
    store = EventStore(args.url)
    try:
        if args.command == "show":
            return show(store, args)
        if args.command == "race":
            return race(store, args)
        return handle(store, args.command, args)
    except Problem as problem:
        print(f"error: unexpected answer from the server: {problem}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

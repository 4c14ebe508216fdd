"""Schemathesis hooks for Wharf's OpenAPI document.

The document marks texts written in a language of their own with a format: a filter
(docs/filters.md), a routing pattern, a grant's KIND:PATTERN. Their grammars are not regular
expressions, so these strategies build valid texts from the grammars' parts; the server's
parsers are what the fuzzer then tests against them.
"""

import schemathesis
from hypothesis import strategies as st

WORD = st.from_regex(r"\A[a-z][a-z0-9_-]{0,7}\Z")
PATH = st.builds(lambda head, rest: ".".join([head] + rest), WORD, st.lists(WORD, max_size=2))
STRING = st.from_regex(r"\A[a-zA-Z0-9 _-]{0,8}\Z").map(lambda text: "'" + text + "'")
NUMBER = st.integers(min_value=-10**6, max_value=10**6).map(str)
VALUE = st.one_of(STRING, NUMBER, st.sampled_from(["true", "false", "null"]))
COMPARISON = st.builds(
    lambda path, op, value: f"{path} {op} {value}",
    PATH,
    st.sampled_from(["==", "!=", "<", "<=", ">", ">="]),
    VALUE,
)
PREDICATE = st.one_of(
    COMPARISON,
    PATH.map(lambda path: f"exists {path}"),
    st.builds(lambda path, values: f"{path} in [{', '.join(values)}]", PATH, st.lists(VALUE, max_size=3)),
    st.builds(lambda path, text: f"{path} starts_with {text}", PATH, STRING),
)
FILTER = st.recursive(
    PREDICATE,
    lambda inner: st.one_of(
        st.builds(lambda a, b: f"{a} and {b}", inner, inner),
        st.builds(lambda a, b: f"({a}) or ({b})", inner, inner),
        inner.map(lambda a: f"not ({a})"),
    ),
    max_leaves=4,
)
# Literal words only: valid in every pattern syntax (AMQP, MQTT, NATS) at once.
PATTERN = st.lists(WORD, min_size=1, max_size=4).map(".".join)
RESOURCE = st.builds(
    lambda kind, names: f"{kind}:{names}",
    st.sampled_from(["queue", "topic", "stream", "events", "webhook", "*"]),
    st.one_of(st.just("*"), PATTERN, PATTERN.map(lambda p: p + ".*"), PATTERN.map(lambda p: p + ".#")),
)

schemathesis.openapi.format("wharf-filter", FILTER)
schemathesis.openapi.format("wharf-pattern", PATTERN)
schemathesis.openapi.format("wharf-resource", RESOURCE)


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    """Rules OpenAPI cannot state, kept by the fuzzer's requests, and long waits shortened.

    - A queue named as its own dead-letter queue is refused: its dead letters would loop back
      into it. OpenAPI cannot relate a body field to a path parameter.
    - `retry_backoff_max_ms` may not be below `retry_backoff_ms`: JSON Schema cannot compare
      two fields. The cap is raised to the base (and, in a PATCH, both are given).
    - Long polls and request timeouts are cut to 200 ms (and given where absent), still within
      their ranges, so that the run stays within minutes on two cores.
    """
    # A stream fetch's long poll is a query parameter.
    query = case.query or {}
    wait = query.get("wait_ms")
    if isinstance(wait, str) and wait.isdigit():
        wait = int(wait)
    if isinstance(wait, float) and wait.is_integer():
        wait = int(wait)
    if isinstance(wait, int) and not isinstance(wait, bool) and 200 < wait <= 30_000:
        query["wait_ms"] = 200
    body = case.body
    if not isinstance(body, dict):
        return
    name = (case.path_parameters or {}).get("name")
    if case.method.upper() in ("PUT", "PATCH") and case.path == "/v1/queues/{name}":
        if name and body.get("dead_letter_queue") == name:
            body["dead_letter_queue"] = "dlq" if name != "dlq" else "dlq2"
        # PUT replaces every option: an absent one is its default (1000 and 60000).
        def number(field, default):
            value = body.get(field)
            if value is None:
                return default
            # The server takes an integral float (3.0) as the integer, so the rule holds for it.
            if isinstance(value, float) and value.is_integer():
                return int(value)
            return value if isinstance(value, int) and not isinstance(value, bool) else None

        base, cap = number("retry_backoff_ms", 1000), number("retry_backoff_max_ms", 60000)
        if base is not None and cap is not None and cap < base:
            body["retry_backoff_max_ms"] = base
        # A PATCH keeps the queue's other options: naming either of the pair names both, so
        # the request does not depend on what an earlier one set.
        given = [field for field in ("retry_backoff_ms", "retry_backoff_max_ms") if field in body]
        if case.method.upper() == "PATCH" and given and base is not None and cap is not None:
            body["retry_backoff_ms"], body["retry_backoff_max_ms"] = base, max(base, cap)
    # A request or scatter without a timeout waits 30 s for replies nobody sends here.
    if case.path in ("/v1/request", "/v1/scatter") and body.get("timeout_ms") is None:
        body["timeout_ms"] = 200
    # Only values within range are cut, so an invalid one stays invalid. JSON's integral
    # floats (19999.0) are integers to the server too, so they are cut alike.
    for field, maximum in (("wait_ms", 20_000), ("timeout_ms", 300_000)):
        value = body.get(field)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool) and 200 < value <= maximum:
            body[field] = 200

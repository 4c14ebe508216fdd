"""pika against Wharf's AMQP door: publish with confirms, consume with prefetch and acks,
basic.get, reject with requeue, mandatory returns, topic exchanges, passive declares, and
messages crossing between AMQP and HTTP. Usage: drive.py AMQP_PORT HTTP_BASE [publish N QUEUE]"""

import json
import sys
import time
import urllib.error
import urllib.request

import pika

AMQP_PORT, HTTP = int(sys.argv[1]), sys.argv[2]


def http(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(HTTP + path, data=data, method=method)
    if data is not None:
        request.add_header("content-type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read()
        return json.loads(text) if text else None


def connect():
    parameters = pika.ConnectionParameters(
        host="127.0.0.1", port=AMQP_PORT, heartbeat=30, blocked_connection_timeout=10)
    return pika.BlockingConnection(parameters)


def publish_confirmed(count, queue):
    connection = connect()
    channel = connection.channel()
    channel.queue_declare(queue, durable=True)
    channel.confirm_delivery()
    for n in range(count):
        channel.basic_publish("", queue, json.dumps({"n": n}).encode(),
                              pika.BasicProperties(content_type="application/json",
                                                   delivery_mode=2))
    connection.close()
    print(f"published {count} confirmed messages to {queue}")


def round_trip(channel):
    channel.queue_declare("jobs", durable=True)
    channel.confirm_delivery()
    for n in range(100):
        properties = pika.BasicProperties(
            content_type="application/json", message_id=f"m{n}", priority=3,
            correlation_id=f"c{n}", reply_to="answers", headers={"tenant": "acme"})
        channel.basic_publish("", "jobs", json.dumps({"n": n}).encode(), properties)
    try:
        channel.basic_publish("", "nowhere", b"lost", mandatory=True)
        raise AssertionError("an unroutable mandatory publish was not returned")
    except pika.exceptions.UnroutableError:
        pass
    channel.basic_qos(prefetch_count=10)
    seen = []
    for method, properties, body in channel.consume("jobs", inactivity_timeout=10):
        assert method is not None, f"the consumer went quiet after {len(seen)} messages"
        n = json.loads(body)["n"]
        assert properties.message_id == f"m{n}", properties
        assert properties.correlation_id == f"c{n}" and properties.reply_to == "answers"
        assert properties.headers == {"tenant": "acme"}, properties.headers
        assert properties.content_type == "application/json" and properties.priority == 3
        assert not method.redelivered
        assert (method.exchange, method.routing_key) == ("", "jobs"), method
        seen.append(n)
        channel.basic_ack(method.delivery_tag)
        if len(seen) == 100:
            break
    channel.cancel()
    assert seen == list(range(100)), seen
    stats = http("GET", "/v1/queues/jobs")["stats"]
    assert stats["ready"] == 0 and stats["leased"] == 0, stats
    assert stats["counters"]["acked"] == 100, stats
    print("100 confirmed publishes consumed in order with prefetch 10 and acked; "
          "an unroutable mandatory publish returned")


def interop(channel):
    http("POST", "/v1/queues/jobs/messages", {"messages": [{"body": {"from": "http"}}]})
    method, properties, body = channel.basic_get("jobs")
    assert json.loads(body) == {"from": "http"} and not method.redelivered, body
    channel.basic_reject(method.delivery_tag, requeue=True)
    method, properties, body = channel.basic_get("jobs")
    assert method.redelivered and json.loads(body) == {"from": "http"}
    channel.basic_ack(method.delivery_tag)
    assert channel.basic_get("jobs") == (None, None, None)
    channel.basic_publish("", "jobs", b'{"from": "amqp"}',
                          pika.BasicProperties(content_type="application/json"))
    received = http("POST", "/v1/queues/jobs/receive", {"max_messages": 1})["messages"]
    assert received[0]["body"] == {"from": "amqp"}, received
    http("POST", "/v1/queues/jobs/ack", {"receipts": [received[0]["receipt"]]})
    print("HTTP -> AMQP (basic.get, reject with requeue, redelivered) and AMQP -> HTTP")


def exchanges(connection, channel):
    channel.exchange_declare("orders", "topic")
    channel.queue_declare("eu")
    channel.queue_bind("eu", "orders", "orders.eu.*")
    channel.basic_publish("orders", "orders.eu.created", b'{"id": 1}',
                          pika.BasicProperties(headers={"source": "shop"}))
    channel.basic_publish("orders", "orders.us.created", b'{"id": 2}')
    method, properties, body = channel.basic_get("eu", auto_ack=True)
    assert json.loads(body) == {"id": 1}, body
    # As RabbitMQ: the delivery names the exchange and routing key of the publish, and the
    # headers are the publisher's.
    assert (method.exchange, method.routing_key) == ("orders", "orders.eu.created"), method
    assert properties.headers == {"source": "shop"}, properties.headers
    assert channel.basic_get("eu") == (None, None, None)
    named = channel.queue_declare("", exclusive=True).method.queue
    assert named.startswith("amq.gen-"), named
    assert channel.queue_declare("", exclusive=True).method.queue != named
    other = connection.channel()
    try:
        other.queue_declare("missing", passive=True)
        raise AssertionError("a passive declare of a missing queue passed")
    except pika.exceptions.ChannelClosedByBroker as closed:
        assert closed.reply_code == 404, closed
    # exchange.bind: a fanout exchange feeding the topic exchange; then unbound.
    channel.exchange_declare("all-orders", "fanout")
    channel.exchange_bind(destination="orders", source="all-orders")
    channel.basic_publish("all-orders", "orders.eu.paid", b'{"id": 3}')
    method, _, body = channel.basic_get("eu", auto_ack=True)
    assert json.loads(body) == {"id": 3}, body
    assert (method.exchange, method.routing_key) == ("all-orders", "orders.eu.paid"), method
    channel.exchange_unbind(destination="orders", source="all-orders")
    channel.basic_publish("all-orders", "orders.eu.paid", b'{"id": 4}')
    assert channel.basic_get("eu") == (None, None, None)
    # A headers exchange matches the binding's arguments against the message's headers.
    channel.exchange_declare("by-format", "headers")
    channel.queue_declare("pdfs")
    channel.queue_bind("pdfs", "by-format", arguments={"x-match": "all", "format": "pdf"})
    for fmt in ("pdf", "zip"):
        channel.basic_publish("by-format", "", fmt.encode(),
                              pika.BasicProperties(headers={"format": fmt}))
    method, _, body = channel.basic_get("pdfs", auto_ack=True)
    assert body == b"pdf", body
    assert channel.basic_get("pdfs") == (None, None, None)
    print("topic exchange routes by pattern; exchange-to-exchange bindings; headers exchange "
          "matches binding arguments; server-named queues; a passive declare of a missing "
          "queue is 404")


def arguments_and_lifetimes():
    connection = connect()
    channel = connection.channel()
    channel.queue_declare("work.dead")
    channel.queue_declare("work", arguments={
        "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "work.dead",
        "x-message-ttl": 600000, "x-max-priority": 10, "x-expires": 3600000})
    options = http("GET", "/v1/queues/work")["options"]
    assert options["dead_letter_queue"] == "work.dead", options
    assert options["message_ttl_ms"] == 600000, options
    assert options["expires_ms"] == 3600000, options
    channel.basic_publish("", "work", b'{"bad": true}',
                          pika.BasicProperties(content_type="application/json"))
    method, _, _ = channel.basic_get("work")
    channel.basic_reject(method.delivery_tag, requeue=False)
    # A reply to a later method comes after the reject was handled: frames are taken in order.
    channel.queue_declare("work.dead", passive=True)
    dead = http("GET", "/v1/queues/work.dead/messages")["messages"]
    assert dead[0]["dead_letter"]["reason"] == "rejected", dead
    # The same dead-letter details over AMQP, as RabbitMQ's x-death headers.
    method, properties, _ = channel.basic_get("work.dead")
    death = properties.headers["x-death"][0]
    assert death["reason"] == "rejected" and death["queue"] == "work", properties.headers
    assert death["count"] == 1 and properties.headers["x-first-death-queue"] == "work", death
    channel.basic_reject(method.delivery_tag, requeue=True)
    try:
        channel.queue_declare("bad", arguments={"x-dead-letter-exchange": "dlx"})
        raise AssertionError("a named dead-letter exchange was accepted")
    except pika.exceptions.ChannelClosedByBroker as closed:
        assert closed.reply_code == 406 and "dead-letter" in closed.reply_text, closed
    channel = connection.channel()
    channel.exchange_declare("amq.topic", "topic", passive=True)
    channel.queue_bind("work", "amq.topic", "a.b")
    channel.queue_unbind("work", "amq.topic", "a.b")
    assert http("GET", "/v1/topics/amq.topic/bindings")["bindings"] == []
    channel.basic_publish("", "work", b"later", pika.BasicProperties(headers={"x-delay": 60000}))
    channel.queue_declare("work", passive=True)
    assert http("GET", "/v1/queues/work")["stats"]["delayed"] == 1
    private = channel.queue_declare("", exclusive=True).method.queue
    http("GET", f"/v1/queues/{private}")
    connection.close()
    for _ in range(50):
        try:
            http("GET", f"/v1/queues/{private}")
        except urllib.error.HTTPError as error:
            assert error.code == 404
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the exclusive queue outlived its connection")
    print("queue arguments (dead-letter queue, TTL), reject to the dead-letter queue, a named "
          "dead-letter exchange refused (406), amq.topic, unbind, x-delay, an exclusive queue "
          "deleted with its connection")


def gone(queue):
    for _ in range(50):
        try:
            http("GET", f"/v1/queues/{queue}")
        except urllib.error.HTTPError as error:
            assert error.code == 404
            return True
        time.sleep(0.1)
    return False


def exclusive_and_auto_delete():
    owner = connect()
    mine = owner.channel()
    mine.queue_declare("mine", exclusive=True)
    other = connect()
    for attempt in ("declare", "get", "consume", "purge", "delete"):
        channel = other.channel()
        try:
            if attempt == "declare":
                channel.queue_declare("mine")
            elif attempt == "get":
                channel.basic_get("mine")
            elif attempt == "consume":
                channel.basic_consume("mine", lambda *_: None)
            elif attempt == "purge":
                channel.queue_purge("mine")
            else:
                channel.queue_delete("mine")
            raise AssertionError(f"{attempt} of another connection's exclusive queue passed")
        except pika.exceptions.ChannelClosedByBroker as error:
            assert error.reply_code == 405, (attempt, error)
    # Anyone may publish to it, and its owner reads it.
    channel = other.channel()
    channel.confirm_delivery()
    channel.basic_publish("", "mine", b"for the owner")
    method, _, body = mine.basic_get("mine", auto_ack=True)
    assert body == b"for the owner", body
    # An auto-delete queue goes when its last consumer is cancelled, with its connection alive.
    mine.queue_declare("fleeting", auto_delete=True)
    tag = mine.basic_consume("fleeting", lambda *_: None)
    owner.process_data_events(time_limit=0.1)
    assert stats("fleeting")["consumers"] == 1, stats("fleeting")
    mine.basic_cancel(tag)
    assert gone("fleeting"), "the auto-delete queue outlived its last consumer"
    owner.close()
    assert gone("mine"), "the exclusive queue outlived its connection"
    # Once its owner is gone the name is free again.
    channel = other.channel()
    channel.queue_declare("mine")
    other.close()
    print("exclusive queues locked to their connection (405 for others), auto-delete queues "
          "deleted with their last consumer")


def direct_reply_to():
    requester = connect()
    channel = requester.channel()
    channel.queue_declare("rpcq")
    replies = []
    channel.basic_consume("amq.rabbitmq.reply-to",
                          lambda _ch, method, properties, body: replies.append((properties, body)),
                          auto_ack=True)
    for n in range(2):
        channel.basic_publish("", "rpcq", f"question {n}".encode(), pika.BasicProperties(
            reply_to="amq.rabbitmq.reply-to", correlation_id=f"c{n}"))
    responder = connect()
    answering = responder.channel()
    # One answered over AMQP through the default exchange, one over HTTP's POST /v1/reply.
    method, properties, body = answering.basic_get("rpcq", auto_ack=True)
    assert body == b"question 0" and properties.reply_to.startswith("_reply."), properties
    answering.basic_publish("", properties.reply_to, b"answer 0", pika.BasicProperties(
        correlation_id=properties.correlation_id))
    method, properties, body = answering.basic_get("rpcq", auto_ack=True)
    http("POST", "/v1/reply", {"reply_to": properties.reply_to,
                               "correlation_id": properties.correlation_id,
                               "body": "answer 1"})
    deadline = time.monotonic() + 10
    while len(replies) < 2 and time.monotonic() < deadline:
        requester.process_data_events(time_limit=0.1)
    got = sorted((p.correlation_id, b) for p, b in replies)
    assert got == [("c0", b"answer 0"), ("c1", b'"answer 1"')], got
    # A request with the pseudo reply-to on a channel that does not consume it is refused.
    other = requester.channel()
    try:
        other.confirm_delivery()
        other.basic_publish("", "rpcq", b"q", pika.BasicProperties(
            reply_to="amq.rabbitmq.reply-to"))
        raise AssertionError("a direct reply-to request without its consumer was accepted")
    except pika.exceptions.ChannelClosedByBroker as error:
        assert error.reply_code == 406, error
    requester.close()
    responder.close()
    print("direct reply-to: replies over AMQP and HTTP reach the amq.rabbitmq.reply-to consumer")


def stats(queue):
    return http("GET", f"/v1/queues/{queue}")["stats"]


def transactions():
    connection = connect()
    channel = connection.channel()
    channel.queue_declare("txq", durable=True)
    channel.tx_select()
    for n in range(3):
        channel.basic_publish("", "txq", f"t{n}".encode())
    assert stats("txq")["ready"] == 0, "a publish took effect before tx.commit"
    channel.tx_commit()
    assert stats("txq")["ready"] == 3, stats("txq")
    channel.basic_publish("", "txq", b"rolled back")
    channel.tx_rollback()
    method, _, body = channel.basic_get("txq")
    assert body == b"t0", body
    channel.basic_ack(method.delivery_tag)
    channel.tx_rollback()
    # The rolled-back ack left the delivery unsettled: still leased, not gone.
    assert stats("txq")["leased"] == 1 and stats("txq")["ready"] == 2, stats("txq")
    channel.basic_recover(requeue=True)
    assert stats("txq")["leased"] == 0 and stats("txq")["ready"] == 3, stats("txq")
    method, _, body = channel.basic_get("txq")
    assert method.redelivered, "a recovered delivery is not marked redelivered"
    channel.basic_ack(method.delivery_tag)
    channel.tx_commit()
    assert stats("txq")["ready"] == 2 and stats("txq")["leased"] == 0, stats("txq")
    try:
        channel.confirm_delivery()
        raise AssertionError("confirm mode was accepted on a transactional channel")
    except pika.exceptions.ChannelClosedByBroker as error:
        assert error.reply_code == 406, error
    channel = connection.channel()
    try:
        channel.tx_commit()
        raise AssertionError("tx.commit was accepted without tx.select")
    except pika.exceptions.ChannelClosedByBroker as error:
        assert error.reply_code == 406, error
    # A transaction holds its publishes in the server's memory: at most 64 MiB of bodies.
    channel = connection.channel()
    channel.tx_select()
    body = b"m" * (4 << 20)
    try:
        for _ in range(17):
            channel.basic_publish("", "txq", body)
        channel.tx_commit()
        raise AssertionError("a transaction of 68 MiB was accepted")
    except pika.exceptions.ChannelClosedByBroker as error:
        assert error.reply_code == 406 and "commit" in error.reply_text, error
    assert stats("txq")["ready"] == 2, "a refused transaction stored some of its publishes"
    connection.close()
    print("tx.select/commit/rollback (publishes and acks held until commit, a rolled-back ack "
          "leaves the delivery unsettled, a transaction over 64 MiB refused with 406), "
          "basic.recover requeues with redelivered set")


def too_large_body():
    connection = connect()
    channel = connection.channel()
    channel.queue_declare("big")
    try:
        channel.basic_publish("", "big", b"x" * ((8 << 20) + 1))
        connection.process_data_events(time_limit=5)
        raise AssertionError("a body over 8 MiB was taken")
    except pika.exceptions.ConnectionClosedByBroker as closed:
        assert "larger than the limit" in closed.reply_text, closed
    print("a body over 8 MiB closes the connection with its reason, not a reset")


def owned_queues():
    http("PUT", "/v1/events/subscriptions/pika-group", {"stream_prefix": "order-"})
    connection = connect()
    channel = connection.channel()
    try:
        channel.exchange_delete("amq.topic")
        raise AssertionError("a predeclared exchange was deleted")
    except pika.exceptions.ChannelClosedByBroker as closed:
        assert closed.reply_code == 403, closed
    channel = connection.channel()
    channel.exchange_declare("amq.topic", "topic", passive=True)
    for queue in ["events-sub.pika-group", "events-sub.pika-group.parked"]:
        try:
            channel.queue_delete(queue)
            raise AssertionError(f"{queue} was deleted without its group")
        except pika.exceptions.ChannelClosedByBroker as closed:
            assert closed.reply_code == 406, closed
            assert "persistent subscription" in closed.reply_text, closed
        channel = connection.channel()
        channel.queue_declare(queue, passive=True)
    connection.close()
    http("DELETE", "/v1/events/subscriptions/pika-group")
    assert gone("events-sub.pika-group") and gone("events-sub.pika-group.parked")
    print("amq.topic is refused to exchange.delete (403); a persistent subscription's queues "
          "are refused to queue.delete (406) and go with their group")


def main():
    if sys.argv[3:4] == ["publish"]:
        publish_confirmed(int(sys.argv[4]), sys.argv[5])
        return
    connection = connect()
    channel = connection.channel()
    round_trip(channel)
    interop(channel)
    exchanges(connection, channel)
    connection.close()
    arguments_and_lifetimes()
    transactions()
    direct_reply_to()
    exclusive_and_auto_delete()
    too_large_body()
    owned_queues()
    print("pika: every check passed")


main()

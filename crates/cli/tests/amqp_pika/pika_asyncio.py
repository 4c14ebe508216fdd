"""pika's asyncio adapter (AsyncioConnection, callbacks on an asyncio loop) against Wharf's AMQP
door: connect, declare a durable queue, publish 50 messages with confirms, consume them with
acks, close. Usage: pika_asyncio.py AMQP_PORT"""

import asyncio
import sys

import pika
from pika.adapters.asyncio_connection import AsyncioConnection

COUNT = 50


def main(port):
    loop = asyncio.new_event_loop()
    done = loop.create_future()
    confirmed, received = [], []

    def fail(reason):
        if not done.done():
            done.set_exception(AssertionError(reason))

    def on_open(connection):
        connection.channel(on_open_callback=on_channel)

    def on_channel(channel):
        channel.queue_declare("asyncio-jobs", durable=True,
                              callback=lambda _frame: on_declared(channel))

    def on_declared(channel):
        channel.confirm_delivery(lambda frame: on_confirm(channel, frame),
                                 callback=lambda _frame: publish(channel))

    def publish(channel):
        for n in range(COUNT):
            channel.basic_publish("", "asyncio-jobs", str(n).encode(),
                                  pika.BasicProperties(delivery_mode=2))

    def on_confirm(channel, frame):
        if not isinstance(frame.method, pika.spec.Basic.Ack):
            fail(f"publish not acked: {frame.method}")
            return
        # A confirm may cover several publishes (multiple).
        tag = frame.method.delivery_tag
        first = confirmed[-1] + 1 if confirmed else 1
        confirmed.extend(range(first, tag + 1) if frame.method.multiple else [tag])
        if len(confirmed) == COUNT:
            channel.basic_qos(prefetch_count=10,
                              callback=lambda _frame: channel.basic_consume(
                                  "asyncio-jobs", lambda ch, method, _p, body:
                                  on_message(ch, method, body)))

    def on_message(channel, method, body):
        received.append(int(body))
        channel.basic_ack(method.delivery_tag)
        if len(received) == COUNT and not done.done():
            done.set_result(None)

    parameters = pika.ConnectionParameters(host="127.0.0.1", port=port)
    connection = AsyncioConnection(
        parameters, on_open_callback=on_open,
        on_open_error_callback=lambda _c, error: fail(f"open failed: {error!r}"),
        on_close_callback=lambda _c, reason: fail(f"closed early: {reason!r}"),
        custom_ioloop=loop)
    loop.run_until_complete(asyncio.wait_for(done, timeout=20))
    assert received == list(range(COUNT)), received
    closed = loop.create_future()
    connection.add_on_close_callback(lambda _c, _r: closed.set_result(None))
    connection.close()
    loop.run_until_complete(asyncio.wait_for(closed, timeout=10))
    print(f"pika asyncio: {COUNT} confirmed publishes consumed in order and acked")


if __name__ == "__main__":
    main(int(sys.argv[1]))

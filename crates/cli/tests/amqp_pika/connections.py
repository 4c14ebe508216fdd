"""A pika connection that the test looks at over HTTP and then closes as an operator.
Usage: connections.py AMQP_PORT USER PASSWORD OTHER_TOKEN

Opens a connection with OTHER_TOKEN (an empty user name and the token as password) that only
stays open, then one as USER named `watcher-app`, declares the queue `watched`, publishes one
message to it, consumes it with the tag `watcher` (prefetch 5, manual acks) and never acks it.
Prints `READY` once the delivery is in, then serves the connection until the broker closes it and
prints `closed by broker CODE TEXT` (exit 0), or gives up after 60 s (exit 1)."""

import sys
import time

import pika

AMQP_PORT, USER, PASSWORD, OTHER_TOKEN = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]


def connect(user, password, **client_properties):
    return pika.BlockingConnection(pika.ConnectionParameters(
        host="127.0.0.1", port=AMQP_PORT, heartbeat=30,
        credentials=pika.PlainCredentials(user, password),
        client_properties=client_properties))


other = connect("", OTHER_TOKEN)
connection = connect(USER, PASSWORD, connection_name="watcher-app")
channel = connection.channel()
channel.queue_declare("watched", durable=True)
channel.confirm_delivery()
channel.basic_publish("", "watched", b"unsettled")
channel.basic_qos(prefetch_count=5)
delivered = []
channel.basic_consume("watched", lambda ch, method, props, body: delivered.append(body),
                      consumer_tag="watcher")
deadline = time.monotonic() + 60
while not delivered and time.monotonic() < deadline:
    connection.process_data_events(time_limit=0.1)
assert delivered == [b"unsettled"], delivered
print("READY", flush=True)
try:
    while time.monotonic() < deadline:
        connection.process_data_events(time_limit=0.1)
        other.process_data_events(time_limit=0)
except pika.exceptions.ConnectionClosedByBroker as closed:
    print(f"closed by broker {closed.reply_code} {closed.reply_text}", flush=True)
    sys.exit(0)
print("the broker never closed the connection", flush=True)
sys.exit(1)

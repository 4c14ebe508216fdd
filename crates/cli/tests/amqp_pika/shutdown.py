"""A pika consumer that waits until the server closes its connection, then prints the reply
code and text it was given. Usage: shutdown.py AMQP_PORT"""

import sys

import pika

connection = pika.BlockingConnection(
    pika.ConnectionParameters(host="127.0.0.1", port=int(sys.argv[1]), heartbeat=30))
channel = connection.channel()
channel.queue_declare("waiting")
channel.basic_consume("waiting", lambda *_: None)
print("consuming", flush=True)
try:
    connection.process_data_events(time_limit=30)
    print("the server never closed the connection")
except pika.exceptions.ConnectionClosedByBroker as closed:
    print(f"closed by the server: {closed.reply_code} {closed.reply_text}")
except pika.exceptions.AMQPConnectionError as error:
    print(f"connection lost without a close: {error!r}")

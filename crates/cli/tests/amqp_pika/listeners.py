"""pika against the AMQP door's listeners. Usage:
  listeners.py tls AMQPS_PORT CA_FILE   a round trip over AMQPS, the server checked against CA_FILE
  listeners.py cap AMQP_PORT MAX        MAX connections open; one more is refused with 530"""

import ssl
import sys

import pika


def parameters(port, **extra):
    return pika.ConnectionParameters(host="127.0.0.1", port=port, heartbeat=30,
                                     connection_attempts=1, **extra)


def tls(port, ca_file):
    context = ssl.create_default_context(cafile=ca_file)
    context.check_hostname = False
    connection = pika.BlockingConnection(
        parameters(port, ssl_options=pika.SSLOptions(context)))
    channel = connection.channel()
    channel.queue_declare("over-tls", durable=True)
    channel.confirm_delivery()
    channel.basic_publish("", "over-tls", b"sealed", pika.BasicProperties(delivery_mode=2))
    method, _properties, body = channel.basic_get("over-tls", auto_ack=True)
    assert method is not None and body == b"sealed", (method, body)
    connection.close()
    # Plain AMQP on the TLS port is no AMQP connection at all.
    try:
        pika.BlockingConnection(parameters(port, socket_timeout=5))
        raise AssertionError("a plain connection to the AMQPS port was accepted")
    except pika.exceptions.AMQPConnectionError:
        pass
    print("amqps: round trip over TLS passed")


def cap(port, most):
    open_ones = [pika.BlockingConnection(parameters(port)) for _ in range(most)]
    try:
        pika.BlockingConnection(parameters(port))
        raise AssertionError(f"connection {most + 1} was accepted over a cap of {most}")
    except pika.exceptions.ProbableAccessDeniedError as error:
        raise AssertionError(f"refused as a login failure, not the cap: {error!r}")
    except pika.exceptions.AMQPConnectionError as error:
        text = repr(error)
        assert "530" in text and "amqp_connections_max" in text, text
    # A slot freed is a slot taken again.
    open_ones.pop().close()
    pika.BlockingConnection(parameters(port)).close()
    for connection in open_ones:
        connection.close()
    print(f"cap: connection {most + 1} refused with 530, and admitted once one closed")


if __name__ == "__main__":
    if sys.argv[1] == "tls":
        tls(int(sys.argv[2]), sys.argv[3])
    elif sys.argv[1] == "cap":
        cap(int(sys.argv[2]), int(sys.argv[3]))
    else:
        sys.exit(f"unknown mode {sys.argv[1]!r}")

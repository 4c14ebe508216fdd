"""MQTT logins and MQTT over TLS against Wharf, with paho-mqtt.

    python secure.py logins --port PORT --token ADMIN_TOKEN --user NAME --password PASSWORD \
        --reader NAME:PASSWORD
    python secure.py tls --tls-port PORT --ca CA.pem

`logins` (a server with users): a CONNECT without credentials, with a wrong password or an
unknown token is refused (CONNACK 0x04 in 3.1.1, 0x86 in 5.0); a user's password and a token
(empty user name) log in; a user whose grants allow only reading the topic gets its publish
refused (5.0 PUBACK 0x87). `tls`: over TLS, trusting the test's CA, a client connects in both
versions and makes a QoS 1 round trip. Prints `mqtt secure: every check passed` and exits 0,
or names the failure.
"""

import argparse
import queue
import ssl
import sys
import threading
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

WAIT = 10


def client(version, tls_ca=None):
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="sec-" + uuid.uuid4().hex[:10],
                    protocol=version, reconnect_on_failure=False)
    if tls_ca:
        c.tls_set(ca_certs=tls_ca)
    return c


def connect(args, version, user=None, password=None, tls=False):
    """CONNECT; returns (client, reason code value)."""
    c = client(version, args.ca if tls else None)
    if user is not None or password is not None:
        c.username_pw_set(user, password)
    done, result = threading.Event(), {}

    def on_connect(_c, _u, _flags, reason, _props):
        result["code"] = reason.value if isinstance(reason, ReasonCode) else int(reason)
        done.set()

    def on_disconnect(_c, _u, _flags, reason, _props):
        result.setdefault("code", reason.value if isinstance(reason, ReasonCode) else int(reason))
        done.set()

    c.on_connect, c.on_disconnect = on_connect, on_disconnect
    c.connect(args.host, args.tls_port if tls else args.port, 30)
    c.loop_start()
    assert done.wait(WAIT), "no CONNACK"
    return c, result["code"]


def refused(args):
    # paho gives 3.1.1's return code 0x04 as 5.0's 0x86, so one code is checked for both.
    for version in (mqtt.MQTTv311, mqtt.MQTTv5):
        for user, password in ((None, None), (args.user, "wrong password"), ("", "not-a-token")):
            c, got = connect(args, version, user, password)
            c.loop_stop()
            assert got == 0x86, f"{version} {user!r}: CONNACK {got:#x}, wanted bad user or password"


def logins(args):
    for version in (mqtt.MQTTv311, mqtt.MQTTv5):
        for user, password in ((args.user, args.password), ("", args.token)):
            c, got = connect(args, version, user, password)
            assert got == 0, f"{version} {user!r}: CONNACK {got:#x}"
            c.disconnect()
            c.loop_stop()


def round_trip(c, topic, payload):
    got = queue.Queue()
    subscribed = threading.Event()
    c.on_message = lambda _c, _u, message: got.put(message)
    c.on_subscribe = lambda *_a: subscribed.set()
    c.subscribe(topic, 1)
    assert subscribed.wait(WAIT), "no SUBACK"
    info = c.publish(topic, payload, 1)
    info.wait_for_publish(WAIT)
    message = got.get(timeout=WAIT)
    assert message.payload == payload, message.payload


def reader_cannot_publish(args):
    name, password = args.reader.split(":", 1)
    c, got = connect(args, mqtt.MQTTv5, name, password)
    assert got == 0, f"reader CONNACK {got:#x}"
    acked, result = threading.Event(), {}

    def on_publish(_c, _u, _mid, reason, _props):
        result["code"] = reason.value
        acked.set()

    c.on_publish = on_publish
    c.publish("sec/readonly", b"x", 1)
    assert acked.wait(WAIT), "no PUBACK"
    assert result["code"] == 0x87, f"PUBACK {result['code']:#x}, wanted 0x87 not authorized"
    c.disconnect()
    c.loop_stop()


def over_tls(args):
    for version in (mqtt.MQTTv311, mqtt.MQTTv5):
        c, got = connect(args, version, tls=True)
        assert got == 0, f"TLS CONNACK {got:#x}"
        round_trip(c, f"sec/tls/{version}", b"over tls \x00\xff")
        c.disconnect()
        c.loop_stop()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["logins", "tls"])
    parser.add_argument("--host", default="127.0.0.1")
    for name in ("--port", "--tls-port"):
        parser.add_argument(name, type=int)
    for name in ("--ca", "--token", "--user", "--password", "--reader"):
        parser.add_argument(name)
    args = parser.parse_args()
    failed = 0
    checks = {"logins": (refused, logins, reader_cannot_publish), "tls": (over_tls,)}
    for check in checks[args.mode]:
        try:
            check(args)
            print(f"ok {check.__name__}")
        except (AssertionError, OSError, ssl.SSLError, queue.Empty) as error:
            failed += 1
            print(f"FAIL {check.__name__}: {error!r}")
    if failed:
        sys.exit(1)
    print("mqtt secure: every check passed")


if __name__ == "__main__":
    main()

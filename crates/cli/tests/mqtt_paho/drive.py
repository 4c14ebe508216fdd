"""MQTT 3.1.1 and 5.0 interoperability checks driven by paho-mqtt 2.1.0 (plus a raw socket
where paho will not send what a check needs: a second CONNECT, a bad protocol, a duplicate
QoS 2 PUBLISH, a wildcard in a topic name).

Usage:
  python drive.py --host 127.0.0.1 --port PORT [--broker wharf|mosquitto] [--http URL]
                  [--only NAME]

Each check runs alone, in order, in a thread with a deadline, on topics under
`t/<check>/<random>` and with client ids of its own, so one hung or failing check cannot
hang or spoil the others. Per check the script prints `ok NAME` (sometimes with a note in
parentheses: what the server chose where the spec lets it choose), `FAIL NAME: reason` or
`skip NAME`; at the end `mqtt: N of M checks passed` (and `mqtt: every check passed` when
none failed), and it exits 1 if any check failed. `--only NAME` runs the checks whose name
starts with NAME. A check named `..._v311` speaks MQTT 3.1.1, `..._v5` MQTT 5.0; the
others choose their own version. Spec clause ids are cited as [MQTT-x.y.z-n] from the 3.1.1
or 5.0 text (the version of the check).

Checks (67; `server_keep_alive_v5` only with `--broker wharf`, the last three only with
`--broker wharf` and `--http`):
  connect_v311, _v5                   CONNACK accepted, session present 0 on a clean start
  empty_client_id_v311                zero-length id with clean session 0: CONNACK 0x02, closed
  empty_client_id_v5                  zero-length id: accepted with an Assigned Client Identifier
  second_connect_v311, _v5            a second CONNECT is a protocol error: connection closed
  bad_protocol_level                  level 9: CONNACK 0x01 (or 0x84) then closed, or closed
  bad_protocol_name                   "MQTX": closed, never accepted
  takeover_v311, _v5                  a second connection with the same id closes the first
                                      (5.0: if a DISCONNECT comes first, it says 0x8E)
  ping_v311, _v5                      PINGREQ answered by PINGRESP
  keep_alive_pings_v311, _v5          paho with keep alive 1 s stays connected by pinging
  keep_alive_timeout_v311, _v5        a silent client with keep alive 1 s is closed within
                                      1.5 x keep alive (+1.5 s slack)
  round_trip_qos0/1/2_v311, _v5       payload bytes exact (not UTF-8, and empty), granted QoS
                                      as asked, delivered at the published QoS, RETAIN 0
  qos_downgrade_v311, _v5             SUBACK [0,1,2] for three filters; delivered QoS is
                                      min(published, granted)
  wildcards_v311, _v5                 `+` and `#`, `a/#` matching `a`, first-level `+`
  dollar_topics_v311, _v5             `#` and `+/...` do not match topics starting with `$`
  unsubscribe_v311, _v5               UNSUBACK, then no more deliveries
  retain_on_subscribe_v311, _v5       retained sent on subscribe with RETAIN 1 at its QoS,
                                      live with RETAIN 0
  retain_replace_and_clear_v311, _v5  non-retained publish keeps it, retained replaces it,
                                      empty retained payload clears it
  will_v311, _v5                      socket closed without DISCONNECT: will published
  will_not_on_disconnect_v311, _v5    DISCONNECT: no will
  will_on_disconnect_with_will_v5     DISCONNECT 0x04 (with will message): will published
  will_delay_cancelled_v5             will delay 2 s, back within it: no will
  will_delay_elapses_v5               will delay 1 s: will published after it, not before
  persistent_session_v311, _v5        queued QoS 1 messages delivered on reconnect, session
                                      present 1, subscription kept
  clean_session_v311, _v5             reconnecting clean: session present 0, nothing queued
  session_expiry_zero_v5              clean start 0 without session expiry: session gone
  qos2_duplicate_v311, _v5            same packet id sent twice (DUP) before PUBREL: delivered
                                      once; the id reused after PUBCOMP is a new message
  publish_wildcard_refused_v311, _v5  PUBLISH to `a/+/b`: connection closed (5.0: DISCONNECT
                                      reason >= 0x80 allowed before it), nothing delivered
  no_local_v5                         no local: own publish not delivered back
  retain_as_published_v5              RETAIN 1 kept on live delivery only when asked
  retain_handling_v5                  0 (always), 1 (new subscription only), 2 (never)
  retain_persistent_v311, _v5         a persistent session's new subscription: retained sent
                                      with RETAIN 1, live with RETAIN 0; 5.0 handling 2: none
  subscription_identifier_v5          identifiers of every matching subscription delivered
  topic_alias_v5                      alias set, then used with an empty topic, then remapped
  server_topic_alias_v5               (raw subscriber allowing 5) aliases the server sends are
                                      set with their name first and within the maximum
  server_keep_alive_v5                (Wharf) keep alive 0 or 7200 asked: Server Keep Alive
                                      3600 in CONNACK; 60 asked: none
  message_expiry_v5                   expired while queued: not delivered; the rest carries
                                      the remaining interval
  properties_round_trip_v5            response topic, correlation data, user properties (in
                                      order, repeated keys), content type, payload format
  shared_subscription_v5              `$share/g/...`: each message to exactly one of two, both
                                      get some
  receive_maximum_v5                  never more than Receive Maximum (2) unacked QoS 1
                                      PUBLISHes out; one more per PUBACK
  connack_properties_v5               CONNACK properties valid; the note lists them
  http_to_mqtt                        (Wharf) HTTP topic publish reaches an MQTT subscriber,
                                      `cross.a.b` as `cross/a/b`, `cross.v1/2.z` as `cross/v1.2/z`
  http_to_mqtt_session_v5             (Wharf) HTTP topic publishes reach a persistent session
                                      through wildcard filters, under their own topic names
  mqtt_to_http                        (Wharf) MQTT publish reaches a queue bound over HTTP

On Mosquitto 2.0.11 (Debian; `listener 18830 127.0.0.1`, `allow_anonymous true`,
`persistence false`) 58 of the 61 checks that are not Wharf's pass, in about 35 s
(`server_topic_alias_v5` passes noting that Mosquitto sends no aliases). The three
others fail there because Mosquitto deviates from the spec; their FAIL lines say so
(KNOWN_DEVIATIONS below):
  keep_alive_timeout_v311, _v5   Mosquitto closes a silent client with keep alive 1 s after
                                 1.8 to 6 s, not within 1.5 s [MQTT-3.1.2-24]: it checks keep
                                 alive on a coarse timer (v311 sometimes passes)
  receive_maximum_v5             after the first PUBACK Mosquitto sends two more PUBLISHes for
                                 each PUBACK, so 3, 4, 5 are out with Receive Maximum 2
                                 [MQTT-3.3.4-7] (Mosquitto issue 2301)
Where the spec lets a server choose, the notes of a run say what it chose: Mosquitto closes
without DISCONNECT after a second CONNECT and on takeover (5.0), sends DISCONNECT 0x82 for a
wildcard PUBLISH, answers a bad protocol level with CONNACK 0x01 and a bad name by closing,
lets clients publish to `$` topics, sends one PUBLISH per overlapping subscription, and
sends only ReceiveMaximum=20 and TopicAliasMaximum=10 in CONNACK.
"""

import argparse
import base64
import json
import os
import queue
import secrets
import socket
import struct
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

V311, V5 = mqtt.MQTTv311, mqtt.MQTTv5
VERSION_TAG = {V311: "v311", V5: "v5"}
PROTOCOL_LEVEL = {V311: 4, V5: 5}
# How long a check waits for something that should come: long enough for a loaded CI machine,
# short enough that a missing delivery fails fast.
WAIT = 3.0
# How long a check listens for something that must not come. Deliveries on loopback take
# milliseconds; where a sentinel message can prove the path is drained, checks wait for it
# first and listen this long only for stragglers.
QUIET = 0.5
# Whole-check deadline, so one hung check cannot hang the suite.
CHECK_DEADLINE = 10.0
# Bytes that are not UTF-8, to prove payloads are passed through untouched.
BINARY = b"\x00\xff\xfe\x80bin\xc3\x28" + bytes(range(256))


class Settings:
    def __init__(self, args):
        self.host, self.port = args.host, args.port
        self.broker, self.http = args.broker, args.http


class Context:
    """One check's run: its version, unique topic prefix and client ids, and every client it
    opened, closed after the check whatever happened."""

    def __init__(self, settings, name, version):
        self.settings, self.name, self.version = settings, name, version
        self.run = secrets.token_hex(4)
        self.opened = []
        self.notes = []

    @property
    def v5(self):
        return self.version == V5

    def topic(self, *levels):
        return "/".join(("t", self.name, self.run) + levels)

    def client_id(self):
        # 3.1.1 servers must accept 1 to 23 alphanumeric characters [MQTT-3.1.3-5]; stay in it.
        return "p" + secrets.token_hex(8)

    def note(self, text):
        self.notes.append(text)

    def close_all(self):
        for thing in reversed(self.opened):
            try:
                thing.close()
            except Exception:
                pass


def props(packet_type, **values):
    """paho Properties for `packet_type` (a PacketTypes member) with `values` set."""
    properties = Properties(packet_type)
    for name, value in values.items():
        setattr(properties, name, value)
    return properties


def properties_dict(properties):
    return {} if properties is None else properties.json()


class Mqtt:
    """A paho client on its own network thread, with what arrives kept for the check."""

    def __init__(self, ctx, client_id=None, clean=True, version=None, manual_ack=False):
        self.ctx = ctx
        self.version = version or ctx.version
        self.client_id = ctx.client_id() if client_id is None else client_id
        self.clean = clean
        options = dict(callback_api_version=CallbackAPIVersion.VERSION2,
                       client_id=self.client_id, protocol=self.version,
                       reconnect_on_failure=False, manual_ack=manual_ack)
        if self.version == V311:
            options["clean_session"] = clean
        self.paho = mqtt.Client(**options)
        self.messages = queue.Queue()
        self.acks, self.acked = {}, threading.Condition()
        self.connected, self.gone = threading.Event(), threading.Event()
        self.connack = None
        self.disconnect_reason, self.disconnect_from_server = None, False
        self.paho.on_connect = self._on_connect
        self.paho.on_message = lambda _c, _u, message: self.messages.put(message)
        self.paho.on_subscribe = lambda _c, _u, mid, codes, _p: self._ack(("sub", mid), codes)
        self.paho.on_unsubscribe = lambda _c, _u, mid, codes, _p: self._ack(("unsub", mid),
                                                                           codes)
        self.paho.on_publish = lambda _c, _u, mid, code, _p: self._ack(("pub", mid), code)
        self.paho.on_disconnect = self._on_disconnect
        ctx.opened.append(self)

    @property
    def v5(self):
        return self.version == V5

    def _on_connect(self, _client, _userdata, flags, reason, properties):
        self.connack = (flags.session_present, reason, properties)
        self.connected.set()

    def _on_disconnect(self, _client, _userdata, flags, reason, _properties):
        self.disconnect_reason = reason
        self.disconnect_from_server = flags.is_disconnect_packet_from_server
        self.gone.set()

    def _ack(self, key, value):
        with self.acked:
            self.acks[key] = value
            self.acked.notify_all()

    def _await_ack(self, key, what):
        with self.acked:
            if not self.acked.wait_for(lambda: key in self.acks, WAIT):
                raise AssertionError(f"{self.client_id}: no {what} within {WAIT} s")
            return self.acks.pop(key)

    def connect(self, keepalive=30, properties=None, will=None, accept=True):
        """CONNECT and wait for CONNACK; returns session present. With `accept`, a refusal
        fails the check."""
        if will is not None:
            self.paho.will_set(**will)
        options = {}
        if self.v5:
            options["clean_start"] = self.clean
            if properties is not None:
                options["properties"] = properties
        self.paho.connect(self.ctx.settings.host, self.ctx.settings.port, keepalive, **options)
        self.paho.loop_start()
        if not self.connected.wait(WAIT):
            raise AssertionError(f"{self.client_id}: no CONNACK within {WAIT} s")
        session_present, reason, _properties = self.connack
        if accept and reason.is_failure:
            raise AssertionError(f"{self.client_id}: CONNACK refused: {reason}")
        return session_present

    @property
    def connack_properties(self):
        return properties_dict(self.connack[2])

    def subscribe(self, topic_filter, qos=0, options=None, properties=None, granted=None):
        """SUBSCRIBE one filter (or a list of (filter, qos)); returns the SUBACK codes, which
        must equal `granted` (default: the QoS asked for) [MQTT-3.8.4-5]."""
        if isinstance(topic_filter, list):
            request, asked = topic_filter, [qos for _f, qos in topic_filter]
        elif self.v5:
            options = options or SubscribeOptions(qos=qos)
            request, asked = (topic_filter, options), [options.QoS]
        else:
            request, asked = (topic_filter, qos), [qos]
        result, mid = self.paho.subscribe(request, properties=properties)
        assert result == mqtt.MQTT_ERR_SUCCESS, f"subscribe {topic_filter}: {result}"
        codes = [code.value for code in self._await_ack(("sub", mid), "SUBACK")]
        want = asked if granted is None else granted
        assert codes == want, f"SUBACK for {topic_filter}: {codes}, wanted {want}"
        return codes

    def unsubscribe(self, topic_filter):
        result, mid = self.paho.unsubscribe(topic_filter)
        assert result == mqtt.MQTT_ERR_SUCCESS, f"unsubscribe {topic_filter}: {result}"
        return self._await_ack(("unsub", mid), "UNSUBACK")

    def publish(self, topic, payload, qos=0, retain=False, properties=None):
        """PUBLISH and wait until written (QoS 0) or acknowledged; returns the reason code
        (5.0 PUBACK/PUBREC) or 0."""
        info = self.paho.publish(topic, payload, qos, retain, properties)
        assert info.rc == mqtt.MQTT_ERR_SUCCESS, f"publish {topic}: {info.rc}"
        code = self._await_ack(("pub", info.mid), f"ack of publish to {topic}")
        value = code.value if isinstance(code, ReasonCode) else int(code)
        if self.v5:
            assert value < 0x80, f"publish to {topic} refused: {code}"
        return value

    def expect(self, count=1, timeout=WAIT):
        got = []
        deadline = time.monotonic() + timeout
        while len(got) < count:
            left = deadline - time.monotonic()
            try:
                got.append(self.messages.get(timeout=max(left, 0.001)))
            except queue.Empty:
                raise AssertionError(
                    f"{self.client_id}: {len(got)} of {count} messages within {timeout} s: "
                    f"{describe(got)}") from None
        return got

    def expect_until(self, topic, timeout=WAIT):
        """Every message up to and including the first on `topic`, then stragglers."""
        got = []
        deadline = time.monotonic() + timeout
        while not any(message.topic == topic for message in got):
            left = deadline - time.monotonic()
            try:
                got.append(self.messages.get(timeout=max(left, 0.001)))
            except queue.Empty:
                raise AssertionError(f"{self.client_id}: nothing on {topic} within {timeout} s;"
                                     f" got {describe(got)}") from None
        return got + self.drain(QUIET / 2)

    def drain(self, seconds=QUIET):
        got = []
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            try:
                got.append(self.messages.get(timeout=left) if left > 0
                           else self.messages.get_nowait())
            except queue.Empty:
                return got

    def quiet(self, seconds=QUIET):
        extra = self.drain(seconds)
        assert not extra, f"{self.client_id}: unexpected {describe(extra)}"

    def disconnect(self, reason=None, properties=None):
        """DISCONNECT (5.0: with `reason`), wait for the socket to close."""
        if self.v5 and reason is not None:
            reason = ReasonCode(PacketTypes.DISCONNECT, identifier=reason)
        self.paho.disconnect(reasoncode=reason, properties=properties)
        if not self.gone.wait(WAIT):
            raise AssertionError(f"{self.client_id}: DISCONNECT not done within {WAIT} s")
        self.paho.loop_stop()

    def drop(self):
        """Close the socket without DISCONNECT, as a crashed client or a lost network would."""
        sock = self.paho.socket()
        assert sock is not None, f"{self.client_id}: not connected"
        sock.shutdown(socket.SHUT_RDWR)
        if not self.gone.wait(WAIT):
            raise AssertionError(f"{self.client_id}: paho did not see its socket close")
        self.paho.loop_stop()

    def close(self):
        if self.connected.is_set() and not self.gone.is_set():
            self.paho.disconnect()
            self.gone.wait(1.0)
        if not self.gone.is_set():
            sock = self.paho.socket()
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.gone.wait(1.0)
        if self.gone.is_set():
            self.paho.loop_stop()


def describe(messages):
    return [(m.topic, bytes(m.payload[:40]), f"q{m.qos}", f"r{int(m.retain)}") for m in messages]


def payloads(messages):
    return [bytes(message.payload) for message in messages]


# The raw side: just enough MQTT to send what paho refuses to, and read what comes back.

class Closed(Exception):
    """The server closed the connection."""


def varint(number):
    out = bytearray()
    while True:
        byte, number = number % 128, number // 128
        out.append(byte | (0x80 if number else 0))
        if not number:
            return bytes(out)


def utf8(text):
    data = text.encode() if isinstance(text, str) else text
    return struct.pack("!H", len(data)) + data


def frame(first_byte, body):
    return bytes([first_byte]) + varint(len(body)) + body


def connect_packet(level, client_id, keepalive=30, clean=True, name="MQTT"):
    body = utf8(name) + bytes([level, 0x02 if clean else 0]) + struct.pack("!H", keepalive)
    if level == 5:
        body += varint(0)
    return frame(0x10, body + utf8(client_id))


def publish_packet(level, topic, payload, qos=0, packet_id=0, dup=False, retain=False):
    first = 0x30 | (0x08 if dup else 0) | (qos << 1) | (1 if retain else 0)
    body = utf8(topic) + (struct.pack("!H", packet_id) if qos else b"")
    if level == 5:
        body += varint(0)
    return frame(first, body + payload)


PUBLISH_TYPE, PUBREC_TYPE, PUBCOMP_TYPE = 3, 5, 7
CONNACK_TYPE, PINGRESP_TYPE, DISCONNECT_TYPE = 2, 13, 14
PINGREQ = bytes([0xC0, 0x00])

# 5.0 property identifiers by value type (MQTT 5.0 section 2.2.2.2).
PROPERTY_BYTE = {0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A}
PROPERTY_TWO = {0x13, 0x21, 0x22, 0x23}
PROPERTY_FOUR = {0x02, 0x11, 0x18, 0x27}
PROPERTY_STRING = {0x03, 0x08, 0x12, 0x15, 0x1A, 0x1C, 0x1F}
PROPERTY_BINARY = {0x09, 0x16}


def read_varint(data, at):
    number, shift = 0, 0
    while True:
        byte = data[at]
        at += 1
        number += (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return number, at


def decode_properties(data, at=0):
    """The property block at `data[at:]` as {identifier: value}, user properties as a list."""
    length, at = read_varint(data, at)
    end, found = at + length, {}
    while at < end:
        ident, at = read_varint(data, at)
        if ident in PROPERTY_BYTE:
            found[ident], at = data[at], at + 1
        elif ident in PROPERTY_TWO:
            found[ident], at = struct.unpack_from("!H", data, at)[0], at + 2
        elif ident in PROPERTY_FOUR:
            found[ident], at = struct.unpack_from("!I", data, at)[0], at + 4
        elif ident in PROPERTY_STRING or ident in PROPERTY_BINARY:
            size = struct.unpack_from("!H", data, at)[0]
            found[ident], at = data[at + 2:at + 2 + size], at + 2 + size
        elif ident == 0x0B:
            found[ident], at = read_varint(data, at)
        elif ident == 0x26:
            key_size = struct.unpack_from("!H", data, at)[0]
            key = data[at + 2:at + 2 + key_size]
            at += 2 + key_size
            value_size = struct.unpack_from("!H", data, at)[0]
            found.setdefault(ident, []).append((key, data[at + 2:at + 2 + value_size]))
            at += 2 + value_size
        else:
            raise AssertionError(f"unknown property {ident:#x} in {data.hex()}")
    return found


class Raw:
    """A bare TCP connection speaking MQTT packets built by hand."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.sock = socket.create_connection((ctx.settings.host, ctx.settings.port), WAIT)
        self.buffer = b""
        ctx.opened.append(self)

    def send(self, data):
        self.sock.sendall(data)

    def read(self, timeout=WAIT):
        """The next packet as (type, flags, body); raises Closed at the end of the stream."""
        deadline = time.monotonic() + timeout
        while True:
            packet = self._split()
            if packet is not None:
                return packet
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no packet within {timeout} s")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except (ConnectionResetError, BrokenPipeError):
                data = b""
            if not data:
                raise Closed()
            self.buffer += data

    def _split(self):
        if len(self.buffer) < 2:
            return None
        try:
            length, at = read_varint(self.buffer, 1)
        except IndexError:
            return None
        if len(self.buffer) < at + length:
            return None
        first, body = self.buffer[0], self.buffer[at:at + length]
        self.buffer = self.buffer[at + length:]
        return first >> 4, first & 0x0F, body

    def expect(self, packet_type, timeout=WAIT):
        try:
            kind, flags, body = self.read(timeout)
        except Closed:
            raise AssertionError(f"closed while waiting for packet type {packet_type}") from None
        assert kind == packet_type, f"packet type {kind} ({body.hex()}), wanted {packet_type}"
        return flags, body

    def closed_within(self, timeout=WAIT):
        """Packets read until the server closes; fails if it is still open after `timeout`."""
        deadline, seen = time.monotonic() + timeout, []
        while True:
            try:
                seen.append(self.read(max(deadline - time.monotonic(), 0.001)))
            except Closed:
                return seen
            except AssertionError:
                raise AssertionError(f"still open after {timeout} s; read {seen}") from None

    def connect(self, version, client_id=None, keepalive=30, clean=True):
        """CONNECT; returns (session present, return/reason code, properties)."""
        level = PROTOCOL_LEVEL[version]
        self.send(connect_packet(level, client_id or self.ctx.client_id(), keepalive, clean))
        _flags, body = self.expect(CONNACK_TYPE)
        found = decode_properties(body, 2) if level == 5 else {}
        return body[0] & 1, body[1], found

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def disconnect_reasons(packets):
    """The reason codes of the DISCONNECT packets among `packets` (none: 0x00)."""
    return [body[0] if body else 0 for kind, _f, body in packets if kind == DISCONNECT_TYPE]


def assert_refusal_only(ctx, packets, what):
    """What came before a close is at most a DISCONNECT with an error reason (5.0)."""
    reasons = disconnect_reasons(packets)
    others = [kind for kind, _f, _b in packets if kind != DISCONNECT_TYPE]
    assert not others, f"{what}: packets of types {others} before the close"
    assert all(reason >= 0x80 for reason in reasons), f"{what}: DISCONNECT {reasons}"
    if ctx.v5:
        ctx.note("DISCONNECT " + ", ".join(f"{r:#04x}" for r in reasons) if reasons
                 else "closed without DISCONNECT")


# The checks.

CHECKS = []


def check(*versions, wharf_only=False):
    """Registers a check once per version (`name_v311`, `name_v5`), or once without one."""
    def register(function):
        if not versions:
            CHECKS.append((function.__name__, function, None, wharf_only))
        for version in versions:
            CHECKS.append((f"{function.__name__}_{VERSION_TAG[version]}", function, version,
                           wharf_only))
        return function
    return register


@check(V311, V5)
def connect(ctx):
    client = Mqtt(ctx)
    assert client.connect() is False, "session present on a clean start [MQTT-3.2.2-1]"
    client.disconnect()


@check(V311, V5)
def empty_client_id(ctx):
    if ctx.v5:
        # [MQTT-3.1.3-6], [MQTT-3.2.2-16]: accepted, and the CONNACK says the id it assigned.
        client = Mqtt(ctx, client_id="")
        client.connect()
        assigned = client.connack_properties.get("AssignedClientIdentifier")
        assert assigned, f"no Assigned Client Identifier: {client.connack_properties}"
        client.disconnect()
        return
    # [MQTT-3.1.3-8]: an empty id with clean session 0 is refused with 0x02, then closed.
    raw = Raw(ctx)
    raw.send(connect_packet(4, "", clean=False))
    packets = raw.closed_within()
    connacks = [body for kind, _f, body in packets if kind == CONNACK_TYPE]
    assert connacks and connacks[0][1] == 0x02, f"wanted CONNACK 0x02, read {packets}"


@check(V311, V5)
def second_connect(ctx):
    # [MQTT-3.1.0-2]: a second CONNECT is a protocol violation; the server disconnects.
    raw = Raw(ctx)
    _present, code, _props = raw.connect(ctx.version)
    assert code == 0, f"CONNACK {code:#x}"
    raw.send(connect_packet(PROTOCOL_LEVEL[ctx.version], ctx.client_id()))
    assert_refusal_only(ctx, raw.closed_within(), "after a second CONNECT")


@check()
def bad_protocol_level(ctx):
    # [MQTT-3.1.2-2]: unsupported level: CONNACK 0x01 (3.1.1) and close; 5.0 servers may
    # answer 0x84 Unsupported Protocol Version instead; or just close.
    raw = Raw(ctx)
    raw.send(connect_packet(9, ctx.client_id()))
    packets = raw.closed_within()
    connacks = [body for kind, _f, body in packets if kind == CONNACK_TYPE]
    assert all(body[1] in (0x01, 0x84) for body in connacks), f"read {packets}"
    ctx.note(f"CONNACK {connacks[0][1]:#04x}" if connacks else "closed without CONNACK")


@check()
def bad_protocol_name(ctx):
    # [MQTT-3.1.2-1]: a protocol name that is not "MQTT" is not MQTT: the server may close.
    raw = Raw(ctx)
    raw.send(connect_packet(4, ctx.client_id(), name="MQTX"))
    packets = raw.closed_within()
    connacks = [body for kind, _f, body in packets if kind == CONNACK_TYPE]
    assert all(body[1] != 0 for body in connacks), f"accepted: {packets}"
    ctx.note(f"CONNACK {connacks[0][1]:#04x}" if connacks else "closed without CONNACK")


@check(V311, V5)
def takeover(ctx):
    # [MQTT-3.1.4-2] (5.0: [MQTT-3.1.4-3]): the existing connection with the id is closed;
    # a 5.0 server sends DISCONNECT 0x8E Session taken over first, if it sends one at all.
    first = Mqtt(ctx)
    first.connect()
    second = Mqtt(ctx, client_id=first.client_id)
    second.connect()
    assert first.gone.wait(WAIT), "the first connection is still open"
    if ctx.v5:
        if first.disconnect_from_server:
            reason = first.disconnect_reason.value
            assert reason == 0x8E, f"DISCONNECT {reason:#04x}, not 0x8E Session taken over"
            ctx.note("DISCONNECT 0x8e")
        else:
            ctx.note("closed without DISCONNECT")
    topic = ctx.topic("alive")
    second.subscribe(topic, 1)
    second.publish(topic, b"still here", 1)
    assert payloads(second.expect()) == [b"still here"]


@check(V311, V5)
def ping(ctx):
    raw = Raw(ctx)
    raw.connect(ctx.version)
    for _ in range(2):
        raw.send(PINGREQ)
        _flags, body = raw.expect(PINGRESP_TYPE)
        assert body == b"", f"PINGRESP body {body.hex()}"


@check(V311, V5)
def keep_alive_pings(ctx):
    # [MQTT-3.1.2-23]: a client that pings within its keep alive stays connected.
    pinging = Mqtt(ctx)
    pinging.connect(keepalive=1)
    assert not pinging.gone.wait(2.0), f"closed: {pinging.disconnect_reason}"
    topic = ctx.topic("alive")
    pinging.subscribe(topic, 1)
    pinging.publish(topic, b"kept alive", 1)
    assert payloads(pinging.expect()) == [b"kept alive"]


@check(V311, V5)
def keep_alive_timeout(ctx):
    # [MQTT-3.1.2-24] (5.0: [MQTT-3.1.2-22]): no packet within 1.5 x keep alive: the server
    # closes the connection. A 5.0 server may set its own keep alive in CONNACK (Server Keep
    # Alive) [MQTT-3.1.2-21]. The slack is for timers and a loaded machine.
    raw = Raw(ctx)
    _present, code, found = raw.connect(ctx.version, keepalive=1)
    assert code == 0, f"CONNACK {code:#x}"
    keepalive = found.get(0x13, 1)
    assert 0 < keepalive <= 3, f"Server Keep Alive {keepalive}: too long to test"
    started = time.monotonic()
    slack = 1.5
    try:
        packets = raw.closed_within(1.5 * keepalive + slack)
    except AssertionError:
        raise AssertionError(f"still open {1.5 * keepalive + slack} s after CONNACK with "
                             f"keep alive {keepalive} s") from None
    assert_refusal_only(ctx, packets, "at keep alive timeout")
    ctx.note(f"closed after {time.monotonic() - started:.1f} s")


def round_trip(ctx, qos):
    topic = ctx.topic("rt")
    subscriber, publisher = Mqtt(ctx), Mqtt(ctx)
    subscriber.connect()
    publisher.connect()
    subscriber.subscribe(topic, qos)
    publisher.publish(topic, BINARY, qos)
    publisher.publish(topic, b"", qos)
    first, empty = subscriber.expect(2)
    assert first.topic == topic, first.topic
    assert bytes(first.payload) == BINARY, f"payload changed: {bytes(first.payload)[:40]!r}"
    assert bytes(empty.payload) == b"", f"empty payload arrived as {bytes(empty.payload)!r}"
    assert first.qos == qos and empty.qos == qos, f"delivered QoS {first.qos}, {empty.qos}"
    assert not first.retain, "a live message arrived with RETAIN 1"
    subscriber.quiet(QUIET / 2)


@check(V311, V5)
def round_trip_qos0(ctx):
    round_trip(ctx, 0)


@check(V311, V5)
def round_trip_qos1(ctx):
    round_trip(ctx, 1)


@check(V311, V5)
def round_trip_qos2(ctx):
    round_trip(ctx, 2)


@check(V311, V5)
def qos_downgrade(ctx):
    # [MQTT-3.8.4-5]: one code per filter, in order; [MQTT-3.8.4-6]/[MQTT-3.3.5-1]: delivered
    # at the minimum of the published and the granted QoS.
    topics = [ctx.topic(f"q{qos}") for qos in range(3)]
    subscriber, publisher = Mqtt(ctx), Mqtt(ctx)
    subscriber.connect()
    publisher.connect()
    subscriber.subscribe([(topic, qos) for qos, topic in enumerate(topics)])
    for published in range(3):
        for topic in topics:
            publisher.publish(topic, f"{published}".encode(), published)
    got = subscriber.expect(9)
    delivered = {(m.topic, int(m.payload)): m.qos for m in got}
    for granted, topic in enumerate(topics):
        for published in range(3):
            qos = delivered.get((topic, published))
            assert qos == min(published, granted), \
                f"published at {published} to a QoS {granted} subscription: delivered {qos}"
    subscriber.quiet(QUIET / 2)


def expect_topics(clients):
    """Each of `clients` ((client, expected topics) pairs) is delivered exactly its topics,
    in any order, and nothing else."""
    got = {client.client_id: [] for client, _expected in clients}
    deadline = time.monotonic() + WAIT

    def complete():
        return all(sorted(m.topic for m in got[client.client_id]) == sorted(expected)
                   for client, expected in clients)

    while not complete() and time.monotonic() < deadline:
        for client, _expected in clients:
            got[client.client_id] += client.drain(0.02)
    time.sleep(QUIET / 2)
    for client, expected in clients:
        topics = sorted(m.topic for m in got[client.client_id] + client.drain(0))
        assert topics == sorted(expected), \
            f"{client.client_id}: got {topics}, wanted {sorted(expected)}"


@check(V311, V5)
def wildcards(ctx):
    # [MQTT-4.7.1-2]: `#` also matches the parent level; `+` exactly one level.
    base = ctx.topic()
    names = {"a": f"{base}/a", "ab": f"{base}/a/b", "abc": f"{base}/a/b/c", "xb": f"{base}/x/b",
             "base": base}
    filters = {
        f"{base}/+/b": ["ab", "xb"],
        f"{base}/a/#": ["a", "ab", "abc"],
        f"{base}/#": ["a", "ab", "abc", "xb", "base"],
        f"{base}/+": ["a"],
        f"{base}/a/+/c": ["abc"],
        "+/" + "/".join(base.split("/")[1:]) + "/a": ["a"],
    }
    subscribers = []
    for topic_filter, expected in filters.items():
        client = Mqtt(ctx)
        client.connect()
        client.subscribe(topic_filter, 1)
        subscribers.append((client, [names[key] for key in expected]))
    publisher = Mqtt(ctx)
    publisher.connect()
    for topic in names.values():
        publisher.publish(topic, b"w", 1)
    expect_topics(subscribers)


@check(V311, V5)
def dollar_topics(ctx):
    # [MQTT-4.7.2-1]: filters starting with a wildcard do not match names starting with `$`.
    dollar = f"$dollar{ctx.run}/{ctx.run}/x"
    sentinel = f"s{ctx.run}/{ctx.run}/x"
    everything, plus, explicit = Mqtt(ctx), Mqtt(ctx), Mqtt(ctx)
    for client, topic_filter in ((everything, "#"), (plus, f"+/{ctx.run}/x"),
                                 (explicit, f"$dollar{ctx.run}/#")):
        client.connect()
        client.subscribe(topic_filter, 1)
    publisher = Mqtt(ctx)
    publisher.connect()
    # A server may refuse publishes to `$` names [MQTT-4.7.2]; that is allowed, so the
    # publish's outcome is only noted.
    try:
        outcome = publisher.publish(dollar, b"dollar", 1)
        ctx.note(f"publish to a $ name acknowledged {outcome:#04x}")
    except AssertionError as refused:
        ctx.note(f"publish to a $ name refused: {refused}")
    sentinels = Mqtt(ctx)
    sentinels.connect()
    sentinels.publish(sentinel, b"sentinel", 1)
    for client in (everything, plus):
        got = client.expect_until(sentinel)
        leaked = [m.topic for m in got if m.topic.startswith("$")]
        assert not leaked, f"{client.client_id}: a wildcard filter matched {leaked}"
    reached = [m.topic for m in explicit.drain(QUIET / 2)]
    ctx.note("delivered to an explicit $ filter" if dollar in reached
             else "not delivered to an explicit $ filter")


@check(V311, V5)
def unsubscribe(ctx):
    gone, kept = ctx.topic("gone"), ctx.topic("kept")
    subscriber, publisher = Mqtt(ctx), Mqtt(ctx)
    subscriber.connect()
    publisher.connect()
    subscriber.subscribe(gone, 1)
    subscriber.subscribe(kept, 1)
    publisher.publish(gone, b"before", 1)
    assert payloads(subscriber.expect()) == [b"before"]
    codes = subscriber.unsubscribe(gone)
    if ctx.v5:
        assert [code.value for code in codes] == [0], f"UNSUBACK {codes}"
    publisher.publish(gone, b"after", 1)
    publisher.publish(kept, b"sentinel", 1)
    got = subscriber.expect_until(kept)
    assert [m.topic for m in got] == [kept], f"after UNSUBACK: {describe(got)}"


def clear_retained(ctx, *topics):
    cleaner = Mqtt(ctx)
    cleaner.connect()
    for topic in topics:
        cleaner.publish(topic, b"", 1, retain=True)
    cleaner.disconnect()


@check(V311, V5)
def retain_on_subscribe(ctx):
    # [MQTT-3.3.1-6], [MQTT-3.3.1-8] (5.0: [MQTT-3.3.1-9], [MQTT-3.3.1-12]): retained sent on
    # subscribe with RETAIN 1; a live message to an existing subscription with RETAIN 0.
    first, second = ctx.topic("a"), ctx.topic("b")
    publisher = Mqtt(ctx)
    publisher.connect()
    publisher.publish(first, b"kept a", 1, retain=True)
    publisher.publish(second, BINARY, 2, retain=True)
    subscriber = Mqtt(ctx)
    subscriber.connect()
    subscriber.subscribe(ctx.topic("#"), 2)
    got = {m.topic: m for m in subscriber.expect(2)}
    assert set(got) == {first, second}, describe(got.values())
    assert all(m.retain for m in got.values()), f"RETAIN 0 on subscribe: {describe(got.values())}"
    assert bytes(got[second].payload) == BINARY and got[second].qos == 2
    assert bytes(got[first].payload) == b"kept a" and got[first].qos == 1
    publisher.publish(first, b"live", 1, retain=True)
    live = subscriber.expect()[0]
    assert bytes(live.payload) == b"live" and not live.retain, f"live: {describe([live])}"
    subscriber.quiet(QUIET / 2)
    clear_retained(ctx, first, second)


@check(V311, V5)
def retain_replace_and_clear(ctx):
    # [MQTT-3.3.1-5]: a retained message replaces the one kept; [MQTT-3.3.1-10] (5.0:
    # [MQTT-3.3.1-6]): an empty retained payload removes it; [MQTT-3.3.1-12]: a non-retained
    # publish leaves it alone.
    topic = ctx.topic("r")
    publisher = Mqtt(ctx)
    publisher.connect()

    def retained_now(expected=1):
        subscriber = Mqtt(ctx)
        subscriber.connect()
        subscriber.subscribe(topic, 1)
        got = (subscriber.expect(expected) if expected else []) + subscriber.drain(QUIET / 2)
        subscriber.disconnect()
        assert all(m.retain for m in got), f"RETAIN 0 on subscribe: {describe(got)}"
        return payloads(got)

    publisher.publish(topic, b"one", 1, retain=True)
    publisher.publish(topic, b"two", 1, retain=True)
    assert retained_now() == [b"two"], "a retained publish did not replace the kept one"
    publisher.publish(topic, b"not kept", 1)
    assert retained_now() == [b"two"], "a non-retained publish replaced the kept one"
    publisher.publish(topic, b"", 1, retain=True)
    assert retained_now(0) == [], "an empty retained payload did not clear the kept one"


def will_of(topic, payload=b"gone", qos=1, properties=None):
    will = {"topic": topic, "payload": payload, "qos": qos, "retain": False}
    if properties is not None:
        will["properties"] = properties
    return will


@check(V311, V5)
def will(ctx):
    # [MQTT-3.1.2-8]: the will is published when the connection closes without DISCONNECT.
    topic = ctx.topic("will")
    watcher = Mqtt(ctx)
    watcher.connect()
    watcher.subscribe(topic, 1)
    mortal = Mqtt(ctx)
    mortal.connect(will=will_of(topic, BINARY))
    mortal.drop()
    got = watcher.expect()[0]
    assert got.topic == topic and bytes(got.payload) == BINARY, describe([got])
    assert got.qos == 1 and not got.retain, describe([got])


@check(V311, V5)
def will_not_on_disconnect(ctx):
    # [MQTT-3.1.2-10] (5.0: [MQTT-3.14.4-3]): DISCONNECT removes the will.
    topic = ctx.topic("will")
    watcher = Mqtt(ctx)
    watcher.connect()
    watcher.subscribe(topic, 1)
    polite = Mqtt(ctx)
    polite.connect(will=will_of(topic))
    polite.disconnect()
    watcher.quiet()


@check(V5)
def will_on_disconnect_with_will(ctx):
    # 5.0 DISCONNECT reason 0x04 Disconnect with Will Message: the will is published.
    topic = ctx.topic("will")
    watcher = Mqtt(ctx)
    watcher.connect()
    watcher.subscribe(topic, 1)
    leaving = Mqtt(ctx)
    leaving.connect(will=will_of(topic, b"on purpose"))
    leaving.disconnect(reason=0x04)
    assert payloads(watcher.expect()) == [b"on purpose"]


def will_delay_client(ctx, topic, delay):
    """A 5.0 client whose session outlives its connection, with a delayed will; the will is
    sent at the earlier of the delay and the end of the session [MQTT-3.1.3-9]."""
    client = Mqtt(ctx, clean=False)
    client.connect(properties=props(PacketTypes.CONNECT, SessionExpiryInterval=60),
                   will=will_of(topic, properties=props(PacketTypes.WILLMESSAGE,
                                                        WillDelayInterval=delay)))
    return client


@check(V5)
def will_delay_cancelled(ctx):
    topic = ctx.topic("will")
    watcher = Mqtt(ctx)
    watcher.connect()
    watcher.subscribe(topic, 1)
    client = will_delay_client(ctx, topic, 2)
    client.drop()
    watcher.quiet(0.3)
    back = Mqtt(ctx, client_id=client.client_id, clean=False)
    assert back.connect(properties=props(PacketTypes.CONNECT, SessionExpiryInterval=60)), \
        "session present 0 on the way back"
    watcher.quiet(2.5)
    back.disconnect()


@check(V5)
def will_delay_elapses(ctx):
    topic = ctx.topic("will")
    watcher = Mqtt(ctx)
    watcher.connect()
    watcher.subscribe(topic, 1)
    client = will_delay_client(ctx, topic, 1)
    client.drop()
    started = time.monotonic()
    assert payloads(watcher.expect(timeout=WAIT + 1)) == [b"gone"]
    waited = time.monotonic() - started
    assert waited >= 0.8, f"will published after {waited:.2f} s, before its 1 s delay"


def persistent(ctx, client_id=None):
    """A client whose session outlives the connection: 3.1.1 clean session 0; 5.0 clean
    start 0 with a session expiry of 300 s."""
    client = Mqtt(ctx, client_id=client_id, clean=False)
    properties = props(PacketTypes.CONNECT, SessionExpiryInterval=300) if ctx.v5 else None
    return client, client.connect(properties=properties)


@check(V311, V5)
def persistent_session(ctx):
    # [MQTT-3.1.2-4], [MQTT-3.1.2-5], [MQTT-3.2.2-2]: subscriptions and QoS 1 messages kept
    # while away; session present 1 on the way back.
    topic = ctx.topic("q")
    away, present = persistent(ctx)
    assert present is False, "session present 1 for a new client id"
    away.subscribe(topic, 1)
    away.disconnect()
    publisher = Mqtt(ctx)
    publisher.connect()
    for n in range(3):
        publisher.publish(topic, f"queued {n}".encode(), 1)
    back, present = persistent(ctx, away.client_id)
    assert present is True, "session present 0 on reconnect"
    got = back.expect(3)
    assert payloads(got) == [f"queued {n}".encode() for n in range(3)], describe(got)
    assert all(m.qos == 1 for m in got), describe(got)
    publisher.publish(topic, b"live", 1)
    assert payloads(back.expect()) == [b"live"], "the subscription did not survive"
    back.quiet(QUIET / 2)


@check(V311, V5)
def clean_session(ctx):
    # [MQTT-3.1.2-6] (5.0: [MQTT-3.1.2-4]): a clean start discards the session.
    topic = ctx.topic("q")
    away, _present = persistent(ctx)
    away.subscribe(topic, 1)
    away.disconnect()
    publisher = Mqtt(ctx)
    publisher.connect()
    publisher.publish(topic, b"queued", 1)
    fresh = Mqtt(ctx, client_id=away.client_id, clean=True)
    assert fresh.connect() is False, "session present 1 on a clean start"
    publisher.publish(topic, b"after", 1)
    fresh.quiet()


@check(V5)
def session_expiry_zero(ctx):
    # [MQTT-3.1.2-23]: without Session Expiry Interval the session ends with the connection.
    topic = ctx.topic("q")
    away = Mqtt(ctx, clean=False)
    away.connect()
    away.subscribe(topic, 1)
    away.disconnect()
    publisher = Mqtt(ctx)
    publisher.connect()
    publisher.publish(topic, b"queued", 1)
    back = Mqtt(ctx, client_id=away.client_id, clean=False)
    assert back.connect() is False, "session present 1 after an expiry of 0"
    back.quiet()


def qos2_exchange(raw, level, topic, payload, packet_id, dup_first=False):
    """Sends a QoS 2 PUBLISH (twice, the second with DUP, when `dup_first`), then PUBREL."""
    raw.send(publish_packet(level, topic, payload, 2, packet_id))
    sends = 2 if dup_first else 1
    for n in range(sends):
        _flags, body = raw.expect(PUBREC_TYPE)
        assert struct.unpack_from("!H", body)[0] == packet_id, f"PUBREC {body.hex()}"
        if len(body) > 2:
            assert body[2] < 0x80, f"PUBREC reason {body[2]:#x}"
        if n + 1 < sends:
            raw.send(publish_packet(level, topic, payload, 2, packet_id, dup=True))
    raw.send(frame(0x62, struct.pack("!H", packet_id)))
    _flags, body = raw.expect(PUBCOMP_TYPE)
    assert struct.unpack_from("!H", body)[0] == packet_id, f"PUBCOMP {body.hex()}"


@check(V311, V5)
def qos2_duplicate(ctx):
    # [MQTT-4.3.3-2] (5.0: [MQTT-4.3.3-10]): until PUBREL a PUBLISH with the same packet id
    # is the same message; after PUBCOMP the id names a new one.
    topic = ctx.topic("once")
    subscriber = Mqtt(ctx)
    subscriber.connect()
    subscriber.subscribe(topic, 2)
    raw = Raw(ctx)
    _present, code, _found = raw.connect(ctx.version)
    assert code == 0, f"CONNACK {code:#x}"
    level = PROTOCOL_LEVEL[ctx.version]
    qos2_exchange(raw, level, topic, b"once", 7, dup_first=True)
    qos2_exchange(raw, level, topic, b"again", 7)
    got = subscriber.expect(2)
    assert payloads(got) == [b"once", b"again"], describe(got)
    subscriber.quiet()


@check(V311, V5)
def publish_wildcard_refused(ctx):
    # [MQTT-3.3.2-2]: no wildcards in a topic name; it is a protocol error, the connection is
    # closed [MQTT-4.8.0-1] (5.0 [MQTT-4.13.1-1], maybe after DISCONNECT 0x90 or 0x81/0x82).
    watcher = Mqtt(ctx)
    watcher.connect()
    watcher.subscribe(ctx.topic("#"), 1)
    raw = Raw(ctx)
    raw.connect(ctx.version)
    raw.send(publish_packet(PROTOCOL_LEVEL[ctx.version], ctx.topic("+", "x"), b"wild"))
    assert_refusal_only(ctx, raw.closed_within(), "after PUBLISH to a wildcard")
    watcher.quiet(QUIET / 2)


@check(V5)
def no_local(ctx):
    # [MQTT-3.8.3-3]: No Local: a client's own publishes are not sent to it.
    topic, sentinel = ctx.topic("x"), ctx.topic("sentinel")
    talker, other = Mqtt(ctx), Mqtt(ctx)
    talker.connect()
    other.connect()
    talker.subscribe(topic, options=SubscribeOptions(qos=1, noLocal=True))
    talker.subscribe(sentinel, 1)
    other.subscribe(topic, 1)
    talker.publish(topic, b"mine", 1)
    talker.publish(sentinel, b"sentinel", 1)
    got = talker.expect_until(sentinel)
    assert [m.topic for m in got] == [sentinel], f"own message came back: {describe(got)}"
    assert payloads(other.expect()) == [b"mine"]


@check(V5)
def retain_as_published(ctx):
    # [MQTT-3.3.1-12], [MQTT-3.3.1-13]: live messages keep RETAIN 1 only with the option.
    topic = ctx.topic("x")
    keeps, clears, publisher = Mqtt(ctx), Mqtt(ctx), Mqtt(ctx)
    for client in (keeps, clears, publisher):
        client.connect()
    keeps.subscribe(topic, options=SubscribeOptions(qos=1, retainAsPublished=True))
    clears.subscribe(topic, 1)
    publisher.publish(topic, b"retained", 1, retain=True)
    publisher.publish(topic, b"plain", 1)
    kept = keeps.expect(2)
    assert [(bytes(m.payload), m.retain) for m in kept] == [(b"retained", True),
                                                            (b"plain", False)], describe(kept)
    cleared = clears.expect(2)
    assert not any(m.retain for m in cleared), describe(cleared)
    clear_retained(ctx, topic)


@check(V5)
def retain_handling(ctx):
    # [MQTT-3.3.1-9], [MQTT-3.3.1-10], [MQTT-3.3.1-11]: 0 sends retained on every subscribe,
    # 1 only when the subscription is new, 2 never.
    topic = ctx.topic("x")
    publisher = Mqtt(ctx)
    publisher.connect()
    publisher.publish(topic, b"kept", 1, retain=True)
    never, new_only = Mqtt(ctx), Mqtt(ctx)
    never.connect()
    new_only.connect()
    never.subscribe(topic, options=SubscribeOptions(qos=1, retainHandling=2))
    never.quiet()
    once = SubscribeOptions(qos=1, retainHandling=1)
    new_only.subscribe(topic, options=once)
    assert payloads(new_only.expect()) == [b"kept"], "handling 1: nothing on a new subscription"
    new_only.subscribe(topic, options=once)
    new_only.quiet()
    new_only.subscribe(topic, options=SubscribeOptions(qos=1, retainHandling=0))
    got = new_only.expect()
    assert payloads(got) == [b"kept"] and got[0].retain, f"handling 0: {describe(got)}"
    clear_retained(ctx, topic)


@check(V311, V5)
def retain_persistent(ctx):
    # As retain_on_subscribe and retain_handling, for a session that outlives its connection
    # (Wharf queues its messages): [MQTT-3.3.1-8] (5.0: [MQTT-3.3.1-9], [MQTT-3.3.1-11]).
    topic = ctx.topic("p")
    publisher = Mqtt(ctx)
    publisher.connect()
    publisher.publish(topic, b"kept", 1, retain=True)
    subscriber, _ = persistent(ctx)
    subscriber.subscribe(topic, 1)
    got = subscriber.expect()
    assert payloads(got) == [b"kept"] and got[0].retain, f"on subscribe: {describe(got)}"
    publisher.publish(topic, b"live", 1)
    live = subscriber.expect()
    assert payloads(live) == [b"live"] and not live[0].retain, f"live: {describe(live)}"
    subscriber.quiet(QUIET / 2)
    subscriber.disconnect()
    if ctx.v5:
        never, _ = persistent(ctx)
        never.subscribe(topic, options=SubscribeOptions(qos=1, retainHandling=2))
        never.quiet()
        publisher.publish(topic, b"after", 1)
        assert payloads(never.expect()) == [b"after"], "handling 2 dropped a live message"
        never.quiet(QUIET / 2)
    clear_retained(ctx, topic)


@check(V5)
def subscription_identifier(ctx):
    # [MQTT-3.3.4-3], [MQTT-3.3.4-4], [MQTT-3.3.4-5]: a delivery carries the identifiers of
    # the subscriptions it matched (several in one PUBLISH, or one PUBLISH per subscription).
    a, b, c = ctx.topic("a"), ctx.topic("b"), ctx.topic("c")
    client, publisher = Mqtt(ctx), Mqtt(ctx)
    client.connect()
    publisher.connect()
    client.subscribe(a, 1, properties=props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=7))
    client.subscribe(ctx.topic("+"), 1,
                     properties=props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=11))
    client.subscribe(c, 1)
    for topic in (a, b, c):
        publisher.publish(topic, b"id", 1)
    got = client.expect_until(c)
    seen = {}
    for message in got:
        found = properties_dict(message.properties).get("SubscriptionIdentifier", [])
        seen.setdefault(message.topic, []).append(sorted(found))
    # One copy with every matching subscription's identifiers, or a copy per subscription.
    assert seen.get(a) in ([[7, 11]], [[7], [11]], [[11], [7]]), f"{a}: {seen.get(a)}"
    assert seen.get(b) == [[11]], f"{b}: {seen.get(b)}"
    assert seen.get(c) in ([[11]], [[], [11]], [[11], []]), f"{c}: {seen.get(c)}"
    ctx.note("overlapping subscriptions: " +
             ("one PUBLISH with both ids" if len(seen[a]) == 1 else "one PUBLISH per id"))


@check(V5)
def topic_alias(ctx):
    # [MQTT-3.3.2-12]: an alias set with a topic, then used with an empty topic name, then
    # mapped to another topic. The subscriber allows no aliases, so it gets full names
    # [MQTT-3.3.2-9].
    first, second = ctx.topic("first"), ctx.topic("second")
    subscriber, publisher = Mqtt(ctx), Mqtt(ctx)
    subscriber.connect()
    publisher.connect()
    most = publisher.connack_properties.get("TopicAliasMaximum", 0)
    assert most >= 1, f"the server allows no topic aliases (Topic Alias Maximum {most})"
    subscriber.subscribe(ctx.topic("#"), 1)
    alias = props(PacketTypes.PUBLISH, TopicAlias=1)
    publisher.publish(first, b"set", 1, properties=alias)
    publisher.publish("", b"used", 1, properties=alias)
    publisher.publish(second, b"remapped", 1, properties=alias)
    publisher.publish("", b"used again", 1, properties=alias)
    got = subscriber.expect(4)
    assert [(m.topic, bytes(m.payload)) for m in got] == [
        (first, b"set"), (first, b"used"), (second, b"remapped"), (second, b"used again")], \
        describe(got)
    aliased = [m for m in got if "TopicAlias" in properties_dict(m.properties)]
    assert not aliased, f"aliases sent to a client that allowed none: {describe(aliased)}"


@check(V5, wharf_only=True)
def server_keep_alive(ctx):
    # [MQTT-3.2.2-21]: a server may set the keep-alive a 5.0 client must use. Wharf sets one
    # (3,600 s) for a client that asks for none or a longer one, and keeps a shorter one.
    for asked, told in ((0, 3600), (7200, 3600), (60, None)):
        raw = Raw(ctx)
        _present, code, found = raw.connect(ctx.version, keepalive=asked)
        assert code == 0, f"CONNACK {code:#x}"
        assert found.get(0x13) == told, f"asked {asked} s: Server Keep Alive {found.get(0x13)}"
        raw.close()


@check(V5)
def server_topic_alias(ctx):
    # [MQTT-3.3.2-10/-12]: a server may send Topic Aliases up to the client's Topic Alias
    # Maximum; an alias is first sent with its topic name, then alone. paho-mqtt reads no
    # aliases, so the subscriber is a raw client that allows 5.
    topic = ctx.topic("aliased")
    raw = Raw(ctx)
    connect_properties = b"\x22" + struct.pack("!H", 5)
    body = (utf8("MQTT") + bytes([5, 0x02]) + struct.pack("!H", 30)
            + varint(len(connect_properties)) + connect_properties + utf8(ctx.client_id()))
    raw.send(frame(0x10, body))
    _flags, connack = raw.expect(CONNACK_TYPE)
    assert connack[1] == 0, f"CONNACK {connack[1]:#x}"
    raw.send(frame(0x82, struct.pack("!H", 1) + varint(0) + utf8(topic) + b"\x00"))
    raw.expect(9)
    publisher = Mqtt(ctx)
    publisher.connect()
    for payload in (b"one", b"two", b"three"):
        publisher.publish(topic, payload, 1)
    names, aliases = [], {}
    for _ in range(3):
        _flags, packet = raw.expect(PUBLISH_TYPE)
        size = struct.unpack_from("!H", packet)[0]
        name = packet[2:2 + size].decode()
        found = decode_properties(packet, 2 + size)
        alias = found.get(0x23)
        if alias is not None:
            assert 1 <= alias <= 5, f"alias {alias} over the client's maximum 5"
            if name:
                aliases[alias] = name
            else:
                assert alias in aliases, f"alias {alias} used before it was set"
                name = aliases[alias]
        else:
            assert name, "an empty topic name without an alias"
        names.append(name)
    assert names == [topic] * 3, names
    ctx.note(f"{len(aliases)} alias(es) used" if aliases else "no aliases used")
    if ctx.settings.broker == "wharf":
        assert aliases, "Wharf sets aliases for a client that allows them"


@check(V5)
def message_expiry(ctx):
    # [MQTT-3.3.2-5]: an expired message is not delivered; [MQTT-3.3.2-6]: the rest carry
    # the interval less the time they waited.
    topic = ctx.topic("q")
    away, _present = persistent(ctx)
    away.subscribe(topic, 1)
    away.disconnect()
    publisher = Mqtt(ctx)
    publisher.connect()
    publisher.publish(topic, b"short", 1,
                      properties=props(PacketTypes.PUBLISH, MessageExpiryInterval=1))
    publisher.publish(topic, b"long", 1,
                      properties=props(PacketTypes.PUBLISH, MessageExpiryInterval=60))
    publisher.publish(topic, b"forever", 1)
    time.sleep(2.2)
    back, present = persistent(ctx, away.client_id)
    assert present is True, "session present 0"
    got = back.expect(2)
    back.quiet(QUIET / 2)
    assert payloads(got) == [b"long", b"forever"], describe(got)
    remaining = properties_dict(got[0].properties).get("MessageExpiryInterval")
    assert remaining is not None and remaining <= 58, f"long: expiry interval {remaining}"
    assert "MessageExpiryInterval" not in properties_dict(got[1].properties), "forever: expiry"
    ctx.note(f"remaining interval after ~2 s: {remaining} s")


@check(V5)
def properties_round_trip(ctx):
    # [MQTT-3.3.2-15], [MQTT-3.3.2-16], [MQTT-3.3.2-18], [MQTT-3.3.2-20], [MQTT-3.3.2-4]:
    # the server forwards these properties unaltered; user properties in order.
    topic = ctx.topic("x")
    subscriber, publisher = Mqtt(ctx), Mqtt(ctx)
    subscriber.connect()
    publisher.connect()
    subscriber.subscribe(topic, 1)
    user = [("tenant", "acme"), ("hop", "1"), ("tenant", "second"), ("empty", "")]
    sent = props(PacketTypes.PUBLISH, ResponseTopic=ctx.topic("reply"),
                 CorrelationData=b"\x00corr\xff", ContentType="application/json; v=1",
                 PayloadFormatIndicator=1, UserProperty=user)
    publisher.publish(topic, b'{"k": "v"}', 1, properties=sent)
    message = subscriber.expect()[0]
    found = properties_dict(message.properties)
    assert bytes(message.payload) == b'{"k": "v"}'
    assert found.get("ResponseTopic") == ctx.topic("reply"), found
    assert message.properties.CorrelationData == b"\x00corr\xff", found
    assert found.get("ContentType") == "application/json; v=1", found
    assert found.get("PayloadFormatIndicator") == 1, found
    assert [tuple(pair) for pair in found.get("UserProperty", [])] == user, found


@check(V5)
def shared_subscription(ctx):
    # 5.0 section 4.8.2: each message to a shared subscription goes to one member.
    topic = ctx.topic("work")
    group = f"$share/g{ctx.run}/{topic}"
    members = [Mqtt(ctx), Mqtt(ctx)]
    for member in members:
        member.connect()
        member.subscribe(group, 1)
    publisher = Mqtt(ctx)
    publisher.connect()
    count = 20
    for n in range(count):
        publisher.publish(topic, str(n).encode(), 1)
    got, deadline = [[], []], time.monotonic() + WAIT
    while sum(map(len, got)) < count and time.monotonic() < deadline:
        for share, member in zip(got, members):
            share.extend(member.drain(0.05))
    for share, member in zip(got, members):
        share.extend(member.drain(QUIET / 2))
    numbers = sorted(int(m.payload) for share in got for m in share)
    assert numbers == list(range(count)), f"delivered {numbers}"
    assert all(got), f"one member got them all: {[len(share) for share in got]}"
    ctx.note(f"split {len(got[0])}/{len(got[1])}")


@check(V5)
def receive_maximum(ctx):
    # [MQTT-3.3.4-7]: no more unacknowledged QoS 1 and 2 PUBLISHes than the client's Receive
    # Maximum; more flow as acks come back.
    topic = ctx.topic("flow")
    slow = Mqtt(ctx, manual_ack=True)
    slow.connect(properties=props(PacketTypes.CONNECT, ReceiveMaximum=2))
    slow.subscribe(topic, 1)
    publisher = Mqtt(ctx)
    publisher.connect()
    count = 6
    for n in range(count):
        publisher.publish(topic, str(n).encode(), 1)
    got, acked = slow.expect(2), 0
    while True:
        extra = slow.drain(QUIET if acked == 0 else 0.2)
        assert not extra, (f"{len(got) + len(extra) - acked} unacknowledged PUBLISHes out with "
                           f"Receive Maximum 2, after {acked} PUBACKs")
        if len(got) == count:
            break
        slow.paho.ack(got[acked].mid, 1)
        acked += 1
        got += slow.expect()
    for message in got[acked:]:
        slow.paho.ack(message.mid, 1)
    assert payloads(got) == [str(n).encode() for n in range(count)], describe(got)


@check(V5)
def connack_properties(ctx):
    # 5.0 section 3.2.2.3: properties the server may send; valid ranges only.
    client = Mqtt(ctx)
    client.connect()
    found = client.connack_properties
    checks = {
        "ReceiveMaximum": lambda v: v >= 1,
        "MaximumQoS": lambda v: v in (0, 1),
        "RetainAvailable": lambda v: v in (0, 1),
        "MaximumPacketSize": lambda v: v >= 1,
        "TopicAliasMaximum": lambda v: v >= 0,
        "WildcardSubscriptionAvailable": lambda v: v in (0, 1),
        "SubscriptionIdentifierAvailable": lambda v: v in (0, 1),
        "SharedSubscriptionAvailable": lambda v: v in (0, 1),
        "ServerKeepAlive": lambda v: v >= 0,
    }
    for name, valid in checks.items():
        if name in found:
            assert valid(found[name]), f"{name} = {found[name]}"
    assert "AssignedClientIdentifier" not in found, "an id assigned though the client gave one"
    ctx.note(", ".join(f"{name}={value}" for name, value in sorted(found.items())) or "none")
    client.disconnect()


def http(ctx, method, path, body):
    request = urllib.request.Request(ctx.settings.http + path, method=method,
                                     data=json.dumps(body).encode())
    request.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=WAIT + 2) as response:
            text = response.read()
    except urllib.error.HTTPError as error:
        raise AssertionError(f"{method} {path}: {error.code} {error.read()[:300]!r}") from None
    return json.loads(text) if text else None


@check(wharf_only=True)
def http_to_mqtt(ctx):
    # MQTT `/` is Wharf's word separator `.`; a `.` inside an MQTT level is `/` in the key.
    subscriber = Mqtt(ctx, version=V311)
    subscriber.connect()
    subscriber.subscribe("cross/a/b", 1)
    subscriber.subscribe("cross/v1.2/z", 1)
    messages = [{"routing_key": "cross.a.b", "body_base64": base64.b64encode(BINARY).decode()},
                {"routing_key": "cross.v1/2.z", "body_base64": base64.b64encode(b"dot").decode()}]
    http(ctx, "POST", "/v1/topics/mqtt/publish", {"messages": messages})
    got = {m.topic: bytes(m.payload) for m in subscriber.expect(2)}
    assert got == {"cross/a/b": BINARY, "cross/v1.2/z": b"dot"}, got


@check(V5, wharf_only=True)
def http_to_mqtt_session(ctx):
    # A persistent session queues what it gets; a message published over HTTP still goes out
    # under its own topic name, here through wildcard filters, while the client is away too.
    away, _ = persistent(ctx)
    away.subscribe("crossp/+/b", 1)
    away.subscribe("crossp/#", 1)
    away.disconnect()
    messages = [{"routing_key": "crossp.a.b", "body": {"n": 1}},
                {"routing_key": "crossp.c", "body": {"n": 2}}]
    http(ctx, "POST", "/v1/topics/mqtt/publish", {"messages": messages})
    back, present = persistent(ctx, away.client_id)
    assert present is True, "session present 0 on reconnect"
    delivered = back.expect(2)
    got = {m.topic: json.loads(bytes(m.payload)) for m in delivered}
    assert got == {"crossp/a/b": {"n": 1}, "crossp/c": {"n": 2}}, got
    user_properties = [getattr(m.properties, "UserProperty", None) for m in delivered]
    assert user_properties == [None, None], f"User Properties sent: {user_properties}"
    back.quiet(QUIET / 2)  # one copy for the two overlapping filters


@check(wharf_only=True)
def mqtt_to_http(ctx):
    http(ctx, "PUT", "/v1/queues/crossq", {})
    # The destination's member is flattened into the binding (`queue`, `topic` or `stream`).
    http(ctx, "POST", "/v1/topics/mqtt/bindings", {"pattern": "cross.x.*", "queue": "crossq"})
    publisher = Mqtt(ctx, version=V311)
    publisher.connect()
    publisher.publish("cross/x/y", b"from mqtt", 1)
    answer = http(ctx, "POST", "/v1/queues/crossq/receive", {"max_messages": 1, "wait_ms": 2000})
    received = answer["messages"]
    assert len(received) == 1, answer
    message = received[0]
    if message.get("body_base64") is not None:
        body = base64.b64decode(message["body_base64"])
    else:
        body = message.get("body")
        body = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    assert body == b"from mqtt", answer


# The runner.

# Checks that a broker is known to fail, by name prefix: still failures (the checks accept
# the spec's behaviour only), but the line says it is known.
KNOWN_DEVIATIONS = {
    "mosquitto": {
        "keep_alive_timeout": "Mosquitto 2.0.11 checks keep alive on a coarse timer and closes "
                              "a silent keep-alive-1 client after 1.8 to 6 s",
        "receive_maximum_v5": "Mosquitto 2.0.11 sends two PUBLISHes per PUBACK once the "
                              "client's Receive Maximum is reached (its issue 2301)",
    },
}

def run_one(settings, name, function, version):
    """Runs one check in a thread with a deadline; returns (passed, reason or note)."""
    ctx = Context(settings, name, version)
    outcome = {}

    def body():
        try:
            function(ctx)
            outcome["ok"] = True
        except AssertionError as failure:
            outcome["failure"] = str(failure) or traceback.format_exc(limit=-1).strip()
        except Exception as error:
            outcome["failure"] = f"{type(error).__name__}: {error}"

    thread = threading.Thread(target=body, name=name, daemon=True)
    thread.start()
    thread.join(CHECK_DEADLINE)
    ctx.close_all()
    if thread.is_alive():
        return False, f"no result within {CHECK_DEADLINE} s"
    if "ok" in outcome:
        return True, "; ".join(ctx.notes)
    return False, outcome.get("failure", "no result")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--broker", choices=("wharf", "mosquitto"), default="wharf")
    parser.add_argument("--http", help="Wharf's HTTP base URL, for the checks that cross doors")
    parser.add_argument("--only", help="run only the checks whose name starts with this")
    args = parser.parse_args()
    settings, only = Settings(args), args.only
    passed = failed = skipped = 0
    started = time.monotonic()
    for name, function, version, wharf_only in CHECKS:
        if only and not name.startswith(only):
            continue
        if wharf_only and (settings.broker != "wharf" or not settings.http):
            print(f"skip {name}", flush=True)
            skipped += 1
            continue
        ok, text = run_one(settings, name, function, version)
        if ok:
            passed += 1
            print(f"ok {name}" + (f" ({text})" if text else ""), flush=True)
        else:
            failed += 1
            known = [why for prefix, why in KNOWN_DEVIATIONS.get(settings.broker, {}).items()
                     if name.startswith(prefix)]
            print(f"FAIL {name}: {text}" + "".join(f" [known: {why}]" for why in known),
                  flush=True)
    total = passed + failed
    print(f"mqtt: {passed} of {total} checks passed"
          + (f", {skipped} skipped" if skipped else "")
          + f" in {time.monotonic() - started:.1f} s", flush=True)
    if total and not failed:
        print("mqtt: every check passed", flush=True)
    sys.stdout.flush()
    # Paho threads of a timed-out check may still be running; do not wait for them.
    os._exit(0 if total and not failed else 1)


if __name__ == "__main__":
    main()

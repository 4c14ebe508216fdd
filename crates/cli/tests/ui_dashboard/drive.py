"""Drives the web dashboard in headless Chromium against a running, secured server.

Usage: drive.py BASE_URL SCREENSHOT_DIR AMQP_PORT, with the administrator token in
WHARF_UI_TOKEN.

Creates its data over the HTTP API (a queue whose dead-letter queue holds dead letters, a
topic bound to it, alert rules whose events reach a queue), then walks every page as a user
would: logs in, reads what each page shows from the DOM, waits for the alert rules' states,
deletes a message, redrives, purges, sends and publishes through the buttons and forms, and
checks the API agrees; sees a pika connection and its consumer, and closes it from the page. Fails on any JavaScript error or content-security-policy violation
in the browser's console, and writes a screenshot of each page.
"""

import json
import os
import sys
import threading
import time

import pika
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from browser import Api, chromium  # noqa: E402 (after the path)

BASE = sys.argv[1].rstrip("/")
SHOTS = sys.argv[2]
AMQP_PORT = int(sys.argv[3])
TOKEN = os.environ["WHARF_UI_TOKEN"]
API = Api(BASE, TOKEN)
api, expect = API.call, API.expect
# A page refreshes every 2 s; 15 s leaves room for a slow, shared machine.
WAIT_S = 15

QUEUE = "orders"
DEAD = "orders.dead"
TOPIC = "events"
# The server's alerts topic (alerts.topic) and a queue bound to it, as docs/operations.md does.
ALERTS_TOPIC = "wharf.alerts"
# events, the alerts topic, and amq.direct, amq.fanout, amq.topic and amq.headers, which the
# AMQP door declares when it starts.
TOPIC_COUNT = "6"
PAGER = "pager"
# One rule in each state once the server has evaluated them (every 200 ms in this test's
# configuration), listed by the page firing first, then pending, then ok by name.
RULES = {
    "dead-letters": {"queue": DEAD, "metric": "ready", "op": ">", "threshold": 0, "readiness": True},
    "orders-backlog": {"queue": QUEUE, "metric": "ready", "op": ">", "threshold": 0, "for_ms": 600000},
    "disk-nearly-full": {"metric": "disk_free_bytes", "op": "<", "threshold": 1},
    "events-unroutable": {"topic": TOPIC, "metric": "unroutable", "rate": True, "op": ">", "threshold": 0},
}


def seed():
    """orders (2 dead letters in orders.dead, 1 ready), topic events bound to orders, the
    alerts topic bound to pager, and the alert rules."""
    expect(201, "PUT", f"/v1/queues/{QUEUE}", {"max_deliveries": 3, "dead_letter_queue": DEAD})
    expect(201, "PUT", "/v1/queues/audit", {})
    messages = [{"id": f"order-{n}", "body": {"order": n}} for n in range(3)]
    expect(201, "POST", f"/v1/queues/{QUEUE}/messages", {"messages": messages})
    received = expect(200, "POST", f"/v1/queues/{QUEUE}/receive", {"max_messages": 2})["messages"]
    assert len(received) == 2, received
    receipts = [m["receipt"] for m in received]
    nacked = expect(200, "POST", f"/v1/queues/{QUEUE}/nack",
                    {"receipts": receipts, "dead_letter": True, "error": "cannot parse order"})
    assert all(r["ok"] for r in nacked["results"]), nacked
    expect(201, "PUT", f"/v1/topics/{TOPIC}", {})
    expect(201, "POST", f"/v1/topics/{TOPIC}/bindings", {"pattern": "orders.#", "queue": QUEUE})
    assert stats(QUEUE)["ready"] == 1 and stats(DEAD)["ready"] == 2
    expect(201, "PUT", f"/v1/topics/{ALERTS_TOPIC}", {})
    expect(201, "PUT", f"/v1/queues/{PAGER}", {})
    expect(201, "POST", f"/v1/topics/{ALERTS_TOPIC}/bindings", {"pattern": "alert.#", "queue": PAGER})
    for name, rule in RULES.items():
        expect(201, "PUT", f"/v1/alerts/{name}", rule)


def stats(queue):
    return expect(200, "GET", f"/v1/queues/{queue}")["stats"]


class Page:
    """The browser with waits that read the DOM until a condition holds."""

    def __init__(self, driver):
        self.driver = driver
        self.console = []

    def open(self, fragment):
        self.driver.get(f"{BASE}/ui#{fragment}")

    def text(self, selector):
        return self.driver.find_element(By.CSS_SELECTOR, selector).text

    def wait(self, what, condition):
        """Polls `condition()` (exceptions count as not yet) until it is truthy."""
        last = None

        def check(_driver):
            nonlocal last
            try:
                return condition()
            except Exception as error:  # noqa: BLE001 (a refresh may replace the element)
                last = error
                return False

        try:
            return WebDriverWait(self.driver, WAIT_S, poll_frequency=0.1).until(check)
        except TimeoutException:
            messages = self.driver.find_element(By.ID, "messages").text
            raise AssertionError(f"timed out waiting for {what}; last error: {last!r}; "
                                 f"message area: {messages!r}") from None

    def wait_text(self, selector, expected):
        return self.wait(f"{selector} to show {expected!r}",
                         lambda: expected in self.text(selector) and self.text(selector))

    def card(self, test_id):
        return self.text(f"[data-testid={test_id}] .value")

    def wait_card(self, test_id, expected):
        self.wait(f"card {test_id} = {expected}", lambda: self.card(test_id) == expected)

    def click(self, selector):
        self.wait(f"{selector} clickable", lambda: self._click(selector))

    def _click(self, selector):
        element = self.driver.find_element(By.CSS_SELECTOR, selector)
        if not element.is_displayed() or not element.is_enabled():
            return False
        element.click()
        return True

    def type(self, selector, text):
        element = self.driver.find_element(By.CSS_SELECTOR, selector)
        element.clear()
        element.send_keys(text)

    def success(self, expected):
        """Waits for a success message (the area keeps earlier ones until dismissed)."""
        def shown():
            elements = self.driver.find_elements(By.CSS_SELECTOR, "[data-testid=message-success]")
            return any(expected in element.text for element in elements)
        self.wait(f"a success message {expected!r}", shown)

    def shoot(self, name):
        """A screenshot 1280 pixels wide of the whole page (at most 2,000 pixels high)."""
        self.drain_console()
        chrome, height = self.driver.execute_script(
            "return [window.outerHeight - window.innerHeight,"
            " document.documentElement.scrollHeight]")
        self.driver.set_window_size(1280, min(max(height, 800), 2000) + chrome)
        path = os.path.join(SHOTS, f"ui-{name}.png")
        self.driver.save_screenshot(path)
        self.driver.set_window_size(1280, 800)
        print(f"screenshot {path}")

    def drain_console(self):
        self.console.extend(self.driver.get_log("browser"))


def traffic(stop):
    """Sends and receives a little while the overview and queues are shown: rates move."""
    n = 0
    while not stop.is_set():
        expect(201, "POST", "/v1/queues/traffic/messages",
               {"messages": [{"body": {"n": n + i}} for i in range(20)]})
        got = expect(200, "POST", "/v1/queues/traffic/receive", {"max_messages": 15})["messages"]
        expect(200, "POST", "/v1/queues/traffic/ack", {"receipts": [m["receipt"] for m in got]})
        n += 20
        stop.wait(0.25)


def login(page):
    page.open("/")
    page.wait("the login box", lambda: page.driver.find_element(By.ID, "login").is_displayed())
    page.type("#login-token", "not-the-token-of-anyone")
    page.click("#login-submit")
    page.wait_text("[data-testid=message-error]", "Unauthorized")
    page.shoot("login")
    page.type("#login-token", TOKEN)
    page.click("#login-submit")
    page.wait_text("#identity", "token")
    assert not page.driver.find_element(By.ID, "login").is_displayed()
    print("login: a wrong token is refused visibly, the admin token logs in")


def overview(page):
    page.open("/")
    # orders, orders.dead, audit, pager, traffic; events, the alerts topic and the AMQP
    # door's four amq.* exchanges.
    page.wait_card("queue-count", "5")
    page.wait_card("topic-count", TOPIC_COUNT)
    assert page.card("disk-free").endswith("B"), page.card("disk-free")
    memory = page.card("memory")
    assert memory.endswith("MiB") and float(memory.split()[0]) > 0, memory
    assert page.card("total-delayed") == "0", page.card("total-delayed")
    # orders 1, orders.dead 2, pager 1 (the firing event), and what traffic left.
    assert int(page.card("total-ready").replace(",", "")) >= 4, page.card("total-ready")
    # resource_series_max = 4 leaves the empty queue audit without series of its own; the
    # rates come from the node's totals, which count every queue.
    page.wait_text("[data-testid=rates-scope]", "every queue and topic")
    page.wait("a sent rate above 0", lambda: page.card("rate-sent") not in ("–", "0/s"))
    alert_rules(page)
    time.sleep(2)
    page.shoot("overview")
    print(f"overview: 5 queues, {TOPIC_COUNT} topics, totals and memory from /metrics, a live send rate, "
          "the real alert rules")


def alert_rules(page):
    """The rules seed() created, in the states the server gave them, firing first."""
    def states():
        rows = page.driver.find_elements(By.CSS_SELECTOR, "[data-testid=alert-table] tbody tr")
        return [(row.get_attribute("data-key"), row.text) for row in rows]
    page.wait("the alert rules in their states", lambda: [
        (name, text.split()[0]) for name, text in states()] == [
        ("dead-letters", "firing"), ("orders-backlog", "pending"),
        ("disk-nearly-full", "ok"), ("events-unroutable", "ok")])
    rows = dict(states())
    assert f"queue {DEAD}" in rows["dead-letters"] and "ready > 0" in rows["dead-letters"], rows
    assert "fails /readyz" in rows["dead-letters"], rows
    assert f"queue {QUEUE}" in rows["orders-backlog"], rows
    assert "ready > 0 for 10.0 min" in rows["orders-backlog"], rows
    assert "node" in rows["disk-nearly-full"] and "disk_free_bytes < 1 B" in rows["disk-nearly-full"], rows
    assert "GiB" in rows["disk-nearly-full"], rows
    assert f"topic {TOPIC}" in rows["events-unroutable"], rows
    assert "unroutable per second > 0" in rows["events-unroutable"], rows
    # The firing rule holds readiness: /readyz answers 503 and the status card says why.
    page.wait_card("status", "not ready")
    assert "dead-letters" in page.text("[data-testid=status] .note"), page.text("[data-testid=status]")
    api_states = {a["name"]: a["state"] for a in expect(200, "GET", "/v1/alerts")["alerts"]}
    assert api_states == {"dead-letters": "firing", "orders-backlog": "pending",
                          "disk-nearly-full": "ok", "events-unroutable": "ok"}, api_states
    print(f"alerts: firing, pending, ok, ok as the API has them; the status card is not ready: "
          f"{list(rows.values())!r}")


def queues(page):
    page.open("/queues")
    row = f"[data-testid=queue-table] tr[data-key='{QUEUE}']"
    page.wait_text(row, QUEUE)
    cells = page.driver.find_elements(By.CSS_SELECTOR, f"{row} td")
    assert cells[1].text == "1", [c.text for c in cells]
    assert DEAD in cells[-1].text, [c.text for c in cells]
    page.wait_text(f"[data-testid=queue-table] tr[data-key='{DEAD}']", DEAD)
    page.type("[data-testid=prefix]", "orders.")
    page.wait("the prefix filter", lambda: len(page.driver.find_elements(
        By.CSS_SELECTOR, "[data-testid=queue-table] tbody tr")) == 1)
    page.type("[data-testid=prefix]", "")
    page.wait_text(row, QUEUE)
    time.sleep(2.5)
    page.shoot("queues")
    page.click(f"{row} a")
    page.wait_text("[data-testid=queue-name]", QUEUE)
    print("queues: rows with live depth, the dead-letter queue, the prefix filter, a link to the queue")


def queue(page):
    page.open(f"/queues/{QUEUE}")
    page.wait_card("ready", "1")
    page.wait_text("[data-testid=dead-letter-count]", "2")
    dead = page.wait_text("[data-testid=dead-letter-table]", "rejected")
    assert "cannot parse order" in dead and QUEUE in dead, dead
    page.wait_text("[data-testid=message-table]", "order-2")
    page.wait_text("[data-testid=queue-options]", DEAD)
    time.sleep(2.5)  # a second refresh, so the charts have a line
    page.shoot("queue")
    print("queue: ready 1, options, 2 dead letters with reason 'rejected' and their last error")

    delete_message(page)

    page.click("#redrive")
    page.success("Redrove 2 dead letters")
    page.wait_card("ready", "2")
    page.wait_text("[data-testid=dead-letter-count]", "0")
    assert stats(QUEUE)["ready"] == 2 and stats(DEAD)["ready"] == 0
    print("redrive: the page and the API show the dead letters back in the source queue")

    page.click("#purge")
    page.click("#purge-confirm")
    page.success("Purged 2 messages")
    page.wait_card("ready", "0")
    assert stats(QUEUE)["ready"] == 0
    print("purge: the page and the API show 0 ready")

    page.type("#send-body", '{"test": "sent from the queue page"}')
    page.type("#send-priority", "42")
    page.click("#send")
    page.wait_text("[data-testid=message-error]", "priority")
    print("send: the API's refusal (priority 42) is shown with its detail")
    page.type("#send-priority", "")
    page.click("#send")
    page.success("Sent message")
    page.wait_card("ready", "1")
    page.wait_text("[data-testid=message-table]", "sent from the queue page")
    assert stats(QUEUE)["ready"] == 1
    print("send: the test message is in the queue's ready messages")

    page.open(f"/queues/{DEAD}")
    page.wait_text("[data-testid=queue-name]", DEAD)
    page.wait_text("[data-testid=message-table]", "")


def delete_message(page):
    """order-2 through its row's Delete button: refused while a consumer leases it, then gone."""
    order = "order-2"
    button = f"[data-testid=message-table] tr[data-key='{order}'] [data-testid=delete]"
    page.click(button)
    page.wait_text(".confirm-bar:not([hidden])", f"Delete message {order} from {QUEUE}?")
    # A consumer takes it between the question and the answer: the server refuses (409).
    received = expect(200, "POST", f"/v1/queues/{QUEUE}/receive", {"max_messages": 1})["messages"]
    assert [m["id"] for m in received] == [order], received
    page.click("#delete-confirm")
    page.wait_text("[data-testid=message-error]", "leased by a consumer")
    expect(200, "GET", f"/v1/queues/{QUEUE}/messages/{order}")
    print("delete: a message leased meanwhile is refused visibly (409) and stays")
    nacked = expect(200, "POST", f"/v1/queues/{QUEUE}/nack", {"receipts": [received[0]["receipt"]]})
    assert all(r["ok"] for r in nacked["results"]), nacked
    # Back to ready after the queue's retry backoff (1 s).
    page.click(button)
    page.click("#delete-confirm")
    page.success(f"Deleted message {order} from {QUEUE}.")
    page.wait_card("ready", "0")
    page.wait_text("[data-testid=message-table]", "No ready messages.")
    got, answer = api("GET", f"/v1/queues/{QUEUE}/messages/{order}")
    assert got == 404 and answer["code"] == "message_not_found", (got, answer)
    print("delete: after confirming, the message leaves the page and the API answers 404 for it")


def alert_events(page):
    """Redriving emptied orders.dead, so the firing rule resolved: both events reached the
    queue bound to the alerts topic, and readiness is back."""
    page.open(f"/queues/{PAGER}")
    page.wait_text("[data-testid=message-table]", '"state":"resolved"')
    bodies = [json.loads(cell.text) for cell in page.driver.find_elements(
        By.CSS_SELECTOR, "[data-testid=message-table] td.body")]
    assert [(b["alert"], b["state"]) for b in bodies] == [
        ("dead-letters", "firing"), ("dead-letters", "resolved")], bodies
    assert bodies[0]["value"] == 2 and bodies[0]["rule"]["queue"] == DEAD, bodies
    page.open("/")
    page.wait_card("status", "ready")
    page.wait_text("[data-testid=alert-table] tr[data-key='dead-letters']", "ok")
    print(f"alert events: firing then resolved in {PAGER} (bound to {ALERTS_TOPIC}); the overview "
          "shows the rule ok and the node ready")


def topics(page):
    page.open("/topics")
    row = f"[data-testid=topic-table] tr[data-key='{TOPIC}']"
    page.wait_text(row, TOPIC)
    cells = page.driver.find_elements(By.CSS_SELECTOR, f"{row} td")
    assert cells[3].text == "1", [c.text for c in cells]
    time.sleep(2.5)
    page.shoot("topics")
    print("topics: the topic with its binding count")


def topic(page):
    page.open(f"/topics/{TOPIC}")
    bindings = page.wait_text("[data-testid=binding-table]", "orders.#")
    assert QUEUE in bindings, bindings
    page.click("#tail-toggle")
    page.wait_text("#tail-status", "Listening")
    page.type("#send-key", "orders.eu.created")
    page.type("#send-body", '{"test": "published from the topic page"}')
    page.click("#send")
    page.success("routed to 1 destination.")
    page.wait_text("[data-testid=tail]", "published from the topic page")
    page.wait_card("published", "1")
    page.shoot("topic")
    assert stats(QUEUE)["ready"] == 2
    # Leaving the page ends the subscription.
    page.open("/")
    page.wait_card("topic-count", TOPIC_COUNT)
    print("topic: bindings shown; a message published from the page arrives in the live tail and its queue")


class AmqpWorker:
    """A pika connection as user `worker`, consuming queue `audit` with the tag `auditor`, on a
    thread of its own (a blocking connection belongs to one thread) until the broker closes
    it; `closed` then holds (reply code, reply text)."""

    def __init__(self):
        got, answer = api("PUT", "/v1/users/worker", {
            "password": "a worker's password",
            "grants": [{"actions": ["read", "write", "manage"], "resource": "queue:*"}]})
        assert got in (200, 201), (got, answer)
        self.ready = threading.Event()
        self.closed = None
        self.error = None
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()
        assert self.ready.wait(WAIT_S), f"the AMQP worker did not start: {self.error!r}"

    def run(self):
        try:
            parameters = pika.ConnectionParameters(
                host="127.0.0.1", port=AMQP_PORT, heartbeat=30,
                credentials=pika.PlainCredentials("worker", "a worker's password"),
                client_properties={"connection_name": "audit-worker"})
            connection = pika.BlockingConnection(parameters)
            channel = connection.channel()
            channel.basic_consume("audit", lambda *_: None, consumer_tag="auditor")
            self.ready.set()
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                connection.process_data_events(time_limit=0.1)
        except pika.exceptions.ConnectionClosedByBroker as closed:
            self.closed = (closed.reply_code, closed.reply_text)
        except Exception as error:  # noqa: BLE001 (reported by the checks)
            self.error = error
        self.ready.set()


def connections(page):
    """A pika connection with a consumer shows on the Connections page and its own page, the
    queue's consumer count follows, and the page's Close button closes it as an operator."""
    worker = AmqpWorker()
    page.open("/connections")
    row = page.wait_text("[data-testid=connection-table] tbody tr", "worker")
    assert "amqp" in row and "audit-worker" in row, row
    cells = [c.text for c in page.driver.find_elements(
        By.CSS_SELECTOR, "[data-testid=connection-table] tbody tr td")]
    assert cells[1] == "amqp" and cells[3] == "worker", cells
    assert cells[-2:] == ["1", "1"], cells  # one channel, one consumer
    [listed] = expect(200, "GET", "/v1/connections")["connections"]
    assert listed["user"] == "worker" and listed["consumer_count"] == 1, listed
    time.sleep(2.5)
    page.shoot("connections")
    page.click("[data-testid=connection-table] tbody tr a")
    page.wait_text("[data-testid=connection-id]", f"Connection {listed['id']}")
    consumer = page.wait_text("[data-testid=channel-table]", "auditor")
    assert "audit" in consumer and "manual" in consumer, consumer
    page.open("/queues")
    audit = "[data-testid=queue-table] tr[data-key='audit']"
    page.wait("audit with 1 consumer", lambda: page.driver.find_elements(
        By.CSS_SELECTOR, f"{audit} td")[4].text == "1")
    print(f"connections: the pika connection of worker (id {listed['id']}) with its channel and "
          "consumer auditor on audit; the queue list counts 1 consumer")
    page.open(f"/connections/{listed['id']}")
    page.wait_text("[data-testid=channel-table]", "auditor")
    page.click("#close-connection")
    page.click("#close-confirm")
    page.success(f"Closed connection {listed['id']}.")
    page.wait_text("[data-testid=connection-table]", "No connections.")
    worker.thread.join(WAIT_S)
    assert worker.error is None, worker.error
    assert worker.closed == (320, "CONNECTION_FORCED - closed by an operator"), worker.closed
    assert expect(200, "GET", "/v1/connections")["connections"] == []
    assert stats("audit")["consumers"] == 0
    print("connections: Close on the page closes it (pika hears 320 CONNECTION_FORCED); the list "
          "is empty")


def viewer(page):
    """A user who may only read queues: logs in with a password; a purge is refused visibly."""
    got, answer = api("PUT", "/v1/users/viewer", {
        "password": "a viewer's password", "grants": [{"actions": ["read"], "resource": "queue:*"}]})
    assert got in (200, 201), (got, answer)
    page.click("#logout")
    page.wait("the login box", lambda: page.driver.find_element(By.ID, "login").is_displayed())
    page.type("#login-user", "viewer")
    page.type("#login-password", "a viewer's password")
    page.click("#login-user-submit")
    page.wait_text("#identity", "user viewer")
    page.open(f"/queues/{QUEUE}")
    page.wait_card("ready", "2")
    page.click("#purge")
    page.click("#purge-confirm")
    page.wait_text("[data-testid=message-error]", "Forbidden")
    assert stats(QUEUE)["ready"] == 2
    print("viewer: logs in as a user; the purge it may not do is refused and shown, nothing purged")


def check_console(page):
    page.drain_console()
    # The refusals this script causes on purpose: a wrong token, /readyz while a rule that
    # holds readiness fires, a delete of a leased message, a send with priority 42, and a purge
    # by a user without the grant.
    expected = ["/v1/whoami - Failed to load resource: the server responded with a status of 401",
                "/readyz - Failed to load resource: the server responded with a status of 503",
                f"/v1/queues/{QUEUE}/messages/order-2 - Failed to load resource: the server"
                " responded with a status of 409",
                f"/v1/queues/{QUEUE}/messages - Failed to load resource: the server responded"
                " with a status of 400",
                f"/v1/queues/{QUEUE}/purge - Failed to load resource: the server responded"
                " with a status of 403"]
    problems = []
    for entry in page.console:
        message = entry.get("message", "")
        if "Content Security Policy" in message or "Refused to" in message:
            problems.append(entry)
        elif entry.get("level") == "SEVERE" and not any(e in message for e in expected):
            problems.append(entry)
    for entry in page.console:
        print(f"console {entry.get('level')} {entry.get('source')}: {entry.get('message')}")
    assert not problems, f"browser console errors: {json.dumps(problems, indent=1)}"
    print(f"console: {len(page.console)} entries, no JavaScript error, no CSP violation")


def main():
    seed()
    os.makedirs(SHOTS, exist_ok=True)
    driver = chromium("1280,800", "--hide-scrollbars")
    page = Page(driver)
    try:
        login(page)
        expect(201, "PUT", "/v1/queues/traffic", {})
        stop = threading.Event()
        sender = threading.Thread(target=traffic, args=(stop,))
        sender.start()
        try:
            overview(page)
            queues(page)
        finally:
            stop.set()
            sender.join()
        queue(page)
        alert_events(page)
        topics(page)
        topic(page)
        connections(page)
        viewer(page)
        check_console(page)
    except BaseException:
        page.drain_console()
        for entry in page.console:
            print(f"console {entry.get('level')} {entry.get('source')}: {entry.get('message')}")
        driver.save_screenshot(os.path.join(os.environ.get("TMPDIR", "/tmp"), "ui-failure.png"))
        raise
    finally:
        driver.quit()
    print("dashboard: every check passed")


if __name__ == "__main__":
    main()

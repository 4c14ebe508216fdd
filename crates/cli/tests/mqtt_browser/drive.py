"""Drives examples/mqtt-page (MQTT.js over WebSocket) in headless Chromium against a server.

Usage: drive.py BASE_URL PAGE_PORT PAGE_DIR, where PAGE_DIR holds the page and mqtt.min.js.

Serves PAGE_DIR on 127.0.0.1:PAGE_PORT (an origin the server lists in http.cors_origins) and
opens the page twice, as MQTT clients "ana" and "ben", each connected to BASE_URL's /mqtt.
Reads from the DOM that each page connected once and was granted chat/# at QoS 1, that a
message published over HTTP reaches both, that a message published from ben's form is
acknowledged and reaches ana's page (and a queue bound over HTTP), that closing ben's tab ends
ben's connection and leaves ana connected, without error, still receiving, and that the
browser's console holds no JavaScript error.
"""

import base64
import json
import os
import sys
import time

from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from browser import Api, chromium, serve_directory  # noqa: E402 (after the path)

BASE = sys.argv[1].rstrip("/")
PAGE_PORT = int(sys.argv[2])
PAGE_DIR = sys.argv[3]
MQTT_URL = BASE.replace("http", "ws", 1) + "/mqtt"
WAIT_S = 15
# The Wharf topic MQTT topics live on, and the filter the page subscribes to.
DOOR_TOPIC = "mqtt"
FILTER = "chat/#"
# A queue bound over HTTP to what the page's filter covers, to see MQTT publishes from HTTP.
QUEUE = "chat-log"
API = Api(BASE)
api, expect = API.call, API.expect


def publish_over_http(routing_key, body):
    batch = {"messages": [{"routing_key": routing_key, "body": body}]}
    expect(201, "POST", f"/v1/topics/{DOOR_TOPIC}/publish", batch)


def mqtt_clients():
    """The client ids of the server's open MQTT connections, sorted."""
    listed = expect(200, "GET", "/v1/connections?door=mqtt")
    return sorted(c["client"].get("connection_name") for c in listed["connections"])


class Tab:
    """One browser tab showing the page as one MQTT client."""

    def __init__(self, driver, client):
        self.driver = driver
        self.client = client
        url = f"http://127.0.0.1:{PAGE_PORT}/index.html?server={MQTT_URL}&client={client}"
        if driver.current_url.startswith("http"):
            driver.switch_to.new_window("tab")
        self.handle = driver.current_window_handle
        driver.get(url)

    def focus(self):
        self.driver.switch_to.window(self.handle)

    def text(self, element_id):
        self.focus()
        return self.driver.find_element(By.ID, element_id).text

    def messages(self):
        """(topic, payload) of each message the page lists, in order."""
        self.focus()
        return [(item.find_element(By.CLASS_NAME, "topic").text,
                 item.find_element(By.CLASS_NAME, "payload").text)
                for item in self.driver.find_elements(By.CSS_SELECTOR, "#messages li.message")]

    def errors(self):
        self.focus()
        return [item.text for item in self.driver.find_elements(By.CSS_SELECTOR, "#errors li")]

    def wait(self, what, condition):
        last = None

        def check(_driver):
            nonlocal last
            try:
                return condition()
            except Exception as error:  # noqa: BLE001 (the page may be mid-update)
                last = error
                return False

        try:
            WebDriverWait(self.driver, WAIT_S, poll_frequency=0.1).until(check)
        except TimeoutException:
            raise AssertionError(
                f"{self.client}: timed out waiting for {what}; last error: {last!r}; "
                f"state {self.text('state')!r}, connected {self.text('connects')} times; "
                f"messages {self.messages()!r}; errors {self.errors()!r}") from None

    def wait_connected(self):
        self.wait("the connection and the subscription",
                  lambda: self.text("state") == "connected"
                  and self.text("subscription") == f"{FILTER} at QoS 1")

    def wait_messages(self, expected):
        self.wait(f"the messages to read {expected}", lambda: self.messages() == expected)

    def assert_steady(self):
        """Connected on its first connection, with no error shown."""
        state, connects, errors = self.text("state"), self.text("connects"), self.errors()
        assert (state, connects, errors) == ("connected", "1", []), \
            f"{self.client}: state {state!r}, connected {connects} times, errors {errors!r}"


def main():
    page_server = serve_directory(PAGE_PORT, PAGE_DIR)
    driver = chromium()
    try:
        ana = Tab(driver, "ana")
        ana.wait_connected()
        ben = Tab(driver, "ben")
        ben.wait_connected()
        assert mqtt_clients() == ["ana", "ben"], mqtt_clients()
        print(f"pages: ana and ben connected to {MQTT_URL} with MQTT.js, granted {FILTER} at QoS 1")

        # The door's topic exists from the first CONNECT on (the MQTT port is off in tests).
        expect(201, "PUT", f"/v1/queues/{QUEUE}", {})
        expect(201, "POST", f"/v1/topics/{DOOR_TOPIC}/bindings", {"pattern": "chat.#", "queue": QUEUE})
        publish_over_http("chat.room1", "hello from http")
        # A JSON body goes to MQTT as its JSON text, quotes and all.
        shown = [("chat/room1", '"hello from http"')]
        for tab in [ana, ben]:
            tab.wait_messages(shown)
        print(f"pages: a message published over HTTP to chat.room1 shown by both as {shown[0]}")

        ben.focus()
        for field_id, value in [("topic", "chat/room2"), ("payload", "ben says hi")]:
            field = driver.find_element(By.ID, field_id)
            field.clear()
            field.send_keys(value)
        driver.find_element(By.CSS_SELECTOR, "#publish button").click()
        ben.wait("the publish to be acknowledged", lambda: ben.text("published") == "chat/room2 acknowledged")
        shown.append(("chat/room2", "ben says hi"))
        for tab in [ana, ben]:
            tab.wait_messages(shown)
        check_queue()
        print("pages: a message published from ben's form at QoS 1 acknowledged, shown by ana "
              "(and ben), and queued over HTTP as chat.room2 from ben")

        check_console(driver, ben)
        ben.focus()
        driver.close()
        wait_for("ben's connection to end", lambda: mqtt_clients() == ["ana"])
        publish_over_http("chat.room1", "after ben left")
        shown.append(("chat/room1", '"after ben left"'))
        ana.wait_messages(shown)
        ana.assert_steady()
        print("pages: closing ben's tab ends ben's connection; ana stays connected, shows no "
              "error and still receives")
        check_console(driver, ana)
    except BaseException:
        for entry in console(driver):
            print(f"console {entry.get('level')} {entry.get('source')}: {entry.get('message')}")
        raise
    finally:
        driver.quit()
        page_server.shutdown()
    print("mqtt page: every check passed")


def check_queue():
    """The queue bound to chat.# holds the HTTP message and ben's, in order, with MQTT headers."""
    received = expect(200, "POST", f"/v1/queues/{QUEUE}/receive", {"max_messages": 10})["messages"]
    got = [(m.get("routing_key"), m.get("body", m.get("body_base64")), m["headers"].get("mqtt-from"))
           for m in received]
    assert len(received) == 2, got
    assert received[0]["body"] == "hello from http", got
    ben_says = received[1]
    assert ben_says["headers"].get("mqtt-from") == "ben", got
    assert ben_says["headers"].get("mqtt-topic") == "chat/room2", got
    assert ben_says["headers"].get("mqtt-qos") == "1", got
    assert base64.b64decode(ben_says["body_base64"]) == b"ben says hi", got


def wait_for(what, condition):
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def console(driver, tab=None):
    try:
        if tab is None:
            driver.switch_to.window(driver.window_handles[0])
        else:
            tab.focus()
        return driver.get_log("browser")
    except Exception:  # noqa: BLE001 (the browser may be gone)
        return []


def check_console(driver, tab):
    """No JavaScript error in `tab`'s console (read before the tab closes: its log goes with it)."""
    entries = console(driver, tab)
    for entry in entries:
        print(f"console {entry.get('level')} {entry.get('source')}: {entry.get('message')}")
    problems = [e for e in entries if e.get("level") == "SEVERE"]
    assert not problems, f"{tab.client}'s console errors: {json.dumps(problems, indent=1)}"
    print(f"console of {tab.client}: {len(entries)} entries, no error")


if __name__ == "__main__":
    main()

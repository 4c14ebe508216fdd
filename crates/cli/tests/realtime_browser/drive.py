"""Drives examples/realtime-page in headless Chromium against a running, secured server.

Usage: drive.py BASE_URL PAGE_PORT PAGE_DIR, with the administrator token in WHARF_ADMIN_TOKEN.

Serves PAGE_DIR on 127.0.0.1:PAGE_PORT (an origin the server lists in http.cors_origins), mints
two browser tokens over the API, and opens the page twice, as "ana" and as "ben". Reads from
the DOM that each page subscribed over the WebSocket and opened its event stream, that each
sees the other in the topic's room, that messages published over HTTP appear in both lists of
both pages in order, that a message published from one page's form reaches the other page and
the API, that a topic the token does not name is refused and the refusal shown, and that the
browser's console holds no JavaScript error.
"""

import json
import os
import sys

from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from browser import Api, chromium, serve_directory  # noqa: E402 (after the path)

BASE = sys.argv[1].rstrip("/")
PAGE_PORT = int(sys.argv[2])
PAGE_DIR = sys.argv[3]
TOKEN = os.environ["WHARF_ADMIN_TOKEN"]
WAIT_S = 15
TOPIC = "news"
# A topic that exists, which the pages' tokens do not name.
OTHER = "payroll"
API = Api(BASE, TOKEN)
api, expect = API.call, API.expect


class Tab:
    """One browser tab showing the page as one member."""

    def __init__(self, driver, member):
        self.driver = driver
        self.member = member
        minted = expect(201, "POST", "/v1/realtime/tokens",
                        {"channels": [TOPIC], "publish": True, "member": member, "ttl_s": 600})
        assert minted["member"] == member, minted
        url = f"http://127.0.0.1:{PAGE_PORT}/index.html#server={BASE}&token={minted['token']}&topic={TOPIC}"
        if driver.current_url.startswith("http"):
            driver.switch_to.new_window("tab")
        self.handle = driver.current_window_handle
        driver.get(url)

    def focus(self):
        self.driver.switch_to.window(self.handle)

    def text(self, element_id):
        self.focus()
        return self.driver.find_element(By.ID, element_id).text

    def items(self, list_id):
        self.focus()
        return [item.text for item in self.driver.find_elements(By.CSS_SELECTOR, f"#{list_id} li")]

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
                f"{self.member}: timed out waiting for {what}; last error: {last!r}; "
                f"status {self.text('ws-status')!r} / {self.text('sse-status')!r}; "
                f"errors {self.items('errors')!r}") from None

    def wait_lists(self, expected):
        for list_id in ["ws-messages", "sse-messages"]:
            self.wait(f"{list_id} to read {expected}", lambda: self.items(list_id) == expected)


def main():
    expect(201, "PUT", f"/v1/topics/{TOPIC}", {})
    expect(201, "PUT", f"/v1/topics/{OTHER}", {})
    page_server = serve_directory(PAGE_PORT, PAGE_DIR)
    driver = chromium()
    try:
        ana = Tab(driver, "ana")
        ana.wait("the WebSocket to subscribe", lambda: ana.text("ws-status") == "subscribed")
        ana.wait("the event stream to open", lambda: ana.text("sse-status") == "open")
        ben = Tab(driver, "ben")
        ben.wait("the WebSocket to subscribe", lambda: ben.text("ws-status") == "subscribed")
        ben.wait("the event stream to open", lambda: ben.text("sse-status") == "open")
        for tab in [ana, ben]:
            tab.wait("both members in the room", lambda: tab.text("members") == "ana, ben")
        print("pages: subscribed over the WebSocket, event streams open, each sees the other in the room")

        published = []
        for n in range(1, 4):
            text = f"news {n}"
            batch = {"messages": [{"routing_key": "headline", "body": {"text": text}}]}
            expect(201, "POST", f"/v1/topics/{TOPIC}/publish", batch)
            published.append(text)
        for tab in [ana, ben]:
            tab.wait_lists(published)
        print("pages: three messages published over HTTP shown in order, over both the WebSocket and SSE")

        ben.focus()
        field = driver.find_element(By.ID, "text")
        field.clear()
        field.send_keys("ben says hi")
        driver.find_element(By.CSS_SELECTOR, "#send button").click()
        ben.wait("the publish to be acknowledged", lambda: ben.text("ws-status").startswith("published "))
        published.append("ben says hi")
        for tab in [ana, ben]:
            tab.wait_lists(published)
        print("pages: a message published from ben's form reached both pages")

        ana.focus()
        driver.execute_script(
            "ws.send(JSON.stringify({op: 'subscribe', topic: arguments[0], ref: 'other'}))", OTHER)
        ana.wait("the refusal to be shown", lambda: any(e.startswith("403 ") for e in ana.items("errors")))
        print(f"pages: a topic the token does not name is refused: {ana.items('errors')}")

        ben.focus()
        driver.close()
        ana.wait("ben to leave the room", lambda: ana.text("members") == "ana")
        print("pages: closing ben's tab removes ben from ana's room")
        check_console(driver)
    except BaseException:
        for entry in console(driver):
            print(f"console {entry.get('level')} {entry.get('source')}: {entry.get('message')}")
        raise
    finally:
        driver.quit()
        page_server.shutdown()
    print("realtime page: every check passed")


def console(driver):
    try:
        driver.switch_to.window(driver.window_handles[0])
        return driver.get_log("browser")
    except Exception:  # noqa: BLE001 (the browser may be gone)
        return []


def check_console(driver):
    entries = console(driver)
    for entry in entries:
        print(f"console {entry.get('level')} {entry.get('source')}: {entry.get('message')}")
    problems = [e for e in entries if e.get("level") == "SEVERE"]
    assert not problems, f"browser console errors: {json.dumps(problems, indent=1)}"
    print(f"console: {len(entries)} entries, no error")


if __name__ == "__main__":
    main()

"""What the Chromium tests' Selenium scripts share: API calls, a static origin, the browser.

The scripts (realtime_browser, mqtt_browser, ui_dashboard) put this directory on sys.path.
"""

import functools
import http.server
import json
import threading
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service


class Api:
    """The server's HTTP API at `base`, called with a bearer `token` (or none)."""

    def __init__(self, base, token=None):
        self.base = base.rstrip("/")
        self.token = token

    def call(self, method, path, body=None, token=None):
        """One call, as `token` or the default; returns (status, parsed JSON or None)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        token = token or self.token
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                text = response.read().decode()
                return response.status, json.loads(text) if text else None
        except urllib.error.HTTPError as error:
            text = error.read().decode()
            return error.code, json.loads(text) if text else None

    def expect(self, status, method, path, body=None):
        """One call that must answer `status`; returns its JSON."""
        got, answer = self.call(method, path, body)
        assert got == status, f"{method} {path}: {got} {answer}"
        return answer


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve_directory(port, directory):
    """A page's own origin: a static file server for `directory` on 127.0.0.1:`port`, in a
    thread."""
    handler = functools.partial(QuietHandler, directory=directory)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def chromium(window="1024,768", *extra):
    """Headless Chromium from Debian, keeping the console's messages for the checks."""
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for argument in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     f"--window-size={window}", "--no-first-run", *extra]:
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)

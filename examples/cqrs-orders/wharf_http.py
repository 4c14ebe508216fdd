"""A tiny JSON client of Wharf's event store (/v1/events), standard library only.

Both sides of the example use it: orders.py (the command side) and read_model.py (the read
side). Errors of the server are application/problem+json documents with a `code`; they are
raised as `Problem` so callers can branch on `problem.code` (e.g. `wrong_expected_version`).
"""

import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

DEFAULT_URL = "http://127.0.0.1:7700"
TIMEOUT_S = 30


class Problem(Exception):
    """An error answer of the server: its HTTP status and problem document."""

    def __init__(self, method, path, status, body):
        self.method = method
        self.path = path
        self.status = status
        self.body = body if isinstance(body, dict) else {"detail": str(body)}
        self.code = self.body.get("code")
        super().__init__(
            f"{method} {path}: {status} {self.code or ''} {self.body.get('detail', '')}".strip()
        )


class EventStore:
    """The event store of the server at `url` (default $WHARF_URL, else 127.0.0.1:7700)."""

    def __init__(self, url=None):
        self.url = (url or os.environ.get("WHARF_URL") or DEFAULT_URL).rstrip("/")
        # A local server needs no credentials; a remote one may want a bearer token.
        self.token = os.environ.get("WHARF_TOKEN")

    def request(self, method, path, body=None, ok=(200, 201, 204)):
        """Sends one request; returns (status, JSON body or None). Raises Problem otherwise."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("content-type", "application/json")
        if self.token:
            req.add_header("authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as err:
            status, raw = err.code, err.read()
        except urllib.error.URLError as err:
            sys.exit(f"error: cannot reach the Wharf server at {self.url} ({err.reason}); "
                     "start it or set WHARF_URL")
        parsed = json.loads(raw) if raw else None
        if status not in ok:
            raise Problem(method, path, status, parsed)
        return status, parsed

    # --- streams -------------------------------------------------------------------------

    @staticmethod
    def _stream_path(stream):
        return "/v1/events/streams/" + urllib.parse.quote(stream, safe="")

    def append(self, stream, expected_version, events):
        """POSTs events; returns the answer ({"version", "position", ...})."""
        body = {"expected_version": expected_version, "events": events}
        return self.request("POST", self._stream_path(stream), body)[1]

    def read_stream(self, stream, start=0):
        """Every event of `stream` from version `start`, following `next` page by page.

        Returns (events, stream version) or (None, None) when the stream does not exist.
        """
        events, version, at = [], None, start
        while True:
            try:
                _, page = self.request("GET", f"{self._stream_path(stream)}?from={at}&limit=1000")
            except Problem as problem:
                if problem.code == "event_stream_not_found":
                    return None, None
                raise
            events.extend(page["events"])
            version = page["version"]
            if page["next"] is None:
                return events, version
            at = page["next"]

    def load_snapshot(self, stream):
        """The stream's newest snapshot ({"version", "state", ...}) or None."""
        try:
            return self.request("GET", self._stream_path(stream) + "/snapshot")[1]
        except Problem as problem:
            if problem.code in ("snapshot_not_found", "event_stream_not_found"):
                return None
            raise

    def save_snapshot(self, stream, version, state):
        body = {"version": version, "state": state}
        return self.request("PUT", self._stream_path(stream) + "/snapshot", body)[1]

    # --- checkpointed projections --------------------------------------------------------

    @staticmethod
    def _projection_path(name):
        return "/v1/events/projections/" + urllib.parse.quote(name, safe="")

    def put_projection(self, name, stream_prefix=None, type_prefix=None):
        body = {}
        if stream_prefix is not None:
            body["stream_prefix"] = stream_prefix
        if type_prefix is not None:
            body["type_prefix"] = type_prefix
        return self.request("PUT", self._projection_path(name), body)[1]

    def get_projection(self, name):
        return self.request("GET", self._projection_path(name))[1]

    def delete_projection(self, name):
        self.request("DELETE", self._projection_path(name))

    def projection_events(self, name, limit=100):
        """The next page after the checkpoint: {"events": [...], "next": position}."""
        return self.request("GET", f"{self._projection_path(name)}/events?limit={limit}")[1]

    def checkpoint(self, name, position):
        body = {"position": position}
        return self.request("POST", self._projection_path(name) + "/checkpoint", body)[1]

"""A webhook receiver for the tests: verifies every request with the `standardwebhooks`
package and writes one JSON line per request to LOG.

    receiver.py PORT_FILE LOG SECRET [--fail N] [--status CODE] [--port PORT]

Answers the first N requests with CODE (default 503) and the others with 204, or every
request with CODE when N is -1. Writes the port it listens on to PORT_FILE once ready.
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

port_file, log_path, secret = sys.argv[1], sys.argv[2], sys.argv[3]
options = dict(zip(sys.argv[4::2], sys.argv[5::2]))
fail = int(options.get("--fail", "0"))
status = int(options.get("--status", "503"))
verifier = Webhook(secret)
lock = threading.Lock()
seen = {"requests": 0}


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {name.lower(): value for name, value in self.headers.items()}
        try:
            payload = verifier.verify(body, headers)
            verified, error = True, None
        except WebhookVerificationError as exc:
            payload, verified, error = None, False, str(exc)
        with lock:
            seen["requests"] += 1
            number = seen["requests"]
            answer = status if fail == -1 or number <= fail else 204
            entry = {
                "webhook_id": headers.get("webhook-id"),
                "verified": verified,
                "error": error,
                "payload": payload,
                "answered": answer,
                "custom": headers.get("x-tenant"),
            }
            with open(log_path, "a") as log:
                log.write(json.dumps(entry) + "\n")
        self.send_response(answer)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"no")

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", int(options.get("--port", "0"))), Handler)
with open(port_file + ".tmp", "w") as out:
    out.write(str(server.server_address[1]))
import os

os.rename(port_file + ".tmp", port_file)
server.serve_forever()

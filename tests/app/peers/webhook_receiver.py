"""A webhook receiver for keyhold's tests, written against SPEC section 9, not keyhold's code.

Usage: webhook_receiver.py PORT SECRET FAIL_FIRST LOG

Every request (POST body or GET) is appended to LOG as one JSON line, with whether its
X-Keyhold-Signature is the HMAC-SHA256 of the raw body under SECRET (checked here with
Python's hmac). The first FAIL_FIRST requests are answered 500, the rest 200.
"""
import hashlib
import hmac
import http.server
import json
import sys
import threading

port, secret = int(sys.argv[1]), sys.argv[2].encode()
fail_first, log = int(sys.argv[3]), sys.argv[4]
lock = threading.Lock()
seen = {"requests": 0}


class Receiver(http.server.BaseHTTPRequestHandler):
    def record(self, body):
        signature = self.headers.get("X-Keyhold-Signature", "")
        expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        with lock:
            seen["requests"] += 1
            status = 500 if seen["requests"] <= fail_first else 200
            entry = {
                "method": self.command,
                "path": self.path,
                "event": self.headers.get("X-Keyhold-Event"),
                "delivery": self.headers.get("X-Keyhold-Delivery"),
                "signed": bool(signature),
                "signature_valid": hmac.compare_digest(signature, expected),
                "content_type": self.headers.get("Content-Type"),
                "body": body.decode("utf-8", "replace"),
                "answered": status,
            }
            with open(log, "a", encoding="utf-8") as out:
                out.write(json.dumps(entry) + "\n")
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        self.record(self.rfile.read(length))

    def do_GET(self):
        self.record(b"")

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", port), Receiver).serve_forever()

#!/usr/bin/env python3
"""A stand-in API for trying the example: answers every request with JSON
saying which API answered and what guichet told it about the caller.

    python3 upstream.py internal 18081
    python3 upstream.py interop 18082
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Headers guichet sets on every request it forwards (client copies removed).
SHOWN = [
    "X-Guichet-App",
    "X-Guichet-Rule",
    "X-Guichet-Cert-Fingerprint",
    "X-Forwarded-For",
    "X-Forwarded-Proto",
    "X-Forwarded-Host",
    "X-Forwarded-Tls-Client-Cert-Info",
    "X-Forwarded-Client-Cert",
]


class Handler(BaseHTTPRequestHandler):
    def answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = {
            "api": API,
            "method": self.command,
            "path": self.path,
            "headers": {h: self.headers[h] for h in SHOWN if h in self.headers},
        }
        data = (json.dumps(body, indent=2) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = answer


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: upstream.py NAME PORT")
    API = sys.argv[1]
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])), Handler).serve_forever()

"""A tiny web server to run as an OS service with `procward wrap` (standard library only).

It answers / with a greeting and /healthz with 200, logs each request to
stderr (procward keeps it in the service's err log), and stops cleanly on
SIGTERM, Ctrl+C or Ctrl+Break.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"ok\n" if self.path == "/healthz" else (
            f"hello from pid {os.getpid()}\n".encode())
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main() -> None:
    port = int(os.environ.get("PORT", "8080"))
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)

    def stop(signum: int, frame: object) -> None:
        # shutdown() waits for serve_forever, so it must run on another thread.
        threading.Thread(target=server.shutdown).start()

    for name in ("SIGTERM", "SIGINT", "SIGBREAK"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), stop)
    print(f"listening on http://127.0.0.1:{port}/", flush=True)
    server.serve_forever()
    print("stopped", flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()

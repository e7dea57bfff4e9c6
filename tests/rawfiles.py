"""A loopback stand-in for the raw-file host (raw.githubusercontent.com), in stdlib `http.server`.

It serves `GET /<owner>/<repo>/<commit>/<path>` from files the tests put there, with faults to
inject: an HTTP status for the next requests, a delay, or other bytes than the ones stored (a
damaged mirror). Every request path is recorded in `seen`.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class RawFileServer:
    def __init__(self, port: int = 0):
        self.files: dict[str, bytes] = {}
        self.seen: list[str] = []
        self.fail_status: list[int] = []
        self.delay_s = 0.0
        self.tamper = False
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_port}"

    def put(self, repo: str, commit: str, path: str, content: bytes) -> None:
        self.files[f"/{repo}/{commit}/{path}"] = content

    def reset(self) -> None:
        self.files.clear()
        self.seen.clear()
        self.fail_status.clear()
        self.delay_s, self.tamper = 0.0, False

    def start(self) -> RawFileServer:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(state: RawFileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
            pass

        def do_HEAD(self) -> None:
            self._answer(body=False)

        def do_GET(self) -> None:
            self._answer(body=True)

        def _answer(self, body: bool) -> None:
            path = self.path.split("?", 1)[0]
            state.seen.append(f"{self.command} {path}")
            if state.delay_s and path != "/":
                time.sleep(state.delay_s)
            if state.fail_status and path != "/":
                self._send(state.fail_status.pop(0), b"failure injected by the test", body)
            elif path == "/":
                self._send(200, b"raw file server", body)
            elif path in state.files:
                content = state.files[path]
                self._send(200, bytes([content[0] ^ 1]) + content[1:] if state.tamper else content, body)
            else:
                self._send(404, b"404: Not Found", body)

        def _send(self, status: int, content: bytes, body: bool) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                if body:
                    self.wfile.write(content)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test)

    return Handler

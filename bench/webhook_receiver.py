"""A real local HTTP receiver for the latency benchmarks: records when each webhook body arrived."""

import http.server
import threading
import time


class Receiver(http.server.BaseHTTPRequestHandler):
    """Records (arrival time.time(), body) of every POST; answers 200."""

    bodies: list[tuple[float, str]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        Receiver.bodies.append((time.time(), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def start_receiver() -> http.server.ThreadingHTTPServer:
    """Serve on a free loopback port in a daemon thread; `.server_port`, `.shutdown()`."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def received_at(needle: str) -> float | None:
    """When the first body containing `needle` arrived (time.time()), or None."""
    return next((t for t, body in Receiver.bodies if needle in body), None)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

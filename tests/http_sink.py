"""Real HTTP servers on 127.0.0.1 for the tests: no mocked requests. The one test sink:
the Odoo tests import it as ``.http_sink``, the plain-Python tests (tests/unit) as
``http_sink`` (tests/unit/conftest.py loads it); it imports nothing but the standard library.

``HttpSink`` runs a ``ThreadingHTTPServer`` (HTTP/1.1 keep-alive) in a thread, records
every request it receives and answers with what its responder says. A responder is a
callable ``(received) -> reply`` or a list of replies used in turn (the last one repeats).
A reply is ``status``, ``(status, body)`` or ``(status, body, headers)``; a dict or
list body is sent as JSON; ``HANG`` never answers (until the sink stops).
``HttpSink(responder, ssl_context=context)`` serves HTTPS.
"""

import json
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

HANG = object()


@dataclass
class Received:
    method: str
    path: str
    query: dict
    headers: dict  # names lower-cased
    body: bytes
    at: float = 0.0
    raw_headers: list = field(default_factory=list)
    client_port: int = 0

    def json(self):
        return json.loads(self.body) if self.body else None

    def header(self, name):
        return self.headers.get(name.lower())


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        result = super().setup()
        # One response = headers then body: without this, Nagle + delayed ACK add ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return result

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        received = Received(
            method=self.command,
            path=parts.path,
            query=dict(parse_qsl(parts.query, keep_blank_values=True)),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            at=time.monotonic(),
            raw_headers=list(self.headers.items()),
            client_port=self.client_address[1],
        )
        with self.server.lock:
            self.server.received.append(received)
        reply = self.server.reply_for(received)
        if reply is HANG:
            self.server.stopping.wait(30)
            self.close_connection = True
            return
        status, payload, headers = reply
        if isinstance(payload, (dict, list)):
            payload = json.dumps(payload).encode("utf-8")
            headers = {"Content-Type": "application/json", **(headers or {})}
        elif isinstance(payload, str):
            payload = payload.encode("utf-8")
        payload = payload or b""
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, str(value))
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

    def log_message(self, *args):
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # a pooled keep-alive connection the client dropped: nothing to report
        super().handle_error(request, client_address)


class HttpSink:
    def __init__(self, responder=None, ssl_context=None):
        self.responder = responder if responder is not None else (lambda received: (200, {"ok": True}))
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.scheme = "http"
        if ssl_context is not None:
            self.server.socket = ssl_context.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        self.server.received = []
        self.server.lock = threading.Lock()
        self.server.stopping = threading.Event()
        self.server.reply_for = self._reply_for
        self._queue = list(self.responder) if isinstance(self.responder, (list, tuple)) else None
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def _reply_for(self, received):
        if self._queue is not None:
            with self.server.lock:
                reply = self._queue.pop(0) if len(self._queue) > 1 else self._queue[0]
        else:
            reply = self.responder(received)
        if reply is HANG:
            return HANG
        if isinstance(reply, int):
            return reply, b"", None
        return (tuple(reply) + (b"", None))[:3]

    @property
    def requests(self):
        with self.server.lock:
            return list(self.server.received)

    @property
    def port(self):
        return self.server.server_address[1]

    def url(self, path="/", host="127.0.0.1"):
        return "%s://%s:%s%s" % (self.scheme, host, self.port, path)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.stopping.set()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()


def free_port():
    """A loopback port nobody listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SlowRemote:
    """A responder that answers after ``delay`` seconds (a real remote's latency) and counts.

    ``delay``: seconds, or a callable ``(received) -> seconds``; ``reply``: what it answers
    (a reply as for ``HttpSink``, or a callable ``(received) -> reply``). It records how
    many requests were in progress at once (``max_concurrency``) and when each one was
    answered (``answered``: Idempotency-Key -> monotonic times). Waiting ends early when the
    sink stops, so a remote that "hangs" for minutes does not outlive its test.

        remote = SlowRemote(0.1)
        sink = HttpSink(remote).start()
        remote.sink = sink
    """

    def __init__(self, delay, reply=(200, {"ok": True})):
        self.delay = delay
        self.reply = reply
        self.sink = None
        self.lock = threading.Lock()
        self.active = 0
        self.max_concurrency = 0
        self.answered = {}

    def __call__(self, received):
        with self.lock:
            self.active += 1
            self.max_concurrency = max(self.max_concurrency, self.active)
        try:
            delay = self.delay(received) if callable(self.delay) else self.delay
            if self.sink is not None:
                if self.sink.server.stopping.wait(delay):
                    return HANG  # stopped meanwhile: no answer to a client that is long gone
            else:
                time.sleep(delay)
            return self.reply(received) if callable(self.reply) else self.reply
        finally:
            with self.lock:
                self.active -= 1
                self.answered.setdefault(received.header("Idempotency-Key"), []).append(time.monotonic())


def slow_sink(delay, reply=(200, {"ok": True})):
    """A started ``HttpSink`` answering through a ``SlowRemote``; returns ``(sink, remote)``."""
    remote = SlowRemote(delay, reply)
    sink = HttpSink(remote).start()
    remote.sink = sink
    return sink, remote

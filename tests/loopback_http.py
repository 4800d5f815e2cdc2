"""An HTTP server on 127.0.0.1 serving canned answers, for tests about scraping (and
ESP APIs: a POST's body is recorded too).

    def test_something(loopback: LoopbackServer) -> None:
        loopback.route("/api/daily_papers", json=[], query={"p": "0"})
        loopback.route("/api/daily_papers", status=500)  # any other query
        ...
        assert loopback.requests[0].headers["user-agent"].startswith("Paperboy/")

Routes are tried in the order they were registered; the first whose path matches and whose
query test passes answers. A route answers with a fixed reply, a list of replies used in
turn (the last one repeats: handy for "500, then 200"), or a function of the request.
Unmatched requests get a 404 naming what was asked, so a missing route shows in the error.

Also a pytest plugin: `pytest_plugins = ["tests.loopback_http"]` provides the `loopback`
fixture and `sources_on_loopback`, which also points every Paperboy source at it.
"""

from __future__ import annotations

import json as jsonlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]  # the last value of each parameter
    headers: dict[str, str]  # names lower-cased
    at: float  # time.monotonic() when it arrived
    body: bytes = b""  # a POST's body (ESP API calls)


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes | str = b""
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # sleep before answering: longer than the client timeout = a timeout
    trickle_s: float = 0.0  # send the body a byte at a time, this long apart: a hostile server
    send_length: bool = True  # False: no Content-Length, the body ends when the server closes

    @classmethod
    def json(cls, data: Any, status: int = 200, **kwargs: Any) -> Reply:
        return cls(status=status, body=jsonlib.dumps(data), **kwargs)

    @classmethod
    def file(cls, path: Path | str, content_type: str | None = None, **kwargs: Any) -> Reply:
        path = Path(path)
        guessed = {
            ".json": "application/json",
            ".xml": "application/atom+xml; charset=utf-8",
            ".html": "text/html; charset=utf-8",
        }.get(path.suffix, "application/octet-stream")
        return cls(body=path.read_bytes(), content_type=content_type or guessed, **kwargs)


Handler = Callable[[RecordedRequest], Reply]
QueryTest = Mapping[str, str] | Callable[[dict[str, str]], bool] | None


@dataclass
class Route:
    path: str
    query: QueryTest
    replies: list[Reply] | Handler
    hits: int = 0

    def matches(self, request: RecordedRequest) -> bool:
        if request.path != self.path:
            return False
        if self.query is None:
            return True
        if callable(self.query):
            return bool(self.query(request.query))
        return all(request.query.get(k) == str(v) for k, v in self.query.items())

    def reply(self, request: RecordedRequest) -> Reply:
        self.hits += 1
        if callable(self.replies):
            return self.replies(request)
        return self.replies[min(self.hits, len(self.replies)) - 1]


class LoopbackServer:
    """A threaded HTTP/1.0 server on a random port of 127.0.0.1. Use as a context manager."""

    def __init__(self) -> None:
        self.routes: list[Route] = []
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True  # a slow reply must not hold up the test's end
        # A short poll interval makes shutdown() (once per test) quick.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def route(
        self,
        path: str,
        *,
        query: QueryTest = None,
        status: int = 200,
        body: bytes | str = b"",
        json: Any = None,
        file: Path | str | None = None,
        content_type: str | None = None,
        delay_s: float = 0.0,
        trickle_s: float = 0.0,
        replies: Sequence[Reply] | None = None,
        handler: Handler | None = None,
    ) -> Route:
        """Answer requests to `path` whose query passes `query` (a dict of required values or a
        predicate), with one of: `handler(request)`, `replies` in turn, a `file`, `json`,
        or `status`/`body`; `trickle_s` sends a `json` or `body` a byte at a time."""
        answer: list[Reply] | Handler
        if handler is not None:
            answer = handler
        elif replies is not None:
            answer = list(replies)
        elif file is not None:
            answer = [Reply.file(file, content_type, status=status, delay_s=delay_s)]
        elif json is not None:
            answer = [Reply.json(json, status=status, delay_s=delay_s, trickle_s=trickle_s)]
        else:
            kind = content_type or "text/plain; charset=utf-8"
            answer = [Reply(status, body, kind, delay_s=delay_s, trickle_s=trickle_s)]
        new = Route(path, query, answer)
        with self._lock:
            self.routes.append(new)
        return new

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    def start(self) -> LoopbackServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers sleeping in a `delay_s`
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _answer(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self.requests.append(request)
            route = next((r for r in self.routes if r.matches(request)), None)
            if route is None:
                return Reply(404, f"no route for {request.path}?{request.query}", "text/plain")
            return route.reply(request)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class _Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._serve("GET", b"")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self._serve("POST", self.rfile.read(length))

            def _serve(self, method: str, body: bytes) -> None:
                parts = urlsplit(self.path)
                request = RecordedRequest(
                    method=method,
                    path=parts.path,
                    query=dict(parse_qsl(parts.query, keep_blank_values=True)),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    at=time.monotonic(),
                    body=body,
                )
                reply = server._answer(request)
                if reply.delay_s and server._stopping.wait(reply.delay_s):
                    return
                body = reply.body.encode() if isinstance(reply.body, str) else reply.body
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", reply.content_type)
                    if reply.send_length:
                        self.send_header("Content-Length", str(len(body)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    if reply.trickle_s:
                        self._trickle(body, reply.trickle_s)
                    else:
                        self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timed out) before we answered

            def _trickle(self, body: bytes, interval_s: float) -> None:
                # wfile is unbuffered: each byte leaves at once. Stopping the server ends it.
                for index in range(len(body)):
                    self.wfile.write(body[index : index + 1])
                    if server._stopping.wait(interval_s):
                        return

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output quiet; `server.requests` has the log

        return _Handler


@pytest.fixture
def loopback() -> Iterator[LoopbackServer]:
    """A fresh loopback HTTP server for one test."""
    with LoopbackServer() as server:
        yield server


@pytest.fixture
def sources_on_loopback(loopback: LoopbackServer, settings: Any) -> LoopbackServer:
    """Point Hugging Face and arXiv at `loopback`, with quick retries and no arXiv pause."""
    settings.PAPERBOY_HF_URL = loopback.base_url
    settings.PAPERBOY_ARXIV_URL = loopback.base_url
    settings.PAPERBOY_HTTP_RETRIES = 1
    settings.PAPERBOY_HTTP_BACKOFF_S = 0.0
    settings.PAPERBOY_HTTP_TIMEOUT_S = 0.5
    settings.PAPERBOY_ARXIV_DELAY_S = 0.0
    return loopback

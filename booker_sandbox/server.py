"""The sandbox's HTTP server: a real loopback Booker for the demo, the tests and benchmarks.

Stdlib only: ``ThreadingHTTPServer`` speaking HTTP/1.1 with keep-alive. Each request passes the
gateway (subscription key, token bucket), then maybe a fault, then ``BookerApi``; with
``SandboxSettings.variants``, good data replies then take contract-legal variant forms.
"""

from __future__ import annotations

import hashlib
import json
import socket
import struct
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone, tzinfo
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from booker_sandbox.api import (
    KEY_MESSAGE,
    ArgumentProblem,
    BookerApi,
    Reply,
    Request,
    Route,
    failure,
    gateway_error,
)
from booker_sandbox.data import SandboxDataset
from booker_sandbox.faults import REPLACING, FaultInjector
from booker_sandbox.settings import SandboxSettings
from booker_sandbox.shapes import plan_for, reshape_rows
from booker_sandbox.tokens import RateLimiter
from booker_sandbox.variants import draw_page_cap, recording, seeded_chooser, vary_reply

# What a request's variants depend on: what it asks, never its token (renewed mid-run) nor,
# for the page cap, its page (every page of a query must share one cap).
_REPLY_IGNORES = frozenset({"access_token"})
_QUERY_IGNORES = frozenset({"access_token", "pagenumber"})


class SandboxStats:
    """Thread-safe request counters; every property returns a snapshot."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._requests, self._throttled = 0, 0
            self._by_route: Counter[str] = Counter()
            self._per_second: Counter[int] = Counter()
            self._throttled_per_second: Counter[int] = Counter()
            self._faults: Counter[str] = Counter()
            self._variants: Counter[str] = Counter()

    def record(self, route: str) -> int:
        """Counts a request as it arrives; returns the second it is counted in."""
        second = int(time.time())
        with self._lock:
            self._requests += 1
            self._by_route[route] += 1
            self._per_second[second] += 1
        return second

    def fault(self, kind: str) -> None:
        with self._lock:
            self._faults[kind] += 1

    def variants_drawn(self, tally: Counter[str]) -> None:
        with self._lock:
            self._variants.update(tally)

    def throttle(self, second: int) -> None:
        with self._lock:
            self._throttled += 1
            self._throttled_per_second[second] += 1

    @property
    def requests(self) -> int:
        with self._lock:
            return self._requests

    @property
    def throttled(self) -> int:
        with self._lock:
            return self._throttled

    @property
    def by_route(self) -> Counter[str]:
        with self._lock:
            return Counter(self._by_route)

    @property
    def per_second(self) -> Counter[int]:
        with self._lock:
            return Counter(self._per_second)

    @property
    def throttled_per_second(self) -> Counter[int]:
        """HTTP 429s by the second the request arrived (as ``per_second`` counts them all)."""
        with self._lock:
            return Counter(self._throttled_per_second)

    @property
    def faults(self) -> Counter[str]:
        with self._lock:
            return Counter(self._faults)

    @property
    def variants(self) -> Counter[str]:
        """Variant picks as ``"<kind>=<option>"`` (e.g. ``moment=legacy_only``), and
        ``replies``: how many replies were varied."""
        with self._lock:
            return Counter(self._variants)


class BookerSandbox:
    """A Booker API on ``127.0.0.1``; use as a context manager or ``start()`` / ``stop()``."""

    def __init__(self, settings: SandboxSettings | None = None, port: int = 0) -> None:
        self.settings = settings or SandboxSettings()
        self.credentials = dict(self.settings.credentials)
        self.dataset = SandboxDataset(self.settings.seed, self.settings.location_count,
                                      self.settings.start_date, self.settings.end_date,
                                      self._now)
        self.location_ids = list(self.dataset.location_ids)
        self.stats = SandboxStats()
        self.api = BookerApi(self.settings, self.dataset)
        self.faults = FaultInjector(self.settings.faults)
        self._limiter = RateLimiter(self.settings.rate_per_second, self.settings.burst)
        if self.settings.variants is not None:
            self.api.page_cap_for = self._drawn_page_cap
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def _now(self) -> datetime:
        return self.settings.now or datetime.now(timezone.utc)

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the sandbox is not running: call start() first")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> BookerSandbox:
        if self._server is None:
            self._server = _Server(("127.0.0.1", self._port), _Handler)
            self._server.sandbox = self
            # A short poll interval lets stop() return promptly.
            self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                            name=f"booker-sandbox-{self.url}", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> BookerSandbox:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def respond(self, request: Request) -> Reply | None:
        """The reply to one request (None: drop the connection without a word)."""
        found = self.api.match(request.method, request.path)
        arrived = self.stats.record(found[0].name if found else "UNKNOWN")
        if self.settings.latency_ms > 0:
            time.sleep(self.settings.latency_ms / 1000)
        key = request.headers.get("Ocp-Apim-Subscription-Key")
        if key != self.credentials["subscription_key"]:
            return gateway_error(401, KEY_MESSAGE)
        wait = self._limiter.acquire(key)
        if wait:
            self.stats.throttle(arrived)
            return gateway_error(429, f"Rate limit is exceeded. Try again in {wait} seconds.",
                                 {"Retry-After": str(wait)})
        if found is None:
            return failure(404, 404, f"No operation {request.method} {request.path}.")
        route, params = found
        kind = self._draw_fault(request, route.scope)
        if kind in REPLACING or kind == "connection_reset":
            self.stats.fault(kind)
            return None if kind == "connection_reset" else self.faults.replacement(kind)
        if kind == "read_timeout":
            self.stats.fault(kind)
            time.sleep(self.settings.faults.timeout_sleep_s)
        reply = self.api.handle(request, route, params)
        if reply.status != 200 or route.scope in ("token", "context"):
            return reply
        if kind in ("wrong_shape", "lossy_page") and self.faults.corrupt(kind, reply):
            self.stats.fault(kind)
        if self.settings.variants is not None:
            self._vary(request, route, params, reply)
        for switch in self.faults.reshape(reply):
            self.stats.fault(switch)
        if kind == "truncated_json":
            self.stats.fault(kind)
            reply.truncated = True
        return reply

    def _vary(self, request: Request, route: Route, params: dict[str, int], reply: Reply) -> None:
        """Rewrite a good data reply's records into variants drawn for this request."""
        tally: Counter[str] = Counter(replies=1)
        choose = recording(seeded_chooser(self._variant_seed(request, _REPLY_IGNORES)), tally)
        plan = plan_for(request.path) if self.settings.shapes else None
        rows = reply.body.get(reply.rows_key) if reply.rows_key else None
        if plan is not None and isinstance(rows, list):
            reply.body = {**reply.body, reply.rows_key: reshape_rows(rows, plan, choose)}
        reply.body = vary_reply(reply.body, reply.rows_key, reply.record_body,
                                self._zone_of(request, route, params), choose)
        self.stats.variants_drawn(tally)

    def _drawn_page_cap(self, request: Request) -> int | None:
        tally: Counter[str] = Counter()
        choose = recording(seeded_chooser(self._variant_seed(request, _QUERY_IGNORES)), tally)
        cap = draw_page_cap(choose)
        self.stats.variants_drawn(tally)
        return cap

    def _variant_seed(self, request: Request, ignores: frozenset[str]) -> int:
        """A seed per request, from what it asks, so that replies do not depend on the order
        in which concurrent requests arrive: the same seed serves the same bytes."""
        args = request.json if request.method == "POST" else request.query
        if isinstance(args, dict):
            args = {k: v for k, v in args.items() if k.lower() not in ignores}
        text = json.dumps([self.settings.variants, request.method, request.path.lower(), args],
                          sort_keys=True, default=str)
        return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")

    def _zone_of(
        self, request: Request, route: Route, params: dict[str, int]
    ) -> Callable[[dict], tzinfo]:
        """The zone of each record: its own location's on brand calls (locations), else the
        location the call names."""
        if route.scope == "brand":
            return lambda record: self.dataset.zone(record["ID"])
        zone = self.dataset.zone(self.api.location_of(request, route, params))
        return lambda record: zone

    def _draw_fault(self, request: Request, scope: str) -> str | None:
        token = None
        if self.faults.active and scope != "token":
            try:
                token = self.api.claims(request)
            except ArgumentProblem:  # a body that is not JSON: BookerApi answers it
                token = None
        newest = token is not None and self.api.is_newest(token)
        return self.faults.draw(auth_call=scope in ("token", "context"), token=token,
                                newest=newest)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    sandbox: BookerSandbox

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that gave up (read timeout, reset) is routine here, not a traceback."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every reply carries Content-Length
    timeout = 60  # reap idle keep-alive connections
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out as separate writes: without this, Nagle's algorithm and
        # delayed ACKs add ~40 ms to every reply and the sandbox, not the client, sets the pace.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._serve()

    def do_POST(self) -> None:  # noqa: N802
        self._serve()

    def do_PUT(self) -> None:  # noqa: N802
        self._serve()

    def do_DELETE(self) -> None:  # noqa: N802
        self._serve()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        """Quiet: benchmarks send thousands of requests."""

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        parts = urlsplit(self.path)
        query = {k.lower(): v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        request = Request(self.command, parts.path, query, self.headers, body)
        try:
            reply = self.server.sandbox.respond(request)
        except Exception as exc:  # a sandbox bug: say so plainly instead of dropping the socket
            reply = failure(500, 500, f"Sandbox error: {exc!r}")
        if reply is None:
            self._reset()
        else:
            self._send(reply)

    def _reset(self) -> None:
        # SO_LINGER 0 makes close() send RST: the client sees a connection reset, no reply.
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    def _send(self, reply: Reply) -> None:
        if reply.content_type.startswith("text/"):
            payload = str(reply.body).encode()
        else:
            payload = json.dumps(reply.body, ensure_ascii=False).encode()
        if reply.truncated:
            payload = payload[: len(payload) // 2]
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)


_embedded: BookerSandbox | None = None
_embedded_lock = threading.Lock()


def embedded_url() -> str:
    """The URL of a process-wide sandbox with default settings, started on first use."""
    global _embedded
    with _embedded_lock:
        if _embedded is None:
            _embedded = BookerSandbox(SandboxSettings()).start()
        return _embedded.url


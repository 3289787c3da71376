"""One request relayed to an upstream and its response relayed back, piece by piece."""

import asyncio
import logging
import re
import time
from dataclasses import dataclass
from typing import Protocol

import httptools

from spacehub.platform.app_tickets import (
    APP_COOKIE,
    PLATFORM_COOKIE_PREFIX,
    AppCookie,
    cookie_value,
    without_platform_cookies,
)
from spacehub.platform.proxy.activity import (
    close_activity,
    open_activity,
    open_stream,
    record_response,
)
from spacehub.platform.proxy.context import ProxyContext
from spacehub.platform.proxy.http_head import (
    CLIENT_FORWARDING,
    HOP_BY_HOP,
    Headers,
    end_to_end,
    header_value,
    parse_response_head,
    plain_response,
    render_head,
    status_line,
)
from spacehub.platform.proxy.routing import Destination, Redirect, Refusal
from spacehub.platform.proxy.static_files import (
    INLINE_MAX,
    FileSender,
    file_head,
    find_file,
    read_small,
)
from spacehub.platform.proxy.tunnel import Tunnel, TunnelClient
from spacehub.platform.proxy.upstream_pool import UpstreamConnection
from spacehub.platform.proxy.waking import waking_response, wants_a_page
from spacehub.platform.route_table import Activity, Frozen, Route, Sleeping, Upstream

log = logging.getLogger(__name__)

CREDENTIALS = frozenset({b"authorization", b"x-hf-authorization"})
_APP_COOKIE = APP_COOKIE.encode()
_DROP_FROM_REQUESTS = HOP_BY_HOP | CLIENT_FORWARDING
_DROP_FROM_PRIVATE_APP_REQUESTS = _DROP_FROM_REQUESTS | CREDENTIALS
_NO_BODY_STATUSES = frozenset({204, 304})
_STATIC_METHODS = frozenset({b"GET", b"HEAD"})
THAW_TIMEOUT_SECONDS = 30.0
INTERIM_SECONDS = 2.0  # between the interim responses to a client held for a wake
WAKE_RETRY_AFTER = b"10"  # seconds, to an API client whose wake took longer than wake_timeout
# The response header lines that decide whether a head can be forwarded as it came: hop-by-hop
# ones, Location, and Content-Length (without it, the body is framed otherwise). llhttp only
# accepts heads whose lines end in CRLF and whose names end at the colon: the match is exact.
_NOTABLE_RESPONSE_HEADER = re.compile(
    rb"\r\n(connection|keep-alive|proxy-[^:]*|te|trailer|transfer-encoding|upgrade|location"
    rb"|content-length):[ \t]*([^\r]*)",
    re.IGNORECASE,
)
# The same lines in a lower-cased head, for the fast path: one pass over a head that matches no
# case-insensitive alternatives costs a third of the above.
_NOTABLE_LOWERED_HEADER = re.compile(
    rb"\r\n(connection|keep-alive|proxy-[^:]*|te|trailer|transfer-encoding|upgrade|location"
    rb"|content-length):[ \t]*([^\r]*)"
)


class _NoCallbacks:
    """A response parser's protocol without callbacks: llhttp only checks a head and frames it."""


_NO_CALLBACKS = _NoCallbacks()


@dataclass(slots=True)
class Request:
    """A client's request head, parsed; `target` is origin-form (path and query)."""

    method: bytes
    target: bytes
    host: bytes | None
    headers: Headers
    client_ip: bytes
    proto: bytes  # the scheme the client used: http, or what the front says (https)
    keep_alive: bool
    http10: bool
    websocket: bool
    chunked: bool
    has_body: bool
    # Whether it has a `Connection` header, which may name more headers to drop.
    connection: bool = False


class ExchangeClient(TunnelClient, Protocol):
    def exchange_finished(self, keep_alive: bool) -> None: ...
    def start_tunnel(self, tunnel: Tunnel) -> None: ...


def bearer_token(headers: Headers) -> str | None:
    """The token of `Authorization: Bearer x`, else of `X-HF-Authorization: Bearer x`, else the
    app-access cookie a browser got for the space (app_tickets.py) as an `AppCookie`."""
    for name in (b"authorization", b"x-hf-authorization"):
        value = header_value(headers, name)
        if value is not None:
            scheme, _, token = value.strip().partition(b" ")
            if scheme.lower() == b"bearer" and token.strip():
                return token.strip().decode("latin-1")
    cookies = header_value(headers, b"cookie")
    if cookies is not None and _APP_COOKIE in cookies:
        cookie = cookie_value(cookies, _APP_COOKIE)
        if cookie:
            return AppCookie(cookie.decode("latin-1"))
    return None


def prefixed_location(location: bytes, prefix: bytes) -> bytes:
    """An app's absolute-path redirect, moved under the prefix the proxy stripped."""
    if not location.startswith(b"/") or location.startswith(b"//"):
        return location
    if location == prefix or location.startswith(prefix + b"/"):
        return location
    return prefix + location


def custom_header_lines(route: Route) -> Headers:
    """The headers the space's README asks for on every response (`custom_headers`)."""
    return [(n.lower().encode("latin-1"), v.encode("latin-1")) for n, v in route.custom_headers]


class Exchange:
    """Forwards one request; the client connection feeds it the body and reads its outcome."""

    # Slots: one exchange is built per request, and their attributes are read on every callback.
    __slots__ = (
        "_activity",
        "_body_done",
        "_client",
        "_client_close",
        "_close_delimited",
        "_conn",
        "_ctx",
        "_got_response",
        "_head",
        "_head_buffer",
        "_opened",
        "_out",
        "_parser",
        "_pending",
        "_pending_size",
        "_prefix",
        "_rechunk",
        "_remaining",
        "_response_complete",
        "_response_started",
        "_retried",
        "_route",
        "_sender",
        "_status",
        "_streaming",
        "_task",
        "_upgraded",
        "_upstream",
        "_upstream_keep_alive",
        "done",
        "request",
    )

    def __init__(self, client: ExchangeClient, context: ProxyContext, request: Request) -> None:
        self._client = client
        self._ctx = context
        self.request = request
        self._upstream: Upstream | None = None
        self._conn: UpstreamConnection | None = None
        self._task: asyncio.Future[None] | None = None
        self._head = b""
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._body_done = False
        self._retried = False
        self._route: Route | None = None
        self._prefix = b""
        self._activity: Activity | None = None
        self._opened = 0.0  # when the request went to the app (or its file was looked up)
        self._streaming = False  # counted in its space's open streams
        self._parser: httptools.HttpResponseParser | None = None
        self._status = 0
        self._got_response = False
        self._head_buffer = b""
        self._remaining = -1  # body bytes still to come on the fast path; -1: not on it
        self._response_started = False
        self._response_complete = False
        self._upstream_keep_alive = False
        self._out: list[bytes] = []
        self._rechunk = False
        self._close_delimited = False
        self._client_close = not request.keep_alive
        self._upgraded = False
        self._sender: FileSender | None = None
        self.done = False

    # The request, from the client connection

    def start(self) -> None:
        request = self.request
        decision = self._ctx.router.resolve(request.host, request.target)
        if type(decision) is Redirect:
            self._reply(decision.status, [(b"location", decision.location)])
            return
        if type(decision) is Refusal:
            self._reply(decision.status, [], decision.text)
            return
        route = decision.route
        if route is not None and route.upstream is not None and not route.private:
            self._forward_to_app(route, decision)  # the common case, first
        elif route is None or (
            route.upstream is None and not self._static(route) and not self._asleep(route)
        ):
            self._forward_to_control_plane(decision)
        elif route.private:
            self._task = asyncio.ensure_future(self._authorize(route, decision))
        else:
            self._answer_from(route, decision)

    def feed_body(self, data: bytes) -> None:
        if self.request.chunked:
            data = b"".join((b"%x\r\n" % len(data), data, b"\r\n"))
        self._send_upstream(data)

    def end_body(self) -> None:
        self._body_done = True
        if self.request.chunked:
            self._send_upstream(b"0\r\n\r\n")

    def feed_tunnel(self, data: bytes) -> None:
        """Bytes a client sent after its upgrade request, before the upstream agreed."""
        if self.request.websocket and data:
            self._send_upstream(data)

    def client_lost(self) -> None:
        self._end()
        if self._task is not None:
            self._task.cancel()
        if self._sender is not None:
            self._sender.stop()
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._release_activity()

    def client_paused(self) -> None:
        if self._conn is not None:
            self._conn.pause_reading()
        elif self._sender is not None:
            self._sender.pause()

    def client_resumed(self) -> None:
        if self._conn is not None:
            self._conn.resume_reading()
        elif self._sender is not None:
            self._sender.resume()

    # Choosing and reaching the upstream

    async def _authorize(self, route: Route, decision: Destination) -> None:
        try:
            allowed = await self._ctx.authorize(route, bearer_token(self.request.headers))
        except Exception:
            log.exception("authorizing a request for %s failed; refusing it", route.space_id)
            allowed = False
        if self.done:
            return
        if allowed:
            self._answer_from(route, decision)
        else:
            self._forward_to_control_plane(decision)

    def _answer_from(self, route: Route, decision: Destination) -> None:
        if route.upstream is not None:
            self._forward_to_app(route, decision)
        elif self._asleep(route):
            self._wake(route, decision)
        elif not self._answer_static(route, decision):
            self._forward_to_control_plane(decision)

    # A static release: files answered here

    def _static(self, route: Route) -> bool:
        """Whether the proxy may answer this request from the route's release directory."""
        request = self.request
        return (
            route.static_root is not None
            and request.method in _STATIC_METHODS
            and not request.websocket
            and header_value(request.headers, b"range") is None  # ranges: the control plane's
        )

    def _answer_static(self, route: Route, decision: Destination) -> bool:
        """Answer with a file of the release; False when the control plane must answer instead."""
        assert route.static_root is not None
        self._opened = time.monotonic()
        file = find_file(route.static_root, decision.app_target)
        if file is None:
            return False
        request = self.request
        body = b""
        head_only = request.method == b"HEAD"
        if not head_only and file.stat.st_size <= INLINE_MAX:
            small = read_small(file)
            if small is None:
                return False  # replaced while we looked: the control plane looks again
            body = small
        self._route = route
        self._activity = open_activity(self._ctx.routes, route.space_id)
        self._client_close = self._client_close or not self._body_done or request.http10
        if_none_match = header_value(request.headers, b"if-none-match")
        custom = custom_header_lines(route)
        status, head = file_head(file, if_none_match, custom, self._client_close)
        record_response(self._activity, status, self._opened)
        self._response_started = True
        if status == 304 or head_only or body or file.stat.st_size == 0:
            self._client.send(head + body if status == 200 else head)
            self._static_sent(True)
        else:
            self._client.send(head)
            self._sender = FileSender(self._client, file, self._static_sent)
            self._sender.start()
        return True

    def _static_sent(self, complete: bool) -> None:
        self._sender = None
        if self.done:
            return
        self._end()
        self._release_activity()
        if not complete:
            self._client.abort()  # fewer bytes than Content-Length said: the client must know
            return
        self._client.exchange_finished(keep_alive=not self._client_close)

    def _forward_to_app(self, route: Route, decision: Destination) -> None:
        assert route.upstream is not None
        self._route = route
        self._prefix = decision.prefix
        # Counted open before looking for a freeze: the supervisor marks a space frozen, then
        # checks that nothing is open, then freezes; this order leaves no request in between.
        self._activity = open_activity(self._ctx.routes, route.space_id)
        self._opened = time.monotonic()
        drop = _DROP_FROM_PRIVATE_APP_REQUESTS if route.private else _DROP_FROM_REQUESTS
        sleeping = self._ctx.routes.sleeping  # being put to sleep: its route still has upstream
        if sleeping and route.space_id in sleeping:
            self._hold_for_wake(route, decision, sleeping[route.space_id])
            return
        frozen_spaces = self._ctx.routes.frozen  # most often empty: a cheaper test than get
        frozen = frozen_spaces.get(route.space_id) if frozen_spaces else None
        if frozen is not None:
            forward = (route.upstream, decision.app_target, drop, decision.prefix)
            self._task = asyncio.ensure_future(self._forward_when_thawed(frozen, *forward))
            return
        self._forward(route.upstream, decision.app_target, drop, decision.prefix)

    async def _forward_when_thawed(
        self, frozen: Frozen, upstream: Upstream, target: bytes, drop: frozenset, prefix: bytes
    ) -> None:
        """Ask the control plane to thaw the space's instance, wait for it, then forward."""
        try:
            frozen.request_thaw()
            # Shielded: a client leaving must not cancel what other requests wait for too.
            waiting = asyncio.shield(asyncio.wrap_future(frozen.thawed))
            thawed = await asyncio.wait_for(waiting, THAW_TIMEOUT_SECONDS)
        except (TimeoutError, RuntimeError):  # RuntimeError: the control plane's loop is closed
            thawed = False
        if self.done:
            return
        if thawed:
            self._forward(upstream, target, drop, prefix)
        else:
            self._fail(503, "the app could not be woken up; try again")

    # A sleeping space: its instance is stopped; the request wakes it (the supervisor starts it)

    def _asleep(self, route: Route) -> bool:
        sleeping = self._ctx.routes.sleeping
        return bool(sleeping) and route.space_id in sleeping

    def _wake(self, route: Route, decision: Destination) -> None:
        sleeping = self._ctx.routes.sleeping.get(route.space_id)
        if sleeping is None:  # woken meanwhile (the proxy's thread reads, the supervisor's writes)
            self._answer_from(self._ctx.routes.by_id(route.space_id) or route, decision)
            return
        self._route = route
        self._prefix = decision.prefix
        self._activity = open_activity(self._ctx.routes, route.space_id)
        self._opened = time.monotonic()
        self._hold_for_wake(route, decision, sleeping)

    def _hold_for_wake(self, route: Route, decision: Destination, sleeping: Sleeping) -> None:
        """Ask for the wake; a browser gets the waking page now, anyone else waits for the app."""
        request = self.request
        if wants_a_page(request.method, request.headers, request.websocket):
            sleeping.request_wake()
            self._answer_waking_page(route)
            return
        self._task = asyncio.ensure_future(self._forward_when_awake(route, decision, sleeping))

    async def _forward_when_awake(
        self, route: Route, decision: Destination, sleeping: Sleeping
    ) -> None:
        try:
            sleeping.request_wake()
            await self._wait_for_wake(sleeping)
            timed_out = False
        except (TimeoutError, RuntimeError):  # RuntimeError: the control plane's loop is closed
            timed_out = True
        if self.done:
            return
        if timed_out:
            retry = [(b"retry-after", WAKE_RETRY_AFTER)]
            self._fail(503, "the app is waking up; try again in a moment", retry)
            return
        now = self._ctx.routes.by_id(route.space_id)
        if now is not None and now.upstream is not None:
            drop = _DROP_FROM_PRIVATE_APP_REQUESTS if now.private else _DROP_FROM_REQUESTS
            self._forward(now.upstream, decision.app_target, drop, decision.prefix)
        else:  # it did not wake (paused, failed to start): the control plane says why
            self._forward_to_control_plane(decision)

    async def _wait_for_wake(self, sleeping: Sleeping) -> None:
        """Wait up to the wake timeout; meanwhile, every few seconds, an interim `100 Continue`
        to an HTTP/1.1 client: clients must skip 1xx responses, and each one restarts their
        read timeout (gradio_client reads the app's config with httpx's 5 s)."""
        woken = asyncio.wrap_future(sleeping.woken)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + sleeping.wake_timeout
        interim = not self.request.http10 and not self.request.websocket
        while True:
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError
            try:
                # Shielded: a client leaving must not cancel what other requests wait for too.
                await asyncio.wait_for(asyncio.shield(woken), min(left, INTERIM_SECONDS))
                return
            except TimeoutError:
                if interim and not self.done and loop.time() < deadline:
                    self._client.send(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _answer_waking_page(self, route: Route) -> None:
        self._client_close = self._client_close or not self._body_done or self.request.http10
        if self._activity is not None:
            record_response(self._activity, 503, self._opened)
        self._response_started = True
        self._client.send(waking_response(route.space_id, self._client_close))
        self._end()
        self._release_activity()
        self._client.exchange_finished(keep_alive=not self._client_close)

    def _forward_to_control_plane(self, decision: Destination) -> None:
        self._forward(self._ctx.control_plane, decision.control_target, _DROP_FROM_REQUESTS, b"")

    def _forward(
        self, upstream: Upstream, target: bytes, drop: frozenset[bytes], prefix: bytes
    ) -> None:
        # Rendered in one pass into one list of pieces: this runs for every request.
        request = self.request
        headers = end_to_end(request.headers, drop) if request.connection else request.headers
        chunked = request.chunked
        lines = [request.method, b" ", target, b" HTTP/1.1\r\n"]
        to_app = upstream is not self._ctx.control_plane
        for name, value in headers:
            if name in drop or name.startswith(b"proxy-"):
                continue
            if to_app and name == b"cookie" and PLATFORM_COOKIE_PREFIX in value:
                value = without_platform_cookies(value)  # no session or app-access cookie
                if not value:
                    continue
            if chunked and name == b"content-length":
                continue
            lines += (name, b": ", value, b"\r\n")
        if chunked:
            lines.append(b"transfer-encoding: chunked\r\n")
        if request.websocket:
            lines.append(b"connection: upgrade\r\nupgrade: websocket\r\n")
        lines += (b"x-forwarded-for: ", request.client_ip, b"\r\nx-forwarded-proto: ")
        lines += (request.proto, b"\r\n")
        if request.host is not None:
            lines += (b"x-forwarded-host: ", request.host, b"\r\n")
        else:
            lines.append(b"host: localhost\r\n")  # HTTP/1.1 requires one; 1.0 clients omit it
        if prefix:
            lines += (b"x-forwarded-prefix: ", prefix, b"\r\n")
        lines.append(b"\r\n")
        self._head = b"".join(lines)
        self._upstream = upstream
        conn = self._ctx.pool.take(upstream)
        if conn is None:
            self._task = asyncio.ensure_future(self._connect())
        else:
            self._attach(conn)

    async def _connect(self) -> None:
        assert self._upstream is not None
        try:
            conn = await self._ctx.pool.connect(self._upstream)
        except TimeoutError:
            self._fail(504, "the app did not accept a connection in time")
            return
        except OSError:
            self._fail(502, "the app is unreachable")
            return
        if self.done:
            conn.close()
            return
        self._attach(conn)

    def _attach(self, conn: UpstreamConnection) -> None:
        self._conn = conn
        conn.listener = self
        conn.write(b"".join((self._head, *self._pending)))
        if self._pending_size > self._ctx.limits.max_pending_body:
            self._client.resume_reading()
        self._pending.clear()
        self._pending_size = 0

    def _send_upstream(self, data: bytes) -> None:
        if self.done or self._response_complete:
            return
        if self._conn is not None:
            self._conn.write(data)
            return
        self._pending.append(data)
        self._pending_size += len(data)
        if self._pending_size > self._ctx.limits.max_pending_body:
            self._client.pause_reading()

    # The response, from the upstream connection

    def upstream_data(self, data: bytes) -> None:
        """The fast path: a head that needs no rewriting and a Content-Length body, passed on as
        they arrive and only counted; anything else goes through the full response parser."""
        remaining = self._remaining
        if remaining >= 0:
            size = len(data)
            if size < remaining:
                self._remaining = remaining - size
                self._client.send(data)
                return
            self._fast_end(data[:remaining], size > remaining)
            return
        if self._parser is None:
            if self.done:
                return
            self._got_response = True
            if self._fast_head(data):
                return
            self._parser = httptools.HttpResponseParser(self)
        self._parse(data)

    def _fast_head(self, data: bytes) -> bool:
        """Forward a response whose head came whole in `data` and may go out as it is."""
        end = data.find(b"\r\n\r\n") + 4
        if end == 3 or not data.startswith(b"HTTP/1.1 ") or data[9:10] in b"1":
            return False  # no head yet, HTTP/1.0, or an interim or upgrade response
        request = self.request
        if self._client_close or not self._body_done or request.http10 or request.websocket:
            return False
        if self._route is not None and self._route.custom_headers:
            return False
        head = data[:end]
        lowered = head.lower()
        length = -1
        keep_alive_line = False
        for name, value in _NOTABLE_LOWERED_HEADER.findall(lowered):
            if name == b"content-length" and length < 0 and value.rstrip().isdigit():
                length = int(value)
            elif name == b"connection" and value.rstrip() == b"keep-alive" and not keep_alive_line:
                keep_alive_line = True
            else:
                return False
        parser = httptools.HttpResponseParser(_NO_CALLBACKS)
        try:
            parser.feed_data(head)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):
            return False  # the full parser says what is wrong with it
        status = parser.get_status_code()
        if keep_alive_line:  # `Connection: keep-alive` is cut out; the client's own holds
            start = lowered.find(b"\r\nconnection:")
            head = head[:start] + head[head.index(b"\r\n", start + 2) :]
        if request.method == b"HEAD" or status in _NO_BODY_STATUSES:
            length = 0
        elif length < 0:
            return False  # framed otherwise: chunked, or ended by closing
        self._status = status
        self._response_started = True
        if self._activity is not None:
            record_response(self._activity, status, self._opened)
        # HTTP/1.1 and no Connection but keep-alive: the upstream keeps it open. (Not asked of
        # the parser: once a message is over, as an empty body's is here, it answers False.)
        self._upstream_keep_alive = True
        body = len(data) - end
        if body < length:
            self._remaining = length - body
            self._client.send(data if len(head) == end else head + data[end:])
        elif body == length:
            self._fast_end(data if len(head) == end else head + data[end:], False)
        else:
            self._fast_end(head + data[end : end + length], True)
        return True

    def _fast_end(self, data: bytes, extra: bool) -> None:
        """The last bytes of a fast-path response; `extra`: the app sent more, it is broken."""
        if extra:
            self._upstream_keep_alive = False
        self._remaining = -1
        self._response_complete = True
        self._client.send(data)
        self._finish()

    def _parse(self, data: bytes) -> None:
        if self._status == 0:
            self._head_buffer += data  # a head in progress: it may be forwarded as it came
        assert self._parser is not None
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            if self._upgraded:
                self._out.append(data[upgrade.args[0] :])
                self._flush()
                self._start_tunnel()
                return
            self._fail(502, "the app answered with an unexpected upgrade")
            return
        except httptools.HttpParserError:
            self._fail(502, "the app sent an invalid response")
            return
        self._flush()
        if self._response_complete:
            self._finish()

    def upstream_lost(self) -> None:
        if self.done:
            return
        conn, self._conn = self._conn, None
        if self._close_delimited:
            self._response_complete = True
            self._finish()
        elif (
            not self._got_response
            and conn is not None
            and conn.reused
            and not self.request.has_body
            and not self._retried
        ):
            # A pooled connection the upstream closed just as we reused it: try a fresh one.
            self._retried = True
            self._task = asyncio.ensure_future(self._connect())
        else:
            self._fail(502, "the app closed the connection")

    def upstream_paused(self) -> None:
        self._client.pause_reading()

    def upstream_resumed(self) -> None:
        self._client.resume_reading()

    # The parser has no header callbacks: a head is looked at as bytes, and only parsed into
    # headers when it must be rewritten.

    def on_headers_complete(self) -> None:
        assert self._parser is not None
        status = self._parser.get_status_code()
        end = self._head_buffer.find(b"\r\n\r\n") + 4
        head, self._head_buffer = self._head_buffer[:end], self._head_buffer[end:]
        if 100 <= status < 200 and status != 101:
            reason, headers = parse_response_head(head)
            self._out.append(render_head(status_line(status, reason), end_to_end(headers)))
            return  # what follows in the buffer is the next head
        self._head_buffer = b""
        self._status = status
        as_received = self._head_as_received(head)
        if as_received is None:
            reason, headers = parse_response_head(head)
            as_received = render_head(status_line(status, reason), self._client_headers(headers))
        self._out.append(as_received)
        if self._activity is not None:
            record_response(self._activity, status, self._opened)
            if self._rechunk or self._close_delimited:  # an SSE stream, or another open end
                open_stream(self._activity)
                self._streaming = True
        if self.request.method == b"HEAD" or status in _NO_BODY_STATUSES:
            self._complete_response()

    def on_body(self, body: bytes) -> None:
        if self._response_complete:
            return
        if self._rechunk:
            self._out += (b"%x\r\n" % len(body), body, b"\r\n")
        else:
            self._out.append(body)

    def on_message_complete(self) -> None:
        if self._status == 0 or self._response_complete:
            return  # the end of an interim (1xx) response, or of a body that must be ignored
        if self._rechunk:
            self._out.append(b"0\r\n\r\n")
        self._complete_response()

    def _complete_response(self) -> None:
        assert self._parser is not None
        # Asked now: once the message is over, the parser forgets what its head said.
        self._upstream_keep_alive = self._parser.should_keep_alive()
        self._response_complete = True

    def _head_as_received(self, head: bytes) -> bytes | None:
        """The upstream's head unchanged, when that is what the client must get (most responses).

        Not when a hop-by-hop header, framing other than Content-Length, a Location under a
        stripped prefix, custom headers or a connection the proxy ends call for changes; only
        `Connection: keep-alive` is cut out of the bytes as they are.
        """
        request = self.request
        if self._status == 101 or self._client_close or not self._body_done or request.http10:
            return None
        if self._route is not None and self._route.custom_headers:
            return None
        framed = request.method == b"HEAD" or self._status in _NO_BODY_STATUSES
        keep_alive: re.Match[bytes] | None = None
        for line in _NOTABLE_RESPONSE_HEADER.finditer(head):
            name, value = line[1].lower(), line[2].rstrip()
            if name == b"content-length":
                framed = True
            elif name == b"connection" and value.lower() == b"keep-alive" and keep_alive is None:
                keep_alive = line
            elif name != b"location" or prefixed_location(value, self._prefix) != value:
                return None
        if not framed:
            return None
        if keep_alive is not None:
            head = head[: keep_alive.start()] + head[keep_alive.end() :]
        return head

    def _client_headers(self, upstream_headers: Headers) -> Headers:
        request = self.request
        headers = end_to_end(upstream_headers)
        if self._status == 101:
            if not request.websocket:
                return headers  # upstream_data answers 502 once the parser reports the upgrade
            self._upgraded = True
            return [*headers, (b"connection", b"upgrade"), (b"upgrade", b"websocket")]
        body_expected = request.method != b"HEAD" and self._status not in _NO_BODY_STATUSES
        if body_expected and header_value(upstream_headers, b"transfer-encoding") is not None:
            headers = [h for h in headers if h[0] != b"content-length"]
            if request.http10:
                self._client_close = True  # the body goes out unframed, ended by closing
            else:
                self._rechunk = True
                headers.append((b"transfer-encoding", b"chunked"))
        elif body_expected and header_value(headers, b"content-length") is None:
            self._close_delimited = True
            self._client_close = True
        if self._route is not None:
            headers = self._app_headers(headers, self._route)
        if not self._body_done:
            self._client_close = True  # the rest of the request body will not be read
        if self._client_close:
            headers.append((b"connection", b"close"))
        elif request.http10:
            headers.append((b"connection", b"keep-alive"))
        return headers

    def _app_headers(self, headers: Headers, route: Route) -> Headers:
        if self._prefix:
            headers = [
                (name, prefixed_location(value, self._prefix) if name == b"location" else value)
                for name, value in headers
            ]
        for key, value in custom_header_lines(route):
            headers = [h for h in headers if h[0] != key]
            headers.append((key, value))
        return headers

    # Endings

    def _flush(self) -> None:
        if self._out:
            self._response_started = True
            self._client.send(b"".join(self._out))
            self._out.clear()

    def _finish(self) -> None:
        self._end()
        conn, self._conn = self._conn, None
        if conn is not None:
            if self._upstream_keep_alive and self._body_done:
                self._ctx.pool.give_back(conn)
            else:
                conn.close()
        self._release_activity()
        self._client.exchange_finished(keep_alive=not self._client_close)

    def _reply(self, status: int, headers: Headers, text: str = "") -> None:
        self._client_close = self._client_close or not self._body_done or self.request.http10
        self._response_started = True
        self._client.send(plain_response(status, text, headers=headers, close=self._client_close))
        self._end()
        self._client.exchange_finished(keep_alive=not self._client_close)

    def _fail(self, status: int, text: str, headers: Headers | None = None) -> None:
        """Answer an error if the client has seen nothing of the response yet, else cut it off."""
        if self.done:
            return
        self._end()
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._activity is not None and not self._response_started:
            record_response(self._activity, status, self._opened)
        self._release_activity()
        if self._response_started:
            self._client.abort()
            return
        self._client.send(plain_response(status, text, headers=headers))
        self._client.exchange_finished(keep_alive=False)

    def _start_tunnel(self) -> None:
        assert self._conn is not None
        self._end()
        tunnel = Tunnel(self._client, self._conn, self._activity)
        self._conn = None
        self._activity = None
        self._client.start_tunnel(tunnel)

    def _end(self) -> None:
        self.done = True
        # The parser holds this exchange's bound methods: left in place, that cycle would wait
        # for the garbage collector, whose passes then cost about a fifth of each request.
        self._parser = None

    def _release_activity(self) -> None:
        if self._activity is not None:
            close_activity(self._activity, self._streaming)
            self._activity = None
            self._streaming = False

"""One client connection: request heads parsed as they arrive, exchanges run one at a time."""

import asyncio
import time
from collections import deque
from typing import cast

import httptools

from spacehub.platform.proxy.context import ProxyContext
from spacehub.platform.proxy.exchange import Exchange, Request
from spacehub.platform.proxy.http_head import Headers, header_value, plain_response
from spacehub.platform.proxy.tunnel import Tunnel


class _Refused(Exception):
    """Raised inside a parser callback to stop parsing; the status says why."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class ClientConnection(asyncio.Protocol):
    def __init__(self, context: ProxyContext) -> None:
        self._ctx = context
        self._limits = context.limits
        self._transport: asyncio.Transport | None = None
        self._client_ip = b""
        self._parser = httptools.HttpRequestParser(self)
        self._deadline: float | None = None
        self._reading_paused = False
        self._closed = False
        # The head being parsed.
        self._in_head = False
        self._head_bytes = 0
        self._head_size = 0
        self._url = b""
        self._headers: Headers = []
        self._refused = 0
        # `_parsing` receives the body being parsed; `_active` is the exchange being answered;
        # pipelined requests wait in `_waiting`.
        self._parsing: Exchange | None = None
        self._active: Exchange | None = None
        self._waiting: deque[Exchange] = deque()
        self._newest: Exchange | None = None
        self._upgrading: Exchange | None = None
        self._tunnel: Tunnel | None = None

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self._transport = cast(asyncio.Transport, transport)
        self._ctx.clients.add(self)
        peer = transport.get_extra_info("peername")
        self._client_ip = str(peer[0]).encode() if isinstance(peer, tuple) else b"unix"
        self._set_deadline(self._limits.header_timeout)

    def data_received(self, data: bytes) -> None:
        if self._tunnel is not None:
            self._tunnel.client_data(data)
            return
        if self._upgrading is not None:
            self._upgrading.feed_tunnel(data)
            return
        if self._parsing is None:
            self._head_bytes += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self._upgrading = self._newest
            if self._upgrading is not None:
                self._upgrading.feed_tunnel(data[upgrade.args[0] :])
        except httptools.HttpParserError:
            self._refuse(self._refused or 400)
            return
        if self._in_head and self._head_bytes > self._limits.max_head_size:
            self._refuse(431)
            return
        self._advance()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._ctx.clients.discard(self)
        if self._tunnel is not None:
            self._tunnel.client_lost()
        if self._active is not None:
            self._active.client_lost()
        self._waiting.clear()

    def pause_writing(self) -> None:
        if self._tunnel is not None:
            self._tunnel.client_paused()
        elif self._active is not None:
            self._active.client_paused()

    def resume_writing(self) -> None:
        if self._tunnel is not None:
            self._tunnel.client_resumed()
        elif self._active is not None:
            self._active.client_resumed()

    # httptools callbacks

    def on_message_begin(self) -> None:
        self._in_head = True
        self._url = b""
        self._headers = []
        self._head_size = 0
        self._set_deadline(self._limits.header_timeout)

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))
        self._head_size += len(name) + len(value) + 4

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        if len(self._url) + self._head_size > self._limits.max_head_size:
            self._refused = 431
            raise _Refused(431)
        method = self._parser.get_method()
        if method == b"CONNECT":
            self._refused = 405
            raise _Refused(405)
        if self._active is None and not self._waiting:
            self._clear_deadline()
        exchange = Exchange(self, self._ctx, self._request(method))
        self._parsing = self._newest = exchange
        self._waiting.append(exchange)

    def on_body(self, body: bytes) -> None:
        if self._parsing is not None:
            self._parsing.feed_body(body)

    def on_message_complete(self) -> None:
        if self._parsing is not None:
            self._parsing.end_body()
            self._parsing = None

    def _request(self, method: bytes) -> Request:
        headers = self._headers
        target = self._url
        host: bytes | None = None
        if not target.startswith(b"/") and target != b"*":
            url = httptools.parse_url(target)  # absolute form: its authority wins over Host
            host = url.host + (b":%d" % url.port if url.port else b"")
            target = (url.path or b"/") + (b"?" + url.query if url.query else b"")
            headers = [(b"host", host), *(h for h in headers if h[0] != b"host")]
        chunked = False
        has_body = False
        connection = False
        for name, value in headers:
            if name == b"host":
                if host is not None and host != value:
                    self._refused = 400  # two hosts: no way to tell which one routes
                    raise _Refused(400)
                host = value
            elif name == b"transfer-encoding":
                chunked = has_body = True
            elif name == b"content-length":
                has_body = has_body or value.strip() not in (b"0", b"")
            elif name == b"connection":
                connection = True
        client_ip, proto = self._client_ip, b"http"
        if self._ctx.behind_front:
            client_ip = header_value(headers, b"x-forwarded-for") or client_ip
            proto = header_value(headers, b"x-forwarded-proto") or proto
        upgrade = self._parser.should_upgrade()
        websocket = upgrade and any(
            name == b"upgrade" and value.strip().lower() == b"websocket" for name, value in headers
        )
        return Request(
            method=method,
            target=target,
            host=host,
            headers=headers,
            client_ip=client_ip,
            proto=proto,
            # After an upgrade request, the parser cannot read another request on this connection.
            keep_alive=self._parser.should_keep_alive() and not upgrade,
            http10=self._parser.get_http_version() == "1.0",
            websocket=websocket,
            chunked=chunked,
            has_body=has_body,
            connection=connection,
        )

    # What exchanges and tunnels call back

    def send(self, data: bytes) -> None:
        if self._transport is not None and not self._closed:
            self._transport.write(data)

    def pause_reading(self) -> None:
        if not self._reading_paused and self._transport is not None and not self._closed:
            self._reading_paused = True
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        if self._reading_paused and self._transport is not None and not self._closed:
            self._reading_paused = False
            self._transport.resume_reading()

    def abort(self) -> None:
        if self._transport is not None and not self._closed:
            self._closed = True
            self._transport.close()

    def exchange_finished(self, keep_alive: bool) -> None:
        self._active = None
        if not keep_alive:
            self.abort()
            return
        self._advance()

    def start_tunnel(self, tunnel: Tunnel) -> None:
        self._active = None
        self._upgrading = None
        self._tunnel = tunnel
        self.resume_reading()

    # Internals

    def _advance(self) -> None:
        """Start the next waiting exchange once the previous one has answered."""
        while self._active is None and self._waiting and not self._closed:
            self._active = self._waiting.popleft()
            if not self._waiting:
                self.resume_reading()  # its body may still be on its way
            self._active.start()
        if self._closed or self._tunnel is not None:
            return
        if self._waiting:
            self.pause_reading()  # pipelined requests: read no further until their turn comes
        elif self._active is None:
            self.resume_reading()  # whatever paused reading was about an exchange now over
            if not self._in_head:
                self._set_deadline(self._limits.idle_timeout)

    def _refuse(self, status: int) -> None:
        if self._active is None and not self._closed:
            self.send(plain_response(status))
        self.abort()

    # A deadline is a float checked by the proxy's sweep: no timer object per request.

    def _set_deadline(self, delay: float) -> None:
        self._deadline = time.monotonic() + delay

    def _clear_deadline(self) -> None:
        self._deadline = None

    def check_deadline(self, now: float) -> None:
        if self._deadline is None or now < self._deadline:
            return
        self._deadline = None
        if self._in_head or (self._active is None and not self._waiting and self._tunnel is None):
            self.abort()

"""Connections to upstreams (apps and the control plane), kept alive and reused between requests."""

import asyncio
import time
from typing import Protocol, cast

from spacehub.platform.route_table import Upstream


class UpstreamListener(Protocol):
    """Whoever currently uses an upstream connection: an exchange or a tunnel."""

    def upstream_data(self, data: bytes) -> None: ...
    def upstream_lost(self) -> None: ...
    def upstream_paused(self) -> None: ...
    def upstream_resumed(self) -> None: ...


class UpstreamConnection(asyncio.Protocol):
    def __init__(self, pool: "UpstreamPool", upstream: Upstream) -> None:
        self.pool = pool
        self.upstream = upstream
        self.transport: asyncio.Transport | None = None
        self.listener: UpstreamListener | None = None
        self.reused = False
        self.closed = False
        self.reading_paused = False
        self.idle_since = 0.0
        self.idle: list[UpstreamConnection] | None = None  # the pool's list for its upstream

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.listener is not None:
            self.listener.upstream_data(data)
        else:
            # An idle connection has nothing to say: whatever it sends, it is unusable.
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.forget(self)
        listener, self.listener = self.listener, None
        if listener is not None:
            listener.upstream_lost()

    def pause_writing(self) -> None:
        if self.listener is not None:
            self.listener.upstream_paused()

    def resume_writing(self) -> None:
        if self.listener is not None:
            self.listener.upstream_resumed()

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def pause_reading(self) -> None:
        if self.transport is not None and not self.closed and not self.reading_paused:
            self.reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.closed and self.reading_paused:
            self.reading_paused = False
            self.transport.resume_reading()

    def close(self) -> None:
        self.listener = None
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()
            self.pool.forget(self)


class UpstreamPool:
    """Idle keep-alive connections per upstream, most recently used first."""

    def __init__(self, connect_timeout: float, idle_timeout: float, max_idle: int) -> None:
        self._connect_timeout = connect_timeout
        self._idle_timeout = idle_timeout
        self._max_idle = max_idle
        self._idle: dict[Upstream, list[UpstreamConnection]] = {}

    def take(self, upstream: Upstream) -> UpstreamConnection | None:
        idle = self._idle.get(upstream)
        while idle:
            conn = idle.pop()
            if not conn.closed:
                conn.reused = True
                return conn
        return None

    async def connect(self, upstream: Upstream) -> UpstreamConnection:
        """A new connection; OSError or TimeoutError when the upstream cannot be reached."""
        loop = asyncio.get_running_loop()
        conn = UpstreamConnection(self, upstream)
        async with asyncio.timeout(self._connect_timeout):
            if upstream.unix_path is not None:
                await loop.create_unix_connection(lambda: conn, upstream.unix_path)
            else:
                await loop.create_connection(lambda: conn, upstream.host, upstream.port)
        return conn

    def give_back(self, conn: UpstreamConnection) -> None:
        conn.listener = None
        if conn.reading_paused:
            conn.resume_reading()  # idle, it must notice when the upstream closes it
        idle = conn.idle
        if idle is None:
            idle = conn.idle = self._idle.setdefault(conn.upstream, [])
        if conn.closed or len(idle) >= self._max_idle:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        idle.append(conn)

    def close_idle(self, now: float) -> None:
        """Close connections idle for longer than the idle timeout (the oldest come first)."""
        # Servers drop idle keep-alive connections on their own schedule (uvicorn after 5 s):
        # giving up earlier than they do keeps the race of reusing a closing one rare.
        cutoff = now - self._idle_timeout
        for idle in self._idle.values():
            while idle and idle[0].idle_since < cutoff:
                idle.pop(0).close()

    def forget(self, conn: UpstreamConnection) -> None:
        idle = self._idle.get(conn.upstream)
        if idle and conn in idle:
            idle.remove(conn)

    def close(self) -> None:
        for idle in list(self._idle.values()):
            for conn in list(idle):
                conn.close()
        for idle in self._idle.values():
            idle.clear()  # kept: connections hold on to their upstream's list

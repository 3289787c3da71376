"""The proxy's listening socket: the platform's front door on the public port."""

import asyncio
import threading
import time
from collections.abc import Callable

from spacehub.platform.proxy.client import ClientConnection
from spacehub.platform.proxy.context import Authorize, ProxyContext, ProxyLimits
from spacehub.platform.proxy.routing import Router
from spacehub.platform.route_table import RouteTable, Upstream

SWEEP_INTERVAL = 0.5


async def start_proxy(
    *,
    host: str,
    port: int,
    routes: RouteTable,
    control_plane: Upstream,
    apps_domain: str,
    authorize: Authorize,
    limits: ProxyLimits | None = None,
) -> asyncio.Server:
    """Serve apps by subdomain or `/apps/{owner}/{name}/`, everything else from the control plane.

    `authorize(route, bearer_token)` is awaited for private routes only. Closing the returned
    server stops accepting; open connections end on their own (or with the loop).
    """
    context = proxy_context(routes, control_plane, apps_domain, authorize, limits)
    return await listen(context, host, port)


def proxy_context(
    routes: RouteTable,
    control_plane: Upstream,
    apps_domain: str,
    authorize: Authorize,
    limits: ProxyLimits | None = None,
    *,
    apps_origin: str | None = None,
    apps_only: bool = False,
    behind_front: bool = False,
) -> ProxyContext:
    """One listener's context; `apps_origin` and `apps_only` as in `Router`, `behind_front` as
    in `ProxyContext` (for a listener on a unix socket only the nginx front reaches)."""
    return ProxyContext(
        routes=routes,
        router=Router(routes, apps_domain, apps_origin=apps_origin, apps_only=apps_only),
        control_plane=control_plane,
        authorize=authorize,
        limits=limits or ProxyLimits(),
        behind_front=behind_front,
    )


async def listen(context: ProxyContext, host: str, port: int | None) -> asyncio.Server:
    """Listen on `host:port`, or on the unix socket at path `host` when `port` is None."""
    loop = asyncio.get_running_loop()
    if port is None:
        server = await loop.create_unix_server(
            lambda: ClientConnection(context), host, backlog=1024
        )
    else:
        server = await loop.create_server(
            lambda: ClientConnection(context), host, port, backlog=1024
        )
    loop.call_later(SWEEP_INTERVAL, _sweep, loop, server, context)
    return server


def _sweep(loop: asyncio.AbstractEventLoop, server: asyncio.Server, context: ProxyContext) -> None:
    """Close clients past their deadline and stale upstream connections, twice a second."""
    now = time.monotonic()
    for client in list(context.clients):
        client.check_deadline(now)
    context.pool.close_idle(now)
    if server.is_serving() or context.clients:
        loop.call_later(SWEEP_INTERVAL, _sweep, loop, server, context)
    else:
        context.pool.close()


class ProxyThread:
    """The proxy on an event loop of its own, in a thread beside the control plane's loop.

    Under load the proxy keeps its loop busy: a control-plane request sharing that loop waited
    one full pass over every busy connection for each of its steps (whoami took about a second
    with 200 clients on a static space). On its own loop, the control plane waits only for the
    GIL. The two share the route table and activity records (plain dicts, updated atomically).
    """

    def __init__(self, listeners: list[tuple[str, int | None, ProxyContext]]) -> None:
        """`listeners`: (host, port, context) of each listening socket (the main and apps ones);
        port None: host is a unix socket's path."""
        self._listeners = listeners
        self._loop = _new_loop()
        self._thread = threading.Thread(target=self._run, name="spacehub-proxy", daemon=True)
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._servers: list[asyncio.Server] = []

    def start(self) -> None:
        """Listen (in the thread); raises here what listening raised there (OSError...)."""
        self._thread.start()
        self._started.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error

    def call_soon(self, callback: Callable[[], None]) -> None:
        """Run `callback` on the proxy's thread: the one writer of the route table's activity."""
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(callback)

    def stop_accepting(self) -> None:
        """Close the listening socket; open connections go on until `stop`."""
        if self._thread.is_alive():
            for server in self._servers:
                self._loop.call_soon_threadsafe(server.close)

    def stop(self, timeout: float = 10) -> None:
        """Stop accepting, close open connections, and end the thread."""
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            for host, port, context in self._listeners:
                self._servers.append(self._loop.run_until_complete(listen(context, host, port)))
        except BaseException as error:  # handed to start()'s caller
            self._error = error
            for server in self._servers:
                server.close()
            self._started.set()
            self._loop.close()
            return
        self._started.set()
        try:
            self._loop.run_forever()
        finally:
            for server in self._servers:
                server.close()
            for _, _, context in self._listeners:
                for client in list(context.clients):
                    client.abort()
                context.pool.close()
            self._loop.run_until_complete(asyncio.sleep(0.1))  # connections see their end
            self._loop.close()


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()

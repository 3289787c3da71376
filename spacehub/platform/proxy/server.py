"""The proxy's listening socket: the platform's front door on the public port."""

import asyncio
import time

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
    context = ProxyContext(
        routes=routes,
        router=Router(routes, apps_domain),
        control_plane=control_plane,
        authorize=authorize,
        limits=limits or ProxyLimits(),
    )
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: ClientConnection(context), host, port, backlog=1024)
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

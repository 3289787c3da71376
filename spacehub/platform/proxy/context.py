"""What every connection of one proxy shares: limits, routes, the upstream pool, authorization."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from spacehub.platform.proxy.routing import Router
from spacehub.platform.proxy.upstream_pool import UpstreamPool
from spacehub.platform.route_table import Route, RouteTable, Upstream

if TYPE_CHECKING:
    from spacehub.platform.proxy.client import ClientConnection

Authorize = Callable[[Route, str | None], Awaitable[bool]]


@dataclass(frozen=True)
class ProxyLimits:
    """Timeouts in seconds and sizes in bytes; the defaults suit a public port."""

    header_timeout: float = 15.0
    idle_timeout: float = 60.0
    max_head_size: int = 64 * 1024
    connect_timeout: float = 5.0
    upstream_idle_timeout: float = 4.0
    max_idle_upstream_connections: int = 64
    # Client bytes held for an upstream that is not connected or not keeping up.
    max_pending_body: int = 256 * 1024


@dataclass
class ProxyContext:
    routes: RouteTable
    router: Router
    control_plane: Upstream
    authorize: Authorize
    limits: ProxyLimits
    # Behind the platform's own nginx front on a unix socket only it reaches: the client's
    # address and scheme are taken from the X-Forwarded-For/-Proto nginx set, not replaced.
    behind_front: bool = False
    pool: UpstreamPool = field(init=False)
    clients: "set[ClientConnection]" = field(default_factory=set)

    def __post_init__(self) -> None:
        self.pool = UpstreamPool(
            self.limits.connect_timeout,
            self.limits.upstream_idle_timeout,
            self.limits.max_idle_upstream_connections,
        )

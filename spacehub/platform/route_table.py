"""The in-memory table the proxy reads: which space answers on which host or path prefix."""

import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import cached_property
from typing import Protocol


@dataclass(frozen=True)
class Upstream:
    """Where an instance answers: a loopback TCP address, or a unix socket path."""

    host: str = "127.0.0.1"
    port: int = 0
    unix_path: str | None = None


@dataclass(frozen=True)
class Route:
    """One space as the proxy sees it. `upstream` None: the control plane answers for it.

    `static_root`: a live static release's directory (resolved); the proxy answers GET and HEAD
    of its files itself, and sends everything else to the control plane.
    """

    owner: str
    name: str
    label: str
    upstream: Upstream | None = None
    private: bool = False  # who may open it is decided per request (app_access.py)
    custom_headers: tuple[tuple[str, str], ...] = ()
    static_root: str | None = None

    @cached_property  # read for every proxied request
    def space_id(self) -> str:
        return f"{self.owner}/{self.name}"


# Upper bounds, in seconds, of the proxy's latency histogram (time to the response head).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class Activity:
    """One space's traffic, written by the proxy's thread only; others read it (metrics, sleep).

    Plain ints and lists, not metric objects: a Prometheus counter takes a lock per increment,
    and this is written several times per request.
    """

    last_request: float = field(default_factory=time.monotonic)
    open_connections: int = 0
    # WebSocket tunnels and responses without a Content-Length (SSE, chunked) still going.
    open_streams: int = 0
    # Responses by status class: index 1 counts 1xx, ... 5 counts 5xx (6 to 9: nonstandard).
    responses: list[int] = field(default_factory=lambda: [0] * 10)
    # Per bucket of LATENCY_BUCKETS, then one past the last (+Inf); not cumulative.
    latency_counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    latency_sum: float = 0.0


@dataclass(eq=False)
class Frozen:
    """A space whose instance the supervisor froze: the proxy holds its requests until `thawed`.

    `request_thaw` may be called from any thread, as often as requests come; `thawed` gets True
    once the app runs again (False: it could not be thawed), and the entry leaves the table.
    """

    request_thaw: Callable[[], None]
    thawed: "Future[bool]" = field(default_factory=Future)


@dataclass(eq=False)
class Sleeping:
    """A space whose instance the supervisor stopped (or is stopping) for idleness: SLEEPING.

    The proxy calls `request_wake` (from its thread, as often as requests come) and holds API
    clients up to `wake_timeout` seconds for `woken`; browsers get a waking page at once. `woken`
    gets True once the space left its sleep (the route says where it answers now), False when it
    did not wake (paused meanwhile, failed to start); the entry then leaves the table.
    """

    request_wake: Callable[[], None]
    wake_timeout: float
    woken: "Future[bool]" = field(default_factory=Future)


class Front(Protocol):
    """A front door before the proxy that answers some spaces itself (the nginx front)."""

    def open_connections(self, space_id: str) -> int:
        """Connections it holds open to the space's app now (WebSockets, streams)."""
        ...

    def release(self, space_id: str) -> bool:
        """Block until it sends the space's requests to the proxy (the space is marked frozen or
        sleeping) and its traffic is in `activity`; True when it holds no connection to the app."""
        ...


class RouteTable:
    """Routes by subdomain label and by `owner/name`; activity is recorded per space."""

    def __init__(self) -> None:
        self._by_label: dict[str, Route] = {}
        self._by_id: dict[str, Route] = {}
        self.activity: dict[str, Activity] = {}
        self.frozen: dict[str, Frozen] = {}  # written by the supervisor, read by the proxy
        self.sleeping: dict[str, Sleeping] = {}  # the same, for spaces stopped while idle
        self.front: Front | None = None  # set by `serve --proxy nginx`

    def set(self, route: Route) -> None:
        old = self._by_id.get(route.space_id)
        if old is not None and old.label != route.label:
            self._by_label.pop(old.label, None)
        self._by_id[route.space_id] = route
        self._by_label[route.label] = route

    def remove(self, space_id: str) -> None:
        route = self._by_id.pop(space_id, None)
        if route is not None:
            self._by_label.pop(route.label, None)
        self.activity.pop(space_id, None)

    def by_label(self, label: str) -> Route | None:
        return self._by_label.get(label)

    def by_space(self, owner: str, name: str) -> Route | None:
        return self._by_id.get(f"{owner}/{name}")

    def by_id(self, space_id: str) -> Route | None:
        return self._by_id.get(space_id)

    def all(self) -> list[Route]:
        return list(self._by_id.values())

    def touch(self, space_id: str) -> Activity:
        activity = self.activity.setdefault(space_id, Activity())
        activity.last_request = time.monotonic()
        return activity

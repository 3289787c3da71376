"""Activity per space for sleep-on-idle and metrics: open requests and streams, responses.

Everything here runs on the proxy's thread, the only writer of `Activity` records: no lock, no
database, no runtime. The control plane reads the records (`traffic`) from its own threads.
"""

import time
from bisect import bisect_left
from dataclasses import dataclass
from time import monotonic

from spacehub.platform.route_table import LATENCY_BUCKETS, Activity, RouteTable


def open_activity(routes: RouteTable, space_id: str) -> Activity:
    # While a connection is open the space is busy whatever `last_request` says, so the time is
    # only taken on closing; `touch` creates the record the first time.
    activity = routes.activity.get(space_id) or routes.touch(space_id)
    activity.open_connections += 1
    return activity


def close_activity(activity: Activity, streaming: bool = False) -> None:
    # Set on the object, not through the table: the space may have been removed meanwhile.
    activity.open_connections -= 1
    if streaming:
        activity.open_streams -= 1
    activity.last_request = time.monotonic()


def idle_seconds(activity: Activity, now: float) -> float:
    """How long the space has had nothing open and no request; 0 while anything is open."""
    return 0.0 if activity.open_connections else now - activity.last_request


def open_stream(activity: Activity) -> None:
    """A WebSocket or a response with no end announced: open until `close_activity(.., True)`."""
    activity.open_streams += 1


def record_response(activity: Activity, status: int, opened: float) -> None:
    """Count a response whose head is going out now, `opened` being when it was forwarded."""
    seconds = monotonic() - opened
    activity.responses[status // 100] += 1  # httptools parses 3 digits: 1 to 9
    activity.latency_counts[bisect_left(LATENCY_BUCKETS, seconds)] += 1
    activity.latency_sum += seconds


@dataclass(frozen=True)
class Traffic:
    """A copy of one space's activity, taken from another thread than the proxy's."""

    space_id: str
    idle_seconds: float
    open_connections: int
    open_streams: int
    responses: tuple[int, ...]
    latency_counts: tuple[int, ...]
    latency_sum: float


def traffic(routes: RouteTable) -> list[Traffic]:
    """Every space's activity now. Copies of dicts and lists are single steps under the GIL, so
    the proxy's thread writing meanwhile cannot break them (a scrape may see a request counted
    and its latency not yet)."""
    now = time.monotonic()
    return [
        Traffic(
            space_id=space_id,
            idle_seconds=idle_seconds(record, now),
            open_connections=record.open_connections,
            open_streams=record.open_streams,
            responses=tuple(record.responses),
            latency_counts=tuple(record.latency_counts),
            latency_sum=record.latency_sum,
        )
        for space_id, record in list(routes.activity.items())
    ]

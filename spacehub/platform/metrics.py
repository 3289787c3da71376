"""The platform's Prometheus metrics: counted as things happen, or read when scraped.

Counted here as they happen: crash restarts (the supervisor) and wakes (tier, duration). Read at
scrape time, so that the request path and the build workers pay nothing and builds made by a
separate `spacehub worker` count too: builds and spaces from the database (one short session),
requests, latency and open streams from the proxy's activity records, the database pool.
Space names are labels: /metrics is for admins only (api/metrics.py).
"""

from bisect import bisect_left
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func
from sqlalchemy.pool import QueuePool
from sqlmodel import col, select

from spacehub.core.stages import Stage
from spacehub.platform.db import session_scope
from spacehub.platform.models import Build, BuildStatus, Space
from spacehub.platform.proxy.activity import Traffic, traffic
from spacehub.platform.route_table import LATENCY_BUCKETS

if TYPE_CHECKING:
    from spacehub.platform.context import Platform

BUILD_BUCKETS = (5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0)
WAKE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
FINISHED = (BuildStatus.SUCCEEDED, BuildStatus.FAILED)
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")


class PlatformMetrics:
    """What is counted as it happens; one per platform (no global registry: two platforms can
    run in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.restarts = Counter(
            "spacehub_restarts",
            "Instances the supervisor restarted after a crash, by space.",
            ["space"],
            registry=self.registry,
        )
        self.wakes = Histogram(
            "spacehub_wake_duration_seconds",
            "Wakes of sleeping spaces on a request, by tier (frozen, stopped): the time until "
            "the app could answer.",
            ["tier"],
            buckets=WAKE_BUCKETS,
            registry=self.registry,
        )


class ScrapeCollector(Collector):
    """Metrics read from the database, the proxy's records and the pool when scraped."""

    def __init__(self, platform: "Platform") -> None:
        self._platform = platform

    def collect(self) -> Iterator[Metric]:
        yield from self._platform.metrics.registry.collect()
        yield from database_metrics(self._platform)
        yield from traffic_metrics(traffic(self._platform.routes))


def render_metrics(platform: "Platform") -> bytes:
    """The text format; blocking (a database read): call it in a thread."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ScrapeCollector(platform))
    return generate_latest(registry)


def database_metrics(platform: "Platform") -> Iterator[Metric]:
    with session_scope(platform.engine) as session:
        stages = dict(session.exec(select(Space.stage, func.count()).group_by(Space.stage)).all())
        statuses = dict(
            session.exec(select(Build.status, func.count()).group_by(Build.status)).all()
        )
        finished = session.exec(
            select(Build.status, Build.started_at, Build.finished_at).where(
                col(Build.status).in_(FINISHED),
                col(Build.started_at).is_not(None),
                col(Build.finished_at).is_not(None),
            )
        ).all()
    spaces = GaugeMetricFamily("spacehub_spaces", "Spaces by stage.", labels=["stage"])
    for stage in Stage:
        spaces.add_metric([stage.value], stages.get(stage, 0))
    yield spaces
    built = CounterMetricFamily(
        "spacehub_builds", "Finished builds by result (succeeded, failed).", labels=["result"]
    )
    waiting = GaugeMetricFamily(
        "spacehub_builds_unfinished", "Builds queued or running.", labels=["state"]
    )
    for status in BuildStatus:
        family = built if status in FINISHED else waiting
        family.add_metric([status.value], statuses.get(status, 0))
    yield built
    yield waiting
    yield build_durations(finished)
    yield from pool_metrics(platform.engine)


def build_durations(rows: Iterable[tuple[BuildStatus, datetime, datetime]]) -> Metric:
    by_result: dict[str, list[float]] = {status.value: [] for status in FINISHED}
    for status, started, finished in rows:
        by_result[status.value].append(max(0.0, (finished - started).total_seconds()))
    family = HistogramMetricFamily(
        "spacehub_build_duration_seconds",
        "How long finished builds took, from claim to end, by result.",
        labels=["result"],
    )
    for result, durations in by_result.items():
        counts = [0] * (len(BUILD_BUCKETS) + 1)
        for seconds in durations:
            counts[bisect_left(BUILD_BUCKETS, seconds)] += 1
        family.add_metric([result], _cumulative(BUILD_BUCKETS, counts), sum(durations))
    return family


def pool_metrics(engine: Engine) -> Iterator[Metric]:
    pool = engine.pool
    if not isinstance(pool, QueuePool):
        return
    in_use = GaugeMetricFamily(
        "spacehub_database_connections_in_use", "Pooled database connections checked out."
    )
    in_use.add_metric([], pool.checkedout())
    yield in_use
    size = GaugeMetricFamily(
        "spacehub_database_pool_size", "Database connections the pool keeps (overflow aside)."
    )
    size.add_metric([], pool.size())
    yield size


def traffic_metrics(spaces: list[Traffic]) -> Iterator[Metric]:
    requests = CounterMetricFamily(
        "spacehub_space_requests",
        "Responses the proxy relayed or served for a space's app, by status class.",
        labels=["space", "status_class"],
    )
    latency = HistogramMetricFamily(
        "spacehub_space_request_duration_seconds",
        "Time from forwarding a request to the app until its response head, per space.",
        labels=["space"],
    )
    streams = GaugeMetricFamily(
        "spacehub_space_open_streams",
        "Open WebSockets and responses without a Content-Length (SSE), per space.",
        labels=["space"],
    )
    for space in spaces:
        for index, status_class in enumerate(STATUS_CLASSES, start=1):
            requests.add_metric([space.space_id, status_class], space.responses[index])
        buckets = _cumulative(LATENCY_BUCKETS, space.latency_counts)
        latency.add_metric([space.space_id], buckets, space.latency_sum)
        streams.add_metric([space.space_id], space.open_streams)
    yield requests
    yield latency
    yield streams


def _cumulative(bounds: tuple[float, ...], counts: Iterable[int]) -> list[tuple[str, float]]:
    """prometheus_client's bucket list: (upper bound, observations at or below it), +Inf last."""
    total = 0
    buckets = []
    for bound, count in zip((*[str(b) for b in bounds], "+Inf"), counts, strict=True):
        total += count
        buckets.append((bound, total))
    return buckets

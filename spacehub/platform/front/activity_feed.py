"""Activity of the requests nginx answered, read back from its log into the route table.

nginx writes one line per request it answered for a space (`$msec space status header_time`,
buffered: at most 32 KiB or one second late). The platform reads what was added, adds it to the
spaces' `Activity` on the proxy's thread (their one writer), and so the supervisor's idle clock
and the metrics count nginx's requests as the proxy's own. A stream counts at its end only:
open connections are counted separately (connections.py) before a space is frozen or stopped.
"""

import logging
import os
import time
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from spacehub.platform.route_table import LATENCY_BUCKETS, RouteTable

log = logging.getLogger(__name__)

# Past this size the log is emptied once read: nginx appends (O_APPEND) after the new end, and
# the lines written between the last read and the truncation (microseconds) are not counted.
MAX_LOG_BYTES = 16 * 1024 * 1024


@dataclass
class SpaceTraffic:
    """What one read of the log found for one space."""

    last_request: float = 0.0  # time.time() of its last response
    responses: list[int] = field(default_factory=lambda: [0] * 10)
    latency_counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    latency_sum: float = 0.0


def parse_lines(data: bytes) -> dict[str, SpaceTraffic]:
    found: dict[str, SpaceTraffic] = {}
    for line in data.splitlines():
        fields = line.split(b" ")
        if len(fields) != 4:
            continue
        when, space, status, header_time = fields
        try:
            finished = float(when)
            status_class = int(status) // 100
        except ValueError:
            continue
        traffic = found.get(space.decode("ascii", "replace"))
        if traffic is None:
            traffic = found[space.decode("ascii", "replace")] = SpaceTraffic()
        traffic.last_request = max(traffic.last_request, finished)
        if 0 < status_class < 10:
            traffic.responses[status_class] += 1
        # `-` when no upstream answered; `a, b` when nginx tried more than one: the last counts.
        seconds = header_time.rpartition(b",")[2].strip()
        if seconds and seconds != b"-":
            try:
                latency = float(seconds)
            except ValueError:
                continue
            traffic.latency_counts[bisect_left(LATENCY_BUCKETS, latency)] += 1
            traffic.latency_sum += latency
    return found


class ActivityFeed:
    """Reads the log from where it left off; `call_soon` runs a callable on the proxy's thread."""

    def __init__(
        self, path: Path, routes: RouteTable, call_soon: Callable[[Callable[[], None]], None]
    ) -> None:
        self._path = path
        self._routes = routes
        self._call_soon = call_soon
        self._offset = 0

    def read(self) -> None:
        try:
            with self._path.open("rb") as file:
                size = os.fstat(file.fileno()).st_size
                if size < self._offset:
                    self._offset = 0  # emptied by someone else
                file.seek(self._offset)
                data = file.read()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n") + 1  # a line being written is read whole next time
        self._offset += end
        if self._offset > MAX_LOG_BYTES:
            os.truncate(self._path, 0)
            self._offset = 0
        found = parse_lines(data[:end])
        if found:
            self._call_soon(lambda: self._apply(found))

    def _apply(self, found: dict[str, SpaceTraffic]) -> None:
        """On the proxy's thread: add to each space's activity, as if the proxy had served."""
        # The log says wall-clock time; activity keeps monotonic time.
        offset = time.monotonic() - time.time()
        for space_id, traffic in found.items():
            if self._routes.by_id(space_id) is None:
                continue  # removed meanwhile: no record for it again
            activity = self._routes.activity.get(space_id) or self._routes.touch(space_id)
            activity.last_request = max(activity.last_request, traffic.last_request + offset)
            for index, count in enumerate(traffic.responses):
                activity.responses[index] += count
            for index, count in enumerate(traffic.latency_counts):
                activity.latency_counts[index] += count
            activity.latency_sum += traffic.latency_sum

"""Activity of the requests nginx answered, read back from its log into the route table.

nginx writes one line per request it answered for a space (`$msec space status`, buffered: at
most 32 KiB or one second late). The platform reads what was added, adds it to the
spaces' `Activity` on the proxy's thread (their one writer), and so the supervisor's idle clock
and the metrics count nginx's requests as the proxy's own. A stream counts at its end only:
open connections are counted separately (connections.py) before a space is frozen or stopped.

No latency: with `$upstream_header_time` in the line, parsed into the histogram, the front
reached 0.89x plain nginx on the tiny upstream (bench/proxy_bench.py, 3 runs), without it
0.96x; the latency histogram covers the requests spacehub's proxy answers.
"""

import logging
import os
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path

from spacehub.platform.route_table import RouteTable

log = logging.getLogger(__name__)

# Past this size the log is emptied once read: nginx appends (O_APPEND) after the new end, and
# the lines written between the last read and the truncation (microseconds) are not counted.
MAX_LOG_BYTES = 16 * 1024 * 1024


@dataclass
class SpaceTraffic:
    """What one read of the log found for one space."""

    last_request: float = 0.0  # time.time() of its last response
    responses: list[int] = field(default_factory=lambda: [0] * 10)


# `$msec $spacehub_space $status`
_LINE = re.compile(rb"^(\d+\.\d+) (\S+) (\d)\d\d$", re.MULTILINE)


def parse_lines(data: bytes) -> dict[str, SpaceTraffic]:
    """What whole log lines say per space. Lines are matched and counted in C (regex, zip,
    Counter), and only distinct (space, status class) are looked at in Python: about
    half the time of a line-by-line parse, which took 3 % of a core at 25,000 requests/s."""
    rows = _LINE.findall(data)
    found: dict[str, SpaceTraffic] = {}
    # Each space's last line: workers' buffers flush apart, so it may be a second older than
    # the newest (the idle clock then starts that much early; the supervisor checks again).
    last = dict(zip(map(itemgetter(1), rows), map(itemgetter(0), rows), strict=True))
    for space, when in last.items():
        found[space.decode("ascii", "replace")] = SpaceTraffic(last_request=float(when))
    for (space, status_class), count in Counter(map(itemgetter(1, 2), rows)).items():
        found[space.decode("ascii", "replace")].responses[int(status_class)] += count
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

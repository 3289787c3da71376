"""Activity of the requests nginx answered, read back from its log into the route table.

nginx writes one line per request it answered for a space (`space-<label> status`: the space
named by its upstream, buffered: at most 32 KiB or one second late). The platform reads what was
added, adds it to the spaces' `Activity` on the proxy's thread (their one writer), and so the
supervisor's idle clock and the metrics count nginx's requests as the proxy's own. A stream
counts at its end only: open connections are counted separately (connections.py) before a space
is frozen or stopped.

No time in the line: a space's last request is taken to be the read that found it, at most the
buffer's second and one watcher pass late, which only delays its sleep by as much. Without
`$msec`, equal lines are counted as they are (Counter) instead of parsed one by one: the reading
took 1.0-1.1 us of CPU per request at 20,000 requests/s with it. No latency either: with
`$upstream_header_time` parsed into the histogram, the front reached 0.89x plain nginx on the
tiny upstream (bench/proxy_bench.py, 3 runs), without it 0.96x; the latency histogram covers the
requests spacehub's proxy answers.
"""

import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from spacehub.platform.front.nginx_config import SPACE_UPSTREAM_PREFIX
from spacehub.platform.route_table import RouteTable

log = logging.getLogger(__name__)

# Past this size the log is emptied once read: nginx appends (O_APPEND) after the new end, and
# the lines written between the last read and the truncation (microseconds) are not counted.
MAX_LOG_BYTES = 16 * 1024 * 1024


def responses_by_upstream(data: bytes) -> dict[str, list[int]]:
    """Responses by status class (index 1-5) per upstream name in whole log lines."""
    found: dict[str, list[int]] = {}
    for line, count in Counter(data.splitlines()).items():
        name, _, status = line.rpartition(b" ")
        if not name or len(status) != 3 or not status.isdigit():
            continue  # not a line of ours (the format changed under a running nginx)
        responses = found.setdefault(name.decode("ascii", "replace"), [0] * 10)
        responses[status[0] - ord("0")] += count
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
        found = responses_by_upstream(data[:end])
        if found:
            read_at = time.monotonic()
            self._call_soon(lambda: self._apply(found, read_at))

    def _apply(self, found: dict[str, list[int]], read_at: float) -> None:
        """On the proxy's thread: add to each space's activity, as if the proxy had served."""
        for upstream_name, responses in found.items():
            route = self._routes.by_label(upstream_name.removeprefix(SPACE_UPSTREAM_PREFIX))
            if route is None:
                continue  # removed meanwhile: no record for it again
            space_id = route.space_id
            activity = self._routes.activity.get(space_id) or self._routes.touch(space_id)
            activity.last_request = max(activity.last_request, read_at)
            for index, count in enumerate(responses):
                activity.responses[index] += count

"""Build logs: one file per build, one JSON event per line, followed by polling the file.

Polling (rather than in-memory fan-out) lets separate `spacehub worker` processes write logs
that the serving process streams.
"""

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

POLL_SECONDS = 0.2


def hub_timestamp(moment: datetime | None = None) -> str:
    """The Hub's date format: milliseconds and a `Z` (huggingface_hub rejects `+00:00`)."""
    moment = (moment or datetime.now(UTC)).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def log_event(text: str) -> str:
    return json.dumps({"data": text, "timestamp": hub_timestamp()})


class LogWriter:
    """Appends lines to a build's log file; safe to call from the builder's thread."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._tail: list[str] = []

    def write(self, text: str) -> None:
        lines = text.splitlines() or [""]
        with self._lock, self.path.open("a", encoding="utf-8") as out:
            for line in lines:
                out.write(log_event(line + "\n") + "\n")
                self._tail = [*self._tail[-39:], line]

    def tail(self, count: int = 20) -> str:
        with self._lock:
            return "\n".join(self._tail[-count:])


async def follow_log(path: Path, finished: Callable[[], Awaitable[bool]]) -> AsyncIterator[str]:
    """Yield the file's events from the start, then new ones, until `finished()` and drained."""
    offset = 0
    pending = ""
    while True:
        done = await finished()
        if path.exists():
            with path.open("r", encoding="utf-8") as source:
                source.seek(offset)
                chunk = source.read()
                offset = source.tell()
            pending += chunk
            *complete, pending = pending.split("\n")
            for line in complete:
                if line:
                    yield line
        if done:
            return
        await asyncio.sleep(POLL_SECONDS)

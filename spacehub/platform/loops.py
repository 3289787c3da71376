"""The long-running loops of `serve`: each one restarted when it dies, its health on record."""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from spacehub.platform.models import utcnow

log = logging.getLogger(__name__)
FIRST_RESTART_SECONDS = 1.0
MAX_RESTART_SECONDS = 30.0


@dataclass
class LoopHealth:
    """What `GET /api/health` shows of one loop."""

    running: bool = False
    restarts: int = 0
    last_error: str | None = None
    last_error_at: str | None = None


async def keep_running(
    name: str,
    run: Callable[[], Awaitable[None]],
    stop: asyncio.Event,
    health: dict[str, LoopHealth],
) -> None:
    """Run `run()` until `stop`; when it raises, log it, record it and start it again.

    A loop that dies silently once left every later push "queued" and never built.
    """
    record = health.setdefault(name, LoopHealth())
    delay = FIRST_RESTART_SECONDS
    while not stop.is_set():
        record.running = True
        try:
            await run()
            return
        except Exception as error:
            record.restarts += 1
            record.last_error = f"{type(error).__name__}: {error}"
            record.last_error_at = utcnow().isoformat()
            log.exception("the %s loop died; starting it again in %.0f s", name, delay)
        finally:
            record.running = False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
        delay = min(delay * 2, MAX_RESTART_SECONDS)


async def idle(wakeup: asyncio.Event, stop: asyncio.Event, seconds: float) -> None:
    """Wait until `wakeup` or `stop` is set, or `seconds` pass."""
    waits = [asyncio.ensure_future(wakeup.wait()), asyncio.ensure_future(stop.wait())]
    await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    for waiter in waits:
        waiter.cancel()

"""What one build may use: CPU, memory and time, and the cancel that ends it early.

Every builder (image, venv) takes a `BuildLimits` and a `threading.Event` that a cancel from
the API sets; a build that exceeds a limit or is cancelled raises `BuildStopped`, whose message
says which, so the build ends `BUILD_ERROR` naming it.
"""

import threading
from dataclasses import dataclass, field


@dataclass(frozen=True)
class BuildLimits:
    cpus: float | None = None  # cores a build may keep busy; None: no limit
    memory_bytes: int | None = None  # None: no limit
    timeout_seconds: float | None = None  # wall-clock time of the whole build; None: no limit
    cancel: threading.Event = field(default_factory=threading.Event, compare=False)


class BuildStopped(Exception):
    """The build went over a limit or was cancelled; the message says which."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

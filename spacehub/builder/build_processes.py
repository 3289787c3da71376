"""The subprocesses of one build, run inside its `BuildLimits`.

Each runs in its own process group and, where the host lets the platform make control groups
(cgroup v2, or v1's memory and cpu controllers), in one group per build that caps memory and
CPU; elsewhere CPU is only lowered with `nice` and memory is not capped (said in the build log
at its start). A watcher ends the whole group at the time limit or on a cancel, and the build
raises `BuildStopped` naming which; a process the kernel killed for memory names that.
"""

import contextlib
import logging
import os
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from spacehub.builder.limits import BuildLimits, BuildStopped
from spacehub.core.cgroups import Cgroup, CgroupLimits, make_cgroup

log = logging.getLogger(__name__)
CGROUP_PARENT = "spacehub-builds"
CANCELLED = "build cancelled"
NICE_WITHOUT_CGROUP = 10
WATCH_SECONDS = 0.2  # how soon a cancel ends a running step
GiB = 1024**3
MiB = 1024**2


def time_limit_message(seconds: float) -> str:
    return f"the build went over its time limit of {describe_seconds(seconds)} (build_timeout)"


def stop_reason(limits: BuildLimits, deadline: float | None) -> str | None:
    """Why the build must stop now (cancelled, or its time is up), or None."""
    if limits.cancel.is_set():
        return CANCELLED
    if deadline is not None and time.monotonic() >= deadline:
        assert limits.timeout_seconds is not None
        return time_limit_message(limits.timeout_seconds)
    return None


def memory_limit_message(memory_bytes: int) -> str:
    return f"the build went over its memory limit of {describe_bytes(memory_bytes)} (build_memory)"


def describe_seconds(seconds: float) -> str:
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)} min"
    return f"{seconds:g} s"


def describe_bytes(size: int) -> str:
    if size >= GiB and size % (GiB // 4) == 0:
        return f"{size / GiB:g} GiB"
    return f"{size / MiB:g} MiB"


class BuildProcesses:
    """Starts a build's processes in its limits; `close()` ends what is left of them."""

    def __init__(self, limits: BuildLimits, build_log: Callable[[str], None]) -> None:
        self.limits = limits
        self.deadline = (
            time.monotonic() + limits.timeout_seconds if limits.timeout_seconds else None
        )
        self.cgroup = self._make_cgroup(build_log)
        self._nice = self.cgroup is None or self.cgroup.cpu is None
        if limits.memory_bytes is not None and (self.cgroup is None or self.cgroup.memory is None):
            build_log(
                f"The memory limit of {describe_bytes(limits.memory_bytes)} cannot be enforced "
                "on this host (no writable cgroup hierarchy): the build runs without one"
            )

    def _make_cgroup(self, build_log: Callable[[str], None]) -> Cgroup | None:
        wanted = CgroupLimits(memory_bytes=self.limits.memory_bytes, cpus=self.limits.cpus)
        if wanted.memory_bytes is None and wanted.cpus is None:
            return None
        name = f"{os.getpid()}-{threading.get_ident()}-{secrets.token_hex(3)}"
        try:
            return make_cgroup(CGROUP_PARENT, name, wanted)
        except OSError as error:
            log.warning("a build's cgroup could not be made (%s): limits not enforced", error)
            build_log(f"No cgroup for this build ({error})")
            return None

    def check(self) -> None:
        """Raise `BuildStopped` when the build was cancelled or its time is up."""
        reason = stop_reason(self.limits, self.deadline)
        if reason is not None:
            raise BuildStopped(reason)

    def popen(self, command: list[str], **options: object) -> subprocess.Popen:
        """Start `command` in its own process group, inside the build's cgroup."""
        self.check()
        cgroup, nice = self.cgroup, self._nice

        def confine() -> None:
            if cgroup is not None:
                cgroup.join()
            if nice:
                os.nice(NICE_WITHOUT_CGROUP)

        return subprocess.Popen(  # type: ignore[call-overload]
            command, start_new_session=True, preexec_fn=confine, **options
        )

    @contextmanager
    def watching(self, process: subprocess.Popen, cap_seconds: float) -> Iterator[None]:
        """End `process`'s group at the limit, a cancel, or `cap_seconds`; then say why."""
        oom_before = self.cgroup.oom_kills() if self.cgroup is not None else 0
        stopped: list[str] = []
        done = threading.Event()
        cap = time.monotonic() + cap_seconds

        def watch() -> None:
            while not done.is_set():
                reason = stop_reason(self.limits, self.deadline)
                if reason is not None:
                    stopped.append(reason)
                elif time.monotonic() >= cap:
                    stopped.append("")  # a step that hangs: a failure, not a limit
                if stopped:
                    self._kill(process)
                    return
                waits = [cap, *([self.deadline] if self.deadline is not None else [])]
                done.wait(max(0.0, min(WATCH_SECONDS, min(waits) - time.monotonic())))

        watcher = threading.Thread(target=watch, name="spacehub-build-watch", daemon=True)
        watcher.start()
        try:
            yield
        finally:
            if process.poll() is None:
                self._kill(process)
            done.set()
            watcher.join()
        if stopped and stopped[0]:
            raise BuildStopped(stopped[0])
        memory = self.limits.memory_bytes
        failed = process.returncode != 0 and self.cgroup is not None and memory is not None
        if failed and self.cgroup.oom_kills() > oom_before:  # type: ignore[union-attr]
            raise BuildStopped(memory_limit_message(memory))  # type: ignore[arg-type]

    def _kill(self, process: subprocess.Popen) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        if self.cgroup is not None:
            self.cgroup.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(10)

    def close(self) -> None:
        if self.cgroup is not None:
            self.cgroup.kill()
            self.cgroup.remove()

"""Control groups that cap a set of processes' memory, CPU and process count.

Shared by the local runtime (an app instance) and the venv builder (a build's uv processes).
cgroup v2 is one directory per group under a writable unified hierarchy; cgroup v1 (still the
default of some hosts and VMs) is one directory per controller (`memory/`, `cpu/`, `pids/`).
RLIMIT_AS is no substitute: it counts the large virtual maps Python and uv reserve and never use.
"""

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
CPU_PERIOD_MICROSECONDS = 100_000
KILL_WAIT_SECONDS = 5.0


@dataclass(frozen=True)
class CgroupLimits:
    memory_bytes: int | None = None
    cpus: float | None = None
    pids: int | None = None


@dataclass(frozen=True)
class Cgroup:
    """One group: on v2 every controller is the same directory, on v1 each has its own."""

    version: int
    memory: Path | None = None
    cpu: Path | None = None
    pids: Path | None = None

    @classmethod
    def v2(cls, directory: Path) -> "Cgroup":
        return cls(2, directory, directory, directory)

    @property
    def directories(self) -> tuple[Path, ...]:
        found = (self.memory, self.cpu, self.pids)
        return tuple(dict.fromkeys(path for path in found if path is not None))

    @property
    def procs_files(self) -> tuple[str, ...]:
        return tuple(str(directory / "cgroup.procs") for directory in self.directories)

    def join(self) -> None:
        """Move the calling process into the group (a child runs this before exec)."""
        for procs in self.procs_files:
            with open(procs, "w") as file:
                file.write("0")

    def oom_kills(self) -> int:
        """How many processes of the group the kernel killed for going over its memory."""
        if self.memory is None:
            return 0
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        try:
            text = (self.memory / name).read_text()
        except OSError:
            return 0
        counts = dict(line.split(maxsplit=1) for line in text.splitlines() if " " in line)
        return int(counts.get("oom_kill", "0").strip() or 0)

    def processes(self) -> set[int]:
        pids: set[int] = set()
        for procs in self.procs_files:
            with contextlib.suppress(OSError, ValueError):
                pids.update(int(line) for line in Path(procs).read_text().split())
        return pids

    def kill(self) -> None:
        """SIGKILL every process of the group, also those that left their process group."""
        if self.version == 2 and self.memory is not None:
            with contextlib.suppress(OSError):
                (self.memory / "cgroup.kill").write_text("1")
        deadline = time.monotonic() + KILL_WAIT_SECONDS
        while (pids := self.processes()) and time.monotonic() < deadline:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)

    def remove(self) -> None:
        for directory in self.directories:
            with contextlib.suppress(OSError):
                directory.rmdir()


def cgroup_v2_writable(root: Path = CGROUP_ROOT) -> bool:
    return (root / "cgroup.controllers").is_file() and os.access(root, os.W_OK)


def cgroup_v1_writable(root: Path = CGROUP_ROOT) -> bool:
    memory = root / "memory"
    return (memory / "memory.limit_in_bytes").is_file() and os.access(memory, os.W_OK)


def make_cgroup(
    parent: str,
    name: str,
    limits: CgroupLimits,
    versions: tuple[int, ...] = (2, 1),
    root: Path = CGROUP_ROOT,
) -> Cgroup | None:
    """A new group `parent/name` with `limits`; None when no hierarchy of `versions` is writable.

    Raises OSError when the hierarchy refuses it (no delegation, a controller missing).
    """
    if 2 in versions and cgroup_v2_writable(root):
        return _make_v2(root / parent, name, limits)
    if 1 in versions and cgroup_v1_writable(root):
        return _make_v1(root, parent, name, limits)
    return None


def _make_v2(parent: Path, name: str, limits: CgroupLimits) -> Cgroup:
    parent.mkdir(exist_ok=True)
    with contextlib.suppress(OSError):
        (parent / "cgroup.subtree_control").write_text("+memory +pids +cpu")
    group = parent / name
    group.mkdir()
    made = Cgroup.v2(group)
    try:
        if limits.memory_bytes is not None:
            (group / "memory.max").write_text(str(limits.memory_bytes))
            with contextlib.suppress(OSError):
                (group / "memory.swap.max").write_text("0")
        if limits.pids is not None:
            (group / "pids.max").write_text(str(limits.pids))
        if limits.cpus is not None:
            quota = int(limits.cpus * CPU_PERIOD_MICROSECONDS)
            (group / "cpu.max").write_text(f"{quota} {CPU_PERIOD_MICROSECONDS}")
    except OSError:
        made.remove()
        raise
    return made


def _make_v1(root: Path, parent: str, name: str, limits: CgroupLimits) -> Cgroup:
    made: dict[str, Path] = {}
    try:
        if limits.memory_bytes is not None:
            memory = made["memory"] = _v1_directory(root, "memory", parent, name)
            (memory / "memory.limit_in_bytes").write_text(str(limits.memory_bytes))
            with contextlib.suppress(OSError):  # only with swap accounting: no swapping past it
                (memory / "memory.memsw.limit_in_bytes").write_text(str(limits.memory_bytes))
        if limits.cpus is not None:
            cpu = made["cpu"] = _v1_directory(root, "cpu", parent, name)
            (cpu / "cpu.cfs_period_us").write_text(str(CPU_PERIOD_MICROSECONDS))
            quota = int(limits.cpus * CPU_PERIOD_MICROSECONDS)
            (cpu / "cpu.cfs_quota_us").write_text(str(quota))
        if limits.pids is not None:
            pids = made["pids"] = _v1_directory(root, "pids", parent, name)
            (pids / "pids.max").write_text(str(limits.pids))
    except OSError:
        Cgroup(1, **made).remove()
        raise
    return Cgroup(1, **made)


def _v1_directory(root: Path, controller: str, parent: str, name: str) -> Path:
    directory = root / controller / parent / name
    directory.parent.mkdir(exist_ok=True)
    directory.mkdir()
    return directory

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


# What v1 reads back for "no limit" (the largest page-aligned value); anything above is none.
_V1_UNLIMITED_ABOVE = 1 << 62


def existing_cgroup(
    path: str, version: int, root: Path = CGROUP_ROOT, create: bool = False
) -> Cgroup:
    """The memory and CPU of the group at `path` (below the hierarchy's root) of one version.

    With `create`, missing directories are made (a group another program fills, such as an
    engine's). Raises OSError when the group is missing or cannot be made.
    """
    path = path.strip("/")
    if version == 2:
        directory = root / path
        if create and not directory.is_dir():
            for parent in reversed((directory, *directory.parents)):
                if parent == root or not parent.is_relative_to(root):
                    continue
                with contextlib.suppress(OSError):
                    (parent.parent / "cgroup.subtree_control").write_text("+memory +cpu")
                parent.mkdir(exist_ok=True)
        if not directory.is_dir():
            raise FileNotFoundError(f"no cgroup {directory}")
        return Cgroup(2, directory, directory)
    found = {}
    for controller in ("memory", "cpu"):
        directory = root / controller / path
        if create:
            directory.mkdir(parents=True, exist_ok=True)
        if not directory.is_dir():
            raise FileNotFoundError(f"no cgroup {directory}")
        found[controller] = directory
    return Cgroup(1, **found)


def read_limits(group: Cgroup) -> CgroupLimits:
    """The memory and CPU limits a group has now; None where it has none."""
    memory = cpus = None
    if group.memory is not None:
        if group.version == 2:
            text = (group.memory / "memory.max").read_text().strip()
            memory = None if text == "max" else int(text)
        else:
            value = int((group.memory / "memory.limit_in_bytes").read_text())
            memory = None if value >= _V1_UNLIMITED_ABOVE else value
    if group.cpu is not None:
        if group.version == 2:
            quota, period = (group.cpu / "cpu.max").read_text().split()
        else:
            quota = (group.cpu / "cpu.cfs_quota_us").read_text().strip()
            period = (group.cpu / "cpu.cfs_period_us").read_text().strip()
        cpus = None if quota in ("max", "-1") else int(quota) / int(period)
    return CgroupLimits(memory_bytes=memory, cpus=cpus)


def write_limits(group: Cgroup, limits: CgroupLimits) -> None:
    """Give an existing group `limits`: None lifts that limit (unlike `make_cgroup`)."""
    memory, cpus = limits.memory_bytes, limits.cpus
    if group.memory is not None and group.version == 2:
        (group.memory / "memory.max").write_text("max" if memory is None else str(memory))
        with contextlib.suppress(OSError):
            (group.memory / "memory.swap.max").write_text("max" if memory is None else "0")
    elif group.memory is not None:
        # memory+swap may never be below memory: lift it first, then cap both.
        memsw = group.memory / "memory.memsw.limit_in_bytes"
        with contextlib.suppress(OSError):
            memsw.write_text("-1")
        (group.memory / "memory.limit_in_bytes").write_text("-1" if memory is None else str(memory))
        if memory is not None:
            with contextlib.suppress(OSError):  # only with swap accounting
                memsw.write_text(str(memory))
    quota = "max" if cpus is None else str(int(cpus * CPU_PERIOD_MICROSECONDS))
    if group.cpu is not None and group.version == 2:
        (group.cpu / "cpu.max").write_text(f"{quota} {CPU_PERIOD_MICROSECONDS}")
    elif group.cpu is not None:
        (group.cpu / "cpu.cfs_period_us").write_text(str(CPU_PERIOD_MICROSECONDS))
        (group.cpu / "cpu.cfs_quota_us").write_text("-1" if cpus is None else quota)


def reset_memory_peak(group: Cgroup) -> None:
    """Start the group's peak memory use anew (v1; v2 from Linux 6.12)."""
    if group.memory is None:
        return
    for name in ("memory.max_usage_in_bytes", "memory.memsw.max_usage_in_bytes", "memory.peak"):
        with contextlib.suppress(OSError):
            (group.memory / name).write_text("0")


def memory_peak(group: Cgroup) -> int:
    """The most memory the group used since `reset_memory_peak` (0: not known).

    On v1 an OOM kill is counted only in the killed process's own group, not its parents': a
    parent's peak at its limit is what shows that a child ran into the parent's limit.
    """
    name = "memory.peak" if group.version == 2 else "memory.max_usage_in_bytes"
    if group.memory is None:
        return 0
    try:
        return int((group.memory / name).read_text())
    except (OSError, ValueError):
        return 0

"""CPU and memory caps on the RUN steps of image builds, through the engine's BuildKit group.

The engine's BuildKit runs every RUN step in a group of its own below `<cgroup parent>/buildkit`
(Docker 20.10 and 26 with the cgroupfs driver: `/docker/buildkit/<id>`, or
`/<--cgroup-parent>/buildkit/<id>`) and ignores a build's `--cgroup-parent`. While a build runs,
that parent group gets the build's limits, and afterwards the limits it had before.

The group is the engine's, not the build's: builds that run at the same time (`build_workers`
above 1, or other platforms on the same engine) share one cap, the sum of their limits, and a
step of any image build on the engine (also one not started by spacehub) counts against it. A
file under /run (locked while read and written) holds the group's own limits and the builds
holding it, so that the last build to end restores them, also across processes; a holder
whose process has died is forgotten.

Only where the engine runs on this host, with the cgroupfs driver, and its cgroup tree is
writable (root); elsewhere `engine_buildkit_group` says why CPU and memory are not enforced.
"""

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from urllib.parse import urlparse

import docker
from docker.errors import DockerException

from spacehub.builder.limits import BuildLimits
from spacehub.core.cgroups import (
    CGROUP_ROOT,
    Cgroup,
    CgroupLimits,
    existing_cgroup,
    read_limits,
    write_limits,
)

DEFAULT_SOCKET = "/var/run/docker.sock"
DEFAULT_CGROUP_PARENT = "docker"  # dockerd's default with the cgroupfs driver
DAEMON_JSON = Path("/etc/docker/daemon.json")
STATE_DIR = Path("/run/spacehub")
LOWER_MEMORY_SECONDS = 10
log = logging.getLogger(__name__)


class NotEnforced(Exception):
    """Why the engine's BuildKit steps cannot be capped from here."""


def engine_buildkit_group(client: docker.DockerClient, root: Path = CGROUP_ROOT) -> Cgroup:
    """The group of the engine's BuildKit steps; raises NotEnforced saying why there is none."""
    try:
        info = client.info()
    except DockerException as error:
        raise NotEnforced(f"the engine did not say how it runs containers ({error})") from None
    driver = info.get("CgroupDriver", "")
    if driver != "cgroupfs":
        raise NotEnforced(f"the engine uses the {driver or 'unknown'} cgroup driver, not cgroupfs")
    version = 2 if str(info.get("CgroupVersion", "1")) == "2" else 1
    pid = _engine_pid()
    path = f"{_cgroup_parent(pid)}/buildkit"
    try:
        group = existing_cgroup(path, version, root, create=True)
    except OSError as error:
        raise NotEnforced(f"its cgroup {path} cannot be made here ({error})") from None
    if not all(os.access(directory, os.W_OK) for directory in group.directories):
        raise NotEnforced(f"its cgroup {path} is not writable by this user")
    return group


def _engine_pid() -> int:
    """The dockerd process listening on the engine's socket (the client's DOCKER_HOST)."""
    host = os.environ.get("DOCKER_HOST") or f"unix://{DEFAULT_SOCKET}"
    address = urlparse(host)
    if address.scheme != "unix":
        raise NotEnforced(f"the engine is reached at {host}, not through a socket on this host")
    socket = os.path.realpath(address.path)
    inodes = set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
            fields = line.split()
            if len(fields) == 8 and os.path.realpath(fields[7]) == socket:
                inodes.add(f"socket:[{fields[6]}]")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "dockerd":
                continue
            if any(os.readlink(fd) in inodes for fd in (entry / "fd").iterdir()):
                return int(entry.name)
        except OSError:
            continue
    raise NotEnforced(f"no dockerd process on this host serves {socket}")


def _cgroup_parent(pid: int) -> str:
    """dockerd's --cgroup-parent, from its command line or its configuration file."""
    arguments = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    config = DAEMON_JSON
    for index, argument in enumerate(arguments):
        name, _, value = argument.partition("=")
        if name in ("--cgroup-parent", "--config-file"):
            if not value and index + 1 < len(arguments):
                value = arguments[index + 1]
            if name == "--cgroup-parent":
                return value.strip("/") or DEFAULT_CGROUP_PARENT
            config = Path(value)
    try:
        settings = json.loads(config.read_text())
    except (OSError, ValueError):
        settings = {}
    parent = settings.get("cgroup-parent") if isinstance(settings, dict) else None
    return str(parent).strip("/") if parent else DEFAULT_CGROUP_PARENT


@contextmanager
def capped(group: Cgroup, limits: BuildLimits) -> Iterator[None]:
    """The group has the limits of the builds holding it (summed) while this build runs."""
    token = f"{os.getpid()}-{secrets.token_hex(4)}"
    wanted = CgroupLimits(memory_bytes=limits.memory_bytes, cpus=limits.cpus)
    with _state(group) as state:
        if not state["holders"]:
            state["original"] = asdict(read_limits(group))
        state["holders"][token] = asdict(wanted)
        try:
            _apply(group, state)
        except OSError as error:  # e.g. memory below what the group uses now
            del state["holders"][token]
            with contextlib.suppress(OSError):
                _apply(group, state)
            raise NotEnforced(f"the engine's cgroup refused the limits ({error})") from None
    try:
        yield
    finally:
        with _state(group) as state:
            state["holders"].pop(token, None)
            try:
                _apply(group, state)
            except OSError as error:
                log.warning("the limits of %s could not be restored: %s", group, error)


def _apply(group: Cgroup, state: dict) -> None:
    """Write the limits; a memory limit below the group's usage now is retried a while (the
    kernel reclaims page cache on each try, dirty pages once written back)."""
    deadline = time.monotonic() + LOWER_MEMORY_SECONDS
    while True:
        try:
            _write(group, state)
            return
        except OSError as error:
            if error.errno != errno.EBUSY or time.monotonic() > deadline:
                raise
        time.sleep(0.25)


def _write(group: Cgroup, state: dict) -> None:
    holders = [CgroupLimits(**held) for held in state["holders"].values()]
    if not holders:
        write_limits(group, CgroupLimits(**state["original"]))
        return
    memory = [held.memory_bytes for held in holders]
    cpus = [held.cpus for held in holders]
    write_limits(
        group,
        CgroupLimits(
            memory_bytes=None if None in memory else sum(memory),  # type: ignore[arg-type]
            cpus=None if None in cpus else sum(cpus),  # type: ignore[arg-type]
        ),
    )


@contextmanager
def _state(group: Cgroup) -> Iterator[dict]:
    """The group's shared state, locked; holders of processes that are gone are dropped."""
    key = hashlib.sha256(str(group.directories).encode()).hexdigest()[:16]
    STATE_DIR.mkdir(mode=0o700, exist_ok=True)
    path = STATE_DIR / f"buildkit-cap-{key}.json"
    with open(path, "a+") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        file.seek(0)
        try:
            state = json.loads(file.read() or "{}")
        except ValueError:
            state = {}
        state.setdefault("holders", {})
        state["holders"] = {
            token: held
            for token, held in state["holders"].items()
            if _alive(int(token.split("-")[0]))
        }
        yield state
        file.seek(0)
        file.truncate()
        file.write(json.dumps(state))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

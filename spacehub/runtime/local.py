"""Spaces as local processes: each instance runs its venv release on a free loopback port.

Layout under the data dir:

- `run/local/<instance>.json` (mode 0600): the record of an instance (spec, pid, start time,
  port, log), carrying the platform's id; `list_instances` and `adopt` read these.
- `instances/<instance>/app/`: a writable copy of the release's files, the app's working
  directory (an app may write to its folder, as on the Hub); `instances/<instance>/app.log`.
- `spaces/<label>/home/`: the space's `HOME`; `spaces/<label>/data/`: its persistent storage
  (the Docker runtime's `/data` volume), given only to spaces with storage. Under bubblewrap it
  is mounted at `/data`, otherwise the app finds it through `SPACEHUB_DATA` (set in both cases).

Isolation: with `bwrap` installed, an app sees the host's /usr and /etc read-only, its venv and
interpreter read-only, and only its own folder, home and storage writable; not the platform's
data dir nor other spaces. Without it apps run unisolated (logged once).

Bytecode: a venv's `.pyc` files are compiled once, after the first instance that runs in it
answers (`venvs/<key>/.spacehub-compiled` says it is done), at idle CPU priority. That instance
imports from source once; compiling while it did slowed its start by a second or more here.

Limits: cgroup v2 when `/sys/fs/cgroup` is a writable v2 hierarchy (memory.max with no swap,
pids.max, cpu.max, per instance); otherwise rlimits: RLIMIT_DATA for memory (RLIMIT_AS would
count the large virtual maps Python libraries reserve and never touch) and RLIMIT_NPROC for
processes (not enforced for root); CPU is not limited then.
"""

import contextlib
import json
import logging
import os
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from spacehub.core.cgroups import CGROUP_ROOT, Cgroup, CgroupLimits, cgroup_v2_writable, make_cgroup
from spacehub.core.errors import NotFound, SpacehubError
from spacehub.core.names import subdomain_label
from spacehub.core.release import (
    VENV_APP_DIR,
    VENV_MANIFEST,
    AppSpec,
    Artifact,
    Limits,
    VenvManifest,
)
from spacehub.runtime.base import (
    Instance,
    InstanceState,
    InstanceStatus,
    InstanceUsage,
    Runtime,
)

log = logging.getLogger(__name__)
LOOPBACK = "127.0.0.1"
STOP_GRACE_SECONDS = 5.0
DATA_MOUNT = "/data"
_FOLLOW_POLL_SECONDS = 0.3
USAGE_WINDOW_SECONDS = 0.25  # a first CPU reading: two samples this far apart
_USAGE_SAMPLE_MAX_AGE = 60.0  # an older previous sample is not used: a fresh window is taken
COMPILED_MARKER = ".spacehub-compiled"  # in a venv: its bytecode is compiled
COMPILE_TIMEOUT_SECONDS = 1800
COMPILE_WAIT_SECONDS = 300  # an instance that has not answered by then: compile anyway
_UP_POLL_SECONDS = 0.1
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class InstanceRecord:
    """What `run/local/<id>.json` holds: enough to list, adopt, restart and stop an instance."""

    id: str
    platform_id: str | None
    space_id: str
    commit: str
    port: int
    pid: int
    start_time: int  # field 22 of /proc/PID/stat: tells a reused pid from ours
    log: str
    spec: dict[str, Any]
    cgroup: str | None = None

    def state(self) -> dict[str, Any]:
        return {
            "instance_id": self.id,
            "pid": self.pid,
            "start_time": self.start_time,
            "port": self.port,
            "log": self.log,
        }

    def instance(self) -> Instance:
        return Instance(self.space_id, self.commit, LOOPBACK, self.port, self.state())


def process_start_time(pid: int) -> int | None:
    """The start time of `pid` in clock ticks since boot, or None when it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


class LocalRuntime(Runtime):
    """Venv releases as process groups of this machine, reached on 127.0.0.1."""

    name = "local"

    def __init__(
        self,
        data_dir: Path,
        platform_id: str | None = None,
        isolate: bool | None = None,
        use_cgroups: bool | None = None,
    ) -> None:
        super().__init__(platform_id)
        data_dir = data_dir.resolve()
        self.data_dir = data_dir
        self.run_dir = data_dir / "run" / "local"
        self.instances_dir = data_dir / "instances"
        self.spaces_dir = data_dir / "spaces"
        self.bwrap = shutil.which("bwrap") if isolate is not False else None
        if isolate and self.bwrap is None:
            raise RuntimeError("isolation was asked for but bwrap (bubblewrap) is not installed")
        if self.bwrap is None:
            log.warning(
                "bwrap (bubblewrap) is not installed: apps run unisolated, able to read what "
                "the platform's user can (install bubblewrap to isolate them)"
            )
        self.cgroups = cgroup_v2_writable() if use_cgroups is None else use_cgroups
        self.cgroup_parent = CGROUP_ROOT / f"spacehub-{platform_id or 'default'}"
        self._children: dict[int, subprocess.Popen] = {}
        self._cpu_samples: dict[str, tuple[float, int]] = {}  # instance id: (monotonic, ticks)
        self._compiling: set[str] = set()  # venvs whose bytecode a thread compiles
        self._compiling_lock = threading.Lock()

    async def deploy(self, spec: AppSpec) -> Instance:
        return (await anyio.to_thread.run_sync(self._deploy, spec)).instance()

    async def stop(self, instance: Instance) -> None:
        await anyio.to_thread.run_sync(self._stop, instance.state["instance_id"])

    async def status(self, instance: Instance) -> InstanceStatus:
        return await anyio.to_thread.run_sync(self._status, instance.state)

    async def logs(self, instance: Instance, follow: bool = False) -> AsyncIterator[str]:
        path = Path(instance.state["log"])
        try:
            file = await anyio.to_thread.run_sync(path.open, "rb")
        except FileNotFoundError:
            return
        pending = b""
        try:
            while True:
                chunk = await anyio.to_thread.run_sync(file.read, 65536)
                if chunk:
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        yield line.decode("utf-8", errors="replace").rstrip("\r")
                    continue
                if not follow or (await self.status(instance)).state != InstanceState.RUNNING:
                    break
                await anyio.sleep(_FOLLOW_POLL_SECONDS)
            if pending:
                yield pending.decode("utf-8", errors="replace").rstrip("\r")
        finally:
            file.close()

    async def adopt(self, state: dict[str, Any]) -> Instance | None:
        return await anyio.to_thread.run_sync(self._adopt, state)

    async def restart(self, instance: Instance) -> Instance:
        return (await anyio.to_thread.run_sync(self._restart, instance.state)).instance()

    async def list_instances(self) -> list[Instance]:
        return await anyio.to_thread.run_sync(
            lambda: [record.instance() for record in self._records()]
        )

    async def remove_space(self, space_id: str) -> None:
        await anyio.to_thread.run_sync(self._remove_space, space_id)

    async def freeze(self, instance: Instance) -> bool:
        """SIGSTOP to the app's process group; its memory stays, it uses no CPU."""
        return await anyio.to_thread.run_sync(self._signal, instance.state, signal.SIGSTOP)

    async def thaw(self, instance: Instance) -> None:
        """SIGCONT on the event loop itself: a request waits for it, and under load handing two
        system calls to a worker thread and back cost more than the calls (4.6 ms against 0.7)."""
        state = instance.state
        if self._running(state["pid"], state["start_time"]):
            _signal_group(state["pid"], signal.SIGCONT)

    async def usage(self, instance: Instance) -> InstanceUsage | None:
        """Summed over the instance's processes (its cgroup, else its process group): resident
        memory from /proc/PID/statm, CPU from utime+stime since the last reading."""
        return await anyio.to_thread.run_sync(self._usage, instance.state)

    def _usage(self, state: dict[str, Any]) -> InstanceUsage | None:
        record = self._read_record(state["instance_id"])
        if record is None or not self._alive(record):
            self._cpu_samples.pop(state["instance_id"], None)
            return None
        previous = self._cpu_samples.get(record.id)
        if previous is None or time.monotonic() - previous[0] > _USAGE_SAMPLE_MAX_AGE:
            previous = (time.monotonic(), _cpu_ticks(self._processes(record)))
            time.sleep(USAGE_WINDOW_SECONDS)
        pids = self._processes(record)
        now = (time.monotonic(), _cpu_ticks(pids))
        self._cpu_samples[record.id] = now
        # A process that ended between the samples takes its ticks along: never below zero.
        seconds = max(now[1] - previous[1], 0) / _CLOCK_TICKS
        percent = seconds / max(now[0] - previous[0], 1e-3) * 100.0
        return InstanceUsage(percent, sum(_resident_bytes(pid) for pid in pids))

    def _processes(self, record: InstanceRecord) -> set[int]:
        if record.cgroup:
            return Cgroup.v2(Path(record.cgroup)).processes()
        return _process_group(record.pid)

    def _signal(self, state: dict[str, Any], sig: signal.Signals) -> bool:
        record = self._read_record(state["instance_id"])
        if record is None or not self._alive(record):
            return False  # never signal a pid that may belong to another process now
        _signal_group(record.pid, sig)
        return True

    # --- starting

    def _deploy(self, spec: AppSpec) -> InstanceRecord:
        if spec.artifact.kind != "venv":
            raise SpacehubError(
                f"the local runtime runs venv releases, not {spec.artifact.kind} ones: rebuild "
                "the space (factory rebuild)"
            )
        release = Path(spec.artifact.ref)
        try:
            manifest = VenvManifest.from_json((release / VENV_MANIFEST).read_text())
        except FileNotFoundError:
            raise NotFound(f"the release {release} is gone: rebuild the space") from None
        label = _label(spec.space_id)
        instance_id = f"{label}-{spec.commit[:8]}-{secrets.token_hex(3)}"
        folder = self.instances_dir / instance_id
        app_dir = folder / VENV_APP_DIR
        shutil.copytree(release / VENV_APP_DIR, app_dir, symlinks=True)
        home = self.spaces_dir / label / "home"
        home.mkdir(parents=True, exist_ok=True)
        storage = self.spaces_dir / label / "data" if spec.persistent_storage else None
        if storage is not None:
            storage.mkdir(parents=True, exist_ok=True)
        port = free_port()
        log_path = folder / "app.log"
        env = self._environment(spec, manifest, port, home, storage)
        command = self._command(manifest, port)
        if self.bwrap is not None:
            command = self._isolated(command, manifest, app_dir, home, storage)
        cgroup = self._make_cgroup(instance_id, spec.limits) if self.cgroups else None
        with log_path.open("ab") as output:
            process = subprocess.Popen(
                command,
                cwd=app_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() signals all of it
                close_fds=True,
                preexec_fn=_limiter(spec.limits, cgroup),
            )
        self._children[process.pid] = process
        try:
            start_time = process_start_time(process.pid) or 0
            record = InstanceRecord(
                id=instance_id,
                platform_id=self.platform_id,
                space_id=spec.space_id,
                commit=spec.commit,
                port=port,
                pid=process.pid,
                start_time=start_time,
                log=str(log_path),
                spec=_spec_to_json(spec),
                cgroup=str(cgroup.memory) if cgroup else None,
            )
            self._write_record(record)
        except BaseException:  # unrecorded, nothing could stop it later: stop it now
            _signal_group(process.pid, signal.SIGKILL)
            self._children.pop(process.pid, None)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(STOP_GRACE_SECONDS)
            raise
        self._compile_once_up(manifest.venv, port)
        return record

    def _compile_once_up(self, venv: str, port: int) -> None:
        """Compile the venv's bytecode (once) after this instance answers, in a thread."""
        if Path(venv, COMPILED_MARKER).exists():
            return
        with self._compiling_lock:
            if venv in self._compiling:
                return
            self._compiling.add(venv)
        compiling = threading.Thread(
            target=self._compile_when_up, args=(venv, port), name="spacehub-compileall", daemon=True
        )
        try:
            compiling.start()
        except RuntimeError:  # no thread to be had now: the next start compiles
            log.warning("could not start compiling the bytecode of %s", venv)
            with self._compiling_lock:
                self._compiling.discard(venv)

    def _compile_when_up(self, venv: str, port: int) -> None:
        try:
            deadline = time.monotonic() + COMPILE_WAIT_SECONDS
            while time.monotonic() < deadline and not _accepts(port):
                time.sleep(_UP_POLL_SECONDS)
            compile_bytecode(Path(venv))
        finally:
            with self._compiling_lock:
                self._compiling.discard(venv)

    def _environment(
        self,
        spec: AppSpec,
        manifest: VenvManifest,
        port: int,
        home: Path,
        storage: Path | None,
    ) -> dict[str, str]:
        venv = manifest.venv
        env = {
            "PATH": f"{venv}/bin:/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
            **spec.env,
            "VIRTUAL_ENV": venv,
            "HOME": str(home),
            # Loopback only, on the port this instance got: the proxy is the way in.
            "GRADIO_SERVER_NAME": LOOPBACK,
            "GRADIO_SERVER_PORT": str(port),
        }
        if storage is not None:
            env["SPACEHUB_DATA"] = DATA_MOUNT if self.bwrap else str(storage)
        return env

    def _command(self, manifest: VenvManifest, port: int) -> list[str]:
        python = f"{manifest.venv}/bin/python"
        if manifest.sdk == "streamlit":
            # The Docker template's flags, on this instance's loopback port.
            return [
                python, "-m", "streamlit", "run", manifest.app_file,
                "--server.port", str(port), "--server.address", LOOPBACK,
                "--server.headless", "true",
            ]  # fmt: skip
        return [python, manifest.app_file]

    def _isolated(
        self,
        command: list[str],
        manifest: VenvManifest,
        app_dir: Path,
        home: Path,
        storage: Path | None,
    ) -> list[str]:
        """`command` under bubblewrap: the system read-only, only its own folders writable."""
        assert self.bwrap is not None
        wrap = [self.bwrap, "--ro-bind", "/usr", "/usr"]
        for name in ("bin", "lib", "lib64", "sbin", "lib32", "libx32"):
            top = Path("/") / name
            if top.is_symlink():
                wrap += ["--symlink", os.readlink(top), str(top)]
            elif top.is_dir():
                wrap += ["--ro-bind", str(top), str(top)]
        wrap += ["--ro-bind", "/etc", "/etc", "--proc", "/proc", "--dev", "/dev"]
        wrap += ["--tmpfs", "/tmp", "--tmpfs", "/run"]
        if not manifest.python_prefix.startswith("/usr/"):
            wrap += ["--ro-bind", manifest.python_prefix, manifest.python_prefix]
        wrap += ["--ro-bind", manifest.venv, manifest.venv]
        wrap += ["--bind", str(app_dir), str(app_dir), "--bind", str(home), str(home)]
        if storage is not None:
            wrap += ["--bind", str(storage), DATA_MOUNT]
        # Its own pid namespace: the app cannot see or signal other processes, and when its
        # first process ends, everything it started ends too. No --new-session: the sandbox
        # stays in the instance's process group, which stop() signals (the app has no terminal
        # to abuse). No --die-with-parent: apps outlive a platform restart, which adopts them.
        wrap += ["--unshare-pid", "--unshare-ipc", "--unshare-uts"]
        wrap += ["--chdir", str(app_dir), "--"]
        return wrap + command

    def _make_cgroup(self, instance_id: str, limits: Limits) -> Cgroup | None:
        wanted = CgroupLimits(limits.memory_bytes, limits.cpus, limits.pids)
        try:
            return make_cgroup(self.cgroup_parent.name, instance_id, wanted, versions=(2,))
        except OSError as error:
            log.warning("cgroup limits unavailable (%s): using rlimits", error)
            return None

    # --- watching and stopping

    def _status(self, state: dict[str, Any]) -> InstanceStatus:
        pid = state["pid"]
        child = self._children.get(pid)
        if child is not None:
            code = child.poll()
            if code is None:
                return InstanceStatus(InstanceState.RUNNING)
            return InstanceStatus(
                InstanceState.EXITED, exit_code=code, oom_killed=self._oom_killed(state)
            )
        if process_start_time(pid) == state["start_time"]:
            return InstanceStatus(InstanceState.RUNNING)
        if self._record_path(state["instance_id"]).is_file():
            # Started by an earlier platform process: its exit code went to init.
            return InstanceStatus(InstanceState.EXITED, oom_killed=self._oom_killed(state))
        return InstanceStatus(InstanceState.MISSING)

    def _oom_killed(self, state: dict[str, Any]) -> bool:
        record = self._read_record(state["instance_id"])
        if record is None or record.cgroup is None:
            return False
        return Cgroup.v2(Path(record.cgroup)).oom_kills() > 0

    def _stop(self, instance_id: str) -> None:
        record = self._read_record(instance_id)
        if record is not None:
            self._kill(record)
            if record.cgroup:
                Cgroup.v2(Path(record.cgroup)).remove()
        shutil.rmtree(self.instances_dir / instance_id, ignore_errors=True)
        self._record_path(instance_id).unlink(missing_ok=True)

    def _kill(self, record: InstanceRecord) -> None:
        """SIGTERM the whole process group, SIGKILL after a grace; reap our own child."""
        alive = self._alive(record)
        if alive:
            _signal_group(record.pid, signal.SIGTERM)
            deadline = time.monotonic() + STOP_GRACE_SECONDS
            while self._alive(record) and time.monotonic() < deadline:
                time.sleep(0.05)
        # Also after the leader is gone: processes it started may linger in its group.
        _signal_group(record.pid, signal.SIGKILL)
        if record.cgroup:
            Cgroup.v2(Path(record.cgroup)).kill()
        child = self._children.pop(record.pid, None)
        if child is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(STOP_GRACE_SECONDS)

    def _alive(self, record: InstanceRecord) -> bool:
        return self._running(record.pid, record.start_time)

    def _running(self, pid: int, start_time: int) -> bool:
        """Whether our instance `pid` still runs (a reused pid is another process's)."""
        child = self._children.get(pid)
        if child is not None:
            return child.poll() is None
        return process_start_time(pid) == start_time

    # --- adoption, restart, listing

    def _adopt(self, state: dict[str, Any]) -> Instance | None:
        record = self._read_record(state.get("instance_id", ""))
        if record is None or record.platform_id != self.platform_id:
            return None
        if record.pid != state.get("pid") or process_start_time(record.pid) != record.start_time:
            return None  # gone, or the pid now belongs to another process
        return record.instance()

    def _restart(self, state: dict[str, Any]) -> InstanceRecord:
        record = self._read_record(state["instance_id"])
        if record is None:
            raise NotFound(f"instance {state['instance_id']} is gone")
        spec = _spec_from_json(record.spec)
        self._stop(record.id)
        return self._deploy(spec)

    def _remove_space(self, space_id: str) -> None:
        for record in self._records():
            if record.space_id == space_id:
                self._stop(record.id)
        shutil.rmtree(self.spaces_dir / _label(space_id), ignore_errors=True)

    def _records(self) -> list[InstanceRecord]:
        if not self.run_dir.is_dir():
            return []
        records = []
        for path in sorted(self.run_dir.glob("*.json")):
            record = self._read_record(path.stem)
            if record is not None and record.platform_id == self.platform_id:
                records.append(record)
        return records

    def _record_path(self, instance_id: str) -> Path:
        return self.run_dir / f"{instance_id}.json"

    def _read_record(self, instance_id: str) -> InstanceRecord | None:
        if not instance_id or "/" in instance_id or instance_id.startswith("."):
            return None
        try:
            return InstanceRecord(**json.loads(self._record_path(instance_id).read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def _write_record(self, record: InstanceRecord) -> None:
        """Written whole (rename), readable by the platform's user only: the env holds secrets."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        path = self._record_path(record.id)
        partial = path.with_name(f".{path.name}.partial")
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            json.dump(asdict(record), file)
        partial.rename(path)


def _accepts(port: int) -> bool:
    """Whether something listens on the loopback `port`."""
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex((LOOPBACK, port)) == 0


def compile_bytecode(venv: Path) -> None:
    """Write the venv's `.pyc` files when no other process wants the CPU (file by file,
    atomically), then mark it compiled; a compile cut short is taken up by the next one."""
    try:
        done = subprocess.run(
            [str(venv / "bin" / "python"), "-m", "compileall", "-q", "-j", "0", str(venv / "lib")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_lowest_priority,
            timeout=COMPILE_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return
    # compileall exits 1 when some file does not compile (test data of packages): still done.
    if done.returncode in (0, 1):
        with contextlib.suppress(OSError):
            (venv / COMPILED_MARKER).touch()


def _lowest_priority() -> None:
    """SCHED_IDLE (CPU only when nothing else wants it), else nice 19."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except OSError:
        os.nice(19)


def _label(space_id: str) -> str:
    owner, _, name = space_id.partition("/")
    return subdomain_label(owner, name)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _process_group(pgid: int) -> set[int]:
    """The pids whose process group is `pgid` (field 5 of /proc/PID/stat)."""
    found = set()
    for entry in Path("/proc").iterdir():
        fields = _stat_fields(int(entry.name)) if entry.name.isdigit() else None
        if fields is not None and int(fields[2]) == pgid:
            found.add(int(entry.name))
    return found


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat from field 3 on (after the command name, which may hold spaces)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()


def _cpu_ticks(pids: set[int]) -> int:
    """utime + stime (fields 14 and 15) of these processes, in clock ticks."""
    total = 0
    for pid in pids:
        if (fields := _stat_fields(pid)) is not None:
            total += int(fields[11]) + int(fields[12])
    return total


def _resident_bytes(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return 0


def _limiter(limits: Limits, cgroup: Cgroup | None) -> Callable[[], None]:
    """What the child runs before exec: join its cgroup, or set rlimits when there is none."""
    # RLIMIT_NPROC counts every process of the user, the platform's included; root ignores it.
    nproc = None if os.getuid() == 0 else _processes_of_this_user() + limits.pids

    def limit() -> None:
        if cgroup is not None:
            cgroup.join()
            return
        resource.setrlimit(resource.RLIMIT_DATA, (limits.memory_bytes, limits.memory_bytes))
        if nproc is not None:
            resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))

    return limit


def _processes_of_this_user() -> int:
    uid = os.getuid()
    count = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                count += entry.stat().st_uid == uid
    return count


def _spec_to_json(spec: AppSpec) -> dict[str, Any]:
    return asdict(spec)


def _spec_from_json(data: dict[str, Any]) -> AppSpec:
    return AppSpec(
        **{
            **data,
            "artifact": Artifact(**data["artifact"]),
            "limits": Limits(**data["limits"]),
        }
    )

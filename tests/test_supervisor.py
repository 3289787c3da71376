"""The supervisor, driven in-process against a real SQLite database and fake runtimes.

The fakes are real subclasses of `Runtime` (as JupyterHub's MockSpawner family): each instance
is a real process serving HTTP on a loopback port, one that starts late, one that never
listens, one that exits after a while. A `FakeEngine` plays the Docker daemon: it outlives a
runtime object, so a second supervisor can adopt what the first one started.
"""

import ast
import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from anyio import to_thread

from spacehub.core.release import AppSpec, Artifact
from spacehub.core.stages import Stage
from spacehub.platform.context import Platform
from spacehub.platform.db import migrate, session_scope
from spacehub.platform.models import Space
from spacehub.platform.services import accounts, desired, spaces
from spacehub.platform.settings import Settings
from spacehub.platform.supervisor import Supervisor
from spacehub.runtime.base import Instance, InstanceState, InstanceStatus, Runtime

ROOT = Path(__file__).resolve().parent.parent
SERVE = """
import http.server, os, sys, threading, time
delay, crash_after, commit = float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
class Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/events":  # server-sent events that never end
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            while True:
                self.wfile.write(b"data: tick\\n\\n")
                self.wfile.flush()
                time.sleep(0.2)
        body = f"release {commit}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
print(f"fake app {commit}: starting", flush=True)
if delay < 0:
    print("fake app: thinking forever", flush=True)
    time.sleep(3600)
time.sleep(delay)
server = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Answer)
threading.Thread(target=server.serve_forever, daemon=True).start()
print(f"fake app {commit}: serving", flush=True)
if crash_after > 0:
    time.sleep(crash_after)
    print("fake app: giving up with code 3", flush=True)
    os._exit(3)
time.sleep(3600)
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class FakeEngine:
    """What the runtimes' processes run on: it outlives any one runtime object."""

    logs_dir: Path
    processes: dict[int, subprocess.Popen] = field(default_factory=dict)
    specs: dict[int, AppSpec] = field(default_factory=dict)
    starts: list[tuple[float, str]] = field(default_factory=list)  # (when, commit)

    def kill_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait(5)


class ServerRuntime(Runtime):
    """Each instance is `SERVE` in a subprocess: it answers HTTP on its loopback port."""

    name = "fake"
    start_delay = 0.0  # seconds before the app listens; < 0: never
    crash_after = 0.0  # seconds of serving before the app exits with code 3; 0: never

    def __init__(self, engine: FakeEngine) -> None:
        super().__init__(platform_id="test")
        self.engine = engine

    async def deploy(self, spec: AppSpec) -> Instance:
        return self._start(spec)

    def _start(self, spec: AppSpec) -> Instance:
        port = free_port()
        log = self.engine.logs_dir / f"{port}.log"
        arguments = [str(port), str(self.start_delay), str(self.crash_after), spec.commit]
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-c", SERVE, *arguments], stdout=out, stderr=subprocess.STDOUT
            )
        self.engine.processes[process.pid] = process
        self.engine.specs[process.pid] = spec
        self.engine.starts.append((time.monotonic(), spec.commit))
        state = {"pid": process.pid, "port": port, "log": str(log)}
        return Instance(spec.space_id, spec.commit, "127.0.0.1", port, state)

    async def stop(self, instance: Instance) -> None:
        process = self.engine.processes.get(instance.state["pid"])
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            await to_thread.run_sync(process.wait, 10)

    async def status(self, instance: Instance) -> InstanceStatus:
        process = self.engine.processes.get(instance.state["pid"])
        if process is None:
            return InstanceStatus(InstanceState.MISSING)
        code = process.poll()
        if code is None:
            return InstanceStatus(InstanceState.RUNNING)
        return InstanceStatus(InstanceState.EXITED, exit_code=code)

    async def logs(self, instance: Instance, follow: bool = False) -> AsyncIterator[str]:
        for line in Path(instance.state["log"]).read_text().splitlines(keepends=True):
            yield line

    async def adopt(self, state: dict[str, Any]) -> Instance | None:
        process = self.engine.processes.get(state["pid"])
        if process is None or process.poll() is not None:
            return None
        spec = self.engine.specs[state["pid"]]
        return Instance(spec.space_id, spec.commit, "127.0.0.1", state["port"], state)

    async def restart(self, instance: Instance) -> Instance:
        await self.stop(instance)
        return self._start(self.engine.specs[instance.state["pid"]])

    async def list_instances(self) -> list[Instance]:
        found = []
        for pid, process in self.engine.processes.items():
            if process.poll() is None:
                spec = self.engine.specs[pid]
                port = int(process.args[3])
                state = {"pid": pid, "port": port, "log": str(self.engine.logs_dir / f"{port}.log")}
                found.append(Instance(spec.space_id, spec.commit, "127.0.0.1", port, state))
        return found

    async def remove_space(self, space_id: str) -> None:
        for instance in await self.list_instances():
            if instance.space_id == space_id:
                await self.stop(instance)


class SlowRuntime(ServerRuntime):
    start_delay = 2.5


class NeverListensRuntime(ServerRuntime):
    start_delay = -1.0


class CrashingRuntime(ServerRuntime):
    crash_after = 1.0


class ThreadedRuntime(ServerRuntime):
    """Deploys in a worker thread that takes a while, as the Docker runtime does."""

    create_seconds = 1.0

    def __init__(self, engine: FakeEngine) -> None:
        super().__init__(engine)
        self.deploying = asyncio.Event()

    async def deploy(self, spec: AppSpec) -> Instance:
        self.deploying.set()
        return await to_thread.run_sync(self._create_then_start, spec)

    def _create_then_start(self, spec: AppSpec) -> Instance:
        time.sleep(self.create_seconds)
        return self._start(spec)


@pytest.fixture
def platform(tmp_path: Path) -> Platform:
    return make_platform(tmp_path, max_restarts=2)


def make_platform(tmp_path: Path, **settings: Any) -> Platform:
    """A platform's database with one Gradio space, ada/demo, and no release yet."""
    platform = Platform.from_settings(Settings(data_dir=tmp_path / "data", **settings))
    migrate(platform.engine)
    with session_scope(platform.engine) as session:
        owner = accounts.create_user(session, "ada")
        space = spaces.create_space(session, owner, "demo", sdk="gradio")
        space.card_data = {"sdk": "gradio", "startup_duration_timeout": "3s"}
        session.add(space)
        session.commit()
    return platform


@pytest.fixture
def engine(tmp_path: Path):
    engine = FakeEngine(tmp_path / "instances")
    engine.logs_dir.mkdir()
    yield engine
    engine.kill_all()


def space_row(platform: Platform) -> Space:
    with session_scope(platform.engine) as session:
        space = session.exec(spaces_query()).one()
        session.expunge(space)
        return space


def spaces_query():
    from sqlmodel import select

    return select(Space).where(Space.name == "demo")


def record_release(platform: Platform, commit: str) -> None:
    """What a build does when it ends: the release is the space's desired one."""
    with session_scope(platform.engine) as session:
        space = session.exec(spaces_query()).one()
        desired.want_release(session, space, Artifact("image", f"fake:{commit}", commit), None)


async def go_live(platform: Platform, supervisor: Supervisor, commit: str) -> None:
    record_release(platform, commit)
    supervisor.wake()
    await until(lambda: served(platform) == f"release {commit}", 15, f"release {commit[:7]}")


def served(platform: Platform) -> str | None:
    route = platform.routes.by_space("ada", "demo")
    if route is None or route.upstream is None:
        return None
    try:
        url = f"http://{route.upstream.host}:{route.upstream.port}/"
        return httpx.get(url, timeout=2).text
    except httpx.HTTPError:
        return None


async def until(check: Callable[[], object], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await to_thread.run_sync(check)
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def supervise(platform: Platform, runtime: Runtime, scenario: Callable[..., Awaitable[None]]):
    """Run `scenario(supervisor)` while the supervisor runs, as `serve`'s lifespan does."""

    async def main() -> None:
        platform.runtime = runtime
        supervisor = platform.supervisor = Supervisor(platform)
        await supervisor.adopt()
        stop = asyncio.Event()
        task = asyncio.create_task(supervisor.run(stop))
        try:
            await scenario(supervisor)
        finally:
            stop.set()
            await task

    asyncio.run(main())


def live_pids(engine: FakeEngine) -> set[int]:
    return {pid for pid, process in engine.processes.items() if process.poll() is None}


def test_a_release_goes_live_only_once_it_answers_and_the_old_one_serves_meanwhile(
    platform: Platform, engine: FakeEngine
):
    async def scenario(supervisor: Supervisor) -> None:
        await go_live(platform, supervisor, "a" * 40)
        (old_pid,) = live_pids(engine)
        record_release(platform, "b" * 40)
        assert space_row(platform).stage == Stage.RUNNING_APP_STARTING
        supervisor.wake()
        await until(lambda: len(live_pids(engine)) == 2, 5, "release b's process")
        # b is up but not listening yet (2.5 s): a still serves, the stage says why.
        for _ in range(10):
            assert served(platform) == f"release {'a' * 40}"
            assert space_row(platform).stage == Stage.RUNNING_APP_STARTING
            await asyncio.sleep(0.1)
        await until(lambda: served(platform) == f"release {'b' * 40}", 15, "release b")
        space = space_row(platform)
        assert space.stage == Stage.RUNNING and space.current_commit == "b" * 40
        await until(lambda: old_pid not in live_pids(engine), 5, "the old instance to stop")
        assert len(live_pids(engine)) == 1

    supervise(platform, SlowRuntime(engine), scenario)


def test_a_release_that_never_listens_leaves_the_old_one_live_and_says_why(
    platform: Platform, engine: FakeEngine
):
    async def scenario(supervisor: Supervisor) -> None:
        await go_live(platform, supervisor, "a" * 40)
        (old_pid,) = live_pids(engine)
        platform.runtime = NeverListensRuntime(engine)  # the next deploy never listens
        record_release(platform, "c" * 40)
        supervisor.wake()
        space = await until(
            lambda: (row := space_row(platform)).error_message and row, 15, "the failed start"
        )
        assert space.stage == Stage.RUNNING
        assert "within 3 s" in space.error_message, space.error_message
        assert "fake app: thinking forever" in space.error_message, space.error_message
        assert space.current_commit == "a" * 40
        assert served(platform) == f"release {'a' * 40}"
        assert live_pids(engine) == {old_pid}, "the new instance is stopped, the old one runs"
        await asyncio.sleep(1.5)
        assert len(engine.starts) == 2, "a failed start is not tried again by itself"

    supervise(platform, ServerRuntime(engine), scenario)


def test_a_crashing_instance_is_restarted_with_backoff_then_runtime_error(
    platform: Platform, engine: FakeEngine
):
    async def scenario(supervisor: Supervisor) -> None:
        record_release(platform, "d" * 40)
        supervisor.wake()
        space = await until(
            lambda: (row := space_row(platform)).stage == Stage.RUNTIME_ERROR and row,
            30,
            "RUNTIME_ERROR",
        )
        gave_up = time.monotonic()
        assert "kept crashing (exit code 3)" in space.error_message, space.error_message
        assert "fake app: giving up with code 3" in space.error_message
        # The first start, then max_restarts (2) restarts: the second waits 1 s after the
        # first, and the verdict 2 s after the second, though each instance dies after 1 s.
        assert len(engine.starts) == 3, engine.starts
        _, (second, _), (third, _) = engine.starts
        assert third - second >= 1.0
        assert gave_up - third >= 2.0
        await asyncio.sleep(2.5)
        assert len(engine.starts) == 3, "nothing restarts a space in RUNTIME_ERROR"
        assert served(platform) is None

    supervise(platform, CrashingRuntime(engine), scenario)


def test_pause_stops_the_instance_and_nothing_restarts_it(platform: Platform, engine: FakeEngine):
    async def scenario(supervisor: Supervisor) -> None:
        await go_live(platform, supervisor, "e" * 40)
        with session_scope(platform.engine) as session:
            desired.want_paused(session, session.exec(spaces_query()).one())
        await supervisor.settle(space_row(platform).id)
        assert live_pids(engine) == set()
        space = space_row(platform)
        assert space.stage == Stage.PAUSED and space.instance_state is None
        await asyncio.sleep(2.5)
        assert live_pids(engine) == set() and len(engine.starts) == 1
        assert space_row(platform).stage == Stage.PAUSED

    supervise(platform, ServerRuntime(engine), scenario)


def test_a_new_supervisor_adopts_the_running_instance_and_stops_an_orphan(
    platform: Platform, engine: FakeEngine
):
    async def first_life(supervisor: Supervisor) -> None:
        await go_live(platform, supervisor, "f" * 40)

    supervise(platform, ServerRuntime(engine), first_life)
    (adoptee,) = live_pids(engine)
    # A rollout that a crash cut short left a second instance of the space that no row records.
    runtime = ServerRuntime(engine)
    orphan = asyncio.run(runtime.deploy(engine.specs[adoptee])).state["pid"]

    async def second_life(supervisor: Supervisor) -> None:
        assert live_pids(engine) == {adoptee}, "the orphan is stopped, the recorded one adopted"
        assert served(platform) == f"release {'f' * 40}"
        assert space_row(platform).instance_state["runtime"]["pid"] == adoptee
        await asyncio.sleep(1.5)
        assert live_pids(engine) == {adoptee} and len(engine.starts) == 2

    supervise(platform, ServerRuntime(engine), second_life)
    assert orphan not in live_pids(engine)


def test_deleting_a_space_mid_deploy_leaves_nothing_running(platform: Platform, engine: FakeEngine):
    """A cancel abandons a runtime call's thread: the deploy went on to start an instance of a
    space already removed (a 500 on delete when the image was still in use, and a leak)."""
    runtime = ThreadedRuntime(engine)

    async def scenario(supervisor: Supervisor) -> None:
        record_release(platform, "9" * 40)
        supervisor.wake()
        await asyncio.wait_for(runtime.deploying.wait(), 5)
        await asyncio.sleep(runtime.create_seconds / 2)  # the thread is at work
        await supervisor.remove_space(space_row(platform).id, "ada/demo")
        assert live_pids(engine) == set(), "remove_space returned with an instance running"
        await asyncio.sleep(runtime.create_seconds + 0.5)
        assert live_pids(engine) == set(), "the deploy started an instance after the removal"

    supervise(platform, runtime, scenario)


def runtime_calls(path: Path) -> list[str]:
    """`….deploy(`, `….restart(` and `<runtime>.stop(` (`.freeze(`, `.thaw(`...) calls in one
    source file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            receiver = ast.unparse(node.func.value)
            if node.func.attr in ("deploy", "restart") or (
                node.func.attr in ("stop", "remove_space", "freeze", "thaw")
                and "runtime" in receiver
            ):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_only_the_supervisor_starts_and_stops_instances():
    calls = [
        call
        for path in sorted((ROOT / "spacehub").rglob("*.py"))
        if path.parent.name != "runtime" and path.name != "supervisor.py"
        for call in runtime_calls(path)
    ]
    assert calls == []
    assert runtime_calls(ROOT / "spacehub" / "platform" / "supervisor.py"), "the check can fail"


def test_the_build_worker_never_touches_a_runtime():
    """`spacehub worker` may run on another machine: it records releases, nothing more."""
    tree = ast.parse((ROOT / "spacehub" / "platform" / "worker.py").read_text())
    imported = {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module is not None
    }
    forbidden = {"spacehub.platform.rollout", "spacehub.platform.supervisor"}
    assert not imported & forbidden
    assert not any(module.startswith("spacehub.runtime") for module in imported)
    assert os.path.exists(ROOT / "spacehub" / "platform" / "supervisor.py")

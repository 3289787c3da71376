"""Sleep's first tier: an idle instance is frozen, and the proxy's next request thaws it.

The logic runs in-process against fake runtimes (tests/test_supervisor.py: each instance a real
process serving HTTP), frozen with SIGSTOP, and the real proxy on the same event loop, as in
`serve`. The real runtimes: the local runtime's process group and a Docker Gradio space.
"""

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from anyio import to_thread

from spacehub.core.stages import Stage
from spacehub.platform.context import Platform
from spacehub.platform.db import session_scope
from spacehub.platform.proxy import start_proxy
from spacehub.platform.route_table import Route, Upstream
from spacehub.platform.services import desired
from spacehub.platform.supervisor import Supervisor
from spacehub.runtime.base import Instance
from tests.conftest import EXAMPLES, explain_failure, start_platform, wait_for
from tests.test_runtime_conformance import (
    RuntimeHub,
    clean_up,
    containers_of,
    local_records,
    runtime_settings,
)
from tests.test_supervisor import (
    FakeEngine,
    ServerRuntime,
    go_live,
    live_pids,
    make_platform,
    record_release,
    space_row,
    spaces_query,
    supervise,
    until,
)
from tests.test_supervisor import free_port as free_test_port

FREEZE_AFTER = 1.0
REAL_FREEZE_AFTER = 3  # seconds, for the real runtimes


class FreezingRuntime(ServerRuntime):
    """The fake runtime, frozen as the local runtime freezes: SIGSTOP and SIGCONT."""

    def __init__(self, engine: FakeEngine) -> None:
        super().__init__(engine)
        self.freezes = 0
        self.thaws = 0

    async def freeze(self, instance: Instance) -> bool:
        self.freezes += 1
        os.kill(instance.state["pid"], signal.SIGSTOP)
        return True

    async def thaw(self, instance: Instance) -> None:
        self.thaws += 1
        os.kill(instance.state["pid"], signal.SIGCONT)


@pytest.fixture
def platform(tmp_path: Path) -> Platform:
    return make_platform(tmp_path, freeze_after=FREEZE_AFTER)


@pytest.fixture
def engine(tmp_path: Path):
    engine = FakeEngine(tmp_path / "instances")
    engine.logs_dir.mkdir()
    yield engine
    for pid in live_pids(engine):  # a frozen process would not see the SIGKILL's reaping wait
        os.kill(pid, signal.SIGCONT)
    engine.kill_all()


def process_state(pid: int) -> str:
    """The state letter of /proc/PID/stat: T when stopped (frozen)."""
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


async def proxy(platform: Platform) -> str:
    """The real proxy on this loop, reading the platform's routes; returns the app's URL."""

    async def refuse(route: Route, token: str | None) -> bool:
        return False

    port = free_test_port()
    await start_proxy(
        host="127.0.0.1",
        port=port,
        routes=platform.routes,
        control_plane=Upstream(port=free_test_port()),  # nothing there: never asked here
        apps_domain="localhost",
        authorize=refuse,
    )
    return f"http://127.0.0.1:{port}/apps/ada/demo/"


def get(url: str) -> tuple[int, str, float]:
    started = time.monotonic()
    answer = httpx.get(url, timeout=30)
    return answer.status_code, answer.text, time.monotonic() - started


def listen_to_events(url: str, seconds: float) -> int:
    """Read the fake app's endless event stream for `seconds`; the number of events."""
    events = 0
    with httpx.stream("GET", url + "events", timeout=10) as stream:
        deadline = time.monotonic() + seconds
        for line in stream.iter_lines():
            events += line == "data: tick"
            if time.monotonic() > deadline:
                break
    return events


async def frozen(pid: int, within: float = FREEZE_AFTER + 5) -> None:
    await until(lambda: process_state(pid) == "T", within, "the instance to be frozen")


def test_an_idle_instance_is_frozen_and_the_next_request_thaws_it(platform, engine):
    runtime = FreezingRuntime(engine)

    async def scenario(supervisor: Supervisor) -> None:
        url = await proxy(platform)
        await go_live(platform, supervisor, "a" * 40)
        (pid,) = live_pids(engine)
        status, text, warm = await to_thread.run_sync(get, url)
        assert (status, text) == (200, f"release {'a' * 40}")
        await frozen(pid)
        ticks = cpu_ticks(pid)
        await asyncio.sleep(1.0)
        assert cpu_ticks(pid) == ticks, "a frozen instance used CPU"
        assert space_row(platform).stage == Stage.RUNNING  # frozen is not a stage of its own
        status, text, wake = await to_thread.run_sync(get, url)
        assert (status, text) == (200, f"release {'a' * 40}")
        assert process_state(pid) != "T"
        assert (runtime.freezes, runtime.thaws) == (1, 1)
        print(f"first request to a frozen fake app: {wake * 1000:.1f} ms ({warm * 1000:.1f} warm)")
        assert wake < 0.5
        wakes = platform.metrics.wakes.labels(tier="frozen")
        assert wakes._sum.get() > 0  # the wake was timed
        # Idle again: frozen again.
        await frozen(pid)
        assert runtime.freezes == 2

    supervise(platform, runtime, scenario)


def test_an_open_event_stream_keeps_the_instance_awake(platform, engine):
    """An open stream (SSE here; a WebSocket alike) is activity however long it lasts."""
    runtime = FreezingRuntime(engine)

    async def scenario(supervisor: Supervisor) -> None:
        url = await proxy(platform)
        await go_live(platform, supervisor, "b" * 40)
        (pid,) = live_pids(engine)
        events = await to_thread.run_sync(listen_to_events, url, FREEZE_AFTER * 4)
        assert events >= 10
        assert runtime.freezes == 0
        await frozen(pid)

    supervise(platform, runtime, scenario)


def test_many_requests_to_a_frozen_space_thaw_it_once(platform, engine):
    runtime = FreezingRuntime(engine)

    async def scenario(supervisor: Supervisor) -> None:
        url = await proxy(platform)
        await go_live(platform, supervisor, "c" * 40)
        (pid,) = live_pids(engine)
        await frozen(pid)
        answers = await asyncio.gather(*(to_thread.run_sync(get, url) for _ in range(20)))
        assert {(status, text) for status, text, _ in answers} == {(200, f"release {'c' * 40}")}
        assert runtime.thaws == 1

    supervise(platform, runtime, scenario)


def test_a_new_release_a_pause_and_a_restart_of_the_platform_thaw_first(platform, engine):
    """A frozen process ignores SIGTERM: each of these would hang (the fake's stop waits 10 s
    and fails) if the instance were not thawed before being stopped."""
    runtime = FreezingRuntime(engine)

    async def release_over_frozen(supervisor: Supervisor) -> None:
        await go_live(platform, supervisor, "d" * 40)
        (old,) = live_pids(engine)
        await frozen(old)
        started = time.monotonic()
        await go_live(platform, supervisor, "e" * 40)
        await until(lambda: old not in live_pids(engine), 5, "the old instance to stop")
        assert time.monotonic() - started < 8
        (new,) = live_pids(engine)
        await frozen(new)

    supervise(platform, runtime, release_over_frozen)
    (pid,) = live_pids(engine)
    assert process_state(pid) == "T", "the platform stopped: the instance stays frozen"

    async def adopt_then_pause(supervisor: Supervisor) -> None:
        assert process_state(pid) != "T", "adoption thaws what the last platform froze"
        url = await proxy(platform)
        status, text, _ = await to_thread.run_sync(get, url)
        assert (status, text) == (200, f"release {'e' * 40}")
        await frozen(pid)
        with session_scope(platform.engine) as session:
            desired.want_paused(session, session.exec(spaces_query()).one())
        await asyncio.wait_for(supervisor.settle(space_row(platform).id), 8)
        assert live_pids(engine) == set()
        assert space_row(platform).stage == Stage.PAUSED
        assert platform.routes.frozen == {}

    supervise(platform, FreezingRuntime(engine), adopt_then_pause)


def test_freeze_after_zero_never_freezes(tmp_path, engine):
    platform = make_platform(tmp_path, freeze_after=0)
    runtime = FreezingRuntime(engine)

    async def scenario(supervisor: Supervisor) -> None:
        await go_live(platform, supervisor, "f" * 40)
        await asyncio.sleep(3)
        assert runtime.freezes == 0

    supervise(platform, runtime, scenario)


def test_a_request_racing_the_freeze_is_answered(platform, engine):
    """Requests sent as the instance freezes: each waits for the thaw or goes before the freeze;
    none hangs on a frozen app."""
    runtime = FreezingRuntime(engine)

    async def scenario(supervisor: Supervisor) -> None:
        url = await proxy(platform)
        record_release(platform, "9" * 40)
        supervisor.wake()
        await until(lambda: live_pids(engine), 10, "an instance")
        for _ in range(3):
            await until(lambda: platform.routes.frozen, FREEZE_AFTER + 5, "a freeze to start")
            status, text, took = await to_thread.run_sync(get, url)
            assert status == 200 and text == f"release {'9' * 40}", text
            assert took < 5

    supervise(platform, runtime, scenario)


# The real runtimes: a Gradio space from examples/ frozen by `docker pause` or SIGSTOP


def frozen_and_cpu(hub: RuntimeHub, space_id: str) -> tuple[bool, float]:
    """Whether the space's instance is frozen, and the CPU seconds it has used so far."""
    if hub.runtime == "docker":
        (container,) = containers_of(hub.platform, space_id)
        stats = container.stats(stream=False)
        return container.attrs["State"]["Paused"], stats["cpu_stats"]["cpu_usage"][
            "total_usage"
        ] / 1e9
    (record,) = local_records(hub.platform, space_id)
    pid = record["pid"]
    group = [
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and _group_of(int(entry.name)) == pid
    ]
    states = {process_state(member) for member in group}
    ticks = sum(cpu_ticks(member) for member in group)
    return states == {"T"}, ticks / os.sysconf("SC_CLK_TCK")


def _group_of(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[2])
    except (OSError, ValueError, IndexError):
        return None


@pytest.fixture(params=[pytest.param("docker", marks=pytest.mark.docker), "local"])
def gradio_hub(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RuntimeHub]:
    runtime: str = request.param
    platform = start_platform(
        tmp_path / "data", **runtime_settings(runtime, freeze_after=str(REAL_FREEZE_AFTER))
    )
    hub = RuntimeHub(runtime, platform, tmp_path / "checkouts")
    explain_failure(request.node, "platform log (tail)", lambda: platform.log()[-6000:])
    try:
        yield hub
    finally:
        clean_up(runtime, platform, hub.created)


def test_a_real_gradio_space_freezes_uses_no_cpu_and_answers_the_first_request(gradio_hub):
    hub = gradio_hub
    space_id = hub.create("frozen-greet", "gradio")
    hub.push(space_id, EXAMPLES / "gradio-greet")
    hub.running(space_id)
    assert hub.get(space_id, "path").status_code == 200
    wait_for(
        lambda: frozen_and_cpu(hub, space_id)[0], REAL_FREEZE_AFTER + 10, "the app to be frozen"
    )
    _, cpu_before = frozen_and_cpu(hub, space_id)
    time.sleep(3)
    frozen_now, cpu_after = frozen_and_cpu(hub, space_id)
    assert frozen_now
    assert cpu_after == cpu_before, f"a frozen app used {cpu_after - cpu_before:.4f} s of CPU"

    started = time.monotonic()
    first = hub.get(space_id, "subdomain", "config")
    wake = time.monotonic() - started
    assert first.status_code == 200, first.text
    assert not frozen_and_cpu(hub, space_id)[0]
    warm = []
    for _ in range(5):
        started = time.monotonic()
        assert hub.get(space_id, "subdomain", "config").status_code == 200
        warm.append(time.monotonic() - started)
    added = wake - min(warm)
    print(
        f"\n{hub.runtime}: first request to the frozen Gradio app {wake * 1000:.1f} ms, "
        f"warm {min(warm) * 1000:.1f} ms: {added * 1000:.1f} ms added by the thaw"
    )
    assert added < 0.5  # the target, 50 ms, is measured (printed), not asserted on a busy host
    with hub.platform.api() as client:
        metrics = client.get("/metrics").text
    assert 'spacehub_wake_duration_seconds_count{tier="frozen"} 1.0' in metrics
    wait_for(lambda: frozen_and_cpu(hub, space_id)[0], REAL_FREEZE_AFTER + 10, "a freeze again")


def test_an_open_streamlit_tab_keeps_its_space_awake(tmp_path, request):
    """A Streamlit tab is one WebSocket: while it is open the space is busy, however quiet."""
    from websockets.sync.client import connect as ws_connect

    platform = start_platform(tmp_path / "data", runtime="local", freeze_after="2")
    hub = RuntimeHub("local", platform, tmp_path / "checkouts")
    explain_failure(request.node, "platform log (tail)", lambda: platform.log()[-6000:])
    try:
        space_id = hub.create("open-tab", "streamlit")
        hub.push(space_id, EXAMPLES / "streamlit-square")
        hub.running(space_id)
        url = hub.path_url(space_id)
        stream = url.replace("http://", "ws://") + "_stcore/stream"
        origin = url.split("/apps/")[0]
        with ws_connect(stream, subprotocols=["streamlit"], origin=origin) as tab:
            assert tab.subprotocol == "streamlit"
            time.sleep(8)  # four times freeze_after, not a byte sent
            assert not frozen_and_cpu(hub, space_id)[0], "frozen with a tab open"
            with platform.api() as client:
                metrics = client.get("/metrics").text
            assert f'spacehub_space_open_streams{{space="{space_id}"}} 1.0' in metrics
        wait_for(lambda: frozen_and_cpu(hub, space_id)[0], 15, "the tab's space to freeze")
        assert httpx.get(url + "_stcore/health", timeout=30).text == "ok"
    finally:
        clean_up("local", platform, hub.created)

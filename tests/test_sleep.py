"""Sleep's second tier: an app idle for its space's sleep time is stopped (SLEEPING); the next
request starts it again and is held until it answers (a browser gets a waking page).

The logic runs in-process against the fake runtimes of tests/test_supervisor.py (each instance a
real process serving HTTP) and the real proxy on the same event loop, as in `serve`. Then real
apps from examples/ on a real `spacehub serve`: a Gradio space on each runtime (the local one
through restart, crowd, browser and pause), and one Streamlit space per runtime, built once, that
an open tab keeps awake and a new tab's WebSocket wakes in both URL forms.
"""

import asyncio
import importlib
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from anyio import to_thread

from spacehub.core.stages import Stage
from spacehub.platform.api.shapes import runtime_json
from spacehub.platform.context import Platform
from spacehub.platform.db import session_scope
from spacehub.platform.metrics import render_metrics
from spacehub.platform.services import desired
from spacehub.platform.supervisor import Supervisor
from tests.conftest import (
    EXAMPLES,
    assert_streamlit_session_renders,
    explain_failure,
    start_platform,
    wait_for,
)
from tests.test_freeze import FreezingRuntime, process_state, proxy
from tests.test_runtime_conformance import (
    EVERY_RUNTIME,
    RuntimeHub,
    clean_up,
    runtime_settings,
)
from tests.test_supervisor import (
    FakeEngine,
    ServerRuntime,
    go_live,
    live_pids,
    make_platform,
    served,
    space_row,
    spaces_query,
    supervise,
    until,
)

SLEEP_TIME = 2  # seconds, for the fake runtimes
REAL_SLEEP_TIME = 3  # seconds, for the real apps
BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8", "User-Agent": "Mozilla/5.0"}


@pytest.fixture
def platform(tmp_path: Path) -> Platform:
    platform = make_platform(tmp_path, freeze_after=0, default_sleep_time=-1)
    set_sleep_time(platform, SLEEP_TIME)
    return platform


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[FakeEngine]:
    engine = FakeEngine(tmp_path / "instances")
    engine.logs_dir.mkdir()
    yield engine
    engine.kill_all()


def set_sleep_time(platform: Platform, seconds: int) -> None:
    with session_scope(platform.engine) as session:
        space = session.exec(spaces_query()).one()
        space.sleep_time = seconds
        session.add(space)
        session.commit()


def get(url: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.get(url, headers=headers, timeout=30)


async def asleep(platform: Platform, engine: FakeEngine, within: float = SLEEP_TIME + 5) -> None:
    await until(lambda: space_row(platform).stage == Stage.SLEEPING, within, "SLEEPING")
    assert live_pids(engine) == set(), "a sleeping space's instance runs"


def wakes(platform: Platform, tier: str) -> float:
    text = render_metrics(platform).decode()
    line = f'spacehub_wake_duration_seconds_count{{tier="{tier}"}} '
    found = [row for row in text.splitlines() if row.startswith(line)]
    return float(found[0].split()[-1]) if found else 0.0


def test_an_idle_app_is_stopped_and_the_next_request_starts_it_and_gets_its_answer(
    platform, engine
):
    async def scenario(supervisor: Supervisor) -> None:
        url = await proxy(platform)
        await go_live(platform, supervisor, "a" * 40)
        assert (await to_thread.run_sync(get, url)).text == f"release {'a' * 40}"
        await asleep(platform, engine)
        space = space_row(platform)
        assert space.desired_state == desired.RUNNING, "asleep is not paused"
        shown = runtime_json(platform.settings, space)
        assert shown["stage"] == "SLEEPING" and shown["gcTimeout"] == SLEEP_TIME
        assert shown["sleepingSince"].endswith("Z") and shown["sleptSeconds"] >= 0
        assert shown["replicas"]["current"] == 0
        assert platform.routes.by_space("ada", "demo").upstream is None

        answer = await to_thread.run_sync(get, url + "?q=zoë")
        assert (answer.status_code, answer.text) == (200, f"release {'a' * 40}")
        assert len(engine.starts) == 2 and len(live_pids(engine)) == 1
        assert space_row(platform).stage == Stage.RUNNING
        assert not platform.routes.sleeping
        assert wakes(platform, "stopped") == 1
        await asleep(platform, engine)  # and it sleeps again

    supervise(platform, ServerRuntime(engine), scenario)


def test_twenty_requests_at_once_start_a_sleeping_space_once_and_all_get_answers(platform, engine):
    async def scenario(supervisor: Supervisor) -> None:
        url = await proxy(platform)
        await go_live(platform, supervisor, "b" * 40)
        await asleep(platform, engine)

        def twenty() -> list[httpx.Response]:
            with ThreadPoolExecutor(20) as pool:
                return list(pool.map(lambda i: get(f"{url}?n={i}"), range(20)))

        answers = await to_thread.run_sync(twenty)
        assert [a.status_code for a in answers] == [200] * 20
        assert {a.text for a in answers} == {f"release {'b' * 40}"}
        assert len(engine.starts) == 2, "the wake started the app more than once"
        assert wakes(platform, "stopped") == 1

    supervise(platform, ServerRuntime(engine), scenario)


def test_a_browser_gets_a_waking_page_that_refreshes_itself(platform, engine):
    async def scenario(supervisor: Supervisor) -> None:
        url = await proxy(platform)
        await go_live(platform, supervisor, "c" * 40)
        await asleep(platform, engine)
        page = await to_thread.run_sync(get, url, BROWSER)
        assert page.status_code == 503
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["retry-after"] == "2" and page.headers["cache-control"] == "no-store"
        assert '<meta http-equiv="refresh"' in page.text and "ada/demo" in page.text
        assert "waking up" in page.text
        # The page asked for the wake: the app comes up without another request.
        await until(lambda: space_row(platform).stage == Stage.RUNNING, 10, "the wake")
        again = await to_thread.run_sync(get, url, BROWSER)
        assert (again.status_code, again.text) == (200, f"release {'c' * 40}")
        assert len(engine.starts) == 2

    supervise(platform, ServerRuntime(engine), scenario)


def test_a_paused_space_stays_paused_on_a_request(platform, engine):
    async def scenario(supervisor: Supervisor) -> None:
        url = await proxy(platform)
        await go_live(platform, supervisor, "d" * 40)
        await asleep(platform, engine)
        with session_scope(platform.engine) as session:
            desired.want_paused(session, session.exec(spaces_query()).one())
        await supervisor.settle(space_row(platform).id)
        answer = await to_thread.run_sync(get, url)
        assert answer.status_code != 200  # the control plane's (absent here) answer
        await asyncio.sleep(1.5)
        assert space_row(platform).stage == Stage.PAUSED
        assert live_pids(engine) == set() and len(engine.starts) == 1

    supervise(platform, ServerRuntime(engine), scenario)


def test_restart_and_a_new_release_wake_a_sleeping_space_and_leave_it_running(platform, engine):
    async def scenario(supervisor: Supervisor) -> None:
        await go_live(platform, supervisor, "1" * 40)
        await asleep(platform, engine)
        with session_scope(platform.engine) as session:
            desired.want_restart(session, session.exec(spaces_query()).one())
        supervisor.wake()
        await until(lambda: served(platform) == f"release {'1' * 40}", 10, "the restart")
        assert space_row(platform).stage == Stage.RUNNING and not platform.routes.sleeping
        await asleep(platform, engine)
        await go_live(platform, supervisor, "2" * 40)  # what a push's build records
        assert space_row(platform).stage == Stage.RUNNING
        assert len(engine.starts) == 3 and wakes(platform, "stopped") == 0

    supervise(platform, ServerRuntime(engine), scenario)


def test_an_open_stream_keeps_a_space_awake_past_its_sleep_time(platform, engine):
    async def scenario(supervisor: Supervisor) -> None:
        url = await proxy(platform)
        await go_live(platform, supervisor, "e" * 40)

        def listen() -> int:
            ticks = 0
            with httpx.stream("GET", url + "events", timeout=30) as events:
                started = time.monotonic()
                for line in events.iter_lines():
                    ticks += line.startswith("data:")
                    if time.monotonic() - started > SLEEP_TIME * 2.5:
                        break
            return ticks

        ticks = await to_thread.run_sync(listen)
        assert ticks > 5
        assert space_row(platform).stage == Stage.RUNNING, "asleep with a stream open"
        await asleep(platform, engine)  # once the stream is closed

    supervise(platform, ServerRuntime(engine), scenario)


def test_a_frozen_app_is_thawed_then_stopped_at_its_sleep_time(tmp_path, engine):
    platform = make_platform(tmp_path, freeze_after=0.5, default_sleep_time=SLEEP_TIME + 1)
    runtime = FreezingRuntime(engine)

    async def scenario(supervisor: Supervisor) -> None:
        url = await proxy(platform)
        await go_live(platform, supervisor, "f" * 40)
        (pid,) = live_pids(engine)
        await until(lambda: process_state(pid) == "T", 5, "the freeze")
        await asleep(platform, engine)  # the default sleep time: the space never set one
        assert runtime.thaws >= 1, "a frozen app was stopped without a thaw"
        assert (await to_thread.run_sync(get, url)).text == f"release {'f' * 40}"

    supervise(platform, runtime, scenario)


def test_a_new_supervisor_keeps_a_sleeping_space_asleep_and_wakes_it_on_request(platform, engine):
    async def first_life(supervisor: Supervisor) -> None:
        await go_live(platform, supervisor, "9" * 40)
        await asleep(platform, engine)

    supervise(platform, ServerRuntime(engine), first_life)
    platform.routes.sleeping.clear()  # a new process starts with an empty table

    async def second_life(supervisor: Supervisor) -> None:
        url = await proxy(platform)
        await asyncio.sleep(1.5)
        assert space_row(platform).stage == Stage.SLEEPING and live_pids(engine) == set()
        answer = await to_thread.run_sync(get, url)
        assert (answer.status_code, answer.text) == (200, f"release {'9' * 40}")
        assert len(engine.starts) == 2

    supervise(platform, ServerRuntime(engine), second_life)


def test_a_space_that_never_set_a_sleep_time_follows_the_platform_default(tmp_path):
    platform = make_platform(tmp_path, default_sleep_time=7200)
    space = space_row(platform)
    assert space.sleep_time == desired.SLEEP_TIME_UNSET
    assert runtime_json(platform.settings, space)["gcTimeout"] == 7200
    space.sleep_time = desired.NEVER
    assert runtime_json(platform.settings, space)["gcTimeout"] is None
    space.sleep_time = 600
    assert runtime_json(platform.settings, space)["gcTimeout"] == 600


# Real apps from examples/ on a real `spacehub serve`


def real_hub(runtime: str, tmp_path: Path, request: pytest.FixtureRequest) -> RuntimeHub:
    platform = start_platform(tmp_path / "data", **runtime_settings(runtime))
    explain_failure(request.node, "platform log (tail)", lambda: platform.log()[-6000:])
    return RuntimeHub(runtime, platform, tmp_path / "checkouts")


def sleeping_gradio_space(hub: RuntimeHub, name: str) -> str:
    space_id = hub.create(name, "gradio")
    hub.push(space_id, EXAMPLES / "gradio-greet")
    hub.running(space_id)
    assert hub.api.set_space_sleep_time(space_id, REAL_SLEEP_TIME).sleep_time == REAL_SLEEP_TIME
    fall_asleep(hub, space_id)
    return space_id


def fall_asleep(hub: RuntimeHub, space_id: str) -> None:
    wait_for(
        lambda: hub.api.get_space_runtime(space_id).stage == "SLEEPING",
        REAL_SLEEP_TIME + 30,
        f"{space_id} to fall asleep",
    )
    assert hub.instances(space_id) == [], "a sleeping space's app still runs"


def predict(hub: RuntimeHub, space_id: str, name: str, form: str = "path") -> str:
    from gradio_client import Client

    url = hub.path_url(space_id) if form == "path" else hub.subdomain_url(space_id)
    client = Client(url, verbose=False)  # as a user writes it
    try:
        return client.predict(name, api_name="/greet")
    finally:
        client.close()


def restart(hub: RuntimeHub) -> None:
    """Stop `serve` and start it again on the same ports (the apps port too)."""
    platform = hub.platform
    assert platform.stop() == 0, platform.log()[-3000:]
    settings = runtime_settings(hub.runtime, apps_port=str(platform.apps_port))
    platform.process = start_platform(platform.data_dir, port=platform.port, **settings).process


def stopped_wakes(hub: RuntimeHub) -> float:
    with hub.platform.api() as client:
        text = client.get("/metrics").text
    line = 'spacehub_wake_duration_seconds_count{tier="stopped"} '
    found = [row for row in text.splitlines() if row.startswith(line)]
    return float(found[0].split()[-1]) if found else 0.0


@pytest.mark.docker
def test_a_sleeping_docker_gradio_space_wakes_for_a_gradio_client_prediction(
    tmp_path, request, app_hosts_resolve
):
    """In the subdomain form (the local runtime's test below uses both)."""
    hub = real_hub("docker", tmp_path, request)
    try:
        space_id = sleeping_gradio_space(hub, "sleepy-greet")
        runtime = hub.api.get_space_runtime(space_id)
        assert runtime.raw["sleptSeconds"] >= 0 and runtime.sleep_time == REAL_SLEEP_TIME
        importlib.import_module("gradio_client")  # its first import takes seconds: not the wake's
        started = time.monotonic()
        assert predict(hub, space_id, "Zoë", "subdomain") == "Hello Zoë!!"
        print(f"\ndocker: a prediction woke the Gradio space in {time.monotonic() - started:.1f} s")
        assert hub.api.get_space_runtime(space_id).stage == "RUNNING"
        assert len(hub.instances(space_id)) == 1
        assert stopped_wakes(hub) == 1
    finally:
        clean_up("docker", hub.platform, hub.created)


def test_a_sleeping_local_gradio_space_through_restart_crowd_client_browser_and_pause(
    tmp_path, request, app_hosts_resolve
):
    """One real Gradio app on the local runtime, put to sleep again and again."""
    hub = real_hub("local", tmp_path, request)
    try:
        space_id = sleeping_gradio_space(hub, "sleepy-greet-local")

        # A platform restart while it sleeps: still asleep, nothing started.
        restart(hub)
        time.sleep(2)
        assert hub.api.get_space_runtime(space_id).stage == "SLEEPING"
        assert hub.instances(space_id) == []

        # 20 requests at once, in both URL forms: one start, 20 answers.
        def config(index: int) -> httpx.Response:
            form = "path" if index % 2 else "subdomain"
            answer = hub.get(space_id, form, "config")  # 10 s each: the wake must be quicker
            return answer if answer.status_code == 200 else hub.get(space_id, form, "config")

        with ThreadPoolExecutor(20) as pool:
            answers = list(pool.map(config, range(20)))
        assert [a.status_code for a in answers] == [200] * 20
        assert all(a.json()["mode"] == "interface" for a in answers)
        assert len(hub.instances(space_id)) == 1
        assert stopped_wakes(hub) == 1, "the crowd woke the space more than once"

        # A gradio_client prediction wakes it and gets its answer, in both URL forms.
        fall_asleep(hub, space_id)
        assert predict(hub, space_id, "Zoë") == "Hello Zoë!!"
        assert stopped_wakes(hub) == 2
        fall_asleep(hub, space_id)
        assert predict(hub, space_id, "Zoë", "subdomain") == "Hello Zoë!!"
        assert stopped_wakes(hub) == 3

        # A browser gets the waking page, and the app once it answers.
        fall_asleep(hub, space_id)
        page = hub.get(space_id, "path", headers=BROWSER)
        assert page.status_code == 503 and "waking up" in page.text, page.text[:300]
        wait_for(lambda: hub.get(space_id, "path", headers=BROWSER).status_code == 200, 60, "app")

        # Paused while asleep: a request does not wake it.
        fall_asleep(hub, space_id)
        assert hub.api.pause_space(space_id).stage == "PAUSED"
        paused = hub.get(space_id, "subdomain", "config")
        assert paused.status_code == 503 and "is paused" in paused.text, paused.text[:300]
        time.sleep(2)
        assert hub.api.get_space_runtime(space_id).stage == "PAUSED"
        assert hub.instances(space_id) == []
        assert stopped_wakes(hub) == 4
    finally:
        clean_up("local", hub.platform, hub.created)


# On swarm, which cannot freeze, an idle space goes straight to sleep (its service stopped).
@pytest.fixture(scope="module", params=EVERY_RUNTIME)
def streamlit_platform(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RuntimeHub, str]]:
    """One Streamlit space (examples/streamlit-square) per runtime, built once for its tests,
    with the short sleep time."""
    runtime: str = request.param
    registry = request.getfixturevalue("swarm").registry if runtime == "swarm" else None
    root = tmp_path_factory.mktemp(f"sleepy-streamlit-{runtime}")
    platform = start_platform(root / "data", **runtime_settings(runtime, registry))
    hub = RuntimeHub(runtime, platform, root / "checkouts", registry)
    try:
        space_id = hub.create("sleepy-square", "streamlit")
        hub.push(space_id, EXAMPLES / "streamlit-square")
        hub.running(space_id)
        assert hub.api.set_space_sleep_time(space_id, REAL_SLEEP_TIME).sleep_time == REAL_SLEEP_TIME
        yield hub, space_id
    finally:
        clean_up(runtime, platform, hub.created)


@pytest.fixture
def streamlit_hub(
    request: pytest.FixtureRequest, streamlit_platform: tuple[RuntimeHub, str]
) -> tuple[RuntimeHub, str]:
    """The runtime's Streamlit platform; a failing test shows the platform's log."""
    platform = streamlit_platform[0].platform
    explain_failure(request.node, "platform log (tail)", lambda: platform.log()[-6000:])
    return streamlit_platform


def streamlit_tab(url: str):  # type: ignore[no-untyped-def]
    """Open Streamlit's WebSocket as the app's page does (its own Origin); held while asleep."""
    from websockets.sync.client import connect as ws_connect

    origin = url.split("/apps/")[0].rstrip("/")
    stream = url.replace("http://", "ws://") + "_stcore/stream"
    return ws_connect(stream, subprotocols=["streamlit"], origin=origin, open_timeout=90)


def test_an_open_streamlit_tab_keeps_its_space_awake_past_its_sleep_time(streamlit_hub):
    hub, space_id = streamlit_hub
    wait_for(
        lambda: hub.get(space_id, "path", "_stcore/health").text == "ok",
        60,
        "the app to answer (a request wakes it if asleep)",
    )
    with streamlit_tab(hub.path_url(space_id)) as tab:
        assert tab.subprotocol == "streamlit"
        time.sleep(REAL_SLEEP_TIME * 3)  # not a byte sent
        assert hub.api.get_space_runtime(space_id).stage == "RUNNING", "asleep, tab open"
        assert len(hub.instances(space_id)) == 1
    fall_asleep(hub, space_id)


@pytest.mark.parametrize("form", ["path", "subdomain"])
def test_a_streamlit_session_wakes_its_sleeping_space(streamlit_hub, app_hosts_resolve, form):
    """A new tab's WebSocket is held until the app answers, then its session renders."""
    hub, space_id = streamlit_hub
    url = hub.path_url(space_id) if form == "path" else hub.subdomain_url(space_id)
    fall_asleep(hub, space_id)
    wakes = stopped_wakes(hub)
    started = time.monotonic()
    with streamlit_tab(url) as tab:
        assert tab.subprotocol == "streamlit"
        print(f"\n{hub.runtime}: a {form} tab woke Streamlit in {time.monotonic() - started:.1f} s")
    assert hub.api.get_space_runtime(space_id).stage == "RUNNING"
    assert len(hub.instances(space_id)) == 1
    assert stopped_wakes(hub) == wakes + 1
    assert_streamlit_session_renders(url, "squared is 49")

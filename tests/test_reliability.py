"""A platform that stays up: loops that survive faults, and no pushed commit left unbuilt."""

import asyncio
import random
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from sqlmodel import select

from spacehub.platform.context import Platform as PlatformContext
from spacehub.platform.db import migrate, session_scope
from spacehub.platform.loops import LoopHealth, keep_running
from spacehub.platform.models import Build, BuildStatus
from spacehub.platform.services import accounts, builds, spaces
from spacehub.platform.settings import Settings
from spacehub.platform.worker import run_build_worker
from tests.conftest import (
    Platform,
    commit_all,
    git,
    make_checkout,
    push,
    start_platform,
    stop_cleanly,
    wait_for,
)


def test_build_worker_survives_a_database_error_and_builds_afterwards(tmp_path: Path):
    """The database answers errors at first (no schema yet); the worker must not die of it."""
    context = PlatformContext.from_settings(Settings(data_dir=tmp_path / "data"))

    async def scenario() -> BuildStatus:
        stop = asyncio.Event()
        worker = asyncio.create_task(run_build_worker(context, "test:1", stop, "local"))
        await asyncio.sleep(1.5)  # a claim or two fail: no table yet
        assert not worker.done(), "the worker died of a database error"
        await asyncio.to_thread(migrate, context.engine)
        with session_scope(context.engine) as session:
            owner = accounts.create_user(session, "ann")
            space = spaces.create_space(session, owner, "site", sdk="static")
            build = builds.enqueue(session, space, "a" * 40)
            assert build is not None
            build_id = build.id
        context.build_wakeup.set()

        def status() -> BuildStatus:
            with session_scope(context.engine) as session:
                row = session.exec(select(Build).where(Build.id == build_id)).one()
                return row.status

        deadline = time.monotonic() + 30
        while status() in (BuildStatus.QUEUED, BuildStatus.RUNNING):
            assert time.monotonic() < deadline, "the queued build was never taken"
            await asyncio.sleep(0.1)
        stop.set()
        await worker
        return status()

    # The commit is not in any repository: the build is taken and fails, it does not hang.
    assert asyncio.run(scenario()) == BuildStatus.FAILED


def test_a_loop_that_dies_is_logged_restarted_and_shown_in_health(
    caplog: pytest.LogCaptureFixture,
):
    runs: list[float] = []

    async def flaky() -> None:
        runs.append(time.monotonic())
        if len(runs) == 1:
            raise ConnectionError("database went away")
        await stop.wait()

    async def scenario() -> dict[str, LoopHealth]:
        health: dict[str, LoopHealth] = {}
        task = asyncio.create_task(keep_running("flaky", flaky, stop, health))
        while len(runs) < 2:
            await asyncio.sleep(0.05)
        assert health["flaky"].running
        stop.set()
        await task
        return health

    stop = asyncio.Event()
    health = asyncio.run(scenario())
    assert health["flaky"].restarts == 1
    assert "ConnectionError: database went away" in (health["flaky"].last_error or "")
    assert "the flaky loop died" in caplog.text


def test_health_lists_the_platforms_loops_running(platform: Platform):
    answer = httpx.get(f"{platform.url}/api/health", timeout=10)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "ok"
    assert {"build-workers", "supervisor", "unbuilt-heads"} <= set(body["loops"])
    assert all(loop["running"] for loop in body["loops"].values())


def served_index(running: Platform, space_id: str) -> str | None:
    try:
        answer = httpx.get(f"{running.apps_url}/apps/{space_id}/", timeout=5)
    except httpx.HTTPError:
        return None
    return answer.text if answer.status_code == 200 else None


def test_kill_9_at_random_moments_of_pushes_loses_no_commit_and_leaves_none_unbuilt(
    tmp_path: Path,
):
    data = tmp_path / "data"
    running = start_platform(data)
    port = running.port
    space_id = running.create_space("survivor")
    checkout = make_checkout(tmp_path / "site", {"README.md": "---\nsdk: static\n---\n"})
    bare = data / "repos" / "admin" / "survivor.git"
    chance = random.Random(11)
    try:
        for round_number in range(6):
            (checkout / "index.html").write_text(f"<p>round {round_number}</p>\n")
            commit_all(checkout, f"round {round_number}")
            pushing = subprocess.Popen(
                ["git", "push", "--force", running.git_url(space_id), "main"],
                cwd=checkout,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(chance.uniform(0.0, 0.4))
            running.process.send_signal(signal.SIGKILL)
            running.process.wait()
            pushing.wait(60)
            running = start_platform(data, port=port)

            # Whatever the kill interrupted, main is a commit the user made, and it goes live.
            main = git("--git-dir", str(bare), "rev-parse", "main").stdout.strip()
            expected = git("--git-dir", str(bare), "show", "main:index.html", check=False)
            assert main and expected.returncode in (0, 128)
            if expected.returncode == 0:
                wait_for(
                    lambda text=expected.stdout, now=running: served_index(now, space_id) == text,
                    60,
                    f"the commit on main ({main[:12]}) to be built and served",
                )
            built = running.runtime(space_id)
            assert built["stage"] in ("RUNNING", "NO_APP_FILE"), built
        # And a push after all this is not "Everything up-to-date" with an old app live.
        (checkout / "index.html").write_text("<p>final</p>\n")
        commit_all(checkout, "final")
        assert push(running, checkout, space_id, "--force").returncode == 0
        wait_for(lambda: served_index(running, space_id) == "<p>final</p>\n", 60, "final")
    finally:
        stop_cleanly(running)

"""Build workers on PostgreSQL: `serve` builds nothing itself, two `spacehub worker` processes
build. A build stays with a live worker through a restart of `serve`, and goes to the other
worker when its own is killed mid-build (its heartbeat stops)."""

import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.conftest import (
    Platform,
    delete_space,
    make_checkout,
    push,
    start_platform,
    stop_cleanly,
    wait_for,
)
from tests.test_database import database_url  # noqa: F401 (fixture)
from tests.test_docker_spaces import tiny_docker_app

HEARTBEAT = {"SPACEHUB_WORKER_HEARTBEAT": "0.5", "SPACEHUB_WORKER_LAPSE": "3"}
SLOW_STEP_SECONDS = 15  # long enough to restart serve and kill a worker inside it


def start_worker(platform: Platform, log: Path) -> subprocess.Popen:
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "spacehub", "worker", "--runtime", "docker"],
            env={**platform.env, **HEARTBEAT, "SPACEHUB_BUILD_WORKERS": "1"},
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def build_queue(platform: Platform) -> dict:
    with platform.api() as client:
        answer = client.get("/api/admin/builds")
    assert answer.status_code == 200, answer.text
    return answer.json()


def claimed_by(platform: Platform, space_id: str) -> str | None:
    """The worker running the space's build; None when none runs."""
    running = [b for b in build_queue(platform)["builds"] if b["space"] == space_id]
    return running[0]["claimedBy"] if running and running[0]["status"] == "running" else None


@pytest.mark.docker
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_build_stays_with_its_live_worker_and_moves_when_that_worker_is_killed(
    tmp_path: Path,
    database_url: str,  # noqa: F811
) -> None:
    data = tmp_path / "data"
    settings = {"DATABASE_URL": database_url, "BUILD_WORKERS": "0", "RUNTIME": "docker"}
    platform = start_platform(data, extra_env=HEARTBEAT, **settings)
    first = start_worker(platform, tmp_path / "first worker.log")
    second: subprocess.Popen | None = None
    space = platform.create_space("built-elsewhere", sdk="docker")
    try:
        # A step of its own each run: a cached one (an earlier run's) would end the build at once.
        slow_step = f"RUN echo {uuid.uuid4().hex} && sleep {SLOW_STEP_SECONDS}"
        app = tiny_docker_app("Built elsewhere", run=slow_step)
        checkout = make_checkout(tmp_path / "checkout", app, platform.git_url(space))
        assert push(platform, checkout, space).returncode == 0
        worker = wait_for(lambda: claimed_by(platform, space), 60, "a worker to claim the build")
        assert f":{first.pid}:" in worker, worker
        workers = [w["name"] for w in build_queue(platform)["workers"]]
        assert workers == [worker.rpartition(":")[0]], workers  # serve builds nothing

        # A restart of serve leaves a build whose worker is alive where it is.
        stop_cleanly(platform)
        platform = start_platform(data, extra_env=HEARTBEAT, **settings)
        assert claimed_by(platform, space) == worker

        second = start_worker(platform, tmp_path / "second worker.log")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        wait_for(
            lambda: f":{second.pid}:" in (claimed_by(platform, space) or ""),
            30,
            "the second worker to take the build over",
        )
        runtime = platform.wait_stage(space, {"RUNNING", "BUILD_ERROR", "RUNTIME_ERROR"}, 180)
        assert runtime["stage"] == "RUNNING", f"{runtime}\n{platform.log()}"
        assert build_queue(platform)["builds"] == []
    finally:
        for worker in (first, second):
            if worker is not None and worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
                worker.wait(30)
        delete_space(platform, space)  # its container and images: serve's stop leaves them
        stop_cleanly(platform)

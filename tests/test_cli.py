"""The commands of DESIGN.md §3 as a user runs them: serve, worker, base-image."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import (
    EXAMPLES,
    Platform,
    free_port,
    make_checkout,
    push,
    start_platform,
    stop_cleanly,
    wait_for,
)


def test_serve_stops_cleanly_on_sigint(tmp_path: Path) -> None:
    running = start_platform(tmp_path / "data")
    running.process.send_signal(signal.SIGINT)
    assert running.process.wait(30) == 0, running.log()
    assert "spacehub is stopping" in running.log()


def test_first_start_prints_the_admin_token_once_and_stores_it_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("SPACEHUB_")}
    env |= {"SPACEHUB_DATA_DIR": str(data), "SPACEHUB_PORT": str(port)}
    env |= {"SPACEHUB_SSH_PORT": str(free_port())}  # the default 2222 may be taken
    url = f"http://127.0.0.1:{port}"
    outputs = []
    for _ in range(2):
        serve = subprocess.Popen(
            [sys.executable, "-m", "spacehub", "serve"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        wait_for(lambda: httpx.get(f"{url}/api/spaces").status_code == 200, 60, "serve")
        token = (data / "admin-token").read_text().strip()
        whoami = httpx.get(f"{url}/api/whoami-v2", headers={"Authorization": f"Bearer {token}"})
        serve.send_signal(signal.SIGTERM)
        output, _ = serve.communicate(timeout=30)
        assert serve.returncode == 0, output
        assert whoami.json()["name"] == "admin"
        outputs.append(output)
    assert token.startswith("hf_")
    assert (data / "admin-token").stat().st_mode & 0o777 == 0o600
    assert token in outputs[0], outputs[0]
    assert token not in outputs[1], "the token is printed on the first start only"


@pytest.mark.docker
def test_base_image_command_leaves_the_base_image_present() -> None:
    import docker

    result = subprocess.run(
        [sys.executable, "-m", "spacehub", "base-image"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert docker.from_env().images.get("python:3.11-slim").attrs["Config"]["Cmd"]


def test_separate_worker_builds_what_serve_does_not(tmp_path: Path) -> None:
    platform: Platform = start_platform(tmp_path / "data", BUILD_WORKERS="0")
    worker = subprocess.Popen(
        [sys.executable, "-m", "spacehub", "worker"],
        env={**platform.env, "SPACEHUB_BUILD_WORKERS": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        space = platform.create_space("site")
        site = EXAMPLES / "static-site"
        checkout = make_checkout(tmp_path / "site", site, platform.git_url(space))
        assert push(platform, checkout, space).returncode == 0
        platform.wait_stage(space, {"RUNNING"}, timeout=30)
        page = wait_for(
            lambda: (
                (answer := httpx.get(f"{platform.apps_url}/apps/{space}/")).status_code == 200
                and answer.text
            ),
            10,
            "the serving process to route the release the worker rolled out",
        )
        assert "Welcome to your static Space!" in page
    finally:
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=30)
        stop_cleanly(platform)
    assert worker.returncode == 0, output

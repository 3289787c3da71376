"""`spacehub worker` only builds: it makes no runtime, starts no app, and needs no Docker engine
to build venv releases; the `serve` beside it puts what it builds live."""

import concurrent.futures
import contextlib
import json
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from tests.conftest import (
    ADMIN_TOKEN,
    EXAMPLES,
    Platform,
    kill_leftover_apps,
    make_checkout,
    push,
    start_platform,
    stop_cleanly,
    wait_for,
)

BUILD_TIMEOUT = 300  # a cold uv cache downloads Gradio from PyPI


def parent_pids(pid: int) -> list[int]:
    """`pid`'s ancestors, nearest first (from field 4 of /proc/PID/stat)."""
    chain = []
    while pid > 1:
        stat = Path(f"/proc/{pid}/stat").read_text()
        pid = int(stat[stat.rindex(")") + 2 :].split()[1])
        chain.append(pid)
    return chain


def test_worker_without_docker_builds_a_venv_release_that_serve_runs(tmp_path: Path) -> None:
    data = tmp_path / "data"
    platform = start_platform(data, BUILD_WORKERS="0", RUNTIME="local")
    # No Docker engine answers this worker: `auto` must settle on venv releases by itself.
    worker_env = {
        **platform.env,
        "SPACEHUB_BUILD_WORKERS": "1",
        "SPACEHUB_RUNTIME": "auto",
        "DOCKER_HOST": f"unix://{tmp_path}/no-docker-here.sock",
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "spacehub", "worker"],
        env=worker_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        space = platform.create_space("greet-from-a-worker", sdk="gradio")
        checkout = make_checkout(
            tmp_path / "greet checkout", EXAMPLES / "gradio-greet", platform.git_url(space)
        )
        assert push(platform, checkout, space).returncode == 0
        runtime = platform.wait_stage(
            space, {"RUNNING", "BUILD_ERROR", "RUNTIME_ERROR"}, timeout=BUILD_TIMEOUT
        )
        assert runtime["stage"] == "RUNNING", f"{runtime}\n{platform.log()}"
        app = f"{platform.apps_url}/apps/{space}/"
        wait_for(lambda: "gradio_config" in httpx.get(app).text, 30, "the app's page")
        (record,) = [json.loads(path.read_text()) for path in (data / "run" / "local").iterdir()]
        ancestors = parent_pids(record["pid"])
        assert platform.process.pid in ancestors, "serve's supervisor starts the app"
        assert worker.pid not in ancestors, "the worker started an app"
    finally:
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=30)
    try:
        assert worker.returncode == 0, output
        assert "builds local releases" in output, output
        assert "runs no app" in output, output
        # What a runtime says when it is made: a build-only process makes none.
        assert "Runtime:" not in output, output
        assert "bwrap" not in output, output
        # The app is serve's, not the worker's: it answers after the worker is gone.
        assert "gradio_config" in httpx.get(app).text
    finally:
        stop_cleanly(platform)
        kill_leftover_apps(data)


def test_worker_runtime_option_chooses_what_it_builds(tmp_path: Path) -> None:
    """`--runtime local` wins over the environment's `docker`: no engine is asked (there is
    none here), and the static site it builds goes live."""
    platform = start_platform(tmp_path / "data", BUILD_WORKERS="0", RUNTIME="local")
    output_path = tmp_path / "worker output.txt"
    with output_path.open("w") as output_file:
        worker = subprocess.Popen(
            [sys.executable, "-m", "spacehub", "worker", "--runtime", "local"],
            env={
                **platform.env,
                "SPACEHUB_BUILD_WORKERS": "1",
                "SPACEHUB_RUNTIME": "docker",
                "DOCKER_HOST": f"unix://{tmp_path}/no-docker-here.sock",
            },
            stdout=output_file,
            stderr=subprocess.STDOUT,
        )
    try:
        space = platform.create_space("site-from-a-worker")
        checkout = make_checkout(
            tmp_path / "site checkout", EXAMPLES / "static-site", platform.git_url(space)
        )
        assert push(platform, checkout, space).returncode == 0
        assert platform.wait_stage(space, {"RUNNING", "BUILD_ERROR"})["stage"] == "RUNNING"
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
        stop_cleanly(platform)
    output = output_path.read_text()
    assert worker.returncode == 0, output
    assert "builds local releases" in output, output
    assert "Runtime:" not in output, output


# The control plane's event loop also serves every request: a route that writes to the database
# on it, where a write may wait for SQLite's lock (up to its 30 s busy timeout), holds up
# every other request meanwhile, even those that need no database.

LOCK_SECONDS = 3.0


@contextlib.contextmanager
def database_write_locked(data: Path) -> Iterator[None]:
    """Hold SQLite's write lock, as a long write elsewhere (a worker, an admin script) does."""
    connection = sqlite3.connect(data / "spacehub.db", timeout=30, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        yield
    finally:
        connection.execute("ROLLBACK")
        connection.close()


def health_latency(platform: Platform) -> float:
    started = time.monotonic()
    answer = httpx.get(f"{platform.url}/api/health", timeout=LOCK_SECONDS * 3)
    assert answer.status_code == 200, answer.text
    return time.monotonic() - started


def while_waiting_for_the_lock(platform: Platform, call: Callable[[], httpx.Response]) -> float:
    """Seconds /api/health takes while `call` waits for the database's write lock; `call` must
    then succeed once the lock is released."""
    health_latency(platform)  # warm: the first request of a process is slower
    with platform.api() as client:  # the token's use is recorded now, not under the lock
        assert client.get("/api/whoami-v2").status_code == 200
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        with database_write_locked(platform.data_dir):
            waiting = pool.submit(call)
            time.sleep(0.5)  # the call reaches its first write
            assert not waiting.done(), waiting.result().text
            latency = health_latency(platform)
            time.sleep(max(0.0, LOCK_SECONDS - 0.5 - latency))
        answer = waiting.result(timeout=60)
    assert answer.status_code == 200, answer.text
    return latency


def test_api_answers_while_creating_a_space_waits_for_the_database(platform: Platform) -> None:
    def create() -> httpx.Response:
        with platform.api() as client:
            return client.post(
                "/api/repos/create", json={"name": "made-under-lock", "sdk": "static"}
            )

    assert while_waiting_for_the_lock(platform, create) < 1.0
    assert platform.runtime("admin/made-under-lock")["stage"] == "NO_APP_FILE"


def test_api_answers_while_deleting_a_space_waits_for_the_database(platform: Platform) -> None:
    space = platform.create_space("to-delete-under-lock")

    def delete() -> httpx.Response:
        with platform.api() as client:
            return client.request(
                "DELETE", "/api/repos/delete", json={"name": "to-delete-under-lock"}
            )

    assert while_waiting_for_the_lock(platform, delete) < 1.0
    with platform.api() as client:
        assert client.get(f"/api/spaces/{space}").status_code == 404


def test_api_answers_while_a_push_webhook_waits_for_the_database(
    platform: Platform, tmp_path: Path
) -> None:
    space = platform.create_space("pushed-under-lock")
    checkout = make_checkout(
        tmp_path / "site with spaces", EXAMPLES / "static-site", platform.git_url(space)
    )

    def push_site() -> httpx.Response:
        pushed = push(platform, checkout, space)
        # A stand-in answer: the push's own success is what counts.
        return httpx.Response(200 if pushed.returncode == 0 else 500, text=pushed.stderr)

    assert while_waiting_for_the_lock(platform, push_site) < 1.0
    platform.wait_stage(space, {"RUNNING"}, timeout=60)


def test_api_answers_while_duplicating_or_hiding_a_space_waits_for_the_database(
    platform: Platform,
) -> None:
    space = platform.create_space("original-under-lock")

    def duplicate() -> httpx.Response:
        with platform.api() as client:
            return client.post(
                f"/api/spaces/{space}/duplicate", json={"repository": "admin/copy-under-lock"}
            )

    def hide() -> httpx.Response:
        with platform.api() as client:
            return client.put(f"/api/spaces/{space}/settings", json={"private": True})

    assert while_waiting_for_the_lock(platform, duplicate) < 1.0
    assert while_waiting_for_the_lock(platform, hide) < 1.0
    with platform.api(token=None) as anonymous:
        assert anonymous.get(f"/api/spaces/{space}").status_code == 404  # private now
    with platform.api() as client:
        assert client.get("/api/spaces/admin/copy-under-lock").status_code == 200


def test_dashboard_answers_while_saving_a_secret_waits_for_the_database(
    platform: Platform,
) -> None:
    """A settings form of the dashboard writes in a thread, as the API does."""
    space = platform.create_space("secret-under-lock")
    browser = httpx.Client(base_url=platform.url, timeout=60, follow_redirects=True)
    with browser:
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', browser.get("/signin").text)[1]
        browser.post("/signin", data={"csrf_token": csrf, "token": ADMIN_TOKEN})
        page = browser.get(f"/spaces/{space}/settings").text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)[1]

        def save_secret() -> httpx.Response:
            form = {"csrf_token": csrf, "key": "API_KEY", "value": "kept under lock"}
            return browser.post(f"/spaces/{space}/actions/secret", data=form)

        assert while_waiting_for_the_lock(platform, save_secret) < 1.0
    with platform.api() as client:
        secrets = client.get(f"/api/spaces/{space}/secrets").json()
    assert "API_KEY" in str(secrets)

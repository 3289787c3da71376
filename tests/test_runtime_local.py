"""The `local` runtime end to end: pushed Gradio and Streamlit apps run as processes in venvs
made with uv (shared by spaces with the same dependencies), without Docker.

One platform (`--runtime local`) serves the module; builds run one at a time. The first Gradio
build downloads its SDK from PyPI into the uv cache (slow once). What every runtime must do
(Streamlit, crashes, apps that never listen, memory limits, storage, restart/pause/delete,
re-adoption) is in tests/test_runtime_conformance.py; this module keeps what only venvs have.
"""

import hashlib
import json
import os
import shutil
import subprocess
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi

from tests.conftest import (
    ADMIN_TOKEN,
    EXAMPLES,
    Platform,
    commit_all,
    explain_failure,
    free_port,
    kill_leftover_apps,
    make_checkout,
    push,
    readme,
    start_platform,
    stop_cleanly,
    wait_for,
    write_files,
)

BUILD_TIMEOUT = 300  # a cold build downloads Gradio or Streamlit from PyPI
SECRET_VALUE = "l0cal-" + hashlib.sha256(os.urandom(16)).hexdigest()[:24]
FINAL = {"RUNNING", "BUILD_ERROR", "RUNTIME_ERROR", "CONFIG_ERROR", "NO_APP_FILE"}

# A Gradio app with the same dependencies as examples/gradio-greet that reports what it sees:
# its secret (hashed), whether it could write to its folder, and a child process it started.
FACTS_APP = """\
import hashlib, json, os, subprocess, sys
import gradio as gr

with open("written by the app.txt", "w") as note:
    note.write("the app can write to its folder")
marker = os.environ["CHILD_MARKER"]
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)", marker])


def facts(_):
    secret = os.environ.get("LOCAL_SECRET")
    return json.dumps({
        "secret_sha256": secret and hashlib.sha256(secret.encode()).hexdigest(),
        "note": open("written by the app.txt").read(),
        "space_id": os.environ.get("SPACE_ID"),
        "home": os.environ.get("HOME"),
        "sees_platform_db": os.path.exists(os.environ["PLATFORM_DB"]),
    })


gr.Interface(fn=facts, inputs="text", outputs="text").launch()
"""


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The module's platform, in a dict so that the re-adoption test can restart it."""
    data = tmp_path_factory.mktemp("local") / "data"
    running = start_platform(data, RUNTIME="local")
    holder = {"platform": running, "checkouts": tmp_path_factory.mktemp("checkouts")}
    yield holder
    stop_cleanly(holder["platform"])
    kill_leftover_apps(data)


@pytest.fixture
def platform(local: dict, request: pytest.FixtureRequest) -> Platform:
    running: Platform = local["platform"]
    explain_failure(request.node, "spacehub serve log", lambda: running.log()[-6000:])
    return running


def deploy(platform: Platform, checkouts: Path, name: str, files: dict[str, str] | Path) -> str:
    space_id = f"admin/{name}"
    sdk = "streamlit" if "streamlit" in name else "gradio"
    platform.create_space(name, sdk=sdk)
    checkout = make_checkout(checkouts / name, files, clone_url=platform.git_url(space_id))
    result = push(platform, checkout, space_id)
    assert result.returncode == 0, result.stderr
    return space_id


def settle(platform: Platform, space_id: str, timeout: float = BUILD_TIMEOUT) -> dict:
    return platform.wait_stage(space_id, FINAL, timeout)


def path_url(platform: Platform, space_id: str) -> str:
    return f"{platform.apps_url}/apps/{space_id}/"


def venvs(platform: Platform) -> set[str]:
    return {entry.name for entry in (platform.data_dir / "venvs").glob("py*") if entry.is_dir()}


def records_of(platform: Platform, space_id: str) -> list[dict]:
    records = [
        json.loads(path.read_text())
        for path in (platform.data_dir / "run" / "local").glob("*.json")
    ]
    return [record for record in records if record["space_id"] == space_id]


def record_of(platform: Platform, space_id: str) -> dict:
    (record,) = records_of(platform, space_id)
    return record


def predict(url: str, text: str, api_name: str) -> str:
    from gradio_client import Client

    return Client(url, verbose=False).predict(text, api_name=api_name)


def test_pushed_gradio_app_runs_in_a_venv_and_predicts(platform: Platform, local: dict) -> None:
    greet = deploy(platform, local["checkouts"], "greet", EXAMPLES / "gradio-greet")
    runtime = settle(platform, greet)
    assert runtime["stage"] == "RUNNING", runtime
    assert predict(path_url(platform, greet), "Ann", "/greet") == "Hello Ann!!"
    assert len(venvs(platform)) == 1
    api = HfApi(endpoint=platform.url, token=ADMIN_TOKEN)
    build_log = "".join(api.fetch_space_logs(greet, build=True))
    assert "gradio==" in build_log, build_log[-2000:]  # uv's output streams into the build log
    run_log = "".join(api.fetch_space_logs(greet))
    assert "Running on local URL" in run_log, run_log


def test_code_only_push_reuses_the_venv(platform: Platform, local: dict) -> None:
    greet = "admin/greet"
    assert settle(platform, greet)["stage"] == "RUNNING"
    before = venvs(platform)
    checkout = local["checkouts"] / "greet"
    app = (checkout / "app.py").read_text().replace('"Hello "', '"Hi there, "')
    write_files(checkout, {"app.py": app})
    commit = commit_all(checkout, "Friendlier greeting")
    started = time.monotonic()
    assert push(platform, checkout, greet).returncode == 0
    wait_for(
        lambda: (
            platform.runtime(greet)["stage"] in FINAL - {"RUNNING"}
            or (
                platform.runtime(greet)["stage"] == "RUNNING"
                and {record["commit"] for record in records_of(platform, greet)} == {commit}
            )
        ),
        BUILD_TIMEOUT,
        "the new commit to go live",
        interval=0.05,
    )
    elapsed = time.monotonic() - started
    assert platform.runtime(greet)["stage"] == "RUNNING", platform.runtime(greet)
    assert predict(path_url(platform, greet), "Bo", "/greet") == "Hi there, Bo!!"
    assert venvs(platform) == before
    print(f"\ncode-only push -> RUNNING (local runtime): {elapsed:.1f} s")


def test_second_space_with_the_same_deps_shares_the_venv_and_sees_its_secrets(
    platform: Platform, local: dict
) -> None:
    before = venvs(platform)
    marker = f"spacehub-child-{os.urandom(4).hex()}"
    space_id = "admin/facts"
    platform.create_space("facts", sdk="gradio")
    api = HfApi(endpoint=platform.url, token=ADMIN_TOKEN)
    api.add_space_secret(space_id, "LOCAL_SECRET", SECRET_VALUE)
    api.add_space_variable(space_id, "CHILD_MARKER", marker)
    api.add_space_variable(space_id, "PLATFORM_DB", str(platform.data_dir / "spacehub.db"))
    files = {"README.md": readme("Facts", "gradio"), "app.py": FACTS_APP}
    checkout = make_checkout(
        local["checkouts"] / "facts", files, clone_url=platform.git_url(space_id)
    )
    started = time.monotonic()
    assert push(platform, checkout, space_id).returncode == 0
    runtime = settle(platform, space_id)
    elapsed = time.monotonic() - started
    assert runtime["stage"] == "RUNNING", runtime
    assert venvs(platform) == before
    (venv,) = before
    venv_path = platform.data_dir / "venvs" / venv
    by_hand = seconds_to_answer_by_hand(venv_path, EXAMPLES / "gradio-greet")
    print(
        f"\nnew gradio space with known deps: push -> RUNNING {elapsed:.1f} s; "
        f"`python app.py` by hand {by_hand:.1f} s; ratio {elapsed / by_hand:.2f}"
    )
    facts = json.loads(predict(path_url(platform, space_id), "", "/facts"))
    assert facts["secret_sha256"] == hashlib.sha256(SECRET_VALUE.encode()).hexdigest()
    assert facts["note"] == "the app can write to its folder"
    assert facts["space_id"] == space_id
    if shutil.which("bwrap"):
        assert facts["sees_platform_db"] is False, facts
    assert child_processes(marker), "the app's child process runs"

    # Pausing stops the whole process group: the child the app started goes too.
    pid = record_of(platform, space_id)["pid"]
    api.pause_space(space_id)
    wait_for(lambda: not child_processes(marker), 15, "the app's child process to end")
    assert process_gone(pid)


def seconds_to_answer_by_hand(venv: Path, app: Path) -> float:
    """`python app.py` in the same venv, as a user would start it: seconds to its first answer."""
    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1"}
    started = time.monotonic()
    process = subprocess.Popen(
        [str(venv / "bin" / "python"), "app.py"],
        cwd=app,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(
            lambda: httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code, 60, "the app"
        )
        return time.monotonic() - started
    finally:
        process.terminate()
        process.wait(10)


def process_gone(pid: int) -> bool:
    """Ended: no such process, or a zombie its parent (init, after an adoption) has yet to reap."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2] in "ZX"


def child_processes(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def test_missing_debian_package_is_a_build_error_naming_it(platform: Platform, local: dict) -> None:
    files = {
        "README.md": readme("P", "gradio"),
        "app.py": "print('never built')\n",
        "packages.txt": "git\nno-such-package-spacehub\n",
    }
    space_id = deploy(platform, local["checkouts"], "packages", files)
    runtime = settle(platform, space_id)
    assert runtime["stage"] == "BUILD_ERROR", runtime
    assert "no-such-package-spacehub" in runtime["errorMessage"], runtime
    assert "git," not in runtime["errorMessage"], runtime  # installed on the host: fine


def test_unknown_python_version_is_a_build_error_naming_it(local: dict) -> None:
    platform = local["platform"]
    files = {
        "README.md": readme("V", "gradio", python_version='"3.4"'),
        "app.py": textwrap.dedent("print('never built')\n"),
    }
    space_id = deploy(platform, local["checkouts"], "old-python", files)
    runtime = settle(platform, space_id)
    assert runtime["stage"] == "BUILD_ERROR", runtime
    assert "python_version 3.4" in runtime["errorMessage"], runtime

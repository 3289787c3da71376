"""Builds within limits: a time limit, a memory limit and a cancel from the API, each ending the
build with a BUILD_ERROR (or the space back as it was) that says which, on real `spacehub serve`
platforms with the local runtime (uv builds are the cheapest real builds to stop).

The builds that must be stopped install a local package whose setup.py blocks (it sleeps, or
allocates twice the memory limit), as a slow or greedy `pip install` would; it writes its pid so
that the test can check nothing of the build is left running.
"""

import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from spacehub.core.cgroups import cgroup_v1_writable, cgroup_v2_writable
from spacehub.runtime.local import process_start_time
from tests.conftest import (
    EXAMPLES,
    IN_CI,
    Platform,
    add_user,
    commit_all,
    explain_failure,
    kill_leftover_apps,
    make_checkout,
    push,
    readme,
    start_platform,
    stop_cleanly,
    wait_for,
    write_files,
)

TIME_LIMIT = 25  # seconds: the limited platform's build_timeout
MEMORY_LIMIT_MIB = 400  # the limited platform's build_memory
CPU_LIMIT = 0.5  # the limited platform's build_cpus
FIRST_BUILD_TIMEOUT = 300  # a cold build downloads Gradio from PyPI
SETTLED = {"RUNNING", "BUILD_ERROR", "RUNTIME_ERROR", "CONFIG_ERROR", "NO_APP_FILE"}
GREET_APP = (EXAMPLES / "gradio-greet" / "app.py").read_text()
NOTES = "Notes of the space: données d'exemple, ünïcödé and spaces.\n" * 200


def blocking_package(root: Path, name: str, body: str) -> Path:
    """A local package whose setup.py writes its pid to `<root>/<name>.pid`, then runs `body`."""
    package = root / name
    package.mkdir(parents=True)
    pid_file = root / f"{name}.pid"
    setup = f"""\
        import os, time
        from setuptools import setup

        with open({str(pid_file)!r}, "w") as note:
            note.write(str(os.getpid()))
        {body}
        setup(name={name!r}, version="1.0", py_modules=[])
        """
    (package / "setup.py").write_text(textwrap.dedent(setup))
    return package


def sleeping_package(root: Path, name: str) -> Path:
    return blocking_package(root, name, "time.sleep(600)")


def space_files(requirement: Path | None = None) -> dict[str, str]:
    files = {
        "README.md": readme("Limits", "gradio", app_file="app.py"),
        "app.py": GREET_APP,
        "notes/données d'exemple.txt": NOTES,
    }
    if requirement is not None:
        files["requirements.txt"] = f"{requirement.name} @ file://{requirement}\n"
    return files


def pid_of(package: Path) -> int | None:
    pid_file = package.parent / f"{package.name}.pid"
    try:
        return int(pid_file.read_text())
    except (OSError, ValueError):
        return None


def alive(pid: int) -> bool:
    return process_start_time(pid) is not None  # None: gone, or a zombie


def cancel(platform: Platform, space_id: str, token: str | None = None) -> httpx.Response:
    with platform.api(token or platform.token) as client:
        return client.post(f"/api/spaces/{space_id}/builds/cancel")


def build_log(platform: Platform, space_id: str) -> str:
    with platform.api() as client:
        return client.get(f"/api/spaces/{space_id}/logs/build", timeout=30).text


class Spaces:
    """A platform and the checkouts of the spaces pushed to it."""

    def __init__(self, platform: Platform, root: Path) -> None:
        self.platform = platform
        self.root = root

    def create_and_push(self, name: str, files: dict[str, str], sdk: str = "gradio") -> str:
        space_id = self.platform.create_space(name, sdk=sdk)
        checkout = make_checkout(self.root / name, files, self.platform.git_url(space_id))
        result = push(self.platform, checkout, space_id)
        assert result.returncode == 0, result.stderr
        return space_id

    def commit_and_push(self, space_id: str, files: dict[str, str]) -> None:
        checkout = self.root / space_id.split("/")[1]
        write_files(checkout, files)
        commit_all(checkout, "requirements that block")
        result = push(self.platform, checkout, space_id)
        assert result.returncode == 0, result.stderr


def platform_fixture(
    tmp_path_factory: pytest.TempPathFactory, name: str, **settings: str
) -> Iterator[Spaces]:
    data = tmp_path_factory.mktemp(name) / "data"
    running = start_platform(data, RUNTIME="local", **settings)
    yield Spaces(running, tmp_path_factory.mktemp(f"{name}-checkouts"))
    stop_cleanly(running)
    kill_leftover_apps(data)


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Spaces]:
    """Builds may take TIME_LIMIT s, MEMORY_LIMIT_MIB of memory (as "400m") and half a core."""
    yield from platform_fixture(
        tmp_path_factory,
        "limited",
        BUILD_TIMEOUT=f"{TIME_LIMIT}s",
        BUILD_MEMORY=f"{MEMORY_LIMIT_MIB}m",
        BUILD_CPUS=str(CPU_LIMIT),
    )


@pytest.fixture(scope="module")
def serving(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Spaces]:
    """Default limits (a 30 min build time): one build at a time, so a second space queues."""
    yield from platform_fixture(tmp_path_factory, "serving")


@pytest.fixture(autouse=True)
def _explain(request: pytest.FixtureRequest) -> None:
    for name in ("limited", "serving"):
        if name in request.fixturenames:
            spaces: Spaces = request.getfixturevalue(name)
            explain_failure(request.node, f"{name} platform's problems", spaces.platform.problems)


def test_build_over_its_time_limit_ends_build_error_naming_it(
    limited: Spaces, tmp_path: Path
) -> None:
    package = sleeping_package(tmp_path, "sleeps_in_setup")
    pushed = time.monotonic()
    space_id = limited.create_and_push("over-time", space_files(package))

    wait_for(lambda: pid_of(package), TIME_LIMIT, "the build to run the package's setup.py")
    runtime = limited.platform.wait_stage(space_id, SETTLED, TIME_LIMIT + 30)
    took = time.monotonic() - pushed

    assert runtime["stage"] == "BUILD_ERROR", runtime
    assert "time limit of 25 s" in runtime["errorMessage"], runtime
    print(f"a build with a {TIME_LIMIT} s limit ended {took:.1f} s after its push")
    assert took <= TIME_LIMIT + 10, f"the build ended {took:.1f} s after the push"
    pid = pid_of(package)
    assert pid is not None
    wait_for(lambda: not alive(pid), 5, "setup.py to be gone")
    assert "time limit" in build_log(limited.platform, space_id)


def test_build_over_its_memory_limit_ends_build_error_naming_it(
    limited: Spaces, tmp_path: Path
) -> None:
    if not (cgroup_v2_writable() or cgroup_v1_writable()) and not IN_CI:
        pytest.skip("this host lets the platform make no cgroup: build memory is not capped")
    twice = 2 * MEMORY_LIMIT_MIB * 1024 * 1024
    package = blocking_package(
        tmp_path, "needs_memory", f"hoard = b'\\x01' * {twice}\n        time.sleep(600)"
    )
    space_id = limited.create_and_push("over-memory", space_files(package))

    runtime = limited.platform.wait_stage(space_id, SETTLED, TIME_LIMIT + 30)

    assert runtime["stage"] == "BUILD_ERROR", runtime
    assert "memory limit of 400 MiB" in runtime["errorMessage"], runtime
    pid = pid_of(package)
    assert pid is not None, "setup.py never ran"
    assert not alive(pid)


def test_a_build_gets_no_more_than_its_cpu_share(limited: Spaces, tmp_path: Path) -> None:
    if not (cgroup_v2_writable() or cgroup_v1_writable()) and not IN_CI:
        pytest.skip("this host lets the platform make no cgroup: builds are only niced")
    share_file = tmp_path / "share"
    burn = f"""\
started, used = time.time(), time.process_time()
        while time.time() - started < 3:
            pass
        open({str(share_file)!r}, "w").write(str((time.process_time() - used) / 3))
        raise SystemExit("measured its share of a core")"""
    package = blocking_package(tmp_path, "burns_cpu", burn)
    space_id = limited.create_and_push("cpu-share", space_files(package))

    runtime = limited.platform.wait_stage(space_id, SETTLED, TIME_LIMIT + 30)

    assert runtime["stage"] == "BUILD_ERROR", runtime
    share = float(share_file.read_text())
    print(f"a build limited to {CPU_LIMIT} cores kept {share:.2f} of one busy")
    assert share <= CPU_LIMIT + 0.1


def test_cancel_of_a_running_build_keeps_the_old_release_serving(
    serving: Spaces, tmp_path: Path
) -> None:
    platform = serving.platform
    space_id = serving.create_and_push("cancel-running", space_files())
    runtime = platform.wait_stage(space_id, SETTLED, FIRST_BUILD_TIMEOUT)
    assert runtime["stage"] == "RUNNING", runtime
    app = f"{platform.apps_url}/apps/{space_id}/"
    assert httpx.get(app, timeout=30).status_code == 200

    package = sleeping_package(tmp_path, "sleeps_before_cancel")
    serving.commit_and_push(space_id, space_files(package))
    wait_for(lambda: pid_of(package), 120, "the new build to run the package's setup.py")
    assert platform.runtime(space_id)["stage"] == "RUNNING_BUILDING"

    asked = time.monotonic()
    answer = cancel(platform, space_id)
    assert answer.status_code == 200, answer.text
    assert answer.json()["cancelled"] == [answer.json()["id"]]
    wait_for(lambda: "Build cancelled" in build_log(platform, space_id), 10, "the build to end")
    took = time.monotonic() - asked

    runtime = platform.runtime(space_id)
    assert runtime["stage"] == "RUNNING", runtime
    assert "errorMessage" not in runtime
    pid = pid_of(package)
    assert pid is not None
    wait_for(lambda: not alive(pid), 5, "setup.py to be gone")
    assert httpx.get(app, timeout=30).status_code == 200
    print(f"a running build ended {took:.2f} s after its cancel")
    assert took < 5, f"the cancel took {took:.1f} s"
    assert cancel(platform, space_id).status_code == 409


def test_a_cancelled_queued_build_never_starts(serving: Spaces, tmp_path: Path) -> None:
    platform = serving.platform
    package = sleeping_package(tmp_path, "holds_the_worker")
    busy = serving.create_and_push("holds-the-worker", space_files(package))
    wait_for(lambda: pid_of(package), 120, "the first build to run the package's setup.py")
    waiting = serving.create_and_push("waits-in-line", space_files())
    assert platform.runtime(waiting)["stage"] == "BUILDING"

    answer = cancel(platform, waiting)
    assert answer.status_code == 200, answer.text
    runtime = platform.runtime(waiting)
    assert runtime["stage"] == "BUILD_ERROR", runtime
    assert runtime["errorMessage"] == "build cancelled"

    assert cancel(platform, busy).status_code == 200
    runtime = platform.wait_stage(busy, SETTLED, 10)
    assert runtime["stage"] == "BUILD_ERROR", runtime
    assert runtime["errorMessage"] == "build cancelled"
    # The worker is free now: a queued build it had not started would start at once.
    time.sleep(3)
    assert platform.runtime(waiting)["stage"] == "BUILD_ERROR"
    assert "Building" not in build_log(platform, waiting)


def test_cancel_answers_409_with_nothing_to_cancel_and_403_without_write_access(
    serving: Spaces,
) -> None:
    platform = serving.platform
    site = {"README.md": readme("Built", "static"), "index.html": "<h1>Déjà construit</h1>\n"}
    space_id = serving.create_and_push("nothing-to-cancel", site, sdk="static")
    assert platform.wait_stage(space_id, SETTLED, 60)["stage"] == "RUNNING"

    answer = cancel(platform, space_id)
    assert answer.status_code == 409, answer.text
    assert "no build" in answer.json()["error"]

    reader = add_user(platform, "only-reads-builds", role="read")
    assert cancel(platform, space_id, token=reader).status_code in (401, 403)
    assert cancel(platform, "admin/no-such-space").status_code == 404

    with platform.api() as client:
        schema = client.get("/openapi.json").json()
    operation = schema["paths"]["/api/spaces/{owner}/{name}/builds/cancel"]["post"]
    assert "409" in operation["responses"]

"""Real parts through fixtures: a running `spacehub serve`, real git, the real Docker engine."""

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest
from huggingface_hub import HfApi

# The `swarm` fixture (a one-node swarm and a loopback registry) for the tests marked swarm.
pytest_plugins = ("tests.swarm_cluster",)
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
IN_CI = os.environ.get("CI") == "true"
ADMIN_TOKEN = "hf_testadmintokenXXXXXXXXXXXXXXXXXXXX"
SETTLED_STAGES = {"RUNNING", "BUILD_ERROR", "RUNTIME_ERROR", "CONFIG_ERROR", "NO_APP_FILE"}


def docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=5).ping()
    except Exception:
        return False
    return True


def docker_engine_header() -> str:
    """Which Docker engine this run talks to (scripts/test runs the Docker tests on two)."""
    where = os.environ.get("DOCKER_HOST", "the default socket")
    try:
        import docker

        version = docker.from_env(timeout=5).version()
    except Exception as error:
        return f"docker engine: none answers at {where} ({error.__class__.__name__})"
    return f"docker engine: {version['Version']} (API {version['ApiVersion']}) at {where}"


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [docker_engine_header()]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Outside CI, tests that need Docker are skipped when no engine answers; in CI they fail."""
    needs_docker = [item for item in items if item.get_closest_marker("docker")]
    if IN_CI or not needs_docker or docker_answers():
        return
    for item in needs_docker:
        item.add_marker(pytest.mark.skip(reason="no Docker engine answers"))


CHROMIUM = Path(os.environ.get("SPACEHUB_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Debian's Chromium driven by Playwright; missing: a skip, or a failure when CI=true."""
    if not CHROMIUM.exists():
        message = f"no Chromium at {CHROMIUM}: scripts/test installs Debian's chromium package"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


FAILURE_NOTES = pytest.StashKey[list[tuple[str, Callable[[], str]]]]()


def explain_failure(item: pytest.Item, title: str, explain: Callable[[], str]) -> None:
    """On a failure of `item`, add `explain()` (a log, an inspect output) to its report."""
    item.stash.setdefault(FAILURE_NOTES, []).append((title, explain))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if report.failed and report.when in ("setup", "call"):
        for title, explain in item.stash.get(FAILURE_NOTES, []):
            try:
                text = explain()
            except Exception as error:  # explaining must not hide the failure itself
                text = f"(could not be read: {error!r})"
            report.sections.append((title, text))


@pytest.fixture(autouse=True)
def _docker_is_required_in_ci(request: pytest.FixtureRequest) -> None:
    if IN_CI and request.node.get_closest_marker("docker") and not docker_answers():
        pytest.fail("CI=true and no Docker engine answers: tests marked docker must run in CI")


@pytest.fixture(scope="session")
def docker_engine():  # type: ignore[no-untyped-def]
    """A client of the Docker engine; without one: a skip, or a failure when CI=true."""
    import docker

    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except docker.errors.DockerException as error:
        if IN_CI:
            pytest.fail(f"CI=true needs a Docker engine: {error}")
        pytest.skip(f"no Docker engine answers: {error}")
    return client


def remove_labelled_docker_objects(client, label: str) -> None:  # type: ignore[no-untyped-def]
    """Remove the containers, images and volumes a test left on the engine with `label`.

    Images go by tag first: removing a parent by id while a child image exists is refused.
    """
    import docker.errors

    found = {"label": label}
    for container in client.containers.list(all=True, filters=found):
        container.remove(force=True, v=True)
    for image in client.images.list(filters=found):
        for ref in image.tags or [image.id]:
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                client.images.remove(ref, force=True)
    for volume in client.volumes.list(filters=found):
        volume.remove(force=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(check: Callable[[], object], timeout: float, what: str, interval: float = 0.1):
    """Poll `check` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as error:  # the thing polled may not be up yet
            last_error = error
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout:.0f} s waiting for {what} (last error: {last_error})"
    )


LOG_RECORD = re.compile(r"\d{4}-\d\d-\d\d [\d:,]+ (?P<level>[A-Z]+) ")


@dataclass
class Platform:
    """A running `spacehub serve` in a subprocess."""

    url: str
    port: int
    data_dir: Path
    process: subprocess.Popen
    log_path: Path
    token: str = ADMIN_TOKEN
    env: dict[str, str] = field(default_factory=dict)
    apps_port: int = 0  # 0: the default, port + 1
    ca: Path | None = None  # the CA of the certificate a platform with TLS answers with

    @property
    def scheme(self) -> str:
        return "https" if self.ca else "http"

    @property
    def apps_url(self) -> str:
        """The apps origin: the path form of apps answers there, never on `url`."""
        return f"{self.scheme}://localhost:{self.apps_port or self.port + 1}"

    def api(self, token: str | None = ADMIN_TOKEN, timeout: float = 30) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout, verify=self.verify)

    @property
    def verify(self) -> ssl.SSLContext | bool:
        return ssl.create_default_context(cafile=self.ca) if self.ca else True

    def git_url(self, space_id: str, token: str | None = ADMIN_TOKEN) -> str:
        credentials = f"user:{token}@" if token else ""
        return f"{self.scheme}://{credentials}127.0.0.1:{self.port}/spaces/{space_id}"

    def create_space(
        self, name: str, sdk: str = "static", private: bool = False, token: str = ADMIN_TOKEN
    ) -> str:
        """Create `name` or `owner/name` (an org or the token's user); return its id."""
        owner, _, short = name.rpartition("/")
        body = {"name": short, "type": "space", "sdk": sdk, "private": private}
        with self.api(token) as client:
            answer = client.post("/api/repos/create", json={**body, "organization": owner or None})
        assert answer.status_code == 200, answer.text
        return name if owner else f"admin/{name}"

    def runtime(self, space_id: str) -> dict:
        with self.api() as client:
            answer = client.get(f"/api/spaces/{space_id}/runtime")
        assert answer.status_code == 200, answer.text
        return answer.json()

    def wait_stage(self, space_id: str, stages: set[str], timeout: float = 60) -> dict:
        return wait_for(
            lambda: (runtime := self.runtime(space_id))["stage"] in stages and runtime,
            timeout,
            f"{space_id} to reach {stages}",
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def problems(self) -> str:
        """The log's warnings and errors with their tracebacks: what explains a failure."""
        kept, in_problem = [], False
        for line in self.log().splitlines():
            record = LOG_RECORD.match(line)
            if record is not None:
                in_problem = record["level"] in ("WARNING", "ERROR", "CRITICAL")
            if in_problem:
                kept.append(line)
        return "\n".join(kept) or "(no warnings or errors)"

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_platform(
    data_dir: Path,
    port: int | None = None,
    extra_env: dict[str, str] | None = None,
    ca: Path | None = None,
    **settings: str,
) -> Platform:
    """`spacehub serve` with `settings` (SPACEHUB_<NAME>); `ca`: it answers with TLS
    (tls_cert, tls_key) and a certificate signed by that CA."""
    port = port or free_port()
    apps_port = int(settings.pop("apps_port", 0)) or free_port()
    env = {
        **os.environ,
        **(extra_env or {}),
        "SPACEHUB_DATA_DIR": str(data_dir),
        "SPACEHUB_PORT": str(port),
        "SPACEHUB_APPS_PORT": str(apps_port),  # parallel platforms never share port + 1
        "SPACEHUB_SSH_PORT": str(free_port()),  # parallel platforms never share 2222
        "SPACEHUB_ADMIN_TOKEN": ADMIN_TOKEN,
        # Apps a test leaves idle for a minute are not frozen under it (a paused container is
        # not "running"); tests/test_freeze.py and test_sleep.py set their own.
        "SPACEHUB_FREEZE_AFTER": "0",
        **{f"SPACEHUB_{key.upper()}": value for key, value in settings.items()},
    }
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "serve.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "spacehub", "serve"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    platform = Platform(
        url=f"{'https' if ca else 'http'}://127.0.0.1:{port}",
        port=port,
        data_dir=data_dir,
        process=process,
        log_path=log_path,
        env=env,
        apps_port=apps_port,
        ca=ca,
    )

    def up() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"spacehub serve exited:\n{platform.log()}")
        with platform.api(token=None, timeout=2) as client:
            return client.get("/api/spaces").status_code == 200

    wait_for(up, 60, "spacehub serve to answer")
    return platform


def stop_cleanly(running: Platform) -> None:
    code = running.stop()
    assert code == 0, f"spacehub serve did not stop cleanly (exit {code}):\n{running.log()}"


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    running = start_platform(tmp_path / "data")
    yield running
    stop_cleanly(running)


@pytest.fixture(scope="module")
def shared_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """One `spacehub serve` for a module's tests that use distinct spaces and users."""
    running = start_platform(tmp_path_factory.mktemp("shared") / "data")
    yield running
    stop_cleanly(running)


def add_user(
    platform: Platform,
    name: str,
    role: str = "write",
    orgs: tuple[str, ...] = (),
    *,
    token: str | None = None,
    fullnames: dict[str, str] | None = None,
) -> str:
    """Create a user (member of `orgs`, created when missing) in the platform's database.

    Returns a new token of `role` ("read" or "write"), or `token` itself when given.
    `fullnames` gives display names to the user and to orgs it creates, by name.
    There is no user-admin API yet.
    """
    from sqlmodel import select

    from spacehub.platform.db import make_engine, session_scope
    from spacehub.platform.models import TokenRole, User
    from spacehub.platform.services import accounts

    fullnames = fullnames or {}
    engine = make_engine(f"sqlite:///{(platform.data_dir / 'spacehub.db').resolve()}")
    try:
        with session_scope(engine) as session:
            user = accounts.create_user(session, name, fullname=fullnames.get(name, ""))
            for org_name in orgs:
                org = session.exec(select(User).where(User.name == org_name)).first()
                org = org or accounts.create_user(
                    session, org_name, fullname=fullnames.get(org_name, ""), is_org=True
                )
                accounts.add_member(session, org, user)
            return accounts.create_token(
                session, user, TokenRole(role), f"{name}-{role}", value=token
            )
    finally:
        engine.dispose()


def git(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
    }
    result = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def make_checkout(
    directory: Path, files: dict[str, str] | Path, clone_url: str | None = None
) -> Path:
    """A local repository on `main` with `files` (a mapping, or a folder to copy) committed.

    With `clone_url` (a space's `git_url`) it is a clone of that space: a new space already
    has a first commit (README.md, .gitattributes), so a push must build on it, as on the Hub.
    """
    if clone_url is not None:
        git("clone", "--quiet", clone_url, str(directory))
    else:
        directory.mkdir(parents=True, exist_ok=True)
        git("init", "--quiet", "--initial-branch=main", cwd=directory)
    if isinstance(files, Path):
        shutil.copytree(files, directory, dirs_exist_ok=True)
    else:
        write_files(directory, files)
    git("add", "-A", cwd=directory)
    git("commit", "--quiet", "-m", "first", cwd=directory)
    return directory


def write_files(directory: Path, files: dict[str, str]) -> None:
    for name, content in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


def commit_all(directory: Path, message: str) -> str:
    git("add", "-A", cwd=directory)
    git("commit", "--quiet", "--allow-empty", "-m", message, cwd=directory)
    return git("rev-parse", "HEAD", cwd=directory).stdout.strip()


def push(platform: Platform, directory: Path, space_id: str, *extra: str, token: str = ADMIN_TOKEN):
    return git(
        "push", *extra, platform.git_url(space_id, token), "main", cwd=directory, check=False
    )


@pytest.fixture(scope="module")
def app_hosts_resolve() -> Iterator[None]:
    """Resolve `*.localhost` to loopback in this process, as Chromium does by itself."""
    original = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):  # type: ignore[no-untyped-def]
        if isinstance(host, str) and host.endswith(".localhost"):
            host = "127.0.0.1"
        return original(host, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo
    yield
    socket.getaddrinfo = original


def assert_page_and_its_script_load(client: httpx.Client, url: str) -> str:
    """Fetch the page and the first script it names relative to itself, as a browser would."""
    page = client.get(url)
    assert page.status_code == 200
    scripts = re.findall(r'src="(\./[^"]+\.js)"', page.text)
    assert scripts, "the page names its scripts relative to itself"
    assert client.get(urljoin(url, scripts[0])).status_code == 200
    return page.text


def assert_streamlit_session_renders(url: str, expected: str) -> None:
    """Open Streamlit's WebSocket under the app `url` as a browser would, rerun, see `expected`.

    The app checks Origin against Host: a foreign Origin is refused with 403, the page's own is
    accepted, so the proxy must pass Host as the browser sent it.
    """
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect as ws_connect

    origin = url.split("/apps/")[0].rstrip("/")
    stream = urljoin(url, "_stcore/stream").replace("http://", "ws://")
    with pytest.raises(InvalidStatus) as refused:
        ws_connect(stream, subprotocols=["streamlit"], origin="http://elsewhere.example")
    assert refused.value.response.status_code == 403
    with ws_connect(stream, subprotocols=["streamlit"], origin=origin) as ws:
        assert ws.subprotocol == "streamlit"
        rerun = BackMsg()
        rerun.rerun_script.query_string = ""
        rerun.rerun_script.page_script_hash = ""
        ws.send(rerun.SerializeToString())
        texts: list[str] = []
        deadline = time.monotonic() + 20
        while not any(expected in text for text in texts):
            assert time.monotonic() < deadline, f"no rendered result; got {texts}"
            message = ForwardMsg()
            message.ParseFromString(ws.recv(timeout=20))
            if message.WhichOneof("type") == "delta":
                texts.append(str(message.delta))


def readme(title: str, sdk: str, **extra: str) -> str:
    """A space's README.md: its front matter only."""
    lines = [f"title: {title}", f"sdk: {sdk}", *(f"{key}: {value}" for key, value in extra.items())]
    return "---\n" + "\n".join(lines) + "\n---\n"


def delete_space(platform: Platform, space_id: str) -> None:
    with platform.api() as client:
        client.request(
            "DELETE", "/api/repos/delete", json={"name": space_id.split("/")[1], "type": "space"}
        )


def kill_leftover_apps(data: Path) -> None:
    """Local-runtime apps outlive their platform by design: end the ones `data` records."""
    for record in (data / "run" / "local").glob("*.json"):
        pid = json.loads(record.read_text())["pid"]
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)


class Hub:
    """A module's platform and the spaces pushed to it, through git and the Hub's API."""

    def __init__(self, platform: Platform, checkouts: Path, build_timeout: float = 240) -> None:
        self.platform = platform
        self.checkouts = checkouts
        self.build_timeout = build_timeout
        self.created: list[str] = []
        self.api = HfApi(endpoint=platform.url, token=ADMIN_TOKEN)

    def create(self, name: str, sdk: str, private: bool = False) -> str:
        space_id = self.platform.create_space(name, sdk=sdk, private=private)
        self.created.append(space_id)
        return space_id

    def push(self, space_id: str, files: dict[str, str] | Path | None = None) -> float:
        """Push the checkout (made from `files` the first time); return when the push ended."""
        checkout = self.checkouts / space_id.split("/")[1]
        if not checkout.exists():
            assert files is not None
            make_checkout(checkout, files, self.platform.git_url(space_id))
        result = push(self.platform, checkout, space_id)
        assert result.returncode == 0, result.stderr
        return time.monotonic()

    def commit_and_push(self, space_id: str, files: dict[str, str], message: str) -> float:
        checkout = self.checkouts / space_id.split("/")[1]
        write_files(checkout, files)
        commit_all(checkout, message)
        return self.push(space_id)

    def running(self, space_id: str, timeout: float | None = None) -> dict:
        runtime = self.platform.wait_stage(
            space_id, SETTLED_STAGES, self.build_timeout if timeout is None else timeout
        )
        assert runtime["stage"] == "RUNNING", runtime
        return runtime

    def settled(self) -> None:
        """Wait until no space of the module is queued, building or starting."""
        busy = {"BUILDING", "APP_STARTING", "RUNNING_BUILDING", "RUNNING_APP_STARTING"}
        wait_for(
            lambda: all(self.platform.runtime(s)["stage"] not in busy for s in self.created),
            self.build_timeout * 2,
            "every build to end",
        )

    def build_timeline(self, space_id: str) -> str:
        """Seconds from the start of the latest build to its release, and to the app being live."""
        with self.platform.api() as client:
            text = client.get(f"/api/spaces/{space_id}/logs/build", timeout=60).text
        events = [
            json.loads(line[len("data: ") :])
            for line in text.splitlines()
            if line.startswith("data: {")
        ]
        if not events:
            return "no build"

        def at(event: dict) -> float:
            return datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()

        start = at(events[0])
        marks = {e["data"].strip(): at(e) - start for e in events}
        built = marks.get("Build finished; starting the app")
        live = marks.get("Live")
        return f"release {built:.1f} s, live {live:.1f} s" if built and live else "did not go live"

    def path_url(self, space_id: str) -> str:
        return f"{self.platform.apps_url}/apps/{space_id}/"

    def subdomain_url(self, space_id: str) -> str:
        owner, name = space_id.split("/")
        return f"http://{owner}-{name}.localhost:{self.platform.port}/"

    def get(
        self, space_id: str, form: str, path: str = "", headers: dict[str, str] | None = None
    ) -> httpx.Response:
        """GET through the proxy in one URL form (the subdomain form by its Host header)."""
        headers = dict(headers or {})
        if form == "path":
            return httpx.get(self.path_url(space_id) + path, headers=headers, timeout=10)
        owner, name = space_id.split("/")
        headers["Host"] = f"{owner}-{name}.localhost:{self.platform.port}"
        return httpx.get(f"{self.platform.url}/{path}", headers=headers, timeout=10)

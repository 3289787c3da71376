"""One conformance suite for every runtime: the same scenarios on `docker`, `local` and `swarm`.

Each runtime gets one `spacehub serve` for the module (RUNTIME=docker, local or swarm), and
every space is pushed once when it starts, so the Gradio and Streamlit builds are shared by
the scenarios. The sample spaces are folders under tests/apps/ (see its README.md) beside
the examples users push. Tests go through the platform's HTTP API and git only; what each
runtime keeps (containers, services, process records) is looked at only to check nothing is
left over. `swarm` runs on a one-node swarm with a loopback registry (tests/swarm_cluster.py),
in the Docker 26 pass of scripts/test only.
"""

import contextlib
import hashlib
import json
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from spacehub.platform.instance_id import INSTANCE_ID_FILE
from tests.conftest import (
    EXAMPLES,
    Hub,
    Platform,
    assert_page_and_its_script_load,
    assert_streamlit_session_renders,
    delete_space,
    explain_failure,
    kill_leftover_apps,
    make_checkout,
    push,
    remove_labelled_docker_objects,
    start_platform,
    wait_for,
)

APPS = Path(__file__).resolve().parent / "apps"
BUILD_TIMEOUT = 300  # a cold cache downloads Gradio or Streamlit from PyPI once
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
DOCKER_LABEL = "spacehub.space"
PLATFORM_LABEL = "spacehub.platform"
MAX_RESTARTS = 2
SECRET_VALUE = "cf-" + hashlib.sha256(os.urandom(16)).hexdigest()[:24]

# name -> (sdk, files): pushed once per runtime, in this order, when the module's platform starts.
SPACES: dict[str, tuple[str, Path]] = {
    "cf-greet": ("gradio", EXAMPLES / "gradio-greet"),
    "cf-square": ("streamlit", EXAMPLES / "streamlit-square"),
    "cf-fastapi": ("docker", EXAMPLES / "docker-fastapi"),
    "cf-secrets": ("gradio", APPS / "facts"),
    "cf-store": ("gradio", APPS / "facts"),
    "cf-crash": ("gradio", APPS / "facts"),
    "cf-life": ("gradio", APPS / "facts"),
    "cf-mute": ("gradio", APPS / "never-listens"),
}


class RuntimeHub(Hub):
    """A platform on one runtime, and what that runtime keeps for a space."""

    def __init__(
        self, runtime: str, platform: Platform, checkouts: Path, registry: str | None = None
    ) -> None:
        super().__init__(platform, checkouts, BUILD_TIMEOUT)
        self.runtime = runtime
        self.registry = registry

    def settings(self, **extra: str) -> dict[str, str]:
        return runtime_settings(self.runtime, self.registry, **extra)

    def instances(self, space_id: str) -> list[str]:
        """Ids of the space's live instances: running containers or services, or live local
        processes."""
        if self.runtime == "docker":
            return [container.id for container in containers_of(self.platform, space_id)]
        if self.runtime == "swarm":
            return [service["ID"] for service in services_of(self.platform, space_id)]
        return [str(record["pid"]) for record in local_records(self.platform, space_id)]

    def remove_instances(self, space_id: str) -> None:
        """Make the space's instances vanish behind the platform's back."""
        if self.runtime == "docker":
            for container in containers_of(self.platform, space_id, every=True):
                container.remove(force=True)
            return
        if self.runtime == "swarm":
            for service in services_of(self.platform, space_id, every=True):
                docker_client().api.remove_service(service["ID"])
            return
        for record in local_records(self.platform, space_id):
            os.killpg(record["pid"], signal.SIGKILL)

    def restart_platform(self) -> None:
        assert self.platform.stop() == 0, self.platform.log()[-3000:]
        again = start_platform(
            self.platform.data_dir,
            port=self.platform.port,
            apps_port=str(self.platform.apps_port),
            **self.settings(),
        )
        self.platform.process = again.process

    def facts(self, space_id: str, form: str = "path") -> dict:
        answer = self.get(space_id, form)
        assert answer.status_code == 200, answer.text
        return answer.json()


def runtime_settings(runtime: str, registry: str | None = None, **extra: str) -> dict[str, str]:
    settings = {"runtime": runtime, "max_restarts": str(MAX_RESTARTS), **extra}
    if runtime in ("docker", "swarm"):
        settings["build_ca_bundle"] = CA_BUNDLE
    if registry is not None:
        settings["registry"] = registry
    return settings


def docker_client():  # type: ignore[no-untyped-def]
    import docker

    return docker.from_env(timeout=60)


def platform_labels(platform: Platform, space_id: str) -> list[str]:
    """Labels of the space's Docker objects of this platform (not another run's on the engine)."""
    platform_id = (platform.data_dir / INSTANCE_ID_FILE).read_text().strip()
    return [f"{DOCKER_LABEL}={space_id}", f"{PLATFORM_LABEL}={platform_id}"]


def containers_of(platform: Platform, space_id: str, every: bool = False) -> list:
    """The space's containers of this platform (running ones unless `every`)."""
    client = docker_client()
    found = client.containers.list(
        all=every, filters={"label": platform_labels(platform, space_id)}
    )
    client.close()
    return found


def services_of(platform: Platform, space_id: str, every: bool = False) -> list[dict]:
    """The space's Swarm services of this platform (those with a running task unless `every`)."""
    client = docker_client()
    services = client.api.services(filters={"label": platform_labels(platform, space_id)})
    found = [
        service
        for service in services
        if every
        or any(
            task["Status"]["State"] == "running"
            for task in client.api.tasks(filters={"service": service["ID"]})
        )
    ]
    client.close()
    return found


def local_records(platform: Platform, space_id: str) -> list[dict]:
    """The local runtime's records of the space whose process is alive (zombies excluded)."""
    records = [
        json.loads(path.read_text())
        for path in (platform.data_dir / "run" / "local").glob("*.json")
    ]
    return [r for r in records if r["space_id"] == space_id and process_alive(r["pid"])]


def process_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def clean_up(runtime: str, platform: Platform, space_ids: list[str]) -> None:
    for space_id in space_ids:
        delete_space(platform, space_id)
    code = platform.stop()
    if runtime in ("docker", "swarm"):
        client = docker_client()
        for space_id in space_ids:
            if runtime == "swarm":  # only a swarm manager lists services
                label = {"label": f"{DOCKER_LABEL}={space_id}"}
                for service in client.api.services(filters=label):
                    client.api.remove_service(service["ID"])
            remove_labelled_docker_objects(client, f"{DOCKER_LABEL}={space_id}")
    else:
        kill_leftover_apps(platform.data_dir)
    assert code == 0, f"spacehub serve did not stop cleanly (exit {code})"


# Every runtime, marked with what it needs; test_sleep's real spaces run on the same ones.
EVERY_RUNTIME = [
    pytest.param("docker", marks=pytest.mark.docker),
    "local",
    pytest.param("swarm", marks=[pytest.mark.docker, pytest.mark.swarm]),
]


@pytest.fixture(scope="module", params=EVERY_RUNTIME)
def runtime_platform(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RuntimeHub]:
    """`spacehub serve` on one runtime, every sample space pushed to it once."""
    runtime: str = request.param
    registry = request.getfixturevalue("swarm").registry if runtime == "swarm" else None
    root = tmp_path_factory.mktemp(f"conformance-{runtime}")
    platform = start_platform(root / "data", **runtime_settings(runtime, registry))
    hub = RuntimeHub(runtime, platform, root / "checkouts", registry)
    try:
        for name, (sdk, files) in SPACES.items():
            space_id = hub.create(name, sdk)
            if name == "cf-secrets":
                hub.api.add_space_secret(space_id, "CF_SECRET", SECRET_VALUE)
                hub.api.add_space_variable(space_id, "CF_VAR", "plain value ✓")
            if name == "cf-store":
                with platform.api() as client:
                    answer = client.post(f"/api/spaces/{space_id}/storage", json={"tier": "small"})
                assert answer.json()["storage"] == "small", answer.text
            hub.push(space_id, files)
        yield hub
        print(f"\n{runtime} build times (latest build of each space):")
        for space_id in hub.created:
            print(f"  {space_id}: {hub.build_timeline(space_id)}")
    finally:
        clean_up(runtime, hub.platform, hub.created)


@pytest.fixture
def hub(request: pytest.FixtureRequest, runtime_platform: RuntimeHub) -> RuntimeHub:
    """The runtime's platform; a failing test shows the platform's log."""
    explain_failure(
        request.node, "platform log (tail)", lambda: runtime_platform.platform.log()[-6000:]
    )
    return runtime_platform


def test_gradio_app_predicts_through_both_url_forms(hub: RuntimeHub, app_hosts_resolve) -> None:
    from gradio_client import Client

    greet = "admin/cf-greet"
    hub.running(greet)
    for url in (hub.path_url(greet), hub.subdomain_url(greet)):
        assert Client(url, verbose=False).predict("Zoë Ann", api_name="/greet") == "Hello Zoë Ann!!"
    run_log = "".join(hub.api.fetch_space_logs(greet, build=False))
    assert "Running on local URL" in run_log, run_log


@pytest.mark.parametrize("form", ["path", "subdomain"])
def test_streamlit_app_serves_its_page_and_a_live_session(
    hub: RuntimeHub, app_hosts_resolve, form: str
) -> None:
    square = "admin/cf-square"
    hub.running(square)
    url = hub.path_url(square) if form == "path" else hub.subdomain_url(square)
    with httpx.Client(timeout=10) as client:
        assert "<title>Streamlit</title>" in assert_page_and_its_script_load(client, url)
    assert_streamlit_session_renders(url, "squared is 49")


def test_docker_sdk_space_answers_where_the_runtime_runs_containers(hub: RuntimeHub) -> None:
    fastapi = "admin/cf-fastapi"
    if hub.runtime == "local":
        runtime = hub.platform.wait_stage(fastapi, {"BUILD_ERROR"}, BUILD_TIMEOUT)
        assert "docker spaces need the Docker runtime" in runtime["errorMessage"], runtime
        return
    hub.running(fastapi)
    for form in ("path", "subdomain"):
        answer = hub.get(fastapi, form)
        assert (answer.status_code, answer.json()) == (200, {"Hello": "World!"}), form


def test_secrets_and_variables_reach_the_app_but_no_log_or_api_answer(hub: RuntimeHub) -> None:
    space_id = "admin/cf-secrets"
    hub.running(space_id)
    facts = hub.facts(space_id, "subdomain")
    assert facts["secret_sha256"] == hashlib.sha256(SECRET_VALUE.encode()).hexdigest()
    env = facts["env"]
    assert env["CF_VAR"] == "plain value ✓"
    assert (env["SPACE_ID"], env["SYSTEM"]) == (space_id, "spaces")
    assert (env["SPACE_AUTHOR_NAME"], env["SPACE_REPO_NAME"]) == ("admin", "cf-secrets")
    assert env["SPACE_HOST"] == "admin-cf-secrets.localhost"
    with hub.platform.api() as client:
        answers = [
            client.get(f"/api/spaces/{space_id}").text,
            client.get(f"/api/spaces/{space_id}/runtime").text,
            client.get(f"/api/spaces/{space_id}/secrets").text,
            client.get("/api/spaces", params={"full": "true"}).text,
        ]
    assert "CF_SECRET" in answers[2]
    logs = [
        "".join(hub.api.fetch_space_logs(space_id, build=True)),
        "".join(hub.api.fetch_space_logs(space_id, build=False)),
        hub.platform.log(),
    ]
    for text in answers + logs:
        assert SECRET_VALUE not in text


def test_storage_keeps_the_apps_files_across_restarts(hub: RuntimeHub) -> None:
    store = "admin/cf-store"
    hub.running(store)
    first = hub.facts(store)
    assert first["starts"] == 1, "the app wrote its first start to its storage"
    hub.api.restart_space(store)
    wait_for(
        lambda: (facts := hub.facts(store))["boot"] != first["boot"] and facts["starts"] == 2,
        60,
        "the restarted app to find its first start's line in storage",
    )


def test_app_that_crashes_is_restarted_then_runtime_error_with_its_last_lines(
    hub: RuntimeHub,
) -> None:
    crash = "admin/cf-crash"
    hub.running(crash)
    boots = [hub.facts(crash)["boot"]]
    for _ in range(MAX_RESTARTS + 1):
        with contextlib.suppress(httpx.HTTPError):  # the app ends inside the request
            assert hub.get(crash, "path", "crash").status_code >= 500
        stage = wait_for(
            lambda: (
                "gave up"
                if hub.platform.runtime(crash)["stage"] == "RUNTIME_ERROR"
                else (facts := hub.facts(crash))["boot"] not in boots and facts["boot"]
            ),
            60,
            "the app to be restarted or given up on",
        )
        if stage == "gave up":
            break
        boots.append(stage)
    assert len(boots) == MAX_RESTARTS + 1, f"restarted {len(boots) - 1} times, then gave up"
    runtime = hub.platform.wait_stage(crash, {"RUNTIME_ERROR"}, 30)
    message = runtime["errorMessage"]
    assert f"facts {boots[-1]}: exiting on request" in message, runtime
    assert re.search(r"\bcode 3\b", message), runtime
    answer = hub.get(crash, "subdomain")
    assert answer.status_code >= 500, answer.status_code


def test_app_that_never_listens_is_runtime_error_after_its_start_timeout(hub: RuntimeHub) -> None:
    mute = "admin/cf-mute"
    runtime = hub.platform.wait_stage(mute, {"RUNTIME_ERROR"}, BUILD_TIMEOUT)
    message = runtime["errorMessage"]
    assert "within 5 s" in message and "startup_duration_timeout" in message, runtime
    assert "never-listens: thinking before listening" in message, runtime
    assert hub.instances(mute) == [], "the silent app is not left running"


def test_restart_pause_and_delete(hub: RuntimeHub) -> None:
    life = "admin/cf-life"
    hub.running(life)
    first = hub.facts(life)["boot"]
    (instance,) = hub.instances(life)
    hub.api.restart_space(life)
    wait_for(
        lambda: hub.facts(life, "subdomain")["boot"] != first and hub.instances(life) != [instance],
        60,
        "a restarted instance",
    )
    hub.running(life, 60)
    wait_for(lambda: len(hub.instances(life)) == 1, 30, "the old instance to be gone")
    assert hub.facts(life)["starts"] in (None, 1), "without storage, nothing carries over"

    hub.api.pause_space(life)
    assert hub.platform.runtime(life)["stage"] == "PAUSED"
    for form in ("path", "subdomain"):
        answer = hub.get(life, form)
        assert answer.status_code == 503, (form, answer.status_code)
        assert "paused" in answer.text.lower()
    wait_for(lambda: hub.instances(life) == [], 30, "the paused app's instance to stop")

    hub.api.restart_space(life)
    hub.running(life, 60)
    assert hub.facts(life)["boot"] != first
    others = {space_id: hub.instances(space_id) for space_id in ("admin/cf-greet",)}
    hub.api.delete_repo(life, repo_type="space")
    hub.created.remove(life)
    wait_for(lambda: hub.instances(life) == [], 30, "the deleted space's instance to stop")
    for form in ("path", "subdomain"):
        assert hub.get(life, form).status_code == 404, form
    if hub.runtime == "docker":
        assert containers_of(hub.platform, life, every=True) == [], "no container is left"
    if hub.runtime == "swarm":
        assert services_of(hub.platform, life, every=True) == [], "no service is left"
    assert {space_id: hub.instances(space_id) for space_id in others} == others


def test_platform_restart_re_adopts_running_apps_and_starts_vanished_ones(
    hub: RuntimeHub,
) -> None:
    from gradio_client import Client

    greet, store = "admin/cf-greet", "admin/cf-store"
    hub.running(greet)
    hub.running(store)
    (greet_instance,) = hub.instances(greet)
    starts = hub.facts(store)["starts"]
    builds_before = sorted((hub.platform.data_dir / "logs" / "builds").iterdir())
    assert hub.platform.stop() == 0
    assert hub.instances(greet) == [greet_instance], "apps outlive their platform"
    hub.remove_instances(store)  # gone while the platform was down

    hub.restart_platform()
    assert hub.platform.runtime(greet)["stage"] == "RUNNING"
    assert hub.instances(greet) == [greet_instance], "the running app is adopted, not restarted"
    assert Client(hub.path_url(greet), verbose=False).predict("Cy", api_name="/greet") == (
        "Hello Cy!!"
    )
    hub.running(store, 60)
    wait_for(
        lambda: hub.facts(store)["starts"] == starts + 1, 60, "the vanished app to start again"
    )
    assert sorted((hub.platform.data_dir / "logs" / "builds").iterdir()) == builds_before


def test_app_over_its_memory_limit_is_runtime_error_and_the_platform_is_unharmed(
    runtime_platform: RuntimeHub, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """A platform of its own with a 128 MiB cap: Docker's cgroup kills the app (out of memory,
    on `swarm` too: the supervisor reads it from the task's container);
    local on this cgroup-v1 machine sets RLIMIT_DATA, so the app's allocation fails instead."""
    runtime = runtime_platform.runtime
    limit_mib = 128
    capped = start_platform(
        tmp_path / "data",
        **runtime_platform.settings(
            app_memory_limit=str(limit_mib * 1024 * 1024), max_restarts="1"
        ),
    )
    explain_failure(request.node, "capped platform log", lambda: capped.log()[-6000:])
    space_id = capped.create_space("cf-hog", sdk="gradio")
    try:
        checkout = make_checkout(tmp_path / "hog", APPS / "memory-hog", capped.git_url(space_id))
        assert push(capped, checkout, space_id).returncode == 0
        message = capped.wait_stage(space_id, {"RUNTIME_ERROR"}, BUILD_TIMEOUT)["errorMessage"]
        assert "memory-hog: holding" in message, message
        held = [int(line.split()[-2]) for line in message.splitlines() if "holding" in line]
        assert max(held) <= limit_mib, f"the app held {max(held)} MiB past its {limit_mib} MiB"
        killed = "out of memory" if runtime in ("docker", "swarm") else "MemoryError"
        assert killed in message, message
        assert httpx.get(f"{capped.url}/api/spaces", timeout=5).status_code == 200
    finally:
        clean_up(runtime, capped, [space_id])

"""Issue 3 end to end: a `git push` of a Gradio, Streamlit or Docker app becomes a running
container behind the platform's proxy, on the real Docker engine.

One platform serves the whole module (builds run one at a time, so every space is pushed once,
early, and tests wait for their own). What every runtime must do (Gradio and Streamlit in both
URL forms, a user's Dockerfile, crashes, apps that never listen, memory limits, secrets in the
app's env, storage, restart/pause/delete, re-adoption) is in tests/test_runtime_conformance.py;
this module keeps what only Docker has: build secrets and images, layer reuse, custom ports.
"""

import hashlib
import json
import os
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlmodel import select

from spacehub.platform.db import make_engine, session_scope
from spacehub.platform.models import Build
from tests.conftest import (
    ADMIN_TOKEN,
    EXAMPLES,
    Hub,
    Platform,
    add_user,
    delete_space,
    explain_failure,
    make_checkout,
    push,
    readme,
    remove_labelled_docker_objects,
    start_platform,
    wait_for,
)
from tests.test_load import CLIENTS, LOAD_SECONDS, wrk

pytestmark = pytest.mark.docker

CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
BUILD_TIMEOUT = 240  # a cold Gradio or Streamlit build installs its SDK from PyPI
LABEL = "spacehub.space"
SECRET_VALUE = "s3cr3t-" + hashlib.sha256(os.urandom(16)).hexdigest()[:24]

# A tiny Docker-SDK app: serves its environment's facts as JSON, prints a marker when it starts.
SERVER = """\
import hashlib, http.server, json, os, sys

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 7860
SHOWN = ("SPACE_", "SYSTEM", "DT_VAR")
print(f"{os.environ.get('MARKER', 'tiny')}: serving on {PORT}", flush=True)


class Facts(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        secret = os.environ.get("DT_SECRET")
        build_file = "/home/user/build-secret.sha256"
        facts = {
            "version": os.environ.get("VERSION", "1"),
            "env": {k: v for k, v in os.environ.items() if k.startswith(SHOWN)},
            "secret_sha256": secret and hashlib.sha256(secret.encode()).hexdigest(),
            "build_secret_sha256": os.path.exists(build_file) and open(build_file).read()[:64],
        }
        body = json.dumps(facts).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("0.0.0.0", PORT), Facts).serve_forever()
"""


def tiny_docker_app(
    title: str, run: str = "", cmd: str = '["python3", "-u", "server.py"]', **extra: str
) -> dict[str, str]:
    return {
        "README.md": readme(title, "docker", **extra),
        "server.py": SERVER,
        "Dockerfile": textwrap.dedent(
            f"""\
            FROM python:3.11-slim
            RUN useradd -m -u 1000 user
            {run}
            USER user
            WORKDIR /home/user/app
            COPY --chown=user . .
            CMD {cmd}
            """
        ),
    }


SECRET_STEP = (
    "RUN --mount=type=secret,id=DT_SECRET,mode=0444,required=true "
    "sha256sum /run/secrets/DT_SECRET > /home/user/build-secret.sha256"
)
HEADERS_APP = """\
import http.server, json
class Headers(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps(sorted(name.lower() for name in self.headers)).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.ThreadingHTTPServer(("0.0.0.0", 7860), Headers).serve_forever()
"""
PRIVATE_SPACES = {"dt-private"}

# name → (sdk, files): pushed once, in this order, when the module starts.
SPACES: dict[str, tuple[str, dict[str, str] | Path]] = {
    "dt-greet": ("gradio", EXAMPLES / "gradio-greet"),
    "dt-weather": ("gradio", EXAMPLES / "gradio-weather"),
    "dt-port": (
        "docker",
        tiny_docker_app("Port", cmd='["python3", "-u", "server.py", "8080"]', app_port="8080"),
    ),
    "dt-secrets": ("docker", tiny_docker_app("Secrets", run=SECRET_STEP)),
    "dt-life": ("docker", tiny_docker_app("Life")),
    "dt-private": ("docker", {**tiny_docker_app("Private"), "server.py": HEADERS_APP}),
}


def docker_client():
    import docker

    return docker.from_env(timeout=60)


def containers_of(space_id: str) -> list:
    return docker_client().containers.list(all=True, filters={"label": f"{LABEL}={space_id}"})


def container_logs(space_ids: list[str]) -> str:
    parts = []
    for space_id in space_ids:
        for container in containers_of(space_id):
            tail = container.logs(tail=40).decode(errors="replace")
            parts.append(f"--- {space_id} {container.name} ({container.status})\n{tail}")
    return "\n".join(parts) or "(no containers)"


def remove_docker_objects(space_ids: list[str]) -> None:
    """Whatever the platform left behind for these spaces: containers, images, volumes."""
    for space_id in space_ids:
        remove_labelled_docker_objects(docker_client(), f"{LABEL}={space_id}")


def explain_with(request: pytest.FixtureRequest, platform: Platform, space_ids: list[str]) -> None:
    explain_failure(request.node, "platform log (tail)", lambda: platform.log()[-6000:])
    explain_failure(request.node, "container logs", lambda: container_logs(space_ids))


@pytest.fixture(scope="module")
def module_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    root = tmp_path_factory.mktemp("docker-spaces")
    platform = start_platform(root / "data", BUILD_CA_BUNDLE=CA_BUNDLE)
    hub = Hub(platform, root / "checkouts", BUILD_TIMEOUT)
    started = time.monotonic()
    try:
        for name, (sdk, files) in SPACES.items():
            space_id = hub.create(name, sdk, private=name in PRIVATE_SPACES)
            if name == "dt-secrets":
                hub.api.add_space_secret(space_id, "DT_SECRET", SECRET_VALUE)
                hub.api.add_space_variable(space_id, "DT_VAR", "plain-value")
            hub.push(space_id, files)
        print(f"\nall {len(SPACES)} spaces pushed in {time.monotonic() - started:.1f} s")
        yield hub
        print("\nbuild times (latest build of each space):")
        for space_id in hub.created:
            print(f"  {space_id}: {hub.build_timeline(space_id)}")
    finally:
        for space_id in hub.created:
            delete_space(hub.platform, space_id)
        code = hub.platform.stop()
        remove_docker_objects(hub.created)
        assert code == 0, f"spacehub serve did not stop cleanly (exit {code})"


@pytest.fixture
def hub(request: pytest.FixtureRequest, module_hub: Hub) -> Hub:
    """The module's platform; a failing test shows its log and the containers' logs."""
    explain_with(request, module_hub.platform, module_hub.created)
    return module_hub


def predict_in_subprocess(hub: Hub, space_id: str, name: str) -> str:
    """`gradio_client.Client("owner/name")` as a user runs it, with HF_ENDPOINT at the platform."""
    code = (
        "import sys\nfrom gradio_client import Client\n"
        f"print(Client({space_id!r}, verbose=False).predict({name!r}, api_name='/greet'))"
    )
    env = {**os.environ, "HF_ENDPOINT": hub.platform.url, "HF_TOKEN": ADMIN_TOKEN}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


# Gradio 6 under SYSTEM=spaces (hot reload, JS transpiling) leaves event loops for the garbage
# collector; their finalizer prints "Exception ignored in: <function BaseEventLoop.__del__ …>"
# with a traceback ending "Invalid file descriptor: -1". The app is unharmed (it keeps
# answering); any other traceback in the run log is still a failure.
_LOOP_FINALIZER_NOISE = re.compile(
    r"Exception ignored in: <function BaseEventLoop\.__del__ at 0x[0-9a-f]+>\n"
    r"Traceback \(most recent call last\):\n(?:  .*\n)*?ValueError: Invalid file descriptor: -1\n?"
)


def without_loop_finalizer_noise(log: str) -> str:
    return _LOOP_FINALIZER_NOISE.sub("", log)


# 1. Gradio


def test_pushed_gradio_app_predicts_through_its_hub_id_and_with_several_inputs(hub):
    from gradio_client import Client

    greet = "admin/dt-greet"
    hub.running(greet)
    assert predict_in_subprocess(hub, greet, "Ann") == "Hello Ann!!"
    run_log = "".join(hub.api.fetch_space_logs(greet, build=False))
    assert "Running on local URL" in run_log
    assert "Traceback" not in without_loop_finalizer_noise(run_log), run_log

    weather = "admin/dt-weather"
    hub.running(weather)
    client = Client(hub.path_url(weather), verbose=False)
    greeting, celsius = client.predict("Bo", True, 68, api_name="/greet")
    assert greeting == "Good morning Bo. It is 68 degrees today"
    assert celsius == 20


def test_200_clients_on_a_running_gradio_app_get_answers(hub):
    """The issue's load on a real app: 200 clients on its page through the proxy, no error."""
    greet = "admin/dt-greet"
    hub.running(greet)
    counts = wrk(hub.path_url(greet), CLIENTS, LOAD_SECONDS)
    errors = {kind: count for kind, count in counts.items() if kind != "requests" and count}
    assert not errors, counts
    assert counts["requests"] > 10 * LOAD_SECONDS, counts
    print(f"gradio page: {counts['requests'] / LOAD_SECONDS:.0f} req/s at {CLIENTS} clients")
    assert predict_in_subprocess(hub, greet, "after") == "Hello after!!"


# 3. Docker SDK on a port of its own (users' Dockerfiles in both URL forms: the conformance suite)


def test_users_dockerfile_app_answers_on_a_custom_port(hub):
    port = "admin/dt-port"
    hub.running(port)
    for form in ("path", "subdomain"):
        answer = hub.get(port, form)
        assert answer.status_code == 200, answer.text
        assert answer.json()["env"]["SPACE_ID"] == port


# 4. Code-only redeploy


def test_code_only_push_reuses_dependency_layers_and_goes_live(hub, app_hosts_resolve):
    from gradio_client import Client

    greet = "admin/dt-greet"
    hub.running(greet)
    hub.settled()  # the build queue is empty: the time measured is this push's alone
    app = (EXAMPLES / "gradio-greet" / "app.py").read_text()
    app = app.replace('"Hello "', '"Howdy "').replace(
        'outputs="text")', 'outputs="text", title="Howdy")'
    )
    assert "Howdy" in app and "title=" in app
    pushed = hub.commit_and_push(greet, {"app.py": app}, "code only")
    wait_for(
        lambda: "Howdy" in hub.get(greet, "path", "config").text, BUILD_TIMEOUT, "the new code"
    )
    print(f"\ncode-only push to new content live: {time.monotonic() - pushed:.1f} s")
    hub.running(greet)
    print(f"code-only build: {hub.build_timeline(greet)}")
    build_log = "".join(hub.api.fetch_space_logs(greet, build=True))
    assert " CACHED" in build_log, build_log[-3000:]  # BuildKit reused the dependency layers
    assert Client(hub.path_url(greet), verbose=False).predict("Cy", api_name="/greet") == (
        "Howdy Cy!!"
    )


# 5. A failing build keeps the previous release


def test_failing_dockerfile_is_build_error_and_the_previous_release_keeps_answering(hub):
    port = "admin/dt-port"
    hub.running(port)
    files = tiny_docker_app(
        "Port",
        run="RUN echo dt-before-failing && false",
        cmd='["python3", "-u", "server.py", "8080"]',
        app_port="8080",
    )
    hub.commit_and_push(port, files, "a failing step")
    runtime = hub.platform.wait_stage(port, {"BUILD_ERROR"}, BUILD_TIMEOUT)
    assert "dt-before-failing" in runtime["errorMessage"], runtime
    assert "exit code: 1" in runtime["errorMessage"], runtime
    answer = hub.get(port, "subdomain")
    assert answer.status_code == 200 and answer.json()["env"]["SPACE_ID"] == port


# 9. Secrets and variables


def image_holds(image_id: str, needle: bytes) -> bool:
    """Whether `needle` appears anywhere in `docker save` of the image (every file, config)."""
    window = b""
    for chunk in docker_client().api.get_image(image_id):
        window = window[-len(needle) :] + chunk
        if needle in window:
            return True
    return False


def test_secrets_reach_the_app_but_no_image_log_or_api_answer(hub):
    secrets_space = "admin/dt-secrets"
    hub.running(secrets_space)
    facts = hub.get(secrets_space, "subdomain").json()
    digest = hashlib.sha256(SECRET_VALUE.encode()).hexdigest()
    assert facts["secret_sha256"] == digest, "the app sees the secret"
    assert facts["build_secret_sha256"] == digest, "the build's secret mount saw it"
    assert facts["env"]["DT_VAR"] == "plain-value"
    env = facts["env"]
    assert env["SPACE_ID"] == secrets_space
    assert (env["SPACE_AUTHOR_NAME"], env["SPACE_REPO_NAME"]) == ("admin", "dt-secrets")
    assert env["SPACE_TITLE"] == "Secrets"
    assert env["SPACE_HOST"] == "admin-dt-secrets.localhost"
    assert env["SYSTEM"] == "spaces"

    (container,) = [c for c in containers_of(secrets_space) if c.status == "running"]
    image = container.image
    history = docker_client().api.history(image.id)
    assert SECRET_VALUE not in json.dumps(history)
    assert not image_holds(image.id, SECRET_VALUE.encode()), "the secret is in the image"

    build_log = "".join(hub.api.fetch_space_logs(secrets_space, build=True))
    run_log = "".join(hub.api.fetch_space_logs(secrets_space, build=False))
    with hub.platform.api() as client:
        answers = [
            client.get(f"/api/spaces/{secrets_space}").text,
            client.get(f"/api/spaces/{secrets_space}/runtime").text,
            client.get(f"/api/spaces/{secrets_space}/secrets").text,
            client.get(f"/api/spaces/{secrets_space}/variables").text,
            client.get("/api/spaces", params={"full": "true"}).text,
        ]
    assert "DT_SECRET" in answers[2]
    for text in (build_log, run_log, hub.platform.log(), *answers):
        assert SECRET_VALUE not in text


# 10. Run logs, restart, factory rebuild, delete (pause: the conformance suite)


def test_private_app_answers_its_owner_only_and_never_sees_the_token(hub):
    private = "admin/dt-private"
    hub.running(private)
    for form in ("path", "subdomain"):
        assert hub.get(private, form).status_code == 404, f"anonymous, {form} form"
        for header in ("Authorization", "X-HF-Authorization"):
            answer = hub.get(private, form, headers={header: f"Bearer {ADMIN_TOKEN}"})
            assert answer.status_code == 200, f"{header}, {form} form"
            seen = answer.json()
            assert "authorization" not in seen and "x-hf-authorization" not in seen, seen
    stranger = add_user(hub.platform, "dt-stranger")
    assert (
        hub.get(private, "path", headers={"Authorization": f"Bearer {stranger}"}).status_code == 404
    )


def test_restart_reuses_the_image_a_factory_rebuild_does_not_and_delete_removes_both(hub):
    life = "admin/dt-life"
    hub.running(life)
    run_log = "".join(hub.api.fetch_space_logs(life, build=False))
    assert "tiny: serving on 7860" in run_log, run_log

    def live_container():
        running = [c for c in containers_of(life) if c.status == "running"]
        return running[0] if len(running) == 1 else None

    first = wait_for(live_container, 30, "one running container")
    hub.api.restart_space(life)
    second = wait_for(
        lambda: (c := live_container()) and c.id != first.id and c, 60, "a restarted container"
    )
    hub.running(life, 60)
    assert second.image.id == first.image.id, "a restart reuses the image"
    assert hub.get(life, "subdomain").status_code == 200

    hub.api.restart_space(life, factory_reboot=True)
    third = wait_for(
        lambda: (c := live_container()) and c.image.id != first.image.id and c,
        BUILD_TIMEOUT,
        "a container of a rebuilt image",
    )
    hub.running(life, 60)
    build_log = "".join(hub.api.fetch_space_logs(life, build=True))
    assert "Using cache" not in build_log, "a factory rebuild uses no cache"
    assert hub.get(life, "path").status_code == 200

    assert third.id in {c.id for c in containers_of(life)}

    other = "admin/dt-secrets"
    other_containers = {c.id for c in containers_of(other)}
    hub.api.delete_repo(life, repo_type="space")
    hub.created.remove(life)
    client = docker_client()
    by_label = {"label": f"{LABEL}={life}"}
    assert client.containers.list(all=True, filters=by_label) == []
    assert client.images.list(filters=by_label) == []
    assert client.volumes.list(filters=by_label) == []
    assert {c.id for c in containers_of(other)} == other_containers
    assert hub.get(other, "subdomain").status_code == 200


def test_stop_during_a_build_hands_it_back_and_the_next_start_finishes_it(request, tmp_path):
    data = tmp_path / "data"
    first = start_platform(data)
    space_id = "admin/dt-slow"
    explain_with(request, first, [space_id])
    marker = f"dt-slow-{os.getpid()}"
    second = None
    try:
        first.create_space("dt-slow", sdk="docker")
        slow_step = f"RUN echo {marker} && sleep 20"
        files = tiny_docker_app("Slow", run=slow_step)
        checkout = make_checkout(tmp_path / "slow", files, first.git_url(space_id))
        assert push(first, checkout, space_id).returncode == 0
        build_logs = data / "logs" / "builds"
        wait_for(
            lambda: any(marker in log.read_text() for log in build_logs.glob("*.log")),
            60,
            "the slow build step to start",
        )
        assert first.runtime(space_id)["stage"] == "BUILDING"
        stopping = time.monotonic()
        assert first.stop() == 0, first.log()
        assert time.monotonic() - stopping < 15, "a stop must not wait for a running build"

        second = start_platform(data, port=first.port)
        second.wait_stage(space_id, {"RUNNING"}, BUILD_TIMEOUT)
        assert httpx.get(f"{second.apps_url}/apps/{space_id}/", timeout=10).json()["version"] == "1"
        with second.api() as client:
            commit = client.get(f"/api/spaces/{space_id}").json()["sha"]
        engine = make_engine(f"sqlite:///{data / 'spacehub.db'}")
        with session_scope(engine) as session:
            statuses = [(build.commit, str(build.status)) for build in session.exec(select(Build))]
        assert statuses == [(commit, "succeeded")], "the interrupted build is the one finished"
    finally:
        running = second or first
        delete_space(running, space_id)
        running.stop()
        remove_docker_objects([space_id])

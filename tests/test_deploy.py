"""deploy/: the compose file and the Swarm stack are valid, and the compose file starts the
platform for real (its image, PostgreSQL and nginx) so that a static and a Gradio space pushed
through nginx are served through nginx; the stack does the same for a static space on a one-node
swarm.

No registry answers here: `postgres:16` and `nginx:1.27` are stand-ins built from Debian packages
(tests/images/) unless the engine has the official images. Compose v2 comes from
`scripts/compose-plugin`. Marked `deploy`: scripts/test runs it on the host's engine only, except
the stack's start, also marked `swarm`, which runs on Docker 26's swarm only.
"""

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn
from urllib.parse import quote

import httpx
import pytest

from spacehub.builder.buildkit import NoBuildKit, find_buildkit
from tests.conftest import (
    ADMIN_TOKEN,
    EXAMPLES,
    IN_CI,
    explain_failure,
    free_port,
    git,
    make_checkout,
    wait_for,
)
from tests.swarm_cluster import Swarm

pytestmark = [pytest.mark.docker, pytest.mark.deploy]

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
STAND_INS = Path(__file__).resolve().parent / "images"
PLATFORM_IMAGE = "spacehub/spacehub:latest"
STAND_IN_LABEL = "org.spacehub.test-stand-in"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# Added to the CA bundle the build gets as a secret: found in no layer, history or file after.
CA_MARKER = b"# spacehub deploy test: this CA bundle must not stay in the image"
AUTHORIZATION = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def missing(message: str) -> NoReturn:
    """Something this test needs is not here: a failure under CI=true, else a skip."""
    if IN_CI:
        pytest.fail(f"CI=true: {message}")
    pytest.skip(message)


def run(
    command: list[str], env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    return subprocess.run(
        command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


def must(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, (
        f"{' '.join(result.args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    )
    return result.stdout


@pytest.fixture(scope="module")
def docker_cli() -> str:
    cli = shutil.which("docker")
    if cli is None:
        missing("no docker CLI on PATH")
    return cli


@pytest.fixture(scope="module")
def compose_env(docker_cli: str) -> dict[str, str]:
    """The environment in which `docker compose` works: the plugin from scripts/compose-plugin."""
    fetched = run([str(ROOT / "scripts" / "compose-plugin")], timeout=600)
    if fetched.returncode != 0:
        missing(f"scripts/compose-plugin failed:\n{fetched.stderr}")
    env = {**os.environ, "DOCKER_CONFIG": fetched.stdout.strip()}
    version = run([docker_cli, "compose", "version", "--short"], env=env)
    if version.returncode != 0:
        missing(f"docker compose does not run: {version.stderr}")
    return env


def deploy_settings(**ports: int) -> dict[str, str]:
    """What a user puts in deploy/.env; ports published on loopback only."""
    http, apps = ports.get("http", 80), ports.get("apps", 8080)
    return {
        "SPACEHUB_POSTGRES_PASSWORD": secrets.token_hex(16),
        "SPACEHUB_ADMIN_TOKEN": ADMIN_TOKEN,
        "SPACEHUB_BIND": "127.0.0.1",
        "SPACEHUB_HTTP_PORT": str(http),
        "SPACEHUB_APPS_HTTP_PORT": str(apps),
        "SPACEHUB_SSH_PUBLISH_PORT": str(ports.get("ssh", 2222)),
        "SPACEHUB_PUBLIC_URL": f"http://127.0.0.1:{http}",
        "SPACEHUB_APPS_URL": f"http://localhost:{apps}",
        "SPACEHUB_IMAGE": PLATFORM_IMAGE,
    }


def test_compose_file_needs_its_secrets_and_starts_services_in_order(
    docker_cli: str, compose_env: dict[str, str]
) -> None:
    compose = [docker_cli, "compose", "-f", str(DEPLOY / "compose.yaml")]
    unset = {k: v for k, v in compose_env.items() if not k.startswith("SPACEHUB_")}
    refused = run([*compose, "config"], env=unset)
    assert refused.returncode != 0
    assert "SPACEHUB_POSTGRES_PASSWORD" in refused.stderr

    config = json.loads(
        must(run([*compose, "config", "--format", "json"], env={**unset, **deploy_settings()}))
    )
    services = config["services"]
    assert set(services) == {"postgres", "spacehub", "nginx"}
    assert services["postgres"]["image"] == "postgres:16"
    assert services["nginx"]["image"].startswith("nginx:1.")
    assert services["spacehub"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["nginx"]["depends_on"]["spacehub"]["condition"] == "service_healthy"
    assert services["postgres"]["healthcheck"]["test"][1] == "pg_isready"
    assert "/api/health" in services["nginx"]["healthcheck"]["test"][-1]
    # spacehub's own healthcheck is the image's HEALTHCHECK
    assert "HEALTHCHECK" in (DEPLOY / "Dockerfile").read_text()
    assert services["spacehub"]["build"]["dockerfile"] == "deploy/Dockerfile"
    assert {port["host_ip"] for s in services.values() for port in s.get("ports", [])} == {
        "127.0.0.1"
    }
    url = services["spacehub"]["environment"]["SPACEHUB_DATABASE_URL"]
    assert url.startswith("postgresql+psycopg://spacehub:")
    assert url.endswith("@postgres:5432/spacehub")


def test_stack_file_deploys_one_platform_behind_nginx(docker_cli: str) -> None:
    env = {**os.environ, **deploy_settings()}
    answer = run([docker_cli, "stack", "config", "-c", str(DEPLOY / "stack.yaml")], env=env)
    if answer.returncode != 0 and "unknown command" in answer.stderr + answer.stdout:
        missing(f"{docker_cli} has no `docker stack config`")
    import yaml

    services = yaml.safe_load(must(answer))["services"]
    assert set(services) == {"postgres", "spacehub", "nginx"}
    for name, service in services.items():
        assert service["deploy"]["restart_policy"]["condition"] == "any", name
    # One platform process per data dir, also while updating.
    assert services["spacehub"]["deploy"]["replicas"] == 1
    assert services["spacehub"]["deploy"]["update_config"]["order"] == "stop-first"
    assert services["spacehub"]["image"] == PLATFORM_IMAGE
    assert services["nginx"]["configs"][0]["target"] == "/etc/nginx/conf.d/default.conf"
    assert {port["target"] for port in services["nginx"]["ports"]} == {80, 8080}
    # By default the routing mesh publishes the ports and services reach each other by virtual
    # IP; the swarm test below shows the settings for an engine without them.
    ports = [port for service in services.values() for port in service.get("ports", [])]
    assert {port["mode"] for port in ports} == {"ingress"}
    assert {service["deploy"]["endpoint_mode"] for service in services.values()} == {"vip"}


# --- the real start


def build(cli: list[str], tag: str, context: Path, *options: str) -> None:
    result = run(
        [*cli, "--progress=plain", "-t", tag, *options, str(context)],
        env={**os.environ, "DOCKER_BUILDKIT": "1"},
        timeout=900,
    )
    assert result.returncode == 0, f"building {tag} failed:\n{result.stderr[-6000:]}"


def stand_in_needed(docker_cli: str, image: str) -> bool:
    """Build the stand-in unless the engine has the real image (one without our label)."""
    found = run([docker_cli, "image", "inspect", image, "--format", "{{json .Config.Labels}}"])
    return found.returncode != 0 or STAND_IN_LABEL in found.stdout


@pytest.fixture(scope="module")
def deploy_images(
    docker_cli: str, compose_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The platform's image as `docker compose build` makes it, with a CA bundle as the build's
    secret, and the stand-ins; BuildKit caches their steps between runs."""
    bundle = tmp_path_factory.mktemp("ca") / "ca.pem"
    bundle.write_bytes(
        (HOST_CA_BUNDLE.read_bytes() if HOST_CA_BUNDLE.exists() else b"") + b"\n" + CA_MARKER
    )
    env = {**compose_env, **deploy_settings(), "SPACEHUB_BUILD_CA_BUNDLE": str(bundle)}
    compose = [docker_cli, "compose", "-f", str(DEPLOY / "compose.yaml")]
    built = run([*compose, "--progress", "plain", "build", "spacehub"], env=env, timeout=900)
    assert built.returncode == 0, f"docker compose build failed:\n{built.stderr[-6000:]}"
    build_stand_ins(docker_cli, buildkit_command())


def buildkit_command() -> list[str]:
    try:
        return find_buildkit().build_command()
    except NoBuildKit as error:
        missing(error.message)


def build_stand_ins(docker_cli: str, cli: list[str]) -> None:
    for image, target in (("postgres:16", "postgres"), ("nginx:1.27", "nginx")):
        if stand_in_needed(docker_cli, image):
            build(cli, image, STAND_INS, "--target", target)


@dataclass
class Started:
    """The settings a deploy file was started with (deploy_settings and more)."""

    settings: dict[str, str]

    def url(self, port_setting: str) -> str:
        return f"http://127.0.0.1:{self.settings[port_setting]}"


@dataclass
class Deployment(Started):
    """A started project of deploy/compose.yaml and its `docker compose`."""

    command: list[str]
    env: dict[str, str]

    def compose(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return run([*self.command, *args], env=self.env, timeout=timeout)


@pytest.fixture
def deployment(
    request: pytest.FixtureRequest,
    docker_cli: str,
    compose_env: dict[str, str],
    deploy_images: None,
    tmp_path: Path,
) -> Iterator[Deployment]:
    """`docker compose up` of deploy/compose.yaml as a project of its own; always taken down."""
    settings = deploy_settings(http=free_port(), apps=free_port(), ssh=free_port())
    project = f"spacehub-deploy-test-{secrets.token_hex(4)}"
    command = [docker_cli, "compose", "-p", project, "-f", str(DEPLOY / "compose.yaml")]
    if HOST_CA_BUNDLE.exists():
        # What compose.yaml's comment tells users behind a TLS-inspecting proxy to add.
        override = tmp_path / "compose.ca.yaml"
        override.write_text(
            json.dumps(
                {
                    "services": {
                        "spacehub": {
                            "environment": {"SPACEHUB_BUILD_CA_BUNDLE": "/etc/spacehub/ca.crt"},
                            "volumes": [f"{HOST_CA_BUNDLE}:/etc/spacehub/ca.crt:ro"],
                        }
                    }
                }
            )
        )
        command += ["-f", str(override)]
    started = Deployment(settings, command, {**compose_env, **settings})
    explain_failure(
        request.node,
        "docker compose ps and logs",
        lambda: (
            must(started.compose("ps", "-a"))
            + must(started.compose("logs", "--no-color", "--tail", "150"))
        ),
    )
    try:
        up = started.compose("up", "-d", "--no-build", "--wait", timeout=300)
        assert up.returncode == 0, f"docker compose up failed:\n{up.stdout}\n{up.stderr}"
        yield started
    finally:
        with contextlib.suppress(subprocess.TimeoutExpired):
            started.compose("down", "-v", "--remove-orphans", "--timeout", "10", timeout=180)


def push_new_space(site: str, name: str, sdk: str, files: Path, checkout: Path) -> Path:
    """Create admin/`name` through nginx and clone it with `files` committed (not pushed)."""
    with httpx.Client(base_url=site, headers=AUTHORIZATION, timeout=30) as api:
        made = api.post("/api/repos/create", json={"name": name, "type": "space", "sdk": sdk})
    assert made.status_code == 200, made.text
    make_checkout(checkout, files, clone_url=git_url(site, name))
    return checkout


def git_url(site: str, name: str) -> str:
    return site.replace("://", f"://admin:{ADMIN_TOKEN}@") + f"/spaces/admin/{name}"


def wait_running(site: str, name: str, timeout: float) -> None:
    def running() -> bool:
        with httpx.Client(base_url=site, headers=AUTHORIZATION, timeout=30) as api:
            stage = api.get(f"/api/spaces/admin/{name}/runtime").json()
        assert stage["stage"] not in ("BUILD_ERROR", "CONFIG_ERROR", "NO_APP_FILE"), stage
        assert stage["stage"] != "RUNTIME_ERROR", stage
        return stage["stage"] == "RUNNING"

    wait_for(running, timeout, f"admin/{name} to be RUNNING", interval=0.5)


def test_compose_serves_spaces_pushed_through_nginx(deployment: Deployment, tmp_path: Path) -> None:
    site, apps = deployment.url("SPACEHUB_HTTP_PORT"), deployment.url("SPACEHUB_APPS_HTTP_PORT")
    health = httpx.get(f"{site}/api/health", timeout=10)
    assert health.status_code == 200, health.text
    assert health.json()["runtime"] == "LocalRuntime"

    # A user's site: the example, a page with spaces and umlauts in its name, and an 8 MB
    # binary, an LFS file by the space's .gitattributes (nginx's default body limit, 1 MB,
    # refuses its upload).
    site_checkout = push_new_space(
        site, "ausstellung", "static", EXAMPLES / "static-site", tmp_path / "site"
    )
    (site_checkout / "Über uns.html").write_text("<h1>Über uns — Grüße</h1>\n", encoding="utf-8")
    photo = os.urandom(8 * 1024 * 1024)
    (site_checkout / "media").mkdir()
    (site_checkout / "media" / "foto 1.bin").write_bytes(photo)
    git("add", "-A", cwd=site_checkout)
    git("commit", "--quiet", "-m", "site with media", cwd=site_checkout)
    pushed = git("push", git_url(site, "ausstellung"), "main", cwd=site_checkout, check=False)
    assert pushed.returncode == 0, pushed.stderr
    # A Gradio app: a process of the local runtime in the platform's container.
    greet = push_new_space(site, "greet", "gradio", EXAMPLES / "gradio-greet", tmp_path / "greet")
    pushed = git("push", git_url(site, "greet"), "main", cwd=greet, check=False)
    assert pushed.returncode == 0, pushed.stderr

    wait_running(site, "ausstellung", 120)
    title = "Welcome to your static Space!"
    assert title in (EXAMPLES / "static-site" / "index.html").read_text()
    page = httpx.get(f"{apps}/apps/admin/ausstellung/", timeout=10)
    assert page.status_code == 200 and title in page.text
    umlauts = httpx.get(f"{apps}/apps/admin/ausstellung/{quote('Über uns.html')}", timeout=10)
    assert umlauts.status_code == 200 and "Grüße" in umlauts.text
    media = httpx.get(f"{apps}/apps/admin/ausstellung/media/{quote('foto 1.bin')}", timeout=30)
    assert hashlib.sha256(media.content).digest() == hashlib.sha256(photo).digest()
    # The subdomain form through nginx's main port: Host passes through unchanged.
    by_host = httpx.get(
        f"{site}/",
        headers={"Host": f"admin-ausstellung.localhost:{site.rsplit(':', 1)[1]}"},
        timeout=10,
    )
    assert by_host.status_code == 200 and title in by_host.text

    # Gradio's API through nginx: its queue streams server-sent events (no buffering).
    wait_running(site, "greet", 300)
    from gradio_client import Client

    client = Client(f"{apps}/apps/admin/greet/", verbose=False)
    assert client.predict("Zoë", api_name="/greet") == "Hello Zoë!!"

    # git over SSH is published by the spacehub container itself (nginx proxies HTTP only).
    ssh_port = int(deployment.settings["SPACEHUB_SSH_PUBLISH_PORT"])
    with socket.create_connection(("127.0.0.1", ssh_port), timeout=10) as ssh:
        assert ssh.recv(64).startswith(b"SSH-2.0-")

    # Apps run in bubblewrap's sandbox: compose's security options let it make namespaces.
    log = must(deployment.compose("logs", "--no-color", "spacehub"))
    assert "apps are sandboxed by bubblewrap" in log
    assert "apps run unisolated" not in log and "apps run unsandboxed" not in log
    processes = deployment.compose(
        "exec", "-T", "spacehub", "sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '"
    )
    assert "/opt/sandbox/bin/bwrap" in must(processes) and "app.py" in processes.stdout


def test_the_build_ca_bundle_is_in_no_layer_of_the_platform_image(
    docker_cli: str, deploy_images: None
) -> None:
    history = must(run([docker_cli, "history", "--no-trunc", PLATFORM_IMAGE]))
    assert "BEGIN CERTIFICATE" not in history and CA_MARKER.decode() not in history
    # Every layer, the config and history, byte by byte (docker save writes layers uncompressed).
    needle = CA_MARKER
    tail = b""
    with subprocess.Popen([docker_cli, "save", PLATFORM_IMAGE], stdout=subprocess.PIPE) as saved:
        assert saved.stdout is not None
        size = 0
        while chunk := saved.stdout.read(1 << 20):
            size += len(chunk)
            assert needle not in tail + chunk, "the CA bundle given as a secret is in the image"
            tail = chunk[-len(needle) :]
    assert saved.returncode == 0 and size > 50 * 1024 * 1024
    # BuildKit leaves /run/secrets as an empty mount point, nothing in it.
    container = [docker_cli, "run", "--rm", "--network=none", "--entrypoint=sh", PLATFORM_IMAGE]
    left = run([*container, "-c", "find /run/secrets -type f 2>/dev/null; true"])
    assert must(left).split() == []


# --- the Swarm stack, started for real on the one-node swarm of tests/swarm_cluster.py

DATA_NODE_LABEL = "spacehub.data"


@pytest.fixture(scope="module")
def stack_images(docker_cli: str) -> None:
    """The platform's image as deploy/Dockerfile's header builds it, and the stand-ins, on the
    swarm's engine (the one-node swarm runs local images: no registry)."""
    cli = buildkit_command()
    ca = ["--secret", f"id=ca,src={HOST_CA_BUNDLE}"] if HOST_CA_BUNDLE.exists() else []
    build(cli, PLATFORM_IMAGE, ROOT, "-f", str(DEPLOY / "Dockerfile"), *ca)
    build_stand_ins(docker_cli, cli)


@dataclass
class Stack(Started):
    """A deployed stack of deploy/stack.yaml."""

    name: str
    docker_cli: str

    def docker(self, *args: str, timeout: float = 120) -> str:
        return must(run([self.docker_cli, *args], timeout=timeout))

    def objects(self, *listing: str) -> list[str]:
        """The ids of this stack's objects `listing` lists (ps -a, volume ls, network ls)."""
        label = f"label=com.docker.stack.namespace={self.name}"
        return self.docker(*listing, "-q", "--filter", label).split()

    def services_running(self) -> bool:
        replicas = self.docker("stack", "services", self.name, "--format", "{{.Replicas}}")
        return replicas.split() == ["1/1"] * 3

    def database(self, query: str) -> str:
        """`query`'s rows as psql prints them unaligned, run in the postgres service's task."""
        service = f"label=com.docker.swarm.service.name={self.name}_postgres"
        (container,) = self.docker("ps", "-q", "--filter", service).split()
        password = f"PGPASSWORD={self.settings['SPACEHUB_POSTGRES_PASSWORD']}"
        return self.docker(
            *("exec", "-e", password, container, "psql", "-h", "127.0.0.1"),
            *("-U", "spacehub", "-d", "spacehub", "-Atc", query),
        )

    def logs(self, service: str) -> str:
        """The output of `service`'s tasks: the CLI prints their stderr on its own stderr."""
        command = [self.docker_cli, "service", "logs", "--no-task-ids", f"{self.name}_{service}"]
        printed = run(command)
        return must(printed) + printed.stderr

    def remove(self) -> None:
        """`docker stack rm`, then what it leaves: its volumes, once its containers are gone."""
        self.docker("stack", "rm", self.name)
        gone = f"the containers and network of stack {self.name} to go"
        wait_for(lambda: not self.objects("ps", "-a"), 90, gone)
        volumes = self.objects("volume", "ls")
        if volumes:
            self.docker("volume", "rm", *volumes)
        wait_for(lambda: not self.objects("network", "ls"), 60, gone)


@pytest.fixture
def stack(
    request: pytest.FixtureRequest, docker_cli: str, swarm: Swarm, stack_images: None
) -> Iterator[Stack]:
    """`docker stack deploy` of deploy/stack.yaml on the swarm's one node; always removed."""
    settings = {
        **deploy_settings(http=free_port(), apps=free_port(), ssh=free_port()),
        # This engine runs --iptables=false in a kernel without IPVS: no routing mesh, no
        # virtual IPs (deploy/stack.yaml's header); its host-mode ports bind to 127.0.0.1.
        "SPACEHUB_PUBLISH_MODE": "host",
        "SPACEHUB_ENDPOINT_MODE": "dnsrr",
        "SPACEHUB_NGINX_REPLICAS": "1",
    }
    started = Stack(settings, f"spacehub-stack-test-{secrets.token_hex(4)}", docker_cli)
    node = started.docker("info", "--format", "{{.Swarm.NodeID}}").strip()
    labels = started.docker("node", "inspect", node, "--format", "{{json .Spec.Labels}}")
    labelled_here = DATA_NODE_LABEL not in (json.loads(labels) or {})
    explain_failure(
        request.node,
        "docker stack ps and service logs",
        lambda: (
            started.docker("stack", "ps", "--no-trunc", started.name)
            + "".join(f"\n--- {s}\n" + started.logs(s) for s in ("postgres", "spacehub", "nginx"))
        ),
    )
    try:
        if labelled_here:
            started.docker("node", "update", "--label-add", f"{DATA_NODE_LABEL}=true", node)
        deployed = run(
            [docker_cli, "stack", "deploy", "-c", str(DEPLOY / "stack.yaml"), started.name],
            env={**os.environ, **settings},
        )
        assert deployed.returncode == 0, f"docker stack deploy failed:\n{deployed.stderr}"
        wait_for(started.services_running, 240, "the stack's three services to run", interval=1)
        yield started
    finally:
        try:
            started.remove()
        finally:
            if labelled_here:
                started.docker("node", "update", "--label-rm", DATA_NODE_LABEL, node)


@pytest.mark.swarm
def test_stack_serves_a_static_space_pushed_through_nginx_on_a_swarm(
    stack: Stack, tmp_path: Path
) -> None:
    site, apps = stack.url("SPACEHUB_HTTP_PORT"), stack.url("SPACEHUB_APPS_HTTP_PORT")
    # Swarm restarts spacehub until PostgreSQL answers, and nginx until spacehub's name resolves.
    health = wait_for(
        lambda: health_of(site), 120, "spacehub's /api/health through nginx", interval=1
    )
    assert health["runtime"] == "LocalRuntime"

    checkout = push_new_space(
        site, "ausstellung", "static", EXAMPLES / "static-site", tmp_path / "site"
    )
    (checkout / "Über uns.html").write_text("<h1>Über uns — Grüße</h1>\n", encoding="utf-8")
    git("add", "-A", cwd=checkout)
    git("commit", "--quiet", "-m", "about page", cwd=checkout)
    pushed = git("push", git_url(site, "ausstellung"), "main", cwd=checkout, check=False)
    assert pushed.returncode == 0, pushed.stderr
    wait_running(site, "ausstellung", 120)

    title = "Welcome to your static Space!"
    page = httpx.get(f"{apps}/apps/admin/ausstellung/", timeout=10)
    assert page.status_code == 200 and title in page.text
    umlauts = httpx.get(f"{apps}/apps/admin/ausstellung/{quote('Über uns.html')}", timeout=10)
    assert umlauts.status_code == 200 and "Grüße" in umlauts.text
    by_host = httpx.get(
        f"{site}/",
        headers={"Host": f"admin-ausstellung.localhost:{stack.settings['SPACEHUB_HTTP_PORT']}"},
        timeout=10,
    )
    assert by_host.status_code == 200 and title in by_host.text

    # The platform's database is the postgres service: the space is a row there.
    assert "ausstellung|RUNNING" in stack.database("select name, stage from space").split()
    # git over SSH, published by the spacehub task on this node.
    ssh_port = int(stack.settings["SPACEHUB_SSH_PUBLISH_PORT"])
    with socket.create_connection(("127.0.0.1", ssh_port), timeout=10) as ssh:
        assert ssh.recv(64).startswith(b"SSH-2.0-")
    # A service cannot loosen seccomp or /proc: apps run unsandboxed, and the log says so.
    assert "apps run unsandboxed" in stack.logs("spacehub")


def health_of(site: str) -> dict | None:
    answer = httpx.get(f"{site}/api/health", timeout=10)
    return answer.json() if answer.status_code == 200 else None

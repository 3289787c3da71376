"""Base images where no registry answers (issue 13): `spacehub base-image` builds the bases real
spaces name in `FROM` from Debian packages and npm, a registry mirror provides the others, and a
missing base is named in the build log with both remedies.

Building every base takes minutes (see SPACEHUB_TEST_ALL_BASES below); CI builds node:20-slim on
the Debian bookworm root that `spacehub base-image` already made for python:3.11-slim, runs a
user's Dockerfile space from it, and pulls through a real `docker-registry`.
"""

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from spacehub.builder.base_image import (
    BaseImageUnavailable,
    build_base_image,
    known_bases,
    mirror_reference,
    missing_base_message,
    offline_base,
    provide_base_image,
)
from tests.conftest import (
    Hub,
    delete_space,
    explain_failure,
    free_port,
    readme,
    start_platform,
    wait_for,
)

NODE_BASE = "node:20-slim"
BUILD_TIMEOUT = 300


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed: {done.stderr}")
    return done


def base_image_command(*images: str, env: dict[str, str] | None = None, timeout: float = 900):
    return subprocess.run(
        [sys.executable, "-m", "spacehub", "base-image", *images],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **(env or {})},
    )


def image_id(image: str) -> str | None:
    done = docker("image", "inspect", "--format", "{{.Id}}", image, check=False)
    return done.stdout.strip() if done.returncode == 0 else None


def in_image(image: str, script: str) -> str:
    """What `sh -c script` prints in a throw-away container of `image` (no network)."""
    done = docker(
        "run", "--rm", "--network", "none", "--entrypoint", "sh", image, "-c", script, timeout=120
    )
    return done.stdout


# What the build log says about a missing base


def test_a_python_no_debian_release_ships_is_named_with_the_mirror_and_docker_load() -> None:
    for version in ("3.10", "3.12"):
        message = missing_base_message(f"python:{version}-slim", None, "no such host")
        assert message.startswith(f"python:{version}-slim: "), message
        assert f"no Debian suite ships Python {version}" in message
        assert "SPACEHUB_REGISTRY_MIRROR" in message and "docker load" in message
        assert "spacehub base-image" not in message, "it cannot build this one"
    with_mirror = missing_base_message("python:3.10-slim", "mirror.example:5000", "refused")
    assert "now mirror.example:5000" in with_mirror and "(refused)" in with_mirror


def test_a_base_spacehub_can_build_is_named_with_its_command_and_both_other_remedies() -> None:
    for image in ("node:18-slim", "node:22", "python:3.9-slim", "python:3.13-slim"):
        message = missing_base_message(image, None)
        assert f"`spacehub base-image {image}`" in message, message
        assert "SPACEHUB_REGISTRY_MIRROR" in message and "docker load" in message
    wrong_release = missing_base_message("python:3.11-slim-bullseye", None)
    assert "Debian bullseye ships Python 3.9, not 3.11" in wrong_release
    other = missing_base_message("ghcr.io/acme/app:1.2", None)
    assert "docker load" in other and "docker tag a local image as ghcr.io/acme/app:1.2" in other


def test_offline_recipes_use_the_debian_release_that_ships_the_python() -> None:
    assert [offline_base(f"python:{v}-slim").suite for v in ("3.9", "3.11", "3.13")] == [
        "bullseye",
        "bookworm",
        "trixie",
    ]
    assert offline_base("python:3.10-slim") is None and offline_base("python:3.12-slim") is None
    assert offline_base("node:20-bookworm-slim").node == "20"
    assert offline_base("node:20").slim is False and offline_base("node:16") is None
    assert known_bases()[0] == "python:3.11-slim" and "node:22-slim" in known_bases()
    assert all(offline_base(image) is not None for image in known_bases())


def test_the_mirror_serves_docker_hub_names_under_library() -> None:
    mirror = "https://mirror.example:5000/hub/"
    assert mirror_reference("python:3.10-slim", mirror) == (
        "mirror.example:5000/hub/library/python:3.10-slim"
    )
    assert mirror_reference("docker.io/library/node:20", mirror) == (
        "mirror.example:5000/hub/library/node:20"
    )
    assert mirror_reference("gradio/space:2", mirror) == "mirror.example:5000/hub/gradio/space:2"
    assert mirror_reference("ghcr.io/acme/app:1", mirror) is None
    with pytest.raises(ValueError, match="host"):
        mirror_reference("python:3.10-slim", "mirror example")


@pytest.mark.docker
def test_base_image_command_refuses_a_python_no_debian_release_ships() -> None:
    assert image_id("python:3.12-slim") is None, "python:3.12-slim is on this engine"
    started = time.monotonic()
    done = base_image_command("python:3.12-slim")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "python:3.12-slim" in done.stderr and "no Debian suite ships Python 3.12" in done.stderr
    assert "SPACEHUB_REGISTRY_MIRROR" in done.stderr and "docker load" in done.stderr
    assert time.monotonic() - started < 60, "it gave up without building anything"
    assert image_id("python:3.12-slim") is None


# A registry mirror


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `docker-registry` (Debian's distribution 2.8) on a loopback port."""
    tmp_path = tmp_path_factory.mktemp("registry")
    if shutil.which("docker-registry") is None:
        pytest.fail("docker-registry is not installed: apt-get install docker-registry")
    port = free_port()
    config = tmp_path / "registry.yml"
    config.write_text(
        json.dumps(
            {
                "version": 0.1,
                "storage": {"filesystem": {"rootdirectory": str(tmp_path / "blobs")}},
                "http": {"addr": f"127.0.0.1:{port}"},
            }
        )
    )
    log = (tmp_path / "registry.log").open("wb")
    process = subprocess.Popen(
        ["docker-registry", "serve", str(config)], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        wait_for(
            lambda: httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=5).status_code == 200,
            30,
            "docker-registry to answer",
        )
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)
        log.close()


@pytest.fixture
def probe_image(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A small image of its own (a file of 2 MB), under a Docker Hub-style name: (name, id)."""
    name = f"spacehub-mirror-probe-{uuid.uuid4().hex[:10]}:3.10-slim"
    layer = tmp_path / "layer.tar"
    with tarfile.open(layer, "w") as tar:
        data = os.urandom(2 * 1024 * 1024)
        info = tarfile.TarInfo("opt/données du miroir/poids.bin")
        info.size = len(data)
        tar.addfile(info, fileobj=io.BytesIO(data))
    docker("import", str(layer), name, timeout=120)
    try:
        yield name, image_id(name) or ""
    finally:
        for image in docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split():
            if name.split(":")[0] in image:
                docker("rmi", "--force", image, check=False)


@pytest.mark.docker
def test_a_missing_base_is_pulled_from_the_mirror_and_tagged_as_named(registry, probe_image):
    name, original = probe_image
    in_mirror = f"{registry}/library/{name}"
    docker("tag", name, in_mirror)
    started = time.monotonic()
    docker("push", in_mirror, timeout=300)
    docker("rmi", in_mirror, name)
    assert image_id(name) is None
    pushed = time.monotonic()
    done = base_image_command(name, env={"SPACEHUB_REGISTRY_MIRROR": registry})
    pulled = time.monotonic() - pushed
    print(f"\npush to the mirror {pushed - started:.1f} s, base-image pull {pulled:.1f} s")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"pulled from the registry mirror {registry}" in done.stdout, done.stdout
    assert image_id(name) == original, "the very image the mirror holds, under the name FROM uses"
    assert image_id(in_mirror) is None, "the mirror's name for it is not left behind"


@pytest.mark.docker
def test_a_mirror_that_does_not_answer_is_named_in_the_message(probe_image):
    name, _ = probe_image
    docker("rmi", name)
    silent = f"127.0.0.1:{free_port()}"
    lines: list[str] = []
    with pytest.raises(BaseImageUnavailable) as raised:
        provide_base_image(name, silent, lines.append)
    message = raised.value.message
    assert message.startswith(f"{name}: "), message
    assert f"the registry mirror {silent} did not answer for {silent}/library/{name}" in message
    assert f"now {silent}" in message and "docker load" in message
    assert image_id(name) is None


# node:20-slim built for real, and a user's Dockerfile space FROM it


@pytest.mark.docker
def test_node_slim_is_built_on_the_cached_debian_root_with_node_npm_and_yarn() -> None:
    tag = f"spacehub-test/node:20-slim-{uuid.uuid4().hex[:8]}"
    lines: list[str] = []
    started = time.monotonic()
    try:
        build_base_image(offline_base(NODE_BASE), lines.append, tag=tag)
        print(f"\n{NODE_BASE} built in {time.monotonic() - started:.1f} s: {lines[-1]}")
        facts = in_image(
            tag,
            "node --version; npm --version; npx --version; yarn --version; id node; "
            "echo $LANG; command -v node; cat /etc/debian_version",
        ).split()
        assert facts[0].startswith("v20."), facts
        assert facts[1].startswith("10.") and facts[3].startswith("1.22."), facts
        assert "uid=1000(node)" in facts, facts
        assert "C.UTF-8" in facts and "/usr/local/bin/node" in facts, facts
        assert facts[-1].startswith("12."), "Debian bookworm"
        config = json.loads(docker("image", "inspect", tag).stdout)[0]
        assert config["Config"]["Entrypoint"] == ["docker-entrypoint.sh"]
        assert f"NODE_VERSION={facts[0][1:]}" in config["Config"]["Env"]
        layers = config["RootFS"]["Layers"]
        root = json.loads(docker("image", "inspect", "spacehub-base/debian:bookworm").stdout)[0]
        assert layers[:-1] == root["RootFS"]["Layers"], "one layer on the shared Debian root"
        # The entrypoint runs node for a script or a flag, as the official image's does.
        ran = docker("run", "--rm", "--network", "none", tag, "-p", "process.versions.node")
        assert ran.stdout.strip() == facts[0][1:]
        if image_id(NODE_BASE) is None:  # the space below needs it: no second build
            docker("tag", tag, NODE_BASE)
    finally:
        docker("rmi", tag, check=False)


APP = textwrap.dedent(
    """\
    const http = require("http");
    const fs = require("fs");
    const crypto = require("crypto");
    const path = require("path");
    const folder = path.join(__dirname, "données publiques");
    const note = fs.readFileSync(path.join(folder, "note d'été.txt"), "utf8");
    const weights = fs.readFileSync(path.join(folder, "poids du modèle.bin"));
    http.createServer((request, response) => {
      response.writeHead(200, {"Content-Type": "application/json; charset=utf-8"});
      response.end(JSON.stringify({
        node: process.version,
        uid: process.getuid(),
        note,
        sha256: crypto.createHash("sha256").update(weights).digest("hex"),
        space: process.env.SPACE_ID,
      }));
    }).listen(7860, "0.0.0.0", () => console.log("node space listening on 7860"));
    """
)
DOCKERFILE = textwrap.dedent(
    f"""\
    FROM {NODE_BASE}
    ENV NPM_CONFIG_UPDATE_NOTIFIER=false
    WORKDIR /home/node/app
    COPY --chown=node:node . .
    USER node
    EXPOSE 7860
    CMD ["npm", "start"]
    """
)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, registry: str) -> Iterator[Hub]:
    """A platform whose builds ask the module's registry for a missing base."""
    root = tmp_path_factory.mktemp("base-images")
    platform = start_platform(
        root / "data",
        BUILD_CA_BUNDLE="/etc/ssl/certs/ca-certificates.crt",
        REGISTRY_MIRROR=registry,
    )
    hub = Hub(platform, root / "checkouts", BUILD_TIMEOUT)
    try:
        yield hub
    finally:
        for space_id in hub.created:
            delete_space(platform, space_id)
        platform.stop()


@pytest.mark.docker
def test_users_dockerfile_from_node_slim_answers_http(hub, tmp_path, request):
    explain_failure(request.node, "platform log (tail)", lambda: hub.platform.log()[-6000:])
    started = time.monotonic()
    provided = base_image_command(NODE_BASE)
    assert provided.returncode == 0, provided.stdout + provided.stderr
    print(f"\nspacehub base-image {NODE_BASE}: {time.monotonic() - started:.1f} s")
    weights = os.urandom(3 * 1024 * 1024)
    files = tmp_path / "files"
    (files / "données publiques").mkdir(parents=True)
    (files / "données publiques" / "poids du modèle.bin").write_bytes(weights)
    (files / "données publiques" / "note d'été.txt").write_text("Crème brûlée ☀ à 7860\n")
    (files / "README.md").write_text(readme("Node slim", "docker"))
    (files / "Dockerfile").write_text(DOCKERFILE)
    (files / "server.js").write_text(APP)
    (files / "package.json").write_text(
        json.dumps(
            {"name": "node-slim-space", "private": True, "scripts": {"start": "node server.js"}}
        )
    )
    space_id = hub.create("node-slim", "docker")
    pushed = hub.push(space_id, files)
    hub.running(space_id)
    print(f"push to running: {time.monotonic() - pushed:.1f} s ({hub.build_timeline(space_id)})")
    for form in ("path", "subdomain"):
        answer = hub.get(space_id, form)
        assert answer.status_code == 200, answer.text
        facts = answer.json()
        assert facts["node"].startswith("v20.") and facts["uid"] == 1000, facts
        assert facts["note"] == "Crème brûlée ☀ à 7860\n" and facts["space"] == space_id
        assert facts["sha256"] == hashlib.sha256(weights).hexdigest()


def build_log(hub: Hub, space_id: str) -> str:
    return "".join(hub.api.fetch_space_logs(space_id, build=True))


@pytest.mark.docker
def test_a_missing_base_ends_build_error_naming_the_image_and_its_remedies(hub, registry, request):
    explain_failure(request.node, "platform log (tail)", lambda: hub.platform.log()[-6000:])
    assert image_id("python:3.12-slim") is None and image_id("node:18") is None
    space_id = hub.create("missing-base", "docker")
    files = {
        "README.md": readme("Missing base", "docker"),
        "Dockerfile": 'FROM python:3.12-slim\nCOPY . /app\nCMD ["python3", "/app/app.py"]\n',
        "app.py": "print('never built')\n",
    }
    hub.push(space_id, files)
    runtime = hub.platform.wait_stage(space_id, {"BUILD_ERROR"}, BUILD_TIMEOUT)
    for text in (runtime["errorMessage"], build_log(hub, space_id)):
        assert "python:3.12-slim" in text and "no Debian suite ships Python 3.12" in text, text
        assert "SPACEHUB_REGISTRY_MIRROR" in text and "docker load" in text, text
        assert f"the registry mirror {registry} has no" in text, text
    hub.commit_and_push(space_id, {"Dockerfile": 'FROM node:18\nCMD ["node"]\n'}, "node 18")
    wait_for(
        lambda: "node:18" in hub.platform.runtime(space_id).get("errorMessage", ""),
        BUILD_TIMEOUT,
        "the second build to fail",
    )
    message = hub.platform.runtime(space_id)["errorMessage"]
    assert "`spacehub base-image node:18`" in message and "docker load" in message, message


@pytest.mark.docker
def test_builds_pull_a_missing_base_from_the_registry_mirror(hub, registry, request):
    explain_failure(request.node, "platform log (tail)", lambda: hub.platform.log()[-6000:])
    name = f"spacehub-mirror-probe-{uuid.uuid4().hex[:10]}:3.11-slim"
    in_mirror = f"{registry}/library/{name}"
    docker("tag", "python:3.11-slim", in_mirror)
    try:
        docker("push", in_mirror, timeout=300)
    finally:
        docker("rmi", in_mirror)
    try:
        space_id = hub.create("from-mirror", "docker")
        server = "import http.server as h\nh.test(h.SimpleHTTPRequestHandler, port=7860)\n"
        files = {
            "README.md": readme("From the mirror", "docker"),
            "Dockerfile": f'FROM {name}\nWORKDIR /app\nCOPY . .\nCMD ["python", "serve.py"]\n',
            "serve.py": server,
            "été.txt": "servi depuis le miroir\n",
        }
        hub.push(space_id, files)
        hub.running(space_id)
        assert f"{name} pulled from the registry mirror {registry}" in build_log(hub, space_id)
        assert image_id(in_mirror) is None
        answer = hub.get(space_id, "path", "%C3%A9t%C3%A9.txt")
        assert answer.status_code == 200 and answer.text == "servi depuis le miroir\n"
    finally:
        delete_space(hub.platform, "admin/from-mirror")
        docker("rmi", name, check=False)


# Every base, for real: minutes, so only when asked (SPACEHUB_TEST_ALL_BASES=1)


@pytest.mark.docker
@pytest.mark.skipif(
    os.environ.get("SPACEHUB_TEST_ALL_BASES") != "1", reason="set SPACEHUB_TEST_ALL_BASES=1"
)
@pytest.mark.parametrize("image", known_bases())
def test_every_known_base_builds_with_its_real_version(image: str) -> None:
    recipe = offline_base(image)
    tag = f"spacehub-test/{image.replace(':', ':all-')}"
    started = time.monotonic()
    try:
        build_base_image(recipe, print, tag=tag)
        print(f"\n{image}: built in {time.monotonic() - started:.1f} s")
        if recipe.python is not None:
            facts = in_image(
                tag,
                "python3 --version; python --version; python -m pip --version; "
                "python -m venv /tmp/v && /tmp/v/bin/python -m pip --version; "
                "readlink /usr/local/bin/python; echo $LANG",
            )
            assert facts.startswith(f"Python {recipe.python}."), facts
            assert "/tmp/v/lib" in facts and "/usr/bin/python3" in facts and "C.UTF-8" in facts
        else:
            facts = in_image(tag, "node --version; npm --version; yarn --version; id -u node")
            assert facts.startswith(f"v{recipe.node}."), facts
            assert facts.split()[-1] == "1000"
            if not recipe.slim:
                assert "git version" in in_image(tag, "git --version; g++ --version")
    finally:
        docker("rmi", tag, check=False)

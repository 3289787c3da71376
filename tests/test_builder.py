"""Real builds on the real Docker engine: SDK templates, user Dockerfiles, cache reuse, leaks."""

import hashlib
import json
import os
import shutil
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from spacehub.builder.image import BuildFailed, ImageBuildOptions, build_image
from spacehub.builder.limits import BuildLimits
from spacehub.builder.plan import plan_build
from spacehub.core.release import Artifact
from tests.conftest import EXAMPLES

pytestmark = pytest.mark.docker

OWNER = "buildtest"
BASE_IMAGE = os.environ.get("SPACEHUB_BASE_IMAGE", "python:3.11-slim")
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
# Markers that must never show up in a final image: in the CA file, the index URL, a secret.
CA_MARKER = "spacehub-test-ca-marker-5f1c"
INDEX_URL = "https://spacehub-index-marker:x@pypi.org/simple/"
SECRET = "spacehub-secret-value-9d2e"
SECRET_SHA256 = hashlib.sha256(SECRET.encode()).hexdigest()
LEAK_MARKERS = (CA_MARKER, "spacehub-index-marker", SECRET)
FIND_MARKERS = 'find / -xdev -type f -exec grep -lF -e "$1" -e "$2" -e "$3" {} +; true'


@pytest.fixture(scope="session")
def docker_client(docker_engine: "docker.DockerClient") -> Iterator["docker.DockerClient"]:
    client = docker_engine
    yield client
    for container in client.containers.list(all=True, filters={"label": "spacehub.test=builder"}):
        container.remove(force=True)
    remove_images_of_owner(client, OWNER)
    client.close()


def remove_images_of_owner(client: "docker.DockerClient", owner: str) -> None:
    for image in client.images.list(filters={"label": "spacehub.space"}):
        if image.labels.get("spacehub.space", "").startswith(f"{owner}/"):
            for tag in image.tags:
                client.images.remove(tag, force=True)


@pytest.fixture(scope="session")
def options(tmp_path_factory: pytest.TempPathFactory) -> ImageBuildOptions:
    bundle = tmp_path_factory.mktemp("ca") / "ca.crt"
    # PEM readers skip text outside certificates: the marker makes any copy of the file findable.
    bundle.write_text(HOST_CA.read_text() + f"\n{CA_MARKER}\n")
    return ImageBuildOptions(base_image=BASE_IMAGE, ca_bundle=bundle, pip_index_url=INDEX_URL)


class Builds:
    """Builds a copy of an example as a test space and keeps each log."""

    def __init__(self, tmp: Path, options: ImageBuildOptions) -> None:
        self.tmp = tmp
        self.options = options

    def copy(self, example: str, name: str) -> Path:
        target = self.tmp / name
        if not target.exists():
            shutil.copytree(EXAMPLES / example, target)
            for path in target.rglob("*"):
                path.chmod(0o755 if path.is_dir() else 0o644)
        return target

    def build(
        self, source: Path, name: str, commit: str, secrets: dict[str, str] | None = None
    ) -> tuple[Artifact, list[str], float]:
        lines: list[str] = []
        started = time.monotonic()
        artifact = build_image(
            plan_build(source, None),
            source,
            space_id=f"{OWNER}/{name}",
            label=f"{OWNER}-{name}",
            commit=commit,
            build_args={"GREETING": "hello"},
            build_secrets=secrets or {"TOKEN": SECRET},
            options=self.options,
            log=lines.append,
            limits=BuildLimits(),
        )
        return artifact, lines, time.monotonic() - started


@pytest.fixture(scope="session")
def builds(tmp_path_factory: pytest.TempPathFactory, options: ImageBuildOptions) -> Builds:
    return Builds(tmp_path_factory.mktemp("spaces"), options)


@pytest.fixture(scope="session")
def greet(builds: Builds, docker_client: "docker.DockerClient") -> tuple[Path, Artifact]:
    source = builds.copy("gradio-greet", "greet")
    # `${TOKEN}` makes the secret reach the dependency stage, the only place it may exist.
    (source / "requirements.txt").write_text("six\n# ${TOKEN}\n")
    # As Gradio does for flagging and caches: the app writes into its own folder at start.
    app = (source / "app.py").read_text()
    (source / "app.py").write_text(
        "from pathlib import Path\n"
        "Path('.gradio/flagged').mkdir(parents=True, exist_ok=True)\n"
        "Path('.gradio/flagged/x').write_text('flagged')\n" + app
    )
    artifact, _, seconds = builds.build(source, "greet", "a" * 40)
    print(f"gradio-greet build: {seconds:.1f} s")
    return source, artifact


def wait_for_http(port: str, path: str = "/", deadline: float = 60) -> bytes:
    stop = time.monotonic() + deadline
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
                return answer.read()
        except OSError:
            if time.monotonic() > stop:
                raise
            time.sleep(0.3)


def run_and_fetch(client: "docker.DockerClient", image: str, port: int, path: str = "/") -> bytes:
    container = client.containers.run(
        image,
        detach=True,
        ports={f"{port}/tcp": ("127.0.0.1", None)},
        labels={"spacehub.test": "builder"},
    )
    try:
        container.reload()
        host_port = container.ports[f"{port}/tcp"][0]["HostPort"]
        try:
            return wait_for_http(host_port, path)
        except OSError:
            print(container.logs().decode(errors="replace"))
            raise
    finally:
        container.remove(force=True)


def assert_dependency_steps_cached(log: list[str]) -> None:
    """Each install step is CACHED (BuildKit's plain log: "#9 [4/7] RUN … uv pip install …",
    then "#9 CACHED"; buildx on newer engines orders the steps differently: matched by id)."""
    installs = {line.split()[0] for line in log if "RUN" in line and "uv pip install" in line}
    cached = {line.split()[0] for line in log if line.endswith(" CACHED")}
    assert installs and installs <= cached, (installs, cached)


def layers(client: "docker.DockerClient", image: str) -> list[str]:
    return client.images.get(image).attrs["RootFS"]["Layers"]


def assert_nothing_leaked(client: "docker.DockerClient", image: str) -> None:
    history = json.dumps(client.api.history(image))
    config = json.dumps(client.api.inspect_image(image)["Config"])
    found = client.containers.run(
        image,
        # -xdev: the image's own files only, not /proc, /sys or the mounted /etc/hosts.
        ["sh", "-c", FIND_MARKERS, "sh", *LEAK_MARKERS],
        user="0",
        remove=True,
        entrypoint=[],
    ).decode()
    for marker in LEAK_MARKERS:
        assert marker not in history
        assert marker not in config
    assert found.split() == []


def test_gradio_image_runs_as_user_1000_and_answers_on_7860(
    greet: tuple[Path, Artifact], docker_client: "docker.DockerClient"
) -> None:
    _, artifact = greet
    image = docker_client.images.get(artifact.ref)
    assert image.labels["spacehub.space"] == f"{OWNER}/greet"
    assert image.labels["spacehub.commit"] == "a" * 40
    assert f"spacehub/{OWNER}-greet:{'a' * 12}" in image.tags
    assert image.attrs["Config"]["User"] == "user"
    assert image.attrs["Config"]["WorkingDir"] == "/home/user/app"
    assert b"<html" in run_and_fetch(docker_client, artifact.ref, 7860).lower()
    owners = docker_client.containers.run(
        artifact.ref, ["stat", "-c", "%u %n", "/home/user", "/home/user/app", "/data"], remove=True
    )
    assert owners.decode().split() == [
        "1000",
        "/home/user",
        "1000",
        "/home/user/app",
        "1000",
        "/data",
    ]


def test_sdk_build_settings_and_secrets_stay_out_of_the_final_image(
    greet: tuple[Path, Artifact], docker_client: "docker.DockerClient"
) -> None:
    assert_nothing_leaked(docker_client, greet[1].ref)


def test_code_only_push_reuses_every_dependency_layer(
    greet: tuple[Path, Artifact], builds: Builds, docker_client: "docker.DockerClient"
) -> None:
    source, first = greet
    (source / "app.py").write_text((source / "app.py").read_text().replace("Hello", "Hi"))
    second, log, seconds = builds.build(source, "greet", "b" * 40)
    print(f"code-only rebuild: {seconds:.1f} s")
    before, after = layers(docker_client, first.ref), layers(docker_client, second.ref)
    assert len(before) == len(after) and before[-1] != after[-1]
    assert sum(line.endswith(" CACHED") for line in log) >= 6
    assert_dependency_steps_cached(log)
    assert seconds < 20


def test_spaces_with_identical_dependencies_share_their_layers(
    greet: tuple[Path, Artifact], builds: Builds, docker_client: "docker.DockerClient"
) -> None:
    other = builds.copy("gradio-greet", "greet-twin")
    (other / "requirements.txt").write_text((greet[0] / "requirements.txt").read_text())
    (other / "app.py").write_text(
        "import gradio as gr\ngr.Interface(str, 'text', 'text').launch()\n"
    )
    twin, log, seconds = builds.build(other, "greet-twin", "c" * 40)
    print(f"second space with the same dependencies: {seconds:.1f} s")
    # Every step before the app's files comes from the cache the first space filled. (Which
    # layer a cached step gives back is BuildKit's choice once a --no-cache build, a factory
    # rebuild, has recorded a second result for the same step: so steps are compared.)
    assert_dependency_steps_cached(log)
    assert len(layers(docker_client, twin.ref)) == len(layers(docker_client, greet[1].ref))


def test_docker_space_builds_its_own_dockerfile_with_secrets_and_stays_clean(
    builds: Builds, docker_client: "docker.DockerClient"
) -> None:
    source = builds.copy("docker-fastapi", "fastapi")
    dockerfile = (
        (source / "Dockerfile")
        .read_text()
        .replace(
            "COPY --chown=user . .",
            # What Hugging Face documents for build secrets; must fail if the secret is missing.
            "RUN --mount=type=secret,id=TOKEN,mode=0444,required=true "
            f'test "$(sha256sum < /run/secrets/TOKEN)" = "{SECRET_SHA256}  -"\n'
            "COPY --chown=user . .",
        )
    )
    (source / "Dockerfile").write_text(dockerfile)
    artifact, _, seconds = builds.build(source, "fastapi", "d" * 40)
    print(f"docker-fastapi build: {seconds:.1f} s")
    image = docker_client.images.get(artifact.ref)
    assert image.labels["spacehub.space"] == f"{OWNER}/fastapi"
    assert json.loads(run_and_fetch(docker_client, artifact.ref, 7860)) == {"Hello": "World!"}
    assert_nothing_leaked(docker_client, artifact.ref)
    history = json.dumps(docker_client.api.history(artifact.ref))
    assert "/run/secrets/TOKEN" in history  # the user's own step is still there
    assert "spacehub-index-marker" not in history


def test_unknown_base_image_fails_with_a_message_naming_it(builds: Builds, tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("---\nsdk: docker\n---\n")
    (tmp_path / "Dockerfile").write_text("FROM missing/image:1\nCMD true\n")
    with pytest.raises(BuildFailed) as failure:
        builds.build(tmp_path, "missing", "e" * 40)
    assert "missing/image:1" in failure.value.message
    assert "docker load" in failure.value.message
    assert "never pull" in failure.value.message


def test_failing_step_raises_build_failed_with_the_log_tail(
    builds: Builds, tmp_path: Path, docker_client: "docker.DockerClient"
) -> None:
    (tmp_path / "README.md").write_text("---\nsdk: docker\n---\n")
    (tmp_path / "Dockerfile").write_text(f"FROM {BASE_IMAGE}\nRUN echo about-to-fail && exit 3\n")
    with pytest.raises(BuildFailed) as failure:
        builds.build(tmp_path, "failing", "f" * 40)
    assert "about-to-fail" in failure.value.log_tail
    assert "exit code: 3" in failure.value.message


def test_docker_space_code_only_push_reuses_its_dependency_layers(
    builds: Builds, docker_client: "docker.DockerClient"
) -> None:
    source = builds.copy("docker-fastapi", "fastapi-push")
    first, _, _ = builds.build(source, "fastapi-push", "1" * 40)
    (source / "app.py").write_text((source / "app.py").read_text() + "\n# edited\n")
    second, log, seconds = builds.build(source, "fastapi-push", "2" * 40)
    print(f"docker-fastapi code-only rebuild: {seconds:.1f} s")
    before, after = layers(docker_client, first.ref), layers(docker_client, second.ref)
    assert before[:-1] == after[:-1]
    assert before[-1] != after[-1]
    assert any("pip install" in line for line in log)
    assert not any("Collecting" in line for line in log), "pip ran again"
    assert_nothing_leaked(docker_client, second.ref)
    label = {"label": f"spacehub.space={OWNER}/fastapi-push"}
    tags = {tag for image in docker_client.images.list(filters=label) for tag in image.tags}
    assert tags == {
        f"spacehub/{OWNER}-fastapi-push:{'1' * 12}",
        f"spacehub/{OWNER}-fastapi-push:{'2' * 12}",
    }
    assert not docker_client.images.list(filters={**label, "dangling": True})

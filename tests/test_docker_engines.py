"""scripts/test runs the Docker tests once per engine (20.10 and 26): each pass must reach the
engine it names, and the runtime must read each engine's answers alike."""

import os
import secrets
import shutil
import subprocess

import docker
import pytest

from spacehub.runtime.base import Instance
from spacehub.runtime.docker import DockerRuntime

EXPECTED = os.environ.get("SPACEHUB_EXPECT_DOCKER_SERVER")
BASE_IMAGE = "python:3.11-slim"

pytestmark = pytest.mark.docker
names_its_engine = pytest.mark.skipif(
    not EXPECTED, reason="SPACEHUB_EXPECT_DOCKER_SERVER is unset (scripts/test sets it)"
)


def major(version: str) -> str:
    return version.split(".", 1)[0]


@names_its_engine
def test_the_docker_sdk_reaches_the_engine_this_pass_names(
    docker_engine: docker.DockerClient,
) -> None:
    version = docker_engine.version()["Version"]
    assert major(version) == EXPECTED, (
        f"this pass should test Docker {EXPECTED}.x, but the engine at "
        f"{os.environ.get('DOCKER_HOST', 'the default socket')} is {version}"
    )


@names_its_engine
def test_the_docker_cli_on_path_reaches_the_same_engine(docker_engine: docker.DockerClient) -> None:
    """Builds and `spacehub base-image` run the `docker` CLI: it must not talk to another engine."""
    cli = shutil.which("docker")
    assert cli is not None, "no docker CLI on PATH"
    answer = subprocess.run(
        [cli, "version", "--format", "{{.Server.Version}}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.strip() == docker_engine.version()["Version"]
    assert major(answer.stdout) == EXPECTED


@names_its_engine
def test_the_docker_cli_can_build_with_buildkit() -> None:
    """On Docker >= 23 `docker build` is buildx: the plugin must be found by the CLI on PATH."""
    cli = shutil.which("docker")
    assert cli is not None, "no docker CLI on PATH"
    answer = subprocess.run(
        [cli, "buildx", "version"], capture_output=True, text=True, timeout=30, check=False
    )
    if int(EXPECTED or 0) < 23 and answer.returncode != 0:
        pytest.skip("Docker 20.10's CLI builds with its built-in BuildKit, without buildx")
    assert answer.returncode == 0, answer.stderr
    assert "buildx" in answer.stdout


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_thawing_a_running_app_and_freezing_a_frozen_one_are_harmless(
    docker_engine: docker.DockerClient,
) -> None:
    """Adoption thaws whatever it finds, usually a running app: unpausing that is a 500 ("is not
    paused") on 20.10 and 26 alike, pausing a paused one a 409."""
    prefix = f"spacehubtest-{secrets.token_hex(3)}"
    container = docker_engine.containers.run(
        BASE_IMAGE, ["sleep", "300"], detach=True, labels={f"{prefix}.space": "tester/thaw"}
    )
    try:
        runtime = DockerRuntime(network=prefix, label_prefix=prefix)
        state = {"container_id": container.id, "container_name": container.name}
        instance = Instance("tester/thaw", "0" * 40, "127.0.0.1", 0, state)
        await runtime.thaw(instance)
        assert await runtime.freeze(instance)
        assert await runtime.freeze(instance), "a frozen app is frozen"
        container.reload()
        assert container.status == "paused"
        await runtime.thaw(instance)
        await runtime.thaw(instance)
        container.reload()
        assert container.status == "running"
    finally:
        container.remove(force=True)

"""scripts/test runs the Docker tests once per engine: each pass must reach the engine it names."""

import os
import shutil
import subprocess

import docker
import pytest

EXPECTED = os.environ.get("SPACEHUB_EXPECT_DOCKER_SERVER")

pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(
        not EXPECTED, reason="SPACEHUB_EXPECT_DOCKER_SERVER is unset (scripts/test sets it)"
    ),
]


def major(version: str) -> str:
    return version.split(".", 1)[0]


def test_the_docker_sdk_reaches_the_engine_this_pass_names(
    docker_engine: docker.DockerClient,
) -> None:
    version = docker_engine.version()["Version"]
    assert major(version) == EXPECTED, (
        f"this pass should test Docker {EXPECTED}.x, but the engine at "
        f"{os.environ.get('DOCKER_HOST', 'the default socket')} is {version}"
    )


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

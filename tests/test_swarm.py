"""The swarm runtime with a registry: images built by a `spacehub worker` in another process are
pushed to the registry and run as Swarm services from there; a registry that does not answer is
a build error naming it; what the runtime needs missing stops `serve` at start, saying what to do.

The scenarios every runtime shares are in test_runtime_conformance.py (its `swarm` runs).
"""

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from spacehub.platform.instance_id import INSTANCE_ID_FILE
from tests.conftest import (
    Platform,
    commit_all,
    delete_space,
    free_port,
    git,
    make_checkout,
    push,
    readme,
    remove_labelled_docker_objects,
    start_platform,
    wait_for,
    write_files,
)
from tests.swarm_cluster import Swarm

pytestmark = [pytest.mark.docker, pytest.mark.swarm]

BUILD_TIMEOUT = 240
SITE = {
    "README.md": readme("Swarm site", "docker", app_port="7860"),
    "Dockerfile": (
        "FROM python:3.11-slim\n"
        "RUN useradd -m -u 1000 user\n"
        "USER user\n"
        "WORKDIR /home/user/app\n"
        "COPY --chown=user . .\n"
        'CMD ["python3", "-m", "http.server", "7860"]\n'
    ),
    "index.html": "<p>first release</p>\n",
}


def start_worker(platform: Platform, registry: str, log: Path) -> subprocess.Popen:
    """`spacehub worker` in a process of its own, against serve's database and data dir."""
    env = {
        **platform.env,
        "SPACEHUB_BUILD_WORKERS": "1",
        "SPACEHUB_RUNTIME": "swarm",
        "SPACEHUB_REGISTRY": registry,
    }
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "spacehub", "worker"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def stop_worker(worker: subprocess.Popen) -> None:
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(30)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


def swarm_services(platform: Platform, space_id: str) -> list[dict]:
    import docker

    platform_id = (platform.data_dir / INSTANCE_ID_FILE).read_text().strip()
    labels = [f"spacehub.space={space_id}", f"spacehub.platform={platform_id}"]
    client = docker.from_env(timeout=60)
    try:
        return client.api.services(filters={"label": labels})
    finally:
        client.close()


def published_addresses(service_id: str) -> set[str]:
    """The host addresses the service's running container publishes its ports on."""
    import docker

    client = docker.from_env(timeout=60)
    try:
        (container,) = client.containers.list(
            filters={"label": f"com.docker.swarm.service.id={service_id}"}
        )
        ports = container.attrs["NetworkSettings"]["Ports"]
    finally:
        client.close()
    return {binding["HostIp"] for bindings in ports.values() for binding in bindings or []}


@contextlib.contextmanager
def swarm_serve(swarm: Swarm, data: Path, **settings: str) -> Iterator[Platform]:
    """`serve` on the swarm runtime; its spaces, services, images and volumes removed after."""
    import docker

    platform = start_platform(
        data,
        runtime="swarm",
        registry=swarm.registry,
        build_ca_bundle="/etc/ssl/certs/ca-certificates.crt",
        **settings,
    )
    try:
        yield platform
    finally:
        with platform.api() as client:
            spaces = [space["id"] for space in client.get("/api/spaces").json()]
        for space_id in spaces:
            delete_space(platform, space_id)
        code = platform.stop()
        client = docker.from_env(timeout=60)
        for space_id in spaces:
            for service in client.api.services(filters={"label": f"spacehub.space={space_id}"}):
                client.api.remove_service(service["ID"])
            remove_labelled_docker_objects(client, f"spacehub.space={space_id}")
        client.close()
    assert code == 0, platform.log()[-3000:]


@pytest.fixture
def swarm_platform(swarm: Swarm, tmp_path: Path) -> Iterator[Platform]:
    """`serve` on the swarm runtime, building nothing itself (workers build)."""
    with swarm_serve(swarm, tmp_path / "data", build_workers="0") as platform:
        yield platform


def page(platform: Platform, space_id: str) -> str:
    return httpx.get(f"{platform.apps_url}/apps/{space_id}/", timeout=10).text


def test_image_built_by_a_worker_is_pushed_and_the_swarm_service_runs_it_from_the_registry(
    swarm: Swarm, swarm_platform: Platform, tmp_path: Path
) -> None:
    platform = swarm_platform
    worker = start_worker(platform, swarm.registry, tmp_path / "worker.log")
    try:
        space_id = platform.create_space("swarm-site", sdk="docker")
        checkout = make_checkout(tmp_path / "site", SITE, platform.git_url(space_id))
        assert push(platform, checkout, space_id).returncode == 0
        runtime = platform.wait_stage(space_id, {"RUNNING", "BUILD_ERROR"}, BUILD_TIMEOUT)
        assert runtime["stage"] == "RUNNING", f"{runtime}\n{(tmp_path / 'worker.log').read_text()}"
    finally:
        stop_worker(worker)
    wait_for(lambda: "first release" in page(platform, space_id), 30, "the site's page")

    platform_id = (platform.data_dir / INSTANCE_ID_FILE).read_text().strip()
    repository = f"spacehub/{platform_id}/admin-swarm-site"
    (service,) = swarm_services(platform, space_id)
    image = service["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
    assert image.startswith(f"{swarm.registry}/{repository}:"), image
    assert "@sha256:" in image, "the release is pinned to the pushed digest"
    assert repository in swarm.catalog()
    assert published_addresses(service["ID"]) == {"127.0.0.1"}, "reachable beyond loopback"
    assert "beyond loopback" not in platform.log()
    with platform.api() as client:
        build_log = client.get(f"/api/spaces/{space_id}/logs/build", timeout=60).text
    assert f"to the registry {swarm.registry}" in build_log, build_log[-3000:]
    assert "Pushed" in build_log, build_log[-3000:]


def test_a_registry_that_does_not_answer_is_build_error_naming_it_and_the_old_release_stays(
    swarm: Swarm, swarm_platform: Platform, tmp_path: Path
) -> None:
    platform = swarm_platform
    space_id = platform.create_space("swarm-kept", sdk="docker")
    checkout = make_checkout(tmp_path / "site", SITE, platform.git_url(space_id))
    worker = start_worker(platform, swarm.registry, tmp_path / "worker.log")
    try:
        assert push(platform, checkout, space_id).returncode == 0
        runtime = platform.wait_stage(space_id, {"RUNNING", "BUILD_ERROR"}, BUILD_TIMEOUT)
        assert runtime["stage"] == "RUNNING", runtime
    finally:
        stop_worker(worker)
    wait_for(lambda: "first release" in page(platform, space_id), 30, "the first release")

    down = f"127.0.0.1:{free_port()}"  # nothing listens there
    worker = start_worker(platform, down, tmp_path / "worker-down.log")
    try:
        write_files(checkout, {"index.html": "<p>second release</p>\n"})
        commit_all(checkout, "Second release")
        assert push(platform, checkout, space_id).returncode == 0
        runtime = platform.wait_stage(space_id, {"BUILD_ERROR"}, BUILD_TIMEOUT)
    finally:
        stop_worker(worker)
    message = runtime["errorMessage"]
    assert f"pushing the image to the registry {down} failed" in message, message
    assert "first release" in page(platform, space_id), "the old release is still live"
    (service,) = swarm_services(platform, space_id)
    assert service["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"].startswith(swarm.registry)


def test_old_releases_are_untagged_on_the_node_and_deleted_from_the_registry_but_the_live_one_stays(
    swarm: Swarm, tmp_path: Path
) -> None:
    """Also, deleting the space deletes its images from the registry."""
    import docker

    with swarm_serve(swarm, tmp_path / "data", keep_releases="1") as platform:
        space_id = platform.create_space("swarm-pruned", sdk="docker")
        checkout = make_checkout(tmp_path / "site", SITE, platform.git_url(space_id))
        commits = [git("rev-parse", "HEAD", cwd=checkout).stdout.strip()]
        for release in ("first", "second", "third"):
            if release != "first":
                write_files(checkout, {"index.html": f"<p>{release} release</p>\n"})
                commits.append(commit_all(checkout, f"The {release} release"))
            assert push(platform, checkout, space_id).returncode == 0
            wait_for(lambda r=release: f"{r} release" in page(platform, space_id), 120, release)

        platform_id = (platform.data_dir / INSTANCE_ID_FILE).read_text().strip()
        pushed = f"{swarm.registry}/spacehub/{platform_id}/admin-swarm-pruned:"
        client = docker.from_env(timeout=60)

        def pushed_tags() -> set[str]:
            labels = [f"spacehub.space={space_id}", f"spacehub.platform={platform_id}"]
            found = client.images.list(filters={"label": labels})
            return {tag for image in found for tag in image.tags if tag.startswith(pushed)}

        try:
            expected = {pushed + commit[:12] for commit in commits[-2:]}
            wait_for(lambda: pushed_tags() == expected, 30, f"only {expected}")
        finally:
            client.close()
        (service,) = swarm_services(platform, space_id)
        image = service["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
        assert image.startswith(pushed + commits[-1][:12] + "@sha256:"), image
        repository = f"spacehub/{platform_id}/admin-swarm-pruned"
        kept = {commit[:12] for commit in commits[-2:]}
        wait_for(lambda: swarm.tags(repository) == kept, 30, f"the registry to keep {kept} only")

        delete_space(platform, space_id)
        wait_for(lambda: not swarm.tags(repository), 60, "the registry to keep none")


def serve_fails(tmp_path: Path, **env: str) -> str:
    """Start `serve` expecting it to refuse; its output."""
    environment = {
        **os.environ,
        "SPACEHUB_DATA_DIR": str(tmp_path / "data"),
        "SPACEHUB_PORT": str(free_port()),
        "SPACEHUB_APPS_PORT": str(free_port()),
        "SPACEHUB_SSH_PORT": "0",
        **env,
    }
    result = subprocess.run(
        [sys.executable, "-m", "spacehub", "serve"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_swarm_runtime_without_a_registry_stops_at_start_naming_the_setting(
    tmp_path: Path,
) -> None:
    output = serve_fails(tmp_path, SPACEHUB_RUNTIME="swarm")
    assert "spacehub: the swarm runtime runs images every node pulls" in output, output
    assert "set SPACEHUB_REGISTRY" in output and "Traceback" not in output, output
    output = serve_fails(tmp_path, SPACEHUB_RUNTIME="swarm", SPACEHUB_REGISTRY="reg;id")
    assert "SPACEHUB_REGISTRY: 'reg;id' is not a registry" in output, output


def test_swarm_runtime_on_an_engine_that_is_no_swarm_manager_stops_at_start_with_the_hint(
    tmp_path: Path,
) -> None:
    # The host's engine: the suite never makes it a swarm manager (scripts/test).
    output = serve_fails(
        tmp_path,
        SPACEHUB_RUNTIME="swarm",
        SPACEHUB_REGISTRY="127.0.0.1:5000",
        DOCKER_HOST="unix:///var/run/docker.sock",
    )
    assert "is not (swarm state: inactive)" in output, output
    assert "docker swarm init --advertise-addr 127.0.0.1" in output, output

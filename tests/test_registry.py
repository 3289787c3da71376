"""Deleting release images from a registry (spacehub/builder/registry.py), against Debian's
docker-registry on loopback and images pushed there by the Docker engine: tags a platform no
longer keeps go, a manifest a kept tag names too stays, and a registry that refuses or does not
answer is a RegistryError that says why. (The swarm tests delete through the platform: pruning
and a space's deletion.) And the pushes themselves: a build's time limit and a cancel end a push
to a registry that hangs as they end a build step.
"""

import contextlib
import io
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from spacehub.builder.registry import RegistryError, delete_tags
from tests.conftest import Platform, free_port, make_checkout, push, start_platform
from tests.swarm_cluster import loopback_registry
from tests.test_runtime_conformance import clean_up
from tests.test_swarm import SITE

pytestmark = pytest.mark.docker
REPOSITORY = "spacehub/registry-test/alice-echo"
TIME_LIMIT = 20  # seconds: build_timeout of the platform whose pushes hang


def tags_in(registry: str) -> set[str]:
    answer = httpx.get(f"http://{registry}/v2/{REPOSITORY}/tags/list", timeout=10)
    return set(answer.json().get("tags") or []) if answer.status_code == 200 else set()


def push_images(docker_engine, registry: str, tags_by_content: dict[str, list[str]]) -> None:  # type: ignore[no-untyped-def]
    """One tiny image (FROM scratch, one file) per content, pushed under each of its tags."""
    for content, tags in tags_by_content.items():
        dockerfile = f"FROM scratch\nLABEL org.spacehub.registry-test={content}\n"
        image, _ = docker_engine.images.build(fileobj=io.BytesIO(dockerfile.encode()), rm=True)
        try:
            for tag in tags:
                image.tag(f"{registry}/{REPOSITORY}", tag)
                for event in docker_engine.api.push(
                    f"{registry}/{REPOSITORY}", tag, stream=True, decode=True
                ):
                    assert "error" not in event, event
        finally:
            docker_engine.images.remove(image.id, force=True)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[str]:
    with loopback_registry(tmp_path) as address:
        yield address


def test_tags_not_kept_are_deleted_but_a_manifest_a_kept_tag_names_stays(docker_engine, registry):
    push_images(docker_engine, registry, {"a": ["c0ffee000001"], "b": ["c0ffee000002"]})
    push_images(docker_engine, registry, {"c": ["c0ffee000003", "c0ffee000004"]})
    assert tags_in(registry) == {"c0ffee000001", "c0ffee000002", "c0ffee000003", "c0ffee000004"}

    deleted = delete_tags(registry, REPOSITORY, keep={"c0ffee000002", "c0ffee000004"})

    # c0ffee000003 is the same manifest as the kept c0ffee000004: deleting it would delete both.
    assert deleted == ["c0ffee000001"]
    assert tags_in(registry) == {"c0ffee000002", "c0ffee000003", "c0ffee000004"}
    everything = delete_tags(registry, REPOSITORY, keep=set())
    assert everything == ["c0ffee000002", "c0ffee000003", "c0ffee000004"]
    assert tags_in(registry) == set()
    assert delete_tags(registry, REPOSITORY, keep=set()) == []
    assert delete_tags(registry, "spacehub/registry-test/never-pushed", keep=set()) == []


def test_a_registry_that_does_not_allow_deleting_keeps_the_images_and_says_why(
    docker_engine, tmp_path: Path
):
    with loopback_registry(tmp_path, delete=False) as registry:
        push_images(docker_engine, registry, {"a": ["c0ffee000001"]})
        with pytest.raises(RegistryError) as refused:
            delete_tags(registry, REPOSITORY, keep=set())
        assert tags_in(registry) == {"c0ffee000001"}
    assert f"the registry {registry} keeps the images" in refused.value.message
    assert "storage.delete.enabled" in refused.value.message


def test_a_registry_that_does_not_answer_is_an_error_naming_it():
    down = f"127.0.0.1:{free_port()}"
    with pytest.raises(RegistryError) as error:
        delete_tags(down, REPOSITORY, keep=set())
    assert f"the registry {down} did not answer" in error.value.message
    with pytest.raises(RegistryError, match="is not a registry"):
        delete_tags("reg;istry", REPOSITORY, keep=set())


@contextlib.contextmanager
def registry_that_hangs() -> Iterator[str]:
    """A loopback port that accepts connections and never answers, as a stuck registry."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):  # the listener closed at the end
            while True:
                held.append(listener.accept()[0])

    threading.Thread(target=accept, name="registry-that-hangs", daemon=True).start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()
        for connection in held:
            connection.close()


def build_log(platform: Platform, space_id: str) -> str:
    with platform.api() as client:
        return client.get(f"/api/spaces/{space_id}/logs/build", timeout=30).text


def test_the_time_limit_and_a_cancel_end_a_push_to_a_registry_that_hangs(tmp_path: Path):
    """Each ends the build BUILD_ERROR naming it, soon, as they end a build step."""
    with registry_that_hangs() as registry:
        platform = start_platform(
            tmp_path / "data", runtime="docker", registry=registry, build_timeout=str(TIME_LIMIT)
        )
        created: list[str] = []
        try:
            timed_out = platform.create_space("push-timed-out", sdk="docker")
            created.append(timed_out)
            checkout = make_checkout(tmp_path / "one", SITE, platform.git_url(timed_out))
            started = time.monotonic()
            assert push(platform, checkout, timed_out).returncode == 0
            runtime = platform.wait_stage(timed_out, {"BUILD_ERROR", "RUNNING"}, 120)
            took = time.monotonic() - started
            assert f"time limit of {TIME_LIMIT} s" in runtime.get("errorMessage", ""), runtime
            assert f"to the registry {registry}" in build_log(platform, timed_out)
            assert took < TIME_LIMIT + 10, f"the time limit ended the push after {took:.1f} s"

            cancelled = platform.create_space("push-cancelled", sdk="docker")
            created.append(cancelled)
            checkout = make_checkout(tmp_path / "two", SITE, platform.git_url(cancelled))
            assert push(platform, checkout, cancelled).returncode == 0
            with platform.api() as client:
                # The build's log streams while it runs: the cancel comes once it says "Pushing".
                logs = client.stream("GET", f"/api/spaces/{cancelled}/logs/build", timeout=60)
                with logs as lines:
                    pushing = f"to the registry {registry}"
                    assert any(pushing in line for line in lines.iter_lines()), "no push"
                answer = client.post(f"/api/spaces/{cancelled}/builds/cancel")
            assert answer.status_code == 200, answer.text
            asked = time.monotonic()
            runtime = platform.wait_stage(cancelled, {"BUILD_ERROR", "RUNNING"}, 30)
            took = time.monotonic() - asked
            assert runtime.get("errorMessage") == "build cancelled", runtime
            print(f"the cancel ended the push in {took:.2f} s")
            assert took < 5, f"the cancel ended the push after {took:.1f} s"
        finally:
            clean_up("docker", platform, created)

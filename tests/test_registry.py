"""Deleting release images from a registry (spacehub/builder/registry.py), against Debian's
docker-registry on loopback and images pushed there by the Docker engine: tags a platform no
longer keeps go, a manifest a kept tag names too stays, and a registry that refuses or does not
answer is a RegistryError that says why. (The swarm tests delete through the platform: pruning
and a space's deletion.)
"""

import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from spacehub.builder.registry import RegistryError, delete_tags
from tests.conftest import free_port
from tests.swarm_cluster import loopback_registry

pytestmark = pytest.mark.docker
REPOSITORY = "spacehub/registry-test/alice-echo"


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

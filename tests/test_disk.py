"""Disk kept in check, and platforms sharing one Docker engine (issue 11, items 5 and 7).

Old static releases and images go after each successful build (the live one and the last
`keep_releases` others stay), deleting a space removes what it had on disk, `/api/admin/disk`
shows what the data dir holds, a damaged release is rebuilt, and two platforms with a space
of the same name on one engine never stop or delete each other's containers and images.
"""

import os
import secrets
import shutil
import textwrap
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from spacehub.builder.static import build_static_release, prune_static_releases
from spacehub.core.release import AppSpec, Artifact, Limits
from spacehub.runtime.docker import DockerRuntime
from tests.conftest import (
    ADMIN_TOKEN,
    Platform,
    add_user,
    commit_all,
    explain_failure,
    git,
    make_checkout,
    push,
    remove_labelled_docker_objects,
    start_platform,
    stop_cleanly,
    wait_for,
    write_files,
)

KEEP = 2
README = "---\ntitle: Disk test\nsdk: static\n---\n"
# Names users give files: spaces and non-ASCII letters, in nested folders.
ODD_NAME = "données brutes/résumé d'été ☀.txt"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def page(version: int) -> str:
    return f"<!doctype html><title>v{version}</title><h1>release number {version}</h1>\n"


def app_text(platform: Platform, space_id: str, path: str = "") -> str | None:
    answer = httpx.get(f"{platform.apps_url}/apps/{space_id}/{path}", timeout=10)
    return answer.text if answer.status_code == 200 else None


def serves(platform: Platform, space_id: str, text: str, path: str = "") -> bool:
    return text in (app_text(platform, space_id, path) or "")


def releases_on_disk(platform: Platform, label: str) -> set[str]:
    folder = platform.data_dir / "releases" / label
    if not folder.is_dir():
        return set()
    return {entry.name for entry in folder.iterdir() if not entry.name.startswith(".")}


def push_ok(platform: Platform, checkout: Path, space_id: str) -> str:
    result = push(platform, checkout, space_id, "--force")
    assert result.returncode == 0, result.stderr
    return git("rev-parse", "HEAD", cwd=checkout).stdout.strip()


def disk(platform: Platform, token: str | None = ADMIN_TOKEN) -> httpx.Response:
    with platform.api(token) as client:
        return client.get("/api/admin/disk")


def delete(platform: Platform, space_id: str) -> None:
    with platform.api() as client:
        answer = client.request(
            "DELETE", "/api/repos/delete", json={"name": space_id.split("/")[1], "type": "space"}
        )
    assert answer.status_code == 200, answer.text


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    running = start_platform(tmp_path_factory.mktemp("disk") / "data", KEEP_RELEASES=str(KEEP))
    yield running
    stop_cleanly(running)


@pytest.fixture
def explained(request: pytest.FixtureRequest, hub: Platform) -> Platform:
    explain_failure(request.node, "platform log (tail)", lambda: hub.log()[-6000:])
    return hub


def test_five_pushes_leave_the_live_release_and_the_last_n_and_serve_the_newest(
    explained: Platform, tmp_path: Path
) -> None:
    hub = explained
    space_id = hub.create_space("disk-prune")
    checkout = make_checkout(
        tmp_path / "co", {"README.md": README, "index.html": page(1), ODD_NAME: "un été\n"}
    )
    commits = [push_ok(hub, checkout, space_id)]
    wait_for(lambda: serves(hub, space_id, "release number 1"), 60, "the first release")
    for version in range(2, 6):
        write_files(checkout, {"index.html": page(version)})
        commit_all(checkout, f"version {version}")
        commits.append(push_ok(hub, checkout, space_id))
        wait_for(lambda v=version: serves(hub, space_id, f"release number {v}"), 60, f"v{version}")

    expected = set(commits[-(KEEP + 1) :])  # the live one (the newest) and KEEP before it
    wait_for(
        lambda: releases_on_disk(hub, "admin-disk-prune") == expected,
        30,
        f"only {expected} on disk (have {releases_on_disk(hub, 'admin-disk-prune')})",
    )
    assert serves(hub, space_id, "release number 5")
    assert app_text(hub, space_id, ODD_NAME.replace(" ", "%20")) == "un été\n"
    for gone in commits[: -(KEEP + 1)]:
        assert not (hub.data_dir / "releases" / "admin-disk-prune" / gone).exists()


def test_deleting_a_space_removes_its_repository_and_releases(
    explained: Platform, tmp_path: Path
) -> None:
    hub = explained
    space_id = hub.create_space("disk-gone")
    checkout = make_checkout(tmp_path / "co", {"README.md": README, "index.html": page(1)})
    push_ok(hub, checkout, space_id)
    wait_for(lambda: serves(hub, space_id, "release number 1"), 60, "the release")
    releases = hub.data_dir / "releases" / "admin-disk-gone"
    repo = hub.data_dir / "repos" / "admin" / "disk-gone.git"
    assert releases.is_dir() and any(releases.iterdir())
    assert repo.exists() or (hub.data_dir / "repos" / "admin" / "disk-gone").exists()

    delete(hub, space_id)

    assert not releases.exists()
    assert not repo.exists() and not (hub.data_dir / "repos" / "admin" / "disk-gone").exists()


def test_disk_api_answers_admins_only_and_grows_after_a_5_mb_push(
    explained: Platform, tmp_path: Path
) -> None:
    hub = explained
    reader = add_user(hub, "disk-reader", "write")
    assert disk(hub, reader).status_code == 403
    assert disk(hub, None).status_code == 401
    before = disk(hub)
    assert before.status_code == 200, before.text
    assert before.json()["keepReleases"] == KEEP
    assert before.json()["bytes"]["database"] > 0

    space_id = hub.create_space("disk-weights")
    checkout = make_checkout(tmp_path / "co", {"README.md": README, "index.html": page(1)})
    weights = checkout / "model weights" / "pesos del modelo ñ.bin"
    weights.parent.mkdir()
    weights.write_bytes(os.urandom(5 * 1024 * 1024))  # incompressible, as weights are
    commit_all(checkout, "add 5 MB of weights")
    push_ok(hub, checkout, space_id)
    wait_for(lambda: serves(hub, space_id, "release number 1"), 60, "the release")

    after = disk(hub).json()
    grown = {key: after["bytes"][key] - before.json()["bytes"][key] for key in after["bytes"]}
    assert grown["repos"] >= 5 * 1024 * 1024, grown
    assert grown["releases"] >= 5 * 1024 * 1024, grown
    assert grown["logs"] > 0, grown
    assert grown["total"] >= 10 * 1024 * 1024, grown
    assert after["releases"] == before.json()["releases"] + 1


def test_factory_rebuild_replaces_a_damaged_release(explained: Platform, tmp_path: Path) -> None:
    hub = explained
    space_id = hub.create_space("disk-damaged")
    files = {"README.md": README, "index.html": page(1), "style.css": "h1 { color: teal }\n"}
    checkout = make_checkout(tmp_path / "co", {**files, ODD_NAME: "un été\n"})
    commit = push_ok(hub, checkout, space_id)
    wait_for(lambda: serves(hub, space_id, "release number 1"), 60, "the release")
    release = hub.data_dir / "releases" / "admin-disk-damaged" / commit
    # What a crash or a full disk in the middle of a copy leaves: a file short, one truncated.
    (release / ODD_NAME).unlink()
    (release / "index.html").write_text("<h1>rel")
    assert app_text(hub, space_id, ODD_NAME.replace(" ", "%20")) is None

    with hub.api() as client:
        answer = client.post(f"/api/spaces/{space_id}/restart", params={"factory": "true"})
    assert answer.status_code == 200, answer.text

    wait_for(lambda: serves(hub, space_id, "release number 1"), 60, "the rebuilt release")
    assert app_text(hub, space_id, ODD_NAME.replace(" ", "%20")) == "un été\n"
    assert app_text(hub, space_id, "style.css") == files["style.css"]
    assert not [entry for entry in release.parent.iterdir() if entry.name.startswith(".")]


def test_build_rewrites_an_incomplete_release_and_reuses_a_whole_one(tmp_path: Path) -> None:
    source = tmp_path / "checkout"
    write_files(source, {"index.html": page(1), ODD_NAME: "un été\n", "a/b/c.js": "1;\n"})
    releases = tmp_path / "releases"
    commit = "c" * 40
    half = releases / commit
    write_files(half, {"index.html": page(1)})  # the rest never arrived

    artifact = build_static_release(source, releases, commit)

    assert (Path(artifact.ref) / ODD_NAME).read_text() == "un été\n"
    assert (Path(artifact.ref) / "a/b/c.js").read_text() == "1;\n"
    marker = os.stat(Path(artifact.ref) / "index.html").st_ino
    build_static_release(source, releases, commit)
    assert os.stat(Path(artifact.ref) / "index.html").st_ino == marker, "a whole one is reused"
    assert sorted(entry.name for entry in releases.iterdir()) == [commit]


def test_pruning_keeps_the_named_releases_and_copies_in_progress(tmp_path: Path) -> None:
    releases = tmp_path / "releases"
    for name in ("a" * 40, "b" * 40, "c" * 40, f".{'d' * 40}.partial-{os.getpid()}"):
        write_files(releases / name, {"index.html": "x"})
    dead = releases / f".{'e' * 40}.partial-999999999"
    write_files(dead, {"index.html": "x"})

    removed = prune_static_releases(releases, {"a" * 40, "c" * 40})

    assert sorted(removed) == sorted(["b" * 40, dead.name])
    left = sorted(entry.name for entry in releases.iterdir())
    assert left == sorted(["a" * 40, "c" * 40, f".{'d' * 40}.partial-{os.getpid()}"])


# Docker: two platforms on one engine, and image pruning

SERVER = textwrap.dedent(
    """\
    import http.server, os

    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = os.environ.get("MESSAGE", "hello from {version}").encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    http.server.ThreadingHTTPServer(("0.0.0.0", 7860), Hello).serve_forever()
    """
)
DOCKERFILE = textwrap.dedent(
    """\
    FROM python:3.11-slim
    RUN useradd -m -u 1000 user
    USER user
    WORKDIR /home/user/app
    COPY --chown=user . .
    CMD ["python3", "-u", "server.py"]
    """
)


def docker_app(version: str) -> dict[str, str]:
    return {
        "README.md": "---\ntitle: Twin\nsdk: docker\n---\n",
        "Dockerfile": DOCKERFILE,
        "server.py": SERVER.replace("{version}", version),
    }


def instance_id(platform: Platform) -> str:
    return (platform.data_dir / "instance-id").read_text().strip()


def containers(docker_engine, platform_id: str, space_id: str) -> list:
    labels = [f"spacehub.space={space_id}", f"spacehub.platform={platform_id}"]
    return docker_engine.containers.list(all=True, filters={"label": labels})


def images(docker_engine, platform_id: str, space_id: str) -> list[dict]:
    """The API's own list, not the SDK model's: that inspects each image it lists, and fails
    with ImageNotFound when the platform prunes one in between (it did on Docker 26)."""
    labels = [f"spacehub.space={space_id}", f"spacehub.platform={platform_id}"]
    return docker_engine.api.images(filters={"label": labels})


def app_answers(platform: Platform, space_id: str, text: str) -> bool:
    return serves(platform, space_id, text)


def remove_docker_objects(docker_engine, platform_id: str) -> None:
    """Whatever a test platform left on the engine, found by its instance id alone."""
    remove_labelled_docker_objects(docker_engine, f"spacehub.platform={platform_id}")


@pytest.mark.docker
def test_two_platforms_with_the_same_space_on_one_engine_leave_each_other_alone(
    request: pytest.FixtureRequest, docker_engine, tmp_path: Path
) -> None:
    first = start_platform(tmp_path / "first")
    second = start_platform(tmp_path / "second")
    platforms = {"first": first, "second": second}
    ids = {name: instance_id(p) for name, p in platforms.items()}
    for name, running in platforms.items():
        explain_failure(request.node, f"{name} platform log", lambda r=running: r.log()[-5000:])
    try:
        assert ids["first"] != ids["second"]
        space_id = "admin/twin"
        for name, running in platforms.items():
            assert running.create_space("twin", sdk="docker") == space_id
            checkout = make_checkout(tmp_path / f"co-{name}", docker_app(name))
            push_ok(running, checkout, space_id)
        for name, running in platforms.items():
            wait_for(
                lambda r=running, n=name: app_answers(r, space_id, f"hello from {n}"),
                240,
                f"the {name} platform's app",
            )
        (theirs,) = containers(docker_engine, ids["second"], space_id)
        (ours,) = containers(docker_engine, ids["first"], space_id)

        # A restart of the first platform adopts its container and leaves the other's alone.
        stop_cleanly(first)
        first = platforms["first"] = start_platform(first.data_dir, port=first.port)
        assert first.runtime(space_id)["stage"] == "RUNNING"
        theirs.reload()
        ours.reload()
        assert theirs.status == "running", "the other platform's container was stopped"
        assert ours.status == "running"
        assert [c.id for c in containers(docker_engine, ids["first"], space_id)] == [ours.id]
        assert app_answers(second, space_id, "hello from second")
        assert app_answers(first, space_id, "hello from first")

        # Deleting the space on one platform removes its container and images only.
        delete(first, space_id)
        assert containers(docker_engine, ids["first"], space_id) == []
        assert images(docker_engine, ids["first"], space_id) == []
        theirs.reload()
        assert theirs.status == "running"
        assert images(docker_engine, ids["second"], space_id)
        assert app_answers(second, space_id, "hello from second")
    finally:
        for running in platforms.values():
            running.stop()
        for platform_id in ids.values():
            remove_docker_objects(docker_engine, platform_id)


@pytest.mark.docker
def test_code_only_pushes_keep_the_live_image_and_the_last_n_and_one_build_cache(
    request: pytest.FixtureRequest, docker_engine, tmp_path: Path
) -> None:
    # With a CA bundle, the old classic-builder path left build-only parent and cache images.
    running = start_platform(tmp_path / "data", KEEP_RELEASES="1", BUILD_CA_BUNDLE=CA_BUNDLE)
    explain_failure(request.node, "platform log", lambda: running.log()[-6000:])
    platform_id = instance_id(running)
    space_id = running.create_space("pruned", sdk="docker")
    checkout = make_checkout(tmp_path / "co", docker_app("v1"))
    try:
        commits = [push_ok(running, checkout, space_id)]
        wait_for(lambda: app_answers(running, space_id, "hello from v1"), 240, "v1")
        for version in ("v2", "v3"):
            write_files(checkout, {"server.py": SERVER.replace("{version}", version)})
            commit_all(checkout, f"code only: {version}")
            commits.append(push_ok(running, checkout, space_id))
            wait_for(
                lambda v=version: app_answers(running, space_id, f"hello from {v}"), 240, version
            )

        repository = f"spacehub/{platform_id}/admin-pruned"
        expected = {f"{repository}:{commit[:12]}" for commit in commits[-2:]}

        def release_tags() -> set[str]:
            return {
                tag
                for image in images(docker_engine, platform_id, space_id)
                for tag in image["RepoTags"] or []
                if tag.startswith(f"{repository}:")
            }

        wait_for(lambda: release_tags() == expected, 30, f"only the images {expected}")
        assert disk(running).json()["images"] == len(expected)
        build_only = [
            tag
            for image in images(docker_engine, platform_id, space_id)
            for tag in image["RepoTags"] or []
            if not tag.startswith(f"{repository}:")
        ]
        assert build_only == [], "BuildKit builds leave no build-only images"
        (live,) = containers(docker_engine, platform_id, space_id)
        assert live.labels["spacehub.commit"] == commits[-1]
        assert app_answers(running, space_id, "hello from v3")

        delete(running, space_id)
        assert images(docker_engine, platform_id, space_id) == []
        assert containers(docker_engine, platform_id, space_id) == []
    finally:
        running.stop()
        remove_docker_objects(docker_engine, platform_id)
        shutil.rmtree(tmp_path / "co", ignore_errors=True)


@pytest.mark.docker
def test_runtimes_of_two_platforms_list_adopt_and_remove_only_their_own(docker_engine) -> None:
    prefix = f"spacehubtest-{secrets.token_hex(3)}"
    ours = DockerRuntime(network=prefix, label_prefix=prefix, platform_id="a1b2c3")
    theirs = DockerRuntime(network=prefix, label_prefix=prefix, platform_id="d4e5f6")
    commit = "0123456789abcdef0123456789abcdef01234567"
    spec = AppSpec(
        space_id="alice/same-name",
        commit=commit,
        artifact=Artifact(kind="image", ref="python:3.11-slim", commit=commit),
        port=7860,
        limits=Limits(cpus=0.25, memory_bytes=64 * 1024 * 1024, pids=32),
        persistent_storage=True,
    )

    async def scenario() -> None:
        mine, other = await ours.deploy(spec), await theirs.deploy(spec)
        assert [i.state["container_id"] for i in await ours.list_instances()] == [
            mine.state["container_id"]
        ]
        assert await ours.adopt(other.state) is None, "another platform's container is not ours"
        adopted = await ours.adopt(mine.state)
        assert adopted is not None and adopted.state == mine.state
        volumes = {v.name for v in docker_engine.volumes.list(filters={"label": f"{prefix}.space"})}
        assert volumes == {
            f"{prefix}-a1b2c3-alice-same-name-data",
            f"{prefix}-d4e5f6-alice-same-name-data",
        }

        await ours.remove_space("alice/same-name")

        assert await ours.list_instances() == []
        assert [i.state["container_id"] for i in await theirs.list_instances()] == [
            other.state["container_id"]
        ]
        volumes = {v.name for v in docker_engine.volumes.list(filters={"label": f"{prefix}.space"})}
        assert volumes == {f"{prefix}-d4e5f6-alice-same-name-data"}

    try:
        anyio.run(scenario)
    finally:
        space = {"label": f"{prefix}.space"}
        for container in docker_engine.containers.list(all=True, filters=space):
            container.remove(force=True, v=True)
        for volume in docker_engine.volumes.list(filters=space):
            volume.remove(force=True)
        for network in docker_engine.networks.list(names=[prefix]):
            network.remove()

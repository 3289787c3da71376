"""Git LFS against a real `spacehub serve`, with the real `git` and `git-lfs`, through the proxy.

A Hub space's `.gitattributes` sends binaries to LFS: the push uploads them through the batch
API, and clones, builds and the app must see the real bytes, never the pointers.
"""

import hashlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import (
    ADMIN_TOKEN,
    Platform,
    add_user,
    git,
    start_platform,
    stop_cleanly,
    wait_for,
)
from tests.test_git_push_sizes import random_file, served_sha256

MB = 1024 * 1024
LFS_JSON = "application/vnd.git-lfs+json"
GITATTRIBUTES = (
    "*.bin filter=lfs diff=lfs merge=lfs -text\n*.png filter=lfs diff=lfs merge=lfs -text\n"
)
README = "---\ntitle: LFS files\nsdk: static\n---\n"
INDEX = "<!doctype html><title>weights</title><p>Model weights live in LFS.</p>\n"


@pytest.fixture(scope="module", autouse=True)
def user_git_config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A global git config of the test's own, with LFS installed as a user would do."""
    config = tmp_path_factory.mktemp("home") / "gitconfig"
    config.write_text("")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GIT_CONFIG_GLOBAL", str(config))
        git("lfs", "install")
        yield


def run_git(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """git with a long timeout (150 MB uploads), checked by the caller."""
    return subprocess.run(
        ["git", *args],
        cwd=cwd,
        env={**os.environ, "GIT_TERMINAL_PROMPT": "0", **env},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def lfs_checkout(platform: Platform, space_id: str, directory: Path, token: str) -> Path:
    """A clone of the space, LFS on, with the Hub's LFS patterns and a static site."""
    git("clone", "--quiet", platform.git_url(space_id, token), str(directory))
    git("checkout", "--quiet", "-B", "main", cwd=directory)  # also when the space is empty
    git("lfs", "install", "--local", cwd=directory)
    (directory / ".gitattributes").write_text(GITATTRIBUTES)
    (directory / "README.md").write_text(README)
    (directory / "index.html").write_text(INDEX)
    return directory


def commit_and_push(checkout: Path, message: str, **env: str) -> subprocess.CompletedProcess:
    git("add", "-A", cwd=checkout)
    git("commit", "--quiet", "-m", message, cwd=checkout)
    return run_git("push", "origin", "main", cwd=checkout, **env)


def remote_main(platform: Platform, space_id: str) -> str:
    answer = git("ls-remote", platform.git_url(space_id), "refs/heads/main")
    return answer.stdout.split()[0] if answer.stdout else ""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(MB):
            digest.update(chunk)
    return digest.hexdigest()


def batch(
    platform: Platform,
    space_id: str,
    operation: str,
    objects: list[tuple[str, int]],
    token: str | None = ADMIN_TOKEN,
) -> httpx.Response:
    """A batch request as huggingface_hub's legacy LFS path sends it."""
    headers = {"Accept": LFS_JSON, "Content-Type": LFS_JSON}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = {
        "operation": operation,
        "transfers": ["basic", "multipart"],
        "objects": [{"oid": oid, "size": size} for oid, size in objects],
        "hash_algo": "sha256",
        "ref": {"name": "main"},
    }
    return httpx.post(
        f"{platform.url}/spaces/{space_id}.git/info/lfs/objects/batch",
        json=body,
        headers=headers,
        timeout=30,
    )


def oid_of(data: bytes) -> tuple[str, int]:
    return hashlib.sha256(data).hexdigest(), len(data)


@pytest.mark.parametrize("size_mb", [20, 150])
def test_lfs_push_is_cloned_and_served_byte_for_byte(
    shared_platform: Platform, tmp_path: Path, size_mb: int
):
    space_id = shared_platform.create_space(f"lfs-weights-{size_mb}")
    checkout = lfs_checkout(shared_platform, space_id, tmp_path / "site", ADMIN_TOKEN)
    weights = f"poids du modèle {size_mb} MB.bin"
    image = "images/logo é.png"
    sums = {
        weights: random_file(checkout / weights, size_mb * MB),
        image: random_file(checkout / image, 300 * 1024),
    }
    git("add", "-A", cwd=checkout)
    git("commit", "--quiet", "-m", "Add weights", cwd=checkout)
    tracked = git("lfs", "ls-files", "--name-only", cwd=checkout).stdout.splitlines()
    assert sorted(tracked) == sorted(sums), "the test's files must go through LFS"

    started = time.monotonic()
    pushed = run_git("push", "origin", "main", cwd=checkout)
    lfs_seconds = time.monotonic() - started

    assert pushed.returncode == 0, pushed.stderr
    assert "lock" not in pushed.stderr.lower(), "git-lfs warned about locking:\n" + pushed.stderr
    assert ADMIN_TOKEN not in shared_platform.log()

    shared_platform.wait_stage(space_id, {"RUNNING"}, timeout=120)
    for name, expected in sums.items():
        assert served_sha256(shared_platform, space_id, name) == expected, name

    clone = tmp_path / "clone"
    git("clone", "--quiet", shared_platform.git_url(space_id), str(clone))
    for name, expected in sums.items():
        assert sha256_of(clone / name) == expected, f"{name} in a fresh clone"

    if size_mb == 150:
        bare = tmp_path / "plain.git"
        git("init", "--quiet", "--bare", str(bare))
        plain = tmp_path / "plain"
        plain.mkdir()
        git("init", "--quiet", "--initial-branch=main", cwd=plain)
        shutil.copy(checkout / weights, plain / weights)
        git("add", "-A", cwd=plain)
        git("-c", "user.name=T", "-c", "user.email=t@e", "commit", "-qm", "w", cwd=plain)
        started = time.monotonic()
        plain_push = run_git("push", "--quiet", str(bare), "main", cwd=plain)
        plain_seconds = time.monotonic() - started
        assert plain_push.returncode == 0, plain_push.stderr
        print(
            f"\n150 MB LFS push through the proxy: {lfs_seconds:.1f} s; plain git push of the "
            f"same file to a local bare repository: {plain_seconds:.1f} s "
            f"(ratio {lfs_seconds / plain_seconds:.1f})"
        )
    else:
        print(f"\n{size_mb} MB LFS push through the proxy: {lfs_seconds:.1f} s")


def test_blob_content_reads_the_object_behind_a_pointer(shared_platform: Platform, tmp_path: Path):
    """The function the file API uses gives the real bytes of LFS files and of plain ones."""
    from spacehub.platform.git.files import file_content
    from spacehub.platform.git.repos import head_commit, repo_path

    space_id = shared_platform.create_space("lfs-blob-reader")
    checkout = lfs_checkout(shared_platform, space_id, tmp_path / "site", ADMIN_TOKEN)
    expected = random_file(checkout / "vocab table.bin", 2 * MB)
    pushed = commit_and_push(checkout, "Add vocab")
    assert pushed.returncode == 0, pushed.stderr

    owner, _, name = space_id.partition("/")
    repo = repo_path(shared_platform.data_dir / "repos", owner, name)
    commit = head_commit(repo)
    assert commit is not None
    content = file_content(repo, shared_platform.data_dir, commit, "vocab table.bin")
    assert content.lfs_oid == expected and content.size == 2 * MB
    with content.open() as stored:
        assert hashlib.sha256(stored.read()).hexdigest() == expected
    page = file_content(repo, shared_platform.data_dir, commit, "index.html")
    assert page.lfs_oid is None
    with page.open() as stored:
        assert stored.read().decode() == INDEX


def test_read_only_token_cannot_upload(shared_platform: Platform, tmp_path: Path):
    space_id = shared_platform.create_space("lfs-read-only")
    reader = add_user(shared_platform, "lfs-reader", role="read")
    before = remote_main(shared_platform, space_id)
    checkout = lfs_checkout(shared_platform, space_id, tmp_path / "site", reader)
    random_file(checkout / "weights.bin", 1 * MB)

    pushed = commit_and_push(checkout, "Try with a read token")

    assert pushed.returncode != 0
    assert "this token is read-only: pushing needs a 'write' token" in pushed.stderr, pushed.stderr
    assert remote_main(shared_platform, space_id) == before
    refused = batch(shared_platform, space_id, "upload", [oid_of(b"x" * 10)], token=reader)
    assert refused.status_code == 403
    assert refused.headers["content-type"] == LFS_JSON
    assert "read-only" in refused.json()["message"]


def test_private_space_objects_are_not_given_to_strangers(
    shared_platform: Platform, tmp_path: Path
):
    owner_token = add_user(shared_platform, "lfs-owner")
    stranger = add_user(shared_platform, "lfs-stranger")
    space_id = shared_platform.create_space(
        "lfs-owner/secret-model", private=True, token=owner_token
    )
    checkout = lfs_checkout(shared_platform, space_id, tmp_path / "site", owner_token)
    data = os.urandom(3 * MB)
    (checkout / "private weights.bin").write_bytes(data)
    assert commit_and_push(checkout, "Private weights").returncode == 0
    wanted = [oid_of(data)]

    anonymous = batch(shared_platform, space_id, "download", wanted, token=None)
    assert anonymous.status_code == 401
    assert anonymous.headers["LFS-Authenticate"].startswith("Basic")
    assert anonymous.headers["WWW-Authenticate"].startswith("Basic")
    foreign = batch(shared_platform, space_id, "download", wanted, token=stranger)
    assert foreign.status_code == 404
    assert foreign.json() == {"message": "Repository not found"}
    assert foreign.headers["X-Error-Code"] == "RepoNotFound"
    cloned = git(
        "clone", shared_platform.git_url(space_id, stranger), str(tmp_path / "x"), check=False
    )
    assert cloned.returncode != 0

    allowed = batch(shared_platform, space_id, "download", wanted, token=owner_token)
    assert allowed.status_code == 200, allowed.text
    assert owner_token not in allowed.text
    href = allowed.json()["objects"][0]["actions"]["download"]["href"]
    assert httpx.get(href, timeout=30).content == data  # the link is its own credential
    tampered = href.replace("signature=", "signature=0")
    assert httpx.get(tampered, timeout=30).status_code == 403


def test_upload_is_checked_against_its_oid(shared_platform: Platform, tmp_path: Path):
    """huggingface_hub's legacy path: batch, PUT with no auth header at all, then verify."""
    space_id = shared_platform.create_space("lfs-checked")
    data = os.urandom(2 * MB)
    oid, size = oid_of(data)

    answer = batch(shared_platform, space_id, "upload", [(oid, size)])
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == LFS_JSON
    assert answer.json()["transfer"] == "basic"  # even though multipart was offered
    assert ADMIN_TOKEN not in answer.text
    actions = answer.json()["objects"][0]["actions"]
    upload, verify = actions["upload"]["href"], actions["verify"]["href"]

    forged = os.urandom(size)
    refused = httpx.put(upload, content=forged, timeout=60)
    assert refused.status_code == 422
    assert refused.json()["message"] == f"object content does not match its oid {oid}"
    short = httpx.put(upload, content=data[:-1], timeout=60)
    assert short.status_code == 422
    assert httpx.post(verify, json={"oid": oid, "size": size}, timeout=30).status_code == 404
    missing = batch(shared_platform, space_id, "download", [(oid, size)]).json()["objects"][0]
    assert missing["error"]["code"] == 404

    assert httpx.put(upload, content=data, timeout=60).status_code == 200
    verified = httpx.post(verify, json={"oid": oid, "size": size}, timeout=30)
    assert verified.status_code == 200, verified.text
    again = batch(shared_platform, space_id, "upload", [(oid, size)]).json()["objects"][0]
    assert "actions" not in again  # stored: nothing to upload
    bad = batch(shared_platform, space_id, "upload", [("not-a-sha", 3)]).json()["objects"][0]
    assert bad["error"]["code"] == 422


def test_upload_cut_off_midway_leaves_nothing_behind(shared_platform: Platform):
    space_id = shared_platform.create_space("lfs-cut-off")
    data = os.urandom(4 * MB)
    oid, size = oid_of(data)
    actions = batch(shared_platform, space_id, "upload", [(oid, size)]).json()["objects"][0]
    upload = httpx.URL(actions["actions"]["upload"]["href"])
    objects = shared_platform.data_dir / "lfs" / "objects"

    with socket.create_connection(("127.0.0.1", shared_platform.port), timeout=30) as client:
        head = (
            f"PUT {upload.raw_path.decode()} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Length: {size}\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        client.sendall(head.encode() + data[: size // 2])
        wait_for(lambda: list(objects.rglob(".incoming-*")), 30, "the upload to be under way")

    wait_for(lambda: not list(objects.rglob(".incoming-*")), 30, "the partial upload to be removed")
    assert not list(objects.rglob(oid))
    verify = actions["actions"]["verify"]["href"]
    assert httpx.post(verify, json={"oid": oid, "size": size}, timeout=30).status_code == 404


def test_objects_of_one_space_are_not_readable_through_another(
    shared_platform: Platform, tmp_path: Path
):
    victim = shared_platform.create_space("lfs-victim")
    checkout = lfs_checkout(shared_platform, victim, tmp_path / "victim", ADMIN_TOKEN)
    data = os.urandom(1 * MB)
    (checkout / "model.bin").write_bytes(data)
    assert commit_and_push(checkout, "Weights").returncode == 0
    wanted = [oid_of(data)]
    mallory = add_user(shared_platform, "lfs-mallory")
    other = shared_platform.create_space("lfs-mallory/thief", token=mallory)

    through_other = batch(shared_platform, other, "download", wanted, token=mallory)
    assert through_other.status_code == 200
    assert through_other.json()["objects"][0]["error"] == {
        "code": 404,
        "message": "Object does not exist",
    }
    # Knowing the oid is not owning the bytes: the upload is asked for, not skipped.
    claim = batch(shared_platform, other, "upload", wanted, token=mallory).json()["objects"][0]
    assert "upload" in claim["actions"]

    # A pointer committed by hand (no upload) does not build from another space's object.
    thief = lfs_checkout(shared_platform, other, tmp_path / "thief", mallory)
    oid, size = wanted[0]
    pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n"
    (thief / ".gitattributes").write_text("")
    (thief / "stolen.bin").write_text(pointer)
    pushed = commit_and_push(thief, "Pointer only", GIT_LFS_SKIP_PUSH="1")
    assert pushed.returncode == 0, pushed.stderr
    runtime = shared_platform.wait_stage(other, {"BUILD_ERROR", "RUNNING"}, timeout=60)
    assert runtime["stage"] == "BUILD_ERROR", runtime
    message = runtime["errorMessage"]
    assert "stolen.bin" in message and "git lfs push" in message, message
    leaked = httpx.get(f"{shared_platform.apps_url}/apps/{other}/stolen.bin", timeout=10)
    assert leaked.content != data


def test_lfs_object_over_the_push_cap_is_refused(tmp_path: Path):
    # API bodies are capped lower still: LFS uploads count against the push cap only.
    running = start_platform(
        tmp_path / "data", max_push_bytes=str(5 * MB), max_request_bytes=str(1 * MB)
    )
    try:
        space_id = running.create_space("capped")
        before = remote_main(running, space_id)
        checkout = lfs_checkout(running, space_id, tmp_path / "site", ADMIN_TOKEN)
        random_file(checkout / "too big.bin", 6 * MB)

        pushed = commit_and_push(checkout, "Too big")

        assert pushed.returncode != 0
        assert f"push over the limit of {5 * MB} bytes" in pushed.stderr, pushed.stderr
        assert remote_main(running, space_id) == before
        two = [oid_of(b"a" * 10)[0], oid_of(b"b" * 10)[0]]
        answer = batch(running, space_id, "upload", [(two[0], 3 * MB), (two[1], 3 * MB)])
        errors = [item["error"] for item in answer.json()["objects"]]
        assert [error["code"] for error in errors] == [413, 413], "a batch over the cap"
        assert "SPACEHUB_MAX_PUSH_BYTES" in errors[0]["message"]

        (checkout / "too big.bin").unlink()
        expected = random_file(checkout / "fits.bin", 4 * MB)
        git("add", "-A", cwd=checkout)
        git("commit", "--quiet", "--amend", "-m", "Fits", cwd=checkout)
        fits = run_git("push", "origin", "main", cwd=checkout)
        assert fits.returncode == 0, fits.stderr
        running.wait_stage(space_id, {"RUNNING"}, timeout=60)
        assert served_sha256(running, space_id, "fits.bin") == expected
    finally:
        stop_cleanly(running)


def test_duplicated_repository_shares_objects(tmp_path: Path):
    from spacehub.platform.git.lfs_store import grant_object, is_granted, share_objects

    source, target = tmp_path / "a.git", tmp_path / "b.git"
    oids = [hashlib.sha256(str(index).encode()).hexdigest() for index in range(3)]
    for oid in oids:
        grant_object(source, oid)
    assert not any(is_granted(target, oid) for oid in oids)
    assert share_objects(source, target) == 3
    assert all(is_granted(target, oid) for oid in oids)

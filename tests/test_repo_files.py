"""Reading a space's repository with the real huggingface_hub client, the hf CLI and httpx.

The data is pushed with real git (and git-lfs): Unicode and spaces in names, nested folders, a
5 MB binary, several commits, a tag, a branch and a pull-request ref.
"""

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from huggingface_hub import HfApi, HfFileSystem, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from tests.conftest import ADMIN_TOKEN, Platform, add_user, commit_all, git, push, write_files

README = """---
title: Files démo
emoji: 📁
colorFrom: blue
colorTo: green
sdk: static
pinned: false
---

# Files démo
"""
FIRST_FILES = {
    "README.md": README,
    "index.html": "<h1>Bonjour</h1>\n",
    "docs/guide ünïcode.md": "# Guide — ünïcode ✓\n",
    "data/nested/deep file.txt": "deep inside\n" * 100,
    "app.py": "print('first')\n",
}
BIG_NAME = "data/weights 5mb.dat"  # not an LFS pattern of the Hub's .gitattributes
LFS_NAME = "models/tiny model.bin"


@dataclass
class Published:
    space_id: str
    checkout: Path
    first: str
    second: str
    dev: str
    main: str
    pr: str


def api(platform: Platform, token: str | None = ADMIN_TOKEN) -> HfApi:
    return HfApi(endpoint=platform.url, token=token)


def blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def tree_of(checkout: Path, commit: str) -> dict[str, bytes]:
    """The files of `commit` in the local checkout, as git stores them (pointers for LFS)."""
    names = git("ls-tree", "-r", "-z", "--name-only", commit, cwd=checkout).stdout.split("\0")
    return {
        name: subprocess.run(
            ["git", "cat-file", "blob", f"{commit}:{name}"],
            cwd=checkout,
            capture_output=True,
            check=True,
            timeout=30,
        ).stdout
        for name in names
        if name
    }


@pytest.fixture(scope="module")
def published(shared_platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Published:
    """admin/files-demo: three commits on main, a tag, a branch, a PR ref, an LFS file."""
    space_id = shared_platform.create_space("files-demo")
    checkout = tmp_path_factory.mktemp("files-demo")
    git("init", "--quiet", "--initial-branch=main", cwd=checkout)
    # The test's git must not read the host's ~/.gitconfig; git-lfs installs into this repo.
    git("config", "lfs.locksverify", "false", cwd=checkout)
    git("lfs", "install", "--local", cwd=checkout)
    write_files(checkout, FIRST_FILES)
    first = commit_all(checkout, "First files")
    write_files(checkout, {"app.py": "print('second')\n", "notes with spaces.txt": "notes\n"})
    second = commit_all(checkout, "Second commit\n\nWith a body that explains it.")
    git("tag", "-a", "v1.0", "-m", "release 1.0", cwd=checkout)
    git("checkout", "--quiet", "-b", "dev", cwd=checkout)
    write_files(checkout, {"dev-only.txt": "only on dev\n"})
    dev = commit_all(checkout, "Dev work")
    git("checkout", "--quiet", "main", cwd=checkout)
    (checkout / BIG_NAME).write_bytes(os.urandom(5 * 1024 * 1024))
    git("lfs", "track", "*.bin", cwd=checkout)
    (checkout / LFS_NAME).parent.mkdir()
    (checkout / LFS_NAME).write_bytes(os.urandom(300 * 1024))
    main = commit_all(checkout, "Add weights")
    pushed = push(shared_platform, checkout, space_id, "--force")
    assert pushed.returncode == 0, pushed.stderr
    url = shared_platform.git_url(space_id)
    for refspec in ("dev", "v1.0", f"{second}:refs/pr/1", "dev:refs/heads/feature/ünï-x"):
        pushed = git("push", url, refspec, cwd=checkout, check=False)
        assert pushed.returncode == 0, pushed.stderr
    return Published(space_id, checkout, first, second, dev, main, pr=second)


def test_hf_hub_download_at_a_branch_a_tag_and_a_sha(
    shared_platform: Platform, published: Published, tmp_path: Path
) -> None:
    def download(filename: str, revision: str | None = None) -> bytes:
        path = hf_hub_download(
            published.space_id,
            filename,
            repo_type="space",
            revision=revision,
            endpoint=shared_platform.url,
            token=ADMIN_TOKEN,
            cache_dir=tmp_path / "cache",
        )
        return Path(path).read_bytes()

    assert download("app.py") == b"print('second')\n"
    assert download("app.py", published.first) == b"print('first')\n"
    assert download("app.py", published.first[:10]) == b"print('first')\n"
    assert download("dev-only.txt", "dev") == b"only on dev\n"
    assert download("dev-only.txt", "feature/ünï-x") == b"only on dev\n"
    assert download("notes with spaces.txt", "v1.0") == b"notes\n"
    assert download("app.py", "refs/pr/1") == b"print('second')\n"
    assert download("docs/guide ünïcode.md") == FIRST_FILES["docs/guide ünïcode.md"].encode()
    assert download(BIG_NAME) == (published.checkout / BIG_NAME).read_bytes()
    assert download(LFS_NAME) == (published.checkout / LFS_NAME).read_bytes()


def test_snapshot_download_gives_every_file_byte_for_byte(
    shared_platform: Platform, published: Published, tmp_path: Path
) -> None:
    folder = Path(
        snapshot_download(
            published.space_id,
            repo_type="space",
            endpoint=shared_platform.url,
            token=ADMIN_TOKEN,
            cache_dir=tmp_path / "cache",
        )
    )
    assert folder.name == published.main
    got = {
        str(path.relative_to(folder)): path.read_bytes()
        for path in folder.rglob("*")
        if path.is_file()
    }
    expected = {
        str(path.relative_to(published.checkout)): path.read_bytes()
        for path in published.checkout.rglob("*")
        if path.is_file() and ".git" not in path.relative_to(published.checkout).parts
    }
    assert got == expected


def test_list_repo_files_and_tree_match_git(
    shared_platform: Platform, published: Published
) -> None:
    hub = api(shared_platform)
    stored = tree_of(published.checkout, published.main)
    assert sorted(hub.list_repo_files(published.space_id, repo_type="space")) == sorted(stored)
    for revision in ("dev", "feature/ünï-x"):
        on_dev = hub.list_repo_files(published.space_id, repo_type="space", revision=revision)
        assert "dev-only.txt" in on_dev
    in_pr = hub.list_repo_tree(published.space_id, "docs", repo_type="space", revision="refs/pr/1")
    assert [entry.path for entry in in_pr] == ["docs/guide ünïcode.md"]

    top = {entry.path: entry for entry in hub.list_repo_tree(published.space_id, repo_type="space")}
    assert {path for path, entry in top.items() if not hasattr(entry, "size")} == {
        "data",
        "docs",
        "models",
    }
    readme = top["README.md"]
    assert readme.blob_id == blob_id(README.encode()) and readme.size == len(README.encode())

    everything = list(
        hub.list_repo_tree(published.space_id, repo_type="space", recursive=True, expand=True)
    )
    by_path = {entry.path: entry for entry in everything}
    assert {"data", "data/nested", "data/nested/deep file.txt"} <= set(by_path)
    assert by_path["app.py"].last_commit.oid == published.second
    assert by_path["app.py"].last_commit.title == "Second commit"
    assert by_path["index.html"].last_commit.oid == published.first
    lfs_entry = by_path[LFS_NAME]
    content = (published.checkout / LFS_NAME).read_bytes()
    assert lfs_entry.size == len(content)
    assert lfs_entry.lfs.sha256 == hashlib.sha256(content).hexdigest()
    assert lfs_entry.lfs.pointer_size == len(stored[LFS_NAME])
    assert lfs_entry.blob_id == blob_id(stored[LFS_NAME])

    nested = list(hub.list_repo_tree(published.space_id, "data/nested", repo_type="space"))
    assert [(entry.path, entry.size) for entry in nested] == [("data/nested/deep file.txt", 1200)]
    with pytest.raises(EntryNotFoundError):
        list(hub.list_repo_tree(published.space_id, "no/such folder", repo_type="space"))


def test_tree_and_commits_page_with_absolute_links(
    shared_platform: Platform, tmp_path: Path
) -> None:
    space_id = shared_platform.create_space("many-files")
    checkout = tmp_path / "many"
    checkout.mkdir()
    git("init", "--quiet", "--initial-branch=main", cwd=checkout)
    for number in range(60):
        git("commit", "--quiet", "--allow-empty", "-m", f"step {number}", cwd=checkout)
    write_files(checkout, {f"pages/fichier n°{n:04d}.txt": f"{n}\n" for n in range(1234)})
    last = commit_all(checkout, "Many files")
    pushed = push(shared_platform, checkout, space_id, "--force")
    assert pushed.returncode == 0, pushed.stderr

    hub = api(shared_platform)
    files = hub.list_repo_files(space_id, repo_type="space")
    assert len(files) == 1234 and len(set(files)) == 1234
    expanded = list(hub.list_repo_tree(space_id, "pages", repo_type="space", expand=True))
    assert len(expanded) == 1234 and all(entry.last_commit.oid == last for entry in expanded)
    history = hub.list_repo_commits(space_id, repo_type="space")
    assert [commit.title for commit in history] == ["Many files"] + [
        f"step {n}" for n in reversed(range(60))
    ]

    with shared_platform.api() as client:
        first = client.get(f"/api/spaces/{space_id}/tree/main/pages", params={"recursive": "true"})
        assert first.status_code == 200 and len(first.json()) == 1000
        link = first.headers["link"]
        assert link.startswith(f"<{shared_platform.url}/api/spaces/{space_id}/tree/{last}/pages?")
        assert link.endswith('>; rel="next"')
        second = client.get(link[1 : link.index(">")])
        assert len(second.json()) == 234 and "link" not in second.headers
        paths = [item["path"] for item in first.json() + second.json()]
        assert sorted(paths) == sorted(files)


def test_file_exists_and_revision_exists(shared_platform: Platform, published: Published) -> None:
    hub = api(shared_platform)
    space = published.space_id
    assert hub.file_exists(space, "docs/guide ünïcode.md", repo_type="space")
    assert hub.file_exists(space, "dev-only.txt", repo_type="space", revision="dev")
    assert not hub.file_exists(space, "dev-only.txt", repo_type="space")
    assert not hub.file_exists(space, "docs", repo_type="space")
    assert not hub.file_exists(space, "app.py", repo_type="space", revision="no-such-branch")
    for revision in ("main", "dev", "v1.0", published.first, published.first[:8], "refs/pr/1"):
        assert hub.revision_exists(space, revision, repo_type="space"), revision
    for revision in ("no-such-branch", "main~1", "0" * 40, "refs/heads/nope"):
        assert not hub.revision_exists(space, revision, repo_type="space"), revision


def test_space_info_at_a_revision_lists_that_commits_files_with_sizes(
    shared_platform: Platform, published: Published
) -> None:
    hub = api(shared_platform)
    old = hub.space_info(published.space_id, revision="v1.0", files_metadata=True)
    assert old.sha == published.second
    sizes = {sibling.rfilename: sibling.size for sibling in old.siblings}
    assert sizes["notes with spaces.txt"] == 6 and BIG_NAME not in sizes
    now = hub.space_info(published.space_id, revision="main", files_metadata=True)
    assert now.sha == published.main
    lfs = next(sibling for sibling in now.siblings if sibling.rfilename == LFS_NAME)
    assert lfs.size == 300 * 1024 and lfs.lfs is not None
    assert (
        lfs.lfs.sha256 == hashlib.sha256((published.checkout / LFS_NAME).read_bytes()).hexdigest()
    )
    with pytest.raises(RevisionNotFoundError):
        hub.space_info(published.space_id, revision="no-such-branch")


def test_hf_file_system_lists_reads_and_globs(
    shared_platform: Platform, published: Published
) -> None:
    fs = HfFileSystem(endpoint=shared_platform.url, token=ADMIN_TOKEN)
    root = f"spaces/{published.space_id}"
    assert sorted(fs.ls(f"{root}/data", detail=False)) == [
        f"{root}/data/nested",
        f"{root}/{BIG_NAME}",
    ]
    with fs.open(f"{root}/docs/guide ünïcode.md", "rb") as handle:
        assert handle.read() == FIRST_FILES["docs/guide ünïcode.md"].encode()
    with fs.open(f"{root}/{BIG_NAME}", "rb") as handle:
        handle.seek(4 * 1024 * 1024)
        assert handle.read(1000) == (published.checkout / BIG_NAME).read_bytes()[4194304:4195304]
    assert fs.glob(f"{root}/**/*.txt") == sorted(
        [f"{root}/data/nested/deep file.txt", f"{root}/notes with spaces.txt"]
    )
    assert fs.info(f"{root}/{LFS_NAME}")["size"] == 300 * 1024
    assert fs.exists(f"{root}@dev/dev-only.txt")


def test_list_repo_commits_and_refs(shared_platform: Platform, published: Published) -> None:
    hub = api(shared_platform)
    history = hub.list_repo_commits(published.space_id, repo_type="space")
    assert [commit.commit_id for commit in history] == [
        published.main,
        published.second,
        published.first,
    ]
    assert history[1].title == "Second commit"
    assert history[1].message == "With a body that explains it."
    assert history[0].authors == ["Test"]
    dev_history = hub.list_repo_commits(published.space_id, repo_type="space", revision="dev")
    assert dev_history[0].commit_id == published.dev

    refs = hub.list_repo_refs(published.space_id, repo_type="space", include_pull_requests=True)
    assert {(ref.name, ref.target_commit) for ref in refs.branches} == {
        ("main", published.main),
        ("dev", published.dev),
        ("feature/ünï-x", published.dev),
    }
    # The annotated tag is peeled to the commit it names.
    assert [(ref.name, ref.ref, ref.target_commit) for ref in refs.tags] == [
        ("v1.0", "refs/tags/v1.0", published.second)
    ]
    assert [ref.ref for ref in refs.pull_requests] == ["refs/pr/1"]
    assert refs.converts == []


def test_get_paths_info(shared_platform: Platform, published: Published) -> None:
    hub = api(shared_platform)
    infos = hub.get_paths_info(
        published.space_id,
        ["app.py", "data/nested", "no such file", LFS_NAME],
        repo_type="space",
        revision="v1.0",
        expand=True,
    )
    assert [info.path for info in infos] == ["app.py", "data/nested"]
    assert infos[0].blob_id == blob_id(b"print('second')\n")
    assert infos[0].last_commit.oid == published.second
    assert not hasattr(infos[1], "size")
    assert [
        info.path for info in hub.get_paths_info(published.space_id, [LFS_NAME], repo_type="space")
    ] == [LFS_NAME]


def test_space_card_and_hf_download_cli(
    shared_platform: Platform, published: Published, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "HF_ENDPOINT": shared_platform.url,
        "HF_TOKEN": ADMIN_TOKEN,
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }
    card = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from huggingface_hub import SpaceCard; "
            "card = SpaceCard.load(sys.argv[1]); print(card.data.title, card.data.sdk)",
            published.space_id,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert card.returncode == 0, card.stderr
    assert card.stdout.strip() == "Files démo static"

    hf = Path(sys.executable).parent / "hf"
    target = tmp_path / "downloaded"
    command = [str(hf), "download", published.space_id, "--repo-type", "space"]
    ran = subprocess.run(
        [*command, "--local-dir", str(target)], env=env, capture_output=True, text=True, timeout=300
    )
    assert ran.returncode == 0, ran.stderr
    assert (target / BIG_NAME).read_bytes() == (published.checkout / BIG_NAME).read_bytes()
    assert (target / LFS_NAME).read_bytes() == (published.checkout / LFS_NAME).read_bytes()
    one = subprocess.run(
        [*command, "app.py", "--revision", "v1.0", "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert one.returncode == 0, one.stderr
    assert Path(one.stdout.strip().splitlines()[-1]).read_text() == "print('second')\n"


def test_resolve_answers_heads_and_ranges(shared_platform: Platform, published: Published) -> None:
    big = (published.checkout / BIG_NAME).read_bytes()
    url = f"/spaces/{published.space_id}/resolve/main/{quote(BIG_NAME)}"
    with shared_platform.api() as client:
        head = client.head(url)
        assert head.status_code == 200
        assert head.headers["content-length"] == str(len(big))
        assert head.headers["etag"] == f'"{blob_id(big)}"'
        assert head.headers["x-repo-commit"] == published.main
        assert head.headers["accept-ranges"] == "bytes"

        part = client.get(url, headers={"Range": "bytes=1000000-1000099"})
        assert part.status_code == 206 and part.content == big[1000000:1000100]
        assert part.headers["content-range"] == f"bytes 1000000-1000099/{len(big)}"
        tail = client.get(url, headers={"Range": "bytes=-10"})
        assert tail.status_code == 206 and tail.content == big[-10:]
        rest = client.get(url, headers={"Range": f"bytes={len(big) - 5}-"})
        assert rest.content == big[-5:]
        beyond = client.get(url, headers={"Range": f"bytes={len(big)}-"})
        assert beyond.status_code == 416
        assert beyond.headers["content-range"] == f"bytes */{len(big)}"
        assert client.get(url, headers={"If-None-Match": head.headers["etag"]}).status_code == 304

        lfs_url = f"/spaces/{published.space_id}/resolve/main/{quote(LFS_NAME)}"
        lfs_content = (published.checkout / LFS_NAME).read_bytes()
        lfs_head = client.head(lfs_url)
        sha256 = hashlib.sha256(lfs_content).hexdigest()
        assert lfs_head.headers["x-linked-etag"] == f'"{sha256}"'
        assert lfs_head.headers["x-linked-size"] == str(len(lfs_content))
        assert client.get(lfs_url, headers={"Range": "bytes=10-19"}).content == lfs_content[10:20]

        # A page in the repository is served as text, never as a page of the platform's origin.
        page = client.get(f"/spaces/{published.space_id}/resolve/main/index.html")
        assert page.headers["content-type"].startswith("text/plain")
        assert "sandbox" in page.headers["content-security-policy"]
        encoded = client.get(f"/spaces/{published.space_id}/resolve/refs%2Fpr%2F1/app.py")
        assert encoded.text == "print('second')\n"


def test_unknown_revision_and_file_raise_the_hub_errors(
    shared_platform: Platform, published: Published, tmp_path: Path
) -> None:
    common = {"repo_type": "space", "endpoint": shared_platform.url, "token": ADMIN_TOKEN}
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(published.space_id, "app.py", revision="nope", cache_dir=tmp_path, **common)
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(published.space_id, "missing.txt", cache_dir=tmp_path, **common)
    with shared_platform.api() as client:
        missing = client.head(f"/spaces/{published.space_id}/resolve/main/missing.txt")
        assert missing.status_code == 404
        assert missing.headers["x-error-code"] == "EntryNotFound"
        assert missing.headers["x-repo-commit"] == published.main
        unknown = client.get(f"/api/spaces/{published.space_id}/tree/nope")
        assert unknown.status_code == 404 and unknown.headers["x-error-code"] == "RevisionNotFound"
        assert "nope" in unknown.json()["error"]


def test_private_space_is_hidden_from_strangers(shared_platform: Platform, tmp_path: Path) -> None:
    space_id = shared_platform.create_space("files-secret", private=True)
    checkout = tmp_path / "secret"
    checkout.mkdir()
    git("init", "--quiet", "--initial-branch=main", cwd=checkout)
    write_files(checkout, {"secret plan.txt": "launch at dawn\n"})
    commit_all(checkout, "Secret")
    assert push(shared_platform, checkout, space_id, "--force").returncode == 0
    stranger = add_user(shared_platform, "files-stranger")
    for token in (stranger, None):
        hub = api(shared_platform, token or False)  # type: ignore[arg-type]
        with pytest.raises(RepositoryNotFoundError):
            hf_hub_download(
                space_id,
                "secret plan.txt",
                repo_type="space",
                endpoint=shared_platform.url,
                token=token or False,
                cache_dir=tmp_path / "cache",
            )
        with pytest.raises(RepositoryNotFoundError):
            hub.list_repo_files(space_id, repo_type="space")
        with pytest.raises(RepositoryNotFoundError):
            hub.list_repo_refs(space_id, repo_type="space")
        assert not hub.file_exists(space_id, "secret plan.txt", repo_type="space")
    owner = api(shared_platform)
    assert owner.list_repo_files(space_id, repo_type="space") == ["secret plan.txt"]


def test_unknown_api_path_answers_404_with_an_error_code(shared_platform: Platform) -> None:
    with shared_platform.api() as client:
        answer = client.get("/api/spaces/admin/files-demo/no-such-endpoint")
        assert answer.status_code == 404
        assert answer.headers["x-error-code"] == "EndpointNotFound"
        assert "does not exist" in answer.json()["error"]
        wrong_method = client.delete("/api/whoami-v2")
        assert wrong_method.status_code == 405 and "GET" in wrong_method.headers["allow"]
        assert (
            client.post("/api/nothing/here", json={}).headers["x-error-code"] == "EndpointNotFound"
        )
    hub = api(shared_platform)
    with pytest.raises(HfHubHTTPError) as raised:
        list(hub.list_repo_likers("admin/files-demo", repo_type="space"))
    assert raised.value.response.status_code == 404
    assert not isinstance(raised.value, RepositoryNotFoundError | EntryNotFoundError)
    assert "does not exist" in str(raised.value)


@pytest.fixture(autouse=True)
def _explain(request: pytest.FixtureRequest, shared_platform: Platform) -> Iterator[None]:
    from tests.conftest import explain_failure

    explain_failure(request.node, "spacehub serve log", lambda: shared_platform.log()[-6000:])
    yield


def test_hostile_paths_and_revisions_are_answered_not_crashed(
    shared_platform: Platform, published: Published
) -> None:
    space = published.space_id
    with shared_platform.api() as client:
        for url in (
            f"/spaces/{space}/resolve/main/%FF%FE.txt",
            f"/spaces/{space}/resolve/main/data/%2E%2E/app.py",
            f"/api/spaces/{space}/tree/main/%0Aapp.py",
        ):
            answer = client.get(url)
            assert answer.status_code == 404, (url, answer.status_code, answer.text)
            assert answer.headers.get("x-error-code") == "EntryNotFound", (url, answer.text)
        for revision in ("main~1", "main%0A", "HEAD@%7B0%7D", ":%2Fapp", "--all", "%FF"):
            answer = client.get(f"/spaces/{space}/resolve/{revision}/app.py")
            assert answer.headers["x-error-code"] == "RevisionNotFound", revision
        assert client.get(f"/spaces/{space}/resolve/main/app.py%00").status_code in (400, 404)
        surrogate = client.post(
            f"/api/spaces/{space}/paths-info/main",
            content=b'{"paths": ["\\ud800", "app.py", "a\\u0000b"]}',
            headers={"Content-Type": "application/json"},
        )
        assert surrogate.status_code == 200
        assert [item["path"] for item in surrogate.json()] == ["app.py"]
        for body in (b"[1, 2]", b"not json", b'{"paths": [1]}'):
            refused = client.post(
                f"/api/spaces/{space}/paths-info/main",
                content=body,
                headers={"Content-Type": "application/json"},
            )
            assert refused.status_code == 400 and "paths-info" in refused.json()["error"]
        huge = client.get(f"/api/spaces/{space}/commits/main", params={"p": 10**12})
        assert huge.status_code == 422
        deep = client.get(f"/api/spaces/{space}/tree/main", params={"cursor": 10**6})
        assert deep.status_code == 200 and deep.json() == []


def test_a_pointer_to_another_spaces_lfs_file_serves_nothing(
    shared_platform: Platform, published: Published, tmp_path: Path
) -> None:
    """Knowing the oid of a file in someone else's space is not enough to read it."""
    content = (published.checkout / LFS_NAME).read_bytes()
    oid = hashlib.sha256(content).hexdigest()
    space_id = shared_platform.create_space("files-thief")
    checkout = tmp_path / "thief"
    checkout.mkdir()
    git("init", "--quiet", "--initial-branch=main", cwd=checkout)
    pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {len(content)}\n"
    write_files(checkout, {"stolen.txt": pointer})
    commit_all(checkout, "Point at a stranger's file")
    assert push(shared_platform, checkout, space_id, "--force").returncode == 0
    with shared_platform.api() as client:
        for method in ("HEAD", "GET"):
            answer = client.request(method, f"/spaces/{space_id}/resolve/main/stolen.txt")
            assert answer.status_code == 404 and answer.headers["x-error-code"] == "EntryNotFound"
            assert content[:64] not in answer.content
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(
            space_id,
            "stolen.txt",
            repo_type="space",
            endpoint=shared_platform.url,
            token=ADMIN_TOKEN,
            cache_dir=tmp_path / "cache",
        )

"""The Hub's write API for spaces with the real huggingface_hub 2.4 client (hf_xet installed).

Uploads, commits with deletes and copies, parent-commit conflicts, pull requests, branches and
tags, the `hf upload` CLI, and a new space's first commit, checked in the bare repository, in
git clones and through the static app.
"""

import hashlib
import os
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
import yaml
from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationCopy,
    CommitOperationDelete,
    HfApi,
)
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError

from tests.conftest import ADMIN_TOKEN, Platform, add_user, make_checkout, push, wait_for

STATIC_README = "---\ntitle: Uploads\nsdk: static\n---\n"


@pytest.fixture(scope="module")
def api(shared_platform: Platform) -> HfApi:
    return HfApi(endpoint=shared_platform.url, token=ADMIN_TOKEN)


def bare(platform: Platform, space_id: str) -> Path:
    owner, _, name = space_id.partition("/")
    return platform.data_dir / "repos" / owner / f"{name}.git"


def bare_git(platform: Platform, space_id: str, *args: str) -> subprocess.CompletedProcess:
    """git on the space's bare repository, without the host's LFS filter (pointers stay)."""
    return subprocess.run(
        ["git", "--git-dir", str(bare(platform, space_id)), *args],
        capture_output=True,
        timeout=60,
        check=False,
        env={**os.environ, "GIT_CONFIG_NOSYSTEM": "1"},
    )


def show(platform: Platform, space_id: str, revision_path: str) -> bytes:
    result = bare_git(platform, space_id, "cat-file", "blob", revision_path)
    assert result.returncode == 0, result.stderr
    return result.stdout


def files_at(platform: Platform, space_id: str, revision: str = "main") -> set[str]:
    out = bare_git(platform, space_id, "ls-tree", "-r", "-z", "--name-only", revision).stdout
    return {name.decode() for name in out.split(b"\0") if name}


def ref_of(platform: Platform, space_id: str, ref: str) -> str | None:
    return (
        bare_git(platform, space_id, "rev-parse", "--verify", "-q", ref).stdout.decode().strip()
        or None
    )


def new_space(api: HfApi, name: str, sdk: str = "static") -> str:
    space_id = f"admin/{name}"
    api.create_repo(space_id, repo_type="space", space_sdk=sdk)
    return space_id


def test_new_space_starts_with_a_readme_card_and_the_hubs_gitattributes(
    api: HfApi, shared_platform: Platform
):
    space_id = new_space(api, "first-commit", sdk="gradio")

    info = api.space_info(space_id)
    assert info.sha is not None and len(info.sha) == 40
    assert info.sha == ref_of(shared_platform, space_id, "refs/heads/main")
    assert {sibling.rfilename for sibling in info.siblings or []} == {".gitattributes", "README.md"}
    readme = show(shared_platform, space_id, "main:README.md").decode()
    card = yaml.safe_load(readme.split("---")[1])
    assert card["title"] == "first-commit"
    assert card["sdk"] == "gradio"
    assert card["app_file"] == "app.py"
    assert card["sdk_version"]
    assert card["pinned"] is False
    assert card["emoji"] and card["colorFrom"] and card["colorTo"]
    attributes = show(shared_platform, space_id, "main:.gitattributes").decode().splitlines()
    assert "*.safetensors filter=lfs diff=lfs merge=lfs -text" in attributes
    assert "saved_model/**/* filter=lfs diff=lfs merge=lfs -text" in attributes
    assert len(attributes) == 35
    # As on the Hub: a gradio space without app.py says so, and can be restarted.
    assert api.get_space_runtime(space_id).stage == "NO_APP_FILE"
    api.restart_space(space_id)
    shared_platform.wait_stage(space_id, {"NO_APP_FILE"}, 30)


def test_clone_add_app_and_push_without_force_goes_live(
    api: HfApi, shared_platform: Platform, tmp_path: Path
):
    space_id = new_space(api, "getting-started")
    checkout = make_checkout(
        tmp_path / "getting started",
        {"index.html": "<h1>Hello from my first space</h1>\n"},
        shared_platform.git_url(space_id),
    )
    assert (checkout / "README.md").is_file() and (checkout / ".gitattributes").is_file()

    pushed = push(shared_platform, checkout, space_id)

    assert pushed.returncode == 0, pushed.stderr
    shared_platform.wait_stage(space_id, {"RUNNING"}, 30)
    page = httpx.get(f"{shared_platform.apps_url}/apps/{space_id}/", timeout=10)
    assert "Hello from my first space" in page.text


def test_upload_file_to_a_static_space_makes_it_live(api: HfApi, shared_platform: Platform):
    space_id = new_space(api, "uploaded-site")

    first = api.upload_file(
        path_or_fileobj=b"<h1>version one</h1>\n", path_in_repo="index.html", repo_id=space_id,
        repo_type="space",
    )  # fmt: skip

    assert first.oid == ref_of(shared_platform, space_id, "refs/heads/main")
    assert first.commit_url == f"{shared_platform.url}/spaces/{space_id}/commit/{first.oid}"
    app = f"{shared_platform.apps_url}/apps/{space_id}/"
    wait_for(lambda: "version one" in httpx.get(app).text, 30, "the uploaded page to be live")
    api.upload_file(
        path_or_fileobj=b"<h1>version two</h1>\n", path_in_repo="index.html", repo_id=space_id,
        repo_type="space",
    )  # fmt: skip
    wait_for(lambda: "version two" in httpx.get(app).text, 30, "the second upload to be live")


def test_upload_folder_keeps_names_and_sends_big_and_tracked_files_to_lfs(
    api: HfApi, shared_platform: Platform, tmp_path: Path
):
    space_id = new_space(api, "folder-upload")
    folder = tmp_path / "my app"
    (folder / "données" / "sous dossier").mkdir(parents=True)
    (folder / "index.html").write_text("<p>café</p>\n")
    (folder / "données" / "sous dossier" / "résumé final.txt").write_text("naïve façade\n")
    weights = os.urandom(20 * 1024 * 1024)
    (folder / "model.bin").write_bytes(weights)  # *.bin is tracked by the first .gitattributes
    big_plain = os.urandom(11 * 1024 * 1024)
    (folder / "big table.raw").write_bytes(big_plain)  # untracked, but over 10 MB

    api.upload_folder(folder_path=folder, repo_id=space_id, repo_type="space")

    files = files_at(shared_platform, space_id)
    assert {"index.html", "données/sous dossier/résumé final.txt", "model.bin"} <= files
    assert show(shared_platform, space_id, "main:données/sous dossier/résumé final.txt") == (
        "naïve façade\n".encode()
    )
    for path, content in (("model.bin", weights), ("big table.raw", big_plain)):
        pointer = show(shared_platform, space_id, f"main:{path}").decode()
        assert pointer.startswith("version https://git-lfs.github.com/spec/v1\n"), pointer
        assert f"oid sha256:{hashlib.sha256(content).hexdigest()}" in pointer
        assert f"size {len(content)}" in pointer
    assert show(shared_platform, space_id, "main:index.html") == "<p>café</p>\n".encode()
    # A clone with git-lfs gets the real bytes back.
    home = tmp_path / "home"
    home.mkdir()
    env = {
        **os.environ,
        "HOME": str(home),
        "GIT_CONFIG_GLOBAL": str(home / ".gitconfig"),
        "GIT_TERMINAL_PROMPT": "0",
    }
    subprocess.run(["git", "lfs", "install"], env=env, check=True, timeout=60)
    clone = tmp_path / "clone"
    cloned = subprocess.run(
        ["git", "clone", "--quiet", shared_platform.git_url(space_id), str(clone)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert cloned.returncode == 0, cloned.stderr
    assert (clone / "model.bin").read_bytes() == weights
    assert (clone / "big table.raw").read_bytes() == big_plain


def test_create_commit_with_deletes_folder_deletes_and_copies(
    api: HfApi, shared_platform: Platform
):
    space_id = new_space(api, "commit-ops")
    weights = os.urandom(3 * 1024 * 1024)
    api.create_commit(
        space_id,
        repo_type="space",
        commit_message="add files",
        operations=[
            CommitOperationAdd("keep me.txt", b"kept\n"),
            CommitOperationAdd("old.txt", b"old\n"),
            CommitOperationAdd("old folder/a.txt", b"a\n"),
            CommitOperationAdd("old folder/deeper/b.txt", b"b\n"),
            CommitOperationAdd("weights/model.bin", weights),
        ],
    )

    commit = api.create_commit(
        space_id,
        repo_type="space",
        commit_message="reorganise",
        commit_description="deletes and copies",
        operations=[
            CommitOperationDelete("old.txt"),
            CommitOperationDelete("old folder/"),
            CommitOperationCopy("keep me.txt", "copies/keep me too.txt"),
            CommitOperationCopy("weights/model.bin", "copies/model copy.bin"),
        ],
    )

    files = files_at(shared_platform, space_id)
    assert "old.txt" not in files and not any(path.startswith("old folder/") for path in files)
    assert show(shared_platform, space_id, "main:copies/keep me too.txt") == b"kept\n"
    assert show(shared_platform, space_id, "main:copies/model copy.bin") == show(
        shared_platform, space_id, "main:weights/model.bin"
    )
    message = bare_git(shared_platform, space_id, "log", "-1", "--format=%B").stdout.decode()
    assert message.strip() == "reorganise\n\ndeletes and copies"
    assert commit.oid == ref_of(shared_platform, space_id, "refs/heads/main")


def test_deleting_files_and_folders_and_a_missing_file(api: HfApi, shared_platform: Platform):
    space_id = new_space(api, "deletes")
    api.upload_file(
        path_or_fileobj=b"x", path_in_repo="logs/run 1.txt", repo_id=space_id, repo_type="space"
    )
    api.upload_file(
        path_or_fileobj=b"y", path_in_repo="notes.md", repo_id=space_id, repo_type="space"
    )

    api.delete_file("notes.md", space_id, repo_type="space")
    api.delete_folder("logs", space_id, repo_type="space")
    before = ref_of(shared_platform, space_id, "refs/heads/main")
    with pytest.raises(EntryNotFoundError):
        api.delete_file("never-there.txt", space_id, repo_type="space")

    assert files_at(shared_platform, space_id) == {".gitattributes", "README.md"}
    assert ref_of(shared_platform, space_id, "refs/heads/main") == before


def test_a_stale_parent_commit_is_refused_with_412_and_main_unchanged(
    api: HfApi, shared_platform: Platform
):
    space_id = new_space(api, "stale-parent")
    stale = api.space_info(space_id).sha
    newer = api.upload_file(
        path_or_fileobj=b"1", path_in_repo="one.txt", repo_id=space_id, repo_type="space"
    )

    with pytest.raises(HfHubHTTPError) as refused:
        api.create_commit(
            space_id,
            repo_type="space",
            operations=[CommitOperationAdd("two.txt", b"2")],
            commit_message="based on an old view",
            parent_commit=stale,
        )

    assert refused.value.response.status_code == 412
    assert "The branch was updated since you opened this page" in str(refused.value)
    assert ref_of(shared_platform, space_id, "refs/heads/main") == newer.oid
    current = api.create_commit(
        space_id,
        repo_type="space",
        operations=[CommitOperationAdd("two.txt", b"2")],
        commit_message="based on the current view",
        parent_commit=newer.oid,
    )
    assert ref_of(shared_platform, space_id, "refs/heads/main") == current.oid


def test_create_pr_opens_numbered_pull_request_refs_and_leaves_main(
    api: HfApi, shared_platform: Platform
):
    space_id = new_space(api, "pull-requests")
    main = ref_of(shared_platform, space_id, "refs/heads/main")

    first = api.create_commit(
        space_id, repo_type="space", commit_message="proposal", create_pr=True,
        operations=[CommitOperationAdd("index.html", b"<p>proposed</p>")],
    )  # fmt: skip
    second = api.create_commit(
        space_id, repo_type="space", commit_message="another", create_pr=True,
        operations=[CommitOperationAdd("other.txt", b"other")],
    )  # fmt: skip

    assert first.pr_url == f"{shared_platform.url}/spaces/{space_id}/discussions/1"
    assert (first.pr_num, first.pr_revision) == (1, "refs/pr/1")
    assert second.pr_num == 2
    assert ref_of(shared_platform, space_id, "refs/pr/1") == first.oid
    assert "index.html" in files_at(shared_platform, space_id, "refs/pr/1")
    assert ref_of(shared_platform, space_id, "refs/heads/main") == main
    assert shared_platform.runtime(space_id)["stage"] == "NO_APP_FILE"


def test_concurrent_uploads_all_land_on_main(api: HfApi, shared_platform: Platform):
    space_id = new_space(api, "concurrent")
    errors: list[Exception] = []

    def upload(number: int) -> None:
        try:
            api.upload_file(
                path_or_fileobj=f"file {number}\n".encode(), path_in_repo=f"part {number}.txt",
                repo_id=space_id, repo_type="space",
            )  # fmt: skip
        except Exception as error:
            errors.append(error)

    threads = [threading.Thread(target=upload, args=(number,)) for number in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    assert not errors, errors
    assert {f"part {number}.txt" for number in range(6)} <= files_at(shared_platform, space_id)
    history = bare_git(shared_platform, space_id, "rev-list", "main").stdout
    assert len(history.split()) == 7


def test_metadata_update_changes_the_readme_front_matter(
    api: HfApi, shared_platform: Platform, tmp_path: Path
):
    space_id = new_space(api, "card-update")
    # metadata_update is a module-level function: it reads HF_ENDPOINT when imported.
    script = (
        "from huggingface_hub import metadata_update\n"
        f"metadata_update({space_id!r}, {{'short_description': 'A demo of uploads', "
        "'tags': ['uploads']}, repo_type='space')\n"
    )

    result = subprocess.run(
        [sys.executable, "-c", script],
        env=hub_environment(shared_platform, tmp_path), capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    readme = show(shared_platform, space_id, "main:README.md").decode()
    card = yaml.safe_load(readme.split("---")[1])
    assert card["short_description"] == "A demo of uploads"
    assert card["tags"] == ["uploads"]
    assert card["title"] == "card-update" and card["sdk"] == "static"


def hub_environment(platform: Platform, tmp_path: Path) -> dict[str, str]:
    """What a user sets to point huggingface_hub's functions and CLI at spacehub."""
    return {
        **os.environ,
        "HF_ENDPOINT": platform.url,
        "HF_TOKEN": ADMIN_TOKEN,
        "HF_HOME": str(tmp_path / "hf-home"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }


def test_hf_upload_cli_deploys_a_folder(shared_platform: Platform, tmp_path: Path):
    space_id = "admin/cli-upload"
    HfApi(endpoint=shared_platform.url, token=ADMIN_TOKEN).create_repo(
        space_id, repo_type="space", space_sdk="static"
    )
    site = tmp_path / "site"
    (site / "assets").mkdir(parents=True)
    (site / "README.md").write_text(STATIC_README)
    (site / "index.html").write_text("<h1>deployed by hf upload</h1>\n")
    (site / "assets" / "app style.css").write_text("h1 { color: teal }\n")
    hf = Path(sys.executable).parent / "hf"

    result = subprocess.run(
        [str(hf), "upload", space_id, str(site), "--repo-type", "space"],
        env=hub_environment(shared_platform, tmp_path), capture_output=True, text=True, timeout=180,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    assert {"index.html", "assets/app style.css"} <= files_at(shared_platform, space_id)
    app = f"{shared_platform.apps_url}/apps/{space_id}/"
    wait_for(lambda: "deployed by hf upload" in httpx.get(app).text, 30, "the CLI's upload live")


def test_branches_and_tags_are_created_refused_twice_and_deleted(
    api: HfApi, shared_platform: Platform
):
    space_id = new_space(api, "refs")
    main = ref_of(shared_platform, space_id, "refs/heads/main")

    api.create_branch(space_id, branch="feature/new-look", repo_type="space")
    with pytest.raises(HfHubHTTPError) as twice:
        api.create_branch(space_id, branch="feature/new-look", repo_type="space")
    assert twice.value.response.status_code == 409
    api.create_branch(space_id, branch="feature/new-look", repo_type="space", exist_ok=True)
    on_branch = api.upload_file(
        path_or_fileobj=b"draft", path_in_repo="draft.txt", repo_id=space_id, repo_type="space",
        revision="feature/new-look",
    )  # fmt: skip
    api.create_tag(space_id, tag="v1.0", revision="feature/new-look", repo_type="space")
    api.create_tag(space_id, tag="v0", tag_message="the first card", repo_type="space")
    with pytest.raises(HfHubHTTPError) as tag_twice:
        api.create_tag(space_id, tag="v1.0", repo_type="space")
    assert tag_twice.value.response.status_code == 409

    assert ref_of(shared_platform, space_id, "refs/heads/feature/new-look") == on_branch.oid
    assert ref_of(shared_platform, space_id, "refs/tags/v1.0") == on_branch.oid
    assert ref_of(shared_platform, space_id, "refs/tags/v0^{commit}") == main
    assert ref_of(shared_platform, space_id, "refs/heads/main") == main  # no build of a branch

    api.delete_tag(space_id, tag="v1.0", repo_type="space")
    api.delete_branch(space_id, branch="feature/new-look", repo_type="space")
    for delete in (
        lambda: api.delete_tag(space_id, tag="v1.0", repo_type="space"),
        lambda: api.delete_branch(space_id, branch="feature/new-look", repo_type="space"),
    ):
        with pytest.raises(HfHubHTTPError) as missing:
            delete()
        assert missing.value.response.status_code == 404
    assert ref_of(shared_platform, space_id, "refs/tags/v1.0") is None
    assert ref_of(shared_platform, space_id, "refs/heads/feature/new-look") is None


def test_a_read_token_or_a_stranger_cannot_commit(api: HfApi, shared_platform: Platform):
    space_id = new_space(api, "guarded")
    main = ref_of(shared_platform, space_id, "refs/heads/main")
    for user, role in (("reader-rae", "read"), ("stranger-sam", "write")):
        token = add_user(shared_platform, user, role)
        other = HfApi(endpoint=shared_platform.url, token=token)
        with pytest.raises(HfHubHTTPError) as refused:
            other.upload_file(
                path_or_fileobj=b"nope", path_in_repo="index.html", repo_id=space_id,
                repo_type="space",
            )  # fmt: skip
        assert refused.value.response.status_code == 403
    assert ref_of(shared_platform, space_id, "refs/heads/main") == main

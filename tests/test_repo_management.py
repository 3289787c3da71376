"""Repository management in the Hub's dialect: duplicate, private ↔ public, move.

The real `huggingface_hub` 2.4 client, the `hf` CLI, `gradio_client` and `git` against a real
`spacehub serve`; static spaces, so no Docker is needed.
"""

import os
import subprocess
import sys
from pathlib import Path
from tempfile import mkdtemp

import httpx
import pytest
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

from tests.conftest import (
    ADMIN_TOKEN,
    Platform,
    add_user,
    commit_all,
    git,
    make_checkout,
    push,
    wait_for,
    write_files,
)

README = "---\ntitle: Photo album 📷\nemoji: 📷\nsdk: static\n---\n"
# 1.5 MB that do not compress: an image, a font or a bundle of a real site.
PHOTO = os.urandom(1536 * 1024)
PHOTO_PATH = "assets/Grüße vom Meer.bin"
LIVE = {"RUNNING"}


@pytest.fixture(scope="module")
def tokens(shared_platform: Platform) -> dict[str, str]:
    return {
        "mia": add_user(shared_platform, "mia", orgs=("studio",)),
        "noor": add_user(shared_platform, "noor"),
        "mia-read": add_user(shared_platform, "mia_reader", role="read"),
    }


def hub(platform: Platform, token: str | bool = ADMIN_TOKEN) -> HfApi:
    return HfApi(endpoint=platform.url, token=token)


def publish_site(platform: Platform, workdir: Path, space_id: str, version: str) -> Path:
    """Push a static site (README, a Unicode page, a 1.5 MB binary, a tag, a side branch)."""
    checkout = make_checkout(
        workdir,
        {"README.md": README, "index.html": f"<h1>Album — {version}</h1>\n"},
    )
    photo = checkout / PHOTO_PATH
    photo.parent.mkdir(parents=True)
    photo.write_bytes(PHOTO)
    commit_all(checkout, "Add a photo")
    git("tag", "-a", "v1.0", "-m", "first album", cwd=checkout)
    git("branch", "drafts", cwd=checkout)
    # --force: a new space may already hold the platform's first commit.
    for ref in ("main", "drafts"):
        result = git(
            "push", "--force", platform.git_url(space_id), ref, "v1.0", cwd=checkout, check=False
        )
        assert result.returncode == 0, result.stderr
    platform.wait_stage(space_id, LIVE)
    return checkout


def remote_refs(platform: Platform, space_id: str, token: str | None = ADMIN_TOKEN) -> dict:
    out = git("ls-remote", platform.git_url(space_id, token)).stdout
    return {ref: sha for sha, ref in (line.split("\t") for line in out.splitlines())}


def app(
    platform: Platform, space_id: str, path: str = "", form: str = "path", token: str | None = None
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if form == "path":
        url = f"{platform.apps_url}/apps/{space_id}/{path}"
    else:
        url = f"{platform.url}/{path}"
        label = space_id.replace("/", "-").replace("_", "-").replace(".", "-").lower()
        headers["Host"] = f"{label}.localhost:{platform.port}"
    return httpx.get(url, headers=headers, timeout=30)


def serves_album(platform: Platform, space_id: str, version: str, **options) -> bool:
    page = app(platform, space_id, **options)
    if page.status_code != 200 or f"Album — {version}" not in page.text:
        return False
    photo = app(platform, space_id, PHOTO_PATH, **options)
    return photo.status_code == 200 and photo.content == PHOTO


def clone(platform: Platform, space_id: str, into: Path, token: str | None = ADMIN_TOKEN):
    return git("clone", "--quiet", platform.git_url(space_id, token), str(into), check=False)


# duplicate_repo


def test_duplicate_copies_history_and_variables_and_serves_the_same_app(
    shared_platform: Platform, tokens: dict[str, str], tmp_path: Path
) -> None:
    source = shared_platform.create_space("album")
    admin = hub(shared_platform)
    admin.add_space_variable(source, "GALLERY_TITLE", "Sommer am Meer", description="shown")
    admin.add_space_secret(source, "UPLOAD_KEY", "never-copied")
    publish_site(shared_platform, tmp_path / "site", source, "summer")

    mia = hub(shared_platform, tokens["mia"])
    url = mia.duplicate_repo(
        source,
        "mia/album-copy",
        repo_type="space",
        space_variables=[{"key": "THEME", "value": "dark"}],
        space_secrets=[{"key": "MIA_KEY", "value": "hers"}],
    )

    assert url == f"{shared_platform.url}/spaces/mia/album-copy"
    assert url.repo_id == "mia/album-copy"
    copy = "mia/album-copy"
    source_refs = remote_refs(shared_platform, source)
    assert {"refs/heads/main", "refs/heads/drafts", "refs/tags/v1.0"} <= set(source_refs)
    copy_refs = remote_refs(shared_platform, copy, tokens["mia"])
    assert {ref: sha for ref, sha in copy_refs.items() if ref != "HEAD"} == {
        ref: sha for ref, sha in source_refs.items() if ref != "HEAD"
    }
    wait_for(lambda: serves_album(shared_platform, copy, "summer"), 60, "the copy to serve")
    assert serves_album(shared_platform, copy, "summer", form="subdomain")
    variables = mia.get_space_variables(copy)
    assert {key: item.value for key, item in variables.items()} == {
        "GALLERY_TITLE": "Sommer am Meer",
        "THEME": "dark",
    }
    assert variables["GALLERY_TITLE"].description == "shown"
    assert set(mia.get_space_secrets(copy)) == {"MIA_KEY"}
    info = mia.space_info(copy)
    assert info.private is False  # as the public source, since no visibility was asked for
    assert info.sha == source_refs["refs/heads/main"]
    # The source is untouched, and its secrets are still only its own.
    assert set(admin.get_space_secrets(source)) == {"UPLOAD_KEY"}
    assert serves_album(shared_platform, source, "summer")


def test_duplicate_shares_lfs_files_with_the_copy(
    shared_platform: Platform, tokens: dict[str, str], tmp_path: Path, monkeypatch
) -> None:
    """LFS objects are stored once; the copy builds from them and clones them."""
    global_config = tmp_path / "gitconfig"
    global_config.write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(global_config))
    git("lfs", "install")  # as a user does once, into the test's own global config
    source = shared_platform.create_space("mia/weights", token=tokens["mia"])
    checkout = tmp_path / "site"
    clone(shared_platform, source, checkout, tokens["mia"])
    git("checkout", "--quiet", "-B", "main", cwd=checkout)
    write_files(
        checkout,
        {
            ".gitattributes": "*.bin filter=lfs diff=lfs merge=lfs -text\n",
            "README.md": README,
            "index.html": "<h1>Album — weights</h1>\n",
        },
    )
    weights = os.urandom(5 * 1024 * 1024)
    (checkout / "modèle poids.bin").write_bytes(weights)
    (checkout / "assets").mkdir()
    (checkout / PHOTO_PATH).write_bytes(PHOTO)
    commit_all(checkout, "Weights in LFS")
    tracked = git("lfs", "ls-files", "--name-only", cwd=checkout).stdout.splitlines()
    assert sorted(tracked) == sorted([PHOTO_PATH, "modèle poids.bin"])
    pushed = git("push", "--force", "origin", "main", cwd=checkout, check=False)
    assert pushed.returncode == 0, pushed.stderr
    shared_platform.wait_stage(source, LIVE)

    noor = hub(shared_platform, tokens["noor"])
    noor.duplicate_repo(source, "noor/weights", repo_type="space")

    copy = "noor/weights"
    wait_for(lambda: serves_album(shared_platform, copy, "weights"), 60, "the copy to serve")
    assert app(shared_platform, copy, "modèle poids.bin").content == weights
    cloned = tmp_path / "copy"
    assert clone(shared_platform, copy, cloned, tokens["noor"]).returncode == 0
    assert (cloned / "modèle poids.bin").read_bytes() == weights
    assert (cloned / PHOTO_PATH).read_bytes() == PHOTO


def test_duplicate_private_and_into_an_org_and_an_existing_target_is_409(
    shared_platform: Platform, tokens: dict[str, str], tmp_path: Path
) -> None:
    source = shared_platform.create_space("portfolio")
    publish_site(shared_platform, tmp_path / "site", source, "portfolio")
    mia = hub(shared_platform, tokens["mia"])

    url = mia.duplicate_repo(source, "studio/portfolio", repo_type="space", private=True)
    assert url.repo_id == "studio/portfolio"
    assert mia.space_info("studio/portfolio").private is True
    wait_for(
        lambda: serves_album(shared_platform, "studio/portfolio", "portfolio", token=tokens["mia"]),
        60,
        "the private copy to serve its members",
    )
    noor = hub(shared_platform, tokens["noor"])
    with pytest.raises(RepositoryNotFoundError):
        noor.space_info("studio/portfolio")
    assert app(shared_platform, "studio/portfolio", token=tokens["noor"]).status_code == 404
    assert clone(shared_platform, "studio/portfolio", tmp_path / "x", tokens["noor"]).returncode

    with pytest.raises(HfHubHTTPError) as existing:
        mia.duplicate_repo(source, "studio/portfolio", repo_type="space")
    assert existing.value.response.status_code == 409
    again = mia.duplicate_repo(source, "studio/portfolio", repo_type="space", exist_ok=True)
    assert again.repo_id == "studio/portfolio"

    # Reading the source is needed, and writing where the copy goes.
    with pytest.raises(HfHubHTTPError) as foreign:
        noor.duplicate_repo(source, "studio/stolen", repo_type="space")
    assert foreign.value.response.status_code == 403
    with pytest.raises(RepositoryNotFoundError):
        noor.duplicate_repo("studio/portfolio", "noor/peek", repo_type="space")
    with pytest.raises(HfHubHTTPError) as read_only:
        hub(shared_platform, tokens["mia-read"]).duplicate_repo(
            source, "mia_reader/copy", repo_type="space"
        )
    assert read_only.value.response.status_code == 403
    assert not hub(shared_platform).repo_exists("noor/peek", repo_type="space")


def test_hf_cli_repos_duplicate(
    shared_platform: Platform, tokens: dict[str, str], tmp_path: Path
) -> None:
    source = shared_platform.create_space("cli-album")
    publish_site(shared_platform, tmp_path / "site", source, "cli")
    env = {
        **os.environ,
        "HF_ENDPOINT": shared_platform.url,
        "HF_TOKEN": tokens["noor"],
        "HF_HOME": str(tmp_path / "hf-home"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }
    hf = Path(sys.executable).parent / "hf"  # the CLI of the huggingface_hub under test
    result = subprocess.run(
        [str(hf), "repos", "duplicate", source, "noor/my-album", "--type", "space", "--private"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "noor/my-album" in result.stdout
    noor = hub(shared_platform, tokens["noor"])
    assert noor.space_info("noor/my-album").private is True
    wait_for(
        lambda: serves_album(shared_platform, "noor/my-album", "cli", token=tokens["noor"]),
        60,
        "the CLI's copy to serve",
    )


GRADIO_DUPLICATE = """
import sys
from gradio_client import Client

try:
    Client.duplicate(sys.argv[1], token=sys.argv[2], secrets={"API_KEY": "k"}, verbose=False)
except Exception as error:
    print(f"{type(error).__name__}: {error}")
"""


def test_gradio_client_duplicate_makes_a_private_copy_with_its_secrets(
    shared_platform: Platform, tokens: dict[str, str], tmp_path: Path
) -> None:
    """`Client.duplicate` goes through the Hub API, then connects to the copy's Gradio app.

    A static space has no Gradio app, so the last step fails here; the Hub calls before it are
    what this checks (a Docker test runs a Gradio app).
    """
    source = shared_platform.create_space("gradio-dup-source")
    publish_site(shared_platform, tmp_path / "site", source, "gradio")
    env = {
        **os.environ,
        "HF_ENDPOINT": shared_platform.url,
        "HF_HOME": str(tmp_path / "hf-home"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }

    def duplicate() -> str:
        return subprocess.run(
            [sys.executable, "-c", GRADIO_DUPLICATE, source, tokens["noor"]],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout

    copy = "noor/gradio-dup-source"
    # Every Hub call succeeded: the client got as far as the copy's own app URL.
    not_gradio = f"Could not get Gradio config from: {shared_platform.apps_url}/apps/{copy}/"
    assert duplicate().strip() == f"ValueError: {not_gradio}"
    noor = hub(shared_platform, tokens["noor"])
    assert noor.space_info(copy).private is True
    assert set(noor.get_space_secrets(copy)) == {"API_KEY"}
    wait_for(
        lambda: serves_album(shared_platform, copy, "gradio", token=tokens["noor"]), 60, "the copy"
    )
    # A second call finds the copy and uses it (its secrets are not sent again).
    assert duplicate().strip() == f"ValueError: {not_gradio}"
    assert set(noor.get_space_secrets(copy)) == {"API_KEY"}


# update_repo_settings


def test_update_repo_settings_turns_a_space_private_and_public_again(
    shared_platform: Platform, tokens: dict[str, str], tmp_path: Path
) -> None:
    space = shared_platform.create_space("mia/diary", token=tokens["mia"])
    publish_site_as(shared_platform, tmp_path / "site", space, tokens["mia"])
    mia = hub(shared_platform, tokens["mia"])
    noor = hub(shared_platform, tokens["noor"])
    anonymous = hub(shared_platform, False)

    def stranger_sees(expected: bool) -> None:
        if expected:
            assert noor.space_info(space).private is False
            assert anonymous.space_info(space).id == space
        else:
            with pytest.raises(RepositoryNotFoundError):
                noor.space_info(space)
            assert not anonymous.repo_exists(space, repo_type="space")
        cloned = clone(shared_platform, space, Path(mkdtemp(dir=tmp_path)) / "c", tokens["noor"])
        assert (cloned.returncode == 0) is expected, cloned.stderr
        for form in ("path", "subdomain"):
            for token in (tokens["noor"], None):
                status = app(shared_platform, space, form=form, token=token).status_code
                assert status == (200 if expected else 404), (form, token, status)

    stranger_sees(True)
    mia.update_repo_settings(space, repo_type="space", private=True)
    assert mia.space_info(space).private is True
    stranger_sees(False)
    assert serves_album(shared_platform, space, "diary", token=tokens["mia"])
    assert serves_album(shared_platform, space, "diary", form="subdomain", token=tokens["mia"])
    assert clone(shared_platform, space, tmp_path / "own", tokens["mia"]).returncode == 0

    mia.update_repo_settings(space, repo_type="space", visibility="public")
    stranger_sees(True)

    with pytest.raises(HfHubHTTPError) as not_hers:
        noor.update_repo_settings(space, repo_type="space", private=True)
    assert not_hers.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError) as gated:
        mia.update_repo_settings(space, repo_type="space", gated="auto")
    assert gated.value.response.status_code == 400
    assert mia.space_info(space).private is False


def publish_site_as(platform: Platform, workdir: Path, space_id: str, token: str) -> None:
    checkout = make_checkout(
        workdir, {"README.md": README, "index.html": "<h1>Album — diary</h1>\n"}
    )
    (checkout / "assets").mkdir()
    (checkout / PHOTO_PATH).write_bytes(PHOTO)
    commit_all(checkout, "Add a photo")
    result = push(platform, checkout, space_id, "--force", token=token)
    assert result.returncode == 0, result.stderr
    platform.wait_stage(space_id, LIVE)


# move_repo


def test_move_repo_renames_the_space_its_app_and_its_git(
    shared_platform: Platform, tokens: dict[str, str], tmp_path: Path
) -> None:
    old = "mia/trip"
    shared_platform.create_space(old, token=tokens["mia"])
    publish_site_as(shared_platform, tmp_path / "site", old, tokens["mia"])
    mia = hub(shared_platform, tokens["mia"])
    mia.add_space_variable(old, "ALBUM", "Lisboa")
    mia.add_space_secret(old, "KEY", "v")
    before = remote_refs(shared_platform, old, tokens["mia"])

    mia.move_repo(old, "mia/trip-2026", repo_type="space")

    new = "mia/trip-2026"
    assert mia.space_info(new).id == new
    for form in ("path", "subdomain"):
        assert serves_album(shared_platform, new, "diary", form=form), form
        assert app(shared_platform, old, form=form).status_code == 404, form
    with pytest.raises(RepositoryNotFoundError):
        mia.space_info(old)
    assert remote_refs(shared_platform, new, tokens["mia"]) == before
    cloned = tmp_path / "clone"
    assert clone(shared_platform, new, cloned, tokens["mia"]).returncode == 0
    assert (cloned / PHOTO_PATH).read_bytes() == PHOTO
    assert clone(shared_platform, old, tmp_path / "gone", tokens["mia"]).returncode != 0
    assert set(mia.get_space_variables(new)) == {"ALBUM"}
    assert set(mia.get_space_secrets(new)) == {"KEY"}

    # A push to the new id builds and serves under it.
    write_files(cloned, {"index.html": "<h1>Album — renamed</h1>\n"})
    commit_all(cloned, "New title")
    assert push(shared_platform, cloned, new, token=tokens["mia"]).returncode == 0
    wait_for(lambda: serves_album(shared_platform, new, "renamed"), 60, "the new push to serve")

    # Into an org she belongs to: allowed; the old label is free again for a new space.
    mia.move_repo(new, "studio/trip", repo_type="space")
    assert serves_album(shared_platform, "studio/trip", "renamed", form="subdomain")
    shared_platform.create_space(new, token=tokens["mia"])
    assert app(shared_platform, new).status_code == 503  # the new, empty space's status page


def test_move_repo_refuses_taken_ids_and_foreign_owners_and_keeps_the_space(
    shared_platform: Platform, tokens: dict[str, str], tmp_path: Path
) -> None:
    space = "mia/notes"
    shared_platform.create_space(space, token=tokens["mia"])
    shared_platform.create_space("mia/taken", token=tokens["mia"])
    publish_site_as(shared_platform, tmp_path / "site", space, tokens["mia"])
    mia = hub(shared_platform, tokens["mia"])

    def refused(to_id: str, status: int) -> None:
        with pytest.raises(HfHubHTTPError) as error:
            mia.move_repo(space, to_id, repo_type="space")
        assert error.value.response.status_code == status, error.value.response.text

    refused("mia/taken", 409)  # an existing space
    refused("mia/Taken", 409)  # a space whose app host label would be the same
    refused("noor/notes", 403)  # an owner she cannot write for
    with pytest.raises(HfHubHTTPError) as not_hers:
        hub(shared_platform, tokens["noor"]).move_repo(space, "noor/notes", repo_type="space")
    assert not_hers.value.response.status_code == 403
    # A directory left on disk where the repository would go: the move fails at the disk step.
    stray = shared_platform.data_dir / "repos" / "mia" / "notes-moved.git"
    stray.mkdir(parents=True)
    refused("mia/notes-moved", 409)
    assert stray.exists() and not any(stray.iterdir())

    assert serves_album(shared_platform, space, "diary")
    assert serves_album(shared_platform, space, "diary", form="subdomain")
    assert mia.space_info(space).id == space
    assert clone(shared_platform, space, tmp_path / "clone", tokens["mia"]).returncode == 0


# A Docker-SDK space: its container carries the space id, so a move starts it again under the new.

DOCKER_APP = {
    "README.md": "---\ntitle: Tiny server\nsdk: docker\n---\n",
    "index.html": "<h1>Album — docker</h1>\n",
    "Dockerfile": (
        "FROM python:3.11-slim\nRUN useradd -m -u 1000 user\nUSER user\n"
        "WORKDIR /home/user/app\nCOPY --chown=user . .\n"
        'CMD ["python3", "-m", "http.server", "7860"]\n'
    ),
}


@pytest.mark.docker
def test_move_of_a_running_docker_space_restarts_it_under_its_new_id(
    platform: Platform, docker_engine, tmp_path: Path
) -> None:
    old, new = "admin/tiny-server", "admin/tiny-server-moved"
    platform.create_space("tiny-server", sdk="docker")

    def containers(space_id: str) -> list:
        return docker_engine.containers.list(filters={"label": f"spacehub.space={space_id}"})

    def serves(space_id: str) -> bool:
        page = app(platform, space_id)
        return page.status_code == 200 and "Album — docker" in page.text

    try:
        checkout = make_checkout(tmp_path / "app", DOCKER_APP)
        assert push(platform, checkout, old, "--force").returncode == 0
        platform.wait_stage(old, LIVE, timeout=300)
        assert serves(old) and len(containers(old)) == 1

        hub(platform).move_repo(old, new, repo_type="space")

        wait_for(lambda: serves(new) and not containers(old), 120, "the move's restart")
        assert app(platform, old).status_code == 404
        (running,) = containers(new)
        assert running.attrs["Config"]["Env"].count(f"SPACE_ID={new}") == 1
        assert serves(new) and app(platform, new, form="subdomain").status_code == 200
        assert platform.runtime(new)["stage"] == "RUNNING"
    finally:
        with platform.api() as client:
            for space_id in (old, new):
                owner, name = space_id.split("/")
                client.request(
                    "DELETE", "/api/repos/delete", json={"name": name, "organization": owner}
                )
        for image in docker_engine.images.list(filters={"label": f"spacehub.space={old}"}):
            for tag in image.tags:
                docker_engine.images.remove(tag)

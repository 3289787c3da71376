"""Spaces that follow a GitHub or Gitea repository: signed push webhooks deploy its commits.

The "GitHub" is a local bare repository, or another space of the same platform served over
HTTP with a required token; deliveries are signed and shaped like GitHub's and Gitea's
documented push payloads. Loopback only: nothing leaves the machine.
"""

import hashlib
import hmac
import json
import re
import subprocess
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import (
    ADMIN_TOKEN,
    Platform,
    add_user,
    commit_all,
    git,
    make_checkout,
    push,
    readme,
    wait_for,
    write_files,
)
from tests.test_static_spaces import app_get, builds_of

SITE_README = readme("Followed site", "static")


def page(heading: str) -> str:
    return f"<!doctype html><html><body><h1>{heading}</h1></body></html>\n"


def upstream_repository(tmp_path: Path, name: str, heading: str) -> tuple[Path, Path]:
    """A bare repository standing in for GitHub, and a working copy pushing to it."""
    bare = tmp_path / f"{name}.git"
    git("init", "--quiet", "--bare", "--initial-branch=main", str(bare))
    work = make_checkout(
        tmp_path / f"{name} work",
        {"README.md": SITE_README, "index.html": page(heading), "notes/über uns.txt": "Grüße\n"},
    )
    git("push", "--quiet", str(bare), "main", cwd=work)
    return bare, work


def new_commit(work: Path, upstream: str, heading: str, branch: str = "main") -> str:
    write_files(work, {"index.html": page(heading)})
    commit = commit_all(work, f"say {heading}")
    git("push", "--quiet", upstream, f"HEAD:refs/heads/{branch}", cwd=work)
    return commit


def follow(
    platform: Platform, space_id: str, url: str, caller: str = ADMIN_TOKEN, **settings: object
) -> dict:
    with platform.api(caller) as client:
        answer = client.put(f"/api/spaces/{space_id}/source", json={"url": url, **settings})
    assert answer.status_code == 200, answer.text
    return answer.json()


def github_payload(source_url: str, before: str, after: str, ref: str = "refs/heads/main") -> dict:
    """A push event as GitHub documents it (the fields a receiver may read)."""
    return {
        "ref": ref,
        "before": before,
        "after": after,
        "created": False,
        "deleted": False,
        "forced": False,
        "base_ref": None,
        "compare": f"https://github.com/acme/site/compare/{before[:12]}...{after[:12]}",
        "commits": [
            {
                "id": after,
                "tree_id": "0" * 40,
                "distinct": True,
                "message": "Update the page",
                "timestamp": "2026-11-30T01:00:00Z",
                "url": f"https://github.com/acme/site/commit/{after}",
                "author": {"name": "Zoë", "email": "zoe@example.com", "username": "zoe"},
                "committer": {"name": "Zoë", "email": "zoe@example.com", "username": "zoe"},
                "added": [],
                "removed": [],
                "modified": ["index.html"],
            }
        ],
        "head_commit": {"id": after, "message": "Update the page"},
        "repository": {
            "id": 123456,
            "name": "site",
            "full_name": "acme/site",
            "private": False,
            "clone_url": source_url,
            "ssh_url": "git@github.com:acme/site.git",
            "default_branch": "main",
        },
        "pusher": {"name": "zoe", "email": "zoe@example.com"},
        "sender": {"login": "zoe", "id": 42, "type": "User"},
    }


def gitea_payload(source_url: str, before: str, after: str, ref: str = "refs/heads/main") -> dict:
    """A push event as Gitea sends it."""
    return {
        "ref": ref,
        "before": before,
        "after": after,
        "compare_url": f"https://gitea.example/acme/site/compare/{before}...{after}",
        "commits": [
            {
                "id": after,
                "message": "Update the page\n",
                "url": f"https://gitea.example/acme/site/commit/{after}",
                "author": {"name": "Zoë", "email": "zoe@example.com", "username": "zoe"},
                "committer": {"name": "Zoë", "email": "zoe@example.com", "username": "zoe"},
                "timestamp": "2026-11-30T01:00:00Z",
                "added": [],
                "removed": [],
                "modified": ["index.html"],
            }
        ],
        "total_commits": 1,
        "head_commit": {"id": after, "message": "Update the page\n"},
        "repository": {
            "id": 7,
            "name": "site",
            "full_name": "acme/site",
            "private": False,
            "clone_url": source_url,
            "ssh_url": "git@gitea.example:acme/site.git",
            "default_branch": "main",
        },
        "pusher": {"login": "zoe", "id": 3},
        "sender": {"login": "zoe", "id": 3},
    }


def deliver(
    platform: Platform,
    space_id: str,
    secret: str,
    payload: dict | bytes,
    *,
    provider: str = "github",
    event: str = "push",
    delivery: str | None = None,
    signature: str | None = None,
) -> httpx.Response:
    """POST a delivery signed like GitHub (`sha256=<hex>`) or Gitea (bare hex) sign theirs."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    delivery = delivery or str(uuid.uuid4())
    if provider == "github":
        headers = {
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": signature if signature is not None else f"sha256={digest}",
            "User-Agent": "GitHub-Hookshot/abc123",
        }
    else:
        headers = {
            "X-Gitea-Event": event,
            "X-Gitea-Delivery": delivery,
            "X-Gitea-Signature": signature if signature is not None else digest,
        }
    headers["Content-Type"] = "application/json"
    with platform.api(token=None, timeout=120) as client:
        return client.post(f"/api/webhooks/{space_id}", content=body, headers=headers)


def space_main(platform: Platform, space_id: str) -> str:
    owner, _, name = space_id.partition("/")
    repo = platform.data_dir / "repos" / owner / f"{name}.git"
    return git("--git-dir", str(repo), "rev-parse", "refs/heads/main").stdout.strip()


def serves(platform: Platform, space_id: str, text: str) -> bool:
    answer = app_get(platform, space_id, "/")
    return answer.status == 200 and text in answer.text


def wait_served(platform: Platform, space_id: str, text: str) -> None:
    wait_for(lambda: serves(platform, space_id, text), 60, f"{space_id} to serve {text!r}")


@pytest.fixture(scope="module")
def hub(shared_platform: Platform) -> Platform:
    return shared_platform


def test_github_push_deploys_the_commit_and_builds_it(hub: Platform, tmp_path: Path) -> None:
    bare, work = upstream_repository(tmp_path, "site", "Hallo from GitHub")
    space_id = hub.create_space("follows-github")
    settings = follow(hub, space_id, bare.as_uri())
    secret = settings["webhook"]["secret"]
    assert settings["webhook"]["url"] == f"{hub.url}/api/webhooks/{space_id}"
    before = space_main(hub, space_id)

    first = git("rev-parse", "HEAD", cwd=work).stdout.strip()
    answer = deliver(hub, space_id, secret, github_payload(bare.as_uri(), "0" * 40, first))

    assert answer.status_code == 200, answer.text
    assert answer.json()["result"] == "deployed"
    assert space_main(hub, space_id) == first != before
    wait_served(hub, space_id, "Hallo from GitHub")

    second = new_commit(work, str(bare), "Zweite Fassung ✨")
    answer = deliver(hub, space_id, secret, github_payload(bare.as_uri(), first, second))
    assert answer.status_code == 200, answer.text
    wait_served(hub, space_id, "Zweite Fassung ✨")
    assert space_main(hub, space_id) == second
    assert [commit for commit, _ in builds_of(hub, space_id)][-2:] == [first, second]


def test_gitea_push_deploys_the_commit(hub: Platform, tmp_path: Path) -> None:
    bare, work = upstream_repository(tmp_path, "gitea site", "Hello from Gitea")
    space_id = hub.create_space("follows-gitea")
    secret = follow(hub, space_id, str(bare))["webhook"]["secret"]  # a plain path works too
    commit = git("rev-parse", "HEAD", cwd=work).stdout.strip()

    answer = deliver(
        hub, space_id, secret, gitea_payload(str(bare), "0" * 40, commit), provider="gitea"
    )

    assert answer.status_code == 200, answer.text
    assert space_main(hub, space_id) == commit
    wait_served(hub, space_id, "Hello from Gitea")
    with hub.api() as client:
        last = client.get(f"/api/spaces/{space_id}/source").json()["lastDelivery"]
    assert last["commit"] == commit and last["status"] == "deployed" and last["error"] is None


def test_ping_answers_and_other_events_are_ignored(hub: Platform, tmp_path: Path) -> None:
    bare, _ = upstream_repository(tmp_path, "pinged", "ping")
    space_id = hub.create_space("pinged")
    secret = follow(hub, space_id, bare.as_uri())["webhook"]["secret"]
    before = space_main(hub, space_id)

    ping = deliver(hub, space_id, secret, {"zen": "Keep it logically awesome."}, event="ping")
    star = deliver(hub, space_id, secret, {"action": "created"}, event="star")

    assert ping.status_code == 200 and ping.json()["result"] == "pong"
    assert star.status_code == 202 and star.json()["result"] == "ignored"
    assert space_main(hub, space_id) == before


@pytest.mark.parametrize("provider", ["github", "gitea"])
def test_a_bad_or_missing_signature_is_401_and_changes_nothing(
    hub: Platform, tmp_path: Path, provider: str
) -> None:
    bare, work = upstream_repository(tmp_path, f"signed-{provider}", "should not deploy")
    space_id = hub.create_space(f"signed-{provider}")
    secret = follow(hub, space_id, bare.as_uri())["webhook"]["secret"]
    before = space_main(hub, space_id)
    commit = git("rev-parse", "HEAD", cwd=work).stdout.strip()
    payload = github_payload(bare.as_uri(), "0" * 40, commit)
    body = json.dumps(payload).encode()
    good = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()

    attempts = [
        deliver(hub, space_id, "not-the-secret", payload, provider=provider),
        deliver(hub, space_id, secret, payload, provider=provider, signature=""),
        # Signed, then changed on the way: the raw body is what is checked.
        deliver(
            hub, space_id, secret, body.replace(b'"zoe"', b'"eve"'), provider=provider,
            signature=good if provider == "gitea" else f"sha256={good}",
        ),
    ]  # fmt: skip

    assert [answer.status_code for answer in attempts] == [401, 401, 401]
    assert all("signature" in answer.json()["error"] for answer in attempts)
    assert space_main(hub, space_id) == before
    assert builds_of(hub, space_id) == []


def test_unknown_space_or_no_source_is_404(hub: Platform) -> None:
    space_id = hub.create_space("no-source")
    payload = github_payload("https://github.com/acme/site.git", "0" * 40, "a" * 40)
    assert deliver(hub, space_id, "x", payload).status_code == 404
    assert deliver(hub, "admin/does-not-exist", "x", payload).status_code == 404


def test_a_push_to_another_branch_is_ignored(hub: Platform, tmp_path: Path) -> None:
    bare, work = upstream_repository(tmp_path, "branches", "main page")
    space_id = hub.create_space("follows-release")
    secret = follow(hub, space_id, bare.as_uri(), branch="release/v1")["webhook"]["secret"]
    before = space_main(hub, space_id)
    commit = git("rev-parse", "HEAD", cwd=work).stdout.strip()

    answer = deliver(hub, space_id, secret, github_payload(bare.as_uri(), "0" * 40, commit))

    assert answer.status_code == 202, answer.text
    assert answer.json()["result"] == "ignored"
    assert space_main(hub, space_id) == before
    released = new_commit(work, str(bare), "Release one", branch="release/v1")
    payload = github_payload(bare.as_uri(), "0" * 40, released, ref="refs/heads/release/v1")
    assert deliver(hub, space_id, secret, payload).status_code == 200
    assert space_main(hub, space_id) == released


def test_a_redelivered_push_builds_once(hub: Platform, tmp_path: Path) -> None:
    bare, work = upstream_repository(tmp_path, "replayed", "once")
    space_id = hub.create_space("replayed")
    secret = follow(hub, space_id, bare.as_uri())["webhook"]["secret"]
    commit = git("rev-parse", "HEAD", cwd=work).stdout.strip()
    payload = github_payload(bare.as_uri(), "0" * 40, commit)

    first = deliver(hub, space_id, secret, payload, delivery="72d3162e-cc78-11e3-81ab-4c9367dc0958")
    wait_served(hub, space_id, "once")
    again = deliver(hub, space_id, secret, payload, delivery="72d3162e-cc78-11e3-81ab-4c9367dc0958")

    assert first.json()["result"] == "deployed"
    assert again.status_code == 200 and again.json()["result"] == "current"
    assert [commit for commit, _ in builds_of(hub, space_id)] == [commit]


def test_a_commit_not_on_the_branch_is_422_and_main_stays(hub: Platform, tmp_path: Path) -> None:
    bare, work = upstream_repository(tmp_path, "elsewhere", "main page")
    space_id = hub.create_space("elsewhere")
    secret = follow(hub, space_id, bare.as_uri())["webhook"]["secret"]
    before = space_main(hub, space_id)
    side = new_commit(work, str(bare), "only on a side branch", branch="side")

    answer = deliver(hub, space_id, secret, github_payload(bare.as_uri(), "0" * 40, side))

    assert answer.status_code == 422, answer.text
    assert "not on branch 'main'" in answer.json()["error"]
    assert space_main(hub, space_id) == before
    with hub.api() as client:
        last = client.get(f"/api/spaces/{space_id}/source").json()["lastDelivery"]
    assert last["status"] == "failed" and "not on branch" in last["error"]


def test_an_unreachable_source_is_502_and_main_stays(hub: Platform, tmp_path: Path) -> None:
    space_id = hub.create_space("unreachable")
    gone = tmp_path / "gone.git"
    secret = follow(hub, space_id, gone.as_uri())["webhook"]["secret"]
    before = space_main(hub, space_id)

    answer = deliver(hub, space_id, secret, github_payload(gone.as_uri(), "0" * 40, "b" * 40))

    assert answer.status_code == 502, answer.text
    assert "could not fetch branch 'main'" in answer.json()["error"]
    assert space_main(hub, space_id) == before


def test_rotating_the_secret_refuses_the_old_one(hub: Platform, tmp_path: Path) -> None:
    bare, work = upstream_repository(tmp_path, "rotated", "rotated page")
    space_id = hub.create_space("rotated")
    old = follow(hub, space_id, bare.as_uri())["webhook"]["secret"]
    with hub.api() as client:
        rotated = client.post(f"/api/spaces/{space_id}/source/secret").json()["webhook"]["secret"]
        shown = client.get(f"/api/spaces/{space_id}/source").json()
    commit = git("rev-parse", "HEAD", cwd=work).stdout.strip()
    payload = github_payload(bare.as_uri(), "0" * 40, commit)

    assert rotated != old
    assert "secret" not in shown["webhook"] and shown["webhook"]["secretSet"] is True
    assert deliver(hub, space_id, old, payload).status_code == 401
    assert deliver(hub, space_id, rotated, payload).status_code == 200


def test_only_the_owner_configures_and_paths_are_for_admins(hub: Platform, tmp_path: Path) -> None:
    bare, _ = upstream_repository(tmp_path, "guarded", "guarded")
    mallory = add_user(hub, "mallory-src")
    owner_token = add_user(hub, "olga-src")
    space_id = hub.create_space("olga-src/guarded", token=owner_token)
    with hub.api(mallory) as client:
        stranger = client.put(f"/api/spaces/{space_id}/source", json={"url": bare.as_uri()})
    with hub.api(owner_token) as client:
        local = client.put(f"/api/spaces/{space_id}/source", json={"url": str(bare)})
        injected = client.put(
            f"/api/spaces/{space_id}/source",
            json={"url": "https://example.com/acme/site.git", "token": "abc\r\nX-Evil: 1"},
        )
        in_url = client.put(
            f"/api/spaces/{space_id}/source", json={"url": "https://bot:hunter2@example.com/a.git"}
        )
        fine = client.put(
            f"/api/spaces/{space_id}/source",
            json={"url": "https://example.com/acme/site.git", "branch": "main"},
        )

    assert stranger.status_code == 403
    assert local.status_code == 403 and "admin" in local.json()["error"]
    assert injected.status_code == 422
    assert in_url.status_code == 422 and "hunter2" not in in_url.text
    assert fine.status_code == 200 and fine.json()["credential"] is None


def test_deleting_the_source_stops_deliveries(hub: Platform, tmp_path: Path) -> None:
    bare, work = upstream_repository(tmp_path, "unfollowed", "unfollowed")
    space_id = hub.create_space("unfollowed")
    secret = follow(hub, space_id, bare.as_uri())["webhook"]["secret"]
    with hub.api() as client:
        assert client.delete(f"/api/spaces/{space_id}/source").status_code == 200
        assert client.get(f"/api/spaces/{space_id}/source").status_code == 404
    commit = git("rev-parse", "HEAD", cwd=work).stdout.strip()
    answer = deliver(hub, space_id, secret, github_payload(bare.as_uri(), "0" * 40, commit))
    assert answer.status_code == 404


def test_an_oversized_body_is_413(hub: Platform, tmp_path: Path) -> None:
    bare, _ = upstream_repository(tmp_path, "big body", "big")
    space_id = hub.create_space("big-body")
    secret = follow(hub, space_id, bare.as_uri())["webhook"]["secret"]
    payload = github_payload(bare.as_uri(), "0" * 40, "c" * 40)
    payload["padding"] = "x" * (2 * 1024 * 1024)
    assert deliver(hub, space_id, secret, payload).status_code == 413


def test_lfs_files_of_the_source_are_fetched(hub: Platform, tmp_path: Path) -> None:
    bare = tmp_path / "lfs-site.git"
    git("init", "--quiet", "--bare", "--initial-branch=main", str(bare))
    work = tmp_path / "lfs site work"
    work.mkdir()
    git("init", "--quiet", "--initial-branch=main", cwd=work)
    git("lfs", "install", "--local", cwd=work)
    git("lfs", "track", "*.bin", cwd=work)
    weights = (hashlib.sha256(b"weights").digest() * (3 * 1024 * 1024 // 32))[: 3 * 1024 * 1024]
    (work / "model weights 🚀.bin").write_bytes(weights)
    write_files(work, {"README.md": SITE_README, "index.html": page("LFS inside")})
    commit = commit_all(work, "site with weights")
    git("push", "--quiet", bare.as_uri(), "main", cwd=work)
    space_id = hub.create_space("follows-lfs")
    secret = follow(hub, space_id, bare.as_uri())["webhook"]["secret"]

    answer = deliver(hub, space_id, secret, github_payload(bare.as_uri(), "0" * 40, commit))

    assert answer.status_code == 200, answer.text
    wait_served(hub, space_id, "LFS inside")
    served = app_get(hub, space_id, "/model%20weights%20%F0%9F%9A%80.bin")
    assert served.status == 200 and served.body == weights
    assert not (hub.data_dir / "repos" / "admin" / "follows-lfs.git" / "lfs").exists()


def test_a_private_source_over_http_needs_its_token_and_never_shows_it(
    hub: Platform, tmp_path: Path
) -> None:
    deploy_token = add_user(hub, "deploy-bot", "read", orgs=("acme-src",))
    upstream_id = hub.create_space("acme-src/upstream", private=True)
    work = make_checkout(
        tmp_path / "upstream work",
        {"README.md": SITE_README, "index.html": page("Private source")},
        clone_url=hub.git_url(upstream_id),
    )
    # The Hub's .gitattributes sends *.bin to LFS: the token must reach git-lfs too.
    weights = hashlib.sha256(b"private").digest() * (64 * 1024)
    (work / "gewichte 2.bin").write_bytes(weights)
    commit = commit_all(work, "weights")
    assert push(hub, work, upstream_id).returncode == 0
    assert b"oid sha256:" in git("show", "HEAD:gewichte 2.bin", cwd=work).stdout.encode()
    source_url = f"{hub.url}/spaces/{upstream_id}"
    space_id = hub.create_space("follows-private")
    payload = github_payload(source_url, "0" * 40, commit)

    secret = follow(hub, space_id, source_url)["webhook"]["secret"]
    refused = deliver(hub, space_id, secret, payload)
    assert refused.status_code == 502, refused.text
    assert space_main(hub, space_id) != commit

    settings = follow(hub, space_id, source_url, token=deploy_token)
    answer = deliver(hub, space_id, secret, payload)

    assert answer.status_code == 200, answer.text
    assert settings["credential"] == "token" and "webhook" in settings
    assert space_main(hub, space_id) == commit
    wait_served(hub, space_id, "Private source")
    assert app_get(hub, space_id, "/gewichte%202.bin").body == weights
    with hub.api() as client:
        shown = client.get(f"/api/spaces/{space_id}/source").text
        build_log = client.get(f"/api/spaces/{space_id}/logs/build", timeout=60).text
    repo = hub.data_dir / "repos" / "admin" / "follows-private.git"
    config = git("--git-dir", str(repo), "config", "--list").stdout
    everything = subprocess.run(
        ["grep", "-rl", "--binary-files=text", deploy_token, str(hub.data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    for text in (json.dumps(settings), answer.text, shown, build_log, config, hub.log()):
        assert deploy_token not in text
    assert everything.stdout == "", f"the token is written in {everything.stdout}"


def test_a_private_source_over_ssh_uses_the_deploy_key_and_removes_it(
    hub: Platform, tmp_path: Path
) -> None:
    """The platform's own SSH git server stands in for GitHub's; the key is a bot's."""
    bot_token = add_user(hub, "ssh-deploy-bot", "write", orgs=("acme-ssh",))
    key_file = tmp_path / "deploy key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "deploy", "-f", str(key_file)],
        check=True,
        timeout=30,
    )
    with hub.api(bot_token) as client:
        added = client.post(
            "/api/settings/ssh-keys",
            json={"title": "deploy", "key": key_file.with_suffix(".pub").read_text()},
        )
    assert added.status_code in (200, 201), added.text
    upstream_id = hub.create_space("acme-ssh/upstream", private=True)
    work = make_checkout(
        tmp_path / "ssh upstream work",
        {"README.md": SITE_README, "index.html": page("Over SSH")},
        clone_url=hub.git_url(upstream_id),
    )
    assert push(hub, work, upstream_id).returncode == 0
    commit = git("rev-parse", "HEAD", cwd=work).stdout.strip()
    ssh_port = hub.env["SPACEHUB_SSH_PORT"]
    source_url = f"ssh://git@127.0.0.1:{ssh_port}/spaces/{upstream_id}"
    space_id = hub.create_space("follows-ssh")
    private_key = key_file.read_text()

    settings = follow(hub, space_id, source_url, ssh_key=private_key)
    answer = deliver(
        hub, space_id, settings["webhook"]["secret"], gitea_payload(source_url, "0" * 40, commit),
        provider="gitea",
    )  # fmt: skip

    assert answer.status_code == 200, answer.text
    assert settings["credential"] == "ssh_key"
    assert space_main(hub, space_id) == commit
    wait_served(hub, space_id, "Over SSH")
    key_body = private_key.splitlines()[2]  # the first line is the same for every key
    everything = subprocess.run(
        ["grep", "-rl", "--binary-files=text", key_body, str(hub.data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert everything.stdout == "", f"the deploy key is written in {everything.stdout}"
    assert list(Path(tempfile.gettempdir()).glob("spacehub-deploy-key-*")) == []


def test_sync_deploys_the_branch_tip_without_a_webhook(hub: Platform, tmp_path: Path) -> None:
    bare, work = upstream_repository(tmp_path, "synced", "Synced by hand")
    space_id = hub.create_space("synced")
    follow(hub, space_id, bare.as_uri())
    tip = git("rev-parse", "HEAD", cwd=work).stdout.strip()
    with httpx.Client(base_url=hub.url, timeout=120) as anonymous:
        refused = anonymous.post(f"/api/spaces/{space_id}/source/sync")
    with hub.api() as client:
        first = client.post(f"/api/spaces/{space_id}/source/sync", timeout=120)
        again = client.post(f"/api/spaces/{space_id}/source/sync", timeout=120)

    assert refused.status_code == 401
    assert first.status_code == 200 and first.json() == {**first.json(), "result": "deployed"}
    assert first.json()["commit"] == tip == space_main(hub, space_id)
    assert again.json()["result"] == "current"
    wait_served(hub, space_id, "Synced by hand")


def test_simultaneous_deliveries_of_one_push_build_it_once(hub: Platform, tmp_path: Path) -> None:
    bare, work = upstream_repository(tmp_path, "raced", "raced")
    space_id = hub.create_space("raced")
    secret = follow(hub, space_id, bare.as_uri())["webhook"]["secret"]
    commit = git("rev-parse", "HEAD", cwd=work).stdout.strip()
    payload = github_payload(bare.as_uri(), "0" * 40, commit)

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: deliver(hub, space_id, secret, payload), range(4)))

    results = sorted(answer.json()["result"] for answer in answers)
    assert results == ["current", "current", "current", "deployed"]
    assert [built for built, _ in builds_of(hub, space_id)] == [commit]


def test_a_late_delivery_of_an_older_commit_does_not_go_back(hub: Platform, tmp_path: Path) -> None:
    bare, work = upstream_repository(tmp_path, "late", "first version")
    space_id = hub.create_space("late")
    secret = follow(hub, space_id, bare.as_uri())["webhook"]["secret"]
    older = git("rev-parse", "HEAD", cwd=work).stdout.strip()
    newer = new_commit(work, str(bare), "second version")

    assert deliver(hub, space_id, secret, github_payload(bare.as_uri(), older, newer)).is_success
    late = deliver(hub, space_id, secret, github_payload(bare.as_uri(), "0" * 40, older))

    assert late.status_code == 202 and late.json()["result"] == "stale"
    assert space_main(hub, space_id) == newer
    wait_served(hub, space_id, "second version")


def test_the_space_settings_page_sets_the_source_and_shows_the_secret_once(
    hub: Platform, tmp_path: Path
) -> None:
    bare, work = upstream_repository(tmp_path, "from the dashboard", "Set in the dashboard")
    space_id = hub.create_space("dashboard-source")
    settings_url = f"/spaces/{space_id}/settings"
    with httpx.Client(base_url=hub.url, timeout=60, follow_redirects=True) as browser:
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', browser.get("/signin").text)[1]
        browser.post("/signin", data={"csrf_token": csrf, "token": ADMIN_TOKEN})
        page = browser.get(settings_url).text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)[1]
        assert 'id="source-form"' in page and "webhook-secret" not in page
        saved = browser.post(
            f"/spaces/{space_id}/source",
            data={
                "csrf_token": csrf,
                "url": bare.as_uri(),
                "branch": "main",
                "token": "",
                "ssh_key": "",
            },
        )
        secret = re.search(r'id="webhook-secret">([^<]+)<', saved.text)[1]
        shown_later = browser.get(settings_url).text
        synced = browser.post(f"/spaces/{space_id}/source/sync", data={"csrf_token": csrf})

    assert saved.status_code == 200
    assert secret not in shown_later and bare.as_uri() in shown_later
    assert synced.status_code == 200 and "build queued" in synced.text
    commit = git("rev-parse", "HEAD", cwd=work).stdout.strip()
    assert space_main(hub, space_id) == commit
    wait_served(hub, space_id, "Set in the dashboard")
    again = deliver(hub, space_id, secret, github_payload(bare.as_uri(), "0" * 40, commit))
    assert again.status_code == 200 and again.json()["result"] == "current"

"""Git smart HTTP against a real `spacehub serve`: who may clone and push, size limits, history.

A space's git remote is `PUBLIC_URL/spaces/{owner}/{name}` (also with `.git`); git sends the
token as the HTTP Basic password (DESIGN.md §4, §7).
"""

import os
from pathlib import Path

import httpx
import pytest

from tests.conftest import (
    EXAMPLES,
    Platform,
    add_user,
    commit_all,
    git,
    make_checkout,
    push,
    start_platform,
    stop_cleanly,
    wait_for,
)

SITE = EXAMPLES / "static-site"


def pushed_space(platform: Platform, tmp_path: Path, name: str, **create: object) -> Path:
    """Create the space `name`, push the example static site to it; return the checkout."""
    token = str(create.get("token", platform.token))
    space_id = platform.create_space(name, **create)  # type: ignore[arg-type]
    clone_url = platform.git_url(space_id, token)
    checkout = make_checkout(tmp_path / name.replace("/", "-"), SITE, clone_url)
    result = push(platform, checkout, space_id, token=token)
    assert result.returncode == 0, result.stderr
    return checkout


def clone(
    platform: Platform, space_id: str, destination: Path, token: str | None = None, suffix=""
):
    url = platform.git_url(space_id, token) + suffix
    return git("clone", "--quiet", url, str(destination), check=False)


def remote_main(platform: Platform, space_id: str) -> str | None:
    """The commit `main` points at on the platform, read with the admin token."""
    refs = git("ls-remote", platform.git_url(space_id), "refs/heads/main").stdout.split()
    return refs[0] if refs else None


def head(checkout: Path) -> str:
    return git("rev-parse", "HEAD", cwd=checkout).stdout.strip()


def info_refs(platform: Platform, space_id: str, service: str, token: str | None = None):
    """The first request git makes for `service`, sent by hand to see the status and body."""
    return httpx.get(
        f"{platform.url}/spaces/{space_id}/info/refs",
        params={"service": service},
        auth=("user", token) if token else None,
        timeout=30,
    )


def test_public_space_clones_without_a_token(shared_platform: Platform, tmp_path: Path):
    pushed_space(shared_platform, tmp_path, "open-site")

    cloned = clone(shared_platform, "admin/open-site", tmp_path / "clone")

    assert cloned.returncode == 0, cloned.stderr
    assert (tmp_path / "clone" / "index.html").read_text() == (SITE / "index.html").read_text()


def test_git_suffix_url_clones_and_pushes(shared_platform: Platform, tmp_path: Path):
    pushed_space(shared_platform, tmp_path, "suffixed")
    checkout = tmp_path / "clone"

    cloned = clone(shared_platform, "admin/suffixed", checkout, shared_platform.token, ".git")
    assert cloned.returncode == 0, cloned.stderr
    (checkout / "extra.txt").write_text("more\n")
    commit = commit_all(checkout, "through the .git URL")
    pushed = git("push", shared_platform.git_url("admin/suffixed") + ".git", "main", cwd=checkout)

    assert pushed.returncode == 0
    assert remote_main(shared_platform, "admin/suffixed") == commit


def test_anonymous_push_is_asked_for_credentials(shared_platform: Platform, tmp_path: Path):
    checkout = pushed_space(shared_platform, tmp_path, "anon-push")
    before = head(checkout)
    commit_all(checkout, "anonymous change")

    pushed = push(shared_platform, checkout, "admin/anon-push", token=None)
    answer = info_refs(shared_platform, "admin/anon-push", "git-receive-pack")

    assert pushed.returncode != 0
    # git asks for a user name and password: with prompts disabled it says it could not.
    assert "could not read Username" in pushed.stderr
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Basic")
    assert remote_main(shared_platform, "admin/anon-push") == before


@pytest.mark.parametrize(
    ("user", "role", "message"),
    [
        ("rita", "read", "remote: this token is read-only: pushing needs a 'write' token"),
        ("sam", "write", "remote: you may not act for 'admin'"),
    ],
    ids=["read-token", "stranger-write-token"],
)
def test_push_without_write_access_is_refused_with_a_message(
    shared_platform: Platform, tmp_path: Path, user: str, role: str, message: str
):
    token = add_user(shared_platform, user, role)
    space_id = f"admin/for-{user}"
    checkout = pushed_space(shared_platform, tmp_path, space_id)
    before = head(checkout)
    commit_all(checkout, f"pushed by {user}")

    pushed = push(shared_platform, checkout, space_id, token=token)
    answer = info_refs(shared_platform, space_id, "git-receive-pack", token)

    assert pushed.returncode != 0
    assert answer.status_code == 403
    # git shows a text/plain error body to its user as "remote: …" (a JSON one it hides).
    assert message in pushed.stderr, pushed.stderr
    assert remote_main(shared_platform, space_id) == before


def test_bad_token_push_is_refused(shared_platform: Platform, tmp_path: Path):
    checkout = pushed_space(shared_platform, tmp_path, "bad-token")
    before = head(checkout)
    commit_all(checkout, "with a made-up token")

    pushed = push(shared_platform, checkout, "admin/bad-token", token="hf_madeupXXXXXXXXXXXX")

    assert pushed.returncode != 0
    assert "Invalid credentials" in pushed.stderr
    assert "Authentication failed" in pushed.stderr
    assert remote_main(shared_platform, "admin/bad-token") == before


def test_private_space_is_not_revealed_to_anonymous_or_strangers(
    shared_platform: Platform, tmp_path: Path
):
    stranger = add_user(shared_platform, "steve")
    pushed_space(shared_platform, tmp_path, "hidden", private=True)

    anonymous = clone(shared_platform, "admin/hidden", tmp_path / "anonymous")
    strangers = clone(shared_platform, "admin/hidden", tmp_path / "stranger", stranger)

    assert anonymous.returncode != 0
    assert "could not read Username" in anonymous.stderr
    assert strangers.returncode != 0
    assert "not found" in strangers.stderr
    assert not (tmp_path / "stranger" / "index.html").exists()
    # The answers are those for a space that does not exist: its existence is not revealed.
    for token in (None, stranger):
        for service in ("git-upload-pack", "git-receive-pack"):
            hidden = info_refs(shared_platform, "admin/hidden", service, token)
            missing = info_refs(shared_platform, "admin/no-such-space", service, token)
            assert hidden.status_code == missing.status_code == (404 if token else 401)
            assert hidden.text == missing.text


def test_private_space_clones_for_its_owner_and_org_members(
    shared_platform: Platform, tmp_path: Path
):
    olga = add_user(shared_platform, "olga")
    member = add_user(shared_platform, "mia", "read", orgs=("acme",))
    pushed_space(shared_platform, tmp_path, "olga/diary", private=True, token=olga)
    pushed_space(shared_platform, tmp_path, "acme/plans", private=True)

    by_owner = clone(shared_platform, "olga/diary", tmp_path / "owner", olga)
    by_member = clone(shared_platform, "acme/plans", tmp_path / "member", member)
    by_non_member = clone(shared_platform, "acme/plans", tmp_path / "non-member", olga)

    assert by_owner.returncode == 0, by_owner.stderr
    assert (tmp_path / "owner" / "index.html").is_file()
    assert by_member.returncode == 0, by_member.stderr
    assert (tmp_path / "member" / "index.html").is_file()
    assert by_non_member.returncode != 0
    assert "not found" in by_non_member.stderr


@pytest.fixture(scope="module")
def small_limit_platform(tmp_path_factory: pytest.TempPathFactory):
    running = start_platform(tmp_path_factory.mktemp("limited") / "data", MAX_PUSH_BYTES="200000")
    yield running
    stop_cleanly(running)


@pytest.mark.parametrize(
    ("size", "message"),
    [
        # Under git's 1 MiB postBuffer the body has a Content-Length: refused before reading.
        (500_000, "remote: push over the limit of 200000 bytes"),
        # Over it the body is chunked: git's receive.maxInputSize stops the pack.
        (2_000_000, "remote: fatal: pack exceeds maximum allowed size"),
    ],
)
def test_push_over_the_size_limit_is_refused_and_main_unchanged(
    small_limit_platform: Platform, tmp_path: Path, size: int, message: str
):
    platform = small_limit_platform
    name = f"too-big-{size}"
    checkout = pushed_space(platform, tmp_path, name)
    before = head(checkout)
    (checkout / "weights.raw").write_bytes(os.urandom(size))  # incompressible
    commit_all(checkout, f"{size} bytes")

    pushed = push(platform, checkout, f"admin/{name}")

    assert pushed.returncode != 0
    assert message in pushed.stderr, pushed.stderr
    assert remote_main(platform, f"admin/{name}") == before
    # The platform is still there and a small push still goes through.
    (checkout / "weights.raw").unlink()
    commit_all(checkout, "without the weights")
    git("reset", "--quiet", "--soft", before, cwd=checkout)
    small = commit_all(checkout, "small again")
    assert push(platform, checkout, f"admin/{name}").returncode == 0
    assert remote_main(platform, f"admin/{name}") == small


def test_non_fast_forward_push_is_refused_unless_forced(shared_platform: Platform, tmp_path: Path):
    platform = shared_platform
    checkout = pushed_space(platform, tmp_path, "rewritten")
    published = head(checkout)
    platform.wait_stage("admin/rewritten", {"RUNNING"}, 30)
    (checkout / "index.html").write_text("<h1>rewritten history</h1>\n")
    git("add", "-A", cwd=checkout)
    git("commit", "--quiet", "--amend", "-m", "rewritten", cwd=checkout)
    rewritten = head(checkout)

    refused = push(platform, checkout, "admin/rewritten")
    assert refused.returncode != 0
    assert "rejected" in refused.stderr
    assert remote_main(platform, "admin/rewritten") == published

    forced = push(platform, checkout, "admin/rewritten", "--force")
    assert forced.returncode == 0, forced.stderr
    assert remote_main(platform, "admin/rewritten") == rewritten
    wait_for(
        lambda: "rewritten history" in httpx.get(f"{platform.apps_url}/apps/admin/rewritten/").text,
        10,
        "the forced commit to be built and served",
    )

"""Accounts a team manages: users, orgs and their roles, tokens, through the CLI and the admin API.

One real `spacehub serve`; the CLI as a subprocess (on the data dir, and with --url); git is
the real git, pushing and cloning over HTTP with the users' tokens.
"""

import os
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.conftest import (
    ADMIN_TOKEN,
    Platform,
    git,
    make_checkout,
    push,
    readme,
    write_files,
)

PASSWORD = "Kändis-Wörter 42"  # non-ASCII and a space: a password as people type them


def spacehub(
    platform: Platform, *args: str, stdin: str = "", remote: bool = False
) -> subprocess.CompletedProcess:
    """The `spacehub` command, on the platform's data dir, or with --url through its API."""
    where = (
        ["--url", platform.url, "--token", ADMIN_TOKEN]
        if remote
        else ["--data-dir", str(platform.data_dir)]
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("SPACEHUB_")}
    return subprocess.run(
        [sys.executable, "-m", "spacehub", *args, *where],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"{result.args}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def new_user(platform: Platform, name: str, role: str = "write", *, remote: bool = True) -> str:
    """A user with PASSWORD, made with the CLI; returns a fresh token of `role`."""
    ok(spacehub(platform, "users", "add", name, "--password-stdin", stdin=PASSWORD + "\n"))
    created = spacehub(platform, "tokens", "create", name, "--role", role, remote=remote)
    return ok(created).strip()


def whoami(platform: Platform, token: str) -> int:
    with platform.api(token) as client:
        return client.get("/api/whoami-v2").status_code


def admin_users(platform: Platform) -> list[dict]:
    with platform.api() as client:
        answer = client.get("/api/admin/users")
    assert answer.status_code == 200, answer.text
    return answer.json()


def clone(
    platform: Platform, space_id: str, token: str, where: Path
) -> subprocess.CompletedProcess:
    return git("clone", "--quiet", platform.git_url(space_id, token), str(where), check=False)


@pytest.fixture(scope="module")
def team(shared_platform: Platform) -> Platform:
    return shared_platform


def test_admin_adds_users_and_orgs_with_the_cli_on_the_data_dir_and_through_url(team: Platform):
    ok(spacehub(team, "users", "add", "carol", "--fullname", "Carol Ångström",
                "--password-stdin", stdin=PASSWORD + "\n"))  # fmt: skip
    ok(spacehub(team, "orgs", "add", "atelier"))
    ok(spacehub(team, "orgs", "add-member", "atelier", "carol", "--role", "admin"))
    ok(spacehub(team, "users", "add", "dmitri", "--no-password", remote=True))
    added = spacehub(team, "orgs", "add-member", "atelier", "dmitri", "--role", "read", remote=True)
    assert "carol (admin), dmitri (read)" in ok(added)

    listed = ok(spacehub(team, "users", "list", remote=True))
    assert "carol\tCarol Ångström" in listed
    assert "dmitri\tdmitri\tno password" in listed
    assert "atelier\tatelier\tcarol (admin), dmitri (read)" in ok(spacehub(team, "orgs", "list"))
    carol = next(user for user in admin_users(team) if user["name"] == "carol")
    assert carol == {**carol, "hasPassword": True, "isAdmin": False, "disabled": False}

    # The password is stored as an argon2 hash, and nowhere in the database file as typed.
    database = team.data_dir / "spacehub.db"
    with sqlite3.connect(database) as connection:
        (stored,) = connection.execute(
            "SELECT password_hash FROM user WHERE name = 'carol'"
        ).fetchone()
    assert stored.startswith("$argon2id$")
    for path in team.data_dir.glob("spacehub.db*"):
        assert PASSWORD.encode() not in path.read_bytes()


def test_a_token_is_shown_once_and_its_user_pushes_only_where_they_may(
    team: Platform, tmp_path: Path
):
    token = new_user(team, "erin", "write")
    assert token.startswith("hf_")
    assert whoami(team, token) == 200
    # Listing never shows a value, neither in the CLI nor in the API.
    assert token not in ok(spacehub(team, "tokens", "list", "erin", remote=True))
    with team.api() as client:
        listed = client.get("/api/admin/tokens", params={"user": "erin"})
    assert listed.status_code == 200 and token not in listed.text
    assert [entry["role"] for entry in listed.json()] == ["write"]

    space = team.create_space("erin/carnet", token=token)
    checkout = make_checkout(
        tmp_path / "carnet", {"README.md": readme("Carnet", "static")}, team.git_url(space, token)
    )
    weights = os.urandom(3 * 1024 * 1024)
    (checkout / "données d'été").mkdir()
    (checkout / "données d'été" / "modèle final.weights").write_bytes(weights)
    write_files(checkout, {"index.html": "<h1>Carnet ✓</h1>"})
    git("add", "-A", cwd=checkout)
    git("commit", "--quiet", "-m", "3 MB of weights", cwd=checkout)
    pushed = push(team, checkout, space, token=token)
    assert pushed.returncode == 0, pushed.stderr
    copy = tmp_path / "copy"
    assert clone(team, space, token, copy).returncode == 0
    assert (copy / "données d'été" / "modèle final.weights").read_bytes() == weights

    # Another user's private space does not exist for erin; the admin API refuses her.
    private = team.create_space("coffre", private=True)
    with team.api(token) as client:
        assert client.get(f"/api/spaces/{private}").status_code == 404
        assert client.get("/api/admin/users").status_code == 403
        made = client.post("/api/admin/users", json={"name": "mallory", "password": PASSWORD})
        assert made.status_code == 403
    refused = clone(team, private, token, tmp_path / "coffre")
    assert refused.returncode != 0 and "not found" in refused.stderr.lower()
    assert "mallory" not in [user["name"] for user in admin_users(team)]


def test_disabling_a_user_stops_their_token_and_password_at_once(team: Platform, tmp_path: Path):
    token = new_user(team, "felix", "write")
    space = team.create_space("felix/atlas", private=True, token=token)
    password = httpx.BasicAuth("felix", PASSWORD)

    def password_works() -> int:
        answer = httpx.post(
            f"{team.url}/api/settings/tokens", json={"displayName": "cli"}, auth=password
        )
        return answer.status_code

    assert whoami(team, token) == 200 and password_works() == 200
    assert clone(team, space, token, tmp_path / "before").returncode == 0

    assert "disable: felix (disabled)" in ok(spacehub(team, "users", "disable", "felix"))
    assert whoami(team, token) == 401
    assert password_works() == 401
    with team.api(token) as client:
        assert client.get(f"/api/spaces/{space}").status_code == 401
    refused = clone(team, space, token, tmp_path / "during")
    assert refused.returncode != 0
    # What the admin sees; the user's spaces stay.
    felix = next(user for user in admin_users(team) if user["name"] == "felix")
    assert felix["disabled"] is True
    with team.api() as client:
        assert client.get(f"/api/spaces/{space}").status_code == 200

    ok(spacehub(team, "users", "enable", "felix", remote=True))
    assert whoami(team, token) == 200 and password_works() == 200
    assert clone(team, space, token, tmp_path / "after").returncode == 0

    # A wrong password, an unknown user, and a user with no password are all the same 401.
    for name, attempt in (("felix", "not-the-password"), ("nobody", PASSWORD)):
        answer = httpx.post(f"{team.url}/api/settings/tokens", json={}, auth=(name, attempt))
        assert answer.status_code == 401 and answer.json()["error"] == "wrong user name or password"


def test_org_roles_decide_who_clones_pushes_and_manages(team: Platform, tmp_path: Path):
    ok(spacehub(team, "orgs", "add", "labo", remote=True))
    tokens = {name: new_user(team, name) for name in ("rita", "walt", "ada", "olga")}
    for name, role in (("rita", "read"), ("walt", "write"), ("ada", "admin")):
        ok(spacehub(team, "orgs", "add-member", "labo", name, "--role", role))
    space = team.create_space("labo/resultats", private=True)

    def try_push(name: str) -> subprocess.CompletedProcess:
        checkout = tmp_path / f"{name}-checkout-{len(list(tmp_path.iterdir()))}"
        assert clone(team, space, tokens[name], checkout).returncode == 0, name
        write_files(checkout, {f"notes de {name}.md": f"# {name} était là\n"})
        git("add", "-A", cwd=checkout)
        git("commit", "--quiet", "-m", f"{name}'s notes", cwd=checkout)
        return push(team, checkout, space, token=tokens[name])

    # A read member clones the org's private space but may not push to it.
    refused = try_push("rita")
    assert refused.returncode != 0 and "403" in refused.stderr
    assert "read member" in refused.stderr
    # A write member and an admin member push.
    assert try_push("walt").returncode == 0
    # Someone outside the org does not see it at all.
    outside = clone(team, space, tokens["olga"], tmp_path / "olga")
    assert outside.returncode != 0 and "not found" in outside.stderr.lower()
    with team.api(tokens["olga"]) as client:
        assert client.get(f"/api/spaces/{space}").status_code == 404

    # Creating in the org follows the same rule.
    body = {"type": "space", "sdk": "static", "organization": "labo"}
    for name, status in (("rita", 403), ("walt", 200), ("olga", 403)):
        with team.api(tokens[name]) as client:
            made = client.post("/api/repos/create", json={**body, "name": f"par-{name}"})
        assert made.status_code == status, (name, made.text)

    # The org's admin manages members; a write member may not.
    with team.api(tokens["walt"]) as client:
        answer = client.post("/api/admin/orgs/labo/members", json={"user": "olga"})
        assert answer.status_code == 403
    with team.api(tokens["ada"]) as client:
        answer = client.put("/api/admin/orgs/labo/members/rita", json={"role": "write"})
        assert answer.status_code == 200, answer.text
        assert {"name": "rita", "role": "write"} in answer.json()["members"]
    assert try_push("rita").returncode == 0

    # Removed from the org, a member no longer sees its private space.
    ok(spacehub(team, "orgs", "remove-member", "labo", "rita", remote=True))
    assert clone(team, space, tokens["rita"], tmp_path / "rita-gone").returncode != 0


def test_an_expired_or_revoked_token_is_refused(team: Platform):
    new_user(team, "gus")
    soon = datetime.now(UTC) + timedelta(seconds=3)
    with team.api() as client:
        answer = client.post(
            "/api/admin/users/gus/tokens",
            json={"displayName": "ci, für 3 s", "role": "read", "expiresAt": soon.isoformat()},
        )
        assert answer.status_code == 200, answer.text
        expiring = answer.json()
        assert expiring["expiresAt"].endswith("Z")
        lasting = client.post("/api/admin/users/gus/tokens", json={"role": "read"}).json()
    assert whoami(team, expiring["token"]) == 200
    time.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.5)
    assert whoami(team, expiring["token"]) == 401

    assert whoami(team, lasting["token"]) == 200
    assert f"revoked token {lasting['id']}" in ok(
        spacehub(team, "tokens", "revoke", str(lasting["id"]))
    )
    assert whoami(team, lasting["token"]) == 401
    # The owner revokes their own token too; another user's is not found for them.
    mine = new_user(team, "hana")
    with team.api(mine) as client:
        assert client.delete(f"/api/settings/tokens/{expiring['id']}").status_code == 404
        own = client.get("/api/settings/tokens").json()
        assert len(own) == 1 and "token" not in own[0]
        assert client.delete(f"/api/settings/tokens/{own[0]['id']}").status_code == 204
    assert whoami(team, mine) == 401


def test_last_use_is_recorded_at_most_once_a_minute(team: Platform):
    token = new_user(team, "ivo")

    def last_used() -> str | None:
        with team.api() as client:
            (entry,) = client.get("/api/admin/tokens", params={"user": "ivo"}).json()
        return entry["lastUsedAt"]

    assert last_used() is None
    assert whoami(team, token) == 200
    first = last_used()
    assert first is not None
    used = datetime.fromisoformat(first.replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - used).total_seconds()) < 30
    for _ in range(5):
        assert whoami(team, token) == 200
    assert last_used() == first  # a busy token is not a write per request


def test_bad_input_is_refused_with_its_reason_and_changes_nothing(team: Platform):
    new_user(team, "jules")
    ok(spacehub(team, "orgs", "add", "forge"))
    ok(spacehub(team, "orgs", "add-member", "forge", "jules", "--role", "admin"))
    before = admin_users(team)
    refusals = [
        ("/api/admin/users", {"name": "jules", "password": PASSWORD}, 409, "taken"),
        ("/api/admin/users", {"name": "bad name", "password": PASSWORD}, 422, "user name"),
        ("/api/admin/users", {"name": "../etc", "password": PASSWORD}, 422, "user name"),
        ("/api/admin/users", {"name": "kim", "password": ""}, 400, "password is empty"),
        ("/api/admin/users", {"name": "kim", "password": "abc12"}, 400, "too short"),
        ("/api/admin/users", {"name": "kim", "password": "aaaaaaaaaaaa"}, 400, "too weak"),
        ("/api/admin/users", {"name": "kimberly", "password": "Kimberly"}, 400, "user name"),
        ("/api/admin/orgs/forge/members", {"user": "jules", "role": "boss"}, 422, "role"),
        ("/api/admin/orgs/forge/members", {"user": "nobody"}, 404, "nobody"),
        ("/api/admin/users/jules/tokens", {"role": "owner"}, 422, "role"),
        ("/api/admin/users/jules/tokens", {"expiresAt": "2001-01-01T00:00:00Z"}, 400, "past"),
    ]
    with team.api() as client:
        for path, body, status, reason in refusals:
            answer = client.post(path, json=body)
            assert answer.status_code == status, (body, answer.text)
            assert reason in answer.json()["error"], (body, answer.text)
        # A user who owns spaces is not deleted: the answer names them.
        token = client.post("/api/admin/users/jules/tokens", json={"role": "write"}).json()
        team.create_space("jules/portfolio", token=token["token"])
        refused = client.delete("/api/admin/users/jules")
        assert refused.status_code == 409 and "jules/portfolio" in refused.json()["error"]
        # The admin cannot lock themselves out.
        itself = client.patch("/api/admin/users/admin", json={"disabled": True})
        assert itself.status_code == 409, itself.text
        assert whoami(team, ADMIN_TOKEN) == 200
        assert client.get("/api/admin/orgs/forge").json()["members"] == [
            {"name": "jules", "role": "admin"}
        ]
    after = admin_users(team)
    assert [user["name"] for user in after] == [user["name"] for user in before]
    assert next(u for u in after if u["name"] == "admin")["disabled"] is False

    # The CLI says the same, and exits 1.
    weak = spacehub(team, "users", "add", "kim", "--password-stdin", stdin="\n")
    assert weak.returncode == 1 and "password is empty" in weak.stderr
    role = spacehub(team, "orgs", "set-role", "forge", "jules", "--role", "boss", remote=True)
    assert role.returncode == 1 and "'read', 'write' or 'admin'" in role.stderr
    assert spacehub(team, "users", "add", "kim").returncode == 1  # no terminal, no --password-stdin
    assert "kim" not in [user["name"] for user in admin_users(team)]

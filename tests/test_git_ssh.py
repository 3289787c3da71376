"""Git over SSH against a real `spacehub serve`, with the real OpenSSH client and real git.

Keys are made with `ssh-keygen` and registered through the API or the CLI; clones and pushes
use both URL forms a user types: `ssh://git@HOST:PORT/spaces/owner/name` and the scp-like
`git@HOST:spaces/owner/name.git` (its port comes from GIT_SSH_COMMAND's `-p`, as a user's
~/.ssh/config would give it).
"""

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.conftest import (
    EXAMPLES,
    Platform,
    add_user,
    free_port,
    start_platform,
    stop_cleanly,
    wait_for,
)
from tests.test_static_spaces import app_get, serves

SITE = EXAMPLES / "static-site"
BINARY_NAME = "modèles/poids du réseau ünïcode.bin"
LFS_ATTRIBUTES = "*.bin filter=lfs diff=lfs merge=lfs -text\n"


@dataclass
class Key:
    private: Path
    public: Path

    @property
    def text(self) -> str:
        return self.public.read_text()

    @property
    def fingerprint(self) -> str:
        listed = subprocess.run(
            ["ssh-keygen", "-l", "-E", "sha256", "-f", str(self.public)],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return listed.stdout.split()[1]


def make_key(directory: Path, name: str, kind: str = "ed25519") -> Key:
    directory.mkdir(parents=True, exist_ok=True)
    private = directory / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", f"{name}@laptop", "-f", str(private)],
        check=True,
        timeout=60,
        capture_output=True,
    )
    return Key(private, private.with_name(name + ".pub"))


def ssh_port(platform: Platform) -> int:
    return int(platform.env["SPACEHUB_SSH_PORT"])


def ssh_command(platform: Platform, key: Key, known_hosts: str = "/dev/null") -> list[str]:
    checking = "no" if known_hosts == "/dev/null" else "accept-new"
    return [
        "ssh",
        "-F",
        "/dev/null",
        "-i",
        str(key.private),
        "-p",
        str(ssh_port(platform)),
        "-o",
        f"StrictHostKeyChecking={checking}",
        "-o",
        f"UserKnownHostsFile={known_hosts}",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "LogLevel=ERROR",
    ]


def ssh_git(
    platform: Platform,
    key: Key,
    *args: str,
    cwd: Path | None = None,
    known_hosts: str = "/dev/null",
) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "GIT_SSH_COMMAND": " ".join(ssh_command(platform, key, known_hosts)),
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": "Zoë Tester",
        "GIT_AUTHOR_EMAIL": "zoe@example.com",
        "GIT_COMMITTER_NAME": "Zoë Tester",
        "GIT_COMMITTER_EMAIL": "zoe@example.com",
    }
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, f"{result.args} failed:\n{result.stdout}\n{result.stderr}"
    return result


def ssh_url(platform: Platform, space_id: str) -> str:
    return f"ssh://git@127.0.0.1:{ssh_port(platform)}/spaces/{space_id}"


def scp_url(space_id: str) -> str:
    return f"git@127.0.0.1:spaces/{space_id}.git"


def register(platform: Platform, key: Key, token: str, title: str = "laptop") -> dict:
    with platform.api(token) as client:
        answer = client.post("/api/settings/ssh-keys", json={"title": title, "key": key.text})
    assert answer.status_code == 200, answer.text
    return answer.json()


def clone(platform: Platform, key: Key, url: str, directory: Path) -> Path:
    ok(ssh_git(platform, key, "clone", "--quiet", url, str(directory)))
    # A new space may have no commit yet: work on main either way.
    ok(ssh_git(platform, key, "checkout", "--quiet", "-B", "main", cwd=directory))
    return directory


def commit_site(checkout: Path, marker: str, binary: bytes) -> str:
    """A static site and a binary that the Hub's `.gitattributes` sends to Git LFS."""
    (checkout / ".gitattributes").write_text(LFS_ATTRIBUTES)
    for name in ("README.md", "style.css"):
        (checkout / name).write_bytes((SITE / name).read_bytes())
    (checkout / "index.html").write_text(f"<!doctype html><title>ssh</title><p>{marker}</p>\n")
    (checkout / BINARY_NAME).parent.mkdir(exist_ok=True)
    (checkout / BINARY_NAME).write_bytes(binary)
    ok(subprocess.run(["git", "add", "-A"], cwd=checkout, capture_output=True, timeout=60))
    env = {**os.environ, "GIT_AUTHOR_NAME": "Zoë", "GIT_AUTHOR_EMAIL": "zoe@example.com"}
    env |= {"GIT_COMMITTER_NAME": "Zoë", "GIT_COMMITTER_EMAIL": "zoe@example.com"}
    ok(
        subprocess.run(
            ["git", "commit", "--quiet", "-m", marker],
            cwd=checkout,
            env=env,
            capture_output=True,
            timeout=60,
        )
    )
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=checkout, capture_output=True, text=True, timeout=60
    )
    return head.stdout.strip()


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Key]:
    directory = tmp_path_factory.mktemp("keys")
    return {
        name: make_key(directory, name, kind)
        for name, kind in [
            ("admin", "ed25519"),
            ("stranger", "ed25519"),
            ("bob", "rsa"),
            ("cli", "ecdsa"),
            ("unregistered", "ed25519"),
        ]
    }


@pytest.fixture(scope="module")
def admin_key(shared_platform: Platform, keys: dict[str, Key]) -> Key:
    registered = register(shared_platform, keys["admin"], shared_platform.token)
    assert registered["fingerprint"] == keys["admin"].fingerprint
    return keys["admin"]


def test_push_over_ssh_builds_and_the_static_space_serves_each_commit(
    shared_platform: Platform, admin_key: Key, tmp_path: Path
) -> None:
    platform = shared_platform
    space_id = platform.create_space("ssh-site")
    binary = os.urandom(3 * 1024 * 1024)

    first = clone(platform, admin_key, ssh_url(platform, space_id), tmp_path / "first")
    commit = commit_site(first, "pushed over ssh:// URL", binary)
    pushed = ok(ssh_git(platform, admin_key, "push", "origin", "HEAD:main", cwd=first))
    # The same post-receive hook as over HTTP queued the build of this very commit.
    assert f"build queued for {commit[:12]}" in pushed.stderr

    platform.wait_stage(space_id, {"RUNNING"}, 60)
    wait_for(lambda: serves(platform, space_id, "pushed over ssh:// URL"), 30, "first commit")
    served = app_get(platform, space_id, "/" + quote(BINARY_NAME))
    assert served.status == 200
    assert hashlib.sha256(served.body).digest() == hashlib.sha256(binary).digest()

    # git-lfs sent the binary over HTTP after `git-lfs-authenticate` over SSH: the repository
    # holds a pointer, the app the real bytes.
    bare = platform.data_dir / "repos" / f"{space_id}.git"
    stored = subprocess.run(
        ["git", "--git-dir", str(bare), "cat-file", "-p", f"main:{BINARY_NAME}"],
        capture_output=True,
        timeout=60,
        check=True,
    )
    assert stored.stdout.startswith(b"version https://git-lfs.github.com/spec/v1")

    # The Hub's scp-like form; the clone has the first push byte for byte.
    second = clone(platform, admin_key, scp_url(space_id), tmp_path / "second")
    assert (second / BINARY_NAME).read_bytes() == binary
    lfs_files = ok(ssh_git(platform, admin_key, "lfs", "ls-files", "--name-only", cwd=second))
    assert lfs_files.stdout.splitlines() == [BINARY_NAME]
    commit = commit_site(second, "pushed over the scp-like form", binary[::-1])
    pushed = ok(ssh_git(platform, admin_key, "push", "origin", "main", cwd=second))
    assert f"build queued for {commit[:12]}" in pushed.stderr
    wait_for(
        lambda: serves(platform, space_id, "pushed over the scp-like form"), 60, "second commit"
    )
    assert app_get(platform, space_id, "/" + quote(BINARY_NAME)).body == binary[::-1]

    # The key's last use is recorded.
    with platform.api() as client:
        listed = client.get("/api/settings/ssh-keys").json()
    assert [key["fingerprint"] for key in listed] == [admin_key.fingerprint]
    assert listed[0]["lastUsedAt"].endswith("Z")


def test_an_unregistered_key_is_refused(
    shared_platform: Platform, admin_key: Key, keys: dict[str, Key], tmp_path: Path
) -> None:
    space_id = shared_platform.create_space("ssh-refused")
    result = ssh_git(
        shared_platform,
        keys["unregistered"],
        "clone",
        ssh_url(shared_platform, space_id),
        str(tmp_path / "nope"),
    )
    assert result.returncode != 0
    assert "Permission denied (publickey)" in result.stderr
    assert not (tmp_path / "nope").exists()


def test_a_key_acts_as_its_user_only(
    shared_platform: Platform, admin_key: Key, keys: dict[str, Key], tmp_path: Path
) -> None:
    platform = shared_platform
    public = platform.create_space("ssh-public")
    private = platform.create_space("ssh-private", private=True)
    checkout = clone(platform, admin_key, ssh_url(platform, public), tmp_path / "admin")
    commit_site(checkout, "admin's site", b"\x00\x01" * 1000)
    ok(ssh_git(platform, admin_key, "push", "origin", "main", cwd=checkout))

    bob_token = add_user(platform, "bob-ssh")
    register(platform, keys["bob"], bob_token, "bob's RSA key")

    # Bob reads a public space but may not push to someone else's.
    bobs = clone(platform, keys["bob"], ssh_url(platform, public), tmp_path / "bob")
    assert "admin's site" in (bobs / "index.html").read_text()
    commit_site(bobs, "bob was here", b"bob")
    refused = ssh_git(platform, keys["bob"], "push", "origin", "main", cwd=bobs)
    assert refused.returncode != 0
    assert "you may not act for 'admin'" in refused.stderr

    # A private space answers a stranger exactly like a space that does not exist.
    hidden = ssh_git(platform, keys["bob"], "ls-remote", ssh_url(platform, private))
    missing = ssh_git(platform, keys["bob"], "ls-remote", ssh_url(platform, "admin/no-such"))
    assert hidden.returncode == missing.returncode == 128
    assert "ERROR: Repository not found" in hidden.stderr
    assert hidden.stderr == missing.stderr
    # Its owner sees it.
    ok(ssh_git(platform, admin_key, "ls-remote", ssh_url(platform, private)))


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("ls -la /", "only git clone, fetch and push are served here"),
        ("sh -c id", "only git clone, fetch and push are served here"),
        ("git-upload-archive 'spaces/admin/ssh-site'", "only git clone, fetch and push"),
        ("git-lfs-transfer spaces/admin/ssh-site upload", "only git clone, fetch and push"),
        ("git-lfs-authenticate spaces/admin/ssh-site delete", "only git clone, fetch and push"),
        ("git-upload-pack '/etc/passwd'", "not a space repository"),
        ("git-upload-pack 'spaces/admin/../../etc'", "not a space repository"),
        ("git-upload-pack 'spaces/admin/x'; id", "only git clone, fetch and push"),
        ("git-receive-pack 'spaces/admin/no-such-space'", "Repository not found"),
    ],
)
def test_commands_other_than_git_services_are_refused(
    shared_platform: Platform, admin_key: Key, command: str, message: str
) -> None:
    result = subprocess.run(
        [*ssh_command(shared_platform, admin_key), "git@127.0.0.1", command],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert message in result.stderr
    assert result.stdout == ""


def test_a_login_without_command_gets_no_shell(shared_platform: Platform, admin_key: Key) -> None:
    result = subprocess.run(
        [*ssh_command(shared_platform, admin_key), "-T", "git@127.0.0.1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 1
    assert "Hi admin!" in result.stderr
    assert "no shell" in result.stderr


def test_keys_api_checks_keys_and_owners(
    shared_platform: Platform, admin_key: Key, tmp_path: Path
) -> None:
    platform = shared_platform
    carol = add_user(platform, "carol-ssh")
    carol_reader = add_user(platform, "dave-ssh", role="read")
    key = make_key(tmp_path, "carol")
    with platform.api(carol) as client:
        assert client.get("/api/settings/ssh-keys").json() == []
        made = client.post(
            "/api/settings/ssh-keys", json={"title": "carol's laptop ✓", "key": key.text}
        )
        assert made.status_code == 200, made.text
        assert made.json()["title"] == "carol's laptop ✓"
        assert made.json()["key"] == " ".join(key.text.split()[:2])  # stored without comment
        assert made.json()["lastUsedAt"] is None
        again = client.post("/api/settings/ssh-keys", json={"key": key.text})
        assert again.status_code == 409
        taken = client.post("/api/settings/ssh-keys", json={"key": admin_key.text})
        assert taken.status_code == 409  # one key, one user
        secret = client.post("/api/settings/ssh-keys", json={"key": key.private.read_text()})
        assert secret.status_code == 400
        assert "private key" in secret.json()["error"]
        for garbage in ["hello", "ssh-ed25519 AAAAnotbase64!!", "ssh-ed25519 AAAAC3Nza", ""]:
            refused = client.post("/api/settings/ssh-keys", json={"key": garbage})
            assert refused.status_code == 400, (garbage, refused.text)
        listed = client.get("/api/settings/ssh-keys").json()
        assert [entry["fingerprint"] for entry in listed] == [key.fingerprint]

    # Other users neither see nor delete it; read tokens and strangers change nothing.
    with platform.api() as admin:
        assert key.fingerprint not in {
            k["fingerprint"] for k in admin.get("/api/settings/ssh-keys").json()
        }
        assert admin.delete(f"/api/settings/ssh-keys/{listed[0]['id']}").status_code == 404
    with platform.api(carol_reader) as reader:
        other = make_key(tmp_path, "dave")
        assert reader.post("/api/settings/ssh-keys", json={"key": other.text}).status_code == 403
    with platform.api(None) as anonymous:
        assert anonymous.get("/api/settings/ssh-keys").status_code == 401

    # Deleting the key locks it out at once.
    space_id = platform.create_space("carol-ssh/notes", token=carol)
    ok(ssh_git(platform, key, "ls-remote", ssh_url(platform, space_id)))
    with platform.api(carol) as client:
        assert client.delete(f"/api/settings/ssh-keys/{listed[0]['id']}").status_code == 204
        assert client.get("/api/settings/ssh-keys").json() == []
    gone = ssh_git(platform, key, "ls-remote", ssh_url(platform, space_id))
    assert "Permission denied (publickey)" in gone.stderr


def spacehub_cli(platform: Platform, *args: str, stdin: str | None = None):
    return subprocess.run(
        [sys.executable, "-m", "spacehub", "ssh-keys", *args, "--data-dir", str(platform.data_dir)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={key: value for key, value in os.environ.items() if not key.startswith("SPACEHUB_")},
    )


def test_cli_adds_lists_and_removes_a_key(
    shared_platform: Platform, keys: dict[str, Key], admin_key: Key
) -> None:
    platform = shared_platform
    key = keys["cli"]
    space_id = platform.create_space("ssh-cli")
    refused = ssh_git(platform, key, "ls-remote", ssh_url(platform, space_id))
    assert "Permission denied (publickey)" in refused.stderr

    added = ok(spacehub_cli(platform, "add", "admin", str(key.public), "--title", "build box"))
    assert key.fingerprint in added.stdout
    ok(ssh_git(platform, key, "ls-remote", ssh_url(platform, space_id)))

    listed = ok(spacehub_cli(platform, "list", "admin")).stdout.splitlines()
    line = next(line for line in listed if key.fingerprint in line)
    key_id, user, _, title, used = line.split("\t")
    assert (user, title) == ("admin", "build box")
    assert used != "last used: never"
    everyone = ok(spacehub_cli(platform, "list")).stdout
    assert admin_key.fingerprint in everyone and key.fingerprint in everyone

    duplicate = spacehub_cli(platform, "add", "admin", "-", stdin=key.text)
    assert duplicate.returncode == 1
    assert "already in use" in duplicate.stderr
    bad = spacehub_cli(platform, "add", "admin", str(key.private))
    assert bad.returncode == 1
    assert "private key" in bad.stderr

    ok(spacehub_cli(platform, "remove", key_id))
    assert key.fingerprint not in ok(spacehub_cli(platform, "list")).stdout
    refused = ssh_git(platform, key, "ls-remote", ssh_url(platform, space_id))
    assert "Permission denied (publickey)" in refused.stderr
    assert spacehub_cli(platform, "remove", key_id).returncode == 1


def test_the_host_key_is_made_once_and_kept_across_restarts(tmp_path: Path) -> None:
    data = tmp_path / "data"
    port = str(free_port())
    key = make_key(tmp_path / "keys", "me")
    known_hosts = tmp_path / "known_hosts"

    running = start_platform(data, ssh_port=port)
    try:
        register(running, key, running.token)
        space_id = running.create_space("kept")
        ok(
            ssh_git(
                running, key, "ls-remote", ssh_url(running, space_id), known_hosts=str(known_hosts)
            )
        )
        assert f"git over SSH listens on 127.0.0.1:{port}" in running.log()
    finally:
        stop_cleanly(running)
    host_key = data / "ssh_host_ed25519_key"
    assert host_key.stat().st_mode & 0o777 == 0o600
    first = host_key.read_bytes()
    assert known_hosts.read_text().count("ssh-ed25519") == 1

    running = start_platform(data, ssh_port=port)
    try:
        # StrictHostKeyChecking=accept-new refuses a changed host key: this passes only if the
        # server kept its key.
        ok(
            ssh_git(
                running, key, "ls-remote", ssh_url(running, space_id), known_hosts=str(known_hosts)
            )
        )
    finally:
        stop_cleanly(running)
    assert host_key.read_bytes() == first


def test_ssh_port_zero_turns_git_over_ssh_off(tmp_path: Path) -> None:
    running = start_platform(tmp_path / "data", ssh_port="0")
    try:
        assert "git over SSH is off" in running.log()
        assert not (tmp_path / "data" / "ssh_host_ed25519_key").exists()
    finally:
        stop_cleanly(running)

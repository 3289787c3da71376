"""Bringing a commit of an external git repository (GitHub, Gitea, …) into a space's `main`.

The external repository is the source of truth: its pushed commit replaces the space's `main`
(a forced update; commits pushed to the space directly are dropped from `main`). A deploy token
reaches git only through the environment of the one git call that needs it (an HTTP
`Authorization` header scoped to the source's origin), an SSH key only through a 0600 file
that is removed afterwards: neither is ever in a URL, in the repository's config or in a log.
"""

import base64
import contextlib
import re
import shlex
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

from spacehub.core.errors import Unprocessable, UpstreamFailed
from spacehub.platform.git import lfs_store
from spacehub.platform.git.reading import list_tree
from spacehub.platform.git.repos import (
    DEFAULT_BRANCH,
    git_environment,
    git_process,
    head_commit,
    run_git,
)

FETCH_TIMEOUT = 600  # a first fetch of a large repository takes a while
MAX_URL_CHARS = 2000
MAX_TOKEN_CHARS = 1000
MAX_SSH_KEY_BYTES = 16 * 1024
COMMIT = re.compile(r"[0-9a-f]{40}")
NETWORK_SCHEMES = ("https", "http", "ssh", "git")
# user@host:path, git's scp-like syntax for SSH; the host may not look like an option.
_SCP_LIKE = re.compile(r"[A-Za-z0-9._-]+@[A-Za-z0-9][A-Za-z0-9.-]*:[^\s:][^\s]*")
_BRANCH = re.compile(r"[A-Za-z0-9._/-]{1,255}")
_TOKEN = re.compile(r"[\x21-\x7e]+")  # printable, no space: it goes into an HTTP header
_PRIVATE_KEY = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----\n.+\n-----END [A-Z0-9 ]*PRIVATE KEY-----\n?", re.S
)
# The username a token goes with: GitHub's for tokens; Gitea and spacehub read the password.
TOKEN_USERNAME = "x-access-token"

_space_locks: dict[str, threading.Lock] = {}
_space_locks_guard = threading.Lock()


class CredentialKind(StrEnum):
    TOKEN = "token"
    SSH_KEY = "ssh_key"


@dataclass(frozen=True)
class Credential:
    kind: CredentialKind
    value: str

    def __repr__(self) -> str:  # never in a traceback or a log line
        return f"Credential({self.kind}, <hidden>)"


@dataclass(frozen=True)
class Source:
    url: str
    branch: str = DEFAULT_BRANCH
    credential: Credential | None = None


class Outcome(StrEnum):
    DEPLOYED = "deployed"  # main moved to the commit
    CURRENT = "current"  # main already was the commit: nothing to do
    STALE = "stale"  # main is already past the commit on the branch (a late delivery)


def is_local(url: str) -> bool:
    return url.startswith(("/", "file:"))


def validate_url(url: str) -> str:
    """An https/http/ssh/git URL, `user@host:path`, or a local path or file:// URL."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL_CHARS:
        raise Unprocessable(f"the source URL must have 1 to {MAX_URL_CHARS} characters")
    if re.search(r"[\x00-\x1f\x7f]", url) or url.startswith("-"):
        raise Unprocessable("the source URL may not contain control characters")
    if url.startswith("/"):
        return url  # a path on this machine may have spaces; a URL writes them as %20
    if " " in url:
        raise Unprocessable("the source URL may not contain spaces: write them as %20")
    if _SCP_LIKE.fullmatch(url) and "://" not in url:
        return url
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise Unprocessable("a file:// source URL names an absolute path on this machine")
        return url
    if parts.scheme not in NETWORK_SCHEMES:
        raise Unprocessable(
            f"unsupported source URL {redact_url(url)!r}: use https://, http://, ssh://, git://, "
            "user@host:path, or a local path"
        )
    if not parts.hostname or parts.hostname.startswith("-"):
        raise Unprocessable(f"the source URL {redact_url(url)!r} names no host")
    if parts.password is not None or (parts.username and parts.scheme in ("http", "https")):
        raise Unprocessable(
            "put no credentials in the source URL: give a deploy token as 'token' "
            "(it is stored encrypted and never written into a URL)"
        )
    return url


def redact_url(url: str) -> str:
    """The URL without any password it might carry (for messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


def validate_branch(branch: str) -> str:
    if (
        not isinstance(branch, str)
        or not _BRANCH.fullmatch(branch)
        or branch.startswith(("-", "/"))
        or branch.endswith(("/", ".lock", "."))
        or ".." in branch
        or "//" in branch
        or "/." in branch
    ):
        raise Unprocessable(f"invalid branch name {branch!r}")
    return branch


def validate_credential(kind: CredentialKind, value: str) -> Credential:
    if kind == CredentialKind.TOKEN:
        if (
            not isinstance(value, str)
            or not _TOKEN.fullmatch(value)
            or len(value) > MAX_TOKEN_CHARS
        ):
            raise Unprocessable(
                f"a deploy token is 1 to {MAX_TOKEN_CHARS} printable characters without spaces"
            )
        return Credential(kind, value)
    text = value.replace("\r\n", "\n").strip() + "\n" if isinstance(value, str) else ""
    if len(text.encode()) > MAX_SSH_KEY_BYTES or not _PRIVATE_KEY.fullmatch(text):
        raise Unprocessable(
            "an SSH deploy key is a private key in OpenSSH or PEM form "
            "('-----BEGIN OPENSSH PRIVATE KEY-----' …), without a passphrase"
        )
    return Credential(kind, text)


def validate_commit(commit: str) -> str:
    if not isinstance(commit, str) or not COMMIT.fullmatch(commit):
        raise Unprocessable(f"not a commit id (40 hex digits): {str(commit)[:80]!r}")
    return commit


def deploy_commit(
    repo: Path, data_dir: Path, source: Source, commit: str | None, known_hosts: Path
) -> tuple[Outcome, str]:
    """Fetch `commit` (None: the branch's tip) into `repo`, point `main` at it; say what came of
    it, and which commit.

    Blocking (git, network): run it in a thread. Changes nothing on failure: UpstreamFailed when
    the source cannot be fetched (unreachable, refused credentials), Unprocessable when the
    commit is not on the branch or its LFS objects cannot be had. Calls for one repository take
    turns, so a delivery repeated while the first is fetched finds `main` already there.
    """
    if commit is not None:
        validate_commit(commit)
    with _lock_for(repo):
        if commit is not None and head_commit(repo) == commit:
            return Outcome.CURRENT, commit
        with _credential_environment(source, known_hosts) as environment:
            tip = _fetch_branch(repo, source, environment)
            commit = commit or tip
            main = head_commit(repo)
            if main == commit:
                return Outcome.CURRENT, commit
            if not _is_ancestor(repo, commit, tip):
                raise Unprocessable(
                    f"commit {commit[:12]} is not on branch {source.branch!r} of the source "
                    f"(the branch is at {tip[:12]}): nothing was deployed"
                )
            if (
                main is not None
                and _is_ancestor(repo, commit, main)
                and _is_ancestor(repo, main, tip)
            ):
                return Outcome.STALE, commit
            _fetch_lfs_objects(repo, data_dir, source, commit, environment)
        run_git(repo, "update-ref", f"refs/heads/{DEFAULT_BRANCH}", commit)
    return Outcome.DEPLOYED, commit


def _lock_for(repo: Path) -> threading.Lock:
    with _space_locks_guard:
        return _space_locks.setdefault(str(repo.resolve()), threading.Lock())


@contextlib.contextmanager
def _credential_environment(source: Source, known_hosts: Path) -> Iterator[dict[str, str]]:
    """The extra environment of git calls that reach the source (and git-lfs, which reads it)."""
    credential = source.credential
    known_hosts.parent.mkdir(parents=True, exist_ok=True)
    ssh_options = [
        "-o", "BatchMode=yes",
        "-o", "StrictHostKeyChecking=accept-new",
        "-o", f"UserKnownHostsFile={known_hosts}",
        "-o", "ConnectTimeout=20",
    ]  # fmt: skip
    if credential is None or credential.kind == CredentialKind.TOKEN:
        environment = {"GIT_SSH_COMMAND": shlex.join(["ssh", *ssh_options])}
        if credential is not None:
            basic = base64.b64encode(f"{TOKEN_USERNAME}:{credential.value}".encode()).decode()
            environment.update(
                {
                    # Scoped to the source's origin: never sent to another host (LFS storage,
                    # a redirect), as `http.<url>.extraHeader` in git and git-lfs.
                    "GIT_CONFIG_COUNT": "1",
                    "GIT_CONFIG_KEY_0": f"http.{_origin(source.url)}.extraHeader",
                    "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
                }
            )
        yield environment
        return
    folder = Path(tempfile.mkdtemp(prefix="spacehub-deploy-key-"))
    try:
        key = folder / "key"
        key.touch(mode=0o600)
        key.write_text(credential.value)
        command = ["ssh", "-i", str(key), "-o", "IdentitiesOnly=yes", *ssh_options]
        yield {"GIT_SSH_COMMAND": shlex.join(command)}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/"


def _fetch_branch(repo: Path, source: Source, environment: dict[str, str]) -> str:
    """Fetch the branch's tip (objects only: no ref of the space changes) and return it."""
    result = _source_git(
        repo,
        "fetch", "--quiet", "--no-tags", "--no-recurse-submodules", "--no-auto-gc",
        source.url, f"refs/heads/{source.branch}",
        environment=environment,
        source=source,
    )  # fmt: skip
    if result.returncode != 0:
        raise UpstreamFailed(
            f"could not fetch branch {source.branch!r} from {redact_url(source.url)}: "
            f"{_git_error(result, source)}"
        )
    tip = run_git(repo, "rev-parse", "--verify", "FETCH_HEAD^{commit}").decode().strip()
    return validate_commit(tip)


def _source_git(
    repo: Path, *args: str, environment: dict[str, str], source: Source
) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(
            ["git", "--git-dir", str(repo), "-c", "protocol.ext.allow=never", *args],
            capture_output=True,
            timeout=FETCH_TIMEOUT,
            check=False,
            env=git_environment(**environment),
        )
    except subprocess.TimeoutExpired:
        raise UpstreamFailed(
            f"{redact_url(source.url)} did not answer within {FETCH_TIMEOUT} s"
        ) from None


def _git_error(result: subprocess.CompletedProcess[bytes], source: Source) -> str:
    """git's own words (last lines), with any trace of the credential removed."""
    lines = result.stderr.decode(errors="replace").strip().splitlines()[-4:]
    text = " ".join(line.strip() for line in lines) or f"git exited with {result.returncode}"
    if source.credential is not None:
        for secret in (source.credential.value, *source.credential.value.splitlines()):
            if len(secret) >= 8:
                text = text.replace(secret, "***")
    return text[:1000]


def _is_ancestor(repo: Path, older: str, newer: str) -> bool:
    result = git_process(repo, "merge-base", "--is-ancestor", older, newer)
    if result.returncode not in (0, 1):  # 128: `older` is not in the repository at all
        return False
    return result.returncode == 0


def _fetch_lfs_objects(
    repo: Path, data_dir: Path, source: Source, commit: str, environment: dict[str, str]
) -> int:
    """Store the LFS objects the commit's pointers name and the space lacks; return how many.

    git-lfs downloads them into the bare repository's own `lfs/` folder (the only place its
    file:// transfer finds them), from where each is checked (sha256, size) into the
    platform's store and granted to the space.
    """
    wanted = {
        (entry.lfs.oid, entry.lfs.size)
        for entry in list_tree(repo, commit, recursive=True)
        if entry.lfs is not None
        and not lfs_store.can_read_object(data_dir, repo, entry.lfs.oid, entry.lfs.size)
    }
    if not wanted:
        return 0
    if shutil.which("git-lfs", path=environment.get("PATH") or git_environment()["PATH"]) is None:
        raise Unprocessable(
            f"commit {commit[:12]} has {len(wanted)} Git LFS file(s) and git-lfs is not "
            "installed on the platform: nothing was deployed"
        )
    downloads = repo / "lfs"
    try:
        result = _source_git(
            repo, "lfs", "fetch", source.url, commit,
            environment=environment, source=source,
        )  # fmt: skip
        if result.returncode != 0:
            raise UpstreamFailed(
                f"could not fetch the Git LFS objects of {commit[:12]} from "
                f"{redact_url(source.url)}: {_git_error(result, source)}"
            )
        missing = []
        for oid, size in sorted(wanted):
            fetched = downloads / "objects" / oid[:2] / oid[2:4] / oid
            if not fetched.is_file():
                missing.append(oid)
                continue
            try:
                lfs_store.store_object(data_dir, oid, size, _chunks(fetched))
            except lfs_store.BadObject as error:
                raise Unprocessable(f"the source's Git LFS object is damaged: {error}") from None
            lfs_store.grant_object(repo, oid)
        if missing:
            raise Unprocessable(
                f"the source has no Git LFS object for {len(missing)} pointer(s) of commit "
                f"{commit[:12]} (first: {missing[0]}): nothing was deployed"
            )
    finally:
        shutil.rmtree(downloads, ignore_errors=True)
    return len(wanted)


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as data:
        while chunk := data.read(1 << 20):
            yield chunk

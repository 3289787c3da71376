"""Bare repositories on disk, read with the real `git` (argument lists, timeouts)."""

import os
import subprocess
import tarfile
from pathlib import Path

from spacehub.core.errors import NotFound
from spacehub.platform.git import lfs_store

GIT_TIMEOUT = 60
DEFAULT_BRANCH = "main"


def git_environment(**extra: str) -> dict[str, str]:
    """The environment of every git the platform runs: no system, global or user config.

    Debian's git-lfs writes a required LFS smudge filter into /etc/gitconfig, and a user's
    ~/.gitconfig may set hooks, filters or rewrites: none of it may act on spaces' repositories.
    """
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": "/nonexistent",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_TERMINAL_PROMPT": "0",
        "LC_ALL": "C",
        **extra,
    }


def repo_path(repos_dir: Path, owner: str, name: str) -> Path:
    return repos_dir / owner / f"{name}.git"


def git_process(
    repo: Path, *args: str, input_bytes: bytes | None = None, **environment: str
) -> subprocess.CompletedProcess[bytes]:
    """Run git on `repo` (extra `environment` such as GIT_INDEX_FILE); its exit status is kept."""
    return subprocess.run(
        ["git", "--git-dir", str(repo), *args],
        input=input_bytes,
        capture_output=True,
        timeout=GIT_TIMEOUT,
        check=False,
        env=git_environment(**environment),
    )


def run_git(repo: Path, *args: str, input_bytes: bytes | None = None, **environment: str) -> bytes:
    result = git_process(repo, *args, input_bytes=input_bytes, **environment)
    if result.returncode != 0:
        raise RuntimeError(
            f"git {args[0]} failed: {result.stderr.decode(errors='replace').strip()}"
        )
    return result.stdout


def init_bare(repo: Path) -> None:
    repo.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["git", "init", "--quiet", "--bare", f"--initial-branch={DEFAULT_BRANCH}", str(repo)],
        check=True,
        timeout=GIT_TIMEOUT,
        capture_output=True,
        env=git_environment(),
    )
    # http-backend refuses pushes unless the repository opts in.
    run_git(repo, "config", "http.receivepack", "true")


def head_commit(repo: Path, branch: str = DEFAULT_BRANCH) -> str | None:
    result = subprocess.run(
        ["git", "--git-dir", str(repo), "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"],
        capture_output=True,
        timeout=GIT_TIMEOUT,
        check=False,
        env=git_environment(),
    )
    return result.stdout.decode().strip() or None


def list_files(repo: Path, commit: str) -> list[str]:
    out = run_git(repo, "ls-tree", "-r", "--name-only", "-z", commit)
    return [name for name in out.decode(errors="replace").split("\0") if name]


def export_commit(repo: Path, commit: str, destination: Path, data_dir: Path) -> None:
    """Write the commit's files to `destination`; symlinks that leave the tree are dropped.

    Git LFS pointers are replaced by their objects from DATA_DIR's store (`data_dir`): a
    pointer whose object the space lacks is Unprocessable, naming the file.
    """
    destination.mkdir(parents=True, exist_ok=True)
    archive = destination.parent / f".{destination.name}.tar"
    try:
        with archive.open("wb") as out:
            process = subprocess.run(
                ["git", "--git-dir", str(repo), "archive", "--format=tar", commit],
                stdout=out,
                stderr=subprocess.PIPE,
                timeout=GIT_TIMEOUT,
                check=False,
                env=git_environment(),
            )
        if process.returncode != 0:
            raise NotFound(f"commit {commit} is not in the repository")
        with tarfile.open(archive) as tar:
            members = _members_inside(tar, destination)
            tar.extractall(destination, members=members, **_DATA_FILTER)  # noqa: S202
    finally:
        archive.unlink(missing_ok=True)
    small = [m.name for m in members if m.isfile() and m.size <= lfs_store.POINTER_MAX_BYTES]
    lfs_store.replace_pointers(data_dir, repo, destination, small)


# tarfile's extraction filters came in Python 3.11.4 (PEP 706): Debian 12's Python 3.11.2 has
# none. _members_inside already keeps only files, folders and symlinks inside the destination.
_DATA_FILTER = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}


def _members_inside(tar: tarfile.TarFile, root: Path) -> list[tarfile.TarInfo]:
    root = root.resolve()
    kept = []
    for member in tar.getmembers():
        target = (root / member.name).resolve()
        if not target.is_relative_to(root) or not (
            member.isfile() or member.isdir() or member.issym()
        ):
            continue
        if member.issym():
            link = (target.parent / member.linkname).resolve()
            if member.linkname.startswith("/") or not link.is_relative_to(root):
                continue
        kept.append(member)
    return kept

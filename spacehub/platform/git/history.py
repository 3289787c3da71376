"""Copies of a space's git history into a new bare repository (duplicated spaces)."""

import shutil
import subprocess
from pathlib import Path

from spacehub.core.errors import Conflict
from spacehub.platform.git.repos import git_environment, init_bare

# A fetch between two local repositories is disk-bound; a space may hold SPACEHUB_MAX_PUSH_BYTES
# several times over in its history.
COPY_TIMEOUT = 600


def copy_history(source: Path, target: Path) -> None:
    """Make `target` a new bare repository holding every branch and tag of `source`.

    A fetch between the two bare repositories: objects are packed afresh, nothing is linked,
    so deleting either repository later leaves the other whole. On failure `target` is removed;
    a `target` that already exists is a Conflict and is left alone.
    """
    if target.exists():
        raise Conflict(f"a repository already exists at {target.name}")
    try:
        init_bare(target)
        fetch = [
            *("git", "--git-dir", str(target), "fetch", "--quiet", "--no-write-fetch-head"),
            *(str(source.resolve()), "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"),
        ]
        result = subprocess.run(
            fetch, capture_output=True, timeout=COPY_TIMEOUT, check=False, env=git_environment()
        )
        if result.returncode != 0:
            stderr = result.stderr.decode(errors="replace").strip()
            raise RuntimeError(f"copying the history of {source.name} failed: {stderr}")
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise

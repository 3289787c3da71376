"""Static releases: an immutable directory holding the commit's files, published atomically."""

import logging
import os
import shutil
from collections.abc import Collection
from pathlib import Path

from spacehub.core.release import Artifact

log = logging.getLogger(__name__)
_IGNORED = shutil.ignore_patterns(".git")


def build_static_release(
    source: Path, releases_dir: Path, commit: str, rebuild: bool = False
) -> Artifact:
    """Copy `source` (a checkout) to `releases_dir/<commit>`; the rename makes it appear whole.

    An existing release is reused only when it holds the checkout's files at their sizes (a
    crash or a full disk can leave a damaged one); `rebuild` (a factory rebuild) always copies.
    """
    final = releases_dir / commit
    if rebuild or not same_files(source, final):
        releases_dir.mkdir(parents=True, exist_ok=True)
        partial = releases_dir / f".{commit}.partial-{os.getpid()}"
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(source, partial, symlinks=True, ignore=_IGNORED)
        replace_directory(partial, final)
    return Artifact(kind="static", ref=str(final), commit=commit)


def replace_directory(partial: Path, final: Path) -> None:
    """Put `partial` in place of `final`; a damaged `final` is moved aside, then removed."""
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
    try:
        partial.rename(final)
    except OSError:
        if not final.is_dir():  # not a concurrent build of the same commit that won the race
            raise
        shutil.rmtree(partial, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)


def same_files(source: Path, release: Path) -> bool:
    """Whether `release` holds exactly the files of `source` (names, kinds and sizes)."""
    if not release.is_dir():
        return False
    return _inventory(source) == _inventory(release)


def _inventory(root: Path) -> dict[str, tuple[str, int]]:
    found: dict[str, tuple[str, int]] = {}
    for directory, dirs, files in os.walk(root):
        dirs[:] = [name for name in dirs if name != ".git"]
        for name in dirs + [name for name in files if name != ".git"]:
            path = Path(directory, name)
            stat = path.lstat()
            kind = "link" if path.is_symlink() else "dir" if path.is_dir() else "file"
            size = stat.st_size if kind == "file" else 0
            found[str(path.relative_to(root))] = (kind, size)
    return found


def prune_static_releases(releases_dir: Path, keep: Collection[str]) -> list[str]:
    """Remove the releases of `releases_dir` whose commit is not in `keep`; return those removed.

    Leftovers of interrupted copies (`.<commit>.partial-<pid>`) of processes that are gone go too.
    """
    removed: list[str] = []
    if not releases_dir.is_dir():
        return removed
    for entry in releases_dir.iterdir():
        if entry.name.startswith("."):
            if not _leftover_of_dead_process(entry.name):
                continue
        elif entry.name in keep:
            continue
        shutil.rmtree(entry, ignore_errors=True)
        if not entry.exists():
            removed.append(entry.name)
    return removed


def _leftover_of_dead_process(name: str) -> bool:
    _, _, pid = name.rpartition("-")
    if not (".partial-" in name or ".old-" in name) or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False

"""One build context directory per space, kept between builds, so that BuildKit sends only changes.

The docker CLI names a context by its path and the CLI's node id (`.buildNodeID` in its config
dir); BuildKit keeps the files of the last build under that name and, on the next, receives only
the files whose size, mode or mtime differ. The worker exports each commit into a new directory
with new mtimes, so every build sent its whole context (0.6 s more for a 50 MB file here, ~40 ms
for a tiny app). Mirroring the export into the space's own directory, leaving files with the same
bytes untouched, and giving the CLI a stable node id makes a code-only push send only the code.
"""

import fcntl
import os
import secrets
import shutil
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

_NODE_ID_FILE = ".node-id"  # labels never start with a dot
_CHUNK = 1024 * 1024


def space_context_dir(cache_dir: Path, label: str) -> Path:
    """Where the contexts of the space labelled `label` are kept (removed with the space)."""
    return cache_dir / label


@contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Hold `directory` for one build: two builds of a space never mirror into it at once."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def node_id(cache_dir: Path) -> str:
    """The CLI's node id for builds using `cache_dir`: made once, the same for every build."""
    path = cache_dir / _NODE_ID_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        cache_dir.mkdir(parents=True, exist_ok=True)
        value = secrets.token_hex(32)
        temporary = path.with_name(f".{_NODE_ID_FILE}.{value[:8]}")
        temporary.write_text(value)
        os.replace(temporary, path)  # two racing builds each write a whole id; the last wins
        return path.read_text().strip()


def mirror(source: Path, target: Path, ignore: Callable[[str], bool] = lambda name: False) -> None:
    """Make `target` hold what `source` holds (names `ignore` accepts left out, at any depth).

    Files and symlinks that are the same already are left as they are, mtime included.
    """
    target.mkdir(parents=True, exist_ok=True)
    shutil.copymode(source, target)  # COPY of the folder gives the image its mode
    wanted = set()
    for entry in os.scandir(source):
        if ignore(entry.name):
            continue
        wanted.add(entry.name)
        destination = target / entry.name
        if entry.is_symlink():
            link = os.readlink(entry.path)
            if destination.is_symlink() and os.readlink(destination) == link:
                continue
            _remove(destination)
            os.symlink(link, destination)
        elif entry.is_dir():
            if destination.is_symlink() or (destination.exists() and not destination.is_dir()):
                _remove(destination)
            mirror(Path(entry.path), destination, ignore)
        elif entry.is_file() and not _same_file(entry, destination):
            _remove(destination)
            shutil.copyfile(entry.path, destination)
            shutil.copymode(entry.path, destination)
    for name in os.listdir(target):
        if name not in wanted:
            _remove(target / name)


def _same_file(entry: os.DirEntry[str], destination: Path) -> bool:
    try:
        theirs = destination.lstat()
    except FileNotFoundError:
        return False
    ours = entry.stat(follow_symlinks=False)
    return (
        stat.S_ISREG(theirs.st_mode)
        and theirs.st_mode == ours.st_mode
        and theirs.st_size == ours.st_size
        and _same_bytes(Path(entry.path), destination)
    )


def _same_bytes(first: Path, second: Path) -> bool:
    """Compared here, not with filecmp: its cache would keep every pair a worker ever saw."""
    with first.open("rb") as one, second.open("rb") as other:
        while True:
            chunk = one.read(_CHUNK)
            if chunk != other.read(_CHUNK):
                return False
            if not chunk:
                return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()

"""Git LFS objects, stored once per platform by content (sha256) under DATA_DIR/lfs/objects.

Which space may read an object is recorded per repository (`lfs-oids/` in the bare repo, one
empty marker file per oid), so that knowing an oid is not enough to read another space's file,
while duplicated spaces share the stored bytes.
"""

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from spacehub.core.errors import Unprocessable

OID = re.compile(r"[0-9a-f]{64}")
POINTER_PREFIX = b"version https://git-lfs.github.com/spec/v1\n"
POINTER_MAX_BYTES = 1024
GRANTS_DIR = "lfs-oids"
_POINTER = re.compile(
    rb"version https://git-lfs\.github\.com/spec/v1\n"
    rb"(?:ext-[^\n]*\n)*oid sha256:(?P<oid>[0-9a-f]{64})\nsize (?P<size>[0-9]+)\n"
)


class BadObject(ValueError):
    """Uploaded bytes that do not match the oid or size they were announced with."""


def objects_dir(data_dir: Path) -> Path:
    return data_dir / "lfs" / "objects"


def object_path(data_dir: Path, oid: str) -> Path:
    if not OID.fullmatch(oid):
        raise ValueError(f"not an LFS oid (sha256, 64 hex digits): {oid!r}")
    return objects_dir(data_dir) / oid[:2] / oid[2:4] / oid


def has_object(data_dir: Path, oid: str, size: int) -> bool:
    try:
        return object_path(data_dir, oid).stat().st_size == size
    except (FileNotFoundError, ValueError):
        return False


class ObjectWriter:
    """Writes one object as its bytes arrive; it becomes visible only once oid and size match.

    Made for streamed uploads: the caller feeds chunks (from a thread, the writes block) and
    ends with `commit()`, or `abort()` when the upload breaks off.
    """

    def __init__(self, data_dir: Path, oid: str, size: int) -> None:
        self.target = object_path(data_dir, oid)
        self.oid = oid
        self.size = size
        self.written = 0
        self._digest = hashlib.sha256()
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self._out: IO[bytes] = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed in commit/abort)
            dir=self.target.parent, prefix=".incoming-", delete=False
        )

    def write(self, chunk: bytes) -> None:
        self.written += len(chunk)
        if self.written > self.size:
            self.abort()
            raise BadObject(f"object {self.oid} is larger than its announced size {self.size}")
        self._digest.update(chunk)
        self._out.write(chunk)

    def commit(self) -> None:
        try:
            if self.written != self.size:
                raise BadObject(
                    f"object {self.oid} has {self.written} bytes, not its announced {self.size}"
                )
            if self._digest.hexdigest() != self.oid:
                raise BadObject(f"object content does not match its oid {self.oid}")
            self._out.flush()
            os.fsync(self._out.fileno())
            self._out.close()
            os.chmod(self._out.name, 0o644)
            os.replace(self._out.name, self.target)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        self._out.close()
        Path(self._out.name).unlink(missing_ok=True)


def store_object(data_dir: Path, oid: str, size: int, chunks: Iterable[bytes]) -> None:
    """Write the object from `chunks`, checked against oid and size before it becomes visible."""
    writer = ObjectWriter(data_dir, oid, size)
    try:
        for chunk in chunks:
            writer.write(chunk)
    except BaseException:
        writer.abort()
        raise
    writer.commit()


def parse_pointer(data: bytes) -> tuple[str, int] | None:
    """(oid, size) when `data` is an LFS pointer file, else None."""
    if len(data) > POINTER_MAX_BYTES or not data.startswith(POINTER_PREFIX):
        return None
    match = _POINTER.fullmatch(data)
    return (match["oid"].decode(), int(match["size"])) if match else None


def pointer_text(oid: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n".encode()


def _grant_path(repo: Path, oid: str) -> Path:
    if not OID.fullmatch(oid):
        raise ValueError(f"not an LFS oid (sha256, 64 hex digits): {oid!r}")
    return repo / GRANTS_DIR / oid[:2] / oid


def grant_object(repo: Path, oid: str) -> None:
    """Let the space of bare repository `repo` read object `oid` (it was uploaded to it)."""
    marker = _grant_path(repo, oid)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()


def is_granted(repo: Path, oid: str) -> bool:
    try:
        return _grant_path(repo, oid).is_file()
    except ValueError:
        return False


def granted_objects(repo: Path) -> Iterator[str]:
    root = repo / GRANTS_DIR
    if not root.is_dir():
        return
    for fan in sorted(root.iterdir()):
        for marker in sorted(fan.iterdir()):
            if OID.fullmatch(marker.name):
                yield marker.name


def share_objects(source_repo: Path, target_repo: Path) -> int:
    """Give `target_repo` (a duplicate) read access to every object of `source_repo`; a count."""
    shared = 0
    for oid in granted_objects(source_repo):
        grant_object(target_repo, oid)
        shared += 1
    return shared


def can_read_object(data_dir: Path, repo: Path, oid: str, size: int) -> bool:
    """The object is stored with this size and the repository's space may read it."""
    return is_granted(repo, oid) and has_object(data_dir, oid, size)


def open_object(data_dir: Path, repo: Path, oid: str, size: int) -> IO[bytes]:
    """The stored object for a pointer in `repo`; MissingObject when absent or not granted."""
    if not can_read_object(data_dir, repo, oid, size):
        raise MissingObject(oid, size)
    return object_path(data_dir, oid).open("rb")


def copy_object(data_dir: Path, repo: Path, oid: str, size: int, destination: Path) -> None:
    """Replace `destination` (a pointer file) with the object's bytes, written aside first.

    A copy, never a hard link: a build that rewrote a file in place would otherwise change
    the stored object for every space.
    """
    partial = destination.with_name(f".{destination.name}.lfs-partial")
    with open_object(data_dir, repo, oid, size) as source, partial.open("wb") as out:
        shutil.copyfileobj(source, out, 1024 * 1024)
    os.replace(partial, destination)


class MissingObject(LookupError):
    """A pointer whose object is not stored, or not readable by the space."""

    def __init__(self, oid: str, size: int) -> None:
        super().__init__(f"LFS object {oid} ({size} bytes) is not stored for this space")
        self.oid = oid
        self.size = size


def replace_pointers(data_dir: Path, repo: Path, root: Path, candidates: Iterable[str]) -> int:
    """Put the stored object in place of each LFS pointer among `candidates` (paths in `root`).

    Returns how many were replaced; Unprocessable names every pointer whose object the space
    does not have (never uploaded, or uploaded to another space only).
    """
    replaced = 0
    missing: list[str] = []
    for name in candidates:
        path = root / name
        if path.is_symlink() or not path.is_file():
            continue
        pointer = parse_pointer(path.read_bytes())
        if pointer is None:
            continue
        try:
            copy_object(data_dir, repo, *pointer, path)
        except MissingObject as error:
            missing.append(f"{name} (oid {error.oid}, {error.size} bytes)")
            continue
        replaced += 1
    if missing:
        shown = ", ".join(missing[:10]) + (
            f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        )
        raise Unprocessable(
            f"Git LFS file{'s' if len(missing) > 1 else ''} missing from this space: {shown}. "
            "The commit holds only the LFS pointer: upload the object with "
            "'git lfs push --all <remote> main' (git-lfs installed), then push again"
        )
    return replaced

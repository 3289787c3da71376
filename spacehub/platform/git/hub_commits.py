"""A commit in the Hub's form (`create_commit`'s NDJSON lines) made on a bare repository.

Files arrive base64-encoded inside the lines (preupload always answers "regular"); those that
the new tree's `.gitattributes` sends to LFS, or that are over 10 MiB, go to the LFS store and
the commit holds their pointers, as on the Hub.
"""

import base64
import binascii
import hashlib
import json
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from anyio import to_thread

from spacehub.core.errors import Conflict, InvalidInput, PreconditionFailed, RevisionNotFound
from spacehub.platform.git import lfs_store
from spacehub.platform.git.reading import resolve_revision
from spacehub.platform.git.repos import DEFAULT_BRANCH, run_git
from spacehub.platform.git.writing import (
    ZERO_OID,
    Author,
    DeleteFile,
    DeleteFolder,
    Operation,
    PutBlob,
    RefMoved,
    TreeFile,
    apply_operations,
    check_path,
    lfs_tracked,
    move_ref,
    open_pull_request,
    ref_target,
    tree_files,
    write_blob,
    write_commit,
)

LFS_THRESHOLD = 10 * 1024 * 1024
SPOOL_THRESHOLD = 1024 * 1024
THREAD_LINE_BYTES = 64 * 1024
COMMIT_ATTEMPTS = 5
CHUNK = 1024 * 1024
_LOCKS: dict[Path, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()
LFS_RULE = "filter=lfs diff=lfs merge=lfs -text"
BRANCH_MOVED = "The branch was updated since you opened this page. Please refresh and try again."


@dataclass(frozen=True)
class NewFile:
    path: str
    content: bytes | Path
    size: int


@dataclass(frozen=True)
class LfsReference:
    """An `lfsFile` line: an object that must already be in the store, readable by the space."""

    path: str
    oid: str
    size: int | None


Change = NewFile | LfsReference | DeleteFile | DeleteFolder


@dataclass
class CommitPayload:
    summary: str = ""
    description: str = ""
    parent: str | None = None
    changes: list[Change] = field(default_factory=list)

    @property
    def message(self) -> str:
        return f"{self.summary}\n\n{self.description}" if self.description else self.summary


@dataclass(frozen=True)
class CommitResult:
    commit: str
    ref: str
    pull_request: int | None = None


class PayloadReader:
    """Takes the NDJSON lines one at a time; file contents over 1 MiB are spooled to disk."""

    def __init__(self, spool: Path) -> None:
        self.spool = spool
        self.payload = CommitPayload()
        self._spooled = 0

    def take(self, line: bytes) -> None:
        if not line.strip():
            return
        try:
            item = json.loads(line)
            key, value = item["key"], item["value"]
        except (ValueError, KeyError, TypeError):
            raise InvalidInput("each line must be JSON: {'key': …, 'value': …}") from None
        if not isinstance(value, dict):
            raise InvalidInput(f"the value of a {key!r} line must be an object")
        if key == "header":
            self._header(value)
        elif key == "file":
            self.payload.changes.append(self._file(value))
        elif key == "lfsFile":
            self.payload.changes.append(
                LfsReference(_path(value), str(value.get("oid", "")), value.get("size"))
            )
        elif key == "deletedFile":
            self.payload.changes.append(DeleteFile(_path(value)))
        elif key == "deletedFolder":
            folder = str(value.get("path", "")).strip("/")
            self.payload.changes.append(DeleteFolder(check_path(folder)))
        else:
            raise InvalidInput(f"unknown line in commit payload: {key!r}")

    def _header(self, value: dict) -> None:
        summary = str(value.get("summary") or "").strip()
        if not summary:
            raise InvalidInput("the commit needs a summary")
        self.payload.summary = summary
        self.payload.description = str(value.get("description") or "")
        parent = value.get("parentCommit")
        self.payload.parent = str(parent) if parent else None

    def _file(self, value: dict) -> NewFile:
        path = _path(value)
        if value.get("encoding", "base64") != "base64":
            raise InvalidInput(f"{path}: only base64 content is accepted")
        try:
            content = base64.b64decode(value.get("content") or "", validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput(f"{path}: content is not valid base64") from None
        if len(content) <= SPOOL_THRESHOLD:
            return NewFile(path, content, len(content))
        self._spooled += 1
        spooled = self.spool / f"{self._spooled}.bin"
        spooled.write_bytes(content)
        return NewFile(path, spooled, len(content))


def _path(value: dict) -> str:
    return check_path(str(value.get("path", "")).lstrip("/"))


async def read_payload(chunks: AsyncIterator[bytes], spool: Path) -> CommitPayload:
    """Parse the body line by line as it streams; never more than one line held at once."""
    reader = PayloadReader(spool)
    buffer = bytearray()
    async for chunk in chunks:
        searched = len(buffer)
        buffer += chunk
        while (end := buffer.find(b"\n", searched)) != -1:
            line = bytes(buffer[:end])
            del buffer[: end + 1]
            searched = 0
            await _take(reader, line)
    await _take(reader, bytes(buffer))
    if not reader.payload.summary:
        raise InvalidInput("the commit payload must start with a header line")
    return reader.payload


async def _take(reader: PayloadReader, line: bytes) -> None:
    if len(line) > THREAD_LINE_BYTES:
        await to_thread.run_sync(reader.take, line)
    else:
        reader.take(line)


def branch_ref(repo: Path, revision: str) -> tuple[str, str | None]:
    """The ref a commit to `revision` moves and where it points: a branch or `refs/pr/N`."""
    ref = revision if revision.startswith("refs/pr/") else f"refs/heads/{revision}"
    head = ref_target(repo, ref)
    if head is None and revision != DEFAULT_BRANCH:
        raise RevisionNotFound(f"Invalid rev id: {revision} (commits go to a branch)")
    return ref, head


def make_commit(
    repo: Path,
    data_dir: Path,
    revision: str,
    payload: CommitPayload,
    author: Author,
    create_pr: bool = False,
) -> CommitResult:
    """Apply the payload on the branch; a branch moved meanwhile is retried unless pinned.

    Commits through the API to one repository take turns (a push can still move the branch
    in between: the compare-and-swap catches it).
    """
    with _repository_lock(repo):
        return _make_commit(repo, data_dir, revision, payload, author, create_pr)


def _repository_lock(repo: Path) -> threading.Lock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(repo.resolve(), threading.Lock())


def _make_commit(
    repo: Path,
    data_dir: Path,
    revision: str,
    payload: CommitPayload,
    author: Author,
    create_pr: bool,
) -> CommitResult:
    ref, head = branch_ref(repo, revision)
    for _ in range(COMMIT_ATTEMPTS):
        parent = head
        if payload.parent is not None:
            try:
                # The client allows upper-case hex; revisions are read as git writes them.
                parent = resolve_revision(repo, payload.parent.lower())
            except RevisionNotFound:
                raise PreconditionFailed(BRANCH_MOVED) from None
            if parent != head and not create_pr:
                raise PreconditionFailed(BRANCH_MOVED)
        files = tree_files(repo, parent)
        operations = list(_operations(repo, data_dir, files, payload.changes))
        commit = write_commit(
            repo, apply_operations(repo, files, operations), parent, payload.message, author
        )
        if create_pr:
            return CommitResult(commit, ref, open_pull_request(repo, commit))
        try:
            move_ref(repo, ref, commit, head)
        except RefMoved:
            if payload.parent is not None:
                raise PreconditionFailed(BRANCH_MOVED) from None
            head = ref_target(repo, ref)
            continue
        return CommitResult(commit, ref)
    raise Conflict(f"{revision} kept moving while this commit was made: try again")


def _operations(
    repo: Path, data_dir: Path, files: dict[str, TreeFile], changes: list[Change]
) -> Iterator[Operation]:
    """The changes as tree operations, each new file stored as a blob or as an LFS pointer."""
    tracked, attributes = _lfs_paths(repo, files, changes)
    untracked_big = [
        change.path
        for change in changes
        if isinstance(change, NewFile)
        and change.size > LFS_THRESHOLD
        and change.path not in tracked
    ]
    for change in changes:
        if isinstance(change, NewFile):
            if change.path in tracked or change.size > LFS_THRESHOLD:
                oid = _store_in_lfs(repo, data_dir, change)
                yield PutBlob(
                    change.path, write_blob(repo, lfs_store.pointer_text(oid, change.size))
                )
            else:
                yield PutBlob(change.path, write_blob(repo, change.content))
        elif isinstance(change, LfsReference):
            size = _granted_size(repo, data_dir, change)
            yield PutBlob(change.path, write_blob(repo, lfs_store.pointer_text(change.oid, size)))
        else:
            yield change
    if untracked_big:
        # A clone's git-lfs smudges only what .gitattributes tracks: track each big file by name.
        rules = "".join(f"/{_attribute_pattern(path)} {LFS_RULE}\n" for path in untracked_big)
        current = run_git(repo, "cat-file", "blob", attributes) if attributes else b""
        separator = b"\n" if current and not current.endswith(b"\n") else b""
        yield PutBlob(".gitattributes", write_blob(repo, current + separator + rules.encode()))


def _attribute_pattern(path: str) -> str:
    """`path` as a .gitattributes pattern matching only itself (git-lfs's escapes)."""
    escaped = "".join(f"\\{char}" if char in "*?[]\\!#" else char for char in path)
    return escaped.replace(" ", "[[:space:]]")


def _lfs_paths(
    repo: Path, files: dict[str, TreeFile], changes: list[Change]
) -> tuple[set[str], str | None]:
    """Which new files the resulting tree's `.gitattributes` send to LFS; its root one's blob."""
    preview: list[Operation] = []
    for change in changes:
        if isinstance(change, NewFile):
            attributes = change.path.rsplit("/", 1)[-1] == ".gitattributes"
            oid = write_blob(repo, change.content) if attributes else ZERO_OID
            preview.append(PutBlob(change.path, oid))
        elif isinstance(change, LfsReference):
            preview.append(PutBlob(change.path, ZERO_OID))
        else:
            preview.append(change)
    result = apply_operations(repo, files, preview)
    tracked = lfs_tracked(repo, result, [c.path for c in changes if isinstance(c, NewFile)])
    root = result.get(".gitattributes")
    return tracked, root.oid if root else None


def _store_in_lfs(repo: Path, data_dir: Path, file: NewFile) -> str:
    digest = hashlib.sha256()
    for chunk in _chunks(file.content):
        digest.update(chunk)
    oid = digest.hexdigest()
    if not lfs_store.has_object(data_dir, oid, file.size):
        lfs_store.store_object(data_dir, oid, file.size, _chunks(file.content))
    lfs_store.grant_object(repo, oid)
    return oid


def _granted_size(repo: Path, data_dir: Path, reference: LfsReference) -> int:
    size = reference.size
    if size is None and lfs_store.OID.fullmatch(reference.oid):
        path = lfs_store.object_path(data_dir, reference.oid)
        size = path.stat().st_size if path.is_file() else None
    if size is None or not lfs_store.can_read_object(data_dir, repo, reference.oid, int(size)):
        raise InvalidInput(
            f"{reference.path}: LFS object {reference.oid} is not stored for this space; "
            "upload its content instead"
        )
    return int(size)


def _chunks(content: bytes | Path) -> Iterator[bytes]:
    if isinstance(content, bytes):
        yield content
        return
    with content.open("rb") as source:
        while chunk := source.read(CHUNK):
            yield chunk


def known_blobs(repo: Path, revision: str, paths: list[str]) -> dict[str, str]:
    """Blob ids of the `paths` that exist at `revision` (preupload's no-op detection)."""
    try:
        commit = resolve_revision(repo, revision)
    except RevisionNotFound:
        if revision == DEFAULT_BRANCH:  # a repository with no commit yet
            return {}
        raise
    files = tree_files(repo, commit)
    return {path: files[path].oid for path in paths if path in files}


def spool_dir(data_dir: Path) -> tempfile.TemporaryDirectory:
    root = data_dir / "tmp"
    root.mkdir(parents=True, exist_ok=True)
    return tempfile.TemporaryDirectory(prefix="commit-", dir=root)

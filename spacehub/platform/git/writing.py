"""Commits, branches and tags the platform makes itself on a bare repository.

A commit is built in a temporary index (`GIT_INDEX_FILE`) from its parent's files plus
operations, then its ref moves by compare-and-swap (`update-ref REF NEW OLD`): a ref that
moved meanwhile is refused (`RefMoved`), so a concurrent change is never lost.
"""

import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from spacehub.core.errors import Conflict, EntryNotFound, InvalidInput, RevisionNotFound
from spacehub.platform.git.reading import resolve_revision
from spacehub.platform.git.repos import DEFAULT_BRANCH, git_process, run_git

ZERO_OID = "0" * 40
FILE_MODE = "100644"
COMMITTER = ("spacehub", "spacehub@localhost")


class RefMoved(Conflict):
    """The ref no longer points where the commit expected it to."""


@dataclass(frozen=True)
class Author:
    name: str
    email: str

    @classmethod
    def user(cls, name: str) -> "Author":
        return cls(name, f"{name}@users.noreply.spacehub")


@dataclass(frozen=True)
class TreeFile:
    mode: str
    oid: str


@dataclass(frozen=True)
class PutBlob:
    """Add or replace the file at `path` with a blob already written (`write_blob`)."""

    path: str
    oid: str
    mode: str = FILE_MODE


@dataclass(frozen=True)
class DeleteFile:
    path: str


@dataclass(frozen=True)
class DeleteFolder:
    path: str


@dataclass(frozen=True)
class CopyPath:
    """Copy the file or folder `source` as it is at `revision` to `destination`."""

    source: str
    destination: str
    revision: str


Operation = PutBlob | DeleteFile | DeleteFolder | CopyPath


def check_path(path: str) -> str:
    """A file path inside the tree: relative, no `.`/`..`/empty parts, not under `.git`."""
    parts = path.split("/")
    if (
        not path
        or "\0" in path
        or "\n" in path
        or any(part in ("", ".", "..") for part in parts)
        or parts[0] == ".git"
    ):
        raise InvalidInput(f"invalid path in repository: {path!r}")
    return path


def write_blob(repo: Path, content: bytes | Path) -> str:
    """Store a file's bytes (given, or read from a file on disk) as a blob; its id."""
    if isinstance(content, Path):
        out = run_git(repo, "hash-object", "-w", "--no-filters", "--", str(content))
    else:
        out = run_git(repo, "hash-object", "-w", "--no-filters", "--stdin", input_bytes=content)
    return out.decode().strip()


def ref_target(repo: Path, ref: str) -> str | None:
    result = git_process(
        repo, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"
    )
    return (result.stdout.decode().strip() or None) if result.returncode == 0 else None


def tree_files(repo: Path, commit: str | None) -> dict[str, TreeFile]:
    """Every file of the commit (recursively) by path; empty for no commit."""
    if commit is None:
        return {}
    out = run_git(repo, "ls-tree", "-r", "-z", "--full-tree", commit)
    files = {}
    for record in out.split(b"\0"):
        if record:
            info, _, path = record.partition(b"\t")
            mode, _, oid = info.decode().split(" ")
            files[path.decode("utf-8", errors="surrogateescape")] = TreeFile(mode, oid)
    return files


def apply_operations(
    repo: Path, files: dict[str, TreeFile], operations: Iterable[Operation]
) -> dict[str, TreeFile]:
    """The files after the operations, in order; a delete of a missing path is EntryNotFound."""
    result = dict(files)
    for operation in operations:
        if isinstance(operation, PutBlob):
            _put(result, check_path(operation.path), TreeFile(operation.mode, operation.oid))
        elif isinstance(operation, DeleteFile):
            if result.pop(operation.path, None) is None:
                raise EntryNotFound(f"A file with this name doesn't exist: {operation.path}")
        elif isinstance(operation, DeleteFolder):
            prefix = operation.path.strip("/") + "/"
            inside = [path for path in result if path.startswith(prefix)]
            if not inside:
                raise EntryNotFound(f"A folder with this name doesn't exist: {operation.path}")
            for path in inside:
                del result[path]
        else:
            for path, entry in _copied(repo, operation).items():
                _put(result, check_path(path), entry)
    return result


def _copied(repo: Path, copy: CopyPath) -> dict[str, TreeFile]:
    commit = resolve_revision(repo, copy.revision)
    source_files = tree_files(repo, commit)
    if copy.source in source_files:
        return {copy.destination: source_files[copy.source]}
    prefix = copy.source.strip("/") + "/"
    inside = {path: entry for path, entry in source_files.items() if path.startswith(prefix)}
    if not inside:
        raise EntryNotFound(f"Cannot copy {copy.source}: no such file or folder at {commit}")
    target = copy.destination.strip("/")
    return {f"{target}/{path[len(prefix) :]}": entry for path, entry in inside.items()}


def _put(files: dict[str, TreeFile], path: str, entry: TreeFile) -> None:
    # A file replaces a folder of the same name, and a folder replaces a file.
    for existing in [name for name in files if name.startswith(path + "/")]:
        del files[existing]
    parts = path.split("/")
    for depth in range(1, len(parts)):
        files.pop("/".join(parts[:depth]), None)
    files[path] = entry


def lfs_tracked(repo: Path, files: dict[str, TreeFile], paths: Iterable[str]) -> set[str]:
    """The `paths` that the `.gitattributes` files among `files` send to LFS (`filter=lfs`)."""
    wanted = list(paths)
    attributes = {
        path: entry
        for path, entry in files.items()
        if path == ".gitattributes" or path.endswith("/.gitattributes")
    }
    if not wanted or not attributes:
        return set()
    with tempfile.TemporaryDirectory(prefix="spacehub-index-") as scratch:
        index = str(Path(scratch) / "index")
        _fill_index(repo, index, attributes)
        listing = b"".join(
            path.encode("utf-8", errors="surrogateescape") + b"\0" for path in wanted
        )
        out = run_git(
            repo, "check-attr", "--cached", "-z", "--stdin", "filter",
            input_bytes=listing, GIT_INDEX_FILE=index,
        )  # fmt: skip
    fields = out.split(b"\0")
    return {
        fields[i].decode("utf-8", errors="surrogateescape")
        for i in range(0, len(fields) - 2, 3)
        if fields[i + 2] == b"lfs"
    }


def _fill_index(repo: Path, index: str, files: dict[str, TreeFile]) -> None:
    listing = b"".join(
        f"{entry.mode} {entry.oid}\t".encode()
        + path.encode("utf-8", errors="surrogateescape")
        + b"\0"
        for path, entry in sorted(files.items())
    )
    run_git(repo, "update-index", "-z", "--index-info", input_bytes=listing, GIT_INDEX_FILE=index)


def write_commit(
    repo: Path, files: dict[str, TreeFile], parent: str | None, message: str, author: Author
) -> str:
    """A commit object holding exactly `files` (no ref moves)."""
    with tempfile.TemporaryDirectory(prefix="spacehub-index-") as scratch:
        index = str(Path(scratch) / "index")
        if files:
            _fill_index(repo, index, files)
        else:
            run_git(repo, "read-tree", "--empty", GIT_INDEX_FILE=index)
        tree = run_git(repo, "write-tree", GIT_INDEX_FILE=index).decode().strip()
    parents = ["-p", parent] if parent else []
    out = run_git(
        repo, "commit-tree", tree, *parents, "-F", "-",
        input_bytes=message.encode(),
        GIT_AUTHOR_NAME=author.name, GIT_AUTHOR_EMAIL=author.email,
        GIT_COMMITTER_NAME=COMMITTER[0], GIT_COMMITTER_EMAIL=COMMITTER[1],
    )  # fmt: skip
    return out.decode().strip()


def move_ref(repo: Path, ref: str, new: str, old: str | None) -> None:
    """Point `ref` at `new` only if it still points at `old` (None: only if it does not exist)."""
    result = git_process(repo, "update-ref", "--no-deref", ref, new, old or ZERO_OID)
    if result.returncode != 0:
        if ref_target(repo, ref) != old:
            raise RefMoved(f"{ref} was updated meanwhile")
        raise RuntimeError(f"git update-ref failed: {result.stderr.decode(errors='replace')}")


def create_commit(
    repo: Path,
    ref: str,
    operations: Iterable[Operation],
    message: str,
    author: Author,
    parent: str | None,
    expected: str | None,
) -> str:
    """Commit `operations` on top of `parent` and move `ref` from `expected` to it."""
    files = apply_operations(repo, tree_files(repo, parent), operations)
    commit = write_commit(repo, files, parent, message, author)
    move_ref(repo, ref, commit, expected)
    return commit


def check_ref_name(repo: Path, ref: str) -> str:
    if git_process(repo, "check-ref-format", ref).returncode != 0:
        raise InvalidInput(f"invalid name: {ref.split('/', 2)[-1]!r}")
    return ref


def create_branch(repo: Path, branch: str, start: str) -> None:
    ref = check_ref_name(repo, f"refs/heads/{branch}")
    commit = resolve_revision(repo, start)
    try:
        move_ref(repo, ref, commit, None)
    except RefMoved:
        raise Conflict(f"Reference already exists: {ref}") from None


def delete_branch(repo: Path, branch: str) -> None:
    if branch == DEFAULT_BRANCH:
        raise InvalidInput(f"the default branch '{DEFAULT_BRANCH}' cannot be deleted")
    _delete_ref(repo, f"refs/heads/{branch}")


def create_tag(repo: Path, tag: str, revision: str, message: str | None, author: Author) -> None:
    ref = check_ref_name(repo, f"refs/tags/{tag}")
    commit = resolve_revision(repo, revision)
    if ref_target(repo, ref) is not None:
        raise Conflict(f"Reference already exists: {ref}")
    target = commit
    if message:
        tag_object = (
            f"object {commit}\ntype commit\ntag {tag}\n"
            f"tagger {author.name} <{author.email}> {int(time.time())} +0000\n\n{message}\n"
        )
        target = run_git(repo, "mktag", input_bytes=tag_object.encode()).decode().strip()
    try:
        move_ref(repo, ref, target, None)
    except RefMoved:
        raise Conflict(f"Reference already exists: {ref}") from None


def delete_tag(repo: Path, tag: str) -> None:
    _delete_ref(repo, f"refs/tags/{tag}")


def _delete_ref(repo: Path, ref: str) -> None:
    current = git_process(repo, "rev-parse", "--verify", "--quiet", ref).stdout.decode()
    if not current.strip():
        raise RevisionNotFound(f"Invalid rev id: {ref.split('/', 2)[-1]}")
    if git_process(repo, "update-ref", "-d", ref, current.strip()).returncode != 0:
        raise RefMoved(f"{ref} was updated meanwhile")


def open_pull_request(repo: Path, commit: str) -> int:
    """Point `refs/pr/N` at `commit` for the next free N (compare-and-swap); N."""
    taken = run_git(repo, "for-each-ref", "--format=%(refname)", "refs/pr/").decode().split()
    numbers = [int(ref.rsplit("/", 1)[1]) for ref in taken if ref.rsplit("/", 1)[1].isdigit()]
    number = max(numbers, default=0)
    for _ in range(20):
        number += 1
        try:
            move_ref(repo, f"refs/pr/{number}", commit, None)
        except RefMoved:
            continue
        return number
    raise Conflict("could not open a pull request: too many opened at once; try again")

"""Reading a space's bare repository at a revision: refs, trees, files, history.

Every call is the real `git` with `git_environment()` (no host or user config), argument lists
and timeouts. A file's content is opened by `git/files.py` (the LFS object for a pointer).
"""

import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from spacehub.core.errors import EntryNotFound, RevisionNotFound
from spacehub.platform.git.lfs_store import POINTER_MAX_BYTES, parse_pointer
from spacehub.platform.git.repos import GIT_TIMEOUT, git_environment

SHORT_SHA = re.compile(r"[0-9a-f]{4,40}")
# What git forbids in ref names (git-check-ref-format), plus anything that would be revision
# syntax (`main~1`, `:/text`, `@{…}`) rather than the name of a branch, tag or commit.
_NOT_A_NAME = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//|^[-/]|/$|\.lock$|^@$")
REF_PREFIXES = ("refs/heads/", "refs/tags/", "refs/pr/", "refs/convert/")
# Without it, git reads `*`, `:(glob)` and friends in a path as pathspec magic.
_LITERAL = {"GIT_LITERAL_PATHSPECS": "1"}


@dataclass(frozen=True)
class LfsFile:
    oid: str
    size: int
    pointer_size: int


@dataclass(frozen=True)
class Entry:
    """A file or folder of a commit; `size` of an LFS file is its real content's size."""

    path: str
    type: Literal["file", "directory"]
    oid: str
    size: int
    lfs: LfsFile | None = None


@dataclass(frozen=True)
class CommitInfo:
    id: str
    author: str
    date: datetime
    title: str
    message: str


@dataclass(frozen=True)
class Ref:
    name: str
    ref: str
    target_commit: str


@dataclass(frozen=True)
class Refs:
    branches: list[Ref]
    tags: list[Ref]
    pull_requests: list[Ref]
    converts: list[Ref]


def resolve_revision(repo: Path, revision: str) -> str:
    """The commit a branch, tag, full or short sha, or full ref (`refs/pr/1`) names."""
    return find_path(repo, revision, "")[0]


def find_path(repo: Path, revision: str, path: str) -> tuple[str, Entry | None]:
    """The commit `revision` names and the file or folder at `path` in it (None if absent).

    One git call answers both: a download asks this for every file.
    """
    path = normalize_path(path)
    candidates = _revision_candidates(revision)
    where = f":{path}" if path else "^{tree}"
    names = [name for ref in candidates for name in (f"{ref}^{{commit}}", f"{ref}{where}")]
    answers = _batch_check(repo, names)
    for commit, found in zip(answers[::2], answers[1::2], strict=True):
        if commit is None or commit[1] != "commit":
            continue
        if found is None or found[1] not in ("blob", "tree"):
            return commit[0], None
        return commit[0], _entries(repo, [(path, found[1], found[0], found[2])])[0]
    raise RevisionNotFound(f"Invalid rev id: {revision}")


def _revision_candidates(revision: str) -> list[str]:
    if not revision or _NOT_A_NAME.search(revision) or not _encodable(revision):
        return []
    if revision.startswith("refs/"):
        return [revision] if revision.startswith(REF_PREFIXES) else []
    candidates = [f"refs/heads/{revision}", f"refs/tags/{revision}"]
    if SHORT_SHA.fullmatch(revision):
        candidates.append(revision)
    return candidates


def normalize_path(path: str) -> str:
    """A path inside the repository, without leading or trailing slashes; '' is the root."""
    path = path.strip("/")
    parts = path.split("/") if path else []
    if not _encodable(path) or any(
        part in ("", ".", "..") or "\n" in part or "\0" in part for part in parts
    ):
        raise EntryNotFound(f"Entry not found: {path!r}")
    return path


def _encodable(text: str) -> bool:
    """False for lone surrogates (JSON allows them; a path in git never has them)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def stat_path(repo: Path, commit: str, path: str) -> Entry | None:
    """The file or folder at `path` in `commit`, or None."""
    return next(iter(paths_info(repo, commit, [path])), None)


def paths_info(repo: Path, commit: str, paths: Iterable[str]) -> list[Entry]:
    """The entries that exist among `paths`, in the order asked; missing ones are left out."""
    wanted = []
    for path in paths:
        try:
            wanted.append(normalize_path(path))
        except EntryNotFound:
            continue
    names = [f"{commit}^{{tree}}" if not path else f"{commit}:{path}" for path in wanted]
    found = [
        (path, kind, oid, size)
        for path, answer in zip(wanted, _batch_check(repo, names), strict=True)
        if answer is not None
        for oid, kind, size in [answer]
        if kind in ("blob", "tree")
    ]
    return _entries(repo, found)


def list_tree(repo: Path, commit: str, path: str = "", recursive: bool = False) -> list[Entry]:
    """The folder's entries (all its descendants when `recursive`), folders before their files."""
    path = normalize_path(path)
    folder = stat_path(repo, commit, path)
    if folder is None or folder.type != "directory":
        raise EntryNotFound(f"Entry not found: {path or '/'}")
    args = ["ls-tree", "-z", "--long", *(["-r", "-t"] if recursive else []), folder.oid]
    prefix = f"{path}/" if path else ""
    found: list[tuple[str, str, str, str | int]] = []
    for record in _git(repo, *args).split(b"\0"):
        if not record:
            continue
        meta, _, name = record.partition(b"\t")
        _mode, kind, oid, size = meta.decode().split()
        if kind in ("blob", "tree"):
            found.append((prefix + name.decode(errors="replace"), kind, oid, size))
    return _entries(repo, found)


def _entries(repo: Path, found: list[tuple[str, str, str, str | int]]) -> list[Entry]:
    """Entries from (path, git type, oid, size); blobs small enough to be pointers are read."""
    maybe_pointers = sorted(
        {oid for _, kind, oid, size in found if kind == "blob" and int(size) <= POINTER_MAX_BYTES}
    )
    pointers = _read_pointers(repo, maybe_pointers)
    entries = []
    for path, kind, oid, size in found:
        if kind == "tree":
            entries.append(Entry(path=path, type="directory", oid=oid, size=0))
            continue
        pointer = pointers.get(oid)
        lfs = LfsFile(pointer[0], pointer[1], int(size)) if pointer else None
        entries.append(
            Entry(path=path, type="file", oid=oid, size=lfs.size if lfs else int(size), lfs=lfs)
        )
    return entries


def _read_pointers(repo: Path, oids: list[str]) -> dict[str, tuple[str, int]]:
    if not oids:
        return {}
    out = _git(repo, "cat-file", "--batch", input_bytes="".join(f"{oid}\n" for oid in oids))
    pointers = {}
    position = 0
    for oid in oids:
        header_end = out.index(b"\n", position)
        size = int(out[position:header_end].split()[2])
        content = out[header_end + 1 : header_end + 1 + size]
        position = header_end + 1 + size + 1
        pointer = parse_pointer(content)
        if pointer is not None:
            pointers[oid] = pointer
    return pointers


def last_commit(repo: Path, commit: str, path: str) -> CommitInfo | None:
    """The newest commit up to `commit` that changed `path` ('' for the root)."""
    found = list_commits(repo, commit, limit=1, path=path)
    return found[0] if found else None


def list_commits(
    repo: Path, commit: str, skip: int = 0, limit: int = 50, path: str = ""
) -> list[CommitInfo]:
    """History from `commit`, newest first."""
    args = ["log", "-z", "--format=%H%x1f%an%x1f%ct%x1f%s%x1f%b", f"--skip={skip}"]
    args += [f"--max-count={limit}", commit, "--"]
    out = _git(repo, *args, *([path] if path else []), extra_env=_LITERAL)
    commits = []
    for record in out.decode(errors="replace").split("\0"):
        if not record:
            continue
        sha, author, stamp, title, body = record.split("\x1f", 4)
        commits.append(
            CommitInfo(
                id=sha,
                author=author,
                date=datetime.fromtimestamp(int(stamp), UTC),
                title=title,
                message=body.strip(),
            )
        )
    return commits


def list_refs(repo: Path) -> Refs:
    """Branches, tags (peeled to their commit), pull requests and converts."""
    out = _git(
        repo,
        "for-each-ref",
        "--format=%(refname)%00%(objectname)%00%(*objectname)",
        *REF_PREFIXES,
    )
    kinds: dict[str, list[Ref]] = {prefix: [] for prefix in REF_PREFIXES}
    for line in out.decode(errors="replace").splitlines():
        ref, target, peeled = line.split("\0")
        prefix = next(prefix for prefix in REF_PREFIXES if ref.startswith(prefix))
        name = ref if prefix == "refs/pr/" else ref.removeprefix(prefix)
        kinds[prefix].append(Ref(name=name, ref=ref, target_commit=peeled or target))
    return Refs(
        branches=kinds["refs/heads/"],
        tags=kinds["refs/tags/"],
        pull_requests=kinds["refs/pr/"],
        converts=kinds["refs/convert/"],
    )


def _batch_check(repo: Path, names: list[str]) -> list[tuple[str, str, int] | None]:
    """(oid, type, size) of each object name, None where git has no such object."""
    if not names:
        return []
    out = _git(repo, "cat-file", "--batch-check", input_bytes="".join(f"{n}\n" for n in names))
    answers: list[tuple[str, str, int] | None] = []
    for line in out.decode(errors="replace").splitlines():
        parts = line.split(" ")
        if len(parts) == 3 and parts[1] in ("blob", "tree", "commit", "tag"):
            answers.append((parts[0], parts[1], int(parts[2])))
        else:  # "<name> missing" or "<name> ambiguous"
            answers.append(None)
    return answers


def _git(
    repo: Path, *args: str, input_bytes: str | None = None, extra_env: dict[str, str] | None = None
) -> bytes:
    result = subprocess.run(
        ["git", "--git-dir", str(repo), *args],
        input=input_bytes.encode() if input_bytes is not None else None,
        capture_output=True,
        timeout=GIT_TIMEOUT,
        check=False,
        env=git_environment(**(extra_env or {})),
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"git {args[0]} failed: {result.stderr.decode(errors='replace').strip()}"
        )
    return result.stdout

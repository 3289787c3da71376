"""A file of a commit as users see it: the real bytes, the LFS object in place of its pointer."""

import subprocess
import tempfile
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import IO

from spacehub.core.errors import EntryNotFound
from spacehub.platform.git import lfs_store
from spacehub.platform.git.repos import GIT_TIMEOUT, git_environment, run_git

SPOOL_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class FileContent:
    """One file at one commit; `lfs_oid` is set when its content lives in the LFS store."""

    repo: Path
    data_dir: Path
    path: str
    blob: str
    size: int
    lfs_oid: str | None = None
    pointer_size: int | None = None

    def open(self) -> IO[bytes]:
        """The content as a binary file (the stored object for LFS files); close it after use.

        Raises lfs_store.MissingObject when the pointer's object is not stored for the space.
        """
        if self.lfs_oid is not None:
            return lfs_store.open_object(self.data_dir, self.repo, self.lfs_oid, self.size)
        if self.size <= SPOOL_BYTES:
            return BytesIO(run_git(self.repo, "cat-file", "blob", self.blob))
        spool = tempfile.TemporaryFile()  # noqa: SIM115 (handed to the caller)
        try:
            subprocess.run(
                ["git", "--git-dir", str(self.repo), "cat-file", "blob", self.blob],
                stdout=spool,
                stderr=subprocess.DEVNULL,
                timeout=GIT_TIMEOUT,
                check=True,
                env=git_environment(),
            )
        except BaseException:
            spool.close()
            raise
        spool.seek(0)
        return spool


def file_content(repo: Path, data_dir: Path, commit: str, path: str) -> FileContent:
    """The file `path` at `commit`; EntryNotFound when the commit has no such file."""
    listing = run_git(repo, "ls-tree", "-l", "-z", commit, "--", path)
    entry = listing.split(b"\0", 1)[0]
    head, _, name = entry.partition(b"\t")
    fields = head.split()
    if name.decode(errors="surrogateescape") != path or len(fields) != 4 or fields[1] != b"blob":
        raise EntryNotFound(f"{path} is not a file of commit {commit}")
    blob, size = fields[2].decode(), int(fields[3])
    if size <= lfs_store.POINTER_MAX_BYTES:
        pointer = lfs_store.parse_pointer(run_git(repo, "cat-file", "blob", blob))
        if pointer is not None:
            oid, real_size = pointer
            return FileContent(repo, data_dir, path, blob, real_size, oid, size)
    return FileContent(repo, data_dir, path, blob, size)

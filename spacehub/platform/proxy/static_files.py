"""A static release's files, answered by the proxy itself: GET and HEAD, no control plane.

Only what is plainly a regular file under the release's root is answered here. Anything else
(a missing file, a directory without index.html, a path leaving the root through `..` or a
symlink, NUL bytes or an undecodable path) goes to the control plane, whose answer (its 404
page, a 400) stays the one users get: `find_file` says None.
"""

import asyncio
import hashlib
import logging
import mimetypes
import os
import stat as stat_module
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate
from typing import Protocol
from urllib.parse import unquote_to_bytes

from spacehub.platform.proxy.http_head import Headers

log = logging.getLogger(__name__)

# Files up to this size are read on the loop (from the page cache, microseconds); bigger ones
# are read in chunks of this size in a thread, never more than one chunk ahead of the client.
INLINE_MAX = 256 * 1024
CHUNK = 256 * 1024


@dataclass(slots=True)
class StaticFile:
    path: str
    stat: os.stat_result


class FileClient(Protocol):
    def send(self, data: bytes) -> None: ...


def find_file(root: str, target: bytes) -> StaticFile | None:
    """The file `target` (origin-form, query ignored) names under `root`, a resolved directory."""
    path = target.partition(b"?")[0]
    if b"%00" in target:
        return None
    try:
        relative = unquote_to_bytes(path).decode("utf-8")
    except UnicodeDecodeError:
        return None
    if "\x00" in relative:
        return None
    try:
        found = _plain_path(root, relative) or _resolved_path(root, relative)
    except OSError:
        return None
    if found is None or not stat_module.S_ISREG(found.stat.st_mode):
        return None
    return found


def _plain_path(root: str, relative: str) -> StaticFile | None:
    """The usual case, one lstat per component: no `..`, no symlink. None: look closer."""
    path = root
    info = None
    for part in relative.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            return None
        path = f"{path}/{part}"
        info = os.lstat(path)
        if stat_module.S_ISLNK(info.st_mode):
            return None
    if info is None or stat_module.S_ISDIR(info.st_mode):
        path = f"{path}/index.html"
        info = os.lstat(path)
        if stat_module.S_ISLNK(info.st_mode):
            return None
    return StaticFile(path, info)


def _resolved_path(root: str, relative: str) -> StaticFile | None:
    """Symlinks and `..` followed, refused if they lead out of the release."""
    candidate = _inside(root, os.path.join(root, relative.lstrip("/")))
    info = os.stat(candidate) if candidate else None
    if candidate is not None and info is not None and stat_module.S_ISDIR(info.st_mode):
        # Resolved again: index.html itself may be a symlink out of the release.
        candidate = _inside(root, os.path.join(candidate, "index.html"))
        info = os.stat(candidate) if candidate else None
    if candidate is None or info is None:
        return None
    return StaticFile(candidate, info)


def _inside(root: str, path: str) -> str | None:
    resolved = os.path.realpath(path)
    if resolved == root or resolved.startswith(root + os.sep):
        return resolved
    return None


@dataclass(slots=True)
class _Facts:
    """What a file's answers repeat: its ETag, its 200 head's lines, and a small file's bytes."""

    key: tuple[int, int, int]
    etag: bytes
    lines: bytes
    body: bytes | None = None


# Facts per file path, valid while inode, size and mtime match; small files' bytes included,
# up to CACHE_MAX_BYTES in all (then the cache starts over).
_facts: dict[str, _Facts] = {}
_cached_bytes = 0
CACHE_MAX_FILES = 4096
CACHE_MAX_BYTES = 32 * 1024 * 1024
CACHE_MAX_FILE = 64 * 1024


def _facts_of(file: StaticFile) -> _Facts:
    global _cached_bytes
    info = file.stat
    key = (info.st_ino, info.st_size, info.st_mtime_ns)
    facts = _facts.get(file.path)
    if facts is not None and facts.key == key:
        return facts
    digest = hashlib.md5(f"{info.st_mtime}-{info.st_size}".encode(), usedforsecurity=False)
    etag = b'"%s"' % digest.hexdigest().encode()
    lines = b"".join(
        b"%s: %s\r\n" % line
        for line in (
            (b"content-type", content_type(file.path)),
            (b"accept-ranges", b"bytes"),
            (b"content-length", b"%d" % info.st_size),
            (b"last-modified", formatdate(info.st_mtime, usegmt=True).encode()),
            (b"etag", etag),
        )
    )
    if len(_facts) >= CACHE_MAX_FILES or _cached_bytes > CACHE_MAX_BYTES:
        _facts.clear()
        _cached_bytes = 0
    facts = _facts[file.path] = _Facts(key, etag, lines)
    return facts


def file_head(
    file: StaticFile, if_none_match: bytes | None, extra: Headers, close: bool
) -> tuple[int, bytes]:
    """The status and head of the answer, with the headers the control plane's FileResponse sets.

    The ETag is Starlette's (md5 of mtime and size), so a client's cached copy stays valid
    whichever of the two answered; `If-None-Match` containing it gives a 304.
    """
    facts = _facts_of(file)
    if if_none_match is not None and facts.etag in if_none_match:
        status, lines = 304, [b"HTTP/1.1 304 Not Modified\r\netag: %s\r\n" % facts.etag]
    else:
        status, lines = 200, [b"HTTP/1.1 200 OK\r\n", facts.lines]
    lines.append(b"date: %s\r\n" % http_date())
    lines += [b"%s: %s\r\n" % line for line in extra]
    if close:
        lines.append(b"connection: close\r\n")
    lines.append(b"\r\n")
    return status, b"".join(lines)


def content_type(path: str) -> bytes:
    guessed = mimetypes.guess_type(path)[0] or "application/octet-stream"
    if guessed.startswith("text/"):
        guessed += "; charset=utf-8"
    return guessed.encode("latin-1")


_date_cache: tuple[int, bytes] = (0, b"")


def http_date() -> bytes:
    """Now as an HTTP date, made once a second."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True).encode())
    return _date_cache[1]


def read_small(file: StaticFile) -> bytes | None:
    """The whole of a small file (INLINE_MAX at most); None if it changed size since its stat."""
    global _cached_bytes
    facts = _facts_of(file)
    if facts.body is not None:
        return facts.body
    with open(file.path, "rb") as handle:
        data = handle.read(file.stat.st_size + 1)
    if len(data) != file.stat.st_size:
        return None
    if len(data) <= CACHE_MAX_FILE:
        facts.body = data
        _cached_bytes += len(data)
    return data


class FileSender:
    """Sends a big file in chunks read in a thread, waiting while the client's buffer is full.

    `done(complete)` is called once at the end; complete is False when the file could not be
    read in full, or the sender was stopped (the client went away).
    """

    def __init__(self, client: FileClient, file: StaticFile, done: Callable[[bool], None]):
        self._client = client
        self._file = file
        self._done = done
        self._writable = asyncio.Event()
        self._writable.set()
        self._stopped = False
        self._task: asyncio.Future[None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    def pause(self) -> None:
        self._writable.clear()

    def resume(self) -> None:
        self._writable.set()

    def stop(self) -> None:
        # No Task.cancel(): a read running in a thread must end before its file is closed.
        self._stopped = True
        self._writable.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        remaining = self._file.stat.st_size
        try:
            handle = await loop.run_in_executor(None, open, self._file.path, "rb")
            try:
                while remaining > 0 and not self._stopped:
                    await self._writable.wait()
                    if self._stopped:
                        break
                    chunk = await loop.run_in_executor(None, handle.read, min(CHUNK, remaining))
                    if not chunk or self._stopped:
                        break
                    remaining -= len(chunk)
                    self._client.send(chunk)
            finally:
                handle.close()
        except OSError:
            log.exception("reading %s failed; cutting its response off", self._file.path)
        self._done(remaining == 0 and not self._stopped)

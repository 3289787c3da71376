"""Reading a space's repository in the Hub's dialect: resolve, tree, paths-info, commits, refs.

The revision and the path arrive percent-encoded (`refs%2Fpr%2F1`, `sub%2Fdir`): they are split
on the raw path, since the decoded one cannot tell `refs/pr/1` from a folder.
"""

import json
import mimetypes
from collections.abc import AsyncIterator
from pathlib import Path, PurePosixPath
from typing import IO, Annotated, Any
from urllib.parse import parse_qs, quote, unquote_to_bytes, urlencode

from anyio import to_thread
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from spacehub.core.errors import EntryNotFound, InvalidInput, RevisionNotFound
from spacehub.platform.api import url_paths  # noqa: F401 (registers {…:any_path})
from spacehub.platform.api.fields import MAX_PAGE
from spacehub.platform.build_logs import hub_timestamp
from spacehub.platform.context import Platform
from spacehub.platform.db import session_scope
from spacehub.platform.deps import PlatformDep, bearer_token
from spacehub.platform.errors import error_response
from spacehub.platform.git import reading
from spacehub.platform.git.files import FileContent
from spacehub.platform.git.lfs_store import can_read_object
from spacehub.platform.git.reading import CommitInfo, Entry, Ref
from spacehub.platform.git.repos import repo_path
from spacehub.platform.services import spaces
from spacehub.platform.services.accounts import caller_for_token

router = APIRouter()
CHUNK = 256 * 1024
TREE_PAGE = 1000
TREE_PAGE_EXPANDED = 50  # each entry then costs a history walk, as on the Hub
COMMITS_PAGE = 50
# Files are served from the platform's own origin: nothing in them may run there as a page.
INLINE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp", "audio/", "video/")
TEXT_TYPES = ("text/", "application/json", "application/javascript", "application/xml")
SANDBOX = {
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "X-Content-Type-Options": "nosniff",
}


@router.api_route("/spaces/{owner}/{name}/resolve/{rest:any_path}", methods=["GET", "HEAD"])
def resolve(owner: str, name: str, request: Request, platform: PlatformDep) -> Response:
    repo = _readable_repo(platform, request, owner, name)
    revision, path = _revision_and_path(request, skip=5)
    commit, entry = reading.find_path(repo, revision, path)
    if entry is None or entry.type != "file":
        missing = error_response(404, "Entry not found", "EntryNotFound")
        missing.headers["X-Repo-Commit"] = commit  # lets the client cache the miss
        return missing
    if entry.lfs and not can_read_object(
        platform.settings.data_dir, repo, entry.lfs.oid, entry.lfs.size
    ):
        raise EntryNotFound(
            f"{entry.path} is a Git LFS pointer whose file was never uploaded to this space"
        )
    etag = f'"{entry.lfs.oid if entry.lfs else entry.oid}"'
    headers = {
        "ETag": etag,
        "X-Repo-Commit": commit,
        "Accept-Ranges": "bytes",
        "Content-Disposition": _disposition(entry.path),
        **SANDBOX,
    }
    if entry.lfs:
        headers |= {"X-Linked-Etag": etag, "X-Linked-Size": str(entry.size)}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    try:
        span = _requested_range(request.headers.get("range"), entry.size)
    except _Unsatisfiable:
        unsatisfiable = error_response(416, f"Range not satisfiable: {entry.size} bytes")
        unsatisfiable.headers["Content-Range"] = f"bytes */{entry.size}"
        return unsatisfiable
    status, start, length = 200, 0, entry.size
    if span is not None:
        status, start, length = 206, span[0], span[1] - span[0] + 1
        headers["Content-Range"] = f"bytes {span[0]}-{span[1]}/{entry.size}"
    headers["Content-Length"] = str(length)
    media_type = _media_type(entry.path)
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type=media_type)
    content = _file_content(platform, repo, entry).open()
    content.seek(start)
    return StreamingResponse(
        _stream(content, length), status_code=status, headers=headers, media_type=media_type
    )


@router.get("/api/spaces/{owner}/{name}/tree/{rest:any_path}")
def tree(
    owner: str,
    name: str,
    request: Request,
    platform: PlatformDep,
    recursive: bool = False,
    expand: bool = False,
    cursor: Annotated[int, Query(ge=0, le=MAX_PAGE * TREE_PAGE)] = 0,
) -> JSONResponse:
    repo = _readable_repo(platform, request, owner, name)
    revision, path = _revision_and_path(request, skip=6)
    commit = reading.resolve_revision(repo, revision)
    path = reading.normalize_path(path)
    entries = reading.list_tree(repo, commit, path, recursive)
    page = TREE_PAGE_EXPANDED if expand else TREE_PAGE
    shown = entries[cursor : cursor + page]
    items = [_entry_json(entry, repo, commit, expand) for entry in shown]
    headers = {}
    if cursor + page < len(entries):
        where = f"{quote(commit, safe='')}" + (f"/{quote(path, safe='')}" if path else "")
        query = {"recursive": _flag(recursive), "expand": _flag(expand), "cursor": cursor + page}
        headers["Link"] = _next_link(platform, owner, name, f"tree/{where}", query)
    return JSONResponse(items, headers=headers)


@router.post("/api/spaces/{owner}/{name}/paths-info/{rest:any_path}")
async def paths_info(owner: str, name: str, request: Request, platform: PlatformDep) -> list[dict]:
    paths, expand = _paths_request(request.headers.get("content-type", ""), await request.body())
    revision, _ = _revision_and_path(request, skip=6)

    def answer() -> list[dict]:
        repo = _readable_repo(platform, request, owner, name)
        commit = reading.resolve_revision(repo, revision)
        return [
            _entry_json(entry, repo, commit, expand)
            for entry in reading.paths_info(repo, commit, paths)
        ]

    return await to_thread.run_sync(answer)


@router.get("/api/spaces/{owner}/{name}/commits/{rest:any_path}")
def commits(
    owner: str,
    name: str,
    request: Request,
    platform: PlatformDep,
    p: Annotated[int, Query(ge=0, le=MAX_PAGE)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = COMMITS_PAGE,
) -> JSONResponse:
    repo = _readable_repo(platform, request, owner, name)
    revision, _ = _revision_and_path(request, skip=6)
    commit = reading.resolve_revision(repo, revision)
    formatted = "formatted" in request.query_params.getlist("expand[]")
    found = reading.list_commits(repo, commit, skip=p * limit, limit=limit + 1)
    items = [_commit_json(info, formatted) for info in found[:limit]]
    headers = {}
    if len(found) > limit:
        query: dict[str, Any] = {"p": p + 1, "limit": limit}
        if formatted:
            query["expand[]"] = "formatted"
        headers["Link"] = _next_link(platform, owner, name, f"commits/{commit}", query)
    return JSONResponse(items, headers=headers)


@router.get("/api/spaces/{owner}/{name}/refs")
def refs(
    owner: str, name: str, request: Request, platform: PlatformDep, include_prs: bool = False
) -> dict:
    found = reading.list_refs(_readable_repo(platform, request, owner, name))
    answer = {
        "branches": [_ref_json(ref) for ref in found.branches],
        "converts": [_ref_json(ref) for ref in found.converts],
        "tags": [_ref_json(ref) for ref in found.tags],
    }
    if include_prs:
        answer["pullRequests"] = [_ref_json(ref) for ref in found.pull_requests]
    return answer


def _file_content(platform: Platform, repo: Path, entry: Entry) -> FileContent:
    return FileContent(
        repo=repo,
        data_dir=platform.settings.data_dir,
        path=entry.path,
        blob=entry.oid,
        size=entry.size,
        lfs_oid=entry.lfs.oid if entry.lfs else None,
        pointer_size=entry.lfs.pointer_size if entry.lfs else None,
    )


def _readable_repo(platform: Platform, request: Request, owner: str, name: str) -> Path:
    """The space's bare repository, or RepoNotFound when the caller may not read it."""
    with session_scope(platform.engine) as session:
        caller = caller_for_token(session, bearer_token(request))
        spaces.visible_space(session, caller, owner, name)
    return repo_path(platform.settings.repos_dir, owner, name)


def _revision_and_path(request: Request, skip: int) -> tuple[str, str]:
    """Split the raw path after `skip` segments into the revision and the path in the repo.

    `refs/pr/1` written out with its slashes is one revision too, as on the Hub.
    """
    raw: bytes = request.scope.get("raw_path") or request.url.path.encode()
    parts = [_decoded(part) for part in raw.split(b"/")[skip:]]
    if not parts or not parts[0]:
        raise RevisionNotFound("Invalid rev id: a revision is required")
    taken = 3 if parts[0] == "refs" and len(parts) >= 3 else 1
    revision, path = parts[:taken], parts[taken:]
    if None in revision:
        raise RevisionNotFound("Invalid rev id: it is not UTF-8")
    if None in path:
        raise EntryNotFound("Entry not found: the path is not UTF-8")
    return "/".join(revision), "/".join(path)  # type: ignore[arg-type]


def _decoded(part: bytes) -> str | None:
    try:
        return unquote_to_bytes(part).decode()
    except UnicodeDecodeError:
        return None


def _paths_request(content_type: str, body: bytes) -> tuple[list[str], bool]:
    """`paths` and `expand` from a form (what huggingface_hub sends) or a JSON body."""
    if content_type.startswith("application/json"):
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            raise InvalidInput("paths-info: the body is not JSON") from None
        if not isinstance(data, dict):
            raise InvalidInput("paths-info: the body must be an object with 'paths'")
        paths, expand = data.get("paths", []), data.get("expand", False)
        paths = [paths] if isinstance(paths, str) else paths
        if not isinstance(paths, list) or not all(isinstance(path, str) for path in paths):
            raise InvalidInput("paths-info: 'paths' must be a list of strings")
        return paths, expand is True or str(expand).lower() == "true"
    form = parse_qs(body.decode(errors="replace"), keep_blank_values=True)
    return form.get("paths", []), form.get("expand", ["false"])[-1].lower() in ("true", "1")


def _entry_json(entry: Entry, repo: Path, commit: str, expand: bool) -> dict:
    item: dict[str, Any] = {
        "type": entry.type,
        "oid": entry.oid,
        "size": entry.size,
        "path": entry.path,
    }
    if entry.lfs:
        item["lfs"] = {
            "oid": entry.lfs.oid,
            "size": entry.lfs.size,
            "pointerSize": entry.lfs.pointer_size,
        }
    if expand:
        last = reading.last_commit(repo, commit, entry.path)
        if last is not None:
            item["lastCommit"] = {
                "id": last.id,
                "title": last.title,
                "date": hub_timestamp(last.date),
            }
    return item


def _commit_json(info: CommitInfo, formatted: bool) -> dict:
    item: dict[str, Any] = {
        "id": info.id,
        "title": info.title,
        "message": info.message,
        "date": hub_timestamp(info.date),
        "authors": [{"user": info.author, "avatar": None}],
    }
    if formatted:
        item["formatted"] = {"title": info.title, "message": info.message}
    return item


def _ref_json(ref: Ref) -> dict:
    return {"name": ref.name, "ref": ref.ref, "targetCommit": ref.target_commit}


def _next_link(platform: Platform, owner: str, name: str, tail: str, query: dict[str, Any]) -> str:
    """An absolute, self-contained next-page URL: huggingface_hub sends no params of its own."""
    base = platform.settings.effective_public_url
    return f'<{base}/api/spaces/{owner}/{name}/{tail}?{urlencode(query)}>; rel="next"'


def _flag(value: bool) -> str:
    return "true" if value else "false"


class _Unsatisfiable(Exception):
    pass


def _requested_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The (first, last) byte of a single `bytes=` range; None serves the whole file."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first, dash, last = header.removeprefix("bytes=").strip().partition("-")
    if not dash or not (first or last) or not (first + last).isdigit():
        return None
    if not first:  # a suffix: the last N bytes
        if int(last) == 0 or size == 0:
            raise _Unsatisfiable
        return max(0, size - int(last)), size - 1
    start, end = int(first), min(int(last), size - 1) if last else size - 1
    if last and int(last) < start:
        return None  # not a valid range: RFC 9110 says to ignore it
    if start >= size:
        raise _Unsatisfiable
    return start, end


async def _stream(content: IO[bytes], length: int) -> AsyncIterator[bytes]:
    try:
        remaining = length
        while remaining > 0:
            chunk = await to_thread.run_sync(content.read, min(CHUNK, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
            yield chunk
    finally:
        await to_thread.run_sync(content.close)


def _media_type(path: str) -> str:
    guessed = mimetypes.guess_type(PurePosixPath(path).name)[0] or "application/octet-stream"
    if guessed.startswith(TEXT_TYPES) or guessed.endswith(("+xml", "+json")):
        return "text/plain; charset=utf-8"
    return guessed if guessed.startswith(INLINE_TYPES) else "application/octet-stream"


def _disposition(path: str) -> str:
    filename = PurePosixPath(path).name
    fallback = filename.encode("ascii", "replace").decode().replace('"', "_")
    return f"inline; filename*=UTF-8''{quote(filename)}; filename=\"{fallback}\""

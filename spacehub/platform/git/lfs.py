"""The Git LFS server API at /spaces/{owner}/{name}[.git]/info/lfs/… (batch, basic transfer).

Same tokens and visibility rules as git over HTTP. Upload, download and verify links carry
their own short-lived credential (an HMAC-signed query naming the action, space, oid and
size), because huggingface_hub PUTs to `upload.href` with no auth header at all; the
caller's token never appears in an answer.
"""

import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Literal
from urllib.parse import urlencode

from anyio import to_thread
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, ValidationError
from sqlmodel import Session
from starlette.requests import ClientDisconnect

from spacehub.core.errors import NotFound, SpacehubError
from spacehub.platform.context import Platform
from spacehub.platform.db import session_scope
from spacehub.platform.deps import PlatformDep
from spacehub.platform.errors import status_of
from spacehub.platform.git import lfs_store
from spacehub.platform.git.http_backend import basic_caller, push_limit_message
from spacehub.platform.git.repos import repo_path
from spacehub.platform.git.transport import NOT_FOUND, authorize_git
from spacehub.platform.services import spaces

router = APIRouter()
LFS_MEDIA_TYPE = "application/vnd.git-lfs+json"
PREFIX = "/spaces/{owner}/{name}/info/lfs"
LINK_SECONDS = 3600
WRITE_CHUNK = 1024 * 1024
MAX_BATCH_OBJECTS = 1000
Action = Literal["upload", "download", "verify"]


class ObjectSpec(BaseModel):
    oid: str
    size: int


class BatchRequest(BaseModel):
    operation: Literal["upload", "download"]
    transfers: list[str] = ["basic"]
    objects: list[ObjectSpec]
    hash_algo: str = "sha256"


def lfs_answer(body: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body), status_code=status, headers=headers, media_type=LFS_MEDIA_TYPE
    )


def lfs_error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """An error in the LFS shape; git-lfs prints `message` to its user."""
    if status == 401:
        challenge = 'Basic realm="spacehub"'
        headers = {**(headers or {}), "LFS-Authenticate": challenge, "WWW-Authenticate": challenge}
    return lfs_answer({"message": message}, status, headers)


def _object_error(spec: ObjectSpec, code: int, message: str) -> dict:
    return {"oid": spec.oid, "size": spec.size, "error": {"code": code, "message": message}}


# -- access ---------------------------------------------------------------------------------


def _authorize(
    session: Session, request: Request, owner: str, name: str, writing: bool
) -> int | Response:
    """The space's id when the caller may read (or write) it, else the LFS error answer."""
    try:
        caller = basic_caller(session, request)
        space = authorize_git(session, caller, spaces.find_space(session, owner, name), writing)
    except SpacehubError as error:
        code = {"X-Error-Code": error.code} if isinstance(error, NotFound) else None
        return lfs_error(status_of(error), error.message, code)
    assert space.id is not None
    return space.id


def _link_key(platform: Platform) -> bytes:
    # A key of its own, derived so that no webhook signature can ever pass as a link's.
    return hmac.new(platform.webhook_secret, b"spacehub git-lfs links", hashlib.sha256).digest()


def _signature(
    platform: Platform, action: Action, space_id: int, oid: str, size: int, expires: int
) -> str:
    message = f"{action}\n{space_id}\n{oid}\n{size}\n{expires}".encode()
    return hmac.new(_link_key(platform), message, hashlib.sha256).hexdigest()


def _link(
    platform: Platform, action: Action, owner: str, name: str, space_id: int, spec: ObjectSpec
) -> dict:
    expires = int(time.time()) + LINK_SECONDS
    query = urlencode(
        {
            "size": spec.size,
            "space": space_id,
            "expires": expires,
            "signature": _signature(platform, action, space_id, spec.oid, spec.size, expires),
        }
    )
    base = f"{platform.settings.effective_public_url}/spaces/{owner}/{name}.git/info/lfs"
    path = "verify" if action == "verify" else f"objects/{spec.oid}"
    return {"href": f"{base}/{path}?{query}", "expires_in": LINK_SECONDS}


def _linked_object(
    platform: Platform, request: Request, action: Action, owner: str, name: str, oid: str
) -> tuple[Path, int] | Response:
    """(bare repo, size) from a link `_link` made for `action` on `oid`, else the refusal."""
    query = request.query_params
    try:
        size, space_id, expires = (int(query[key]) for key in ("size", "space", "expires"))
        given = query["signature"]
    except (KeyError, ValueError):
        return lfs_error(401, "this LFS link has no valid signature: ask the batch API for one")
    expected = _signature(platform, action, space_id, oid, size, expires)
    if not hmac.compare_digest(expected, given):
        return lfs_error(403, "this LFS link's signature does not match")
    if expires < time.time():
        return lfs_error(403, "this LFS link has expired: run the push or download again")
    name = name.removesuffix(".git")
    with session_scope(platform.engine) as session:
        space = spaces.find_space(session, owner, name)
        if space is None or space.id != space_id:  # deleted (or deleted and made anew) since
            return lfs_error(404, NOT_FOUND)
    return repo_path(platform.settings.repos_dir, owner, name), size


# -- batch ----------------------------------------------------------------------------------


@router.post(PREFIX + "/objects/batch")
async def lfs_batch(owner: str, name: str, request: Request, platform: PlatformDep) -> Response:
    body = await request.body()
    return await to_thread.run_sync(answer_batch, platform, request, owner, name, body)


def answer_batch(
    platform: Platform, request: Request, owner: str, name: str, body: bytes
) -> Response:
    name = name.removesuffix(".git")
    try:
        batch = BatchRequest.model_validate_json(body)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return lfs_error(422, f"not a Git LFS batch request: {where}: {first['msg']}")
    if batch.hash_algo != "sha256":
        return lfs_error(409, f"unsupported hash algorithm {batch.hash_algo!r}: use sha256")
    if len(batch.objects) > MAX_BATCH_OBJECTS:
        return lfs_error(413, f"at most {MAX_BATCH_OBJECTS} objects per batch request")
    uploading = batch.operation == "upload"
    with session_scope(platform.engine) as session:
        allowed = _authorize(session, request, owner, name, writing=uploading)
    if isinstance(allowed, Response):
        return allowed
    repo = repo_path(platform.settings.repos_dir, owner, name)
    answer = _upload_objects if uploading else _download_objects
    objects = answer(platform, owner, name, allowed, repo, batch.objects)
    return lfs_answer({"transfer": "basic", "objects": objects, "hash_algo": "sha256"})


def _invalid(spec: ObjectSpec) -> str | None:
    if not lfs_store.OID.fullmatch(spec.oid):
        return f"not a sha256 oid (64 lower-case hex digits): {spec.oid!r}"
    if spec.size < 0:
        return f"negative size {spec.size}"
    return None


def _upload_objects(
    platform: Platform, owner: str, name: str, space_id: int, repo: Path, specs: list[ObjectSpec]
) -> list[dict]:
    data_dir = platform.settings.data_dir
    limit = platform.settings.max_push_bytes
    # Stored bytes of another space are not this space's until the uploader proves it holds
    # them (uploads them once): knowing an oid must not be enough to read a file.
    problems = [_invalid(spec) for spec in specs]
    needed = [
        problem is None and not lfs_store.can_read_object(data_dir, repo, spec.oid, spec.size)
        for spec, problem in zip(specs, problems, strict=True)
    ]
    over_limit = sum(spec.size for spec, need in zip(specs, needed, strict=True) if need) > limit
    objects = []
    for spec, problem, need in zip(specs, problems, needed, strict=True):
        if problem:
            objects.append(_object_error(spec, 422, problem))
        elif not need:
            objects.append({"oid": spec.oid, "size": spec.size})
        elif over_limit:
            objects.append(_object_error(spec, 413, push_limit_message(limit)))
        else:
            objects.append(
                {
                    "oid": spec.oid,
                    "size": spec.size,
                    "authenticated": True,
                    "actions": {
                        "upload": _link(platform, "upload", owner, name, space_id, spec),
                        "verify": _link(platform, "verify", owner, name, space_id, spec),
                    },
                }
            )
    return objects


def _download_objects(
    platform: Platform, owner: str, name: str, space_id: int, repo: Path, specs: list[ObjectSpec]
) -> list[dict]:
    data_dir = platform.settings.data_dir
    objects = []
    for spec in specs:
        problem = _invalid(spec)
        if problem:
            objects.append(_object_error(spec, 422, problem))
        elif not lfs_store.can_read_object(data_dir, repo, spec.oid, spec.size):
            objects.append(_object_error(spec, 404, "Object does not exist"))
        else:
            link = _link(platform, "download", owner, name, space_id, spec)
            objects.append(
                {
                    "oid": spec.oid,
                    "size": spec.size,
                    "authenticated": True,
                    "actions": {"download": link},
                }
            )
    return objects


# -- transfer -------------------------------------------------------------------------------


@router.put(PREFIX + "/objects/{oid}")
async def lfs_upload(
    owner: str, name: str, oid: str, request: Request, platform: PlatformDep
) -> Response:
    """Store one object, streamed to disk in a thread and checked against its oid and size."""
    linked = await to_thread.run_sync(_linked_object, platform, request, "upload", owner, name, oid)
    if isinstance(linked, Response):
        return linked
    repo, size = linked
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) != size:
        return lfs_error(422, f"object {oid} is {size} bytes, the request body {declared}")
    if size > platform.settings.max_push_bytes:
        return lfs_error(413, push_limit_message(platform.settings.max_push_bytes))
    data_dir = platform.settings.data_dir
    writer = await to_thread.run_sync(lfs_store.ObjectWriter, data_dir, oid, size)
    try:
        pending = bytearray()
        async for chunk in request.stream():
            pending += chunk
            if len(pending) >= WRITE_CHUNK:
                await to_thread.run_sync(writer.write, bytes(pending))
                pending.clear()
        await to_thread.run_sync(writer.write, bytes(pending))
        await to_thread.run_sync(writer.commit)
    except lfs_store.BadObject as error:
        return lfs_error(422, str(error))
    except ClientDisconnect:
        writer.abort()
        return lfs_error(400, "the upload ended before the whole object arrived")
    except BaseException:
        # Also on cancellation, where no further await would run: close and unlink are quick.
        writer.abort()
        raise
    await to_thread.run_sync(lfs_store.grant_object, repo, oid)
    return Response(status_code=200)


@router.get(PREFIX + "/objects/{oid}")
def lfs_download(
    owner: str, name: str, oid: str, request: Request, platform: PlatformDep
) -> Response:
    linked = _linked_object(platform, request, "download", owner, name, oid)
    if isinstance(linked, Response):
        return linked
    repo, size = linked
    data_dir = platform.settings.data_dir
    if not lfs_store.can_read_object(data_dir, repo, oid, size):
        return lfs_error(404, "Object does not exist")
    return FileResponse(lfs_store.object_path(data_dir, oid), media_type="application/octet-stream")


@router.post(PREFIX + "/verify")
async def lfs_verify(owner: str, name: str, request: Request, platform: PlatformDep) -> Response:
    try:
        spec = ObjectSpec.model_validate_json(await request.body())
    except ValidationError:
        return lfs_error(422, 'a verify request is {"oid": …, "size": …}')
    return await to_thread.run_sync(answer_verify, platform, request, owner, name, spec)


def answer_verify(
    platform: Platform, request: Request, owner: str, name: str, spec: ObjectSpec
) -> Response:
    linked = _linked_object(platform, request, "verify", owner, name, spec.oid)
    if isinstance(linked, Response):
        return linked
    repo, size = linked
    if size != spec.size:
        return lfs_error(422, f"object {spec.oid} was announced with {size} bytes, not {spec.size}")
    if not lfs_store.can_read_object(platform.settings.data_dir, repo, spec.oid, size):
        return lfs_error(404, f"object {spec.oid} was not uploaded")
    return lfs_answer({})


# -- locks: a server without file locking ---------------------------------------------------
# git-lfs asks POST …/locks/verify before each push; 501 makes it record
# `lfs.<url>.locksverify=false` and go on without a word (git-lfs 3.3; a 200 made it print a
# hint to turn lock verification on).
NO_LOCKING = "file locking is not supported by this server"


def _no_locking(platform: Platform, request: Request, owner: str, name: str) -> Response:
    with session_scope(platform.engine) as session:
        allowed = _authorize(session, request, owner, name.removesuffix(".git"), writing=False)
    return allowed if isinstance(allowed, Response) else lfs_error(501, NO_LOCKING)


@router.get(PREFIX + "/locks")
def lfs_list_locks(owner: str, name: str, request: Request, platform: PlatformDep) -> Response:
    return _no_locking(platform, request, owner, name)


@router.post(PREFIX + "/locks/verify")
def lfs_verify_locks(owner: str, name: str, request: Request, platform: PlatformDep) -> Response:
    return _no_locking(platform, request, owner, name)


@router.post(PREFIX + "/locks")
def lfs_create_lock(owner: str, name: str, request: Request, platform: PlatformDep) -> Response:
    return _no_locking(platform, request, owner, name)


@router.post(PREFIX + "/locks/{lock_id}/unlock")
def lfs_unlock(
    owner: str, name: str, lock_id: str, request: Request, platform: PlatformDep
) -> Response:
    return _no_locking(platform, request, owner, name)

"""Routes of the Hub's API for spaces: identity, repos, spaces, runtime, secrets, variables."""

from pathlib import Path
from typing import Annotated, Any, Literal

from anyio import to_thread
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from spacehub.core.errors import InvalidConfig, InvalidInput, RepoNotFound, Unauthorized
from spacehub.core.hardware import flavor
from spacehub.core.space_config import SDKS, parse_space_config
from spacehub.platform import lifecycle
from spacehub.platform.api.fields import (
    MAX_PAGE,
    MAX_QUERY_CHARS,
    Description,
    Key,
    SleepSeconds,
    Value,
)
from spacehub.platform.api.shapes import hardware_json, runtime_json, space_json, space_url
from spacehub.platform.build_logs import hub_timestamp
from spacehub.platform.db import session_scope
from spacehub.platform.deps import BriefCallerDep, CallerDep, PlatformDep, SessionDep
from spacehub.platform.git import reading
from spacehub.platform.git.repos import repo_path
from spacehub.platform.models import Space, User
from spacehub.platform.services import accounts, builds, secrets, spaces
from spacehub.platform.services.accounts import Caller

router = APIRouter(prefix="/api")

# What a space's `expand=` may name: the Hub's list (huggingface_hub's ExpandSpaceProperty_T).
SPACE_EXPAND_PROPERTIES = (
    *("author", "cardData", "createdAt", "datasets", "disabled", "lastModified", "likes"),
    *("models", "private", "region", "resourceGroup", "runtime", "sdk", "sha", "siblings"),
    *("subdomain", "tags", "trendingScore", "usedStorage"),
)
Expand = Annotated[list[str] | None, Query()]


class KeyValue(BaseModel):
    key: Key
    value: Value = ""
    description: Description | None = None


class CreateRepo(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str
    organization: str | None = None
    type: Literal["space"] = "space"
    sdk: str | None = None
    private: bool | None = None
    visibility: Literal["public", "private", "protected"] | None = None
    hardware: str | None = None
    sleep_time: SleepSeconds | None = Field(default=None, alias="sleepTimeSeconds")
    storage: Literal["small", "medium", "large"] | None = Field(default=None, alias="storageTier")
    secrets: list[KeyValue] = []
    variables: list[KeyValue] = []


class DeleteRepo(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str
    organization: str | None = None
    type: Literal["space"] = "space"


class DeleteKey(BaseModel):
    key: Key


class SleepTime(BaseModel):
    seconds: SleepSeconds


class Hardware(BaseModel):
    # gradio_client's Client.duplicate sends null when the source space runs on no hardware
    # (paused, sleeping, never built): it keeps the space's flavor and sets only the sleep time.
    flavor: Annotated[str, Field(max_length=MAX_QUERY_CHARS)] | None
    sleep_time: SleepSeconds | None = Field(default=None, alias="sleepTimeSeconds")


class Storage(BaseModel):
    tier: Literal["small", "medium", "large"]


class CancelledBuilds(BaseModel):
    id: int = Field(description="The build cancelled: the running one, else the queued one.")
    commit: str
    cancelled: list[int] = Field(description="Every build cancelled: running and queued.")


class ValidateYaml(BaseModel):
    content: str
    repoType: str = "space"


@router.get("/whoami-v2")
def whoami(caller: CallerDep, session: SessionDep) -> dict:
    if caller.user is None:
        raise Unauthorized(accounts.INVALID_TOKEN)
    return {
        "type": "user",
        "id": str(caller.user.id),
        "name": caller.user.name,
        "fullname": caller.user.fullname,
        "isAdmin": caller.user.is_admin,
        "orgs": [
            {"type": "org", "name": org.name, "fullname": org.fullname}
            for org in accounts.org_names(session, caller.user)
        ],
        "auth": {
            "type": "access_token",
            "accessToken": {"displayName": caller.token_name, "role": str(caller.role)},
        },
    }


@router.post("/repos/create")
def create_repo(body: CreateRepo, caller: CallerDep, session: SessionDep, platform: PlatformDep):
    owner = _acting_owner(session, caller, body.organization)
    private = body.visibility in ("private", "protected") if body.visibility else bool(body.private)
    url = space_url(platform.settings, owner.name, body.name)
    if spaces.find_space(session, owner.name, body.name) is not None:
        return JSONResponse({"error": "You already created this space repo", "url": url}, 409)
    if body.sdk is None:
        raise InvalidInput(f"sdk is required for a space: one of {', '.join(SDKS)}")
    space = lifecycle.create_space(
        platform,
        session,
        owner,
        body.name,
        creator=caller.name,
        sdk=body.sdk,
        private=private,
        hardware=body.hardware,
        sleep_time=body.sleep_time,
        storage=body.storage,
    )
    for item in body.secrets:
        secrets.upsert_secret(
            session, platform.secret_box, space, item.key, item.value, item.description
        )
    for item in body.variables:
        secrets.upsert_variable(session, space, item.key, item.value, item.description)
    return {"url": url, "name": f"{owner.name}/{space.name}", "id": str(space.id)}


@router.delete("/repos/delete")
async def delete_repo(body: DeleteRepo, caller: BriefCallerDep, platform: PlatformDep):
    """No session is held while the space's instances stop: each step opens its own."""

    def find() -> int:
        with session_scope(platform.engine) as session:
            owner = _acting_owner(session, caller, body.organization)
            space = spaces.visible_space(session, caller, owner.name, body.name)
            assert space.id is not None
            return space.id

    await lifecycle.delete_space(platform, await to_thread.run_sync(find))
    return Response("OK", media_type="text/plain")


@router.get("/spaces")
def list_spaces(
    request: Request,
    caller: CallerDep,
    session: SessionDep,
    platform: PlatformDep,
    author: Annotated[str | None, Query(max_length=MAX_QUERY_CHARS)] = None,
    search: Annotated[str | None, Query(max_length=MAX_QUERY_CHARS)] = None,
    full: bool = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    p: Annotated[int, Query(ge=0, le=MAX_PAGE)] = 0,
    expand: Expand = None,
):
    check_expand(expand)
    rows = spaces.list_visible_spaces(
        session, caller, author=author, search=search, offset=p * limit, limit=limit + 1
    )
    items = [
        space_json(platform.settings, space, owner, full=full) for space, owner in rows[:limit]
    ]
    headers = {}
    if len(rows) > limit:
        next_url = request.url.include_query_params(p=p + 1)
        base = platform.settings.effective_public_url
        headers["Link"] = f'<{base}{next_url.path}?{next_url.query}>; rel="next"'
    return JSONResponse(items, headers=headers)


def check_expand(expand: list[str] | None) -> None:
    """Every property is always answered; an unknown one is a 400 naming the known ones, as on
    the Hub (huggingface_hub's tests read the list from that message)."""
    unknown = [value for value in expand or () if value not in SPACE_EXPAND_PROPERTIES]
    if unknown:
        known = "|".join(f'"{name}"' for name in SPACE_EXPAND_PROPERTIES)
        raise InvalidInput(f"invalid expand value {unknown[0][:100]!r}: expected one of {known}")


@router.get("/spaces/hardware")
def list_hardware() -> list[dict]:
    return hardware_json()


@router.get("/spaces/{owner}/{name}")
@router.get("/spaces/{owner}/{name}/revision/{revision:path}")
def space_info(
    owner: str,
    name: str,
    caller: CallerDep,
    session: SessionDep,
    platform: PlatformDep,
    revision: str | None = None,
    blobs: bool = False,
    expand: Expand = None,
):
    """The space at `revision` (by default main as last pushed): its sha and its files."""
    check_expand(expand)
    space = spaces.visible_space(session, caller, owner, name)
    answer = space_json(platform.settings, space, spaces.owner_of(session, space))
    repo = repo_path(platform.settings.repos_dir, owner, name)
    commit = space.head_commit
    if revision is not None:
        commit = reading.resolve_revision(repo, revision)
    files = _files(repo, commit) if commit else []
    answer["sha"] = commit
    answer["siblings"] = [_sibling(entry, blobs) for entry in files]
    return answer


@router.get("/spaces/{owner}/{name}/runtime")
def space_runtime(
    owner: str, name: str, caller: CallerDep, session: SessionDep, platform: PlatformDep
):
    return runtime_json(platform.settings, spaces.visible_space(session, caller, owner, name))


@router.post("/spaces/{owner}/{name}/restart")
async def restart(
    owner: str,
    name: str,
    caller: CallerDep,
    session: SessionDep,
    platform: PlatformDep,
    factory: bool = False,
):
    space = await to_thread.run_sync(_writable_space, session, caller, owner, name)
    await lifecycle.restart_space(platform, session, space, factory)
    return runtime_json(platform.settings, space)


@router.post("/spaces/{owner}/{name}/pause")
async def pause(owner: str, name: str, caller: BriefCallerDep, platform: PlatformDep):
    """PAUSED once the instance has stopped; no session is held while it stops."""

    def find() -> int:
        with session_scope(platform.engine) as session:
            space = _writable_space(session, caller, owner, name)
            assert space.id is not None
            return space.id

    def answer(space_row_id: int) -> dict:
        with session_scope(platform.engine) as session:
            space = session.get(Space, space_row_id)
            if space is None:
                raise RepoNotFound("Repository not found")
            return runtime_json(platform.settings, space)

    space_row_id = await to_thread.run_sync(find)
    await lifecycle.pause_space(platform, space_row_id)
    return await to_thread.run_sync(answer, space_row_id)


@router.post(
    "/spaces/{owner}/{name}/builds/cancel",
    response_model=CancelledBuilds,
    summary="Cancel the space's build",
    responses={409: {"description": "No build of the space is queued or running."}},
)
def cancel_build(owner: str, name: str, caller: CallerDep, session: SessionDep) -> CancelledBuilds:
    """A queued build never starts; a running one stops within a second or so and ends
    BUILD_ERROR "build cancelled" (or the space keeps RUNNING its live release)."""
    space = _writable_space(session, caller, owner, name)
    cancelled = builds.cancel(session, space)
    return CancelledBuilds(
        id=cancelled[0].id or 0,
        commit=cancelled[0].commit,
        cancelled=[build.id or 0 for build in cancelled],
    )


@router.post("/spaces/{owner}/{name}/sleeptime")
def set_sleep_time(
    owner: str,
    name: str,
    body: SleepTime,
    caller: CallerDep,
    session: SessionDep,
    platform: PlatformDep,
):
    space = _writable_space(session, caller, owner, name)
    space.sleep_time = body.seconds
    _save(session, space)
    return runtime_json(platform.settings, space)


@router.post("/spaces/{owner}/{name}/hardware")
def request_hardware(
    owner: str,
    name: str,
    body: Hardware,
    caller: CallerDep,
    session: SessionDep,
    platform: PlatformDep,
):
    space = _writable_space(session, caller, owner, name)
    if body.flavor is not None:
        space.hardware = flavor(body.flavor).name
    if body.sleep_time is not None:
        space.sleep_time = body.sleep_time
    _save(session, space)
    return runtime_json(platform.settings, space)


@router.post("/spaces/{owner}/{name}/storage")
def request_storage(
    owner: str,
    name: str,
    body: Storage,
    caller: CallerDep,
    session: SessionDep,
    platform: PlatformDep,
):
    """Persistent storage: a /data volume that outlives deploys, mounted from the next start."""
    space = _writable_space(session, caller, owner, name)
    space.storage = body.tier
    _save(session, space)
    return runtime_json(platform.settings, space)


@router.get("/spaces/{owner}/{name}/secrets")
def get_secrets(owner: str, name: str, caller: CallerDep, session: SessionDep) -> dict:
    space = _writable_space(session, caller, owner, name)
    return {
        row.key: {"description": row.description, "updatedAt": hub_timestamp(row.updated_at)}
        for row in secrets.list_secrets(session, space)
    }


@router.post("/spaces/{owner}/{name}/secrets")
def add_secret(
    owner: str,
    name: str,
    body: KeyValue,
    caller: CallerDep,
    session: SessionDep,
    platform: PlatformDep,
) -> dict:
    space = _writable_space(session, caller, owner, name)
    secrets.upsert_secret(
        session, platform.secret_box, space, body.key, body.value, body.description
    )
    return {}


@router.delete("/spaces/{owner}/{name}/secrets")
def delete_secret(
    owner: str, name: str, body: DeleteKey, caller: CallerDep, session: SessionDep
) -> dict:
    secrets.delete_secret(session, _writable_space(session, caller, owner, name), body.key)
    return {}


@router.get("/spaces/{owner}/{name}/variables")
def get_variables(owner: str, name: str, caller: CallerDep, session: SessionDep) -> dict:
    return _variables(session, _writable_space(session, caller, owner, name))


@router.post("/spaces/{owner}/{name}/variables")
def add_variable(
    owner: str, name: str, body: KeyValue, caller: CallerDep, session: SessionDep
) -> dict:
    space = _writable_space(session, caller, owner, name)
    secrets.upsert_variable(session, space, body.key, body.value, body.description)
    return _variables(session, space)


@router.delete("/spaces/{owner}/{name}/variables")
def delete_variable(
    owner: str, name: str, body: DeleteKey, caller: CallerDep, session: SessionDep
) -> dict:
    space = _writable_space(session, caller, owner, name)
    secrets.delete_variable(session, space, body.key)
    return _variables(session, space)


@router.post("/validate-yaml")
def validate_yaml(body: ValidateYaml) -> JSONResponse:
    try:
        parse_space_config(body.content)
    except InvalidConfig as error:
        return JSONResponse({"errors": [{"message": error.message}]}, 400)
    return JSONResponse({"warnings": []})


@router.get("/agent-harnesses")
def agent_harnesses() -> dict[str, Any]:
    return {"standardEnvVars": [], "harnesses": {}}


@router.api_route("/telemetry/{rest:path}", methods=["GET", "HEAD", "POST"])
def telemetry(rest: str) -> Response:
    return Response(status_code=204)


def _acting_owner(session: Session, caller: Caller, organization: str | None) -> User:
    if caller.user is None:
        raise Unauthorized("a token is required: send it as 'Authorization: Bearer <token>'")
    owner = accounts.user_by_name(session, organization) if organization else caller.user
    accounts.require_write(session, caller, owner)
    return owner


def _writable_space(session: Session, caller: Caller, owner: str, name: str) -> Space:
    space = spaces.visible_space(session, caller, owner, name)
    accounts.require_write(session, caller, spaces.owner_of(session, space))
    return space


def _variables(session: Session, space: Space) -> dict:
    return {
        row.key: {
            "value": row.value,
            "description": row.description,
            "updatedAt": hub_timestamp(row.updated_at),
        }
        for row in secrets.list_variables(session, space)
    }


def _files(repo: Path, commit: str) -> list[reading.Entry]:
    return [
        entry for entry in reading.list_tree(repo, commit, recursive=True) if entry.type == "file"
    ]


def _sibling(entry: reading.Entry, blobs: bool) -> dict:
    if not blobs:
        return {"rfilename": entry.path}
    sibling: dict = {"rfilename": entry.path, "size": entry.size, "blobId": entry.oid}
    if entry.lfs:
        sibling["lfs"] = {
            "size": entry.lfs.size,
            "sha256": entry.lfs.oid,
            "pointerSize": entry.lfs.pointer_size,
        }
    return sibling


def _save(session: Session, space: Space) -> None:
    session.add(space)
    session.commit()
    session.refresh(space)

"""Routes of the Hub's API that manage a space's repository: duplicate, settings, move."""

from typing import Literal

from anyio import to_thread
from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from spacehub.core.errors import InvalidInput, Unauthorized
from spacehub.platform import lifecycle
from spacehub.platform.api.fields import SleepSeconds
from spacehub.platform.api.hub import KeyValue
from spacehub.platform.api.shapes import space_url
from spacehub.platform.deps import CallerDep, PlatformDep, SessionDep
from spacehub.platform.errors import error_response
from spacehub.platform.models import Space, User
from spacehub.platform.services import accounts, spaces

router = APIRouter(prefix="/api")

Visibility = Literal["public", "private", "protected"]


class DuplicateRepo(BaseModel):
    """The Hub's body; 0.x clients send `private` and `storageTier`, newer ones `visibility`."""

    model_config = ConfigDict(extra="ignore")

    repository: str
    private: bool | None = None
    visibility: Visibility | None = None
    hardware: str | None = None
    sleep_time: SleepSeconds | None = Field(default=None, alias="sleepTimeSeconds")
    storage: Literal["small", "medium", "large"] | None = Field(default=None, alias="storageTier")
    secrets: list[KeyValue] = []
    variables: list[KeyValue] = []


class RepoSettings(BaseModel):
    model_config = ConfigDict(extra="ignore")

    private: bool | None = None
    visibility: Visibility | None = None
    gated: Literal["auto", "manual"] | bool | None = None


class MoveRepo(BaseModel):
    model_config = ConfigDict(extra="ignore")

    from_repo: str = Field(alias="fromRepo")
    to_repo: str = Field(alias="toRepo")
    type: Literal["space"] = "space"


@router.post("/spaces/{owner}/{name}/duplicate")
async def duplicate_repo(
    owner: str,
    name: str,
    body: DuplicateRepo,
    caller: CallerDep,
    session: SessionDep,
    platform: PlatformDep,
):
    target_owner, _, target_name = body.repository.rpartition("/")

    def find() -> tuple[Space, User, bool]:
        source = spaces.visible_space(session, caller, owner, name)
        if caller.user is None:
            raise Unauthorized("a token is required: send it as 'Authorization: Bearer <token>'")
        new_owner = accounts.user_by_name(session, target_owner) if target_owner else caller.user
        accounts.require_write(session, caller, new_owner)
        taken = spaces.find_space(session, new_owner.name, target_name) is not None
        return source, new_owner, taken

    source, new_owner, taken = await to_thread.run_sync(find)  # SQL: off the event loop
    url = space_url(platform.settings, new_owner.name, target_name)
    if taken:
        return error_response(409, "You already created this space repo", url=url)
    options = lifecycle.DuplicateOptions(
        private=_private(body.visibility, body.private, default=source.private),
        hardware=body.hardware,
        sleep_time=body.sleep_time,
        storage=body.storage,
        secrets=tuple((item.key, item.value, item.description) for item in body.secrets),
        variables=tuple((item.key, item.value, item.description) for item in body.variables),
    )
    await lifecycle.duplicate_space(platform, session, source, new_owner, target_name, options)
    return {"url": url, "filesCopyPending": False}


@router.put("/spaces/{owner}/{name}/settings")
def update_repo_settings(
    owner: str,
    name: str,
    body: RepoSettings,
    caller: CallerDep,
    session: SessionDep,
    platform: PlatformDep,
) -> dict:
    space = spaces.visible_space(session, caller, owner, name)
    accounts.require_write(session, caller, spaces.owner_of(session, space))
    if body.gated not in (None, False):
        raise InvalidInput("gated access is for models and datasets: a space cannot be gated")
    if body.visibility is not None or body.private is not None:
        private = _private(body.visibility, body.private, default=space.private)
        lifecycle.set_visibility(platform, session, space, private)
    return {}


@router.post("/repos/move")
async def move_repo(
    body: MoveRepo, caller: CallerDep, session: SessionDep, platform: PlatformDep
) -> dict:
    from_owner, from_name = _split_id(body.from_repo)
    to_owner, to_name = _split_id(body.to_repo)

    def find() -> tuple[Space, User]:
        space = spaces.visible_space(session, caller, from_owner, from_name)
        accounts.require_write(session, caller, spaces.owner_of(session, space))
        new_owner = accounts.user_by_name(session, to_owner)
        accounts.require_write(session, caller, new_owner)
        return space, new_owner

    space, new_owner = await to_thread.run_sync(find)  # SQL: off the event loop
    await lifecycle.move_space(platform, session, space, new_owner, to_name)
    return {}


def _private(visibility: Visibility | None, private: bool | None, default: bool) -> bool:
    """`visibility` (1.x+ clients) wins over `private` (0.x); neither keeps `default`."""
    if visibility is not None:
        return visibility != "public"
    return default if private is None else private


def _split_id(repo_id: str) -> tuple[str, str]:
    owner, _, name = repo_id.partition("/")
    if not owner or not name:
        raise InvalidInput(f"{repo_id!r} is not a repository id of the form 'owner/name'")
    return owner, name

"""Admin routes (not the Hub's dialect): accounts a team manages, and what the data dir uses.

Platform admins only, except an org's members, which the org's own admins may manage too.
"""

from datetime import datetime
from typing import Annotated

from anyio import to_thread
from fastapi import APIRouter, Query, Request, Response
from fastapi import Path as PathParam
from pydantic import BaseModel, Field
from sqlmodel import Session

from spacehub.platform.api.fields import MAX_QUERY_CHARS, MAX_ROW_ID
from spacehub.platform.build_logs import hub_timestamp
from spacehub.platform.context import Platform
from spacehub.platform.db import session_scope
from spacehub.platform.deps import CallerDep, PlatformDep, SessionDep, bearer_token
from spacehub.platform.models import MemberRole, Token, TokenRole, User
from spacehub.platform.services import accounts, builds
from spacehub.platform.services.disk import measure_disk

router = APIRouter(prefix="/api/admin")


@router.get("/disk")
async def disk_usage(request: Request, platform: PlatformDep) -> dict:
    """Bytes used by repositories, LFS objects, releases, logs and the database; releases and
    images kept. The walk runs in a thread, with no database session held meanwhile."""
    await to_thread.run_sync(_require_admin, platform, bearer_token(request))
    usage = await to_thread.run_sync(measure_disk, platform)
    return {
        "bytes": {
            "repos": usage.repos,
            "lfs": usage.lfs,
            "releases": usage.releases,
            "logs": usage.logs,
            "database": usage.database,
            "total": usage.total,
        },
        "releases": usage.release_count,
        "images": usage.image_count,
        "keepReleases": platform.settings.keep_releases,
    }


def _require_admin(platform: Platform, token: str | None) -> None:
    with session_scope(platform.engine) as session:
        accounts.require_admin(accounts.caller_for_token(session, token))


# Accounts: users, organisations and their members, tokens. The same service functions serve
# `spacehub users|orgs|tokens` against the data dir.

Fullname = Annotated[
    str, Field(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$", examples=["Ada Lovelace"])
]
Password = Annotated[str, Field(max_length=accounts.MAX_PASSWORD_LENGTH)]
TokenName = Annotated[
    str, Field(max_length=accounts.TOKEN_NAME_LENGTH, pattern=r"^[^\x00-\x1f\x7f]*$")
]
Name = Annotated[str, PathParam(max_length=MAX_QUERY_CHARS)]
RowId = Annotated[int, PathParam(ge=1, le=MAX_ROW_ID)]


class UserInfo(BaseModel):
    name: str
    fullname: str
    isAdmin: bool
    disabled: bool
    hasPassword: bool
    createdAt: str


class MemberInfo(BaseModel):
    name: str
    role: MemberRole


class OrgInfo(BaseModel):
    name: str
    fullname: str
    createdAt: str
    members: list[MemberInfo]


class TokenInfo(BaseModel):
    """A token as listed: never its value."""

    id: int
    user: str
    displayName: str
    role: TokenRole
    createdAt: str
    expiresAt: str | None
    lastUsedAt: str | None


class WorkerInfo(BaseModel):
    """A process that runs builds (`serve` or a `spacehub worker`) and its last heartbeat."""

    name: str
    startedAt: str
    heartbeatAt: str


class QueuedBuildInfo(BaseModel):
    id: int
    space: str
    commit: str
    status: str
    claimedBy: str | None = Field(description="`host:pid:index` of the worker running it")


class BuildQueueInfo(BaseModel):
    workers: list[WorkerInfo]
    builds: list[QueuedBuildInfo]


class NewTokenInfo(TokenInfo):
    token: str = Field(description="the token's value: shown in this answer only")


class NewUser(BaseModel):
    name: str = Field(max_length=MAX_QUERY_CHARS)
    fullname: Fullname = ""
    password: Password | None = Field(
        default=None, description="omitted: the user signs in with tokens only"
    )
    isAdmin: bool = False


class UserChange(BaseModel):
    fullname: Fullname | None = None
    isAdmin: bool | None = None
    disabled: bool | None = Field(
        default=None, description="a disabled user's tokens, keys and password stop working"
    )
    password: Password | None = None


class NewOrg(BaseModel):
    name: str = Field(max_length=MAX_QUERY_CHARS)
    fullname: Fullname = ""


class NewMember(BaseModel):
    user: str = Field(max_length=MAX_QUERY_CHARS)
    role: MemberRole = MemberRole.WRITE


class RoleChange(BaseModel):
    role: MemberRole


class NewToken(BaseModel):
    displayName: TokenName = ""
    role: TokenRole = TokenRole.READ
    expiresAt: datetime | None = Field(
        default=None, description="when the token stops working (ISO 8601; UTC if no zone)"
    )


def user_info(user: User) -> UserInfo:
    return UserInfo(
        name=user.name,
        fullname=user.fullname,
        isAdmin=user.is_admin,
        disabled=user.disabled,
        hasPassword=user.password_hash is not None,
        createdAt=hub_timestamp(user.created_at),
    )


def org_info(session: Session, org: User) -> OrgInfo:
    return OrgInfo(
        name=org.name,
        fullname=org.fullname,
        createdAt=hub_timestamp(org.created_at),
        members=[
            MemberInfo(name=user.name, role=role) for user, role in accounts.members(session, org)
        ],
    )


def token_info(token: Token, holder: str) -> TokenInfo:
    return TokenInfo(
        id=token.id or 0,
        user=holder,
        displayName=token.display_name,
        role=token.role,
        createdAt=hub_timestamp(token.created_at),
        expiresAt=hub_timestamp(token.expires_at) if token.expires_at else None,
        lastUsedAt=hub_timestamp(token.last_used_at) if token.last_used_at else None,
    )


def new_token_info(session: Session, user: User, body: NewToken) -> NewTokenInfo:
    value = accounts.create_token(
        session, user, body.role, body.displayName, expires_at=body.expiresAt
    )
    row = accounts.token_row(session, value)
    return NewTokenInfo(**token_info(row, user.name).model_dump(), token=value)


def tokens_info(session: Session, user: User | None) -> list[TokenInfo]:
    names = {holder.id: holder.name for holder in accounts.list_users(session)}
    return [
        token_info(token, names.get(token.user_id, "?"))
        for token in accounts.list_tokens(session, user)
    ]


@router.get("/users", tags=["admin"])
def list_users(caller: CallerDep, session: SessionDep) -> list[UserInfo]:
    """Every user of the platform (organisations are under /api/admin/orgs)."""
    accounts.require_admin(caller)
    return [user_info(user) for user in accounts.list_users(session)]


@router.post("/users", tags=["admin"])
def create_user(body: NewUser, caller: CallerDep, session: SessionDep) -> UserInfo:
    """Create a user; a password is checked (8 characters or more, not the name) and stored
    as an argon2 hash."""
    accounts.require_admin(caller, changing=True)
    user = accounts.create_user(
        session, body.name, fullname=body.fullname, is_admin=body.isAdmin, password=body.password
    )
    return user_info(user)


@router.get("/users/{name}", tags=["admin"])
def get_user(name: Name, caller: CallerDep, session: SessionDep) -> UserInfo:
    accounts.require_admin(caller)
    return user_info(accounts.person_by_name(session, name))


@router.patch("/users/{name}", tags=["admin"])
def update_user(name: Name, body: UserChange, caller: CallerDep, session: SessionDep) -> UserInfo:
    """Change a user's full name, admin flag, disabled flag or password; what is left out stays.
    Disabling takes effect at once."""
    accounts.require_admin(caller, changing=True)
    user = accounts.update_user(
        session,
        accounts.person_by_name(session, name),
        fullname=body.fullname,
        is_admin=body.isAdmin,
        disabled=body.disabled,
        password=body.password,
        actor=caller.user,
    )
    return user_info(user)


@router.delete("/users/{name}", status_code=204, tags=["admin"])
def delete_user(name: Name, caller: CallerDep, session: SessionDep) -> Response:
    """Delete a user with their tokens, keys and memberships; one who owns spaces is kept (409)."""
    accounts.require_admin(caller, changing=True)
    accounts.delete_user(session, accounts.person_by_name(session, name), actor=caller.user)
    return Response(status_code=204)


@router.get("/orgs", tags=["admin"])
def list_orgs(caller: CallerDep, session: SessionDep) -> list[OrgInfo]:
    accounts.require_admin(caller)
    return [org_info(session, org) for org in accounts.list_users(session, orgs=True)]


@router.post("/orgs", tags=["admin"])
def create_org(body: NewOrg, caller: CallerDep, session: SessionDep) -> OrgInfo:
    accounts.require_admin(caller, changing=True)
    org = accounts.create_user(session, body.name, fullname=body.fullname, is_org=True)
    return org_info(session, org)


@router.get("/orgs/{name}", tags=["admin"])
def get_org(name: Name, caller: CallerDep, session: SessionDep) -> OrgInfo:
    """An org and its members; its admins may look too."""
    org = accounts.org_by_name(session, name)
    accounts.require_org_admin(session, caller, org, changing=False)
    return org_info(session, org)


@router.delete("/orgs/{name}", status_code=204, tags=["admin"])
def delete_org(name: Name, caller: CallerDep, session: SessionDep) -> Response:
    """Delete an org and its memberships; one that owns spaces is kept (409)."""
    accounts.require_admin(caller, changing=True)
    accounts.delete_user(session, accounts.org_by_name(session, name))
    return Response(status_code=204)


@router.post("/orgs/{name}/members", tags=["admin"])
def add_member(name: Name, body: NewMember, caller: CallerDep, session: SessionDep) -> OrgInfo:
    """Add a user to an org as `read`, `write` or `admin`; platform admins and the org's admins
    may."""
    org = accounts.org_by_name(session, name)
    accounts.require_org_admin(session, caller, org)
    accounts.add_member(session, org, accounts.person_by_name(session, body.user), body.role)
    return org_info(session, org)


@router.put("/orgs/{name}/members/{user}", tags=["admin"])
def set_member_role(
    name: Name, user: Name, body: RoleChange, caller: CallerDep, session: SessionDep
) -> OrgInfo:
    org = accounts.org_by_name(session, name)
    accounts.require_org_admin(session, caller, org)
    accounts.set_member_role(session, org, accounts.person_by_name(session, user), body.role)
    return org_info(session, org)


@router.delete("/orgs/{name}/members/{user}", tags=["admin"])
def remove_member(name: Name, user: Name, caller: CallerDep, session: SessionDep) -> OrgInfo:
    org = accounts.org_by_name(session, name)
    accounts.require_org_admin(session, caller, org)
    accounts.remove_member(session, org, accounts.person_by_name(session, user))
    return org_info(session, org)


@router.get("/tokens", tags=["admin"])
def list_tokens(
    caller: CallerDep,
    session: SessionDep,
    user: Annotated[str | None, Query(max_length=MAX_QUERY_CHARS)] = None,
) -> list[TokenInfo]:
    """Tokens of one user, or of everyone; never their values."""
    accounts.require_admin(caller)
    holder = accounts.person_by_name(session, user) if user else None
    return tokens_info(session, holder)


@router.post("/users/{name}/tokens", tags=["admin"])
def create_token(
    name: Name, body: NewToken, caller: CallerDep, session: SessionDep
) -> NewTokenInfo:
    """A new token for a user: its value is in this answer and nowhere else, ever."""
    accounts.require_admin(caller, changing=True)
    return new_token_info(session, accounts.person_by_name(session, name), body)


@router.delete("/tokens/{token_id}", status_code=204, tags=["admin"])
def revoke_token(token_id: RowId, caller: CallerDep, session: SessionDep) -> Response:
    """Revoke a token: the next request with it is answered 401."""
    accounts.require_admin(caller, changing=True)
    accounts.revoke_token(session, token_id, keep=caller.token_id)
    return Response(status_code=204)


@router.get("/builds", tags=["admin"])
def build_queue(caller: CallerDep, session: SessionDep) -> BuildQueueInfo:
    """Running builds, then queued ones, and the workers that run them with their heartbeats."""
    accounts.require_admin(caller)
    return BuildQueueInfo(
        workers=[
            WorkerInfo(
                name=worker.name,
                startedAt=hub_timestamp(worker.started_at),
                heartbeatAt=hub_timestamp(worker.heartbeat_at),
            )
            for worker in builds.workers(session)
        ],
        builds=[
            QueuedBuildInfo(
                id=build.id,
                space=build.space_id,
                commit=build.commit,
                status=str(build.status),
                claimedBy=build.claimed_by,
            )
            for build in builds.queue(session)
        ],
    )

"""The caller's own SSH keys for git over SSH: list, add, remove."""

from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, Field

from spacehub.core.errors import Unauthorized
from spacehub.platform.api.fields import MAX_ROW_ID
from spacehub.platform.build_logs import hub_timestamp
from spacehub.platform.deps import CallerDep, SessionDep
from spacehub.platform.models import SshKey, User
from spacehub.platform.services import accounts, ssh_keys
from spacehub.platform.services.accounts import Caller

router = APIRouter(prefix="/api/settings/ssh-keys")


class NewKey(BaseModel):
    title: str = Field(default="", max_length=ssh_keys.TITLE_LENGTH)
    key: str = Field(max_length=16 * 1024)


def key_json(key: SshKey) -> dict:
    return {
        "id": key.id,
        "title": key.title,
        "key": key.public_key,
        "fingerprint": key.fingerprint,
        "createdAt": hub_timestamp(key.created_at),
        "lastUsedAt": hub_timestamp(key.last_used_at) if key.last_used_at else None,
    }


def _signed_in(caller: Caller) -> User:
    if caller.user is None:
        raise Unauthorized("a token is required: send it as 'Authorization: Bearer <token>'")
    return caller.user


def _may_change(session: SessionDep, caller: Caller) -> User:
    user = _signed_in(caller)
    accounts.require_write(session, caller, user)
    return user


@router.get("")
def list_keys(caller: CallerDep, session: SessionDep) -> list[dict]:
    return [key_json(key) for key in ssh_keys.list_keys(session, _signed_in(caller))]


@router.post("")
def add_key(body: NewKey, caller: CallerDep, session: SessionDep) -> dict:
    user = _may_change(session, caller)
    return key_json(ssh_keys.add_key(session, user, body.key, body.title))


@router.delete("/{key_id}", status_code=204)
def remove_key(
    key_id: Annotated[int, Path(ge=1, le=MAX_ROW_ID)], caller: CallerDep, session: SessionDep
) -> Response:
    ssh_keys.remove_key(session, key_id, _may_change(session, caller))
    return Response(status_code=204)

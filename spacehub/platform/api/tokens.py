"""The caller's own access tokens: list, create (with a write token or the password), revoke."""

import base64
import binascii

from fastapi import APIRouter, Request, Response

from spacehub.core.errors import Unauthorized
from spacehub.platform.api.admin import (
    NewToken,
    NewTokenInfo,
    RowId,
    TokenInfo,
    new_token_info,
    tokens_info,
)
from spacehub.platform.deps import CallerDep, SessionDep, bearer_token
from spacehub.platform.models import User
from spacehub.platform.services import accounts

router = APIRouter(prefix="/api/settings/tokens", tags=["settings"])


@router.get("")
def list_tokens(caller: CallerDep, session: SessionDep) -> list[TokenInfo]:
    """The caller's tokens, without their values."""
    return tokens_info(session, accounts.signed_in(caller))


@router.post("")
def create_token(body: NewToken, request: Request, session: SessionDep) -> NewTokenInfo:
    """A new token for the caller, who signs in with a write token (`Authorization: Bearer`)
    or their user name and password (`Authorization: Basic`): its value is shown this once."""
    return new_token_info(session, _token_holder(request, session), body)


@router.delete("/{token_id}", status_code=204)
def revoke_token(token_id: RowId, caller: CallerDep, session: SessionDep) -> Response:
    """Revoke one of the caller's tokens (the one in use too: signing out)."""
    user = accounts.signed_in(caller)
    accounts.require_write(session, caller, user)
    accounts.revoke_token(session, token_id, user)
    return Response(status_code=204)


def _token_holder(request: Request, session: SessionDep) -> User:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            name, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError) as error:
            raise Unauthorized(accounts.WRONG_PASSWORD) from error
        return accounts.authenticate(session, name, password)
    caller = accounts.caller_for_token(session, bearer_token(request))
    user = accounts.signed_in(caller)
    accounts.require_write(session, caller, user)
    return user

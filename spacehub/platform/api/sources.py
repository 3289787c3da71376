"""A space that follows a GitHub or Gitea repository: its source settings and push webhook.

Not part of the Hub's API. `PUT /api/spaces/{owner}/{name}/source` sets the repository URL,
branch and an optional deploy token or SSH key (owner or admin of the space); the answer holds
the webhook URL and, the first time and on rotation only, its secret; `POST …/source/sync`
deploys the branch's tip without waiting for a push.
`POST /api/webhooks/{owner}/{name}` is the URL to give GitHub or Gitea (content type
application/json, push events).
"""

from typing import Annotated

from anyio import to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from spacehub.core.errors import TooLarge
from spacehub.platform.build_logs import hub_timestamp
from spacehub.platform.context import Platform
from spacehub.platform.db import session_scope
from spacehub.platform.deps import CallerDep, PlatformDep, SessionDep, bearer_token
from spacehub.platform.git.external import (
    MAX_TOKEN_CHARS,
    MAX_URL_CHARS,
)
from spacehub.platform.git.repos import DEFAULT_BRANCH
from spacehub.platform.models import SpaceSource
from spacehub.platform.services import accounts, sources
from spacehub.platform.services.sources import WEBHOOK_PATH, managed_space
from spacehub.platform.source_webhooks import (
    MAX_WEBHOOK_BYTES,
    Answer,
    Result,
    deploy,
    receive_delivery,
)

router = APIRouter()
SOURCE_PATH = "/api/spaces/{owner}/{name}/source"


class SourceSettings(BaseModel):
    url: Annotated[str, Field(max_length=MAX_URL_CHARS)] = Field(
        description="https://, http://, ssh://, git:// or user@host:path of the repository"
    )
    branch: Annotated[str, Field(max_length=255)] = DEFAULT_BRANCH
    token: Annotated[str, Field(max_length=MAX_TOKEN_CHARS)] | None = Field(
        default=None, description="A deploy token (sent as the HTTP Basic password)."
    )
    ssh_key: Annotated[str, Field(max_length=16 * 1024)] | None = Field(
        default=None, description="A private SSH deploy key without a passphrase."
    )


@router.put(SOURCE_PATH, summary="Make the space follow an external git repository")
def put_source(
    owner: str,
    name: str,
    body: SourceSettings,
    caller: CallerDep,
    session: SessionDep,
    platform: PlatformDep,
) -> dict:
    """Omit `token` and `ssh_key` to keep the stored one (same URL), send `null` to remove it."""
    space = managed_space(session, caller, owner, name)
    given = {"token", "ssh_key"} & body.model_fields_set
    change = sources.source_change(
        body.url, body.branch, body.token, body.ssh_key, keep_credential=not given
    )
    assert caller.user is not None  # managed_space checked it
    row, secret = sources.set_source(session, platform.secret_box, space, change, caller.user)
    return _source_json(platform, owner, name, row, secret)


@router.get(SOURCE_PATH, summary="The space's external git repository (no secret values)")
def get_source(
    owner: str, name: str, caller: CallerDep, session: SessionDep, platform: PlatformDep
) -> dict:
    space = managed_space(session, caller, owner, name, changing=False)
    return _source_json(platform, owner, name, sources.require_source(session, space))


@router.delete(SOURCE_PATH, summary="Stop following the external repository")
def delete_source(owner: str, name: str, caller: CallerDep, session: SessionDep) -> dict:
    """The space keeps its `main` and its release; pushes to it work as before."""
    sources.delete_source(session, managed_space(session, caller, owner, name))
    return {}


@router.post(SOURCE_PATH + "/secret", summary="Rotate the webhook secret")
def rotate_secret(
    owner: str, name: str, caller: CallerDep, session: SessionDep, platform: PlatformDep
) -> dict:
    """A new secret, shown once: deliveries signed with the old one are refused from now on."""
    space = managed_space(session, caller, owner, name)
    secret = sources.rotate_webhook_secret(session, platform.secret_box, space)
    return _source_json(platform, owner, name, sources.require_source(session, space), secret)


@router.post(SOURCE_PATH + "/sync", summary="Deploy the followed branch's tip now")
async def sync_source(
    owner: str, name: str, request: Request, platform: PlatformDep
) -> JSONResponse:
    """What a push webhook does, for the branch's current tip: e.g. right after the first PUT."""
    token = bearer_token(request)
    # Checked in a session of its own: none is held while the source is fetched.
    await to_thread.run_sync(_check_manager, platform, token, owner, name)
    return _answer(await deploy(platform, owner, name, "manual", None))


@router.post(WEBHOOK_PATH, summary="Push webhook of GitHub or Gitea")
async def webhook(owner: str, name: str, request: Request, platform: PlatformDep) -> JSONResponse:
    """Signed with the space's secret (X-Hub-Signature-256 or X-Gitea-Signature): a push to
    the followed branch is fetched into the space's `main` and built; 202 when ignored."""
    body = await _limited_body(request)
    return _answer(await receive_delivery(platform, owner, name, request.headers, body))


def _answer(answer: Answer) -> JSONResponse:
    status = 202 if answer.result in (Result.IGNORED, Result.STALE) else 200
    content = {"result": str(answer.result), "message": answer.message, "commit": answer.commit}
    return JSONResponse(content, status_code=status)


async def _limited_body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_WEBHOOK_BYTES:
        raise TooLarge(f"webhook body over the limit of {MAX_WEBHOOK_BYTES} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_WEBHOOK_BYTES:
            raise TooLarge(f"webhook body over the limit of {MAX_WEBHOOK_BYTES} bytes")
    return bytes(body)


def _check_manager(platform: Platform, token: str | None, owner: str, name: str) -> None:
    with session_scope(platform.engine) as session:
        managed_space(session, accounts.caller_for_token(session, token), owner, name)


def _source_json(
    platform: Platform, owner: str, name: str, row: SpaceSource, secret: str | None = None
) -> dict:
    webhook: dict = {
        "url": platform.settings.effective_public_url + WEBHOOK_PATH.format(owner=owner, name=name),
        "contentType": "application/json",
        "events": ["push"],
        "secretSet": True,
    }
    if secret is not None:
        webhook["secret"] = secret  # shown once; kept encrypted, never shown again
    last = None
    if row.last_delivery_at is not None:
        last = {
            "id": row.last_delivery,
            "commit": row.last_commit,
            "status": row.last_status,
            "error": row.last_error,
            "at": hub_timestamp(row.last_delivery_at),
        }
    return {
        "url": row.url,
        "branch": row.branch,
        "credential": row.credential_kind,
        "webhook": webhook,
        "lastDelivery": last,
    }

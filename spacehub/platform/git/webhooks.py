"""The push webhook: verified with HMAC-SHA256 over the raw body, then a build is queued."""

from anyio import to_thread
from fastapi import APIRouter, Request
from pydantic import BaseModel, ValidationError

from spacehub.core.errors import Forbidden, InvalidInput, RepoNotFound
from spacehub.platform.deps import PlatformDep
from spacehub.platform.git.hooks import SIGNATURE_HEADER, WEBHOOK_PATH
from spacehub.platform.git.repos import DEFAULT_BRANCH
from spacehub.platform.pushes import build_new_head, find_space_row
from spacehub.platform.signatures import verify_signature

router = APIRouter()


class RefUpdate(BaseModel):
    old: str
    new: str
    ref: str


class PushEvent(BaseModel):
    space: str
    updates: list[RefUpdate]


@router.post(WEBHOOK_PATH)
async def receive_push(request: Request, platform: PlatformDep) -> dict:
    body = await request.body()
    if not verify_signature(
        platform.webhook_secret, body, request.headers.get(SIGNATURE_HEADER, "")
    ):
        raise Forbidden("bad webhook signature")
    try:
        event = PushEvent.model_validate_json(body)
    except ValidationError as error:
        raise InvalidInput(f"bad push event: {error.errors()[0]['msg']}") from None
    owner, _, name = event.space.partition("/")
    space_row_id = await to_thread.run_sync(find_space_row, platform, owner, name)
    if space_row_id is None:
        raise RepoNotFound("Repository not found")
    if not any(update.ref == f"refs/heads/{DEFAULT_BRANCH}" for update in event.updates):
        return {"message": f"spacehub: only pushes to '{DEFAULT_BRANCH}' are built"}
    return {"message": await build_new_head(platform, space_row_id)}

"""The push webhook: verified with HMAC-SHA256 over the raw body, then a build is queued."""

from anyio import to_thread
from fastapi import APIRouter, Request
from pydantic import BaseModel, ValidationError

from spacehub.core.errors import Forbidden, InvalidInput, RepoNotFound
from spacehub.platform.api.shapes import app_host
from spacehub.platform.deps import PlatformDep, SessionDep
from spacehub.platform.git.hooks import SIGNATURE_HEADER, WEBHOOK_PATH
from spacehub.platform.git.repos import DEFAULT_BRANCH, head_commit, repo_path
from spacehub.platform.models import utcnow
from spacehub.platform.services import builds, spaces
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
async def receive_push(request: Request, session: SessionDep, platform: PlatformDep) -> dict:
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
    space = spaces.find_space(session, owner, name)
    if space is None:
        raise RepoNotFound("Repository not found")
    if not any(update.ref == f"refs/heads/{DEFAULT_BRANCH}" for update in event.updates):
        return {"message": f"spacehub: only pushes to '{DEFAULT_BRANCH}' are built"}
    # The branch may have moved again since this hook started: build what it points at now,
    # so that concurrent pushes end with the newest commit built.
    repo = repo_path(platform.settings.repos_dir, owner, name)
    head = await to_thread.run_sync(head_commit, repo)
    if head is None:
        return {"message": f"spacehub: '{DEFAULT_BRANCH}' was deleted; the live release stays"}
    space.head_commit = head
    space.updated_at = utcnow()
    session.add(space)
    session.commit()
    queued = builds.enqueue(session, space, head)
    platform.build_wakeup.set()
    url = app_host(platform.settings, owner, name, space.label)
    state = "build queued" if queued else "already building this commit"
    return {"message": f"spacehub: {state} for {head[:12]}; the app will be at {url}"}

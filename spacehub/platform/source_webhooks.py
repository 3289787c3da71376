"""Push webhooks from GitHub and Gitea (or Forgejo): verified, then the commit is deployed.

Each space that follows an external repository has its own webhook secret; a delivery is
verified with HMAC-SHA256 over its raw body before anything is parsed. The pushed commit is
always fetched from the URL the space's owner configured, never from a URL in the payload.
"""

import hashlib
import hmac
import logging
from dataclasses import dataclass
from enum import StrEnum

from anyio import to_thread
from pydantic import BaseModel, ValidationError
from starlette.datastructures import Headers

from spacehub.core.errors import InvalidInput, NotFound, SpacehubError, Unauthorized
from spacehub.platform.context import Platform
from spacehub.platform.db import session_scope
from spacehub.platform.git.external import Outcome, Source, deploy_commit, validate_commit
from spacehub.platform.git.repos import repo_path
from spacehub.platform.pushes import build_new_head
from spacehub.platform.services import sources, spaces

log = logging.getLogger(__name__)
MAX_WEBHOOK_BYTES = 1024 * 1024  # GitHub lists at most 20 commits in a push payload
# Any of them, computed with the space's secret: GitHub sends the first; Gitea its own (newer
# versions the first too); Forgejo its own.
SIGNATURE_HEADERS = ("x-hub-signature-256", "x-gitea-signature", "x-forgejo-signature")
EVENT_HEADERS = ("x-github-event", "x-gitea-event", "x-forgejo-event", "x-gogs-event")
DELIVERY_HEADERS = ("x-github-delivery", "x-gitea-delivery", "x-forgejo-delivery")
NO_COMMIT = "0" * 40


class Result(StrEnum):
    DEPLOYED = "deployed"
    CURRENT = "current"
    STALE = "stale"
    IGNORED = "ignored"
    PONG = "pong"
    FAILED = "failed"


@dataclass(frozen=True)
class Answer:
    result: Result
    message: str
    commit: str | None = None


class PushPayload(BaseModel):
    """The fields of GitHub's and Gitea's push payloads that matter here."""

    ref: str
    after: str
    before: str | None = None
    deleted: bool = False


@dataclass(frozen=True)
class Delivery:
    event: str
    delivery_id: str | None
    body: bytes


def read_delivery(headers: Headers, body: bytes) -> Delivery:
    event = next((headers[name] for name in EVENT_HEADERS if name in headers), "")
    if not event:
        raise InvalidInput(f"no event header: send one of {', '.join(EVENT_HEADERS)}")
    delivery = next((headers[name] for name in DELIVERY_HEADERS if name in headers), None)
    return Delivery(event=event.strip().lower(), delivery_id=delivery, body=body)


def signature_is_valid(secret: bytes, body: bytes, headers: Headers) -> bool:
    """True when a signature header carries the body's HMAC-SHA256 (`sha256=` optional)."""
    expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
    for name in SIGNATURE_HEADERS:
        given = headers.get(name, "").strip()
        given = given.removeprefix("sha256=")
        if given and hmac.compare_digest(expected, given.lower()):
            return True
    return False


async def receive_delivery(
    platform: Platform, owner: str, name: str, headers: Headers, body: bytes
) -> Answer:
    """Verify a delivery for space `owner/name` and carry out its push."""
    _, source, secret = await to_thread.run_sync(_load_source, platform, owner, name)
    if not signature_is_valid(secret, body, headers):
        raise Unauthorized("bad or missing webhook signature (HMAC-SHA256 of the body)")
    delivery = read_delivery(headers, body)
    if delivery.event == "ping":
        return Answer(Result.PONG, f"pong: this space follows {source.branch!r} of {source.url}")
    if delivery.event != "push":
        return Answer(Result.IGNORED, f"ignored: only push events deploy ({delivery.event!r})")
    try:
        payload = PushPayload.model_validate_json(body)
    except ValidationError as error:
        raise InvalidInput(f"not a push payload: {error.errors()[0]['msg']}") from None
    wanted_ref = f"refs/heads/{source.branch}"
    if payload.ref != wanted_ref:
        return Answer(Result.IGNORED, f"ignored: a push to {payload.ref}, not {wanted_ref}")
    if payload.deleted or payload.after == NO_COMMIT:
        return Answer(
            Result.IGNORED, f"ignored: {source.branch!r} was deleted; the live release stays"
        )
    validate_commit(payload.after)
    return await deploy(platform, owner, name, delivery.delivery_id, payload.after)


def _load_source(platform: Platform, owner: str, name: str) -> tuple[int, Source, bytes]:
    with session_scope(platform.engine) as session:
        space = spaces.find_space(session, owner, name)
        row = sources.find_source(session, space) if space is not None else None
        if space is None or row is None or space.id is None:
            raise NotFound("no space of that name follows an external git repository")
        box = platform.secret_box
        return space.id, sources.source_of(box, row), sources.webhook_secret(box, row)


async def deploy(
    platform: Platform, owner: str, name: str, delivery_id: str | None, commit: str | None
) -> Answer:
    """Bring `commit` (None: the branch's tip) of the space's source into `main` and build it."""
    settings = platform.settings
    space_id, source, _ = await to_thread.run_sync(_load_source, platform, owner, name)
    repo = repo_path(settings.repos_dir, owner, name)
    known_hosts = settings.data_dir / "ssh" / "source_known_hosts"
    try:
        outcome, commit = await to_thread.run_sync(
            deploy_commit, repo, settings.data_dir, source, commit, known_hosts
        )
    except SpacehubError as error:
        shown = commit[:12] if commit else f"the tip of {source.branch!r}"
        log.warning("%s/%s: deploying %s from its source failed: %s", owner, name, shown, error)
        await to_thread.run_sync(
            _record, platform, space_id, delivery_id, commit, Result.FAILED, error.message
        )
        raise
    await to_thread.run_sync(_record, platform, space_id, delivery_id, commit, outcome, None)
    if outcome == Outcome.CURRENT:
        return Answer(Result.CURRENT, f"already deployed {commit[:12]}: nothing to do", commit)
    if outcome == Outcome.STALE:
        message = f"ignored: main is already past {commit[:12]} on {source.branch!r}"
        return Answer(Result.STALE, message, commit)
    message = await build_new_head(platform, space_id)
    log.info("%s/%s: deployed %s from its source", owner, name, commit[:12])
    return Answer(Result.DEPLOYED, message, commit)


def _record(
    platform: Platform,
    space_id: int,
    delivery_id: str | None,
    commit: str | None,
    result: Outcome | Result,
    error: str | None,
) -> None:
    with session_scope(platform.engine) as session:
        sources.record_delivery(session, space_id, delivery_id, commit, result, error)

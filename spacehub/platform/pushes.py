"""What follows a change of a space's `main`, whether a git push or a commit through the API."""

import asyncio
import contextlib
import logging

from anyio import to_thread
from sqlmodel import select

from spacehub.core.stages import Stage
from spacehub.platform.api.shapes import app_host
from spacehub.platform.context import Platform
from spacehub.platform.db import session_scope
from spacehub.platform.git.repos import DEFAULT_BRANCH, head_commit, repo_path
from spacehub.platform.models import BuildStatus, Space, User, utcnow
from spacehub.platform.services import builds
from spacehub.platform.services.spaces import find_space, owner_of

log = logging.getLogger(__name__)
UNBUILT_CHECK_SECONDS = 30.0
ACTIVE_BUILDS = (BuildStatus.QUEUED, BuildStatus.RUNNING)


async def build_new_head(platform: Platform, space_row_id: int) -> str:
    """Record where `main` points now, queue its build and wake a worker; say so to the user.

    The git and database work runs in a thread, in a session of its own.
    """
    message = await to_thread.run_sync(queue_new_head, platform, space_row_id)
    platform.build_wakeup.set()  # on the loop: asyncio events are not thread-safe
    return message


def find_space_row(platform: Platform, owner: str, name: str) -> int | None:
    """The id of the space `owner/name` (blocking: run it in a thread), None when there is none."""
    with session_scope(platform.engine) as session:
        space = find_space(session, owner, name)
        return None if space is None else space.id


def queue_new_head(platform: Platform, space_row_id: int) -> str:
    """Blocking (git and SQL): what `build_new_head` does, bar waking the workers."""
    with session_scope(platform.engine) as session:
        space = session.get(Space, space_row_id)
        if space is None or space.stage == Stage.DELETING:
            return "spacehub: the space is being deleted; nothing is built"
        owner = owner_of(session, space)
        repo = repo_path(platform.settings.repos_dir, owner.name, space.name)
        # The branch may have moved again since the change that called this: build what it
        # points at now, so that concurrent pushes and commits end with the newest one built.
        head = head_commit(repo)
        if head is None:
            return f"spacehub: '{DEFAULT_BRANCH}' was deleted; the live release stays"
        space.head_commit = head
        space.updated_at = utcnow()
        session.add(space)
        session.commit()
        queued = builds.enqueue(session, space, head)
        url = app_host(platform.settings, owner.name, space.name, space.label)
    state = "build queued" if queued else "already building this commit"
    return f"spacehub: {state} for {head[:12]}; the app will be at {url}"


def queue_unbuilt_heads(platform: Platform) -> int:
    """Queue a build for every space whose `main` is not the commit it last built or queued.

    A push whose webhook never arrived (the platform was killed mid-push, or was too busy)
    would otherwise leave its commit unbuilt for good: git says "Everything up-to-date".
    Blocking (git and SQL): run it in a thread. Returns how many builds it queued.
    """
    queued = 0
    with session_scope(platform.engine) as session:
        rows = session.exec(select(Space, User).where(Space.owner_id == User.id)).all()
        for space, owner in rows:
            latest = builds.latest_build(session, space)
            if space.stage == Stage.DELETING or (
                latest is not None and latest.status in ACTIVE_BUILDS
            ):
                continue  # a queued or running build follows main by itself
            # Read after the build: a push landing meanwhile is seen here, never missed.
            head = head_commit(repo_path(platform.settings.repos_dir, owner.name, space.name))
            if head is None or (latest is not None and latest.commit == head):
                continue
            log.warning(
                "%s/%s: main is at %s, never built: building it", owner.name, space.name, head[:12]
            )
            space.head_commit = head
            session.add(space)
            if builds.enqueue(session, space, head) is not None:
                queued += 1
    return queued


async def build_unbuilt_heads(platform: Platform, stop: asyncio.Event) -> None:
    """At start and then every UNBUILT_CHECK_SECONDS: no commit on `main` stays unbuilt."""
    while not stop.is_set():
        if await to_thread.run_sync(queue_unbuilt_heads, platform):
            platform.build_wakeup.set()  # on the loop: asyncio events are not thread-safe
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), UNBUILT_CHECK_SECONDS)

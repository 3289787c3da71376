"""What follows a change of a space's `main`, whether a git push or a commit through the API."""

from anyio import to_thread
from sqlmodel import Session

from spacehub.platform.api.shapes import app_host
from spacehub.platform.context import Platform
from spacehub.platform.git.repos import DEFAULT_BRANCH, head_commit, repo_path
from spacehub.platform.models import Space, utcnow
from spacehub.platform.services import builds
from spacehub.platform.services.spaces import owner_of


async def build_new_head(platform: Platform, session: Session, space: Space) -> str:
    """Record where `main` points now, queue its build and wake a worker; say so to the user."""
    owner = owner_of(session, space)
    repo = repo_path(platform.settings.repos_dir, owner.name, space.name)
    # The branch may have moved again since the change that called this: build what it points
    # at now, so that concurrent pushes and commits end with the newest commit built.
    head = await to_thread.run_sync(head_commit, repo)
    if head is None:
        return f"spacehub: '{DEFAULT_BRANCH}' was deleted; the live release stays"
    space.head_commit = head
    space.updated_at = utcnow()
    session.add(space)
    session.commit()
    queued = builds.enqueue(session, space, head)
    platform.build_wakeup.set()
    url = app_host(platform.settings, owner.name, space.name, space.label)
    state = "build queued" if queued else "already building this commit"
    return f"spacehub: {state} for {head[:12]}; the app will be at {url}"

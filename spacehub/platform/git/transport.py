"""What git over HTTP and over SSH share: who may fetch or push, and the git that serves them."""

import asyncio

from sqlmodel import Session

from spacehub.core.errors import Forbidden, RepoNotFound, Unauthorized
from spacehub.platform.git.hooks import hook_environment, hooks_dir
from spacehub.platform.git.repos import git_environment
from spacehub.platform.models import Space, TokenRole
from spacehub.platform.services import accounts, spaces
from spacehub.platform.services.accounts import Caller
from spacehub.platform.settings import Settings

NOT_FOUND = "Repository not found"


def authorize_git(session: Session, caller: Caller, space: Space | None, pushing: bool) -> Space:
    """The space when the caller may fetch it (or push to it); else the error a Hub would give.

    Unauthorized asks for credentials: an anonymous caller is never told whether a private
    space exists. A known caller who may not see the space gets the same RepoNotFound as for a
    space that does not exist.
    """
    visible = space is not None and accounts.can_read(session, caller, space)
    if not visible:
        if caller.user is None:
            raise Unauthorized("authentication required")
        raise RepoNotFound(NOT_FOUND)
    assert space is not None
    if not pushing:
        return space
    if caller.user is None:
        raise Unauthorized("a write token is required to push")
    if caller.role != TokenRole.WRITE:
        raise Forbidden("this token is read-only: pushing needs a 'write' token")
    accounts.require_write(session, caller, spaces.owner_of(session, space))
    return space


async def start_git_service(
    settings: Settings, space_id: str, *args: str, stderr: int, **environment: str
) -> asyncio.subprocess.Process:
    """`git ARGS` with our post-receive hook and push cap, isolated from host and user config.

    stdin and stdout are pipes; the hook queues the build of a push to `space_id`.
    """
    return await asyncio.create_subprocess_exec(
        "git",
        "-c",
        f"core.hooksPath={hooks_dir(settings).resolve()}",
        "-c",
        f"receive.maxInputSize={settings.max_push_bytes}",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=stderr,
        env=git_environment(**environment, **hook_environment(settings, space_id)),
    )

"""Operations on a space that span the database, its repository, the runtime and the routes."""

import asyncio
import shutil

from anyio import to_thread
from sqlmodel import Session

from spacehub.core.errors import Conflict, SpacehubError, Unprocessable
from spacehub.core.release import Artifact
from spacehub.core.space_config import SpaceConfig
from spacehub.core.stages import Stage, starting_stage
from spacehub.platform.context import Platform
from spacehub.platform.db import session_scope
from spacehub.platform.git.repos import head_commit, init_bare, repo_path
from spacehub.platform.models import Space, User
from spacehub.platform.rollout import StartFailed, instance_from_state, publish_route, roll_out
from spacehub.platform.services import builds, spaces
from spacehub.platform.services.spaces import owner_of, set_stage

_background: set[asyncio.Task] = set()


async def create_space(
    platform: Platform, session: Session, owner: User, name: str, **options: object
) -> Space:
    space = spaces.create_space(session, owner, name, **options)  # type: ignore[arg-type]
    repo = repo_path(platform.settings.repos_dir, owner.name, name)
    try:
        await to_thread.run_sync(init_bare, repo)
    except Exception:
        spaces.delete_space(session, space)
        raise
    publish_route(platform, session, space)
    return space


async def delete_space(platform: Platform, session: Session, space: Space) -> None:
    owner = owner_of(session, space)
    set_stage(session, space, Stage.DELETING)
    space_id = f"{owner.name}/{space.name}"
    if platform.runtime is not None:
        await platform.runtime.remove_space(space_id)
    platform.routes.remove(space_id)
    settings = platform.settings
    for path in (
        repo_path(settings.repos_dir, owner.name, space.name),
        settings.releases_dir / space.label,
    ):
        await to_thread.run_sync(lambda p=path: shutil.rmtree(p, ignore_errors=True))
    spaces.delete_space(session, space)


async def restart_space(platform: Platform, session: Session, space: Space, factory: bool) -> None:
    """Start the release again (health-gated); a factory restart rebuilds without cache."""
    if factory or space.release_ref is None:
        owner = owner_of(session, space)
        repo = repo_path(platform.settings.repos_dir, owner.name, space.name)
        head = await to_thread.run_sync(head_commit, repo)
        if head is None:
            raise Conflict("nothing to build yet: push a commit first")
        builds.enqueue(session, space, head, no_cache=factory)
        platform.build_wakeup.set()
        return
    if space.release_kind == "static":
        set_stage(session, space, Stage.RUNNING)
        publish_route(platform, session, space)
        return
    if platform.runtime is None:
        raise Unprocessable("no container runtime is available to restart this space")
    artifact = Artifact(kind="image", ref=space.release_ref, commit=space.current_commit or "")
    config = SpaceConfig.model_validate(space.card_data)
    set_stage(session, space, starting_stage(space.instance_state is not None))
    task = asyncio.create_task(_restart_in_background(platform, space.id, artifact, config))
    _background.add(task)
    task.add_done_callback(_background.discard)


async def _restart_in_background(
    platform: Platform, space_id: int, artifact: Artifact, config: SpaceConfig
) -> None:
    try:
        await roll_out(platform, space_id, artifact, config)
    except (StartFailed, SpacehubError) as error:
        reason = (
            f"{error.reason}\n{error.log_tail}"
            if isinstance(error, StartFailed)
            else f"the release could not start: {error.message}; push again or factory rebuild"
        )
        with session_scope(platform.engine) as session:
            space = session.get(Space, space_id)
            if space is not None:
                set_stage(session, space, Stage.RUNTIME_ERROR, reason)
                publish_route(platform, session, space)


async def pause_space(platform: Platform, session: Session, space: Space) -> None:
    if space.instance_state is not None and platform.runtime is not None:
        await platform.runtime.stop(instance_from_state(space.instance_state))
    space.instance_state = None
    set_stage(session, space, Stage.PAUSED)
    publish_route(platform, session, space)

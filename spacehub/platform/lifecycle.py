"""Operations on a space that span the database, its repository, the runtime and the routes."""

import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

from anyio import to_thread
from sqlmodel import Session

from spacehub.builder.build_context import space_context_dir
from spacehub.core.errors import Conflict
from spacehub.core.stages import Stage
from spacehub.platform.context import Platform
from spacehub.platform.db import session_scope
from spacehub.platform.git import lfs_store
from spacehub.platform.git.first_commit import make_first_commit
from spacehub.platform.git.history import copy_history
from spacehub.platform.git.repos import head_commit, init_bare, repo_path
from spacehub.platform.git.writing import Author
from spacehub.platform.models import BuildStatus, Space, User, utcnow
from spacehub.platform.pruning import delete_pushed_images
from spacehub.platform.pushes import build_new_head
from spacehub.platform.rollout import publish_route
from spacehub.platform.services import builds, desired, secrets, spaces
from spacehub.platform.services.spaces import owner_of, set_stage


def create_space(
    platform: Platform,
    session: Session,
    owner: User,
    name: str,
    creator: str | None = None,
    **options: object,
) -> Space:
    """The space and its repository, whose `main` starts with README.md and .gitattributes.

    Blocking (git and SQL): a plain `def` route, or a thread.
    """
    space = spaces.create_space(session, owner, name, **options)  # type: ignore[arg-type]
    repo = repo_path(platform.settings.repos_dir, owner.name, name)
    author = Author.user(creator or owner.name)
    try:
        init_bare(repo)
        head = make_first_commit(repo, name, space.sdk, author)
    except Exception:
        shutil.rmtree(repo, ignore_errors=True)
        spaces.delete_space(session, space)
        raise
    space.head_commit = head
    session.add(space)
    session.commit()
    publish_route(platform, session, space)
    return space


async def delete_space(platform: Platform, space_row_id: int) -> None:
    """Stop its instances, then remove its files and rows; sessions of its own, in threads."""
    found = await to_thread.run_sync(_mark_deleting, platform, space_row_id)
    if found is None:
        return
    space_id, label, paths = found
    if platform.supervisor is not None:
        await platform.supervisor.remove_space(space_row_id, space_id)
    platform.routes.remove(space_id)
    await to_thread.run_sync(_remove_space, platform, space_row_id, label, paths)


def _mark_deleting(platform: Platform, space_row_id: int) -> tuple[str, str, list[Path]] | None:
    """DELETING; the space's id, its label and the folders that go with it."""
    settings = platform.settings
    with session_scope(platform.engine) as session:
        space = session.get(Space, space_row_id)
        if space is None:
            return None
        owner = owner_of(session, space)
        set_stage(session, space, Stage.DELETING)
        return (
            f"{owner.name}/{space.name}",
            space.label,
            [
                repo_path(settings.repos_dir, owner.name, space.name),
                settings.releases_dir / space.label,
                space_context_dir(settings.build_contexts_dir, space.label),
            ],
        )


def _remove_space(platform: Platform, space_row_id: int, label: str, paths: list[Path]) -> None:
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)
    if platform.settings.registry is not None:
        # In the background: a registry that hangs must not hold the deletion's answer.
        threading.Thread(
            target=delete_pushed_images,
            args=(platform, label, frozenset()),
            name="spacehub-registry-delete",
            daemon=True,
        ).start()
    with session_scope(platform.engine) as session:
        space = session.get(Space, space_row_id)
        if space is not None:
            spaces.delete_space(session, space)


async def restart_space(platform: Platform, session: Session, space: Space, factory: bool) -> None:
    """Start the release again (health-gated, by the supervisor); a factory restart rebuilds.

    The git and database work runs in a thread.
    """
    rebuilding = await to_thread.run_sync(_want_restart, platform, session, space, factory)
    if rebuilding:
        platform.build_wakeup.set()
    else:
        _wake(platform)


def _want_restart(platform: Platform, session: Session, space: Space, factory: bool) -> bool:
    """Record the restart; True when it is a build (factory, or no release yet)."""
    if factory or space.release_ref is None:
        owner = owner_of(session, space)
        head = head_commit(repo_path(platform.settings.repos_dir, owner.name, space.name))
        if head is None:
            raise Conflict("nothing to build yet: push a commit first")
        builds.enqueue(session, space, head, no_cache=factory)
        desired.want_running(session, space)
        if space.stage == Stage.PAUSED:  # a push leaves a paused space paused; a restart does not
            set_stage(session, space, Stage.BUILDING)
        return True
    desired.want_restart(session, space)
    publish_route(platform, session, space)
    return False


async def pause_space(platform: Platform, space_row_id: int) -> None:
    """PAUSED at once; returns once the supervisor has stopped the instance."""
    await to_thread.run_sync(_want_paused, platform, space_row_id)
    if platform.supervisor is not None:
        await platform.supervisor.settle(space_row_id)


def _want_paused(platform: Platform, space_row_id: int) -> None:
    with session_scope(platform.engine) as session:
        space = session.get(Space, space_row_id)
        if space is not None:
            desired.want_paused(session, space)
            publish_route(platform, session, space)


def _wake(platform: Platform) -> None:
    if platform.supervisor is not None:
        platform.supervisor.wake()


@dataclass(frozen=True)
class DuplicateOptions:
    """What the duplicate call chooses for the copy; variables are added to the source's."""

    private: bool
    hardware: str | None = None
    sleep_time: int | None = None
    storage: str | None = None
    secrets: tuple[tuple[str, str, str | None], ...] = ()
    variables: tuple[tuple[str, str, str | None], ...] = ()


async def duplicate_space(
    platform: Platform,
    session: Session,
    source: Space,
    owner: User,
    name: str,
    options: DuplicateOptions,
) -> Space:
    """A new space `owner/name` with the source's history and variables, built like a push.

    The git and database work runs in a thread (the session is used there only).
    """
    space = await to_thread.run_sync(_copy_space, platform, session, source, owner, name, options)
    assert space.id is not None
    await build_new_head(platform, space.id)
    return space


def _copy_space(
    platform: Platform,
    session: Session,
    source: Space,
    owner: User,
    name: str,
    options: DuplicateOptions,
) -> Space:
    settings = platform.settings
    source_repo = repo_path(settings.repos_dir, owner_of(session, source).name, source.name)
    target_repo = repo_path(settings.repos_dir, owner.name, name)
    space = spaces.create_space(
        session,
        owner,
        name,
        sdk=source.sdk,
        private=options.private,
        hardware=options.hardware,
        sleep_time=options.sleep_time,
        storage=options.storage,
    )
    copied = False
    try:
        copy_history(source_repo, target_repo)
        copied = True
        # The LFS objects are stored once; the copy gets read access to every one of them.
        lfs_store.share_objects(source_repo, target_repo)
        space.card_data = dict(source.card_data)
        space.app_port = source.app_port
        session.add(space)
        session.commit()
        secrets.copy_variables(session, source, space)
        for key, value, description in options.variables:
            secrets.upsert_variable(session, space, key, value, description)
        for key, value, description in options.secrets:
            secrets.upsert_secret(session, platform.secret_box, space, key, value, description)
    except BaseException:
        session.rollback()
        if copied:  # copy_history removes what it made itself, and nothing it did not make
            shutil.rmtree(target_repo, ignore_errors=True)
        spaces.delete_space(session, space)
        raise
    publish_route(platform, session, space)
    return space


def set_visibility(platform: Platform, session: Session, space: Space, private: bool) -> None:
    """Make a space private or public; its app and git URLs follow at once. Blocking (SQL)."""
    space.private = private
    space.updated_at = utcnow()
    session.add(space)
    session.commit()
    publish_route(platform, session, space)


async def move_space(
    platform: Platform, session: Session, space: Space, owner: User, name: str
) -> None:
    """Rename `space` to `owner/name`: repository, releases, database row, route, instance.

    Directories move first and move back if the database update fails, so a failure at any
    step leaves the space whole under its old id. A running instance keeps serving under the
    new id while the same release starts again labelled with it; static releases need no start.
    The git, file and database work runs in a thread (the session is used there only).
    """
    if await to_thread.run_sync(_move_space, platform, session, space, owner, name):
        # Containers carry the space id in their labels and SPACE_ID: start the release again
        # under the new one (health-gated; the old container serves until the new one answers).
        await restart_space(platform, session, space, factory=False)


def _move_space(platform: Platform, session: Session, space: Space, owner: User, name: str) -> bool:
    """The move itself; True when a running instance must start again under the new id."""
    settings = platform.settings
    old_owner = owner_of(session, space)
    old_id = f"{old_owner.name}/{space.name}"
    label = spaces.free_label(session, owner, name, moving=space)
    if space.storage is not None and space.sdk != "static":
        raise Conflict(
            f"{old_id} has persistent storage, whose volume is named after the space: "
            "a space with storage cannot be moved yet"
        )
    latest = builds.latest_build(session, space)
    if latest is not None and latest.status == BuildStatus.RUNNING:
        raise Conflict(f"{old_id} is building: move it once the build has finished")
    old_releases = settings.releases_dir / space.label
    new_releases = settings.releases_dir / label
    moves = [
        (
            repo_path(settings.repos_dir, old_owner.name, space.name),
            repo_path(settings.repos_dir, owner.name, name),
        ),
        (old_releases, new_releases),
    ]
    done = _move_directories(moves)
    try:
        if space.release_kind in ("static", "venv") and space.release_ref:
            release = Path(space.release_ref)
            if release.is_relative_to(old_releases):
                space.release_ref = str(new_releases / release.relative_to(old_releases))
        space.owner_id = owner.id
        space.name = name
        space.label = label
        space.updated_at = utcnow()
        session.add(space)
        session.commit()
    except BaseException:
        session.rollback()
        _move_directories([(new, old) for old, new in reversed(done)])
        raise
    platform.routes.remove(old_id)
    publish_route(platform, session, space)
    return space.release_kind in ("image", "venv") and space.instance_state is not None


def _move_directories(moves: list[tuple[Path, Path]]) -> list[tuple[Path, Path]]:
    """Rename each existing source to its target, all or none; return the renames made."""
    wanted = [(old, new) for old, new in moves if old != new and old.exists()]
    for _, new in wanted:
        if new.exists():
            raise Conflict(f"{new.name} already exists on disk: pick another name")
    done: list[tuple[Path, Path]] = []
    try:
        for old, new in wanted:
            new.parent.mkdir(parents=True, exist_ok=True)
            old.rename(new)
            done.append((old, new))
    except BaseException:
        for old, new in reversed(done):
            new.rename(old)
        raise
    return done

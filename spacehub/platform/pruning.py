"""Old releases go: a space keeps its live release and the last `keep_releases` others."""

import logging
from dataclasses import dataclass

from anyio import to_thread
from sqlmodel import Session, col, select

from spacehub.builder.static import prune_static_releases
from spacehub.platform.context import Platform
from spacehub.platform.db import session_scope
from spacehub.platform.models import Build, BuildStatus, Space
from spacehub.platform.services.spaces import owner_of

log = logging.getLogger(__name__)
# Enough rows to find N distinct commits even when factory rebuilds repeat some.
_HISTORY_ROWS = 500


@dataclass(frozen=True)
class PruneJob:
    space_id: str
    label: str
    keep: frozenset[str]


def kept_commits(session: Session, space: Space, count: int) -> frozenset[str]:
    """The live and desired commits, a running instance's, and the last `count` others built."""
    live = {
        space.current_commit,
        (space.instance_state or {}).get("commit"),
        (space.desired_release or {}).get("commit"),
    }
    keep = {commit for commit in live if commit}
    # A build under way may have written its release without recording it yet.
    keep |= set(
        session.exec(
            select(Build.commit).where(
                Build.space_id == space.id, Build.status == BuildStatus.RUNNING
            )
        ).all()
    )
    recent = session.exec(
        select(Build.commit)
        .where(Build.space_id == space.id, Build.status == BuildStatus.SUCCEEDED)
        .order_by(col(Build.id).desc())
        .limit(_HISTORY_ROWS)
    ).all()
    others: list[str] = []
    for commit in recent:
        if len(others) >= count:
            break
        if commit not in keep and commit not in others:
            others.append(commit)
    return frozenset(keep | set(others))


async def prune_releases(platform: Platform, space_row_id: int) -> None:
    """Remove a space's static releases and images beyond those kept; a failure is only logged.

    Called by the supervisor once a release is live; releases of builds under way are kept.
    """
    try:
        with session_scope(platform.engine) as session:
            space = session.get(Space, space_row_id)
            if space is None:
                return
            owner = owner_of(session, space)
            job = PruneJob(
                space_id=f"{owner.name}/{space.name}",
                label=space.label,
                keep=kept_commits(session, space, platform.settings.keep_releases),
            )
        await to_thread.run_sync(_prune, platform, job)
    except Exception:
        log.exception("could not remove the old releases of space %s", space_row_id)


def _prune(platform: Platform, job: PruneJob) -> None:
    releases = platform.settings.releases_dir / job.label
    removed = prune_static_releases(releases, job.keep)
    if platform.runtime is not None and platform.runtime.name in ("docker", "swarm"):
        from spacehub.builder.image import prune_images

        removed += prune_images(
            job.space_id,
            job.label,
            platform.platform_id,
            set(job.keep),
            platform.settings.registry,
        )
        delete_pushed_images(platform, job.label, job.keep)
    if removed:
        log.info("removed %d old release(s) of %s", len(removed), job.space_id)


def delete_pushed_images(platform: Platform, label: str, keep: frozenset[str]) -> None:
    """Delete the space's images in the registry (if builds push to one) but those of `keep`
    (commits); a registry that refuses or does not answer is only logged."""
    registry = platform.settings.registry
    if registry is None:
        return
    from spacehub.builder.image import image_repository, release_tag
    from spacehub.builder.registry import RegistryError, delete_tags

    repository = image_repository(label, platform.platform_id)
    try:
        deleted = delete_tags(registry, repository, {release_tag(commit) for commit in keep})
    except RegistryError as error:
        log.warning("%s: %s/%s stays there", error.message, registry, repository)
        return
    if deleted:
        log.info("deleted %s:%s from the registry", repository, ",".join(deleted))

"""Admin-only routes: what the platform's data dir uses on disk."""

from anyio import to_thread
from fastapi import APIRouter, Request

from spacehub.platform.context import Platform
from spacehub.platform.db import session_scope
from spacehub.platform.deps import PlatformDep, bearer_token
from spacehub.platform.services import accounts
from spacehub.platform.services.disk import measure_disk

router = APIRouter(prefix="/api/admin")


@router.get("/disk")
async def disk_usage(request: Request, platform: PlatformDep) -> dict:
    """Bytes used by repositories, LFS objects, releases, logs and the database; releases and
    images kept. The walk runs in a thread, with no database session held meanwhile."""
    await to_thread.run_sync(_require_admin, platform, bearer_token(request))
    usage = await to_thread.run_sync(measure_disk, platform)
    return {
        "bytes": {
            "repos": usage.repos,
            "lfs": usage.lfs,
            "releases": usage.releases,
            "logs": usage.logs,
            "database": usage.database,
            "total": usage.total,
        },
        "releases": usage.release_count,
        "images": usage.image_count,
        "keepReleases": platform.settings.keep_releases,
    }


def _require_admin(platform: Platform, token: str | None) -> None:
    with session_scope(platform.engine) as session:
        accounts.require_admin(accounts.caller_for_token(session, token))

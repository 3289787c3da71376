"""`GET /metrics`: the platform's metrics in Prometheus' text format, for admins only.

An admin token is required, from loopback too: apps of the local runtime run on this machine,
and space names, private ones included, are labels.
"""

from anyio import to_thread
from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from spacehub.platform.context import Platform
from spacehub.platform.db import session_scope
from spacehub.platform.deps import PlatformDep, bearer_token
from spacehub.platform.metrics import render_metrics
from spacehub.platform.services import accounts

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, platform: PlatformDep) -> Response:
    await to_thread.run_sync(_check_admin, platform, bearer_token(request))
    body = await to_thread.run_sync(render_metrics, platform)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def _check_admin(platform: Platform, token: str | None) -> None:
    with session_scope(platform.engine) as session:
        accounts.require_admin(accounts.caller_for_token(session, token))

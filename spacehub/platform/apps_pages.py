"""What the control plane answers under /apps/{owner}/{name}/: static releases and status pages.

The proxy sends here every app request it cannot give to a running instance (the subdomain
form rewritten to this path form).
"""

from pathlib import Path

from anyio import to_thread
from fastapi import APIRouter, Request, WebSocket
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from sqlmodel import Session
from starlette.requests import HTTPConnection

from spacehub.core.errors import SpacehubError
from spacehub.core.stages import Stage
from spacehub.platform.app_sign_in import cookie_caller, exchange_ticket
from spacehub.platform.context import Platform
from spacehub.platform.db import session_scope
from spacehub.platform.deps import PlatformDep, SessionDep, bearer_token
from spacehub.platform.errors import error_response, send_answer
from spacehub.platform.models import Space
from spacehub.platform.services import accounts, spaces
from spacehub.platform.services.builds import is_serving

router = APIRouter()
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")

HEADLINES = {
    Stage.NO_APP_FILE: "has no app file yet: push one",
    Stage.CONFIG_ERROR: "has a configuration error",
    Stage.BUILDING: "is building",
    Stage.BUILD_ERROR: "failed to build",
    Stage.APP_STARTING: "is starting",
    Stage.RUNTIME_ERROR: "stopped with an error",
    Stage.PAUSED: "is paused",
    Stage.STOPPED: "is stopped",
    Stage.SLEEPING: "is sleeping",
    Stage.DELETING: "is being deleted",
}
IN_PROGRESS = {
    Stage.BUILDING,
    Stage.APP_STARTING,
    Stage.RUNNING_BUILDING,
    Stage.RUNNING_APP_STARTING,
}


@router.api_route("/apps/{owner}/{name}/{path:path}", methods=["GET", "HEAD"])
def app_page(
    owner: str, name: str, path: str, request: Request, session: SessionDep, platform: PlatformDep
) -> Response:
    ticket_answer = exchange_ticket(platform, session, request, owner, name)
    if ticket_answer is not None:
        return ticket_answer
    space = _visible_space(request, session, owner, name)
    if space is None:
        return _not_found()
    if space.release_kind == "static" and is_serving(space) and space.release_ref:
        return _static_file(Path(space.release_ref), path, request)
    return templates.TemplateResponse(
        request,
        "status.html",
        {
            "space_id": f"{owner}/{name}",
            "stage": str(space.stage),
            "headline": HEADLINES.get(space.stage, "is not answering"),
            "error": space.error_message,
            "refresh": space.stage in IN_PROGRESS,
        },
        status_code=503,
        headers={"Retry-After": "3"} if space.stage in IN_PROGRESS else None,
    )


@router.websocket("/apps/{owner}/{name}/{path:path}")
async def app_websocket(websocket: WebSocket, owner: str, name: str, path: str) -> None:
    """A WebSocket the proxy could not hand to a running app: refused with a reason."""
    platform: Platform = websocket.app.state.platform
    answer = await to_thread.run_sync(_websocket_refusal, platform, websocket, owner, name)
    await send_answer(answer, websocket.scope, websocket.receive, websocket.send)


@router.websocket("/{path:path}")
async def no_websocket(websocket: WebSocket, path: str) -> None:
    answer = error_response(404, f"there is no WebSocket endpoint at /{path}")
    await send_answer(answer, websocket.scope, websocket.receive, websocket.send)


def _websocket_refusal(platform: Platform, websocket: WebSocket, owner: str, name: str) -> Response:
    with session_scope(platform.engine) as session:
        space = _visible_space(websocket, session, owner, name)
        if space is None:
            return error_response(404, "Repository not found", "RepoNotFound")
        if space.release_kind == "static" and is_serving(space):
            return error_response(400, f"{owner}/{name} is a static space: it has no WebSockets")
        return error_response(
            503, f"the app of {owner}/{name} is not running (stage {space.stage})"
        )


def _visible_space(
    request: HTTPConnection, session: Session, owner: str, name: str
) -> Space | None:
    """The space if this caller may see it; else None, answered like a space that is not there."""
    try:
        caller = accounts.caller_for_token(session, bearer_token(request))
        if caller.user is None:  # a browser signed in to the app by a ticket (app_sign_in.py)
            platform: Platform = request.app.state.platform
            caller = cookie_caller(platform, session, request, f"{owner}/{name}") or caller
        return spaces.visible_space(session, caller, owner, name)
    except SpacehubError:
        return None


def _static_file(root: Path, path: str, request: Request) -> Response:
    """A file of the release; nothing outside it, whatever the path or the symlinks say."""
    root = root.resolve()
    target = (root / path.lstrip("/")).resolve()
    if not target.is_relative_to(root):
        return _not_found()
    if target.is_dir():
        target = target / "index.html"
    if not target.is_file():
        return _not_found()
    # Given the stat, FileResponse sets ETag and Last-Modified now, so If-None-Match can match.
    response = FileResponse(target, stat_result=target.stat())
    etag = response.headers.get("etag")
    if etag and etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers={"ETag": etag})
    return response


def _not_found() -> HTMLResponse:
    return HTMLResponse("<!doctype html><title>404</title><h1>404: no such space or file</h1>", 404)

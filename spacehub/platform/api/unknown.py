"""The answer to an /api/… path that no route serves: a Hub-style error, never a bare 404.

Its code is none that huggingface_hub turns into "repository/revision/file not found" (which
`repo_exists`, `file_exists` and `Client.duplicate` would read as an answer): the client raises
a plain HfHubHTTPError quoting the message instead. Include this router after all others.
"""

from fastapi import APIRouter, Request, Response
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

from spacehub.platform.api import url_paths  # noqa: F401 (registers {…:any_path})
from spacehub.platform.errors import error_response

router = APIRouter()
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


@router.api_route("/api/{path:any_path}", methods=METHODS, include_in_schema=False)
def unknown_endpoint(path: str, request: Request) -> Response:
    allowed = _methods_of_other_routes(request)
    if allowed:
        answer = error_response(
            405,
            f"{request.method} is not allowed on /api/{path}: use {', '.join(allowed)}",
            "MethodNotAllowed",
        )
        answer.headers["Allow"] = ", ".join(allowed)
        return answer
    return error_response(
        404,
        f"This API endpoint does not exist: {request.method} /api/{path}",
        "EndpointNotFound",
    )


def _methods_of_other_routes(request: Request) -> list[str]:
    """Methods that some other route serves on this path (then the answer is a 405).

    A route that also serves a path no route has is a catch-all (this one), not an answer.
    """
    nowhere = {**request.scope, "path": "/api/\0unrouted"}
    return sorted(
        method
        for method in METHODS
        if method != request.method
        and any(
            _serves(route, request.scope, method) and not _serves(route, nowhere, method)
            for route in request.app.router.routes
        )
    )


def _serves(route: BaseRoute, scope: Scope, method: str) -> bool:
    return route.matches({**scope, "method": method})[0] is Match.FULL

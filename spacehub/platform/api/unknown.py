"""The answer to an /api/… path that no route serves: a Hub-style error, never a bare 404.

Its code is none that huggingface_hub turns into "repository/revision/file not found" (which
`repo_exists`, `file_exists` and `Client.duplicate` would read as an answer): the client raises
a plain HfHubHTTPError quoting the message instead. Include this router after all others.
"""

from fastapi import APIRouter, Request, Response
from starlette.routing import Match

from spacehub.platform.errors import error_response

router = APIRouter()
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


@router.api_route("/api/{path:path}", methods=METHODS, include_in_schema=False)
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
    """Methods of the routes that serve this path with another method (then it is a 405)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match is Match.PARTIAL:
            methods |= getattr(route, "methods", None) or set()
    return sorted(methods)

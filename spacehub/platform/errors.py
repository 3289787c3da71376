"""One place that turns domain errors into the Hub's JSON error answers."""

import logging
import re
import secrets

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from spacehub.core import errors

log = logging.getLogger(__name__)
# A message quotes the user's input (a revision, a path): in a header, all but printable ASCII
# would make the server refuse the whole answer.
_HEADER_UNSAFE = re.compile(r"[^\x20-\x7e]")
# A request id the client chose (huggingface_hub sends X-Amzn-Trace-Id) is echoed if it is tame.
_CLIENT_REQUEST_ID = re.compile(r"[\w.:;=+/-]{1,128}")

STATUS: list[tuple[type[errors.SpacehubError], int]] = [
    (errors.InvalidInput, 400),
    (errors.Unauthorized, 401),
    (errors.Forbidden, 403),
    (errors.NotFound, 404),
    (errors.Conflict, 409),
    (errors.PreconditionFailed, 412),
    (errors.TooLarge, 413),
    (errors.Unprocessable, 422),
    (errors.InvalidConfig, 422),
    (errors.NoAppFile, 422),
    (errors.UpstreamFailed, 502),
]


def error_response(
    status: int, message: str, code: str | None = None, **extra: str
) -> JSONResponse:
    headers = {"X-Error-Message": _HEADER_UNSAFE.sub("?", message)[:500]}
    if code:
        headers["X-Error-Code"] = code
    return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)


def status_of(error: errors.SpacehubError) -> int:
    return next((status for kind, status in STATUS if isinstance(error, kind)), 500)


async def _domain_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, errors.SpacehubError)
    code = error.code if isinstance(error, errors.NotFound) else None
    extra = {}
    if isinstance(error, errors.Conflict) and getattr(error, "url", None):
        extra["url"] = error.url  # type: ignore[attr-defined]
    return error_response(status_of(error), error.message, code, **extra)


async def _validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"] if part != "body")
    return error_response(422, f"{where}: {first['msg']}" if where else first["msg"])


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    return error_response(error.status_code, str(error.detail))


def request_id(scope: Scope) -> str:
    """The client's own id for the request (X-Request-Id, X-Amzn-Trace-Id), else a new one."""
    headers = dict(scope.get("headers") or ())
    for name in (b"x-request-id", b"x-amzn-trace-id"):
        value = headers.get(name, b"").decode("latin-1")
        if _CLIENT_REQUEST_ID.fullmatch(value):
            return value
    return secrets.token_hex(8)


class UnexpectedErrors:
    """Any other exception: logged once with a request id, answered `500 {"error": …}`.

    Every answer carries its `X-Request-Id`, as on the Hub: huggingface_hub quotes it in the
    message of every error it raises. Starlette's own handler for `Exception` answers and then
    re-raises, so uvicorn logs the traceback a second time, without the id; this middleware sits
    inside it and does not.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        this_request = request_id(scope)

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                if not any(name.lower() == b"x-request-id" for name, _ in headers):
                    headers.append((b"x-request-id", this_request.encode()))
                message = {**message, "headers": headers}
            await send(message)  # a head the server refuses (a bad header) is not started
            started = started or message["type"] == "http.response.start"

        try:
            await self.app(scope, receive, watched_send)
        except Exception:
            log.exception(
                "internal error (request id %s) on %s %s",
                this_request,
                scope.get("method"),
                scope.get("path"),
            )
            if started:  # the answer is on its way: the server closes the connection
                return
            answer = error_response(500, f"internal error (request id {this_request})")
            await answer(scope, receive, watched_send)


class RefuseNulBytes:
    """A NUL in a URL is refused (400) before any route: no path, file name or SQL text has one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and (
            "\x00" in scope["path"] or b"%00" in scope["query_string"]
        ):
            answer = error_response(400, "NUL bytes are not allowed in URLs")
            await send_answer(answer, scope, receive, send)
            return
        await self.app(scope, receive, send)


async def send_answer(answer: Response, scope: Scope, receive: Receive, send: Send) -> None:
    """Send an HTTP answer, also to a WebSocket handshake (which otherwise gets a bare 403)."""
    if scope["type"] == "websocket" and "websocket.http.response" not in scope.get(
        "extensions", {}
    ):
        await send({"type": "websocket.close", "code": 1008})  # the server can send no body
        return
    await answer(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(errors.SpacehubError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    # Added last, so outermost of the app's own middleware.
    app.add_middleware(RefuseNulBytes)
    app.add_middleware(UnexpectedErrors)

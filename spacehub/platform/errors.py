"""One place that turns domain errors into the Hub's JSON error answers."""

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from spacehub.core import errors

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
]


def error_response(
    status: int, message: str, code: str | None = None, **extra: str
) -> JSONResponse:
    headers = {"X-Error-Message": message.encode("ascii", "replace").decode()[:500]}
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


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(errors.SpacehubError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)

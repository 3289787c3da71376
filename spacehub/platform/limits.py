"""A cap on request bodies, counted as they stream (a lying Content-Length does not help)."""

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from spacehub.platform.errors import error_response


class BodySizeLimit:
    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _is_git(scope["path"]):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await error_response(413, self._message())(scope, receive, send)
            return
        received = 0

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise BodyTooLarge(self._message())
            return message

        try:
            await self.app(scope, counted_receive, send)
        except BodyTooLarge as error:
            await error_response(413, str(error))(scope, receive, send)

    def _message(self) -> str:
        return f"request body over the limit of {self.limit} bytes"


class BodyTooLarge(HTTPException):
    """An HTTPException so that FastAPI, reading a body, passes it on instead of answering 400."""

    def __init__(self, message: str) -> None:
        super().__init__(413, message)

    def __str__(self) -> str:
        return str(self.detail)


def _is_git(path: str) -> bool:
    # Pushes and LFS uploads have their own limit (max_push_bytes), enforced by the git bridge
    # and the LFS routes; an LFS batch request is a small JSON body like any other.
    return path.startswith("/spaces/") and (
        "/git-receive-pack" in path
        or "/git-upload-pack" in path
        or ("/info/lfs/objects/" in path and not path.endswith("/batch"))
    )

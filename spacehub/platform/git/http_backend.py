"""Git smart HTTP at /spaces/{owner}/{name}[.git]/…, bridged to `git http-backend` (CGI)."""

import asyncio
import base64
import binascii

from anyio import to_thread
from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlmodel import Session
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from spacehub.core.errors import NotFound, SpacehubError, Unauthorized
from spacehub.platform.context import Platform
from spacehub.platform.db import session_scope
from spacehub.platform.deps import PlatformDep
from spacehub.platform.errors import status_of
from spacehub.platform.git.transport import authorize_git, start_git_service
from spacehub.platform.models import Space
from spacehub.platform.services import accounts, spaces
from spacehub.platform.services.accounts import Caller

router = APIRouter()
GIT_PATHS = ("info/refs", "git-upload-pack", "git-receive-pack", "HEAD")
CHUNK = 64 * 1024


@router.api_route("/spaces/{owner}/{name}/{git_path:path}", methods=["GET", "POST"])
async def git_smart_http(
    owner: str,
    name: str,
    git_path: str,
    request: Request,
    platform: PlatformDep,
) -> Response:
    name = name.removesuffix(".git")
    if git_path not in GIT_PATHS:
        return _refuse(404, f"no such git endpoint: {git_path}")
    service = request.query_params.get("service") or git_path
    pushing = service == "git-receive-pack"
    # The database is read in a thread: dozens of clones and pushes at once must not stall
    # the event loop that the proxy and every other request share.
    caller = await to_thread.run_sync(_git_caller, platform, request, owner, name, pushing)
    if isinstance(caller, Response):
        return caller
    declared = request.headers.get("content-length")
    if (
        pushing
        and declared
        and declared.isdigit()
        and int(declared) > platform.settings.max_push_bytes
    ):
        return _push_refused(push_limit_message(platform.settings.max_push_bytes))
    return await _run_backend(platform, request, owner, name, git_path, caller)


def push_limit_message(limit: int) -> str:
    """What a push (or an LFS upload) over the cap is told; git shows it as "remote: …"."""
    return (
        f"push over the limit of {limit} bytes: remove large files from the commits "
        "(or ask the admin to raise SPACEHUB_MAX_PUSH_BYTES)"
    )


def basic_caller(session: Session, request: Request) -> Caller:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        return accounts.caller_for_token(session, value.strip())
    if scheme.lower() != "basic":
        return accounts.ANONYMOUS
    try:
        _, _, password = base64.b64decode(value).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return accounts.ANONYMOUS
    return accounts.caller_for_token(session, password)


def _git_caller(
    platform: Platform, request: Request, owner: str, name: str, pushing: bool
) -> Caller | Response:
    """Who calls, when they may fetch (or push to) the space; else the answer refusing them."""
    with session_scope(platform.engine) as session:
        try:
            caller = basic_caller(session, request)
        except SpacehubError as error:
            return _challenge(error.message)
        space = spaces.find_space(session, owner, name)
        return deny_git_access(session, caller, space, pushing) or caller


def deny_git_access(
    session: Session, caller: Caller, space: Space | None, pushing: bool
) -> Response | None:
    """None when allowed; else 401 (ask for a token), 403 or 404 as a Hub would answer."""
    try:
        authorize_git(session, caller, space, pushing)
    except Unauthorized as error:
        # Anonymous callers are asked for credentials so that git retries with its token.
        return _challenge(error.message)
    except SpacehubError as error:
        code = error.code if isinstance(error, NotFound) else None
        return _refuse(status_of(error), error.message, code)
    return None


def _refuse(status: int, message: str, code: str | None = None) -> Response:
    """An error git shows its user: git prints a text/plain body as "remote: …", never JSON."""
    headers = {"X-Error-Code": code} if code else None
    return Response(message + "\n", status_code=status, headers=headers, media_type="text/plain")


def _push_refused(message: str) -> Response:
    """Refuse a push in git's own protocol (sideband 3: fatal error) so that git prints it.

    git never shows the body of a failed POST, only "RPC failed; HTTP 413".
    """
    line = b"\x03" + f"{message}\n".encode()
    body = b"%04x" % (len(line) + 4) + line + b"0000"
    return Response(body, media_type="application/x-git-receive-pack-result")


def _challenge(message: str) -> Response:
    response = _refuse(401, message)
    response.headers["WWW-Authenticate"] = 'Basic realm="spacehub"'
    return response


async def _run_backend(
    platform: Platform, request: Request, owner: str, name: str, git_path: str, caller: Caller
) -> Response:
    settings = platform.settings
    process = await start_git_service(
        settings,
        f"{owner}/{name}",
        "http-backend",
        stderr=asyncio.subprocess.DEVNULL,
        GIT_PROJECT_ROOT=str(settings.repos_dir.resolve()),
        GIT_HTTP_EXPORT_ALL="1",
        PATH_INFO=f"/{owner}/{name}.git/{git_path}",
        REQUEST_METHOD=request.method,
        QUERY_STRING=request.url.query,
        CONTENT_TYPE=request.headers.get("content-type", ""),
        REMOTE_USER=caller.name or "",
        REMOTE_ADDR=request.client.host if request.client else "",
        HTTP_CONTENT_ENCODING=request.headers.get("content-encoding", ""),
        HTTP_GIT_PROTOCOL=request.headers.get("git-protocol", ""),
    )
    feeding = asyncio.create_task(_feed(process, request))
    assert process.stdout is not None
    status, headers = await _read_cgi_head(process.stdout)
    return CgiResponse(process, feeding, status, headers)


class CgiResponse(Response):
    """Streams the CGI's answer while its request body may still be arriving.

    Starlette's StreamingResponse listens for a disconnect by calling `receive()` while it
    streams, taking body messages away from `_feed`: git then read a pack with holes (every
    push over ~0.5 MB hung or failed). Here only `_feed` reads the body; a client that goes
    away shows up as a failed `send`, which ends the CGI.
    """

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        feeding: asyncio.Task,
        status: int,
        headers: dict[str, str],
    ) -> None:
        # Not Response.__init__: it would declare `Content-Length: 0` for the empty body.
        self.status_code = status
        self.background = None
        self.raw_headers = [
            (key.lower().encode("latin-1"), value.encode("latin-1"))
            for key, value in headers.items()
        ]
        self.process = process
        self.feeding = feeding

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                }
            )
            while chunk := await stdout.read(CHUNK):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            # git has answered: the rest of a request body it refused (a push over the limit)
            # is not needed, and waiting for it would leave the client waiting for our end.
            self.feeding.cancel()
            if self.process.returncode is None:
                try:
                    await asyncio.wait_for(self.process.wait(), 60)
                except TimeoutError:
                    self.process.kill()
                    await self.process.wait()


async def _feed(process: asyncio.subprocess.Process, request: Request) -> None:
    assert process.stdin is not None
    try:
        async for chunk in request.stream():
            process.stdin.write(chunk)
            await process.stdin.drain()
    except (BrokenPipeError, ConnectionResetError, ClientDisconnect):
        pass
    finally:
        process.stdin.close()


async def _read_cgi_head(stdout: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    status = 200
    headers: dict[str, str] = {}
    while True:
        line = (await stdout.readline()).decode("latin-1").rstrip("\r\n")
        if not line:
            return status, headers
        key, _, value = line.partition(":")
        if key.lower() == "status":
            status = int(value.strip().split()[0])
        else:
            headers[key.strip()] = value.strip()

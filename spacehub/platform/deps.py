"""What routes receive through Depends: the platform, a DB session, the caller."""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel import Session
from starlette.requests import HTTPConnection

from spacehub.platform.context import Platform
from spacehub.platform.db import session_scope
from spacehub.platform.services.accounts import Caller, caller_for_token


def get_platform(request: Request) -> Platform:
    return request.app.state.platform


def get_session(platform: Annotated[Platform, Depends(get_platform)]) -> Iterator[Session]:
    with session_scope(platform.engine) as session:
        yield session


def bearer_token(request: HTTPConnection) -> str | None:
    for header in ("authorization", "x-hf-authorization"):
        value = request.headers.get(header, "")
        scheme, _, token = value.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return None


# Closed when the route function returns, before the response body is sent: a streamed answer
# (a clone, a static file, a log) must not hold a pooled connection for as long as it lasts.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def get_caller(request: Request, session: SessionDep) -> Caller:
    return caller_for_token(session, bearer_token(request))


PlatformDep = Annotated[Platform, Depends(get_platform)]
CallerDep = Annotated[Caller, Depends(get_caller)]


def get_caller_briefly(
    request: Request, platform: Annotated[Platform, Depends(get_platform)]
) -> Caller:
    """The caller, read in a session closed before the route runs: for async routes that await
    long work (a deploy stopped, a space removed) and open their own short sessions."""
    with session_scope(platform.engine) as session:
        return caller_for_token(session, bearer_token(request))


BriefCallerDep = Annotated[Caller, Depends(get_caller_briefly)]

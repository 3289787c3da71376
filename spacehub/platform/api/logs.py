"""Build and run logs as server-sent events, in the shape huggingface_hub parses."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from sqlmodel import Session

from spacehub.platform.build_logs import follow_log, log_event
from spacehub.platform.context import Platform
from spacehub.platform.db import session_scope
from spacehub.platform.deps import CallerDep, PlatformDep, SessionDep
from spacehub.platform.models import Build, BuildStatus, Space
from spacehub.platform.rollout import live_instance
from spacehub.platform.services import accounts, builds, spaces
from spacehub.platform.services.accounts import Caller

router = APIRouter(prefix="/api")
# Keep-alives sparser than huggingface_hub's 5 s read timeout, or fetch_space_logs never returns.
KEEPALIVE_SECONDS = 20


@router.get("/spaces/{owner}/{name}/logs/build")
def build_logs(
    owner: str, name: str, caller: CallerDep, session: SessionDep, platform: PlatformDep
):
    space = _loggable_space(session, caller, owner, name)
    return space_log(platform, session, space, "build")


@router.get("/spaces/{owner}/{name}/logs/run")
def run_logs(owner: str, name: str, caller: CallerDep, session: SessionDep, platform: PlatformDep):
    space = _loggable_space(session, caller, owner, name)
    return space_log(platform, session, space, "run")


def space_log(
    platform: Platform, session: Session, space: Space, kind: Literal["build", "run"]
) -> StreamingResponse:
    """The space's latest build log or its app's log, as server-sent events (API, dashboard)."""
    if kind == "build":
        return _sse(_build_events(platform, builds.latest_build(session, space)))
    return _sse(_run_events(platform, space))


def _loggable_space(session: Session, caller: Caller, owner: str, name: str) -> Space:
    space = spaces.visible_space(session, caller, owner, name)
    accounts.require_write(session, caller, spaces.owner_of(session, space))
    return space


async def _build_events(platform: Platform, build: Build | None) -> AsyncIterator[str]:
    if build is None or build.log_path is None:
        return

    async def finished() -> bool:
        with session_scope(platform.engine) as session:
            row = session.get(Build, build.id)
            return row is None or row.status in (BuildStatus.SUCCEEDED, BuildStatus.FAILED)

    async for event in follow_log(Path(build.log_path), finished):
        yield event


async def _run_events(platform: Platform, space: Space) -> AsyncIterator[str]:
    instance = live_instance(space.instance_state)  # None while asleep too
    if instance is None or platform.runtime is None:
        return
    async for line in platform.runtime.logs(instance, follow=True):
        yield log_event(line if line.endswith("\n") else line + "\n")


def _sse(events: AsyncIterator[str]) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        iterator = events.__aiter__()
        pending = asyncio.ensure_future(iterator.__anext__())
        try:
            while True:
                done, _ = await asyncio.wait({pending}, timeout=KEEPALIVE_SECONDS)
                if not done:
                    yield b"data: \n\n"
                    continue
                try:
                    event = pending.result()
                except StopAsyncIteration:
                    return
                yield f"data: {event}\n\n".encode()
                pending = asyncio.ensure_future(iterator.__anext__())
        finally:
            pending.cancel()

    return StreamingResponse(
        body(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )

"""Background care of running spaces: crash restarts with backoff, and re-adoption on start."""

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import col, select

from spacehub.core.stages import Stage
from spacehub.platform.context import Platform
from spacehub.platform.db import session_scope
from spacehub.platform.lifecycle import restart_space
from spacehub.platform.models import Space, utcnow
from spacehub.platform.rollout import (
    instance_from_state,
    instance_state,
    log_tail,
    publish_route,
)
from spacehub.platform.services.spaces import owner_of, set_stage
from spacehub.runtime.base import Instance, InstanceState

log = logging.getLogger(__name__)
WATCH_SECONDS = 1.0
FIRST_BACKOFF_SECONDS = 1.0


STABLE_SECONDS = 30.0


@dataclass
class CrashRecord:
    failures: int = 0
    next_try: float = 0.0
    restarted_at: float = 0.0


async def adopt_instances(platform: Platform) -> None:
    """After a platform restart: re-attach to live instances, stop orphans, start vanished ones."""
    runtime = platform.runtime
    existing = await runtime.list_instances() if runtime is not None else []
    adopted: set[str] = set()
    ours: set[str] = set()
    vanished: list[int] = []
    with session_scope(platform.engine) as session:
        for space in session.exec(select(Space)).all():
            ours.add(f"{owner_of(session, space).name}/{space.name}")
            if space.instance_state is not None and runtime is not None:
                instance = await runtime.adopt(space.instance_state["runtime"])
                space.instance_state = None if instance is None else instance_state(instance)
                if instance is not None:
                    adopted.add(_identity(instance))
                elif space.stage not in (Stage.PAUSED, Stage.DELETING):
                    vanished.append(space.id)
                session.add(space)
                session.commit()
            publish_route(platform, session, space)
    for orphan in existing:
        # Instances of our spaces that no space records: a rollout a crash cut short. Other
        # platforms' spaces may share the Docker engine: they are not ours to stop.
        if runtime is not None and orphan.space_id in ours and _identity(orphan) not in adopted:
            log.warning("stopping an orphan instance of %s", orphan.space_id)
            await runtime.stop(orphan)
    with session_scope(platform.engine) as session:
        for space_id in vanished:
            # Removed while the platform was down, or the host rebooted: start it again.
            space = session.get(Space, space_id)
            if space is not None:
                await restart_space(platform, session, space, factory=False)


def _identity(instance: Instance) -> str:
    return json.dumps(instance.state, sort_keys=True)


async def watch_spaces(platform: Platform, stop: asyncio.Event) -> None:
    """Restart crashed instances with backoff, and pick up releases other workers rolled out."""
    records: dict[int, CrashRecord] = {}
    synced_at = utcnow()
    while not stop.is_set():
        try:
            synced_at = _sync_routes(platform, synced_at)
            await _check_instances(platform, records)
        except Exception:
            log.exception("watching spaces failed; trying again")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), WATCH_SECONDS)


def _sync_routes(platform: Platform, since: datetime) -> datetime:
    """Republish the routes of spaces changed since `since` (a `spacehub worker` may have)."""
    now = utcnow()
    with session_scope(platform.engine) as session:
        changed = session.exec(
            select(Space).where(Space.updated_at >= since - timedelta(seconds=2))
        ).all()
        for space in changed:
            publish_route(platform, session, space)
    return now


async def _check_instances(platform: Platform, records: dict[int, CrashRecord]) -> None:
    runtime = platform.runtime
    if runtime is None:
        return
    with session_scope(platform.engine) as session:
        spaces = session.exec(select(Space).where(col(Space.instance_state).is_not(None))).all()
    for space in spaces:
        if space.instance_state is None or space.stage in (
            Stage.PAUSED,
            Stage.DELETING,
            Stage.RUNTIME_ERROR,
        ):
            continue
        instance = instance_from_state(space.instance_state)
        status = await runtime.status(instance)
        record = records.get(space.id)
        if status.state == InstanceState.RUNNING:
            if record is not None and time.monotonic() - record.restarted_at > STABLE_SECONDS:
                del records[space.id]  # up long enough: the next crash starts a fresh backoff
            continue
        record = records.setdefault(space.id, CrashRecord())
        if time.monotonic() < record.next_try:
            continue
        if record.failures >= platform.settings.max_restarts:
            reason = "out of memory" if status.oom_killed else f"exit code {status.exit_code}"
            tail = await log_tail(platform, instance)
            await _give_up(platform, space.id, f"the app kept crashing ({reason})\n{tail}")
            records.pop(space.id, None)
            continue
        record.failures += 1
        record.restarted_at = time.monotonic()
        record.next_try = record.restarted_at + FIRST_BACKOFF_SECONDS * 2 ** (record.failures - 1)
        log.warning("restarting %s after a crash (%d)", instance.space_id, record.failures)
        restarted = await runtime.restart(instance)
        with session_scope(platform.engine) as session:
            row = session.get(Space, space.id)
            if row is None:
                continue
            row.instance_state = instance_state(restarted)
            session.add(row)
            session.commit()
            publish_route(platform, session, row)


async def _give_up(platform: Platform, space_id: int, message: str) -> None:
    with session_scope(platform.engine) as session:
        space = session.get(Space, space_id)
        if space is None:
            return
        set_stage(session, space, Stage.RUNTIME_ERROR, message)
        publish_route(platform, session, space)

"""Live CPU and memory of every running space, for the admin console.

The one place the dashboard reaches the runtime's `usage`: every instance is asked at once,
all answers are waited for `USAGE_TIMEOUT_SECONDS` at most (an instance whose answer is late
shows as unknown), and the result is kept `USAGE_CACHE_SECONDS`, so that several admin pages
polling together cost one round of the engine. Docker's one-shot stats takes two samples about
a second apart, hence a bound a little above one second.
"""

import math
import time
import weakref
from dataclasses import dataclass

import anyio
from sqlmodel import Session, col, select

from spacehub.core.stages import Stage
from spacehub.platform.context import Platform
from spacehub.platform.db import session_scope
from spacehub.platform.models import Space, User
from spacehub.platform.rollout import live_instance
from spacehub.runtime.base import Instance, InstanceUsage, Runtime

USAGE_TIMEOUT_SECONDS = 1.5
USAGE_CACHE_SECONDS = 2.0
MEASURED_STAGES = (Stage.RUNNING, Stage.RUNNING_BUILDING, Stage.RUNNING_APP_STARTING)
MEBIBYTE = 1024 * 1024


@dataclass(frozen=True)
class SpaceUsage:
    cpu_percent: float
    memory_mib: float


class UsageSampler:
    """Asks a runtime for the usage of many instances, bounded in time, cached for a while."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._lock = anyio.Lock()
        self._taken_at = -math.inf
        self._answer: dict[str, InstanceUsage | None] = {}

    def cached(self) -> dict[str, InstanceUsage | None]:
        """The last answer, however old (what a page shows before its first poll)."""
        return dict(self._answer)

    async def sample(self, instances: dict[str, Instance]) -> dict[str, InstanceUsage | None]:
        async with self._lock:  # pages polling together share one round
            fresh = time.monotonic() - self._taken_at < USAGE_CACHE_SECONDS
            if fresh and set(self._answer) == set(instances):
                return dict(self._answer)
            answer: dict[str, InstanceUsage | None] = dict.fromkeys(instances)

            async def ask(space_id: str, instance: Instance) -> None:
                answer[space_id] = await self.runtime.usage(instance)

            with anyio.move_on_after(USAGE_TIMEOUT_SECONDS):
                async with anyio.create_task_group() as group:
                    for space_id, instance in instances.items():
                        group.start_soon(ask, space_id, instance)
            self._answer, self._taken_at = answer, time.monotonic()
            return dict(answer)


_samplers: "weakref.WeakKeyDictionary[Runtime, UsageSampler]" = weakref.WeakKeyDictionary()


def sampler_for(runtime: Runtime) -> UsageSampler:
    sampler = _samplers.get(runtime)
    if sampler is None:
        sampler = _samplers[runtime] = UsageSampler(runtime)
    return sampler


def running_instances(session: Session, platform: Platform) -> dict[str, Instance]:
    """The instances of spaces that run now ("owner/name": instance); frozen ones left out."""
    statement = (
        select(Space, User.name)
        .join(User, col(User.id) == Space.owner_id)
        .where(col(Space.stage).in_(MEASURED_STAGES))
        .where(col(Space.release_kind).in_(("image", "venv")))
    )
    found = {}
    for space, owner in session.exec(statement):
        space_id = f"{owner}/{space.name}"
        instance = live_instance(space.instance_state)
        if instance is not None and space_id not in platform.routes.frozen:
            found[space_id] = instance
    return found


async def space_usage(platform: Platform) -> dict[str, SpaceUsage | None]:
    """Every running space's CPU % and memory; None where the runtime did not say in time."""
    if platform.runtime is None:
        return {}

    def instances() -> dict[str, Instance]:
        with session_scope(platform.engine) as session:
            return running_instances(session, platform)

    measured = await sampler_for(platform.runtime).sample(await anyio.to_thread.run_sync(instances))
    return {space_id: _figures(usage) for space_id, usage in measured.items()}


def cached_space_usage(platform: Platform) -> dict[str, SpaceUsage | None]:
    """What the last `space_usage` found, without asking the runtime."""
    if platform.runtime is None:
        return {}
    return {
        space_id: _figures(usage)
        for space_id, usage in sampler_for(platform.runtime).cached().items()
    }


def _figures(usage: InstanceUsage | None) -> SpaceUsage | None:
    if usage is None:
        return None
    return SpaceUsage(round(usage.cpu_percent, 1), round(usage.memory_bytes / MEBIBYTE, 1))

"""The one owner of instances: it reconciles each space's desired state with what runs.

Builds record releases and the API records what it wants (services/desired.py); only this
module calls `Runtime.deploy/stop/restart`. It puts releases live behind a health gate, restarts
crashed instances with backoff, re-adopts instances after a platform restart and stops orphans,
and stops paused spaces. One operation per space at a time; no database session is held across
an await (every database call runs in a thread, in a session of its own).
"""

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TypeVar

from anyio import to_thread
from sqlmodel import Session, select

from spacehub.core.errors import SpacehubError
from spacehub.core.release import AppSpec, Artifact
from spacehub.core.space_config import SpaceConfig
from spacehub.core.stages import Stage
from spacehub.platform.build_logs import LogWriter
from spacehub.platform.context import Platform
from spacehub.platform.db import session_scope
from spacehub.platform.loops import idle
from spacehub.platform.models import Build, Space, utcnow
from spacehub.platform.proxy.activity import idle_seconds
from spacehub.platform.pruning import prune_releases
from spacehub.platform.rollout import (
    answers_http,
    app_spec,
    instance_state,
    live_instance,
    publish_route,
)
from spacehub.platform.route_table import Frozen, Sleeping
from spacehub.platform.services import desired
from spacehub.platform.services.builds import is_serving
from spacehub.platform.services.spaces import owner_of, set_stage
from spacehub.runtime.base import Instance, InstanceState, Runtime

log = logging.getLogger(__name__)
T = TypeVar("T")
WATCH_SECONDS = 1.0
HEALTH_POLL_SECONDS = 0.2
# A refused connect costs microseconds: a starting app is probed this often for its first
# FAST_HEALTH_SECONDS (most answer by then), so its route switches within ms of its answer.
FAST_HEALTH_POLL_SECONDS = 0.02
FAST_HEALTH_SECONDS = 30.0
LOG_TAIL_LINES = 30
FIRST_BACKOFF_SECONDS = 1.0
STABLE_SECONDS = 30.0  # up this long after a restart: the next crash starts a fresh backoff
QUIET_STAGES = frozenset({Stage.PAUSED, Stage.DELETING, Stage.RUNTIME_ERROR, Stage.SLEEPING})
FREEZABLE_STAGES = frozenset({Stage.RUNNING, Stage.RUNNING_BUILDING})


async def to_the_end(call: Awaitable[T]) -> T:
    """Await `call` to its end even when cancelled meanwhile, then let the cancel through.

    Runtime calls work in threads, and a cancel abandons the thread mid-call: a deploy went on
    to start an instance after its space had been removed.
    """
    task = asyncio.ensure_future(call)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait([task])
        raise


class StartFailed(Exception):
    def __init__(self, reason: str, log_tail: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.log_tail = log_tail


@dataclass
class CrashRecord:
    failures: int = 0
    next_try: float = 0.0
    restarted_at: float = 0.0


@dataclass(eq=False)
class FrozenInstance:
    """An instance the supervisor froze (or is freezing); `lock` orders freeze before thaw."""

    space_id: str
    instance: Instance
    mark: Frozen  # in the route table while frozen: the proxy holds the space's requests
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    thawing: "asyncio.Task[None] | None" = None
    thaw_requested: float | None = None


@dataclass(eq=False)
class SleepingSpace:
    """A space the supervisor put to sleep (or is putting): its mark holds the proxy's requests
    (route_table.Sleeping) until a wake, asked by the first of them, is over."""

    space_id: str
    mark: Sleeping
    waking: "asyncio.Task[None] | None" = None
    wake_requested: float | None = None


@dataclass(frozen=True)
class SpaceView:
    """What the supervisor needs of one space, read in one short session."""

    id: int
    space_id: str
    stage: Stage
    desired_state: str
    desired_release: dict | None
    desired_generation: int
    live_generation: int
    instance: Instance | None
    sleep_seconds: int = -1  # idle seconds before the app is stopped; -1: never

    @classmethod
    def of(cls, session: Session, space: Space, default_sleep: int = -1) -> "SpaceView":
        assert space.id is not None
        return cls(
            id=space.id,
            space_id=f"{owner_of(session, space).name}/{space.name}",
            stage=space.stage,
            desired_state=space.desired_state,
            desired_release=space.desired_release or desired.live_release(space),
            desired_generation=space.desired_generation,
            live_generation=space.live_generation,
            instance=live_instance(space.instance_state),
            sleep_seconds=desired.sleep_seconds(space, default_sleep),
        )

    @property
    def to_stop(self) -> bool:
        return self.desired_state == desired.PAUSED and self.instance is not None

    @property
    def to_roll_out(self) -> bool:
        return (
            self.desired_state == desired.RUNNING
            and self.desired_generation != self.live_generation
            and self.stage != Stage.DELETING
        )

    @property
    def to_watch(self) -> bool:
        return self.instance is not None and self.stage not in QUIET_STAGES


class Supervisor:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self._wakeup = asyncio.Event()
        self._tasks: dict[int, asyncio.Task] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._crashes: dict[int, CrashRecord] = {}
        self._frozen: dict[int, FrozenInstance] = {}
        self._asleep: dict[int, SleepingSpace] = {}

    @property
    def runtime(self) -> Runtime:
        assert self.platform.runtime is not None
        return self.platform.runtime

    def wake(self) -> None:
        """Look at every space now rather than at the next tick (a build or a route wrote)."""
        self._wakeup.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Reconcile every space each tick until `stop`; one failing space does not stop it."""
        try:
            while not stop.is_set():
                self._wakeup.clear()  # before the pass: a wake during it means another pass
                try:
                    await self._start_due_work()
                except Exception:
                    log.exception("supervising spaces failed; trying again")
                await idle(self._wakeup, stop, WATCH_SECONDS)
        finally:
            tasks = list(self._tasks.values())
            for task in tasks:
                task.cancel()  # a rollout cut short stops its new instance; the old one runs on
            await asyncio.gather(*tasks, return_exceptions=True)

    async def settle(self, space_row_id: int) -> None:
        """Carry out the space's desired state now and return once done (pause waits on it)."""
        await self._cancel(space_row_id)
        async with self._lock(space_row_id):
            await self._reconcile(space_row_id)

    async def remove_space(self, space_row_id: int, space_id: str) -> None:
        """Remove the space's instances, images and volumes: the space is being deleted."""
        await self._cancel(space_row_id)
        await self._unfreeze(space_row_id)
        async with self._lock(space_row_id):
            await self.runtime.remove_space(space_id)
            self._end_sleep(space_row_id, woken=False)
        self._locks.pop(space_row_id, None)
        self._crashes.pop(space_row_id, None)

    async def adopt(self) -> None:
        """After a platform restart: re-attach to live instances and stop orphans.

        A recorded instance that is gone (removed while the platform was down, or the host
        rebooted) is started again unless its space is paused.
        """
        runtime = self.runtime
        views = await to_thread.run_sync(self._read_views)
        existing = await runtime.list_instances()
        adopted: dict[int, Instance | None] = {}
        for view in views:
            if view.instance is not None:
                adopted[view.id] = await runtime.adopt(view.instance.state)
        await to_thread.run_sync(self._record_adoption, adopted)
        for view in views:
            if view.stage == Stage.SLEEPING:  # asleep when the last platform stopped
                self._mark_asleep(view)
        for instance in adopted.values():
            if instance is not None:  # frozen when the last platform stopped: nothing holds it
                await self.runtime.thaw(instance)
        kept = {_identity(instance) for instance in adopted.values() if instance is not None}
        ours = {view.space_id for view in views}
        for orphan in existing:
            # Instances of our spaces that no space records: a rollout a crash cut short. Other
            # platforms' spaces may share the Docker engine: they are not ours to stop.
            if orphan.space_id in ours and _identity(orphan) not in kept:
                log.warning("stopping an orphan instance of %s", orphan.space_id)
                await runtime.stop(orphan)

    def _lock(self, space_row_id: int) -> asyncio.Lock:
        return self._locks.setdefault(space_row_id, asyncio.Lock())

    async def _cancel(self, space_row_id: int) -> None:
        task = self._tasks.get(space_row_id)
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(task, return_exceptions=True)

    async def _start_due_work(self) -> None:
        for view in await to_thread.run_sync(self._read_views):
            self._forget_sleep_unless_asleep(view)
            busy = self._tasks.get(view.id)
            if busy is not None and not busy.done():
                continue
            if view.to_stop or view.to_roll_out or view.to_watch:
                task = asyncio.create_task(self._reconcile_locked(view.id))
                self._tasks[view.id] = task

    async def _reconcile_locked(self, space_row_id: int) -> None:
        try:
            async with self._lock(space_row_id):
                await self._reconcile(space_row_id)
        except Exception:
            log.exception("supervising space %s failed; trying again", space_row_id)

    async def _reconcile(self, space_row_id: int, steps: dict[str, float] | None = None) -> None:
        """`steps`, when given, gets the seconds a roll-out spent on each step (for a wake)."""
        view = await to_thread.run_sync(self._read_view, space_row_id)
        if view is None:
            self._end_sleep(space_row_id, woken=False)
            return
        self._forget_sleep_unless_asleep(view)
        if view.to_stop or view.to_roll_out:
            await self._unfreeze(view.id)  # the old instance serves until the new one answers
        if view.to_stop:
            await self._pause(view)
        elif view.to_roll_out:
            await self._roll_out(view, {} if steps is None else steps)
        elif view.to_watch:
            await self._watch(view)

    async def _pause(self, view: SpaceView) -> None:
        assert view.instance is not None
        await to_the_end(self.runtime.stop(view.instance))
        await to_thread.run_sync(self._record_instance, view.id, None)
        self._crashes.pop(view.id, None)

    async def _roll_out(self, view: SpaceView, steps: dict[str, float]) -> None:
        """Deploy → health gate → switch the route → stop the old instance.

        A start that fails leaves the old instance live and records why.
        """
        clock = time.monotonic()
        release = view.desired_release
        build_log = await to_thread.run_sync(self._build_log, release)
        if release is None:  # nothing built yet: the build that comes records a release
            await to_thread.run_sync(self._record_failure, view, None, None)
            return
        artifact = desired.wanted_artifact(release)
        if artifact.kind == "static":
            await to_thread.run_sync(self._record_live, view, artifact, None)
        else:
            prepared = await to_thread.run_sync(self._prepare, view.id, artifact)
            if prepared is None:
                return
            spec, timeout = prepared
            steps["prepare"], clock = _lap(clock)
            try:
                instance = await self._deploy(spec)
            except SpacehubError as error:
                reason = f"the release could not start: {error.message}"
                await to_thread.run_sync(self._record_failure, view, reason, build_log)
                return
            steps["start"], clock = _lap(clock)
            try:
                await self._wait_until_answers(instance, timeout)
            except StartFailed as error:
                await self.runtime.stop(instance)
                reason = f"{error.reason}\n{error.log_tail}".strip()
                await to_thread.run_sync(self._record_failure, view, reason, build_log)
                return
            except BaseException:  # a platform stop or a pause: leave no orphan
                await self.runtime.stop(instance)
                raise
            steps["until it answered"], clock = _lap(clock)
            await to_thread.run_sync(self._record_live, view, artifact, instance)
            steps["route"], clock = _lap(clock)
        self._crashes.pop(view.id, None)
        if build_log is not None:
            build_log.write("Live")
        if view.instance is not None:
            await self.runtime.stop(view.instance)
        await prune_releases(self.platform, view.id)

    async def _deploy(self, spec: AppSpec) -> Instance:
        """Deploy; if cancelled meanwhile, the deploy still ends and its instance is stopped."""
        deploying = asyncio.ensure_future(self.runtime.deploy(spec))
        try:
            return await to_the_end(deploying)
        except asyncio.CancelledError:
            if not deploying.cancelled() and deploying.exception() is None:
                await self.runtime.stop(deploying.result())
            raise

    async def _watch(self, view: SpaceView) -> None:
        """Restart a crashed instance with exponential backoff; RUNTIME_ERROR after max_restarts."""
        instance = view.instance
        assert instance is not None
        status = await self.runtime.status(instance)
        record = self._crashes.get(view.id)
        if status.state == InstanceState.RUNNING:
            if record is not None and time.monotonic() - record.restarted_at > STABLE_SECONDS:
                del self._crashes[view.id]
            if self._sleepy(view):
                if not await self._front_holds_connections(view):
                    await self._sleep(view)
            elif self._idle_long_enough(view) and not await self._front_holds_connections(view):
                await self._freeze(view)
            return
        await self._unfreeze(view.id)
        record = self._crashes.setdefault(view.id, CrashRecord())
        if time.monotonic() < record.next_try:
            return
        if record.failures >= self.platform.settings.max_restarts:
            reason = "out of memory" if status.oom_killed else f"exit code {status.exit_code}"
            tail = await self._log_tail(instance)
            message = f"the app kept crashing ({reason})\n{tail}"
            await to_thread.run_sync(self._give_up, view.id, message)
            self._crashes.pop(view.id, None)
            return
        record.failures += 1
        record.restarted_at = time.monotonic()
        record.next_try = record.restarted_at + FIRST_BACKOFF_SECONDS * 2 ** (record.failures - 1)
        log.warning("restarting %s after a crash (%d)", instance.space_id, record.failures)
        self.platform.metrics.restarts.labels(space=view.space_id).inc()
        restarted = await to_the_end(self.runtime.restart(instance))
        await to_thread.run_sync(self._record_instance, view.id, restarted)

    # Sleep's first tier: an idle instance is frozen; the proxy's next request thaws it.

    def _idle_long_enough(self, view: SpaceView) -> bool:
        after = self.platform.settings.freeze_after
        if not after or view.id in self._frozen or view.stage not in FREEZABLE_STAGES:
            return False
        return self._idle_seconds(view.space_id) >= after

    def _idle_seconds(self, space_id: str) -> float:
        routes = self.platform.routes
        activity = routes.activity.get(space_id) or routes.touch(space_id)  # the clock starts
        return idle_seconds(activity, time.monotonic())

    async def _front_holds_connections(self, view: SpaceView) -> bool:
        """Whether the nginx front has connections open to the space's app (a WebSocket or a
        stream it tunnels is in its log only at the end); if so the idle clock starts again."""
        front = self.platform.routes.front
        if front is None:
            return False
        if not await to_thread.run_sync(front.open_connections, view.space_id):
            return False
        self.platform.routes.touch(view.space_id)
        return True

    async def _front_released(self, view: SpaceView) -> bool:
        """With the space's mark set: wait until the nginx front sends its requests to the proxy
        (which holds them) and its traffic until then is counted; False if it still has a
        connection open to the app."""
        front = self.platform.routes.front
        return front is None or await to_thread.run_sync(front.release, view.space_id)

    async def _freeze(self, view: SpaceView) -> None:
        """Mark the space frozen (the proxy holds its requests), check it is still idle, freeze.

        The proxy counts a request open before it looks for the mark: a request either shows
        in the check here or waits for the thaw, never reaches a frozen app unannounced.
        """
        assert view.instance is not None
        loop = asyncio.get_running_loop()

        def thaw_soon() -> None:  # in the proxy's thread: the wake's clock starts there
            loop.call_soon_threadsafe(self._thaw_soon, view.id, time.monotonic())

        entry = FrozenInstance(view.space_id, view.instance, Frozen(request_thaw=thaw_soon))
        self._frozen[view.id] = entry
        self.platform.routes.frozen[view.space_id] = entry.mark
        released = await self._front_released(view)
        if not released or self._idle_seconds(view.space_id) < self.platform.settings.freeze_after:
            self._end_freeze(view.id, entry, thawed=True)  # a request came meanwhile
            return
        async with entry.lock:
            try:
                frozen = await to_the_end(self.runtime.freeze(view.instance))
            except Exception:
                log.exception("could not freeze %s; it runs on", view.space_id)
                frozen = False
        if not frozen:
            self._end_freeze(view.id, entry, thawed=True)
        else:
            log.info("froze %s: idle for %.0f s", view.space_id, self._idle_seconds(view.space_id))

    def _thaw_soon(self, space_row_id: int, asked: float) -> None:
        """A request for a frozen space came (called from the proxy's thread, on this loop)."""
        entry = self._frozen.get(space_row_id)
        if entry is not None and entry.thawing is None:
            entry.thaw_requested = asked
            entry.thawing = asyncio.create_task(self._thaw(space_row_id, entry))

    async def _unfreeze(self, space_row_id: int) -> None:
        """Thaw now if frozen: before the instance is stopped, restarted or replaced."""
        entry = self._frozen.get(space_row_id)
        if entry is None:
            return
        if entry.thawing is None:
            entry.thawing = asyncio.create_task(self._thaw(space_row_id, entry))
        await asyncio.shield(entry.thawing)

    async def _thaw(self, space_row_id: int, entry: FrozenInstance) -> None:
        async with entry.lock:
            if self._frozen.get(space_row_id) is not entry:
                return  # the freeze did not happen
            try:
                # Awaited directly, not through to_the_end's task: a request waits on this, and
                # under load every hop through the loop adds up (the runtime's thread, if any,
                # runs to its end anyway).
                await self.runtime.thaw(entry.instance)
                thawed = True
            except Exception:
                log.exception("could not thaw %s", entry.space_id)
                thawed = False
            self._end_freeze(space_row_id, entry, thawed)
        if entry.thaw_requested is not None:
            waited = time.monotonic() - entry.thaw_requested
            self.platform.metrics.wakes.labels(tier="frozen").observe(waited)

    def _end_freeze(self, space_row_id: int, entry: FrozenInstance, thawed: bool) -> None:
        if self._frozen.get(space_row_id) is entry:
            del self._frozen[space_row_id]
        if self.platform.routes.frozen.get(entry.space_id) is entry.mark:
            del self.platform.routes.frozen[entry.space_id]
        if not entry.mark.thawed.done():
            entry.mark.thawed.set_result(thawed)  # the held requests go on

    # Sleep's second tier: an instance idle for the space's sleep time is stopped (SLEEPING);
    # the proxy's next request wakes it through `_wake_soon`, as a thaw.

    def _sleepy(self, view: SpaceView) -> bool:
        if view.sleep_seconds <= 0 or view.stage != Stage.RUNNING or view.id in self._asleep:
            return False
        return self._idle_seconds(view.space_id) >= view.sleep_seconds

    def _mark_asleep(self, view: SpaceView) -> SleepingSpace:
        """Put the space's mark in the route table: from now on the proxy holds its requests."""
        entry = self._asleep.get(view.id)
        if entry is None:
            loop = asyncio.get_running_loop()
            wake_soon = partial(loop.call_soon_threadsafe, self._wake_soon, view.id)
            mark = Sleeping(wake_soon, wake_timeout=self.platform.settings.wake_timeout)
            entry = self._asleep[view.id] = SleepingSpace(view.space_id, mark)
            self.platform.routes.sleeping[view.space_id] = mark
        return entry

    async def _sleep(self, view: SpaceView) -> None:
        """Mark the space asleep, check it is still idle, then stop its instance (under the
        space's lock: a wake asked meanwhile waits for the stop, then starts it again)."""
        assert view.instance is not None
        self._mark_asleep(view)
        released = await self._front_released(view)
        idle = self._idle_seconds(view.space_id)
        if not released or idle < view.sleep_seconds:
            self._end_sleep(view.id, woken=True)  # a request came meanwhile: it goes on
            return
        await self._unfreeze(view.id)  # the sleeping mark holds the requests from here on
        await to_the_end(self.runtime.stop(view.instance))
        await to_thread.run_sync(self._record_asleep, view.id)
        self._crashes.pop(view.id, None)
        log.info("%s is asleep: idle for %.0f s", view.space_id, idle)

    def _wake_soon(self, space_row_id: int) -> None:
        """A request for a sleeping space came (called from the proxy's thread, on this loop)."""
        entry = self._asleep.get(space_row_id)
        if entry is None or entry.waking is not None:
            return
        if entry.wake_requested is None:
            entry.wake_requested = time.monotonic()
        entry.waking = asyncio.create_task(self._wake(space_row_id, entry))

    async def _wake(self, space_row_id: int, entry: SleepingSpace) -> None:
        woken = False
        steps: dict[str, float] = {}
        try:
            async with self._lock(space_row_id):
                if self._asleep.get(space_row_id) is not entry:
                    return
                if await to_thread.run_sync(self._want_wake, space_row_id):
                    await self._reconcile(space_row_id, steps)  # the live release, health-gated
                    woken = await to_thread.run_sync(self._serving, space_row_id)
                else:  # paused, rebuilt or deleted meanwhile: the route says what answers
                    woken = True
        except Exception:
            log.exception("could not wake %s", entry.space_id)
        finally:
            self._end_sleep(space_row_id, woken, entry)
        if woken and entry.wake_requested is not None:
            waited = time.monotonic() - entry.wake_requested
            self.platform.metrics.wakes.labels(tier="stopped").observe(waited)
            took = ", ".join(f"{step} {seconds:.2f} s" for step, seconds in steps.items())
            log.info("woke %s in %.2f s (%s)", entry.space_id, waited, took)

    def _forget_sleep_unless_asleep(self, view: SpaceView) -> None:
        """A space that left SLEEPING otherwise than by a wake (a restart, a push, a pause):
        its mark goes, and requests held on it look at its route again."""
        entry = self._asleep.get(view.id)
        if entry is None or entry.waking is not None or view.stage == Stage.SLEEPING:
            return
        if view.stage != Stage.RUNNING or view.instance is None:  # not one being put asleep
            self._end_sleep(view.id, woken=True, entry=entry)

    def _end_sleep(
        self, space_row_id: int, woken: bool, entry: SleepingSpace | None = None
    ) -> None:
        entry = entry or self._asleep.get(space_row_id)
        if entry is None:
            return
        if self._asleep.get(space_row_id) is entry:
            del self._asleep[space_row_id]
        if self.platform.routes.sleeping.get(entry.space_id) is entry.mark:
            del self.platform.routes.sleeping[entry.space_id]
        if not entry.mark.woken.done():
            entry.mark.woken.set_result(woken)

    async def _wait_until_answers(self, instance: Instance, timeout: float) -> None:
        """Return once the instance answers HTTP at all (any status); else raise StartFailed."""
        started = time.monotonic()
        deadline = started + timeout
        next_status_check = 0.0
        while time.monotonic() < deadline:
            if await answers_http(instance.host, instance.port):
                return
            if time.monotonic() >= next_status_check:
                status = await self.runtime.status(instance)
                if status.state != InstanceState.RUNNING:
                    reason = (
                        "the app was killed: out of memory"
                        if status.oom_killed
                        else f"the app exited with code {status.exit_code} while starting"
                    )
                    raise StartFailed(reason, await self._log_tail(instance))
                next_status_check = time.monotonic() + 1
            fast = time.monotonic() - started < FAST_HEALTH_SECONDS
            await asyncio.sleep(FAST_HEALTH_POLL_SECONDS if fast else HEALTH_POLL_SECONDS)
        raise StartFailed(
            f"the app did not answer HTTP on port {instance.port} within {timeout:.0f} s "
            "(startup_duration_timeout)",
            await self._log_tail(instance),
        )

    async def _log_tail(self, instance: Instance, count: int = LOG_TAIL_LINES) -> str:
        lines: list[str] = []
        try:
            async for line in self.runtime.logs(instance):
                lines = [*lines[-(count - 1) :], line.rstrip("\n")]
        except Exception:  # the instance may be gone already: the reason matters more
            log.exception("could not read the log of %s", instance.space_id)
        return "\n".join(lines)

    # Database work: each runs in a thread, in a short session of its own.

    def _read_views(self) -> list[SpaceView]:
        default = self.platform.settings.default_sleep_time
        with session_scope(self.platform.engine) as session:
            spaces = session.exec(select(Space)).all()
            return [SpaceView.of(session, space, default) for space in spaces]

    def _read_view(self, space_row_id: int) -> SpaceView | None:
        default = self.platform.settings.default_sleep_time
        with session_scope(self.platform.engine) as session:
            space = session.get(Space, space_row_id)
            return None if space is None else SpaceView.of(session, space, default)

    def _build_log(self, release: dict | None) -> LogWriter | None:
        """The log of the build that made `release`: its start (or failure) is told there too."""
        build_id = (release or {}).get("build")
        if build_id is None:
            return None
        with session_scope(self.platform.engine) as session:
            build = session.get(Build, build_id)
            path = build.log_path if build is not None else None
        return LogWriter(Path(path)) if path else None

    def _prepare(self, space_row_id: int, artifact: Artifact) -> tuple[AppSpec, float] | None:
        with session_scope(self.platform.engine) as session:
            space = session.get(Space, space_row_id)
            if space is None:
                return None
            config = SpaceConfig.model_validate(space.card_data)
            return app_spec(self.platform, session, space, artifact), config.startup_timeout_seconds

    def _record_live(self, view: SpaceView, artifact: Artifact, instance: Instance | None) -> None:
        with session_scope(self.platform.engine) as session:
            space = session.get(Space, view.id)
            if space is None:
                return
            space.current_commit = artifact.commit
            space.release_ref = artifact.ref
            space.release_kind = artifact.kind
            space.instance_state = instance_state(instance) if instance else None
            space.live_generation = view.desired_generation
            space.stage = Stage.RUNNING
            space.error_message = None
            space.updated_at = utcnow()
            session.add(space)
            session.commit()
            publish_route(self.platform, session, space)
        self.platform.routes.touch(view.space_id)  # a new instance is as good as visited

    def _record_failure(
        self, view: SpaceView, reason: str | None, build_log: LogWriter | None
    ) -> None:
        """A release that did not start: RUNTIME_ERROR, unless the old release still serves."""
        if build_log is not None and reason is not None:
            build_log.write(f"Start failed: {reason}")
        with session_scope(self.platform.engine) as session:
            space = session.get(Space, view.id)
            if space is None:
                return
            space.live_generation = view.desired_generation
            session.add(space)
            session.commit()
            if reason is not None:
                if space.instance_state is not None and is_serving(space):
                    message = f"the new release did not start: {reason}"
                    set_stage(session, space, Stage.RUNNING, message)
                else:
                    set_stage(session, space, Stage.RUNTIME_ERROR, reason)
            publish_route(self.platform, session, space)

    def _record_instance(self, space_row_id: int, instance: Instance | None) -> None:
        with session_scope(self.platform.engine) as session:
            space = session.get(Space, space_row_id)
            if space is None:
                return
            space.instance_state = instance_state(instance) if instance else None
            space.updated_at = utcnow()
            session.add(space)
            session.commit()
            publish_route(self.platform, session, space)

    def _record_asleep(self, space_row_id: int) -> None:
        with session_scope(self.platform.engine) as session:
            space = session.get(Space, space_row_id)
            if space is None:
                return
            desired.record_asleep(space, utcnow())
            space.updated_at = utcnow()
            session.add(space)
            session.commit()
            publish_route(self.platform, session, space)

    def _want_wake(self, space_row_id: int) -> bool:
        with session_scope(self.platform.engine) as session:
            space = session.get(Space, space_row_id)
            return space is not None and desired.want_wake(session, space)

    def _serving(self, space_row_id: int) -> bool:
        with session_scope(self.platform.engine) as session:
            space = session.get(Space, space_row_id)
            return space is not None and is_serving(space)

    def _give_up(self, space_row_id: int, message: str) -> None:
        with session_scope(self.platform.engine) as session:
            space = session.get(Space, space_row_id)
            if space is not None:
                set_stage(session, space, Stage.RUNTIME_ERROR, message)
                publish_route(self.platform, session, space)

    def _record_adoption(self, adopted: dict[int, Instance | None]) -> None:
        with session_scope(self.platform.engine) as session:
            for space in session.exec(select(Space)).all():
                if space.id in adopted:
                    instance = adopted[space.id]
                    space.instance_state = instance_state(instance) if instance else None
                    session.add(space)
                    session.commit()
                    vanished = instance is None and space.desired_state == desired.RUNNING
                    pending = space.desired_generation != space.live_generation
                    if vanished and not pending and space.stage != Stage.DELETING:
                        desired.want_restart(session, space)
                publish_route(self.platform, session, space)


def _lap(since: float) -> tuple[float, float]:
    """Seconds since `since`, and now."""
    now = time.monotonic()
    return now - since, now


def _identity(instance: Instance) -> str:
    return json.dumps(instance.state, sort_keys=True)

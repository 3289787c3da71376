"""The build worker: claim a queued build, turn its commit into a release and record it.

It never starts an instance: the supervisor puts the recorded release live.
"""

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from anyio import to_thread

from spacehub.builder.build_processes import CANCELLED, time_limit_message
from spacehub.builder.limits import BuildLimits, BuildStopped
from spacehub.builder.plan import BuildPlan, plan_build
from spacehub.builder.static import build_static_release
from spacehub.core.errors import InvalidConfig, NoAppFile, Unprocessable
from spacehub.core.release import Artifact
from spacehub.core.space_config import SpaceConfig
from spacehub.core.stages import Stage, building_stage
from spacehub.platform.build_logs import LogWriter
from spacehub.platform.context import Platform
from spacehub.platform.db import session_scope
from spacehub.platform.git.repos import export_commit, head_commit, repo_path
from spacehub.platform.loops import idle
from spacehub.platform.models import Build, Space
from spacehub.platform.services import builds, desired, secrets
from spacehub.platform.services.spaces import owner_of, set_stage
from spacehub.platform.settings import Settings

if TYPE_CHECKING:
    from spacehub.builder.venv import VenvBuildOptions

log = logging.getLogger(__name__)
IDLE_POLL_SECONDS = 1.0


STOP_GRACE_SECONDS = 5.0
CANCEL_POLL_SECONDS = 0.5  # how often a running build's row is read for a cancel
HANDED_BACK = "this worker's heartbeat lapsed and the build went back to the queue"
# Builders enforce the time limit themselves; past it and this grace, the worker cancels one
# that did not (or a step outside them, such as exporting the commit).
TIMEOUT_GRACE_SECONDS = 5.0
Result = TypeVar("Result")


def worker_process() -> str:
    """This process as a build worker, `host:pid`: its heartbeat's name."""
    return f"{socket.gethostname()}:{os.getpid()}"


def worker_prefix() -> str:
    """Names the builds this process claims, so that it can hand them back when it stops."""
    return f"{worker_process()}:"


async def run_build_workers(platform: Platform, count: int, stop: asyncio.Event, kind: str) -> None:
    """Run `count` build workers until `stop`; a build still running then is queued again.

    `kind` is what they make: images (`docker`) or venv releases (`local`). Workers get a
    short grace to finish; a longer build is abandoned (its Docker build may go on, and fills
    the cache) and rebuilt by the next worker to claim it.
    """
    if count <= 0:
        return
    heartbeat = asyncio.create_task(keep_beating(platform, stop))
    workers = [
        asyncio.create_task(run_build_worker(platform, f"{worker_prefix()}{index}", stop, kind))
        for index in range(count)
    ]
    if kind == "local":  # the first build should not wait for the interpreter's lookup
        warm = threading.Thread(target=_find_python_early, args=(platform.settings,), daemon=True)
        warm.start()
    await stop.wait()
    _, unfinished = await asyncio.wait(workers, timeout=STOP_GRACE_SECONDS)
    for task in unfinished:
        task.cancel()
    await asyncio.gather(*workers, heartbeat, return_exceptions=True)
    handed_back = await to_thread.run_sync(_leave, platform)
    if handed_back:
        log.warning("queued %d interrupted build(s) again for the next start", handed_back)


async def keep_beating(platform: Platform, stop: asyncio.Event) -> None:
    """Record this process's heartbeat, and hand back the builds of workers whose own lapsed
    (another machine's worker that died, or one of this machine's that is gone)."""
    settings = platform.settings
    lapse = timedelta(seconds=settings.worker_lapse)
    while not stop.is_set():
        try:
            handed_back = await to_thread.run_sync(_beat, platform, lapse)
        except Exception:  # a database away for a moment: beat again at the next turn
            log.exception("could not record this worker's heartbeat")
        else:
            if handed_back:
                log.warning("queued %d build(s) of workers that stopped again", handed_back)
                platform.build_wakeup.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), settings.worker_heartbeat)


def worker_process_gone(worker: str) -> bool:
    """Whether `host:pid` names a process of this machine that has ended (a zombie included)."""
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2 :].startswith("Z")


def _beat(platform: Platform, lapse: timedelta) -> int:
    with session_scope(platform.engine) as session:
        builds.beat(session, worker_process())
        return builds.hand_back_abandoned(session, lapse, worker_process_gone)


def _leave(platform: Platform) -> int:
    """A clean stop: this process's running builds go back to the queue, its heartbeat goes."""
    with session_scope(platform.engine) as session:
        handed_back = builds.requeue_interrupted(session, worker_prefix())
        builds.leave(session, worker_process())
        return handed_back


async def run_build_worker(platform: Platform, name: str, stop: asyncio.Event, kind: str) -> None:
    """Build until `stop` is set; one failing build is recorded and the loop goes on."""
    while not stop.is_set():
        try:
            build = await to_thread.run_sync(_claim, platform, name)
        except Exception:
            # A database that is busy or away for a moment must not end the worker for good.
            log.exception("worker %s could not claim a build; trying again", name)
            build = None
        if build is None:
            platform.build_wakeup.clear()
            await idle(platform.build_wakeup, stop, IDLE_POLL_SECONDS)
            continue
        try:
            await process_build(platform, build, kind)
        except Exception as error:
            log.exception("build %s failed unexpectedly", build.id)
            await _fail_soon(platform, build, Stage.BUILD_ERROR, f"internal error: {error}")


def _claim(platform: Platform, worker: str) -> Build | None:
    with session_scope(platform.engine) as session:
        return builds.claim(session, worker)


@dataclass(frozen=True)
class BuildJob:
    """What one claimed build needs, read from the database once."""

    build: Build
    space_id: int
    space_name: str
    label: str
    sdk: str
    repo: Path
    workdir: Path
    build_args: dict[str, str]
    build_secrets: dict[str, str]
    log: LogWriter
    limits: BuildLimits


def build_limits(settings: Settings) -> BuildLimits:
    """One build's limits from the settings (0 there: no limit), with a fresh cancel Event."""
    return BuildLimits(
        cpus=settings.build_cpus or None,
        memory_bytes=settings.build_memory or None,
        timeout_seconds=settings.build_timeout or None,
    )


class BuildWatch:
    """Sets a running build's cancel Event when the API asks (on its row, so that a cancel
    reaches builds of `serve` and of `spacehub worker` alike), when its time is up, or when
    the build was handed to another worker (this one's heartbeat had lapsed)."""

    def __init__(self, platform: Platform, build_id: int, worker: str, limits: BuildLimits) -> None:
        self.platform = platform
        self.build_id = build_id
        self.worker = worker
        self.limits = limits
        self.reason: str | None = None

    async def run(self) -> None:
        timeout = self.limits.timeout_seconds
        deadline = None if timeout is None else time.monotonic() + timeout + TIMEOUT_GRACE_SECONDS
        while self.reason is None:
            await asyncio.sleep(CANCEL_POLL_SECONDS)
            try:
                asked = await to_thread.run_sync(self._asked_to_stop)
            except Exception:  # a database away for a moment: look again
                log.exception("could not read build %s for a cancel", self.build_id)
                asked = None
            if asked is not None:
                self.reason = asked
            elif deadline is not None and time.monotonic() > deadline:
                self.reason = time_limit_message(timeout or 0)
        self.limits.cancel.set()

    def _asked_to_stop(self) -> str | None:
        """CANCELLED, HANDED_BACK (another worker has the build now), or None: go on."""
        with session_scope(self.platform.engine) as session:
            if builds.cancel_asked(session, self.build_id):
                return CANCELLED
            if not builds.still_claimed(session, self.build_id, self.worker):
                return HANDED_BACK
            return None

    def check(self) -> None:
        if self.reason is not None:
            raise BuildStopped(self.reason)


async def process_build(platform: Platform, build: Build, kind: str) -> None:
    job = await to_thread.run_sync(_prepare, platform, build)
    if job is None:
        return
    assert job.build.id is not None
    watch = BuildWatch(platform, job.build.id, job.build.claimed_by or "", job.limits)
    watcher = asyncio.create_task(watch.run())
    try:
        await _run_job(platform, job, watch, kind)
    except BuildStopped as error:
        await to_thread.run_sync(_stopped, platform, job, watch.reason or error.message)
    except asyncio.CancelledError:
        job.limits.cancel.set()  # the platform stops: end the build's processes too
        raise
    finally:
        watcher.cancel()
        await to_thread.run_sync(lambda: shutil.rmtree(job.workdir, ignore_errors=True))


async def _run_job(platform: Platform, job: BuildJob, watch: BuildWatch, kind: str) -> None:
    job.log.write(f"Building {job.space_name} at commit {job.build.commit}")
    try:
        await to_thread.run_sync(
            export_commit, job.repo, job.build.commit, job.workdir, platform.settings.data_dir
        )
    except Unprocessable as error:  # an LFS file whose object the space lacks
        job.log.write(f"{Stage.BUILD_ERROR}: {error.message}")
        await _fail_soon(platform, job.build, Stage.BUILD_ERROR, error.message)
        return
    try:
        plan = await to_thread.run_sync(plan_build, job.workdir, job.sdk)
    except (InvalidConfig, NoAppFile) as error:
        stage = Stage.CONFIG_ERROR if isinstance(error, InvalidConfig) else Stage.NO_APP_FILE
        job.log.write(f"{stage}: {error.message}")
        await _fail_soon(platform, job.build, stage, error.message)
        return
    for warning in plan.warnings:
        job.log.write(f"Warning: {warning}")
    await to_thread.run_sync(_record_config, platform, job.space_id, plan)
    watch.check()
    artifact = await _build_artifact(platform, job, plan, kind)
    if artifact is None:
        return
    watch.check()  # a cancel that came as the build finished: the release does not go live
    job.log.write(
        "Build finished; starting the app" if artifact.kind != "static" else "Release ready"
    )
    await to_thread.run_sync(_record_release, platform, job, artifact)
    if platform.supervisor is not None:  # in `serve`; from a `spacehub worker`, its next tick
        platform.supervisor.wake()


def _prepare(platform: Platform, build: Build) -> BuildJob | None:
    """Follow the branch to its newest commit; None when that commit is live already.

    Blocking (git and SQL): run it in a thread.
    """
    settings = platform.settings
    log = LogWriter(settings.logs_dir / "builds" / f"{build.id}.log")
    with session_scope(platform.engine) as session:
        space = session.get(Space, build.space_id)
        row = session.get(Build, build.id)
        assert space is not None and row is not None
        owner = owner_of(session, space)
        repo = repo_path(settings.repos_dir, owner.name, space.name)
        head = head_commit(repo)
        if head is not None and head != row.commit:
            log.write(f"main moved to {head} since this build was queued: building it")
            builds.retarget(session, row, head)
        row.log_path = str(log.path)
        session.add(row)
        session.commit()
        if row.commit == space.current_commit and not row.no_cache and builds.is_serving(space):
            log.write(f"{row.commit} is live already")
            builds.finish(session, row)
            set_stage(session, space, Stage.RUNNING)
            return None
        going_live = space.desired_generation != space.live_generation
        if going_live and not row.no_cache and row.commit == desired.wanted_commit(space):
            log.write(f"{row.commit} is built already and going live")
            builds.finish(session, row)
            return None
        set_stage(session, space, building_stage(builds.is_serving(space)))
        return BuildJob(
            build=row,
            space_id=space.id,
            space_name=f"{owner.name}/{space.name}",
            label=space.label,
            sdk=space.sdk,
            repo=repo,
            workdir=settings.data_dir / "work" / str(build.id),
            build_args={row.key: row.value for row in secrets.list_variables(session, space)},
            build_secrets=secrets.secret_values(session, platform.secret_box, space),
            log=log,
            limits=build_limits(settings),
        )


async def _build_artifact(
    platform: Platform, job: BuildJob, plan: BuildPlan, kind: str
) -> Artifact | None:
    settings = platform.settings
    if plan.config.sdk == "static":
        releases = settings.releases_dir / job.label
        return await to_thread.run_sync(
            build_static_release, job.workdir, releases, job.build.commit, job.build.no_cache
        )
    if kind == "local":
        return await _build_venv_release(platform, job, plan)
    from spacehub.builder.image import BuildFailed, ImageBuildOptions, build_image

    options = ImageBuildOptions(
        base_image=settings.base_image,
        ca_bundle=settings.build_ca_bundle,
        pip_index_url=settings.build_pip_index_url,
        no_cache=job.build.no_cache,
        platform_id=platform.platform_id,
        docker_cli=settings.docker_cli,
        registry_mirror=settings.registry_mirror,
        registry=settings.registry,
        secrets_digest_key=platform.secret_box.derived_key("build-cache"),
        context_cache_dir=settings.build_contexts_dir,
    )
    try:
        return await _in_daemon_thread(
            lambda: build_image(
                plan,
                job.workdir,
                space_id=job.space_name,
                label=job.label,
                commit=job.build.commit,
                build_args=job.build_args,
                build_secrets=job.build_secrets,
                options=options,
                log=job.log.write,
                limits=job.limits,
            )
        )
    except BuildFailed as error:
        job.log.write(f"Build failed: {error}")
        message = f"{error}\n{job.log.tail()}".strip()
        await _fail_soon(platform, job.build, Stage.BUILD_ERROR, message)
        return None


def _venv_options(settings: Settings, no_cache: bool = False) -> "VenvBuildOptions":
    from spacehub.builder.venv import VenvBuildOptions

    return VenvBuildOptions(
        venvs_dir=settings.data_dir / "venvs",
        cache_dir=settings.data_dir / "cache" / "uv",
        ca_bundle=settings.build_ca_bundle,
        pip_index_url=settings.build_pip_index_url,
        no_cache=no_cache,
    )


def _find_python_early(settings: Settings) -> None:
    from spacehub.builder.venv import find_python_early

    version = SpaceConfig.model_fields["python_version"].default
    find_python_early(_venv_options(settings), version)


async def _build_venv_release(
    platform: Platform, job: BuildJob, plan: BuildPlan
) -> Artifact | None:
    """The local runtime's release: the app's files and a shared venv made with uv."""
    from spacehub.builder.venv import BuildFailed, build_venv_release

    settings = platform.settings
    options = _venv_options(settings, no_cache=job.build.no_cache)
    try:
        return await _in_daemon_thread(
            lambda: build_venv_release(
                plan,
                job.workdir,
                settings.releases_dir / job.label,
                job.build.commit,
                options,
                build_secrets={**job.build_args, **job.build_secrets},
                log=job.log.write,
                limits=job.limits,
            )
        )
    except BuildFailed as error:
        job.log.write(f"Build failed: {error}")
        await _fail_soon(platform, job.build, Stage.BUILD_ERROR, str(error))
        return None


def _record_config(platform: Platform, space_id: int | None, plan: BuildPlan) -> None:
    with session_scope(platform.engine) as session:
        space = session.get(Space, space_id)
        assert space is not None
        space.card_data = plan.config.card_data
        space.app_port = plan.config.app_port if plan.config.sdk == "docker" else 7860
        session.add(space)
        session.commit()


def _record_release(platform: Platform, job: BuildJob, artifact: Artifact) -> None:
    """The release is the space's desired one now (the supervisor puts it live); the build
    is over."""
    with session_scope(platform.engine) as session:
        space = session.get(Space, job.space_id)
        assert space is not None
        desired.want_release(session, space, artifact, job.build.id)
        builds.finish(session, session.get(Build, job.build.id))


def _stopped(platform: Platform, job: BuildJob, message: str) -> None:
    """A cancel puts the space back as it was; a limit is a BUILD_ERROR naming it, the old
    release (if any) still live. A build handed back is another worker's now: left alone."""
    if message == HANDED_BACK:
        job.log.write(f"Build stopped on this worker: {message}")
        return
    if message != CANCELLED:
        job.log.write(f"Build stopped: {message}")
        _fail(platform, job.build, Stage.BUILD_ERROR, f"{message}\n{job.log.tail()}".strip())
        return
    job.log.write("Build cancelled")
    with session_scope(platform.engine) as session:
        row = session.get(Build, job.build.id)
        if row is not None:
            builds.finish(session, row, error=CANCELLED)
        space = session.get(Space, job.space_id)
        if space is not None:
            builds.settle_cancelled(session, space)


async def _fail_soon(platform: Platform, build: Build, stage: Stage, message: str) -> None:
    await to_thread.run_sync(_fail, platform, build, stage, message)


def _fail(platform: Platform, build: Build, stage: Stage, message: str) -> None:
    with session_scope(platform.engine) as session:
        row = session.get(Build, build.id)
        space = session.get(Space, build.space_id)
        if row is not None:
            builds.finish(session, row, error=message)
        if space is not None:
            set_stage(session, space, stage, message)


async def _in_daemon_thread(work: Callable[[], Result]) -> Result:
    """Run blocking `work` in a daemon thread: a stop can abandon it without waiting for it."""
    loop = asyncio.get_running_loop()
    result: asyncio.Future[Result] = loop.create_future()

    def run() -> None:
        try:
            value = work()
        except BaseException as error:
            loop.call_soon_threadsafe(_settle, result, None, error)
        else:
            loop.call_soon_threadsafe(_settle, result, value, None)

    threading.Thread(target=run, name="spacehub-build", daemon=True).start()
    return await result


def _settle(result: asyncio.Future, value: object, error: BaseException | None) -> None:
    if result.done():  # abandoned by a stop
        return
    if error is not None:
        result.set_exception(error)
    else:
        result.set_result(value)

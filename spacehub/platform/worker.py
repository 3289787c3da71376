"""The build worker: claim a queued build, turn its commit into a release, roll it out."""

import asyncio
import logging
import os
import shutil
import socket

from anyio import to_thread

from spacehub.builder.plan import BuildPlan, plan_build
from spacehub.builder.static import build_static_release
from spacehub.core.errors import InvalidConfig, NoAppFile
from spacehub.core.release import Artifact
from spacehub.core.stages import Stage, building_stage
from spacehub.platform.build_logs import LogWriter
from spacehub.platform.context import Platform
from spacehub.platform.db import session_scope
from spacehub.platform.git.repos import export_commit, repo_path
from spacehub.platform.models import Build, Space
from spacehub.platform.rollout import StartFailed, roll_out
from spacehub.platform.services import builds, secrets
from spacehub.platform.services.spaces import owner_of, set_stage

log = logging.getLogger(__name__)
IDLE_POLL_SECONDS = 1.0


def worker_name(index: int = 0) -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{index}"


async def run_build_worker(platform: Platform, name: str, stop: asyncio.Event) -> None:
    """Build until `stop` is set; one failing build is recorded and the loop goes on."""
    while not stop.is_set():
        with session_scope(platform.engine) as session:
            build = builds.claim(session, name)
        if build is None:
            platform.build_wakeup.clear()
            waits = [
                asyncio.ensure_future(platform.build_wakeup.wait()),
                asyncio.ensure_future(stop.wait()),
            ]
            await asyncio.wait(
                waits, timeout=IDLE_POLL_SECONDS, return_when=asyncio.FIRST_COMPLETED
            )
            for waiter in waits:
                waiter.cancel()
            continue
        try:
            await process_build(platform, build)
        except Exception as error:
            log.exception("build %s failed unexpectedly", build.id)
            _fail(platform, build, Stage.BUILD_ERROR, f"internal error: {error}")


async def process_build(platform: Platform, build: Build) -> None:
    settings = platform.settings
    with session_scope(platform.engine) as session:
        space = session.get(Space, build.space_id)
        assert space is not None
        owner = owner_of(session, space)
        build_args = {row.key: row.value for row in secrets.list_variables(session, space)}
        build_secrets = secrets.secret_values(session, platform.secret_box, space)
    writer = LogWriter(settings.logs_dir / "builds" / f"{build.id}.log")
    with session_scope(platform.engine) as session:
        row = session.get(Build, build.id)
        assert row is not None
        row.log_path = str(writer.path)
        session.add(row)
        session.commit()
    workdir = settings.data_dir / "work" / str(build.id)
    with session_scope(platform.engine) as session:
        space = session.get(Space, build.space_id)
        assert space is not None
        set_stage(session, space, building_stage(builds.is_serving(space)))
    try:
        writer.write(f"Building {owner.name}/{space.name} at commit {build.commit}")
        repo = repo_path(settings.repos_dir, owner.name, space.name)
        await to_thread.run_sync(export_commit, repo, build.commit, workdir)
        try:
            plan = await to_thread.run_sync(plan_build, workdir, space.sdk)
        except InvalidConfig as error:
            writer.write(f"Configuration error: {error.message}")
            _fail(platform, build, Stage.CONFIG_ERROR, error.message)
            return
        except NoAppFile as error:
            writer.write(error.message)
            _fail(platform, build, Stage.NO_APP_FILE, error.message)
            return
        _record_config(platform, space.id, plan)
        artifact = await _build_artifact(
            platform,
            build,
            plan,
            workdir,
            writer,
            build_args,
            build_secrets,
            f"{owner.name}/{space.name}",
            space.label,
        )
        if artifact is None:
            return
        writer.write(
            "Build finished; starting the app" if artifact.kind == "image" else "Release ready"
        )
        try:
            await roll_out(platform, space.id, artifact, plan.config)
        except StartFailed as error:
            writer.write(f"Start failed: {error.reason}\n{error.log_tail}")
            _fail_start(platform, build, f"{error.reason}\n{error.log_tail}".strip())
            return
        with session_scope(platform.engine) as session:
            builds.finish(session, session.get(Build, build.id))
        writer.write("Live")
    finally:
        await to_thread.run_sync(lambda: shutil.rmtree(workdir, ignore_errors=True))


async def _build_artifact(
    platform: Platform,
    build: Build,
    plan: BuildPlan,
    workdir,
    writer: LogWriter,
    build_args: dict[str, str],
    build_secrets: dict[str, str],
    space_id: str,
    label: str,
) -> Artifact | None:
    settings = platform.settings
    if plan.config.sdk == "static":
        releases = settings.releases_dir / label
        return await to_thread.run_sync(build_static_release, workdir, releases, build.commit)
    if platform.runtime is None:
        message = (
            "no container runtime: start a Docker engine to run gradio, streamlit and docker spaces"
        )
        writer.write(message)
        _fail(platform, build, Stage.BUILD_ERROR, message)
        return None
    from spacehub.builder.image import BuildFailed, ImageBuildOptions, build_image

    options = ImageBuildOptions(
        base_image=settings.base_image,
        ca_bundle=settings.build_ca_bundle,
        pip_index_url=settings.build_pip_index_url,
        no_cache=build.no_cache,
    )
    try:
        return await to_thread.run_sync(
            lambda: build_image(
                plan,
                workdir,
                space_id=space_id,
                label=label,
                commit=build.commit,
                build_args=build_args,
                build_secrets=build_secrets,
                options=options,
                log=writer.write,
            )
        )
    except BuildFailed as error:
        writer.write(f"Build failed: {error}")
        _fail(platform, build, Stage.BUILD_ERROR, f"{error}\n{writer.tail()}".strip())
        return None


def _record_config(platform: Platform, space_id: int | None, plan: BuildPlan) -> None:
    with session_scope(platform.engine) as session:
        space = session.get(Space, space_id)
        assert space is not None
        space.card_data = plan.config.card_data
        space.app_port = plan.config.app_port if plan.config.sdk == "docker" else 7860
        session.add(space)
        session.commit()


def _fail(platform: Platform, build: Build, stage: Stage, message: str) -> None:
    with session_scope(platform.engine) as session:
        row = session.get(Build, build.id)
        space = session.get(Space, build.space_id)
        if row is not None:
            builds.finish(session, row, error=message)
        if space is not None:
            set_stage(session, space, stage, message)


def _fail_start(platform: Platform, build: Build, message: str) -> None:
    """A new release that does not start: RUNTIME_ERROR, unless the old release still serves."""
    with session_scope(platform.engine) as session:
        space = session.get(Space, build.space_id)
        serving = space is not None and space.instance_state is not None
    if serving:
        _fail(platform, build, Stage.RUNNING, f"the new release did not start: {message}")
    else:
        _fail(platform, build, Stage.RUNTIME_ERROR, message)

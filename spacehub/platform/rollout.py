"""Put a release live: deploy → health gate → switch the route → stop the old instance."""

import asyncio
import logging
import os
import time

from sqlmodel import Session

from spacehub.core.hardware import flavor
from spacehub.core.release import AppSpec, Artifact, Limits
from spacehub.core.space_config import SpaceConfig
from spacehub.core.stages import Stage, starting_stage
from spacehub.platform.context import Platform
from spacehub.platform.db import session_scope
from spacehub.platform.models import Space, utcnow
from spacehub.platform.route_table import Route, Upstream
from spacehub.platform.services import accounts, secrets
from spacehub.platform.services.builds import is_serving
from spacehub.platform.services.spaces import owner_of
from spacehub.runtime.base import Instance, InstanceState

log = logging.getLogger(__name__)
HEALTH_POLL_SECONDS = 0.2
LOG_TAIL_LINES = 30


class StartFailed(Exception):
    def __init__(self, reason: str, log_tail: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.log_tail = log_tail


def publish_route(platform: Platform, session: Session, space: Space) -> None:
    """Tell the proxy where the space answers now (None: the control plane answers for it)."""
    owner = owner_of(session, space)
    upstream = None
    static_root = None
    if space.instance_state is not None and is_serving(space):
        upstream = Upstream(space.instance_state["host"], space.instance_state["port"])
    elif space.release_kind == "static" and space.release_ref and is_serving(space):
        static_root = os.path.realpath(space.release_ref)  # the proxy serves its files
    platform.routes.set(
        Route(
            owner=owner.name,
            name=space.name,
            label=space.label,
            upstream=upstream,
            private=space.private,
            readers=accounts.readers(session, space) if space.private else frozenset(),
            static_root=static_root,
        )
    )


def app_environment(platform: Platform, session: Session, space: Space) -> dict[str, str]:
    """The environment of DESIGN.md §6, then the space's variables and secrets."""
    owner = owner_of(session, space)
    settings = platform.settings
    env = {
        "SPACE_ID": f"{owner.name}/{space.name}",
        "SPACE_AUTHOR_NAME": owner.name,
        "SPACE_REPO_NAME": space.name,
        "SPACE_TITLE": str(space.card_data.get("title") or space.name),
        "SPACE_HOST": f"{space.label}.{settings.apps_domain}",
        "SYSTEM": "spaces",
        "GRADIO_SERVER_NAME": "0.0.0.0",
        "GRADIO_SERVER_PORT": "7860",
        # Gradio answers under both / and this prefix, and builds its public root from
        # X-Forwarded-Host plus this prefix: the path form and the subdomain form both work.
        "GRADIO_ROOT_PATH": f"/apps/{owner.name}/{space.name}",
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    env.update({row.key: row.value for row in secrets.list_variables(session, space)})
    env.update(secrets.secret_values(session, platform.secret_box, space))
    return env


def app_spec(platform: Platform, session: Session, space: Space, artifact: Artifact) -> AppSpec:
    hardware = flavor(space.hardware)
    memory = hardware.memory_bytes
    if platform.settings.app_memory_limit:
        memory = min(memory, platform.settings.app_memory_limit)
    owner = owner_of(session, space)
    return AppSpec(
        space_id=f"{owner.name}/{space.name}",
        commit=artifact.commit,
        artifact=artifact,
        port=space.app_port,
        limits=Limits(cpus=hardware.cpus, memory_bytes=memory, pids=hardware.pids),
        env=app_environment(platform, session, space),
        persistent_storage=space.storage is not None,
    )


def instance_state(instance: Instance) -> dict:
    return {
        "host": instance.host,
        "port": instance.port,
        "commit": instance.commit,
        "space_id": instance.space_id,
        "runtime": instance.state,
    }


def instance_from_state(state: dict) -> Instance:
    return Instance(
        space_id=state["space_id"],
        commit=state["commit"],
        host=state["host"],
        port=state["port"],
        state=state["runtime"],
    )


async def roll_out(
    platform: Platform, space_id: int, artifact: Artifact, config: SpaceConfig
) -> None:
    """Make `artifact` the live release; on failure the old release stays live (StartFailed)."""
    with session_scope(platform.engine) as session:
        space = session.get(Space, space_id)
        assert space is not None
        old = instance_from_state(space.instance_state) if space.instance_state else None
        if artifact.kind == "static":
            _record_release(session, space, artifact, None)
            publish_route(platform, session, space)
        else:
            runtime = platform.runtime
            assert runtime is not None
            space.stage = starting_stage(is_serving(space))
            session.add(space)
            session.commit()
            spec = app_spec(platform, session, space, artifact)
            instance = await runtime.deploy(spec)
            try:
                await wait_until_answers(platform, instance, config.startup_timeout_seconds)
            except BaseException:  # a failed start, or a platform stop: leave no orphan
                await runtime.stop(instance)
                raise
            _record_release(session, space, artifact, instance)
            publish_route(platform, session, space)
    if old is not None and platform.runtime is not None:
        await platform.runtime.stop(old)


def _record_release(
    session: Session, space: Space, artifact: Artifact, instance: Instance | None
) -> None:
    space.current_commit = artifact.commit
    space.release_ref = artifact.ref
    space.release_kind = artifact.kind
    space.instance_state = instance_state(instance) if instance else None
    space.stage = Stage.RUNNING
    space.error_message = None
    space.updated_at = utcnow()
    session.add(space)
    session.commit()


async def wait_until_answers(platform: Platform, instance: Instance, timeout: float) -> None:
    """Return once the instance answers HTTP at all (any status); raise StartFailed otherwise."""
    runtime = platform.runtime
    assert runtime is not None
    deadline = time.monotonic() + timeout
    next_status_check = 0.0
    while time.monotonic() < deadline:
        if await answers_http(instance.host, instance.port):
            return
        if time.monotonic() >= next_status_check:
            status = await runtime.status(instance)
            if status.state != InstanceState.RUNNING:
                reason = (
                    "the app was killed: out of memory"
                    if status.oom_killed
                    else (f"the app exited with code {status.exit_code} while starting")
                )
                raise StartFailed(reason, await log_tail(platform, instance))
            next_status_check = time.monotonic() + 1
        await asyncio.sleep(HEALTH_POLL_SECONDS)
    raise StartFailed(
        f"the app did not answer HTTP on port {instance.port} within {timeout:.0f} s "
        "(startup_duration_timeout)",
        await log_tail(platform, instance),
    )


async def answers_http(host: str, port: int) -> bool:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 2)
    except (OSError, TimeoutError):
        return False
    try:
        writer.write(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        await writer.drain()
        first = await asyncio.wait_for(reader.read(5), 5)
        return first == b"HTTP/"
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()


async def log_tail(platform: Platform, instance: Instance, count: int = LOG_TAIL_LINES) -> str:
    assert platform.runtime is not None
    lines: list[str] = []
    try:
        async for line in platform.runtime.logs(instance):
            lines = [*lines[-(count - 1) :], line.rstrip("\n")]
    except Exception:  # the instance may be gone already: the reason matters more than its log
        log.exception("could not read the log of %s", instance.space_id)
    return "\n".join(lines)

"""What putting a release live needs: the app's spec and environment, its route, its health.

The supervisor (supervisor.py) is the one that deploys, gates and switches.
"""

import asyncio
import os

from sqlmodel import Session

from spacehub.core.hardware import flavor
from spacehub.core.release import AppSpec, Artifact, Limits
from spacehub.platform.context import Platform
from spacehub.platform.models import Space
from spacehub.platform.route_table import Route, Upstream
from spacehub.platform.services import secrets
from spacehub.platform.services.builds import is_serving
from spacehub.platform.services.spaces import owner_of
from spacehub.runtime.base import Instance


def publish_route(platform: Platform, session: Session, space: Space) -> None:
    """Tell the proxy where the space answers now (None: the control plane answers for it)."""
    owner = owner_of(session, space)
    upstream = None
    static_root = None
    instance = live_instance(space.instance_state)
    if instance is not None and is_serving(space):
        upstream = Upstream(instance.host, instance.port)
    elif space.release_kind == "static" and space.release_ref and is_serving(space):
        static_root = os.path.realpath(space.release_ref)  # the proxy serves its files
    platform.routes.set(
        Route(
            owner=owner.name,
            name=space.name,
            label=space.label,
            upstream=upstream,
            private=space.private,
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


def live_instance(state: dict | None) -> Instance | None:
    """The instance an `instance_state` records; None for none, or for a sleeping space's record
    (when it fell asleep, services/desired.py)."""
    return instance_from_state(state) if state and "host" in state else None


def instance_from_state(state: dict) -> Instance:
    return Instance(
        space_id=state["space_id"],
        commit=state["commit"],
        host=state["host"],
        port=state["port"],
        state=state["runtime"],
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

"""The control plane: create_app(settings) and the lifespan that runs its background tasks."""

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from email.utils import formatdate

from anyio import to_thread
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from spacehub.platform import apps_pages
from spacehub.platform.api import admin as admin_api
from spacehub.platform.api import commits as commits_api
from spacehub.platform.api import health, hub, repo_files, unknown
from spacehub.platform.api import logs as logs_api
from spacehub.platform.api import metrics as metrics_api
from spacehub.platform.api import repos as repos_api
from spacehub.platform.api import sources as sources_api
from spacehub.platform.api import ssh_keys as ssh_keys_api
from spacehub.platform.api import tokens as tokens_api
from spacehub.platform.context import Platform
from spacehub.platform.dashboard.install import install_dashboard
from spacehub.platform.db import migrate, session_scope
from spacehub.platform.errors import install_error_handlers
from spacehub.platform.git import http_backend, lfs, webhooks
from spacehub.platform.git.ssh import start_ssh_server
from spacehub.platform.instance_id import platform_instance_id
from spacehub.platform.limits import BodySizeLimit
from spacehub.platform.loops import keep_running
from spacehub.platform.openapi_schema import install_valid_openapi
from spacehub.platform.pushes import build_unbuilt_heads
from spacehub.platform.services import accounts, builds
from spacehub.platform.settings import Settings
from spacehub.platform.supervisor import Supervisor
from spacehub.platform.worker import run_build_workers, worker_process_gone
from spacehub.runtime import load_runtime_class
from spacehub.runtime.base import Runtime

log = logging.getLogger(__name__)


def create_app(settings: Settings, platform: Platform | None = None) -> FastAPI:
    platform = platform or Platform.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await to_thread.run_sync(prepare_database, platform)
        ssh = await start_ssh_server(platform)
        runtime = platform.runtime = await connect_runtime(settings)
        supervisor = platform.supervisor = Supervisor(platform)
        await supervisor.adopt()
        stop = asyncio.Event()
        loops: dict[str, Callable[[], Awaitable[None]]] = {
            "build-workers": lambda: run_build_workers(
                platform, settings.build_workers, stop, runtime.name
            ),
            "supervisor": lambda: supervisor.run(stop),
            "unbuilt-heads": lambda: build_unbuilt_heads(platform, stop),
        }
        tasks = [
            asyncio.create_task(keep_running(name, run, stop, platform.loops))
            for name, run in loops.items()
        ]
        try:
            yield
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            if ssh is not None:
                await ssh.stop()

    app = FastAPI(title="spacehub", lifespan=lifespan)
    app.state.platform = platform
    app.add_middleware(BodySizeLimit, limit=settings.max_request_bytes)
    app.add_middleware(FreshDateHeader)
    install_error_handlers(app)
    install_valid_openapi(app)
    app.include_router(repos_api.router)
    app.include_router(hub.router)
    app.include_router(commits_api.router)
    app.include_router(health.router)
    app.include_router(logs_api.router)
    app.include_router(admin_api.router)
    app.include_router(metrics_api.router)
    app.include_router(ssh_keys_api.router)
    app.include_router(tokens_api.router)
    app.include_router(webhooks.router)
    app.include_router(sources_api.router)
    install_dashboard(app)  # its /spaces/{owner}/{name}/… pages before git's catch-all
    app.include_router(lfs.router)  # before the git bridge's catch-all path
    app.include_router(repo_files.router)  # idem: /spaces/{owner}/{name}/resolve/…
    app.include_router(http_backend.router)
    app.include_router(apps_pages.router)
    app.include_router(unknown.router)  # last: answers every /api/… path no route serves
    return app


class FreshDateHeader:
    """A `Date` made per response; serve it with uvicorn's own `date_header=False`.

    uvicorn refreshes its Date once a second, so it lags by up to 2 s; huggingface_hub's
    `fetch_space_logs()` stops at the first event stamped more than 1 s after Date, and so
    returned nothing for a build that had just finished.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_date(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(name.lower() == b"date" for name, _ in headers):
                    headers.append((b"date", formatdate(usegmt=True).encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_date)


def prepare_database(platform: Platform) -> None:
    """Migrate, create the admin on first start, and requeue builds a stop interrupted: those
    of workers that are gone, not those of live workers on other machines or beside us."""
    settings = platform.settings
    migrate(platform.engine)
    preset = settings.admin_token.get_secret_value() if settings.admin_token else None
    lapse = timedelta(seconds=settings.worker_lapse)
    with session_scope(platform.engine) as session:
        token = accounts.ensure_admin(session, settings.admin_name, preset)
        requeued = builds.hand_back_abandoned(session, lapse, worker_process_gone)
    if requeued:
        log.warning("requeued %d build(s) interrupted by the last stop", requeued)
    if token is not None:
        token_file = settings.data_dir / "admin-token"
        token_file.touch(mode=0o600)
        token_file.write_text(token + "\n")
        if preset is None:
            print(f"Admin user {settings.admin_name!r} created. Admin token (shown once): {token}")
            print(f"It is also stored in {token_file} (mode 0600).")


async def connect_runtime(settings: Settings) -> Runtime:
    """`docker` must answer, `swarm` must be a swarm manager; `local` runs apps as processes;
    `auto` is Docker if it answers."""
    platform_id = platform_instance_id(settings.data_dir)
    if settings.runtime == "swarm":
        swarm_class = load_runtime_class("swarm")
        # Not a swarm manager, or no engine: SwarmUnavailable says so and how to fix it.
        runtime = await to_thread.run_sync(lambda: swarm_class(platform_id=platform_id))
        print(
            f"Runtime: swarm (apps run as Swarm services, images from {settings.registry})",
            flush=True,
        )
        return runtime
    if settings.runtime != "local":
        try:
            runtime_class = load_runtime_class("docker")
            runtime = await to_thread.run_sync(lambda: runtime_class(platform_id=platform_id))
            print("Runtime: docker (apps run as containers)", flush=True)
            return runtime
        except Exception as error:
            if settings.runtime == "docker":
                raise RuntimeError(
                    f"runtime 'docker' was asked for but Docker does not answer: {error}"
                ) from error
            log.warning("no Docker engine answers (%s): apps run as local processes", error)
    local_class = load_runtime_class("local")
    runtime = local_class(data_dir=settings.data_dir, platform_id=platform_id)  # type: ignore[call-arg]
    print("Runtime: local (apps run as processes in shared virtual environments)", flush=True)
    return runtime

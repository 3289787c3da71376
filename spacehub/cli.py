"""spacehub's commands: serve, worker, base-image, ssh-keys, users, orgs, tokens, git hook."""

import argparse
import contextlib
import gc
import logging
import os
import signal
import sys
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio

    from pydantic import ValidationError

    from spacehub.platform.settings import Settings

log = logging.getLogger("spacehub")
# The proxy's thread and the control plane's share the GIL: one waiting for it gets it after
# this long at most (Python's default, 5 ms, made each database call of an API request under
# load wait that long each time it gave the GIL up).
GIL_SWITCH_SECONDS = 0.0005


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    if words == ["git-hook", "post-receive"]:
        # Runs inside every push, which waits for it: import only what the hook needs (this
        # path skips argparse, asyncio and the account commands: ~50 ms a push).
        from spacehub.platform.git.hooks import run_post_receive

        return run_post_receive(sys.stdin.read(), dict(os.environ))
    from spacehub import account_commands

    parser = argparse.ArgumentParser(prog="spacehub", description="Self-hosted Spaces.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the platform (proxy, API, git, builds)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--data-dir", type=Path)
    serve.add_argument("--runtime", choices=["auto", "docker", "local", "swarm"])
    serve.add_argument("--apps-domain")
    serve.add_argument(
        "--proxy",
        choices=["python", "nginx"],
        help="the front door: spacehub's proxy, or a managed nginx before it (TLS, more cores)",
    )
    worker = commands.add_parser("worker", help="run builds only, against the same database")
    worker.add_argument("--data-dir", type=Path)
    worker.add_argument(
        "--runtime",
        choices=["auto", "docker", "local", "swarm"],
        help="what serve runs, hence what to build: images (docker, swarm) or venvs (local)",
    )
    base = commands.add_parser(
        "base-image",
        help="provide base images (default: the platform's), pulled or else built offline",
        description="Each IMAGE not on the Docker engine is pulled (through "
        "SPACEHUB_REGISTRY_MIRROR when set), else built from Debian packages and npm: "
        "python:3.9-slim, python:3.11-slim, python:3.13-slim, node:18, node:20, node:22 and "
        "their -slim variants.",
    )
    base.add_argument("images", nargs="*", metavar="IMAGE")
    base.add_argument("--all", action="store_true", help="every base it can build offline")
    base.add_argument("--data-dir", type=Path)
    _add_ssh_keys_parser(commands)
    account_commands.add_parsers(commands, account_commands.where_options())
    hook = commands.add_parser("git-hook", help=argparse.SUPPRESS)
    hook.add_argument("name", choices=["post-receive"])
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # 7 lines per start

    from pydantic import ValidationError

    from spacehub.platform.settings import Settings

    overrides = {
        key: value
        for key, value in vars(args).items()
        if key in ("host", "port", "data_dir", "runtime", "apps_domain", "proxy")
        and value is not None
    }
    try:
        settings = Settings(**overrides)
    except ValidationError as error:
        print(settings_problems(error), file=sys.stderr)
        return 2
    if args.command == "serve":
        from spacehub.platform.front import FrontError
        from spacehub.platform.settings import make_socket_dir

        try:
            make_socket_dir(settings)
        except (OSError, ValueError) as error:
            print(f"spacehub serve: {error}", file=sys.stderr)
            return 1
        try:
            _run(serve_platform(settings))
        except FrontError as error:
            print(f"spacehub serve: {error.message}", file=sys.stderr)
            return 1
    elif args.command == "worker":
        _run(run_workers(settings))
    elif args.command == "base-image":
        return provide_base_images(settings, args.images, every=args.all)
    elif args.command == "ssh-keys":
        return manage_ssh_keys(settings, args)
    elif args.command in ("users", "orgs", "tokens"):
        return account_commands.manage_accounts(settings, args)
    return 0


def settings_problems(error: "ValidationError") -> str:
    """One line per bad setting, named as its environment variable, without a traceback."""
    lines = []
    for problem in error.errors():
        name = "_".join(str(part) for part in problem["loc"])
        cause = (problem.get("ctx") or {}).get("error")
        message = str(cause) if cause is not None else problem["msg"]
        lines.append(f"spacehub: {f'SPACEHUB_{name.upper()}: ' if name else ''}{message}")
    return "\n".join(lines)


def provide_base_images(settings: "Settings", images: list[str], *, every: bool) -> int:
    """`spacehub base-image`: each image present, pulled or built; 1 if any is not."""
    from spacehub.builder.base_image import BaseImageUnavailable, ensure_base_image, known_bases

    wanted = list(dict.fromkeys([*images, *(known_bases() if every else [])]))
    failed = 0
    for image in wanted or [settings.base_image]:
        try:
            ensure_base_image(image, print, mirror=settings.registry_mirror)
        except BaseImageUnavailable as error:
            print(error.message, file=sys.stderr)
            failed += 1
        except (RuntimeError, ValueError) as error:
            print(f"{image}: {error}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


def _add_ssh_keys_parser(commands: "argparse._SubParsersAction") -> None:
    data_dir = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: an action's parser must not reset a --data-dir given before the action.
    data_dir.add_argument("--data-dir", type=Path, default=argparse.SUPPRESS)
    keys = commands.add_parser(
        "ssh-keys", help="users' public keys for git over SSH", parents=[data_dir]
    )
    actions = keys.add_subparsers(dest="action", required=True)
    add = actions.add_parser(
        "add", help="register KEYFILE (a .pub file, - for stdin) for USER", parents=[data_dir]
    )
    add.add_argument("user")
    add.add_argument("keyfile")
    add.add_argument("--title", default="", help="default: the key's comment")
    listing = actions.add_parser("list", help="keys of USER, or of everyone", parents=[data_dir])
    listing.add_argument("user", nargs="?")
    remove = actions.add_parser("remove", help="delete the key with this ID", parents=[data_dir])
    remove.add_argument("id", type=int)


def manage_ssh_keys(settings: "Settings", args: argparse.Namespace) -> int:
    """`spacehub ssh-keys add|list|remove` against the data dir's database."""
    from spacehub import account_commands
    from spacehub.core.errors import SpacehubError
    from spacehub.platform.models import User
    from spacehub.platform.services import accounts, ssh_keys

    try:
        with account_commands.data_dir_session(settings) as session:
            if args.action == "add":
                text = sys.stdin.read() if args.keyfile == "-" else Path(args.keyfile).read_text()
                user = accounts.user_by_name(session, args.user)
                key = ssh_keys.add_key(session, user, text, args.title)
                print(f"added key {key.id} ({key.fingerprint}) for {user.name}: {key.title}")
            elif args.action == "list":
                user = accounts.user_by_name(session, args.user) if args.user else None
                for key in ssh_keys.list_keys(session, user):
                    holder = session.get(User, key.user_id)
                    used = (
                        key.last_used_at.isoformat(timespec="seconds")
                        if key.last_used_at
                        else "never"
                    )
                    print(
                        f"{key.id}\t{holder.name if holder else '?'}\t{key.fingerprint}\t"
                        f"{key.title}\tlast used: {used}"
                    )
            else:
                key = ssh_keys.remove_key(session, args.id)
                print(f"removed key {key.id} ({key.fingerprint}): {key.title}")
    except (SpacehubError, OSError) as error:
        print(f"spacehub ssh-keys: {getattr(error, 'message', error)}", file=sys.stderr)
        return 1
    return 0


def _run(coroutine: Coroutine[object, object, None]) -> None:
    try:
        import uvloop
    except ImportError:
        import asyncio

        asyncio.run(coroutine)
    else:
        uvloop.run(coroutine)


def _stop_event() -> "asyncio.Event":
    import asyncio

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    return stop


async def serve_platform(settings: "Settings") -> None:
    """The proxy on the public port; the control plane (uvicorn) on a unix socket behind it.

    With `proxy = nginx`, a managed nginx takes the public ports and the proxy listens on unix
    sockets behind it (spacehub.platform.front).
    """
    import asyncio

    import uvicorn

    from spacehub.platform.app import create_app
    from spacehub.platform.app_access import AppAccess
    from spacehub.platform.context import Platform
    from spacehub.platform.git.hooks import install_hooks
    from spacehub.platform.proxy import ProxyThread, proxy_context
    from spacehub.platform.proxy.context import ProxyContext
    from spacehub.platform.route_table import Upstream

    class QuietServer(uvicorn.Server):
        """uvicorn without its own signal handling: the proxy and uvicorn stop together."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    from spacehub.platform.front import FrontError, NginxFront, find_nginx, front_config
    from spacehub.platform.proxy import ProxyLimits

    if settings.tls_cert is not None and settings.proxy != "nginx":
        raise FrontError("TLS (tls_cert) is answered by the nginx front: serve with --proxy nginx")
    front_settings = front_config(settings, ProxyLimits()) if settings.proxy == "nginx" else None
    nginx = find_nginx() if front_settings is not None else None
    sys.setswitchinterval(GIL_SWITCH_SECONDS)
    stop = _stop_event()
    install_hooks(settings)
    app = create_app(settings)
    platform: Platform = app.state.platform
    socket_path = settings.control_socket  # its folder made by main()
    socket_path.unlink(missing_ok=True)
    server = QuietServer(
        uvicorn.Config(
            app,
            uds=str(socket_path),
            log_level="warning",
            timeout_graceful_shutdown=10,
            date_header=False,  # FreshDateHeader sets it per response
        )
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            serving.result()
            return
        await asyncio.sleep(0.02)

    control_plane = Upstream(unix_path=str(socket_path))
    authorize = AppAccess(platform.engine, platform.app_signer).authorize
    behind_front = front_settings is not None
    main_origin = proxy_context(
        platform.routes,
        control_plane,
        settings.apps_domain,
        authorize,
        apps_origin=settings.effective_apps_url,
        behind_front=behind_front,
    )
    apps_origin = proxy_context(
        platform.routes,
        control_plane,
        settings.apps_domain,
        authorize,
        apps_only=True,
        behind_front=behind_front,
    )
    if front_settings is None:
        listeners: list[tuple[str, int | None, ProxyContext]] = [
            (settings.host, settings.port, main_origin),
            (settings.host, settings.effective_apps_port, apps_origin),
        ]
    else:
        listeners = [
            (str(front_settings.main_socket), None, main_origin),
            (str(front_settings.apps_socket), None, apps_origin),
        ]
        for path in (front_settings.main_socket, front_settings.apps_socket):
            path.unlink(missing_ok=True)
    proxy = ProxyThread(listeners)
    proxy.start()
    front = None
    if front_settings is not None and nginx is not None:
        front = NginxFront(front_settings, platform.routes, proxy.call_soon, binary=nginx)
        try:
            front.start()
        except BaseException:
            front.stop()
            proxy.stop()
            server.should_exit = True
            await serving
            raise
        platform.routes.front = front
    # What startup made lives as long as the process: out of the collector's reach, the full
    # collections that many requests' garbage triggers stay short.
    gc.freeze()
    print(f"spacehub is serving at {settings.effective_public_url}", flush=True)
    print(f"Apps answer at {settings.effective_apps_url}/apps/{{owner}}/{{name}}/", flush=True)
    await _print_image_builder(settings, platform.runtime.name if platform.runtime else "")
    await stop.wait()
    print("spacehub is stopping", flush=True)
    if front is not None:
        platform.routes.front = None
        front.stop()
    proxy.stop_accepting()
    server.should_exit = True
    await serving
    proxy.stop()


async def _print_image_builder(settings: "Settings", kind: str) -> None:
    """Say which docker CLI builds images, or what to install when none can."""
    from anyio import to_thread

    from spacehub.builder.buildkit import NoBuildKit, find_buildkit

    if kind not in ("docker", "swarm"):
        return
    try:
        cli = await to_thread.run_sync(find_buildkit, settings.docker_cli)
    except NoBuildKit as error:
        print(f"Builds: none possible: {error.message}", flush=True)
        return
    print(f"Builds: {cli.description}", flush=True)
    if settings.registry is not None:
        print(f"Builds: images pushed to the registry {settings.registry}", flush=True)


def release_kind(runtime: str) -> str:
    """What builds make for a runtime: `docker` and `swarm` build images, `local` venv releases.

    `auto` is decided as `serve` decides it (Docker when an engine answers), without making a
    runtime: a build-only process starts, adopts and stops no instance.
    """
    if runtime in ("docker", "local"):
        return runtime
    if runtime == "swarm":
        return "docker"
    from spacehub.runtime.docker import engine_answers

    return "docker" if engine_answers() else "local"


async def run_workers(settings: "Settings") -> None:
    """Builds only, beside a `spacehub serve` that owns the schema, the admin and requeueing.

    It makes no runtime: the releases it records are put live by the supervisor in `serve`.
    """
    from spacehub.platform.context import Platform
    from spacehub.platform.db import migrate
    from spacehub.platform.worker import run_build_workers

    stop = _stop_event()
    platform = Platform.from_settings(settings)
    # On the loop: nothing else runs on it yet (and a thread started here left the first
    # SIGTERM of the next half second unanswered under uvloop).
    migrate(platform.engine)
    kind = release_kind(settings.runtime)
    what = "images" if kind == "docker" else "virtual environments"
    print(
        f"spacehub worker: builds {kind} releases ({what}); this process runs no app",
        flush=True,
    )
    await _print_image_builder(settings, kind)
    await run_build_workers(platform, settings.build_workers, stop, kind)

"""Real servers behind the proxy in tests: a small aiohttp app and a unix-socket control plane."""

import asyncio
import hashlib
import json
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import uvicorn
from aiohttp import web

from spacehub.platform.front import FrontConfig, NginxFront, Tls, address
from spacehub.platform.proxy import ProxyLimits, proxy_context, start_proxy
from spacehub.platform.proxy.server import listen
from spacehub.platform.route_table import Route, RouteTable, Upstream

GOOD_TOKEN = "good-token"


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class AppUpstream:
    """An app with the behaviours a proxy must carry: echo, SSE, chunks, uploads, WebSocket."""

    def __init__(self) -> None:
        self.gates: dict[str, asyncio.Event] = {}
        self.upload_progress = 0

    def _gate(self, name: str) -> asyncio.Event:
        return self.gates.setdefault(name, asyncio.Event())

    def application(self) -> web.Application:
        app = web.Application(client_max_size=1024**3)
        app.router.add_route("*", "/echo{tail:.*}", self.echo)
        app.router.add_get("/release/{gate}", self.release)
        app.router.add_get("/sse/{gate}", self.sse)
        app.router.add_get("/chunked/{gate}", self.chunked)
        app.router.add_post("/upload", self.upload)
        app.router.add_get("/progress", self.progress)
        app.router.add_get("/download/{mib}", self.download)
        app.router.add_get("/ws", self.websocket)
        app.router.add_get("/redirect", self.redirect)
        app.router.add_get("/hop", self.hop)
        return app

    async def echo(self, request: web.Request) -> web.Response:
        body = await request.read()
        peer = request.transport.get_extra_info("peername") if request.transport else None
        return web.json_response(
            {
                "who": "app",
                "method": request.method,
                "target": request.raw_path,
                "headers": {k.lower(): v for k, v in request.headers.items()},
                "body": body.decode("latin-1"),
                "peer_port": peer[1] if peer else None,
            }
        )

    async def release(self, request: web.Request) -> web.Response:
        self._gate(request.match_info["gate"]).set()
        return web.Response(text="released")

    async def sse(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b"data: one\n\n")
        await self._gate(request.match_info["gate"]).wait()
        await response.write(b"data: two\n\n")
        await response.write_eof()
        return response

    async def chunked(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(b"first;")
        await self._gate(request.match_info["gate"]).wait()
        await response.write(b"second")
        await response.write_eof()
        return response

    async def upload(self, request: web.Request) -> web.Response:
        digest = hashlib.sha256()
        self.upload_progress = 0
        async for piece in request.content.iter_any():
            digest.update(piece)
            self.upload_progress += len(piece)
        return web.json_response({"size": self.upload_progress, "sha256": digest.hexdigest()})

    async def progress(self, request: web.Request) -> web.Response:
        return web.json_response({"received": self.upload_progress})

    async def download(self, request: web.Request) -> web.Response:
        return web.Response(body=b"\x07" * (int(request.match_info["mib"]) * 1024 * 1024))

    async def websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(protocols=("chat",))
        await ws.prepare(request)
        async for message in ws:
            await ws.send_str("echo:" + message.data)
        return ws

    async def redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/echo/after-redirect")

    async def hop(self, request: web.Request) -> web.Response:
        return web.Response(
            text="hop",
            headers={"Connection": "x-private-hop", "X-Private-Hop": "1", "Keep-Alive": "5"},
        )


async def control_plane(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An ASGI stand-in for the control plane: answers with the path and headers it got."""
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})  # refused: uvicorn answers 403
        return
    assert scope["type"] == "http"
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    payload = {
        "who": "control-plane",
        "target": scope["raw_path"].decode()
        + ("?" + scope["query_string"].decode() if scope["query_string"] else ""),
        "headers": {k.decode(): v.decode() for k, v in scope["headers"]},
    }
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class ProxyHarness:
    """The proxy, an app upstream and the control plane, on one event loop in a thread.

    `front="nginx"`: the platform's nginx front listens on `proxy_port` (the apps origin: the
    path form answers there, and the subdomain form) and the proxy behind it on a unix socket.
    """

    def __init__(
        self,
        tmp: Path,
        limits: ProxyLimits,
        front: str = "python",
        tls: Tls | None = None,
        apps_domain: str = "localhost",
    ) -> None:
        self.routes = RouteTable()
        self.apps_domain = apps_domain
        self.limits = limits
        self.front_kind = front
        self.tls = tls
        self.front: NginxFront | None = None
        self._tmp = tmp
        self.app = AppUpstream()
        self.tokens_seen: list[str | None] = []
        self.control_socket = str(tmp / "control.sock")
        self.proxy_port = free_port()
        self.app_port = free_port()
        self.dead_port = free_port()  # nothing listens there
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._cleanups: list[Any] = []

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.proxy_port}"

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> None:
        self._thread.start()
        self.run(self._start())

    def sync(self) -> None:
        """Wait until the front answers for the routes as they are now (nginx reloaded)."""
        if self.front is not None:
            self.front.wait_synced()

    def open_connections(self, space_id: str) -> int:
        """What the supervisor sees open for the space: the proxy's connections, and the
        front's connections to the app."""
        activity = self.routes.activity.get(space_id)
        proxied = activity.open_connections if activity else 0
        return proxied + (self.front.open_connections(space_id) if self.front else 0)

    def stop(self) -> None:
        if self.front is not None:
            self.front.stop()
        self.run(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    async def authorize(self, route: Route, token: str | None) -> bool:
        self.tokens_seen.append(token)
        return token == GOOD_TOKEN

    async def _start(self) -> None:
        runner = web.AppRunner(self.app.application())
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.app_port).start()
        self._cleanups.append(runner.cleanup)
        server = uvicorn.Server(
            uvicorn.Config(
                control_plane, uds=self.control_socket, log_level="warning", lifespan="off"
            )
        )
        task = asyncio.ensure_future(server.serve())
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        self._cleanups.append(lambda: self._stop_uvicorn(server, task))
        control = Upstream(unix_path=self.control_socket)
        if self.front_kind == "nginx":
            proxy_socket = self._tmp / "proxy.sock"
            context = proxy_context(
                self.routes,
                control,
                self.apps_domain,
                self.authorize,
                self.limits,
                behind_front=True,
            )
            proxy = await listen(context, str(proxy_socket), None)
            self._cleanups.append(lambda: self._close_server(proxy))
            await asyncio.get_running_loop().run_in_executor(None, self._start_front, proxy_socket)
            return
        proxy = await start_proxy(
            host="127.0.0.1",
            port=self.proxy_port,
            routes=self.routes,
            control_plane=control,
            apps_domain=self.apps_domain,
            authorize=self.authorize,
            limits=self.limits,
        )
        self._cleanups.append(lambda: self._close_server(proxy))

    def _start_front(self, proxy_socket: Path) -> None:
        config = FrontConfig(
            prefix=self._tmp / "nginx",
            listen_main=address("127.0.0.1", free_port()),
            listen_apps=address("127.0.0.1", self.proxy_port),
            main_socket=proxy_socket,
            apps_socket=proxy_socket,
            apps_domain=self.apps_domain,
            limits=self.limits,
            tls=self.tls,
            workers="1",
        )
        self.front = NginxFront(config, self.routes, self.loop.call_soon_threadsafe)
        self.routes.front = self.front
        self.front.start()

    @staticmethod
    async def _stop_uvicorn(server: uvicorn.Server, task: "asyncio.Future[None]") -> None:
        server.should_exit = True
        await task

    @staticmethod
    async def _close_server(server: asyncio.Server) -> None:
        server.close()

    async def _stop(self) -> None:
        for cleanup in reversed(self._cleanups):
            await cleanup()

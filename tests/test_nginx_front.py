"""The nginx front (`serve --proxy nginx`): reloads that keep streams, TLS with a wildcard
certificate, what falls through to spacehub's proxy, and nginx's traffic seen as activity.

The conformance suite itself (tests/test_proxy.py) runs against the front as well."""

import asyncio
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from anyio import to_thread
from websockets.sync.client import connect as ws_connect

from spacehub.platform.context import Platform
from spacehub.platform.front import FrontConfig, NginxFront, Tls, address
from spacehub.platform.front.activity_feed import responses_by_upstream
from spacehub.platform.proxy import ProxyLimits, proxy_context
from spacehub.platform.proxy.server import listen
from spacehub.platform.route_table import Route, Sleeping, Upstream
from spacehub.platform.supervisor import Supervisor
from tests.conftest import (
    EXAMPLES,
    assert_streamlit_session_renders,
    explain_failure,
    start_platform,
)
from tests.proxy_upstreams import GOOD_TOKEN, ProxyHarness, free_port, wait_for
from tests.test_freeze import FreezingRuntime, engine, listen_to_events, process_state  # noqa: F401 (a fixture)
from tests.test_runtime_conformance import RuntimeHub, clean_up
from tests.test_supervisor import go_live, live_pids, make_platform, supervise, until

LIMITS = ProxyLimits(header_timeout=2.0, idle_timeout=5.0)
APP_HOST = "alice-echo.localhost"


def start_harness(
    tmp: Path, tls: Tls | None = None, apps_domain: str = "localhost"
) -> ProxyHarness:
    harness = ProxyHarness(tmp, LIMITS, front="nginx", tls=tls, apps_domain=apps_domain)
    harness.start()
    app = Upstream(port=harness.app_port)
    harness.routes.set(Route("alice", "echo", "alice-echo", upstream=app))
    harness.routes.set(Route("alice", "secret", "alice-secret", upstream=app, private=True))
    harness.sync()
    return harness


@pytest.fixture
def front(tmp_path: Path) -> Iterator[ProxyHarness]:
    harness = start_harness(tmp_path)
    yield harness
    harness.stop()


def served_by_nginx(harness: ProxyHarness) -> set[str]:
    """The spaces nginx answers itself: those it has an include for."""
    assert harness.front is not None
    hosts = harness.front.config.prefix / "hosts"
    return {path.stem for path in hosts.glob("*.conf")}


def test_reloads_keep_open_websockets_and_event_streams(front, app_hosts_resolve):
    assert served_by_nginx(front) == {"alice-echo"}
    url = f"http://{APP_HOST}:{front.proxy_port}"
    with (
        ws_connect(f"ws://{APP_HOST}:{front.proxy_port}/ws", subprotocols=["chat"]) as ws,
        httpx.Client(timeout=10) as client,
        client.stream("GET", f"{url}/sse/reload") as stream,
    ):
        events = stream.iter_lines()
        assert next(events) == "data: one"
        ws.send("before")
        assert ws.recv(timeout=5) == "echo:before"
        assert front.front is not None
        reloads = front.front.reloads
        for index in range(5):  # each route change is a reload of nginx
            other = Route("bob", f"app{index}", f"bob-app{index}", upstream=Upstream(port=1))
            front.routes.set(other)
            front.sync()
        assert front.front.reloads >= reloads + 5
        ws.send("after")
        assert ws.recv(timeout=5) == "echo:after"
        httpx.get(f"http://127.0.0.1:{front.app_port}/release/reload").raise_for_status()
        assert [line for line in events if line] == ["data: two"]
        # New requests meanwhile are answered by the new workers.
        assert client.get(f"{url}/echo/x").json()["who"] == "app"


def test_private_sleeping_frozen_and_unknown_spaces_fall_through_to_the_proxy(front):
    assert "alice-secret" not in served_by_nginx(front)
    with httpx.Client(base_url=front.url, timeout=10) as client:
        refused = client.get("/apps/alice/secret/echo").json()
        assert (refused["who"], refused["target"]) == ("control-plane", "/apps/alice/secret/echo")
        allowed = client.get(
            "/apps/alice/secret/echo", headers={"Authorization": f"Bearer {GOOD_TOKEN}"}
        ).json()
        assert allowed["who"] == "app"
        assert "authorization" not in allowed["headers"]
        assert front.tokens_seen[-2:] == [None, GOOD_TOKEN]

        unknown = client.get("/x", headers={"Host": f"nobody-here.localhost:{front.proxy_port}"})
        assert unknown.json()["target"] == "/apps/-/nobody-here/x"

        # Sleeping: nginx stops answering for it; the proxy asks for a wake and shows the
        # waking page to a browser.
        wakes: list[float] = []
        front.routes.sleeping["alice/echo"] = Sleeping(
            lambda: wakes.append(time.monotonic()), wake_timeout=5
        )
        front.sync()
        assert "alice-echo" not in served_by_nginx(front)
        page = client.get("/apps/alice/echo/", headers={"Accept": "text/html"})
        assert page.status_code == 503
        assert wakes
        del front.routes.sleeping["alice/echo"]
        front.sync()
        assert "alice-echo" in served_by_nginx(front)
        assert client.get("/apps/alice/echo/echo").json()["who"] == "app"


def test_requests_nginx_answers_count_as_activity(front):
    with httpx.Client(base_url=front.url, timeout=10) as client:
        for _ in range(3):
            assert client.get("/apps/alice/echo/echo").status_code == 200
        assert client.get("/apps/alice/echo/no-such-path").status_code == 404
    # The proxy behind nginx saw none of them: the counts come from nginx's log.
    wait_for(
        lambda: (
            "alice/echo" in front.routes.activity
            and front.routes.activity["alice/echo"].responses[2] >= 3
        ),
        "nginx's log to be read",
    )
    activity = front.routes.activity["alice/echo"]
    assert activity.responses[4] == 1
    assert time.monotonic() - activity.last_request < 5


def test_an_open_websocket_holds_the_space_and_release_waits_for_its_end(front):
    assert front.front is not None
    with ws_connect(f"ws://127.0.0.1:{front.proxy_port}/apps/alice/echo/ws") as ws:
        ws.send("x")
        assert ws.recv(timeout=5) == "echo:x"
        assert front.front.open_connections("alice/echo") >= 1
        # What the supervisor does before freezing: mark, then ask nginx to let go.
        front.routes.frozen["alice/echo"] = object()  # type: ignore[assignment]
        assert front.front.release("alice/echo") is False  # the WebSocket is still open
        assert "alice-echo" not in served_by_nginx(front)
    # Closed, and nginx's idle upstream connections end after the upstream idle timeout.
    wait_for(
        lambda: front.front is not None and front.front.open_connections("alice/echo") == 0,
        "nginx to close its connections to the app",
        timeout=LIMITS.upstream_idle_timeout + 5,
    )
    assert front.front.release("alice/echo") is True
    del front.routes.frozen["alice/echo"]


# TLS with a wildcard certificate


def make_wildcard_certificate(folder: Path) -> tuple[Path, Tls]:
    """A CA, and a certificate it signs for localhost and *.spaces.localhost (openssl: a
    wildcard needs two labels after it)."""
    ca_key, ca_cert = folder / "ca.key", folder / "ca.pem"
    key, request, cert = folder / "site.key", folder / "site.csr", folder / "site.pem"
    extensions = folder / "ext.cnf"
    extensions.write_text("subjectAltName=DNS:localhost,DNS:*.spaces.localhost,IP:127.0.0.1\n")

    def openssl(*arguments: str) -> None:
        subprocess.run(["openssl", *arguments], check=True, capture_output=True, timeout=60)

    openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", "/CN=spacehub test CA", "-keyout", str(ca_key), "-out", str(ca_cert),
    )  # fmt: skip
    openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
        "-keyout", str(key), "-out", str(request),
    )  # fmt: skip
    openssl(
        "x509", "-req", "-in", str(request), "-CA", str(ca_cert), "-CAkey", str(ca_key),
        "-CAcreateserial", "-days", "2", "-extfile", str(extensions), "-out", str(cert),
    )  # fmt: skip
    return ca_cert, Tls(cert=cert, key=key)


def test_tls_with_a_wildcard_certificate_serves_both_forms_and_says_https(
    tmp_path, app_hosts_resolve
):
    ca, tls = make_wildcard_certificate(tmp_path)
    (tmp_path / "front").mkdir()
    harness = start_harness(tmp_path / "front", tls=tls, apps_domain="spaces.localhost")
    try:
        with httpx.Client(verify=_context(ca), timeout=10) as client:
            app_host = f"alice-echo.spaces.localhost:{harness.proxy_port}"
            by_host = client.get(f"https://{app_host}/echo/a").json()
            assert by_host["who"] == "app"
            assert by_host["headers"]["x-forwarded-proto"] == "https"
            assert by_host["headers"]["x-forwarded-host"] == app_host
            by_path = client.get(f"{harness.url}/apps/alice/echo/echo/b").json()
            assert (by_path["who"], by_path["target"]) == ("app", "/echo/b")
            # Through nginx to spacehub's proxy: it keeps the scheme nginx saw.
            control = client.get(f"{harness.url}/api/whoami").json()
            assert control["who"] == "control-plane"
            assert control["headers"]["x-forwarded-proto"] == "https"
            private = client.get(
                f"https://alice-secret.spaces.localhost:{harness.proxy_port}/echo",
                headers={"Authorization": f"Bearer {GOOD_TOKEN}"},
            ).json()
            assert private["headers"]["x-forwarded-proto"] == "https"
            with ws_connect(f"wss://{app_host}/ws", ssl=_context(ca)) as ws:
                ws.send("tls")
                assert ws.recv(timeout=5) == "echo:tls"
        with pytest.raises(httpx.ConnectError):  # no CA given: the certificate is not trusted
            httpx.get(f"{harness.url}/apps/alice/echo/echo", timeout=5)
    finally:
        harness.stop()


def _context(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))


def test_forwarded_headers_from_clients_are_replaced_on_both_paths(front):
    spoofed = {"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "https", "Forwarded": "for=x"}
    with httpx.Client(base_url=front.url, timeout=10) as client:
        for target in ("/apps/alice/echo/echo", "/api/spaces"):  # nginx's, the proxy's
            headers = client.get(target, headers=spoofed).json()["headers"]
            assert headers["x-forwarded-for"] == "127.0.0.1"
            assert headers["x-forwarded-proto"] == "http"
            assert "forwarded" not in headers


def test_stop_ends_nginx_and_frees_the_port(tmp_path):
    harness = start_harness(tmp_path)
    assert harness.front is not None
    pid = int(harness.front.config.pid_path.read_text())
    harness.stop()
    wait_for(lambda: not Path(f"/proc/{pid}").exists(), "nginx's master to exit")
    with pytest.raises(httpx.ConnectError):
        httpx.get(harness.url, timeout=2)


# The supervisor with nginx in front: what nginx serves keeps a space awake; a frozen space's
# requests go to spacehub's proxy, which thaws it.

FRONT_FREEZE_AFTER = 2.0


async def front_for(platform: Platform, folder: Path) -> NginxFront:
    """spacehub's proxy on this loop behind an nginx front, both reading the platform's routes,
    as `serve --proxy nginx` runs them; returns the front (listening on `listen_apps`)."""

    async def refuse(route: Route, token: str | None) -> bool:
        return False

    socket_path = folder / "proxy.sock"
    control = Upstream(port=free_port())  # nothing there: never asked here
    context = proxy_context(platform.routes, control, "localhost", refuse, behind_front=True)
    await listen(context, str(socket_path), None)
    loop = asyncio.get_running_loop()
    config = FrontConfig(
        prefix=folder / "nginx",
        listen_main=address("127.0.0.1", free_port()),
        listen_apps=address("127.0.0.1", free_port()),
        main_socket=socket_path,
        apps_socket=socket_path,
        apps_domain="localhost",
        limits=ProxyLimits(),
        workers="1",
    )
    front = NginxFront(config, platform.routes, loop.call_soon_threadsafe)
    await to_thread.run_sync(front.start)
    platform.routes.front = front
    return front


@pytest.fixture
def supervised(tmp_path: Path) -> Platform:
    return make_platform(tmp_path, freeze_after=FRONT_FREEZE_AFTER)


def test_streams_and_requests_nginx_serves_keep_a_space_awake_and_a_frozen_one_thaws(
    supervised,
    engine,  # noqa: F811 (test_freeze's fixture)
    tmp_path,
):
    platform = supervised
    runtime = FreezingRuntime(engine)

    def get_every(url: str, interval: float, seconds: float) -> list[int]:
        statuses = []
        deadline = time.monotonic() + seconds
        with httpx.Client(timeout=10) as client:
            while time.monotonic() < deadline:
                statuses.append(client.get(url).status_code)
                time.sleep(interval)
        return statuses

    async def scenario(supervisor: Supervisor) -> None:
        front = await front_for(platform, tmp_path)
        try:
            url = f"http://{front.config.listen_apps}/apps/ada/demo/"
            await go_live(platform, supervisor, "c" * 40)
            await to_thread.run_sync(front.wait_synced)
            (pid,) = live_pids(engine)
            # An event stream through nginx, longer than the freeze time: nginx logs it only
            # at its end, its open connection to the app keeps the space awake.
            events = await to_thread.run_sync(listen_to_events, url, FRONT_FREEZE_AFTER * 3)
            assert events >= 10
            # Requests nginx answers, in its log only: they keep it awake as well.
            statuses = await to_thread.run_sync(get_every, url, 0.5, FRONT_FREEZE_AFTER * 3)
            assert set(statuses) == {200}
            assert runtime.freezes == 0
            activity = platform.routes.activity["ada/demo"]
            # Counted from nginx's log, which is written at most a second late.
            await until(lambda: activity.responses[2] >= len(statuses), 5, "nginx's log")
            # Idle: frozen once nginx's idle connections to the app closed; nginx no longer
            # answers for it, and the proxy behind it thaws it for the next request.
            await until(lambda: process_state(pid) == "T", 20, "the instance to be frozen")
            assert "ada/demo" not in {
                route.space_id for route in platform.routes.all() if front_serves(front, route)
            }
            answer = await to_thread.run_sync(lambda: httpx.get(url, timeout=30))
            assert (answer.status_code, answer.text) == (200, f"release {'c' * 40}")
            assert (runtime.freezes, runtime.thaws) == (1, 1)
        finally:
            platform.routes.front = None
            await to_thread.run_sync(front.stop)

    supervise(platform, runtime, scenario)


def front_serves(front: NginxFront, route: Route) -> bool:
    return (front.config.prefix / "hosts" / f"{route.label}.conf").exists()


# A real `spacehub serve --proxy nginx`


def test_serve_with_the_nginx_front_serves_a_static_and_a_streamlit_space(tmp_path, request):
    """The platform behind nginx: the API, a static space (the proxy's files, through nginx)
    and a local Streamlit space nginx answers itself, its WebSocket session included; at the
    end nginx stops with the platform."""
    platform = start_platform(tmp_path / "data", runtime="local", proxy="nginx")
    hub = RuntimeHub("local", platform, tmp_path / "checkouts")
    explain_failure(request.node, "platform log (tail)", lambda: platform.log()[-6000:])
    nginx_dir = tmp_path / "data" / "nginx"
    master = int((nginx_dir / "nginx.pid").read_text())
    try:
        with platform.api() as client:
            assert client.get("/api/whoami-v2").json()["name"] == "admin"
        site = hub.create("site", "static")
        hub.push(site, EXAMPLES / "static-site")
        hub.running(site)
        page = httpx.get(hub.path_url(site), timeout=10)
        assert (page.status_code, page.headers["server"]) == (200, "nginx")
        assert "etag" in page.headers  # the proxy's file headers: static spaces stay with it
        assert not (nginx_dir / "hosts" / "admin-site.conf").exists()

        square = hub.create("square", "streamlit")
        hub.push(square, EXAMPLES / "streamlit-square")
        hub.running(square)
        wait_for(
            lambda: (nginx_dir / "hosts" / "admin-square.conf").exists(),
            "nginx to answer for the running space",
        )
        url = hub.path_url(square)
        with httpx.Client(timeout=10) as client:
            assert client.get(url + "_stcore/health").text == "ok"
        assert hub.get(square, "subdomain", "_stcore/health").text == "ok"
        assert_streamlit_session_renders(url, "squared is 49")
        # nginx answered those itself: they are in its log, and so in the space's activity.
        log = nginx_dir / "activity.log"
        wait_for(lambda: "space-admin-square " in log.read_text(), "nginx's activity log")
    finally:
        clean_up("local", platform, hub.created)
    wait_for(lambda: not Path(f"/proc/{master}").exists(), "nginx to stop with the platform")


def test_nginx_that_exits_is_started_again(front):
    assert front.front is not None
    old_master = int(front.front.config.pid_path.read_text())
    os.kill(old_master, signal.SIGTERM)  # as if it had crashed: its workers go with it

    def answering_again() -> bool:
        try:
            return httpx.get(f"{front.url}/apps/alice/echo/echo", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(answering_again, "nginx to answer again")
    assert int(front.front.config.pid_path.read_text()) != old_master


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"SPACEHUB_TLS_CERT": "CERT"}, "TLS needs both tls_cert and tls_key"),
        ({"SPACEHUB_TLS_CERT": "CERT", "SPACEHUB_TLS_KEY": "missing.pem"}, "is not a file"),
        (
            {"SPACEHUB_PROXY": "python", "SPACEHUB_TLS_CERT": "CERT", "SPACEHUB_TLS_KEY": "CERT"},
            "serve with --proxy nginx",
        ),
    ],
    ids=["key-missing", "key-not-a-file", "tls-without-nginx"],
)
def test_serve_refuses_tls_settings_it_cannot_use_with_one_line(tmp_path, settings, message):
    cert = tmp_path / "cert.pem"
    cert.write_text("not checked before the settings agree\n")
    env = {
        **os.environ,
        "SPACEHUB_DATA_DIR": str(tmp_path / "data"),
        "SPACEHUB_PROXY": "nginx",
        **{key: str(cert) if value == "CERT" else value for key, value in settings.items()},
    }
    result = subprocess.run(
        [sys.executable, "-m", "spacehub", "serve", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data" / "nginx").exists()  # nothing started


def test_activity_lines_count_by_space_and_status():
    log = (
        b"space-alice-echo 200\n"
        b"space-alice-echo 200\n"
        b"space-bob-chat 101\n"
        b"space-alice-echo 502\n"
        b"a line of another format\n"
        b"space-alice-echo 200\n"
        b"space-alice-ec"  # being written: read next time
    )
    found = responses_by_upstream(log[: log.rfind(b"\n") + 1])
    assert set(found) == {"space-alice-echo", "space-bob-chat"}
    echo, chat = found["space-alice-echo"], found["space-bob-chat"]
    assert (echo[2], echo[5], chat[1], sum(echo), sum(chat)) == (3, 1, 1, 4, 1)

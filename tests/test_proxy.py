"""The reverse proxy against real servers: an app, the control plane, Gradio and Streamlit."""

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest
from websockets.sync.client import connect as ws_connect

from spacehub.platform.proxy import ProxyLimits
from spacehub.platform.route_table import Route, Upstream
from tests.conftest import (
    EXAMPLES,
    assert_page_and_its_script_load,
    assert_streamlit_session_renders,
)
from tests.proxy_upstreams import GOOD_TOKEN, ProxyHarness, free_port, wait_for

LIMITS = ProxyLimits(header_timeout=1.0, idle_timeout=1.5, max_head_size=16 * 1024)


@pytest.fixture(scope="module", params=["python", "nginx"])
def harness(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyHarness]:
    """Each test runs against spacehub's proxy, then against the nginx front before it."""
    harness = ProxyHarness(tmp_path_factory.mktemp("proxy"), LIMITS, front=request.param)
    harness.start()
    app = Upstream(port=harness.app_port)
    coop = (("Cross-Origin-Opener-Policy", "same-origin"),)
    harness.routes.set(Route("alice", "echo", "alice-echo", upstream=app, custom_headers=coop))
    harness.routes.set(Route("alice", "secret", "alice-secret", upstream=app, private=True))
    harness.routes.set(Route("alice", "building", "alice-building"))
    harness.routes.set(
        Route("alice", "dead", "alice-dead", upstream=Upstream(port=harness.dead_port))
    )
    harness.sync()
    yield harness
    harness.stop()


@pytest.fixture
def client(harness: ProxyHarness) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=harness.url, timeout=10) as client:
        yield client


def host(harness: ProxyHarness, label: str) -> str:
    return f"{label}.localhost:{harness.proxy_port}"


def only_python_proxy(harness: ProxyHarness, why: str) -> None:
    if harness.front_kind != "python":
        pytest.skip(f"spacehub's proxy only: {why}")


def assert_open(harness: ProxyHarness, space_id: str) -> None:
    """The one request is seen open; nginx may also keep idle connections to the app (up to the
    upstream idle timeout), which count as open too."""
    if harness.front_kind == "python":
        assert harness.open_connections(space_id) == 1
    else:
        assert harness.open_connections(space_id) >= 1


def raw_exchange(harness: ProxyHarness, data: bytes, timeout: float = 5) -> bytes:
    """Send bytes on a fresh connection and read until the proxy closes it."""
    with socket.create_connection(("127.0.0.1", harness.proxy_port), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        while piece := sock.recv(65536):
            received += piece
        return received


# Routing


def test_path_form_strips_prefix_and_replaces_forwarded_headers(harness, client):
    spoofed = {"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Host": "evil", "X-Real-IP": "6.6.6.6"}
    answer = client.get("/apps/alice/echo/echo/x?q=1", headers=spoofed).json()
    assert answer["who"] == "app"
    assert answer["target"] == "/echo/x?q=1"
    headers = answer["headers"]
    assert headers["host"] == f"127.0.0.1:{harness.proxy_port}"
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-forwarded-host"] == f"127.0.0.1:{harness.proxy_port}"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-prefix"] == "/apps/alice/echo"
    assert "x-real-ip" not in headers


@pytest.mark.parametrize(
    "target",
    [
        "/echo/a%2Fb%20c?x=%2F",
        "/echo/x/../y",
        "/echo/./y",
        "/echo//double",
        "/echo/%C3%A9t%C3%A9",
        "/echo/.well-known/x",
        "/echo/plain-path_1~(x)?q=//a/../b",
    ],
)
@pytest.mark.parametrize("form", ["path", "subdomain"])
def test_the_app_gets_the_path_as_sent(harness, form, target):
    """Escapes, dot segments and double slashes reach the app as the client wrote them."""
    with socket.create_connection(("127.0.0.1", harness.proxy_port), timeout=5) as sock:
        if form == "path":
            request = f"GET /apps/alice/echo{target} HTTP/1.1\r\nHost: a\r\n"
        else:
            request = f"GET {target} HTTP/1.1\r\nHost: {host(harness, 'alice-echo')}\r\n"
        sock.sendall(f"{request}Connection: close\r\n\r\n".encode())
        received = b""
        while piece := sock.recv(65536):
            received += piece
    answer = json.loads(received.partition(b"\r\n\r\n")[2])
    assert (answer["who"], answer["target"]) == ("app", target)


def test_subdomain_form_passes_the_path_unchanged(harness, client):
    app_host = f"Alice-Echo.LOCALHOST:{harness.proxy_port}"
    answer = client.get("/echo/y?z=2", headers={"Host": app_host}).json()
    assert answer["who"] == "app"
    assert answer["target"] == "/echo/y?z=2"
    assert answer["headers"]["x-forwarded-host"] == app_host
    assert "x-forwarded-prefix" not in answer["headers"]


def test_path_form_without_trailing_slash_redirects_keeping_the_query(client):
    response = client.get("/apps/alice/echo?x=1&y=2")
    assert response.status_code == 308
    assert response.headers["location"] == "/apps/alice/echo/?x=1&y=2"


def test_other_paths_go_to_the_control_plane_unchanged(client):
    for target in ("/api/spaces?author=alice", "/apps/alice", "/", "/spaces/alice/echo"):
        answer = client.get(target).json()
        assert answer["who"] == "control-plane"
        assert answer["target"] == target
        assert answer["headers"]["x-forwarded-for"] == "127.0.0.1"


def test_spaces_without_an_app_go_to_the_control_plane(harness, client):
    answer = client.get("/apps/alice/building/x?y=1").json()
    assert (answer["who"], answer["target"]) == ("control-plane", "/apps/alice/building/x?y=1")
    answer = client.get("/x?y=1", headers={"Host": host(harness, "alice-building")}).json()
    assert (answer["who"], answer["target"]) == ("control-plane", "/apps/alice/building/x?y=1")
    answer = client.get("/apps/nobody/nothing/").json()
    assert (answer["who"], answer["target"]) == ("control-plane", "/apps/nobody/nothing/")
    answer = client.get("/x", headers={"Host": host(harness, "nobody-here")}).json()
    assert (answer["who"], answer["target"]) == ("control-plane", "/apps/-/nobody-here/x")


@pytest.mark.parametrize("token_header", ["Authorization", "X-HF-Authorization"])
def test_private_space_needs_a_token_which_the_app_never_sees(harness, client, token_header):
    for token in (None, "bad-token"):
        headers = {token_header: f"Bearer {token}"} if token else {}
        answer = client.get("/apps/alice/secret/echo", headers=headers).json()
        assert (answer["who"], answer["target"]) == ("control-plane", "/apps/alice/secret/echo")
        assert harness.tokens_seen[-1] == token
    headers = {token_header: f"Bearer {GOOD_TOKEN}", "Host": host(harness, "alice-secret")}
    answer = client.get("/echo", headers=headers).json()
    assert answer["who"] == "app"
    assert "authorization" not in answer["headers"]
    assert "x-hf-authorization" not in answer["headers"]


def test_public_space_is_never_authorized(harness, client):
    seen = len(harness.tokens_seen)
    client.get("/apps/alice/echo/echo", headers={"Authorization": "Bearer x"})
    assert len(harness.tokens_seen) == seen


# Headers and framing


def test_hop_by_hop_request_headers_are_removed(harness):
    request = (
        b"GET /apps/alice/echo/echo HTTP/1.1\r\nHost: a\r\nConnection: close, X-Drop-Me\r\n"
        b"X-Drop-Me: 1\r\nKeep-Alive: 300\r\nTE: trailers\r\nProxy-Authorization: x\r\n"
        b"Proxy-Connection: keep-alive\r\nX-Kept: yes\r\n\r\n"
    )
    body = raw_exchange(harness, request).partition(b"\r\n\r\n")[2]
    headers = json.loads(body)["headers"]
    for name in ("x-drop-me", "keep-alive", "te", "proxy-authorization", "proxy-connection"):
        assert name not in headers
    assert headers["x-kept"] == "yes"
    assert headers.get("connection", "keep-alive").lower() == "keep-alive"


def test_hop_by_hop_response_headers_are_removed(harness):
    only_python_proxy(harness, "nginx passes on response headers an app's Connection names")
    head = raw_exchange(
        harness, b"GET /apps/alice/echo/hop HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    )
    head = head.partition(b"\r\n\r\n")[0].lower()
    assert b"x-private-hop" not in head
    assert b"keep-alive" not in head
    assert b"\r\nconnection: close" in head


def test_app_redirects_stay_under_the_prefix_and_custom_headers_are_added(harness, client):
    response = client.get("/apps/alice/echo/redirect")
    assert response.headers["location"] == "/apps/alice/echo/echo/after-redirect"
    assert response.headers["cross-origin-opener-policy"] == "same-origin"
    response = client.get("/redirect", headers={"Host": host(harness, "alice-echo")})
    assert response.headers["location"] == "/echo/after-redirect"


SCRIPTED_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nX-Case: Kept\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok"
)


def upstream_app(
    harness: ProxyHarness, label: str, pieces: list[bytes], pause: float = 0.0
) -> tuple[list[int], socket.socket]:
    """An upstream answering every request head with `pieces`, each in its own segment; the
    list counts the connections it accepted."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[int] = []

    def answer(conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with conn:
            received = b""
            while piece := conn.recv(65536):
                received += piece
                while b"\r\n\r\n" in received:
                    received = received.partition(b"\r\n\r\n")[2]
                    for part in pieces:
                        conn.sendall(part)
                        time.sleep(pause)

    def accept() -> None:
        with listener:
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                accepted.append(1)
                threading.Thread(target=answer, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    upstream = Upstream(port=listener.getsockname()[1])
    harness.routes.set(Route("alice", label, f"alice-{label}", upstream=upstream))
    harness.sync()
    return accepted, listener


@pytest.fixture
def scripted_app(harness: ProxyHarness) -> Iterator[Callable[[list[bytes]], None]]:
    """An upstream answering every request with the given pieces, each in its own segment."""
    pieces: list[bytes] = []
    _, listener = upstream_app(harness, "scripted", pieces, pause=0.05)
    yield pieces.extend
    harness.routes.remove("alice/scripted")
    listener.close()


@pytest.mark.parametrize(
    "pieces",
    [
        [SCRIPTED_RESPONSE],
        [SCRIPTED_RESPONSE[:20], SCRIPTED_RESPONSE[20:50], SCRIPTED_RESPONSE[50:]],
        [b"HTTP/1.1 100 Continue\r\n\r\n" + SCRIPTED_RESPONSE],
    ],
    ids=["one-read", "head-across-reads", "after-interim-response"],
)
def test_response_head_is_forwarded_as_received_but_for_connection(harness, scripted_app, pieces):
    only_python_proxy(harness, "nginx writes its own Server and Date into a response's head")
    scripted_app(pieces)
    expected = b"HTTP/1.1 200 OK\r\nX-Case: Kept\r\nContent-Length: 2\r\n\r\nok"
    with socket.create_connection(("127.0.0.1", harness.proxy_port), timeout=5) as sock:
        for _ in range(2):  # the client's connection stays usable
            sock.sendall(b"GET /apps/alice/scripted/ HTTP/1.1\r\nHost: a\r\n\r\n")
            received = b""
            while not received.endswith(b"ok"):
                received += sock.recv(65536)
            assert received.endswith(expected)


@pytest.mark.parametrize(
    ("method", "response", "connections"),
    [
        ("GET", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 1),
        ("GET", b"HTTP/1.1 204 No Content\r\nX-Empty: ja\r\n\r\n", 1),
        ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 5000000\r\n\r\n", 1),
        # More bytes than Content-Length: the rest never reaches the client, and the upstream
        # connection, out of step, is not used again.
        ("GET", b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nd\xc3\xa9jHTTP/1.1 200 Smuggled", 2),
    ],
    ids=["empty-body", "no-content", "head", "more-than-content-length"],
)
def test_bodyless_and_overlong_responses_keep_both_connections_in_step(
    harness, method, response, connections
):
    only_python_proxy(harness, "nginx writes its own Server and Date into a response's head")
    label = f"counted-{len(response)}-{method.lower()}"
    accepted, listener = upstream_app(harness, label, [response])
    head, _, body = response.partition(b"\r\n\r\n")
    expected = head + b"\r\n\r\n" + (body[:4] if method == "GET" else b"")
    request = f"{method} /apps/alice/{label}/%C3%A4%20b HTTP/1.1\r\nHost: a\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", harness.proxy_port), timeout=5) as sock:
        for _ in range(3):
            sock.sendall(request)
            received = b""
            while len(received) < len(expected):
                received += sock.recv(65536)
            assert received == expected
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            sock.recv(65536)  # nothing more: no smuggled bytes
    assert len(accepted) == (1 if connections == 1 else 3)
    harness.routes.remove(f"alice/{label}")
    listener.close()


def test_keep_alive_reuses_the_upstream_connection(client):
    first = client.get("/apps/alice/echo/echo").json()["peer_port"]
    second = client.get("/apps/alice/echo/echo").json()["peer_port"]
    assert first == second


def test_pipelined_requests_are_answered_in_order(harness):
    one = b"GET /apps/alice/echo/echo/1 HTTP/1.1\r\nHost: a\r\n\r\n"
    two = b"GET /apps/alice/echo/echo/2 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    answer = raw_exchange(harness, one + two)
    assert answer.count(b"HTTP/1.1 200") == 2
    assert answer.index(b'"/echo/1"') < answer.index(b'"/echo/2"')


def test_http10_client_gets_a_chunked_response_unframed(harness):
    threading.Timer(0.2, httpx.get, [f"http://127.0.0.1:{harness.app_port}/release/h10"]).start()
    answer = raw_exchange(harness, b"GET /apps/alice/echo/chunked/h10 HTTP/1.0\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"transfer-encoding" not in head.lower()
    assert body == b"first;second"


# Streaming


def release(harness: ProxyHarness, gate: str) -> None:
    httpx.get(f"http://127.0.0.1:{harness.app_port}/release/{gate}").raise_for_status()


def test_server_sent_events_arrive_as_they_are_sent(harness, client):
    with client.stream("GET", "/apps/alice/echo/sse/sse1") as response:
        events = response.iter_lines()
        assert next(events) == "data: one"
        assert_open(harness, "alice/echo")
        release(harness, "sse1")
        assert [line for line in events if line] == ["data: two"]
    wait_for(lambda: harness.open_connections("alice/echo") == 0, "the stream to be closed")


def test_chunked_response_arrives_chunk_by_chunk(harness, client):
    with client.stream("GET", "/chunked/c1", headers={"Host": host(harness, "alice-echo")}) as r:
        assert r.headers["transfer-encoding"] == "chunked"
        pieces = r.iter_raw()
        assert next(pieces) == b"first;"
        release(harness, "c1")
        assert b"".join(pieces) == b"second"


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_large_upload_is_streamed_to_the_app(harness, client, framing):
    piece = bytes(range(256)) * 4096  # 1 MiB
    total = 48

    def body() -> Iterator[bytes]:
        for index in range(total):
            if index == total // 2:
                # Half sent: the app must already be reading, or the proxy is buffering.
                wait_for(lambda: harness.app.upload_progress > 0, "the app to receive bytes")
            yield piece

    headers = {"Content-Length": str(len(piece) * total)} if framing == "content-length" else {}
    harness.app.upload_progress = 0
    answer = client.post("/apps/alice/echo/upload", content=body(), headers=headers).json()
    assert answer["size"] == len(piece) * total
    assert answer["sha256"] == hashlib.sha256(piece * total).hexdigest()


def test_large_download_with_a_slow_reader_leaves_both_connections_usable(harness, client):
    with client.stream("GET", "/apps/alice/echo/download/64") as response:
        received = 0
        for piece in response.iter_raw():
            if received == 0:
                time.sleep(0.3)  # let the proxy's buffers fill, so that it must pause the app
            received += len(piece)
    assert received == 64 * 1024 * 1024
    for _ in range(3):
        assert client.get("/apps/alice/echo/echo").status_code == 200


@pytest.mark.parametrize("form", ["path", "subdomain"])
def test_websocket_passes_its_subprotocol_and_frames(harness, app_hosts_resolve, form):
    if form == "path":
        url = f"ws://127.0.0.1:{harness.proxy_port}/apps/alice/echo/ws"
    else:
        url = f"ws://{host(harness, 'alice-echo')}/ws"
    with ws_connect(url, subprotocols=["chat"]) as ws:
        assert ws.subprotocol == "chat"
        ws.send("hello")
        assert ws.recv(timeout=5) == "echo:hello"
        assert_open(harness, "alice/echo")
    wait_for(lambda: harness.open_connections("alice/echo") == 0, "the WebSocket to be closed")


# Static releases, answered by the proxy itself (the control plane stand-in only answers JSON)

BIG_MIB = 150


@pytest.fixture(scope="module")
def static_release(harness: ProxyHarness, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A release directory with Unicode names, a 150 MiB file and symlinks out of it."""
    base = tmp_path_factory.mktemp("static")
    outside = base / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("root:x:0:0:outside the release\n")
    root = base / "release"
    (root / "dossier ünïcode").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html><h1>Static site ✓</h1>\n")
    (root / "dossier ünïcode" / "page with spaces.html").write_text("<p>été</p>\n")
    (root / "style.css").write_text("body { color: #333 }\n")
    (root / "empty.txt").write_bytes(b"")
    block = os.urandom(1024 * 1024)
    with (root / "model weights.bin").open("wb") as out:
        for index in range(BIG_MIB):
            out.write(index.to_bytes(4, "big") + block[4:])  # no two MiB alike
    (root / "leak").symlink_to(outside / "secret.txt")
    (root / "up").symlink_to("..")
    (root / "trap").mkdir()
    (root / "trap" / "index.html").symlink_to(outside / "secret.txt")
    static_root = os.path.realpath(root)
    harness.routes.set(Route("alice", "site", "alice-site", static_root=static_root))
    harness.routes.set(
        Route("alice", "hidden", "alice-hidden", private=True, static_root=static_root)
    )
    harness.sync()
    return root


def static_url(harness: ProxyHarness, form: str, path: str, label: str = "alice-site") -> tuple:
    """The URL and headers of `path` (already percent-encoded) in either app URL form."""
    if form == "path":
        return f"{harness.url}/apps/{label.replace('-', '/', 1)}{path}", {}
    return f"{harness.url}{path}", {"Host": host(harness, label)}


def raw_get(harness: ProxyHarness, target: str, headers: dict[str, str]) -> httpx.Response:
    """GET with the target sent as written (httpx would clean up dot segments)."""
    with httpx.Client(timeout=10) as client:
        request = client.build_request("GET", httpx.URL(harness.url), headers=headers)
        request.url = request.url.copy_with(raw_path=target.encode())
        return client.send(request)


@pytest.mark.parametrize("form", ["path", "subdomain"])
def test_static_files_are_answered_by_the_proxy_with_file_headers(
    harness, client, static_release, form
):
    url, headers = static_url(harness, form, "/")
    answer = client.get(url, headers=headers)
    assert answer.status_code == 200
    assert answer.content == (static_release / "index.html").read_bytes()
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert answer.headers["content-length"] == str(len(answer.content))
    assert answer.headers["etag"].startswith('"')
    assert answer.headers["last-modified"].endswith(" GMT")
    unicode_path = "/dossier%20%C3%BCn%C3%AFcode/page%20with%20spaces.html"
    url, headers = static_url(harness, form, unicode_path)
    page = client.get(url, headers=headers)
    assert (page.status_code, page.text) == (200, "<p>été</p>\n")
    css = client.get(static_url(harness, form, "/style.css?v=2")[0], headers=headers)
    assert (css.status_code, css.headers["content-type"]) == (200, "text/css; charset=utf-8")
    empty = client.get(static_url(harness, form, "/empty.txt")[0], headers=headers)
    assert (empty.status_code, empty.content, empty.headers["content-length"]) == (200, b"", "0")
    activity = harness.routes.activity["alice/site"]
    wait_for(lambda: activity.open_connections == 0, "the answers to end")
    before = activity.last_request
    client.get(url, headers=headers)
    wait_for(lambda: activity.last_request > before, "the request to count as activity")
    assert activity.open_connections == 0


@pytest.mark.parametrize("form", ["path", "subdomain"])
def test_static_file_revalidation_gives_304_and_head_gives_no_body(
    harness, client, static_release, form
):
    url, headers = static_url(harness, form, "/index.html")
    etag = client.get(url, headers=headers).headers["etag"]
    again = client.get(url, headers={**headers, "If-None-Match": etag})
    assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag)
    changed = client.get(url, headers={**headers, "If-None-Match": '"something-else"'})
    assert changed.status_code == 200
    with socket.create_connection(("127.0.0.1", harness.proxy_port), timeout=5) as sock:
        target = url.removeprefix(harness.url)
        host_line = headers.get("Host", "127.0.0.1")
        request = f"HEAD {target} HTTP/1.1\r\nHost: {host_line}\r\n\r\n"
        sock.sendall(request.encode() * 2)  # two HEADs on one connection: no body in between
        received = b""
        while received.count(b"\r\n\r\n") < 2:
            received += sock.recv(65536)
    first, second, rest = received.split(b"\r\n\r\n", 2)
    assert first.startswith(b"HTTP/1.1 200") and second.startswith(b"HTTP/1.1 200"), received
    size = (static_release / "index.html").stat().st_size
    assert f"content-length: {size}".encode() in first.lower()
    assert rest == b""


@pytest.mark.parametrize("form", ["path", "subdomain"])
@pytest.mark.parametrize(
    "path",
    [
        "/../outside/secret.txt",
        "/%2e%2e/outside/secret.txt",
        "/dossier%20%C3%BCn%C3%AFcode/../../outside/secret.txt",
        "/leak",
        "/up/outside/secret.txt",
        "/trap/",
        "/%00",
        "/index.html%00.txt",
        "/%ff%fe",
        "/no-such-file.html",
    ],
)
def test_static_paths_out_of_the_release_or_missing_go_to_the_control_plane(
    harness, static_release, form, path
):
    url, headers = static_url(harness, form, path)
    answer = raw_get(harness, url.removeprefix(harness.url), headers)
    assert "root:" not in answer.text
    if harness.front_kind == "nginx" and answer.status_code == 400:
        return  # nginx refuses a path that climbs above the root itself
    assert answer.json()["who"] == "control-plane"


def test_static_space_sends_other_methods_ranges_and_websockets_to_the_control_plane(
    harness, client, static_release
):
    url = "/apps/alice/site/index.html"
    assert client.post(url, content=b"x").json()["who"] == "control-plane"
    ranged = client.get(url, headers={"Range": "bytes=0-3"})
    assert ranged.json()["who"] == "control-plane"
    upgrade = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13"}
    upgrade["Sec-WebSocket-Key"] = "dGhlIHNhbXBsZSBub25jZQ=="
    refused = client.get(url, headers=upgrade)  # the stand-in refuses every WebSocket
    assert (refused.status_code, b"Static site" in refused.content) == (403, False)


@pytest.mark.parametrize("form", ["path", "subdomain"])
def test_big_static_file_streams_byte_for_byte_to_a_slow_reader(
    harness, client, static_release, form
):
    expected = hashlib.sha256((static_release / "model weights.bin").read_bytes()).hexdigest()
    url, headers = static_url(harness, form, "/model%20weights.bin")
    digest = hashlib.sha256()
    received = 0
    with client.stream("GET", url, headers=headers) as response:
        assert response.headers["content-length"] == str(BIG_MIB * 1024 * 1024)
        for piece in response.iter_raw():
            if received == 0:
                time.sleep(0.3)  # the proxy must stop reading the file while the client lags
            digest.update(piece)
            received += len(piece)
    assert received == BIG_MIB * 1024 * 1024
    assert digest.hexdigest() == expected
    assert client.get(url.replace("model%20weights.bin", ""), headers=headers).status_code == 200


@pytest.mark.parametrize("form", ["path", "subdomain"])
@pytest.mark.parametrize("token_header", ["Authorization", "X-HF-Authorization"])
def test_private_static_space_serves_files_only_with_a_good_token(
    harness, client, static_release, form, token_header
):
    url, headers = static_url(harness, form, "/index.html", label="alice-hidden")
    for token in (None, "bad-token"):
        extra = {token_header: f"Bearer {token}"} if token else {}
        answer = client.get(url, headers={**headers, **extra})
        assert answer.json()["who"] == "control-plane"
    shown = client.get(url, headers={**headers, token_header: f"Bearer {GOOD_TOKEN}"})
    assert shown.status_code == 200
    assert shown.content == (static_release / "index.html").read_bytes()


# Robustness


def test_huge_header_is_refused_with_431(harness):
    request = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n"
    assert raw_exchange(harness, request).startswith(b"HTTP/1.1 431")


def test_huge_header_sent_slowly_is_refused_with_431(harness):
    with socket.create_connection(("127.0.0.1", harness.proxy_port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: ")
        for _ in range(5):
            sock.sendall(b"a" * 5000)
        assert sock.recv(100).startswith(b"HTTP/1.1 431")


def test_slow_client_is_cut_off_after_the_header_timeout(harness):
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", harness.proxy_port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n")
        assert sock.recv(100) == b""
    assert time.monotonic() - started < LIMITS.header_timeout + 2


def test_idle_keep_alive_connection_is_closed(harness):
    with socket.create_connection(("127.0.0.1", harness.proxy_port), timeout=10) as sock:
        sock.sendall(b"GET /apps/alice/echo/echo HTTP/1.1\r\nHost: a\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        assert sock.recv(100) == b""
        assert time.monotonic() - started < LIMITS.idle_timeout + 2


def test_dead_upstream_answers_502_and_the_proxy_goes_on(client):
    response = client.get("/apps/alice/dead/")
    assert response.status_code == 502
    assert response.text.strip()
    assert client.get("/apps/alice/echo/echo").status_code == 200


def test_bad_request_answers_400_and_the_proxy_goes_on(harness, client):
    assert raw_exchange(harness, b"NOT HTTP AT ALL\r\n\r\n").startswith(b"HTTP/1.1 400")
    assert client.get("/apps/alice/echo/echo").status_code == 200


# Real Gradio and Streamlit apps, in both URL forms


def gradio_environment(owner: str, name: str, port: int) -> dict[str, str]:
    """What the Gradio app container gets for the path form (plus the server address)."""
    return {
        "GRADIO_ROOT_PATH": f"/apps/{owner}/{name}",
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False",
    }


def start_app(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            command, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT
        )


def wait_until_answering(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    def answering() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"the app exited:\n{log.read_text()}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
        except httpx.TransportError:
            return False
        return True

    wait_for(answering, f"the app on port {port}", timeout=60)


@pytest.fixture(scope="module")
def real_apps(harness: ProxyHarness, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    logs = tmp_path_factory.mktemp("apps")
    gradio_port, streamlit_port = free_port(), free_port()
    gradio = start_app(
        [sys.executable, str(EXAMPLES / "gradio-greet" / "app.py")],
        gradio_environment("alice", "greet", gradio_port),
        logs / "gradio.log",
    )
    streamlit = start_app(
        [
            sys.executable, "-m", "streamlit", "run", str(EXAMPLES / "streamlit-square" / "app.py"),
            "--server.port", str(streamlit_port), "--server.address", "127.0.0.1",
            "--server.headless", "true", "--browser.gatherUsageStats", "false",
        ],
        {},
        logs / "streamlit.log",
    )  # fmt: skip
    try:
        wait_until_answering(gradio_port, gradio, logs / "gradio.log")
        wait_until_answering(streamlit_port, streamlit, logs / "streamlit.log")
        greet = Route("alice", "greet", "alice-greet", upstream=Upstream(port=gradio_port))
        square = Route("alice", "square", "alice-square", upstream=Upstream(port=streamlit_port))
        harness.routes.set(greet)
        harness.routes.set(square)
        harness.sync()
        yield
    finally:
        for process in (gradio, streamlit):
            process.terminate()
        for process in (gradio, streamlit):
            process.wait(10)


def app_url(harness: ProxyHarness, form: str, owner: str, name: str) -> str:
    """The app's public URL, ending in `/`."""
    if form == "path":
        return f"{harness.url}/apps/{owner}/{name}/"
    return f"http://{owner}-{name}.localhost:{harness.proxy_port}/"


@pytest.mark.parametrize("form", ["path", "subdomain"])
def test_gradio_client_predicts_through_the_proxy(harness, real_apps, app_hosts_resolve, form):
    from gradio_client import Client

    client = Client(app_url(harness, form, "alice", "greet"), verbose=False)
    assert client.predict("X", api_name="/greet") == "Hello X!!"


@pytest.mark.parametrize("form", ["path", "subdomain"])
def test_gradio_page_assets_and_config_use_a_public_root(
    harness, real_apps, app_hosts_resolve, form
):
    url = app_url(harness, form, "alice", "greet")
    with httpx.Client(timeout=10) as client:
        assert_page_and_its_script_load(client, url)
        root = client.get(urljoin(url, "config")).json()["root"]
        # Both forms report the prefix: the app answers under it in the subdomain form too.
        origin = url.split("/apps/")[0].rstrip("/")
        assert root == f"{origin}/apps/alice/greet"
        assert client.get(f"{root}/gradio_api/info").status_code == 200


@pytest.mark.parametrize("form", ["path", "subdomain"])
def test_streamlit_page_health_and_session_through_the_proxy(
    harness, real_apps, app_hosts_resolve, form
):
    url = app_url(harness, form, "alice", "square")
    with httpx.Client(timeout=10) as client:
        assert "<title>Streamlit</title>" in assert_page_and_its_script_load(client, url)
        assert client.get(urljoin(url, "_stcore/health")).text == "ok"
    assert_streamlit_session_renders(url, "squared is 49")

"""`/metrics` scraped by a real Prometheus (Debian's package), and the proxy's activity records.

The scrape test starts `prometheus` on 127.0.0.1 with a generated config (1 s scrapes, the admin
token as bearer credentials) and asks its HTTP API what a user would: requests to a static
space, builds by result, spaces by stage.
"""

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from sqlmodel import col, func, select
from websockets.sync.client import connect as ws_connect

from spacehub.platform.db import make_engine, session_scope
from spacehub.platform.models import Build
from spacehub.platform.proxy import ProxyLimits
from spacehub.platform.proxy.activity import traffic
from spacehub.platform.route_table import Route, Upstream
from tests.conftest import (
    ADMIN_TOKEN,
    Platform,
    add_user,
    commit_all,
    free_port,
    make_checkout,
    push,
    readme,
    wait_for,
    write_files,
)
from tests.proxy_upstreams import ProxyHarness

PROMETHEUS = shutil.which("prometheus")
PROMETHEUS_CONFIG = """\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: spacehub
    metrics_path: /metrics
    authorization:
      type: Bearer
      credentials_file: {token_file}
    static_configs:
      - targets: ["127.0.0.1:{port}"]
"""
PHOTO = "photos de l'été/plage à midi.jpg"
SITE_PAGE = "<!doctype html><title>Données</title><h1>Bonjour, le monde</h1>\n"


class Prometheus:
    def __init__(self, url: str, process: subprocess.Popen, log: Path) -> None:
        self.url = url
        self.process = process
        self.log = log

    def query(self, expression: str) -> dict[tuple[tuple[str, str], ...], float]:
        """An instant query: each series' labels (without job and instance) and its value."""
        answer = httpx.get(f"{self.url}/api/v1/query", params={"query": expression}, timeout=10)
        answer.raise_for_status()
        body = answer.json()
        assert body["status"] == "success", body
        return {
            tuple(sorted((k, v) for k, v in s["metric"].items() if k not in ("job", "instance"))): (
                float(s["value"][1])
            )
            for s in body["data"]["result"]
        }

    def value(self, expression: str) -> float | None:
        """The one value of `expression`, None when Prometheus has no such series (yet)."""
        series = self.query(expression)
        assert len(series) <= 1, series
        return next(iter(series.values()), None)


@pytest.fixture
def prometheus(platform: Platform, tmp_path: Path) -> Iterator[Prometheus]:
    if PROMETHEUS is None:
        pytest.fail("Debian's prometheus is not installed (scripts/test installs it)")
    token_file = tmp_path / "prometheus-token"
    token_file.write_text(ADMIN_TOKEN)
    config = tmp_path / "prometheus.yml"
    config.write_text(PROMETHEUS_CONFIG.format(token_file=token_file, port=platform.port))
    port = free_port()
    log = tmp_path / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    running = Prometheus(f"http://127.0.0.1:{port}", process, log)
    try:
        wait_for(
            lambda: running.value('up{job="spacehub"}') == 1,
            60,
            "Prometheus to scrape spacehub",
            interval=0.5,
        )
        yield running
    except AssertionError as error:
        raise AssertionError(f"{error}\nprometheus log:\n{log.read_text()[-3000:]}") from None
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def builds_by_result(platform: Platform) -> dict[str, int]:
    engine = make_engine(f"sqlite:///{(platform.data_dir / 'spacehub.db').resolve()}")
    try:
        with session_scope(engine) as session:
            rows = session.exec(select(Build.status, func.count()).group_by(col(Build.status)))
            return {str(status): count for status, count in rows}
    finally:
        engine.dispose()


def app_get(
    platform: Platform, space_id: str, path: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    return httpx.get(f"{platform.apps_url}/apps/{space_id}{path}", headers=headers, timeout=30)


def test_prometheus_sees_requests_builds_and_stages(platform, prometheus, tmp_path):
    site = platform.create_space("carnet-de-voyage", sdk="static")
    hidden = platform.create_space("projet-secret", sdk="static", private=True)
    photo = os.urandom(3 * 1024 * 1024)
    for space_id in (site, hidden):
        checkout = make_checkout(
            tmp_path / space_id.split("/")[1],
            {"README.md": readme("Carnet", "static"), "index.html": SITE_PAGE},
            platform.git_url(space_id),
        )
        (checkout / PHOTO).parent.mkdir()
        (checkout / PHOTO).write_bytes(photo)
        commit_all(checkout, "photos")
        assert push(platform, checkout, space_id).returncode == 0
    for space_id in (site, hidden):
        platform.wait_stage(space_id, {"RUNNING"}, timeout=120)

    pages, photos = 23, 4
    for _ in range(pages):
        assert app_get(platform, site, "/").text == SITE_PAGE
    for _ in range(photos):
        answer = app_get(platform, site, f"/{quote(PHOTO)}")
        assert answer.content == photo
    requests = f'spacehub_space_requests_total{{space="{site}",status_class="2xx"}}'
    wait_for(
        lambda: prometheus.value(requests) == pages + photos,
        30,
        f"Prometheus to count {pages + photos} answers of {site}",
        interval=0.5,
    )
    latency = f'spacehub_space_request_duration_seconds_count{{space="{site}"}}'
    assert prometheus.value(latency) == pages + photos
    # The private space: refused requests never reach it; its reader's are counted.
    assert app_get(platform, hidden, "/").status_code == 404
    for _ in range(3):
        answer = app_get(platform, hidden, "/", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert answer.text == SITE_PAGE
    hidden_requests = f'sum(spacehub_space_requests_total{{space="{hidden}"}})'
    wait_for(lambda: prometheus.value(hidden_requests) == 3, 30, "3 answers of the private space")
    assert prometheus.value(f'spacehub_space_open_streams{{space="{site}"}}') == 0

    # A push whose README is broken: one more failed build, and the space's stage changes.
    failed_before = builds_by_result(platform).get("failed", 0)
    checkout = tmp_path / site.split("/")[1]
    write_files(checkout, {"README.md": "---\ntitle: [unclosed\nsdk: static\n---\n"})
    commit_all(checkout, "a broken front matter")
    assert push(platform, checkout, site).returncode == 0
    platform.wait_stage(site, {"CONFIG_ERROR", "RUNNING"}, timeout=120)
    wait_for(
        lambda: builds_by_result(platform).get("failed", 0) == failed_before + 1,
        60,
        "the broken build to fail",
    )
    expected = builds_by_result(platform)
    assert expected.get("succeeded", 0) >= 2
    wait_for(
        lambda: prometheus.value('spacehub_builds_total{result="failed"}') == failed_before + 1,
        30,
        "Prometheus to count the failed build",
        interval=0.5,
    )
    for result in ("succeeded", "failed"):
        assert prometheus.value(f'spacehub_builds_total{{result="{result}"}}') == expected.get(
            result, 0
        ), result
        durations = f'spacehub_build_duration_seconds_count{{result="{result}"}}'
        assert prometheus.value(durations) == expected.get(result, 0), result

    # Spaces by stage, as the Hub's runtime API reports each one.
    stages: dict[str, int] = {}
    for space_id in (site, hidden):
        stage = platform.runtime(space_id)["stage"]
        stages[stage] = stages.get(stage, 0) + 1
    assert sum(stages.values()) == 2
    by_stage = {
        dict(labels)["stage"]: value
        for labels, value in prometheus.query("spacehub_spaces").items()
    }
    assert {stage: count for stage, count in by_stage.items() if count} == stages
    assert "SLEEPING" in by_stage  # every stage is reported, at 0 when no space is in it

    pool_size = prometheus.value("spacehub_database_pool_size")
    in_use = prometheus.value("spacehub_database_connections_in_use")
    assert pool_size is not None and pool_size > 0
    assert in_use is not None and 0 <= in_use <= 2 * pool_size


def test_metrics_are_for_admins_only(platform):
    hidden = platform.create_space("very-private-plans", sdk="static", private=True)
    reader = add_user(platform, "bob", "write")
    anonymous = httpx.get(f"{platform.url}/metrics", timeout=10)
    assert anonymous.status_code == 401
    assert "very-private-plans" not in anonymous.text
    user = httpx.get(f"{platform.url}/metrics", headers={"Authorization": f"Bearer {reader}"})
    assert user.status_code == 403
    assert "very-private-plans" not in user.text
    with platform.api() as client:
        admin = client.get("/metrics")
    assert admin.status_code == 200
    assert admin.headers["content-type"].startswith("text/plain")
    assert 'spacehub_spaces{stage="RUNNING"}' in admin.text
    assert f'space="{hidden}"' not in admin.text  # no request yet: no series for it


# The proxy's activity records, which sleep-on-idle and /metrics read


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[ProxyHarness]:
    harness = ProxyHarness(tmp_path, ProxyLimits())
    harness.start()
    harness.routes.set(
        Route("alice", "chat", "alice-chat", upstream=Upstream(port=harness.app_port))
    )
    harness.routes.set(
        Route("alice", "gone", "alice-gone", upstream=Upstream(port=harness.dead_port))
    )
    yield harness
    harness.stop()


def record(harness: ProxyHarness, space_id: str):  # type: ignore[no-untyped-def]
    return next(t for t in traffic(harness.routes) if t.space_id == space_id)


def test_open_sse_streams_and_websockets_count_as_activity(harness):
    base = f"{harness.url}/apps/alice/chat"
    with httpx.Client(timeout=10) as client:
        for _ in range(5):
            assert client.get(f"{base}/echo").status_code == 200
        with client.stream("GET", f"{base}/sse/metrics-gate") as stream:
            lines = stream.iter_lines()
            assert next(lines) == "data: one"
            with ws_connect(f"ws://127.0.0.1:{harness.proxy_port}/apps/alice/chat/ws") as ws:
                ws.send("still here")
                assert ws.recv(timeout=5) == "echo:still here"
                time.sleep(0.3)
                busy = record(harness, "alice/chat")
                assert busy.open_streams == 2
                assert busy.open_connections == 2
                assert busy.idle_seconds == 0.0  # open streams: never idle, however long
            httpx.get(f"http://127.0.0.1:{harness.app_port}/release/metrics-gate")
            assert [line for line in lines if line] == ["data: two"]
    wait_for(lambda: record(harness, "alice/chat").open_streams == 0, 10, "streams to close")
    done = record(harness, "alice/chat")
    assert done.open_connections == 0
    assert 0 <= done.idle_seconds < 5
    # 5 echoes, the SSE stream and the WebSocket's 101: each answer counted once by class.
    assert done.responses[1:6] == (1, 6, 0, 0, 0)
    assert sum(done.latency_counts) == 7
    assert done.latency_sum < 5


def test_an_unreachable_app_counts_as_5xx(harness):
    assert httpx.get(f"{harness.url}/apps/alice/gone/", timeout=10).status_code == 502
    gone = record(harness, "alice/gone")
    assert gone.responses[5] == 1
    assert gone.open_connections == 0 and gone.open_streams == 0

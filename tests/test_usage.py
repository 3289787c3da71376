"""Live resource use in the admin console: CPU % and memory of each running space.

A real Gradio space on the local runtime and one on Docker: the admin's JSON endpoint and the
console's spaces table (in Debian's Chromium) show a plausible memory figure and a CPU % that
is a number; a static space shows "—"; anyone but an admin gets 404. The Docker CPU and memory
formulas are checked against a stats answer recorded from this machine's engine.
"""

import re
from pathlib import Path

import httpx
import pytest

from spacehub.runtime.docker import usage_from_stats
from tests.conftest import (
    EXAMPLES,
    Platform,
    add_user,
    explain_failure,
    make_checkout,
    push,
    readme,
    start_platform,
    wait_for,
)
from tests.test_dashboard import new_page, sign_in_with_token
from tests.test_runtime_conformance import clean_up, runtime_settings

MIB = 1024 * 1024
# `docker stats --no-stream` of a python:3.11-slim container holding 52 MiB of anonymous memory
# and 29 MiB of page cache (a file it wrote and read), on Docker 20.10 with cgroup v1, 2 CPUs.
RECORDED_V1_SAMPLE = {
    "cpu_stats": {
        "cpu_usage": {"total_usage": 2079772517},
        "system_cpu_usage": 28999910000000,
        "online_cpus": 2,
    },
    "precpu_stats": {
        "cpu_usage": {"total_usage": 2052771730},
        "system_cpu_usage": 28998000000000,
        "online_cpus": 2,
    },
    "memory_stats": {
        "usage": 86585344,
        "stats": {
            "cache": 30031872,
            "inactive_file": 30023680,
            "total_inactive_file": 30023680,
            "rss": 55169024,
            "total_rss": 55169024,
        },
        "limit": 25276514304,
    },
}


def test_docker_usage_is_computed_as_docker_stats_does():
    usage = usage_from_stats(RECORDED_V1_SAMPLE)
    assert usage is not None
    # (2079772517 - 2052771730) / (28999910000000 - 28998000000000) * 2 CPUs * 100
    assert usage.cpu_percent == pytest.approx(2.8273, abs=1e-3)
    assert usage.memory_bytes == 86585344 - 30023680  # the page cache it could drop is left out
    # cgroup v2 names the same figure inactive_file (no total_ prefix); percpu_usage gives the
    # CPU count when online_cpus is missing (older engines).
    v2 = {
        "cpu_stats": {
            "cpu_usage": {"total_usage": 3_000_000_000, "percpu_usage": [1, 2, 3, 4]},
            "system_cpu_usage": 20_000_000_000,
        },
        "precpu_stats": {"cpu_usage": {"total_usage": 1_000_000_000}, "system_cpu_usage": 0},
        "memory_stats": {"usage": 500 * MIB, "stats": {"inactive_file": 100 * MIB, "anon": 1}},
    }
    usage = usage_from_stats(v2)
    assert usage is not None
    assert usage.cpu_percent == pytest.approx(40.0)
    assert usage.memory_bytes == 400 * MIB
    # A stopped container's answer has no system figure and no memory: unknown.
    stopped = {"cpu_stats": {"cpu_usage": {"total_usage": 0}}, "precpu_stats": {}}
    assert usage_from_stats({**stopped, "memory_stats": {}}) is None


def usage_answer(platform: Platform, token: str | None = None) -> httpx.Response:
    with platform.api(token or platform.token) as client:
        return client.get("/admin/usage")


def check_usage_in_console(chromium, platform: Platform, tmp_path: Path, app: str) -> None:  # type: ignore[no-untyped-def]
    """Push a Gradio app and a static page; the console shows the app's figures, "—" for the
    static one, and only to the admin."""
    platform.create_space("greeter-1", sdk="gradio")
    checkout = make_checkout(
        tmp_path / "greeter", EXAMPLES / "gradio-greet", platform.git_url("admin/greeter-1")
    )
    assert push(platform, checkout, "admin/greeter-1").returncode == 0
    platform.create_space("notes", sdk="static")
    files = {"README.md": readme("Notes", "static"), "index.html": "<h1>Notes d'été</h1>"}
    notes = make_checkout(tmp_path / "notes", files, platform.git_url("admin/notes"))
    assert push(platform, notes, "admin/notes").returncode == 0
    platform.wait_stage("admin/notes", {"RUNNING"}, 60)
    platform.wait_stage("admin/greeter-1", {"RUNNING"}, 600)

    def measured() -> dict | None:
        answer = usage_answer(platform)
        assert answer.status_code == 200, answer.text
        return answer.json()["spaces"].get("admin/greeter-1")

    figures = wait_for(measured, 30, f"the {app} space's usage")
    assert 30 <= figures["memory_mib"] <= 1000, figures
    assert isinstance(figures["cpu_percent"], float) and 0 <= figures["cpu_percent"] <= 400
    assert "admin/notes" not in usage_answer(platform).json()["spaces"]

    page = new_page(chromium, platform)
    sign_in_with_token(page)
    page.goto("/admin")
    row = page.locator('tr[data-space="admin/greeter-1"]')
    wait_for(lambda: "MiB" in row.locator("[data-memory]").inner_text(), 15, "the memory cell")
    memory = row.locator("[data-memory]").inner_text()
    assert 30 <= int(re.fullmatch(r"(\d+) MiB", memory)[1]) <= 1000, memory
    assert re.fullmatch(r"\d+\.\d %", row.locator("[data-cpu]").inner_text())
    static = page.locator('tr[data-space="admin/notes"]')
    assert static.locator("[data-cpu]").inner_text() == "—"
    assert static.locator("[data-memory]").inner_text() == "—"
    page.context.close()

    colleague = add_user(platform, "colleague-usage")
    assert usage_answer(platform, colleague).status_code == 404
    with httpx.Client(base_url=platform.url) as anonymous:
        assert anonymous.get("/admin/usage").status_code == 404


@pytest.mark.parametrize("runtime", [pytest.param("docker", marks=pytest.mark.docker), "local"])
def test_the_console_shows_a_gradio_space_s_cpu_and_memory(browser, runtime, tmp_path, request):  # type: ignore[no-untyped-def]
    platform = start_platform(tmp_path / "data", **runtime_settings(runtime))
    explain_failure(request.node, "platform log (tail)", lambda: platform.log()[-6000:])
    try:
        check_usage_in_console(browser, platform, tmp_path, runtime)
    finally:
        clean_up(runtime, platform, ["admin/greeter-1", "admin/notes"])

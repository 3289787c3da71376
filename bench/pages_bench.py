"""Time the dashboard's pages with 500 spaces and 50 users, against API answers of the same run.

Seeds a fresh SQLite data dir by direct service calls (50 users, 5 orgs, 500 spaces with card
data, a third of them private), starts a real `spacehub serve` on it, signs in as the admin
through the form, and asks each page REQUESTS times over one keep-alive connection. Prints each
page's median and p95 in ms, and its ratio to the baseline `GET /api/health` and to
`GET /api/spaces` (48 spaces, the home page's count). Goal: every page under 100 ms.
Run: python -m bench.pages_bench [--requests 60]
"""

import argparse
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from spacehub.platform.db import make_engine, migrate, session_scope
from spacehub.platform.models import MemberRole, TokenRole
from spacehub.platform.services import accounts, spaces

COLORS = ("red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray")
EMOJIS = ("🚀", "🧮", "🎨", "📈", "🤖", "🦙", "🌍", "🎵")
SDKS = ("gradio", "streamlit", "docker", "static")


def seed(data_dir: Path, admin_token: str) -> None:
    engine = make_engine(f"sqlite:///{data_dir / 'spacehub.db'}")
    migrate(engine)
    with session_scope(engine) as session:
        admin = accounts.create_user(session, "admin", is_admin=True)
        accounts.create_token(session, admin, TokenRole.WRITE, "admin", admin_token)
        users = [
            accounts.create_user(session, f"user{n:02d}", fullname=f"Ü. Ser {n}") for n in range(49)
        ]
        orgs = [accounts.create_user(session, f"team{n}", is_org=True) for n in range(5)]
        for n, user in enumerate(users):
            accounts.add_member(session, orgs[n % 5], user, MemberRole.WRITE)
        owners = [admin, *users, *orgs]
        for n in range(500):
            space = spaces.create_space(
                session,
                owners[n % len(owners)],
                f"space-{n:03d}",
                sdk=SDKS[n % 4],
                private=n % 3 == 0,
            )
            space.card_data = {
                "title": f"Demo {n} — ünïcode & <tags>",
                "emoji": EMOJIS[n % 8],
                "colorFrom": COLORS[n % 8],
                "colorTo": COLORS[(n + 3) % 8],
                "sdk": space.sdk,
                "short_description": "A space seeded for the pages bench",
            }
            session.add(space)
        session.commit()
    engine.dispose()


def timings(client: httpx.Client, path: str, count: int) -> list[float]:
    assert client.get(path).status_code == 200, path  # warm-up and check
    times = []
    for _ in range(count):
        started = time.perf_counter()
        answer = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 200, (path, answer.status_code)
    return times


def p95(values: list[float]) -> float:
    return sorted(values)[int(len(values) * 0.95) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=60)
    args = parser.parse_args()
    token = "hf_bench" + secrets.token_hex(16)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        started = time.monotonic()
        seed(data, token)
        print(f"seeded 50 users, 5 orgs, 500 spaces in {time.monotonic() - started:.1f} s")
        port = 18000 + os.getpid() % 1000
        env = {
            **os.environ,
            "SPACEHUB_DATA_DIR": str(data),
            "SPACEHUB_PORT": str(port),
            "SPACEHUB_SSH_PORT": str(port + 500),
            "SPACEHUB_RUNTIME": "local",
        }
        log = (data / "serve.log").open("wb")
        serve = subprocess.Popen(
            [sys.executable, "-m", "spacehub", "serve"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(600):
                try:
                    if httpx.get(f"{base}/api/health", timeout=1).status_code in (200, 503):
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            run(base, token, args.requests)
        finally:
            serve.terminate()
            serve.wait(30)


def run(base: str, token: str, count: int) -> None:
    api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    created = api.post(
        "/api/repos/create", json={"name": "bench-real", "type": "space", "sdk": "static"}
    )
    assert created.status_code == 200, created.text
    anonymous = httpx.Client(base_url=base, timeout=30)
    browser = httpx.Client(base_url=base, timeout=30)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', browser.get("/signin").text)[1]
    signed = browser.post("/signin", data={"csrf_token": csrf, "token": token})
    assert signed.status_code == 303, signed.text
    baselines = {
        "GET /api/health": timings(anonymous, "/api/health", count),
        "GET /api/spaces?limit=48": timings(api, "/api/spaces?limit=48", count),
    }
    pages = {
        "/ (anonymous)": (anonymous, "/"),
        "/ (admin)": (browser, "/"),
        "/?q=space-4&sdk=gradio": (browser, "/?q=space-4&sdk=gradio"),
        "/signin": (anonymous, "/signin"),
        "/spaces/user07/space-008": (browser, "/spaces/user07/space-008"),
        "/spaces/…/settings": (browser, "/spaces/user07/space-008/settings"),
        "/spaces/…/live/runtime": (browser, "/spaces/user07/space-008/live/runtime"),
        "/spaces/…/tree/main": (browser, "/spaces/admin/bench-real/tree/main"),
        "/spaces/…/commits/main": (browser, "/spaces/admin/bench-real/commits/main"),
        "/new": (browser, "/new"),
        "/settings": (browser, "/settings"),
        "/admin": (browser, "/admin"),
    }
    health = statistics.median(baselines["GET /api/health"])
    listing = statistics.median(baselines["GET /api/spaces?limit=48"])
    print(f"{'request':32} {'median ms':>10} {'p95 ms':>8} {'÷ health':>9} {'÷ /api/spaces':>14}")
    rows = {
        **baselines,
        **{name: timings(client, path, count) for name, (client, path) in pages.items()},
    }
    slowest = 0.0
    for name, times in rows.items():
        median = statistics.median(times)
        if name in pages:
            slowest = max(slowest, p95(times))
        ratios = f"{median / health:9.1f} {median / listing:14.2f}"
        print(f"{name:32} {median:10.1f} {p95(times):8.1f} {ratios}")
    verdict = "met" if slowest < 100 else "NOT met"
    print(f"slowest page p95: {slowest:.1f} ms (goal < 100 ms): {verdict}")


if __name__ == "__main__":
    main()

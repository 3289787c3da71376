"""Sleep and wake on the `local` runtime, against the app's own cold start in the same run.

Run from the repository root: `python -m bench.sleep_bench [--rounds 3] [--spaces 200]
[--running 20]`. It starts its own `spacehub serve --runtime local` (bench/local_bench.py's, with
SPACEHUB_FREEZE_AFTER=2 and no default sleep time) and pushes examples/gradio-greet with git:

1. wake from frozen: the first request after the app froze, less the median of warm requests
   (ms added by the thaw; goal ≤ 50 ms);
2. wake from stopped: the first request (an API client: held by the proxy) after the space fell
   asleep (sleep time 3 s), until the app's page came back, against `python app.py` of the same
   app started by hand in the space's venv until its page answers (goal ≤ 1.3x);
3. the platform process's resident memory (VmRSS of `spacehub serve`) with `--spaces` tiny apps
   (a plain http.server on the Gradio venv) of which `--running` run and the rest are asleep
   (goal ≤ 150 MB), and when it started with none.
"""

import argparse
import json
import os
import statistics
import time
import urllib.request
from pathlib import Path
from tempfile import TemporaryDirectory

from bench.local_bench import ByHand, Platform, gradio_page, wait_until
from bench.push_bench import git

TINY_APP = """import http.server, os

class Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "4")
        self.end_headers()
        self.wfile.write(b"tiny")

    def log_message(self, *args):
        pass

address = (os.environ["GRADIO_SERVER_NAME"], int(os.environ["GRADIO_SERVER_PORT"]))
http.server.ThreadingHTTPServer(address, Answer).serve_forever()
"""
TINY_README = "---\ntitle: tiny\nsdk: gradio\napp_file: app.py\n---\n"
FREEZE_AFTER = 2
SLEEP_TIME = 3
SETTLE_TIMEOUT = 1800


class SleepPlatform(Platform):
    def stage(self, name: str) -> str:
        return json.loads(self.api("GET", f"spaces/admin/{name}/runtime"))["stage"]

    def sleep_time(self, name: str, seconds: int) -> None:
        self.api("POST", f"spaces/admin/{name}/sleeptime", {"seconds": seconds})

    def resident_mb(self) -> float:
        status = Path(f"/proc/{self.serve.pid}/status").read_text()
        (line,) = [row for row in status.splitlines() if row.startswith("VmRSS:")]
        return int(line.split()[1]) / 1024

    def push_tiny(self, name: str, sleep_seconds: int) -> None:
        self.api("POST", "repos/create", {"name": name, "type": "space", "sdk": "gradio"})
        self.sleep_time(name, sleep_seconds)
        remote = f"http://bench:{os.environ['SPACEHUB_BENCH_TOKEN']}@127.0.0.1:{self.port}"
        checkout = self.root / "tiny" / name
        checkout.parent.mkdir(exist_ok=True)
        git("clone", "-q", f"{remote}/spaces/admin/{name}", str(checkout), cwd=checkout.parent)
        (checkout / "app.py").write_text(TINY_APP)
        (checkout / "README.md").write_text(TINY_README)
        git("add", "-A", cwd=checkout)
        git("commit", "-qm", "a tiny app", cwd=checkout)
        git("push", "-q", "origin", "main", cwd=checkout)


def timed_get(url: str, timeout: float = 150) -> float:
    return fetched(url, timeout)[0]


def fetched(url: str, timeout: float = 150) -> tuple[float, str]:
    """Seconds until the whole answer came, and its text (an API client: no text/html)."""
    started = time.monotonic()
    with urllib.request.urlopen(url, timeout=timeout) as answer:
        text = answer.read().decode()
    return time.monotonic() - started, text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--spaces", type=int, default=200)
    parser.add_argument("--running", type=int, default=20)
    options = parser.parse_args()
    from bench.local_bench import TOKEN

    os.environ["SPACEHUB_BENCH_TOKEN"] = TOKEN
    os.environ["SPACEHUB_FREEZE_AFTER"] = str(FREEZE_AFTER)  # read by the serve it starts
    os.environ["SPACEHUB_DEFAULT_SLEEP_TIME"] = "-1"
    with TemporaryDirectory(prefix="sleep-bench-") as tmp:
        platform = SleepPlatform(Path(tmp))
        try:
            run(platform, Path(tmp), options)
        finally:
            platform.stop()


def run(platform: SleepPlatform, root: Path, options: argparse.Namespace) -> None:
    time.sleep(2)
    empty_mb = platform.resident_mb()
    platform.create_and_push("greet-first")
    url = platform.app_url("greet-first")
    python = platform.venv() / "bin" / "python"
    by_hand = ByHand(root)
    cold = [by_hand.start(python)[0] for _ in range(options.rounds)]

    added = []
    for _ in range(options.rounds):
        warm = statistics.median(timed_get(url) for _ in range(5))
        time.sleep(FREEZE_AFTER + 2)  # frozen by now (the supervisor looks every second)
        added.append(timed_get(url) - warm)
    print(
        f"wake from frozen: {statistics.median(added) * 1000:.1f} ms added to the first request "
        f"(median of {options.rounds}: {', '.join(f'{a * 1000:.1f}' for a in added)}; goal ≤ 50)"
    )

    platform.sleep_time("greet-first", SLEEP_TIME)
    wakes = []
    for _ in range(options.rounds):
        wait_until(lambda: platform.stage("greet-first") == "SLEEPING", 60, "SLEEPING")
        seconds, page = fetched(url)  # held by the proxy until the app answers
        wakes.append(seconds)
        assert "gradio_config" in page, page[:300]
        assert gradio_page(url)
    wake, start = statistics.median(wakes), statistics.median(cold)
    print(
        f"wake from stopped: {wake:.2f} s (rounds {', '.join(f'{w:.2f}' for w in wakes)}), "
        f"the app's own cold start {start:.2f} s (by hand, {', '.join(f'{c:.2f}' for c in cold)})"
        f": {wake / start:.2f}x (goal ≤ 1.3x)"
    )

    platform.sleep_time("greet-first", -1)
    names = [f"tiny-{index:03d}" for index in range(options.spaces)]
    for index, name in enumerate(names):
        platform.push_tiny(name, -1 if index < options.running else SLEEP_TIME)
    started = time.monotonic()
    wanted = {
        name: "RUNNING" if index < options.running else "SLEEPING"
        for index, name in enumerate(names)
    }

    def settled() -> bool:
        return all(platform.stage(name) == stage for name, stage in wanted.items())

    wait_until(settled, SETTLE_TIMEOUT, "every tiny space to run or sleep")
    time.sleep(3)
    busy_mb = platform.resident_mb()
    print(
        f"platform memory: {busy_mb:.0f} MB resident with {options.spaces} spaces, "
        f"{options.running} running (plus the Gradio one) and {options.spaces - options.running}"
        f" asleep; {empty_mb:.0f} MB with none (goal ≤ 150 MB); settled in "
        f"{time.monotonic() - started:.0f} s after the pushes"
    )


if __name__ == "__main__":
    main()

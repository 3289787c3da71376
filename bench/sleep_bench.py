"""Sleep and wake on the `docker` and `local` runtimes, against the app's own cold start in the
same run.

Run from the repository root: `python -m bench.sleep_bench [--runtime docker|local|both]
[--rounds 3] [--samples 7] [--gradio-spaces 3] [--spaces 200] [--running 20] [--load 0]`. For
each runtime it starts its own `spacehub serve` (bench/local_bench.py's, with
SPACEHUB_FREEZE_AFTER=2 and no default sleep time) and pushes examples/gradio-greet with git:

1. the app's own cold start, `--rounds` times: local, `python app.py` of the same app in the
   space's venv, started by hand; docker, `docker run` of the very image the platform built,
   with the container's environment and limits, published on 127.0.0.1; each until its page
   answers;
2. wake from frozen, `--samples` times: the first request after the app froze, less the median
   of warm requests just before (ms added by the thaw; goal ≤ 50 ms); median and max. `--load N`
   keeps N busy processes running meanwhile (a loaded host);
3. wake from stopped, `--rounds` times: the first request (an API client: held by the proxy)
   after the space fell asleep (sleep time 3 s), until the app's page came back, ÷ 1. (goal
   ≤ 1.3x), with the supervisor's own timing of each wake's steps (from its log);
4. the memory the apps use with `--gradio-spaces` Gradio spaces running, frozen and stopped (the
   runtime's `usage`: local, the resident memory of each app's processes; docker, the
   container's memory as `docker stats` counts it), and the platform process's resident memory;
5. local only: the platform process's resident memory with `--spaces` tiny apps (a plain
   http.server on the Gradio venv) of which `--running` run and the rest are asleep (goal ≤
   150 MB), and when it started with none.
"""

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import re
import statistics
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from tempfile import TemporaryDirectory

from bench.local_bench import TOKEN, ByHand, Platform, gradio_page, wait_until
from bench.push_bench import git
from spacehub.runtime import load_runtime_class
from spacehub.runtime.base import Instance, Runtime

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
BUILD_TIMEOUT = 900
START_TIMEOUT = 120
MIB = 1024 * 1024
WOKE = re.compile(r"woke (\S+) in ([\d.]+) s(?: \((.*)\))?")


class SleepPlatform(Platform):
    def __init__(self, root: Path, runtime: str) -> None:
        settings = {"freeze_after": str(FREEZE_AFTER), "default_sleep_time": "-1"}
        super().__init__(root, runtime, **settings)
        self.runtime_name = runtime
        platform_id = (self.data / "instance-id").read_text().strip()
        runtime_class = load_runtime_class(runtime)
        extra = {"data_dir": self.data} if runtime == "local" else {}
        self.runtime: Runtime = runtime_class(platform_id=platform_id, **extra)  # type: ignore[call-arg]

    def stage(self, name: str) -> str:
        return json.loads(self.api("GET", f"spaces/admin/{name}/runtime"))["stage"]

    def sleep_time(self, name: str, seconds: int) -> None:
        self.api("POST", f"spaces/admin/{name}/sleeptime", {"seconds": seconds})

    def resident_mb(self) -> float:
        status = Path(f"/proc/{self.serve.pid}/status").read_text()
        (line,) = [row for row in status.splitlines() if row.startswith("VmRSS:")]
        return int(line.split()[1]) / 1024

    def instances(self, name: str | None = None) -> list[Instance]:
        found = asyncio.run(self.runtime.list_instances())
        return [i for i in found if name is None or i.space_id == f"admin/{name}"]

    def frozen(self, name: str) -> bool:
        """Whether the space's instance is frozen now (a paused container, a stopped group)."""
        instances = self.instances(name)
        if len(instances) != 1:
            return False
        (instance,) = instances
        if self.runtime_name == "docker":
            state = self.runtime.client.api.inspect_container(instance.state["container_id"])  # type: ignore[attr-defined]
            return bool(state["State"]["Paused"])
        states = {process_state(pid) for pid in process_group(instance.state["pid"])}
        return states == {"T"}

    def apps_memory_mib(self) -> tuple[float, int]:
        """The memory every app of this platform uses now, and how many instances were asked."""
        instances = self.instances()

        async def ask() -> list:
            return await asyncio.gather(*(self.runtime.usage(i) for i in instances))

        answers = asyncio.run(ask())
        return sum(a.memory_bytes for a in answers if a is not None) / MIB, len(instances)

    def frozen_wakes(self) -> tuple[float, float]:
        """The supervisor's frozen-tier wakes so far: their count and summed seconds (from the
        thaw's request reaching its loop until the app was thawed)."""
        request = urllib.request.Request(
            f"{self.base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            text = answer.read().decode()
        found = dict.fromkeys(("count", "sum"), 0.0)
        for key in found:
            prefix = f'spacehub_wake_duration_seconds_{key}{{tier="frozen"}} '
            for row in text.splitlines():
                if row.startswith(prefix):
                    found[key] = float(row.split()[-1])
        return found["count"], found["sum"]

    def woke_lines(self) -> list[str]:
        return [line for line in self.log.read_text().splitlines() if WOKE.search(line)]

    def push_copy(self, name: str, source: Path) -> None:
        """Another space with the same files as `source` (a checkout), built and running."""
        self.api("POST", "repos/create", {"name": name, "type": "space", "sdk": "gradio"})
        remote = f"http://bench:{TOKEN}@127.0.0.1:{self.port}/spaces/admin/{name}"
        git("push", "-q", "--force", remote, "HEAD:main", cwd=source)
        self.wait(lambda: gradio_page(self.app_url(name)), name, BUILD_TIMEOUT)

    def push_tiny(self, name: str, sleep_seconds: int) -> None:
        self.api("POST", "repos/create", {"name": name, "type": "space", "sdk": "gradio"})
        self.sleep_time(name, sleep_seconds)
        remote = f"http://bench:{TOKEN}@127.0.0.1:{self.port}"
        checkout = self.root / "tiny" / name
        checkout.parent.mkdir(exist_ok=True)
        git("clone", "-q", f"{remote}/spaces/admin/{name}", str(checkout), cwd=checkout.parent)
        (checkout / "app.py").write_text(TINY_APP)
        (checkout / "README.md").write_text(TINY_README)
        git("add", "-A", cwd=checkout)
        git("commit", "-qm", "a tiny app", cwd=checkout)
        git("push", "-q", "origin", "main", cwd=checkout)


def process_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return "?"


def process_group(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text().rpartition(")")[2].split()
                if int(stat[2]) == pgid:
                    members.append(int(entry.name))
    return members


def timed_get(url: str, timeout: float = 150) -> float:
    return fetched(url, timeout)[0]


def fetched(url: str, timeout: float = 150) -> tuple[float, str]:
    """Seconds until the whole answer came, and its text (an API client: no text/html)."""
    started = time.monotonic()
    with urllib.request.urlopen(url, timeout=timeout) as answer:
        text = answer.read().decode()
    return time.monotonic() - started, text


class DockerRun:
    """`docker run` of the image the platform runs for a space, as a user would start it: the
    container's environment, limits and security flags, its port published on 127.0.0.1."""

    def __init__(self, platform: SleepPlatform, name: str) -> None:
        (instance,) = platform.instances(name)
        attrs = platform.runtime.client.api.inspect_container(instance.state["container_id"])  # type: ignore[attr-defined]
        host, config = attrs["HostConfig"], attrs["Config"]
        self.port = config["Labels"]["spacehub.port"]
        self.image = attrs["Image"]
        self.flags = [
            *(f"--env={variable}" for variable in config["Env"]),
            f"--memory={host['Memory']}",
            f"--memory-swap={host['MemorySwap']}",
            f"--cpus={host['NanoCpus'] / 1e9}",
            f"--pids-limit={host['PidsLimit']}",
            "--init",
            "--cap-drop=ALL",
            "--security-opt=no-new-privileges",
            f"--network={attrs['HostConfig']['NetworkMode']}",
            f"--publish=127.0.0.1::{self.port}",
        ]
        self.returned: list[float] = []

    def start(self) -> float:
        """Seconds from `docker run` until the app's page answers (`docker run` returned after
        `self.returned` seconds)."""
        started = time.monotonic()
        container = docker_cli("run", "--detach", *self.flags, self.image)
        self.returned.append(time.monotonic() - started)
        try:
            address = docker_cli("port", container, f"{self.port}/tcp").split()[0]
            url = f"http://{address}/"
            wait_until(lambda: gradio_page(url), START_TIMEOUT, "docker run of the app")
            return time.monotonic() - started
        finally:
            docker_cli("rm", "--force", container)


def docker_cli(*args: str) -> str:
    done = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=120, check=True
    )
    return done.stdout.strip()


@contextlib.contextmanager
def alongside(
    workers: list[threading.Thread] | list[multiprocessing.Process], end: Callable[[], None]
) -> Iterator[None]:
    """`workers` run for the duration; `end` tells them to stop."""
    for worker in workers:
        worker.start()
    try:
        yield
    finally:
        end()
        for worker in workers:
            worker.join(60)


def busy_host(processes: int) -> contextlib.AbstractContextManager[None]:
    """`processes` busy loops for the duration: the host under load."""
    workers = [multiprocessing.Process(target=spin, daemon=True) for _ in range(processes)]
    return alongside(workers, lambda: [worker.kill() for worker in workers])


def spin() -> None:
    while True:
        pass


def requests_meanwhile(
    urls: list[str], clients: int = 1, pause: float = 0.0
) -> contextlib.AbstractContextManager[None]:
    """`clients` threads asking for each of `urls` in turn, `pause` seconds between rounds."""
    stop = threading.Event()

    def ask() -> None:
        while not stop.wait(pause):
            for url in urls:
                with contextlib.suppress(OSError):
                    timed_get(url, 30)

    return alongside([threading.Thread(target=ask, daemon=True) for _ in range(clients)], stop.set)


def summary(values: list[float], unit: str = "ms", scale: float = 1000) -> str:
    raw = ", ".join(f"{v * scale:.1f}" for v in values)
    return (
        f"median {statistics.median(values) * scale:.1f} {unit}, "
        f"max {max(values) * scale:.1f} {unit} ({raw})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtime", choices=("docker", "local", "both"), default="both")
    parser.add_argument("--rounds", type=int, default=3, help="cold starts and wakes (median)")
    parser.add_argument("--samples", type=int, default=7, help="wakes from frozen")
    parser.add_argument("--gradio-spaces", type=int, default=3, help="for the memory figures")
    parser.add_argument("--spaces", type=int, default=200, help="tiny spaces (local; 0: skip)")
    parser.add_argument("--running", type=int, default=20)
    parser.add_argument("--load", type=int, default=0, help="busy processes while thawing")
    parser.add_argument("--traffic", type=int, default=0, help="API clients while thawing")
    options = parser.parse_args()
    os.environ["SPACEHUB_BENCH_TOKEN"] = TOKEN
    runtimes = ("docker", "local") if options.runtime == "both" else (options.runtime,)
    results: dict[str, list[str]] = {}
    for runtime in runtimes:
        with TemporaryDirectory(prefix=f"sleep-bench-{runtime}-") as tmp:
            platform = SleepPlatform(Path(tmp), runtime)
            try:
                results[runtime] = run(platform, Path(tmp), options)
            finally:
                platform.stop()
    print(f"\nload average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    for runtime, lines in results.items():
        print(f"\n{runtime}:")
        for line in lines:
            print(f"  {line}")


def run(platform: SleepPlatform, root: Path, options: argparse.Namespace) -> list[str]:
    """Every measurement on one runtime; the lines of its report."""
    report: list[str] = []

    def say(line: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {platform.runtime_name}: {line}", flush=True)
        report.append(line)

    time.sleep(2)
    empty_mb = platform.resident_mb()
    checkout, pushed, _ = platform.create_and_push("greet-first")
    say(f"first push until the page answered: {pushed:.1f} s")
    url = platform.app_url("greet-first")
    cold_start = cold_starter(platform, root)
    added, thawing = [], []
    api = [f"{platform.base}/api/spaces"]  # the control plane, through the proxy
    with busy_host(options.load), requests_meanwhile(api, options.traffic):
        for _ in range(options.samples):
            warm = statistics.median(timed_get(url) for _ in range(5))
            wait_until(lambda: platform.frozen("greet-first"), FREEZE_AFTER + 30, "a freeze")
            count, seconds = platform.frozen_wakes()
            added.append(timed_get(url) - warm)
            after = platform.frozen_wakes()
            if after[0] == count + 1:
                thawing.append(after[1] - seconds)
    loaded = f", {options.load} busy processes" if options.load else ""
    loaded += f", {options.traffic} API clients" if options.traffic else ""
    say(f"wake from frozen, ms added to the first request{loaded}: {summary(added)} (goal ≤ 50)")
    say(f"  of which the thaw (asked in the proxy until thawed): {summary(thawing)}")

    platform.sleep_time("greet-first", SLEEP_TIME)
    wakes, cold = [], []
    for _ in range(options.rounds):  # a cold start, then a wake: the same load for both
        cold.append(cold_start.start())
        wait_until(lambda: platform.stage("greet-first") == "SLEEPING", 60, "SLEEPING")
        seconds, page = fetched(url)  # held by the proxy until the app answers
        wakes.append(seconds)
        assert "gradio_config" in page, page[:300]
        assert gradio_page(url)
    say(f"the app's own cold start ({baseline_name(platform)}): {summary(cold, 's', 1)}")
    if isinstance(cold_start, DockerRun):
        say(f"  docker run returned after {summary(cold_start.returned, 's', 1)}")
    wake, start = statistics.median(wakes), statistics.median(cold)
    say(
        f"wake from stopped: {summary(wakes, 's', 1)}, the app's own cold start {start:.2f} s:"
        f" {wake / start:.2f}x (goal ≤ 1.3x)"
    )
    for line in platform.woke_lines():
        found = WOKE.search(line)
        assert found is not None
        say(f"  supervisor: woke in {found[2]} s ({found[3] or 'no steps logged'})")
    platform.sleep_time("greet-first", -1)
    memory(platform, checkout, options.gradio_spaces, say)
    if platform.runtime_name == "local" and options.spaces:
        tiny_spaces(platform, options, empty_mb, say)
    return report


def baseline_name(platform: SleepPlatform) -> str:
    if platform.runtime_name == "docker":
        return "docker run of the same image, until its page answers"
    return "python app.py in the space's venv, until its page answers"


class HandStart:
    """`python app.py` in the space's venv, by hand, until its page answers."""

    def __init__(self, platform: SleepPlatform, root: Path) -> None:
        self.python = platform.venv() / "bin" / "python"
        self.by_hand = ByHand(root)

    def start(self) -> float:
        return self.by_hand.start(self.python)[0]


def cold_starter(platform: SleepPlatform, root: Path) -> DockerRun | HandStart:
    if platform.runtime_name == "docker":
        return DockerRun(platform, "greet-first")
    return HandStart(platform, root)


def memory(platform: SleepPlatform, checkout: Path, count: int, say: Callable[[str], None]) -> None:
    """Apps' memory and the platform's with `count` Gradio spaces running, frozen, stopped."""
    names = ["greet-first", *(f"greet-{index}" for index in range(2, count + 1))]
    for name in names[1:]:
        platform.push_copy(name, checkout)
    urls = [platform.app_url(name) for name in names]
    with requests_meanwhile(urls, pause=0.5):  # they stay awake
        time.sleep(3)  # every app has answered a few requests
        running, instances = platform.apps_memory_mib()
        running_platform = platform.resident_mb()
    assert instances == len(names), f"{instances} instances for {len(names)} spaces"
    for name in names:
        wait_until(lambda name=name: platform.frozen(name), FREEZE_AFTER + 30, "freezes")
    frozen, _ = platform.apps_memory_mib()
    frozen_platform = platform.resident_mb()
    for name in names:
        platform.sleep_time(name, SLEEP_TIME)
    for name in names:
        wait_until(lambda name=name: platform.stage(name) == "SLEEPING", 60, "SLEEPING")
    stopped, left = platform.apps_memory_mib()
    stopped_platform = platform.resident_mb()
    say(
        f"{len(names)} Gradio apps' memory: running {running:.0f} MiB, frozen {frozen:.0f} MiB "
        f"(a frozen app keeps its memory), stopped {stopped:.0f} MiB ({left} instances left)"
    )
    say(
        f"platform process resident: {running_platform:.0f} MB with them running, "
        f"{frozen_platform:.0f} MB frozen, {stopped_platform:.0f} MB asleep"
    )
    for name in names:
        platform.sleep_time(name, -1)
        with contextlib.suppress(OSError):
            platform.api("DELETE", "repos/delete", {"name": name, "type": "space"})


def tiny_spaces(
    platform: SleepPlatform,
    options: argparse.Namespace,
    empty_mb: float,
    say: Callable[[str], None],
) -> None:
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
    say(
        f"platform memory: {busy_mb:.0f} MB resident with {options.spaces} spaces, "
        f"{options.running} running and {options.spaces - options.running} asleep; "
        f"{empty_mb:.0f} MB with none (goal ≤ 150 MB); settled in "
        f"{time.monotonic() - started:.0f} s after the pushes"
    )


if __name__ == "__main__":
    main()

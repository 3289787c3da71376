"""Push-to-answer of Gradio spaces on the `local` runtime against the same work done by hand.

Run from the repository root: `python -m bench.local_bench [--starts 3] [--redeploys 3]`. It
starts its own `spacehub serve --runtime local` on a free loopback port with a temporary data dir
(so the platform's uv cache, DATA_DIR/cache/uv, starts empty) and pushes examples/gradio-greet
with git; each time runs from the start of `git push` until the app answers through the proxy
(path form). Baselines are measured in the same run, with the same interpreter and network:

1. the first Gradio space (empty uv cache) against `uv venv` + `uv pip install gradio==<the
   builder's default>` with an empty `UV_CACHE_DIR` + `python app.py`, until its page answers;
2. a new space whose dependencies another space already has, against `python app.py` of the same
   app started by hand in that space's venv (DATA_DIR/venvs/...), until its page answers;
3. a code-only push to a running space (a new greeting) until `/gradio_api/call/greet` answers
   with the new text, against the same start by hand until its call answers.
"""

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import uv

from bench.push_bench import fetch, free_port, git
from spacehub.builder.dockerfile import DEFAULT_SDK_VERSIONS
from spacehub.core.space_config import SpaceConfig
from spacehub.runtime.local import COMPILED_MARKER

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "gradio-greet"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
TOKEN = "hf_benchtokenXXXXXXXXXXXXXXXXXXXXXXXXX"
GREETING = '"Hello "'
UV_ENV = {
    **{key: value for key, value in os.environ.items() if not key.startswith("UV_")},
    "UV_PYTHON_DOWNLOADS": "never",
    "UV_NO_PROGRESS": "1",
    "UV_NO_CONFIG": "1",
    **({"SSL_CERT_FILE": str(CA_BUNDLE)} if CA_BUNDLE.is_file() else {}),
}
BUILD_TIMEOUT = 600  # the first build downloads Gradio from PyPI
START_TIMEOUT = 120
GREET_PROBE_SECONDS = 0.1  # between code-only redeploy probes (a call to the app each)


def gradio_page(url: str) -> bool:
    page = fetch(url)
    return page is not None and "gradio_config" in page


def greet(base: str, name: str) -> str | None:
    """What the app's `greet` endpoint answers for `name`, through Gradio's /call/ API (SSE)."""
    request = urllib.request.Request(
        f"{base}gradio_api/call/greet",
        data=json.dumps({"data": [name]}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            event_id = json.loads(answer.read())["event_id"]
        with urllib.request.urlopen(f"{base}gradio_api/call/greet/{event_id}", timeout=10) as sse:
            complete = False
            for raw in sse:
                line = raw.decode().strip()
                if line.startswith("event:"):
                    complete = line == "event: complete"
                elif line.startswith("data:") and complete:
                    return json.loads(line[5:])[0]
    except (OSError, ValueError, KeyError, IndexError):
        return None
    return None


def wait_until(
    check: Callable[[], object], timeout: float, what: str, interval: float = 0.02
) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out: {what}")
        time.sleep(interval)


def find_python() -> str:
    """The host interpreter the builder picks for the default `python_version`."""
    version = SpaceConfig.model_fields["python_version"].default
    found = subprocess.run(
        [uv.find_uv_bin(), "python", "find", "--system", "--no-project", version],
        env=UV_ENV,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return found.stdout.strip()


class ByHand:
    """`python app.py` as a user starts it, timed until its page (and its `greet`) answer."""

    def __init__(self, root: Path) -> None:
        self.app = root / "by-hand-app"
        shutil.copytree(EXAMPLE, self.app)

    def start(self, python: Path) -> tuple[float, float]:
        """Seconds until the page answers, and until `greet` answers, from the start."""
        port = free_port()
        env = {
            **os.environ,
            "GRADIO_SERVER_NAME": "127.0.0.1",
            "GRADIO_SERVER_PORT": str(port),
            "GRADIO_ANALYTICS_ENABLED": "False",  # as the platform sets it
        }
        base = f"http://127.0.0.1:{port}/"
        started = time.monotonic()
        process = subprocess.Popen(
            [str(python), "app.py"],
            cwd=self.app,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            wait_until(lambda: gradio_page(base), START_TIMEOUT, "the app started by hand")
            page = time.monotonic() - started
            wait_until(lambda: greet(base, "bench") == "Hello bench!!", 30, "greet by hand")
            return page, time.monotonic() - started
        finally:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)

    def first(self, root: Path, python: str) -> tuple[float, float]:
        """Seconds of `uv venv` + `uv pip install gradio` (empty cache), then of the app's start."""
        cache = root / "by-hand-uv-cache"
        env = {**UV_ENV, "UV_CACHE_DIR": str(cache)}
        venv = root / "by-hand-venv"
        gradio = f"gradio=={DEFAULT_SDK_VERSIONS['gradio']}"
        started = time.monotonic()
        for command in (
            ["venv", "--quiet", "--python", python, str(venv)],
            ["pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), gradio],
        ):
            subprocess.run(
                [uv.find_uv_bin(), *command], env=env, check=True, capture_output=True, timeout=900
            )
        installed = time.monotonic() - started
        page, _ = self.start(venv / "bin" / "python")
        shutil.rmtree(cache, ignore_errors=True)
        return installed, page


class Platform:
    """A `spacehub serve` of our own on free loopback ports (runtime `local` unless told),
    and the spaces pushed to it."""

    def __init__(self, root: Path, runtime: str = "local", **settings: str) -> None:
        self.root = root
        self.data = root / "data"
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        apps_port = free_port()
        self.apps = f"http://localhost:{apps_port}"  # the apps origin: no redirect from base
        env = {
            **os.environ,
            "SPACEHUB_DATA_DIR": str(self.data),
            "SPACEHUB_PORT": str(self.port),
            "SPACEHUB_APPS_PORT": str(apps_port),
            "SPACEHUB_SSH_PORT": "0",  # the benches push over HTTP; leave 2222 to others
            "SPACEHUB_ADMIN_TOKEN": TOKEN,
            "SPACEHUB_RUNTIME": runtime,
        }
        if CA_BUNDLE.is_file():
            env["SPACEHUB_BUILD_CA_BUNDLE"] = str(CA_BUNDLE)
        env.update({f"SPACEHUB_{name.upper()}": value for name, value in settings.items()})
        self.log = root / "serve.log"
        with self.log.open("wb") as output:
            self.serve = subprocess.Popen(
                [sys.executable, "-m", "spacehub", "serve"],
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        wait_until(lambda: fetch(f"{self.base}/api/spaces") is not None, 60, "spacehub serve")

    def api(self, method: str, path: str, body: dict | None = None) -> str:
        request = urllib.request.Request(
            f"{self.base}/api/{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.read().decode()

    def app_url(self, name: str) -> str:
        return f"{self.apps}/apps/admin/{name}/"

    def create_and_push(self, name: str) -> tuple[Path, float, dict[str, float]]:
        """A new space holding the example; seconds from `git push` until its page answers,
        and when (from the same start) the space's runtime stage first showed each value."""
        self.api("POST", "repos/create", {"name": name, "type": "space", "sdk": "gradio"})
        checkout = self.root / name
        remote = f"http://bench:{TOKEN}@127.0.0.1:{self.port}/spaces/admin/{name}"
        git("clone", "-q", remote, str(checkout), cwd=self.root)
        shutil.copytree(EXAMPLE, checkout, dirs_exist_ok=True)
        git("add", "-A", cwd=checkout)
        git("commit", "-qm", "the greet app", cwd=checkout)
        started = time.monotonic()
        git("push", "-q", "origin", "main", cwd=checkout)
        stages: dict[str, float] = {}
        polled = [0.0]

        def answers() -> bool:
            now = time.monotonic()
            if now - polled[0] > 0.1:  # the stage now and then, not on every probe
                polled[0] = now
                with contextlib.suppress(OSError, ValueError, KeyError):
                    stage = json.loads(self.api("GET", f"spaces/admin/{name}/runtime"))["stage"]
                    stages.setdefault(stage, now - started)
            return gradio_page(self.app_url(name))

        self.wait(answers, name, BUILD_TIMEOUT)
        return checkout, time.monotonic() - started, stages

    def redeploy(self, checkout: Path, name: str, greeting: str) -> float:
        """Seconds from a code-only push until `greet` answers with `greeting`."""
        app = (EXAMPLE / "app.py").read_text().replace(GREETING, f'"{greeting} "')
        (checkout / "app.py").write_text(app)
        git("commit", "-qam", f"greet with {greeting}", cwd=checkout)
        started = time.monotonic()
        git("push", "-q", "origin", "main", cwd=checkout)
        expected = f"{greeting} bench!!"

        # Each probe is a whole call that the old instance serves: 50 a second kept most of a
        # core busy on a 2-core machine while the new instance started (adds <= 0.1 s here).
        def greeted() -> bool:
            return greet(self.app_url(name), "bench") == expected

        self.wait(greeted, name, START_TIMEOUT, interval=GREET_PROBE_SECONDS)
        return time.monotonic() - started

    def wait(
        self, check: Callable[[], object], name: str, timeout: float, interval: float = 0.02
    ) -> None:
        try:
            wait_until(check, timeout, name, interval)
        except SystemExit:
            with contextlib.suppress(OSError):
                print(self.api("GET", f"spaces/admin/{name}/runtime"), file=sys.stderr)
            print(self.log.read_text()[-3000:], file=sys.stderr)
            raise

    def venv(self) -> Path:
        """The one shared venv the spaces run in, once its bytecode is compiled (the runtime
        marks it so when done): the starts by hand get the `.pyc` files spacehub's get."""
        (venv,) = [path for path in (self.data / "venvs").glob("py*") if path.is_dir()]
        wait_until(
            lambda: (venv / COMPILED_MARKER).exists(), 600, "the venv's bytecode compilation"
        )
        return venv

    def stop(self) -> None:
        try:
            for name in ("greet-first", "greet-second"):
                with contextlib.suppress(OSError):
                    self.api("DELETE", "repos/delete", {"name": name, "type": "space"})
        finally:
            self.serve.send_signal(signal.SIGTERM)
            try:
                self.serve.wait(60)
            except subprocess.TimeoutExpired:
                self.serve.kill()
                self.serve.wait(10)
            # Local apps outlive their platform by design: end those this run started.
            for record in (self.data / "run" / "local").glob("*.json"):
                with contextlib.suppress(OSError, ValueError, KeyError):
                    os.killpg(json.loads(record.read_text())["pid"], signal.SIGKILL)


def timeline(stages: dict[str, float]) -> str:
    return ", ".join(f"{stage} at {seconds:.1f} s" for stage, seconds in stages.items())


def report(label: str, ours: float, baseline: float, goal: str) -> None:
    ratio = ours / baseline
    print(f"{label}: spacehub {ours:.1f} s, by hand {baseline:.1f} s, {ratio:.2f}x ({goal})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=3, help="starts by hand (median)")
    parser.add_argument("--redeploys", type=int, default=3, help="code-only pushes (median)")
    parser.add_argument(
        "--build-cpus",
        default="0",
        help="the platform's SPACEHUB_BUILD_CPUS; 0 (default): no limit, as the install by hand "
        "has none (the platform's own default, half the cores at idle priority, keeps apps "
        "responsive during builds and makes a first install slower on a small machine)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="spacehub-local-bench-") as tmp:
        root = Path(tmp)
        by_hand = ByHand(root)
        python = find_python()
        install_by_hand, first_start_by_hand = by_hand.first(root, python)
        platform = Platform(root, build_cpus=args.build_cpus)
        try:
            _, first, first_stages = platform.create_and_push("greet-first")
            venv = platform.venv()
            starts = [by_hand.start(venv / "bin" / "python") for _ in range(args.starts)]
            checkout, second, second_stages = platform.create_and_push("greet-second")
            redeploys = [
                platform.redeploy(checkout, "greet-second", f"Hi number {number},")
                for number in range(args.redeploys)
            ]
        finally:
            platform.stop()
    page_start = statistics.median(start[0] for start in starts)
    call_start = statistics.median(start[1] for start in starts)
    redeploy = statistics.median(redeploys)
    limit = f"{args.build_cpus} cores" if args.build_cpus not in ("0", "") else "no limit"
    print(f"interpreter {python}, gradio=={DEFAULT_SDK_VERSIONS['gradio']}, builds: {limit}")
    print(
        f"app started by hand in the shared venv: page {page_start:.1f} s, greet {call_start:.1f} s"
    )
    first_by_hand = install_by_hand + first_start_by_hand
    report("1. first Gradio space, empty uv cache", first, first_by_hand, "goal <= 1.2x")
    print(
        f"   by hand: uv venv + uv pip install {install_by_hand:.1f} s, "
        f"first start {first_start_by_hand:.1f} s; spacehub stages seen: {timeline(first_stages)}"
    )
    report("2. new space, dependencies shared", second, page_start, "goal <= 5 s and <= 1.5x")
    print(f"   spacehub stages seen: {timeline(second_stages)}")
    print(f"3. code-only redeploys: {', '.join(f'{seconds:.1f} s' for seconds in redeploys)}")
    report("3. code-only redeploy (median)", redeploy, call_start, "goal <= 1.5x")


if __name__ == "__main__":
    main()

"""Push-to-live of a static space against a plain `git push` to a local bare repository.

Run from the repository root: `python -m bench.push_bench [--pushes 10] [--large-mb 150]`. It
starts its own `spacehub serve` on a free loopback port with a temporary data dir, pushes small
changes of examples/static-site one after another, and times each from the start of `git push`
until the new page is served; the baseline is the same pushes to a `file://` bare repository,
measured in the same run. Then it pushes one commit with an incompressible binary of
`--large-mb` MB to a new space (HTTP, through the proxy) and to a new bare repository. Prints
medians and the ratios.
"""

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "static-site"
TOKEN = "hf_benchtokenXXXXXXXXXXXXXXXXXXXXXXXXX"
GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@localhost",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@localhost",
}


def git(*args: str, cwd: Path) -> None:
    subprocess.run(
        ["git", *args], cwd=cwd, env=GIT_ENV, check=True, capture_output=True, timeout=60
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fetch(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.read().decode()
    except OSError:
        return None


def wait_until(check: Callable[[], object], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        time.sleep(0.005)


def time_pushes(checkout: Path, remote: str, pushes: int, live_url: str | None) -> list[float]:
    times = []
    for number in range(pushes):
        page = (EXAMPLE / "index.html").read_text().replace("</body>", f"<p>{number}</p></body>")
        (checkout / "index.html").write_text(page)
        git("commit", "-qam", f"change {number}", cwd=checkout)
        started = time.monotonic()
        git("push", "-q", remote, "main", cwd=checkout)
        if live_url is not None:
            wait_until(lambda page=page: fetch(live_url) == page, 30)
        times.append(time.monotonic() - started)
    return times


def time_large_push(root: Path, size_mb: int, remote: str) -> float:
    """Seconds to push one commit holding `size_mb` MB of random bytes to `remote`."""
    checkout = checkout_of_example(root / f"large-{len(list(root.iterdir()))}")
    with (checkout / "weights.bin").open("wb") as out:
        for _ in range(size_mb):
            out.write(os.urandom(1024 * 1024))
    git("add", "weights.bin", cwd=checkout)
    git("commit", "-qm", "weights", cwd=checkout)
    started = time.monotonic()
    git("push", "-q", "--force", remote, "main", cwd=checkout)
    return time.monotonic() - started


def create_space(base: str, name: str) -> None:
    request = urllib.request.Request(
        f"{base}/api/repos/create",
        data=f'{{"name": "{name}", "type": "space", "sdk": "static"}}'.encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=10).close()


def checkout_of_example(directory: Path) -> Path:
    shutil.copytree(EXAMPLE, directory)
    git("init", "-q", "-b", "main", cwd=directory)
    git("add", "-A", cwd=directory)
    git("commit", "-qm", "first", cwd=directory)
    return directory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushes", type=int, default=10)
    parser.add_argument("--large-mb", type=int, default=150)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="spacehub-push-bench-") as tmp:
        root = Path(tmp)
        bare = root / "bare.git"
        subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
        plain = checkout_of_example(root / "plain")
        git("push", "-q", f"file://{bare}", "main", cwd=plain)
        baseline = time_pushes(plain, f"file://{bare}", args.pushes, None)

        port = free_port()
        env = {
            **os.environ,
            "SPACEHUB_DATA_DIR": str(root / "data"),
            "SPACEHUB_PORT": str(port),
            "SPACEHUB_SSH_PORT": "0",  # this bench pushes over HTTP; leave 2222 to others
            "SPACEHUB_ADMIN_TOKEN": TOKEN,
        }
        serve = subprocess.Popen(
            [sys.executable, "-m", "spacehub", "serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            wait_until(lambda: fetch(f"{base}/api/spaces") is not None, 60)
            create_space(base, "bench")
            ours = checkout_of_example(root / "ours")
            remote = f"http://bench:{TOKEN}@127.0.0.1:{port}/spaces/admin/bench"
            # A new space starts with a README commit of its own, as on the Hub.
            git("push", "-q", "--force", remote, "main", cwd=ours)
            live = time_pushes(ours, remote, args.pushes, f"{base}/apps/admin/bench/")
            create_space(base, "large")
            large_remote = f"http://bench:{TOKEN}@127.0.0.1:{port}/spaces/admin/large"
            large = time_large_push(root, args.large_mb, large_remote)
            large_bare = root / "large.git"
            subprocess.run(["git", "init", "-q", "--bare", str(large_bare)], check=True)
            large_plain = time_large_push(root, args.large_mb, f"file://{large_bare}")
        finally:
            serve.send_signal(signal.SIGTERM)
            serve.wait(30)
    plain_median, live_median = statistics.median(baseline), statistics.median(live)
    print(f"plain git push to a bare repository (file://): median {plain_median * 1000:.0f} ms")
    print(
        f"spacehub push to live (static, HTTP):          median {live_median * 1000:.0f} ms, "
        f"max {max(live) * 1000:.0f} ms"
    )
    print(f"push-to-live / plain push: {live_median / plain_median:.1f}x")
    print(f"push of {args.large_mb} MB: plain file:// {large_plain:.1f} s, spacehub {large:.1f} s")
    print(f"large push / plain push: {large / large_plain:.2f}x")


if __name__ == "__main__":
    main()

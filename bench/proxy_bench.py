"""Our proxy against nginx on a tiny static file: wrk req/s, p99 and the ratio to nginx as a proxy.

Run from the repository root: `python -m bench.proxy_bench [--seconds 5] [--rounds 3]`. nginx and
wrk must be installed; everything listens on 127.0.0.1 and stops at the end. Servers share CPU 0
and wrk gets CPU 1 (when `taskset` exists), as in NOTES.md. The two proxies take turns for
`--rounds` rounds and the medians are printed: on a shared machine one run of each swings by
a third or more.
"""

import argparse
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log stderr crit;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    upstream files {{ server 127.0.0.1:{file_port}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{file_port};
        root {prefix}/www;
    }}
    server {{
        listen 127.0.0.1:{proxy_port};
        location / {{
            proxy_pass http://files;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


@dataclass
class Result:
    name: str
    requests_per_second: float
    p99_ms: float


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def on_cpu(cpu: int, command: list[str]) -> list[str]:
    return ["taskset", "-c", str(cpu), *command] if shutil.which("taskset") else command


def wait_for_port(port: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def run_wrk(name: str, target: str, seconds: int) -> Result:
    """wrk against `port/path` on 127.0.0.1."""
    command = ["wrk", "-t1", "-c50", f"-d{seconds}s", "--latency", f"http://127.0.0.1:{target}"]
    output = subprocess.run(
        on_cpu(1, command), capture_output=True, text=True, check=True, timeout=seconds + 30
    ).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", output)
    if rate is None or p99 is None or "Non-2xx" in output:
        raise RuntimeError(f"unexpected wrk output for {name}:\n{output}")
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    return Result(name, float(rate.group(1)), float(p99.group(1)) * scale)


async def serve_proxy(port: int, file_port: int) -> None:
    """The proxy alone, with one space whose app is nginx serving the file."""
    from spacehub.platform.proxy import start_proxy
    from spacehub.platform.route_table import Route, RouteTable, Upstream

    async def refuse(route: Route, token: str | None) -> bool:
        return False

    routes = RouteTable()
    routes.set(Route("bench", "file", "bench-file", upstream=Upstream(port=file_port)))
    server = await start_proxy(
        host="127.0.0.1",
        port=port,
        routes=routes,
        control_plane=Upstream(port=free_port()),
        apps_domain="localhost",
        authorize=refuse,
    )
    async with server:
        await server.serve_forever()


def median_of(results: list[Result]) -> Result:
    return Result(
        results[0].name,
        statistics.median(r.requests_per_second for r in results),
        statistics.median(r.p99_ms for r in results),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serve-proxy", nargs=2, type=int, metavar=("PORT", "FILE_PORT"))
    args = parser.parse_args()
    if args.serve_proxy:
        import uvloop

        uvloop.run(serve_proxy(*args.serve_proxy))
        return

    file_port, nginx_proxy_port, our_port = free_port(), free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="proxy-bench-") as tmp:
        prefix = Path(tmp)
        prefix.chmod(0o755)  # nginx's worker runs as another user and must read the file
        (prefix / "www").mkdir()
        (prefix / "www" / "file.txt").write_bytes(b"spacehub proxy bench " * 10 + b"\n")
        conf = prefix / "nginx.conf"
        conf.write_text(
            NGINX_CONF.format(prefix=prefix, file_port=file_port, proxy_port=nginx_proxy_port)
        )
        nginx = subprocess.Popen(on_cpu(0, ["nginx", "-c", str(conf), "-p", str(prefix)]))
        ours = subprocess.Popen(
            on_cpu(0, [sys.executable, "-m", "bench.proxy_bench", "--serve-proxy",
                       str(our_port), str(file_port)])
        )  # fmt: skip
        nginx_proxy = ("nginx as reverse proxy", f"{nginx_proxy_port}/file.txt")
        our_proxy = ("spacehub proxy (path form)", f"{our_port}/apps/bench/file/file.txt")
        try:
            for port in (file_port, nginx_proxy_port, our_port):
                wait_for_port(port)
            direct = run_wrk("nginx serving the file", f"{file_port}/file.txt", args.seconds)
            rounds = [
                (run_wrk(*nginx_proxy, args.seconds), run_wrk(*our_proxy, args.seconds))
                for _ in range(args.rounds)
            ]
        finally:
            for process in (ours, nginx):
                process.terminate()
                process.wait(10)
    print(f"{'':30} {'req/s':>10} {'p99 ms':>8}   (medians of {args.rounds} rounds)")
    for result in (direct, median_of([r[0] for r in rounds]), median_of([r[1] for r in rounds])):
        print(f"{result.name:30} {result.requests_per_second:10.0f} {result.p99_ms:8.2f}")
    ratios = [ours.requests_per_second / nginx.requests_per_second for nginx, ours in rounds]
    print(f"ours / nginx reverse proxy: {statistics.median(ratios):.2f}x", end="")
    print(f" (rounds: {', '.join(f'{ratio:.2f}' for ratio in ratios)})")


if __name__ == "__main__":
    main()

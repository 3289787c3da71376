"""Our proxy against nginx as a reverse proxy: wrk req/s, p99, and the ratios to nginx.

Two upstreams, each measured directly, through nginx (twice: as the least reverse proxy, and
set up for a Space as an operator would by hand), through our proxy, and through the
platform's nginx front (`serve --proxy nginx`: its rendered configuration, activity log and
watcher, spacehub's proxy behind it) in the same run:
nginx serving a tiny static file (the proxy's own cost dominates) and a real Gradio app's page
(`examples/gradio-greet`, the app's cost dominates). Throughput is measured with 50
connections; "p99 added" is a proxy's p99 minus the direct p99 of the same round, measured with
one connection (at saturation, p99 is the queue's length, not the proxy's cost).

Run from the repository root: `python -m bench.proxy_bench [--seconds 5] [--rounds 3]
[--only tiny|gradio]`. nginx and wrk must be installed; everything listens on 127.0.0.1 and
stops at the end. Servers share CPU 0 and wrk gets CPU 1 (when `taskset` exists), as in
NOTES.md. In each round the paths take turns (the order rotates) and the medians of the
rounds are printed: on a shared machine one run of each swings by a third or more. So each run
also counts the CPU time of every server process (upstreams, proxies, nginx's workers, the
platform's threads) per request: its ratio says what one core running them all would serve.
Each round ends with each of our paths loaded side by side with each nginx (see
`side_by_side`): the steadiest of the three ratios, as other work slows both paths alike; it
leaves out what runs outside the path's own process (the platform reading nginx's log, 0.1-0.2
us of CPU per request).
"""

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

# Two nginx processes: the upstream (the tiny file) and the reverse proxy. In one process the
# proxy would pass each request to itself, with no switch between processes, as no proxy in
# front of a real app does: the plain proxy measured 38.8 us of CPU per request so, the front
# 47.2 (their ratio 0.82x) of which 1 us was spacehub's log reading.
NGINX_COMMON = """
worker_processes 1;
daemon off;
pid {prefix}/{name}.pid;
error_log stderr crit;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
{servers}
}}
"""
FILE_SERVER = """
    server {{
        listen 127.0.0.1:{file_port};
        root {prefix}/www;
    }}
"""
# Two configurations: the least one (nginx's own cost), and what an operator writes to put
# one app of a Space behind nginx by hand: its prefix cut, the forwarded headers an app builds
# its URLs from and WebSockets (as Gradio's guide to nginx, with idle upstream connections kept
# and without a Connection: upgrade on every request, which would close them).
REVERSE_PROXY = """
    upstream files {{ server 127.0.0.1:{file_port}; keepalive 64; }}
    upstream gradio {{ server 127.0.0.1:{gradio_port}; keepalive 64; }}
    map $http_upgrade $connection_upgrade {{ "" ""; default upgrade; }}
    server {{
        listen 127.0.0.1:{space_proxy_port};
        proxy_http_version 1.1;
        proxy_buffering off;
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $remote_addr;
        proxy_set_header X-Forwarded-Host $host;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $connection_upgrade;
        location /apps/bench/file/ {{
            proxy_pass http://files/;
        }}
        location /apps/bench/gradio/ {{
            proxy_pass http://gradio/;
        }}
    }}
    server {{
        listen 127.0.0.1:{proxy_port};
        location / {{
            proxy_pass http://files;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
    server {{
        listen 127.0.0.1:{gradio_proxy_port};
        location / {{
            proxy_pass http://gradio;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
"""


def start_server(command: list[str], **options: object) -> subprocess.Popen:
    """A server on CPU 0 in a session of its own. The kernel shares a CPU fairly between
    sessions (autogroups), not processes: the platform's nginx runs in its own session, so
    every server does, or side by side it would get half of CPU 0 against all the others."""
    return subprocess.Popen(on_cpu(0, command), start_new_session=True, **options)


def nginx(prefix: Path, name: str, servers: str, **values: object) -> subprocess.Popen:
    """An nginx running `servers` (a template of server blocks) on CPU 0."""
    conf = prefix / f"{name}.conf"
    servers = servers.format(prefix=prefix, **values)
    conf.write_text(NGINX_COMMON.format(prefix=prefix, name=name, servers=servers))
    return start_server(["nginx", "-c", str(conf), "-p", str(prefix)])


@dataclass
class Result:
    name: str
    requests_per_second: float
    p99_ms: float
    light_p99_ms: float = 0.0  # with one connection
    # CPU time of every server process (upstreams and proxies) per request, in microseconds:
    # unlike req/s, barely moved by other work on a shared machine.
    cpu_us: float = 0.0


# The paths compared with: nginx as reverse proxy, nginx set up for a Space (REVERSE_PROXY).
BASELINES = 2


@dataclass
class Measured:
    rounds: list[list[Result]] = field(default_factory=list)  # each round, each path
    # (compared path, baseline): req/s ratios measured side by side, one per round
    side_by_side: dict[tuple[int, int], list[float]] = field(default_factory=dict)


@dataclass
class Case:
    """One upstream and its paths: direct, through nginx, then those compared with nginx
    (our proxy, the platform's nginx front); each path is (name, `port/path`)."""

    title: str
    paths: list[tuple[str, str]]


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


SERVERS: list[int] = []  # pids of the processes started here, whose CPU time is counted
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """User and system time of `pids` and all their descendants (nginx's workers), in seconds."""
    parents: dict[int, int] = {}
    times: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path("/proc", entry, "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        parents[int(entry)] = int(fields[1])
        times[int(entry)] = int(fields[11]) + int(fields[12])
    counted = set(pids)
    for pid in sorted(parents):  # parents before children: pids mostly grow
        if parents[pid] in counted:
            counted.add(pid)
    return sum(times.get(pid, 0) for pid in counted) / CLOCK_TICKS


def wrk(target: str, seconds: int, connections: int) -> list[str]:
    """wrk against `port/path` on 127.0.0.1, on CPU 1."""
    url = f"http://127.0.0.1:{target}"
    return on_cpu(1, ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url])


def parse_wrk(name: str, output: str) -> tuple[int, float, float]:
    """Requests, req/s and p99 in ms; an error when any request failed."""
    requests = re.search(r"(\d+) requests in", output)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", output)
    if requests is None or rate is None or p99 is None:
        raise RuntimeError(f"unexpected wrk output for {name}:\n{output}")
    if "Non-2xx" in output or "Socket errors" in output:
        raise RuntimeError(f"failed requests for {name}:\n{output}")
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    return int(requests.group(1)), float(rate.group(1)), float(p99.group(1)) * scale


def run_wrk(name: str, target: str, seconds: int, connections: int = 50) -> Result:
    cpu_before = cpu_seconds(SERVERS)
    command = wrk(target, seconds, connections)
    output = subprocess.run(
        command, capture_output=True, text=True, check=True, timeout=seconds + 30
    ).stdout
    cpu = cpu_seconds(SERVERS) - cpu_before
    requests, rate, p99 = parse_wrk(name, output)
    return Result(name, rate, p99, cpu_us=cpu * 1e6 / requests)


def side_by_side(first: tuple[str, str], second: tuple[str, str], seconds: int) -> float:
    """req/s of `first` over `second` loaded at the same time, 25 connections each. Their
    servers share CPU 0 and the kernel gives each the same time, so the ratio is the inverse
    of their costs per request, and other work on the machine slows both alike: measured one
    after the other, two runs of one path differed by up to a third here; side by side, two
    identical nginx configurations measured 0.96-1.06 (median 1.00 of 8 rounds)."""
    runs = [
        (name, subprocess.Popen(wrk(target, seconds, 25), stdout=subprocess.PIPE, text=True))
        for name, target in (first, second)
    ]
    rates = [parse_wrk(name, run.communicate(timeout=seconds + 30)[0])[1] for name, run in runs]
    return rates[0] / rates[1]


async def serve_proxy(port: int, file_port: int, gradio_port: int) -> None:
    """The proxy alone, with two spaces: nginx serving the file, and the Gradio app."""
    from spacehub.platform.proxy import start_proxy
    from spacehub.platform.route_table import Route, RouteTable, Upstream

    async def refuse(route: Route, token: str | None) -> bool:
        return False

    routes = RouteTable()
    routes.set(Route("bench", "file", "bench-file", upstream=Upstream(port=file_port)))
    routes.set(Route("bench", "gradio", "bench-gradio", upstream=Upstream(port=gradio_port)))
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


def serve_front(port: int, file_port: int, gradio_port: int, prefix: Path) -> None:
    """The nginx front as `serve --proxy nginx` runs it, with the same two spaces; nginx runs
    one worker (as the plain nginx does) and inherits this process's CPU."""
    import signal
    import threading

    from spacehub.platform.front import FrontConfig, NginxFront, address
    from spacehub.platform.proxy import ProxyLimits, ProxyThread, proxy_context
    from spacehub.platform.route_table import Route, RouteTable, Upstream

    async def refuse(route: Route, token: str | None) -> bool:
        return False

    routes = RouteTable()
    routes.set(Route("bench", "file", "bench-file", upstream=Upstream(port=file_port)))
    routes.set(Route("bench", "gradio", "bench-gradio", upstream=Upstream(port=gradio_port)))
    socket_path = prefix / "proxy.sock"
    control = Upstream(port=free_port())
    context = proxy_context(routes, control, "localhost", refuse, behind_front=True)
    proxy = ProxyThread([(str(socket_path), None, context)])
    proxy.start()
    config = FrontConfig(
        prefix=prefix / "front",
        listen_main=address("127.0.0.1", free_port()),
        listen_apps=address("127.0.0.1", port),
        main_socket=socket_path,
        apps_socket=socket_path,
        apps_domain="localhost",
        limits=ProxyLimits(),
        workers="1",
    )
    front = NginxFront(config, routes, proxy.call_soon)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        front.start()
        stop.wait()
    finally:
        front.stop()
        proxy.stop()


def start_gradio(port: int, log: Path) -> subprocess.Popen:
    app = Path(__file__).resolve().parent.parent / "examples" / "gradio-greet" / "app.py"
    env = {
        **os.environ,
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "GRADIO_ROOT_PATH": "/apps/bench/gradio",
    }
    with log.open("wb") as out:
        return start_server(
            [sys.executable, str(app)], env=env, stdout=out, stderr=subprocess.STDOUT
        )


def measure(case: Case, rounds: int, seconds: int) -> Measured:
    """Each round runs every path, starting with a different one each time, then each compared
    path side by side with each baseline."""
    paths = case.paths
    measured = Measured()
    for index in range(rounds):
        order = [(index + offset) % len(paths) for offset in range(len(paths))]
        results: dict[int, Result] = {}
        for which in order:
            results[which] = run_wrk(*paths[which], seconds)
            time.sleep(1)  # let the upstream finish what the closed connections had asked
            light = run_wrk(*paths[which], max(2, seconds // 2), connections=1)
            results[which].light_p99_ms = light.p99_ms
        measured.rounds.append([results[which] for which in range(len(paths))])
        for column in range(1 + BASELINES, len(paths)):
            for baseline in range(1, 1 + BASELINES):
                ratio = side_by_side(paths[column], paths[baseline], seconds)
                measured.side_by_side.setdefault((column, baseline), []).append(ratio)
                time.sleep(1)
    return measured


def median_of(results: list[Result]) -> Result:
    return Result(
        results[0].name,
        statistics.median(r.requests_per_second for r in results),
        statistics.median(r.p99_ms for r in results),
        statistics.median(r.light_p99_ms for r in results),
        statistics.median(r.cpu_us for r in results),
    )


def print_ratios(label: str, ratios: list[float]) -> None:
    print(f"{label}: {statistics.median(ratios):.2f}x", end="")
    print(f" (rounds: {', '.join(f'{ratio:.2f}' for ratio in ratios)})")


def report(case: Case, measured: Measured) -> None:
    rounds = measured.rounds
    print(f"\n{case.title}")
    print(f"{'':30} {'req/s':>10} {'p99 ms':>8} {'p99 ms, 1 conn.':>16} {'CPU us/req':>11}", end="")
    print(f"   (medians of {len(rounds)} rounds)")
    for column in range(len(case.paths)):
        result = median_of([round_[column] for round_ in rounds])
        print(
            f"{result.name:30} {result.requests_per_second:10.0f} {result.p99_ms:8.2f} "
            f"{result.light_p99_ms:16.2f} {result.cpu_us:11.1f}"
        )
    for (column, baseline), side_by_side in measured.side_by_side.items():
        name, baseline_name = case.paths[column][0], case.paths[baseline][0]
        print(f"{name} / {baseline_name}")
        print_ratios("  side by side", side_by_side)
        one_after_the_other = [
            r[column].requests_per_second / r[baseline].requests_per_second for r in rounds
        ]
        print_ratios("  one after the other", one_after_the_other)
        # From CPU time: what one core running every server would serve.
        print_ratios(
            "  by CPU time per request", [r[baseline].cpu_us / r[column].cpu_us for r in rounds]
        )
    for column in range(1, len(case.paths)):
        name = case.paths[column][0]
        added = [round_[column].light_p99_ms - round_[0].light_p99_ms for round_ in rounds]
        print(f"p99 added by {name}: {statistics.median(added):.2f} ms", end="")
        print(f" (rounds: {', '.join(f'{ms:.2f}' for ms in added)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", choices=["tiny", "gradio"])
    parser.add_argument("--serve-proxy", nargs=3, type=int, metavar=("PORT", "FILE", "GRADIO"))
    parser.add_argument("--serve-front", nargs=4, metavar=("PORT", "FILE", "GRADIO", "DIR"))
    args = parser.parse_args()
    if args.serve_proxy:
        import uvloop

        uvloop.run(serve_proxy(*args.serve_proxy))
        return
    if args.serve_front:
        port, file, gradio_app, folder = args.serve_front
        serve_front(int(port), int(file), int(gradio_app), Path(folder))
        return

    file_port, nginx_port, gradio_port, nginx_gradio_port, our_port, front_port = (
        free_port() for _ in range(6)
    )
    space_proxy_port = free_port()
    tiny = Case(
        "tiny static file (nginx serving 211 bytes)",
        [
            ("direct: nginx serving the file", f"{file_port}/file.txt"),
            ("nginx as reverse proxy", f"{nginx_port}/file.txt"),
            ("nginx set up for a Space", f"{space_proxy_port}/apps/bench/file/file.txt"),
            ("spacehub proxy (path form)", f"{our_port}/apps/bench/file/file.txt"),
            ("spacehub+nginx (path form)", f"{front_port}/apps/bench/file/file.txt"),
        ],
    )
    gradio = Case(
        "a real Gradio page (examples/gradio-greet, GET /)",
        [
            ("direct: the Gradio app", f"{gradio_port}/"),
            ("nginx as reverse proxy", f"{nginx_gradio_port}/"),
            ("nginx set up for a Space", f"{space_proxy_port}/apps/bench/gradio/"),
            ("spacehub proxy (path form)", f"{our_port}/apps/bench/gradio/"),
            ("spacehub+nginx (path form)", f"{front_port}/apps/bench/gradio/"),
        ],
    )
    cases = {"tiny": [tiny], "gradio": [gradio]}.get(args.only, [tiny, gradio])
    with tempfile.TemporaryDirectory(prefix="proxy-bench-") as tmp:
        prefix = Path(tmp)
        prefix.chmod(0o755)  # nginx's worker runs as another user and must read the file
        (prefix / "www").mkdir()
        (prefix / "www" / "file.txt").write_bytes(b"spacehub proxy bench " * 10 + b"\n")
        ports = [str(port) for port in (our_port, file_port, gradio_port)]
        ours = [sys.executable, "-m", "bench.proxy_bench", "--serve-proxy", *ports]
        front = [sys.executable, "-m", "bench.proxy_bench", "--serve-front", str(front_port)]
        front += [*ports[1:], str(prefix)]
        processes = [
            nginx(prefix, "upstream", FILE_SERVER, file_port=file_port),
            nginx(
                prefix,
                "proxy",
                REVERSE_PROXY,
                file_port=file_port,
                gradio_port=gradio_port,
                proxy_port=nginx_port,
                space_proxy_port=space_proxy_port,
                gradio_proxy_port=nginx_gradio_port,
            ),
            start_server(ours),
            start_server(front),
        ]
        if gradio in cases:
            processes.append(start_gradio(gradio_port, prefix / "gradio.log"))
        SERVERS.extend(process.pid for process in processes)
        try:
            for port in (file_port, nginx_port, space_proxy_port, our_port, front_port):
                wait_for_port(port)
            if gradio in cases:
                wait_for_port(gradio_port, timeout=120)
            measured = [(case, measure(case, args.rounds, args.seconds)) for case in cases]
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(10)
    for case, results in measured:
        report(case, results)


if __name__ == "__main__":
    main()

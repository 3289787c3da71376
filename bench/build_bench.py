"""The four build-speed ratios of issue 13, each against a baseline measured in the same run.

Run from the repository root: `python -m bench.build_bench [--repeats 3]`. Every baseline is
built by the same BuildKit docker CLI spacehub finds (`DOCKER_BUILDKIT=1 /usr/bin/docker build`
on Debian 12), from the same base image, with the same CA bundle, on the same engine:

1. cold Gradio build: spacehub's build of examples/gradio-greet with no layer cache and empty
   uv caches (a fresh cache namespace, its cache mounts pruned afterwards) against a plain
   Dockerfile that `pip install`s gradio==<the same version> with no cache (goal ≤ 0.6x);
2. a second space with the same dependencies plus one small package (requirements.txt): its
   build right after the first space's, against its own cold build (goal ≤ 0.25x);
3. code-only push to RUNNING through a real `spacehub serve` on the docker runtime: from
   `git push` until the app answers with the new code through the proxy, against `docker run`
   of the same image until it answers HTTP (goal ≤ 1.5x);
4. a Docker-SDK space (examples/docker-fastapi plus a secret-mounting step): spacehub's
   code-only rebuild against a plain `docker build` of the same change (goal ≤ 1.2x).

Each is measured `--repeats` times, ours and the baseline interleaved; medians are compared.
The machine is shared: read the raw times next to the medians.
"""

import argparse
import contextlib
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import docker

from bench import local_bench
from bench.local_bench import TOKEN, greet, wait_until
from bench.push_bench import git
from spacehub.builder.buildkit import cli_environment, find_buildkit
from spacehub.builder.dockerfile import DEFAULT_SDK_VERSIONS
from spacehub.builder.image import ImageBuildOptions, build_image
from spacehub.builder.limits import BuildLimits
from spacehub.builder.plan import plan_build

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
BENCH_REPOSITORY = "spacehub-bench"  # every image this bench tags starts with it
# A plain Dockerfile a user would write for the same app behind the same TLS-inspecting network.
BASELINE_DOCKERFILE = """\
FROM {base}
RUN useradd -m -u 1000 user
COPY ca.crt /tmp/ca.crt
RUN pip install --no-cache-dir --cert /tmp/ca.crt gradio=={version} && rm /tmp/ca.crt
USER user
ENV GRADIO_SERVER_NAME=0.0.0.0 GRADIO_SERVER_PORT=7860
WORKDIR /home/user/app
COPY --chown=user app/ .
CMD ["python", "app.py"]
"""
# How BuildKit describes the dependency steps of the cold builds (ours and the baseline's).
# New results of steps every space shares (useradd, venv, the uv stage) go too: with several
# results for one cache key, BuildKit 0.8 may give two builds different layers for the same
# cached steps (test_builder's layer checks failed so after four runs).
COLD_STEPS = (
    "mount / from exec /bin/sh -c . /run/spacehub-build/env",
    "mount / from exec /bin/sh -c /opt/uv/bin/uv venv",
    "mount / from exec /bin/sh -c useradd",
    "mount / from exec /bin/sh -c pip install --no-cache-dir --cert /tmp/ca.crt",
)
SMALL_PACKAGE = "humanize==4.12.3"  # pure Python, no dependencies
# What a user does by hand to build docker-fastapi behind the same TLS-inspecting network.
BASELINE_CA_LINES = "COPY ca.crt /tmp/ca.crt\nENV PIP_CERT=/tmp/ca.crt\n"
SECRET_STEP = "RUN --mount=type=secret,id=TOKEN,mode=0444 test -s /run/secrets/TOKEN\n"
GREETING = '"Hello "'
BUILD_TIMEOUT = 900
START_TIMEOUT = 180


# Building: spacehub's builder and the same CLI by hand.


class Builds:
    """Times spacehub's builds and plain `docker build`s; removes what it made at the end."""

    def __init__(self, root: Path, base: str, ca_bundle: Path, logs: Path | None) -> None:
        self.root = root
        self.base = base
        self.ca_bundle = ca_bundle
        self.logs = logs  # where each of spacehub's build logs is written, if set
        self.cli = find_buildkit()
        self.run_id = secrets.token_hex(4)
        self.namespaces: list[str] = []
        self.exports = 0
        self.cache_mounts_before = cache_mount_ids()
        self.records_before = {record["ID"] for record in build_cache_records()}
        self.pruned_cold_layers = False
        self.config = root / "docker-config"
        self.config.mkdir()

    def namespace(self) -> str:
        """A cache namespace of this run: empty uv and apt cache mounts."""
        name = f"bench-{self.run_id}-{len(self.namespaces)}"
        self.namespaces.append(name)
        return name

    def spacehub(
        self,
        source: Path,
        label: str,
        *,
        namespace: str | None = None,
        no_cache: bool = False,
        build_secrets: dict[str, str] | None = None,
    ) -> float:
        options = ImageBuildOptions(
            self.base,
            self.ca_bundle,
            None,
            no_cache=no_cache,
            platform_id=f"bench{self.run_id}",
            cache_namespace=namespace or "spacehub",
            context_cache_dir=self.root / "contexts",
        )
        # As the worker does: each build gets a new export of its commit (new mtimes).
        self.exports += 1
        export = shutil.copytree(
            source, self.root / "work" / str(self.exports), copy_function=shutil.copy
        )
        lines: list[str] = []
        started = time.monotonic()
        build_image(
            plan_build(export, None),
            export,
            space_id=f"bench/{label}",
            label=label,
            commit=secrets.token_hex(20),
            build_args={},
            build_secrets=build_secrets or {},
            options=options,
            log=lines.append,
            limits=BuildLimits(),
        )
        seconds = time.monotonic() - started
        if self.logs is not None:
            self.logs.mkdir(parents=True, exist_ok=True)
            name = f"{self.exports:02}-{label}-{seconds:.1f}s.log"
            (self.logs / name).write_text("\n".join(lines) + "\n")
        return seconds

    def docker_build(self, context: Path, tag: str, *, no_cache: bool = False) -> float:
        command = [*self.cli.build_command(), "--quiet", "--tag", f"{BENCH_REPOSITORY}/{tag}"]
        if no_cache:
            command.append("--no-cache")
        started = time.monotonic()
        done = subprocess.run(
            [*command, str(context)],
            env=cli_environment(self.config),
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"the baseline build of {context} failed:\n{done.stderr[-3000:]}")
        return time.monotonic() - started

    def cleanup(self) -> None:
        client = docker.from_env(timeout=120)
        try:
            for image in client.images.list():
                for tag in image.tags:
                    if tag.startswith((f"{BENCH_REPOSITORY}/", f"spacehub/bench{self.run_id}/")):
                        with contextlib.suppress(docker.errors.APIError):
                            client.images.remove(tag, force=True)
        finally:
            client.close()
        self.prune_cold_layers()
        # The cold builds' cache mounts: records of uv's cache this run made (BuildKit names
        # neither the mount's id nor its space in a record: new ones are ours). A mount is
        # released a moment after its build: one still in use is tried again.
        for _ in range(10):
            ours = [
                record
                for record, target in cache_mount_ids().items()
                if record not in self.cache_mounts_before and target == "/root/.cache/uv"
            ]
            if not ours or not self.namespaces:
                return
            for record in ours:
                self.prune_record(record)
            time.sleep(1)
        progress(f"could not remove the cache mounts {', '.join(ours)}: see docker system df -v")

    def prune_cold_layers(self) -> None:
        """Remove the layers this run's cold builds left in BuildKit's cache (GBs a run):
        new records of their dependency steps, children first (the engine keeps a parent)."""
        if self.pruned_cold_layers:
            return
        self.pruned_cold_layers = True
        records = build_cache_records()
        children: dict[str, list[str]] = {}
        for record in records:
            if record.get("Parent"):
                children.setdefault(record["Parent"], []).append(record["ID"])
        in_use = {record["ID"] for record in records if record.get("InUse")}
        order: list[str] = []

        def children_first(record_id: str) -> None:
            for child in children.get(record_id, []):
                children_first(child)
            if record_id not in order and record_id not in in_use:
                order.append(record_id)

        for record in records:
            description = record.get("Description") or ""
            if record["ID"] not in self.records_before and description.startswith(COLD_STEPS):
                children_first(record["ID"])
        for record_id in order:
            self.prune_record(record_id)

    def prune_record(self, record_id: str) -> None:
        """Remove one BuildKit cache record (the engine takes one id filter at a time)."""
        subprocess.run(
            [self.cli.path, "builder", "prune", "--force", "--filter", f"id={record_id}"],
            env=cli_environment(self.config),
            capture_output=True,
            timeout=300,
            check=False,
        )


def build_cache_records() -> list[dict]:
    """The engine's BuildKit cache records (id, type, description, parent, in use, ...)."""
    client = docker.APIClient(timeout=120)
    try:
        return client.df().get("BuildCache") or []
    finally:
        client.close()


def cache_mount_ids() -> dict[str, str]:
    """The engine's BuildKit cache-mount records: id → the path they are mounted on."""
    found = {}
    for record in build_cache_records():
        if record.get("Type") == "exec.cachemount":
            words = (record.get("Description") or "").split()
            found[record["ID"]] = words[2] if len(words) > 2 else ""
    return found


def copy_example(name: str, destination: Path) -> Path:
    shutil.copytree(EXAMPLES / name, destination)
    return destination


def change_code(app: Path) -> None:
    app.write_text(app.read_text() + f"\n# edited at {time.time()}\n")


def bench_gradio_builds(builds: Builds, repeats: int) -> dict[str, list[float]]:
    """Goals 1 and 2: cold builds of the first and the second space, and the second after the
    first, against a cold `docker build` with pip."""
    root = builds.root
    first = copy_example("gradio-greet", root / "greet")
    second = copy_example("gradio-greet", root / "greet-plus")
    (second / "requirements.txt").write_text(f"{SMALL_PACKAGE}\n")
    baseline = root / "greet-baseline"
    copy_example("gradio-greet", baseline / "app")
    shutil.copy(builds.ca_bundle, baseline / "ca.crt")
    (baseline / "Dockerfile").write_text(
        BASELINE_DOCKERFILE.format(base=builds.base, version=DEFAULT_SDK_VERSIONS["gradio"])
    )
    times: dict[str, list[float]] = {
        "cold: spacehub": [],
        "cold: docker build, pip": [],
        "second space after the first: spacehub": [],
        "second space cold: spacehub": [],
    }
    for round_ in range(repeats):
        progress(f"gradio builds, round {round_ + 1} of {repeats}")
        namespace = builds.namespace()

        def first_then_second(namespace: str = namespace) -> float:
            cold = builds.spacehub(first, "greet", namespace=namespace, no_cache=True)
            times["second space after the first: spacehub"].append(
                builds.spacehub(second, "greet-plus", namespace=namespace)
            )
            return cold

        measurements = [
            ("cold: spacehub", first_then_second),
            (
                "cold: docker build, pip",
                lambda: builds.docker_build(baseline, "greet", no_cache=True),
            ),
            (
                "second space cold: spacehub",
                lambda: builds.spacehub(
                    second, "greet-plus", namespace=builds.namespace(), no_cache=True
                ),
            ),
        ]
        for name, measure in alternate(measurements, round_):
            times[name].append(measure())
    # Now: the push's first build, next, may add layers other spaces share, which must stay.
    builds.prune_cold_layers()
    return times


def bench_docker_sdk(builds: Builds, repeats: int) -> dict[str, list[float]]:
    """Goal 4: a user Dockerfile's code-only rebuild, spacehub against `docker build`."""
    root = builds.root
    ours = copy_example("docker-fastapi", root / "fastapi")
    dockerfile = (ours / "Dockerfile").read_text()
    (ours / "Dockerfile").write_text(
        dockerfile.replace("COPY --chown=user . .", SECRET_STEP + "COPY --chown=user . .")
    )
    baseline = copy_example("docker-fastapi", root / "fastapi-baseline")
    shutil.copy(builds.ca_bundle, baseline / "ca.crt")
    first_line, rest = dockerfile.split("\n", 1)
    (baseline / "Dockerfile").write_text(f"{first_line}\n{BASELINE_CA_LINES}{rest}")
    build_secrets = {"TOKEN": "bench-secret"}
    progress("docker-sdk: first builds")
    builds.spacehub(ours, "fastapi", build_secrets=build_secrets)
    builds.docker_build(baseline, "fastapi")
    times: dict[str, list[float]] = {
        "docker-sdk code-only: spacehub": [],
        "docker-sdk code-only: docker build": [],
    }
    for round_ in range(repeats):
        progress(f"docker-sdk code-only rebuilds, round {round_ + 1} of {repeats}")
        change_code(ours / "app.py")
        change_code(baseline / "app.py")
        measurements = [
            (
                "docker-sdk code-only: spacehub",
                lambda: builds.spacehub(ours, "fastapi", build_secrets=build_secrets),
            ),
            (
                "docker-sdk code-only: docker build",
                lambda: builds.docker_build(baseline, "fastapi"),
            ),
        ]
        for name, measure in alternate(measurements, round_):
            times[name].append(measure())
    return times


def alternate(
    measurements: list[tuple[str, Callable[[], float]]], round_: int
) -> list[tuple[str, Callable[[], float]]]:
    """In the given order in even rounds, reversed in odd ones: none always goes first."""
    return measurements if round_ % 2 == 0 else measurements[::-1]


# Pushing: a real `spacehub serve` on the docker runtime.


class Serve(local_bench.Platform):
    """A `spacehub serve --runtime docker` of our own on free loopback ports (its space:
    greet-first, which `stop` deletes)."""

    def __init__(self, root: Path, base: str, ca_bundle: Path) -> None:
        super().__init__(root, "docker", base_image=base, build_ca_bundle=str(ca_bundle))


def answers_http(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5):
            return True
    except urllib.error.HTTPError:
        return True  # any answer is an answer
    except OSError:
        return False


def bench_push_to_running(
    root: Path, base: str, ca_bundle: Path, repeats: int
) -> dict[str, list[float]]:
    """Goal 3: a code-only push until the new code answers, against `docker run` of the
    same image until it answers HTTP."""
    (root / "serve").mkdir()
    serve = Serve(root / "serve", base, ca_bundle)
    name = "greet-first"
    times: dict[str, list[float]] = {"code-only push to RUNNING": [], "docker run": []}
    try:
        serve.api("POST", "repos/create", {"name": name, "type": "space", "sdk": "gradio"})
        checkout = root / "greet-checkout"
        remote = f"http://bench:{TOKEN}@127.0.0.1:{serve.port}/spaces/admin/{name}"
        git("clone", "-q", remote, str(checkout), cwd=root)
        shutil.copytree(EXAMPLES / "gradio-greet", checkout, dirs_exist_ok=True)
        git("add", "-A", cwd=checkout)
        git("commit", "-qm", "the greet app", cwd=checkout)
        progress("push to RUNNING: the first push (builds the space)")
        git("push", "-q", "origin", "main", cwd=checkout)
        url = serve.app_url(name)
        serve.wait(lambda: greet(url, "bench") == "Hello bench!!", name, BUILD_TIMEOUT)
        for round_ in range(repeats):
            progress(f"push to RUNNING and docker run, round {round_ + 1} of {repeats}")
            greeting = f"Hi{round_}"
            app = (EXAMPLES / "gradio-greet" / "app.py").read_text()
            (checkout / "app.py").write_text(app.replace(GREETING, f'"{greeting} "'))
            git("commit", "-qam", f"greet with {greeting}", cwd=checkout)
            started = time.monotonic()
            git("push", "-q", "origin", "main", cwd=checkout)
            expected = f"{greeting} bench!!"
            serve.wait(lambda e=expected: greet(url, "bench") == e, name, START_TIMEOUT)
            times["code-only push to RUNNING"].append(time.monotonic() - started)
            times["docker run"].append(time_docker_run(running_image(serve, name, checkout)))
    finally:
        serve.stop()
    return times


def running_image(serve: Serve, name: str, checkout: Path) -> str:
    """The image of the space's instance at the checkout's commit."""
    platform_id = (serve.data / "instance-id").read_text().strip()
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=checkout, capture_output=True, text=True, timeout=60
    ).stdout.strip()
    labels = [
        f"spacehub.space=admin/{name}",
        f"spacehub.platform={platform_id}",
        f"spacehub.commit={commit}",
    ]
    client = docker.from_env(timeout=120)
    try:
        (container,) = client.containers.list(filters={"label": labels})
        return container.attrs["Image"]
    finally:
        client.close()


def time_docker_run(image: str) -> float:
    """From `docker run` until the app answers HTTP on its published port."""
    started = time.monotonic()
    container = subprocess.run(
        ["docker", "run", "--detach", "--rm", "--publish", "127.0.0.1::7860", image],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout.strip()
    try:
        port = subprocess.run(
            ["docker", "port", container, "7860/tcp"],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout.split()[0]
        url = f"http://{port}/"
        wait_until(lambda: answers_http(url), START_TIMEOUT, "docker run of the app")
        return time.monotonic() - started
    finally:
        subprocess.run(
            ["docker", "rm", "--force", container], capture_output=True, timeout=60, check=False
        )


# Reporting.


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


GOALS = (
    ("cold Gradio build", "cold: spacehub", "cold: docker build, pip", 0.6),
    (
        "second space, same dependencies + 1 package",
        "second space after the first: spacehub",
        "second space cold: spacehub",
        0.25,
    ),
    ("code-only push to RUNNING", "code-only push to RUNNING", "docker run", 1.5),
    (
        "docker-sdk code-only rebuild",
        "docker-sdk code-only: spacehub",
        "docker-sdk code-only: docker build",
        1.2,
    ),
)


def report(times: dict[str, list[float]]) -> None:
    print(f"\nload average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"{'measurement':42} {'median':>8}  raw (s)")
    for name, values in times.items():
        raw = " ".join(f"{value:.2f}" for value in values)
        print(f"{name:42} {statistics.median(values):7.2f}s  {raw}")
    print(f"\n{'ratio (medians)':46} {'ratio':>6} {'goal':>6}")
    for title, ours, baseline, goal in GOALS:
        if ours in times and baseline in times:
            ratio = statistics.median(times[ours]) / statistics.median(times[baseline])
            verdict = "met" if ratio <= goal else "MISSED"
            print(f"{title:46} {ratio:5.2f}x {goal:5.2f}x  {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog="Goals: see issue 13, section Speed."
    )
    parser.add_argument("--repeats", type=int, default=3, help="rounds of each measurement")
    parser.add_argument("--base-image", default="python:3.11-slim")
    parser.add_argument("--ca-bundle", type=Path, default=CA_BUNDLE)
    parser.add_argument(
        "--logs", type=Path, help="write each spacehub build's log (step timings) here"
    )
    parser.add_argument(
        "--only",
        choices=("cold", "push", "docker-sdk"),
        action="append",
        help="measure only these (repeatable); default: all",
    )
    arguments = parser.parse_args()
    only = set(arguments.only or ("cold", "push", "docker-sdk"))
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="spacehub-build-bench-") as tmp:
        root = Path(tmp)
        builds = Builds(root, arguments.base_image, arguments.ca_bundle, arguments.logs)
        progress(f"building with {builds.cli.description}")
        try:
            if "cold" in only:
                times |= bench_gradio_builds(builds, arguments.repeats)
            if "push" in only:
                times |= bench_push_to_running(
                    root, arguments.base_image, arguments.ca_bundle, arguments.repeats
                )
            if "docker-sdk" in only:
                times |= bench_docker_sdk(builds, arguments.repeats)
        finally:
            builds.cleanup()
    report(times)


if __name__ == "__main__":
    main()

"""The docker CLI that builds images with BuildKit: found once, run with an environment of our own.

The Docker SDK for Python only drives the classic builder, so images are built by a docker CLI:
`docker buildx build --load` where the buildx plugin works, else `DOCKER_BUILDKIT=1 docker
build` on CLIs older than 23 (Debian 12's 20.10), which have BuildKit built in. Newer CLIs
without buildx refuse `DOCKER_BUILDKIT=1` ("the buildx component is missing").
"""

import functools
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from spacehub.builder.build_processes import stop_reason
from spacehub.builder.limits import BuildLimits, BuildStopped

_PROBE_TIMEOUT_SECONDS = 20
# After SIGTERM the CLI cancels the solve (the engine stops the RUN step) and exits.
_STOP_GRACE_SECONDS = 10
_POLL_SECONDS = 0.2
# What the CLI needs to reach the same engine as the Docker SDK (docker.from_env reads these).
_ENGINE_VARIABLES = ("DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH")
NO_BUILDKIT = (
    "no docker CLI with BuildKit was found: install the docker-buildx plugin (Debian: "
    "docker-buildx, Docker's packages: docker-buildx-plugin) or a docker CLI with BuildKit "
    "built in (Debian 12's docker.io, /usr/bin/docker), or name one with SPACEHUB_DOCKER_CLI"
)


@dataclass(frozen=True)
class BuildKitCli:
    path: str
    buildx: bool  # `docker buildx build --load`; else `DOCKER_BUILDKIT=1 docker build`

    @property
    def description(self) -> str:
        how = "docker buildx build" if self.buildx else "DOCKER_BUILDKIT=1"
        return f"BuildKit through {self.path} ({how})"

    def build_command(self) -> list[str]:
        if self.buildx:
            return [self.path, "buildx", "build", "--load"]
        return [self.path, "build"]


class NoBuildKit(Exception):
    def __init__(self, message: str = NO_BUILDKIT) -> None:
        super().__init__(message)
        self.message = message


class BuildCommandFailed(Exception):
    def __init__(self, returncode: int) -> None:
        super().__init__(f"the docker CLI exited with code {returncode}")
        self.returncode = returncode


def find_buildkit(docker_cli: str | None = None) -> BuildKitCli:
    """The CLI that builds; `docker_cli` (a name or a path) is the only candidate when given."""
    engine = tuple(os.environ.get(name, "") for name in _ENGINE_VARIABLES)
    return _find_buildkit(docker_cli, os.environ.get("PATH", os.defpath), engine)


@functools.lru_cache(maxsize=8)
def _find_buildkit(docker_cli: str | None, path: str, engine: tuple[str, ...]) -> BuildKitCli:
    del engine  # part of the cache key only: another engine may be another answer
    candidates = _candidates(docker_cli, path)
    with tempfile.TemporaryDirectory(prefix="spacehub-docker-config-") as config:
        environment = cli_environment(Path(config))
        for candidate in candidates:
            if _succeeds([candidate, "buildx", "version"], environment):
                return BuildKitCli(candidate, buildx=True)
        for candidate in candidates:
            if _succeeds([candidate, "build", "--help"], environment):
                return BuildKitCli(candidate, buildx=False)
    if docker_cli:
        raise NoBuildKit(
            f"SPACEHUB_DOCKER_CLI={docker_cli} cannot build with BuildKit; " + NO_BUILDKIT
        )
    raise NoBuildKit()


def _candidates(docker_cli: str | None, path: str) -> list[str]:
    if docker_cli:
        found = shutil.which(docker_cli, path=path)
        return [os.path.realpath(found)] if found else []
    names = [os.path.join(folder, "docker") for folder in path.split(os.pathsep) if folder]
    names.append("/usr/bin/docker")
    unique: list[str] = []
    for name in names:
        if os.path.isfile(name) and os.access(name, os.X_OK):
            real = os.path.realpath(name)
            if real not in unique:
                unique.append(real)
    return unique


def _succeeds(command: list[str], environment: dict[str, str]) -> bool:
    try:
        result = subprocess.run(
            command,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=_PROBE_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def cli_environment(config_dir: Path) -> dict[str, str]:
    """The whole environment of a docker CLI call: the engine's address and nothing personal."""
    environment = {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(config_dir),
        "DOCKER_CONFIG": str(config_dir),
        "DOCKER_BUILDKIT": "1",
    }
    for name in _ENGINE_VARIABLES:
        if os.environ.get(name):
            environment[name] = os.environ[name]
    return environment


def run_build(
    cli: BuildKitCli,
    arguments: Sequence[str],
    *,
    config_dir: Path,
    on_line: Callable[[str], None],
    limits: BuildLimits,
    deadline: float | None,
) -> None:
    """Run one build, each output line to `on_line` as it arrives; stop it at the deadline or
    on cancel (BuildStopped). Raises BuildCommandFailed when the CLI fails."""
    process = subprocess.Popen(
        [*cli.build_command(), *arguments],
        env=cli_environment(config_dir),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    assert process.stdout is not None
    stdout = process.stdout

    def read() -> None:
        for raw in stdout:
            on_line(raw.decode(errors="replace").rstrip("\r\n"))

    reader = threading.Thread(target=read, name="spacehub-build-log", daemon=True)
    reader.start()
    stopped = None
    # The reader ends when the CLI closes its output, on exit: joining it returns at once then,
    # where Popen.wait(timeout) polls (up to 50 ms late; a code-only build takes 200 ms).
    while reader.is_alive() and process.poll() is None:
        stopped = stop_reason(limits, deadline)
        if stopped is not None:
            _stop(process)
            break
        reader.join(timeout=_POLL_SECONDS)
    reader.join(timeout=_STOP_GRACE_SECONDS)
    stdout.close()
    if stopped is None:
        try:
            process.wait(timeout=_STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:  # it closed its output but lives on: end it
            _stop(process)
    if stopped is not None:
        raise BuildStopped(stopped)
    if process.returncode != 0:
        raise BuildCommandFailed(process.returncode)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM lets the CLI cancel the solve, which ends the running step in the engine."""
    process.terminate()
    try:
        process.wait(timeout=_STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=_STOP_GRACE_SECONDS)

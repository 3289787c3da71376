"""A one-node Docker Swarm and Debian's docker-registry on loopback, for the tests marked `swarm`.

Only a Docker >= 25 engine is put into swarm mode (scripts/test's Docker 26 pass: its own data
root and socket), never the host's 20.10 engine the rest of the suite runs on. The swarm and the
registry last the session; at its end every service goes, the engine leaves the swarm, and the
`docker_gwbridge` network Swarm made is removed (one left behind broke later runs).
"""

import contextlib
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import IN_CI, free_port, wait_for

REGISTRY_BINARY = Path("/usr/bin/docker-registry")
SWARM_ENGINE_MAJOR = 25  # NoNewPrivileges in a service's ContainerSpec needs API 1.44
GATEWAY_BRIDGE = "docker_gwbridge"
REGISTRY_CONFIG = """\
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: {delete}
http:
  addr: {address}
"""


@dataclass(frozen=True)
class Swarm:
    registry: str  # host:port of the session's registry

    def catalog(self) -> list[str]:
        answer = httpx.get(f"http://{self.registry}/v2/_catalog", timeout=10)
        answer.raise_for_status()
        return answer.json()["repositories"]

    def tags(self, repository: str) -> set[str]:
        """The repository's tags in the registry (none once all were deleted)."""
        answer = httpx.get(f"http://{self.registry}/v2/{repository}/tags/list", timeout=10)
        return set(answer.json().get("tags") or []) if answer.status_code == 200 else set()


def unavailable(message: str) -> None:
    if IN_CI:
        pytest.fail(f"CI=true: the swarm tests must run: {message}")
    pytest.skip(message)


@contextlib.contextmanager
def loopback_registry(root: Path, delete: bool = True) -> Iterator[str]:
    """Debian's docker-registry serving `root` on 127.0.0.1 (deleting allowed or not); its
    host:port."""
    if not REGISTRY_BINARY.exists():
        unavailable(f"no {REGISTRY_BINARY}: scripts/test installs Debian's docker-registry")
    address = f"127.0.0.1:{free_port()}"
    config = root / "registry.yml"
    settings = {"storage": root / "storage", "address": address, "delete": str(delete).lower()}
    config.write_text(REGISTRY_CONFIG.format(**settings))
    with (root / "registry.log").open("ab") as log:
        process = subprocess.Popen(
            [str(REGISTRY_BINARY), "serve", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
    try:

        def up() -> bool:
            assert process.poll() is None, (root / "registry.log").read_text()
            return httpx.get(f"http://{address}/v2/", timeout=2).status_code == 200

        wait_for(up, 30, "docker-registry to answer")
        yield address
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def one_node_swarm():  # type: ignore[no-untyped-def]
    """This run's engine as a swarm manager on 127.0.0.1; left (services and all) at the end,
    unless it already was one (another session's swarm is not ours to end)."""
    import docker

    try:
        client = docker.from_env(timeout=120)
        version = client.version()["Version"]
    except docker.errors.DockerException as error:
        unavailable(f"no Docker engine answers: {error}")
    if int(version.split(".")[0]) < SWARM_ENGINE_MAJOR:
        unavailable(
            f"the swarm tests run on Docker >= {SWARM_ENGINE_MAJOR} only (this engine: "
            f"{version}); the host's engine is not put into swarm mode: run them in scripts/test's "
            'Docker 26 pass, or after eval "$(scripts/docker26 start)"'
        )
    ours = client.info()["Swarm"]["LocalNodeState"] != "active"
    if ours:
        remove_gateway_bridge(client)  # a leftover breaks the new swarm's first task
        client.swarm.init(advertise_addr="127.0.0.1", listen_addr="127.0.0.1:2377")
    try:
        yield client
    finally:
        if ours:
            for service in client.services.list():
                with contextlib.suppress(docker.errors.NotFound):
                    service.remove()
            client.swarm.leave(force=True)
            remove_gateway_bridge(client)
        client.close()


def remove_gateway_bridge(client) -> None:  # type: ignore[no-untyped-def]
    """Remove `docker_gwbridge` once the swarm's containers are gone from it."""
    import docker

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            client.networks.get(GATEWAY_BRIDGE).remove()
            return
        except docker.errors.NotFound:
            return
        except docker.errors.APIError:  # containers still attached: they are being removed
            time.sleep(0.5)


@pytest.fixture(scope="session")
def swarm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Swarm]:
    """A one-node swarm on this run's Docker >= 25 engine and a loopback registry."""
    with one_node_swarm(), loopback_registry(tmp_path_factory.mktemp("registry")) as registry:
        yield Swarm(registry)

"""Spaces as Docker containers on one engine, each reached on a port published on 127.0.0.1."""

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

import anyio.to_thread
import docker
import docker.errors
from docker.models.containers import Container
from docker.types import CancellableStream, LogConfig

from spacehub.core.errors import NotFound, SpacehubError
from spacehub.core.release import AppSpec
from spacehub.runtime.base import (
    Instance,
    InstanceState,
    InstanceStatus,
    InstanceUsage,
    Runtime,
)
from spacehub.runtime.container_spec import (
    DATA_PATH,
    DROPPED_CAPABILITIES,
    LOG_DRIVER,
    LOG_OPTIONS,
    app_container,
    check_names,
    label_filter,
    space_label,
    space_labels,
    volume_name,
)

log = logging.getLogger(__name__)
STOP_TIMEOUT_SECONDS = 5
LOOPBACK = "127.0.0.1"
_RUNNING = {"running", "paused", "restarting"}
_EXITED = {"created", "exited", "dead"}


def engine_answers(timeout: float = 5) -> bool:
    """Whether a Docker engine answers (DOCKER_HOST, else the default socket)."""
    try:
        client = docker.from_env(timeout=timeout)
    except Exception:  # no socket, refused, or a bad DOCKER_HOST: all mean "no engine"
        return False
    try:
        return bool(client.ping())
    except Exception:
        return False
    finally:
        client.close()


def engine_socket() -> str | None:
    """The engine's unix socket, as `docker.from_env` finds it; None for a TCP or SSH one."""
    host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    return host.removeprefix("unix://") if host.startswith("unix://") else None


def container_name(
    spec: AppSpec, label_prefix: str = "spacehub", platform_id: str | None = None
) -> str:
    """A name unique per deploy: old and new instances of a space coexist during a cutover."""
    platform = f"{platform_id}-" if platform_id else ""
    label = space_label(spec.space_id)
    return f"{label_prefix}-{platform}{label}-{spec.commit[:8]}-{secrets.token_hex(2)}"


def container_spec(
    spec: AppSpec, network: str, label_prefix: str = "spacehub", platform_id: str | None = None
) -> dict[str, Any]:
    """The keyword arguments of `containers.create` for one instance of `spec`, name aside."""
    container = app_container(spec, label_prefix, platform_id)
    kwargs: dict[str, Any] = {
        "image": container.image,
        "environment": container.environment,
        "labels": container.labels,
        "network": network,
        # Docker picks the host port on every start; loopback only, the proxy is the way in.
        "ports": {f"{container.app_port}/tcp": (LOOPBACK, None)},
        "nano_cpus": container.nano_cpus,
        "mem_limit": container.memory_bytes,
        # Swap equal to memory means no swap: an app over its limit is OOM-killed, not slowed.
        "memswap_limit": container.memory_bytes,
        "pids_limit": container.pids,
        "security_opt": ["no-new-privileges"],
        "cap_drop": list(DROPPED_CAPABILITIES),
        "init": True,
        "restart_policy": {"Name": "no"},
        "log_config": LogConfig(type=LOG_DRIVER, config=LOG_OPTIONS),
    }
    if container.volume is not None:
        kwargs["volumes"] = {container.volume: {"bind": DATA_PATH, "mode": "rw"}}
    return kwargs


def ensure_volume(
    client: docker.DockerClient, spec: AppSpec, label_prefix: str, platform_id: str | None
) -> None:
    """Create the space's /data volume once on `client`'s engine, owned by the image's user."""
    name = volume_name(spec.space_id, label_prefix, platform_id)
    try:
        client.volumes.get(name)
        return
    except docker.errors.NotFound:
        pass
    # Created here rather than implicitly by the mount, so that it carries the labels.
    client.volumes.create(name=name, labels=space_labels(spec.space_id, label_prefix, platform_id))
    user = client.images.get(spec.artifact.ref).attrs["Config"].get("User") or ""
    if user in ("", "0", "root"):
        return
    # An image without its own /data gives the app a root-owned volume it cannot write.
    try:
        client.containers.run(
            spec.artifact.ref,
            ["chown", user, DATA_PATH],
            entrypoint=[],
            user="0",
            volumes={name: {"bind": DATA_PATH, "mode": "rw"}},
            network_disabled=True,
            remove=True,
        )
    except docker.errors.APIError as e:
        log.warning("could not give %s to %s: %s", DATA_PATH, user, e)


def remove_images_and_volumes(
    client: docker.DockerClient, space_filter: dict[str, list[str]], space_id: str
) -> None:
    """Remove a deleted space's images and volumes from `client`'s engine (no container of it
    may be left: a volume in use is not removed)."""
    for image in client.images.list(filters=space_filter):
        # By tag, not by id with force: an image some other tag still needs stays.
        for ref in image.tags or [image.id]:
            try:
                client.images.remove(ref)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as e:  # 409: a build of the space still uses it
                log.warning("kept image %s of deleted %s: %s", ref, space_id, e.explanation)
    for volume in client.volumes.list(filters=space_filter):
        with contextlib.suppress(docker.errors.NotFound):
            volume.remove(force=True)


def split_lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """Whole lines from byte chunks cut anywhere, decoded so that bad bytes cannot raise."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield line.decode("utf-8", errors="replace").rstrip("\r")
    if pending:
        yield pending.decode("utf-8", errors="replace").rstrip("\r")


def usage_from_stats(sample: dict[str, Any]) -> InstanceUsage | None:
    """CPU % and memory from one answer of the engine's stats, computed as `docker stats` does
    (CPU: the container's share of the host's time between two samples times the CPUs; memory:
    usage less inactive file pages). None for a container that is not running."""
    cpu, before = sample.get("cpu_stats") or {}, sample.get("precpu_stats") or {}
    memory = sample.get("memory_stats") or {}
    if "usage" not in memory or "system_cpu_usage" not in cpu:
        return None
    cpu_delta = cpu["cpu_usage"]["total_usage"] - before.get("cpu_usage", {}).get("total_usage", 0)
    system_delta = cpu["system_cpu_usage"] - before.get("system_cpu_usage", 0)
    cpus = cpu.get("online_cpus") or len(cpu["cpu_usage"].get("percpu_usage") or ()) or 1
    percent = cpu_delta / system_delta * cpus * 100.0 if cpu_delta > 0 and system_delta > 0 else 0.0
    used, stats = memory["usage"], memory.get("stats") or {}
    inactive = stats.get("total_inactive_file", stats.get("inactive_file", 0))  # v1, else v2
    return InstanceUsage(percent, used - inactive if inactive < used else used)


class DockerRuntime(Runtime):
    """Containers on a private bridge network, labelled `<label_prefix>.space` and `.commit`.

    `Instance.state` is `{"container_id": …, "container_name": …}`. An instance that is not
    running has port 0 until `restart` gives it a new one.

    With a `platform_id`, every container and volume also carries `<label_prefix>.platform`, and
    only those with this platform's id are listed, adopted or removed: platforms sharing one
    engine may have spaces of the same name and never touch each other's.
    """

    name = "docker"

    def __init__(
        self,
        network: str = "spacehub",
        label_prefix: str = "spacehub",
        platform_id: str | None = None,
    ) -> None:
        check_names(label_prefix, platform_id)
        super().__init__(platform_id)
        self.network = network
        self.label_prefix = label_prefix
        self.client = docker.from_env()
        self._network_ready = False
        self._socket = engine_socket()

    async def deploy(self, spec: AppSpec) -> Instance:
        return await anyio.to_thread.run_sync(self._deploy, spec)

    async def stop(self, instance: Instance) -> None:
        await anyio.to_thread.run_sync(self._stop, instance.state["container_id"])

    async def status(self, instance: Instance) -> InstanceStatus:
        return await anyio.to_thread.run_sync(self._status, instance.state["container_id"])

    async def logs(self, instance: Instance, follow: bool = False) -> AsyncIterator[str]:
        container_id = instance.state["container_id"]
        if not follow:
            for line in split_lines([await anyio.to_thread.run_sync(self._logs, container_id)]):
                yield line
            return
        stream = await anyio.to_thread.run_sync(self._follow_logs, container_id)
        if stream is None:
            return
        lines = split_lines(stream)
        try:
            # Abandoning the blocked read on cancel, then closing its socket, ends the thread.
            while (
                line := await anyio.to_thread.run_sync(next, lines, None, abandon_on_cancel=True)
            ) is not None:
                yield line
        finally:
            stream.close()

    async def adopt(self, state: dict[str, Any]) -> Instance | None:
        return await anyio.to_thread.run_sync(self._adopt, state["container_id"])

    async def restart(self, instance: Instance) -> Instance:
        return await anyio.to_thread.run_sync(self._restart, instance.state["container_id"])

    async def remove_space(self, space_id: str) -> None:
        await anyio.to_thread.run_sync(self._remove_space, space_id)

    async def list_instances(self) -> list[Instance]:
        """Every container carrying this runtime's labels, running or not (for reconciling)."""
        return await anyio.to_thread.run_sync(self._list_instances)

    async def freeze(self, instance: Instance) -> bool:
        """`docker pause`: the cgroup freezer stops every process of the container."""
        return await anyio.to_thread.run_sync(self._pause, instance.state["container_id"], True)

    async def thaw(self, instance: Instance) -> None:
        """`docker unpause`, asked on the event loop when the engine is on a unix socket: a
        request waits for it, and handing the call to a worker thread and back cost more than
        the engine's own 13 ms under load (the thread waits for the GIL behind busy ones)."""
        container_id = instance.state["container_id"]
        if self._socket is not None:
            with contextlib.suppress(OSError, TimeoutError):
                status, body = await asyncio.wait_for(self._unpause_on_loop(container_id), 30)
                # 204 done, 404 gone; 409 or a 500 'is not paused': not paused (as `_pause`).
                if status in (204, 404, 409) or b"is not paused" in body:
                    return
                log.warning("unpausing %s: %s %s", container_id[:12], status, body[:200])
        await anyio.to_thread.run_sync(self._pause, container_id, False)

    async def _unpause_on_loop(self, container_id: str) -> tuple[int, bytes]:
        """POST .../unpause over the engine's socket; its status code and body."""
        assert self._socket is not None
        reader, writer = await asyncio.open_unix_connection(self._socket)
        try:
            path = f"/v{self.client.api.api_version}/containers/{container_id}/unpause"
            writer.write(
                f"POST {path} HTTP/1.1\r\nHost: docker\r\nContent-Length: 0\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            answer = await reader.read()  # up to the engine's close
        finally:
            writer.close()
        head, _, body = answer.partition(b"\r\n\r\n")
        status = head.split(b" ", 2)
        if len(status) < 2 or not status[1].isdigit():
            raise OSError(f"the engine answered {answer[:80]!r}")
        return int(status[1]), body

    async def usage(self, instance: Instance) -> InstanceUsage | None:
        """One `docker stats --no-stream`: the engine takes two samples about a second apart."""
        return await anyio.to_thread.run_sync(
            self._usage, instance.state["container_id"], abandon_on_cancel=True
        )

    def _usage(self, container_id: str) -> InstanceUsage | None:
        try:
            sample = self.client.api.stats(container_id, stream=False)
        except (docker.errors.NotFound, docker.errors.APIError):
            return None
        return usage_from_stats(sample)

    def _pause(self, container_id: str, pause: bool) -> bool:
        # One API call, no inspect first: a wake waits for this.
        try:
            if pause:
                self.client.api.pause(container_id)
            else:
                self.client.api.unpause(container_id)
        except docker.errors.NotFound:
            return False
        except docker.errors.APIError as error:
            # 409: paused already or not running. Unpausing what is not paused is a 500 on
            # Docker 20.10 and 26 alike, and adoption thaws every app it finds.
            not_paused = not pause and "is not paused" in str(error.explanation)
            if error.status_code == 409 or not_paused:
                return pause and self._status(container_id).state == InstanceState.RUNNING
            raise
        return True

    def _deploy(self, spec: AppSpec) -> Instance:
        self._ensure_network()
        if spec.persistent_storage:
            ensure_volume(self.client, spec, self.label_prefix, self.platform_id)
        kwargs = container_spec(spec, self.network, self.label_prefix, self.platform_id)
        try:
            container = self.client.containers.create(
                name=container_name(spec, self.label_prefix, self.platform_id), **kwargs
            )
        except docker.errors.ImageNotFound:
            raise NotFound(f"image {spec.artifact.ref} is not on this Docker engine") from None
        except docker.errors.APIError as e:
            raise SpacehubError(f"Docker could not create the container: {e.explanation}") from e
        try:
            container.start()
        except docker.errors.APIError as e:
            container.remove(force=True)
            raise SpacehubError(f"Docker could not start the container: {e.explanation}") from e
        container.reload()
        return self._instance(container)

    def _ensure_network(self) -> None:
        if self._network_ready:
            return
        try:
            self.client.networks.get(self.network)
        except docker.errors.NotFound:
            try:
                self.client.networks.create(
                    self.network,
                    driver="bridge",
                    # Not internal: apps fetch models and packages from the internet.
                    internal=False,
                    check_duplicate=True,
                    labels={f"{self.label_prefix}.network": "true"},
                    # Spaces must not reach each other; the proxy reaches them on loopback.
                    options={"com.docker.network.bridge.enable_icc": "false"},
                )
            except docker.errors.APIError as e:
                if e.status_code != 409:  # another process created it meanwhile
                    raise
        self._network_ready = True

    def _stop(self, container_id: str) -> None:
        try:
            container = self.client.containers.get(container_id)
            container.stop(timeout=STOP_TIMEOUT_SECONDS)
            # v=True: anonymous volumes of the image's VOLUME lines go with the container.
            container.remove(v=True, force=True)
        except docker.errors.NotFound:
            pass

    def _status(self, container_id: str) -> InstanceStatus:
        try:
            container = self.client.containers.get(container_id)
        except docker.errors.NotFound:
            return InstanceStatus(InstanceState.MISSING)
        state = container.attrs["State"]
        if state["Status"] in _RUNNING:
            return InstanceStatus(InstanceState.RUNNING)
        if state["Status"] in _EXITED:
            return InstanceStatus(
                InstanceState.EXITED,
                exit_code=state["ExitCode"],
                oom_killed=bool(state["OOMKilled"]),
            )
        return InstanceStatus(InstanceState.MISSING)  # "removing"

    def _logs(self, container_id: str) -> bytes:
        try:
            return self.client.containers.get(container_id).logs(stdout=True, stderr=True)
        except docker.errors.NotFound:
            return b""

    def _follow_logs(self, container_id: str) -> CancellableStream | None:
        try:
            container = self.client.containers.get(container_id)
            return container.logs(stdout=True, stderr=True, stream=True, follow=True)
        except docker.errors.NotFound:
            return None

    def _adopt(self, container_id: str) -> Instance | None:
        try:
            container = self.client.containers.get(container_id)
        except docker.errors.NotFound:
            return None
        if f"{self.label_prefix}.space" not in container.labels:
            return None
        # The stored id proves the container is ours; one without a platform label was made
        # before platforms had ids, one with another platform's label is not ours.
        platform = container.labels.get(f"{self.label_prefix}.platform")
        if platform is not None and platform != self.platform_id:
            return None
        return self._instance(container)

    def _restart(self, container_id: str) -> Instance:
        try:
            container = self.client.containers.get(container_id)
            container.start()
        except docker.errors.NotFound:
            raise NotFound(f"container {container_id[:12]} is gone") from None
        except docker.errors.APIError as e:
            raise SpacehubError(f"Docker could not start the container: {e.explanation}") from e
        container.reload()
        return self._instance(container)

    def _remove_space(self, space_id: str) -> None:
        space_filter = {"label": self._label_filter(f"{self.label_prefix}.space={space_id}")}
        for container in self.client.containers.list(
            all=True, filters=space_filter, ignore_removed=True
        ):
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(v=True, force=True)
        remove_images_and_volumes(self.client, space_filter, space_id)

    def _list_instances(self) -> list[Instance]:
        containers = self.client.containers.list(
            all=True,
            filters={"label": self._label_filter(f"{self.label_prefix}.space")},
            ignore_removed=True,
        )
        return [self._instance(c) for c in containers]

    def _label_filter(self, label: str) -> list[str]:
        return label_filter(label, self.label_prefix, self.platform_id)

    def _instance(self, container: Container) -> Instance:
        """The Instance of a freshly inspected container, with its current host port."""
        labels = container.labels
        return Instance(
            space_id=labels[f"{self.label_prefix}.space"],
            commit=labels[f"{self.label_prefix}.commit"],
            host=LOOPBACK,
            port=self._host_port(container),
            state={"container_id": container.id, "container_name": container.name},
        )

    def _host_port(self, container: Container) -> int:
        app_port = container.labels[f"{self.label_prefix}.port"]
        for binding in container.ports.get(f"{app_port}/tcp") or []:
            if binding["HostIp"] == LOOPBACK:
                return int(binding["HostPort"])
        return 0

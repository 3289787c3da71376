"""Spaces as Docker Swarm services, for more than one machine: one service per instance.

Each deploy is a service of its own (one replica: the API has no replica count a user can ask
for, and the proxy routes a space to one address), so that the old and the new instance of a
space coexist while the supervisor probes the new one, exactly as with `docker`. Its image is
the registry reference the builder pushed (SPACEHUB_REGISTRY), which any node can pull; the
container itself is the one `docker` starts (container_spec.app_container), mapped to a task
template.

How the proxy reaches an instance: the app port is published in `mode=host` on the node that
runs the task, on a port the engine picks (read from the task's port status after every start,
as `docker` reads its container's), and the instance's address is that node's address. A
one-node swarm made with `docker swarm init --advertise-addr 127.0.0.1` is reached on
127.0.0.1. Not the ingress routing mesh (it listens on every address of every node), and not an
overlay network the platform joins: `serve` runs on the host, and only a container can join an
overlay network. A host-mode port binds to the daemon's default address (dockerd `--ip`,
`"ip"` in daemon.json): 0.0.0.0 unless set, so set it to 127.0.0.1 on a one-node swarm; on
several nodes the nodes' published port range (32768-60999 by default) must be firewalled to
all but the platform's host, since Swarm cannot bind a published port to one address. The tasks
join the node's default bridge (no network is given): a swarm-scoped bridge network ignores its
`host_binding_ipv4` option (measured on Docker 26: its ports bound 0.0.0.0 and ::), while the
default bridge's binding follows `--ip`. Spaces on it can reach each other unless dockerd runs
with `--icc=false`. A deploy on this platform's own node logs a warning when the port is
published beyond loopback.

Crash restart: the task's restart condition is `none` and the supervisor restarts a crashed
instance with its backoff (a forced update, which starts a new task); Swarm restarting it too
would race the backoff and hide crashes from the RUNTIME_ERROR count, as Docker's restart
policy would for `docker`.

Freezing: Swarm has no pause, so `freeze` answers False and an idle space goes straight to
sleep's second tier (stopped, woken by the next request).

Storage: a Swarm volume is local to a node, so a space with storage has its volume made on the
manager this platform talks to and its tasks placed on that node.
"""

import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import anyio
import anyio.to_thread
import docker
import docker.errors
from docker.types import (
    ContainerSpec,
    DriverConfig,
    EndpointSpec,
    Mount,
    Placement,
    Resources,
    RestartPolicy,
    ServiceMode,
    TaskTemplate,
)

from spacehub.core.errors import SpacehubError
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
    AppContainer,
    app_container,
    check_names,
    label_filter,
)
from spacehub.runtime.docker import (
    LOOPBACK,
    STOP_TIMEOUT_SECONDS,
    container_name,
    engine_socket,
    ensure_volume,
    remove_images_and_volumes,
    split_lines,
    usage_from_stats,
)

log = logging.getLogger(__name__)
# A node pulls the image before the task starts: a first pull of a Gradio image takes a while.
TASK_START_TIMEOUT_SECONDS = 300
_POLL_SECONDS = 0.1
_FOLLOW_POLL_SECONDS = 0.5
_BEFORE_RUNNING = {
    "new",
    "allocated",
    "pending",
    "assigned",
    "accepted",
    "preparing",
    "ready",
    "starting",
}
_ENDED = {"complete", "failed", "shutdown", "rejected", "orphaned", "remove"}
NOT_A_MANAGER = (
    "the swarm runtime needs a Docker engine that is a swarm manager, and {where} is not "
    "(swarm state: {state}): run `docker swarm init --advertise-addr 127.0.0.1` on a "
    "one-node swarm, or point DOCKER_HOST at a manager"
)


class SwarmUnavailable(RuntimeError):
    """The engine cannot run services: no engine answers, or it is not a swarm manager."""


def task_template(container: AppContainer, constraints: list[str]) -> TaskTemplate:
    """The task of one instance: `container`, started once (the supervisor restarts it)."""
    mounts = []
    if container.volume is not None:
        mounts.append(Mount(DATA_PATH, container.volume, type="volume"))
    spec = ContainerSpec(
        container.image,
        env=container.environment,
        labels=container.labels,
        mounts=mounts,
        init=True,
        cap_drop=list(DROPPED_CAPABILITIES),
        stop_grace_period=STOP_TIMEOUT_SECONDS * 10**9,
    )
    # The SDK has no arguments for these: no new privileges (honoured by Docker >= 25, API
    # 1.44) and the pids limit (API 1.41). Swarm cannot set swap: a node with swap lets an app
    # swap as much again as its memory limit before it is killed.
    spec["Privileges"] = {"NoNewPrivileges": True}
    resources = Resources(cpu_limit=container.nano_cpus, mem_limit=container.memory_bytes)
    resources["Limits"]["Pids"] = container.pids
    return TaskTemplate(
        spec,
        resources=resources,
        restart_policy=RestartPolicy(condition="none"),
        log_driver=DriverConfig(LOG_DRIVER, LOG_OPTIONS),
        placement=Placement(constraints=constraints) if constraints else None,
    )


def log_time(stamp: str) -> tuple[int, int]:
    """Seconds and nanoseconds of a log line's RFC 3339 time (`timestamps=True`), which Docker
    writes with its trailing zeros cut, so that the strings do not sort."""
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    try:
        seconds = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return (0, 0)
    return (int(seconds.timestamp()), int(fraction[:9].ljust(9, "0") or 0))


def _newest(tasks: list[dict[str, Any]]) -> dict[str, Any] | None:
    return max(tasks, key=lambda task: task["Version"]["Index"], default=None)


class SwarmRuntime(Runtime):
    """Services labelled like `docker`'s containers (`<label_prefix>.space`, `.commit`, `.port`,
    `.platform`). `Instance.state` is `{"service_id": …, "service_name": …}`."""

    name = "swarm"

    def __init__(self, label_prefix: str = "spacehub", platform_id: str | None = None) -> None:
        check_names(label_prefix, platform_id)
        super().__init__(platform_id)
        self.label_prefix = label_prefix
        where = os.environ.get("DOCKER_HOST") or "the default Docker socket"
        try:
            self.client = docker.from_env()
            swarm = self.client.info().get("Swarm") or {}
        except docker.errors.DockerException as error:
            raise SwarmUnavailable(f"no Docker engine answers at {where}: {error}") from error
        if not swarm.get("ControlAvailable"):
            state = swarm.get("LocalNodeState") or "unknown"
            raise SwarmUnavailable(NOT_A_MANAGER.format(where=where, state=state))
        self.node_id: str = swarm["NodeID"]
        # The manager is this host when its engine is on a unix socket: its tasks on loopback.
        self._local_manager = engine_socket() is not None
        self._node_addresses: dict[str, str] = {}
        self._warned_public = False

    async def deploy(self, spec: AppSpec) -> Instance:
        return await anyio.to_thread.run_sync(self._deploy, spec)

    async def stop(self, instance: Instance) -> None:
        await anyio.to_thread.run_sync(self._stop, instance.state["service_id"])

    async def status(self, instance: Instance) -> InstanceStatus:
        return await anyio.to_thread.run_sync(self._status, instance.state["service_id"])

    async def logs(self, instance: Instance, follow: bool = False) -> AsyncIterator[str]:
        """The service's logs; followed by asking for the lines since the last one every half
        second until the service's task has ended (a blocked follow could not be cancelled)."""
        service_id = instance.state["service_id"]
        last = (0, 0)
        while True:
            chunks = await anyio.to_thread.run_sync(self._logs, service_id, last[0])
            for line in split_lines([chunks]):
                stamp, _, text = line.partition(" ")
                written = log_time(stamp)
                if written <= last:
                    continue  # the API's `since` has whole seconds, and includes its second
                last = written
                yield text
            if not follow or (await self.status(instance)).state != InstanceState.RUNNING:
                return
            await anyio.sleep(_FOLLOW_POLL_SECONDS)

    async def adopt(self, state: dict[str, Any]) -> Instance | None:
        return await anyio.to_thread.run_sync(self._adopt, state["service_id"])

    async def restart(self, instance: Instance) -> Instance:
        return await anyio.to_thread.run_sync(self._restart, instance.state["service_id"])

    async def list_instances(self) -> list[Instance]:
        return await anyio.to_thread.run_sync(self._list_instances)

    async def remove_space(self, space_id: str) -> None:
        await anyio.to_thread.run_sync(self._remove_space, space_id)

    async def usage(self, instance: Instance) -> InstanceUsage | None:
        """The running task's `docker stats`, when it runs on this platform's own node."""
        return await anyio.to_thread.run_sync(
            self._usage, instance.state["service_id"], abandon_on_cancel=True
        )

    def _deploy(self, spec: AppSpec) -> Instance:
        container = app_container(spec, self.label_prefix, self.platform_id)
        constraints = []
        if container.volume is not None:
            self._ensure_image(spec.artifact.ref)
            ensure_volume(self.client, spec, self.label_prefix, self.platform_id)
            constraints.append(f"node.id=={self.node_id}")
        try:
            created = self.client.api.create_service(
                task_template(container, constraints),
                name=container_name(spec, self.label_prefix, self.platform_id),
                labels=container.labels,
                mode=ServiceMode("replicated", replicas=1),
                endpoint_spec=EndpointSpec(
                    ports=[{"Protocol": "tcp", "TargetPort": spec.port, "PublishMode": "host"}]
                ),
            )
        except docker.errors.APIError as e:
            raise SpacehubError(f"Swarm could not create the service: {e.explanation}") from e
        return self._started(created["ID"], set())

    def _ensure_image(self, ref: str) -> None:
        """The image on this node, for the /data volume's owner (a task pulls by itself)."""
        try:
            self.client.images.get(ref)
        except docker.errors.ImageNotFound:
            self.client.images.pull(ref)

    def _started(self, service_id: str, earlier: set[str]) -> Instance:
        """Wait for the service's first task not in `earlier` to run (or end at once); a task
        the swarm rejects (an image no node can pull) removes the service and raises."""
        deadline = time.monotonic() + TASK_START_TIMEOUT_SECONDS
        state, message = "new", ""
        while time.monotonic() < deadline:
            tasks = [t for t in self._tasks(service_id) if t["ID"] not in earlier]
            task = _newest(tasks)
            if task is not None:
                state, message = task["Status"]["State"], task["Status"].get("Err", "")
                if state == "rejected":
                    break
                if state not in _BEFORE_RUNNING:
                    self._check_loopback(task)
                    return self._instance(self.client.api.inspect_service(service_id), task)
            time.sleep(_POLL_SECONDS)
        self._stop(service_id)
        raise SpacehubError(f"Swarm did not start the app's task ({state}): {message}".rstrip())

    def _check_loopback(self, task: dict[str, Any]) -> None:
        """Warn (once) when this node publishes a task's port beyond loopback."""
        if self._warned_public or not self._local_manager or task["NodeID"] != self.node_id:
            return
        container_id = (task["Status"].get("ContainerStatus") or {}).get("ContainerID")
        try:
            ports = self.client.api.inspect_container(container_id)["NetworkSettings"]["Ports"]
        except (docker.errors.NotFound, docker.errors.NullResource):
            return
        addresses = {b["HostIp"] for bindings in (ports or {}).values() for b in bindings or []}
        if addresses - {LOOPBACK, "::1"}:
            self._warned_public = True
            log.warning(
                "Swarm publishes apps' ports on %s, beyond loopback: start dockerd with "
                '--ip 127.0.0.1 ("ip" in daemon.json) on a one-node swarm, or firewall the '
                "published ports to the platform's host",
                ", ".join(sorted(addresses)),
            )

    def _tasks(self, service_id: str) -> list[dict[str, Any]]:
        return self.client.api.tasks(filters={"service": service_id})

    def _task(self, service_id: str) -> dict[str, Any] | None:
        return _newest(self._tasks(service_id))

    def _stop(self, service_id: str) -> None:
        """Remove the service, then wait for its container on this node to go (its volume is
        free then)."""
        try:
            self.client.api.remove_service(service_id)
        except docker.errors.NotFound:
            return
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS + 10
        leftovers = {"label": [f"com.docker.swarm.service.id={service_id}"]}
        while time.monotonic() < deadline:
            # The API's list, not the SDK model's: that one inspects each container it lists,
            # and one the swarm removes in between failed the stop with NotFound.
            if not self.client.api.containers(all=True, filters=leftovers):
                return
            time.sleep(_POLL_SECONDS)
        log.warning("the container of removed service %s is still there", service_id[:12])

    def _status(self, service_id: str) -> InstanceStatus:
        try:
            self.client.api.inspect_service(service_id)
        except docker.errors.NotFound:
            return InstanceStatus(InstanceState.MISSING)
        task = self._task(service_id)
        if task is None:
            return InstanceStatus(InstanceState.MISSING)
        state = task["Status"]["State"]
        if state == "running" or state in _BEFORE_RUNNING:
            return InstanceStatus(InstanceState.RUNNING)
        container = task["Status"].get("ContainerStatus") or {}
        return InstanceStatus(
            InstanceState.EXITED,
            exit_code=container.get("ExitCode"),
            oom_killed=self._oom_killed(container.get("ContainerID")),
        )

    def _oom_killed(self, container_id: str | None) -> bool:
        """Whether the kernel killed the task's container for memory: Swarm's task status does
        not say, the container does when it is on this node."""
        if not container_id:
            return False
        try:
            state = self.client.api.inspect_container(container_id)["State"]
        except docker.errors.NotFound:
            return False
        return bool(state.get("OOMKilled"))

    def _logs(self, service_id: str, since: int) -> bytes:
        try:
            chunks = self.client.api.service_logs(
                service_id, stdout=True, stderr=True, timestamps=True, since=since, is_tty=False
            )
            return b"".join(chunks)
        except docker.errors.NotFound:
            return b""

    def _adopt(self, service_id: str) -> Instance | None:
        try:
            service = self.client.api.inspect_service(service_id)
        except docker.errors.NotFound:
            return None
        labels = service["Spec"].get("Labels") or {}
        if f"{self.label_prefix}.space" not in labels:
            return None
        if labels.get(f"{self.label_prefix}.platform") != self.platform_id:
            return None
        return self._instance(service, self._task(service_id))

    def _restart(self, service_id: str) -> Instance:
        earlier = {task["ID"] for task in self._tasks(service_id)}
        try:
            self.client.services.get(service_id).force_update()
        except docker.errors.NotFound:
            raise SpacehubError(f"service {service_id[:12]} is gone") from None
        except docker.errors.APIError as e:
            raise SpacehubError(f"Swarm could not restart the app: {e.explanation}") from e
        return self._started(service_id, earlier)

    def _remove_space(self, space_id: str) -> None:
        space_filter = {"label": self._label_filter(f"{self.label_prefix}.space={space_id}")}
        for service in self.client.api.services(filters=space_filter):
            self._stop(service["ID"])
        remove_images_and_volumes(self.client, space_filter, space_id)

    def _list_instances(self) -> list[Instance]:
        services = self.client.api.services(
            filters={"label": self._label_filter(f"{self.label_prefix}.space")}
        )
        return [self._instance(service, self._task(service["ID"])) for service in services]

    def _usage(self, service_id: str) -> InstanceUsage | None:
        task = self._task(service_id)
        if task is None or task["Status"]["State"] != "running" or task["NodeID"] != self.node_id:
            return None
        container_id = (task["Status"].get("ContainerStatus") or {}).get("ContainerID")
        try:
            return usage_from_stats(self.client.api.stats(container_id, stream=False))
        except (docker.errors.NotFound, docker.errors.APIError):
            return None

    def _label_filter(self, label: str) -> list[str]:
        return label_filter(label, self.label_prefix, self.platform_id)

    def _instance(self, service: dict[str, Any], task: dict[str, Any] | None) -> Instance:
        """The Instance of a service: its running task's node and published port, else port 0."""
        labels = service["Spec"]["Labels"]
        host, port = LOOPBACK, 0
        if task is not None and task["Status"]["State"] == "running":
            app_port = int(labels[f"{self.label_prefix}.port"])
            for published in (task["Status"].get("PortStatus") or {}).get("Ports") or []:
                if published["TargetPort"] == app_port:
                    port = int(published["PublishedPort"])
            host = self._node_address(task["NodeID"])
        return Instance(
            space_id=labels[f"{self.label_prefix}.space"],
            commit=labels[f"{self.label_prefix}.commit"],
            host=host,
            port=port,
            state={"service_id": service["ID"], "service_name": service["Spec"]["Name"]},
        )

    def _node_address(self, node_id: str) -> str:
        """The address a node was joined with; this platform's own node is loopback."""
        if node_id == self.node_id and self._local_manager:
            return LOOPBACK
        if node_id not in self._node_addresses:
            with contextlib.suppress(docker.errors.NotFound):
                address = self.client.api.inspect_node(node_id)["Status"].get("Addr")
                self._node_addresses[node_id] = address or LOOPBACK
        return self._node_addresses.get(node_id, LOOPBACK)

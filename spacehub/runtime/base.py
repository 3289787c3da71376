"""The interface every way of running a space implements (docker, local, swarm)."""

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from spacehub.core.release import AppSpec


class InstanceState(StrEnum):
    RUNNING = "running"
    EXITED = "exited"
    MISSING = "missing"


@dataclass(frozen=True)
class Instance:
    """A started instance. `state` is JSON-able: the database stores it, `adopt` takes it back."""

    space_id: str
    commit: str
    host: str
    port: int
    state: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class InstanceStatus:
    state: InstanceState
    exit_code: int | None = None
    oom_killed: bool = False


@dataclass(frozen=True)
class InstanceUsage:
    """What an instance uses now: CPU in percent of one core (200.0 is two cores busy) over a
    short window, and resident memory in bytes (page cache the kernel can drop not counted)."""

    cpu_percent: float
    memory_bytes: int


class Runtime(ABC):
    """Starts, watches and stops instances of releases. Addresses are loopback ones, except
    those of instances on a swarm's other nodes (the node's address, see runtime/swarm.py).

    `platform_id` names the platform the runtime serves: a runtime lists, adopts and removes
    only what carries it, so that platforms sharing an engine never touch each other's.
    """

    name: str

    def __init__(self, platform_id: str | None = None) -> None:
        self.platform_id = platform_id

    @abstractmethod
    async def deploy(self, spec: AppSpec) -> Instance:
        """Start an instance of `spec`; return once it is started, not once it answers."""

    @abstractmethod
    async def stop(self, instance: Instance) -> None:
        """Stop and remove the instance; a missing one is not an error."""

    @abstractmethod
    async def status(self, instance: Instance) -> InstanceStatus: ...

    @abstractmethod
    def logs(self, instance: Instance, follow: bool = False) -> AsyncIterator[str]:
        """The instance's output lines from its start; with `follow`, until it stops."""

    @abstractmethod
    async def adopt(self, state: dict[str, Any]) -> Instance | None:
        """Re-attach to an instance from its stored `state`; None when it is gone."""

    @abstractmethod
    async def restart(self, instance: Instance) -> Instance:
        """Start the same release again (after a crash); the address may change."""

    @abstractmethod
    async def list_instances(self) -> list[Instance]:
        """Every instance this runtime holds, running or not, whatever the database says."""

    @abstractmethod
    async def remove_space(self, space_id: str) -> None:
        """Remove everything the runtime holds for a space: instances, images, volumes."""

    async def freeze(self, instance: Instance) -> bool:
        """Stop the instance's processes where they are, memory kept, CPU zero (sleep's first
        tier). False: this runtime cannot, and the instance runs on."""
        return False

    async def thaw(self, instance: Instance) -> None:
        """Let a frozen instance run again; one that is not frozen, or gone, is left as it is."""
        return None  # a runtime that cannot freeze has nothing to thaw

    async def usage(self, instance: Instance) -> InstanceUsage | None:
        """The instance's CPU and memory use now (read-only); None when unknown or gone."""
        return None  # a runtime that cannot measure says so

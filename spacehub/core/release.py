"""What the builder hands the runtime: an artifact, and the spec to run it."""

from dataclasses import dataclass, field
from typing import Literal

ArtifactKind = Literal["image", "static"]


@dataclass(frozen=True)
class Artifact:
    """A built release: a Docker image reference, or a directory of static files."""

    kind: ArtifactKind
    ref: str
    commit: str


@dataclass(frozen=True)
class Limits:
    cpus: float
    memory_bytes: int
    pids: int


@dataclass(frozen=True)
class AppSpec:
    """Everything a runtime needs to start one instance of a space's release."""

    space_id: str
    commit: str
    artifact: Artifact
    port: int
    limits: Limits
    env: dict[str, str] = field(default_factory=dict)
    persistent_storage: bool = False

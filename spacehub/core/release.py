"""What the builder hands the runtime: an artifact, and the spec to run it."""

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Literal

# Where release images are pushed (host[:port][/path]): a registry every node can pull from.
REGISTRY = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9.-]{0,252}(:[0-9]{1,5})?(/[a-z0-9][a-z0-9._-]{0,127}){0,8}"
)
ArtifactKind = Literal["image", "static", "venv"]
# A venv release is a directory: the app's files in `app/` and this manifest beside them.
VENV_MANIFEST = "release.json"
VENV_APP_DIR = "app"


@dataclass(frozen=True)
class Artifact:
    """A built release: a Docker image reference, or a directory (static files, venv release)."""

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


@dataclass(frozen=True)
class VenvManifest:
    """How a venv release runs: its `release.json`, written by the builder, read by `local`."""

    sdk: str
    app_file: str
    venv: str  # absolute path of the shared virtual environment
    python_version: str
    python_prefix: str  # the interpreter's installation, which the venv's python links into
    key: str  # hash of the resolved requirements and interpreter: the venv's name

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "VenvManifest":
        return cls(**json.loads(text))

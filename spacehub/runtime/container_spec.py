"""What every container of a space is, whichever Docker API starts it.

`docker` maps an `AppContainer` to `containers.create` and `swarm` to a service's task template
(as dockerspawner's SwarmSpawner shares DockerSpawner's options): limits, labels, environment,
security options, storage and logs are decided here once, so the two never drift apart.
"""

import re
from dataclasses import dataclass

from spacehub.core.names import subdomain_label
from spacehub.core.release import AppSpec

DATA_PATH = "/data"
# json-file whatever the daemon's default, so that logs can be read back; capped for the disk.
LOG_DRIVER = "json-file"
LOG_OPTIONS = {"max-size": "10m", "max-file": "3"}
DROPPED_CAPABILITIES = ("ALL",)
_LABEL_PREFIX = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
_PLATFORM_ID = re.compile(r"[a-z0-9]{1,32}")


@dataclass(frozen=True)
class AppContainer:
    """One instance of a release as a container: what both Docker runtimes ask the engine for.

    Every container also gets: no new privileges, every capability dropped, an init as PID 1
    (it forwards SIGTERM, which a bare Python PID 1 ignores, and reaps apps' zombies), no
    restart by Docker (the supervisor restarts crashed apps with backoff, and must not be
    raced), and the `LOG_DRIVER` logs.
    """

    image: str
    environment: dict[str, str]
    labels: dict[str, str]
    app_port: int
    nano_cpus: int
    memory_bytes: int
    pids: int
    volume: str | None  # mounted read-write at DATA_PATH when the space has storage


def check_names(label_prefix: str, platform_id: str | None) -> None:
    """Refuse a label prefix or platform id that could not name Docker objects and labels."""
    if not _LABEL_PREFIX.fullmatch(label_prefix):
        raise ValueError(f"label prefix {label_prefix!r} must match {_LABEL_PREFIX.pattern}")
    if platform_id is not None and not _PLATFORM_ID.fullmatch(platform_id):
        raise ValueError(f"platform id {platform_id!r} must match {_PLATFORM_ID.pattern}")


def space_label(space_id: str) -> str:
    """`owner/name` as its app host's DNS label, which is also valid in Docker object names."""
    owner, _, name = space_id.partition("/")
    return subdomain_label(owner, name)


def volume_name(
    space_id: str, label_prefix: str = "spacehub", platform_id: str | None = None
) -> str:
    """The space's /data volume; with a platform id, one per platform sharing the engine."""
    platform = f"{platform_id}-" if platform_id else ""
    return f"{label_prefix}-{platform}{space_label(space_id)}-data"


def space_labels(
    space_id: str, label_prefix: str = "spacehub", platform_id: str | None = None
) -> dict[str, str]:
    """The labels that find a space's objects: its id, and the platform's when it has one."""
    labels = {f"{label_prefix}.space": space_id}
    if platform_id is not None:
        labels[f"{label_prefix}.platform"] = platform_id
    return labels


def label_filter(label: str, label_prefix: str, platform_id: str | None) -> list[str]:
    """An engine's label filter: `label`, and the platform's id when it has one."""
    if platform_id is None:
        return [label]
    return [label, f"{label_prefix}.platform={platform_id}"]


def app_container(
    spec: AppSpec, label_prefix: str = "spacehub", platform_id: str | None = None
) -> AppContainer:
    if spec.artifact.kind != "image":
        raise ValueError(f"a {spec.artifact.kind} release runs without a container")
    return AppContainer(
        image=spec.artifact.ref,
        environment=dict(spec.env),
        labels={
            **space_labels(spec.space_id, label_prefix, platform_id),
            f"{label_prefix}.commit": spec.commit,
            f"{label_prefix}.port": str(spec.port),
        },
        app_port=spec.port,
        nano_cpus=int(spec.limits.cpus * 1e9),
        memory_bytes=spec.limits.memory_bytes,
        pids=spec.limits.pids,
        volume=(
            volume_name(spec.space_id, label_prefix, platform_id)
            if spec.persistent_storage
            else None
        ),
    )

"""Every setting of the platform, each also an environment variable `SPACEHUB_<NAME>`."""

import contextlib
import hashlib
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from spacehub.core.release import REGISTRY
from spacehub.core.space_config import duration_seconds

MIB = 1024 * 1024
_SIZE = re.compile(r"(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[kmgt]?)(?:i?b)?", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1024, "m": MIB, "g": 1024 * MIB, "t": 1024 * 1024 * MIB}


def parse_size(value: object) -> object:
    """`4g`, `512MiB`, `1.5G` or a number of bytes (binary units, as Docker's --memory)."""
    if not isinstance(value, str):
        return value
    match = _SIZE.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"{value!r} is not a size: write bytes, or e.g. 512m, 4g")
    return int(float(match["number"]) * _SIZE_UNITS[match["unit"].lower()])


def parse_duration(value: object) -> object:
    """`30m`, `1h30m`, `90s` or a number of seconds: what the front matter accepts."""
    if not isinstance(value, str):
        return value
    with contextlib.suppress(ValueError):
        return float(value)  # plain seconds, fractions too (wake_timeout=2.5)
    seconds = duration_seconds(value)
    if seconds is None:
        raise ValueError(f"{value!r} is not a duration: write seconds, or e.g. 90s, 30m, 1h")
    return int(seconds)


def half_the_cores() -> float:
    """A build's default CPU share: half this machine's cores, at least one."""
    return max(1.0, (os.cpu_count() or 2) / 2)


# sun_path holds 108 bytes with its terminating NUL; the longest socket is the front's.
MAX_SOCKET_PATH_BYTES = 107
LONGEST_SOCKET_NAME = "proxy-apps.sock"


def make_socket_dir(settings: "Settings") -> Path:
    """Make the folder of the platform's sockets; the run dir as it is (an existing one keeps
    its mode), one in the shared temp dir private (0700) and checked to be this user's own."""
    path = settings.socket_dir
    if path == settings.run_dir:
        path.mkdir(parents=True, exist_ok=True)
        return path
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    found = path.lstat()
    if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.getuid() or found.st_mode & 0o077:
        raise ValueError(f"{path}, for the platform's sockets, is not a private folder of ours")
    return path


class Settings(BaseSettings):
    """Built once by the CLI (or a test) and passed down; never read at import time."""

    model_config = SettingsConfigDict(env_prefix="SPACEHUB_", extra="ignore")

    data_dir: Path = Field(
        default=Path(".spacehub"), description="Where the database, repositories and releases live."
    )
    host: str = Field(default="127.0.0.1", description="Address the public port listens on.")
    port: int = Field(default=8000, description="The public port: proxy, API, git and apps.")
    public_url: str | None = Field(
        default=None, description="The platform's URL as users reach it; default http://HOST:PORT."
    )
    apps_port: int | None = Field(
        default=None,
        description="Port of the apps origin, where the path form of apps answers "
        "(APPS_URL/apps/{owner}/{name}/) so that no app runs on the dashboard's and API's "
        "origin; default PORT + 1.",
    )
    apps_url: str | None = Field(
        default=None,
        description="The apps origin's URL as users reach it; default http://HOST:APPS_PORT, "
        "with localhost for 127.0.0.1 (and 127.0.0.1 for localhost) so that browsers keep the "
        "dashboard's cookies away from apps: set it to a host name of its own in production.",
    )
    apps_domain: str = Field(
        default="localhost",
        description="Apps answer at http://{owner}-{name}.APPS_DOMAIN:PORT/ (subdomain form).",
    )
    wildcard_dns: bool = Field(
        default=False,
        description="Whether *.APPS_DOMAIN resolves for non-browser clients; then "
        "space_info().host is the subdomain form, else the path form.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default SQLite in DATA_DIR, or postgresql+psycopg://…",
    )
    database_pool_size: int = Field(
        default=20,
        ge=1,
        description="Database connections kept open (as many again in overflow); requests "
        "hold one only while they read or write, never while a body streams.",
    )
    runtime: Literal["auto", "docker", "local", "swarm"] = Field(
        default="auto",
        description="How apps run: docker, local (processes in shared venvs made with uv), "
        "swarm (Docker Swarm services, images pulled from REGISTRY; the engine must be a swarm "
        "manager), or auto (Docker when a daemon answers, else local).",
    )
    registry: str | None = Field(
        default=None,
        description="Registry (host[:port][/path]) every built image is pushed to, as "
        "REGISTRY/spacehub/...:COMMIT, for the nodes of a swarm to pull it; needed by the "
        "swarm runtime. The engine pushes over plain HTTP only to 127.0.0.0/8 or to a registry "
        "in its insecure-registries.",
    )
    admin_name: str = Field(
        default="admin", description="Name of the admin user made on first start."
    )
    admin_token: SecretStr | None = Field(
        default=None, description="Preset the admin token instead of generating one."
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Fernet key (base64) encrypting secrets at rest; default: made in DATA_DIR.",
    )
    max_push_bytes: int = Field(
        default=200 * MIB, description="Largest accepted git push, in bytes."
    )
    max_request_bytes: int = Field(
        default=200 * MIB, description="Largest accepted API request body, in bytes."
    )
    base_image: str = Field(
        default="python:3.11-slim", description="Base image of the Gradio and Streamlit templates."
    )
    registry_mirror: str | None = Field(
        default=None,
        description="Registry mirror (host[:port][/path]) asked first for a missing base image: "
        "python:3.10-slim comes from MIRROR/library/python:3.10-slim, tagged python:3.10-slim.",
    )
    build_ca_bundle: Path | None = Field(
        default=None, description="CA bundle pip needs during builds only (TLS-inspecting proxies)."
    )
    build_pip_index_url: str | None = Field(
        default=None, description="Package index pip uses during builds only."
    )
    build_cpus: float = Field(
        default_factory=half_the_cores,
        ge=0,
        description="Cores one build may keep busy (cgroup CPU quota; `nice` where the host "
        "has no cgroups); default half the machine's, at least 1, so that a build's pip "
        "install leaves the proxy, the API and running apps a share; 0: no limit.",
    )
    build_memory: int = Field(
        default=4 * 1024 * MIB,
        ge=0,
        description="Memory one build may use, in bytes or as 512m, 4g (cgroup; a build "
        "over it ends BUILD_ERROR naming it); 0: no limit.",
    )
    build_timeout: int = Field(
        default=30 * 60,
        ge=0,
        description="Longest a build may run, in seconds or as 90s, 30m, 1h; a build still "
        "running then is stopped and ends BUILD_ERROR naming the time limit; 0: no limit.",
    )
    docker_cli: str | None = Field(
        default=None,
        description="The docker CLI that builds images with BuildKit (a name or a path); by "
        "default the first on PATH, or /usr/bin/docker, that has buildx or BuildKit built in.",
    )
    app_memory_limit: int | None = Field(
        default=None, description="Caps every app's memory, in bytes, below its hardware flavor's."
    )
    max_restarts: int = Field(
        default=4, description="Crash restarts (with exponential backoff) before RUNTIME_ERROR."
    )
    freeze_after: float = Field(
        default=60,
        ge=0,
        description="Seconds a running app may go without requests or open streams before it "
        "is frozen (docker pause / SIGSTOP: memory kept, no CPU); the next request thaws it; "
        "0: never.",
    )
    default_sleep_time: int = Field(
        default=48 * 3600,
        ge=-1,
        description="Seconds (or e.g. 48h, 30m) a running app may go without requests or open "
        "streams before it is stopped and its space is SLEEPING, for spaces that never set a "
        "sleep time of their own (set_space_sleep_time; 0 there asks for this default again); "
        "the next request wakes it; -1: never. The Hub's default for free hardware: 48 h.",
    )
    wake_timeout: float = Field(
        default=120,
        gt=0,
        description="Seconds an API request to a SLEEPING space is held while the space wakes; "
        "past that it gets 503 with Retry-After (the wake goes on).",
    )
    build_workers: int = Field(default=1, description="Builds run at once by `spacehub serve`.")
    worker_heartbeat: float = Field(
        default=5,
        gt=0,
        description="Seconds between the heartbeats a process running builds (`serve`, "
        "`spacehub worker`) records in the database.",
    )
    worker_lapse: float = Field(
        default=30,
        gt=0,
        description="Seconds without a heartbeat after which a worker counts as gone and its "
        "running builds go back to the queue for another worker.",
    )
    keep_releases: int = Field(
        default=3,
        ge=0,
        description="Releases (static files, images) each space keeps besides its live one; "
        "older ones are removed after each successful build.",
    )
    ssh_host: str = Field(default="127.0.0.1", description="Address git over SSH listens on.")
    ssh_port: int = Field(
        default=2222,
        description="Port of git over SSH (ssh://git@HOST:SSH_PORT/spaces/owner/name); 0 turns "
        "it off.",
    )
    proxy: Literal["python", "nginx"] = Field(
        default="python",
        description="The front door on PORT and the apps port: python (spacehub's own proxy), "
        "or nginx (a managed nginx master, config in DATA_DIR/nginx, answering running public "
        "spaces itself and everything else through spacehub's proxy; reloaded as routes change). "
        "nginx must be installed.",
    )
    tls_cert: Path | None = Field(
        default=None,
        description="With proxy nginx: the TLS certificate chain (PEM) both ports answer with; "
        "a wildcard for *.APPS_DOMAIN covers the subdomain form. URLs become https://.",
    )
    tls_key: Path | None = Field(default=None, description="The private key (PEM) of TLS_CERT.")

    @field_validator("registry")
    @classmethod
    def _registry_address(cls, value: str | None) -> str | None:
        if value is not None and not REGISTRY.fullmatch(value):
            raise ValueError(f"{value!r} is not a registry: write host[:port][/path]")
        return value

    @model_validator(mode="after")
    def _swarm_pulls_from_a_registry(self) -> "Settings":
        if self.runtime == "swarm" and self.registry is None:
            raise ValueError(
                "the swarm runtime runs images every node pulls from a registry: set "
                "SPACEHUB_REGISTRY (e.g. 127.0.0.1:5000 for Debian's docker-registry)"
            )
        return self

    @field_validator("build_memory", mode="before")
    @classmethod
    def _size(cls, value: object) -> object:
        return parse_size(value)

    @field_validator(
        "build_timeout", "wake_timeout", "worker_heartbeat", "worker_lapse", mode="before"
    )
    @classmethod
    def _duration(cls, value: object) -> object:
        return parse_duration(value)

    @field_validator("default_sleep_time", mode="before")
    @classmethod
    def _sleep_time(cls, value: object) -> object:
        return -1 if isinstance(value, str) and value.strip() == "-1" else parse_duration(value)

    @field_validator("data_dir")
    @classmethod
    def _absolute_data_dir(cls, value: Path) -> Path:
        """Absolute from the start: apps, builds and bwrap run in other working directories."""
        return value.expanduser().absolute()

    @property
    def effective_public_url(self) -> str:
        scheme = "https" if self.tls_cert else "http"
        return (self.public_url or f"{scheme}://{self.host}:{self.port}").rstrip("/")

    @property
    def effective_apps_port(self) -> int:
        return self.apps_port if self.apps_port is not None else self.port + 1

    @property
    def effective_apps_url(self) -> str:
        """The apps origin, on another site than PUBLIC_URL where it can (cookies ignore ports)."""
        if self.apps_url:
            return self.apps_url.rstrip("/")
        public = urlsplit(self.effective_public_url)
        host = public.hostname or self.host
        host = {"127.0.0.1": "localhost", "localhost": "127.0.0.1"}.get(host, host)
        if ":" in host:
            host = f"[{host}]"
        return f"{public.scheme or 'http'}://{host}:{self.effective_apps_port}"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir.resolve() / 'spacehub.db'}"

    @property
    def repos_dir(self) -> Path:
        return self.data_dir / "repos"

    @property
    def releases_dir(self) -> Path:
        return self.data_dir / "releases"

    @property
    def build_contexts_dir(self) -> Path:
        """Each space's image build context, kept between builds (BuildKit sends only changes)."""
        return self.data_dir / "cache" / "build-contexts"

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def run_dir(self) -> Path:
        return self.data_dir / "run"

    @property
    def socket_dir(self) -> Path:
        """Where the platform's unix sockets go: the run dir, unless its path is too long for a
        socket's address (107 bytes), then a private folder in the system's temp dir named
        after the data dir (made by `make_socket_dir`)."""
        if len(bytes(self.run_dir.absolute() / LONGEST_SOCKET_NAME)) <= MAX_SOCKET_PATH_BYTES:
            return self.run_dir
        digest = hashlib.sha256(bytes(self.data_dir.absolute())).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"spacehub-{os.getuid()}-{digest}"

    @property
    def control_socket(self) -> Path:
        return self.socket_dir / "control.sock"

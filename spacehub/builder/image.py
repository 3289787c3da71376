"""Build a space's image with BuildKit through the docker CLI: the one module that builds images.

Build-only inputs (the CA bundle, the package index, the space's build secrets) reach the
build as `--secret` files in a private directory and are mounted only into the RUN steps that
use them: no layer, history entry or helper image holds them. The Docker SDK checks base
images and manages the images built.
"""

import hashlib
import hmac
import json
import re
import shlex
import shutil
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import docker
from docker.errors import APIError, DockerException, ImageNotFound

from spacehub.builder.base_image import missing_base_message, pull_base_image
from spacehub.builder.build_context import locked, mirror, node_id, space_context_dir
from spacehub.builder.build_processes import memory_limit_message, stop_reason
from spacehub.builder.buildkit import (
    BuildCommandFailed,
    BuildKitCli,
    NoBuildKit,
    find_buildkit,
    run_build,
)
from spacehub.builder.buildkit_cgroup import NotEnforced, capped, engine_buildkit_group
from spacehub.builder.dockerfile import (
    CACHE_NAMESPACE,
    read_user_dockerfile,
    referenced_names,
    render_dockerfile,
    rewrite_user_dockerfile,
)
from spacehub.builder.limits import BuildLimits, BuildStopped
from spacehub.builder.plan import BuildPlan
from spacehub.core.cgroups import Cgroup, memory_peak, reset_memory_peak
from spacehub.core.release import REGISTRY, Artifact

Log = Callable[[str], None]

LOG_TAIL_LINES = 50
_COMMIT = re.compile(r"[0-9a-f]{7,64}")
_LABEL = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_SPACE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}")
_INDEX_URL = re.compile(r"https?://[^\s'\"\\$]{1,2000}")
_PLATFORM_ID = re.compile(r"[a-z0-9]{1,32}")
# Where RUN steps find the build-only files (secret mounts: present during the step only).
_BUILD_DIR = "/run/spacehub-build"
_CA = f"{_BUILD_DIR}/ca.crt"
_PIP_CONF = f"{_BUILD_DIR}/pip.conf"
_UV_TOML = f"{_BUILD_DIR}/uv.toml"
_DOCKER_TIMEOUT_SECONDS = 120
_PUSH_POLL_SECONDS = 0.2  # how soon a cancel or the time limit ends a push
_MEMORY_REACHED = 0.95  # a peak this near the memory limit: the limit was reached
# BuildKit runs build steps in the engine's own cgroup and ignores --cgroup-parent: CPU and
# memory are capped through that group (see buildkit_cgroup) where this host can.
UNLIMITED_RESOURCES = (
    "CPU and memory limits are not enforced on this image build: {reason}; "
    "the time limit and cancel apply"
)


class BuildFailed(Exception):
    """The image could not be built; `log_tail` holds the last lines of the build log."""

    def __init__(self, message: str, log_tail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.log_tail = log_tail


@dataclass(frozen=True)
class ImageBuildOptions:
    base_image: str
    ca_bundle: Path | None
    pip_index_url: str | None
    no_cache: bool = False
    # Names and labels the images of one platform, so that platforms sharing an engine never
    # overwrite, prune or delete each other's images.
    platform_id: str | None = None
    docker_cli: str | None = None  # the docker CLI that builds; None: found on PATH
    registry_mirror: str | None = None  # where a missing base image is pulled from, if set
    # Where release images are pushed for the nodes of a swarm to pull them, if set: the
    # release's image is then `<registry>/<image_tag>@<digest>`.
    registry: str | None = None
    # Keys the digest of secret values that separates the cache of the steps using them
    # (see dockerfile.rewrite_user_dockerfile): a platform secret, so the digest reveals nothing.
    secrets_digest_key: bytes = b""
    # The SDK templates' cache mounts (uv, apt): shared by every space; bench/build_bench.py
    # gives its cold builds fresh ones.
    cache_namespace: str = CACHE_NAMESPACE
    # Where each space's build context is kept between builds (see build_context); None: a
    # fresh copy per build, sent whole.
    context_cache_dir: Path | None = None


def build_image(
    plan: BuildPlan,
    source: Path,
    *,
    space_id: str,
    label: str,
    commit: str,
    build_args: Mapping[str, str],
    build_secrets: Mapping[str, str],
    options: ImageBuildOptions,
    log: Log,
    limits: BuildLimits,
) -> Artifact:
    """Build `source` at `commit` into an image tagged `spacehub/<label>:<commit12>`.

    Raises BuildFailed, or BuildStopped when the build goes over its time limit or is cancelled.
    """
    if not (
        _SPACE_ID.fullmatch(space_id) and _LABEL.fullmatch(label) and _COMMIT.fullmatch(commit)
    ):
        raise ValueError("space id, label or commit is malformed")
    if options.pip_index_url is not None and not _INDEX_URL.fullmatch(options.pip_index_url):
        raise ValueError("the pip index URL must be a plain http(s) URL")
    if options.platform_id is not None and not _PLATFORM_ID.fullmatch(options.platform_id):
        raise ValueError("the platform id must be lower-case letters and digits")
    if options.registry is not None and not REGISTRY.fullmatch(options.registry):
        raise ValueError("the registry must be host[:port][/path]")
    if plan.config.sdk not in ("docker", "gradio", "streamlit"):
        raise ValueError(f"a {plan.config.sdk} space has no image")
    deadline = None if limits.timeout_seconds is None else time.monotonic() + limits.timeout_seconds
    try:
        cli = find_buildkit(options.docker_cli)
    except NoBuildKit as error:
        log(error.message)
        raise BuildFailed(error.message, error.message) from None
    log(f"Building with {cli.description}")
    client = docker.from_env(timeout=_DOCKER_TIMEOUT_SECONDS)
    # mkdtemp: mode 0700, so the secret files in it are readable by this user only.
    private = Path(tempfile.mkdtemp(prefix="spacehub-build-"))
    kept = options.context_cache_dir
    contexts = None if kept is None else space_context_dir(kept, label)
    try:
        build = _Build(
            client, cli, label, commit, space_id, options, log, limits, deadline, private
        )
        with nullcontext() if contexts is None else locked(contexts):
            if plan.config.sdk == "docker":
                image_id = build.build_user_dockerfile(source, build_args, build_secrets, contexts)
            else:
                image_id = build.build_sdk_template(
                    plan, source, build_args, build_secrets, contexts
                )
        if options.registry is not None:
            image_id = build.push(image_id, options.registry)
    finally:
        shutil.rmtree(private, ignore_errors=True)
        client.close()
    return Artifact(kind="image", ref=image_id, commit=commit)


def image_tag(label: str, commit: str, platform_id: str | None = None) -> str:
    return f"{image_repository(label, platform_id)}:{release_tag(commit)}"


def release_tag(commit: str) -> str:
    return commit[:12]


def image_repository(label: str, platform_id: str | None = None) -> str:
    """`spacehub/<label>`, or `spacehub/<platform id>/<label>` for one platform among several."""
    return f"spacehub/{platform_id}/{label}" if platform_id else f"spacehub/{label}"


def release_image_filters(space_id: str | None, platform_id: str) -> dict[str, list[str]]:
    labels = [f"spacehub.platform={platform_id}"]
    if space_id is not None:
        labels.append(f"spacehub.space={space_id}")
    return {"label": labels}


def prune_images(
    space_id: str, label: str, platform_id: str, keep: set[str], registry: str | None = None
) -> list[str]:
    """Untag the space's release images whose commit is not in `keep`, the tags pushed to
    `registry` as well; return the tags removed (from the registry: registry.py).

    An image a container still uses is refused by the engine (no force) and stays.
    """
    repository = image_repository(label, platform_id)
    names = {repository} if registry is None else {repository, f"{registry}/{repository}"}
    kept = {release_tag(commit) for commit in keep}
    removed = []
    client = docker.from_env(timeout=_DOCKER_TIMEOUT_SECONDS)
    try:
        for image in client.images.list(filters=release_image_filters(space_id, platform_id)):
            for tag in image.tags:
                name, _, commit = tag.rpartition(":")
                if name not in names or commit in kept:
                    continue
                try:
                    client.images.remove(tag)
                except ImageNotFound:
                    continue
                except APIError as error:  # in use by a container (this platform's, surely)
                    if error.status_code != 409:
                        raise
                    continue
                removed.append(tag)
    finally:
        client.close()
    return removed


def count_release_images(platform_id: str) -> int:
    """How many release images (one per kept commit of each space) this platform holds."""
    client = docker.from_env(timeout=_DOCKER_TIMEOUT_SECONDS)
    try:
        images = client.images.list(filters=release_image_filters(None, platform_id))
    finally:
        client.close()
    prefix = f"spacehub/{platform_id}/"
    return sum(1 for image in images for tag in image.tags if tag.startswith(prefix))


class _Build:
    """One build: the engine, the CLI, names, labels and the private directory of its secrets."""

    def __init__(
        self,
        client: docker.DockerClient,
        cli: BuildKitCli,
        label: str,
        commit: str,
        space_id: str,
        options: ImageBuildOptions,
        log: Log,
        limits: BuildLimits,
        deadline: float | None,
        private: Path,
    ) -> None:
        self.client = client
        self.cli = cli
        self.options = options
        self.log = log
        self.limits = limits
        self.deadline = deadline
        self.private = private
        self.labels = {"spacehub.space": space_id, "spacehub.commit": commit}
        if options.platform_id:
            self.labels["spacehub.platform"] = options.platform_id
        self.tag = image_tag(label, commit, options.platform_id)
        self.tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)

    def build_sdk_template(
        self,
        plan: BuildPlan,
        source: Path,
        build_args: Mapping[str, str],
        build_secrets: Mapping[str, str],
        contexts: Path | None,
    ) -> str:
        self._require_images([self.options.base_image])
        if contexts is None:
            context = self.private / "context"
            shutil.copytree(source, context / "app", ignore=shutil.ignore_patterns(".git"))
        else:
            context = contexts / "sdk"
            mirror(source, context / "app", ignore=lambda name: name == ".git")
        # Only values the requirement files name reach the build, so that other secrets never
        # reach a build step (identical dependencies share layers anyway: secrets are not part
        # of BuildKit's cache keys).
        named: set[str] = set()
        for name in ("pre-requirements.txt", "requirements.txt"):
            if (source / name).is_file():
                named |= referenced_names((source / name).read_text(errors="replace"))
        values = {**build_args, **build_secrets}
        used = {name: values[name] for name in sorted(named) if name in values}
        secrets = {"spacehub-env": _exports({**self._tool_settings(), **used})}
        if self.options.ca_bundle is not None:
            secrets["spacehub-ca"] = self.options.ca_bundle.read_bytes()
        dockerfile = render_dockerfile(
            plan,
            base_image=self.options.base_image,
            secrets_digest=self._digest(used),
            cache_namespace=self.options.cache_namespace,
        )
        return self._run(context, dockerfile, secrets, {})

    def build_user_dockerfile(
        self,
        source: Path,
        build_args: Mapping[str, str],
        build_secrets: Mapping[str, str],
        contexts: Path | None,
    ) -> str:
        try:
            dockerfile = read_user_dockerfile((source / "Dockerfile").read_text(), build_args)
        except (OSError, UnicodeDecodeError, ValueError) as error:
            message = f"cannot build the Dockerfile: {error}"
            self.log(message)
            raise BuildFailed(message, message) from None
        self._require_images(dockerfile.base_images)
        args = {name: value for name, value in build_args.items() if name in dockerfile.arg_names}
        # Hugging Face's documented form: `RUN --mount=type=secret,id=NAME` finds the space's
        # secret (or variable) NAME in /run/secrets/NAME.
        values = {**build_args, **build_secrets}
        used = {id_: values[id_] for id_ in dockerfile.secret_ids if id_ in values}
        secrets = {id_: value.encode() for id_, value in used.items()}
        paths: dict[str, str] = {}
        mounts = []
        if self.options.ca_bundle is not None:
            secrets["spacehub-ca"] = self.options.ca_bundle.read_bytes()
            mounts.append(f"type=secret,id=spacehub-ca,target={_CA},mode=0444")
            for name in ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
                paths[name] = _CA
        if self.options.pip_index_url is not None:
            # Config files, not variables: an index URL may carry credentials, and an ARG's
            # value shows in the image's history. Mode 0444: steps after a USER read them too.
            url = self.options.pip_index_url
            secrets["spacehub-pip"] = f"[global]\nindex-url = {url}\n".encode()
            secrets["spacehub-uv"] = f'index-url = "{url}"\n'.encode()
            mounts.append(f"type=secret,id=spacehub-pip,target={_PIP_CONF},mode=0444")
            mounts.append(f"type=secret,id=spacehub-uv,target={_UV_TOML},mode=0444")
            paths["PIP_CONFIG_FILE"] = _PIP_CONF
            paths["UV_CONFIG_FILE"] = _UV_TOML
        try:
            text = rewrite_user_dockerfile(
                dockerfile, build_args=paths, mounts=mounts, secrets_digest=self._digest(used)
            )
        except ValueError as error:
            message = f"cannot build the Dockerfile: {error}"
            self.log(message)
            raise BuildFailed(message, message) from None
        if contexts is not None:
            mirror(source, contexts / "docker")
            source = contexts / "docker"
        return self._run(source, text, secrets, args)

    def _digest(self, used: Mapping[str, str]) -> str | None:
        """A keyed digest of the secret values the build's steps use; None: none.

        Spaces with the same values share the steps (neither learns anything from the other).
        """
        if not used:
            return None
        message = json.dumps(sorted(used.items())).encode()
        return hmac.new(self.options.secrets_digest_key, message, hashlib.sha256).hexdigest()

    def _tool_settings(self) -> dict[str, str]:
        """What pip, uv and other tools read during the SDK template's RUN steps."""
        settings = {}
        if self.options.ca_bundle is not None:
            for name in ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
                settings[name] = _CA
        if self.options.pip_index_url is not None:
            settings["PIP_INDEX_URL"] = settings["UV_DEFAULT_INDEX"] = self.options.pip_index_url
        return settings

    def _require_images(self, images: Iterable[str]) -> None:
        """Builds never pull: each base image must be on the engine already."""
        for image in images:
            try:
                self.client.images.get(image)
                continue
            except ImageNotFound:
                pass
            except DockerException as error:
                message = f"the Docker engine did not answer about base image {image}: {error}"
                self.log(message)
                raise BuildFailed(message, message) from None
            mirror = self.options.registry_mirror
            # Builds never pull from a base's own registry; a mirror the operator set, they do.
            reason = (
                pull_base_image(image, mirror, self.log, direct=False)
                if mirror
                else "builds never pull"
            )
            if reason is None:
                continue
            message = missing_base_message(image, mirror, reason)
            self.log(message)
            raise BuildFailed(message, message)

    def _run(
        self,
        context: Path,
        dockerfile: str,
        secrets: Mapping[str, bytes],
        build_args: Mapping[str, str],
    ) -> str:
        """One BuildKit build of `dockerfile` (kept outside the context) into `self.tag`."""
        (self.private / "Dockerfile").write_text(dockerfile)
        config = self.private / "docker-config"
        config.mkdir(mode=0o700)
        if self.options.context_cache_dir is not None:
            # The same node id every build: with the same context path, BuildKit sends only
            # what changed (the docker CLI reads it here, buildx under buildx/).
            value = node_id(self.options.context_cache_dir)
            (config / "buildx").mkdir()
            for path in (config / ".buildNodeID", config / "buildx" / ".buildNodeID"):
                path.write_text(value)
        arguments = ["--progress=plain", "--file", str(self.private / "Dockerfile")]
        arguments += ["--tag", self.tag, "--iidfile", str(self.private / "image-id")]
        for key, value in sorted(self.labels.items()):
            arguments += ["--label", f"{key}={value}"]
        for key, value in sorted(build_args.items()):
            arguments += ["--build-arg", f"{key}={value}"]
        secrets_dir = self.private / "secrets"
        secrets_dir.mkdir(mode=0o700)
        for index, (id_, value) in enumerate(sorted(secrets.items())):
            path = secrets_dir / str(index)
            path.touch(mode=0o600)
            path.write_bytes(value)
            arguments += ["--secret", f"id={id_},src={path}"]
        if self.options.no_cache:
            arguments.append("--no-cache")
        arguments.append(str(context))
        with self._capped() as group:
            oom_kills = 0
            if group is not None:
                oom_kills = group.oom_kills()
                reset_memory_peak(group)
            try:
                run_build(
                    self.cli,
                    arguments,
                    config_dir=config,
                    on_line=self._emit,
                    limits=self.limits,
                    deadline=self.deadline,
                )
            except BuildCommandFailed:
                memory = self.limits.memory_bytes
                # A step the kernel killed (SIGKILL: 137) when the group reached its limit; v1
                # counts the OOM kill in the step's own group only (gone by now), v2 here too.
                killed = any("exit code: 137" in line for line in self.tail)
                if (
                    group is not None
                    and memory is not None
                    and killed
                    and (
                        group.oom_kills() > oom_kills
                        or memory_peak(group) >= memory * _MEMORY_REACHED
                    )
                ):
                    raise BuildStopped(memory_limit_message(memory)) from None
                reason = next((line for line in reversed(self.tail) if line.strip()), "")
                raise BuildFailed(f"build failed: {reason.strip()}", self.log_tail) from None
        return (self.private / "image-id").read_text().strip()

    def push(self, image_id: str, registry: str) -> str:
        """Tag the built image `<registry>/<tag>` and push it; its reference by digest. The
        build's time limit and cancel apply: the push runs on a thread of its own, left to
        end with the client (closed by the build) when they stop the build."""
        repository, _, tag = f"{registry}/{self.tag}".rpartition(":")
        self.log(f"Pushing {repository}:{tag} to the registry {registry}")
        outcome: list[str | BaseException] = []

        def push() -> None:
            try:
                outcome.append(self._push(image_id, repository, tag, registry))
            except BaseException as error:  # handed to the build's thread below
                outcome.append(error)

        pushing = threading.Thread(target=push, name="spacehub-push", daemon=True)
        pushing.start()
        while pushing.is_alive():
            reason = stop_reason(self.limits, self.deadline)
            if reason is not None:
                raise BuildStopped(reason)
            pushing.join(timeout=_PUSH_POLL_SECONDS)
        if isinstance(outcome[0], BaseException):
            raise outcome[0]
        return outcome[0]

    def _push(self, image_id: str, repository: str, tag: str, registry: str) -> str:
        digest = None
        try:
            self.client.api.tag(image_id, repository, tag)
            for event in self.client.api.push(repository, tag, stream=True, decode=True):
                if "error" in event:
                    raise BuildFailed(
                        f"pushing the image to the registry {registry} failed: {event['error']}",
                        self.log_tail,
                    )
                digest = (event.get("aux") or {}).get("Digest", digest)
                # One line per layer when it is done, not the progress bars in between.
                if event.get("status") in ("Pushed", "Layer already exists", "Mounted from"):
                    self._emit(f"{event.get('id', '')}: {event['status']}")
        except DockerException as error:
            raise BuildFailed(
                f"pushing the image to the registry {registry} failed: {error}", self.log_tail
            ) from None
        if digest is None:
            raise BuildFailed(
                f"the registry {registry} did not answer the push with the image's digest",
                self.log_tail,
            )
        self._emit(f"Pushed {repository}:{tag} ({digest})")
        return f"{repository}:{tag}@{digest}"

    @contextmanager
    def _capped(self) -> Iterator[Cgroup | None]:
        """The engine's BuildKit group capped to the build's CPU and memory, if it can be."""
        if self.limits.cpus is None and self.limits.memory_bytes is None:
            yield None
            return
        with ExitStack() as stack:
            group = None
            try:
                found = engine_buildkit_group(self.client)
                stack.enter_context(capped(found, self.limits))
                group = found
            except NotEnforced as error:
                self.log(UNLIMITED_RESOURCES.format(reason=error))
            else:
                where = ", ".join(str(directory) for directory in found.directories)
                self.log(
                    f"CPU and memory of the build's steps are capped through the engine's "
                    f"cgroup {where} (one cap for the image builds running at once)"
                )
            yield group

    def _emit(self, line: str) -> None:
        if line:
            self.tail.append(line)
            self.log(line)

    @property
    def log_tail(self) -> str:
        return "\n".join(self.tail)


def _exports(values: Mapping[str, str]) -> bytes:
    lines = [f"export {name}={shlex.quote(value)}" for name, value in sorted(values.items())]
    return "".join(line + "\n" for line in lines).encode()

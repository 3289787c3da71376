"""Build a space's image with the classic Docker builder: the one module that builds images."""

import hashlib
import io
import json
import re
import shlex
import shutil
import tarfile
import tempfile
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
from docker.errors import APIError, DockerException, ImageNotFound

from spacehub.builder.dockerfile import (
    UserDockerfile,
    check_image_name,
    read_user_dockerfile,
    referenced_names,
    render_build_base,
    render_dockerfile,
    rewrite_user_dockerfile,
)
from spacehub.builder.plan import BuildPlan
from spacehub.core.release import Artifact

Log = Callable[[str], None]

LOG_TAIL_LINES = 50
_COMMIT = re.compile(r"[0-9a-f]{7,64}")
_LABEL = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_SPACE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}")
_INDEX_URL = re.compile(r"https?://[^\s'\"\\$]{1,2000}")
_PLATFORM_ID = re.compile(r"[a-z0-9]{1,32}")
_BUILD_CA = "/etc/spacehub-build/ca.crt"
_SDK_CA = "/tmp/spacehub-build/ca.crt"
_PRUNE_TIMEOUT_SECONDS = 120
# A build can stay silent for minutes (a large wheel compiling); the SDK's read timeout is per read.
_BUILD_TIMEOUT_SECONDS = 3600


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
) -> Artifact:
    """Build `source` at `commit` into an image tagged `spacehub/<label>:<commit12>`."""
    if not (
        _SPACE_ID.fullmatch(space_id) and _LABEL.fullmatch(label) and _COMMIT.fullmatch(commit)
    ):
        raise ValueError("space id, label or commit is malformed")
    if options.pip_index_url is not None and not _INDEX_URL.fullmatch(options.pip_index_url):
        raise ValueError("the pip index URL must be a plain http(s) URL")
    if options.platform_id is not None and not _PLATFORM_ID.fullmatch(options.platform_id):
        raise ValueError("the platform id must be lower-case letters and digits")
    client = docker.from_env(timeout=_BUILD_TIMEOUT_SECONDS)
    try:
        build = _Build(client, label, commit, space_id, options, log)
        if plan.config.sdk == "docker":
            image_id = build.build_user_dockerfile(source, build_args, build_secrets)
        elif plan.config.sdk in ("gradio", "streamlit"):
            image_id = build.build_sdk_template(plan, source, build_args, build_secrets)
        else:
            raise ValueError(f"a {plan.config.sdk} space has no image")
    finally:
        client.close()
    return Artifact(kind="image", ref=image_id, commit=commit)


def image_tag(label: str, commit: str, platform_id: str | None = None) -> str:
    return f"{image_repository(label, platform_id)}:{commit[:12]}"


def image_repository(label: str, platform_id: str | None = None) -> str:
    """`spacehub/<label>`, or `spacehub/<platform id>/<label>` for one platform among several."""
    return f"spacehub/{platform_id}/{label}" if platform_id else f"spacehub/{label}"


def cache_repository(label: str, platform_id: str | None = None) -> str:
    """Where a space's build-only images live: tags `cache` and `parent-<n>`, one of each."""
    return f"spacehub-build/{platform_id}/{label}" if platform_id else f"spacehub-build/{label}"


def release_image_filters(space_id: str | None, platform_id: str) -> dict[str, list[str]]:
    labels = [f"spacehub.platform={platform_id}"]
    if space_id is not None:
        labels.append(f"spacehub.space={space_id}")
    return {"label": labels}


def prune_images(space_id: str, label: str, platform_id: str, keep: set[str]) -> list[str]:
    """Untag the space's release images whose commit is not in `keep`; return the tags removed.

    An image a container still uses is refused by the engine (no force) and stays; the build
    cache (one `cache` and one `parent-<n>` tag per space) is not touched.
    """
    repository = image_repository(label, platform_id)
    kept = {commit[:12] for commit in keep}
    removed = []
    client = docker.from_env(timeout=_PRUNE_TIMEOUT_SECONDS)
    try:
        for image in client.images.list(filters=release_image_filters(space_id, platform_id)):
            for tag in image.tags:
                name, _, commit = tag.rpartition(":")
                if name != repository or commit in kept:
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
    client = docker.from_env(timeout=_PRUNE_TIMEOUT_SECONDS)
    try:
        images = client.images.list(filters=release_image_filters(None, platform_id))
    finally:
        client.close()
    prefix = f"spacehub/{platform_id}/"
    return sum(1 for image in images for tag in image.tags if tag.startswith(prefix))


class _Build:
    """One build: the Docker client, names and labels shared by its steps."""

    def __init__(
        self,
        client: docker.DockerClient,
        label: str,
        commit: str,
        space_id: str,
        options: ImageBuildOptions,
        log: Log,
    ) -> None:
        self.client = client
        self.label = label
        self.commit = commit
        self.options = options
        self.log = log
        self.labels = {"spacehub.space": space_id, "spacehub.commit": commit}
        self.platform_labels = (
            {"spacehub.platform": options.platform_id} if options.platform_id else {}
        )
        self.labels.update(self.platform_labels)
        self.tag = image_tag(label, commit, options.platform_id)
        self.cache_repository = cache_repository(label, options.platform_id)
        self.tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)

    def build_sdk_template(
        self,
        plan: BuildPlan,
        source: Path,
        build_args: Mapping[str, str],
        build_secrets: Mapping[str, str],
    ) -> str:
        self._require_images([self.options.base_image])
        with tempfile.TemporaryDirectory(prefix="spacehub-build-") as tmp:
            context = Path(tmp)
            shutil.copytree(source, context / "app", ignore=shutil.ignore_patterns(".git"))
            self._write_dependency_settings(context / "spacehub-build")
            # Only values the requirement files name reach the build, so that other secrets
            # neither leak into a layer nor stop spaces with identical dependencies sharing them.
            named = set()
            for name in ("pre-requirements.txt", "requirements.txt"):
                if (source / name).is_file():
                    named |= referenced_names((source / name).read_text(errors="replace"))
            values = {**build_args, **build_secrets}
            used = {name: values[name] for name in sorted(named) if name in values}
            if used:
                _write_exports(context / "spacehub-secrets" / "env", used)
            dockerfile = render_dockerfile(
                plan, base_image=self.options.base_image, has_build_secrets=bool(used)
            )
            (context / "Dockerfile").write_text(dockerfile)
            return self._stream_build(path=context, tag=self.tag, labels=self.labels)

    def build_user_dockerfile(
        self, source: Path, build_args: Mapping[str, str], build_secrets: Mapping[str, str]
    ) -> str:
        path = source / "Dockerfile"
        try:
            dockerfile = read_user_dockerfile(path.read_text(), build_args)
        except (OSError, UnicodeDecodeError, ValueError) as error:
            raise BuildFailed(f"cannot read the Dockerfile: {error}") from None
        self._require_images(dockerfile.base_images)
        args = {name: value for name, value in build_args.items() if name in dockerfile.arg_names}
        env = self._build_env(_BUILD_CA)
        secrets = {
            mount.target: build_secrets.get(mount.id, "") for mount in dockerfile.secret_mounts
        }
        tag = self.tag
        if not env and not secrets:
            return self._stream_build(path=source, tag=tag, labels=self.labels, buildargs=args)
        return self._build_with_parents(source, dockerfile, env, secrets, args, tag)

    def _build_with_parents(
        self,
        source: Path,
        dockerfile: UserDockerfile,
        env: dict[str, str],
        secrets: dict[str, str],
        args: dict[str, str],
        tag: str,
    ) -> str:
        """Build on build-only parents (CA, index, secret files), then rebase off them.

        The built image keeps its own layers; `_rebase` swaps each parent for the real base
        image in the layer list, history and environment and loads the result under `tag`.
        The unclean image stays tagged `cache_repository(…):cache` as the next build's cache;
        the one it replaces, now untagged, is pruned.
        """
        parents: dict[str, str] = {}
        with tempfile.TemporaryDirectory(prefix="spacehub-build-") as tmp:
            for index, image in enumerate(dockerfile.base_images):
                context = Path(tmp) / f"parent-{index}"
                root = context / "root"
                root.mkdir(parents=True)
                if self.options.ca_bundle is not None:
                    _write_file(
                        root / _BUILD_CA.lstrip("/"), self.options.ca_bundle.read_bytes(), 0o644
                    )
                for target, value in secrets.items():
                    _write_file(root / target.lstrip("/"), value.encode(), 0o444)
                (context / "Dockerfile").write_text(render_build_base(image, env))
                parent_tag = f"{self.cache_repository}:parent-{index}"
                # No commit label: a parent that changes with each commit would make every
                # step above it miss the layer cache, dependency installs included.
                space_only = {"spacehub.space": self.labels["spacehub.space"]}
                space_only.update(self.platform_labels)
                self._stream_build(path=context, tag=parent_tag, labels=space_only)
                parents[image] = parent_tag
            rewritten = Path(tmp) / "Dockerfile"
            rewritten.write_text(rewrite_user_dockerfile(dockerfile, parents))
            built = self._stream_build(
                path=source,
                dockerfile=str(rewritten),
                tag=f"{self.cache_repository}:cache",
                labels=self.labels,
                buildargs=args,
            )
            self.log("Removing build-only settings from the image")
            clean = _rebase(self.client, built, parents, env, tag, Path(tmp))
        space = {"spacehub.space": self.labels["spacehub.space"], **self.platform_labels}
        self.client.images.prune(
            filters={"dangling": True, "label": [f"{key}={value}" for key, value in space.items()]}
        )
        return clean

    def _build_env(self, ca_path: str) -> dict[str, str]:
        env = {}
        if self.options.ca_bundle is not None:
            for name in ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
                env[name] = ca_path
        if self.options.pip_index_url is not None:
            env["PIP_INDEX_URL"] = env["UV_DEFAULT_INDEX"] = self.options.pip_index_url
        return env

    def _write_dependency_settings(self, directory: Path) -> None:
        directory.mkdir()
        if self.options.ca_bundle is not None:
            _write_file(directory / "ca.crt", self.options.ca_bundle.read_bytes(), 0o644)
        _write_exports(directory / "env", self._build_env(_SDK_CA))

    def _require_images(self, images: Iterator[str] | tuple[str, ...] | list[str]) -> None:
        for image in images:
            try:
                self.client.images.get(image)
                continue
            except ImageNotFound:
                pass
            self.log(f"Pulling {image}")
            try:
                self.client.images.pull(check_image_name(image))
            except (DockerException, ValueError) as error:
                hint = (
                    "run `spacehub base-image` to build it offline"
                    if image == self.options.base_image
                    else f"`docker load` it, or `docker tag` a local image as {image}"
                )
                message = (
                    f"base image {image} is neither present locally nor pullable ({error}); "
                    f"to provide it, {hint}"
                )
                self.log(message)
                raise BuildFailed(message, message) from None

    def _stream_build(self, *, path: Path, tag: str, labels: dict[str, str], **kwargs: Any) -> str:
        """Run one classic-builder build, sending each output line to the log as it arrives."""
        image_id = None
        pending = ""
        try:
            for chunk in self.client.api.build(
                path=str(path),
                tag=tag,
                labels=labels,
                nocache=self.options.no_cache,
                rm=True,
                forcerm=True,
                pull=False,
                decode=True,
                **kwargs,
            ):
                if "stream" in chunk:
                    pending += chunk["stream"]
                    *lines, pending = pending.split("\n")
                    for line in lines:
                        self._emit(line)
                if "aux" in chunk and "ID" in chunk["aux"]:
                    image_id = chunk["aux"]["ID"]
                if "error" in chunk:
                    self._emit(pending)
                    self._emit(chunk["error"].rstrip())
                    raise BuildFailed(f"build failed: {chunk['error'].strip()}", self.log_tail)
        except APIError as error:
            self._emit(str(error.explanation or error))
            raise BuildFailed(
                f"build failed: {error.explanation or error}", self.log_tail
            ) from None
        self._emit(pending)
        if image_id is None:
            image_id = self.client.images.get(tag).id
        return image_id

    def _emit(self, line: str) -> None:
        if line:
            self.tail.append(line)
            self.log(line)

    @property
    def log_tail(self) -> str:
        return "\n".join(self.tail)


def _write_exports(path: Path, values: Mapping[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"export {name}={shlex.quote(value)}" for name, value in sorted(values.items())]
    _write_file(path, "".join(line + "\n" for line in lines).encode(), 0o644)


def _write_file(path: Path, content: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    path.chmod(mode)


def _rebase(
    client: docker.DockerClient,
    built: str,
    parents: Mapping[str, str],
    env: Mapping[str, str],
    tag: str,
    workdir: Path,
) -> str:
    """Load `built` again as `tag` with its build-only parent's layer, history and ENV removed.

    Only layers whose place in the new chain the daemon lacks are sent: a code-only push
    re-sends its last layers, not the dependencies the previous rebase already loaded.
    """
    diff_ids = client.images.get(built).attrs["RootFS"]["Layers"]
    for image, parent in parents.items():
        parent_layers = client.images.get(parent).attrs["RootFS"]["Layers"]
        base = client.images.get(image).attrs
        if diff_ids[: len(parent_layers)] == parent_layers:
            break
    else:
        # The last stage starts from no parent (FROM scratch): nothing of ours is in it.
        client.images.get(built).tag(*tag.rsplit(":", 1))
        return built
    clean = base["RootFS"]["Layers"] + diff_ids[len(parent_layers) :]
    known = _known_chains(client, built, base["RootFS"]["Layers"])
    missing = {
        diff_id
        for diff_id, chain in zip(clean, _chain_ids(clean), strict=True)
        if chain not in known
    }
    config, layers = _save_image(client, built, workdir / "layers", missing)
    config["rootfs"]["diff_ids"] = clean
    base_history = len(client.api.history(image))
    parent_history = len(client.api.history(parent))
    config["history"] = config["history"][:base_history] + config["history"][parent_history:]
    config["config"]["Env"] = _restore_env(config["config"].get("Env") or [], env, base)
    for leftover in ("container", "container_config"):
        config.pop(leftover, None)
    config["config"]["Image"] = ""
    new_config = json.dumps(config, separators=(",", ":")).encode()
    archive = workdir / "image.tar"
    with tarfile.open(archive, "w") as tar:
        _add_bytes(tar, "config.json", new_config)
        # The daemon opens a layer's file only when it lacks the chain up to that layer.
        names = [f"{diff_id.split(':')[1]}/layer.tar" for diff_id in clean]
        new_manifest = [{"Config": "config.json", "RepoTags": [tag], "Layers": names}]
        _add_bytes(tar, "manifest.json", json.dumps(new_manifest).encode())
        for diff_id, path in layers.items():
            tar.add(path, arcname=f"{diff_id.split(':')[1]}/layer.tar")
    with archive.open("rb") as stream:
        client.images.load(stream)
    return "sha256:" + hashlib.sha256(new_config).hexdigest()


def _known_chains(client: docker.DockerClient, built: str, base_layers: list[str]) -> set[str]:
    """Chain ids the daemon surely holds: the base's, and those of the space's images."""
    space = client.images.get(built).labels.get("spacehub.space", "")
    known = set(_chain_ids(base_layers))
    for image in client.images.list(filters={"label": f"spacehub.space={space}"}):
        known.update(_chain_ids(image.attrs["RootFS"]["Layers"]))
    return known


def _chain_ids(diff_ids: list[str]) -> list[str]:
    """The layer store's chain id of each prefix of `diff_ids` (the OCI image spec's ChainID)."""
    chains: list[str] = []
    for diff_id in diff_ids:
        if chains:
            diff_id = "sha256:" + hashlib.sha256(f"{chains[-1]} {diff_id}".encode()).hexdigest()
        chains.append(diff_id)
    return chains


def _restore_env(final: list[str], injected: Mapping[str, str], base: dict[str, Any]) -> list[str]:
    base_env = {entry.partition("=")[0]: entry for entry in base["Config"].get("Env") or []}
    kept = [
        entry for entry in final if injected.get(entry.partition("=")[0]) != entry.partition("=")[2]
    ]
    present = {entry.partition("=")[0] for entry in kept}
    return kept + [base_env[name] for name in injected if name in base_env and name not in present]


def _save_image(
    client: docker.DockerClient, image: str, directory: Path, keep: set[str]
) -> tuple[dict[str, Any], dict[str, Path]]:
    """Stream `docker save`: the image's config, and the file of each layer whose diff id is in
    `keep` (every layer must be hashed to learn its diff id; the others are dropped at once)."""
    directory.mkdir()
    configs: dict[str, bytes] = {}
    layers: dict[str, Path] = {}
    manifest: list[dict[str, Any]] = []
    stream = io.BufferedReader(_ChunkReader(client.api.get_image(image)), 1 << 20)
    with tarfile.open(fileobj=stream, mode="r|", bufsize=1 << 20) as tar:
        for member in tar:
            if member.name.endswith("/layer.tar") and member.isfile():
                diff_id, path = _write_hashed(tar.extractfile(member), directory)
                if diff_id in keep:
                    layers[diff_id] = path
                else:
                    path.unlink()
            elif member.name == "manifest.json":
                manifest = json.loads(_read(tar, member))
            elif member.isfile() and member.name.endswith(".json") and "/" not in member.name:
                configs[member.name] = _read(tar, member)
    return json.loads(configs[manifest[0]["Config"]]), layers


def _write_hashed(source: io.BufferedReader | None, directory: Path) -> tuple[str, Path]:
    """Copy a layer tar to `directory`; return its sha256 (the layer's diff id) and the copy."""
    assert source is not None
    digest = hashlib.sha256()
    with tempfile.NamedTemporaryFile(dir=directory, delete=False) as out:
        while block := source.read(1 << 20):
            digest.update(block)
            out.write(block)
    return "sha256:" + digest.hexdigest(), Path(out.name)


def _read(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    handle = tar.extractfile(member)
    assert handle is not None
    return handle.read()


def _add_bytes(tar: tarfile.TarFile, name: str, content: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(content)
    tar.addfile(info, io.BytesIO(content))


class _ChunkReader(io.RawIOBase):
    """A file object over the chunks the SDK yields for `docker save`."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        while not self._buffer:
            try:
                self._buffer = next(self._chunks)
            except StopIteration:
                return 0
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size

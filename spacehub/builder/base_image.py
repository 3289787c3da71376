"""Provide the base image offline: an equivalent of python:3.11-slim made with debootstrap."""

import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from spacehub.builder.dockerfile import check_image_name

Log = Callable[[str], None]

SUITE = "bookworm"
PACKAGES = ("python3", "python3-venv", "python3-pip", "ca-certificates")
# What the official image's config sets and user Dockerfiles rely on.
IMAGE_CHANGES = (
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    'CMD ["python3"]',
)
_DEBOOTSTRAP_TIMEOUT = 1800
_DOCKER_TIMEOUT = 600


def ensure_base_image(name: str, log: Log) -> None:
    """Make `name` available locally: present, else pulled, else built with debootstrap."""
    check_image_name(name)
    if _docker(["image", "inspect", name], timeout=60).returncode == 0:
        log(f"{name} is present")
        return
    log(f"Pulling {name}")
    pulled = _docker(["pull", name], timeout=_DOCKER_TIMEOUT)
    if pulled.returncode == 0:
        log(f"{name} pulled")
        return
    log(f"{name} cannot be pulled ({pulled.stderr.strip()}); building it with debootstrap")
    build_base_image(name, log)


def build_base_image(name: str, log: Log) -> None:
    """debootstrap a minimal Debian with Python, adapt it, and `docker import` it as `name`."""
    if shutil.which("debootstrap") is None:
        raise RuntimeError("debootstrap is not installed: apt-get install debootstrap")
    with tempfile.TemporaryDirectory(prefix="spacehub-base-") as tmp:
        root = Path(tmp) / "root"
        command = [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(PACKAGES)}",
            SUITE,
            str(root),
        ]
        log(" ".join(command))
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=_DEBOOTSTRAP_TIMEOUT, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"debootstrap failed: {done.stderr.strip()[-2000:]}")
        adapt_root(root)
        import_root(root, name, log)


def adapt_root(root: Path) -> None:
    """Make the tree behave like python:3.11-slim for a user's Dockerfile."""
    # pip in the official image installs system-wide: no PEP 668 EXTERNALLY-MANAGED refusal.
    for marker in root.glob("usr/lib/python3*/EXTERNALLY-MANAGED"):
        marker.unlink()
    local_bin = root / "usr/local/bin"
    for link, target in (("python", "/usr/bin/python3"), ("pip", "/usr/bin/pip3")):
        if not (local_bin / link).exists():
            (local_bin / link).symlink_to(target)
    for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for entry in (root / cache).glob("*"):
            if entry.is_file():
                entry.unlink()


def import_root(root: Path, name: str, log: Log) -> None:
    command = ["docker", "import"]
    for change in IMAGE_CHANGES:
        command += ["--change", change]
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


def _docker(arguments: list[str], *, timeout: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *arguments], capture_output=True, text=True, timeout=timeout, check=False
    )

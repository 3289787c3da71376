"""Pushes the size of real apps' repositories, through the public port, served byte for byte.

The first slice hung on every push over about 0.5 MB: the git bridge lost parts of the pack.
"""

import hashlib
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import Platform, git, make_checkout, push, start_platform, stop_cleanly

MB = 1024 * 1024
# What Debian's git-lfs package writes into /etc/gitconfig for every user.
DEBIAN_LFS_SECTION = """\
[filter "lfs"]
\tclean = git-lfs clean -- %f
\tsmudge = git-lfs smudge -- %f
\tprocess = git-lfs filter-process
\trequired = true
"""


def random_file(path: Path, size: int) -> str:
    """Write `size` incompressible bytes to `path`; return their sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with path.open("wb") as out:
        for offset in range(0, size, MB):
            chunk = os.urandom(min(MB, size - offset))
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def static_checkout(directory: Path, binaries: dict[str, int]) -> dict[str, str]:
    """A static site with incompressible binaries of the given sizes; returns their sha256s."""
    make_checkout(directory, {"README.md": "---\nsdk: static\n---\n", "index.html": "<p>big</p>"})
    sums = {name: random_file(directory / name, size) for name, size in binaries.items()}
    git("add", "-A", cwd=directory)
    git("commit", "--quiet", "-m", "binaries", cwd=directory)
    return sums


def served_sha256(platform: Platform, space_id: str, name: str) -> str:
    digest = hashlib.sha256()
    with httpx.stream("GET", f"{platform.apps_url}/apps/{space_id}/{name}", timeout=60) as answer:
        assert answer.status_code == 200, answer.read()[:300]
        for chunk in answer.iter_bytes():
            digest.update(chunk)
    return digest.hexdigest()


@pytest.mark.parametrize("size_mb", [1, 20, 150])
def test_push_of_a_large_binary_is_served_and_cloned_byte_for_byte(
    shared_platform: Platform, tmp_path: Path, size_mb: int
):
    space_id = shared_platform.create_space(f"big-{size_mb}")
    name = f"weights {size_mb} MB.bin"
    sums = static_checkout(tmp_path / "site", {name: size_mb * MB})

    started = time.monotonic()
    pushed = push(shared_platform, tmp_path / "site", space_id, "--force")
    took = time.monotonic() - started

    assert pushed.returncode == 0, pushed.stderr
    print(f"push of {size_mb} MB through the proxy: {took:.1f} s")
    shared_platform.wait_stage(space_id, {"RUNNING"}, timeout=120)
    assert served_sha256(shared_platform, space_id, name) == sums[name]
    cloned = tmp_path / "clone"
    git("clone", "--quiet", shared_platform.git_url(space_id), str(cloned))
    assert hashlib.sha256((cloned / name).read_bytes()).hexdigest() == sums[name]


def test_concurrent_large_pushes_all_land(shared_platform: Platform, tmp_path: Path):
    """Several multi-MB pushes at once: each arrives whole (no pack with holes)."""
    spaces = [shared_platform.create_space(f"parallel-{index}") for index in range(4)]
    sums = [
        static_checkout(tmp_path / f"site-{index}", {"data.bin": 8 * MB})
        for index in range(len(spaces))
    ]
    with ThreadPoolExecutor(len(spaces)) as pool:
        checkouts = [tmp_path / f"site-{index}" for index in range(len(spaces))]
        results = list(
            pool.map(
                lambda site, space_id: push(shared_platform, site, space_id, "--force"),
                checkouts,
                spaces,
            )
        )
    assert [result.returncode for result in results] == [0] * len(spaces), [
        result.stderr for result in results
    ]
    for space_id, expected in zip(spaces, sums, strict=True):
        shared_platform.wait_stage(space_id, {"RUNNING"}, timeout=120)
        assert served_sha256(shared_platform, space_id, "data.bin") == expected["data.bin"]


def test_builds_ignore_the_hosts_git_config(tmp_path: Path):
    """Debian's git-lfs writes a required smudge filter into /etc/gitconfig: builds ignore it."""
    system_config = tmp_path / "gitconfig"
    system_config.write_text(DEBIAN_LFS_SECTION + "[core]\n\thooksPath = /nonexistent\n")
    running = start_platform(tmp_path / "data", extra_env={"GIT_CONFIG_SYSTEM": str(system_config)})
    try:
        space_id = running.create_space("host-config")
        checkout = tmp_path / "site"
        make_checkout(
            checkout,
            {
                "README.md": "---\nsdk: static\n---\n",
                ".gitattributes": "*.bin filter=lfs diff=lfs merge=lfs -text\n",
                "index.html": "<p>hello</p>",
                "data.bin": "not a pointer, committed without LFS\n",
            },
        )
        pushed = push(running, checkout, space_id, "--force")
        assert pushed.returncode == 0, pushed.stderr

        runtime = running.wait_stage(space_id, {"RUNNING", "BUILD_ERROR"}, timeout=60)
        assert runtime["stage"] == "RUNNING", runtime
        answer = httpx.get(f"{running.apps_url}/apps/{space_id}/data.bin", timeout=10)
        assert answer.text == "not a pointer, committed without LFS\n"
    finally:
        stop_cleanly(running)

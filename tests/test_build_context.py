"""A space's build context is kept between builds: unchanged files stay untouched, so BuildKit
sends only what a push changed."""

import os
import re
import secrets
import shutil
import time
from pathlib import Path

import docker
import pytest

from spacehub.builder.build_context import mirror, node_id
from spacehub.builder.image import ImageBuildOptions, build_image
from spacehub.builder.limits import BuildLimits
from spacehub.builder.plan import plan_build
from tests.conftest import EXAMPLES

MODEL = "modèle de référence 🤗.bin"


def export(source: Path, destination: Path) -> Path:
    """What the worker does for each build: a new directory, every file with a new mtime."""
    return shutil.copytree(source, destination, copy_function=shutil.copy)


def test_mirror_keeps_unchanged_files_and_follows_every_change(tmp_path: Path) -> None:
    first = tmp_path / "first"
    (first / "data" / "sous dossier").mkdir(parents=True)
    (first / "app.py").write_text("print('bonjour')\n")
    (first / "data" / MODEL).write_bytes(secrets.token_bytes(3 * 1024 * 1024))
    (first / "data" / "sous dossier" / "gone.txt").write_text("à supprimer\n")
    (first / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (first / "run.sh").chmod(0o755)
    os.symlink("app.py", first / "link.py")
    (first / "data").chmod(0o750)
    (first / ".git").mkdir()
    (first / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    target = tmp_path / "kept"
    mirror(first, target, ignore=lambda name: name == ".git")
    model_mtime = (target / "data" / MODEL).stat().st_mtime_ns
    app_mtime = (target / "app.py").stat().st_mtime_ns
    assert not (target / ".git").exists()
    assert os.readlink(target / "link.py") == "app.py"
    assert (target / "run.sh").stat().st_mode & 0o111
    assert (target / "data").stat().st_mode & 0o777 == 0o750

    time.sleep(0.01)
    second = export(first, tmp_path / "second")
    (second / "app.py").write_text("print('hello')\n")  # same size, other bytes
    shutil.rmtree(second / "data" / "sous dossier")
    (second / "run.sh").chmod(0o644)
    (second / "link.py").unlink()
    os.symlink("run.sh", second / "link.py")
    (second / "nouveau fichier.txt").write_text("neu\n")
    mirror(second, target, ignore=lambda name: name == ".git")

    assert (target / "data" / MODEL).stat().st_mtime_ns == model_mtime  # not sent again
    assert (target / "data" / MODEL).read_bytes() == (first / "data" / MODEL).read_bytes()
    assert (target / "app.py").read_text() == "print('hello')\n"
    assert (target / "app.py").stat().st_mtime_ns != app_mtime
    assert not (target / "data" / "sous dossier").exists()
    assert not (target / "run.sh").stat().st_mode & 0o111
    assert os.readlink(target / "link.py") == "run.sh"
    assert (target / "nouveau fichier.txt").read_text() == "neu\n"
    names = sorted(path.relative_to(target).as_posix() for path in target.rglob("*"))
    assert names == sorted(
        path.relative_to(second).as_posix()
        for path in second.rglob("*")
        if ".git" not in path.parts
    )


def test_node_id_is_made_once(tmp_path: Path) -> None:
    value = node_id(tmp_path / "contexts")
    assert re.fullmatch(r"[0-9a-f]{64}", value)
    assert node_id(tmp_path / "contexts") == value


@pytest.mark.docker
def test_a_code_only_rebuild_sends_only_the_changed_file(tmp_path: Path) -> None:
    """A Docker space with an 8 MB file: its second build, from a new export, sends kilobytes."""
    source = shutil.copytree(EXAMPLES / "docker-fastapi", tmp_path / "space")
    (source / MODEL).write_bytes(secrets.token_bytes(8 * 1024 * 1024))
    options = ImageBuildOptions(
        "python:3.11-slim",
        Path("/etc/ssl/certs/ca-certificates.crt"),
        None,
        platform_id=f"ctx{secrets.token_hex(4)}",
        context_cache_dir=tmp_path / "contexts",
    )
    sent = []
    try:
        for round_ in range(2):
            (source / "app.py").write_text(
                (EXAMPLES / "docker-fastapi" / "app.py").read_text() + f"\n# push {round_}\n"
            )
            lines: list[str] = []
            build_image(
                plan_build(source, None),
                export(source, tmp_path / "work" / str(round_)),
                space_id="ctx/space",
                label="ctx-space",
                commit=secrets.token_hex(20),
                build_args={},
                build_secrets={},
                options=options,
                log=lines.append,
                limits=BuildLimits(),
            )
            transfers = [line for line in lines if "transferring context:" in line]
            sent.append(transfers[-1] if transfers else "\n".join(lines))
    finally:
        client = docker.from_env()
        ours = {"label": f"spacehub.platform={options.platform_id}"}
        for image in client.images.list(filters=ours):
            client.images.remove(image.id, force=True)
        client.close()
    assert re.search(r"transferring context: [0-9.]+MB", sent[0]), sent
    assert re.search(r"transferring context: [0-9.]+k?B ", sent[1] + " "), sent

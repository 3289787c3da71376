"""What the data dir holds, in bytes, and how many releases and images the platform keeps."""

import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, text

from spacehub.platform.context import Platform

_SQLITE_SUFFIXES = ("", "-wal", "-shm", "-journal")


@dataclass(frozen=True)
class DiskUsage:
    repos: int
    lfs: int
    releases: int
    logs: int
    database: int | None  # None: a database server that does not say
    release_count: int
    image_count: int | None  # None: no Docker engine

    @property
    def total(self) -> int:
        parts = (self.repos, self.lfs, self.releases, self.logs, self.database or 0)
        return sum(parts)


def measure_disk(platform: Platform) -> DiskUsage:
    """Walk the data dir (blocking: call it off the event loop)."""
    settings = platform.settings
    image_count = None
    if platform.runtime is not None:
        from spacehub.builder.image import count_release_images

        image_count = count_release_images(platform.platform_id)
    return DiskUsage(
        repos=directory_bytes(settings.repos_dir),
        lfs=directory_bytes(settings.data_dir / "lfs"),
        releases=directory_bytes(settings.releases_dir),
        logs=directory_bytes(settings.logs_dir),
        database=database_bytes(platform.engine),
        release_count=count_releases(settings.releases_dir),
        image_count=image_count,
    )


def directory_bytes(root: Path) -> int:
    """Size of the files under `root`, each hard-linked file once (git and uv link files)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for directory, _, files in os.walk(root):
        for name in files:
            try:
                stat = os.lstat(os.path.join(directory, name))
            except FileNotFoundError:  # removed while we walked
                continue
            if (stat.st_dev, stat.st_ino) not in seen:
                seen.add((stat.st_dev, stat.st_ino))
                total += stat.st_size
    return total


def count_releases(releases_dir: Path) -> int:
    """Static releases on disk: one directory per kept commit of each space."""
    if not releases_dir.is_dir():
        return 0
    return sum(
        1
        for space in releases_dir.iterdir()
        if space.is_dir()
        for release in space.iterdir()
        if release.is_dir() and not release.name.startswith(".")
    )


def database_bytes(engine: Engine) -> int | None:
    if engine.dialect.name == "sqlite":
        path = engine.url.database
        if not path or path == ":memory:":
            return None
        return sum(
            Path(path + suffix).stat().st_size
            for suffix in _SQLITE_SUFFIXES
            if Path(path + suffix).exists()
        )
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            return connection.execute(text("SELECT pg_database_size(current_database())")).scalar()
    return None

"""Read a checkout and decide what to build: the SDK, its configuration, its dependency files."""

import re
from dataclasses import dataclass
from pathlib import Path

from spacehub.core.errors import InvalidConfig, NoAppFile
from spacehub.core.space_config import SpaceConfig, parse_space_config

_DEBIAN_PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.\-]{0,100}(=[A-Za-z0-9.+~:\-]{1,100})?")


@dataclass(frozen=True)
class BuildPlan:
    config: SpaceConfig
    has_requirements: bool
    has_pre_requirements: bool
    debian_packages: tuple[str, ...]


def plan_build(source: Path, default_sdk: str | None) -> BuildPlan:
    """Raise InvalidConfig (CONFIG_ERROR) or NoAppFile (NO_APP_FILE) when nothing can be built."""
    readme = _read_text(source / "README.md")
    config = parse_space_config(readme, default_sdk)
    app_file = config.effective_app_file
    if not _is_regular_file_inside(source, app_file):
        raise NoAppFile(
            f"{app_file} is not in the repository: add it, or set app_file in README.md"
        )
    return BuildPlan(
        config=config,
        has_requirements=(source / "requirements.txt").is_file(),
        has_pre_requirements=(source / "pre-requirements.txt").is_file(),
        debian_packages=_read_debian_packages(source / "packages.txt"),
    )


def _read_text(path: Path) -> str | None:
    if not path.is_file():
        return None
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InvalidConfig(f"{path.name} is not valid UTF-8") from None


def _is_regular_file_inside(root: Path, relative: str) -> bool:
    path = (root / relative).resolve()
    return path.is_relative_to(root.resolve()) and path.is_file()


def _read_debian_packages(path: Path) -> tuple[str, ...]:
    text = _read_text(path)
    if text is None:
        return ()
    packages = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        for name in line.split():
            if not _DEBIAN_PACKAGE.fullmatch(name):
                raise InvalidConfig(
                    f"packages.txt line {number}: {name!r} is not a Debian package name"
                )
            packages.append(name)
    return tuple(sorted(set(packages)))

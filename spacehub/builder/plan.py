"""Read a checkout and decide what to build: the SDK, its configuration, its dependency files."""

import re
from dataclasses import dataclass
from pathlib import Path

from spacehub.core.errors import InvalidConfig, NoAppFile
from spacehub.core.space_config import SpaceConfig, app_file_line, read_space_config

_DEBIAN_PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.\-]{0,100}(=[A-Za-z0-9.+~:\-]{1,100})?")


@dataclass(frozen=True)
class BuildPlan:
    config: SpaceConfig
    has_requirements: bool
    has_pre_requirements: bool
    debian_packages: tuple[str, ...]
    warnings: tuple[str, ...] = ()  # for the build log: front matter keys ignored


def plan_build(source: Path, default_sdk: str | None) -> BuildPlan:
    """Raise InvalidConfig (CONFIG_ERROR) or NoAppFile (NO_APP_FILE) when nothing can be built."""
    readme = _read_text(source / "README.md")
    config, warnings = read_space_config(readme, default_sdk)
    _check_app_file(source, config, readme)
    return BuildPlan(
        config=config,
        has_requirements=(source / "requirements.txt").is_file(),
        has_pre_requirements=(source / "pre-requirements.txt").is_file(),
        debian_packages=_read_debian_packages(source / "packages.txt"),
        warnings=tuple(warnings),
    )


def _check_app_file(source: Path, config: SpaceConfig, readme: str | None) -> None:
    """NoAppFile when it is missing; InvalidConfig when app_file leads out or to no file."""
    app_file = config.effective_app_file
    path = source / app_file
    try:
        missing = not path.exists() and not path.is_symlink()
    except OSError:  # a name longer than the file system takes
        missing = True
    if missing:
        raise NoAppFile(
            f"{app_file} is not in the repository: add it, or set app_file in README.md"
        )
    problem = _file_problem(source, app_file)
    if problem is None:
        return
    if config.app_file is None or config.sdk == "docker":  # the default name, not a choice
        raise NoAppFile(f"{app_file} is not a file: add one, or set app_file in README.md")
    raise InvalidConfig(
        f"app_file: {app_file!r} cannot be the app file: {problem}", app_file_line(readme)
    )


def _read_text(path: Path) -> str | None:
    if not path.is_file():
        return None
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InvalidConfig(f"{path.name} is not valid UTF-8") from None


def _file_problem(root: Path, relative: str) -> str | None:
    """Why `relative` is not a regular file inside `root` (links followed), or None."""
    try:
        path = (root / relative).resolve()
    except (OSError, RuntimeError):  # a symbolic link loop
        return "it is a symbolic link that leads nowhere"
    if not path.is_relative_to(root.resolve()):
        return "it leads outside the repository (a symbolic link)"
    if not path.is_file():
        return "it is not a regular file"
    return None


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

"""README.md front matter → a typed SpaceConfig, with errors that name the key and the line."""

import re
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from spacehub.core.errors import InvalidConfig

Sdk = Literal["gradio", "streamlit", "docker", "static"]
Color = Literal["red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"]
SDKS: tuple[str, ...] = ("gradio", "streamlit", "docker", "static")
DEFAULT_APP_FILE = {"gradio": "app.py", "streamlit": "app.py", "static": "index.html"}
_DURATION = re.compile(r"(\d+)\s*([smhd]?)")
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_VERSION = re.compile(r"[0-9][0-9A-Za-z.+\-]{0,30}")


# Limits on front matter, so that a README cannot make the platform expand, store or return a
# bomb. The Hub's parser refuses aliases too; it documents no length for any value.
MAX_FRONT_MATTER_BYTES = 64 * 1024
MAX_VALUE_CHARS = 8 * 1024
MAX_DEPTH = 20


class _FrontMatterLoader(yaml.SafeLoader):
    """A SafeLoader that refuses aliases, long scalars and deep nesting while composing.

    Aliases are refused rather than counted: one line of `*a` can stand for millions of nodes
    (the "billion laughs"). Depth is checked before PyYAML's recursive composer descends.
    """

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise _refusal("aliases (*name) are not allowed in front matter", event)
        if isinstance(event, yaml.ScalarEvent) and len(event.value) > MAX_VALUE_CHARS:
            raise _refusal(f"a value is longer than {MAX_VALUE_CHARS} characters", event)
        if self._depth >= MAX_DEPTH:
            raise _refusal(f"values are nested more than {MAX_DEPTH} levels deep", event)
        self._depth += 1
        try:
            return super().compose_node(parent, index)  # type: ignore[no-untyped-call]
        finally:
            self._depth -= 1


def _refusal(problem: str, event: yaml.Event) -> yaml.composer.ComposerError:
    return yaml.composer.ComposerError(None, None, problem, event.start_mark)


def _keep_as_written(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    return loader.construct_scalar(node)  # type: ignore[arg-type]


# YAML reads `python_version: 3.10` as the float 3.1 and `2024-05-01` as a date (which JSON
# cannot hold); keep such scalars as written.
_FrontMatterLoader.add_constructor("tag:yaml.org,2002:float", _keep_as_written)
_FrontMatterLoader.add_constructor("tag:yaml.org,2002:timestamp", _keep_as_written)


def _refuse_tag(loader: yaml.SafeLoader, node: yaml.Node) -> None:
    raise yaml.constructor.ConstructorError(
        None, None, f"!!{node.tag.rpartition(':')[2]} values are not allowed", node.start_mark
    )


def _bounded_int(loader: yaml.SafeLoader, node: yaml.Node) -> int:
    try:
        value = loader.construct_yaml_int(node)  # type: ignore[attr-defined]
    except ValueError:  # more digits than Python converts
        value = 2**63
    if not -(2**63) <= value < 2**63:
        raise yaml.constructor.ConstructorError(
            None, None, "an integer is out of range (64 bits)", node.start_mark
        )
    return value


# JSON (where card data is stored and returned) has no binary values or sets.
_FrontMatterLoader.add_constructor("tag:yaml.org,2002:binary", _refuse_tag)
_FrontMatterLoader.add_constructor("tag:yaml.org,2002:set", _refuse_tag)
_FrontMatterLoader.add_constructor("tag:yaml.org,2002:int", _bounded_int)


class SpaceConfig(BaseModel):
    """The keys of a space's README.md front matter, with the Hub's defaults."""

    model_config = ConfigDict(extra="allow", strict=True, populate_by_name=True, frozen=True)

    title: str | None = None
    emoji: str | None = None
    color_from: Color | None = Field(default=None, alias="colorFrom")
    color_to: Color | None = Field(default=None, alias="colorTo")
    sdk: Sdk
    sdk_version: str | None = None
    python_version: str = "3.11"
    app_file: str | None = None
    app_port: int = Field(default=7860, ge=1, le=65535)
    base_path: str = "/"
    startup_duration_timeout: str = "30m"
    short_description: str | None = Field(default=None, max_length=60)
    tags: list[str] = Field(default_factory=list)
    pinned: bool = False
    license: str | None = None
    suggested_hardware: str | None = None
    disable_embedding: bool = False
    custom_headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("sdk_version", "python_version")
    @classmethod
    def _plain_version(cls, value: str | None) -> str | None:
        if value is not None and not _VERSION.fullmatch(value):
            raise ValueError(f"{value!r} is not a version number")
        return value

    @field_validator("startup_duration_timeout")
    @classmethod
    def _duration(cls, value: str) -> str:
        if not _DURATION.fullmatch(value.strip()):
            raise ValueError(f"{value!r} is not a duration such as 30m, 1h or 90s")
        return value

    @field_validator("base_path")
    @classmethod
    def _absolute_path(cls, value: str) -> str:
        if not value.startswith("/") or ".." in value.split("/"):
            raise ValueError(f"{value!r} must be an absolute URL path")
        return value

    @property
    def startup_timeout_seconds(self) -> int:
        match = _DURATION.fullmatch(self.startup_duration_timeout.strip())
        assert match is not None
        return int(match.group(1)) * _DURATION_UNITS[match.group(2)]

    @property
    def effective_app_file(self) -> str:
        """The file whose absence means NO_APP_FILE: the app file, or a docker SDK's Dockerfile."""
        if self.sdk == "docker":
            return "Dockerfile"
        return self.app_file or DEFAULT_APP_FILE[self.sdk]

    @property
    def card_data(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, exclude_defaults=False)


def split_front_matter(readme: str) -> tuple[str, int] | None:
    """Return the YAML between the leading `---` lines and its first line number, or None."""
    lines = readme.splitlines()
    if not lines or lines[0].strip() != "---":
        return None
    for index, line in enumerate(lines[1:], start=1):
        if line.strip() == "---":
            return "\n".join(lines[1:index]), 2
    return None


def parse_space_config(readme: str | None, default_sdk: str | None = None) -> SpaceConfig:
    """Parse README.md's front matter; `default_sdk` (chosen at creation) fills a missing `sdk`."""
    found = split_front_matter(readme) if readme is not None else None
    if found is None:
        if default_sdk is None:
            raise InvalidConfig("README.md has no YAML front matter (a block between '---' lines)")
        return SpaceConfig.model_validate({"sdk": default_sdk})
    text, first_line = found
    size = len(text.encode())
    if size > MAX_FRONT_MATTER_BYTES:
        raise InvalidConfig(
            f"README.md front matter is {size} bytes; the limit is {MAX_FRONT_MATTER_BYTES}",
            first_line,
        )
    try:
        data = yaml.load(text, Loader=_FrontMatterLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + first_line if mark is not None else None
        problem = getattr(error, "problem", None) or str(error)
        raise InvalidConfig(f"invalid YAML in README.md front matter: {problem}", line) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InvalidConfig("README.md front matter must be a mapping of keys", first_line)
    if "sdk" not in data and default_sdk is not None:
        data = {**data, "sdk": default_sdk}
    try:
        return SpaceConfig.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "front matter"
        top_key = str(first["loc"][0]) if first["loc"] else ""
        message = first["msg"]
        if top_key == "sdk" and first["type"] != "missing":
            message = f"unknown sdk {data.get('sdk')!r}: use one of {', '.join(SDKS)}"
        raise InvalidConfig(f"{key}: {message}", _line_of_key(text, top_key, first_line)) from None


def _line_of_key(text: str, key: str, first_line: int) -> int | None:
    pattern = re.compile(rf"{re.escape(key)}\s*:")
    for offset, line in enumerate(text.splitlines()):
        if pattern.match(line):
            return first_line + offset
    return None

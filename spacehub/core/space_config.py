"""README.md front matter → a typed SpaceConfig, read as the Hub reads it.

Keys that do not apply to the space's sdk are ignored (`sdk_version: latest` on a docker space),
a key given no value takes its default, and keys this platform does not know are kept in the
card data and ignored: each of those is a warning, never an error. A value the platform uses
and cannot use is an InvalidConfig naming the key, its line and the reason.
"""

import re
import unicodedata
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from spacehub.core.errors import InvalidConfig

Sdk = Literal["gradio", "streamlit", "docker", "static"]
Color = Literal["red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"]
SDKS: tuple[str, ...] = ("gradio", "streamlit", "docker", "static")
DEFAULT_APP_FILE = {"gradio": "app.py", "streamlit": "app.py", "static": "index.html"}
_VERSION = re.compile(r"[0-9][0-9A-Za-z.+\-]{0,30}")
_PYTHON_VERSION = re.compile(r"3(\.[0-9]{1,3}){0,2}")
_DURATION_UNITS = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3600),
    **dict.fromkeys(("d", "day", "days"), 86400),
    **dict.fromkeys(("w", "week", "weeks"), 7 * 86400),
}
_DURATION_PART = re.compile(r"\s*([0-9]{1,15}(?:\.[0-9]{1,6})?)\s*([a-z]*)", re.IGNORECASE)
MAX_STARTUP_SECONDS = 30 * 86400
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}")
_HEADER_VALUE = re.compile(r"[\x20-\x7e]{0,4096}")
_BOOLEAN_WORDS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}

# Keys of the Hub's configuration reference (and of huggingface_hub's SpaceCardData) that this
# platform reads nowhere: kept in the card data without a warning.
DISPLAY_KEYS = frozenset(
    {
        "fullWidth", "header", "thumbnail", "models", "datasets", "suggested_storage",
        "duplicated_from", "language", "hf_oauth_authorized_org", "hf_oauth_scopes",
        "hf_oauth_expiration_minutes",
    }
)  # fmt: skip
# Keys that change how the Hub runs a space, which this platform does not do: a warning each.
UNSUPPORTED_KEYS = {
    "hf_oauth": "Sign-in with HF is not available here: the app gets no OAUTH_* variables",
    "preload_from_hub": "files are not preloaded from the Hub here: the app downloads them",
    "app_build_command": "static spaces are served as committed here: no build command runs",
}
# Keys the Hub ignores for an sdk (its reference: "used only if sdk is docker", and so on).
IGNORED_FOR_SDK = {
    "docker": ("sdk_version", "python_version", "app_file"),
    "static": ("sdk_version", "python_version", "app_port"),
    "gradio": ("app_port",),
    "streamlit": ("app_port",),
}


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
        if isinstance(event, yaml.ScalarEvent):
            if len(event.value) > MAX_VALUE_CHARS:
                raise _refusal(f"a value is longer than {MAX_VALUE_CHARS} characters", event)
            if not _is_utf8(event.value):  # "\ud800" escapes: no JSON answer could hold them
                raise _refusal("a value holds an escaped lone surrogate (not Unicode text)", event)
        if self._depth >= MAX_DEPTH:
            raise _refusal(f"values are nested more than {MAX_DEPTH} levels deep", event)
        self._depth += 1
        try:
            return super().compose_node(parent, index)  # type: ignore[no-untyped-call]
        finally:
            self._depth -= 1


def _refusal(problem: str, event: yaml.Event) -> yaml.composer.ComposerError:
    return yaml.composer.ComposerError(None, None, problem, event.start_mark)


def _is_utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _keep_as_written(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    return loader.construct_scalar(node)  # type: ignore[arg-type]


def _yaml_1_2_bool(loader: yaml.SafeLoader, node: yaml.Node) -> bool | str:
    """Only true/false are booleans, as for the Hub's YAML 1.2 parser: `title: Yes` is a title."""
    text = loader.construct_scalar(node)  # type: ignore[arg-type]
    return {"true": True, "false": False}.get(str(text).lower(), text)


# YAML reads `python_version: 3.10` as the float 3.1 and `2024-05-01` as a date (which JSON
# cannot hold); keep such scalars as written.
_FrontMatterLoader.add_constructor("tag:yaml.org,2002:float", _keep_as_written)
_FrontMatterLoader.add_constructor("tag:yaml.org,2002:timestamp", _keep_as_written)
_FrontMatterLoader.add_constructor("tag:yaml.org,2002:bool", _yaml_1_2_bool)


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


def app_file_problem(name: str, sdk: str) -> str | None:
    """Why `name` cannot be the app file of an `sdk` space, or None when it can.

    Refused is what is unsafe to hand to a command or a path: absolute paths, `..`, control
    characters, a leading `-` (read as an option). Unicode, spaces, quotes, brackets and leading
    digits or emoji are fine: the templates and the local runtime pass the name as one argument.
    """
    if not name:
        return "it is empty"
    if not _is_utf8(name):
        return "it is not Unicode text"
    if any(unicodedata.category(char) == "Cc" for char in name):
        return "it holds a control character (a newline, tab, escape or NUL)"
    if name.startswith("/"):
        return "it is an absolute path: give a path relative to the repository's root"
    if ".." in name.split("/"):
        return "it has a '..' component: give a path inside the repository"
    if name.startswith("-"):
        return "it starts with '-', which the command would read as an option"
    if sdk in ("gradio", "streamlit") and not name.endswith(".py"):
        return f"a {sdk} space runs a Python file: the name must end in .py"
    return None


def _as_text(value: Any) -> Any:
    """Numbers and booleans where the Hub takes a string (`sdk_version: 4`, `title: 2048`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return value


class SpaceConfig(BaseModel):
    """The front matter's values as the platform uses them, with the Hub's defaults.

    `card_data` is the front matter as written (what the Hub returns as `cardData`), ignored and
    unknown keys included; the fields are what that front matter means for this space's sdk.
    """

    model_config = ConfigDict(extra="ignore", strict=True, populate_by_name=True, frozen=True)

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
    short_description: str | None = None
    tags: list[str] = Field(default_factory=list)
    pinned: bool = False
    license: str | list[str] | None = None
    suggested_hardware: str | None = None
    disable_embedding: bool = False
    custom_headers: dict[str, str] = Field(default_factory=dict)

    _card_data: dict[str, Any] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _as_the_hub_reads_it(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        if not isinstance(data, dict):
            return handler(data)
        config = handler(effective_values(data))
        config._card_data = dict(data)
        return config

    @field_validator(
        "title", "emoji", "sdk_version", "python_version", "startup_duration_timeout",
        "short_description", "suggested_hardware", "license", mode="before",
    )  # fmt: skip
    @classmethod
    def _text(cls, value: Any) -> Any:
        return _as_text(value)

    @field_validator("tags", mode="before")
    @classmethod
    def _tags_as_text(cls, value: Any) -> Any:
        return [_as_text(tag) for tag in value] if isinstance(value, list) else value

    @field_validator("pinned", "disable_embedding", mode="before")
    @classmethod
    def _boolean(cls, value: Any) -> Any:
        if isinstance(value, str):
            return _BOOLEAN_WORDS.get(value.strip().lower(), value)
        return value

    @field_validator("app_port", mode="before")
    @classmethod
    def _port_number(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().isdigit():
            return int(value.strip())
        return value

    @field_validator("sdk_version")
    @classmethod
    def _plain_version(cls, value: str | None) -> str | None:
        if value is not None and not _VERSION.fullmatch(value):
            raise ValueError(f"{value!r} is not a version number")
        return value

    @field_validator("python_version")
    @classmethod
    def _python_version(cls, value: str) -> str:
        if not _PYTHON_VERSION.fullmatch(value.strip()):
            raise ValueError(f"{value!r} is not a Python version such as 3.10 or 3.12.4")
        return value.strip()

    @field_validator("app_file")
    @classmethod
    def _safe_app_file(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            problem = app_file_problem(value, info.data.get("sdk", ""))
            if problem is not None:
                raise ValueError(f"{value!r} cannot be the app file: {problem}")
        return value

    @field_validator("startup_duration_timeout")
    @classmethod
    def _duration(cls, value: str) -> str:
        seconds = duration_seconds(value)
        if seconds is None:
            raise ValueError(f"{value!r} is not a duration such as 30m, 1h, 1h30m or 90s")
        if seconds <= 0:
            raise ValueError(f"{value!r} is no time at all: give the app time to start")
        return value

    @field_validator("base_path")
    @classmethod
    def _absolute_path(cls, value: str) -> str:
        if not value.startswith("/") or ".." in value.split("/"):
            raise ValueError(f"{value!r} must be an absolute URL path")
        return value

    @field_validator("custom_headers")
    @classmethod
    def _header_lines(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not an HTTP header name")
            if not _HEADER_VALUE.fullmatch(text):
                raise ValueError(f"the value of {name} must be printable ASCII on one line")
        return value

    @property
    def startup_timeout_seconds(self) -> int:
        seconds = duration_seconds(self.startup_duration_timeout)
        assert seconds is not None
        return min(int(seconds), MAX_STARTUP_SECONDS)

    @property
    def effective_app_file(self) -> str:
        """The file whose absence means NO_APP_FILE: the app file, or a docker SDK's Dockerfile."""
        if self.sdk == "docker":
            return "Dockerfile"
        return self.app_file or DEFAULT_APP_FILE[self.sdk]

    @property
    def card_data(self) -> dict[str, Any]:
        """The front matter as written: what the Hub answers as a space's `cardData`."""
        if self._card_data:
            return dict(self._card_data)
        return self.model_dump(by_alias=True, exclude_none=True)


_FIELD_KEYS = frozenset(
    key
    for name, field in SpaceConfig.model_fields.items()
    for key in (name, field.alias)
    if key is not None
)


def effective_values(data: dict[Any, Any]) -> dict[str, Any]:
    """The keys of `data` the platform reads for its sdk: no unknown, ignored or empty ones."""
    sdk = data.get("sdk")
    ignored = IGNORED_FOR_SDK.get(sdk, ()) if isinstance(sdk, str) else ()
    return {
        key: value
        for key, value in data.items()
        if key in _FIELD_KEYS and key not in ignored and value is not None
    }


def duration_seconds(value: str) -> float | None:
    """Seconds in `30m`, `1h30m`, `1.5h`, `90s`, `90` or `2 hours`; None if it is no duration."""
    text = value.strip()
    if not text:
        return None
    if re.fullmatch(r"[0-9]{1,15}", text):
        return float(text)
    total = 0.0
    position = 0
    while position < len(text):
        part = _DURATION_PART.match(text, position)
        if part is None or part.end() == position:
            return None
        unit = _DURATION_UNITS.get(part.group(2).lower())
        if unit is None:
            return None
        total += float(part.group(1)) * unit
        position = part.end()
    return total


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
    return read_space_config(readme, default_sdk)[0]


def read_space_config(
    readme: str | None, default_sdk: str | None = None
) -> tuple[SpaceConfig, list[str]]:
    """The configuration and the warnings for the build log: keys ignored, unknown, unsupported."""
    found = split_front_matter(readme) if readme is not None else None
    if found is None:
        if default_sdk is None:
            raise InvalidConfig("README.md has no YAML front matter (a block between '---' lines)")
        return SpaceConfig.model_validate({"sdk": default_sdk}), []
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
    # JSON keys are strings: `1: x` or `null: x` would come back from the database renamed.
    data = {str(key) if not isinstance(key, str) else key: value for key, value in data.items()}
    if "sdk" not in data and default_sdk is not None:
        data = {**data, "sdk": default_sdk}
    try:
        config = SpaceConfig.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "front matter"
        top_key = str(first["loc"][0]) if first["loc"] else ""
        message = first["msg"].removeprefix("Value error, ")
        if top_key == "sdk" and first["type"] != "missing":
            message = f"unknown sdk {data.get('sdk')!r}: use one of {', '.join(SDKS)}"
        line = line_of_key(text, top_key, first_line)
        raise InvalidConfig(f"{key}: {message}", line) from None
    return config, _warnings(data, config, text, first_line)


def _warnings(data: dict[str, Any], config: SpaceConfig, text: str, first_line: int) -> list[str]:
    warnings = []
    for key, value in data.items():
        if key in _FIELD_KEYS:
            if key in IGNORED_FOR_SDK[config.sdk] and value is not None:
                reason = f"{key} does not apply to {config.sdk} spaces: ignored"
            elif key == "short_description" and len(config.short_description or "") > 60:
                reason = f"short_description is {len(value)} characters: the Hub's cards show 60"
            else:
                continue
        elif key in UNSUPPORTED_KEYS:
            if value in (None, False, [], ""):
                continue
            reason = f"{key}: {UNSUPPORTED_KEYS[key]}"
        elif key in DISPLAY_KEYS:
            continue
        else:
            reason = f"unknown key {key!r}: kept in the card data, ignored"
        line = line_of_key(text, key, first_line)
        warnings.append(f"README.md line {line}: {reason}" if line else f"README.md: {reason}")
    return warnings


def line_of_key(text: str, key: str, first_line: int = 2) -> int | None:
    """The README.md line where the top-level `key` of the front matter `text` is written."""
    pattern = re.compile(rf"""(["']?){re.escape(key)}\1\s*:""")
    for offset, line in enumerate(text.splitlines()):
        if pattern.match(line):
            return first_line + offset
    return None


def app_file_line(readme: str | None) -> int | None:
    """The README.md line of `app_file`, for errors found once the checkout is looked at."""
    found = split_front_matter(readme) if readme is not None else None
    return line_of_key(found[0], "app_file", found[1]) if found else None

"""Dockerfiles as text: render the SDK templates strictly, and read or adapt a user's Dockerfile."""

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from spacehub.builder.plan import BuildPlan
from spacehub.core.space_config import app_file_problem

DEFAULT_SDK_VERSIONS = {"gradio": "6.31.0", "streamlit": "1.67.0"}
UV_VERSION = "0.13.9"
TEMPLATES = Path(str(files("spacehub") / "sdk_templates"))
# Installed with the SDK, as on the Hub: Gradio under SYSTEM=spaces starts the Spaces
# hot-reloader, which needs the `spaces` package (else every run log shows a traceback).
SDK_COMPANIONS = {"gradio": ("spaces==0.51.3",), "streamlit": ()}

_IMAGE = re.compile(
    r"[a-z0-9][a-z0-9._/-]{0,200}(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[0-9a-f]{64})?"
)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_ARG = re.compile(r"(?i)ARG\s+([A-Za-z_][A-Za-z0-9_]*)(?:=(\S*))?")
_FROM = re.compile(r"(?i)FROM(\s+--platform=\S+)?\s+(\S+)(\s+AS\s+(\S+))?\s*")
_MOUNT = re.compile(r"\s--mount=(\S+)")
_RUN = re.compile(r"(?is)(\s*RUN)(\s.*)")
_HEREDOC_INSTRUCTION = re.compile(r"(?i)\s*(RUN|COPY|ADD)\s")
_HEREDOC = re.compile(r"<<-?\s*[\"']?[A-Za-z_]")
_DIRECTIVE = re.compile(r"#\s*([A-Za-z]+)\s*=\s*(\S+)")
_HEX_DIGEST = re.compile(r"[0-9a-f]{16,128}")
SECRETS_DIGEST_ARG = "SPACEHUB_SECRETS_DIGEST"
CACHE_NAMESPACE = "spacehub"
_CACHE_NAMESPACE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_ARG_PATH = re.compile(r"/[A-Za-z0-9_./-]{1,200}")
_MOUNT_SPEC = re.compile(r"[a-z]+=[A-Za-z0-9_./-]+(,[a-z]+=[A-Za-z0-9_./-]+)*")
_BRACED_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")

_environment = Environment(
    loader=FileSystemLoader(TEMPLATES),
    undefined=StrictUndefined,
    autoescape=False,  # noqa: S701 (Dockerfiles, not HTML; values are checked with fullmatch)
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
)


def check_image_name(image: str) -> str:
    """Return `image` if it is a plain image reference, else raise ValueError."""
    if not _IMAGE.fullmatch(image):
        raise ValueError(f"{image!r} is not an image reference")
    return image


def render_dockerfile(
    plan: BuildPlan,
    *,
    base_image: str,
    secrets_digest: str | None,
    cache_namespace: str = CACHE_NAMESPACE,
) -> str:
    """The Dockerfile for a gradio or streamlit space, identical for identical inputs.

    `secrets_digest` (see `rewrite_user_dockerfile`) is set when the requirements name secrets.
    `cache_namespace` names uv's and apt's cache mounts: every space shares the default's; a
    fresh one starts with empty caches (bench/build_bench.py's cold builds).
    """
    if not _CACHE_NAMESPACE.fullmatch(cache_namespace):
        raise ValueError(f"cache namespace {cache_namespace!r} is not a plain name")
    config = plan.config
    if config.sdk not in DEFAULT_SDK_VERSIONS:
        raise ValueError(f"the {config.sdk} sdk has no Dockerfile template")
    app_file = config.effective_app_file
    problem = app_file_problem(app_file, config.sdk)  # InvalidConfig before a build comes here
    if problem is not None:
        raise ValueError(f"app_file {app_file!r} cannot be used: {problem}")
    version = config.sdk_version or DEFAULT_SDK_VERSIONS[config.sdk]
    return _environment.get_template(f"{config.sdk}/Dockerfile").render(
        sdk=config.sdk,
        base_image=check_image_name(base_image),
        debian_packages=plan.debian_packages,
        has_pre_requirements=plan.has_pre_requirements,
        has_requirements=plan.has_requirements,
        sdk_requirement=" ".join((f"{config.sdk}=={version}", *SDK_COMPANIONS[config.sdk])),
        uv_version=UV_VERSION,
        app_file=app_file,
        secrets_digest=_checked_digest(secrets_digest),
        cache_namespace=cache_namespace,
    )


def referenced_names(text: str) -> set[str]:
    """Names used as `${NAME}` in a requirements file: the form pip and uv expand."""
    return set(_BRACED_VARIABLE.findall(text))


@dataclass(frozen=True)
class UserDockerfile:
    """A user's Dockerfile read the way BuildKit's built-in Dockerfile frontend reads it."""

    instructions: tuple[str, ...]  # one logical line each, continuations joined
    base_images: tuple[str, ...]  # images named in FROM that are not earlier stages
    arg_names: frozenset[str]
    secret_ids: tuple[str, ...]  # the ids `RUN --mount=type=secret,id=…` names, each once


def read_user_dockerfile(text: str, build_args: Mapping[str, str]) -> UserDockerfile:
    """Raise ValueError, saying why, for what the rewrite or the engine's frontend cannot build."""
    _check_directives(text)
    instructions = tuple(_join_continuations(text))
    global_args: dict[str, str] = {}
    arg_names: set[str] = set()
    stages: set[str] = set()
    images: list[str] = []
    secret_ids: list[str] = []
    for line in instructions:
        if _HEREDOC.search(line) and _HEREDOC_INSTRUCTION.match(line):
            raise ValueError(
                "heredocs (<<EOF) are not supported by this engine's Dockerfile frontend: "
                "put the script in a file and COPY it"
            )
        if arg := _ARG.fullmatch(line.strip()):
            arg_names.add(arg.group(1))
            if not stages and not images:
                global_args[arg.group(1)] = build_args.get(arg.group(1), arg.group(2) or "")
        elif from_ := _FROM.fullmatch(line.strip()):
            image = _substitute(from_.group(2), global_args)
            if image.lower() not in stages and image != "scratch" and image not in images:
                images.append(image)
            if from_.group(4):
                stages.add(from_.group(4).lower())
        elif _RUN.match(line):
            secret_ids.extend(id_ for id_ in _secret_ids(line) if id_ not in secret_ids)
    return UserDockerfile(instructions, tuple(images), frozenset(arg_names), tuple(secret_ids))


def rewrite_user_dockerfile(
    dockerfile: UserDockerfile,
    *,
    build_args: Mapping[str, str],
    mounts: Sequence[str],
    secrets_digest: str | None,
) -> str:
    """The Dockerfile BuildKit builds: the user's, plus build-only settings that leave no trace.

    After each FROM, `build_args` become ARGs (paths of the CA bundle and index settings: ARG
    values reach RUN steps, not the image's environment); each RUN gets `mounts` (secret mounts
    of those files). Comments and parser directives go: `# syntax=` would pull a frontend image.

    BuildKit leaves secret values out of its cache keys: a step that mounts a secret would be
    reused by a build with another value, another space's included. So each such step comes
    after `ARG SPACEHUB_SECRETS_DIGEST=<secrets_digest>`, a keyed digest of the values (it tells
    nothing of them), which the step's cache key includes.
    """
    digest = _checked_digest(secrets_digest)
    for name, value in build_args.items():
        if not _ENV_NAME.fullmatch(name) or not _ARG_PATH.fullmatch(value):
            raise ValueError(f"build setting {name} cannot be written into a Dockerfile")
    for mount in mounts:
        if not _MOUNT_SPEC.fullmatch(mount):
            raise ValueError(f"mount {mount!r} cannot be written into a Dockerfile")
    flags = "".join(f" --mount={mount}" for mount in mounts)
    lines = []
    for line in dockerfile.instructions:
        if _FROM.fullmatch(line.strip()):
            lines.append(line)
            lines.extend(f"ARG {name}={value}" for name, value in sorted(build_args.items()))
        elif run := _RUN.match(line):
            if digest is not None and _secret_ids(line):
                lines.append(f"ARG {SECRETS_DIGEST_ARG}={digest}")
            lines.append(f"{run.group(1)}{flags}{run.group(2)}")
        else:
            lines.append(line)
    return "\n".join(lines) + "\n"


def _checked_digest(digest: str | None) -> str | None:
    if digest is not None and not _HEX_DIGEST.fullmatch(digest):
        raise ValueError("the secrets digest must be hexadecimal")
    return digest


def _check_directives(text: str) -> None:
    for line in text.splitlines():
        directive = _DIRECTIVE.fullmatch(line.strip())
        if directive is None:
            return
        if directive.group(1).lower() == "escape" and directive.group(2) != "\\":
            raise ValueError("the `# escape=` parser directive is not supported: use \\")


def _join_continuations(text: str) -> list[str]:
    """Logical lines as Dockerfile parsers see them: `\\`-newline removed, comments dropped."""
    logical: list[str] = []
    pending: str | None = None
    for raw in text.splitlines():
        stripped = raw.strip()
        if pending is not None and (not stripped or stripped.startswith("#")):
            continue
        if pending is None and (not stripped or stripped.startswith("#")):
            continue
        line = raw if pending is None else pending + raw
        if line.endswith("\\"):
            pending = line[:-1]
            continue
        pending = None
        logical.append(line)
    if pending is not None:
        logical.append(pending)
    return logical


def _substitute(value: str, args: Mapping[str, str]) -> str:
    return _VARIABLE.sub(lambda match: args.get(match.group(1) or match.group(2), ""), value)


def _secret_ids(line: str) -> list[str]:
    ids = []
    for spec in _MOUNT.findall(line):
        options = dict(part.partition("=")[::2] for part in spec.split(","))
        if options.get("type") != "secret":
            continue
        target = options.get("target") or options.get("dst") or options.get("destination")
        id_ = options.get("id") or (target or "").rpartition("/")[2]
        safe_target = target is None or (
            re.fullmatch(r"/[\w./-]+", target) and ".." not in target.split("/")
        )
        if not _ENV_NAME.fullmatch(id_) or not safe_target:
            raise ValueError(f"unsupported secret mount {spec!r}")
        ids.append(id_)
    return ids

"""Dockerfile rendering is strict and deterministic; golden files show what each sdk builds."""

import os
from pathlib import Path

import pytest

from spacehub.builder.dockerfile import (
    read_user_dockerfile,
    referenced_names,
    render_dockerfile,
    rewrite_user_dockerfile,
)
from spacehub.builder.plan import BuildPlan
from spacehub.core.space_config import SpaceConfig

GOLDEN = Path(__file__).parent / "golden"


def plan_for(sdk: str, **changes: object) -> BuildPlan:
    fields: dict[str, object] = {
        "has_requirements": False,
        "has_pre_requirements": False,
        "debian_packages": (),
    }
    config = {"sdk": sdk, **{key: value for key, value in changes.items() if key not in fields}}
    fields.update({key: value for key, value in changes.items() if key in fields})
    return BuildPlan(config=SpaceConfig.model_validate(config), **fields)  # type: ignore[arg-type]


def assert_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("SPACEHUB_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert text == path.read_text(), f"{name} changed: rerun with SPACEHUB_UPDATE_GOLDEN=1"


CASES = {
    "gradio.Dockerfile": plan_for("gradio"),
    "gradio-full.Dockerfile": plan_for(
        "gradio",
        sdk_version="5.49.1",
        app_file="src/main.py",
        has_requirements=True,
        has_pre_requirements=True,
        debian_packages=("ffmpeg", "libgl1"),
    ),
    "streamlit.Dockerfile": plan_for("streamlit", has_requirements=True),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_sdk_dockerfile_matches_golden_file(name: str) -> None:
    text = render_dockerfile(CASES[name], base_image="python:3.11-slim", secrets_digest=None)
    assert text == render_dockerfile(
        CASES[name], base_image="python:3.11-slim", secrets_digest=None
    )
    assert_golden(name, text)


def test_app_copy_is_the_last_instruction() -> None:
    text = render_dockerfile(
        plan_for("gradio", has_requirements=True), base_image="b:1", secrets_digest=None
    )
    assert text.strip().splitlines()[-1] == "COPY --chown=1000:1000 app/ /home/user/app/"


def test_build_settings_reach_dependency_steps_only_as_secret_mounts() -> None:
    text = render_dockerfile(
        CASES["gradio-full.Dockerfile"], base_image="python:3.11-slim", secrets_digest=None
    )
    assert "spacehub-build" not in text.replace("/run/spacehub-build/", "")
    assert "COPY spacehub" not in text and "ENV PIP" not in text and "ENV SSL" not in text
    installs = [line for line in text.splitlines() if "uv pip install" in line]
    assert len(installs) == 3
    for step in text.split("\nRUN ")[1:]:
        if "uv pip install" in step:
            assert "--mount=type=secret,id=spacehub-env" in step
            assert "--mount=type=cache,id=spacehub-uv" in step


@pytest.mark.parametrize(
    ("base_image", "app_file"),
    [("python:3.11-slim\nRUN id", "app.py"), ("python", "../app.py"), ("python", "app.py;id")],
)
def test_unsafe_values_never_reach_the_dockerfile(base_image: str, app_file: str) -> None:
    with pytest.raises(ValueError):
        render_dockerfile(
            plan_for("gradio", app_file=app_file), base_image=base_image, secrets_digest=None
        )


def test_docker_and_static_spaces_have_no_template() -> None:
    with pytest.raises(ValueError):
        render_dockerfile(plan_for("static"), base_image="python", secrets_digest=None)


USER_DOCKERFILE = """\
# syntax=docker/dockerfile:1
ARG BASE=python:3.11-slim
FROM ${BASE} AS build
ARG TOKEN
RUN --mount=type=secret,id=HF_TOKEN,mode=0444,required=true \\
    cat /run/secrets/HF_TOKEN > /dev/null && \\
    # a comment inside a continuation
    echo built
FROM build
RUN --mount=type=cache,target=/root/.cache pip install x
FROM node:20 AS web
FROM python:3.11-slim
COPY --from=web /x /x
"""


def test_user_dockerfile_is_read_like_buildkit_reads_it() -> None:
    dockerfile = read_user_dockerfile(USER_DOCKERFILE, {})
    assert dockerfile.base_images == ("python:3.11-slim", "node:20")
    assert dockerfile.arg_names == {"BASE", "TOKEN"}
    assert dockerfile.secret_ids == ("HF_TOKEN",)
    assert read_user_dockerfile(USER_DOCKERFILE, {"BASE": "debian:12"}).base_images[0] == (
        "debian:12"
    )


def test_user_dockerfile_rewrite_adds_build_settings_to_each_stage_and_run() -> None:
    dockerfile = read_user_dockerfile(USER_DOCKERFILE, {})
    mount = "type=secret,id=spacehub-ca,target=/run/spacehub-build/ca.crt"
    text = rewrite_user_dockerfile(
        dockerfile,
        build_args={"PIP_CERT": "/run/spacehub-build/ca.crt"},
        mounts=[mount],
        secrets_digest=None,
    )
    lines = text.splitlines()
    assert "syntax" not in text  # a frontend image would have to be pulled
    assert lines.count("ARG PIP_CERT=/run/spacehub-build/ca.crt") == 4  # one per FROM
    assert lines[lines.index("FROM ${BASE} AS build") + 1].startswith("ARG PIP_CERT=")
    runs = [line for line in lines if line.startswith("RUN")]
    assert len(runs) == 2
    assert all(line.startswith(f"RUN --mount={mount} --mount=") for line in runs)
    assert "id=HF_TOKEN,mode=0444,required=true     cat /run/secrets/HF_TOKEN" in text
    assert "cat /run/secrets/HF_TOKEN > /dev/null &&     echo built" in text


def test_steps_that_mount_secrets_are_cached_by_the_digest_of_their_values() -> None:
    """BuildKit leaves secret values out of cache keys: the digest ARG goes into them."""
    dockerfile = read_user_dockerfile(USER_DOCKERFILE, {})
    digest = "ab" * 32
    lines = rewrite_user_dockerfile(
        dockerfile, build_args={}, mounts=[], secrets_digest=digest
    ).splitlines()
    secret_step = next(i for i, line in enumerate(lines) if "id=HF_TOKEN" in line)
    assert lines[secret_step - 1] == f"ARG SPACEHUB_SECRETS_DIGEST={digest}"
    assert lines.count(f"ARG SPACEHUB_SECRETS_DIGEST={digest}") == 1  # the cache-only RUN: none
    plan = plan_for("gradio", has_requirements=True)
    template = render_dockerfile(plan, base_image="b:1", secrets_digest=digest).splitlines()
    install = next(i for i, line in enumerate(template) if "requirements.txt \\" in line)
    assert f"ARG SPACEHUB_SECRETS_DIGEST={digest}" in template[:install]
    assert "SPACEHUB_SECRETS_DIGEST" not in render_dockerfile(
        plan, base_image="b:1", secrets_digest=None
    )
    with pytest.raises(ValueError):
        render_dockerfile(plan, base_image="b:1", secrets_digest="x\nRUN id")


def test_user_dockerfile_rewrite_refuses_values_that_would_escape_their_line() -> None:
    dockerfile = read_user_dockerfile("FROM x\nRUN true\n", {})
    with pytest.raises(ValueError):
        rewrite_user_dockerfile(
            dockerfile, build_args={"A": "/x\nRUN id"}, mounts=[], secrets_digest=None
        )
    with pytest.raises(ValueError):
        rewrite_user_dockerfile(
            dockerfile, build_args={}, mounts=["type=secret id=x"], secrets_digest=None
        )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("FROM x\nRUN <<EOF\necho hi\nEOF\n", "heredocs"),
        ("FROM x\nCOPY <<-'EOT' /a.txt\nhi\nEOT\n", "heredocs"),
        ("# escape=`\nFROM x\nRUN echo a `\n b\n", "escape"),
    ],
)
def test_user_dockerfile_syntax_the_rewrite_cannot_handle_is_refused_with_a_reason(
    text: str, reason: str
) -> None:
    with pytest.raises(ValueError, match=reason):
        read_user_dockerfile(text, {})


def test_shift_operators_are_not_heredocs() -> None:
    text = "FROM x\nRUN python -c 'print(1<<2)' && echo $((1 << 3))\n"
    assert read_user_dockerfile(text, {}).base_images == ("x",)


def test_secret_mount_target_cannot_leave_its_directory() -> None:
    with pytest.raises(ValueError):
        read_user_dockerfile("FROM x\nRUN --mount=type=secret,id=A,target=/run/../etc/x id\n", {})


def test_requirement_files_name_variables_as_pip_expands_them() -> None:
    text = "git+https://${GH_TOKEN}@github.com/o/r\nfoo==1 # $NOT_EXPANDED\n"
    assert referenced_names(text) == {"GH_TOKEN"}

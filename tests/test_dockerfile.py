"""Dockerfile rendering is strict and deterministic; golden files show what each sdk builds."""

import os
from pathlib import Path

import pytest

from spacehub.builder.dockerfile import (
    read_user_dockerfile,
    referenced_names,
    render_build_base,
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
    "gradio.Dockerfile": (plan_for("gradio"), False),
    "gradio-full.Dockerfile": (
        plan_for(
            "gradio",
            sdk_version="5.49.1",
            app_file="src/main.py",
            has_requirements=True,
            has_pre_requirements=True,
            debian_packages=("ffmpeg", "libgl1"),
        ),
        True,
    ),
    "streamlit.Dockerfile": (plan_for("streamlit", has_requirements=True), False),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_sdk_dockerfile_matches_golden_file(name: str) -> None:
    plan, secrets = CASES[name]
    text = render_dockerfile(plan, base_image="python:3.11-slim", has_build_secrets=secrets)
    assert text == render_dockerfile(plan, base_image="python:3.11-slim", has_build_secrets=secrets)
    assert_golden(name, text)


def test_build_base_dockerfile_matches_golden_file() -> None:
    env = {"SSL_CERT_FILE": "/etc/spacehub-build/ca.crt", "PIP_CERT": "/etc/spacehub-build/ca.crt"}
    assert_golden("docker-build-base.Dockerfile", render_build_base("python:3.11-slim", env))


def test_app_copy_is_the_last_instruction() -> None:
    text = render_dockerfile(
        plan_for("gradio", has_requirements=True), base_image="b:1", has_build_secrets=False
    )
    assert text.strip().splitlines()[-1] == "COPY --chown=1000:1000 app/ /home/user/app/"


@pytest.mark.parametrize(
    ("base_image", "app_file"),
    [("python:3.11-slim\nRUN id", "app.py"), ("python", "../app.py"), ("python", "app.py;id")],
)
def test_unsafe_values_never_reach_the_dockerfile(base_image: str, app_file: str) -> None:
    with pytest.raises(ValueError):
        render_dockerfile(
            plan_for("gradio", app_file=app_file), base_image=base_image, has_build_secrets=False
        )


def test_docker_and_static_spaces_have_no_template() -> None:
    with pytest.raises(ValueError):
        render_dockerfile(plan_for("static"), base_image="python", has_build_secrets=False)


def test_build_base_refuses_values_that_would_escape_the_env_line() -> None:
    with pytest.raises(ValueError):
        render_build_base("python:3.11-slim", {"PIP_INDEX_URL": 'https://x/"\nRUN id'})


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


def test_user_dockerfile_is_read_like_the_classic_builder() -> None:
    dockerfile = read_user_dockerfile(USER_DOCKERFILE, {})
    assert dockerfile.base_images == ("python:3.11-slim", "node:20")
    assert dockerfile.arg_names == {"BASE", "TOKEN"}
    assert [(mount.id, mount.target) for mount in dockerfile.secret_mounts] == [
        ("HF_TOKEN", "/run/secrets/HF_TOKEN")
    ]
    assert read_user_dockerfile(USER_DOCKERFILE, {"BASE": "debian:12"}).base_images[0] == (
        "debian:12"
    )


def test_user_dockerfile_rewrite_points_from_at_parents_and_drops_mounts() -> None:
    dockerfile = read_user_dockerfile(USER_DOCKERFILE, {})
    text = rewrite_user_dockerfile(
        dockerfile, {"python:3.11-slim": "parent-0", "node:20": "parent-1"}
    )
    assert "--mount" not in text
    assert "FROM parent-0 AS build" in text
    assert "FROM parent-1 AS web" in text
    assert "FROM build\n" in text
    assert "cat /run/secrets/HF_TOKEN > /dev/null &&     echo built" in text


def test_secret_mount_target_cannot_leave_its_directory() -> None:
    with pytest.raises(ValueError):
        read_user_dockerfile("FROM x\nRUN --mount=type=secret,id=A,target=/run/../etc/x id\n", {})


def test_requirement_files_name_variables_as_pip_expands_them() -> None:
    text = "git+https://${GH_TOKEN}@github.com/o/r\nfoo==1 # $NOT_EXPANDED\n"
    assert referenced_names(text) == {"GH_TOKEN"}

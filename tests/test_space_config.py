"""Front matter as the Hub reads it, and app files with any name git holds.

The table holds front matters of public spaces (values as their authors wrote them): each is
accepted with the values the platform uses, keys that do not apply to the sdk are ignored and
unknown keys kept in the card data, each named by a warning. Then real pushes to a real
`spacehub serve`: app files with emoji, spaces and quotes run on the docker and the local
runtime, Streamlit's multipage layout serves both pages, unsafe names end CONFIG_ERROR with
their line, and ignored keys are warnings in the build log.
"""

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest

from spacehub.builder.plan import plan_build
from spacehub.core.errors import InvalidConfig, NoAppFile
from spacehub.core.space_config import (
    SpaceConfig,
    parse_space_config,
    read_space_config,
)
from tests.conftest import (
    EXAMPLES,
    Platform,
    assert_page_and_its_script_load,
    explain_failure,
    make_checkout,
    push,
    start_platform,
)
from tests.test_runtime_conformance import BUILD_TIMEOUT, RuntimeHub, clean_up, runtime_settings

APPS = Path(__file__).resolve().parent / "apps"
QUOTED_NAME = '0_👋 "Hello" it\'s.py'


def front_matter(text: str) -> str:
    return f"---\n{text.strip()}\n---\n\nCheck out the configuration reference.\n"


# name → (front matter as the space has it, values the platform uses, words of each warning)
REAL_FRONT_MATTERS: dict[str, tuple[str, dict[str, Any], list[str]]] = {
    "docker-long-startup": (
        """
title: TxT360
emoji: 🦀
colorFrom: gray
colorTo: red
sdk: docker
pinned: false
app_port: 7860
startup_duration_timeout: 350m
""",
        {"sdk": "docker", "app_port": 7860, "startup_timeout_seconds": 350 * 60},
        [],
    ),
    "gradio-with-app-port-and-commented-keys": (
        """
title: LipSyncer
emoji: 🗣️
colorFrom: purple
colorTo: pink
sdk: gradio
sdk_version: 3.23.0
#sdk: docker
app_port: 7860
#app_file: app.py
startup_duration_timeout: 1h
pinned: false
license: mit
""",
        {"sdk_version": "3.23.0", "app_port": 7860, "effective_app_file": "app.py"},
        ["line 9: app_port does not apply to gradio spaces"],
    ),
    "gradio-apache": (
        """
title: PoseAnything
emoji: 🐨
colorFrom: yellow
colorTo: gray
sdk: gradio
sdk_version: 4.11.0
app_file: app.py
pinned: false
license: apache-2.0
startup_duration_timeout: 1h
""",
        {"sdk_version": "4.11.0", "license": "apache-2.0", "startup_timeout_seconds": 3600},
        [],
    ),
    "sdk-version-read-as-a-float": (
        """
title: Deep Reinforcement Learning Leaderboard
emoji: 🚀
colorFrom: green
colorTo: indigo
sdk: gradio
sdk_version: 3.4
app_file: app.py
pinned: false
startup_duration_timeout: 1h
""",
        {"sdk_version": "3.4"},
        [],
    ),
    "suggested-hardware": (
        """
title: QR Code AI Art Generator
emoji: 📱🔲
colorFrom: green
colorTo: blue
sdk: gradio
sdk_version: 3.35.2
app_file: app.py
pinned: false
suggested_hardware: t4-medium
startup_duration_timeout: 1h
""",
        {"suggested_hardware": "t4-medium", "color_from": "green"},
        [],
    ),
    "python-patch-version": (
        """
title: TeleStyle
emoji: 🎨
colorFrom: blue
colorTo: purple
sdk: gradio
sdk_version: 6.3.0
app_file: app.py
pinned: false
python_version: 3.12.12
startup_duration_timeout: 2h
""",
        {"python_version": "3.12.12", "sdk_version": "6.3.0", "startup_timeout_seconds": 7200},
        [],
    ),
    "startup-timeout-left-empty": (
        """
title: aphroditetesting
emoji: 🐢
colorFrom: pink
colorTo: green
sdk: docker
pinned: false
startup_duration_timeout:
""",
        {"startup_duration_timeout": "30m", "startup_timeout_seconds": 1800},
        [],
    ),
    "oauth-and-mini-header": (
        """
title: Paper Central
emoji: 🎓
colorFrom: blue
colorTo: green
sdk: gradio
sdk_version: 4.44.0
app_file: app.py
pinned: false
header: mini
hf_oauth: true
hf_oauth_scopes:
- write-discussions
""",
        {"sdk_version": "4.44.0"},
        ["line 11: hf_oauth: Sign-in with HF is not available"],
    ),
    "docker-custom-headers-and-storage": (
        """
title: Langfuse
emoji: 🪢
colorFrom: gray
colorTo: blue
sdk: docker
app_port: 3000
pinned: false
hf_oauth: true
hf_oauth_scopes:
  - openid
  - profile
custom_headers:
  cross-origin-resource-policy: cross-origin
  cross-origin-opener-policy: same-origin
suggested_storage: small
""",
        {
            "app_port": 3000,
            "custom_headers": {
                "cross-origin-resource-policy": "cross-origin",
                "cross-origin-opener-policy": "same-origin",
            },
        },
        ["line 9: hf_oauth"],
    ),
    "comments-in-a-scope-list": (
        """
title: Anycoder
emoji: 🏢
colorFrom: indigo
colorTo: indigo
sdk: gradio
sdk_version: 5.35.0
app_file: app.py
pinned: false
disable_embedding: true
hf_oauth: true
hf_oauth_scopes:
- write-repos # Needed to create/upload to Spaces on behalf of the user
# Note: 'openid' and 'profile' are always included by default and should not be listed here.
""",
        {"disable_embedding": True},
        ["hf_oauth"],
    ),
    "oauth-expiration-and-license": (
        """
title: Circles categorising
emoji: ⭕
colorFrom: red
colorTo: yellow
sdk: gradio
sdk_version: 5.1.0
app_file: app.py
pinned: false
hf_oauth: true
hf_oauth_expiration_minutes: 36000
hf_oauth_scopes:
- read-repos
- write-repos
- manage-repos
- inference-api
- read-billing
license: apache-2.0
""",
        {"license": "apache-2.0"},
        ["hf_oauth:"],
    ),
    "static-oauth": (
        """
title: Client-side OAuth
emoji: 🔐
colorFrom: purple
colorTo: yellow
sdk: static
pinned: false
hf_oauth: true
hf_oauth_scopes:
- read-repos
- email
""",
        {"sdk": "static", "effective_app_file": "index.html"},
        ["hf_oauth:"],
    ),
    "static-base-path-and-thumbnail": (
        """
title: Like History
emoji: 📈
colorFrom: gray
colorTo: blue
sdk: static
pinned: false
base_path: /build/
license: gpl-3.0
thumbnail: https://cdn-uploads.huggingface.co/production/uploads/61fd75b93c49561870461907/JyZcFN3Uf73ktdjXOiScT.png
""",
        {"base_path": "/build/", "license": "gpl-3.0"},
        [],
    ),
    "docker-app-port-3000": (
        """
title: LoRA Studio
emoji: 🤯
colorFrom: green
colorTo: pink
sdk: docker
pinned: true
app_port: 3000
license: mit
hf_oauth: true
header: mini
""",
        {"app_port": 3000, "pinned": True},
        ["hf_oauth"],
    ),
    "short-description": (
        """
title: BujoNow
emoji: 📔
colorFrom: green
colorTo: blue
sdk: gradio
sdk_version: 5.29.0
app_file: app.py
pinned: false
license: mit
short_description: A Bullet Journal Companion Powered by Gemini
hf_oauth: true
hf_oauth_expiration_minutes: 1440
""",
        {"short_description": "A Bullet Journal Companion Powered by Gemini"},
        ["hf_oauth:"],
    ),
    "unknown-author-keys-and-zwj-emoji": (
        """
title: Template Final Assignment
author: Arte(r)m Sedov
author_github: https://github.com/arterm-sedov/
emoji: 🕵🏻‍♂️
colorFrom: indigo
colorTo: indigo
sdk: gradio
sdk_version: 5.35.0
app_file: app.py
pinned: false
hf_oauth: true
hf_oauth_expiration_minutes: 480
""",
        {"emoji": "🕵🏻‍♂️"},
        ["line 3: unknown key 'author'", "line 4: unknown key 'author_github'", "hf_oauth"],
    ),
    "static-app-file-full-width": (
        """
title: OmniCore AI
emoji: ⚡
colorFrom: green
colorTo: indigo
sdk: static
app_file: index.html
pinned: true
header: mini
fullWidth: true
hf_oauth: true
hf_oauth_scopes:
  - inference-api
hf_oauth_expiration_minutes: 43200
short_description: Enterprise AI workspace — instant, free, installable
tags:
  - transformers.js
  - webgpu
  - pwa
""",
        {"tags": ["transformers.js", "webgpu", "pwa"], "effective_app_file": "index.html"},
        ["hf_oauth:"],
    ),
    "python-version-quoted-and-tags": (
        """
title: BlockSmith — Kimi K3 Minecraft Builder
emoji: ⛏️
colorFrom: indigo
colorTo: purple
sdk: gradio
sdk_version: 6.20.0
python_version: "3.12"
app_file: app.py
pinned: false
license: mit
tags:
  - minecraft
  - code-generation
short_description: Build Minecraft mods, plugins, packs with Kimi K3.
""",
        {"python_version": "3.12", "title": "BlockSmith — Kimi K3 Minecraft Builder"},
        [],
    ),
    "preload-from-hub-as-mappings-and-61-characters": (
        """
title: FIREFLY Consciousness Terminal
emoji: 🟢
colorFrom: green
colorTo: gray
sdk: gradio
sdk_version: 5.23.0
app_file: app.py
pinned: false
license: mit
short_description: A self-aware AI that dreams alone and chooses whether to chat
startup_duration_timeout: 45m
preload_from_hub:
  - repo_id: mradermacher/Firefly-V3-i1-GGUF
    filename: Firefly-V3.i1-Q4_K_S.gguf
""",
        {"startup_timeout_seconds": 45 * 60},
        ["line 11: short_description is 61 characters", "line 13: preload_from_hub"],
    ),
    "day-long-startup": (
        """
title: Select subset
emoji: 🏆
colorFrom: yellow
colorTo: red
sdk: gradio
sdk_version: 4.42.0
app_file: app.py
pinned: false
startup_duration_timeout: 24h
hf_oauth_expiration_minutes: 1440
""",
        {"startup_timeout_seconds": 86400},
        [],
    ),
    "docker-gpl": (
        """
title: Qa Api
emoji: 🐢
colorFrom: yellow
colorTo: red
sdk: docker
pinned: false
license: gpl-3.0
startup_duration_timeout: 2h
""",
        {"license": "gpl-3.0", "effective_app_file": "Dockerfile"},
        [],
    ),
    "streamlit-hello": (
        """
title: Streamlit Hello
emoji: 👋
colorFrom: red
colorTo: pink
sdk: streamlit
sdk_version: 1.39.0
app_file: 0_👋_Hello.py
pinned: false
""",
        {"sdk_version": "1.39.0", "effective_app_file": "0_👋_Hello.py"},
        [],
    ),
    "docker-sdk-version-latest": (
        """
title: Ollama
emoji: 🦙
colorFrom: blue
colorTo: gray
sdk: docker
sdk_version: latest
python_version: 3.10
app_file: app.py
pinned: false
""",
        {"sdk_version": None, "python_version": "3.11", "effective_app_file": "Dockerfile"},
        [
            "line 7: sdk_version does not apply to docker spaces",
            "line 8: python_version does not apply to docker spaces",
            "line 9: app_file does not apply to docker spaces",
        ],
    ),
    "python-version-unquoted-3-10": (
        """
title: Image Classifier
emoji: 🖼️
colorFrom: indigo
colorTo: blue
sdk: gradio
sdk_version: 4.44.1
python_version: 3.10
app_file: app.py
pinned: false
models:
  - google/vit-base-patch16-224
datasets:
  - imagenet-1k
""",
        {"python_version": "3.10", "sdk_version": "4.44.1"},
        [],
    ),
    "docker-streamlit-template": (
        """
title: Streamlit template
emoji: 🚀
colorFrom: red
colorTo: red
sdk: docker
app_port: 8501
tags:
- streamlit
pinned: false
short_description: Streamlit template space
""",
        {"app_port": 8501, "tags": ["streamlit"]},
        [],
    ),
    "docker-port-instead-of-app-port": (
        """
title: aphroditetesting
emoji: 🐢
colorFrom: pink
colorTo: green
sdk: docker
pinned: false
port: 7860
""",
        {"app_port": 7860},
        ["line 8: unknown key 'port'"],
    ),
    "static-with-python-and-app-port": (
        """
title: Portfolio
emoji: 🌍
colorFrom: blue
colorTo: green
sdk: static
sdk_version: 4.36.1
python_version: "3.10"
app_port: 8080
pinned: false
license: cc-by-4.0
""",
        {"sdk_version": None, "app_port": 7860, "license": "cc-by-4.0"},
        ["sdk_version does not apply", "python_version does not apply", "app_port does not"],
    ),
    "licenses-as-a-list-and-numeric-title": (
        """
title: 2048
emoji: 🎮
colorFrom: yellow
colorTo: red
sdk: static
pinned: false
license:
  - mit
  - apache-2.0
""",
        {"title": "2048", "license": ["mit", "apache-2.0"]},
        [],
    ),
    "yes-is-a-title-not-a-boolean": (
        """
title: Yes
emoji: ✅
colorFrom: green
colorTo: green
sdk: gradio
app_file: app.py
pinned: false
""",
        {"title": "Yes"},
        [],
    ),
}


@pytest.mark.parametrize("name", REAL_FRONT_MATTERS)
def test_front_matters_of_public_spaces_are_accepted(name: str) -> None:
    text, expected, warned = REAL_FRONT_MATTERS[name]
    config, warnings = read_space_config(front_matter(text))
    for attribute, value in expected.items():
        assert getattr(config, attribute) == value, attribute
    assert len(warnings) == len(warned), warnings
    for words, warning in zip(warned, warnings, strict=True):
        assert words in warning, warnings
    # The card data is the front matter as written, ignored and unknown keys included, and
    # reading it back (as the supervisor does from the database) means the same.
    import yaml

    written = yaml.safe_load(text)
    assert set(config.card_data) == set(written)
    assert SpaceConfig.model_validate(config.card_data) == config


# name → (a line of front matter, its key, words of the reason); each is line 4 of README.md
BAD_FRONT_MATTERS = {
    "capitalised-sdk": ("sdk: Gradio", "sdk", "unknown sdk 'Gradio'"),
    "colour-outside-the-palette": ("colorFrom: orange", "colorFrom", "'red'"),
    "python-2": ("python_version: 2.7", "python_version", "not a Python version"),
    "python-typo": ("python_version: 3.1O", "python_version", "not a Python version"),
    "sdk-version-name": ("sdk_version: stable", "sdk_version", "not a version number"),
    "app-file-absolute": ("app_file: /home/user/app/app.py", "app_file", "absolute path"),
    "app-file-parent": ("app_file: ../app.py", "app_file", "'..'"),
    "app-file-newline": ('app_file: "app\\nrm -rf.py"', "app_file", "control character"),
    "app-file-escape": ('app_file: "\\e[31mred.py"', "app_file", "control character"),
    "app-file-option": ("app_file: -mhttp.server.py", "app_file", "option"),
    "app-file-not-python": ("app_file: app.ipynb", "app_file", "must end in .py"),
    "startup-forever": ("startup_duration_timeout: forever", "startup_duration_timeout", "30m"),
    "startup-zero": ("startup_duration_timeout: 0s", "startup_duration_timeout", "no time"),
    "tags-as-a-string": ("tags: demo", "tags", "list"),
    "pinned-maybe": ("pinned: maybe", "pinned", "boolean"),
    "header-injection": (
        'custom_headers: {x-a: "1\\r\\nSet-Cookie: a=b"}',
        "custom_headers",
        "printable ASCII",
    ),
}


@pytest.mark.parametrize("name", BAD_FRONT_MATTERS)
def test_front_matter_values_the_platform_cannot_use_name_key_and_line(name: str) -> None:
    line, key, reason = BAD_FRONT_MATTERS[name]
    sdk = [] if line.startswith("sdk:") else ["sdk: gradio"]
    readme = front_matter("\n".join(["title: Bad", "emoji: 💥", *sdk, line]))
    lines = readme.splitlines()
    with pytest.raises(InvalidConfig) as raised:
        parse_space_config(readme)
    assert raised.value.line == lines.index(line) + 1
    assert raised.value.message.startswith(f"line {raised.value.line}: {key}"), raised.value
    assert reason in raised.value.message, raised.value.message


def test_an_app_file_link_out_of_the_checkout_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "README.md").write_text(
        front_matter("title: Link\nsdk: gradio\napp_file: main 🔗.py")
    )
    (tmp_path / "repo" / "main 🔗.py").symlink_to("/etc/hostname")
    with pytest.raises(InvalidConfig) as raised:
        plan_build(tmp_path / "repo", None)
    assert raised.value.line == 4 and "outside the repository" in raised.value.message


def test_a_missing_unusual_app_file_is_still_no_app_file(tmp_path: Path) -> None:
    quoted_yaml = QUOTED_NAME.replace("'", "''")  # YAML doubles a quote inside '...'
    (tmp_path / "README.md").write_text(front_matter(f"sdk: gradio\napp_file: '{quoted_yaml}'"))
    with pytest.raises(NoAppFile):
        plan_build(tmp_path, None)
    (tmp_path / QUOTED_NAME).write_text("print('hi')\n")
    assert plan_build(tmp_path, None).config.effective_app_file == QUOTED_NAME


# Real pushes


def space_files(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): path.read_text()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def build_log(platform: Platform, space_id: str) -> str:
    with platform.api() as client:
        text = client.get(f"/api/spaces/{space_id}/logs/build", timeout=60).text
    return "\n".join(
        json.loads(line[len("data: ") :])["data"]
        for line in text.splitlines()
        if line.startswith("data: {")
    )


DOCKER_SPACE_README = front_matter(
    """
title: FastAPI as on the Hub
emoji: 🐳
colorFrom: blue
colorTo: gray
sdk: docker
sdk_version: latest
python_version: "3.10"
app_port: 7860
pinned: false
models:
  - openai-community/gpt2
"""
)

SPACES = {
    "af-quoted": ("gradio", APPS / "quoted-app-file"),
    "af-pages": ("streamlit", APPS / "streamlit-multipage"),
    "af-docker": ("docker", EXAMPLES / "docker-fastapi"),
}


@pytest.fixture(scope="module", params=[pytest.param("docker", marks=pytest.mark.docker), "local"])
def app_files_hub(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RuntimeHub]:
    """`spacehub serve` on one runtime with the unusual app files and a Hub docker space."""
    runtime: str = request.param
    root = tmp_path_factory.mktemp(f"app-files-{runtime}")
    platform = start_platform(root / "data", **runtime_settings(runtime))
    hub = RuntimeHub(runtime, platform, root / "checkouts")
    try:
        for name, (sdk, folder) in SPACES.items():
            space_id = hub.create(name, sdk)
            files = space_files(folder)
            if name == "af-docker":
                files["README.md"] = DOCKER_SPACE_README
            hub.push(space_id, files)
        yield hub
    finally:
        clean_up(runtime, hub.platform, hub.created)


@pytest.fixture
def hub(request: pytest.FixtureRequest, app_files_hub: RuntimeHub) -> RuntimeHub:
    explain_failure(
        request.node, "platform log (tail)", lambda: app_files_hub.platform.log()[-6000:]
    )
    return app_files_hub


def test_app_file_with_emoji_spaces_and_quotes_runs(hub: RuntimeHub) -> None:
    space_id = "admin/af-quoted"
    hub.running(space_id)
    for form in ("path", "subdomain"):
        answer = hub.get(space_id, form)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"argv0": QUOTED_NAME, "file": QUOTED_NAME}
    assert hub.api.space_info(space_id).cardData["app_file"] == QUOTED_NAME


def test_streamlit_multipage_app_serves_its_main_page_and_its_pages(
    hub: RuntimeHub, app_hosts_resolve: None
) -> None:
    space_id = "admin/af-pages"
    hub.running(space_id)
    for url in (hub.path_url(space_id), hub.subdomain_url(space_id)):
        with httpx.Client(timeout=10) as client:
            assert_page_and_its_script_load(client, url)
        pages, main = streamlit_session(url, page_name="", expected="Welcome to the multipage")
        assert sorted(pages) == ["Hello", "Plotting Demo"], pages
        assert "Welcome to the multipage demo" in main
        _, plotting = streamlit_session(url, page_name="Plotting_Demo", expected="Plotted 20")
        assert "Plotting demo" in plotting


def streamlit_session(url: str, page_name: str, expected: str) -> tuple[list[str], str]:
    """Run one page in a live session as a browser does; its app's page titles and its text."""
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    from websockets.sync.client import connect as ws_connect

    origin = url.split("/apps/")[0].rstrip("/")
    stream = urljoin(url, "_stcore/stream").replace("http://", "ws://")
    with ws_connect(stream, subprotocols=["streamlit"], origin=origin) as ws:
        rerun = BackMsg()
        rerun.rerun_script.query_string = ""
        rerun.rerun_script.page_name = page_name
        ws.send(rerun.SerializeToString())
        pages: list[str] = []
        texts: list[str] = []
        deadline = time.monotonic() + 30
        while not any(expected in text for text in texts):
            assert time.monotonic() < deadline, f"{expected!r} not rendered; got {texts}"
            message = ForwardMsg()
            message.ParseFromString(ws.recv(timeout=30))
            kind = message.WhichOneof("type")
            if kind == "navigation":  # the pages Streamlit found, for the sidebar
                pages = [page.page_name.replace("_", " ") for page in message.navigation.app_pages]
            elif kind == "delta":
                texts.append(str(message.delta))
    return pages, "\n".join(texts)


def test_docker_space_with_hub_only_keys_is_not_a_config_error(hub: RuntimeHub) -> None:
    space_id = "admin/af-docker"
    if hub.runtime == "docker":
        hub.running(space_id)
        assert hub.get(space_id, "path").json() == {"Hello": "World!"}
    else:
        runtime = hub.platform.wait_stage(space_id, {"BUILD_ERROR"}, BUILD_TIMEOUT)
        assert "docker spaces need the Docker runtime" in runtime["errorMessage"], runtime
    log = build_log(hub.platform, space_id)
    assert "line 7: sdk_version does not apply to docker spaces" in log, log
    assert "line 8: python_version does not apply to docker spaces" in log, log
    card = hub.api.space_info(space_id).cardData
    assert card["sdk_version"] == "latest" and card["models"] == ["openai-community/gpt2"]


# name → (README.md front matter lines, files beside it, the line and words of the error)
UNSAFE_APP_FILES = {
    "parent": (["app_file: ../x.py"], {}, 4, "'..'"),
    "absolute": (["app_file: /etc/x.py"], {}, 4, "absolute path"),
    "newline": (['app_file: "two\\nlines.py"'], {"two\nlines.py": "print(1)\n"}, 4, "control"),
    "escape": (['app_file: "\\e[31mred.py"'], {"\x1b[31mred.py": "print(1)\n"}, 4, "control"),
    "a-folder": (["app_file: démo.py"], {"démo.py/__main__.py": "print(1)\n"}, 4, "regular file"),
}


@pytest.mark.parametrize("case", UNSAFE_APP_FILES)
def test_pushed_unsafe_app_file_ends_config_error_with_its_line(
    shared_platform: Platform, tmp_path: Path, case: str
) -> None:
    lines, files, line, words = UNSAFE_APP_FILES[case]
    space_id = shared_platform.create_space(f"unsafe-{case}", sdk="gradio")
    readme = front_matter("\n".join(["title: Unsafe", "sdk: gradio", *lines]))
    checkout = make_checkout(
        tmp_path / "checkout", {"README.md": readme, "app.py": "print('hi')\n", **files}
    )
    result = push(shared_platform, checkout, space_id, "--force")
    assert result.returncode == 0, result.stderr
    runtime = shared_platform.wait_stage(space_id, {"CONFIG_ERROR", "NO_APP_FILE", "BUILD_ERROR"})
    assert runtime["stage"] == "CONFIG_ERROR", runtime
    message = runtime["errorMessage"]
    assert message.startswith(f"line {line}: app_file"), message
    assert words in message, message
    assert "internal error" not in message


def test_static_space_with_other_sdks_keys_builds_with_warnings(
    shared_platform: Platform, tmp_path: Path
) -> None:
    space_id = shared_platform.create_space("warned-static", sdk="static")
    readme = front_matter(
        """
title: Portfolio ✨
sdk: static
sdk_version: 4.36.1
python_version: 3.10
app_port: 8080
hf_oauth: true
my_own_key: {nested: [1, 2]}
"""
    )
    page = "<!doctype html><title>Portfolio</title><h1>Bonjour, l'équipe</h1>\n"
    checkout = make_checkout(tmp_path / "c", {"README.md": readme, "index.html": page})
    assert push(shared_platform, checkout, space_id, "--force").returncode == 0
    runtime = shared_platform.wait_stage(space_id, {"RUNNING", "CONFIG_ERROR", "BUILD_ERROR"})
    assert runtime["stage"] == "RUNNING", runtime
    log = build_log(shared_platform, space_id)
    for words in (
        "line 4: sdk_version does not apply to static spaces",
        "line 5: python_version does not apply to static spaces",
        "line 6: app_port does not apply to static spaces",
        "line 7: hf_oauth: Sign-in with HF is not available here",
        "line 8: unknown key 'my_own_key'",
    ):
        assert words in log, log
    with shared_platform.api() as client:
        card = client.get(f"/api/spaces/{space_id}").json()["cardData"]
    assert card["python_version"] == "3.10" and card["my_own_key"] == {"nested": [1, 2]}
    assert "app_file" not in card  # the card is what was written, not the defaults

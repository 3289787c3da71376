"""The domain core without I/O: names, subdomain labels, front matter, build plans."""

from pathlib import Path

import pytest

from spacehub.builder.plan import plan_build
from spacehub.core.errors import InvalidConfig, NoAppFile, Unprocessable
from spacehub.core.hardware import DEFAULT_FLAVOR, FLAVORS, flavor
from spacehub.core.names import subdomain_label, validate_label, validate_name
from spacehub.core.space_config import parse_space_config
from spacehub.platform.settings import Settings


def front_matter(*lines: str) -> str:
    return "\n".join(["---", *lines, "---", "", "# A space", ""])


# Names


@pytest.mark.parametrize(
    "name",
    ["a", "gpt2", "my-app", "my_app", "My.App", "a.b-c_d", "x" * 96, "0digits", "git", "a.gits"],
)
def test_valid_names_are_accepted(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("", "1 to 96"),
        ("x" * 97, "1 to 96"),
        ("a b", "letters, digits"),
        ("a/b", "letters, digits"),
        ("../etc", "letters, digits"),
        ("a;id", "letters, digits"),
        ("é", "letters, digits"),
        ("-a", "start or end"),
        ("a-", "start or end"),
        (".a", "start or end"),
        ("a.", "start or end"),
        ("a--b", "'--'"),
        ("a..b", "'..'"),
        ("x.git", ".git"),
        ("x.GIT", ".git"),
        ("a\n", "letters, digits"),
    ],
)
def test_invalid_names_are_refused_naming_the_rule(name: str, rule: str) -> None:
    with pytest.raises(Unprocessable) as raised:
        validate_name(name, "space name")
    assert rule in raised.value.message
    assert "space name" in raised.value.message


def test_a_name_that_is_not_a_string_is_refused() -> None:
    with pytest.raises(Unprocessable):
        validate_name(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("owner", "name", "label"),
    [
        ("alice", "demo", "alice-demo"),
        ("Alice", "My_App", "alice-my-app"),
        ("alice", "v1.2", "alice-v1-2"),
        ("admin", "a-b", "admin-a-b"),
        ("admin-a", "b", "admin-a-b"),
    ],
)
def test_subdomain_label_lowercases_and_turns_underscores_and_dots_into_dashes(
    owner: str, name: str, label: str
) -> None:
    assert subdomain_label(owner, name) == label
    assert validate_label(label) == label


def test_labels_over_63_characters_are_refused() -> None:
    assert validate_label("a" * 63) == "a" * 63
    with pytest.raises(Unprocessable) as raised:
        validate_label("a" * 64)
    assert "64" in raised.value.message and "63" in raised.value.message


@pytest.mark.parametrize("label", ["-a", "a-", "a_b", "a.b", "A", ""])
def test_invalid_dns_labels_are_refused(label: str) -> None:
    with pytest.raises(Unprocessable):
        validate_label(label)


# Hardware


def test_hardware_flavors_have_limits() -> None:
    assert DEFAULT_FLAVOR == "cpu-basic"
    assert flavor("cpu-upgrade").cpus > flavor("cpu-basic").cpus
    assert all(f.memory_bytes > 0 and f.pids > 0 for f in FLAVORS.values())


def test_an_unknown_flavor_is_refused_by_name() -> None:
    with pytest.raises(Unprocessable) as raised:
        flavor("t4-imaginary")
    assert "t4-imaginary" in raised.value.message
    assert "cpu-basic" in raised.value.message


# Front matter


def test_front_matter_defaults_are_the_hubs() -> None:
    config = parse_space_config(front_matter("sdk: gradio"))
    assert config.sdk == "gradio"
    assert config.title is None and config.emoji is None
    assert config.color_from is None and config.color_to is None
    assert config.sdk_version is None
    assert config.app_file is None
    assert config.effective_app_file == "app.py"
    assert config.app_port == 7860
    assert config.base_path == "/"
    assert config.startup_duration_timeout == "30m"
    assert config.startup_timeout_seconds == 30 * 60
    assert config.short_description is None
    assert config.tags == []
    assert config.pinned is False
    assert config.license is None
    assert config.suggested_hardware is None
    assert config.disable_embedding is False
    assert config.custom_headers == {}
    # The default Python is the one the default base image carries.
    assert f"python:{config.python_version}-" in Settings.model_fields["base_image"].default


def test_every_key_of_the_front_matter_is_read() -> None:
    config = parse_space_config(
        front_matter(
            "title: Weather",
            "emoji: ⛅",
            "colorFrom: indigo",
            "colorTo: pink",
            "sdk: gradio",
            "sdk_version: 4.44.1",
            "python_version: 3.12",
            "app_file: server.py",
            "base_path: /ui",
            "startup_duration_timeout: 1h",
            "short_description: Tells the weather",
            "tags: [weather, demo]",
            "pinned: true",
            "license: mit",
            "suggested_hardware: cpu-upgrade",
            "disable_embedding: true",
            "custom_headers:",
            "  cross-origin-embedder-policy: require-corp",
        )
    )
    assert config.title == "Weather"
    assert config.emoji == "⛅"
    assert (config.color_from, config.color_to) == ("indigo", "pink")
    assert config.sdk == "gradio"
    assert config.sdk_version == "4.44.1"
    assert config.python_version == "3.12"
    assert config.app_file == "server.py"
    assert config.effective_app_file == "server.py"
    assert config.base_path == "/ui"
    assert config.startup_timeout_seconds == 3600
    assert config.short_description == "Tells the weather"
    assert config.tags == ["weather", "demo"]
    assert config.pinned is True
    assert config.license == "mit"
    assert config.suggested_hardware == "cpu-upgrade"
    assert config.disable_embedding is True
    assert config.custom_headers == {"cross-origin-embedder-policy": "require-corp"}
    card = config.card_data
    assert card["colorFrom"] == "indigo" and card["sdk"] == "gradio"


def test_app_file_defaults_per_sdk() -> None:
    assert parse_space_config(front_matter("sdk: streamlit")).effective_app_file == "app.py"
    assert parse_space_config(front_matter("sdk: static")).effective_app_file == "index.html"
    assert parse_space_config(front_matter("sdk: docker")).effective_app_file == "Dockerfile"


@pytest.mark.parametrize(
    ("written", "kept"), [("3.10", "3.10"), ("3.9", "3.9"), ("3.12.1", "3.12.1")]
)
def test_python_version_is_kept_as_written(written: str, kept: str) -> None:
    config = parse_space_config(front_matter("sdk: gradio", f"python_version: {written}"))
    assert config.python_version == kept
    assert parse_space_config(front_matter("sdk: gradio", "sdk_version: 5.0")).sdk_version == "5.0"


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        *(("30m", 1800), ("90s", 90), ("90", 90), ("2h", 7200), ("1d", 86400), (" 5m ", 300)),
        *(("1.5h", 5400), ("1h30m", 5400), ("30 minutes", 1800), ("1w", 7 * 86400)),
    ],
)
def test_startup_duration_timeout(value: str, seconds: int) -> None:
    config = parse_space_config(front_matter("sdk: gradio", f"startup_duration_timeout: '{value}'"))
    assert config.startup_timeout_seconds == seconds


@pytest.mark.parametrize("value", ["soon", "5 parsecs", "-5m", "1h30", "0", "1.5.2h"])
def test_a_startup_duration_timeout_that_is_not_a_duration_is_refused(value: str) -> None:
    with pytest.raises(InvalidConfig) as raised:
        parse_space_config(front_matter("sdk: gradio", f"startup_duration_timeout: '{value}'"))
    assert "startup_duration_timeout" in raised.value.message
    assert raised.value.line == 3


def test_invalid_yaml_names_the_line() -> None:
    readme = front_matter("title: ok", "sdk: gradio", "tags: [a, b", "pinned: true")
    with pytest.raises(InvalidConfig) as raised:
        parse_space_config(readme)
    assert raised.value.line is not None and 4 <= raised.value.line <= 6
    assert "invalid YAML" in raised.value.message
    assert raised.value.message.startswith(f"line {raised.value.line}:")


def test_a_tab_indented_front_matter_names_its_line() -> None:
    with pytest.raises(InvalidConfig) as raised:
        parse_space_config(front_matter("sdk: gradio", "custom_headers:", "\tx: y"))
    assert raised.value.line == 4


def test_an_unknown_sdk_is_refused_listing_the_known_ones() -> None:
    with pytest.raises(InvalidConfig) as raised:
        parse_space_config(front_matter("title: x", "sdk: flask"))
    assert raised.value.line == 3
    assert "flask" in raised.value.message
    for sdk in ("gradio", "streamlit", "docker", "static"):
        assert sdk in raised.value.message


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("pinned: maybe", "pinned"),
        ("app_file: ../app.py", "app_file"),
        ("python_version: 2.7", "python_version"),
        ("tags: weather", "tags"),
        ("colorFrom: turquoise", "colorFrom"),
        ("short_description: [a, b]", "short_description"),
        ("custom_headers: [a]", "custom_headers"),
        ("base_path: ui", "base_path"),
        ("base_path: /a/../b", "base_path"),
        ("python_version: 3.10; rm -rf /", "python_version"),
        ("sdk_version: '$(id)'", "sdk_version"),
        ("license: [1, 2]", "license"),
    ],
)
def test_a_wrong_type_names_the_key_and_line(line: str, key: str) -> None:
    with pytest.raises(InvalidConfig) as raised:
        parse_space_config(front_matter("title: ok", "sdk: gradio", "emoji: x", line))
    assert raised.value.message.startswith(f"line 5: {key}"), raised.value.message
    assert raised.value.line == 5


def test_front_matter_that_is_not_a_mapping_is_refused() -> None:
    with pytest.raises(InvalidConfig) as raised:
        parse_space_config(front_matter("- gradio", "- streamlit"))
    assert "mapping" in raised.value.message


def test_missing_front_matter_uses_the_sdk_chosen_at_creation() -> None:
    assert parse_space_config("# Just a title\n", default_sdk="static").sdk == "static"
    assert parse_space_config(None, default_sdk="gradio").sdk == "gradio"
    assert parse_space_config(front_matter("title: x"), default_sdk="docker").sdk == "docker"
    assert parse_space_config(front_matter(), default_sdk="streamlit").sdk == "streamlit"
    # The front matter's sdk wins over the one chosen at creation.
    assert parse_space_config(front_matter("sdk: static"), default_sdk="gradio").sdk == "static"


@pytest.mark.parametrize("readme", ["# Just a title\n", None, "---\nsdk: gradio\n"])
def test_missing_front_matter_without_a_default_sdk_is_a_config_error(readme: str | None) -> None:
    with pytest.raises(InvalidConfig) as raised:
        parse_space_config(readme)
    assert "front matter" in raised.value.message


def test_front_matter_without_sdk_and_without_default_names_sdk() -> None:
    with pytest.raises(InvalidConfig) as raised:
        parse_space_config(front_matter("title: x"))
    assert "sdk" in raised.value.message


def test_unknown_keys_are_kept() -> None:
    config = parse_space_config(front_matter("sdk: gradio", "models: [gpt2]"))
    assert config.card_data["models"] == ["gpt2"]


# Build plans


def checkout(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, content in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return tmp_path


@pytest.mark.parametrize(
    ("sdk", "files", "missing"),
    [
        ("gradio", {"main.py": ""}, "app.py"),
        ("streamlit", {}, "app.py"),
        ("static", {"page.html": ""}, "index.html"),
        ("docker", {"app.py": ""}, "Dockerfile"),
    ],
)
def test_a_missing_app_file_is_no_app_file(
    tmp_path: Path, sdk: str, files: dict[str, str], missing: str
) -> None:
    source = checkout(tmp_path, {"README.md": front_matter(f"sdk: {sdk}"), **files})
    with pytest.raises(NoAppFile) as raised:
        plan_build(source, None)
    assert missing in raised.value.message


def test_app_file_named_in_front_matter_is_looked_for(tmp_path: Path) -> None:
    source = checkout(tmp_path, {"README.md": front_matter("sdk: gradio", "app_file: ui/main.py")})
    with pytest.raises(NoAppFile):
        plan_build(source, None)
    (tmp_path / "ui").mkdir()
    (tmp_path / "ui" / "main.py").write_text("")
    assert plan_build(source, None).config.app_file == "ui/main.py"


def test_an_app_file_outside_the_checkout_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "outside.py").write_text("")
    source = checkout(
        tmp_path / "repo", {"README.md": front_matter("sdk: gradio", "app_file: ../outside.py")}
    )
    with pytest.raises(InvalidConfig) as raised:
        plan_build(source, None)
    assert raised.value.line == 3 and "'..'" in raised.value.message


def test_a_directory_is_not_an_app_file(tmp_path: Path) -> None:
    source = checkout(tmp_path, {"README.md": front_matter("sdk: static"), "index.html/x": ""})
    with pytest.raises(NoAppFile):
        plan_build(source, None)


def test_a_plan_without_readme_uses_the_default_sdk(tmp_path: Path) -> None:
    source = checkout(tmp_path, {"index.html": "<h1>hi</h1>"})
    plan = plan_build(source, "static")
    assert plan.config.sdk == "static"
    with pytest.raises(InvalidConfig):
        plan_build(source, None)


def test_a_plan_lists_dependency_files(tmp_path: Path) -> None:
    source = checkout(
        tmp_path,
        {
            "README.md": front_matter("sdk: gradio"),
            "app.py": "",
            "requirements.txt": "numpy\n",
            "packages.txt": "ffmpeg\n# a comment\n\nlibsm6 libxext6  # two on a line\nffmpeg\n"
            "libgl1=1.7.0-1+b2\n",
        },
    )
    plan = plan_build(source, None)
    assert plan.has_requirements is True
    assert plan.has_pre_requirements is False
    assert plan.debian_packages == ("ffmpeg", "libgl1=1.7.0-1+b2", "libsm6", "libxext6")


@pytest.mark.parametrize(
    "entry",
    ["curl;id", "curl&&id", "$(id)", "`id`", "curl|sh", "Curl", "-y", "../x", "a>b", "curl\\"],
)
def test_packages_txt_refuses_what_is_not_a_package_name(tmp_path: Path, entry: str) -> None:
    source = checkout(
        tmp_path,
        {
            "README.md": front_matter("sdk: gradio"),
            "app.py": "",
            "packages.txt": f"ffmpeg\n{entry}\n",
        },
    )
    with pytest.raises(InvalidConfig) as raised:
        plan_build(source, None)
    assert "packages.txt line 2" in raised.value.message


def test_a_readme_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_bytes(b"---\nsdk: gradio\ntitle: \xff\n---\n")
    (tmp_path / "app.py").write_text("")
    with pytest.raises(InvalidConfig) as raised:
        plan_build(tmp_path, None)
    assert "UTF-8" in raised.value.message

"""Settings: documented, settable from the environment, and never global."""

import importlib
import os
import pkgutil
import shutil
import tempfile
import types
import typing
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine

import spacehub
from spacehub.platform.app import create_app
from spacehub.platform.settings import Settings, make_socket_dir

FIELDS = sorted(Settings.model_fields)


@pytest.fixture(autouse=True)
def _no_spacehub_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own SPACEHUB_* variables must not leak into these tests."""
    for name in list(os.environ):
        if name.upper().startswith("SPACEHUB_"):
            monkeypatch.delenv(name)


def test_settings_are_documented() -> None:
    undocumented = [
        name
        for name, field in Settings.model_fields.items()
        if not (field.description and len(field.description.strip()) > 10)
    ]
    assert undocumented == [], f"settings without a description: {undocumented}"


def sample_value(annotation: object, default: object) -> tuple[str, object]:
    """A value for the environment, unlike the default, and what it should parse to."""
    choices = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        inner = next(choice for choice in choices if choice is not type(None))
        return sample_value(inner, default)
    if typing.get_origin(annotation) is typing.Literal:
        value = next(choice for choice in choices if choice != default)
        return str(value), value
    if annotation is bool:
        return ("false", False) if default else ("true", True)
    if annotation is int:
        return "12345", 12345
    if annotation is float:
        return "2.5", 2.5
    if annotation is Path:
        return "/srv/spacehub-test", Path("/srv/spacehub-test")
    if annotation is SecretStr:
        return "hf_from_the_environment", "hf_from_the_environment"
    if annotation is str:
        return "from-the-environment", "from-the-environment"
    raise AssertionError(f"no sample value for a setting of type {annotation!r}: add one")


@pytest.mark.parametrize("name", FIELDS)
def test_every_setting_comes_from_its_environment_variable(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    field = Settings.model_fields[name]
    raw, expected = sample_value(field.annotation, field.default)
    monkeypatch.setenv(f"SPACEHUB_{name.upper()}", raw)
    value = getattr(Settings(), name)
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    assert value == expected
    assert value != field.default


def test_arguments_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPACEHUB_PORT", "9000")
    assert Settings().port == 9000
    assert Settings(port=9100).port == 9100


def test_defaults_derive_from_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, port=8123)
    assert settings.effective_public_url == "http://127.0.0.1:8123"
    assert settings.effective_database_url == f"sqlite:///{tmp_path / 'spacehub.db'}"
    assert settings.repos_dir.is_relative_to(tmp_path)
    assert Settings(public_url="https://hub.example/").effective_public_url == (
        "https://hub.example"
    )


def test_two_configurations_coexist_in_one_process(tmp_path: Path) -> None:
    # ssh_port=0: two platforms in one process would both listen on the default SSH port.
    first = Settings(
        data_dir=tmp_path / "one", admin_token=SecretStr("hf_first_admin_token"), ssh_port=0
    )
    second = Settings(
        data_dir=tmp_path / "two", admin_token=SecretStr("hf_second_admin_token"), ssh_port=0
    )
    one, two = create_app(first), create_app(second)
    assert one.state.platform.engine is not two.state.platform.engine

    with TestClient(one) as client_one, TestClient(two) as client_two:
        first_headers = {"Authorization": "Bearer hf_first_admin_token"}
        second_headers = {"Authorization": "Bearer hf_second_admin_token"}
        made = client_one.post(
            "/api/repos/create",
            json={"name": "only-in-one", "sdk": "static"},
            headers=first_headers,
        )
        assert made.status_code == 200, made.text
        assert made.json()["url"] == "http://127.0.0.1:8000/spaces/admin/only-in-one"

        assert [s["id"] for s in client_one.get("/api/spaces").json()] == ["admin/only-in-one"]
        assert client_two.get("/api/spaces").json() == []
        # Each platform knows only its own admin token.
        assert client_two.get("/api/whoami-v2", headers=first_headers).status_code == 401
        assert client_two.get("/api/whoami-v2", headers=second_headers).status_code == 200

    assert (tmp_path / "one" / "spacehub.db").is_file()
    assert (tmp_path / "two" / "spacehub.db").is_file()
    assert (tmp_path / "one" / "repos").is_dir()
    assert not (tmp_path / "two" / "repos" / "admin" / "only-in-one.git").exists()
    assert (tmp_path / "one" / "secret.key").read_bytes() != (
        tmp_path / "two" / "secret.key"
    ).read_bytes()


def test_no_module_builds_settings_or_an_engine_at_import() -> None:
    found = []
    for module_info in pkgutil.walk_packages(spacehub.__path__, "spacehub."):
        if ".migrations" in module_info.name or module_info.name == "spacehub.__main__":
            continue
        module = importlib.import_module(module_info.name)
        for attribute, value in vars(module).items():
            if isinstance(value, Settings | Engine):
                found.append(f"{module_info.name}.{attribute}")
    assert found == []


def test_sockets_stay_in_an_existing_run_dir_and_a_temp_folder_must_be_private(
    tmp_path: Path,
) -> None:
    """A data dir of an earlier version (run/ at 0755) keeps its sockets there; under a data
    dir too long for socket addresses they go to the temp dir, into a folder of this user's
    only: one that others could write is refused."""
    existing = Settings(data_dir=tmp_path / "data")
    existing.run_dir.mkdir(parents=True, mode=0o755)
    existing.run_dir.chmod(0o755)
    assert make_socket_dir(existing) == existing.run_dir
    assert existing.run_dir.stat().st_mode & 0o777 == 0o755

    long = Settings(data_dir=tmp_path / ("a-long-folder-name-" * 5) / "data")
    sockets = long.socket_dir
    assert sockets.parent == Path(tempfile.gettempdir())
    try:
        assert make_socket_dir(long) == sockets
        assert sockets.stat().st_mode & 0o777 == 0o700
        sockets.chmod(0o777)
        with pytest.raises(ValueError, match="is not a private folder"):
            make_socket_dir(long)
    finally:
        shutil.rmtree(sockets, ignore_errors=True)

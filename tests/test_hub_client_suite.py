"""huggingface_hub's own tests, where they apply to spaces, run against a `spacehub serve`.

The tests come from the sdist of the installed huggingface_hub (downloaded from PyPI at run time
and cached; never kept in this repository). The sdist has no conftest.py: the fixtures those
tests use are written next to them, and `testing_constants` is pointed at the platform.

Left out (HUB_API.md §10), each with the reason:
- `TestCommitApi` except `test_get_full_repo_name`: every other test makes a model repo
  (`repo_factory()`, `upload_file(repo_id=…)` without `repo_type`); spacehub hosts spaces only.
  `test_create_commit_repo_does_not_exist` expects `/api/models/…/preupload` to answer
  RepoNotFound (spacehub has no model routes: a plain 404); two need no server at all
  (`test_upload_file_validation`, `test_commit_operation_validation`).
- `TestHfApiEndpoints`: `test_move_repo_*`, `test_update_*repo_settings` use model and dataset
  repos; `test_whoami_with_implicit_token_*` need pytest-mock's `mocker`.
- `TestHfApiRepoFileExists`: a private model repo, and `test_file_exists` hard-codes hub-ci.
- `tests/test_cli.py::TestRepoListCommand::test_repo_list`: creates a model and a dataset repo
  and lists models (`hf repos ls --type model`).
- `TestHfApiPublicProduction` space tests: production data (HuggingFaceH4/zephyr-chat, >100
  spaces, spaces linked to bert-base-uncased).
- `TestSpaceAPIMocked`, the CLI space tests, `test_utils_errors.py`: no server (mocked).
"""

import importlib.metadata
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest

from tests.conftest import Platform, add_user, explain_failure

VERSION = importlib.metadata.version("huggingface_hub")
PACKAGE = f"huggingface_hub=={VERSION}"
SDIST = f"huggingface_hub-{VERSION}.tar.gz"

# Their names. spacehub accepts the user "__DUMMY_HUB_USER__" (whoami works) but refuses spaces
# under it: the app host label "--dummy-hub-user---…" would start with "-" (not a DNS label).
# So the leading underscores go: DUMMY_HUB_USER__ is the closest name that can own spaces.
USER = "DUMMY_HUB_USER__"
TOKEN = "hf_HubCITokenXXXXXXXXXXXXXXXXXXXXX"  # testing_constants.TOKEN
ORG, ORG_FULLNAME, FULL_NAME = "valid_org_hub", "Dummy Hub Org", "Dummy User"
# TestSpaceAPIProduction hard-codes HfApi(token="hf_fake_token") and the space user/tmp_test_space.
PRODUCTION_USER, PRODUCTION_TOKEN = "user", "hf_fake_token"
# Spaces their tests read: test_static_space_runtime, test_expand_space_property_type_is_up_to_date.
SEEDED_SPACES = ("victor/static-space", "black-forest-labs/FLUX.1-dev")

SELECTED = (
    "tests/test_hf_api.py::TestSpaceAPIProduction::test_manage_secrets",
    "tests/test_hf_api.py::TestSpaceAPIProduction::test_manage_variables",
    "tests/test_hf_api.py::TestSpaceAPIProduction::test_space_runtime",
    "tests/test_hf_api.py::TestSpaceAPIProduction::test_static_space_runtime",
    "tests/test_hf_api.py::TestSpaceAPIProduction::test_pause_and_restart_space",
    "tests/test_hf_api.py::TestHfApiEndpoints::test_whoami_with_passing_token",
    "tests/test_hf_api.py::TestHfApiEndpoints::test_whoami_with_caching",
    # These two delete a missing repo of the model type: spacehub has none, and says so (404).
    "tests/test_hf_api.py::TestHfApiEndpoints::test_delete_repo_error_message",
    "tests/test_hf_api.py::TestHfApiEndpoints::test_delete_repo_missing_ok",
    "tests/test_hf_api.py::TestCommitApi::test_get_full_repo_name",
    "tests/test_hf_api.py::TestExpandPropertyType::test_expand_space_property_type_is_up_to_date",
    "tests/test_repocard.py::TestMetadataUpdateOnMissingCard"
    "::test_metadata_update_missing_readme_on_space",
)

# Their fixtures (the GitHub repository's tests/conftest.py, reduced to what SELECTED uses).
CLIENT_CONFTEST = '''"""Fixtures for huggingface_hub's tests, written there by spacehub's tests."""

import os
from typing import Protocol

import pytest

from huggingface_hub import HfApi, RepoUrl, constants
from huggingface_hub.utils import _detect_agent

from .testing_constants import (
    ENDPOINT_PRODUCTION,
    ENDPOINT_PRODUCTION_URL_SCHEME,
    ENDPOINT_STAGING,
    TOKEN,
)
from .testing_utils import repo_name

CACHES = {
    "HF_HOME": "", "HF_HUB_CACHE": "hub", "HUGGINGFACE_HUB_CACHE": "hub", "HF_XET_CACHE": "xet",
    "HF_ASSETS_CACHE": "assets", "HF_TOKEN_PATH": "token", "HF_STORED_TOKENS_PATH": "tokens",
}


def pytest_configure(config):
    config.addinivalue_line("markers", "vcr: replays recorded Hub answers (not used here)")


@pytest.fixture(autouse=True)
def _own_cache_and_no_agent_lookup(tmp_path, monkeypatch):
    for name, sub in CACHES.items():
        monkeypatch.setattr(constants, name, os.path.join(tmp_path, "hf_home", sub))
    monkeypatch.setattr(_detect_agent, "_registry", _detect_agent._EMPTY_REGISTRY)


@pytest.fixture(autouse=True)
def _production_marker(request, monkeypatch):
    if request.node.get_closest_marker("production") is not None:
        monkeypatch.setattr(constants, "ENDPOINT", ENDPOINT_PRODUCTION)
        monkeypatch.setattr(
            constants, "HUGGINGFACE_CO_URL_TEMPLATE", ENDPOINT_PRODUCTION_URL_SCHEME
        )


@pytest.fixture(scope="session")
def api():
    return HfApi(endpoint=ENDPOINT_STAGING, token=TOKEN)


@pytest.fixture(scope="session")
def api_prod():
    return HfApi(endpoint=ENDPOINT_PRODUCTION)


class RepoFactory(Protocol):
    def __call__(self, repo_type: str = "model", **kwargs) -> RepoUrl: ...


@pytest.fixture
def repo_factory(api):
    created = []

    def factory(repo_type="model", **kwargs):
        if repo_type == "space":
            kwargs.setdefault("space_sdk", "gradio")
        kwargs.setdefault("repo_id", repo_name(prefix=repo_type))
        url = api.create_repo(repo_type=repo_type, **kwargs)
        created.append((url.repo_id, repo_type))
        return url

    yield factory
    for repo_id, repo_type in created:
        api.delete_repo(repo_id=repo_id, repo_type=repo_type, missing_ok=True)
'''


def sdist_cache(config: pytest.Config) -> Path:
    cache = getattr(config, "cache", None)  # absent under -p no:cacheprovider
    if cache is not None:
        return cache.mkdir("huggingface_hub-sdist")
    folder = Path(tempfile.gettempdir()) / "spacehub-huggingface_hub-sdist"
    folder.mkdir(exist_ok=True)
    return folder


def download_sdist(folder: Path) -> Path:
    """The sdist of the installed version, from PyPI once, then from the cache."""
    target = folder / SDIST
    if target.exists():
        return target
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
        result = subprocess.run(
            [*pip, "download", "--no-deps", "--no-binary", ":all:", "-d", scratch, PACKAGE],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, f"pip download failed:\n{result.stdout}\n{result.stderr}"
        os.replace(Path(scratch) / SDIST, target)  # atomic: parallel runs never see half a file
    return target


def unpack_tests(sdist: Path, into: Path) -> Path:
    """Their tests/ and pyproject.toml (its pytest markers), unpacked under `into`."""
    with tarfile.open(sdist) as tar:
        wanted = [
            member
            for member in tar.getmembers()
            if member.name.split("/")[1:2] in (["tests"], ["pyproject.toml"])
        ]
        tar.extractall(into, members=wanted, filter="data")
    return into / SDIST.removesuffix(".tar.gz")


def point_at(root: Path, platform: Platform) -> None:
    """Their conftest, and their constants pointed at the platform for both Hubs."""
    tests = root / "tests"
    (tests / "__init__.py").write_text("")
    (tests / "conftest.py").write_text(CLIENT_CONFTEST)
    constants = tests / "testing_constants.py"
    constants.write_text(
        constants.read_text()
        + "\n# spacehub's tests: the platform under test stands in for production and hub-ci\n"
        + f"ENDPOINT_PRODUCTION = ENDPOINT_STAGING = {platform.url!r}\n"
        + 'ENDPOINT_PRODUCTION_URL_SCHEME = ENDPOINT_PRODUCTION + "/{repo_id}/resolve/'
        + '{revision}/{filename}"\n'
        + f"USER = {USER!r}\n"
    )


def client_environment(platform: Platform, home: Path) -> dict[str, str]:
    """No HUGGINGFACE_CO_STAGING (it would override HF_ENDPOINT), no tokens from the host."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("HF_", "HUGGINGFACE_", "HUGGING_FACE_", "PYTEST_"))
    }
    return {
        **env,
        "HF_ENDPOINT": platform.url,  # module-level calls (metadata_update) use it
        "HF_HOME": str(home),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",  # none of theirs (env, vcr, mock) is needed
    }


@pytest.mark.docker  # their runtime tests expect a gradio space to be BUILDING after a commit
def test_huggingface_hub_space_tests_pass_against_spacehub(
    request: pytest.FixtureRequest, platform: Platform, tmp_path: Path
) -> None:
    sdist = download_sdist(sdist_cache(request.config))
    root = unpack_tests(sdist, tmp_path / "client")
    add_user(
        platform,
        USER,
        orgs=(ORG,),
        token=TOKEN,
        fullnames={USER: FULL_NAME, ORG: ORG_FULLNAME},
    )
    add_user(platform, PRODUCTION_USER, token=PRODUCTION_TOKEN)
    for space_id in SEEDED_SPACES:
        owner, _, _ = space_id.partition("/")
        platform.create_space(space_id, token=add_user(platform, owner))
    point_at(root, platform)
    explain_failure(request.node, "spacehub serve warnings and errors", platform.problems)

    # Their addopts dropped (-sv, --durations, --strict-markers); FutureWarnings still errors.
    options = ["-p", "no:cacheprovider", "-o", "addopts=", "-W", "error::FutureWarning"]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *SELECTED, *options, "-rA", "--tb=short", "-q"],
        cwd=root,
        env=client_environment(platform, tmp_path / "hf_home"),
        capture_output=True,
        text=True,
        timeout=120,
    )

    output = f"{result.stdout}\n{result.stderr}"
    passed = {line.split()[1] for line in result.stdout.splitlines() if line.startswith("PASSED ")}
    assert result.returncode == 0 and passed == set(SELECTED), output
    assert f"{len(SELECTED)} passed" in result.stdout, output

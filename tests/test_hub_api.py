"""The real huggingface_hub client against a running `spacehub serve`."""

import itertools
import json
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from huggingface_hub import HfApi
from huggingface_hub.errors import BadRequestError, HfHubHTTPError, RepositoryNotFoundError

from spacehub.platform.db import make_engine, session_scope
from spacehub.platform.models import TokenRole
from spacehub.platform.services import accounts
from tests.conftest import (
    ADMIN_TOKEN,
    EXAMPLES,
    Platform,
    make_checkout,
    push,
    start_platform,
)

INVALID_TOKEN = "Invalid credentials in Authorization header"
_counter = itertools.count()


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """One platform for the module: each test uses space names of its own."""
    running = start_platform(tmp_path_factory.mktemp("hub") / "data")
    yield running
    code = running.stop()
    assert code == 0, f"spacehub serve did not stop cleanly (exit {code}):\n{running.log()}"


@pytest.fixture(scope="module")
def tokens(hub: Platform) -> dict[str, str]:
    """Extra users and tokens, made through the service layer (there is no user-admin API)."""
    engine = make_engine(f"sqlite:///{hub.data_dir / 'spacehub.db'}")
    with session_scope(engine) as session:
        admin = accounts.user_by_name(session, "admin")
        bob = accounts.create_user(session, "bob")
        carol = accounts.create_user(session, "carol")
        team = accounts.create_user(session, "team", is_org=True)
        accounts.add_member(session, team, carol)
        # The org whose label collides with admin/a-b.
        accounts.create_user(session, "admin-a", is_org=True)
        answer = {
            "admin_read": accounts.create_token(session, admin, TokenRole.READ, "read"),
            "bob": accounts.create_token(session, bob, TokenRole.WRITE, "bob"),
            "carol": accounts.create_token(session, carol, TokenRole.WRITE, "carol"),
        }
    engine.dispose()
    return answer


@pytest.fixture
def api(hub: Platform) -> HfApi:
    return HfApi(endpoint=hub.url, token=ADMIN_TOKEN)


def new_name(prefix: str = "space") -> str:
    return f"{prefix}-{next(_counter)}"


def assert_error(answer: httpx.Response, status: int) -> str:
    """The answer has `status` and a JSON body `{"error": "<message>"}`; return the message."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/json"), answer.headers
    body = answer.json()
    assert isinstance(body.get("error"), str) and body["error"], body
    return body["error"]


def assert_hub_date(value: str) -> None:
    assert value.endswith("Z"), value
    datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ")


def test_whoami_names_the_admin_with_a_write_token(api: HfApi) -> None:
    me = api.whoami()
    assert me["name"] == "admin"
    assert me["type"] == "user"
    assert me["auth"]["accessToken"]["role"] == "write"


def test_whoami_lists_the_orgs_of_a_member(hub: Platform, tokens: dict[str, str]) -> None:
    me = HfApi(endpoint=hub.url, token=tokens["carol"]).whoami()
    assert me["name"] == "carol"
    assert [org["name"] for org in me["orgs"]] == ["team"]


def test_create_repo_returns_the_space_url(api: HfApi, hub: Platform) -> None:
    name = new_name()
    url = api.create_repo(f"admin/{name}", repo_type="space", space_sdk="static")
    assert url.repo_id == f"admin/{name}"
    assert url.repo_type == "space"
    assert str(url) == f"{hub.url}/spaces/admin/{name}"


def test_create_repo_of_an_existing_space_needs_exist_ok(api: HfApi, hub: Platform) -> None:
    space_id = f"admin/{new_name()}"
    api.create_repo(space_id, repo_type="space", space_sdk="static")
    again = api.create_repo(space_id, repo_type="space", space_sdk="static", exist_ok=True)
    assert again.repo_id == space_id
    with pytest.raises(HfHubHTTPError) as raised:
        api.create_repo(space_id, repo_type="space", space_sdk="static")
    assert raised.value.response.status_code == 409
    assert raised.value.response.json()["url"] == f"{hub.url}/spaces/{space_id}"


def test_create_repo_without_owner_uses_the_token_user(api: HfApi) -> None:
    name = new_name()
    url = api.create_repo(name, repo_type="space", space_sdk="gradio")
    assert url.repo_id == f"admin/{name}"
    assert api.space_info(f"admin/{name}").sdk == "gradio"


def test_create_private_space(api: HfApi, hub: Platform, tokens: dict[str, str]) -> None:
    space_id = f"admin/{new_name('private')}"
    api.create_repo(space_id, repo_type="space", space_sdk="static", private=True)
    assert api.space_info(space_id).private is True
    public_id = f"admin/{new_name()}"
    api.create_repo(public_id, repo_type="space", space_sdk="static", private=False)
    assert api.space_info(public_id).private is False


def test_space_info_before_any_push(api: HfApi, hub: Platform) -> None:
    name = new_name()
    space_id = f"admin/{name}"
    api.create_repo(space_id, repo_type="space", space_sdk="static")
    info = api.space_info(space_id)
    assert info.id == space_id
    assert info.author == "admin"
    assert info.sdk == "static"
    assert info.private is False
    assert info.host == f"{hub.apps_url}/apps/admin/{name}/"
    assert info.runtime is not None and info.runtime.stage == "NO_APP_FILE"
    assert isinstance(info.last_modified, datetime)
    assert abs(info.last_modified - datetime.now(UTC)) < timedelta(minutes=5)
    assert isinstance(info.created_at, datetime)
    assert api.get_space_runtime(space_id).stage == "NO_APP_FILE"
    with hub.api() as client:
        raw = client.get(f"/api/spaces/{space_id}").json()
    assert_hub_date(raw["lastModified"])
    assert_hub_date(raw["createdAt"])


def test_push_of_a_static_site_runs_with_build_logs(
    api: HfApi, hub: Platform, tmp_path: Path
) -> None:
    name = new_name("site")
    space_id = f"admin/{name}"
    api.create_repo(space_id, repo_type="space", space_sdk="static")
    site = EXAMPLES / "static-site"
    checkout = make_checkout(tmp_path / "site", site, hub.git_url(space_id))
    result = push(hub, checkout, space_id)
    assert result.returncode == 0, result.stderr
    commit = (checkout / ".git" / "refs" / "heads" / "main").read_text().strip()
    # The push is recorded before git returns: a poller never sees the stage from before it.
    assert api.get_space_runtime(space_id).stage != "NO_APP_FILE"

    hub.wait_stage(space_id, {"RUNNING"}, timeout=60)
    assert api.get_space_runtime(space_id).stage == "RUNNING"
    info = api.space_info(space_id)
    assert info.sha == commit
    assert {"README.md", "index.html", "style.css"} <= {s.rfilename for s in info.siblings or []}
    page = httpx.get(f"{hub.apps_url}/apps/admin/{name}/", timeout=10)
    assert page.status_code == 200
    assert page.text == (EXAMPLES / "static-site" / "index.html").read_text()

    lines = list(api.fetch_space_logs(space_id, build=True, follow=False))
    assert lines, "the build log is empty"
    assert all(line.endswith("\n") for line in lines)
    assert f"Building {space_id} at commit {commit}\n" in lines
    with hub.api() as client, client.stream("GET", f"/api/spaces/{space_id}/logs/build") as sse:
        assert sse.status_code == 200
        events = [
            json.loads(line.removeprefix("data: "))
            for line in sse.iter_lines()
            if line.startswith("data: {")
        ]
    assert [event["data"] for event in events] == lines
    for event in events:
        assert_hub_date(event["timestamp"])

    paused = api.pause_space(space_id)
    assert paused.stage == "PAUSED"
    assert api.get_space_runtime(space_id).stage == "PAUSED"
    restarted = api.restart_space(space_id)
    assert restarted.stage == "RUNNING"
    assert api.get_space_runtime(space_id).stage == "RUNNING"

    api.delete_repo(space_id, repo_type="space")
    assert not api.repo_exists(space_id, repo_type="space")
    assert httpx.get(f"{hub.apps_url}/apps/admin/{name}/", timeout=10).status_code == 404


def test_errors_carry_the_request_id_the_client_sent_and_quotes(api: HfApi, hub: Platform) -> None:
    with pytest.raises(RepositoryNotFoundError) as missing:
        api.delete_repo(f"admin/{new_name()}", repo_type="space")
    request_id = missing.value.response.headers["X-Request-Id"]
    assert request_id == missing.value.response.request.headers["X-Amzn-Trace-Id"]
    assert str(missing.value).startswith(f"404 Client Error. (Request ID: {request_id})")
    with hub.api() as client:
        own_id = client.get("/api/whoami-v2").headers["X-Request-Id"]
        hostile = client.get("/api/whoami-v2", headers={"X-Request-Id": "a\tb<script>"})
    assert re.fullmatch(r"[0-9a-f]{16}", own_id)
    assert re.fullmatch(r"[0-9a-f]{16}", hostile.headers["X-Request-Id"])


def test_an_unknown_expand_property_is_a_400_naming_the_known_ones(api: HfApi) -> None:
    space_id = f"admin/{new_name()}"
    api.create_repo(space_id, repo_type="space", space_sdk="static")
    assert api.space_info(space_id, expand=["sdk", "runtime", "cardData"]).id == space_id
    with pytest.raises(BadRequestError) as unknown:
        api.space_info(space_id, expand=["sdk", "downloads"])
    message = unknown.value.response.json()["error"]
    assert message.startswith("invalid expand value 'downloads': expected one of \"author\"|")
    assert '"runtime"' in message and '"usedStorage"' in message
    with pytest.raises(BadRequestError):
        list(api.list_spaces(expand=["downloads"]))


def test_restart_of_a_paused_space_that_never_built_unpauses_it(api: HfApi, hub: Platform) -> None:
    """As on the Hub (huggingface_hub's test_pause_and_restart_space): restart leaves PAUSED."""
    space_id = f"admin/{new_name()}"
    api.create_repo(space_id, repo_type="space", space_sdk="static")  # no index.html: no release
    assert api.pause_space(space_id).stage == "PAUSED"
    assert api.restart_space(space_id).stage == "BUILDING"
    assert hub.wait_stage(space_id, {"NO_APP_FILE"}, timeout=30)["stage"] == "NO_APP_FILE"


def test_list_spaces_by_author_and_search(
    api: HfApi, hub: Platform, tokens: dict[str, str]
) -> None:
    bob = HfApi(endpoint=hub.url, token=tokens["bob"])
    for name in ("alpha-one", "alpha-two", "beta"):
        bob.create_repo(f"bob/{name}", repo_type="space", space_sdk="static")
    bob.create_repo("bob/alpha-hidden", repo_type="space", space_sdk="static", private=True)

    mine = {space.id for space in bob.list_spaces(author="bob")}
    assert mine == {"bob/alpha-one", "bob/alpha-two", "bob/beta", "bob/alpha-hidden"}
    found = {space.id for space in bob.list_spaces(author="bob", search="alpha")}
    assert found == {"bob/alpha-one", "bob/alpha-two", "bob/alpha-hidden"}
    anonymous = HfApi(endpoint=hub.url, token=False)
    assert {space.id for space in anonymous.list_spaces(author="bob")} == {
        "bob/alpha-one",
        "bob/alpha-two",
        "bob/beta",
    }
    assert len(list(bob.list_spaces(author="bob", limit=2))) == 2


def test_list_spaces_shows_private_spaces_to_org_members_and_admins_only(
    api: HfApi, hub: Platform, tokens: dict[str, str]
) -> None:
    api.create_repo("team/listed-secret", repo_type="space", space_sdk="static", private=True)

    def listed(token: str | bool) -> set[str]:
        client = HfApi(endpoint=hub.url, token=token)
        return {space.id for space in client.list_spaces(author="team")}

    assert "team/listed-secret" in listed(tokens["carol"]), "an org member"
    assert "team/listed-secret" in listed(ADMIN_TOKEN), "an admin"
    assert "team/listed-secret" not in listed(tokens["bob"])
    assert "team/listed-secret" not in listed(False)


def test_list_spaces_search_matches_underscores_literally(api: HfApi) -> None:
    for name in ("under_score", "underXscore"):
        api.create_repo(f"admin/{name}", repo_type="space", space_sdk="static")
    found = {space.id for space in api.list_spaces(author="admin", search="under_s")}
    assert found == {"admin/under_score"}


def test_list_spaces_pages_with_an_absolute_link(hub: Platform, tokens: dict[str, str]) -> None:
    owner = HfApi(endpoint=hub.url, token=tokens["carol"])
    created = {f"carol/{new_name('paged')}" for _ in range(5)}
    for space_id in created:
        owner.create_repo(space_id, repo_type="space", space_sdk="static")

    seen: list[str] = []
    url: str | None = f"{hub.url}/api/spaces?author=carol&limit=2"
    pages = 0
    while url:
        answer = httpx.get(url, timeout=10)
        assert answer.status_code == 200, answer.text
        seen += [item["id"] for item in answer.json()]
        pages += 1
        link = answer.headers.get("link")
        if link is None:
            break
        assert link.startswith(f"<{hub.url}/api/spaces?"), link
        assert link.endswith('>; rel="next"'), link
        url = link[1 : link.index(">")]
        assert "author=carol" in url and "limit=2" in url
    assert pages == 3
    assert sorted(seen) == sorted(created)


def test_missing_or_private_spaces_are_not_found(
    api: HfApi, hub: Platform, tokens: dict[str, str]
) -> None:
    space_id = f"admin/{new_name('secret-place')}"
    api.create_repo(space_id, repo_type="space", space_sdk="static", private=True)
    bob = HfApi(endpoint=hub.url, token=tokens["bob"])
    anonymous = HfApi(endpoint=hub.url, token=False)

    assert api.repo_exists(space_id, repo_type="space")
    assert not api.repo_exists("admin/does-not-exist", repo_type="space")
    assert not bob.repo_exists(space_id, repo_type="space")
    assert not anonymous.repo_exists(space_id, repo_type="space")
    for client in (api, bob):
        with pytest.raises(RepositoryNotFoundError):
            client.space_info("admin/does-not-exist")
    with pytest.raises(RepositoryNotFoundError):
        bob.space_info(space_id)
    with pytest.raises(RepositoryNotFoundError):
        bob.get_space_runtime(space_id)
    for token in (tokens["bob"], None):
        with hub.api(token) as client:
            for path in (f"/api/spaces/{space_id}", "/api/spaces/admin/does-not-exist"):
                answer = client.get(path)
                assert_error(answer, 404)
                assert answer.headers["x-error-code"] == "RepoNotFound"
    with hub.api(tokens["bob"]) as client:
        listed = {item["id"] for item in client.get("/api/spaces?author=admin").json()}
    assert space_id not in listed


def test_org_members_see_the_orgs_private_spaces(api: HfApi, hub: Platform, tokens) -> None:
    space_id = f"team/{new_name()}"
    api.create_repo(space_id, repo_type="space", space_sdk="static", private=True)
    carol = HfApi(endpoint=hub.url, token=tokens["carol"])
    assert carol.space_info(space_id).private is True
    carol.add_space_variable(space_id, "FROM_MEMBER", "1")
    bob = HfApi(endpoint=hub.url, token=tokens["bob"])
    assert not bob.repo_exists(space_id, repo_type="space")


def test_others_cannot_change_a_public_space(api: HfApi, hub: Platform, tokens) -> None:
    space_id = f"admin/{new_name()}"
    api.create_repo(space_id, repo_type="space", space_sdk="static")
    bob = HfApi(endpoint=hub.url, token=tokens["bob"])
    assert bob.space_info(space_id).id == space_id
    with pytest.raises(HfHubHTTPError) as raised:
        bob.add_space_secret(space_id, "KEY", "value")
    assert raised.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError) as raised:
        bob.delete_repo(space_id, repo_type="space")
    assert raised.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError) as raised:
        bob.create_repo(f"admin/{new_name()}", repo_type="space", space_sdk="static")
    assert raised.value.response.status_code == 403
    assert api.repo_exists(space_id, repo_type="space")


def test_delete_repo_removes_the_space(api: HfApi, hub: Platform) -> None:
    space_id = f"admin/{new_name()}"
    api.create_repo(space_id, repo_type="space", space_sdk="static")
    api.add_space_secret(space_id, "KEY", "value")
    api.add_space_variable(space_id, "VAR", "value")
    api.delete_repo(space_id, repo_type="space")
    assert not api.repo_exists(space_id, repo_type="space")
    api.delete_repo(space_id, repo_type="space", missing_ok=True)
    with pytest.raises(RepositoryNotFoundError):
        api.delete_repo(space_id, repo_type="space")
    # The name is free again.
    api.create_repo(space_id, repo_type="space", space_sdk="static")
    assert api.get_space_runtime(space_id).stage == "NO_APP_FILE"


def test_secret_values_never_appear_in_api_answers(api: HfApi, hub: Platform) -> None:
    space_id = f"admin/{new_name()}"
    value = "s3cr3t-value-that-must-not-leak"
    api.create_repo(space_id, repo_type="space", space_sdk="static")
    api.add_space_secret(space_id, "API_KEY", value, description="the key")
    api.add_space_variable(space_id, "MODEL", "small")

    secrets = api.get_space_secrets(space_id)
    assert set(secrets) == {"API_KEY"}
    assert secrets["API_KEY"].description == "the key"
    with hub.api() as client:
        answers = [
            client.get(f"/api/spaces/{space_id}"),
            client.get(f"/api/spaces/{space_id}/runtime"),
            client.get(f"/api/spaces/{space_id}/secrets"),
            client.get(f"/api/spaces/{space_id}/variables"),
            client.get("/api/spaces?author=admin&full=true"),
        ]
        raw_secrets = answers[2].json()
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert value not in answer.text
    assert_hub_date(raw_secrets["API_KEY"]["updatedAt"])
    assert value not in hub.log()

    api.add_space_secret(space_id, "API_KEY", "another-value")
    assert set(api.get_space_secrets(space_id)) == {"API_KEY"}
    api.delete_space_secret(space_id, "API_KEY")
    assert api.get_space_secrets(space_id) == {}
    api.delete_space_secret(space_id, "NEVER_SET")


def test_variables_answer_the_full_set(api: HfApi, hub: Platform) -> None:
    space_id = f"admin/{new_name()}"
    api.create_repo(space_id, repo_type="space", space_sdk="static")
    assert api.get_space_variables(space_id) == {}
    after_add = api.add_space_variable(space_id, "MODEL", "small", description="size")
    assert after_add["MODEL"].value == "small"
    assert after_add["MODEL"].description == "size"
    after_second = api.add_space_variable(space_id, "TEMPERATURE", "0.7")
    assert {key: v.value for key, v in after_second.items()} == {
        "MODEL": "small",
        "TEMPERATURE": "0.7",
    }
    updated = api.add_space_variable(space_id, "MODEL", "large")
    assert updated["MODEL"].value == "large"
    assert {key: v.value for key, v in api.get_space_variables(space_id).items()} == {
        "MODEL": "large",
        "TEMPERATURE": "0.7",
    }
    after_delete = api.delete_space_variable(space_id, "MODEL")
    assert set(after_delete) == {"TEMPERATURE"}
    after_missing = api.delete_space_variable(space_id, "NEVER_SET")
    assert set(after_missing) == {"TEMPERATURE"}
    with hub.api() as client:
        raw = client.get(f"/api/spaces/{space_id}/variables").json()
        bad_key = client.post(
            f"/api/spaces/{space_id}/variables", json={"key": "1-bad key", "value": "x"}
        )
    assert_hub_date(raw["TEMPERATURE"]["updatedAt"])
    assert "invalid key" in assert_error(bad_key, 422)


def test_create_repo_with_secrets_and_variables(hub: Platform, api: HfApi) -> None:
    space_id = f"admin/{new_name()}"
    api.create_repo(
        space_id,
        repo_type="space",
        space_sdk="static",
        space_secrets=[{"key": "TOKEN", "value": "hidden-at-creation"}],
        space_variables=[{"key": "MODE", "value": "demo"}],
    )
    assert set(api.get_space_secrets(space_id)) == {"TOKEN"}
    assert api.get_space_variables(space_id)["MODE"].value == "demo"


@pytest.mark.filterwarnings("ignore:If your Space runs on the default")
def test_sleep_time_and_hardware(api: HfApi, hub: Platform) -> None:
    space_id = f"admin/{new_name()}"
    api.create_repo(space_id, repo_type="space", space_sdk="static")
    runtime = api.set_space_sleep_time(space_id, 600)
    assert runtime.sleep_time == 600
    assert api.get_space_runtime(space_id).sleep_time == 600
    runtime = api.request_space_hardware(space_id, "cpu-upgrade")
    assert runtime.requested_hardware == "cpu-upgrade"
    assert api.get_space_runtime(space_id).requested_hardware == "cpu-upgrade"
    assert api.space_info(space_id).runtime.requested_hardware == "cpu-upgrade"

    with pytest.raises(HfHubHTTPError) as raised:
        api.request_space_hardware(space_id, "a100-imaginary")
    assert raised.value.response.status_code == 422
    assert "a100-imaginary" in assert_error(raised.value.response, 422)
    assert api.get_space_runtime(space_id).requested_hardware == "cpu-upgrade"


def test_hardware_request_without_a_flavor_keeps_it_and_sets_the_sleep_time(
    api: HfApi, hub: Platform
) -> None:
    """What gradio_client's Client.duplicate sends for a source that runs on no hardware."""
    space_id = f"admin/{new_name()}"
    api.create_repo(space_id, repo_type="space", space_sdk="static")
    api.request_space_hardware(space_id, "cpu-upgrade")
    with hub.api() as client:
        answer = client.post(
            f"/api/spaces/{space_id}/hardware", json={"flavor": None, "sleepTimeSeconds": 300}
        )
        assert answer.status_code == 200, answer.text
        missing = client.post(f"/api/spaces/{space_id}/hardware", json={})
    assert missing.status_code == 422, missing.text
    runtime = api.get_space_runtime(space_id)
    assert runtime.requested_hardware == "cpu-upgrade"
    assert runtime.sleep_time == 300


def test_hardware_list_has_the_hub_shape(api: HfApi) -> None:
    flavors = api.list_spaces_hardware()
    assert {flavor.name for flavor in flavors} >= {"cpu-basic", "cpu-upgrade"}


def test_a_bad_token_is_401_with_the_hub_message(hub: Platform) -> None:
    with hub.api("hf_not_a_real_token") as client:
        for answer in (client.get("/api/whoami-v2"), client.get("/api/spaces")):
            assert assert_error(answer, 401) == INVALID_TOKEN
            assert answer.json() == {"error": INVALID_TOKEN}
            assert "x-error-code" not in answer.headers
    with pytest.raises(HfHubHTTPError):
        HfApi(endpoint=hub.url, token="hf_not_a_real_token").whoami()


def test_a_read_token_cannot_create(hub: Platform, tokens: dict[str, str]) -> None:
    reader = HfApi(endpoint=hub.url, token=tokens["admin_read"])
    assert reader.whoami()["auth"]["accessToken"]["role"] == "read"
    with pytest.raises(HfHubHTTPError) as raised:
        reader.create_repo(f"admin/{new_name()}", repo_type="space", space_sdk="static")
    assert "read-only" in assert_error(raised.value.response, 403)


def test_no_token_cannot_create(hub: Platform) -> None:
    with hub.api(None) as client:
        answer = client.post("/api/repos/create", json={"name": new_name(), "sdk": "static"})
    assert_error(answer, 401)


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("a--b", "'--'"),
        ("-a", "start or end"),
        ("a-", "start or end"),
        ("a..b", "'..'"),
        ("x" * 97, "1 to 96"),
        ("x.git", ".git"),
        ("a/b", "letters, digits"),
        ("a b", "letters, digits"),
        ("", "1 to 96"),
    ],
)
def test_bad_names_are_refused_naming_the_rule(hub: Platform, name: str, rule: str) -> None:
    with hub.api() as client:
        answer = client.post(
            "/api/repos/create", json={"name": name, "type": "space", "sdk": "static"}
        )
    assert rule in assert_error(answer, 422)


def test_names_whose_app_hosts_collide_are_refused(hub: Platform, tokens) -> None:
    with hub.api() as client:
        first = client.post("/api/repos/create", json={"name": "a-b", "sdk": "static"})
        assert first.status_code == 200, first.text
        clash = client.post(
            "/api/repos/create", json={"name": "b", "organization": "admin-a", "sdk": "static"}
        )
        assert "admin-a-b" in assert_error(clash, 409)

        assert client.post("/api/repos/create", json={"name": "my_app", "sdk": "static"}).is_success
        for other in ("my-app", "My.App", "MY_APP"):
            clash = client.post("/api/repos/create", json={"name": other, "sdk": "static"})
            assert "admin-my-app" in assert_error(clash, 409)
    api = HfApi(endpoint=hub.url, token=ADMIN_TOKEN)
    assert not api.repo_exists("admin-a/b", repo_type="space")
    assert not api.repo_exists("admin/my-app", repo_type="space")


def test_an_app_host_label_over_63_characters_is_refused(hub: Platform) -> None:
    longest = "n" * (63 - len("admin-"))
    with hub.api() as client:
        too_long = client.post("/api/repos/create", json={"name": longest + "n", "sdk": "static"})
        assert "63" in assert_error(too_long, 422)
        fits = client.post("/api/repos/create", json={"name": longest, "sdk": "static"})
        assert fits.status_code == 200, fits.text


def test_malformed_requests_answer_json_errors(hub: Platform) -> None:
    space_id = f"admin/{new_name()}"
    hub.create_space(space_id)
    with hub.api() as client:
        assert_error(client.post("/api/repos/create", json={"sdk": "static"}), 422)
        unknown_sdk = client.post("/api/repos/create", json={"name": new_name(), "sdk": "php"})
        assert "php" in assert_error(unknown_sdk, 400)
        assert_error(client.post("/api/repos/create", content=b"{not json"), 422)
        assert_error(client.post(f"/api/spaces/{space_id}/sleeptime", json={"seconds": -5}), 422)
        assert_error(client.get("/api/no-such-route"), 404)
        assert_error(client.request("DELETE", "/api/repos/delete", json={"name": "nope"}), 404)


def test_request_bodies_over_the_limit_are_413(tmp_path: Path) -> None:
    small = start_platform(tmp_path / "d", MAX_REQUEST_BYTES="1000")
    try:
        with small.api() as client:
            big = {"name": "big", "sdk": "static", "padding": "x" * 2000}
            message = assert_error(client.post("/api/repos/create", json=big), 413)
            assert "1000" in message

            def chunks() -> Iterator[bytes]:
                yield b'{"name": "chunked", "sdk": "static", "padding": "'
                for _ in range(10):
                    yield b"x" * 500
                yield b'"}'

            assert_error(client.post("/api/repos/create", content=chunks()), 413)
            fits = client.post("/api/repos/create", json={"name": "fits", "sdk": "static"})
            assert fits.status_code == 200, fits.text
        api = HfApi(endpoint=small.url, token=ADMIN_TOKEN)
        assert not api.repo_exists("admin/big", repo_type="space")
        assert not api.repo_exists("admin/chunked", repo_type="space")
    finally:
        assert small.stop() == 0, small.log()

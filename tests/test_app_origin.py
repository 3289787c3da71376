"""No app runs on the dashboard's origin, and who may open a private app follows the accounts.

The path form of apps answers on an apps origin of its own (a second port, on another host name
by default: `localhost` beside `127.0.0.1`); the main origin sends old links there. Checked in
Chromium: an app's script sees none of the dashboard's cookies and cannot read the API as the
visitor. A signed-in browser opens a private app with a one-time ticket exchanged for a cookie of
that app alone. Removing a member, revoking a token or disabling a user closes the app at once.
"""

import json
import time
from collections.abc import Iterator

import httpx
import pytest
from huggingface_hub import CommitOperationAdd, HfApi

from spacehub.platform.app_tickets import AppSigner
from tests.conftest import ADMIN_TOKEN, Platform, start_platform, stop_cleanly, wait_for

# What an app's script finds out about the dashboard it was opened from, reported in its title.
SPY_PAGE = """<!doctype html>
<html lang="fr"><head><meta charset="utf-8"><title>en cours…</title></head>
<body><h1>Carnet de l'équipe — données privées</h1>
<script>
(async () => {
  const report = {cookie: document.cookie, origin: location.origin};
  try {
    const answer = await fetch("MAIN_ORIGIN/api/whoami-v2", {credentials: "include"});
    report.whoami = answer.status + " " + await answer.text();
  } catch (error) {
    report.whoami = "unreadable: " + error.name;
  }
  document.title = JSON.stringify(report);
})();
</script></body></html>
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    running = start_platform(tmp_path_factory.mktemp("origin") / "data")
    yield running
    stop_cleanly(running)


def publish_static(platform: Platform, space_id: str, files: dict[str, bytes], private: bool):
    api = HfApi(endpoint=platform.url, token=ADMIN_TOKEN)
    api.create_repo(space_id, repo_type="space", space_sdk="static", private=private)
    # One commit: a stage of RUNNING then means these files are served.
    added = [CommitOperationAdd(path, content) for path, content in files.items()]
    api.create_commit(space_id, added, commit_message="Site", repo_type="space")
    platform.wait_stage(space_id, {"RUNNING"}, 60)


def admin_call(platform: Platform, method: str, path: str, **body: object) -> httpx.Response:
    with platform.api() as client:
        answer = client.request(method, path, json=body or None)
    assert answer.is_success, answer.text
    return answer


def new_user_token(platform: Platform, name: str) -> tuple[str, int]:
    admin_call(platform, "POST", "/api/admin/users", name=name, fullname=f"{name.title()} Ünal")
    created = admin_call(
        platform, "POST", f"/api/admin/users/{name}/tokens", displayName="apps", role="read"
    ).json()
    return created["token"], created["id"]


def status_with(platform: Platform, url: str, token: str) -> int:
    return httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code


def test_the_path_form_answers_on_the_apps_origin_only(served: Platform):
    space_id = "admin/carnet-public"
    page = "<!doctype html><title>Carnet</title><p>Bonjour à tous</p>"
    publish_static(
        served, space_id, {"index.html": page.encode(), "notes été.txt": b"x" * 4096}, False
    )

    app = f"{served.apps_url}/apps/{space_id}/"
    assert served.apps_url != served.url
    assert httpx.get(app, timeout=10).text == page
    info = HfApi(endpoint=served.url, token=ADMIN_TOKEN).space_info(space_id)
    assert info.host == app

    # Old links on the main origin are sent on, path and query kept, method kept (307).
    moved = httpx.get(f"{served.url}/apps/{space_id}/notes%20%C3%A9t%C3%A9.txt?v=2", timeout=10)
    assert moved.status_code == 307
    assert moved.headers["location"] == f"{app}notes%20%C3%A9t%C3%A9.txt?v=2"
    followed = httpx.get(moved.headers["location"], timeout=10)
    assert followed.status_code == 200 and followed.content == b"x" * 4096

    # The apps origin serves no API, dashboard or git: an app cannot reach them same-origin.
    for path in ("/api/whoami-v2", "/", f"/spaces/{space_id}/info/refs"):
        refused = httpx.get(f"{served.apps_url}{path}", headers=auth(ADMIN_TOKEN), timeout=10)
        assert refused.status_code == 404, path
    # The subdomain form is its own origin per space, on the main port as before.
    label = space_id.replace("/", "-")
    by_host = httpx.get(served.url, headers={"Host": f"{label}.localhost:{served.port}"})
    assert by_host.text == page


def test_the_api_never_lets_a_foreign_origin_read_with_credentials(served: Platform):
    for method in ("GET", "OPTIONS"):
        answer = httpx.request(
            method,
            f"{served.url}/api/whoami-v2",
            headers={
                "Origin": served.apps_url,
                "Access-Control-Request-Method": "GET",
                "Cookie": "spacehub_session=x",
            },
            timeout=10,
        )
        assert "access-control-allow-credentials" not in answer.headers
        assert answer.headers.get("access-control-allow-origin") in (None, "*")


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_an_apps_script_cannot_read_or_use_the_dashboard_session(served: Platform, browser):
    space_id = "admin/espion"
    spy = SPY_PAGE.replace("MAIN_ORIGIN", served.url)
    publish_static(served, space_id, {"index.html": spy.encode()}, False)
    context = browser.new_context()
    # The dashboard's session as it sets it (HttpOnly, SameSite=Lax, host-only), and a cookie a
    # dashboard script could read: neither may be visible to, or sent with, an app's requests.
    context.add_cookies(
        [
            {
                "name": "spacehub_session",
                "value": "signed.session.value",
                "url": served.url,
                "httpOnly": True,
                "sameSite": "Lax",
            },
            {"name": "theme", "value": "sombre", "url": served.url, "sameSite": "Lax"},
        ]
    )
    page = context.new_page()
    # Through an old main-origin link: the browser ends on the apps origin.
    page.goto(f"{served.url}/apps/{space_id}/")
    wait_for(lambda: page.title().startswith("{"), 20, "the app's script to report")
    report = json.loads(page.title())
    context.close()

    assert report["origin"] == served.apps_url
    assert report["cookie"] == ""
    assert report["whoami"] == "unreadable: TypeError", report


def test_a_signed_in_browser_opens_its_private_app_with_a_one_time_ticket(
    served: Platform, browser
):
    space_id = "admin/journal-privé".replace("é", "e")
    secret = "<!doctype html><title>Journal</title><p>Réunion à 10 h, salle Ω</p>"
    publish_static(served, space_id, {"index.html": secret.encode()}, True)
    app = f"{served.apps_url}/apps/{space_id}/"
    # What the dashboard does for a signed-in user who may read the space: sign a ticket.
    ticket = AppSigner.for_data_dir(served.data_dir).ticket("admin", space_id)

    context = browser.new_context()
    page = context.new_page()
    assert page.goto(app).status == 404  # no credentials, no app
    opened = page.goto(f"{app}?__sign={ticket}&tab=notes")
    assert opened.status == 200
    assert page.url == f"{app}?tab=notes"  # the ticket left the address bar and history
    assert "Réunion à 10 h" in page.content()
    assert page.evaluate("document.cookie") == ""  # the app-access cookie is HttpOnly
    (cookie,) = [c for c in context.cookies() if c["name"] == "spacehub-app"]
    assert cookie["path"] == f"/apps/{space_id}/" and cookie["httpOnly"]
    assert page.reload().status == 200  # the cookie, not the ticket, opens it now
    context.close()

    # A ticket works once: a second browser with the same URL gets nothing.
    stranger = browser.new_context()
    assert stranger.new_page().goto(f"{app}?__sign={ticket}").status == 404
    stranger.close()
    # A forged or tampered ticket is ignored.
    forged = ticket[:-2] + ("AA" if not ticket.endswith("AA") else "BB")
    assert httpx.get(f"{app}?__sign={forged}", timeout=10).status_code == 404


def test_access_to_a_private_app_follows_account_changes_at_once(served: Platform):
    admin_call(served, "POST", "/api/admin/orgs", name="labo", fullname="Labo Ω")
    bob, bob_token_id = new_user_token(served, "bob")
    carla, _ = new_user_token(served, "carla")
    for user in ("bob", "carla"):
        admin_call(served, "POST", "/api/admin/orgs/labo/members", user=user, role="read")
    space_id = "labo/mesures"
    publish_static(
        served,
        space_id,
        {"index.html": b"<p>mesures du jour</p>", "data.bin": b"\x00" * (2 * 1024 * 1024)},
        True,
    )
    app = f"{served.apps_url}/apps/{space_id}/data.bin"
    assert status_with(served, app, bob) == 200
    assert status_with(served, app, carla) == 200

    # Removed from the org: bob's token no longer opens the app, within a second.
    admin_call(served, "DELETE", "/api/admin/orgs/labo/members/bob")
    started = time.monotonic()
    wait_for(lambda: status_with(served, app, bob) == 404, 1, "bob's access to end")
    removed_after = time.monotonic() - started
    assert status_with(served, app, carla) == 200

    # Back in, then his token revoked: 404 on the very next request.
    admin_call(served, "POST", "/api/admin/orgs/labo/members", user="bob", role="read")
    wait_for(lambda: status_with(served, app, bob) == 200, 1, "bob's access to come back")
    admin_call(served, "DELETE", f"/api/admin/tokens/{bob_token_id}")
    assert status_with(served, app, bob) == 404

    # Disabled: carla's token stops at once too.
    admin_call(served, "PATCH", "/api/admin/users/carla", disabled=True)
    assert status_with(served, app, carla) == 404
    print(f"access ended {removed_after * 1000:.0f} ms after the member was removed")

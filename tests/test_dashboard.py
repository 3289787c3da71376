"""The dashboard in a real browser: Debian's Chromium driven by Playwright, against a real serve.

An admin signs in, creates a space from the form, pushes to it with git and watches it come up
without reloading; a colleague made from the admin console signs in with a password, gets a
token, pushes to their own space and is refused what is not theirs. Screenshots of the main
pages go to docs/screenshots/.
"""

import os
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from spacehub.platform.dashboard.starters import EXAMPLE_FOLDERS, starter_files
from tests.conftest import (
    EXAMPLES,
    Platform,
    commit_all,
    explain_failure,
    kill_leftover_apps,
    make_checkout,
    push,
    readme,
    start_platform,
    stop_cleanly,
    wait_for,
)

SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
TIMEOUT_MS = 60_000
APP_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Counter</title></head>
<body><h1>Counter for the tour</h1><button id="more">Add one</button> <output id="count">0</output>
<script src="count.js"></script></body></html>
"""
APP_SCRIPT = """document.getElementById("more").addEventListener("click", () => {
  const out = document.getElementById("count");
  out.textContent = String(Number(out.textContent) + 1);
});
"""


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    running = start_platform(tmp_path_factory.mktemp("dashboard") / "data")
    yield running
    stop_cleanly(running)


def new_page(browser, hub: Platform):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1280, "height": 860}, base_url=hub.url)
    context.set_default_timeout(TIMEOUT_MS)
    return context.new_page()


def sign_in_with_token(page, token: str = "") -> None:  # type: ignore[no-untyped-def]
    page.goto("/signin")
    page.get_by_text("Sign in with an access token instead").click()
    page.get_by_label("Token").fill(token or Platform.token)
    page.get_by_role("button", name="Sign in with token").click()
    page.wait_for_url(re.compile(r"/$"))


def sign_in_with_password(page, name: str, password: str) -> None:  # type: ignore[no-untyped-def]
    page.goto("/signin")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()


def screenshot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def create_space_in_form(page, name: str, sdk: str = "static", private: bool = False) -> None:  # type: ignore[no-untyped-def]
    page.goto("/new")
    page.get_by_label("Space name").fill(name)
    page.locator(f"input[name=sdk][value={sdk}]").check()
    page.locator(f"input[name=visibility][value={'private' if private else 'public'}]").check()
    page.get_by_role("button", name="Create space").click()
    page.wait_for_url(re.compile(rf"/spaces/[^/]+/{re.escape(name)}$"))


def stage_of(page) -> str:  # type: ignore[no-untyped-def]
    return page.locator("#stage").inner_text().strip()


def api_json(hub: Platform, path: str, token: str | None = None) -> object:
    with hub.api(token or hub.token) as client:
        answer = client.get(path)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_admin_creates_pushes_watches_and_manages_a_space(browser, hub: Platform, tmp_path: Path):  # type: ignore[no-untyped-def]
    page = new_page(browser, hub)
    sign_in_with_token(page)
    create_space_in_form(page, "tour-counter")
    assert stage_of(page) == "NO_APP_FILE"
    commands = page.locator("#get-started pre.commands").inner_text()
    assert f"git clone {hub.url}/spaces/admin/tour-counter" in commands
    assert "index.html" in page.locator("#get-started").inner_text()  # the static starter
    screenshot(page, "new-space-commands")

    # The page stays open while git pushes: a marker shows it is never reloaded.
    page.evaluate("window.notReloaded = true")
    files = {
        "README.md": readme(
            "Tour counter", "static", emoji="🧮", colorFrom="indigo", colorTo="pink"
        ),
        "index.html": APP_PAGE,
        "count.js": APP_SCRIPT,
        "données d'été/relevé 1.txt": "température: 31 °C\n" * 100,
    }
    checkout = make_checkout(tmp_path / "counter", files, hub.git_url("admin/tour-counter"))
    (checkout / "photo de vacances.bin").write_bytes(os.urandom(2 * 1024 * 1024))
    commit_all(checkout, "A counter app, its notes and a 2 MB photo")
    result = push(hub, checkout, "admin/tour-counter")
    assert result.returncode == 0, result.stderr

    wait_for(lambda: stage_of(page) == "RUNNING", 60, "the stage badge to say RUNNING")
    assert page.evaluate("window.notReloaded") is True
    build_log = page.locator("#build-log")
    wait_for(lambda: build_log.inner_text().strip(), 30, "the build log to stream in")
    # The app in its iframe, on an origin of its own, answers clicks.
    app = page.frame_locator("#app")
    app.get_by_role("button", name="Add one").click()
    app.get_by_role("button", name="Add one").click()
    assert app.locator("#count").inner_text() == "2"
    assert "localhost" in page.locator("#app").get_attribute("src")
    page.reload()  # for the picture: the header with the pushed title and colours
    page.frame_locator("#app").get_by_role("button", name="Add one").wait_for()
    wait_for(lambda: build_log.inner_text().strip(), 30, "the build log after a reload")
    screenshot(page, "space")

    # Files and history of the current commit.
    page.get_by_role("link", name="Files").click()
    page.get_by_role("link", name=re.compile("relevé 1.txt")).click()
    assert "température: 31 °C" in page.locator("pre.file").inner_text()
    page.get_by_role("link", name="Commits").click()
    assert "A counter app, its notes and a 2 MB photo" in page.locator(".commits").inner_text()

    # Secrets are write-only; variables are shown.
    page.get_by_role("link", name="Settings").click()
    page.get_by_label("Secret name").fill("API_KEY")
    page.get_by_label("Secret value").fill("sk-live-Zürich-4711")
    page.get_by_role("button", name="Save secret").click()
    assert "Secret API_KEY saved" in page.locator(".flash").inner_text()
    page.get_by_label("Variable name").fill("GREETING")
    page.get_by_label("Variable value").fill("Grüß Gott")
    page.get_by_role("button", name="Save variable").click()
    assert "Grüß Gott" in page.locator("table.list").nth(1).inner_text()
    assert "sk-live-Zürich-4711" not in page.content()
    assert "API_KEY" in page.content()
    assert "API_KEY" in api_json(hub, "/api/spaces/admin/tour-counter/secrets")
    screenshot(page, "space-settings")

    page.get_by_role("button", name="Pause").click()
    assert "Paused" in page.locator(".flash").inner_text()
    assert api_json(hub, "/api/spaces/admin/tour-counter/runtime")["stage"] == "PAUSED"
    page.get_by_role("button", name="Resume").click()
    hub.wait_stage("admin/tour-counter", {"RUNNING"}, 60)

    # Duplicate: the copy has the history and the variables, never the secrets.
    page.goto("/spaces/admin/tour-counter")
    page.get_by_label("Name of the copy").fill("tour-counter-copy")
    page.get_by_role("button", name="Duplicate").click()
    page.wait_for_url(re.compile(r"/spaces/admin/tour-counter-copy$"))
    hub.wait_stage("admin/tour-counter-copy", {"RUNNING"}, 60)
    variables = api_json(hub, "/api/spaces/admin/tour-counter-copy/variables")
    assert variables["GREETING"]["value"] == "Grüß Gott"
    assert api_json(hub, "/api/spaces/admin/tour-counter-copy/secrets") == {}

    # Delete the copy: a wrong confirmation deletes nothing.
    page.goto("/spaces/admin/tour-counter-copy/settings")
    page.get_by_label("Type the space's name to confirm").fill("tour-counter-copy")
    page.get_by_role("button", name="Delete space").click()
    assert "was not deleted" in page.locator(".flash").inner_text()
    page.get_by_label("Type the space's name to confirm").fill("admin/tour-counter-copy")
    page.get_by_role("button", name="Delete space").click()
    page.wait_for_url(re.compile(r"/$"))
    assert "Deleted admin/tour-counter-copy" in page.locator(".flash").inner_text()
    assert page.goto("/spaces/admin/tour-counter-copy").status == 404

    page.goto("/")
    card = page.locator("a.card", has_text="Tour counter")
    assert "from-indigo" in card.get_attribute("class")
    assert "🧮" in card.inner_text()
    screenshot(page, "home")
    page.goto("/settings")
    screenshot(page, "your-settings")
    page.context.close()


def test_a_colleague_added_in_the_admin_console_pushes_and_sees_only_what_is_theirs(
    browser, hub: Platform, tmp_path: Path
):  # type: ignore[no-untyped-def]
    hub.create_space("vault-plans", private=True)
    hub.create_space("open-demo")
    admin = new_page(browser, hub)
    sign_in_with_token(admin)
    admin.goto("/admin")
    form = admin.locator("#add-user")
    form.get_by_label("New user's name").fill("beatriz")
    form.get_by_label("New user's full name").fill("Beatriz Núñez")
    form.get_by_label("New user's password").fill("correct horse 2026")
    form.get_by_role("button", name="Add user").click()
    assert "User beatriz added" in admin.locator(".flash").inner_text()
    org = admin.locator("#add-org")
    org.get_by_label("New organisation's name").fill("lab")
    org.get_by_role("button", name="Add organisation").click()
    admin.get_by_label("Member to add to lab").fill("beatriz")
    admin.get_by_role("button", name="Add member").click()
    assert "beatriz added to lab" in admin.locator(".flash").inner_text()
    assert "vault-plans" in admin.locator("body").inner_text()
    screenshot(admin, "admin")
    admin.context.close()

    page = new_page(browser, hub)
    sign_in_with_password(page, "beatriz", "wrong password!")
    assert "wrong user name or password" in page.locator(".error").inner_text()
    sign_in_with_password(page, "beatriz", "correct horse 2026")
    page.wait_for_url(re.compile(r"/$"))
    page.goto("/settings")
    page.get_by_label("Token name").fill("laptop")
    page.get_by_role("button", name="Create token").click()
    token = page.locator("#new-token").inner_text().strip()
    assert token.startswith("hf_")
    page.reload()  # shown once: never again
    assert token not in page.content()

    create_space_in_form(page, "notebook", private=True)
    assert page.locator("select[name=owner] option", has_text="lab").count() == 1
    files = {"README.md": readme("Notebook", "static"), "index.html": "<h1>Beatriz's notes</h1>"}
    checkout = make_checkout(tmp_path / "notebook", files, hub.git_url("beatriz/notebook", token))
    assert push(hub, checkout, "beatriz/notebook", token=token).returncode == 0
    hub.wait_stage("beatriz/notebook", {"RUNNING"}, 60)

    assert page.goto("/spaces/admin/vault-plans").status == 404
    assert page.goto("/spaces/admin/vault-plans/settings").status == 404
    assert page.goto("/admin").status == 404
    assert page.goto("/admin/disk").status == 404
    assert page.goto("/spaces/admin/open-demo").status == 200
    assert page.goto("/spaces/admin/open-demo/settings").status == 403
    # Her own CSRF token does not let her act on a space she may only see.
    csrf = page.locator("input[name=csrf_token]").first.get_attribute("value")
    answer = page.request.post(
        "/spaces/admin/open-demo/actions/pause", form={"csrf_token": csrf}, max_redirects=0
    )
    assert answer.status == 403
    assert api_json(hub, "/api/spaces/admin/open-demo/runtime")["stage"] != "PAUSED"
    assert "vault-plans" not in page.goto("/").text()
    # Disabled by an admin: her session ends with the next page.
    with hub.api() as client:
        client.patch("/api/admin/users/beatriz", json={"disabled": True}).raise_for_status()
    assert page.goto("/settings").status == 404
    assert page.locator(".topbar").get_by_role("link", name="Sign in").count() == 1
    page.context.close()


def test_a_space_titled_with_a_script_shows_the_title_as_text(
    browser, hub: Platform, tmp_path: Path
):  # type: ignore[no-untyped-def]
    title = "<script>alert(1)</script> & <img src=x onerror=alert(2)>"
    hub.create_space("xss-title")
    card = readme(f"'{title}'", "static", emoji="'<b>🙂</b>'", disable_embedding="true")
    files = {"README.md": card, "index.html": "hi"}
    checkout = make_checkout(tmp_path / "xss", files, hub.git_url("admin/xss-title"))
    assert push(hub, checkout, "admin/xss-title").returncode == 0
    hub.wait_stage("admin/xss-title", {"RUNNING"}, 60)
    page = new_page(browser, hub)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto("/")
    assert page.locator("a.card .card-title", has_text="<script>").inner_text() == title
    page.goto("/spaces/admin/xss-title")
    assert page.locator("h1").inner_text() == title
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.content()
    assert page.locator("script:not([src])").count() == 0
    assert dialogs == []
    # disable_embedding: a link to the app instead of the iframe.
    assert page.locator("iframe").count() == 0
    link = page.get_by_role("link", name="open it in its own tab")
    assert link.get_attribute("href") == f"http://admin-xss-title.localhost:{hub.port}/"
    page.context.close()


class ForgingSite(BaseHTTPRequestHandler):
    """Another site whose page posts a form to the dashboard as soon as it loads."""

    target = ""

    def do_GET(self) -> None:
        body = (
            f'<form method="post" action="{self.target}">'
            '<input name="key" value="PWNED"><input name="value" value="yes"></form>'
            "<script>document.forms[0].submit()</script>"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_forged_cross_site_form_is_refused_and_changes_nothing(browser, hub: Platform):  # type: ignore[no-untyped-def]
    hub.create_space("csrf-target")
    target = f"{hub.url}/spaces/admin/csrf-target/actions/variable"
    ForgingSite.target = target
    server = ThreadingHTTPServer(("127.0.0.1", 0), ForgingSite)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    page = new_page(browser, hub)
    try:
        sign_in_with_token(page)  # the victim is signed in; the cookie goes with the post
        with page.expect_response(target) as answer:
            page.goto(f"http://127.0.0.1:{server.server_address[1]}/")
        assert answer.value.status == 403
    finally:
        server.shutdown()
    cookie = next(c for c in page.context.cookies() if c["name"] == "spacehub_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    csrf = page.goto("/settings") and page.locator("input[name=csrf_token]").first.get_attribute(
        "value"
    )
    session = {"spacehub_session": cookie["value"]}
    forged = [
        ({}, {"key": "PWNED", "value": "1"}),  # no token
        ({}, {"key": "PWNED", "value": "1", "csrf_token": "not-the-token"}),
        ({"Origin": "http://evil.example"}, {"key": "PWNED", "value": "1", "csrf_token": csrf}),
    ]
    for headers, form in forged:
        answer = httpx.post(target, data=form, headers=headers, cookies=session)
        assert answer.status_code == 403, answer.text
    assert api_json(hub, "/api/spaces/admin/csrf-target/variables") == {}
    # The same form from the dashboard's own page is accepted.
    answer = httpx.post(
        target, data={"key": "FINE", "value": "1", "csrf_token": csrf}, cookies=session
    )
    assert answer.status_code == 303
    assert "FINE" in api_json(hub, "/api/spaces/admin/csrf-target/variables")
    page.context.close()


def test_pages_carry_security_headers_and_failed_sign_ins_are_limited(hub: Platform):
    answer = httpx.get(f"{hub.url}/")
    policy = answer.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy
    assert re.search(r"frame-src 'self' http://\*\.localhost:\d+", policy)
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["referrer-policy"] == "same-origin"
    with httpx.Client(base_url=hub.url) as client:
        page = client.get("/signin").text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)[1]
        statuses = [
            client.post(
                "/signin", data={"csrf_token": csrf, "username": "admin", "password": f"guess{n}x"}
            ).status_code
            for n in range(7)
        ]
    assert statuses[:5] == [401] * 5 and statuses[5:] == [429, 429], statuses


def test_starter_apps_are_the_examples():
    for sdk, folder in EXAMPLE_FOLDERS.items():
        files = starter_files(sdk)
        assert files, sdk
        for name, content in files.items():
            assert (EXAMPLES / folder / name).read_text() == content, f"{sdk}: {name}"


def test_a_gradio_space_on_the_local_runtime_answers_in_its_iframe(browser, tmp_path, request):  # type: ignore[no-untyped-def]
    platform = start_platform(tmp_path / "data", runtime="local")
    explain_failure(request.node, "platform log (tail)", lambda: platform.log()[-6000:])
    try:
        page = new_page(browser, platform)
        sign_in_with_token(page)
        create_space_in_form(page, "greeter", sdk="gradio")
        checkout = make_checkout(
            tmp_path / "greeter", EXAMPLES / "gradio-greet", platform.git_url("admin/greeter")
        )
        assert push(platform, checkout, "admin/greeter").returncode == 0
        wait_for(lambda: stage_of(page) == "RUNNING", 300, "the gradio space to run")
        assert page.locator("#build-log").inner_text().strip()
        app = page.frame_locator("#app")
        app.get_by_label("name").fill("Zoë")
        app.get_by_role("button", name="Submit").click()
        answer = app.get_by_label("output")
        wait_for(lambda: "Hello Zoë!!" in answer.input_value(), 30, "gradio's answer in the iframe")
        page.context.close()
    finally:
        stop_cleanly(platform)
        kill_leftover_apps(platform.data_dir)


def test_a_private_space_answers_its_reader_in_the_iframe_and_nobody_else(  # type: ignore[no-untyped-def]
    browser, hub: Platform, tmp_path: Path
):
    """The dashboard's session cookie never reaches the apps: the iframe's URL carries a
    one-time ticket that signs the reader in on the app's own origin."""
    page = new_page(browser, hub)
    sign_in_with_token(page)
    create_space_in_form(page, "secret-garden", private=True)
    files = {"README.md": readme("Secret garden", "static"), "index.html": APP_PAGE}
    files["count.js"] = APP_SCRIPT
    checkout = make_checkout(tmp_path / "garden", files, hub.git_url("admin/secret-garden"))
    assert push(hub, checkout, "admin/secret-garden").returncode == 0
    wait_for(lambda: stage_of(page) == "RUNNING", 60, "the private space to run")
    page.reload()
    page.frame_locator("#app").get_by_role("button", name="Add one").click()
    assert page.frame_locator("#app").locator("#count").inner_text() == "1"
    # Without the reader's ticket, or with a forged one, another browser gets nothing.
    src = page.locator("#app").get_attribute("src")
    assert "__sign=" in src
    bare = src.split("?", 1)[0]
    stranger = new_page(browser, hub)
    assert stranger.goto(bare).status == 404
    assert stranger.goto(f"{bare}?__sign=forged.ticket").status == 404

"""Static spaces against a real `spacehub serve`: push → live, releases, errors, traversal.

The platform serves a static release itself, under both app URL forms (DESIGN.md §4): the
subdomain form (`Host: {owner}-{name}.localhost:{port}`) and the path form
(`/apps/{owner}/{name}/`). No Docker is needed.
"""

import hashlib
import http.client
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from spacehub.platform.settings import Settings
from tests.conftest import (
    EXAMPLES,
    Platform,
    add_user,
    commit_all,
    git,
    make_checkout,
    push,
    start_platform,
    stop_cleanly,
    wait_for,
    write_files,
)

SITE = EXAMPLES / "static-site"
FORMS = ("path", "subdomain")
README = "---\ntitle: Test site\nsdk: static\n---\n"
FINISHED = {"succeeded", "failed"}


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


def app_get(
    platform: Platform,
    space_id: str,
    path: str = "/",
    form: str = "path",
    headers: dict[str, str] | None = None,
    method: str = "GET",
) -> Answer:
    """GET `path` of the space's app, the target sent byte for byte (no dot-segment clean-up)."""
    port = platform.apps_port if form == "path" else platform.port  # the path form's origin
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        if form == "path":
            connection.putrequest(method, f"/apps/{space_id}{path}")
        else:
            connection.putrequest(method, path, skip_host=True)
            label = space_id.replace("/", "-").replace("_", "-").replace(".", "-").lower()
            connection.putheader("Host", f"{label}.localhost:{platform.port}")
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return Answer(response.status, response.headers, response.read())
    finally:
        connection.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def serves(platform: Platform, space_id: str, text: str, path: str = "/", **options) -> bool:
    answer = app_get(platform, space_id, path, **options)
    return answer.status == 200 and text in answer.text


def site_checkout(
    tmp_path: Path, name: str, files: dict[str, str] | None = None, clone_url: str | None = None
) -> Path:
    return make_checkout(tmp_path / name, files if files is not None else SITE, clone_url)


def push_ok(platform: Platform, checkout: Path, space_id: str) -> None:
    result = push(platform, checkout, space_id)
    assert result.returncode == 0, result.stderr


def live_site(platform: Platform, tmp_path: Path, name: str, **create: object) -> Path:
    """A space serving the example static site; returns its checkout."""
    space_id = platform.create_space(name, **create)  # type: ignore[arg-type]
    checkout = site_checkout(tmp_path, name.replace("/", "-"), clone_url=platform.git_url(space_id))
    push_ok(platform, checkout, space_id)
    platform.wait_stage(space_id, {"RUNNING"}, 15)
    return checkout


def builds_of(platform: Platform, space_id: str) -> list[tuple[str, str]]:
    """(commit, status) of every build of the space recorded in the platform's database."""
    from sqlmodel import col, select

    from spacehub.platform.db import make_engine, session_scope
    from spacehub.platform.models import Build, Space, User

    owner, _, name = space_id.partition("/")
    engine = make_engine(f"sqlite:///{(platform.data_dir / 'spacehub.db').resolve()}")
    try:
        with session_scope(engine) as session:
            rows = session.exec(
                select(Build)
                .join(Space, col(Space.id) == Build.space_id)
                .join(User, col(User.id) == Space.owner_id)
                .where(User.name == owner, Space.name == name)
                .order_by(col(Build.id))
            ).all()
            return [(row.commit, str(row.status)) for row in rows]
    finally:
        engine.dispose()


@pytest.mark.parametrize("form", FORMS)
def test_pushed_static_site_is_running_and_served(
    shared_platform: Platform, tmp_path: Path, form: str
):
    platform = shared_platform
    live_site(platform, tmp_path, f"site-{form}")
    space_id = f"admin/site-{form}"

    page = app_get(platform, space_id, "/", form)
    style = app_get(platform, space_id, "/style.css", form)

    assert platform.runtime(space_id)["stage"] == "RUNNING"
    assert page.status == 200
    assert page.body == (SITE / "index.html").read_bytes()
    assert page.headers["content-type"].startswith("text/html")
    assert style.status == 200
    assert style.body == (SITE / "style.css").read_bytes()
    assert style.headers["content-type"].startswith("text/css")
    assert style.headers["etag"]
    assert style.headers["last-modified"]
    cached = app_get(
        platform, space_id, "/style.css", form, {"If-None-Match": style.headers["etag"]}
    )
    assert cached.status == 304
    assert cached.body == b""


def test_big_file_streams_byte_for_byte_with_head_and_ranges_in_both_forms(
    shared_platform: Platform, tmp_path: Path
):
    """A 24 MiB file of a release, as the proxy streams it; HEAD and ranges agree with it."""
    platform = shared_platform
    space_id = platform.create_space("big-files")
    checkout = site_checkout(tmp_path, "big", None, platform.git_url(space_id))
    data = os.urandom(24 * 1024 * 1024)
    (checkout / "données").mkdir()
    (checkout / "données" / "modèle final.bin").write_bytes(data)
    commit_all(checkout, "a big file")
    push_ok(platform, checkout, space_id)
    platform.wait_stage(space_id, {"RUNNING"}, 30)
    path = "/donn%C3%A9es/mod%C3%A8le%20final.bin"

    for form in FORMS:
        whole = app_get(platform, space_id, path, form)
        assert whole.status == 200
        assert whole.headers["content-length"] == str(len(data))
        assert hashlib.sha256(whole.body).digest() == hashlib.sha256(data).digest()
        head = app_get(platform, space_id, path, form, method="HEAD")
        assert (head.status, head.body) == (200, b"")
        assert head.headers["content-length"] == str(len(data))
        assert head.headers["etag"] == whole.headers["etag"]
        part = app_get(platform, space_id, path, form, {"Range": "bytes=10-19"})
        assert (part.status, part.body) == (206, data[10:20])
        assert part.headers["etag"] == whole.headers["etag"]  # a cached copy stays valid
        index = app_get(platform, space_id, "/", form, method="HEAD")
        assert (index.status, index.body) == (200, b"")
        assert index.headers["content-type"] == "text/html; charset=utf-8"


def test_push_to_live_takes_under_one_second(shared_platform: Platform, tmp_path: Path):
    platform = shared_platform
    space_id = platform.create_space("fast")
    files = {"README.md": README, "index.html": "first\n"}
    checkout = site_checkout(tmp_path, "fast", files, platform.git_url(space_id))
    figures = []
    for version in ("first", "second"):
        write_files(checkout, {"index.html": f"<h1>{version} version</h1>\n"})
        commit_all(checkout, version)
        started = time.monotonic()
        push_ok(platform, checkout, space_id)
        wait_for(
            lambda v=version: serves(platform, space_id, f"{v} version"),
            10,
            f"the {version} push to be served",
            interval=0.01,
        )
        figures.append(time.monotonic() - started)
    print(f"push-to-live: first push {figures[0]:.3f} s, next push {figures[1]:.3f} s")
    assert max(figures) < 1.0, figures


def test_second_push_replaces_the_release_atomically(shared_platform: Platform, tmp_path: Path):
    """Every answer is wholly the old or wholly the new release, and the new one stays."""
    platform = shared_platform
    space_id = platform.create_space("atomic")

    def release(version: str) -> dict[str, str]:
        return {
            "README.md": README,
            "index.html": f"<p>{version}</p>\n",
            "data.txt": f"{version}\n" * 50_000,  # a large file, copied while the other serves
        }

    checkout = site_checkout(tmp_path, "atomic", release("v1"), platform.git_url(space_id))
    push_ok(platform, checkout, space_id)
    wait_for(lambda: serves(platform, space_id, "v1", "/data.txt"), 15, "v1 to be served")
    seen: list[str] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            answer = app_get(platform, space_id, "/data.txt")
            assert answer.status == 200, answer.text[:300]
            versions = set(answer.text.split())
            assert len(versions) == 1, f"a mixed answer: {sorted(versions)}"
            seen.append(versions.pop())

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        write_files(checkout, release("v2"))
        commit_all(checkout, "v2")
        push_ok(platform, checkout, space_id)
        wait_for(lambda: seen and seen[-1] == "v2", 10, "v2 to be served")
        count = len(seen)
        wait_for(lambda: len(seen) >= count + 5, 10, "a few more answers")
    finally:
        stop.set()
        watcher.join(30)
    assert seen[0] == "v1"
    flipped = seen.index("v2")
    assert set(seen[flipped:]) == {"v2"}, "once the new release served, the old one came back"


BAD_CONFIGS = {
    "bad-yaml": (
        "---\ntitle: Broken\nsdk: static\ncolorFrom: [green\n---\n",
        ("line ", "invalid YAML"),
    ),
    "unknown-sdk": ("---\ntitle: Wrong\nsdk: flask\n---\n", ("line 3", "unknown sdk 'flask'")),
    "wrong-type": (
        # (app_port would be ignored: it does not apply to a static space, as on the Hub)
        "---\ntitle: Typed\nsdk: static\npinned: maybe\n---\n",
        ("line 4", "pinned"),
    ),
}


@pytest.mark.parametrize("case", BAD_CONFIGS)
def test_config_error_names_the_line_and_keeps_the_previous_release_served(
    shared_platform: Platform, tmp_path: Path, case: str
):
    platform = shared_platform
    readme, expected = BAD_CONFIGS[case]
    space_id = f"admin/config-{case}"
    checkout = live_site(platform, tmp_path, space_id)

    write_files(checkout, {"README.md": readme})
    commit_all(checkout, case)
    push_ok(platform, checkout, space_id)
    runtime = platform.wait_stage(space_id, {"CONFIG_ERROR"}, 15)

    for fragment in expected:
        assert fragment in runtime["errorMessage"], runtime
    for form in FORMS:
        answer = app_get(platform, space_id, "/", form)
        assert answer.status == 200, f"{form}: {answer.status}"
        assert answer.body == (SITE / "index.html").read_bytes()


def test_removing_index_html_gives_no_app_file_and_keeps_the_previous_release_served(
    shared_platform: Platform, tmp_path: Path
):
    platform = shared_platform
    checkout = live_site(platform, tmp_path, "no-index")

    git("rm", "--quiet", "index.html", cwd=checkout)
    commit_all(checkout, "no index")
    push_ok(platform, checkout, "admin/no-index")
    runtime = platform.wait_stage("admin/no-index", {"NO_APP_FILE"}, 15)

    assert "index.html" in runtime.get("errorMessage", ""), runtime
    for form in FORMS:
        assert serves(platform, "admin/no-index", "<", "/", form=form), form
        assert app_get(platform, "admin/no-index", "/index.html", form).status == 200


@pytest.mark.parametrize("form", FORMS)
def test_status_page_is_a_503_html_page_with_stage_and_reason(
    shared_platform: Platform, tmp_path: Path, form: str
):
    platform = shared_platform
    fresh = platform.create_space(f"fresh-{form}")
    broken = platform.create_space(f"broken-{form}")
    files = {"README.md": BAD_CONFIGS["unknown-sdk"][0], "index.html": "x"}
    checkout = site_checkout(tmp_path, "broken", files, platform.git_url(broken))
    push_ok(platform, checkout, broken)
    platform.wait_stage(broken, {"CONFIG_ERROR"}, 15)

    for space_id, stage, reason in (
        (fresh, "NO_APP_FILE", "has no app file yet"),
        (broken, "CONFIG_ERROR", "unknown sdk &#39;flask&#39;"),
    ):
        answer = app_get(platform, space_id, "/", form)
        assert answer.status == 503, (space_id, answer.status, answer.text[:300])
        assert answer.headers["content-type"].startswith("text/html")
        assert stage in answer.text
        assert reason in answer.text, answer.text


TRAVERSALS = [
    "/../../../../etc/passwd",
    "/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/..%2f..%2f..%2f..%2fetc%2fpasswd",
    "//etc/passwd",
    "/leak",
    "/up/etc/passwd",
    "/up/",
    "/nested/../../../../etc/passwd",
]


@pytest.fixture(scope="module")
def site_with_symlinks(shared_platform: Platform, tmp_path_factory: pytest.TempPathFactory):
    """A static space whose commit holds symlinks out of the tree: to /etc/passwd and up."""
    platform = shared_platform
    space_id = platform.create_space("symlinks")
    checkout = make_checkout(
        tmp_path_factory.mktemp("symlinks") / "co",
        {"README.md": README, "index.html": "<p>links</p>\n", "nested/page.html": "nested\n"},
        platform.git_url(space_id),
    )
    (checkout / "leak").symlink_to("/etc/passwd")
    (checkout / "up").symlink_to("../../../")
    commit_all(checkout, "symlinks out of the tree")
    push_ok(platform, checkout, space_id)
    wait_for(lambda: serves(platform, space_id, "links"), 15, "the site to be served")
    return space_id


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("path", TRAVERSALS)
def test_path_traversal_never_leaves_the_release(
    shared_platform: Platform, site_with_symlinks: str, form: str, path: str
):
    answer = app_get(shared_platform, site_with_symlinks, path, form)

    assert answer.status in (400, 404), (answer.status, answer.text[:300])
    assert "root:" not in answer.text


def test_private_static_app_answers_only_its_readers(shared_platform: Platform, tmp_path: Path):
    platform = shared_platform
    owner = add_user(platform, "pia")
    stranger = add_user(platform, "stan")
    live_site(platform, tmp_path, "pia/secret-site", private=True, token=owner)

    for form in FORMS:
        missing = app_get(platform, "pia/no-such-site", "/", form, bearer(stranger))
        assert missing.status == 404
        for headers in ({}, bearer(stranger)):
            hidden = app_get(platform, "pia/secret-site", "/", form, headers)
            assert hidden.status == 404, (form, headers, hidden.status)
            assert "Static site" not in hidden.text
        for header in ("Authorization", "X-HF-Authorization"):
            shown = app_get(platform, "pia/secret-site", "/", form, {header: f"Bearer {owner}"})
            assert shown.status == 200, (form, header, shown.status)
            assert shown.body == (SITE / "index.html").read_bytes()


def test_burst_of_pushes_builds_the_last_commit_and_loses_or_repeats_none(
    shared_platform: Platform, tmp_path: Path
):
    """Ten pushes one after another, none waiting for a build: coalesced, the last one live."""
    platform = shared_platform
    space_id = platform.create_space("burst")
    files = {"README.md": README, "index.html": "push 0\n"}
    checkout = site_checkout(tmp_path, "burst", files, platform.git_url(space_id))
    pushed = []
    for number in range(1, 11):
        write_files(checkout, {"index.html": f"<p>push {number}</p>\n"})
        pushed.append(commit_all(checkout, f"push {number}"))
        push_ok(platform, checkout, space_id)

    wait_for(lambda: serves(platform, space_id, "push 10"), 15, "the last push to be served")
    final = pushed[-1]
    wait_for(
        lambda: all(
            status in ("succeeded", "failed") for _, status in builds_of(platform, space_id)
        ),
        15,
        "every build to finish",
    )
    builds = builds_of(platform, space_id)
    commits = [commit for commit, _ in builds]
    print(f"10 pushes → {len(builds)} builds: {[c[:7] for c in commits]}")

    assert (final, "succeeded") in builds
    assert len(set(commits)) == len(commits), f"a commit built twice: {commits}"
    assert set(commits) <= set(pushed)
    assert platform.runtime(space_id)["stage"] == "RUNNING"
    for form in FORMS:
        assert serves(platform, space_id, "push 10", form=form)


def test_platform_restart_keeps_static_space_running_and_served(tmp_path: Path):
    data_dir = tmp_path / "data"
    first = start_platform(data_dir)
    try:
        live_site(first, tmp_path, "survivor")
    finally:
        stop_cleanly(first)

    second = start_platform(data_dir)
    try:
        assert second.runtime("admin/survivor")["stage"] == "RUNNING"
        for form in FORMS:
            answer = app_get(second, "admin/survivor", "/", form)
            assert answer.status == 200, (form, answer.status)
            assert answer.body == (SITE / "index.html").read_bytes()
    finally:
        stop_cleanly(second)


def test_concurrent_forced_pushes_end_with_the_commit_main_points_at_live(
    shared_platform: Platform, tmp_path: Path
):
    """Ten clients force-push at once: whichever wins `main` is what gets built and served."""
    platform = shared_platform
    space_id = platform.create_space("race")
    files = {"README.md": README, "index.html": "base\n"}
    base = site_checkout(tmp_path, "race-base", files, platform.git_url(space_id))
    push_ok(platform, base, space_id)  # the racers update `main` rather than create it
    racers = {}
    for number in range(10):
        files = {"README.md": README, "index.html": f"racer {number}\n"}
        checkout = site_checkout(tmp_path, f"race-{number}", files)
        racers[git("rev-parse", "HEAD", cwd=checkout).stdout.strip()] = (number, checkout)
    results = []
    threads = [
        threading.Thread(
            target=lambda c=checkout: results.append(push(platform, c, space_id, "--force"))
        )
        for _, checkout in racers.values()
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    # git itself refuses a push that races another for the ref lock; at least one wins.
    assert len(results) == 10
    assert any(result.returncode == 0 for result in results)
    for result in results:
        assert result.returncode == 0 or "cannot lock ref" in result.stderr, result.stderr
    winner = git("ls-remote", platform.git_url(space_id), "refs/heads/main").stdout.split()[0]
    number, _ = racers[winner]
    wait_for(lambda: serves(platform, space_id, f"racer {number}"), 15, "the winner to be served")
    builds = builds_of(platform, space_id)
    print(f"10 concurrent forced pushes → {len(builds)} builds")
    assert (winner, "succeeded") in builds
    base_commit = git("rev-parse", "HEAD", cwd=base).stdout.strip()
    assert {commit for commit, _ in builds} <= {*racers, base_commit}


def test_a_data_dir_too_long_for_socket_addresses_still_serves_pushes(tmp_path: Path):
    """A unix socket's address holds 107 bytes: under a data dir whose run dir is longer, the
    platform's sockets go to a private folder in the temp dir, and pushes (whose hook reaches
    the platform on its socket) build and serve as usual."""
    data = tmp_path / ("a-long-folder-name-" * 5) / "data"
    assert len(bytes(data / "run" / "proxy-apps.sock")) > 107
    platform = start_platform(data)
    try:
        live_site(platform, tmp_path, "long-path-site")
        page = app_get(platform, "admin/long-path-site", "/", "path")
        assert (page.status, page.body) == (200, (SITE / "index.html").read_bytes())
        sockets = Settings(data_dir=data).socket_dir
        assert sockets.parent == Path(tempfile.gettempdir())
        assert (sockets / "control.sock").is_socket()
        assert sockets.stat().st_mode & 0o777 == 0o700
    finally:
        stop_cleanly(platform)
        shutil.rmtree(Settings(data_dir=data).socket_dir, ignore_errors=True)

"""A space's pages: the app and its stage, logs, files, history, settings and actions.

`/spaces/{owner}/{name}` is also the git remote: a browser gets the page, git its smart HTTP.
"""

import inspect
from collections.abc import Awaitable, Callable
from typing import Literal
from urllib.parse import urlencode

from anyio import to_thread
from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from spacehub.core.errors import InvalidInput, SpacehubError
from spacehub.core.hardware import FLAVORS, flavor
from spacehub.core.stages import Stage
from spacehub.platform import lifecycle
from spacehub.platform.api.fields import MAX_SLEEP_SECONDS, MAX_VALUE_CHARS
from spacehub.platform.api.logs import space_log
from spacehub.platform.api.shapes import space_url
from spacehub.platform.app_tickets import TICKET_PARAMETER
from spacehub.platform.dashboard.pages import signed_in_user, writable_owners
from spacehub.platform.dashboard.rendering import (
    FormDep,
    Page,
    PageDep,
    PageError,
    app_url,
    redirect,
    render,
)
from spacehub.platform.dashboard.starters import starter_files
from spacehub.platform.git import reading
from spacehub.platform.git.files import file_content
from spacehub.platform.git.repos import repo_path
from spacehub.platform.models import Space, TokenRole, User
from spacehub.platform.services import accounts, builds, secrets, sources, spaces

router = APIRouter(include_in_schema=False)
SHOWN_BYTES = 256 * 1024
HISTORY_LENGTH = 100
# Stages after which the page stops expecting news, until an action starts something again.
BUSY_STAGES = {
    Stage.BUILDING,
    Stage.APP_STARTING,
    Stage.RUNNING_BUILDING,
    Stage.RUNNING_APP_STARTING,
    Stage.DELETING,
}


def visible(page: Page, owner: str, name: str) -> tuple[Space, User]:
    """The space if this visitor may see it; a 404 page otherwise, as for no space at all."""
    try:
        space = spaces.visible_space(page.session, page.caller, owner, name)
    except SpacehubError as error:
        raise PageError(404, "no such space: it does not exist or you may not see it") from error
    return space, spaces.owner_of(page.session, space)


def may_write(page: Page, owner: User) -> bool:
    try:
        accounts.require_write(page.session, page.caller, owner)
    except SpacehubError:
        return False
    return True


def writable(page: Page, owner: str, name: str) -> tuple[Space, User]:
    space, owner_row = visible(page, owner, name)
    if not may_write(page, owner_row):
        raise PageError(403, "you may see this space but not change it")
    return space, owner_row


def _space_context(page: Page, space: Space, owner: User, tab: str) -> dict:
    card = space.card_data or {}
    return {
        "space": space,
        "owner": owner,
        "space_id": f"{owner.name}/{space.name}",
        "title": card.get("title") or space.name,
        "emoji": card.get("emoji") or "",
        "card": card,
        "can_write": may_write(page, owner),
        "tab": tab,
    }


@router.get("/spaces/{owner}/{name}")
def space_page(owner: str, name: str, page: PageDep) -> Response:
    space, owner_row = visible(page, owner, name)
    context = _space_context(page, space, owner_row, "app")
    user = page.user
    context |= {
        "app_url": _signed_app_url(page, space, owner, name),
        "embed": not (space.card_data or {}).get("disable_embedding"),
        "clone_url": space_url(page.settings, owner, name),
        "starter": starter_files(space.sdk),
        "duplicate_owners": writable_owners(page, user) if user else [],
        "build": builds.latest_build(page.session, space),
    }
    return render(page, "space.html", context)


def _signed_app_url(page: Page, space: Space, owner: str, name: str) -> str:
    """The app's URL; for a private space, with a one-time ticket that signs the reader in on
    the apps origin (the dashboard's session cookie never goes there)."""
    url = app_url(page.settings, owner, name, space.label)
    if not space.private or page.user is None:
        return url
    ticket = page.platform.app_signer.ticket(page.user.name, f"{owner}/{name}")
    return f"{url}?{urlencode({TICKET_PARAMETER: ticket})}"


@router.get("/spaces/{owner}/{name}/live/runtime")
def live_runtime(owner: str, name: str, page: PageDep) -> Response:
    """The stage the page shows, polled by its script."""
    space, _ = visible(page, owner, name)
    latest = builds.latest_build(page.session, space)
    return JSONResponse(
        {
            "stage": str(space.stage),
            "error": space.error_message,
            "commit": space.current_commit,
            "build": latest.id if latest else None,
            "busy": space.stage in BUSY_STAGES,
        },
        headers={"Cache-Control": "no-store"},
    )


@router.get("/spaces/{owner}/{name}/live/logs/{kind}")
def live_logs(owner: str, name: str, kind: Literal["build", "run"], page: PageDep) -> Response:
    space, _ = writable(page, owner, name)
    return space_log(page.platform, page.session, space, kind)


@router.get("/spaces/{owner}/{name}/tree/main")
def files_page(owner: str, name: str, page: PageDep) -> Response:
    space, owner_row = visible(page, owner, name)
    repo = repo_path(page.settings.repos_dir, owner, name)
    entries = (
        [entry for entry in reading.list_tree(repo, space.head_commit, recursive=True)]
        if space.head_commit
        else []
    )
    context = _space_context(page, space, owner_row, "files") | {"entries": entries}
    return render(page, "files.html", context)


@router.get("/spaces/{owner}/{name}/blob/main/{path:path}")
def file_page(owner: str, name: str, path: str, page: PageDep) -> Response:
    space, owner_row = visible(page, owner, name)
    if not space.head_commit:
        raise PageError(404, "this space has no commit yet")
    repo = repo_path(page.settings.repos_dir, owner, name)
    try:
        content = file_content(repo, page.settings.data_dir, space.head_commit, path)
        with content.open() as stream:
            head = stream.read(SHOWN_BYTES)
    except SpacehubError as error:
        raise PageError(404, f"no file {path!r} in the current commit") from error
    text = None if b"\0" in head else head.decode(errors="replace")
    context = _space_context(page, space, owner_row, "files") | {
        "path": path,
        "size": content.size,
        "lfs": content.lfs_oid is not None,
        "text": text,
        "truncated": content.size > SHOWN_BYTES,
    }
    return render(page, "file.html", context)


@router.get("/spaces/{owner}/{name}/commits/main")
def commits_page(owner: str, name: str, page: PageDep) -> Response:
    space, owner_row = visible(page, owner, name)
    repo = repo_path(page.settings.repos_dir, owner, name)
    commits = (
        reading.list_commits(repo, space.head_commit, limit=HISTORY_LENGTH)
        if space.head_commit
        else []
    )
    context = _space_context(page, space, owner_row, "commits") | {"commits": commits}
    return render(page, "commits.html", context)


@router.get("/spaces/{owner}/{name}/settings")
def settings_page(owner: str, name: str, page: PageDep) -> Response:
    space, owner_row = writable(page, owner, name)
    return render(page, "space_settings.html", settings_context(page, space, owner_row))


def settings_context(page: Page, space: Space, owner_row: User) -> dict:
    return _space_context(page, space, owner_row, "settings") | {
        "secrets": sorted(secrets.list_secrets(page.session, space), key=lambda row: row.key),
        "variables": sorted(secrets.list_variables(page.session, space), key=lambda row: row.key),
        "flavors": FLAVORS.values(),
        "build": builds.latest_build(page.session, space),
        "source": sources.find_source(page.session, space),
        "may_manage_source": sources.may_manage(
            page.session, page.caller, owner_row.name, space.name
        ),
        "webhook_url": sources.webhook_url(
            page.settings.effective_public_url, owner_row.name, space.name
        ),
    }


# Actions: each re-checks that the caller may write to the space, then calls what the API calls.

# Plain functions do database work only and run in a thread; coroutines wait for the platform.
Action = Callable[[Page, Space, dict[str, str]], Awaitable[str] | str]


def _set_secret(page: Page, space: Space, form: dict[str, str]) -> str:
    key, value = form.get("key", "").strip(), _value(form)
    box = page.platform.secret_box
    secrets.upsert_secret(page.session, box, space, key, value, form.get("description") or None)
    return f"Secret {key} saved: the app gets it from its next start"


def _delete_secret(page: Page, space: Space, form: dict[str, str]) -> str:
    secrets.delete_secret(page.session, space, form.get("key", ""))
    return f"Secret {form.get('key', '')} deleted"


def _set_variable(page: Page, space: Space, form: dict[str, str]) -> str:
    key = form.get("key", "").strip()
    secrets.upsert_variable(page.session, space, key, _value(form), form.get("description") or None)
    return f"Variable {key} saved: the app gets it from its next start"


def _delete_variable(page: Page, space: Space, form: dict[str, str]) -> str:
    secrets.delete_variable(page.session, space, form.get("key", ""))
    return f"Variable {form.get('key', '')} deleted"


def _value(form: dict[str, str]) -> str:
    value = form.get("value", "")
    if len(value) > MAX_VALUE_CHARS or "\0" in value:
        raise InvalidInput(f"a value is at most {MAX_VALUE_CHARS} characters, without NUL")
    return value


def _sleep_time(page: Page, space: Space, form: dict[str, str]) -> str:
    try:
        seconds = int(form.get("seconds", ""))
    except ValueError:
        raise InvalidInput("the sleep time is a number of seconds (-1: never)") from None
    if not -1 <= seconds <= MAX_SLEEP_SECONDS:
        raise InvalidInput(f"the sleep time is -1 (never) or 0 to {MAX_SLEEP_SECONDS} seconds")
    space.sleep_time = seconds
    _save(page, space)
    return "Sleep time saved"


def _hardware(page: Page, space: Space, form: dict[str, str]) -> str:
    space.hardware = flavor(form.get("flavor", "")).name
    _save(page, space)
    return f"Hardware set to {space.hardware}: used from the app's next start"


async def _visibility(page: Page, space: Space, form: dict[str, str]) -> str:
    private = form.get("visibility") == "private"
    await to_thread.run_sync(lifecycle.set_visibility, page.platform, page.session, space, private)
    return f"The space is now {'private' if private else 'public'}"


async def _restart(page: Page, space: Space, form: dict[str, str]) -> str:
    await lifecycle.restart_space(page.platform, page.session, space, factory=False)
    return "Restarting"


async def _rebuild(page: Page, space: Space, form: dict[str, str]) -> str:
    await lifecycle.restart_space(page.platform, page.session, space, factory=True)
    return "Rebuilding from scratch (no cache)"


async def _pause(page: Page, space: Space, form: dict[str, str]) -> str:
    assert space.id is not None
    await lifecycle.pause_space(page.platform, space.id)
    return "Paused: the app does not run until you resume it"


async def _resume(page: Page, space: Space, form: dict[str, str]) -> str:
    await lifecycle.restart_space(page.platform, page.session, space, factory=False)
    return "Resumed"


def _cancel_build(page: Page, space: Space, form: dict[str, str]) -> str:
    builds.cancel(page.session, space)
    return "Build cancelled"


ACTIONS: dict[str, Action] = {
    "secret": _set_secret,
    "secret-delete": _delete_secret,
    "variable": _set_variable,
    "variable-delete": _delete_variable,
    "sleep": _sleep_time,
    "hardware": _hardware,
    "visibility": _visibility,
    "restart": _restart,
    "rebuild": _rebuild,
    "pause": _pause,
    "resume": _resume,
    "cancel-build": _cancel_build,
}


def _save(page: Page, space: Space) -> None:
    page.session.add(space)
    page.session.commit()
    page.session.refresh(space)


@router.post("/spaces/{owner}/{name}/actions/{action}")
async def space_action(owner: str, name: str, action: str, page: PageDep, form: FormDep):
    run = ACTIONS.get(action)
    if run is None:
        raise PageError(404, f"no action {action!r}")
    space, _ = await to_thread.run_sync(writable, page, owner, name)
    back = form.get("back", "settings")
    target = f"/spaces/{owner}/{name}" + ("/settings" if back == "settings" else "")
    try:
        if inspect.iscoroutinefunction(run):
            done = await run(page, space, form)
        else:
            done = await to_thread.run_sync(run, page, space, form)
    except SpacehubError as error:
        return redirect(page, target, ("error", error.message))
    return redirect(page, target, ("ok", done))


@router.post("/spaces/{owner}/{name}/delete")
async def delete_space(owner: str, name: str, page: PageDep, form: FormDep) -> Response:
    space, _ = await to_thread.run_sync(writable, page, owner, name)
    if form.get("confirm", "") != f"{owner}/{name}":
        return redirect(
            page,
            f"/spaces/{owner}/{name}/settings",
            ("error", f"type {owner}/{name} to confirm: the space was not deleted"),
        )
    assert space.id is not None
    await lifecycle.delete_space(page.platform, space.id)
    return redirect(page, "/", ("ok", f"Deleted {owner}/{name}"))


@router.post("/spaces/{owner}/{name}/duplicate")
async def duplicate_space(owner: str, name: str, page: PageDep, form: FormDep) -> Response:
    source, _ = await to_thread.run_sync(visible, page, owner, name)
    user = signed_in_user(page)
    if page.caller.role != TokenRole.WRITE:
        raise PageError(403, "this session was signed in with a read token: it cannot duplicate")
    target_name = form.get("name", "").strip()
    back = f"/spaces/{owner}/{name}"
    try:
        new_owner = accounts.user_by_name(page.session, form.get("owner") or user.name)
        accounts.require_write(page.session, page.caller, new_owner)
        if spaces.find_space(page.session, new_owner.name, target_name) is not None:
            raise InvalidInput(f"{new_owner.name}/{target_name} exists already: pick another name")
        options = lifecycle.DuplicateOptions(private=form.get("visibility") == "private")
        await lifecycle.duplicate_space(
            page.platform, page.session, source, new_owner, target_name, options
        )
    except SpacehubError as error:
        return redirect(page, back, ("error", error.message))
    copy = f"/spaces/{new_owner.name}/{target_name}"
    return redirect(page, copy, ("ok", f"Duplicated {owner}/{name} as {copy[8:]}"))

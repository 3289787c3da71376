"""The home page (spaces a visitor may see), signing in and out, a new space, your settings."""

from typing import Annotated

from anyio import to_thread
from fastapi import APIRouter, Query
from fastapi.responses import Response

from spacehub.core.errors import InvalidInput, SpacehubError, Unauthorized
from spacehub.core.hardware import FLAVORS
from spacehub.core.space_config import SDKS
from spacehub.platform import lifecycle
from spacehub.platform.api.fields import MAX_QUERY_CHARS
from spacehub.platform.dashboard.rendering import (
    FormDep,
    Page,
    PageDep,
    PageError,
    act,
    redirect,
    render,
)
from spacehub.platform.dashboard.sessions import (
    SignInLimiter,
    client_address,
    sign_in,
    sign_out,
)
from spacehub.platform.models import TokenRole, User
from spacehub.platform.services import accounts, spaces, ssh_keys

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 48
LIMITER = SignInLimiter()
Text = Annotated[str, Query(max_length=MAX_QUERY_CHARS)]
PageNumber = Annotated[int, Query(ge=0, le=100_000)]


@router.get("/")
def home(page: PageDep, q: Text = "", owner: Text = "", sdk: Text = "", p: PageNumber = 0):
    rows = spaces.list_visible_spaces(
        page.session,
        page.caller,
        author=owner.strip() or None,
        search=q.strip() or None,
        sdk=sdk if sdk in SDKS else None,
        offset=p * PAGE_SIZE,
        limit=PAGE_SIZE + 1,
    )
    return render(
        page,
        "index.html",
        {
            "rows": rows[:PAGE_SIZE],
            "more": len(rows) > PAGE_SIZE,
            "q": q,
            "owner": owner,
            "sdk": sdk,
            "sdks": SDKS,
            "p": p,
        },
    )


@router.get("/signin")
def sign_in_form(page: PageDep) -> Response:
    return render(page, "signin.html")


@router.post("/signin")
def sign_in_post(page: PageDep, form: FormDep) -> Response:
    name = form.get("username", "").strip()[:MAX_QUERY_CHARS]
    token = form.get("token", "").strip()
    address = client_address(page.request)
    account = name or "(token)"
    wait = LIMITER.wait_seconds(account, address)
    if wait > 0:
        message = f"too many failed sign-ins: try again in {int(wait // 60) + 1} minute(s)"
        return render(page, "signin.html", {"error": message, "username": name}, 429)
    try:
        if token:
            caller = accounts.caller_for_token(page.session, token)
            user = accounts.signed_in(caller)
            sign_in(page.browser, user, accounts.token_row(page.session, token))
        else:
            user = accounts.authenticate(page.session, name, form.get("password", ""))
            sign_in(page.browser, user)
    except (Unauthorized, InvalidInput):
        LIMITER.failed(account, address)
        error = "wrong token" if token else accounts.WRONG_PASSWORD
        return render(page, "signin.html", {"error": error, "username": name}, 401)
    LIMITER.succeeded(account)
    target = form.get("next", "")
    return redirect(page, target if _local_path(target) else "/")


@router.post("/signout")
def sign_out_post(page: PageDep, form: FormDep) -> Response:
    sign_out(page.browser)
    return redirect(page, "/", ("ok", "Signed out"))


def _local_path(target: str) -> bool:
    return target.startswith("/") and not target.startswith(("//", "/\\"))


def signed_in_user(page: Page) -> User:
    """The signed-in user; anyone else is sent a 404 (pages only signed-in users see)."""
    if page.user is None:
        raise PageError(404, "sign in to see this page")
    return page.user


def writable_owners(page: Page, user: User) -> list[User]:
    """The user and the orgs they may create spaces in."""
    orgs = [
        org
        for org in accounts.org_names(page.session, user)
        if user.is_admin or accounts.role_in(page.session, user, org) in accounts.WRITING_ROLES
    ]
    return [user, *sorted(orgs, key=lambda org: org.name)]


@router.get("/new")
def new_space_form(page: PageDep) -> Response:
    user = signed_in_user(page)
    return render(
        page,
        "new_space.html",
        {"owners": writable_owners(page, user), "sdks": SDKS, "flavors": FLAVORS.values()},
    )


@router.post("/new")
async def new_space(page: PageDep, form: FormDep) -> Response:
    user = signed_in_user(page)
    name = form.get("name", "").strip()

    def create() -> User:
        owner = accounts.user_by_name(page.session, form.get("owner") or user.name)
        accounts.require_write(page.session, page.caller, owner)
        lifecycle.create_space(
            page.platform,
            page.session,
            owner,
            name,
            creator=user.name,
            sdk=form.get("sdk", ""),
            private=form.get("visibility") == "private",
            hardware=form.get("hardware") or None,
        )
        return owner

    try:
        owner = await to_thread.run_sync(create)  # git and SQL: off the event loop
    except SpacehubError as error:
        return redirect(page, "/new", ("error", error.message))
    return redirect(page, f"/spaces/{owner.name}/{name}", ("ok", f"Created {owner.name}/{name}"))


# Your settings: tokens, SSH keys, password


@router.get("/settings")
def user_settings(page: PageDep) -> Response:
    return _settings_page(page)


def _settings_page(page: Page, new_token: str | None = None, status: int = 200) -> Response:
    user = signed_in_user(page)
    return render(
        page,
        "settings.html",
        {
            "tokens": accounts.list_tokens(page.session, user),
            "keys": ssh_keys.list_keys(page.session, user),
            "new_token": new_token,
            "session_token_id": page.browser.token_id,
        },
        status,
    )


def _require_writing_session(page: Page, user: User) -> None:
    """A session signed in with a read token may look at settings, not change them."""
    if page.caller.role != TokenRole.WRITE:
        raise PageError(403, "this session was signed in with a read token: it cannot change this")
    accounts.require_write(page.session, page.caller, user)


@router.post("/settings/tokens")
def create_token(page: PageDep, form: FormDep) -> Response:
    user = signed_in_user(page)
    _require_writing_session(page, user)
    role = TokenRole.WRITE if form.get("role") == "write" else TokenRole.READ
    try:
        value = accounts.create_token(page.session, user, role, form.get("name", "").strip())
    except SpacehubError as error:
        return redirect(page, "/settings", ("error", error.message))
    # The value is in this answer only: never in a cookie, a redirect or the database.
    return _settings_page(page, new_token=value)


@router.post("/settings/tokens/{token_id}/revoke")
def revoke_token(token_id: int, page: PageDep, form: FormDep) -> Response:
    user = signed_in_user(page)
    _require_writing_session(page, user)
    done = "Token revoked: it no longer works"
    return act(page, "/settings", done, lambda: accounts.revoke_token(page.session, token_id, user))


@router.post("/settings/keys")
def add_key(page: PageDep, form: FormDep) -> Response:
    user = signed_in_user(page)
    _require_writing_session(page, user)
    key, title = form.get("key", ""), form.get("title", "")
    return act(
        page, "/settings", "SSH key added", lambda: ssh_keys.add_key(page.session, user, key, title)
    )


@router.post("/settings/keys/{key_id}/remove")
def remove_key(key_id: int, page: PageDep, form: FormDep) -> Response:
    user = signed_in_user(page)
    _require_writing_session(page, user)
    return act(
        page,
        "/settings",
        "SSH key removed",
        lambda: ssh_keys.remove_key(page.session, key_id, user),
    )


@router.post("/settings/password")
def change_password(page: PageDep, form: FormDep) -> Response:
    user = signed_in_user(page)
    _require_writing_session(page, user)
    new = form.get("new_password", "")
    try:
        if user.password_hash is not None:
            current = form.get("current_password", "")
            accounts.authenticate(page.session, user.name, current)
        if new != form.get("confirm_password", ""):
            raise InvalidInput("the two new passwords differ")
        accounts.update_user(page.session, user, password=new)
    except Unauthorized:
        return redirect(page, "/settings", ("error", "the current password is wrong"))
    except SpacehubError as error:
        return redirect(page, "/settings", ("error", error.message))
    if page.browser.token_id is None:
        sign_in(page.browser, user)  # the session follows the new password; others end
    return redirect(page, "/settings", ("ok", "Password changed"))

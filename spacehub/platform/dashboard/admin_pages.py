"""The admin console: users, organisations, every space, the build queue, health and disk.

Anyone who is not a platform admin gets the same 404 as for a page that does not exist.
"""

from dataclasses import asdict
from typing import Annotated

from anyio import to_thread
from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response

from spacehub.platform.dashboard.console import every_space
from spacehub.platform.dashboard.rendering import (
    FormDep,
    Page,
    PageDep,
    PageError,
    act,
    render,
)
from spacehub.platform.models import MemberRole, TokenRole, User
from spacehub.platform.services import accounts, builds, spaces
from spacehub.platform.services.disk import measure_disk
from spacehub.platform.usage import cached_space_usage, space_usage

router = APIRouter(prefix="/admin", include_in_schema=False)
SPACES_PER_PAGE = 100


def admin_only(page: Page, changing: bool = False) -> User:
    user = page.user
    if user is None or not user.is_admin:
        raise PageError(404, "no such page")
    if changing and page.caller.role != TokenRole.WRITE:
        raise PageError(403, "this session was signed in with a read token: it cannot change this")
    return user


@router.get("")
def console(page: PageDep, p: Annotated[int, Query(ge=0, le=100_000)] = 0) -> Response:
    admin_only(page)
    rows = every_space(page.session, p * SPACES_PER_PAGE, SPACES_PER_PAGE + 1)
    orgs = accounts.list_users(page.session, orgs=True)
    platform = page.platform
    runtime = type(platform.runtime).__name__ if platform.runtime is not None else None
    return render(
        page,
        "admin.html",
        {
            "users": accounts.list_users(page.session),
            "orgs": [(org, accounts.members(page.session, org)) for org in orgs],
            "roles": list(MemberRole),
            "spaces": rows[:SPACES_PER_PAGE],
            "more": len(rows) > SPACES_PER_PAGE,
            "p": p,
            "queue": builds.queue(page.session),
            "runtime": runtime,
            "loops": {name: asdict(record) for name, record in platform.loops.items()},
            "healthy": all(record.running for record in platform.loops.values()),
            "usage": cached_space_usage(platform),
        },
    )


@router.get("/disk")
async def disk(page: PageDep) -> Response:
    """Disk use walks the data dir: its own page, so that the console stays fast."""
    await to_thread.run_sync(admin_only, page)
    usage = await to_thread.run_sync(measure_disk, page.platform)
    return render(page, "admin_disk.html", {"usage": usage, "data_dir": page.settings.data_dir})


@router.get("/usage")
async def usage(page: PageDep) -> Response:
    """CPU % and memory (MiB) of every running space, which the console polls; null: unknown."""
    await to_thread.run_sync(admin_only, page)
    measured = await space_usage(page.platform)
    body = {space_id: asdict(found) if found else None for space_id, found in measured.items()}
    return JSONResponse({"spaces": body}, headers={"Cache-Control": "no-store"})


@router.post("/users")
def add_user(page: PageDep, form: FormDep) -> Response:
    admin_only(page, changing=True)
    name = form.get("name", "").strip()
    return act(
        page,
        "/admin",
        f"User {name} added",
        lambda: accounts.create_user(
            page.session,
            name,
            fullname=form.get("fullname", "").strip(),
            is_admin=form.get("is_admin") == "on",
            password=form.get("password") or None,
        ),
    )


USER_CHANGES = {
    "disable": ({"disabled": True}, "disabled: their sessions, tokens and keys stop working"),
    "enable": ({"disabled": False}, "enabled"),
    "make-admin": ({"is_admin": True}, "is now an admin"),
    "revoke-admin": ({"is_admin": False}, "is no longer an admin"),
}


@router.post("/users/{name}/{change}")
def change_user(name: str, change: str, page: PageDep, form: FormDep) -> Response:
    admin = admin_only(page, changing=True)
    if change not in USER_CHANGES:
        raise PageError(404, "no such change")
    values, said = USER_CHANGES[change]
    return act(
        page,
        "/admin",
        f"{name} {said}",
        lambda: accounts.update_user(
            page.session, accounts.person_by_name(page.session, name), actor=admin, **values
        ),
    )


@router.post("/orgs")
def add_org(page: PageDep, form: FormDep) -> Response:
    admin_only(page, changing=True)
    name = form.get("name", "").strip()
    return act(
        page,
        "/admin",
        f"Organisation {name} added",
        lambda: accounts.create_user(
            page.session, name, fullname=form.get("fullname", "").strip(), is_org=True
        ),
    )


@router.post("/orgs/{name}/members")
def add_member(name: str, page: PageDep, form: FormDep) -> Response:
    admin_only(page, changing=True)
    member = form.get("user", "").strip()

    def add() -> None:
        org = accounts.org_by_name(page.session, name)
        user = accounts.person_by_name(page.session, member)
        accounts.add_member(page.session, org, user, _role(form))

    return act(page, "/admin", f"{member} added to {name}", add)


@router.post("/orgs/{name}/members/{member}")
def change_member(name: str, member: str, page: PageDep, form: FormDep) -> Response:
    admin_only(page, changing=True)

    def change() -> None:
        org = accounts.org_by_name(page.session, name)
        user = accounts.person_by_name(page.session, member)
        if form.get("role") == "remove":
            accounts.remove_member(page.session, org, user)
        else:
            accounts.set_member_role(page.session, org, user, _role(form))

    return act(page, "/admin", f"Membership of {member} in {name} changed", change)


def _role(form: dict[str, str]) -> MemberRole:
    role = form.get("role", "write")
    return MemberRole(role) if role in MemberRole.__members__.values() else MemberRole.WRITE


@router.post("/builds/{owner}/{name}/cancel")
def cancel_build(owner: str, name: str, page: PageDep, form: FormDep) -> Response:
    admin_only(page, changing=True)

    def cancel() -> None:
        space = spaces.visible_space(page.session, page.caller, owner, name)
        builds.cancel(page.session, space)

    return act(page, "/admin", f"Build of {owner}/{name} cancelled", cancel)

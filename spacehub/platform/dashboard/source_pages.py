"""The space settings' "Deploy from GitHub or Gitea" forms: what `/api/…/source` does.

A new webhook secret is shown in the page that answers the form, once, never in a redirect
or a flash message (which travel in the session cookie).
"""

from anyio import to_thread
from fastapi import APIRouter
from fastapi.responses import Response

from spacehub.core.errors import SpacehubError
from spacehub.platform.dashboard.rendering import (
    FormDep,
    Page,
    PageDep,
    PageError,
    redirect,
    render,
)
from spacehub.platform.dashboard.space_pages import settings_context
from spacehub.platform.models import Space
from spacehub.platform.services import sources, spaces
from spacehub.platform.source_webhooks import deploy

router = APIRouter(include_in_schema=False)


def _managed(page: Page, owner: str, name: str) -> Space:
    try:
        return sources.managed_space(page.session, page.caller, owner, name)
    except SpacehubError as error:
        raise PageError(403, "only the space's owner or an admin may change its source") from error


def _settings_with_secret(page: Page, space: Space, secret: str, done: str) -> Response:
    context = settings_context(page, space, spaces.owner_of(page.session, space))
    context |= {"new_webhook_secret": secret, "flash": ("ok", done)}
    return render(page, "space_settings.html", context)


@router.post("/spaces/{owner}/{name}/source")
def save_source(owner: str, name: str, page: PageDep, form: FormDep) -> Response:
    space = _managed(page, owner, name)
    back = f"/spaces/{owner}/{name}/settings"
    try:
        change = sources.source_change(
            form.get("url", ""),
            form.get("branch", "") or "main",
            form.get("token") or None,
            form.get("ssh_key") or None,
            keep_credential=form.get("remove_credential") != "on",
        )
        assert page.user is not None  # _managed checked it
        _, secret = sources.set_source(
            page.session, page.platform.secret_box, space, change, page.user
        )
    except SpacehubError as error:
        return redirect(page, back, ("error", error.message))
    if secret is not None:
        return _settings_with_secret(page, space, secret, "Source saved: add the webhook below")
    return redirect(page, back, ("ok", "Source saved"))


@router.post("/spaces/{owner}/{name}/source/secret")
def rotate_secret(owner: str, name: str, page: PageDep, form: FormDep) -> Response:
    space = _managed(page, owner, name)
    try:
        secret = sources.rotate_webhook_secret(page.session, page.platform.secret_box, space)
    except SpacehubError as error:
        return redirect(page, f"/spaces/{owner}/{name}/settings", ("error", error.message))
    return _settings_with_secret(page, space, secret, "New webhook secret: the old one is refused")


@router.post("/spaces/{owner}/{name}/source/delete")
def delete_source(owner: str, name: str, page: PageDep, form: FormDep) -> Response:
    space = _managed(page, owner, name)
    back = f"/spaces/{owner}/{name}/settings"
    try:
        sources.delete_source(page.session, space)
    except SpacehubError as error:
        return redirect(page, back, ("error", error.message))
    return redirect(page, back, ("ok", "The space no longer follows an external repository"))


@router.post("/spaces/{owner}/{name}/source/sync")
async def sync_source(owner: str, name: str, page: PageDep, form: FormDep) -> Response:
    await to_thread.run_sync(_managed, page, owner, name)
    back = f"/spaces/{owner}/{name}/settings"
    try:
        answer = await deploy(page.platform, owner, name, "manual", None)
    except SpacehubError as error:
        return redirect(page, back, ("error", error.message))
    return redirect(page, back, ("ok", answer.message))

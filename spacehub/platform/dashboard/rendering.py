"""What every dashboard page shares: the request's context, templates, headers, redirects."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlmodel import Session

from spacehub import __version__
from spacehub.core.errors import SpacehubError
from spacehub.platform.context import Platform
from spacehub.platform.dashboard.sessions import (
    CSRF_FIELD,
    BrowserSession,
    check_form,
    read_session,
    session_caller,
    write_session,
)
from spacehub.platform.deps import PlatformDep, SessionDep
from spacehub.platform.errors import status_of
from spacehub.platform.models import User, utcnow
from spacehub.platform.services.accounts import Caller
from spacehub.platform.settings import Settings

TEMPLATES = Jinja2Templates(directory=Path(__file__).parents[1] / "templates" / "dashboard")
# The Hub's card colours (colorFrom / colorTo); anything else is shown gray.
CARD_COLORS = ("red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray")


def card_color(value: object) -> str:
    return value if isinstance(value, str) and value in CARD_COLORS else "gray"


def ago(moment: datetime | None) -> str:
    """'3 minutes ago', as the Hub writes dates on cards."""
    if moment is None:
        return ""
    if moment.tzinfo is None:  # SQLite gives dates back without their zone: UTC
        moment = moment.replace(tzinfo=UTC)
    seconds = max(0, int((utcnow() - moment).total_seconds()))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count > 1 else ''} ago"
    return "just now"


TEMPLATES.env.filters["card_color"] = card_color
TEMPLATES.env.filters["ago"] = ago
TEMPLATES.env.globals["version"] = __version__
TEMPLATES.env.globals["csrf_field"] = CSRF_FIELD


def app_url(settings: Settings, owner: str, name: str, label: str) -> str:
    """Where a browser opens a space's app: the subdomain form, an origin of its own, when
    browsers resolve it (`*.localhost` always; others with wildcard DNS), else the path form
    on the apps origin (`apps_url`) when the platform has one, else on its own URL."""
    public = urlsplit(settings.effective_public_url)
    if settings.wildcard_dns or settings.apps_domain == "localhost":
        port = f":{public.port}" if public.port else ""
        return f"{public.scheme}://{label}.{settings.apps_domain}{port}/"
    return f"{_apps_base(settings)}/apps/{owner}/{name}/"


def _apps_base(settings: Settings) -> str:
    return settings.effective_apps_url.rstrip("/")


def app_origins(settings: Settings) -> str:
    """The CSP sources the app iframe may load from."""
    public = urlsplit(settings.effective_public_url)
    port = f":{public.port}" if public.port else ""
    apps = urlsplit(_apps_base(settings))
    sources = [
        f"{public.scheme}://*.{settings.apps_domain}{port}",
        f"{apps.scheme}://{apps.netloc}",
    ]
    return " ".join(dict.fromkeys(sources))


def security_headers(settings: Settings) -> dict[str, str]:
    policy = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"frame-src 'self' {app_origins(settings)}; connect-src 'self'; object-src 'none'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
    return {
        "Content-Security-Policy": policy,
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "same-origin",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
    }


@dataclass
class Page:
    """One request to the dashboard: who asks, their browser session, the database."""

    request: Request
    platform: Platform
    session: Session
    browser: BrowserSession
    caller: Caller

    @property
    def user(self) -> User | None:
        return self.caller.user

    @property
    def settings(self) -> Settings:
        return self.platform.settings


class PageError(Exception):
    """Answered as an HTML page with this status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    @classmethod
    def of(cls, error: SpacehubError) -> "PageError":
        return cls(status_of(error), error.message)


def get_page(request: Request, session: SessionDep, platform: PlatformDep) -> Page:
    browser = read_session(request, platform)
    caller = session_caller(session, request, browser)
    page = Page(request, platform, session, browser, caller)
    request.state.page = page  # for the error page
    return page


PageDep = Annotated[Page, Depends(get_page)]


async def get_form(page: PageDep) -> dict[str, str]:
    """The posted form, once its CSRF token and Origin are checked (else 403)."""
    form = await page.request.form()
    fields = {key: value for key, value in form.items() if isinstance(value, str)}
    try:
        check_form(page.request, page.platform, page.browser, fields)
    except SpacehubError as error:
        raise PageError.of(error) from error
    return fields


FormDep = Annotated[dict[str, str], Depends(get_form)]


def render(page: Page, template: str, context: dict | None = None, status: int = 200) -> Response:
    values = {
        "user": page.user,
        "csrf_token": page.browser.csrf,
        "flash": page.browser.take_flash(),
        "public_url": page.settings.effective_public_url,
        **(context or {}),
    }
    response = TEMPLATES.TemplateResponse(
        page.request, template, values, status_code=status, headers=security_headers(page.settings)
    )
    write_session(response, page.platform, page.browser)
    return response


def redirect(page: Page, url: str, flash: tuple[str, str] | None = None) -> Response:
    if flash is not None:
        page.browser.say(*flash)
    response = RedirectResponse(url, status_code=303, headers=security_headers(page.settings))
    write_session(response, page.platform, page.browser)
    return response


def act(page: Page, back: str, done: str, action: Callable[[], object]) -> Response:
    """Run a form's action, then go `back` saying `done`, or what the domain error says."""
    try:
        action()
    except SpacehubError as error:
        return redirect(page, back, ("error", error.message))
    return redirect(page, back, ("ok", done))


async def page_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, PageError)
    page: Page | None = getattr(request.state, "page", None)
    if page is None:
        body = f"<!doctype html><title>{error.status}</title><h1>{error.status}</h1>"
        return HTMLResponse(body, error.status)
    context = {"status": error.status, "message": error.message}
    return render(page, "error.html", context, error.status)

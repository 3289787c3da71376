"""The apps origin's side of app tickets (app_tickets.py): a ticket in, an app-access cookie out."""

from urllib.parse import urlencode, urlsplit

from sqlmodel import Session
from starlette.requests import HTTPConnection
from starlette.responses import RedirectResponse, Response

from spacehub.core.errors import SpacehubError
from spacehub.platform.app_tickets import APP_COOKIE, COOKIE_SECONDS, TICKET_PARAMETER
from spacehub.platform.context import Platform
from spacehub.platform.services import accounts, spaces
from spacehub.platform.services.accounts import Caller

# Browsers keep `Secure` cookies from these hosts over plain HTTP (they are loopback).
_LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


def exchange_ticket(
    platform: Platform, session: Session, request: HTTPConnection, owner: str, name: str
) -> Response | None:
    """Answer a request carrying `?__sign=TICKET`: the same URL without it, with the cookie.

    None when there is no ticket; a ticket that is invalid, used or for someone who may not
    see the space is ignored (the request is answered as if it had none).
    """
    ticket = request.query_params.get(TICKET_PARAMETER)
    if ticket is None:
        return None
    space_id = f"{owner}/{name}"
    grant = platform.app_signer.redeem(ticket, space_id)
    if grant is None or _visible_to(session, grant.user, owner, name) is None:
        return None
    query = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "__sign"])
    host = _host_name(request)
    subdomain = host.endswith("." + platform.settings.apps_domain.lower().strip("."))
    # The control plane sees the path form even for the subdomain form (the proxy rewrote it).
    prefix = f"/apps/{owner}/{name}"
    path = request.url.path
    if subdomain:
        path = path[len(prefix) :] or "/"
    answer = RedirectResponse(path + (f"?{query}" if query else ""), status_code=303)
    value = platform.app_signer.cookie(grant.user, space_id)
    path_scope = "/" if subdomain else prefix + "/"
    answer.headers.append("set-cookie", _cookie(platform, host, value, path_scope))
    answer.headers["cache-control"] = "no-store"
    return answer


def cookie_caller(
    platform: Platform, session: Session, request: HTTPConnection, space_id: str
) -> Caller | None:
    """The signed-in user of this space's app-access cookie, if it holds."""
    value = request.cookies.get(APP_COOKIE)
    grant = platform.app_signer.cookie_grant(value, space_id) if value else None
    if grant is None:
        return None
    try:
        user = accounts.person_by_name(session, grant.user)
    except SpacehubError:
        return None
    return None if user.disabled else Caller(user=user)


def _visible_to(session: Session, user_name: str, owner: str, name: str) -> object | None:
    try:
        user = accounts.person_by_name(session, user_name)
        if user.disabled:
            return None
        return spaces.visible_space(session, Caller(user=user), owner, name)
    except SpacehubError:
        return None


def _host_name(request: HTTPConnection) -> str:
    return (urlsplit(f"//{request.headers.get('host', '')}").hostname or "").lower()


def _cookie(platform: Platform, host: str, value: str, path: str) -> str:
    """Partitioned and SameSite=None where browsers allow it (HTTPS or loopback): the app then
    also works in the dashboard's iframe, and no other top-level site's requests carry it."""
    https = urlsplit(platform.settings.effective_apps_url).scheme == "https"
    loopback = host in _LOOPBACK_HOSTS or host.endswith(".localhost")
    attributes = [f"{APP_COOKIE}={value}", f"Path={path}", f"Max-Age={COOKIE_SECONDS}", "HttpOnly"]
    if https or loopback:
        attributes += ["Secure", "SameSite=None", "Partitioned"]
    else:
        attributes.append("SameSite=Lax")
    return "; ".join(attributes)

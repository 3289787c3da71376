"""Browser sessions: a signed cookie, a CSRF token per session, and limits on failed sign-ins.

The cookie holds the user's id, a CSRF token and what the user signed in with: a fingerprint of
their password hash (a password change ends every session made with the old one) or a token's id
(revoking the token ends the session). It is signed with a key derived from the platform's
secret, `HttpOnly` and `SameSite=Lax`; every request re-reads the user, so a disabled user is
signed out at once.
"""

import hmac
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import Response

from spacehub.core.errors import Forbidden, SpacehubError
from spacehub.platform.context import Platform
from spacehub.platform.deps import bearer_token
from spacehub.platform.models import Token, TokenRole, User, utcnow
from spacehub.platform.security import hash_token
from spacehub.platform.services import accounts
from spacehub.platform.services.accounts import ANONYMOUS, Caller

COOKIE = "spacehub_session"
MAX_AGE_SECONDS = 14 * 24 * 3600
CSRF_FIELD = "csrf_token"
SESSION = "browser session"  # the Caller's token name for a signed-in browser


@dataclass
class BrowserSession:
    """What the cookie carries; `changed` says the cookie must be written again."""

    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    user_id: int | None = None
    password: str | None = None  # fingerprint of the password hash signed in with
    token_id: int | None = None
    role: str = TokenRole.WRITE
    flash: tuple[str, str] | None = None
    changed: bool = False

    def as_dict(self) -> dict:
        return {
            "c": self.csrf,
            "u": self.user_id,
            "p": self.password,
            "t": self.token_id,
            "r": self.role,
            "f": list(self.flash) if self.flash else None,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "BrowserSession":
        flash = data.get("f")
        return cls(
            csrf=str(data["c"]),
            user_id=data.get("u"),
            password=data.get("p"),
            token_id=data.get("t"),
            role=data.get("r") or TokenRole.WRITE,
            flash=(str(flash[0]), str(flash[1])) if flash else None,
        )

    def say(self, kind: str, message: str) -> None:
        """A message for the next page this browser shows (an error, a done action)."""
        self.flash = (kind, message)
        self.changed = True

    def take_flash(self) -> tuple[str, str] | None:
        flash, self.flash = self.flash, None
        self.changed = self.changed or flash is not None
        return flash


def _serializer(platform: Platform) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(platform.secret_box.derived_key("sessions"), salt="session")


def read_session(request: Request, platform: Platform) -> BrowserSession:
    """The browser's session; a new anonymous one (to be written) when it has none."""
    cookie = request.cookies.get(COOKIE)
    if cookie:
        try:
            data = _serializer(platform).loads(cookie, max_age=MAX_AGE_SECONDS)
            return BrowserSession.from_dict(data)
        except (BadSignature, KeyError, TypeError, ValueError, IndexError):
            pass
    return BrowserSession(changed=True)


def write_session(response: Response, platform: Platform, browser: BrowserSession) -> None:
    if not browser.changed:
        return
    response.set_cookie(
        COOKIE,
        _serializer(platform).dumps(browser.as_dict()),
        max_age=MAX_AGE_SECONDS,
        httponly=True,
        samesite="lax",
        secure=platform.settings.effective_public_url.startswith("https://"),
        path="/",
    )


def password_fingerprint(user: User) -> str:
    return hash_token(user.password_hash or "")[:16]


def sign_in(browser: BrowserSession, user: User, token: Token | None = None) -> None:
    """Make the session `user`'s, with a fresh CSRF token (none from before sign-in survives)."""
    browser.csrf = secrets.token_urlsafe(24)
    browser.user_id = user.id
    browser.password = None if token else password_fingerprint(user)
    browser.token_id = token.id if token else None
    browser.role = token.role if token else TokenRole.WRITE
    browser.changed = True


def sign_out(browser: BrowserSession) -> None:
    browser.csrf = secrets.token_urlsafe(24)
    browser.user_id = browser.password = browser.token_id = None
    browser.changed = True


def session_caller(session: Session, request: Request, browser: BrowserSession) -> Caller:
    """Who the browser is: the session's user if it still holds, else a bearer token's, else
    anonymous (a disabled user, a changed password or a revoked token end the session)."""
    if browser.user_id is not None:
        user = session.get(User, browser.user_id)
        if user is not None and _still_valid(session, user, browser):
            return Caller(user=user, role=TokenRole(browser.role), token_name=SESSION)
        sign_out(browser)
    try:
        return accounts.caller_for_token(session, bearer_token(request))
    except SpacehubError:
        return ANONYMOUS


def _still_valid(session: Session, user: User, browser: BrowserSession) -> bool:
    if user.disabled or user.is_org:
        return False
    if browser.token_id is not None:
        token = session.get(Token, browser.token_id)
        return (
            token is not None
            and token.user_id == user.id
            and (token.expires_at is None or token.expires_at > utcnow())
        )
    return browser.password is not None and hmac.compare_digest(
        browser.password, password_fingerprint(user)
    )


def check_form(request: Request, platform: Platform, browser: BrowserSession, form: dict) -> None:
    """Refuse a form not sent by one of our pages: a foreign Origin or a wrong CSRF token."""
    origin = request.headers.get("origin")
    if origin is not None and origin not in own_origins(request, platform):
        raise Forbidden("this form was sent from another site: refused")
    if request.headers.get("sec-fetch-site") == "cross-site":
        raise Forbidden("this form was sent from another site: refused")
    sent = str(form.get(CSRF_FIELD, ""))
    if not sent or not hmac.compare_digest(sent, browser.csrf):
        raise Forbidden("this form is stale or was not sent by this site: reload the page")


def own_origins(request: Request, platform: Platform) -> set[str]:
    public = urlsplit(platform.settings.effective_public_url)
    origins = {f"{public.scheme}://{public.netloc}"}
    host = request.headers.get("x-forwarded-host") or request.headers.get("host")
    if host:
        origins.add(f"{public.scheme}://{host}")
    return origins


def client_address(request: Request) -> str:
    """The browser's address: the platform's own proxy puts it in X-Forwarded-For (it drops
    any the client sent)."""
    forwarded = request.headers.get("x-forwarded-for", "").split(",")[-1].strip()
    return forwarded or (request.client.host if request.client else "unknown")


class SignInLimiter:
    """Failed sign-ins counted in memory per account and per client address, in a window."""

    def __init__(
        self, per_account: int = 5, per_address: int = 20, window_seconds: float = 900
    ) -> None:
        self.limits = {"account": per_account, "address": per_address}
        self.window = window_seconds
        self._failures: dict[tuple[str, str], deque[float]] = {}

    def wait_seconds(self, account: str, address: str) -> float:
        """0 when a sign-in may be tried now; else how long until one may."""
        now = time.monotonic()
        waits = [0.0]
        for kind, key in (("account", account.lower()), ("address", address)):
            failures = self._recent((kind, key), now)
            if len(failures) >= self.limits[kind]:
                waits.append(failures[0] + self.window - now)
        return max(waits)

    def failed(self, account: str, address: str) -> None:
        now = time.monotonic()
        if len(self._failures) > 100_000:
            self._failures.clear()
        for key in (("account", account.lower()), ("address", address)):
            self._recent(key, now).append(now)

    def succeeded(self, account: str) -> None:
        self._failures.pop(("account", account.lower()), None)

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        failures = self._failures.setdefault(key, deque())
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        return failures

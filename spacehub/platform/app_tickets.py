"""How a signed-in browser opens a private app on the apps origin, where no dashboard cookie goes.

The main origin gives a signed-in user a ticket for one space, valid for a minute and once, in
the app's URL (`?__sign=…`, as the Hub does for `*.hf.space`). The apps origin exchanges it for an
app-access cookie that only that space's URLs receive (Path /apps/{owner}/{name}/ in the path
form, host-only in the subdomain form). Both are signed with the platform's app-access key and
name the user: who may open the app is still decided on every request from the current accounts
(app_access.py), so a removed member's cookie stops working at once.

Cookies whose name starts with `spacehub` are the platform's: the proxy never passes them to apps.
"""

import hashlib
import hmac
import secrets
import threading
import time
from base64 import urlsafe_b64decode, urlsafe_b64encode
from dataclasses import dataclass
from pathlib import Path

from spacehub.platform.security import load_or_create_key

TICKET_PARAMETER = "__sign"
APP_COOKIE = "spacehub-app"
PLATFORM_COOKIE_PREFIX = b"spacehub"
TICKET_SECONDS = 60
COOKIE_SECONDS = 12 * 3600
_TICKET, _COOKIE = "t", "c"


class AppCookie(str):
    """The app-access cookie's value, handed to `authorize` where a bearer token would be."""


@dataclass(frozen=True)
class Grant:
    """What a valid ticket or cookie says: this user, this space, until then (epoch seconds)."""

    user: str
    space_id: str
    expires: int
    nonce: str


class AppSigner:
    """Signs and checks tickets and app-access cookies; no database, cheap enough per request."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._used: dict[str, float] = {}  # ticket nonces already exchanged, until they expire
        self._lock = threading.Lock()  # tickets are redeemed in the control plane's threads

    @classmethod
    def for_data_dir(cls, data_dir: Path) -> "AppSigner":
        return cls(load_or_create_key(data_dir / "app-access.key", secrets.token_hex(32).encode()))

    def ticket(self, user: str, space_id: str) -> str:
        return self._sign(_TICKET, user, space_id, TICKET_SECONDS)

    def cookie(self, user: str, space_id: str) -> str:
        return self._sign(_COOKIE, user, space_id, COOKIE_SECONDS)

    def redeem(self, ticket: str, space_id: str) -> Grant | None:
        """The ticket's grant for this space, once: a second exchange of it gets None."""
        grant = self._check(_TICKET, ticket, space_id)
        if grant is None:
            return None
        with self._lock:
            if grant.nonce in self._used:
                return None
            now = time.time()
            self._used = {nonce: until for nonce, until in self._used.items() if until > now}
            self._used[grant.nonce] = grant.expires
        return grant

    def cookie_grant(self, value: str, space_id: str) -> Grant | None:
        return self._check(_COOKIE, value, space_id)

    def _sign(self, kind: str, user: str, space_id: str, seconds: int) -> str:
        fields = [kind, user, space_id, str(int(time.time()) + seconds), secrets.token_hex(8)]
        body = _encode("\n".join(fields))
        return f"{body}.{self._mac(body)}"

    def _check(self, kind: str, value: str, space_id: str) -> Grant | None:
        body, _, mac = value.partition(".")
        if not mac or not hmac.compare_digest(mac, self._mac(body)):
            return None
        try:
            found_kind, user, found_space, expires, nonce = _decode(body).split("\n")
            until = int(expires)
        except ValueError:
            return None
        if found_kind != kind or found_space != space_id or until <= time.time():
            return None
        return Grant(user, found_space, until, nonce)

    def _mac(self, body: str) -> str:
        digest = hmac.new(self._key, body.encode(), hashlib.sha256).digest()
        return _encode_bytes(digest)


def _encode(text: str) -> str:
    return _encode_bytes(text.encode())


def _encode_bytes(data: bytes) -> str:
    return urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _decode(text: str) -> str:
    try:
        return urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError("not a ticket") from error


def cookie_value(header: bytes, name: bytes) -> bytes | None:
    """The value of cookie `name` in a Cookie header, if it is there."""
    for part in header.split(b";"):
        key, _, value = part.strip().partition(b"=")
        if key == name:
            return value.strip(b'"')
    return None


def without_platform_cookies(header: bytes) -> bytes:
    """A Cookie header without the platform's cookies (an app must never see a session)."""
    kept = [
        part.strip()
        for part in header.split(b";")
        if part.strip() and not part.strip().startswith(PLATFORM_COOKIE_PREFIX)
    ]
    return b"; ".join(kept)

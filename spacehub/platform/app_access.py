"""Who may open a private space's app: the proxy asks here, per request, without waiting on SQL.

Decisions follow the accounts as they are now, not as they were when the space was deployed:
every commit that changes a user, an org membership, a token or a space's owner or visibility
bumps `ACCOUNT_CHANGES`, and what was remembered under an older number is looked up again (one
query per token or owner, not one per request). Changes made by another process (`spacehub users
… --data-dir` beside a running serve) are seen after `RECHECK_SECONDS` at most.
"""

import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from anyio import to_thread
from sqlalchemy import Engine, event, inspect
from sqlalchemy.orm import Session, UOWTransaction
from sqlmodel import select

from spacehub.core.errors import Unauthorized
from spacehub.platform.app_tickets import AppCookie, AppSigner
from spacehub.platform.db import session_scope
from spacehub.platform.models import Membership, Space, Token, User, utcnow
from spacehub.platform.route_table import Route
from spacehub.platform.security import hash_token
from spacehub.platform.services.accounts import caller_for_token, members

# How long a decision is trusted without news from this process: the bound for changes another
# process made to the database.
RECHECK_SECONDS = 10.0
MAX_REMEMBERED = 10_000
# Changes to these columns alone do not change who may open what.
_UNRELATED: dict[type, set[str]] = {Token: {"last_used_at"}, User: {"updated_at"}}
_SPACE_ACCESS_COLUMNS = {"owner_id", "private", "name"}
_CHANGED = "spacehub.accounts_changed"
T = TypeVar("T")


class AccountChanges:
    """A number that grows with every committed change to who may read what, in this process."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)
        self.version = 0

    def bump(self) -> None:
        self.version = next(self._counter)  # atomic in CPython: bumps from any thread


ACCOUNT_CHANGES = AccountChanges()
_watching = threading.Lock()
_watched = False


def watch_account_changes() -> None:
    """Bump `ACCOUNT_CHANGES` after each commit that touched accounts (once per process)."""
    global _watched
    with _watching:
        if _watched:
            return
        event.listen(Session, "after_flush", _note_changes)
        event.listen(Session, "after_commit", _bump_if_changed)
        event.listen(Session, "after_soft_rollback", _forget_changes)
        _watched = True


def _note_changes(session: Session, _flush: UOWTransaction) -> None:
    if any(_touches_access(row, deleted=False) for row in (*session.new, *session.dirty)) or any(
        _touches_access(row, deleted=True) for row in session.deleted
    ):
        session.info[_CHANGED] = True


def _touches_access(row: object, *, deleted: bool) -> bool:
    if isinstance(row, Membership):
        return True
    if isinstance(row, (User, Token)):
        if deleted:
            return True
        unrelated = _UNRELATED[type(row)]
        state = inspect(row)
        changed = {attr.key for attr in state.attrs if attr.history.has_changes()}
        return state.pending or bool(changed - unrelated)
    if isinstance(row, Space):
        state = inspect(row)
        if deleted or state.pending:
            return True
        return any(state.attrs[key].history.has_changes() for key in _SPACE_ACCESS_COLUMNS)
    return False


def _bump_if_changed(session: Session) -> None:
    if session.info.pop(_CHANGED, False):
        ACCOUNT_CHANGES.bump()


def _forget_changes(session: Session, _transaction: object) -> None:
    session.info.pop(_CHANGED, None)


@dataclass
class _Memo(Generic[T]):
    value: T
    version: int
    until: float  # monotonic


@dataclass
class AppAccess:
    engine: Engine
    signer: AppSigner | None = None
    changes: AccountChanges = field(default_factory=lambda: ACCOUNT_CHANGES)
    _owners: dict[str, _Memo[str | None]] = field(default_factory=dict)
    _readers: dict[str, _Memo[frozenset[str]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        watch_account_changes()

    async def authorize(self, route: Route, token: str | None) -> bool:
        """Whether this token (or app-access cookie) opens the private app of `route` now."""
        if not token:
            return False
        if isinstance(token, AppCookie):
            grant = self.signer.cookie_grant(token, route.space_id) if self.signer else None
            name = grant.user if grant is not None else None
        else:
            name = await self._owner_of(token)
        return name is not None and name in await self._readers_of(route.owner)

    async def _owner_of(self, token: str) -> str | None:
        key = hash_token(token)
        memo = self._fresh(self._owners.get(key))
        if memo is not None:
            return memo.value
        version = self.changes.version  # read before looking: a change during it is seen next
        name, expires_in = await to_thread.run_sync(self._look_up, token)
        self._remember(self._owners, key, name, version, min(RECHECK_SECONDS, expires_in))
        return name

    async def _readers_of(self, owner: str) -> frozenset[str]:
        memo = self._fresh(self._readers.get(owner))
        if memo is not None:
            return memo.value
        version = self.changes.version
        names = await to_thread.run_sync(self._look_up_readers, owner)
        self._remember(self._readers, owner, names, version, RECHECK_SECONDS)
        return names

    def _fresh(self, memo: _Memo[T] | None) -> _Memo[T] | None:
        if memo is None or memo.version != self.changes.version:
            return None
        return memo if memo.until > time.monotonic() else None

    def _remember(
        self, memos: dict[str, _Memo[T]], key: str, value: T, version: int, seconds: float
    ) -> None:
        if len(memos) > MAX_REMEMBERED:
            memos.clear()
        memos[key] = _Memo(value, version, time.monotonic() + seconds)

    def _look_up(self, token: str) -> tuple[str | None, float]:
        """The token's user and how long the answer holds (until the token expires)."""
        with session_scope(self.engine) as session:
            try:
                caller = caller_for_token(session, token)
            except Unauthorized:
                return None, RECHECK_SECONDS
            row = session.get(Token, caller.token_id) if caller.token_id is not None else None
            expires_in = RECHECK_SECONDS
            if row is not None and row.expires_at is not None:
                expires_in = max(0.0, (row.expires_at - utcnow()).total_seconds())
            return caller.name, expires_in

    def _look_up_readers(self, owner_name: str) -> frozenset[str]:
        """Who may see the private spaces of this owner: the owner, its org's members, admins."""
        with session_scope(self.engine) as session:
            enabled = User.disabled == False  # noqa: E712
            admins = select(User.name).where(User.is_admin == True, enabled)  # noqa: E712
            names = set(session.exec(admins))
            owner = session.exec(select(User).where(User.name == owner_name)).first()
            if owner is not None:
                if not owner.disabled:
                    names.add(owner.name)
                names.update(user.name for user, _ in members(session, owner) if not user.disabled)
            return frozenset(names)

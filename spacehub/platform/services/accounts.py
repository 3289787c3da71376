"""Users, organisations, tokens and who may see or change a space: the one place for the rules.

Platform admins may do anything. In an org, `read` members see its private spaces, `write`
members also push and create there, `admin` members also manage its members. A disabled user
is refused as if their token, password or key were wrong.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache

from sqlalchemy import or_, update
from sqlmodel import Session, col, func, select

from spacehub.core.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from spacehub.core.names import validate_name
from spacehub.platform.models import (
    MemberRole,
    Membership,
    Space,
    SshKey,
    Token,
    TokenRole,
    User,
    utcnow,
)
from spacehub.platform.security import hash_password, hash_token, new_token, verify_password


@dataclass(frozen=True)
class Caller:
    """Who is asking: a user and the role of the token they used (None: anonymous)."""

    user: User | None
    role: TokenRole | None = None
    token_name: str = ""
    token_id: int | None = None

    @property
    def name(self) -> str | None:
        return self.user.name if self.user else None


ANONYMOUS = Caller(user=None)
INVALID_TOKEN = "Invalid credentials in Authorization header"
TOKEN_REQUIRED = "a token is required: send it as 'Authorization: Bearer <token>'"
WRONG_PASSWORD = "wrong user name or password"
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024
TOKEN_NAME_LENGTH = 100
# A token's last use is recorded to this resolution: a busy token is not a write per request.
LAST_USED_RESOLUTION = timedelta(minutes=1)
# Who may write in an org (push, create, change settings); any member may read.
WRITING_ROLES = (MemberRole.WRITE, MemberRole.ADMIN)


# Users and organisations


def create_user(
    session: Session,
    name: str,
    *,
    fullname: str = "",
    is_admin: bool = False,
    is_org: bool = False,
    password: str | None = None,
) -> User:
    """A user (or an org); a password, when given, must pass `check_password`."""
    validate_name(name, "user name")
    if password is not None:
        check_password(password, name)
    if session.exec(select(User).where(User.name == name)).first() is not None:
        raise Conflict(f"the name {name!r} is taken")
    user = User(
        name=name,
        fullname=fullname or name,
        is_admin=is_admin and not is_org,
        is_org=is_org,
        password_hash=hash_password(password) if password is not None else None,
    )
    session.add(user)
    session.commit()
    session.refresh(user)
    return user


def check_password(password: str, name: str) -> None:
    """Refuse an empty, short or guessable password, saying which rule it breaks."""
    if not password.strip():
        raise InvalidInput("the password is empty")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(
            f"the password is too short: use at least {MIN_PASSWORD_LENGTH} characters"
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInput(f"the password is longer than {MAX_PASSWORD_LENGTH} characters")
    if password.strip().lower() == name.lower():
        raise InvalidInput("the password must not be the user name")
    if len(set(password)) < 3:
        raise InvalidInput("the password is too weak: it repeats one or two characters")


def user_by_name(session: Session, name: str) -> User:
    user = session.exec(select(User).where(User.name == name)).first()
    if user is None:
        raise NotFound(f"no user or organisation named {name!r}")
    return user


def person_by_name(session: Session, name: str) -> User:
    """A user, not an org: only people sign in, hold tokens and are members."""
    user = user_by_name(session, name)
    if user.is_org:
        raise InvalidInput(f"{name!r} is an organisation, not a user")
    return user


def org_by_name(session: Session, name: str) -> User:
    org = user_by_name(session, name)
    if not org.is_org:
        raise InvalidInput(f"{name!r} is a user, not an organisation")
    return org


def list_users(session: Session, *, orgs: bool = False) -> list[User]:
    """Every user (or, with `orgs`, every organisation), by name."""
    statement = select(User).where(User.is_org == orgs).order_by(col(User.name))
    return list(session.exec(statement))


def update_user(
    session: Session,
    user: User,
    *,
    fullname: str | None = None,
    is_admin: bool | None = None,
    disabled: bool | None = None,
    password: str | None = None,
    actor: User | None = None,
) -> User:
    """Change what is given; the last enabled admin cannot be disabled or demoted, nor can the
    `actor` (the admin making the change) disable or demote themselves."""
    if user.is_org and (is_admin or disabled is not None or password is not None):
        raise InvalidInput(f"{user.name!r} is an organisation: it has no sign-in to change")
    if password is not None:
        check_password(password, user.name)
    losing_admin = user.is_admin and not user.disabled and (is_admin is False or disabled)
    if losing_admin:
        _keep_admin(session, user, actor)
    if fullname is not None:
        user.fullname = fullname or user.name
    if is_admin is not None:
        user.is_admin = is_admin
    if disabled is not None:
        user.disabled = disabled
    if password is not None:
        user.password_hash = hash_password(password)
    session.add(user)
    session.commit()
    session.refresh(user)
    return user


def _keep_admin(session: Session, user: User, actor: User | None) -> None:
    """Refuse to lose the last enabled admin, or the admin acting, who would lock themselves out."""
    if actor is not None and actor.id == user.id:
        raise Conflict("you cannot disable, demote or delete yourself: ask another admin")
    enabled_admins = (
        select(func.count())
        .select_from(User)
        .where(col(User.is_admin).is_(True), col(User.disabled).is_(False))
    )
    if session.exec(enabled_admins).one() <= 1:
        raise Conflict(f"{user.name!r} is the last enabled admin: make another admin first")


def delete_user(session: Session, user: User, actor: User | None = None) -> None:
    """Delete a user or org with its tokens, keys and memberships; one owning spaces is kept."""
    owned = list(
        session.exec(select(Space.name).where(Space.owner_id == user.id).order_by(Space.name))
    )
    if owned:
        named = ", ".join(f"{user.name}/{name}" for name in owned[:10])
        more = f" and {len(owned) - 10} more" if len(owned) > 10 else ""
        raise Conflict(
            f"{user.name!r} owns spaces: {named}{more}; delete or move them first "
            "(or disable the user instead)"
        )
    if user.is_admin and not user.disabled:
        _keep_admin(session, user, actor)
    memberships = or_(Membership.user_id == user.id, Membership.org_id == user.id)
    for row in session.exec(select(Membership).where(memberships)):
        session.delete(row)
    for model in (Token, SshKey):
        for row in session.exec(select(model).where(model.user_id == user.id)):
            session.delete(row)
    session.flush()  # no ORM relationships order these deletes before the user's
    session.delete(user)
    session.commit()


def authenticate(session: Session, name: str, password: str) -> User:
    """The user whose name and password these are; Unauthorized for anything else."""
    user = session.exec(select(User).where(User.name == name)).first()
    # A hash is computed even for an unknown name: the answer's timing does not tell names.
    stored = user.password_hash if user is not None and user.password_hash else _dummy_hash()
    if not verify_password(stored, password) or user is None or user.password_hash is None:
        raise Unauthorized(WRONG_PASSWORD)
    if user.disabled or user.is_org:
        raise Unauthorized(WRONG_PASSWORD)
    return user


@cache
def _dummy_hash() -> str:
    return hash_password("not the password of anyone")


def ensure_admin(session: Session, name: str, preset_token: str | None) -> str | None:
    """Create the admin and its token on first start; return the token when one was made."""
    admin = session.exec(select(User).where(User.name == name)).first()
    if admin is None:
        admin = create_user(session, name, fullname="Administrator", is_admin=True)
    elif preset_token is None:
        return None
    if preset_token is not None:
        if session.exec(select(Token).where(Token.token_hash == hash_token(preset_token))).first():
            return None
        return create_token(session, admin, TokenRole.WRITE, "admin", preset_token)
    return create_token(session, admin, TokenRole.WRITE, "admin")


# Organisations and their members


def add_member(
    session: Session, org: User, user: User, role: MemberRole = MemberRole.WRITE
) -> Membership:
    if not org.is_org:
        raise InvalidInput(f"{org.name!r} is not an organisation")
    if user.is_org:
        raise InvalidInput(f"{user.name!r} is an organisation: only users can be members")
    if _membership(session, org, user) is not None:
        raise Conflict(f"{user.name!r} is already a member of {org.name!r}: change their role")
    membership = Membership(org_id=org.id, user_id=user.id, role=MemberRole(role))
    session.add(membership)
    session.commit()
    return membership


def set_member_role(session: Session, org: User, user: User, role: MemberRole) -> Membership:
    membership = _membership(session, org, user)
    if membership is None:
        raise NotFound(f"{user.name!r} is not a member of {org.name!r}")
    membership.role = MemberRole(role)
    session.add(membership)
    session.commit()
    return membership


def remove_member(session: Session, org: User, user: User) -> None:
    membership = _membership(session, org, user)
    if membership is None:
        raise NotFound(f"{user.name!r} is not a member of {org.name!r}")
    session.delete(membership)
    session.commit()


def _membership(session: Session, org: User, user: User) -> Membership | None:
    statement = select(Membership).where(Membership.org_id == org.id, Membership.user_id == user.id)
    return session.exec(statement).first()


def members(session: Session, org: User) -> list[tuple[User, MemberRole]]:
    """An org's members and their roles, by name."""
    statement = (
        select(User, Membership.role)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.org_id == org.id)
        .order_by(col(User.name))
    )
    return [(user, MemberRole(role)) for user, role in session.exec(statement)]


def org_names(session: Session, user: User) -> list[User]:
    """The orgs `user` is a member of, in any role."""
    statement = (
        select(User)
        .join(Membership, Membership.org_id == User.id)
        .where(Membership.user_id == user.id)
    )
    return list(session.exec(statement))


def role_in(session: Session, user: User, org: User) -> MemberRole | None:
    membership = _membership(session, org, user)
    return MemberRole(membership.role) if membership is not None else None


# Tokens


def create_token(
    session: Session,
    user: User,
    role: TokenRole = TokenRole.WRITE,
    display_name: str = "",
    value: str | None = None,
    expires_at: datetime | None = None,
) -> str:
    """Store a new token for `user` and return its value: the only time it is shown."""
    if expires_at is not None and expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=UTC)  # a date without a zone is UTC's
    if user.is_org:
        raise InvalidInput(f"{user.name!r} is an organisation: tokens belong to users")
    if len(display_name) > TOKEN_NAME_LENGTH:
        raise InvalidInput(f"a token's name is at most {TOKEN_NAME_LENGTH} characters")
    if expires_at is not None and expires_at <= utcnow():
        raise InvalidInput("the token's expiry is in the past: give a future date")
    token = value or new_token()
    row = Token(
        user_id=user.id,
        role=TokenRole(role),
        display_name=display_name,
        token_hash=hash_token(token),
        expires_at=expires_at,
    )
    session.add(row)
    session.commit()
    return token


def token_row(session: Session, value: str) -> Token:
    """The stored row of a token whose value is known (only just after creating it)."""
    row = session.exec(select(Token).where(Token.token_hash == hash_token(value))).first()
    if row is None:
        raise NotFound("no such token")
    return row


def create_short_lived_token(
    session: Session, user: User, role: TokenRole, display_name: str, lifetime: timedelta
) -> str:
    """A token that stops working after `lifetime`; expired ones of the user are removed."""
    now = utcnow()
    expired = select(Token).where(Token.user_id == user.id, col(Token.expires_at) < now)
    for row in session.exec(expired):
        session.delete(row)
    return create_token(session, user, role, display_name, expires_at=now + lifetime)


def list_tokens(session: Session, user: User | None = None) -> list[Token]:
    """The tokens of `user` (everyone's when None), oldest first; never their values."""
    statement = select(Token).order_by(col(Token.id))
    if user is not None:
        statement = statement.where(Token.user_id == user.id)
    return list(session.exec(statement))


def revoke_token(
    session: Session, token_id: int, user: User | None = None, *, keep: int | None = None
) -> Token:
    """Delete a token: it stops working at once. With `user`, only one of theirs; `keep` is
    the id of the token an admin acts with, which they may not pull from under themselves."""
    row = session.get(Token, token_id)
    if row is None or (user is not None and row.user_id != user.id):
        raise NotFound(f"no token with id {token_id}")
    if row.id == keep:
        raise Conflict("this is the token this request uses: revoke it with another token")
    session.delete(row)
    session.commit()
    return row


def caller_for_token(session: Session, token: str | None) -> Caller:
    """Resolve a bearer token; no token is anonymous, an unknown one is Unauthorized."""
    if not token:
        return ANONYMOUS
    row = session.exec(select(Token).where(Token.token_hash == hash_token(token))).first()
    now = utcnow()
    if row is None or (row.expires_at is not None and row.expires_at <= now):
        raise Unauthorized(INVALID_TOKEN)
    user = session.get(User, row.user_id)
    if user is None or user.disabled:
        raise Unauthorized(INVALID_TOKEN)
    if row.last_used_at is None or row.last_used_at <= now - LAST_USED_RESOLUTION:
        _record_use(session, row, now)
    return Caller(user=user, role=row.role, token_name=row.display_name, token_id=row.id)


def _record_use(session: Session, row: Token, now: datetime) -> None:
    # Conditional, so that many requests arriving together still write once.
    stale = or_(
        col(Token.last_used_at).is_(None), col(Token.last_used_at) <= now - LAST_USED_RESOLUTION
    )
    session.execute(update(Token).where(col(Token.id) == row.id, stale).values(last_used_at=now))
    session.commit()


# Who may see or change what


def readers(session: Session, space: Space) -> frozenset[str]:
    """Names of the users who may see a private space: its owner, the org's members, admins."""
    names = {user.name for user in session.exec(select(User).where(User.is_admin == True))}  # noqa: E712
    owner = session.get(User, space.owner_id)
    if owner is not None:
        names.add(owner.name)
        names.update(user.name for user, _ in members(session, owner))
    return frozenset(names)


def can_read(session: Session, caller: Caller, space: Space) -> bool:
    if not space.private:
        return True
    return caller.user is not None and caller.user.name in readers(session, space)


def signed_in(caller: Caller) -> User:
    """The caller's user; Unauthorized for an anonymous caller."""
    if caller.user is None:
        raise Unauthorized(TOKEN_REQUIRED)
    return caller.user


def require_admin(caller: Caller, *, changing: bool = False) -> None:
    """Raise unless the caller is an admin; a read token is enough to look, not to change."""
    if caller.user is None:
        raise Unauthorized(TOKEN_REQUIRED)
    if not caller.user.is_admin:
        raise Forbidden("only an admin may do this")
    if changing and caller.role != TokenRole.WRITE:
        raise Forbidden("this token is read-only: use a token with the 'write' role")


def require_write(session: Session, caller: Caller, owner: User) -> None:
    """Raise unless the caller holds a write token and may act for `owner`."""
    if caller.user is None:
        raise Unauthorized(TOKEN_REQUIRED)
    if caller.role != TokenRole.WRITE:
        raise Forbidden("this token is read-only: use a token with the 'write' role")
    if caller.user.is_admin or caller.user.id == owner.id:
        return
    role = role_in(session, caller.user, owner) if owner.is_org else None
    if role in WRITING_ROLES:
        return
    if role == MemberRole.READ:
        raise Forbidden(f"you are a read member of {owner.name!r}: writing needs the write role")
    raise Forbidden(f"you may not act for {owner.name!r}")


def require_org_admin(
    session: Session, caller: Caller, org: User, *, changing: bool = True
) -> None:
    """Raise unless the caller may manage `org`'s members: a platform admin or an org admin
    (with a write token to change them)."""
    if caller.user is None:
        raise Unauthorized(TOKEN_REQUIRED)
    if changing and caller.role != TokenRole.WRITE:
        raise Forbidden("this token is read-only: use a token with the 'write' role")
    if caller.user.is_admin or role_in(session, caller.user, org) == MemberRole.ADMIN:
        return
    raise Forbidden(f"only an admin of {org.name!r} may manage its members")

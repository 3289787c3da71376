"""Users, organisations, tokens and who may see or change a space."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from spacehub.core.errors import Conflict, Forbidden, NotFound, Unauthorized
from spacehub.core.names import validate_name
from spacehub.platform.models import Membership, Space, Token, TokenRole, User, utcnow
from spacehub.platform.security import hash_password, hash_token, new_token


@dataclass(frozen=True)
class Caller:
    """Who is asking: a user and the role of the token they used (None: anonymous)."""

    user: User | None
    role: TokenRole | None = None
    token_name: str = ""

    @property
    def name(self) -> str | None:
        return self.user.name if self.user else None


ANONYMOUS = Caller(user=None)
INVALID_TOKEN = "Invalid credentials in Authorization header"


def create_user(
    session: Session,
    name: str,
    *,
    fullname: str = "",
    is_admin: bool = False,
    is_org: bool = False,
    password: str | None = None,
) -> User:
    validate_name(name, "user name")
    if session.exec(select(User).where(User.name == name)).first() is not None:
        raise Conflict(f"the name {name!r} is taken")
    user = User(
        name=name,
        fullname=fullname or name,
        is_admin=is_admin,
        is_org=is_org,
        password_hash=hash_password(password) if password else None,
    )
    session.add(user)
    session.commit()
    session.refresh(user)
    return user


def add_member(session: Session, org: User, user: User) -> None:
    if not org.is_org:
        raise Conflict(f"{org.name} is not an organisation")
    session.add(Membership(org_id=org.id, user_id=user.id))
    session.commit()


def create_token(
    session: Session,
    user: User,
    role: TokenRole = TokenRole.WRITE,
    display_name: str = "",
    value: str | None = None,
    expires_at: datetime | None = None,
) -> str:
    """Store a new token for `user` and return its value: the only time it is shown."""
    token = value or new_token()
    session.add(
        Token(
            user_id=user.id,
            role=role,
            display_name=display_name,
            token_hash=hash_token(token),
            expires_at=expires_at,
        )
    )
    session.commit()
    return token


def create_short_lived_token(
    session: Session, user: User, role: TokenRole, display_name: str, lifetime: timedelta
) -> str:
    """A token that stops working after `lifetime`; expired ones of the user are removed."""
    now = utcnow()
    expired = select(Token).where(Token.user_id == user.id, col(Token.expires_at) < now)
    for row in session.exec(expired):
        session.delete(row)
    return create_token(session, user, role, display_name, expires_at=now + lifetime)


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


def caller_for_token(session: Session, token: str | None) -> Caller:
    """Resolve a bearer token; no token is anonymous, an unknown one is Unauthorized."""
    if not token:
        return ANONYMOUS
    row = session.exec(select(Token).where(Token.token_hash == hash_token(token))).first()
    if row is None or (row.expires_at is not None and row.expires_at <= utcnow()):
        raise Unauthorized(INVALID_TOKEN)
    user = session.get(User, row.user_id)
    return Caller(user=user, role=row.role, token_name=row.display_name)


def user_by_name(session: Session, name: str) -> User:
    user = session.exec(select(User).where(User.name == name)).first()
    if user is None:
        raise NotFound(f"no user or organisation named {name!r}")
    return user


def org_names(session: Session, user: User) -> list[User]:
    statement = (
        select(User)
        .join(Membership, Membership.org_id == User.id)
        .where(Membership.user_id == user.id)
    )
    return list(session.exec(statement))


def readers(session: Session, space: Space) -> frozenset[str]:
    """Names of the users who may see a private space: its owner, the org's members, admins."""
    names = {user.name for user in session.exec(select(User).where(User.is_admin == True))}  # noqa: E712
    owner = session.get(User, space.owner_id)
    if owner is not None:
        names.add(owner.name)
        statement = (
            select(User)
            .join(Membership, Membership.user_id == User.id)
            .where(Membership.org_id == owner.id)
        )
        names.update(user.name for user in session.exec(statement))
    return frozenset(names)


def can_read(session: Session, caller: Caller, space: Space) -> bool:
    if not space.private:
        return True
    return caller.user is not None and caller.user.name in readers(session, space)


def require_admin(caller: Caller) -> None:
    """Raise unless the caller is an admin (a read token is enough to look)."""
    if caller.user is None:
        raise Unauthorized("a token is required: send it as 'Authorization: Bearer <token>'")
    if not caller.user.is_admin:
        raise Forbidden("only an admin may do this")


def require_write(session: Session, caller: Caller, owner: User) -> None:
    """Raise unless the caller holds a write token and may act for `owner`."""
    if caller.user is None:
        raise Unauthorized("a token is required: send it as 'Authorization: Bearer <token>'")
    if caller.role != TokenRole.WRITE:
        raise Forbidden("this token is read-only: use a token with the 'write' role")
    if caller.user.is_admin or caller.user.id == owner.id:
        return
    if owner.is_org and any(org.id == owner.id for org in org_names(session, caller.user)):
        return
    raise Forbidden(f"you may not act for {owner.name!r}")

"""A space's external git source: its URL, branch, webhook secret and deploy credential."""

import secrets
from dataclasses import dataclass

from sqlmodel import Session, select

from spacehub.core.errors import Forbidden, InvalidInput, NotFound, SpacehubError
from spacehub.platform.git.external import (
    Credential,
    CredentialKind,
    Outcome,
    Source,
    is_local,
    validate_branch,
    validate_credential,
    validate_url,
)
from spacehub.platform.models import Space, SpaceSource, User, utcnow
from spacehub.platform.security import SecretBox
from spacehub.platform.services import accounts, spaces
from spacehub.platform.services.accounts import Caller

NO_SOURCE = "this space follows no external git repository: PUT its source first"
WEBHOOK_PATH = "/api/webhooks/{owner}/{name}"


@dataclass(frozen=True)
class SourceChange:
    """What a PUT asks for; `credential` None with `keep_credential` keeps the stored one."""

    url: str
    branch: str
    credential: Credential | None
    keep_credential: bool


def managed_space(
    session: Session, caller: Caller, owner: str, name: str, *, changing: bool = True
) -> Space:
    """The space, if the caller is its owner, an admin of its org, or a platform admin.

    More than write access: the source decides what the space runs, and holds a credential.
    """
    space = spaces.visible_space(session, caller, owner, name)
    owner_user = spaces.owner_of(session, space)
    if owner_user.is_org:
        accounts.require_org_admin(session, caller, owner_user, changing=changing)
    else:
        accounts.require_write(session, caller, owner_user)
    return space


def may_manage(session: Session, caller: Caller, owner: str, name: str) -> bool:
    try:
        managed_space(session, caller, owner, name)
    except SpacehubError:
        return False
    return True


def webhook_url(public_url: str, owner: str, name: str) -> str:
    return public_url + WEBHOOK_PATH.format(owner=owner, name=name)


def source_change(
    url: str, branch: str, token: str | None, ssh_key: str | None, *, keep_credential: bool
) -> SourceChange:
    """A change from what a form or an API call gave: at most one of `token` and `ssh_key`."""
    if token and ssh_key:
        raise InvalidInput("give a deploy token or an SSH deploy key, not both")
    credential = None
    if token:
        credential = validate_credential(CredentialKind.TOKEN, token)
    elif ssh_key:
        credential = validate_credential(CredentialKind.SSH_KEY, ssh_key)
    return SourceChange(url.strip(), branch.strip(), credential, keep_credential)


def new_webhook_secret() -> str:
    return secrets.token_urlsafe(32)


def find_source(session: Session, space: Space) -> SpaceSource | None:
    return session.exec(select(SpaceSource).where(SpaceSource.space_id == space.id)).first()


def require_source(session: Session, space: Space) -> SpaceSource:
    row = find_source(session, space)
    if row is None:
        raise NotFound(NO_SOURCE)
    return row


def check_change(change: SourceChange, actor: User) -> None:
    """Validate URL, branch and credential; only an admin may name a path on this machine."""
    validate_url(change.url)
    validate_branch(change.branch)
    if is_local(change.url) and not actor.is_admin:
        # A path reads any repository the platform can: other spaces' included.
        raise Forbidden("only a platform admin may make a space follow a path on this machine")


def set_source(
    session: Session, box: SecretBox, space: Space, change: SourceChange, actor: User
) -> tuple[SpaceSource, str | None]:
    """Create or change the space's source; returns it and its webhook secret when new."""
    check_change(change, actor)
    row = find_source(session, space)
    secret = None
    if row is None:
        secret = new_webhook_secret()
        row = SpaceSource(
            space_id=space.id, url=change.url, webhook_secret_encrypted=box.encrypt(secret)
        )
    elif row.url != change.url:
        # A credential given for one host is not sent to another without being given again.
        change = SourceChange(change.url, change.branch, change.credential, keep_credential=False)
    if change.credential is not None:
        row.credential_kind = str(change.credential.kind)
        row.credential_encrypted = box.encrypt(change.credential.value)
    elif not change.keep_credential:
        row.credential_kind = row.credential_encrypted = None
    row.url = change.url
    row.branch = change.branch
    row.updated_at = utcnow()
    session.add(row)
    session.commit()
    session.refresh(row)
    return row, secret


def rotate_webhook_secret(session: Session, box: SecretBox, space: Space) -> str:
    row = require_source(session, space)
    secret = new_webhook_secret()
    row.webhook_secret_encrypted = box.encrypt(secret)
    row.updated_at = utcnow()
    session.add(row)
    session.commit()
    return secret


def delete_source(session: Session, space: Space) -> None:
    session.delete(require_source(session, space))
    session.commit()


def webhook_secret(box: SecretBox, row: SpaceSource) -> bytes:
    return box.decrypt(row.webhook_secret_encrypted).encode()


def source_of(box: SecretBox, row: SpaceSource) -> Source:
    """What git needs to fetch: URL, branch and the decrypted credential (never logged)."""
    credential = None
    if row.credential_kind and row.credential_encrypted:
        kind = CredentialKind(row.credential_kind)
        credential = validate_credential(kind, box.decrypt(row.credential_encrypted))
    return Source(url=row.url, branch=row.branch, credential=credential)


def record_delivery(
    session: Session,
    space_id: int,
    delivery: str | None,
    commit: str | None,
    status: Outcome | str,
    error: str | None = None,
) -> None:
    """Keep what came of the latest delivery, for the space's owner to read in the API."""
    row = session.exec(select(SpaceSource).where(SpaceSource.space_id == space_id)).first()
    if row is None:  # removed meanwhile
        return
    row.last_delivery = (delivery or "")[:100] or None
    row.last_commit = commit
    row.last_status = str(status)[:16]
    row.last_error = error
    row.last_delivery_at = utcnow()
    session.add(row)
    session.commit()

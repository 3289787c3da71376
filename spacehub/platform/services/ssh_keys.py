"""Users' public keys for git over SSH: add, list, remove, and who holds a key."""

import re
from dataclasses import dataclass

import asyncssh
from sqlmodel import Session, col, select

from spacehub.core.errors import Conflict, InvalidInput, NotFound
from spacehub.platform.models import SshKey, User, utcnow

# One line as in id_ed25519.pub or authorized_keys: "type base64 [comment]".
OPENSSH_LINE = re.compile(
    r"(?P<type>[a-z0-9@.-]+) (?P<blob>[A-Za-z0-9+/]+={0,3})(?: (?P<comment>.*))?"
)
REFUSED_TYPES = {
    "ssh-dss": "DSA keys are no longer safe: make an ed25519 key (ssh-keygen -t ed25519)"
}
MIN_RSA_BITS = 2048
TITLE_LENGTH = 100


@dataclass(frozen=True)
class PublicKey:
    """A checked public key: the OpenSSH line without its comment, and its SHA256 fingerprint."""

    openssh: str
    fingerprint: str
    comment: str


def parse_public_key(text: str) -> PublicKey:
    """Check one OpenSSH public key line; refuse private keys, garbage and weak key types."""
    text = text.strip()
    if "PRIVATE KEY" in text:
        raise InvalidInput(
            "this is a private key: never share it; add the public key (the .pub file) instead"
        )
    match = OPENSSH_LINE.fullmatch(text)
    if match is None:
        raise InvalidInput(
            "not an OpenSSH public key: expected one line like 'ssh-ed25519 AAAA… you@host' "
            "(the contents of ~/.ssh/id_ed25519.pub)"
        )
    if match["type"] in REFUSED_TYPES:
        raise InvalidInput(REFUSED_TYPES[match["type"]])
    try:
        key = asyncssh.import_public_key(f"{match['type']} {match['blob']}")
    except (asyncssh.KeyImportError, ValueError) as error:
        raise InvalidInput(f"not a valid {match['type']} public key: {error}") from error
    bits = getattr(key.pyca_key, "key_size", None)
    if key.algorithm == b"ssh-rsa" and bits is not None and bits < MIN_RSA_BITS:
        raise InvalidInput(f"RSA keys need at least {MIN_RSA_BITS} bits (this one has {bits})")
    openssh = key.export_public_key("openssh").decode().strip()
    return PublicKey(openssh, key.get_fingerprint("sha256"), (match["comment"] or "").strip())


def add_key(session: Session, user: User, text: str, title: str = "") -> SshKey:
    """Register a key for `user`; a key already registered (by anyone) is a conflict."""
    key = parse_public_key(text)
    title = (title or key.comment or key.fingerprint).strip()[:TITLE_LENGTH]
    if session.exec(select(SshKey).where(SshKey.fingerprint == key.fingerprint)).first():
        raise Conflict(f"the key {key.fingerprint} is already in use")
    row = SshKey(user_id=user.id, title=title, public_key=key.openssh, fingerprint=key.fingerprint)
    session.add(row)
    session.commit()
    session.refresh(row)
    return row


def list_keys(session: Session, user: User | None = None) -> list[SshKey]:
    """The keys of `user`, oldest first; every key when `user` is None."""
    statement = select(SshKey).order_by(col(SshKey.id))
    if user is not None:
        statement = statement.where(SshKey.user_id == user.id)
    return list(session.exec(statement))


def remove_key(session: Session, key_id: int, user: User | None = None) -> SshKey:
    """Delete a key; when `user` is given, only one of theirs (others' are not found)."""
    row = session.get(SshKey, key_id)
    if row is None or (user is not None and row.user_id != user.id):
        raise NotFound(f"no SSH key with id {key_id}")
    session.delete(row)
    session.commit()
    return row


def key_holder(session: Session, fingerprint: str) -> tuple[User, SshKey] | None:
    """The user a key (by its SHA256 fingerprint) belongs to; None for an unknown key or a
    disabled user's."""
    row = session.exec(select(SshKey).where(SshKey.fingerprint == fingerprint)).first()
    if row is None:
        return None
    user = session.get(User, row.user_id)
    return (user, row) if user is not None and not user.disabled else None


def record_use(session: Session, key_id: int) -> None:
    row = session.get(SshKey, key_id)
    if row is not None:
        row.last_used_at = utcnow()
        session.add(row)
        session.commit()

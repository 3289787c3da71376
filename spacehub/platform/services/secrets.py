"""Space secrets (encrypted, never shown back) and variables."""

import re

from sqlmodel import Session, select

from spacehub.core.errors import Unprocessable
from spacehub.platform.models import Secret, Space, Variable, utcnow
from spacehub.platform.security import SecretBox

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")


def validate_key(key: str) -> str:
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise Unprocessable(
            f"invalid key {key!r}: use letters, digits and '_', not starting with a digit"
        )
    return key


def upsert_secret(
    session: Session, box: SecretBox, space: Space, key: str, value: str, description: str | None
) -> None:
    validate_key(key)
    row = session.exec(select(Secret).where(Secret.space_id == space.id, Secret.key == key)).first()
    row = row or Secret(space_id=space.id, key=key, value_encrypted="")
    row.value_encrypted = box.encrypt(value)
    row.description = description
    row.updated_at = utcnow()
    session.add(row)
    session.commit()


def delete_secret(session: Session, space: Space, key: str) -> None:
    for row in session.exec(select(Secret).where(Secret.space_id == space.id, Secret.key == key)):
        session.delete(row)
    session.commit()


def list_secrets(session: Session, space: Space) -> list[Secret]:
    return list(session.exec(select(Secret).where(Secret.space_id == space.id)))


def secret_values(session: Session, box: SecretBox, space: Space) -> dict[str, str]:
    return {row.key: box.decrypt(row.value_encrypted) for row in list_secrets(session, space)}


def upsert_variable(
    session: Session, space: Space, key: str, value: str, description: str | None
) -> None:
    validate_key(key)
    row = session.exec(
        select(Variable).where(Variable.space_id == space.id, Variable.key == key)
    ).first()
    row = row or Variable(space_id=space.id, key=key, value="")
    row.value = value
    row.description = description
    row.updated_at = utcnow()
    session.add(row)
    session.commit()


def delete_variable(session: Session, space: Space, key: str) -> None:
    for row in session.exec(
        select(Variable).where(Variable.space_id == space.id, Variable.key == key)
    ):
        session.delete(row)
    session.commit()


def list_variables(session: Session, space: Space) -> list[Variable]:
    return list(session.exec(select(Variable).where(Variable.space_id == space.id)))


def copy_variables(session: Session, source: Space, target: Space) -> None:
    """Give `target` the variables of `source` (a duplicate's; secrets are never copied)."""
    for row in list_variables(session, source):
        upsert_variable(session, target, row.key, row.value, row.description)

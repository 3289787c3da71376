"""What the admin console reads besides accounts and the build queue: every space."""

from sqlmodel import Session, col, select

from spacehub.platform.models import Space, User


def every_space(session: Session, offset: int, limit: int) -> list[tuple[Space, str]]:
    """Spaces with their owner's name, most recently changed first."""
    statement = (
        select(Space, User.name)
        .join(User, col(User.id) == Space.owner_id)
        .order_by(col(Space.updated_at).desc(), col(Space.id).desc())
        .offset(offset)
        .limit(limit)
    )
    return list(session.exec(statement))

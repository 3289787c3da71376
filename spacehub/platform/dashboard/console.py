"""What the admin console reads besides accounts: every space with its stage, the build queue."""

from dataclasses import dataclass

from sqlmodel import Session, col, select

from spacehub.platform.models import Build, BuildStatus, Space, User


@dataclass(frozen=True)
class QueuedBuild:
    id: int
    space_id: str
    commit: str
    status: BuildStatus
    claimed_by: str | None


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


def build_queue(session: Session) -> list[QueuedBuild]:
    """Running builds, then queued ones, oldest first."""
    statement = (
        select(Build, Space.name, User.name)
        .join(Space, col(Space.id) == Build.space_id)
        .join(User, col(User.id) == Space.owner_id)
        .where(col(Build.status).in_([BuildStatus.RUNNING, BuildStatus.QUEUED]))
        .order_by(col(Build.status).desc(), col(Build.id))
    )
    return [
        QueuedBuild(build.id or 0, f"{owner}/{name}", build.commit, build.status, build.claimed_by)
        for build, name, owner in session.exec(statement)
    ]

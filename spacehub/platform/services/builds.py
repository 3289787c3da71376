"""The build queue in the database: one build at a time per space, newest commit wins."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from spacehub.core.errors import Conflict
from spacehub.core.stages import Stage, building_stage
from spacehub.platform.models import Build, BuildStatus, BuildWorker, Space, User, utcnow

INTERRUPTED = "interrupted by a platform restart"
CANCELLED = "build cancelled"
# A running build's `error` while its worker has yet to stop it (no new status, no migration).
CANCEL_ASKED = "cancel asked"
SERVING_STAGES = frozenset({Stage.RUNNING, Stage.RUNNING_BUILDING, Stage.RUNNING_APP_STARTING})
ENQUEUE_ATTEMPTS = 5
NOT_SERVING = frozenset(
    {Stage.PAUSED, Stage.STOPPED, Stage.SLEEPING, Stage.RUNTIME_ERROR, Stage.DELETING}
)


def enqueue(session: Session, space: Space, commit: str, *, no_cache: bool = False) -> Build | None:
    """Queue a build of `commit`; a build already queued for the space is retargeted instead.

    Returns the queued build, or None when that commit is already being built.
    """
    for _ in range(ENQUEUE_ATTEMPTS):
        try:
            return _enqueue_once(session, space, commit, no_cache)
        except IntegrityError:
            # Another process queued a build for this space meanwhile: retarget that one.
            session.rollback()
    raise Conflict(f"could not queue a build of {commit}: the queue kept changing; push again")


def _enqueue_once(session: Session, space: Space, commit: str, no_cache: bool) -> Build | None:
    queued = _build_of(session, space, BuildStatus.QUEUED)
    running = _build_of(session, space, BuildStatus.RUNNING)
    if (
        queued is None
        and running is not None
        and running.commit == commit
        and running.error != CANCEL_ASKED
        and not no_cache
    ):
        return None
    if queued is None:
        queued = Build(space_id=space.id, commit=commit, no_cache=no_cache)
    else:
        queued.commit = commit
        queued.no_cache = queued.no_cache or no_cache
    session.add(queued)
    if space.stage not in (Stage.PAUSED, Stage.DELETING):
        space.stage = building_stage(is_serving(space))
        space.updated_at = utcnow()
        session.add(space)
    session.commit()
    session.refresh(queued)
    return queued


def retarget(session: Session, build: Build, commit: str) -> None:
    """A claimed build follows the branch: newer pushes may have landed since it was queued."""
    build.commit = commit
    session.add(build)
    session.commit()


def is_serving(space: Space) -> bool:
    """Whether a release of the space is live; a failed newer build does not change that."""
    return space.current_commit is not None and space.stage not in NOT_SERVING


def claim(session: Session, worker: str) -> Build | None:
    """Take the oldest queued build of a space that has none running; safe across processes."""
    busy = select(Build.space_id).where(Build.status == BuildStatus.RUNNING)
    candidates = session.exec(
        select(Build)
        .where(Build.status == BuildStatus.QUEUED, col(Build.space_id).not_in(busy))
        .order_by(col(Build.id))
        .limit(5)
    ).all()
    for build in candidates:
        result = session.execute(
            update(Build)
            .where(col(Build.id) == build.id, col(Build.status) == BuildStatus.QUEUED)
            .values(status=BuildStatus.RUNNING, claimed_by=worker, started_at=utcnow())
        )
        session.commit()
        if result.rowcount == 1:
            session.refresh(build)
            return build
    return None


def finish(session: Session, build: Build, *, error: str | None = None) -> None:
    build.status = BuildStatus.FAILED if error else BuildStatus.SUCCEEDED
    build.error = error
    build.finished_at = utcnow()
    session.add(build)
    session.commit()


def requeue_interrupted(session: Session, worker_prefix: str | None = None) -> int:
    """Builds left running (by the workers named `worker_prefix...`, else by anyone) are queued
    again, or failed when a newer one waits; for a worker that stops, and for tests."""
    statement = select(Build).where(Build.status == BuildStatus.RUNNING)
    if worker_prefix is not None:
        statement = statement.where(col(Build.claimed_by).startswith(worker_prefix))
    return sum(_hand_back(session, build) for build in session.exec(statement).all())


def beat(session: Session, worker: str) -> None:
    """Record that `worker` (a process that runs builds, `host:pid`) is alive now."""
    now = utcnow()
    row = session.get(BuildWorker, worker)
    if row is None:
        row = BuildWorker(name=worker, started_at=now, heartbeat_at=now)
    else:
        row.heartbeat_at = now
    session.add(row)
    session.commit()


def leave(session: Session, worker: str) -> None:
    """A worker that stops cleanly: its row goes (its builds are handed back by itself)."""
    row = session.get(BuildWorker, worker)
    if row is not None:
        session.delete(row)
        session.commit()


def hand_back_abandoned(
    session: Session, lapse: timedelta, is_gone: Callable[[str], bool] = lambda worker: False
) -> int:
    """Running builds whose worker's heartbeat lapsed (or which `is_gone(worker)` says ended,
    e.g. a dead process on this host) go back to the queue; a live worker's builds stay.

    Any process may call it at any time: each build changes hands with one conditional update.
    """
    cutoff = utcnow() - lapse
    alive = set(
        session.exec(select(BuildWorker.name).where(col(BuildWorker.heartbeat_at) >= cutoff))
    )
    handed_back = 0
    running = session.exec(select(Build).where(Build.status == BuildStatus.RUNNING)).all()
    for build in running:
        worker = worker_process(build.claimed_by or "")
        if worker in alive and not is_gone(worker):
            continue
        handed_back += _hand_back(session, build, reason=f"its worker {worker} stopped answering")
    session.execute(delete(BuildWorker).where(col(BuildWorker.heartbeat_at) < cutoff))
    session.commit()
    return handed_back


def worker_process(claimed_by: str) -> str:
    """`host:pid` of a build worker's name `host:pid:index`."""
    return claimed_by.rpartition(":")[0]


def still_claimed(session: Session, build_id: int, worker: str) -> bool:
    """Whether `worker` still holds the build: not when it was handed back meanwhile."""
    build = session.get(Build, build_id, populate_existing=True)
    return build is not None and build.status == BuildStatus.RUNNING and build.claimed_by == worker


def _hand_back(session: Session, build: Build, reason: str = INTERRUPTED) -> int:
    """Queue a running build again (failed instead when cancelled or when a newer one waits);
    1 when this call did it, 0 when its row changed meanwhile (another process got there)."""
    claimed = (
        col(Build.id) == build.id,
        col(Build.status) == BuildStatus.RUNNING,
        col(Build.claimed_by) == build.claimed_by,
    )
    ended = {"status": BuildStatus.FAILED, "finished_at": utcnow()}
    if build.error == CANCEL_ASKED:
        change = {**ended, "error": CANCELLED}
    elif _queued_build(session, build.space_id) is not None:
        change = {**ended, "error": f"{reason}; a newer commit is queued"}
    else:
        change = {"status": BuildStatus.QUEUED, "claimed_by": None, "started_at": None}
    try:
        result = session.execute(update(Build).where(*claimed).values(**change))
        session.commit()
    except IntegrityError:  # a push queued a newer build meanwhile: that one replaces it
        session.rollback()
        change = {**ended, "error": f"{reason}; a newer commit is queued"}
        result = session.execute(update(Build).where(*claimed).values(**change))
        session.commit()
    session.refresh(build)
    return result.rowcount


def _queued_build(session: Session, space_id: int) -> Build | None:
    queued = select(Build).where(Build.space_id == space_id, Build.status == BuildStatus.QUEUED)
    return session.exec(queued).first()


def cancel(session: Session, space: Space) -> list[Build]:
    """Cancel the space's builds: a queued one never starts, a running one is asked to stop.

    The worker running a build (in `serve` or a `spacehub worker`) sees the ask on its row
    and stops it. Raises Conflict when no build of the space is queued or running.
    """
    queued = _build_of(session, space, BuildStatus.QUEUED)
    running = _build_of(session, space, BuildStatus.RUNNING)
    if queued is None and running is None:
        raise Conflict("no build of this space is queued or running")
    cancelled = []
    if queued is not None:
        if _settle_queued(session, queued):
            cancelled.append(queued)
        else:  # claimed meanwhile: it runs now
            running = queued
    if running is not None:
        session.execute(
            update(Build)
            .where(col(Build.id) == running.id, col(Build.status) == BuildStatus.RUNNING)
            .values(error=CANCEL_ASKED)
        )
        cancelled.insert(0, running)
    session.commit()
    if running is None:
        session.refresh(space)
        settle_cancelled(session, space)
    for build in cancelled:
        session.refresh(build)
    return cancelled


def _settle_queued(session: Session, build: Build) -> bool:
    result = session.execute(
        update(Build)
        .where(col(Build.id) == build.id, col(Build.status) == BuildStatus.QUEUED)
        .values(status=BuildStatus.FAILED, error=CANCELLED, finished_at=utcnow())
    )
    return result.rowcount == 1


def cancel_asked(session: Session, build_id: int) -> bool:
    build = session.get(Build, build_id)
    return build is not None and build.status == BuildStatus.RUNNING and build.error == CANCEL_ASKED


def settle_cancelled(session: Session, space: Space) -> None:
    """After a cancel the space is as before its build: RUNNING when a release serves, else
    BUILD_ERROR saying so; unless another build is queued, or it is paused or being deleted."""
    if _build_of(session, space, BuildStatus.QUEUED) is not None:
        return
    if _build_of(session, space, BuildStatus.RUNNING) is not None:
        return
    if space.stage in (Stage.PAUSED, Stage.DELETING):
        return
    serving = space.current_commit is not None and space.stage in SERVING_STAGES
    space.stage = Stage.RUNNING if serving else Stage.BUILD_ERROR
    space.error_message = None if serving else CANCELLED
    space.updated_at = utcnow()
    session.add(space)
    session.commit()


def builds_of(session: Session, space: Space) -> list[Build]:
    return list(
        session.exec(select(Build).where(Build.space_id == space.id).order_by(col(Build.id)))
    )


def latest_build(session: Session, space: Space) -> Build | None:
    return session.exec(
        select(Build).where(Build.space_id == space.id).order_by(col(Build.id).desc())
    ).first()


def _build_of(session: Session, space: Space, status: BuildStatus) -> Build | None:
    return session.exec(
        select(Build).where(Build.space_id == space.id, Build.status == status)
    ).first()


@dataclass(frozen=True)
class QueuedBuild:
    id: int
    space_id: str
    commit: str
    status: BuildStatus
    claimed_by: str | None


def queue(session: Session) -> list[QueuedBuild]:
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


def workers(session: Session) -> list[BuildWorker]:
    """Processes running builds, by their latest heartbeat (lapsed ones until handed back)."""
    return list(session.exec(select(BuildWorker).order_by(col(BuildWorker.name))))

"""A space's desired state: written by builds and the API, carried out by the supervisor alone."""

from datetime import datetime

from sqlmodel import Session

from spacehub.core.release import Artifact
from spacehub.core.stages import Stage, starting_stage
from spacehub.platform.models import Space, utcnow
from spacehub.platform.services.builds import is_serving

RUNNING = "running"
PAUSED = "paused"
# Sleep on idle leaves `desired_state` running: the supervisor stops the instance (SLEEPING) and
# records when in `instance_state` as {ASLEEP_SINCE: ISO time}; the next request wakes it.
ASLEEP_SINCE = "asleep_since"
SLEEP_TIME_UNSET = 0  # a space's sleep_time never set: the platform's default_sleep_time applies
NEVER = -1


def sleep_seconds(space: Space, default: int) -> int:
    """Idle seconds before the space's app is stopped; -1: never."""
    return default if space.sleep_time == SLEEP_TIME_UNSET else space.sleep_time


def asleep_since(space: Space) -> datetime | None:
    """When a SLEEPING space's app was stopped; None when it is not asleep."""
    if space.stage != Stage.SLEEPING or not space.instance_state:
        return None
    since = space.instance_state.get(ASLEEP_SINCE)
    return datetime.fromisoformat(since) if since else None


def record_asleep(space: Space, since: datetime) -> None:
    """The instance is stopped for idleness: SLEEPING, still desired running."""
    space.instance_state = {ASLEEP_SINCE: since.isoformat()}
    space.stage = Stage.SLEEPING
    space.error_message = None


def want_wake(session: Session, space: Space) -> bool:
    """A request came for a SLEEPING space: start its live release again. False: not asleep
    (paused, restarted, rebuilt or deleted meanwhile), nothing to do."""
    if space.stage != Stage.SLEEPING or space.desired_state != RUNNING:
        return False
    want_restart(session, space)
    return True


def live_release(space: Space) -> dict | None:
    """The release that runs now, in the shape of `desired_release`."""
    if space.release_ref is None or space.release_kind is None:
        return None
    return {"kind": space.release_kind, "ref": space.release_ref, "commit": space.current_commit}


def wanted_commit(space: Space) -> str | None:
    return (space.desired_release or {}).get("commit")


def wanted_artifact(release: dict) -> Artifact:
    return Artifact(kind=release["kind"], ref=release["ref"], commit=release["commit"] or "")


def want_release(session: Session, space: Space, artifact: Artifact, build_id: int | None) -> None:
    """A build made `artifact`: the supervisor is to put it live (unless the space is paused)."""
    space.desired_release = {
        "kind": artifact.kind,
        "ref": artifact.ref,
        "commit": artifact.commit,
        "build": build_id,
    }
    space.desired_generation += 1
    if space.desired_state == PAUSED:
        space.stage = Stage.PAUSED
    elif artifact.kind != "static":
        space.stage = starting_stage(is_serving(space))
    _save(session, space)


def want_restart(session: Session, space: Space) -> None:
    """Start the live release again (health-gated); a paused or sleeping space runs again."""
    space.desired_release = live_release(space)
    space.desired_state = RUNNING
    space.desired_generation += 1
    if space.release_kind == "static":
        space.stage = Stage.RUNNING
        space.error_message = None
    else:  # a crashed instance's record does not make the space serving
        space.stage = starting_stage(space.instance_state is not None and is_serving(space))
    _save(session, space)


def want_paused(session: Session, space: Space) -> None:
    space.desired_state = PAUSED
    space.stage = Stage.PAUSED
    space.error_message = None
    _save(session, space)


def want_running(session: Session, space: Space) -> None:
    """Leave PAUSED: a build or a restart then puts a release live."""
    space.desired_state = RUNNING
    _save(session, space)


def _save(session: Session, space: Space) -> None:
    space.updated_at = utcnow()
    session.add(space)
    session.commit()

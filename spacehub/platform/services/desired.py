"""A space's desired state: written by builds and the API, carried out by the supervisor alone."""

from sqlmodel import Session

from spacehub.core.release import Artifact
from spacehub.core.stages import Stage, starting_stage
from spacehub.platform.models import Space, utcnow
from spacehub.platform.services.builds import is_serving

RUNNING = "running"
PAUSED = "paused"
# "sleeping" joins these with sleep-on-idle: the supervisor stops the instance, a request wakes it.


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
    """Start the live release again (health-gated); a paused space runs again."""
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

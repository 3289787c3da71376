"""Spaces: creation with name and label rules, lookup with visibility, listing, deletion."""

from sqlmodel import Session, col, func, select

from spacehub.core.errors import Conflict, InvalidInput, RepoNotFound
from spacehub.core.hardware import DEFAULT_FLAVOR, flavor
from spacehub.core.names import subdomain_label, validate_label, validate_name
from spacehub.core.space_config import SDKS
from spacehub.core.stages import Stage
from spacehub.platform.models import Build, Secret, Space, SpaceSource, User, Variable, utcnow
from spacehub.platform.services import desired
from spacehub.platform.services.accounts import Caller, can_read, org_names


def create_space(
    session: Session,
    owner: User,
    name: str,
    *,
    sdk: str,
    private: bool = False,
    hardware: str | None = None,
    sleep_time: int | None = None,
    storage: str | None = None,
) -> Space:
    if sdk not in SDKS:
        raise InvalidInput(f"unknown sdk {sdk!r}: use one of {', '.join(SDKS)}")
    flavor(hardware or DEFAULT_FLAVOR)
    label = free_label(session, owner, name)
    space = Space(
        owner_id=owner.id,
        name=name,
        label=label,
        sdk=sdk,
        private=private,
        hardware=hardware or DEFAULT_FLAVOR,
        sleep_time=desired.SLEEP_TIME_UNSET if sleep_time is None else sleep_time,
        storage=storage,
        stage=Stage.NO_APP_FILE,
        card_data={"sdk": sdk},
    )
    session.add(space)
    session.commit()
    session.refresh(space)
    return space


def free_label(session: Session, owner: User, name: str, moving: Space | None = None) -> str:
    """The app host label of `owner/name`, once that id and label are checked to be free.

    `moving` is the space that is being renamed: it does not collide with itself.
    """
    validate_name(name, "space name")
    taken = find_space(session, owner.name, name)
    if taken is not None and taken is not moving:
        raise Conflict(f"You already created this space repo: {owner.name}/{name}")
    label = validate_label(subdomain_label(owner.name, name))
    clash = session.exec(select(Space).where(Space.label == label)).first()
    if clash is not None and clash is not moving:
        raise Conflict(
            f"the app host {label!r} of {owner.name}/{name} is already used by another space: "
            "pick another name"
        )
    return label


def find_space(session: Session, owner: str, name: str) -> Space | None:
    statement = (
        select(Space)
        .join(User, col(User.id) == Space.owner_id)
        .where(User.name == owner, Space.name == name)
    )
    return session.exec(statement).first()


def visible_space(session: Session, caller: Caller, owner: str, name: str) -> Space:
    """The space, or RepoNotFound when it does not exist or the caller may not see it."""
    space = find_space(session, owner, name)
    if space is None or not can_read(session, caller, space):
        raise RepoNotFound("Repository not found")
    return space


def owner_of(session: Session, space: Space) -> User:
    owner = session.get(User, space.owner_id)
    assert owner is not None
    return owner


def list_visible_spaces(
    session: Session,
    caller: Caller,
    *,
    author: str | None = None,
    search: str | None = None,
    sdk: str | None = None,
    offset: int = 0,
    limit: int = 100,
) -> list[tuple[Space, User]]:
    statement = select(Space, User).join(User, col(User.id) == Space.owner_id)
    if author:
        statement = statement.where(User.name == author)
    if sdk:
        statement = statement.where(Space.sdk == sdk)
    if search:
        # `_` is common in space names: match it literally, not as a LIKE wildcard.
        escaped = search.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        name = func.lower(User.name + "/" + Space.name)
        statement = statement.where(name.like(f"%{escaped}%", escape="\\"))
    if caller.user is None:
        statement = statement.where(col(Space.private).is_(False))
    elif not caller.user.is_admin:
        # The rule of accounts.readers, in SQL: public, the caller's own, or their orgs'.
        owners = [caller.user.id, *(org.id for org in org_names(session, caller.user))]
        statement = statement.where(col(Space.private).is_(False) | col(Space.owner_id).in_(owners))
    ordered = statement.order_by(col(Space.updated_at).desc(), col(Space.id).desc())
    return list(session.exec(ordered.offset(offset).limit(limit)))


def delete_space(session: Session, space: Space) -> None:
    for model in (Build, Secret, Variable, SpaceSource):
        for row in session.exec(select(model).where(model.space_id == space.id)):
            session.delete(row)
    # No ORM relationships tell the flush to delete the rows pointing at the space first.
    session.flush()
    session.delete(space)
    session.commit()


def set_stage(session: Session, space: Space, stage: Stage, error: str | None = None) -> None:
    space.stage = stage
    space.error_message = error
    space.updated_at = utcnow()
    session.add(space)
    session.commit()

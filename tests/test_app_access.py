"""Who may open a private space's app, as the proxy asks it on every request."""

import asyncio
from pathlib import Path

import pytest
from sqlmodel import select

from spacehub.platform import app_access
from spacehub.platform.app_access import AppAccess
from spacehub.platform.db import make_engine, migrate, session_scope
from spacehub.platform.models import Token
from spacehub.platform.route_table import Route
from spacehub.platform.services import accounts


@pytest.fixture
def access_and_tokens(tmp_path: Path) -> tuple[AppAccess, dict[str, str]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    migrate(engine)
    with session_scope(engine) as session:
        tokens = {
            name: accounts.create_token(session, accounts.create_user(session, name))
            for name in ("owner", "stranger")
        }
    return AppAccess(engine), tokens


PRIVATE = Route(
    owner="owner", name="app", label="owner-app", private=True, readers=frozenset({"owner"})
)


def test_only_readers_tokens_open_a_private_app(access_and_tokens) -> None:
    access, tokens = access_and_tokens
    assert asyncio.run(access.authorize(PRIVATE, tokens["owner"]))
    assert not asyncio.run(access.authorize(PRIVATE, tokens["stranger"]))
    assert not asyncio.run(access.authorize(PRIVATE, "hf_notatoken"))
    assert not asyncio.run(access.authorize(PRIVATE, None))


def test_a_revoked_token_stops_opening_apps_after_the_cache_time(
    access_and_tokens, monkeypatch: pytest.MonkeyPatch
) -> None:
    access, tokens = access_and_tokens
    monkeypatch.setattr(app_access, "TOKEN_TTL_SECONDS", 0.2)

    async def scenario() -> list[bool]:
        seen = [await access.authorize(PRIVATE, tokens["owner"])]
        with session_scope(access.engine) as session:
            for token in session.exec(select(Token)):
                session.delete(token)
            session.commit()
        seen.append(await access.authorize(PRIVATE, tokens["owner"]))  # still cached
        await asyncio.sleep(0.3)
        seen.append(await access.authorize(PRIVATE, tokens["owner"]))
        return seen

    assert asyncio.run(scenario()) == [True, True, False]

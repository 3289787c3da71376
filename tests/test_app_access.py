"""Who may open a private space's app, as the proxy asks it on every request."""

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import select

from spacehub.platform import app_access
from spacehub.platform.app_access import AppAccess
from spacehub.platform.app_tickets import AppCookie, AppSigner
from spacehub.platform.db import make_engine, migrate, session_scope
from spacehub.platform.models import MemberRole, Token
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


PRIVATE = Route(owner="owner", name="app", label="owner-app", private=True)


def test_only_readers_tokens_open_a_private_app(access_and_tokens) -> None:
    access, tokens = access_and_tokens
    assert asyncio.run(access.authorize(PRIVATE, tokens["owner"]))
    assert not asyncio.run(access.authorize(PRIVATE, tokens["stranger"]))
    assert not asyncio.run(access.authorize(PRIVATE, "hf_notatoken"))
    assert not asyncio.run(access.authorize(PRIVATE, None))


def test_a_revoked_token_stops_opening_apps_at_once(access_and_tokens) -> None:
    access, tokens = access_and_tokens

    async def scenario() -> list[bool]:
        seen = [await access.authorize(PRIVATE, tokens["owner"])]
        with session_scope(access.engine) as session:
            for token in session.exec(select(Token)):
                accounts.revoke_token(session, token.id)
        seen.append(await access.authorize(PRIVATE, tokens["owner"]))
        return seen

    assert asyncio.run(scenario()) == [True, False]


def test_a_change_made_by_another_process_is_seen_after_the_recheck_time(
    access_and_tokens, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQL this process's sessions did not commit (another process's) bumps no version."""
    access, tokens = access_and_tokens
    monkeypatch.setattr(app_access, "RECHECK_SECONDS", 0.2)

    async def scenario() -> list[bool]:
        seen = [await access.authorize(PRIVATE, tokens["owner"])]
        with access.engine.begin() as connection:
            connection.execute(text("DELETE FROM token"))
        seen.append(await access.authorize(PRIVATE, tokens["owner"]))  # still remembered
        await asyncio.sleep(0.3)
        seen.append(await access.authorize(PRIVATE, tokens["owner"]))
        return seen

    assert asyncio.run(scenario()) == [True, True, False]


def test_an_org_member_removed_loses_the_app_on_the_next_request(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    migrate(engine)
    with session_scope(engine) as session:
        org = accounts.create_user(session, "labo", is_org=True)
        member = accounts.create_user(session, "bob")
        token = accounts.create_token(session, member)
        accounts.add_member(session, org, member, MemberRole.READ)
    access = AppAccess(engine)
    route = Route(owner="labo", name="app", label="labo-app", private=True)

    async def scenario() -> list[bool]:
        seen = [await access.authorize(route, token)]
        with session_scope(engine) as session:
            org, member = (accounts.user_by_name(session, n) for n in ("labo", "bob"))
            accounts.remove_member(session, org, member)
        seen.append(await access.authorize(route, token))
        return seen

    assert asyncio.run(scenario()) == [True, False]


def test_an_app_cookie_opens_only_its_own_space(tmp_path: Path, access_and_tokens) -> None:
    access, _ = access_and_tokens
    signer = AppSigner.for_data_dir(tmp_path)
    access.signer = signer
    cookie = AppCookie(signer.cookie("owner", "owner/app"))
    other = Route(owner="owner", name="other", label="owner-other", private=True)
    assert asyncio.run(access.authorize(PRIVATE, cookie))
    assert not asyncio.run(access.authorize(other, cookie))
    assert not asyncio.run(access.authorize(PRIVATE, AppCookie(cookie[:-1] + "x")))
    ticket = AppCookie(signer.ticket("owner", "owner/app"))  # a ticket is not a cookie
    assert not asyncio.run(access.authorize(PRIVATE, ticket))

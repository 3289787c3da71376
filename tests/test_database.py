"""The schema, its migrations and the models, on SQLite and on a real PostgreSQL server."""

import hashlib
import os
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, inspect, make_url, select, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, SQLModel

from spacehub.core.errors import Conflict, Unauthorized
from spacehub.platform.db import MIGRATIONS, make_engine, migrate, session_scope
from spacehub.platform.models import (
    Build,
    BuildStatus,
    Membership,
    Secret,
    Space,
    Token,
    TokenRole,
    User,
    Variable,
)
from spacehub.platform.security import SecretBox
from spacehub.platform.services import accounts, secrets, spaces

IN_CI = os.environ.get("CI") == "true"
POSTGRES_URL = os.environ.get(
    "SPACEHUB_TEST_POSTGRES_URL",
    "postgresql+psycopg://spacehub:spacehub@127.0.0.1:5432/postgres",
)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a SQLite file, or a fresh PostgreSQL database dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'spacehub.db'}"
        return
    server = create_engine(
        POSTGRES_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5}
    )
    name = f"spacehub_test_{uuid.uuid4().hex[:16]}"
    try:
        with server.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as error:
        server.dispose()
        reason = f"PostgreSQL does not answer at SPACEHUB_TEST_POSTGRES_URL: {error}"
        if IN_CI:
            pytest.fail(f"CI=true and {reason}")
        pytest.skip(reason)
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with server.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """A migrated database."""
    made = make_engine(database_url)
    migrate(made)
    yield made
    made.dispose()


def head_revision() -> str:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def dump_database(engine: Engine) -> str:
    """Every value in every table, as text: what a stolen database would show."""
    parts: list[str] = []
    with engine.connect() as connection:
        for table_name in inspect(connection).get_table_names():
            # Table names come from the database itself, not from input.
            query = text(f'SELECT * FROM "{table_name}"')  # noqa: S608
            for row in connection.execute(query):
                parts.append(repr(tuple(row)))
    return "\n".join(parts)


def make_space(session: Session, owner: User, name: str = "demo", **options) -> Space:
    return spaces.create_space(session, owner, name, sdk=options.pop("sdk", "static"), **options)


def test_migrate_creates_every_table_and_is_idempotent(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        migrate(engine)
        migrate(engine)
        tables = set(inspect(engine).get_table_names())
        assert tables == set(SQLModel.metadata.tables) | {"alembic_version"}
        with engine.connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
        assert versions == [(head_revision(),)]
    finally:
        engine.dispose()


def test_the_migrations_match_the_models(engine: Engine) -> None:
    """A model changed without a migration shows up here, on both databases."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, SQLModel.metadata)
    assert differences == []


def test_users_orgs_and_tokens_round_trip(engine: Engine) -> None:
    with session_scope(engine) as session:
        alice = accounts.create_user(session, "alice", fullname="Alice A.", password="pw-123456")
        team = accounts.create_user(session, "team", is_org=True)
        accounts.add_member(session, team, alice)
        raw = accounts.create_token(session, alice, TokenRole.READ, "laptop")
        assert raw.startswith("hf_") and len(raw) == 37

    with session_scope(engine) as session:
        caller = accounts.caller_for_token(session, raw)
        assert caller.name == "alice"
        assert caller.role == TokenRole.READ
        assert caller.token_name == "laptop"
        assert caller.user is not None and caller.user.fullname == "Alice A."
        assert [org.name for org in accounts.org_names(session, caller.user)] == ["team"]
        assert session.exec(select(Membership)).all()
        token_row = session.exec(select(Token)).one()[0]
        assert token_row.token_hash == hashlib.sha256(raw.encode()).hexdigest()
        with pytest.raises(Unauthorized):
            accounts.caller_for_token(session, raw + "x")
        assert accounts.caller_for_token(session, None).user is None

    dump = dump_database(engine)
    assert raw not in dump
    assert raw.removeprefix("hf_") not in dump
    assert "pw-123456" not in dump


def test_a_taken_user_name_is_a_conflict(engine: Engine) -> None:
    with session_scope(engine) as session:
        accounts.create_user(session, "alice")
        with pytest.raises(Conflict):
            accounts.create_user(session, "alice")


def test_space_with_card_data_round_trips(engine: Engine) -> None:
    card = {
        "title": "Météo ⛅",
        "sdk": "gradio",
        "tags": ["weather", "demo"],
        "custom_headers": {"cross-origin-opener-policy": "same-origin"},
        "pinned": True,
        "app_port": 7860,
    }
    with session_scope(engine) as session:
        alice = accounts.create_user(session, "alice")
        space = make_space(session, alice, "weather", sdk="gradio", private=True)
        space.card_data = card
        space.instance_state = {"container": "abc", "port": 49152}
        session.add(space)
        session.commit()
        space_id = space.id

    with session_scope(engine) as session:
        loaded = session.get(Space, space_id)
        assert loaded is not None
        assert loaded.card_data == card
        assert loaded.instance_state == {"container": "abc", "port": 49152}
        assert loaded.private is True
        assert loaded.label == "alice-weather"
        assert loaded.stage == "NO_APP_FILE"
        assert loaded.created_at.utcoffset() == timedelta(0)
        loaded.instance_state = None
        session.add(loaded)
        session.commit()

    with session_scope(engine) as session:
        assert session.get(Space, space_id).instance_state is None


def test_build_round_trips(engine: Engine) -> None:
    commit = "a" * 40
    with session_scope(engine) as session:
        space = make_space(session, accounts.create_user(session, "alice"))
        build = Build(space_id=space.id, commit=commit, no_cache=True, log_path="/x/1.log")
        session.add(build)
        session.commit()
        build_id = build.id
    with session_scope(engine) as session:
        loaded = session.get(Build, build_id)
        assert loaded is not None
        assert (loaded.commit, loaded.status, loaded.no_cache) == (commit, "queued", True)
        assert loaded.status == BuildStatus.QUEUED
        assert loaded.log_path == "/x/1.log"


def test_secrets_are_stored_encrypted(engine: Engine, tmp_path: Path) -> None:
    box = SecretBox(SecretBox.new_key())
    value = "plain-secret-value-0123456789"
    with session_scope(engine) as session:
        space = make_space(session, accounts.create_user(session, "alice"))
        secrets.upsert_secret(session, box, space, "API_KEY", value, "the key")
        secrets.upsert_variable(session, space, "MODEL", "small", None)

    with session_scope(engine) as session:
        space = spaces.find_space(session, "alice", "demo")
        assert secrets.secret_values(session, box, space) == {"API_KEY": value}
        row = session.exec(select(Secret)).one()[0]
        assert row.description == "the key"
        assert value not in row.value_encrypted
        with pytest.raises(Exception):  # noqa: B017 (another key cannot read it)
            SecretBox(SecretBox.new_key()).decrypt(row.value_encrypted)
        variables = secrets.list_variables(session, space)
        assert [(v.key, v.value) for v in variables] == [("MODEL", "small")]

    assert value not in dump_database(engine)
    if engine.dialect.name == "sqlite":
        database_file = Path(engine.url.database)
        for path in (database_file, database_file.with_name(database_file.name + "-wal")):
            if path.exists():
                assert value.encode() not in path.read_bytes()


def test_upserting_a_secret_or_variable_replaces_it(engine: Engine) -> None:
    box = SecretBox(SecretBox.new_key())
    with session_scope(engine) as session:
        space = make_space(session, accounts.create_user(session, "alice"))
        secrets.upsert_secret(session, box, space, "KEY", "one", None)
        secrets.upsert_secret(session, box, space, "KEY", "two", "updated")
        secrets.upsert_variable(session, space, "VAR", "one", None)
        secrets.upsert_variable(session, space, "VAR", "two", None)
        assert secrets.secret_values(session, box, space) == {"KEY": "two"}
        assert [v.value for v in secrets.list_variables(session, space)] == ["two"]
        secrets.delete_secret(session, space, "KEY")
        secrets.delete_secret(session, space, "MISSING")
        assert secrets.list_secrets(session, space) == []


def test_deleting_a_space_deletes_its_rows(engine: Engine) -> None:
    box = SecretBox(SecretBox.new_key())
    with session_scope(engine) as session:
        space = make_space(session, accounts.create_user(session, "alice"))
        secrets.upsert_secret(session, box, space, "KEY", "v", None)
        secrets.upsert_variable(session, space, "VAR", "v", None)
        session.add(Build(space_id=space.id, commit="b" * 40))
        session.commit()
        spaces.delete_space(session, space)
    with session_scope(engine) as session:
        for model in (Space, Secret, Variable, Build):
            assert session.exec(select(model)).all() == []


def insert_fails(engine: Engine, *rows: SQLModel) -> None:
    with Session(engine) as session:
        for row in rows:
            session.add(row)
        with pytest.raises(IntegrityError):
            session.commit()


def test_a_space_name_is_unique_per_owner(engine: Engine) -> None:
    with session_scope(engine) as session:
        alice = accounts.create_user(session, "alice")
        bob = accounts.create_user(session, "bob")
        make_space(session, alice, "demo")
        make_space(session, bob, "demo")
        with pytest.raises(Conflict):
            make_space(session, alice, "demo")
        alice_id = alice.id
    insert_fails(engine, Space(owner_id=alice_id, name="demo", label="other-label", sdk="static"))


def test_a_label_is_unique(engine: Engine) -> None:
    with session_scope(engine) as session:
        admin = accounts.create_user(session, "admin")
        org = accounts.create_user(session, "admin-a", is_org=True)
        make_space(session, admin, "a-b")
        with pytest.raises(Conflict) as raised:
            make_space(session, org, "b")
        assert "admin-a-b" in raised.value.message
        make_space(session, admin, "my_app")
        with pytest.raises(Conflict):
            make_space(session, admin, "my-app")
        org_id = org.id
    insert_fails(engine, Space(owner_id=org_id, name="c", label="admin-a-b", sdk="static"))


def test_user_names_token_hashes_and_keys_are_unique(engine: Engine) -> None:
    with session_scope(engine) as session:
        alice = accounts.create_user(session, "alice")
        space = make_space(session, alice)
        session.add(Token(user_id=alice.id, token_hash="f" * 64))
        session.add(Variable(space_id=space.id, key="K", value="1"))
        session.add(Secret(space_id=space.id, key="K", value_encrypted="x"))
        session.commit()
        alice_id, space_id = alice.id, space.id
    insert_fails(engine, User(name="alice"))
    insert_fails(engine, Token(user_id=alice_id, token_hash="f" * 64))
    insert_fails(engine, Variable(space_id=space_id, key="K", value="2"))
    insert_fails(engine, Secret(space_id=space_id, key="K", value_encrypted="y"))


def test_rows_must_point_at_existing_rows(engine: Engine) -> None:
    insert_fails(engine, Build(space_id=12345, commit="c" * 40))

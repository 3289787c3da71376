"""The database engine, made from Settings, and migrations run on start."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, event
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlmodel import Session, create_engine

MIGRATIONS = Path(__file__).parent / "migrations"
POOL_TIMEOUT_SECONDS = 10


def make_engine(url: str, pool_size: int = 20) -> Engine:
    """The engine; `pool_size` connections, as many again in overflow, a short wait for one.

    A caller that cannot get a connection within POOL_TIMEOUT_SECONDS fails (and is answered
    503) rather than queueing behind a pool that streams or a stuck writer hold.
    """
    pool = {"pool_size": pool_size, "max_overflow": pool_size, "pool_timeout": POOL_TIMEOUT_SECONDS}
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **pool
        )
        event.listen(engine, "connect", _tune_sqlite)
        return engine
    return create_engine(url, pool_pre_ping=True, **pool)


def _tune_sqlite(connection: DBAPIConnection, _record: object) -> None:
    cursor = connection.cursor()
    # WAL lets the proxy-side readers and the build worker proceed while a write commits.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as session:
        yield session

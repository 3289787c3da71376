"""Tables: users (and orgs), tokens, SSH keys, spaces, builds, secrets, variables, sources."""

from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import JSON, Column, Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from spacehub.core.stages import Stage


def utcnow() -> datetime:
    return datetime.now(UTC)


class User(SQLModel, table=True):
    """A person, or an organisation (`is_org`): both own spaces."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True, max_length=96)
    fullname: str = Field(default="", max_length=200)
    is_org: bool = False
    is_admin: bool = False
    # A disabled user's tokens, SSH keys and password stop working; their spaces stay.
    disabled: bool = False
    password_hash: str | None = None  # argon2; None: no password sign-in
    created_at: datetime = Field(default_factory=utcnow)


class MemberRole(StrEnum):
    """What a member may do in an org: see its private spaces, also push and create, also
    manage its members."""

    READ = "read"
    WRITE = "write"
    ADMIN = "admin"


class Membership(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("org_id", "user_id"),)

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="user.id", index=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    role: MemberRole = MemberRole.WRITE


class TokenRole(StrEnum):
    READ = "read"
    WRITE = "write"


class Token(SQLModel, table=True):
    """An access token; only the SHA-256 of its value is stored."""

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    display_name: str = Field(default="", max_length=100)
    role: TokenRole = TokenRole.WRITE
    token_hash: str = Field(index=True, unique=True, max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime | None = None  # short-lived tokens, e.g. git-lfs over SSH
    last_used_at: datetime | None = None  # to the minute: a busy token is not a write per use


class SshKey(SQLModel, table=True):
    """A user's public key for git over SSH: the key alone says who connects."""

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    title: str = Field(default="", max_length=100)
    public_key: str  # OpenSSH "type base64", without its comment
    fingerprint: str = Field(index=True, unique=True, max_length=64)  # "SHA256:…"
    created_at: datetime = Field(default_factory=utcnow)
    last_used_at: datetime | None = None


class Space(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("owner_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    owner_id: int = Field(foreign_key="user.id", index=True)
    name: str = Field(max_length=96)
    label: str = Field(index=True, unique=True, max_length=63)
    sdk: str = Field(max_length=16)
    private: bool = False
    stage: Stage = Stage.NO_APP_FILE
    error_message: str | None = None
    sleep_time: int = 0  # -1 never; 0 never set: the platform's default_sleep_time applies
    hardware: str = "cpu-basic"
    storage: str | None = Field(default=None, max_length=16)
    card_data: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    head_commit: str | None = Field(default=None, max_length=40)
    current_commit: str | None = Field(default=None, max_length=40)
    release_ref: str | None = None
    release_kind: str | None = Field(default=None, max_length=16)
    app_port: int = 7860
    instance_state: dict | None = Field(
        default=None, sa_column=Column(JSON(none_as_null=True), nullable=True)
    )
    # Desired state, written by builds and the API, carried out by the supervisor alone:
    # the release to run ({kind, ref, commit, build}), "running" or "paused", and a generation
    # each request bumps; the supervisor sets live_generation once it has acted on one.
    desired_release: dict | None = Field(
        default=None, sa_column=Column(JSON(none_as_null=True), nullable=True)
    )
    desired_state: str = Field(default="running", max_length=16)
    desired_generation: int = 0
    live_generation: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class BuildStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Build(SQLModel, table=True):
    # At most one queued build per space, even with several processes enqueueing at once.
    __table_args__ = (
        Index(
            "ix_build_one_queued_per_space",
            "space_id",
            unique=True,
            sqlite_where=text("status = 'QUEUED'"),
            postgresql_where=text("status = 'QUEUED'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    space_id: int = Field(foreign_key="space.id", index=True)
    commit: str = Field(max_length=40)
    status: BuildStatus = Field(default=BuildStatus.QUEUED, index=True)
    no_cache: bool = False
    error: str | None = None
    claimed_by: str | None = Field(default=None, max_length=100)
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    log_path: str | None = None


class BuildWorker(SQLModel, table=True):
    """A process that runs builds (`serve` or a `spacehub worker`, on any machine) and its
    heartbeat: a running build is handed back to the queue only once its worker's lapsed."""

    name: str = Field(primary_key=True, max_length=100)  # `host:pid`, as in Build.claimed_by
    started_at: datetime = Field(default_factory=utcnow)
    heartbeat_at: datetime = Field(default_factory=utcnow)


class Secret(SQLModel, table=True):
    """A space secret; `value_encrypted` is Fernet ciphertext, the value is never returned."""

    __table_args__ = (UniqueConstraint("space_id", "key"),)

    id: int | None = Field(default=None, primary_key=True)
    space_id: int = Field(foreign_key="space.id", index=True)
    key: str = Field(max_length=100)
    value_encrypted: str
    description: str | None = None
    updated_at: datetime = Field(default_factory=utcnow)


class Variable(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("space_id", "key"),)

    id: int | None = Field(default=None, primary_key=True)
    space_id: int = Field(foreign_key="space.id", index=True)
    key: str = Field(max_length=100)
    value: str
    description: str | None = None
    updated_at: datetime = Field(default_factory=utcnow)


class SpaceSource(SQLModel, table=True):
    """An external git repository (GitHub, Gitea, …) and branch that a space follows.

    Its push webhook, signed with `webhook_secret_encrypted` (Fernet ciphertext of the HMAC
    key), makes the platform fetch the pushed commit into the space's `main`. A deploy token or
    SSH key for a private source is ciphertext too; neither value is ever returned.
    """

    id: int | None = Field(default=None, primary_key=True)
    space_id: int = Field(foreign_key="space.id", index=True, unique=True)
    url: str = Field(max_length=2000)
    branch: str = Field(default="main", max_length=255)
    webhook_secret_encrypted: str
    credential_kind: str | None = Field(default=None, max_length=16)  # "token" or "ssh_key"
    credential_encrypted: str | None = None
    # The last delivery: its id, the commit it named, what came of it, and why it failed.
    last_delivery: str | None = Field(default=None, max_length=100)
    last_commit: str | None = Field(default=None, max_length=40)
    last_status: str | None = Field(default=None, max_length=16)
    last_error: str | None = None
    last_delivery_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)

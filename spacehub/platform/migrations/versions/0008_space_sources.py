"""spaces that follow an external git repository (GitHub, Gitea) through its push webhook

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "spacesource",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("space_id", sa.Integer(), nullable=False),
        sa.Column("url", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
        sa.Column("branch", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("webhook_secret_encrypted", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("credential_kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("credential_encrypted", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("last_delivery", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("last_commit", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("last_status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("last_error", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("last_delivery_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["space_id"], ["space.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("spacesource", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_spacesource_space_id"), ["space_id"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("spacesource", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_spacesource_space_id"))
    op.drop_table("spacesource")

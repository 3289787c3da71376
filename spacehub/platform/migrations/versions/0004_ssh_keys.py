"""users' public keys for git over SSH; tokens that expire (git-lfs over SSH)

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("token", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("expires_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
    op.create_table(
        "sshkey",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("title", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("public_key", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("fingerprint", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("last_used_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("sshkey", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sshkey_fingerprint"), ["fingerprint"], unique=True)
        batch_op.create_index(batch_op.f("ix_sshkey_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sshkey", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sshkey_user_id"))
        batch_op.drop_index(batch_op.f("ix_sshkey_fingerprint"))
    op.drop_table("sshkey")
    with op.batch_alter_table("token", schema=None) as batch_op:
        batch_op.drop_column("expires_at")

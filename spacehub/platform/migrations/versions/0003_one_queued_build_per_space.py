"""at most one queued build per space

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None
QUEUED = sa.text("status = 'QUEUED'")


def upgrade() -> None:
    op.create_index(
        "ix_build_one_queued_per_space",
        "build",
        ["space_id"],
        unique=True,
        sqlite_where=QUEUED,
        postgresql_where=QUEUED,
    )


def downgrade() -> None:
    op.drop_index("ix_build_one_queued_per_space", table_name="build")

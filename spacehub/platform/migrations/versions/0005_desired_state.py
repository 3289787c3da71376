"""desired state of a space (release, running or paused), carried out by the supervisor

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("space", schema=None) as batch_op:
        batch_op.add_column(sa.Column("desired_release", sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "desired_state",
                sqlmodel.sql.sqltypes.AutoString(length=16),
                nullable=False,
                server_default="running",
            )
        )
        batch_op.add_column(
            sa.Column("desired_generation", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("live_generation", sa.Integer(), nullable=False, server_default="0")
        )
    # A space paused before this migration stays paused; the others run their live release.
    op.execute("UPDATE space SET desired_state = 'paused' WHERE stage = 'PAUSED'")


def downgrade() -> None:
    with op.batch_alter_table("space", schema=None) as batch_op:
        batch_op.drop_column("live_generation")
        batch_op.drop_column("desired_generation")
        batch_op.drop_column("desired_state")
        batch_op.drop_column("desired_release")

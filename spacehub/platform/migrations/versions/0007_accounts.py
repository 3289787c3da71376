"""accounts a team manages: disabled users, org member roles, tokens' last use

Revision ID: 0007
Revises: 0005
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0007"
down_revision = "0005"
branch_labels = None
depends_on = None

MEMBER_ROLE = sa.Enum("READ", "WRITE", "ADMIN", name="memberrole")


def upgrade() -> None:
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("disabled", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    # PostgreSQL needs the enum type before a column can use it (create_table makes its own).
    MEMBER_ROLE.create(op.get_bind(), checkfirst=True)
    with op.batch_alter_table("membership", schema=None) as batch_op:
        # Members made before roles existed could push and create in their org: they keep that.
        batch_op.add_column(sa.Column("role", MEMBER_ROLE, nullable=False, server_default="WRITE"))
    with op.batch_alter_table("token", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("last_used_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("token", schema=None) as batch_op:
        batch_op.drop_column("last_used_at")
    with op.batch_alter_table("membership", schema=None) as batch_op:
        batch_op.drop_column("role")
    MEMBER_ROLE.drop(op.get_bind(), checkfirst=True)
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.drop_column("disabled")

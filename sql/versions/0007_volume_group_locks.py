"""A lease on volume groups: the ams changing a group (attach, detach, mount, snapshot, ...)
holds it, so a second ams waits briefly or fails instead of acting on the same group.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

from amslib.store.types import UtcDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("volume_groups") as batch:
        batch.add_column(sa.Column("lock_owner", sa.String(255), nullable=True))
        batch.add_column(sa.Column("lock_since", UtcDateTime(), nullable=True))
        batch.add_column(sa.Column("lock_until", UtcDateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table("volume_groups") as batch:
        batch.drop_column("lock_until")
        batch.drop_column("lock_since")
        batch.drop_column("lock_owner")

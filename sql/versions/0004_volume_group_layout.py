"""Volume groups: state, array and filesystem identity; member device names; one mount point
per host.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("volume_groups") as batch:
        batch.add_column(sa.Column("state", sa.String(16), nullable=False, server_default="available"))
        batch.add_column(sa.Column("array_name", sa.String(64), nullable=True))
        batch.add_column(sa.Column("md_uuid", sa.String(64), nullable=True))
        batch.add_column(sa.Column("fs_uuid", sa.String(64), nullable=True))
    with op.batch_alter_table("volumes") as batch:
        batch.add_column(sa.Column("device_name", sa.String(32), nullable=True))
        batch.add_column(sa.Column("encrypted", sa.Boolean, nullable=False, server_default="0"))
        batch.add_column(sa.Column("kms_key_id", sa.String(2048), nullable=True))
    # the new unique index first: MySQL needs an index on instance_id for its foreign key
    op.create_index("uq_host_volumes_instance_mount", "host_volumes", ["instance_id", "mount_point"], unique=True)
    op.drop_index("ix_host_volumes_instance_mount", table_name="host_volumes")


def downgrade():
    op.create_index("ix_host_volumes_instance_mount", "host_volumes", ["instance_id", "mount_point"])
    op.drop_index("uq_host_volumes_instance_mount", table_name="host_volumes")
    with op.batch_alter_table("volumes") as batch:
        batch.drop_column("kms_key_id")
        batch.drop_column("encrypted")
        batch.drop_column("device_name")
    with op.batch_alter_table("volume_groups") as batch:
        batch.drop_column("fs_uuid")
        batch.drop_column("md_uuid")
        batch.drop_column("array_name")
        batch.drop_column("state")

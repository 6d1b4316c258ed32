"""Snapshot groups carry what a restore needs (layout, filesystem, source), their state and
expiry; snapshots their state and source volume's settings; a volume group knows the
snapshot group it was cloned from.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

from amslib.store.types import Ec2Id, UtcDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("snapshot_groups") as batch:
        batch.add_column(sa.Column("state", sa.String(16), nullable=False, server_default="pending"))
        batch.add_column(sa.Column("expires_at", UtcDateTime(), nullable=True))
        batch.add_column(sa.Column("raid_level", sa.Integer, nullable=True))
        batch.add_column(sa.Column("stripe_block_size", sa.Integer, nullable=True))
        batch.add_column(sa.Column("fs_type", sa.String(16), nullable=True))
        batch.add_column(sa.Column("array_name", sa.String(64), nullable=True))
        batch.add_column(sa.Column("md_uuid", sa.String(64), nullable=True))
        batch.add_column(sa.Column("fs_uuid", sa.String(64), nullable=True))
        batch.add_column(sa.Column("member_count", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("source_instance_id", Ec2Id(), nullable=True))
        batch.add_column(sa.Column("source_hostname", sa.String(255), nullable=True))
        batch.add_column(sa.Column("source_mount_point", sa.String(255), nullable=True))
        batch.add_column(sa.Column("tags", sa.Text, nullable=True))
    op.create_index("ix_snapshot_groups_expires_at", "snapshot_groups", ["expires_at"])
    op.create_index("ix_snapshot_groups_source", "snapshot_groups", ["source_hostname", "source_mount_point"])
    with op.batch_alter_table("snapshots") as batch:
        batch.add_column(sa.Column("state", sa.String(16), nullable=False, server_default="pending"))
        batch.add_column(sa.Column("progress", sa.Integer, nullable=True))
        batch.add_column(sa.Column("volume_type", sa.String(16), nullable=True))
        batch.add_column(sa.Column("iops", sa.Integer, nullable=True))
        batch.add_column(sa.Column("throughput", sa.Integer, nullable=True))
        batch.add_column(sa.Column("encrypted", sa.Boolean, nullable=False, server_default="0"))
        batch.add_column(sa.Column("source_snapshot_id", Ec2Id(), nullable=True))
    with op.batch_alter_table("volume_groups") as batch:
        # no foreign key: snapshot_groups already refers to volume_groups (no cycle), and the
        # snapshot group may be deleted while its clone lives on
        batch.add_column(sa.Column("cloned_from_id", sa.Integer, nullable=True))


def downgrade():
    with op.batch_alter_table("volume_groups") as batch:
        batch.drop_column("cloned_from_id")
    with op.batch_alter_table("snapshots") as batch:
        for name in ("source_snapshot_id", "encrypted", "throughput", "iops", "volume_type", "progress", "state"):
            batch.drop_column(name)
    op.drop_index("ix_snapshot_groups_source", table_name="snapshot_groups")
    op.drop_index("ix_snapshot_groups_expires_at", table_name="snapshot_groups")
    with op.batch_alter_table("snapshot_groups") as batch:
        for name in ("tags", "source_mount_point", "source_hostname", "source_instance_id", "member_count",
                     "fs_uuid", "md_uuid", "array_name", "fs_type", "stripe_block_size", "raid_level",
                     "expires_at", "state"):
            batch.drop_column(name)

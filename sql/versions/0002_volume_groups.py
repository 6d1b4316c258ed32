"""Volume groups, their EBS volumes and where they are attached.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from amslib.store.types import Ec2Id, UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "volume_groups",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("raid_level", sa.Integer, nullable=True),
        sa.Column("stripe_block_size", sa.Integer, nullable=True),
        sa.Column("fs_type", sa.String(16), nullable=True),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("availability_zone", sa.String(32), nullable=False),
        sa.Column("tags", sa.Text, nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("deleted_at", UtcDateTime(), nullable=True),
    )
    op.create_index("ix_volume_groups_zone", "volume_groups", ["availability_zone"])
    op.create_index("ix_volume_groups_deleted_at", "volume_groups", ["deleted_at"])
    op.create_table(
        "volumes",
        sa.Column("volume_id", Ec2Id(), primary_key=True),
        sa.Column("volume_group_id", sa.Integer, sa.ForeignKey("volume_groups.id"), nullable=False),
        sa.Column("member_index", sa.Integer, nullable=False),
        sa.Column("size_gib", sa.Integer, nullable=False),
        sa.Column("volume_type", sa.String(16), nullable=False),
        sa.Column("iops", sa.Integer, nullable=True),
        sa.Column("throughput", sa.Integer, nullable=True),
        sa.Column("availability_zone", sa.String(32), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("deleted_at", UtcDateTime(), nullable=True),
    )
    op.create_index("ix_volumes_volume_group_id", "volumes", ["volume_group_id"])
    op.create_table(
        "host_volumes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("volume_group_id", sa.Integer, sa.ForeignKey("volume_groups.id"), nullable=False),
        sa.Column("instance_id", Ec2Id(), sa.ForeignKey("hosts.instance_id"), nullable=False),
        sa.Column("mount_point", sa.String(255), nullable=True),
        sa.Column("automount", sa.Boolean, nullable=False, server_default="0"),
        sa.Column("block_device", sa.String(255), nullable=True),
        sa.Column("attached_at", UtcDateTime(), nullable=False),
        sa.UniqueConstraint("volume_group_id", name="uq_host_volumes_volume_group"),
    )
    op.create_index("ix_host_volumes_instance_mount", "host_volumes", ["instance_id", "mount_point"])


def downgrade():
    op.drop_table("host_volumes")
    op.drop_table("volumes")
    op.drop_table("volume_groups")

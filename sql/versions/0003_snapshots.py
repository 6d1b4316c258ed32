"""Snapshot schedules, snapshot groups and their snapshots.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from amslib.store.types import Ec2Id, UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "snapshot_schedules",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("resource_type", sa.String(16), nullable=False),
        sa.Column("hostname", sa.String(255), nullable=True),
        sa.Column("instance_id", Ec2Id(), nullable=True),
        sa.Column("volume_group_id", sa.Integer, sa.ForeignKey("volume_groups.id"), nullable=True),
        sa.Column("mount_point", sa.String(255), nullable=True),
        sa.Column("interval_hour", sa.Integer, nullable=False, server_default="1"),
        sa.Column("interval_day", sa.Integer, nullable=False, server_default="1"),
        sa.Column("interval_week", sa.Integer, nullable=False, server_default="1"),
        sa.Column("interval_month", sa.Integer, nullable=False, server_default="1"),
        sa.Column("retain_hourly", sa.Integer, nullable=False, server_default="24"),
        sa.Column("retain_daily", sa.Integer, nullable=False, server_default="14"),
        sa.Column("retain_weekly", sa.Integer, nullable=False, server_default="4"),
        sa.Column("retain_monthly", sa.Integer, nullable=False, server_default="12"),
        sa.Column("retain_yearly", sa.Integer, nullable=False, server_default="3"),
        sa.Column("pre_command", sa.Text, nullable=True),
        sa.Column("post_command", sa.Text, nullable=True),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("deleted_at", UtcDateTime(), nullable=True),
    )
    op.create_index(
        "ix_snapshot_schedules_resource", "snapshot_schedules", ["resource_type", "hostname", "instance_id"]
    )
    op.create_table(
        "snapshot_groups",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("volume_group_id", sa.Integer, sa.ForeignKey("volume_groups.id"), nullable=False),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("schedule_id", sa.Integer, sa.ForeignKey("snapshot_schedules.id"), nullable=True),
        sa.Column("copied_from_id", sa.Integer, sa.ForeignKey("snapshot_groups.id"), nullable=True),
        sa.Column("retention_kind", sa.String(8), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("deleted_at", UtcDateTime(), nullable=True),
    )
    op.create_index("ix_snapshot_groups_volume_group", "snapshot_groups", ["volume_group_id", "created_at"])
    op.create_table(
        "snapshots",
        sa.Column("snapshot_id", Ec2Id(), primary_key=True),
        sa.Column("snapshot_group_id", sa.Integer, sa.ForeignKey("snapshot_groups.id"), nullable=False),
        sa.Column("volume_id", Ec2Id(), nullable=False),
        sa.Column("member_index", sa.Integer, nullable=False),
        sa.Column("size_gib", sa.Integer, nullable=False),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("deleted_at", UtcDateTime(), nullable=True),
    )
    op.create_index("ix_snapshots_snapshot_group_id", "snapshots", ["snapshot_group_id"])
    op.create_index("ix_snapshots_expires_at", "snapshots", ["expires_at"])


def downgrade():
    op.drop_table("snapshots")
    op.drop_table("snapshot_groups")
    op.drop_table("snapshot_schedules")

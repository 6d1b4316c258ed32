"""Hosts and the config table.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from amslib.store.types import Ec2Id, UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "config",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=True),
    )
    op.create_table(
        "hosts",
        sa.Column("instance_id", Ec2Id(), primary_key=True),
        sa.Column("hostname", sa.String(255), nullable=True),
        sa.Column("hostname_source", sa.String(16), nullable=False, server_default="discovery"),
        sa.Column("name", sa.String(255), nullable=True),
        sa.Column("region", sa.String(32), nullable=True),
        sa.Column("availability_zone", sa.String(32), nullable=True),
        sa.Column("instance_type", sa.String(32), nullable=True),
        sa.Column("ami_id", Ec2Id(), nullable=True),
        sa.Column("hostname_internal", sa.String(255), nullable=True),
        sa.Column("hostname_external", sa.String(255), nullable=True),
        sa.Column("ip_internal", sa.String(45), nullable=True),
        sa.Column("ip_external", sa.String(45), nullable=True),
        sa.Column("vpc_id", Ec2Id(), nullable=True),
        sa.Column("subnet_id", Ec2Id(), nullable=True),
        sa.Column("state", sa.String(16), nullable=True),
        sa.Column("tags", sa.Text, nullable=True),
        sa.Column("notes", sa.Text, nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("discovered_at", UtcDateTime(), nullable=True),
        sa.Column("terminated_at", UtcDateTime(), nullable=True),
    )
    op.create_index("ix_hosts_hostname", "hosts", ["hostname"])
    op.create_index("ix_hosts_availability_zone", "hosts", ["availability_zone"])
    op.create_index("ix_hosts_region_state", "hosts", ["region", "state"])


def downgrade():
    op.drop_table("hosts")
    op.drop_table("config")

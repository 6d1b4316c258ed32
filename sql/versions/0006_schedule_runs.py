"""Schedule runs (the record of every run is its idempotency key), the freeze option of a
schedule, and a lease on snapshot groups being deleted.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

from amslib.store.types import UtcDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("snapshot_schedules") as batch:
        batch.add_column(sa.Column("freeze", sa.Boolean, nullable=False, server_default="0"))
        batch.add_column(sa.Column("updated_at", UtcDateTime(), nullable=True))
    with op.batch_alter_table("snapshot_groups") as batch:
        batch.add_column(sa.Column("lease_until", UtcDateTime(), nullable=True))
    op.create_table(
        "schedule_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("schedule_id", sa.Integer, sa.ForeignKey("snapshot_schedules.id"), nullable=False),
        sa.Column("slot", UtcDateTime(), nullable=True),
        sa.Column("manual", sa.Boolean, nullable=False, server_default="0"),
        sa.Column("tiers", sa.String(64), nullable=True),
        sa.Column("slot_hourly", UtcDateTime(), nullable=True),
        sa.Column("slot_daily", UtcDateTime(), nullable=True),
        sa.Column("slot_weekly", UtcDateTime(), nullable=True),
        sa.Column("slot_monthly", UtcDateTime(), nullable=True),
        sa.Column("slot_yearly", UtcDateTime(), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("snapshot_group_id", sa.Integer, sa.ForeignKey("snapshot_groups.id"), nullable=True),
        sa.Column("expires_at", UtcDateTime(), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("runner", sa.String(255), nullable=True),
        sa.Column("started_at", UtcDateTime(), nullable=False),
        sa.Column("finished_at", UtcDateTime(), nullable=True),
        sa.Column("lease_until", UtcDateTime(), nullable=True),
        sa.UniqueConstraint("schedule_id", "slot", name="uq_schedule_runs_slot"),
    )
    op.create_index("ix_schedule_runs_outcome", "schedule_runs", ["schedule_id", "outcome"])


def downgrade():
    op.drop_table("schedule_runs")
    with op.batch_alter_table("snapshot_groups") as batch:
        batch.drop_column("lease_until")
    with op.batch_alter_table("snapshot_schedules") as batch:
        batch.drop_column("updated_at")
        batch.drop_column("freeze")

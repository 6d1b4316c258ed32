"""The state database schema as SQLAlchemy Core tables (the version at head).

Migrations in ``sql/versions`` build this schema step by step; a test checks
that the migrated database and this metadata agree.  Deleted volume groups,
snapshot groups and schedules are kept as history: their ``deleted_at`` is set
instead of removing the row.
"""

from sqlalchemy import (
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from .types import Ec2Id, UtcDateTime

metadata = MetaData()

config = Table(
    "config",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=True),
)

hosts = Table(
    "hosts",
    metadata,
    Column("instance_id", Ec2Id(), primary_key=True),
    # the name ams uses to SSH to the host; set by `host add/edit` or by discovery
    Column("hostname", String(255), nullable=True),
    # 'user' when set by host add/edit (discovery never overwrites it), else 'discovery'
    Column("hostname_source", String(16), nullable=False, server_default="discovery"),
    Column("name", String(255), nullable=True),  # the Name tag
    Column("region", String(32), nullable=True),
    Column("availability_zone", String(32), nullable=True),
    Column("instance_type", String(32), nullable=True),
    Column("ami_id", Ec2Id(), nullable=True),
    Column("hostname_internal", String(255), nullable=True),
    Column("hostname_external", String(255), nullable=True),
    Column("ip_internal", String(45), nullable=True),
    Column("ip_external", String(45), nullable=True),
    Column("vpc_id", Ec2Id(), nullable=True),
    Column("subnet_id", Ec2Id(), nullable=True),
    Column("state", String(16), nullable=True),
    Column("tags", Text, nullable=True),  # JSON object of the instance tags
    Column("notes", Text, nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("discovered_at", UtcDateTime(), nullable=True),
    Column("terminated_at", UtcDateTime(), nullable=True),
    Index("ix_hosts_hostname", "hostname"),
    Index("ix_hosts_availability_zone", "availability_zone"),
    Index("ix_hosts_region_state", "region", "state"),
)

volume_groups = Table(
    "volume_groups",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("raid_level", Integer, nullable=True),  # None: a single EBS volume
    Column("stripe_block_size", Integer, nullable=True),  # KiB (mdadm --chunk)
    Column("fs_type", String(16), nullable=True),
    Column("region", String(32), nullable=False),
    Column("availability_zone", String(32), nullable=False),
    Column("tags", Text, nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("deleted_at", UtcDateTime(), nullable=True),
    # creating | available | failed (kept after a failed create) | deleted
    Column("state", String(16), nullable=False, server_default="available"),
    Column("array_name", String(64), nullable=True),  # md name: /dev/md/<array_name>
    Column("md_uuid", String(64), nullable=True),  # mdadm's array UUID (RAID only)
    Column("fs_uuid", String(64), nullable=True),  # the filesystem UUID (fstab uses it)
    # the snapshot group this group was cloned from (no foreign key: it may be deleted first)
    Column("cloned_from_id", Integer, nullable=True),
    # the lease of the ams changing the group now (amslib/store/group_locks.py); NULL when free
    Column("lock_owner", String(255), nullable=True),  # host:pid:token:command
    Column("lock_since", UtcDateTime(), nullable=True),
    Column("lock_until", UtcDateTime(), nullable=True),  # expired: the holder died; anyone may take it
    Index("ix_volume_groups_zone", "availability_zone"),
    Index("ix_volume_groups_deleted_at", "deleted_at"),
)

volumes = Table(
    "volumes",
    metadata,
    Column("volume_id", Ec2Id(), primary_key=True),
    Column("volume_group_id", Integer, ForeignKey("volume_groups.id"), nullable=False),
    Column("member_index", Integer, nullable=False),  # position in the RAID (mdadm device order)
    Column("size_gib", Integer, nullable=False),
    Column("volume_type", String(16), nullable=False),
    Column("iops", Integer, nullable=True),
    Column("throughput", Integer, nullable=True),
    Column("availability_zone", String(32), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("deleted_at", UtcDateTime(), nullable=True),
    Column("device_name", String(32), nullable=True),  # EC2 attachment device (/dev/sdf) when attached
    Column("encrypted", Boolean, nullable=False, server_default="0"),
    Column("kms_key_id", String(2048), nullable=True),
    Index("ix_volumes_volume_group_id", "volume_group_id"),
)

host_volumes = Table(
    "host_volumes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("volume_group_id", Integer, ForeignKey("volume_groups.id"), nullable=False),
    Column("instance_id", Ec2Id(), ForeignKey("hosts.instance_id"), nullable=False),
    Column("mount_point", String(255), nullable=True),
    Column("automount", Boolean, nullable=False, server_default="0"),
    Column("block_device", String(255), nullable=True),  # /dev/md/… or the by-id path
    Column("attached_at", UtcDateTime(), nullable=False),
    UniqueConstraint("volume_group_id", name="uq_host_volumes_volume_group"),
    # one group per mount point of a host (NULL mount points do not collide)
    Index("uq_host_volumes_instance_mount", "instance_id", "mount_point", unique=True),
)

snapshot_schedules = Table(
    "snapshot_schedules",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("resource_type", String(16), nullable=False),  # host | instance | volume
    Column("hostname", String(255), nullable=True),
    Column("instance_id", Ec2Id(), nullable=True),
    Column("volume_group_id", Integer, ForeignKey("volume_groups.id"), nullable=True),
    Column("mount_point", String(255), nullable=True),
    Column("interval_hour", Integer, nullable=False, server_default="1"),
    Column("interval_day", Integer, nullable=False, server_default="1"),
    Column("interval_week", Integer, nullable=False, server_default="1"),
    Column("interval_month", Integer, nullable=False, server_default="1"),
    Column("retain_hourly", Integer, nullable=False, server_default="24"),
    Column("retain_daily", Integer, nullable=False, server_default="14"),
    Column("retain_weekly", Integer, nullable=False, server_default="4"),
    Column("retain_monthly", Integer, nullable=False, server_default="12"),
    Column("retain_yearly", Integer, nullable=False, server_default="3"),
    Column("pre_command", Text, nullable=True),
    Column("post_command", Text, nullable=True),
    Column("description", Text, nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("deleted_at", UtcDateTime(), nullable=True),
    Column("freeze", Boolean, nullable=False, server_default="0"),
    Column("updated_at", UtcDateTime(), nullable=True),
    Index("ix_snapshot_schedules_resource", "resource_type", "hostname", "instance_id"),
)

snapshot_groups = Table(
    "snapshot_groups",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("volume_group_id", Integer, ForeignKey("volume_groups.id"), nullable=False),
    Column("region", String(32), nullable=False),
    Column("description", Text, nullable=True),
    Column("schedule_id", Integer, ForeignKey("snapshot_schedules.id"), nullable=True),
    Column("copied_from_id", Integer, ForeignKey("snapshot_groups.id"), nullable=True),
    Column("retention_kind", String(8), nullable=True),  # hourly|daily|weekly|monthly|yearly
    Column("created_at", UtcDateTime(), nullable=False),
    Column("deleted_at", UtcDateTime(), nullable=True),
    # pending | completed | error | failed | deleted
    Column("state", String(16), nullable=False, server_default="pending"),
    Column("expires_at", UtcDateTime(), nullable=True),  # None: kept until deleted by hand
    # the volume group's layout when the snapshot was taken: enough to restore without it
    Column("raid_level", Integer, nullable=True),
    Column("stripe_block_size", Integer, nullable=True),
    Column("fs_type", String(16), nullable=True),
    Column("array_name", String(64), nullable=True),
    Column("md_uuid", String(64), nullable=True),
    Column("fs_uuid", String(64), nullable=True),
    Column("member_count", Integer, nullable=False, server_default="0"),
    Column("source_instance_id", Ec2Id(), nullable=True),
    Column("source_hostname", String(255), nullable=True),
    Column("source_mount_point", String(255), nullable=True),
    Column("tags", Text, nullable=True),
    Column("lease_until", UtcDateTime(), nullable=True),  # while one ams deletes it (state deleting)
    Index("ix_snapshot_groups_volume_group", "volume_group_id", "created_at"),
    Index("ix_snapshot_groups_expires_at", "expires_at"),
    Index("ix_snapshot_groups_source", "source_hostname", "source_mount_point"),
)

snapshots = Table(
    "snapshots",
    metadata,
    Column("snapshot_id", Ec2Id(), primary_key=True),
    Column("snapshot_group_id", Integer, ForeignKey("snapshot_groups.id"), nullable=False),
    Column("volume_id", Ec2Id(), nullable=False),  # the source volume
    Column("member_index", Integer, nullable=False),
    Column("size_gib", Integer, nullable=False),
    Column("region", String(32), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=True),  # None: kept until deleted by hand
    Column("created_at", UtcDateTime(), nullable=False),
    Column("deleted_at", UtcDateTime(), nullable=True),
    Column("state", String(16), nullable=False, server_default="pending"),  # EC2's snapshot state
    Column("progress", Integer, nullable=True),  # percent, while pending
    # the source volume's settings, for a clone that keeps them
    Column("volume_type", String(16), nullable=True),
    Column("iops", Integer, nullable=True),
    Column("throughput", Integer, nullable=True),
    Column("encrypted", Boolean, nullable=False, server_default="0"),
    Column("source_snapshot_id", Ec2Id(), nullable=True),  # for a copy: the snapshot it was copied from
    Index("ix_snapshots_snapshot_group_id", "snapshot_group_id"),
    Index("ix_snapshots_expires_at", "expires_at"),
)

schedule_runs = Table(
    "schedule_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("schedule_id", Integer, ForeignKey("snapshot_schedules.id"), nullable=False),
    # the run's slot: its idempotency key (unique per schedule); NULL for runs asked for by hand
    Column("slot", UtcDateTime(), nullable=True),
    Column("manual", Boolean, nullable=False, server_default="0"),
    Column("tiers", String(64), nullable=True),  # the tiers served: "hourly,daily"
    # per tier, the slot start this run served (what the next runs count as taken)
    Column("slot_hourly", UtcDateTime(), nullable=True),
    Column("slot_daily", UtcDateTime(), nullable=True),
    Column("slot_weekly", UtcDateTime(), nullable=True),
    Column("slot_monthly", UtcDateTime(), nullable=True),
    Column("slot_yearly", UtcDateTime(), nullable=True),
    Column("outcome", String(16), nullable=False),  # running | succeeded | failed
    Column("snapshot_group_id", Integer, ForeignKey("snapshot_groups.id"), nullable=True),
    Column("expires_at", UtcDateTime(), nullable=True),
    Column("error", Text, nullable=True),
    Column("runner", String(255), nullable=True),  # host:pid of the ams that ran it
    Column("started_at", UtcDateTime(), nullable=False),
    Column("finished_at", UtcDateTime(), nullable=True),
    Column("lease_until", UtcDateTime(), nullable=True),  # a running run older than this was abandoned
    UniqueConstraint("schedule_id", "slot", name="uq_schedule_runs_slot"),
    Index("ix_schedule_runs_outcome", "schedule_id", "outcome"),
)

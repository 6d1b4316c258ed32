"""Queries on volume groups, their member volumes and where they are attached.

Every write is a short transaction of its own, made by the service after the EC2 call or host
command it records has really happened (or, for a new group, before its volumes are created so
that their ``ams:volume-group-id`` tag has a value).  ``host_volumes`` holds a group's current
attachment only; a unique index allows one group per mount point of a host.
"""

from sqlalchemy import and_, func, select, update

from .hosts import match_clause
from .schema import host_volumes, hosts, volume_groups, volumes


def insert_group(conn, values):
    """Insert a volume group row; return its id."""
    result = conn.execute(volume_groups.insert().values(**values))
    return result.inserted_primary_key[0]


def next_group_id(conn):
    """The id the next group would probably get (for --dry-run output only)."""
    return (conn.execute(select(func.max(volume_groups.c.id))).scalar() or 0) + 1


def update_group(conn, group_id, values):
    conn.execute(update(volume_groups).where(volume_groups.c.id == group_id).values(**values))


def get_group(conn, group_id):
    row = conn.execute(select(volume_groups).where(volume_groups.c.id == group_id)).mappings().first()
    return dict(row) if row else None


def insert_volumes(conn, rows):
    if rows:
        conn.execute(volumes.insert(), rows)


def update_volume(conn, volume_id, values):
    conn.execute(update(volumes).where(volumes.c.volume_id == volume_id).values(**values))


def members(conn, group_id, include_deleted=False):
    """The group's volumes in RAID member order."""
    query = select(volumes).where(volumes.c.volume_group_id == group_id)
    if not include_deleted:
        query = query.where(volumes.c.deleted_at.is_(None))
    return [dict(r) for r in conn.execute(query.order_by(volumes.c.member_index)).mappings()]


def mark_volumes_deleted(conn, volume_ids, now):
    if volume_ids:
        conn.execute(
            update(volumes).where(volumes.c.volume_id.in_(sorted(volume_ids))).values(deleted_at=now, device_name=None)
        )


def attachment(conn, group_id):
    """The group's attachment joined with its host (hostname, zone, state), or None."""
    query = (
        select(host_volumes, hosts.c.hostname, hosts.c.availability_zone, hosts.c.region, hosts.c.state)
        .join(hosts, hosts.c.instance_id == host_volumes.c.instance_id)
        .where(host_volumes.c.volume_group_id == group_id)
    )
    row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def attachment_at(conn, instance_id, mount_point):
    """The attachment that uses ``mount_point`` on ``instance_id``, or None."""
    query = select(host_volumes).where(
        and_(host_volumes.c.instance_id == instance_id, host_volumes.c.mount_point == mount_point)
    )
    row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def insert_attachment(conn, values):
    conn.execute(host_volumes.insert().values(**values))


def update_attachment(conn, group_id, values):
    conn.execute(update(host_volumes).where(host_volumes.c.volume_group_id == group_id).values(**values))


def delete_attachment(conn, group_id):
    conn.execute(host_volumes.delete().where(host_volumes.c.volume_group_id == group_id))


def device_names_in_use(conn, instance_id):
    """EC2 device names that ams recorded for volumes attached to ``instance_id``."""
    query = (
        select(volumes.c.device_name)
        .join(host_volumes, host_volumes.c.volume_group_id == volumes.c.volume_group_id)
        .where(host_volumes.c.instance_id == instance_id)
        .where(volumes.c.device_name.is_not(None))
        .where(volumes.c.deleted_at.is_(None))
    )
    return {row[0] for row in conn.execute(query)}


def list_groups(conn, field=None, *, exact=None, like=None, prefix=None, zone=None, include_deleted=False):
    """Rows for ``volume list``: one per group with its members summarised and its attachment.

    ``field`` is None, 'hostname' or 'instance_id' (matching as for ``host list``); a group
    that is attached nowhere only appears when ``field`` is None.
    """
    summary = (
        select(
            volumes.c.volume_group_id.label("gid"),
            func.count().label("members"),
            func.sum(volumes.c.size_gib).label("total_gib"),
            func.min(volumes.c.size_gib).label("size_gib"),
            func.min(volumes.c.volume_type).label("volume_type"),
            func.min(volumes.c.iops).label("iops"),
            func.min(volumes.c.throughput).label("throughput"),
        )
        .where(volumes.c.deleted_at.is_(None))
        .group_by(volumes.c.volume_group_id)
        .subquery()
    )
    query = (
        select(
            volume_groups.c.id.label("volume_group_id"),
            volume_groups.c.raid_level,
            volume_groups.c.stripe_block_size,
            volume_groups.c.fs_type,
            volume_groups.c.availability_zone,
            volume_groups.c.state,
            volume_groups.c.created_at,
            summary.c.members,
            summary.c.size_gib,
            summary.c.total_gib,
            summary.c.volume_type,
            summary.c.iops,
            summary.c.throughput,
            host_volumes.c.instance_id,
            hosts.c.hostname,
            host_volumes.c.mount_point,
            host_volumes.c.block_device,
            host_volumes.c.automount,
        )
        .select_from(volume_groups)
        .outerjoin(summary, summary.c.gid == volume_groups.c.id)
        .outerjoin(host_volumes, host_volumes.c.volume_group_id == volume_groups.c.id)
        .outerjoin(hosts, hosts.c.instance_id == host_volumes.c.instance_id)
    )
    if not include_deleted:
        query = query.where(volume_groups.c.deleted_at.is_(None))
    if field is not None:
        column = hosts.c.hostname if field == "hostname" else host_volumes.c.instance_id
        query = query.where(host_volumes.c.instance_id.is_not(None))
        clause = match_clause(column, exact=exact, like=like, prefix=prefix)
        if clause is not None:
            query = query.where(clause)
    if zone is not None:
        query = query.where(match_clause(volume_groups.c.availability_zone, prefix=zone))
    query = query.order_by(volume_groups.c.id)
    return [dict(row) for row in conn.execute(query).mappings()]

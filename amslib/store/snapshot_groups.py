"""Queries on snapshot groups and their snapshots.

A snapshot group row is written before its snapshots are started (their ``ams:snapshot-group-id``
tag needs the id) with state ``pending``; each snapshot row once EC2 has accepted it.  A group
is ``completed`` when every member is; ``deleted`` groups stay as history.
"""

from sqlalchemy import and_, func, or_, select, update

from .hosts import IN_CHUNK, chunks, match_clause
from .schema import snapshot_groups, snapshots

LIVE_STATES = ("pending", "completed")


def insert_group(conn, values):
    return conn.execute(snapshot_groups.insert().values(**values)).inserted_primary_key[0]


def update_group(conn, group_id, values):
    conn.execute(update(snapshot_groups).where(snapshot_groups.c.id == group_id).values(**values))


def get_group(conn, group_id):
    row = conn.execute(select(snapshot_groups).where(snapshot_groups.c.id == group_id)).mappings().first()
    return dict(row) if row else None


def insert_snapshots(conn, rows):
    if rows:
        conn.execute(snapshots.insert(), rows)


def insert_new_snapshots(conn, group_id, rows):
    """Insert the rows of group ``group_id``'s snapshots that it does not have yet: a discovery
    run may have recorded some of them from their tags first (``snapshot copy`` holds no lock)."""
    ids = [r["snapshot_id"] for r in rows]
    known = set(conn.execute(select(snapshots.c.snapshot_id).where(
        snapshots.c.snapshot_group_id == group_id, snapshots.c.snapshot_id.in_(ids))).scalars()) if ids else set()
    insert_snapshots(conn, [r for r in rows if r["snapshot_id"] not in known])


def update_snapshot(conn, snapshot_id, values):
    conn.execute(update(snapshots).where(snapshots.c.snapshot_id == snapshot_id).values(**values))


def members(conn, group_id, include_deleted=False):
    query = select(snapshots).where(snapshots.c.snapshot_group_id == group_id)
    if not include_deleted:
        query = query.where(snapshots.c.deleted_at.is_(None))
    return [dict(r) for r in conn.execute(query.order_by(snapshots.c.member_index)).mappings()]


def members_of_groups(conn, groups):
    """[(group, its live members)] for each of ``groups``, in one query."""
    by_group = {g["id"]: [] for g in groups}
    for ids in chunks(by_group, IN_CHUNK):
        query = (select(snapshots).where(snapshots.c.snapshot_group_id.in_(ids))
                 .where(snapshots.c.deleted_at.is_(None)).order_by(snapshots.c.member_index))
        for row in conn.execute(query).mappings():
            by_group[row["snapshot_group_id"]].append(dict(row))
    return [(g, by_group[g["id"]]) for g in groups]


def mark_snapshots_deleted(conn, snapshot_ids, now):
    if snapshot_ids:
        conn.execute(update(snapshots).where(snapshots.c.snapshot_id.in_(sorted(snapshot_ids)))
                     .values(deleted_at=now, state="deleted"))


def mark_group_deleted(conn, group_id, now):
    update_group(conn, group_id, {"deleted_at": now, "state": "deleted"})


def copy_in_region(conn, group_id, region):
    """A live copy of ``group_id`` in ``region`` (newest first), or None."""
    query = (
        select(snapshot_groups)
        .where(snapshot_groups.c.copied_from_id == group_id)
        .where(snapshot_groups.c.region == region)
        .where(snapshot_groups.c.deleted_at.is_(None))
        .where(snapshot_groups.c.state.in_(LIVE_STATES))
        .order_by(snapshot_groups.c.id.desc())
    )
    row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def _filtered(query, *, volume_group_id=None, host_field=None, exact=None, like=None, prefix=None,
              mount_point=None, region=None, include_deleted=False):
    if not include_deleted:
        query = query.where(snapshot_groups.c.deleted_at.is_(None))
    if volume_group_id is not None:
        query = query.where(snapshot_groups.c.volume_group_id == volume_group_id)
    if host_field is not None:
        column = snapshot_groups.c.source_hostname if host_field == "hostname" else snapshot_groups.c.source_instance_id
        query = query.where(column.is_not(None))
        clause = match_clause(column, exact=exact, like=like, prefix=prefix)
        if clause is not None:
            query = query.where(clause)
    if mount_point is not None:
        query = query.where(snapshot_groups.c.source_mount_point == mount_point)
    if region is not None:
        query = query.where(snapshot_groups.c.region == region)
    return query


def list_groups(conn, **filters):
    """Snapshot groups (newest first) with their member count and least progress."""
    summary = (
        select(snapshots.c.snapshot_group_id.label("gid"), func.count().label("members"),
               func.min(snapshots.c.progress).label("progress"))
        .where(snapshots.c.deleted_at.is_(None))
        .group_by(snapshots.c.snapshot_group_id)
        .subquery()
    )
    query = (
        select(snapshot_groups, summary.c.members, summary.c.progress)
        .select_from(snapshot_groups)
        .outerjoin(summary, summary.c.gid == snapshot_groups.c.id)
    )
    query = _filtered(query, **filters).order_by(snapshot_groups.c.created_at.desc(), snapshot_groups.c.id.desc())
    return [dict(r) for r in conn.execute(query).mappings()]


def latest(conn, *, states=LIVE_STATES, **filters):
    """The newest live snapshot group matching ``filters`` (originals, not copies), or None."""
    query = _filtered(select(snapshot_groups), **filters).where(snapshot_groups.c.state.in_(states))
    query = query.where(snapshot_groups.c.copied_from_id.is_(None))
    query = query.order_by(snapshot_groups.c.created_at.desc(), snapshot_groups.c.id.desc())
    row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def expired(conn, now):
    """Live groups whose expiry has passed, oldest first."""
    query = (
        select(snapshot_groups)
        .where(and_(snapshot_groups.c.expires_at.is_not(None), snapshot_groups.c.expires_at <= now))
        .where(snapshot_groups.c.deleted_at.is_(None))
        .order_by(snapshot_groups.c.expires_at, snapshot_groups.c.id)
    )
    return [dict(r) for r in conn.execute(query).mappings()]


def pending_groups(conn, group_ids=None):
    query = select(snapshot_groups).where(snapshot_groups.c.state == "pending").where(snapshot_groups.c.deleted_at.is_(None))
    if group_ids is not None:
        query = query.where(snapshot_groups.c.id.in_(sorted(group_ids)))
    return [dict(r) for r in conn.execute(query).mappings()]


def claim_for_delete(conn, group_id, now, lease_until):
    """Mark a live snapshot group as being deleted by this ams (state ``deleting`` until
    ``lease_until``); False when another ams is deleting it and its lease has not passed."""
    result = conn.execute(
        update(snapshot_groups)
        .where(snapshot_groups.c.id == group_id)
        .where(snapshot_groups.c.deleted_at.is_(None))
        .where(or_(snapshot_groups.c.state != "deleting", snapshot_groups.c.lease_until < now))
        .values(state="deleting", lease_until=lease_until)
    )
    return result.rowcount == 1


def release_delete_claim(conn, group_id, state):
    update_group(conn, group_id, {"state": state, "lease_until": None})

"""Queries on snapshot schedules and their runs.

The run record is the idempotency key of a scheduled run: :func:`claim_slot` inserts
(schedule, slot) and a unique constraint lets exactly one of several racing ams processes have
it; a failed or abandoned run of the same slot is taken over by a conditional UPDATE, which is
atomic on MariaDB and on SQLite alike.
"""

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from .hosts import match_clause
from .schema import schedule_runs, snapshot_groups, snapshot_schedules

TIER_COLUMNS = {"hourly": "slot_hourly", "daily": "slot_daily", "weekly": "slot_weekly",
                "monthly": "slot_monthly", "yearly": "slot_yearly"}


def insert_schedule(conn, values):
    return conn.execute(snapshot_schedules.insert().values(**values)).inserted_primary_key[0]


def update_schedule(conn, schedule_id, values):
    conn.execute(update(snapshot_schedules).where(snapshot_schedules.c.id == schedule_id).values(**values))


def get_schedule(conn, schedule_id):
    row = conn.execute(select(snapshot_schedules).where(snapshot_schedules.c.id == schedule_id)).mappings().first()
    return dict(row) if row else None


def list_schedules(conn, resource_type=None, *, exact=None, like=None, prefix=None, include_deleted=False):
    query = select(snapshot_schedules)
    if not include_deleted:
        query = query.where(snapshot_schedules.c.deleted_at.is_(None))
    if resource_type is not None:
        column = {"host": snapshot_schedules.c.hostname, "instance": snapshot_schedules.c.instance_id,
                  "volume": snapshot_schedules.c.volume_group_id}[resource_type]
        query = query.where(snapshot_schedules.c.resource_type == resource_type)
        if resource_type == "volume":
            if exact is not None:
                query = query.where(column == int(exact))
        else:
            clause = match_clause(column, exact=exact, like=like, prefix=prefix)
            if clause is not None:
                query = query.where(clause)
    return [dict(r) for r in conn.execute(query.order_by(snapshot_schedules.c.id)).mappings()]


def taken_slots(conn, schedule_ids):
    """{schedule id: {tier: latest slot start a succeeded run served}} in one query."""
    columns = [func.max(schedule_runs.c[col]).label(tier) for tier, col in TIER_COLUMNS.items()]
    query = (select(schedule_runs.c.schedule_id, *columns)
             .where(schedule_runs.c.outcome == "succeeded")
             .where(schedule_runs.c.schedule_id.in_(sorted(schedule_ids)))
             .group_by(schedule_runs.c.schedule_id))
    out = {sid: {} for sid in schedule_ids}
    for row in conn.execute(query).mappings():
        out[row["schedule_id"]] = {tier: row[tier] for tier in TIER_COLUMNS if row[tier] is not None}
    return out


def last_runs(conn, schedule_ids):
    """{schedule id: its newest run record}."""
    newest = (select(schedule_runs.c.schedule_id, func.max(schedule_runs.c.id).label("rid"))
              .where(schedule_runs.c.schedule_id.in_(sorted(schedule_ids)))
              .group_by(schedule_runs.c.schedule_id).subquery())
    query = select(schedule_runs).join(newest, newest.c.rid == schedule_runs.c.id)
    return {row["schedule_id"]: dict(row) for row in conn.execute(query).mappings()}


def claim_slot(conn, values, now, lease_until):
    """Insert the run record of (schedule, slot); return its id, or None when another run has it.

    A failed run of the slot, or a running one whose lease has passed (its ams died), is taken
    over instead (conditional UPDATE: exactly one claimant wins).
    """
    try:
        with conn.begin_nested():
            return conn.execute(schedule_runs.insert().values(**values)).inserted_primary_key[0]
    except IntegrityError:
        pass
    where = and_(
        schedule_runs.c.schedule_id == values["schedule_id"], schedule_runs.c.slot == values["slot"],
        or_(schedule_runs.c.outcome == "failed",
            and_(schedule_runs.c.outcome == "running", schedule_runs.c.lease_until < now)),
    )
    taken_over = {k: v for k, v in values.items() if k not in ("schedule_id", "slot")}
    result = conn.execute(update(schedule_runs).where(where).values(**taken_over, error=None, finished_at=None,
                                                                     snapshot_group_id=None))
    if result.rowcount != 1:
        return None
    return conn.execute(select(schedule_runs.c.id).where(schedule_runs.c.schedule_id == values["schedule_id"])
                        .where(schedule_runs.c.slot == values["slot"])).scalar()


def insert_run(conn, values):
    return conn.execute(schedule_runs.insert().values(**values)).inserted_primary_key[0]


def finish_run(conn, run_id, values):
    conn.execute(update(schedule_runs).where(schedule_runs.c.id == run_id).values(**values))


def newest_succeeded_groups(conn):
    """{schedule id: id of its newest live snapshot group from a succeeded run} (never purged)."""
    query = (select(schedule_runs.c.schedule_id, func.max(schedule_runs.c.snapshot_group_id).label("gid"))
             .join(snapshot_groups, snapshot_groups.c.id == schedule_runs.c.snapshot_group_id)
             .where(schedule_runs.c.outcome == "succeeded")
             .where(snapshot_groups.c.deleted_at.is_(None))
             .group_by(schedule_runs.c.schedule_id))
    return {row.schedule_id: row.gid for row in conn.execute(query)}

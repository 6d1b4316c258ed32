"""Snapshot schedules: add, edit, delete, list, and run (with purge), made for an hourly cron.

A schedule names what to snapshot: a host and mount point (whatever group is mounted there at
run time, even after the instance or the group changed), an instance and mount point, or a
volume group.  ``run`` plans each schedule with :mod:`amslib.schedule.slots`, claims the run's
slot in the database (the record is the idempotency key: racing runs on several cron hosts
snapshot a slot once), snapshots through :func:`amslib.ebs.snapshot_service.take`, and records
the outcome.  Due schedules run concurrently (SCHEDULE_WORKERS); one failing schedule does not
stop the others.  ``--purge`` then deletes expired snapshot groups, except the newest successful
group of each schedule, so a schedule that keeps failing never purges itself to nothing.
"""

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from ..core.errors import AmsError, ConflictError, NotFoundError, UsageError
from ..instance.validation import check_row_id
from ..store import schedules as store
from ..store.types import utcnow
from . import slots

log = logging.getLogger("ams.schedule")

RESOURCE_TYPES = ("host", "instance", "volume")
RUN_LEASE = timedelta(hours=2)  # a run still "running" after this was abandoned (its ams died)
SINGLE_INTERVALS = ("int_hour", "int_day", "int_week", "int_month")
SINGLE_RETENTIONS = ("ret_hour", "ret_day", "ret_week", "ret_month", "ret_year")
INTERVAL_COLUMNS = ("interval_hour", "interval_day", "interval_week", "interval_month")
RETENTION_COLUMNS = ("retain_hourly", "retain_daily", "retain_weekly", "retain_monthly", "retain_yearly")


def check_schedule_id(text):
    return check_row_id(text, "schedule id")


def settings_of(row):
    return slots.ScheduleSettings(tuple(row[c] for c in INTERVAL_COLUMNS), tuple(row[c] for c in RETENTION_COLUMNS))


def _resolve_settings(base_intervals, base_retentions, *, intervals=None, retentions=None, singles=None):
    """(intervals, retentions): ``intervals``/``retentions`` (all values) win over the singles."""
    singles = singles or {}
    new_intervals = list(base_intervals)
    new_retentions = list(base_retentions)
    if intervals is not None:
        new_intervals = list(intervals)
    else:
        for i, name in enumerate(SINGLE_INTERVALS):
            if singles.get(name) is not None:
                new_intervals[i] = singles[name]
    if retentions is not None:
        new_retentions = list(retentions)
    else:
        for i, name in enumerate(SINGLE_RETENTIONS):
            if singles.get(name) is not None:
                new_retentions[i] = singles[name]
    settings = slots.check_settings(new_intervals, new_retentions)
    return settings.intervals, settings.retentions


def _check_text(pre, post, description):
    from ..ebs.snapshot_service import check_description
    from ..hostdisk.freeze import check_hook

    return (check_hook(pre, name="--pre hook") if pre is not None else None,
            check_hook(post, name="--post hook") if post is not None else None,
            check_description(description))


def _row_values(intervals, retentions):
    values = dict(zip(INTERVAL_COLUMNS, intervals))
    values.update(zip(RETENTION_COLUMNS, retentions))
    return values


# ---------------------------------------------------------------------------------------------
# add / edit / delete / list

def add(ctx, *, resource_type, resource, mount_point=None, intervals=None, retentions=None, singles=None,
        pre=None, post=None, description=None, freeze=False, dry_run=False):
    from ..ebs import volume_service
    from ..hostdisk.mountpoint import check_mount_point
    from ..instance.validation import check_hostname, check_instance_id

    intervals, retentions = _resolve_settings(slots.DEFAULT_INTERVALS, slots.DEFAULT_RETENTIONS,
                                              intervals=intervals, retentions=retentions, singles=singles)
    pre, post, description = _check_text(pre, post, description)
    values = {"resource_type": resource_type, "pre_command": pre, "post_command": post,
              "description": description, "freeze": bool(freeze)}
    values.update(_row_values(intervals, retentions))
    engine = ctx.engine()
    with engine.connect() as conn:
        if resource_type == "volume":
            group_id = volume_service.check_group_id(resource)
            _, _, attachment = volume_service.load_group(conn, group_id)
            values["volume_group_id"] = group_id
            if freeze:
                _check_freeze_of_group(group_id, attachment)
        else:
            values["mount_point"] = check_mount_point(mount_point)
            if resource_type == "host":
                values["hostname"] = check_hostname(resource)
                volume_service.resolve_target(conn, host=values["hostname"])  # it exists, unambiguously
            else:
                values["instance_id"] = check_instance_id(resource)
                volume_service.resolve_target(conn, instance=values["instance_id"])
            if freeze:
                from ..hostdisk.freeze import check_freezable

                check_freezable(values["mount_point"])
    if dry_run:
        return {"dry_run": True, "schedule_id": None, "schedule": values}
    now = utcnow()
    values.update(created_at=now, updated_at=now)
    with engine.begin() as conn:
        schedule_id = store.insert_schedule(conn, values)
    return {"dry_run": False, "schedule_id": schedule_id, "schedule": values}


def _check_freeze_of_group(group_id, attachment):
    """--freeze on a volume schedule: the group must be mounted somewhere now (a schedule of a
    group attached nowhere is fine, and snapshots it as it is, but it has nothing to freeze)."""
    from ..hostdisk.freeze import check_freezable

    if attachment is None or not attachment["mount_point"]:
        where = "is attached nowhere" if attachment is None else f"has no mount point on {attachment['hostname']}"
        raise ConflictError(f"--freeze: volume group {group_id} {where}; freezing needs its filesystem mounted "
                            "(mount it first, or schedule it without --freeze)")
    check_freezable(attachment["mount_point"])


def _load(conn, schedule_id):
    row = store.get_schedule(conn, schedule_id)
    if row is None or row["deleted_at"] is not None:
        raise NotFoundError(f"snapshot schedule {schedule_id} not found" + (" (it was deleted)" if row else ""))
    return row


def edit(ctx, *, schedule_id, intervals=None, retentions=None, singles=None, pre=None, post=None,
         description=None, freeze=None, dry_run=False):
    schedule_id = check_schedule_id(schedule_id)
    engine = ctx.engine()
    with engine.connect() as conn:
        row = _load(conn, schedule_id)
    new_intervals, new_retentions = _resolve_settings(
        tuple(row[c] for c in INTERVAL_COLUMNS), tuple(row[c] for c in RETENTION_COLUMNS),
        intervals=intervals, retentions=retentions, singles=singles)
    pre, post, description = _check_text(pre, post, description)
    values = _row_values(new_intervals, new_retentions)
    for column, value in (("pre_command", pre), ("post_command", post), ("description", description), ("freeze", freeze)):
        if value is not None:
            values[column] = value
    changes = {k: (row[k], v) for k, v in values.items() if row[k] != v}
    if not changes:
        raise UsageError(f"nothing to change in schedule {schedule_id}: give a new value (see 'ams snapshot schedule edit -h')")
    if changes.get("freeze", (None, False))[1] and row["resource_type"] == "volume":
        from ..ebs import volume_service

        with engine.connect() as conn:
            _, _, attachment = volume_service.load_group(conn, row["volume_group_id"])
        _check_freeze_of_group(row["volume_group_id"], attachment)
    if not dry_run:
        with engine.begin() as conn:
            store.update_schedule(conn, schedule_id, {**{k: v for k, (_, v) in changes.items()}, "updated_at": utcnow()})
    return {"dry_run": dry_run, "schedule_id": schedule_id,
            "changes": {k: {"old": old, "new": new} for k, (old, new) in changes.items()}}


def delete(ctx, *, schedule_id, dry_run=False):
    schedule_id = check_schedule_id(schedule_id)
    engine = ctx.engine()
    with engine.connect() as conn:
        _load(conn, schedule_id)
    if not dry_run:
        with engine.begin() as conn:
            store.update_schedule(conn, schedule_id, {"deleted_at": utcnow(), "updated_at": utcnow()})
    return {"dry_run": dry_run, "schedule_id": schedule_id}


def list_schedules(ctx, *, resource_type=None, exact=None, like=None, prefix=None):
    now = utcnow()
    with ctx.engine().connect() as conn:
        if resource_type == "volume" and exact is not None:
            from ..ebs.volume_service import require_group_row

            require_group_row(conn, int(exact))
        rows = store.list_schedules(conn, resource_type, exact=exact, like=like, prefix=prefix)
        ids = [r["id"] for r in rows]
        taken = store.taken_slots(conn, ids) if ids else {}
        last = store.last_runs(conn, ids) if ids else {}
    out = []
    for row in rows:
        settings = settings_of(row)
        run = last.get(row["id"])
        out.append(dict(row, schedule_id=row["id"], next_due=slots.next_due(settings, now, taken.get(row["id"])),
                        last_run=run["started_at"] if run else None, last_outcome=run["outcome"] if run else None,
                        last_snapshot_group_id=run["snapshot_group_id"] if run else None))
    return out


# ---------------------------------------------------------------------------------------------
# run

def _source(conn, row):
    """(volume group, members, attachment) the schedule snapshots now."""
    from ..ebs import snapshot_service

    if row["resource_type"] == "volume":
        return snapshot_service.source_volume_group(conn, group_id=row["volume_group_id"])
    if row["resource_type"] == "host":
        return snapshot_service.source_volume_group(conn, host=row["hostname"], mount_point=row["mount_point"])
    return snapshot_service.source_volume_group(conn, instance=row["instance_id"], mount_point=row["mount_point"])


def _runner():
    from ..store.group_locks import this_process

    return this_process()


def run(ctx, *, schedule_id=None, purge=False, dry_run=False):
    """Run one schedule now (``schedule_id``) or every due one; with ``purge``, delete the
    expired groups at the same time (the two share nothing: the groups a run takes expire in
    the future, and each schedule's newest successful group as of the start is spared).

    Returns {"runs": [...], "purge": [...], "now": …}; the CLI exits non-zero when a run failed.
    """
    now = utcnow()
    engine = ctx.engine()
    with engine.connect() as conn:
        if schedule_id is not None:
            rows = [_load(conn, check_schedule_id(schedule_id))]
        else:
            rows = store.list_schedules(conn)
        taken = store.taken_slots(conn, [r["id"] for r in rows]) if rows else {}
        keep = frozenset(store.newest_succeeded_groups(conn).values()) if purge else frozenset()
    plans = []
    for row in rows:
        settings = settings_of(row)
        if schedule_id is not None:
            plan = slots.plan_manual_run(settings, now, taken.get(row["id"]))
        else:
            plan = slots.plan_run(settings, now, taken.get(row["id"]))
        if plan.clock_behind:
            ctx.out.warning(f"schedule {row['id']}: the clock is behind its last run; nothing is taken until "
                            f"{slots.next_due(settings, now, taken.get(row['id'])):%Y-%m-%d %H:%M}Z")
        plans.append((row, plan))
    due = [(row, plan) for row, plan in plans if plan.takes]
    if dry_run:
        runs = [_describe_run(row, plan, "would take") for row, plan in due]
        purged = _purge(ctx, now, True, keep) if purge else []
    else:
        ctx.prepare_for_threads()
        workers = max(1, min(ctx.settings.SCHEDULE_WORKERS, len(due) or 1))
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ams-purge") as purger, \
                ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ams-schedule") as pool:
            purging = purger.submit(_purge, ctx, now, False, keep) if purge else None
            runs = list(pool.map(lambda item: _run_one(ctx, engine, *item), due))
            purged = purging.result() if purging is not None else []
    return {"now": now, "dry_run": dry_run, "runs": runs, "purge": purged,
            "schedules": len(rows), "due": len(due)}


def _describe_run(row, plan, outcome):
    return {"schedule_id": row["id"], "outcome": outcome, "tiers": list(plan.due) if not plan.manual else ["manual"],
            "slot": plan.slot, "expires_at": plan.expiry, "snapshot_group_id": None, "error": None,
            "skipped_slots": {t: n for t, n in (plan.skipped or {}).items() if n}}


def _run_one(ctx, engine, row, plan):
    from ..ebs import snapshot_service

    result = _describe_run(row, plan, "running")
    now = utcnow()
    values = {"schedule_id": row["id"], "slot": plan.slot, "manual": plan.manual,
              "tiers": ",".join(plan.due) if plan.due else None, "outcome": "running",
              "expires_at": plan.expiry, "runner": _runner(), "started_at": now, "lease_until": now + RUN_LEASE}
    for tier, start in plan.slots.items():
        values[store.TIER_COLUMNS[tier]] = start
    with engine.begin() as conn:
        if plan.manual:
            run_id = store.insert_run(conn, values)
        else:
            run_id = store.claim_slot(conn, values, now, now + RUN_LEASE)
    if run_id is None:
        result["outcome"] = "skipped"
        result["error"] = "another ams has this slot"
        return result
    try:
        with engine.connect() as conn:
            vg, members, attachment = _source(conn, row)
        taken = snapshot_service.take(
            ctx, vg, members, attachment, pre=row["pre_command"], post=row["post_command"],
            description=row["description"], freeze=row["freeze"], user_tags={}, wait=False, dry_run=False,
            expires_at=plan.expiry, schedule_id=row["id"], retention_kind=_retention_kind(plan),
            command=f"snapshot schedule run (schedule {row['id']})",
        )
    except Exception as exc:  # recorded and reported; the other schedules go on
        message = _one_line(exc)
        log.debug("schedule %s failed", row["id"], exc_info=True)
        with engine.begin() as conn:
            store.finish_run(conn, run_id, {"outcome": "failed", "error": message[:4000], "finished_at": utcnow(),
                                            "lease_until": None})
        result.update(outcome="failed", error=message, exit_code=getattr(exc, "exit_code", 1))
        return result
    with engine.begin() as conn:
        store.finish_run(conn, run_id, {"outcome": "succeeded", "snapshot_group_id": taken["snapshot_group_id"],
                                        "finished_at": utcnow(), "lease_until": None})
    result.update(outcome="succeeded", snapshot_group_id=taken["snapshot_group_id"])
    return result


def _retention_kind(plan):
    """The tier whose retention decides the group's expiry (the run record keeps every tier)."""
    if plan.manual or not plan.expiries:
        return "manual"
    return max(plan.expiries, key=lambda tier: (plan.expiries[tier], slots.TIERS.index(tier)))


def _one_line(exc):
    """A run's failure as one line (a database error as the driver's own words)."""
    if isinstance(exc, AmsError):
        return " ".join(str(exc).split())
    from sqlalchemy.exc import DBAPIError

    if isinstance(exc, DBAPIError):
        from ..store.db import driver_error_detail

        return f"database error: {driver_error_detail(exc)}"
    return " ".join(f"unexpected {exc.__class__.__name__}: {exc}".split())


def _purge(ctx, now, dry_run, keep):
    """Delete the expired snapshot groups except ``keep`` (each schedule's newest successful one)."""
    from ..ebs import snapshot_service

    return snapshot_service.delete_expired(ctx, now=now, dry_run=dry_run, keep=keep)


def failures(result):
    return [r for r in result["runs"] if r["outcome"] == "failed"]


def raise_for_failures(result):
    failed = failures(result)
    refused = [p for p in result["purge"] if p.get("refused")]
    if not failed and not refused:
        return
    parts = []
    if failed:
        parts.append(f"{len(failed)} of {len(result['runs'])} schedule run(s) failed: "
                     + "; ".join(f"schedule {r['schedule_id']}: {r['error']}" for r in failed))
    if refused:
        parts.append(f"{len(refused)} expired snapshot group(s) could not be deleted: "
                     + ", ".join(str(p["snapshot_group_id"]) for p in refused))
    error = ConflictError("; ".join(parts))
    if failed:
        error.exit_code = failed[0].get("exit_code", 1)
    raise error

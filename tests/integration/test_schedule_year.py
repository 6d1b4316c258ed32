"""A year of hourly `schedule run --purge` against the rig's EC2 endpoint, checked against an
independent reference of issue 10's rules (kept apart from test_schedules.py: it takes minutes)."""

import os
import random
import time
from datetime import timedelta

import pytest

from tests.integration.test_schedules import (  # noqa: F401 - rig, clock and shm_sqlite_url are fixtures
    HOUR, TIERS, add_schedule, assert_ec2_matches_database, assert_one_group_per_slot, clock, db_rows, engine_of,
    make_volume_group, ok, rig, run_json, shm_sqlite_url, utc)


# ---------------------------------------------------------------------------------------------
# the reference: which run takes a snapshot group and when that group expires, from the rules
# of issue 10 alone (units counted from the epoch, ISO weeks from Monday 1970-01-05, calendar
# months and years, the latest expiry of the due tiers, the newest successful group kept)

EPOCH = utc(1970, 1, 1)
FIRST_MONDAY = utc(1970, 1, 5)
RETAIN = {"hourly": 24, "daily": 14, "weekly": 4, "monthly": 12, "yearly": 3}  # the defaults


def unit_of(tier, t):
    """(number, start) of the unit of ``tier`` that holds ``t`` (every interval is 1)."""
    if tier == "hourly":
        n = (t - EPOCH) // HOUR
        return n, EPOCH + n * HOUR
    if tier == "daily":
        n = (t - EPOCH) // timedelta(days=1)
        return n, EPOCH + timedelta(days=n)
    if tier == "weekly":
        n = (t - FIRST_MONDAY) // timedelta(weeks=1)
        return n, FIRST_MONDAY + timedelta(weeks=n)
    if tier == "monthly":
        return t.year * 12 + t.month - 1, utc(t.year, t.month, 1)
    return t.year, utc(t.year, 1, 1)


def kept_until(tier, start):
    """A unit start plus the tier's retention in its own unit (months and years on the calendar:
    every start here is the 1st of a month, so no day needs clamping)."""
    keep = RETAIN[tier]
    if tier == "hourly":
        return start + keep * HOUR
    if tier == "daily":
        return start + timedelta(days=keep)
    if tier == "weekly":
        return start + timedelta(weeks=keep)
    if tier == "monthly":
        months = start.year * 12 + start.month - 1 + keep
        return utc(months // 12, months % 12 + 1, 1)
    return utc(start.year + keep, 1, 1)


class Reference:
    """The expected snapshot groups after each run (``take`` and ``purge`` at once, as run --purge:
    the purge spares the group that was the newest successful one when the run started)."""

    def __init__(self):
        self.served = {}  # tier -> unit number last served by a successful run
        self.groups = []  # {"created", "tiers", "expires", "live"} in the order taken
        self.attempts = 0  # runs that called CreateSnapshot (successful or not)
        self.purged = 0
        self.spared = 0  # runs after which the newest group had expired and was kept

    def run(self, t, succeeds=True):
        units = {tier: unit_of(tier, t) for tier in TIERS}
        due = [tier for tier in TIERS if tier not in self.served or units[tier][0] > self.served[tier]]
        newest = self.groups[-1] if self.groups else None  # newest successful group at the start: never purged
        if due:
            self.attempts += 1
            if succeeds:
                expires = max(kept_until(tier, units[tier][1]) for tier in due)
                self.groups.append({"created": t, "tiers": ",".join(due), "expires": expires, "live": True})
                self.served.update({tier: units[tier][0] for tier in due})
        self.spared += newest is not None and newest["expires"] <= t
        for group in self.groups:
            if group["live"] and group["expires"] <= t and group is not newest:
                group["live"] = False
                self.purged += 1
        return due

    def live(self):
        return sorted((g["created"], g["tiers"], g["expires"]) for g in self.groups if g["live"])


def year_plan(seed=20260615):
    """[(run time, EC2 accepts snapshots)] for one year of hourly cron runs from 2026-06-15 (ISO
    week 53 of 2026, a New Year, a month of 31 days after one of 30 inside): outages of 30 hours
    (over a Monday 00:00), 9 days (over the 1st of November) and 5 hours (over New Year); 40
    random single hours missed; 60 random hours run twice; 36 hours in which every
    CreateSnapshot fails.  Each run starts at a random second of its hour, some on the hour."""
    rng = random.Random(seed)
    start = utc(2026, 6, 15)
    hours = [start + i * HOUR for i in range(365 * 24)]
    missed = set()
    for first, length in ((utc(2026, 8, 9, 20), 30), (utc(2026, 10, 27, 5), 9 * 24), (utc(2026, 12, 31, 22), 5)):
        missed.update(first + i * HOUR for i in range(length))
    missed.update(rng.sample(hours[1:], 40))
    failing_from, failing_to = utc(2027, 3, 3, 9), utc(2027, 3, 3, 9) + 36 * HOUR
    left = [h for h in hours if h not in missed]
    twice = set(rng.sample(left, 60)) | {failing_from + 3 * HOUR, utc(2027, 1, 1, 3)}
    plan = []
    for hour in left:
        offset = rng.choice([0, 1, 59, 300, 1799, 3599, rng.randrange(3600), rng.randrange(3600)])
        times = [offset]
        if hour in twice:
            times.append(rng.choice([offset, rng.randrange(offset, 3600)]))
        for second in times:
            t = hour + timedelta(seconds=second)
            plan.append((t, not failing_from <= t < failing_to))
    return plan


def served_rows(rows):
    """(created_at, tiers of the run that took it, expires_at) of the live snapshot groups."""
    tiers = {r["snapshot_group_id"]: r["tiers"] for r in rows["schedule_runs"] if r["snapshot_group_id"]}
    return sorted((g["created_at"], tiers.get(g["id"]), g["expires_at"]) for g in rows["snapshot_groups"]
                  if g["deleted_at"] is None)


def live_rows(engine):
    """served_rows() in one query."""
    from sqlalchemy import select

    from amslib.store.schema import schedule_runs as r, snapshot_groups as g

    query = (select(g.c.created_at, r.c.tiers, g.c.expires_at).select_from(g)
             .outerjoin(r, r.c.snapshot_group_id == g.c.id).where(g.c.deleted_at.is_(None)))
    with engine.connect() as conn:
        return sorted(tuple(row) for row in conn.execute(query))


# ---------------------------------------------------------------------------------------------
# 1. a year of hourly runs

@pytest.mark.parametrize("db_url", ["shm_sqlite"], indirect=True)
def test_a_year_of_hourly_runs_keeps_exactly_the_expected_snapshot_groups(ams_db, rig, db_url, clock, monkeypatch):
    from amslib.cli import main as cli_main
    from amslib.cli.context import Context
    from amslib.schedule import service
    gid, volume_ids = make_volume_group(rig, db_url)
    # the run never reads the volume's data: without its backing file the rig copies no file per
    # CreateSnapshot (as for the root volumes of its instances), which saves a process a run
    os.unlink(rig.volume_path(volume_ids[0]))
    clock("2026-06-14T12:00:00Z")
    schedule_id = add_schedule(ams_db, gid)
    checker = engine_of(db_url)

    plan = year_plan()
    ref = Reference()
    args = cli_main.parse_args(cli_main.build_parser(), ["snapshot", "schedule", "run", "--purge"])
    ctx = Context(args)
    failing = False
    cli_runs = 0
    durations = []
    started, cpu_started = time.monotonic(), time.process_time()
    checked = 0
    check_time = [0.0]
    try:
        for index, (t, accepts) in enumerate(plan):
            if failing == accepts:  # the window in which EC2 refuses every snapshot opens or closes
                failing = not accepts
                if failing:
                    rig.faults.fail_next("CreateSnapshot", code="IncorrectState", count=10 ** 6,
                                         message="injected: snapshots refused")
                else:
                    rig.faults.clear()
            clock(t)
            due = ref.run(t, accepts)
            duplicate = index > 0 and plan[index - 1][0].replace(minute=0, second=0) == t.replace(minute=0, second=0)
            if duplicate and not due and cli_runs < 8:  # the real command line, now and then
                cli_runs += 1
                result = ok(run_json(ams_db, "--purge")).json
                assert result["due"] == 0 and result["runs"] == [], result
                continue
            began = time.monotonic()
            result = service.run(ctx, purge=True)
            durations.append(time.monotonic() - began)
            runs = result["runs"]
            if not due:
                assert runs == [], (t, runs)
            else:
                (run,) = runs
                assert run["schedule_id"] == schedule_id
                assert run["outcome"] == ("succeeded" if accepts else "failed"), (t, run)
                assert run["tiers"] == due, (t, run)
                if not accepts:
                    assert "snapshots refused" in run["error"]
            assert not [p for p in result["purge"] if p["refused"] or p["skipped"]], result["purge"]
            end_of_outage = index + 1 < len(plan) and plan[index + 1][0] - t > 2 * HOUR
            if index % 168 == 0 or end_of_outage or not accepts or index == len(plan) - 1:
                checked += 1
                began = time.monotonic()
                assert live_rows(checker) == ref.live(), f"after the run at {t}"
                check_time[0] += time.monotonic() - began
    finally:
        ctx.close()
        checker.dispose()
    elapsed = time.monotonic() - started
    cpu = time.process_time() - cpu_started
    blocks = [durations[i:i + 1000] for i in range(0, len(durations), 1000)]
    print("\nms a run per 1000 runs:", [round(sum(b) / len(b) * 1000, 1) for b in blocks], "checks", check_time)

    rows = db_rows(db_url)
    assert served_rows(rows) == ref.live()
    assert_one_group_per_slot(rows)
    assert_ec2_matches_database(rig, rows)
    live = ref.live()
    # what the defaults keep after a year: the newest 24 hourly slots, 14 days, 4 weeks, 12
    # months and the yearly groups (one group can serve several tiers)
    assert 24 <= len([g for g in live if g[2] > plan[-1][0]]) == len(live) <= 24 + 14 + 4 + 12 + 3
    assert len([g for g in live if "monthly" in g[1]]) == 13  # Jun 2026 (kept as yearly) .. Jun 2027
    assert len([g for g in live if "yearly" in g[1]]) == 2  # 2026 (first run) and 2027
    counts = rig.counts()
    assert counts.get("CreateSnapshot", 0) == ref.attempts  # no run snapshotted a slot twice
    assert counts.get("DeleteSnapshot", 0) == ref.purged
    succeeded = [r for r in rows["schedule_runs"] if r["outcome"] == "succeeded"]
    assert len(succeeded) == len(ref.groups)
    assert ref.spared > 10  # the failing window outlived the newest group's expiry: it was kept
    print(f"\nyear simulation: {len(plan)} runs ({cli_runs} through the CLI), {len(ref.groups)} groups taken, "
          f"{ref.purged} purged, {len(live)} kept, {checked} checkpoints, {elapsed:.1f} s "
          f"({elapsed / len(plan) * 1000:.1f} ms a run; CPU of this process {cpu:.1f} s)")



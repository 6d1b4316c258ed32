"""ams snapshot schedule … against the rig's EC2 endpoint (issue 10); no guest is needed.

Every schedule here snapshots a volume group attached nowhere: its volumes are created with the
rig's own EC2 client and its rows written straight into the database, so each run calls
CreateSnapshot for real against the rig's moto endpoint.  ``AMS_NOW`` sets ams's clock.

- Idempotency, catch-up, manual runs, --dry-run, edit/delete/list and bad input through the CLI
  on SQLite and on MariaDB.
- Four ``ams`` processes running at once: every slot snapshotted once, every expired group
  deleted once.
- A failing schedule does not stop the others.

The year of hourly runs is in test_schedule_year.py, which imports the helpers and fixtures below.
"""

import os
import shutil
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from tests.dbfixtures import run_ams_process
from tests.integration.test_volumes_guest import ok, one_error

UTC = timezone.utc
REGION = "us-east-1"
ZONE = "us-east-1a"
HOUR = timedelta(hours=1)
TIERS = ("hourly", "daily", "weekly", "monthly", "yearly")


# ---------------------------------------------------------------------------------------------
# helpers

def iso(value):
    """An aware datetime as ams prints it in JSON."""
    return value.astimezone(UTC).isoformat()


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def zulu(value):
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def engine_of(db_url):
    from amslib.store.db import create_engine

    return create_engine(db_url)


def make_volume_group(rig, db_url, volumes=1, size=1):
    """A volume group attached nowhere: ``volumes`` new EC2 volumes and their rows; (id, volume ids)."""
    from amslib.store import volume_groups as vg_store
    from amslib.store.types import utcnow

    ec2 = rig.client(region=REGION, internal=True)
    ids = [ec2.create_volume(Size=size, VolumeType="gp3", AvailabilityZone=ZONE)["VolumeId"] for _ in range(volumes)]
    engine = engine_of(db_url)
    now = utcnow()
    try:
        with engine.begin() as conn:
            gid = vg_store.insert_group(conn, {
                "raid_level": None if volumes == 1 else 0, "stripe_block_size": None if volumes == 1 else 256,
                "fs_type": "xfs", "region": REGION, "availability_zone": ZONE, "state": "available",
                "created_at": now})
            vg_store.insert_volumes(conn, [{
                "volume_id": v, "volume_group_id": gid, "member_index": i, "size_gib": size, "volume_type": "gp3",
                "availability_zone": ZONE, "created_at": now} for i, v in enumerate(ids)])
    finally:
        engine.dispose()
    return gid, ids


def add_schedule(ams, group_id, *options):
    result = ok(ams("--output", "json", "snapshot", "schedule", "add", "volume", group_id, *options))
    return result.json["schedule_id"]


def run_json(ams, *args):
    return ams("--output", "json", "snapshot", "schedule", "run", *args)


def db_rows(db_url):
    """Every row of the tables schedules touch, in primary key order."""
    from sqlalchemy import select

    from amslib.store.schema import schedule_runs, snapshot_groups, snapshot_schedules, snapshots

    engine = engine_of(db_url)
    try:
        with engine.connect() as conn:
            return {t.name: [dict(r) for r in conn.execute(select(t).order_by(*t.primary_key.columns)).mappings()]
                    for t in (snapshot_schedules, schedule_runs, snapshot_groups, snapshots)}
    finally:
        engine.dispose()


def live_groups(db_url):
    return [g for g in db_rows(db_url)["snapshot_groups"] if g["deleted_at"] is None]


def ec2_snapshots(rig):
    """{snapshot id: tags} of every snapshot in the rig's us-east-1."""
    ec2 = rig.client(region=REGION, internal=True)
    out = {}
    for page in ec2.get_paginator("describe_snapshots").paginate(OwnerIds=["self"]):
        for snap in page["Snapshots"]:
            out[snap["SnapshotId"]] = {t["Key"]: t["Value"] for t in snap.get("Tags", [])}
    return out


def assert_ec2_matches_database(rig, rows):
    """EC2 holds exactly the snapshots of the live groups, each tagged with its group."""
    live = {g["id"] for g in rows["snapshot_groups"] if g["deleted_at"] is None}
    wanted = {s["snapshot_id"]: s["snapshot_group_id"] for s in rows["snapshots"] if s["deleted_at"] is None}
    assert {s["snapshot_group_id"] for s in rows["snapshots"] if s["deleted_at"] is None} <= live
    found = ec2_snapshots(rig)
    assert set(found) == set(wanted)
    for snapshot_id, tags in found.items():
        assert tags["ams:snapshot-group-id"] == str(wanted[snapshot_id])


def assert_one_group_per_slot(rows):
    """No (schedule, slot) has two run records, no group is served by two runs, and every live
    scheduled group comes from exactly one succeeded run."""
    runs = rows["schedule_runs"]
    keys = [(r["schedule_id"], r["slot"]) for r in runs if r["slot"] is not None]
    assert len(keys) == len(set(keys))
    served = [r["snapshot_group_id"] for r in runs if r["snapshot_group_id"] is not None]
    assert len(served) == len(set(served))
    succeeded = {r["snapshot_group_id"] for r in runs if r["outcome"] == "succeeded"}
    for group in rows["snapshot_groups"]:
        if group["deleted_at"] is None and group["schedule_id"] is not None:
            assert group["id"] in succeeded, group
    for run in runs:
        if run["outcome"] != "succeeded":
            assert run["snapshot_group_id"] is None, run


def bad(result, code, fragment):
    """One error line and exit ``code``: ams's own line, or argparse's usage then one error line."""
    assert result.code == code, str(result)
    assert "Traceback" not in result.err, str(result)
    errors = [line for line in result.err.splitlines() if "error:" in line]
    assert len(errors) == 1 and fragment.lower() in errors[0].lower(), str(result)
    if not result.err.startswith("usage:"):
        one_error(result, code, fragment)
    return errors[0]


@pytest.fixture
def rig(ec2_clean):
    ec2_clean.timing.set(volume_create=0, snapshot=0)
    return ec2_clean


@pytest.fixture
def shm_sqlite_url(tmp_path):
    """SQLite in a file on tmpfs when there is one (commits need no fsync), else in tmp_path."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else str(tmp_path)
    directory = tempfile.mkdtemp(prefix="ams-schedules-", dir=base)
    yield f"sqlite:///{directory}/ams.db"
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def clock(monkeypatch):
    """``clock(datetime or text)`` sets AMS_NOW."""

    def set_clock(value):
        monkeypatch.setenv("AMS_NOW", value if isinstance(value, str) else zulu(value))

    return set_clock


# ---------------------------------------------------------------------------------------------
# 2. idempotency, catch-up, manual runs, dry runs, settings and bad input, through the CLI

def test_a_second_run_in_the_same_hour_takes_nothing_and_a_missed_stretch_is_caught_up_once(ams_db, rig, db_url,
                                                                                             clock):
    gid, volume_ids = make_volume_group(rig, db_url, volumes=2)
    clock("2027-03-12T04:00:00Z")
    sid = add_schedule(ams_db, gid)

    clock("2027-03-12T05:07:00Z")  # a Friday: the first run serves every tier
    rig.reset_counts()
    (run,) = ok(run_json(ams_db, "--purge")).json["runs"]
    assert run["outcome"] == "succeeded" and run["tiers"] == list(TIERS)
    assert run["slot"] == iso(utc(2027, 3, 12, 5)) and run["expires_at"] == iso(utc(2030, 1, 1))
    first = run["snapshot_group_id"]
    assert rig.counts() == {"CreateSnapshot": 2}

    for later in ("2027-03-12T05:07:00Z", "2027-03-12T05:40:00Z", "2027-03-12T05:59:59Z"):
        clock(later)
        result = ok(run_json(ams_db, "--purge")).json
        assert result["runs"] == [] and result["due"] == 0 and result["purge"] == []
    assert "no schedule is due" in ok(ams_db("snapshot", "schedule", "run")).out
    assert rig.counts() == {"CreateSnapshot": 2}  # nothing since the first run

    clock("2027-03-15T05:20:00Z")  # 3 days later, a Monday: one group for hour, day and week
    rig.reset_counts()
    (run,) = ok(run_json(ams_db, "--purge")).json["runs"]
    assert run["outcome"] == "succeeded" and run["tiers"] == ["hourly", "daily", "weekly"]
    assert run["slot"] == iso(utc(2027, 3, 15, 5))
    assert run["expires_at"] == iso(utc(2027, 4, 12))  # the weekly tier's: Monday 03-15 + 4 weeks
    assert run["skipped_slots"] == {"hourly": 71, "daily": 2}
    assert rig.counts() == {"CreateSnapshot": 2}
    clock("2027-03-15T05:21:00Z")
    assert ok(run_json(ams_db, "--purge")).json["runs"] == []

    rows = db_rows(db_url)
    assert [(r["slot"], r["outcome"], r["tiers"]) for r in rows["schedule_runs"]] == [
        (utc(2027, 3, 12, 5), "succeeded", ",".join(TIERS)),
        (utc(2027, 3, 15, 5), "succeeded", "hourly,daily,weekly"),
    ]
    groups = [g for g in rows["snapshot_groups"] if g["deleted_at"] is None]
    assert [(g["id"], g["created_at"], g["expires_at"], g["schedule_id"]) for g in groups] == [
        (first, utc(2027, 3, 12, 5, 7), utc(2030, 1, 1), sid),
        (run["snapshot_group_id"], utc(2027, 3, 15, 5, 20), utc(2027, 4, 12), sid),
    ]
    assert_one_group_per_slot(rows)
    assert_ec2_matches_database(rig, rows)
    tags = ec2_snapshots(rig)
    expires = sorted(t["ams:expires"] for t in tags.values())
    assert expires == ["2027-04-12T00:00:00Z"] * 2 + ["2030-01-01T00:00:00Z"] * 2


def test_run_with_an_id_takes_a_manual_snapshot_that_expires(ams_db, rig, db_url, clock):
    gid, _ = make_volume_group(rig, db_url, volumes=2)
    clock("2027-05-05T09:00:00Z")
    default = add_schedule(ams_db, gid)
    every_other_day = add_schedule(ams_db, gid, "--intervals", 1, 2, 1, 1, "--retentions", 0, 3, 0, 0, 0)

    clock("2027-05-05T10:30:15Z")
    rig.reset_counts()
    (run,) = ok(run_json(ams_db, default)).json["runs"]
    assert run["outcome"] == "succeeded" and run["tiers"] == ["manual"] and run["slot"] is None
    assert run["expires_at"] == iso(utc(2030, 5, 5, 10, 30, 15))  # now + the longest tier: 3 years
    (run2,) = ok(run_json(ams_db, every_other_day)).json["runs"]
    assert run2["expires_at"] == iso(utc(2027, 5, 11, 10, 30, 15))  # now + 2 days x 3
    (again,) = ok(run_json(ams_db, every_other_day)).json["runs"]  # by hand: taken again
    assert again["outcome"] == "succeeded" and again["snapshot_group_id"] != run2["snapshot_group_id"]
    assert rig.counts()["CreateSnapshot"] == 6

    # manual runs serve no tier: the scheduled run right after still takes both schedules' slots
    result = ok(run_json(ams_db)).json
    assert {(r["schedule_id"], r["outcome"]) for r in result["runs"]} == {(default, "succeeded"),
                                                                           (every_other_day, "succeeded")}
    by_id = {r["schedule_id"]: r for r in result["runs"]}
    assert by_id[every_other_day]["tiers"] == ["daily"]
    assert by_id[every_other_day]["slot"] == iso(utc(2027, 5, 4))  # days counted from 1970-01-01
    assert by_id[every_other_day]["expires_at"] == iso(utc(2027, 5, 10))

    rows = db_rows(db_url)
    manual = [r for r in rows["schedule_runs"] if r["manual"]]
    assert len(manual) == 3 and all(r["slot"] is None and r["expires_at"] is not None for r in manual)
    assert all(g["expires_at"] is not None for g in rows["snapshot_groups"])
    assert {g["retention_kind"] for g in rows["snapshot_groups"]} >= {"manual"}
    assert_one_group_per_slot(rows)
    assert_ec2_matches_database(rig, rows)
    assert all("ams:expires" in tags for tags in ec2_snapshots(rig).values())


def test_dry_run_says_what_would_be_taken_and_deleted_and_changes_nothing(ams_db, rig, db_url, clock):
    gid, _ = make_volume_group(rig, db_url)
    clock("2027-02-01T04:00:00Z")
    sid = add_schedule(ams_db, gid, "--retentions", 1, 0, 0, 0, 0)  # keep the newest hourly slot
    taken = []
    for when in ("2027-02-01T05:10:00Z", "2027-02-01T06:10:00Z"):
        clock(when)
        (run,) = ok(run_json(ams_db)).json["runs"]  # no purge yet
        taken.append(run["snapshot_group_id"])

    clock("2027-02-01T07:10:00Z")
    before, snaps_before = db_rows(db_url), ec2_snapshots(rig)
    rig.reset_counts()
    dry = ok(run_json(ams_db, "--purge", "--dry-run")).json
    assert dry["dry_run"] is True
    (would,) = dry["runs"]
    assert would["schedule_id"] == sid and would["outcome"] == "would take" and would["tiers"] == ["hourly"]
    assert would["slot"] == iso(utc(2027, 2, 1, 7)) and would["expires_at"] == iso(utc(2027, 2, 1, 8))
    text = ok(ams_db("snapshot", "schedule", "run", "--purge", "--dry-run")).out
    assert "would take" in text and "would delete" in text and "nothing was taken or deleted" in text
    assert db_rows(db_url) == before and ec2_snapshots(rig) == snaps_before
    assert set(rig.counts()) <= {"DescribeImages", "DescribeSnapshots"}, rig.counts()

    # the real run takes the slot while it purges: the group that was newest when it started
    # (06:00, expired at 07:00) is spared, the one before goes; the next run deletes the spared one
    real = ok(run_json(ams_db, "--purge")).json
    (run,) = real["runs"]
    assert run["outcome"] == "succeeded"
    deleted = sorted(p["snapshot_group_id"] for p in real["purge"] if p["deleted"])
    assert deleted == taken[:1]
    assert [g["id"] for g in live_groups(db_url)] == [taken[1], run["snapshot_group_id"]]
    clock("2027-02-01T08:10:00Z")
    later = ok(run_json(ams_db, "--purge")).json
    assert [p["snapshot_group_id"] for p in later["purge"] if p["deleted"]] == [taken[1]]
    assert [g["id"] for g in live_groups(db_url)] == [run["snapshot_group_id"], later["runs"][0]["snapshot_group_id"]]
    assert_ec2_matches_database(rig, db_rows(db_url))


def test_dry_run_lists_the_groups_the_real_run_would_delete(ams_db, rig, db_url, clock):
    """Purge spares the group that is a schedule's newest successful one when the run starts,
    even expired, while the run takes a new one; --dry-run lists exactly what the real run deletes."""
    gid, _ = make_volume_group(rig, db_url)
    clock("2027-02-01T04:00:00Z")
    add_schedule(ams_db, gid, "--retentions", 1, 0, 0, 0, 0)
    taken = []
    for when in ("2027-02-01T05:10:00Z", "2027-02-01T06:10:00Z", "2027-02-01T07:10:00Z"):
        clock(when)
        taken += [r["snapshot_group_id"] for r in ok(run_json(ams_db)).json["runs"]]
    clock("2027-02-01T09:10:00Z")  # the 07:00 group expired at 08:00; it is the newest
    dry = ok(run_json(ams_db, "--purge", "--dry-run")).json
    real = ok(run_json(ams_db, "--purge")).json
    deleted = sorted(p["snapshot_group_id"] for p in real["purge"] if p["deleted"])
    assert deleted == taken[:2]
    assert sorted(p["snapshot_group_id"] for p in dry["purge"]) == deleted


def test_edit_delete_and_list_show_settings_last_run_and_next_due(ams_db, rig, db_url, clock):
    gid, _ = make_volume_group(rig, db_url)
    other_gid, _ = make_volume_group(rig, db_url)
    clock("2027-02-10T13:20:00Z")
    sid = add_schedule(ams_db, gid, "--int_hour", 6, "--ret_day", 7, "-d", "nightly db", "--pre", "echo pre")
    other = add_schedule(ams_db, other_gid, "-i", 2, 1, 1, 3, "-r", 0, 0, 0, 6, 0)

    def listed(*args):
        return {r["schedule_id"]: r for r in ok(ams_db("--output", "json", "snapshot", "schedule", "list",
                                                       *args)).json}

    rows = listed()
    assert sorted(rows) == [sid, other]
    row = rows[sid]
    assert (row["resource_type"], row["volume_group_id"], row["description"], row["pre_command"]) == (
        "volume", gid, "nightly db", "echo pre")
    assert [row[k] for k in ("interval_hour", "interval_day", "interval_week", "interval_month")] == [6, 1, 1, 1]
    assert [row[k] for k in ("retain_hourly", "retain_daily", "retain_weekly", "retain_monthly",
                             "retain_yearly")] == [24, 7, 4, 12, 3]
    assert row["last_run"] is None and row["last_outcome"] is None
    assert row["next_due"] == iso(utc(2027, 1, 1))  # never run: due since its oldest current slot
    assert rows[other]["next_due"] == iso(utc(2027, 1, 1))  # monthly every 3rd month: Jan/Apr/Jul/Oct
    assert sorted(listed("volume", gid)) == [sid]
    assert listed("host") == {} and "no snapshot schedules" in ok(ams_db("snapshot", "schedule", "list", "host")).out

    (run,) = [r for r in ok(run_json(ams_db)).json["runs"] if r["schedule_id"] == sid]
    assert run["slot"] == iso(utc(2027, 2, 10, 12))
    row = listed()[sid]
    assert row["last_run"] == iso(utc(2027, 2, 10, 13, 20)) and row["last_outcome"] == "succeeded"
    assert row["last_snapshot_group_id"] == run["snapshot_group_id"]
    assert row["next_due"] == iso(utc(2027, 2, 10, 18))  # the next 6-hour slot
    assert listed()[other]["next_due"] == iso(utc(2027, 4, 1))
    table = ok(ams_db("snapshot", "schedule", "list")).out
    for text in ("6/1/1/1", "24/7/4/12/3", "2/1/1/3", "0/0/0/6/0", "2027-02-10 13:20 succeeded",
                 "2027-02-10 18:00", "nightly db", "volume group"):
        assert text in table, table

    # only the settings given change; --intervals/--retentions replace all of theirs
    out = ok(ams_db("snapshot", "schedule", "edit", sid, "--ret_hour", 0)).out
    assert "retain_hourly 24 -> 0" in out
    row = listed()[sid]
    assert row["retain_hourly"] == 0 and row["retain_daily"] == 7 and row["interval_hour"] == 6
    assert row["next_due"] == iso(utc(2027, 2, 11))  # hourly off: the next day
    ok(ams_db("snapshot", "schedule", "edit", sid, "--intervals", 2, 1, 1, 1, "-d", "db"))
    row = listed()[sid]
    assert [row[k] for k in ("interval_hour", "interval_day", "interval_week", "interval_month")] == [2, 1, 1, 1]
    assert row["description"] == "db" and row["pre_command"] == "echo pre" and row["retain_daily"] == 7
    ok(ams_db("snapshot", "schedule", "edit", sid, "--retentions", 5, 4, 3, 2, 1))
    row = listed()[sid]
    assert [row[k] for k in ("retain_hourly", "retain_daily", "retain_weekly", "retain_monthly",
                             "retain_yearly")] == [5, 4, 3, 2, 1]
    assert row["next_due"] == iso(utc(2027, 2, 10, 14))  # hourly back, every 2 hours: 14:00
    before = db_rows(db_url)
    assert "would change" in ok(ams_db("snapshot", "schedule", "edit", sid, "--ret_year", 9, "--dry-run")).out
    bad(ams_db("snapshot", "schedule", "edit", sid, "--ret_year", 1), 2, "nothing to change")
    assert db_rows(db_url) == before

    # delete keeps the schedule as history and stops it
    assert "would delete" in ok(ams_db("snapshot", "schedule", "delete", sid, "--dry-run")).out
    assert db_rows(db_url) == before
    out = ok(ams_db("snapshot", "schedule", "delete", sid)).out
    assert f"deleted snapshot schedule {sid}" in out
    assert sorted(listed()) == [other]
    (row,) = [r for r in db_rows(db_url)["snapshot_schedules"] if r["id"] == sid]
    assert row["deleted_at"] == utc(2027, 2, 10, 13, 20)
    clock("2027-02-11T01:00:00Z")
    assert all(r["schedule_id"] != sid for r in ok(run_json(ams_db)).json["runs"])
    bad(run_json(ams_db, sid), 3, "deleted")
    bad(ams_db("snapshot", "schedule", "delete", sid), 3, "deleted")
    bad(ams_db("snapshot", "schedule", "edit", sid, "--ret_hour", 3), 3, "deleted")


def test_bad_input_gives_one_error_line_and_changes_nothing(ams_db, rig, db_url, clock):
    gid, _ = make_volume_group(rig, db_url)
    clock("2027-02-10T13:20:00Z")
    sid = add_schedule(ams_db, gid)
    ok(run_json(ams_db))
    before, snaps_before = db_rows(db_url), ec2_snapshots(rig)
    rig.reset_counts()
    schedule = ("snapshot", "schedule")
    cases = [
        ((*schedule, "edit", 999, "--ret_hour", 3), 3, "schedule 999 not found"),
        ((*schedule, "delete", 999), 3, "schedule 999 not found"),
        ((*schedule, "run", 999), 3, "schedule 999 not found"),
        ((*schedule, "run", 999, "--dry-run"), 3, "schedule 999 not found"),
        ((*schedule, "add", "volume", 999), 3, "volume group 999 not found"),
        ((*schedule, "add", "host", "no-such-host", "-m", "/srv/data"), 3, "no-such-host"),
        ((*schedule, "edit", "x1", "--ret_hour", 3), 2, "invalid schedule id"),
        ((*schedule, "run", "0"), 2, "invalid schedule id"),
        ((*schedule, "add", "volume", "vg1"), 2, "invalid volume group id"),
        ((*schedule, "add", "volume", gid, "--intervals", 0, 1, 1, 1), 2, "--intervals"),
        ((*schedule, "add", "volume", gid, "--intervals", 1, 1, 1), 2, "--intervals"),
        ((*schedule, "add", "volume", gid, "--int_hour", 1001), 2, "hourly interval"),
        ((*schedule, "add", "volume", gid, "--ret_day", -1), 2, "--ret_day"),
        ((*schedule, "add", "volume", gid, "--retentions", 0, 0, 0, 0, 0), 2, "every retention is 0"),
        ((*schedule, "add", "volume", gid, "--ret_hour", 0, "--ret_day", 0, "--ret_week", 0, "--ret_month", 0,
          "--ret_year", 0), 2, "every retention is 0"),
        ((*schedule, "add", "volume", gid, "--ret_hour", 876601), 2, "out of range"),
        ((*schedule, "add", "volume", gid, "--int_month", 1000, "--ret_month", 10), 2, "100 years"),
        ((*schedule, "add", "volume", gid, "--pre", "echo a\necho b"), 2, "--pre hook"),
        ((*schedule, "add", "volume", gid, "--post", "sync\r"), 2, "--post hook"),
        ((*schedule, "add", "volume", gid, "-d", "two\nlines"), 2, "description"),
        ((*schedule, "edit", sid, "--intervals", 0, 1, 1, 1), 2, "--intervals"),
        ((*schedule, "edit", sid, "--retentions", 0, 0, 0, 0, 0), 2, "every retention is 0"),
        ((*schedule, "edit", sid, "--ret_hour", 0, "--ret_day", 0, "--ret_week", 0, "--ret_month", 0,
          "--ret_year", 0), 2, "every retention is 0"),
        ((*schedule, "edit", sid, "--post", "echo a\necho b"), 2, "--post hook"),
        ((*schedule, "edit", sid, "--freeze", "--no-freeze"), 2, "not allowed with"),
        ((*schedule, "list", "x"), 2, "invalid choice"),
    ]
    for argv, code, fragment in cases:
        bad(ams_db(*argv), code, fragment)
    assert db_rows(db_url) == before and ec2_snapshots(rig) == snaps_before
    assert set(rig.counts()) <= {"DescribeImages", "DescribeSnapshots"}, rig.counts()

    clock("2027-02-10 13:20")  # no time zone
    bad(run_json(ams_db), 9, "AMS_NOW")
    clock("yesterday")
    bad(run_json(ams_db), 9, "AMS_NOW")
    assert db_rows(db_url) == before and ec2_snapshots(rig) == snaps_before
    assert "CreateSnapshot" not in rig.counts()


def test_list_with_a_bad_volume_group_id_is_one_usage_error(ams_db):
    bad(ams_db("snapshot", "schedule", "list", "volume", "abc"), 2, "invalid volume group id")


# ---------------------------------------------------------------------------------------------
# 3. runs started at once

def test_four_processes_at_once_snapshot_each_slot_once_and_delete_each_group_once(ams_db, rig, db_url, clock):
    groups = [make_volume_group(rig, db_url, volumes=2) for _ in range(3)]
    clock("2027-07-01T00:00:00Z")
    ids = [add_schedule(ams_db, gid, "--retentions", 3, 0, 0, 0, 0) for gid, _ in groups]
    start = utc(2027, 7, 1, 9)
    for hour in range(4):  # 09:00 .. 12:00: four groups each, expiring 12:00 .. 15:00
        clock(start + hour * HOUR + timedelta(minutes=5))
        assert len(ok(run_json(ams_db)).json["runs"]) == 3
    before = db_rows(db_url)
    expired = sorted(g["id"] for g in before["snapshot_groups"] if g["expires_at"] <= start + 5 * HOUR)
    assert len(expired) == 9  # 09:00 .. 11:00 of each schedule; 12:00 is kept by its retention

    rig.reset_counts()
    rig.faults.set_latency(0.2, "CreateSnapshot")
    rig.faults.set_latency(0.05, "DeleteSnapshot")
    now = zulu(start + 5 * HOUR + timedelta(minutes=1))  # 14:01
    results = [None] * 4
    spans = [None] * 4

    def one(index):
        began = time.monotonic()
        results[index] = run_ams_process("--output", "json", "snapshot", "schedule", "run", "--purge",
                                         env={"AMS_NOW": now}, timeout=300)
        spans[index] = (began, time.monotonic())

    threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rig.faults.clear()
    for result in results:
        assert result.code == 0, str(result)
    assert max(b for b, _ in spans) < min(e for _, e in spans)  # they did run at the same time

    counts = rig.counts()
    assert counts["CreateSnapshot"] == 6, counts  # 3 slots x 2 volumes, once
    assert counts["DeleteSnapshot"] == 18, counts  # 9 groups x 2 snapshots, once
    outcomes = [r["outcome"] for result in results for r in result.json["runs"]]
    assert outcomes.count("succeeded") == 3 and set(outcomes) <= {"succeeded", "skipped"}
    skipped = [p for result in results for p in result.json["purge"] if p["skipped"]]
    print(f"\n4 processes: {outcomes.count('skipped')} slot(s) and {len(skipped)} group(s) left to another "
          f"process; spans {[round(e - b, 2) for b, e in spans]} s")
    deleted = sorted(p["snapshot_group_id"] for result in results for p in result.json["purge"] if p["deleted"])
    assert deleted == expired

    rows = db_rows(db_url)
    slot = start + 5 * HOUR
    runs = [r for r in rows["schedule_runs"] if r["slot"] == slot]
    assert sorted(r["schedule_id"] for r in runs) == ids and all(r["outcome"] == "succeeded" for r in runs)
    assert_one_group_per_slot(rows)
    live = sorted(g["id"] for g in rows["snapshot_groups"] if g["deleted_at"] is None)
    assert live == sorted(set(g["id"] for g in before["snapshot_groups"]) - set(expired)
                          | {r["snapshot_group_id"] for r in runs})
    assert_ec2_matches_database(rig, rows)


# ---------------------------------------------------------------------------------------------
# 4. one failing schedule

@pytest.mark.parametrize("failure", ["group deleted", "volume gone from EC2"])
def test_a_failing_schedule_does_not_stop_the_others(ams_db, rig, db_url, clock, failure):
    (good1, _), (broken, broken_volumes), (good2, _) = (make_volume_group(rig, db_url, volumes=2) for _ in range(3))
    clock("2027-09-01T10:00:00Z")
    first = add_schedule(ams_db, good1)
    failing = add_schedule(ams_db, broken)
    last = add_schedule(ams_db, good2)
    if failure == "group deleted":
        ok(ams_db("volume", "delete", broken))
    else:  # a member deleted behind ams's back: its snapshot is refused, the other member's is undone
        rig.client(region=REGION, internal=True).delete_volume(VolumeId=broken_volumes[1])

    clock("2027-09-01T10:30:00Z")
    rig.reset_counts()
    result = run_json(ams_db, "--purge")
    assert result.code != 0, str(result)
    errors = result.err.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("ams: error: 1 of 3 schedule run(s) failed"), str(result)
    assert f"schedule {failing}:" in errors[0]
    assert f"schedule {first}:" not in errors[0] and f"schedule {last}:" not in errors[0]
    assert ("not found" in errors[0]) if failure == "group deleted" else ("InvalidVolume.NotFound" in errors[0])
    outcomes = {r["schedule_id"]: r["outcome"] for r in result.json["runs"]}
    assert outcomes == {first: "succeeded", failing: "failed", last: "succeeded"}

    rows = db_rows(db_url)
    live = [g for g in rows["snapshot_groups"] if g["deleted_at"] is None]
    assert sorted(g["schedule_id"] for g in live) == [first, last]
    (failed_run,) = [r for r in rows["schedule_runs"] if r["schedule_id"] == failing]
    assert failed_run["outcome"] == "failed" and failed_run["error"] and failed_run["snapshot_group_id"] is None
    assert_one_group_per_slot(rows)
    assert_ec2_matches_database(rig, rows)  # nothing half-made is left of the failed one

    # the next run retries the failed slot (and only it): it fails again, the others take nothing
    clock("2027-09-01T10:45:00Z")
    again = run_json(ams_db, "--purge")
    assert again.code != 0 and [r["schedule_id"] for r in again.json["runs"]] == [failing]
    rows = db_rows(db_url)
    assert len([r for r in rows["schedule_runs"] if r["schedule_id"] == failing]) == 1
    assert len([g for g in rows["snapshot_groups"] if g["deleted_at"] is None]) == 2
    assert_ec2_matches_database(rig, rows)

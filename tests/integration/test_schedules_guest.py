"""A host-based snapshot schedule end to end on the rig's guest: hooks and --freeze run around
every scheduled snapshot, slots and expiries follow the UTC calendar (AMS_NOW sets the clock),
and the schedule follows whatever volume group is mounted at its mount point."""

from datetime import datetime, timezone

import pytest

from tests.integration.test_snapshots_guest import snapshot_list, writable
from tests.integration.test_volumes_guest import gsh, ok, one_error

pytestmark = pytest.mark.guest


def at(monkeypatch, text):
    monkeypatch.setenv("AMS_NOW", text)


def utc(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_host_schedule_with_hooks_and_freeze_follows_the_mount_point(ams_db, guest_instance, monkeypatch):
    ams, inst = ams_db, guest_instance
    g = inst.guest
    ok(ams("host", "discovery", "--region", "us-east-1"))
    first = ok(ams("--output", "json", "volume", "create", "-H", inst.name, "-n", 2, "-s", 1,
                   "-m", "/srv/sched")).json["volume_group_id"]
    gsh(g, "rm -f /var/tmp/ams-sched-hooks")
    sid = ok(ams("--output", "json", "snapshot", "schedule", "add", "host", inst.name, "-m", "/srv/sched",
                 "--freeze", "--pre", "echo pre >> /var/tmp/ams-sched-hooks",
                 "--post", "echo post >> /var/tmp/ams-sched-hooks", "-d", "scheduled",
                 "--retentions", "2", "3", "1", "1", "1")).json["schedule_id"]

    # New Year: every tier is due; one group, expiring with the longest tier (yearly 1)
    at(monkeypatch, "2027-01-01T00:05:00Z")
    run = ok(ams("--output", "json", "snapshot", "schedule", "run", "--purge")).json
    (taken,) = run["runs"]
    assert taken["outcome"] == "succeeded" and sorted(taken["tiers"]) == sorted(["hourly", "daily", "weekly", "monthly", "yearly"])
    assert utc(taken["expires_at"]) == utc("2028-01-01T00:00:00Z")
    assert gsh(g, "cat /var/tmp/ams-sched-hooks", sudo=False).split() == ["pre", "post"]
    assert writable(g, "/srv/sched")

    # the same hour again takes nothing; the next hour only the hourly tier (kept 2 hours)
    at(monkeypatch, "2027-01-01T00:40:00Z")
    assert ok(ams("--output", "json", "snapshot", "schedule", "run", "--purge")).json["runs"] == []
    at(monkeypatch, "2027-01-01T01:02:00Z")
    (hourly,) = ok(ams("--output", "json", "snapshot", "schedule", "run", "--purge")).json["runs"]
    assert hourly["tiers"] == ["hourly"] and utc(hourly["expires_at"]) == utc("2027-01-01T03:00:00Z")
    (row,) = ok(ams("--output", "json", "snapshot", "schedule", "list", "host", inst.name)).json
    assert row["schedule_id"] == sid and row["last_outcome"] == "succeeded"
    assert utc(row["next_due"]) == utc("2027-01-01T02:00:00Z")
    groups = snapshot_list(ams, "host", inst.name, "-m", "/srv/sched")
    assert [g_["schedule_id"] for g_ in groups] == [sid, sid]

    # another group takes the mount point: the schedule follows it
    ok(ams("volume", "detach", "volume", first, "-u"))
    second = ok(ams("--output", "json", "volume", "create", "-H", inst.name, "-n", 1, "-s", 1,
                    "-m", "/srv/sched")).json["volume_group_id"]
    at(monkeypatch, "2027-01-01T02:01:00Z")
    (followed,) = ok(ams("--output", "json", "snapshot", "schedule", "run", "--purge")).json["runs"]
    newest = snapshot_list(ams, "host", inst.name, "-m", "/srv/sched")[0]
    assert newest["snapshot_group_id"] == followed["snapshot_group_id"] and newest["volume_group_id"] == second

    # the hourly group of 01:00 expired at 03:00 and is purged then; the yearly one stays
    at(monkeypatch, "2027-01-01T03:01:00Z")
    result = ok(ams("--output", "json", "snapshot", "schedule", "run", "--purge")).json
    purged = {p["snapshot_group_id"] for p in result["purge"] if p["deleted"]}
    assert hourly["snapshot_group_id"] in purged and taken["snapshot_group_id"] not in purged
    assert gsh(g, "cat /var/tmp/ams-sched-hooks", sudo=False).split().count("post") == 4

    # a schedule whose host has no group at its mount point fails alone, with one line
    ok(ams("snapshot", "schedule", "add", "host", inst.name, "-m", "/srv/nothing-here"))
    at(monkeypatch, "2027-01-01T04:01:00Z")
    result = ams("--output", "json", "snapshot", "schedule", "run")
    line = one_error(result, 3, "/srv/nothing-here")
    assert "1 of 2" in line

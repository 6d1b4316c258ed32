"""Losing the database and rebuilding it from AWS, end to end on the rig's guest.

A single-volume group and a RAID 1 group are mounted on the guest and snapshotted (one by a
schedule run, so an expiry exists), one snapshot group is copied to another region; then the
SQLite file is deleted, an empty database installed, and host, volume and snapshot discovery
rebuild it.  The lists must match what they were, a clone of the newest snapshot restores the
same bytes, and a purge past the expiry still deletes the scheduled group.
"""

import os

import pytest

from tests.integration.test_snapshots_guest import snapshot_list
from tests.integration.test_volumes_guest import checksum, ok, write_data

pytestmark = pytest.mark.guest

REGIONS = "us-east-1,eu-west-1"
# what EC2 cannot tell: when ams wrote the row (EC2 knows when the volume or snapshot was made)
# and the schedule a group was taken by (schedules are not in AWS)
NOT_RESTORED = {"created_at", "schedule_id"}


def comparable(rows, key):
    return {row[key]: {k: v for k, v in row.items() if k not in NOT_RESTORED} for row in rows}


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_rebuild_the_database_from_aws_then_restore_and_purge(ams_db, guest_instance, ec2_clean, db_url,
                                                             monkeypatch):
    ams, inst, rig = ams_db, guest_instance, ec2_clean
    g = inst.guest
    ok(ams("host", "discovery", "--region", "us-east-1"))
    single = ok(ams("--output", "json", "volume", "create", "-H", inst.name, "-n", 1, "-s", 1,
                    "-m", "/srv/one")).json["volume_group_id"]
    mirror = ok(ams("--output", "json", "volume", "create", "-H", inst.name, "-n", 2, "-r", 1, "-s", 1,
                    "-m", "/srv/mirror", "-f", "ext4")).json["volume_group_id"]
    digest = write_data(g, "/srv/mirror", "a.bin", mib=4)
    write_data(g, "/srv/one", "b.bin", mib=1)

    manual = ok(ams("--output", "json", "snapshot", "create", "volume", single, "--wait")).json["snapshot_group_id"]
    copied = ok(ams("--output", "json", "snapshot", "copy", manual, "--region", "eu-west-1")).json["snapshot_group_id"]
    ok(ams("snapshot", "schedule", "add", "host", inst.name, "-m", "/srv/mirror", "--retentions", "2", "3", "1", "1", "1"))
    monkeypatch.setenv("AMS_NOW", "2027-01-01T00:05:00Z")
    (run,) = ok(ams("--output", "json", "snapshot", "schedule", "run")).json["runs"]
    monkeypatch.delenv("AMS_NOW")
    scheduled = run["snapshot_group_id"]
    assert run["outcome"] == "succeeded" and run["expires_at"].startswith("2028-01-01")

    volumes_before = comparable(ok(ams("--output", "json", "volume", "list")).json, "volume_group_id")
    snapshots_before = snapshot_list(ams)  # also refreshes the scheduled group until EC2 completes it
    while any(row["state"] == "pending" for row in snapshots_before):
        snapshots_before = snapshot_list(ams)
    snapshots_before = comparable(snapshots_before, "snapshot_group_id")
    assert sorted(volumes_before) == sorted([single, mirror])
    assert sorted(snapshots_before) == sorted([manual, copied, scheduled])

    # the database is lost: an empty one, then host, volume and snapshot discovery
    path = db_url.split("///", 1)[1]
    os.remove(path)
    for suffix in ("-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    ok(ams("internals", "database", "install"))
    assert ok(ams("--output", "json", "volume", "list")).json == []
    ok(ams("host", "discovery", "--region", "us-east-1"))
    volumes = ok(ams("--output", "json", "volume", "discovery", "--region", REGIONS)).json
    snapshots = ok(ams("--output", "json", "snapshot", "discovery", "--region", REGIONS)).json
    assert volumes["added"] == sorted([single, mirror]) and volumes["findings"] == []
    assert snapshots["added"] == sorted([manual, copied, scheduled]) and snapshots["findings"] == []

    assert comparable(ok(ams("--output", "json", "volume", "list")).json, "volume_group_id") == volumes_before
    after = comparable(snapshot_list(ams), "snapshot_group_id")
    assert after == snapshots_before  # ids, layouts, sources, mount points, expiries, copy links
    assert after[copied]["copied_from_id"] == manual and after[scheduled]["expires_at"].startswith("2028-01-01")

    for kind in ("volume", "snapshot"):  # a second pass changes nothing
        again = ok(ams("--output", "json", kind, "discovery", "--region", REGIONS)).json
        assert again["added"] == again["repaired"] == [] and again["missing"] == [] and again["findings"] == []

    # the rebuilt state restores: the newest group of the mount point, byte for byte
    clone = ok(ams("--output", "json", "snapshot", "clone", "latest", "host", inst.name, "/srv/mirror",
                   "-i", inst.instance_id, "-m", "/restore")).json
    assert clone["snapshot_group_id"] == scheduled
    assert checksum(g, "/restore/a.bin") == digest

    # and its expiry is honoured: past it, the purge deletes the scheduled group, nothing else
    monkeypatch.setenv("AMS_NOW", "2028-01-02T00:00:00Z")
    purged = ok(ams("--output", "json", "snapshot", "schedule", "run", "--purge")).json["purge"]
    assert [p["snapshot_group_id"] for p in purged if p["deleted"]] == [scheduled]
    assert sorted(r["snapshot_group_id"] for r in snapshot_list(ams)) == sorted([manual, copied])

"""ams volume discovery / ams snapshot discovery through the real CLI, against the rig's EC2
endpoint (moto's server) and a real database (each test runs on SQLite and MariaDB).

No guest: the volumes and snapshots are made on the endpoint through boto3 and tagged with
ams's own tag builders, exactly as ams tags them; instances are plain EC2 instances.
"""

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from amslib.ebs import params
from amslib.ebs.snapshot_service import snapshot_tags

EAST, WEST = "us-east-1", "eu-west-1"
REGIONS = f"{EAST},{WEST}"
EXPIRES = datetime(2027, 6, 1, 0, 0, tzinfo=timezone.utc)
TABLES = ("volume_groups", "volumes", "host_volumes", "snapshot_groups", "snapshots")


def ok(result):
    assert result.code == 0, str(result)
    return result


def tag_spec(kind, tags):
    return [{"ResourceType": kind, "Tags": [{"Key": k, "Value": str(v)} for k, v in tags.items()]}]


def make_group(rig, gid, count, level, zone, *, instance=None, mount_point=None, indexes=None, letters="fghijk"):
    """Volumes tagged as `ams volume create` tags them (creation tags plus the TagVolumes step);
    attached to ``instance`` when given.  Returns the volume ids in member order."""
    ec2 = rig.client(region=zone[:-1])
    stripe = 64 if level in (0, 5, 10) else None
    ids = []
    for index in indexes if indexes is not None else range(count):
        tags = params.group_tags(gid, level, index, stripe, "xfs", member_count=count)
        tags.update(params.identity_tags(f"ams-vg{gid}" if level is not None else None,
                                         "11111111:22222222:33333333:44444444" if level is not None else None,
                                         f"0b0e6a4c-2f67-4f6e-9d0e-3d6e2f1b9a{gid:02d}"))
        if mount_point:
            tags.update({"ams:mount-point": mount_point, "ams:automount": "true"})
        tags["team"] = "db"
        volume = ec2.create_volume(Size=1, VolumeType="gp3", AvailabilityZone=zone,
                                   TagSpecifications=tag_spec("volume", tags))
        ids.append(volume["VolumeId"])
    ec2.get_waiter("volume_available").wait(VolumeIds=ids, WaiterConfig={"Delay": 0.2, "MaxAttempts": 100})
    if instance:
        for index, volume_id in enumerate(ids):
            ec2.attach_volume(VolumeId=volume_id, InstanceId=instance, Device=f"/dev/sd{letters[index]}")
        ec2.get_waiter("volume_in_use").wait(VolumeIds=ids, WaiterConfig={"Delay": 0.2, "MaxAttempts": 100})
    return ids


def snapshot_group(rig, sgid, gid, volume_ids, level, region, *, instance, mount_point, expires=EXPIRES):
    """Snapshots tagged as `ams snapshot create` tags them; the snapshot ids in member order."""
    ec2 = rig.client(region=region)
    group = {"id": gid, "raid_level": level, "stripe_block_size": None, "fs_type": "xfs",
             "array_name": f"ams-vg{gid}" if level is not None else None, "md_uuid": None, "fs_uuid": None}
    ids = []
    for index, volume_id in enumerate(volume_ids):
        tags = snapshot_tags(sgid, group, index, expires, {}, member_count=len(volume_ids), source_instance_id=instance,
                             source_mount_point=mount_point, retention_kind="daily")
        ids.append(ec2.create_snapshot(VolumeId=volume_id, Description=f"ams snapshot group {sgid} of volume group {gid}",
                                       TagSpecifications=tag_spec("snapshot", tags))["SnapshotId"])
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=ids, WaiterConfig={"Delay": 0.2, "MaxAttempts": 300})
    return ids


def copy_group(rig, sgid, source_ids, source_region, region):
    """Copies tagged as `ams snapshot copy` tags them (the source's tags, a new group id, ams:copied-from)."""
    source = rig.client(region=source_region)
    ec2 = rig.client(region=region)
    ids = []
    for snapshot in source.describe_snapshots(SnapshotIds=source_ids)["Snapshots"]:
        tags = {t["Key"]: t["Value"] for t in snapshot["Tags"]}
        tags.update({"ams:snapshot-group-id": str(sgid), "ams:copied-from": f"{source_region}/{snapshot['SnapshotId']}"})
        ids.append(ec2.copy_snapshot(SourceRegion=source_region, SourceSnapshotId=snapshot["SnapshotId"],
                                     TagSpecifications=tag_spec("snapshot", tags))["SnapshotId"])
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=ids, WaiterConfig={"Delay": 0.2, "MaxAttempts": 300})
    return ids


def dump(db_url):
    """Every row of the discovery tables, to compare before and after."""
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            return {t: [dict(r) for r in conn.execute(sa.text(f"SELECT * FROM {t} ORDER BY 1")).mappings()]
                    for t in TABLES}
    finally:
        engine.dispose()


def by_group(listing, key="volume_group_id"):
    return {row[key]: row for row in listing}


@pytest.fixture
def world(ams_db, ec2_clean, ams_env):
    """A known host in us-east-1a with a RAID 1 group mounted at /data and a single volume, a
    single-volume group in eu-west-1, a group on an instance the hosts table does not know,
    and two volumes that claim one member index."""
    rig = ec2_clean
    host = rig.register_instance(zone=f"{EAST}a", name="db1")
    ok(ams_db("host", "discovery", "--region", REGIONS))
    stranger = rig.register_instance(zone=f"{EAST}b", name="unknown")  # after host discovery
    ids = {
        5: make_group(rig, 5, 2, 1, f"{EAST}a", instance=host, mount_point="/data"),
        6: make_group(rig, 6, 1, None, f"{EAST}a", instance=host, mount_point="/logs", letters="h"),
        7: make_group(rig, 7, 1, None, f"{WEST}a"),
        9: make_group(rig, 9, 1, None, f"{EAST}b", instance=stranger, mount_point="/x"),
        11: make_group(rig, 11, 2, 0, f"{EAST}a", indexes=[0, 0]),
    }
    return {"ams": ams_db, "rig": rig, "host": host, "stranger": stranger, "ids": ids, "db_url": ams_env["AMS_DB_URL"]}


def test_volume_discovery_adds_then_changes_nothing(world):
    ams, rig, ids, db_url = world["ams"], world["rig"], world["ids"], world["db_url"]
    before = dump(db_url)
    dry = ok(ams("volume", "discovery", "--region", REGIONS, "--dry-run", "--output", "json")).json
    assert dry["dry_run"] is True and dry["added"] == [5, 6, 7, 9]
    assert dump(db_url) == before  # --dry-run writes nothing

    rig.reset_counts()
    report = ok(ams("volume", "discovery", "--region", REGIONS, "--output", "json")).json
    assert report["added"] == [5, 6, 7, 9] and report["repaired"] == [] and report["unchanged"] == []
    kinds = {(f["kind"], f["subject"]) for f in report["findings"]}
    assert kinds == {("duplicate-index", "volume group 11"), ("unknown-host", "volume group 9")}
    assert report["regions"] == [EAST, WEST]
    for region in (EAST, WEST):  # one paginated, tag-filtered DescribeVolumes per region, nothing else
        assert dict(rig.counts(region)) == {"DescribeVolumes": 1}, region

    groups = by_group(ok(ams("volume", "list", "--output", "json")).json)
    assert sorted(groups) == [5, 6, 7, 9]
    raid = groups[5]
    assert (raid["raid_level"], raid["members"], raid["fs_type"], raid["availability_zone"]) == (1, 2, "xfs", f"{EAST}a")
    assert (raid["instance_id"], raid["hostname"], raid["mount_point"], raid["automount"]) == (world["host"], "db1", "/data", True)
    assert raid["block_device"] == "/dev/md/ams-vg5" and raid["state"] == "available"
    assert groups[6]["block_device"].endswith(ids[6][0].replace("-", "", 1)) and groups[6]["mount_point"] == "/logs"
    assert groups[7]["availability_zone"] == f"{WEST}a" and groups[7]["instance_id"] is None
    assert groups[9]["instance_id"] is None  # attached to an instance the hosts table does not know
    after = dump(db_url)
    assert {v["volume_id"]: v["member_index"] for v in after["volumes"] if v["volume_group_id"] == 5} == {
        ids[5][0]: 0, ids[5][1]: 1}

    again = ok(ams("volume", "discovery", "--region", REGIONS, "--output", "json")).json
    assert again["added"] == again["repaired"] == [] and again["unchanged"] == [5, 6, 7, 9]
    assert dump(db_url) == after  # idempotent

    text = ok(ams("volume", "discovery", "--region", REGIONS))
    assert "volume discovery in 2 region(s): 0 added, 0 repaired, 4 unchanged, 0 missing, 2 finding(s)" in text.out
    warnings = [line for line in text.err.splitlines() if line.startswith("ams: warning: ")]
    assert len(warnings) == 2 and any("run `ams host discovery` first" in w for w in warnings)
    assert any("two members with one ams:member-index" in w for w in warnings)
    assert ok(ams("-q", "volume", "discovery", "--region", REGIONS)).out == ""


def test_volume_discovery_repairs_and_prunes(world):
    ams, rig, ids, db_url = world["ams"], world["rig"], world["ids"], world["db_url"]
    ok(ams("volume", "discovery", "--region", REGIONS))
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:  # drift: a lost mount point and a wrong filesystem
        conn.execute(sa.text("UPDATE host_volumes SET mount_point = NULL WHERE volume_group_id = 5"))
        conn.execute(sa.text("UPDATE volume_groups SET fs_type = 'ext4' WHERE id = 5"))
    engine.dispose()
    report = ok(ams("volume", "discovery", "--region", REGIONS, "--output", "json")).json
    (repaired,) = report["repaired"]
    assert repaired["id"] == 5 and repaired["changes"] == {"host_volumes.mount_point": [None, "/data"],
                                                           "volume_groups.fs_type": ["ext4", "xfs"]}

    west = rig.client(region=WEST)
    west.delete_volume(VolumeId=ids[7][0])
    kept = ok(ams("volume", "discovery", "--region", REGIONS, "--output", "json")).json
    assert kept["missing"] == [{"volume_group_id": 7, "region": WEST, "volume_ids": [ids[7][0]]}]
    assert 7 in by_group(ok(ams("volume", "list", "--output", "json")).json)  # reported only
    text = ok(ams("volume", "discovery", "--region", WEST, "--prune-missing"))
    assert f"missing volume group 7 in {WEST} ({ids[7][0]}): marked deleted" in text.out
    assert 7 not in by_group(ok(ams("volume", "list", "--output", "json")).json)
    (row,) = [g for g in dump(db_url)["volume_groups"] if g["id"] == 7]
    assert row["state"] == "deleted" and row["deleted_at"] is not None
    final = ok(ams("volume", "discovery", "--region", REGIONS, "--prune-missing", "--output", "json")).json
    assert final["missing"] == [] and final["repaired"] == [] and final["added"] == []


def test_snapshot_discovery_restores_groups_copies_and_expiries(world, monkeypatch):
    ams, rig, ids, db_url = world["ams"], world["rig"], world["ids"], world["db_url"]
    originals = snapshot_group(rig, 20, 5, ids[5], 1, EAST, instance=world["host"], mount_point="/data")
    copies = copy_group(rig, 21, originals, EAST, WEST)
    later = snapshot_group(rig, 22, 6, ids[6], None, EAST, instance=world["host"], mount_point="/logs",
                           expires=EXPIRES + timedelta(days=30))
    ok(ams("volume", "discovery", "--region", REGIONS))
    before = dump(db_url)
    assert ok(ams("snapshot", "discovery", "--region", REGIONS, "--dry-run")).out.rstrip().endswith(
        "dry run: nothing was written")
    assert dump(db_url) == before

    report = ok(ams("snapshot", "discovery", "--region", REGIONS, "--output", "json")).json
    assert report["added"] == [20, 21, 22] and report["findings"] == []
    groups = by_group(ok(ams("snapshot", "list", "--output", "json")).json, "snapshot_group_id")
    assert groups[20]["copied_from_id"] is None and groups[21]["copied_from_id"] == 20
    assert groups[21]["region"] == WEST and groups[20]["region"] == EAST
    assert groups[20]["expires_at"] == groups[21]["expires_at"] == "2027-06-01T00:00:00+00:00"
    assert (groups[20]["source_hostname"], groups[20]["source_mount_point"], groups[20]["raid_level"]) == ("db1", "/data", 1)
    assert groups[20]["schedule_id"] is None and groups[20]["members"] == 2 and groups[20]["state"] == "completed"
    rows = dump(db_url)
    copy_rows = {s["snapshot_id"]: s for s in rows["snapshots"] if s["snapshot_group_id"] == 21}
    assert sorted(s["source_snapshot_id"] for s in copy_rows.values()) == sorted(originals)
    assert sorted(s["volume_id"] for s in copy_rows.values()) == sorted(ids[5])
    assert {g["id"]: g["retention_kind"] for g in rows["snapshot_groups"]} == {20: "daily", 21: "daily", 22: "daily"}

    again = ok(ams("snapshot", "discovery", "--region", REGIONS, "--output", "json")).json
    assert again["added"] == again["repaired"] == [] and again["unchanged"] == [20, 21, 22]
    assert dump(db_url) == rows

    # the restored expiries are honoured: past them, the purge deletes both the group and its copy
    monkeypatch.setenv("AMS_NOW", "2027-06-02T00:00:00Z")
    ok(ams("snapshot", "delete", "expired"))
    left = {s["SnapshotId"] for region in (EAST, WEST)
            for s in rig.client(region=region).describe_snapshots(OwnerIds=["self"])["Snapshots"]}
    assert left.isdisjoint(originals + copies) and set(later) <= left
    assert sorted(by_group(ok(ams("snapshot", "list", "--output", "json")).json, "snapshot_group_id")) == [22]


def test_bad_region_is_one_error_line(ams_db, ec2_clean):
    for command in ("volume", "snapshot"):
        for region, code in (("not_a_region", 2), ("xx-nowhere-9", 2)):
            result = ams_db(command, "discovery", "--region", region)
            lines = result.err.strip().splitlines()
            assert result.code == code and len(lines) == 1 and lines[0].startswith("ams: error: "), str(result)
            assert region in lines[0] and result.out == ""


def test_a_copy_completes_when_discovery_runs_in_its_middle(world):
    """`snapshot copy` holds no group lock: a discovery run right after CopySnapshot (before the
    copy recorded its snapshots) records them from their tags first; the copy still completes,
    with each snapshot recorded once, and a later discovery finds nothing to change."""
    import json
    import os
    import subprocess
    import sys

    from tests.dbfixtures import ROOT

    ams, rig, ids, db_url = world["ams"], world["rig"], world["ids"], world["db_url"]
    originals = snapshot_group(rig, 20, 5, ids[5], 1, EAST, instance=world["host"], mount_point="/data")
    ok(ams("volume", "discovery", "--region", REGIONS))
    ok(ams("snapshot", "discovery", "--region", REGIONS))
    runs = []

    def discover(_action, _region):  # in the rig's server thread: moto made the copy, ams has no answer yet
        runs.append(subprocess.run([sys.executable, os.path.join(ROOT, "ams"), "--output", "json", "snapshot",
                                    "discovery", "--region", REGIONS], env=dict(os.environ), cwd="/",
                                   capture_output=True, text=True, timeout=120))

    fault = rig.faults.after_success("CopySnapshot", discover, region=WEST)
    copied = ok(ams("--output", "json", "snapshot", "copy", 20, "--region", WEST)).json
    rig.faults.clear()
    assert fault.fired == 1 and runs[0].returncode == 0, runs
    middle = json.loads(runs[0].stdout)  # it recorded (some of) the copy's snapshots first
    assert [g["id"] for g in middle["repaired"]] == [copied["snapshot_group_id"]], middle
    rows = dump(db_url)
    copy_rows = [s for s in rows["snapshots"] if s["snapshot_group_id"] == copied["snapshot_group_id"]]
    assert sorted(s["source_snapshot_id"] for s in copy_rows) == sorted(originals)
    assert sorted(s["snapshot_id"] for s in copy_rows) == sorted(copied["snapshot_ids"])
    (group,) = [g for g in rows["snapshot_groups"] if g["id"] == copied["snapshot_group_id"]]
    assert group["state"] == "completed" and group["copied_from_id"] == 20
    again = ok(ams("snapshot", "discovery", "--region", REGIONS, "--output", "json")).json
    assert again["added"] == again["repaired"] == [], again

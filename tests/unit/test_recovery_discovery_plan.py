"""The pure planner of `ams volume discovery` and `ams snapshot discovery`."""

import copy
from datetime import datetime, timedelta, timezone

import pytest

from amslib.ebs import params
from amslib.ebs.snapshot_service import snapshot_tags
from amslib.recovery import discovery_plan as dp

NOW = datetime(2027, 3, 1, 12, 0, tzinfo=timezone.utc)
T0 = datetime(2027, 2, 1, 8, 30, 15, 123000, tzinfo=timezone.utc)
REGION, ZONE = "us-east-1", "us-east-1a"
INSTANCE = "i-0123456789abcdef0"
HOSTS = {INSTANCE: {"instance_id": INSTANCE, "hostname": "db1", "availability_zone": ZONE, "region": REGION}}
MD = "a" * 8 + ":" + "b" * 8 + ":" + "c" * 8 + ":" + "d" * 8
FS = "0b0e6a4c-2f67-4f6e-9d0e-3d6e2f1b9a10"


def vol_id(n):
    return f"vol-{n:017x}"


def snap_id(n):
    return f"snap-{n:017x}"


def tag_list(tags):
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def volume(n, gid, index, *, level=1, count=2, zone=ZONE, attached_to=None, device=None, extra=None, drop=(),
           fs="xfs", stripe=None, mount_point="/data", automount=True, state=None):
    """A DescribeVolumes item tagged as ams tags a member (create + TagVolumes)."""
    tags = params.group_tags(gid, level, index, stripe, fs, member_count=count)
    tags.update(params.identity_tags("ams-vg%d" % gid if level is not None else None,
                                     MD if level is not None else None, FS))
    if attached_to and mount_point:
        tags.update({"ams:mount-point": mount_point, "ams:automount": params.flag_tag(automount)})
    tags["team"] = "db"
    tags.update(extra or {})
    for key in drop:
        tags.pop(key, None)
    item = {"VolumeId": vol_id(n), "Size": 10, "VolumeType": "gp3", "Iops": 3000, "Throughput": 125,
            "AvailabilityZone": zone, "CreateTime": T0 + timedelta(seconds=index), "Encrypted": False,
            "State": state or ("in-use" if attached_to else "available"), "Tags": tag_list(tags), "Attachments": []}
    if attached_to:
        item["Attachments"] = [{"InstanceId": attached_to, "Device": device or f"/dev/sd{'fghij'[index]}",
                                "State": "attached", "AttachTime": T0 + timedelta(minutes=1), "VolumeId": vol_id(n)}]
    return item


GROUP = {"id": 5, "raid_level": 1, "stripe_block_size": None, "fs_type": "xfs", "array_name": "ams-vg5", "md_uuid": MD,
         "fs_uuid": FS}


def snapshot(n, sgid, index, *, vg=GROUP, count=2, expires=NOW + timedelta(days=1), retention="daily",
             region=REGION, state="completed", copied_from=None, volume_n=None, extra=None, drop=()):
    """A DescribeSnapshots item tagged as snapshot_service tags a member."""
    tags = snapshot_tags(sgid, vg, index, expires, {"team": "db"}, member_count=count,
                         source_instance_id=INSTANCE, source_mount_point="/data", retention_kind=retention)
    if copied_from:
        tags["ams:copied-from"] = copied_from
    tags.update(extra or {})
    for key in drop:
        tags.pop(key, None)
    return {"SnapshotId": snap_id(n), "VolumeId": "vol-ffffffff" if copied_from else vol_id(volume_n or 100 + index),
            "VolumeSize": 10, "StartTime": T0 + timedelta(seconds=index), "State": state,
            "Progress": "100%" if state == "completed" else "40%", "Encrypted": False,
            "Description": f"ams snapshot group {sgid} of volume group {vg['id']}", "Tags": tag_list(tags)}


def empty_volume_state(**kw):
    return dp.VolumeState(groups={}, volumes={}, attachments={}, hosts=copy.deepcopy(HOSTS), **kw)


def empty_snapshot_state():
    return dp.SnapshotState(groups={}, snapshots={}, volume_groups={}, volumes={}, hosts=copy.deepcopy(HOSTS))


def apply(state, plan):
    """The database after ``plan``, as the store writes it (whole seconds, keys by table)."""
    state = copy.deepcopy(state)
    tables = {"volume_groups": ("groups" if isinstance(state, dp.VolumeState) else "volume_groups", "id"),
              "volumes": ("volumes", "volume_id"), "host_volumes": ("attachments", "volume_group_id"),
              "snapshot_groups": ("groups", "id"), "snapshots": ("snapshots", "snapshot_id")}
    for name, keys in plan.deletes.items():
        for key in keys:
            getattr(state, tables[name][0]).pop(key, None)
    for name in ("volume_groups", "volumes", "host_volumes", "snapshot_groups", "snapshots"):
        attr, key = tables[name]
        for row in plan.inserts.get(name, []):
            assert row[key] not in getattr(state, attr), f"{name} {row[key]} inserted twice"
            getattr(state, attr)[row[key]] = {k: (v.replace(microsecond=0) if isinstance(v, datetime) else v)
                                              for k, v in row.items()}
        for key_value, values in plan.updates.get(name, []):
            getattr(state, attr)[key_value].update(values)
    return state


def kinds(plan):
    return sorted(f.kind for f in plan.findings)


# -- volumes -----------------------------------------------------------------------------------------

def raid1(gid=5, first=1, **kw):
    return [volume(first, gid, 0, attached_to=INSTANCE, **kw), volume(first + 1, gid, 1, attached_to=INSTANCE, **kw)]


def test_new_volume_group_is_added_with_its_id_members_and_attachment():
    plan = dp.plan_volumes({REGION: raid1()}, empty_volume_state(), NOW)
    assert plan.added == [5] and plan.findings == [] and plan.missing == []
    (group,) = plan.inserts["volume_groups"]
    assert group["id"] == 5 and group["raid_level"] == 1 and group["stripe_block_size"] is None
    assert (group["fs_type"], group["array_name"], group["md_uuid"], group["fs_uuid"]) == ("xfs", "ams-vg5", MD, FS)
    assert group["availability_zone"] == ZONE and group["region"] == REGION and group["state"] == "available"
    assert group["tags"] == '{"team": "db"}' and group["created_at"] == T0.replace(microsecond=0)
    vols = plan.inserts["volumes"]
    assert [(v["volume_id"], v["member_index"], v["device_name"]) for v in vols] == [
        (vol_id(1), 0, "/dev/sdf"), (vol_id(2), 1, "/dev/sdg")]
    assert vols[0]["iops"] is None and vols[0]["throughput"] is None  # gp3's baseline, as ams records it
    assert vols[0]["volume_group_id"] == 5
    (att,) = plan.inserts["host_volumes"]
    assert att == {"volume_group_id": 5, "instance_id": INSTANCE, "mount_point": "/data", "automount": True,
                   "block_device": "/dev/md/ams-vg5", "attached_at": (T0 + timedelta(minutes=1)).replace(microsecond=0)}


def test_single_volume_uses_its_by_id_link_and_no_array():
    plan = dp.plan_volumes({REGION: [volume(1, 3, 0, level=None, count=1, attached_to=INSTANCE)]}, empty_volume_state(), NOW)
    (group,) = plan.inserts["volume_groups"]
    assert group["raid_level"] is None and group["array_name"] is None and group["md_uuid"] is None
    assert plan.inserts["host_volumes"][0]["block_device"].endswith("vol" + vol_id(1)[4:])


@pytest.mark.parametrize("vtype,iops,throughput,expected", [
    ("gp3", 3000, 125, (None, None)), ("gp3", 6000, 250, (6000, 250)), ("io1", 500, None, (500, None)),
    ("gp2", 300, None, (None, None)), ("st1", None, None, (None, None)),
])
def test_only_provisioned_iops_and_throughput_are_recorded(vtype, iops, throughput, expected):
    item = volume(1, 3, 0, level=None, count=1)
    item.update(VolumeType=vtype, Iops=iops, Throughput=throughput)
    (row,) = dp.plan_volumes({REGION: [item]}, empty_volume_state(), NOW).inserts["volumes"]
    assert (row["iops"], row["throughput"]) == expected


def test_striped_group_keeps_its_chunk():
    members = [volume(i + 1, 8, i, level=10, count=4, stripe=64) for i in range(4)]
    plan = dp.plan_volumes({REGION: members}, empty_volume_state(), NOW)
    assert plan.inserts["volume_groups"][0]["stripe_block_size"] == 64 and "host_volumes" not in plan.inserts


def test_second_pass_over_the_result_is_empty_and_unchanged():
    found = {REGION: raid1() + [volume(9, 6, 0, level=None, count=1)]}
    first = dp.plan_volumes(found, empty_volume_state(), NOW)
    again = dp.plan_volumes(found, apply(empty_volume_state(), first), NOW + timedelta(hours=1))
    assert again.writes == 0 and again.unchanged == [5, 6] and again.added == again.repaired == []


def test_drifted_rows_are_repaired_column_by_column():
    found = {REGION: raid1()}
    state = apply(empty_volume_state(), dp.plan_volumes(found, empty_volume_state(), NOW))
    state.groups[5].update(md_uuid=None, fs_type="ext4", state="deleted", deleted_at=NOW)
    state.volumes[vol_id(2)]["device_name"] = None
    state.attachments[5].update(mount_point="/old", automount=False)
    plan = dp.plan_volumes(found, state, NOW)
    assert plan.repaired == [5] and plan.added == []
    changes = plan.changes[5]
    assert changes["volume_groups.md_uuid"] == (None, MD) and changes["volume_groups.fs_type"] == ("ext4", "xfs")
    assert changes["volume_groups.state"] == ("deleted", "available") and changes["volume_groups.deleted_at"] == (NOW, None)
    assert changes[f"volumes.{vol_id(2)}.device_name"] == (None, "/dev/sdg")
    assert changes["host_volumes.mount_point"] == ("/old", "/data")
    assert dp.plan_volumes(found, apply(state, plan), NOW).writes == 0


def test_untagged_values_of_an_older_ams_never_clear_what_is_recorded():
    old_tags = ("ams:md-uuid", "ams:fs-uuid", "ams:array-name", "ams:mount-point", "ams:automount", "ams:member-count")
    found = {REGION: raid1()}
    state = apply(empty_volume_state(), dp.plan_volumes(found, empty_volume_state(), NOW))
    state.volumes[vol_id(1)]["iops"] = None  # ams records no IOPS it was not given
    state.volumes[vol_id(2)]["iops"] = None
    older = {REGION: raid1(drop=old_tags, mount_point=None)}
    plan = dp.plan_volumes(older, state, NOW)
    assert plan.writes == 0 and plan.unchanged == [5]


def test_attachment_to_an_unknown_instance_is_reported_and_left_out():
    members = [volume(1, 5, 0, attached_to="i-0fffffffffffffff0"), volume(2, 5, 1, attached_to="i-0fffffffffffffff0")]
    plan = dp.plan_volumes({REGION: members}, empty_volume_state(), NOW)
    assert plan.added == [5] and "host_volumes" not in plan.inserts
    assert kinds(plan) == [dp.UNKNOWN_HOST] and "ams host discovery" in plan.findings[0].message


def test_split_attachment_is_reported():
    members = [volume(1, 5, 0, attached_to=INSTANCE), volume(2, 5, 1)]
    plan = dp.plan_volumes({REGION: members}, empty_volume_state(), NOW)
    assert kinds(plan) == [dp.SPLIT_ATTACHMENT] and "host_volumes" not in plan.inserts


def test_a_detached_group_loses_its_recorded_attachment():
    state = apply(empty_volume_state(), dp.plan_volumes({REGION: raid1()}, empty_volume_state(), NOW))
    detached = {REGION: [volume(1, 5, 0), volume(2, 5, 1)]}
    plan = dp.plan_volumes(detached, state, NOW)
    assert plan.deletes == {"host_volumes": [5]} and plan.repaired == [5]
    assert dp.plan_volumes(detached, apply(state, plan), NOW).writes == 0


def test_mount_point_used_by_another_group_is_not_taken_twice():
    found = {REGION: raid1(5, 1) + raid1(6, 3)}
    plan = dp.plan_volumes(found, empty_volume_state(), NOW)
    mounts = {a["volume_group_id"]: a["mount_point"] for a in plan.inserts["host_volumes"]}
    assert mounts == {5: "/data", 6: None} and kinds(plan) == [dp.MOUNT_POINT_TAKEN]


def test_missing_member_is_reported_and_the_rest_recorded():
    plan = dp.plan_volumes({REGION: [volume(1, 5, 0)]}, empty_volume_state(), NOW)
    assert kinds(plan) == [dp.MISSING_MEMBER] and plan.added == [5]
    assert "member(s) 1 of 2 missing" in plan.findings[0].message
    gap = dp.plan_volumes({REGION: [volume(1, 5, 0, drop=["ams:member-count"]),
                                    volume(3, 5, 2, drop=["ams:member-count"])]}, empty_volume_state(), NOW)
    assert kinds(gap) == [dp.MISSING_MEMBER] and "member(s) 1 of 3" in gap.findings[0].message


def test_duplicate_index_is_not_recorded():
    plan = dp.plan_volumes({REGION: [volume(1, 5, 0), volume(2, 5, 0)]}, empty_volume_state(), NOW)
    assert kinds(plan) == [dp.DUPLICATE_INDEX] and plan.writes == 0 and plan.added == []


def test_members_in_different_zones_are_not_recorded():
    plan = dp.plan_volumes({REGION: [volume(1, 5, 0), volume(2, 5, 1, zone="us-east-1b")]}, empty_volume_state(), NOW)
    assert kinds(plan) == [dp.MIXED_ZONES] and plan.writes == 0


def test_members_in_different_regions_are_not_recorded():
    plan = dp.plan_volumes({REGION: [volume(1, 5, 0)], "eu-west-1": [volume(2, 5, 1, zone="eu-west-1a")]},
                           empty_volume_state(), NOW)
    assert kinds(plan) == [dp.MIXED_REGIONS] and plan.writes == 0


@pytest.mark.parametrize("extra", [{"ams:raid-level": "0"}, {"ams:filesystem": "ext4"}, {"ams:md-uuid": "x"},
                                   {"ams:member-count": "3"}])
def test_conflicting_layout_tags_are_not_recorded(extra):
    plan = dp.plan_volumes({REGION: [volume(1, 5, 0), volume(2, 5, 1, extra=extra)]}, empty_volume_state(), NOW)
    assert kinds(plan) == [dp.CONFLICTING_TAGS] and plan.writes == 0


@pytest.mark.parametrize("extra", [{"ams:volume-group-id": "x"}, {"ams:member-index": "-1"},
                                   {"ams:raid-level": "3"}, {"ams:automount": "maybe"}, {"ams:member-count": "1"}])
def test_bad_tags_are_reported(extra):
    members = [volume(1, 5, 0, attached_to=INSTANCE, extra=extra), volume(2, 5, 1, attached_to=INSTANCE, extra=extra)]
    plan = dp.plan_volumes({REGION: members}, empty_volume_state(), NOW)
    assert plan.findings and set(kinds(plan)) <= {dp.BAD_TAG, dp.CONFLICTING_TAGS} and plan.added == []


def test_volumes_being_deleted_do_not_count():
    plan = dp.plan_volumes({REGION: [volume(1, 5, 0, state="deleting"), volume(2, 5, 1, state="deleted")]},
                           empty_volume_state(), NOW)
    assert plan.writes == 0 and plan.findings == []


def test_id_collision_is_reported_never_overwritten():
    state = apply(empty_volume_state(), dp.plan_volumes({REGION: raid1()}, empty_volume_state(), NOW))
    other = {REGION: [volume(31, 5, 0), volume(32, 5, 1)]}  # other volumes tagged 5
    plan = dp.plan_volumes(other, state, NOW)
    assert kinds(plan) == [dp.ID_COLLISION] and plan.writes == 0
    assert plan.missing == []  # the stored group is not reported missing: its id is in EC2
    moved = {REGION: [volume(1, 7, 0), volume(2, 7, 1)]}  # a stored volume now tagged with another group
    plan = dp.plan_volumes(moved, state, NOW)
    assert dp.ID_COLLISION in kinds(plan) and "volume_groups" not in plan.inserts


def test_group_known_only_from_its_snapshots_is_revived():
    stub = {"id": 5, "raid_level": 1, "stripe_block_size": None, "fs_type": "xfs", "region": REGION,
            "availability_zone": dp.UNKNOWN_ZONE, "tags": None, "created_at": NOW, "deleted_at": NOW, "state": "deleted",
            "array_name": "ams-vg5", "md_uuid": MD, "fs_uuid": FS, "cloned_from_id": None}
    state = empty_volume_state()
    state.groups[5] = stub
    plan = dp.plan_volumes({REGION: raid1()}, state, NOW)
    assert plan.repaired == [5] and plan.findings == []
    after = apply(state, plan)
    assert after.groups[5]["availability_zone"] == ZONE and after.groups[5]["deleted_at"] is None
    assert dp.plan_volumes({REGION: raid1()}, after, NOW).writes == 0


def test_missing_groups_are_reported_and_pruned_only_when_asked():
    state = apply(empty_volume_state(), dp.plan_volumes({REGION: raid1()}, empty_volume_state(), NOW))
    report = dp.plan_volumes({REGION: []}, state, NOW)
    assert report.missing == [{"volume_group_id": 5, "region": REGION, "volume_ids": [vol_id(1), vol_id(2)]}]
    assert report.writes == 0
    pruned = dp.plan_volumes({REGION: []}, state, NOW, prune=True)
    after = apply(state, pruned)
    assert after.groups[5]["state"] == "deleted" and after.groups[5]["deleted_at"] == NOW
    assert all(v["deleted_at"] == NOW for v in after.volumes.values()) and after.attachments == {}
    again = dp.plan_volumes({REGION: []}, after, NOW, prune=True)
    assert again.writes == 0 and again.missing == []
    elsewhere = dp.plan_volumes({"eu-west-1": []}, state, NOW, prune=True)  # regions not scanned are left alone
    assert elsewhere.writes == 0 and elsewhere.missing == []


def test_missing_member_of_a_stored_group_is_pruned():
    state = apply(empty_volume_state(), dp.plan_volumes({REGION: raid1()}, empty_volume_state(), NOW))
    plan = dp.plan_volumes({REGION: raid1()[:1]}, state, NOW, prune=True)
    assert {"volume_group_id": 5, "region": REGION, "volume_ids": [vol_id(2)]} in plan.missing
    assert ("volumes", vol_id(2)) in [(t, k) for t, items in plan.updates.items() for k, _ in items]


def test_a_clone_is_linked_to_its_snapshot_group():
    state = empty_volume_state(snapshot_group_of={snap_id(7): 12})
    plan = dp.plan_volumes({REGION: [volume(1, 9, 0, level=None, count=1, extra={"ams:cloned-from": snap_id(7)})]},
                           state, NOW)
    assert plan.inserts["volume_groups"][0]["cloned_from_id"] == 12


# -- snapshots -----------------------------------------------------------------------------------------

def pair(sgid=20, first=1, **kw):
    return [snapshot(first, sgid, 0, **kw), snapshot(first + 1, sgid, 1, **kw)]


def snapshot_state_with_volume_group():
    state = empty_snapshot_state()
    state.volume_groups[5] = dict(GROUP, region=REGION, availability_zone=ZONE)
    state.volumes[vol_id(100)] = {"volume_id": vol_id(100), "volume_type": "io1", "iops": 500, "throughput": None}
    return state


def test_new_snapshot_group_is_added_with_layout_expiry_and_source():
    state = snapshot_state_with_volume_group()
    plan = dp.plan_snapshots({REGION: pair()}, state, NOW)
    assert plan.added == [20] and plan.findings == []
    (group,) = plan.inserts["snapshot_groups"]
    assert group["id"] == 20 and group["volume_group_id"] == 5 and group["schedule_id"] is None
    assert group["expires_at"] == NOW + timedelta(days=1) and group["retention_kind"] == "daily"
    assert (group["raid_level"], group["array_name"], group["md_uuid"], group["fs_uuid"]) == (1, "ams-vg5", MD, FS)
    assert group["member_count"] == 2 and group["state"] == "completed" and group["description"] is None
    assert (group["source_instance_id"], group["source_hostname"], group["source_mount_point"]) == (INSTANCE, "db1", "/data")
    assert group["created_at"] == T0.replace(microsecond=0) and group["copied_from_id"] is None
    snaps = plan.inserts["snapshots"]
    assert [(s["snapshot_id"], s["member_index"], s["volume_id"]) for s in snaps] == [
        (snap_id(1), 0, vol_id(100)), (snap_id(2), 1, vol_id(101))]
    assert snaps[0]["volume_type"] == "io1" and snaps[0]["iops"] == 500 and snaps[1]["volume_type"] is None
    assert all(s["expires_at"] == NOW + timedelta(days=1) and s["progress"] == 100 for s in snaps)
    assert "volume_groups" not in plan.inserts


def test_snapshot_group_whose_volume_group_is_gone_gets_a_deleted_one():
    plan = dp.plan_snapshots({REGION: pair()}, empty_snapshot_state(), NOW)
    (stub,) = plan.inserts["volume_groups"]
    assert stub["id"] == 5 and stub["state"] == "deleted" and stub["deleted_at"] == NOW and stub["raid_level"] == 1
    assert kinds(plan) == [dp.VOLUME_GROUP_GONE]
    second = dp.plan_snapshots({REGION: pair(21, 3)}, empty_snapshot_state(), NOW)  # one stub per volume group
    both = dp.plan_snapshots({REGION: pair() + pair(21, 3)}, empty_snapshot_state(), NOW)
    assert len(second.inserts["volume_groups"]) == len(both.inserts["volume_groups"]) == 1


def test_cross_region_copy_is_linked_to_its_source_and_inserted_after_it():
    source = pair()
    copies = [snapshot(11 + i, 30, i, region="eu-west-1", copied_from=f"{REGION}/{snap_id(i + 1)}") for i in range(2)]
    state = snapshot_state_with_volume_group()
    plan = dp.plan_snapshots({"eu-west-1": copies, REGION: source}, state, NOW)
    assert [g["id"] for g in plan.inserts["snapshot_groups"]] == [20, 30]
    copy_group = plan.inserts["snapshot_groups"][1]
    assert copy_group["copied_from_id"] == 20 and copy_group["region"] == "eu-west-1"
    copy_snaps = [s for s in plan.inserts["snapshots"] if s["snapshot_group_id"] == 30]
    assert [s["source_snapshot_id"] for s in copy_snaps] == [snap_id(1), snap_id(2)]
    assert [s["volume_id"] for s in copy_snaps] == [vol_id(100), vol_id(101)]  # the original's, not vol-ffffffff
    after = apply(state, plan)
    again = dp.plan_snapshots({"eu-west-1": copies, REGION: source}, after, NOW)
    assert again.writes == 0 and sorted(again.unchanged) == [20, 30]
    # the copy alone (its source region not scanned) still links through the database
    alone = dp.plan_snapshots({"eu-west-1": copies}, apply(state, dp.plan_snapshots({REGION: source}, state, NOW)), NOW)
    assert alone.inserts["snapshot_groups"][0]["copied_from_id"] == 20


def test_copy_of_a_vanished_source_is_recorded_unlinked():
    copies = [snapshot(11 + i, 30, i, copied_from=f"eu-west-1/{snap_id(90 + i)}") for i in range(2)]
    plan = dp.plan_snapshots({REGION: copies}, snapshot_state_with_volume_group(), NOW)
    assert plan.inserts["snapshot_groups"][0]["copied_from_id"] is None and kinds(plan) == [dp.SOURCE_GONE]


def test_snapshot_second_pass_is_empty_and_pending_progress_is_repaired():
    state = snapshot_state_with_volume_group()
    pending = {REGION: pair(state="pending")}
    after = apply(state, dp.plan_snapshots(pending, state, NOW))
    assert after.groups[20]["state"] == "pending"
    assert dp.plan_snapshots(pending, after, NOW).writes == 0
    done = dp.plan_snapshots({REGION: pair()}, after, NOW)
    assert done.repaired == [20] and done.changes[20]["snapshot_groups.state"] == ("pending", "completed")
    assert done.changes[20][f"snapshots.{snap_id(1)}.progress"] == (40, 100)


def test_snapshot_repair_keeps_schedule_description_and_hostname():
    state = snapshot_state_with_volume_group()
    after = apply(state, dp.plan_snapshots({REGION: pair()}, state, NOW))
    after.groups[20].update(schedule_id=3, description="before upgrade", source_hostname="db1.example.com",
                            expires_at=None, retention_kind=None)
    plan = dp.plan_snapshots({REGION: pair()}, after, NOW)
    assert set(plan.changes[20]) == {"snapshot_groups.expires_at", "snapshot_groups.retention_kind"}
    fixed = apply(after, plan).groups[20]
    assert (fixed["schedule_id"], fixed["description"], fixed["source_hostname"]) == (3, "before upgrade", "db1.example.com")


def test_snapshot_user_description_is_kept():
    items = pair()
    for item in items:
        item["Description"] = "before upgrade"
    plan = dp.plan_snapshots({REGION: items}, snapshot_state_with_volume_group(), NOW)
    assert plan.inserts["snapshot_groups"][0]["description"] == "before upgrade"


def test_snapshot_inconsistencies():
    state = snapshot_state_with_volume_group()
    assert kinds(dp.plan_snapshots({REGION: pair()[:1]}, state, NOW)) == [dp.MISSING_MEMBER]
    dup = dp.plan_snapshots({REGION: [snapshot(1, 20, 0), snapshot(2, 20, 0)]}, state, NOW)
    assert kinds(dup) == [dp.DUPLICATE_INDEX] and dup.writes == 0
    mixed = dp.plan_snapshots({REGION: [snapshot(1, 20, 0)], "eu-west-1": [snapshot(2, 20, 1)]}, state, NOW)
    assert kinds(mixed) == [dp.MIXED_REGIONS] and mixed.writes == 0
    expiry = dp.plan_snapshots({REGION: [snapshot(1, 20, 0), snapshot(2, 20, 1, expires=NOW)]}, state, NOW)
    assert kinds(expiry) == [dp.CONFLICTING_TAGS] and expiry.writes == 0
    bad = dp.plan_snapshots({REGION: pair(extra={"ams:expires": "tomorrow"})}, state, NOW)
    assert kinds(bad) == [dp.BAD_TAG] and bad.writes == 0
    untagged_vg = dp.plan_snapshots({REGION: pair(drop=["ams:volume-group-id"])}, state, NOW)
    assert kinds(untagged_vg) == [dp.BAD_TAG]


def test_snapshot_id_collision():
    state = snapshot_state_with_volume_group()
    after = apply(state, dp.plan_snapshots({REGION: pair()}, state, NOW))
    other = dp.plan_snapshots({REGION: pair(first=50)}, after, NOW)
    assert kinds(other) == [dp.ID_COLLISION] and other.writes == 0
    other_vg = dict(GROUP, id=6)
    moved = dp.plan_snapshots({REGION: pair(vg=other_vg)}, after, NOW)
    assert kinds(moved) == [dp.ID_COLLISION] and moved.writes == 0


def test_snapshot_prune():
    state = snapshot_state_with_volume_group()
    after = apply(state, dp.plan_snapshots({REGION: pair()}, state, NOW))
    report = dp.plan_snapshots({REGION: []}, after, NOW)
    assert report.missing == [{"snapshot_group_id": 20, "region": REGION, "snapshot_ids": [snap_id(1), snap_id(2)]}]
    assert report.writes == 0
    pruned = apply(after, dp.plan_snapshots({REGION: []}, after, NOW, prune=True))
    assert pruned.groups[20]["state"] == "deleted" and pruned.groups[20]["deleted_at"] == NOW
    assert all(s["state"] == "deleted" for s in pruned.snapshots.values())
    assert dp.plan_snapshots({REGION: []}, pruned, NOW, prune=True).writes == 0
    one_gone = dp.plan_snapshots({REGION: pair()[:1]}, after, NOW, prune=True)
    assert {"snapshot_group_id": 20, "region": REGION, "snapshot_ids": [snap_id(2)]} in one_gone.missing


def test_a_group_being_deleted_is_left_to_its_deleter():
    state = snapshot_state_with_volume_group()
    after = apply(state, dp.plan_snapshots({REGION: pair()}, state, NOW))
    after.groups[20]["state"] = "deleting"
    assert dp.plan_snapshots({REGION: pair()}, after, NOW).writes == 0
    assert dp.plan_snapshots({REGION: []}, after, NOW, prune=True).writes == 0


def test_report_shape():
    plan = dp.plan_volumes({REGION: raid1()[:1]}, empty_volume_state(), NOW)
    report = plan.as_dict()
    assert report["added"] == [5] and report["totals"]["findings"] == 1
    assert report["findings"][0]["kind"] == dp.MISSING_MEMBER and report["kind"] == "volume"


def test_a_group_another_ams_is_changing_is_left_alone():
    state = apply(empty_volume_state(), dp.plan_volumes({REGION: raid1()}, empty_volume_state(), NOW))
    state.groups[5].update(lock_owner="cron1:42:t:volume detach", lock_until=NOW + timedelta(minutes=1), fs_type="ext4")
    plan = dp.plan_volumes({REGION: raid1()}, state, NOW, prune=True)
    assert plan.writes == 0 and kinds(plan) == [dp.BUSY] and "cron1:42" in plan.findings[0].message
    assert dp.plan_volumes({REGION: []}, state, NOW, prune=True).writes == 0  # not pruned either
    state.groups[5]["lock_until"] = NOW - timedelta(seconds=1)  # a lease that passed counts for nothing
    assert dp.plan_volumes({REGION: raid1()}, state, NOW).repaired == [5]
    snaps = snapshot_state_with_volume_group()
    snaps.volume_groups[5]["lock_until"] = NOW + timedelta(minutes=1)
    plan = dp.plan_snapshots({REGION: pair()}, snaps, NOW)
    assert plan.writes == 0 and kinds(plan) == [dp.BUSY]
    # a snapshot group whose snapshots are being started is not missing, even with --prune-missing
    started = apply(snaps, dp.plan_snapshots({REGION: pair()}, dp.SnapshotState(
        groups={}, snapshots={}, volume_groups={5: dict(snaps.volume_groups[5], lock_until=None)}, volumes={},
        hosts=HOSTS), NOW))
    started.volume_groups[5]["lock_until"] = NOW + timedelta(minutes=1)
    plan = dp.plan_snapshots({REGION: []}, started, NOW, prune=True)
    assert plan.writes == 0 and plan.missing == []

"""The rig's snapshots are as strict as EC2's: "pending" with a rising Progress before
"completed", CreateSnapshots honours its exclusions, a snapshot a registered image maps cannot be
deleted (and DescribeImages finds it by ``block-device-mapping.snapshot-id``), a copy can be
made to fail, a snapshot's file can be damaged on purpose.  No guest needed."""

import os
import time

import pytest
from botocore.exceptions import ClientError

from tests.rig.timing import DEFAULTS

ZONE = "us-east-1a"
WEST = "eu-west-1"
MIB = 1 << 20


def _until(predicate, timeout=20, interval=0.05):
    t0 = time.monotonic()
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() - t0 < timeout, "condition not reached in time"
        time.sleep(interval)


def _error(excinfo):
    return excinfo.value.response["Error"]["Code"], excinfo.value.response["Error"]["Message"]


def _snapshot(ec2, snapshot_id):
    return ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]


def _volume(ec2, size=1, zone=ZONE):
    volume_id = ec2.create_volume(Size=size, AvailabilityZone=zone, VolumeType="gp3")["VolumeId"]
    _until(lambda: ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]["State"]
           == "available")
    return volume_id


def _write_at(path, offset, data):
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def _read_at(path, offset, length):
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(length)


def _watch(ec2, snapshot_id):
    """(State, Progress) of every poll until the snapshot leaves "pending"."""
    seen = []
    while True:
        item = _snapshot(ec2, snapshot_id)
        seen.append((item["State"], item["Progress"]))
        if item["State"] != "pending":
            return seen
        assert len(seen) < 2000, "still pending"
        time.sleep(0.05)


def _percent(progress):
    return int(progress.rstrip("%"))


def _instance_with_volumes(rig, ec2, count):
    instance_id = rig.register_instance(None, zone=ZONE, name="plain")
    volumes = [_volume(ec2) for _ in range(count)]
    for i, volume_id in enumerate(volumes):
        ec2.attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device=f"/dev/sd{'fghij'[i]}")
    inst = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    root = next(m["Ebs"]["VolumeId"] for m in inst["BlockDeviceMappings"]
                if m["DeviceName"] == inst["RootDeviceName"])
    return instance_id, volumes, root


def _register_image(ec2, name, *snapshot_ids):
    mappings = [{"DeviceName": f"/dev/sd{'abcdef'[i]}", "Ebs": {"SnapshotId": s}}
                for i, s in enumerate(snapshot_ids)]
    return ec2.register_image(Name=name, Architecture="x86_64", VirtualizationType="hvm",
                              RootDeviceName="/dev/sda", BlockDeviceMappings=mappings)["ImageId"]


# ----------------------------------------------------------------------------------------------
# pending, then completed

def test_timing_defaults_and_reset(ec2_clean, ec2_client):
    assert (DEFAULTS["snapshot"], DEFAULTS["copy"]) == (1.0, 1.0)
    ec2_clean.timing.set(snapshot=30, copy=0)
    ec2_client.create_snapshot(VolumeId=_volume(ec2_client))
    assert ec2_clean._scheduler.pending() == 1
    ec2_clean.reset()
    assert ec2_clean._scheduler.pending() == 0
    assert ec2_clean.timing.as_dict() == DEFAULTS


def test_create_snapshot_is_pending_with_rising_progress(ec2_clean, ec2_client):
    ec2_clean.timing.snapshot = 1.5
    volume_id = _volume(ec2_client)
    _write_at(ec2_clean.volume_path(volume_id), 3 * MIB, b"before")
    t0 = time.monotonic()
    answer = ec2_client.create_snapshot(VolumeId=volume_id, Description="slow")
    _write_at(ec2_clean.volume_path(volume_id), 3 * MIB, b"after!")
    assert answer["State"] == "pending"
    # the data is taken at the request, not when the snapshot completes
    assert _read_at(ec2_clean.snapshot_path(answer["SnapshotId"]), 3 * MIB, 6) == b"before"
    pending = ec2_client.describe_snapshots(
        Filters=[{"Name": "status", "Values": ["pending"]}])["Snapshots"]
    assert [s["SnapshotId"] for s in pending] == [answer["SnapshotId"]]

    seen = _watch(ec2_client, answer["SnapshotId"])
    assert time.monotonic() - t0 >= 1.4
    assert seen[-1] == ("completed", "100%")
    percents = [_percent(p) for state, p in seen[:-1]]
    assert all(state == "pending" for state, _ in seen[:-1])
    assert percents == sorted(percents) and percents[0] < 50 and max(percents) <= 99
    assert len(set(percents)) >= 3  # it rises
    assert _snapshot(ec2_client, answer["SnapshotId"])["Progress"] == "100%"


def test_botocore_waiter_and_zero_timing(ec2_clean, ec2_client):
    ec2_clean.timing.snapshot = 0.5
    snapshot_id = ec2_client.create_snapshot(VolumeId=_volume(ec2_client))["SnapshotId"]
    ec2_client.get_waiter("snapshot_completed").wait(
        SnapshotIds=[snapshot_id], WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})
    ec2_clean.timing.snapshot = 0  # as plain moto: completed in the answer
    answer = ec2_client.create_snapshot(VolumeId=_volume(ec2_client))
    assert (answer["State"], answer["Progress"]) == ("completed", "100%")
    assert ec2_clean._scheduler.pending() == 0


def test_copy_is_pending_for_timing_copy(ec2_clean, ec2_client):
    ec2_clean.timing.set(snapshot=0, copy=1.0)
    volume_id = _volume(ec2_client)
    _write_at(ec2_clean.volume_path(volume_id), 5 * MIB, b"copied")
    source = ec2_client.create_snapshot(VolumeId=volume_id)["SnapshotId"]
    west = ec2_clean.client(region=WEST)
    t0 = time.monotonic()
    copy = west.copy_snapshot(SourceSnapshotId=source, SourceRegion="us-east-1")["SnapshotId"]
    assert _read_at(ec2_clean.snapshot_path(copy), 5 * MIB, 6) == b"copied"  # before the answer
    assert _snapshot(west, copy)["State"] == "pending"
    seen = _watch(west, copy)
    assert seen[-1] == ("completed", "100%") and time.monotonic() - t0 >= 0.9
    assert _snapshot(ec2_client, source)["State"] == "completed"


# ----------------------------------------------------------------------------------------------
# CreateSnapshots: ExcludeDataVolumeIds, ExcludeBootVolume

def test_create_snapshots_honours_the_exclusions(ec2_clean, ec2_client):
    ec2_clean.timing.snapshot = 0.2
    instance_id, volumes, root = _instance_with_volumes(ec2_clean, ec2_client, 3)
    answer = ec2_client.create_snapshots(
        InstanceSpecification={"InstanceId": instance_id, "ExcludeBootVolume": True,
                               "ExcludeDataVolumeIds": [volumes[1]]},
        Description="two of three",
        TagSpecifications=[{"ResourceType": "snapshot", "Tags": [{"Key": "k", "Value": "v"}]}])
    taken = {s["VolumeId"]: s["SnapshotId"] for s in answer["Snapshots"]}
    assert sorted(taken) == sorted([volumes[0], volumes[2]])
    assert {s["State"] for s in answer["Snapshots"]} == {"pending"}
    described = ec2_client.describe_snapshots(OwnerIds=["self"])["Snapshots"]
    assert sorted(s["SnapshotId"] for s in described) == sorted(taken.values())
    assert ec2_clean.files()["snapshots"] == sorted(taken.values())
    tagged = ec2_client.describe_tags(
        Filters=[{"Name": "resource-type", "Values": ["snapshot"]}])["Tags"]
    assert sorted(t["ResourceId"] for t in tagged) == sorted(taken.values())

    # without ExcludeBootVolume the root volume is snapshotted too (it has no file)
    answer = ec2_client.create_snapshots(
        InstanceSpecification={"InstanceId": instance_id, "ExcludeDataVolumeIds": volumes[1:]})
    assert sorted(s["VolumeId"] for s in answer["Snapshots"]) == sorted([root, volumes[0]])
    # a volume id that is not on the instance changes nothing
    answer = ec2_client.create_snapshots(
        InstanceSpecification={"InstanceId": instance_id, "ExcludeBootVolume": True,
                               "ExcludeDataVolumeIds": ["vol-0123456789abcdef0"]})
    assert sorted(s["VolumeId"] for s in answer["Snapshots"]) == sorted(volumes)


def test_create_snapshots_refuses_the_root_volume_among_the_excluded(ec2_clean, ec2_client):
    instance_id, volumes, root = _instance_with_volumes(ec2_clean, ec2_client, 1)
    with pytest.raises(ClientError) as err:
        ec2_client.create_snapshots(InstanceSpecification={
            "InstanceId": instance_id, "ExcludeDataVolumeIds": [root]})
    code, message = _error(err)
    assert code == "InvalidParameterValue" and root in message and "ExcludeBootVolume" in message
    too_many = [f"vol-{i:017x}" for i in range(41)]
    with pytest.raises(ClientError) as err:
        ec2_client.create_snapshots(InstanceSpecification={
            "InstanceId": instance_id, "ExcludeBootVolume": True,
            "ExcludeDataVolumeIds": too_many})
    assert _error(err)[0] == "InvalidParameterValue"
    assert ec2_client.describe_snapshots(OwnerIds=["self"])["Snapshots"] == []
    assert ec2_clean.files()["snapshots"] == []


# ----------------------------------------------------------------------------------------------
# RegisterImage, DescribeImages by snapshot, DeleteSnapshot refused

def test_delete_refuses_a_snapshot_a_registered_image_maps(ec2_clean, ec2_client):
    ec2_clean.timing.snapshot = 0
    ours = [ec2_client.create_snapshot(VolumeId=_volume(ec2_client, size=2))["SnapshotId"]
            for _ in range(2)]
    image_id = _register_image(ec2_client, "ams-test-image", ours[0])
    [image] = ec2_client.describe_images(ImageIds=[image_id])["Images"]
    assert image["BlockDeviceMappings"] == [{"DeviceName": "/dev/sda", "Ebs": {
        "SnapshotId": ours[0], "VolumeSize": 2, "VolumeType": "gp2",
        "DeleteOnTermination": True, "Encrypted": False}}]
    # RegisterImage makes no snapshot of its own (moto does; the rig drops it)
    listed = ec2_client.describe_snapshots(OwnerIds=["self"])["Snapshots"]
    assert sorted(s["SnapshotId"] for s in listed) == sorted(ours)

    with pytest.raises(ClientError) as err:
        ec2_client.delete_snapshot(SnapshotId=ours[0])
    assert _error(err) == ("InvalidSnapshot.InUse",
                           f"The snapshot {ours[0]} is currently in use by {image_id}")
    assert os.path.exists(ec2_clean.snapshot_path(ours[0]))
    ec2_client.delete_snapshot(SnapshotId=ours[1])  # not mapped: deleted
    ec2_client.deregister_image(ImageId=image_id)
    ec2_client.delete_snapshot(SnapshotId=ours[0])
    assert ec2_clean.files()["snapshots"] == []


def test_register_image_of_an_unknown_snapshot_is_refused(ec2_clean, ec2_client):
    with pytest.raises(ClientError) as err:
        _register_image(ec2_client, "ams-missing", "snap-0123456789abcdef0")
    assert _error(err)[0] == "InvalidSnapshot.NotFound"
    assert ec2_client.describe_images(Owners=["self"])["Images"] == []


def test_describe_images_by_block_device_mapping(ec2_clean, ec2_client):
    ec2_clean.timing.snapshot = 0
    a, b, c = [ec2_client.create_snapshot(VolumeId=_volume(ec2_client))["SnapshotId"]
               for _ in range(3)]
    image_a = _register_image(ec2_client, "ams-image-a", a)
    image_ab = _register_image(ec2_client, "ams-image-ab", a, b)
    image_c = _register_image(ec2_client, "ams-image-c", c)

    def found(name, values, **params):
        images = ec2_client.describe_images(
            Filters=[{"Name": name, "Values": values}], **params)["Images"]
        return sorted(i["ImageId"] for i in images)

    snap = "block-device-mapping.snapshot-id"
    assert found(snap, [a]) == sorted([image_a, image_ab])
    assert found(snap, [b]) == [image_ab]
    assert found(snap, [b, c]) == sorted([image_ab, image_c])  # any value, any mapping
    assert found(snap, [c, "snap-0123456789abcdef0"]) == [image_c]
    assert found(snap, ["snap-0123456789abcdef0"]) == []
    assert found(snap, ["snap-*"], Owners=["self"]) == sorted([image_a, image_ab, image_c])
    assert found("block-device-mapping.device-name", ["/dev/sdb"]) == [image_ab]
    assert found("block-device-mapping.volume-size", ["1"]) == sorted([image_a, image_ab, image_c])
    assert found("block-device-mapping.delete-on-termination", ["false"]) == []
    both = ec2_client.describe_images(Owners=["self"], Filters=[
        {"Name": snap, "Values": [a]}, {"Name": "name", "Values": ["ams-image-ab"]}])["Images"]
    assert [i["ImageId"] for i in both] == [image_ab]
    with pytest.raises(ClientError) as err:
        found("block-device-mapping.bogus", ["x"])
    assert _error(err)[0] == "InvalidParameterValue"
    # the image of a deleted (deregistered) AMI no longer holds its snapshot
    ec2_client.deregister_image(ImageId=image_c)
    assert found(snap, [c]) == []
    ec2_client.delete_snapshot(SnapshotId=c)


# ----------------------------------------------------------------------------------------------
# fail_copy

def test_fail_copy_ends_the_copy_in_error_after_pending(ec2_clean, ec2_client):
    ec2_clean.timing.set(snapshot=0, copy=0.6)
    source = ec2_client.create_snapshot(VolumeId=_volume(ec2_client))["SnapshotId"]
    west = ec2_clean.client(region=WEST)
    fault = ec2_clean.faults.fail_copy()
    assert ec2_clean.faults.pending() == [("CopySnapshot", "error", 1)]
    failed = west.copy_snapshot(SourceSnapshotId=source, SourceRegion="us-east-1")["SnapshotId"]
    assert fault.fired == 1 and ec2_clean.faults.pending() == []
    assert os.path.exists(ec2_clean.snapshot_path(failed))
    seen = _watch(west, failed)
    state, progress = seen[-1]
    assert state == "error" and seen[0][0] == "pending"
    assert _percent(progress) < 100 and _snapshot(west, failed)["Progress"] == progress
    assert not os.path.exists(ec2_clean.snapshot_path(failed))  # a failed copy has no data

    # the next copy is fine (count=1)
    good = west.copy_snapshot(SourceSnapshotId=source, SourceRegion="us-east-1")["SnapshotId"]
    assert _watch(west, good)[-1] == ("completed", "100%")

    # a snapshot in "error" can be neither restored nor copied
    with pytest.raises(ClientError) as err:
        west.create_volume(SnapshotId=failed, AvailabilityZone=WEST + "a")
    assert _error(err)[0] == "IncorrectState"
    with pytest.raises(ClientError) as err:
        ec2_client.copy_snapshot(SourceSnapshotId=failed, SourceRegion=WEST)
    assert _error(err)[0] == "IncorrectState"
    west.delete_snapshot(SnapshotId=failed)  # but deleted


def test_fail_copy_by_region_count_and_reset(ec2_clean, ec2_client):
    ec2_clean.timing.set(snapshot=0, copy=0)
    source = ec2_client.create_snapshot(VolumeId=_volume(ec2_client))["SnapshotId"]
    west = ec2_clean.client(region=WEST)
    ec2_clean.faults.fail_copy(count=2, region=WEST)
    same_region = ec2_client.copy_snapshot(SourceSnapshotId=source, SourceRegion="us-east-1")
    assert _snapshot(ec2_client, same_region["SnapshotId"])["State"] == "completed"
    states = [_snapshot(west, west.copy_snapshot(SourceSnapshotId=source,
                                                 SourceRegion="us-east-1")["SnapshotId"])["State"]
              for _ in range(3)]
    assert states == ["error", "error", "completed"]  # copy=0: the state is final at once
    ec2_clean.faults.fail_copy()
    ec2_clean.reset()
    assert ec2_clean.faults.pending() == []


# ----------------------------------------------------------------------------------------------
# corrupt_snapshot

def test_corrupt_snapshot_overwrites_part_of_its_file(ec2_clean, ec2_client):
    ec2_clean.timing.snapshot = 0
    volume_id = _volume(ec2_client, size=1)
    path = ec2_clean.volume_path(volume_id)
    pattern = bytes(range(256)) * 4096  # 1 MiB
    for mib in (0, 509, 510, 513, 514, 1023):
        _write_at(path, mib * MIB, pattern)
    snapshot_id = ec2_client.create_snapshot(VolumeId=volume_id)["SnapshotId"]
    snap_file = ec2_clean.snapshot_path(snapshot_id)

    offset, length = ec2_clean.corrupt_snapshot(snapshot_id)
    assert (offset, length) == (510 * MIB, 4 * MIB)  # 4 MiB in the middle of the 1 GiB file
    assert os.path.getsize(snap_file) == 1 << 30
    assert _read_at(snap_file, 509 * MIB, MIB) == pattern  # just before: untouched
    assert _read_at(snap_file, 514 * MIB, MIB) == pattern  # just after: untouched
    assert _read_at(snap_file, 510 * MIB, MIB) != pattern
    assert _read_at(snap_file, 513 * MIB, MIB) != pattern
    assert _read_at(path, 510 * MIB, MIB) == pattern  # the volume itself is not touched
    clone = ec2_client.create_volume(SnapshotId=snapshot_id, AvailabilityZone=ZONE)["VolumeId"]
    assert _read_at(ec2_clean.volume_path(clone), 510 * MIB, MIB) != pattern

    assert ec2_clean.corrupt_snapshot(snapshot_id, offset_mib=0, length_mib=1) == (0, MIB)
    assert _read_at(snap_file, 0, MIB) != pattern and _read_at(snap_file, MIB, 16) == bytes(16)
    with pytest.raises(ValueError):
        ec2_clean.corrupt_snapshot(snapshot_id, offset_mib=1022, length_mib=4)
    with pytest.raises(ValueError):
        ec2_clean.corrupt_snapshot(snapshot_id, length_mib=0)
    with pytest.raises(FileNotFoundError):
        ec2_clean.corrupt_snapshot("snap-0123456789abcdef0")

"""amslib.aws.snapshots against the rig's EC2 endpoint (moto's server with the rig's hooks and
faults): multi-volume snapshots of members only, per-volume snapshots, the completion waiter and
its progress, volumes from snapshots, cross-region copies with tags and tokens, delete with
refusals, retries.

Where a test needs what only the stricter rig of issue 9 does (snapshots "pending" before
"completed", ExcludeDataVolumeIds honoured, InvalidSnapshot.InUse for a snapshot an AMI was
registered from, a copy that ends in "error"), it skips when the rig lacks that feature."""

import logging
import os

import pytest

from amslib.aws.clients import AwsClients
from amslib.aws.ebs import BatchError, Ebs
from amslib.aws.snapshots import Snapshots
from amslib.core.errors import AwsError, ConflictError, NotFoundError
from amslib.core.settings import load_settings
from amslib.ebs.params import VolumeSpec, check_volume_spec

REGION = "us-east-1"
WEST = "eu-west-1"
ZONE = "us-east-1a"
UNKNOWN = "snap-0123456789abcdef0"


def strict_snapshots(rig):
    """True when the rig has issue 9's snapshot behaviour (its ``timing.snapshot`` marks it)."""
    return hasattr(rig.timing, "snapshot")


def need_strict(rig, what):
    if not strict_snapshots(rig):
        pytest.skip(f"this rig lacks {what} (no rig.timing.snapshot yet)")


@pytest.fixture
def aws(ec2_clean):
    return AwsClients(load_settings(), region=REGION)


@pytest.fixture
def ebs(aws):
    return Ebs(aws, REGION, waiter_delay=0.1)


@pytest.fixture
def snaps(aws):
    return Snapshots(aws, REGION, waiter_delay=0.1)


def new_volumes(ebs, count, size=1, zone=ZONE):
    spec = check_volume_spec("gp3", size)
    ids = ebs.create_volumes([{"spec": spec, "zone": zone, "tags": {"test": str(i)}, "token": None}
                              for i in range(count)])
    ebs.wait_available(ids)
    return ids


def attached_instance(rig, ebs, volume_ids):
    instance_id = rig.register_instance(None, zone=ZONE, name="plain")
    devices = [f"/dev/sd{chr(ord('f') + i)}" for i in range(len(volume_ids))]
    ebs.attach(list(zip(volume_ids, [instance_id] * len(volume_ids), devices)))
    ebs.wait_attached(volume_ids)
    return instance_id


def all_snapshots(rig, region=REGION):
    """{snapshot id: item} of every snapshot of the account in ``region`` (the rig's view)."""
    answer = rig.client(region=region, internal=True).describe_snapshots(OwnerIds=["self"])
    return {s["SnapshotId"]: s for s in answer["Snapshots"]}


def tags_of(item):
    return {t["Key"]: t["Value"] for t in item.get("Tags", [])}


def member_tags(volume_ids, group_id=3):
    return {v: {"ams:snapshot-group-id": str(group_id), "ams:member-index": str(i)}
            for i, v in enumerate(volume_ids)}


# -- create ----------------------------------------------------------------------------------------

def test_create_multi_snapshots_only_the_members(ec2_clean, ebs, snaps, caplog):
    volumes = new_volumes(ebs, 3)
    instance_id = attached_instance(ec2_clean, ebs, volumes)
    instance = ebs.instance(instance_id)
    root = next(m["Ebs"]["VolumeId"] for m in instance["BlockDeviceMappings"]
                if m["DeviceName"] == instance["RootDeviceName"])
    members, other = [volumes[2], volumes[0]], volumes[1]
    ec2_clean.reset_counts()
    with caplog.at_level(logging.WARNING, logger="ams.aws.snapshots"):
        result = snaps.create_multi(instance_id, members, [other], "group 3", member_tags(members))
    assert list(result) == members and len(set(result.values())) == 2
    assert ec2_clean.counts(REGION)["CreateSnapshots"] == 1

    of_instance = {s: item for s, item in all_snapshots(ec2_clean).items()
                   if item["VolumeId"] in set(volumes) | {root}}
    assert sorted(of_instance) == sorted(result.values())  # not the other data volume, not the root
    for index, volume_id in enumerate(members):
        item = of_instance[result[volume_id]]
        assert item["VolumeId"] == volume_id and item["Description"] == "group 3"
        assert tags_of(item) == {"ams:snapshot-group-id": "3", "ams:member-index": str(index)}
    assert ec2_clean.files()["snapshots"] == sorted(result.values())  # the rig copied only these
    if strict_snapshots(ec2_clean):  # EC2 honours ExcludeDataVolumeIds: nothing to delete after
        assert "not members" not in caplog.text
        assert "DeleteSnapshot" not in ec2_clean.counts(REGION)
    else:  # moto snapshots every volume; the extra one was deleted at once
        assert "not members" in caplog.text and other in caplog.text
        assert ec2_clean.counts(REGION)["DeleteSnapshot"] == 1


def test_create_multi_with_the_boot_volume_as_a_member(ec2_clean, ebs, snaps):
    volumes = new_volumes(ebs, 1)
    instance_id = attached_instance(ec2_clean, ebs, volumes)
    instance = ebs.instance(instance_id)
    root = next(m["Ebs"]["VolumeId"] for m in instance["BlockDeviceMappings"]
                if m["DeviceName"] == instance["RootDeviceName"])
    result = snaps.create_multi(instance_id, [root], [], "root only", {root: {"k": "v"}}, instance=instance)
    assert list(result) == [root]
    found = snaps.describe(result.values())
    assert found[result[root]]["VolumeId"] == root and tags_of(found[result[root]]) == {"k": "v"}
    assert sorted(s["VolumeId"] for s in all_snapshots(ec2_clean).values()
                  if s["VolumeId"] in (root, volumes[0])) == [root]


def test_create_multi_refuses_a_volume_not_attached_there(ec2_clean, ebs, snaps):
    volumes = new_volumes(ebs, 2)
    instance_id = attached_instance(ec2_clean, ebs, volumes[:1])
    ec2_clean.reset_counts()
    with pytest.raises(ConflictError, match=f"{volumes[1]} together: not attached to {instance_id}"):
        snaps.create_multi(instance_id, volumes, [], "x")
    assert "CreateSnapshots" not in ec2_clean.counts(REGION)


def test_create_each_wait_and_volumes_from_the_snapshots(ec2_clean, ebs, snaps):
    volumes = new_volumes(ebs, 2, size=2)
    lines = []
    snaps.progress = lines.append
    result = snaps.create_each(volumes, "each", member_tags(volumes, group_id=4))
    assert list(result) == volumes
    assert len([m for m in lines if m.startswith("started snap-")]) == 2
    found = snaps.wait_completed(list(result.values()))
    assert {s["State"] for s in found.values()} == {"completed"}
    assert lines[-1] == "snapshots: " + ", ".join(f"{s} 100%" for s in result.values())
    described = snaps.describe(list(result.values()) + [UNKNOWN])
    assert sorted(described) == sorted(result.values())
    for index, volume_id in enumerate(volumes):
        item = described[result[volume_id]]
        assert (item["VolumeId"], item["VolumeSize"], item["Description"]) == (volume_id, 2, "each")
        assert tags_of(item) == {"ams:snapshot-group-id": "4", "ams:member-index": str(index)}

    requests = [{"spec": VolumeSpec("gp3", None), "zone": "us-east-1b", "tags": {"clone": "0"}, "token": "c-0",
                 "snapshot_id": result[volumes[0]]},
                {"spec": check_volume_spec("gp3", 5), "zone": "us-east-1b", "tags": {"clone": "1"}, "token": "c-1",
                 "snapshot_id": result[volumes[1]]}]
    clones = ebs.create_volumes(requests)
    ebs.wait_available(clones)
    made = ebs.describe(clones)
    assert [(made[v]["Size"], made[v]["SnapshotId"]) for v in clones] == [
        (2, result[volumes[0]]), (5, result[volumes[1]])]
    assert [os.path.getsize(ec2_clean.volume_path(v)) >> 30 for v in clones] == [2, 5]


def test_create_each_partial_failure_reports_the_snapshots_taken(ec2_clean, ebs, aws):
    volumes = new_volumes(ebs, 3)
    snaps = Snapshots(aws, REGION, max_workers=1)
    calls = []

    def arm_on_second(**_):
        calls.append(1)
        if len(calls) == 2:
            ec2_clean.faults.fail_next("CreateSnapshot", "SnapshotCreationPerVolumeRateExceeded",
                                       message="The maximum per volume CreateSnapshot request rate has been exceeded")

    snaps.ec2.meta.events.register("before-call.ec2.CreateSnapshot", arm_on_second)
    with pytest.raises(BatchError) as info:
        snaps.create_each(volumes, "x")
    err = info.value
    assert list(err.done) == [0] and list(err.failed) == [1] and err.skipped == [2]
    assert err.snapshots == {volumes[0]: err.done[0]}
    assert "SnapshotCreationPerVolumeRateExceeded" in str(err) and "\n" not in str(err)
    assert sorted(all_snapshots(ec2_clean)) == [err.done[0]]


def test_request_limit_exceeded_is_absorbed_by_retries(ec2_clean, ebs, snaps):
    volumes = new_volumes(ebs, 2)
    instance_id = attached_instance(ec2_clean, ebs, volumes)
    create_fault = ec2_clean.faults.fail_next("CreateSnapshots", "RequestLimitExceeded", count=2)
    result = snaps.create_multi(instance_id, volumes, [], "retried", member_tags(volumes))
    assert create_fault.fired == 2 and len(result) == 2
    describe_fault = ec2_clean.faults.fail_next("DescribeSnapshots", "RequestLimitExceeded")
    snaps.wait_completed(result.values())
    assert describe_fault.fired == 1


# -- wait ------------------------------------------------------------------------------------------

def test_wait_reports_rising_progress_while_pending(ec2_clean, ebs, snaps):
    need_strict(ec2_clean, "pending snapshots")
    ec2_clean.timing.snapshot = 1.0
    volumes = new_volumes(ebs, 2)
    result = snaps.create_each(volumes, "slow")
    ids = list(result.values())
    assert {s["State"] for s in snaps.describe(ids).values()} == {"pending"}
    lines = []
    found = snaps.wait_completed(ids, progress=lines.append)
    assert {s["State"] for s in found.values()} == {"completed"}
    assert len(lines) >= 3 and lines[-1] == f"snapshots: {ids[0]} 100%, {ids[1]} 100%"
    first = [int(line.split(", ")[0].rsplit(" ", 1)[1].rstrip("%")) for line in lines]
    assert first == sorted(first) and first[0] < 100


def test_wait_times_out_naming_the_pending_snapshots(ec2_clean, ebs, snaps):
    need_strict(ec2_clean, "pending snapshots")
    ec2_clean.timing.snapshot = 30
    [snapshot_id] = snaps.create_each(new_volumes(ebs, 1), "slow").values()
    with pytest.raises(AwsError, match=f"^timed out after 0.5 s waiting for 1 snapshot\\(s\\) to complete: "
                                       f"{snapshot_id} is pending"):
        snaps.wait_completed([snapshot_id], timeout=0.5)


def test_wait_for_an_unknown_snapshot(ec2_clean, snaps):
    snaps.not_found_grace = 0.2
    with pytest.raises(NotFoundError, match="InvalidSnapshot.NotFound"):
        snaps.wait_completed([UNKNOWN], timeout=10)


# -- copy ------------------------------------------------------------------------------------------

def test_copy_across_regions_with_tags_and_token(ec2_clean, ebs, snaps, aws):
    volumes = new_volumes(ebs, 1)
    source_id = snaps.create_each(volumes, "source", {volumes[0]: {"ams:member-index": "0", "team": "db"}})[volumes[0]]
    snaps.wait_completed([source_id])
    west = Snapshots(aws, WEST, waiter_delay=0.1)
    lines = []
    ec2_clean.reset_counts()
    copy_id = west.copy(REGION, source_id, "copy of group 3", {"ams:snapshot-group-id": "9", "team": "ops"}, "tok-9-0")
    assert copy_id != source_id
    found = west.wait_completed([copy_id], progress=lines.append)
    item = found[copy_id]
    assert item["State"] == "completed" and item["Description"] == "copy of group 3"
    assert tags_of(item) == {"ams:member-index": "0", "team": "ops", "ams:snapshot-group-id": "9",
                             "ams:client-token": "tok-9-0"}
    assert lines[-1] == f"snapshots: {copy_id} 100%"
    assert copy_id in all_snapshots(ec2_clean, WEST) and copy_id not in all_snapshots(ec2_clean, REGION)
    assert copy_id in ec2_clean.files()["snapshots"]  # the rig copied the data

    assert west.copy(REGION, source_id, "copy of group 3", {}, "tok-9-0") == copy_id  # a re-run copies nothing
    assert ec2_clean.counts(WEST)["CopySnapshot"] == 1
    assert snaps.describe([copy_id]) == {}  # not in the source region


def test_copy_many_and_a_missing_source(ec2_clean, ebs, snaps, aws):
    volumes = new_volumes(ebs, 2)
    sources = snaps.create_each(volumes, "pair")
    snaps.wait_completed(sources.values())
    west = Snapshots(aws, WEST, waiter_delay=0.1)
    items = [{"source_region": REGION, "snapshot_id": s, "description": f"copy {i}", "tags": {"i": str(i)},
              "token": f"pair-{i}"} for i, s in enumerate(sources.values())]
    copies = west.copy_many(items)
    assert sorted(copies) == [0, 1] and len(set(copies.values())) == 2
    west.wait_completed(copies.values())
    described = west.describe(copies.values())
    assert [tags_of(described[copies[i]])["i"] for i in (0, 1)] == ["0", "1"]

    ec2_clean.reset_counts()
    with pytest.raises(NotFoundError, match=f"snapshot '{UNKNOWN}' not found in us-east-1"):
        west.copy_many(items + [{"source_region": REGION, "snapshot_id": UNKNOWN, "token": "pair-x"}])
    assert "CopySnapshot" not in ec2_clean.counts()


def test_a_failed_copy_ends_the_wait_at_once(ec2_clean, ebs, snaps, aws):
    if not hasattr(ec2_clean.faults, "fail_copy"):
        pytest.skip("this rig lacks rig.faults.fail_copy (copies that end in 'error')")
    volumes = new_volumes(ebs, 1)
    source_id = snaps.create_each(volumes, "source")[volumes[0]]
    snaps.wait_completed([source_id])
    ec2_clean.faults.fail_copy()
    west = Snapshots(aws, WEST, waiter_delay=0.1)
    copy_id = west.copy(REGION, source_id, token="fails")
    with pytest.raises(AwsError, match=f"waiting for 1 snapshot\\(s\\) to complete failed: {copy_id} is error"):
        west.wait_completed([copy_id], timeout=60)
    retry = west.copy(REGION, source_id, token="fails")  # a copy in "error" is not reused
    assert retry != copy_id


# -- delete ----------------------------------------------------------------------------------------

def test_delete_with_a_missing_id(ec2_clean, ebs, snaps):
    volumes = new_volumes(ebs, 2)
    ids = list(snaps.create_each(volumes, "gone soon").values())
    snaps.wait_completed(ids)
    deleted, refused = snaps.delete([ids[0], UNKNOWN, ids[1]])
    assert deleted == [ids[0], UNKNOWN, ids[1]] and refused == {}
    assert snaps.describe(ids) == {}
    assert ec2_clean.files()["snapshots"] == []
    assert snaps.delete(ids) == (ids, {})  # again: already gone is deleted


def register_image_of(rig, snapshot_id, name):
    internal = rig.client(region=REGION, internal=True)
    return internal.register_image(
        Name=name, Architecture="x86_64", VirtualizationType="hvm", RootDeviceName="/dev/xvda",
        BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": snapshot_id}}])["ImageId"]


def test_delete_refuses_the_snapshot_of_a_registered_ami(ec2_clean, ebs, snaps):
    volumes = new_volumes(ebs, 2)
    ours = list(snaps.create_each(volumes, "image source").values())
    snaps.wait_completed(ours)
    image_id = register_image_of(ec2_clean, ours[0], "ams-test-image")
    internal = ec2_clean.client(region=REGION, internal=True)
    [image] = internal.describe_images(ImageIds=[image_id])["Images"]
    used = [m["Ebs"]["SnapshotId"] for m in image["BlockDeviceMappings"] if m.get("Ebs", {}).get("SnapshotId")]
    assert used
    deleted, refused = snaps.delete(used + [ours[1]])
    assert deleted == [ours[1]]
    assert sorted(refused) == sorted(used)
    for snapshot_id, reason in refused.items():
        assert reason.startswith(f"DeleteSnapshot {snapshot_id} failed: InvalidSnapshot.InUse")
        assert "\n" not in reason
    internal.deregister_image(ImageId=image_id)
    assert snaps.delete(used) == (used, {})


def test_delete_refuses_our_snapshot_once_an_ami_is_registered_from_it(ec2_clean, ebs, snaps):
    need_strict(ec2_clean, "InvalidSnapshot.InUse for snapshots named in RegisterImage")
    volumes = new_volumes(ebs, 1)
    [ours] = snaps.create_each(volumes, "image source").values()
    snaps.wait_completed([ours])
    image_id = register_image_of(ec2_clean, ours, "ams-test-image-2")
    deleted, refused = snaps.delete([ours])
    assert deleted == [] and list(refused) == [ours] and "InvalidSnapshot.InUse" in refused[ours]
    assert snaps.describe([ours])  # kept
    ec2_clean.client(region=REGION, internal=True).deregister_image(ImageId=image_id)
    assert snaps.delete([ours]) == ([ours], {})


def test_in_use_by_images_finds_the_ami_of_a_snapshot_among_few_and_among_many_ids(ec2_clean, ebs, snaps):
    from amslib.aws.snapshots import FILTER_CHUNK

    volumes = new_volumes(ebs, 2)
    ours = list(snaps.create_each(volumes, "image source").values())
    snaps.wait_completed(ours)
    image_id = register_image_of(ec2_clean, ours[1], "ams-test-image-3")
    unknown = [f"snap-{i:017x}" for i in range(FILTER_CHUNK + 5)]  # more than one filter holds
    ec2_clean.reset_counts()
    assert snaps.in_use_by_images(ours) == {ours[1]: image_id}  # a filtered call
    assert snaps.in_use_by_images(unknown + ours) == {ours[1]: image_id}  # the account's AMIs listed
    assert snaps.in_use_by_images(unknown) == {}
    assert ec2_clean.counts() == {"DescribeImages": 3}
    ec2_clean.client(region=REGION, internal=True).deregister_image(ImageId=image_id)

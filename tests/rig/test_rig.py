"""The EC2 half of the rig: moto endpoint + EBS files, faults, accounting, and (with QEMU) the
whole "volumes are real disks in a guest" round trip of issue 5."""

import json
import os
import subprocess
import sys
import time

import pytest
from botocore.exceptions import ClientError

from tests.rig import faults

GIB = 1 << 30
ZONE = "us-east-1a"


def _volume(ec2, volume_id):
    return ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]


def _write_at(path, offset, data):
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def _read_at(path, offset, size):
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(size)


# ----------------------------------------------------------------------------------------------
# EBS files (no guest)

def test_create_volume_makes_sparse_file_of_the_size(ec2_clean, ec2_client):
    vol = ec2_client.create_volume(Size=3, AvailabilityZone=ZONE, VolumeType="gp3")["VolumeId"]
    path = ec2_clean.volume_path(vol)
    st = os.stat(path)
    assert st.st_size == 3 * GIB
    assert st.st_blocks * 512 < 1 << 20  # sparse
    assert ec2_clean.files() == {"volumes": [vol], "snapshots": []}


def test_snapshot_and_volume_from_snapshot_copy_the_bytes(ec2_clean, ec2_client):
    vol = ec2_client.create_volume(Size=1, AvailabilityZone=ZONE)["VolumeId"]
    _write_at(ec2_clean.volume_path(vol), 700 << 20, b"before")
    snap = ec2_client.create_snapshot(VolumeId=vol, Description="t")["SnapshotId"]
    _write_at(ec2_clean.volume_path(vol), 700 << 20, b"after!")  # point in time: not in snap
    snap_file = ec2_clean.snapshot_path(snap)
    assert os.stat(snap_file).st_blocks * 512 < 1 << 20  # copy stays sparse
    clone = ec2_client.create_volume(SnapshotId=snap, AvailabilityZone="us-east-1b",
                                     Size=2)["VolumeId"]
    clone_file = ec2_clean.volume_path(clone)
    assert os.path.getsize(clone_file) == 2 * GIB
    assert _read_at(clone_file, 700 << 20, 6) == b"before"
    # without Size: the snapshot's size
    clone2 = ec2_client.create_volume(SnapshotId=snap, AvailabilityZone=ZONE)["VolumeId"]
    assert os.path.getsize(ec2_clean.volume_path(clone2)) == GIB
    # smaller than the snapshot: refused as on AWS
    with pytest.raises(ClientError) as err:
        ec2_client.create_volume(SnapshotId=snap, AvailabilityZone=ZONE, Size=0)
    assert err.value.response["Error"]["Code"] == "InvalidParameterValue"


def test_create_snapshots_copies_every_data_volume(ec2_clean, ec2_client):
    iid = ec2_clean.register_instance(zone=ZONE, name="plain")
    vols = []
    for i, dev in enumerate(("/dev/sdf", "/dev/sdg")):
        vol = ec2_client.create_volume(Size=1, AvailabilityZone=ZONE)["VolumeId"]
        _write_at(ec2_clean.volume_path(vol), 1 << 20, f"member{i}".encode())
        ec2_client.attach_volume(VolumeId=vol, InstanceId=iid, Device=dev)
        vols.append(vol)
    answer = ec2_client.create_snapshots(
        InstanceSpecification={"InstanceId": iid, "ExcludeBootVolume": True})
    by_volume = {s["VolumeId"]: s["SnapshotId"] for s in answer["Snapshots"]}
    assert sorted(by_volume) == sorted(vols)
    for i, vol in enumerate(vols):
        assert _read_at(ec2_clean.snapshot_path(by_volume[vol]), 1 << 20, 7) == \
            f"member{i}".encode()


def test_copy_snapshot_across_regions_copies_the_file(ec2_clean, ec2_client):
    vol = ec2_client.create_volume(Size=1, AvailabilityZone=ZONE)["VolumeId"]
    _write_at(ec2_clean.volume_path(vol), 12345, b"cross-region")
    snap = ec2_client.create_snapshot(VolumeId=vol)["SnapshotId"]
    west = ec2_clean.client(region="eu-west-1")
    copy = west.copy_snapshot(SourceSnapshotId=snap, SourceRegion="us-east-1",
                              Description="copy")["SnapshotId"]
    assert copy != snap
    assert _read_at(ec2_clean.snapshot_path(copy), 12345, 12) == b"cross-region"
    assert [s["SnapshotId"] for s in west.describe_snapshots(OwnerIds=["self"])["Snapshots"]] \
        == [copy]
    vol2 = west.create_volume(SnapshotId=copy, AvailabilityZone="eu-west-1b")["VolumeId"]
    assert _read_at(ec2_clean.volume_path(vol2), 12345, 12) == b"cross-region"


def test_delete_removes_files(ec2_clean, ec2_client):
    vol = ec2_client.create_volume(Size=1, AvailabilityZone=ZONE)["VolumeId"]
    snap = ec2_client.create_snapshot(VolumeId=vol)["SnapshotId"]
    assert os.path.exists(ec2_clean.volume_path(vol))
    assert os.path.exists(ec2_clean.snapshot_path(snap))
    ec2_client.delete_snapshot(SnapshotId=snap)
    ec2_client.delete_volume(VolumeId=vol)
    assert ec2_clean.files() == {"volumes": [], "snapshots": []}


def test_attach_and_detach_on_a_plain_instance(ec2_clean, ec2_client):
    iid = ec2_clean.register_instance(region="us-east-1", zone=ZONE, name="plain-host")
    inst = ec2_client.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
    assert inst["Placement"]["AvailabilityZone"] == ZONE
    assert {"Key": "Name", "Value": "plain-host"} in inst["Tags"]
    vol = ec2_client.create_volume(Size=1, AvailabilityZone=ZONE)["VolumeId"]
    ec2_client.attach_volume(VolumeId=vol, InstanceId=iid, Device="/dev/sdf")
    ec2_client.get_waiter("volume_in_use").wait(VolumeIds=[vol])
    v = _volume(ec2_client, vol)
    assert v["State"] == "in-use"
    assert v["Attachments"][0]["InstanceId"] == iid
    assert v["Attachments"][0]["State"] == "attached"
    # as on AWS (moto itself needs InstanceId): VolumeId alone detaches
    ec2_client.detach_volume(VolumeId=vol)
    ec2_client.get_waiter("volume_available").wait(VolumeIds=[vol])
    assert _volume(ec2_client, vol)["Attachments"] == []


def test_attach_refuses_what_aws_refuses(ec2_clean, ec2_client):
    iid = ec2_clean.register_instance(zone=ZONE)
    other = ec2_clean.register_instance(zone=ZONE)
    vol = ec2_client.create_volume(Size=1, AvailabilityZone=ZONE)["VolumeId"]
    ec2_client.attach_volume(VolumeId=vol, InstanceId=iid, Device="/dev/sdf")
    with pytest.raises(ClientError) as err:
        ec2_client.attach_volume(VolumeId=vol, InstanceId=other, Device="/dev/sdf")
    assert err.value.response["Error"]["Code"] == "VolumeInUse"
    far = ec2_client.create_volume(Size=1, AvailabilityZone="us-east-1c")["VolumeId"]
    with pytest.raises(ClientError) as err:
        ec2_client.attach_volume(VolumeId=far, InstanceId=iid, Device="/dev/sdg")
    assert err.value.response["Error"]["Code"] == "InvalidVolume.ZoneMismatch"


def test_instances_in_several_regions(ec2_clean):
    east = ec2_clean.register_instance(region="us-east-1", zone="us-east-1a", name="a")
    west = ec2_clean.register_instance(region="eu-west-1", zone="eu-west-1b", name="b")
    client = ec2_clean.client(region="eu-west-1")
    found = client.describe_instances()["Reservations"]
    assert [i["InstanceId"] for r in found for i in r["Instances"]] == [west]
    assert found[0]["Instances"][0]["Placement"]["AvailabilityZone"] == "eu-west-1b"
    assert east != west
    # stop/start of a plain instance: API only
    client.stop_instances(InstanceIds=[west])
    client.get_waiter("instance_stopped").wait(InstanceIds=[west])
    client.start_instances(InstanceIds=[west])
    client.get_waiter("instance_running").wait(InstanceIds=[west])


def test_reset_clears_state_files_faults_and_counts(rig):
    rig.reset()
    ec2 = rig.client()
    vol = ec2.create_volume(Size=1, AvailabilityZone=ZONE)["VolumeId"]
    rig.faults.fail_next("DescribeSnapshots", "InternalError", count=10)
    assert rig.counts() == {"CreateVolume": 1}
    rig.reset()
    assert rig.files() == {"volumes": [], "snapshots": []}
    assert rig.faults.pending() == []
    assert ec2.describe_volumes()["Volumes"] == []
    assert ec2.describe_snapshots()["Snapshots"] == []
    assert rig.counts() == {"DescribeVolumes": 1, "DescribeSnapshots": 1}
    with pytest.raises(ClientError):
        ec2.describe_volumes(VolumeIds=[vol])


def test_subprocess_reaches_the_endpoint_through_the_environment(ec2_clean, ec2_client):
    ec2_client.create_volume(Size=1, AvailabilityZone=ZONE,
                             TagSpecifications=[{"ResourceType": "volume",
                                                 "Tags": [{"Key": "who", "Value": "rig"}]}])
    code = ("import boto3, json; v = boto3.client('ec2').describe_volumes()['Volumes'];"
            "print(json.dumps([t['Value'] for x in v for t in x.get('Tags', [])]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert json.loads(out) == ["rig"]
    assert os.environ["AWS_ENDPOINT_URL"] == ec2_clean.url


# ----------------------------------------------------------------------------------------------
# faults and accounting (no guest)

def test_injected_throttling_is_retried_and_counted(ec2_clean):
    ec2 = ec2_clean.client(retries={"mode": "standard", "total_max_attempts": 3})
    fault = ec2_clean.faults.fail_next("DescribeVolumes", "RequestLimitExceeded", count=2)
    answer = ec2.describe_volumes()
    assert answer["ResponseMetadata"]["RetryAttempts"] == 2
    assert fault.fired == 2
    assert ec2_clean.counts() == {"DescribeVolumes": 3}


def test_injected_error_reaches_the_client_with_code_and_status(ec2_clean):
    ec2 = ec2_clean.client(retries={"mode": "standard", "total_max_attempts": 2})
    ec2_clean.faults.fail_next("CreateVolume", "InternalError", count=5)
    with pytest.raises(ClientError) as err:
        ec2.create_volume(Size=1, AvailabilityZone=ZONE)
    response = err.value.response
    assert response["Error"]["Code"] == "InternalError"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert ec2_clean.counts() == {"CreateVolume": 2}
    assert ec2_clean.files()["volumes"] == []  # failed calls did nothing
    # a client error code with its own status, no retry
    ec2_clean.faults.clear()
    ec2_clean.faults.fail_next("*", "UnauthorizedOperation", status=403)
    with pytest.raises(ClientError) as err:
        ec2.describe_snapshots()
    assert err.value.response["Error"]["Code"] == "UnauthorizedOperation"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    ec2.describe_snapshots()  # the fault is used up


def test_fault_can_target_a_region(ec2_clean):
    ec2_clean.faults.fail_next("DescribeVolumes", "InternalError", region="eu-west-1")
    plain = {"retries": {"mode": "standard", "total_max_attempts": 1}}
    ec2_clean.client(region="us-east-1", **plain).describe_volumes()
    with pytest.raises(ClientError):
        ec2_clean.client(region="eu-west-1", **plain).describe_volumes()
    assert ec2_clean.counter.counts(region="eu-west-1") == {"DescribeVolumes": 1}


def test_latency_per_action_and_for_all(ec2_clean, ec2_client):
    ec2_client.describe_volumes()
    ec2_clean.faults.set_latency(0.4, action="DescribeSnapshots")
    t = time.monotonic()
    ec2_client.describe_volumes()
    assert time.monotonic() - t < 0.3
    t = time.monotonic()
    ec2_client.describe_snapshots()
    assert time.monotonic() - t >= 0.4
    ec2_clean.faults.set_latency(0.2)
    t = time.monotonic()
    ec2_client.describe_volumes()
    assert time.monotonic() - t >= 0.2
    ec2_clean.faults.clear()


def test_api_counting_per_action_and_reset(ec2_clean, ec2_client):
    ec2_clean.register_instance(zone=ZONE)  # the rig's own calls are not counted
    assert ec2_clean.counts() == {}
    for _ in range(3):
        ec2_client.describe_volumes()
    vol = ec2_client.create_volume(Size=1, AvailabilityZone=ZONE)["VolumeId"]
    ec2_client.get_waiter("volume_available").wait(VolumeIds=[vol])
    ec2_clean.client(region="ap-southeast-2").describe_snapshots()
    assert ec2_clean.counts() == {"DescribeVolumes": 4, "CreateVolume": 1,
                                  "DescribeSnapshots": 1}
    assert ec2_clean.counter.counts(region="us-east-1") == {"DescribeVolumes": 4,
                                                            "CreateVolume": 1}
    assert ec2_clean.counter.total() == 6
    ec2_clean.reset_counts()
    assert ec2_clean.counts() == {}


def test_client_side_and_server_side_counts_agree(ec2_clean):
    ec2 = ec2_clean.client(retries={"mode": "standard", "total_max_attempts": 3})
    seen = []
    ec2.meta.events.register("before-send.ec2.*",
                             lambda request, **kw: seen.append(request.url))
    ec2_clean.faults.fail_next("DescribeVolumes", "RequestLimitExceeded", count=2)
    ec2.describe_volumes()
    assert len(seen) == 3 == ec2_clean.counts()["DescribeVolumes"]


def test_ids_are_ebs_like(ec2_clean, ec2_client):
    vol = ec2_client.create_volume(Size=1, AvailabilityZone=ZONE)["VolumeId"]
    assert vol.startswith("vol-") and len(vol) == 21
    assert len(vol.replace("-", "")) == 20  # the NVMe serial EBS shows


@pytest.mark.parametrize("options", [{"retries": {"mode": "standard", "total_max_attempts": 1}}])
def test_dry_run_has_no_side_effects(ec2_clean, options):
    ec2 = ec2_clean.client(**options)
    with pytest.raises(ClientError) as err:
        ec2.create_volume(Size=1, AvailabilityZone=ZONE, DryRun=True)
    assert err.value.response["Error"]["Code"] == "DryRunOperation"
    assert ec2_clean.files()["volumes"] == []




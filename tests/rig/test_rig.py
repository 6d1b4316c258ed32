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


def _available(ec2, *volume_ids):
    """Wait until the volumes are "available": the rig, as EC2, creates and detaches with a
    delay (tests.rig.timing)."""
    ec2.get_waiter("volume_available").wait(VolumeIds=list(volume_ids),
                                            WaiterConfig={"Delay": 0.2, "MaxAttempts": 150})


def _new_volume(ec2, **params):
    """CreateVolume, then wait until the volume is "available" (it is "creating" first)."""
    volume_id = ec2.create_volume(**params)["VolumeId"]
    _available(ec2, volume_id)
    return volume_id


def _attached(ec2, volume_id, timeout=30):
    """Wait until the volume's attachment is "attached" (it is "attaching" first)."""
    deadline = time.monotonic() + timeout
    while True:
        volume = _volume(ec2, volume_id)
        if [a["State"] for a in volume["Attachments"]] == ["attached"]:
            return volume
        assert time.monotonic() < deadline, f"{volume_id} not attached: {volume['Attachments']}"
        time.sleep(0.1)


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
        vol = _new_volume(ec2_client, Size=1, AvailabilityZone=ZONE)
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
    vol = _new_volume(ec2_client, Size=1, AvailabilityZone=ZONE)
    ec2_client.attach_volume(VolumeId=vol, InstanceId=iid, Device="/dev/sdf")
    ec2_client.get_waiter("volume_in_use").wait(VolumeIds=[vol])
    v = _attached(ec2_client, vol)
    assert v["State"] == "in-use"
    assert v["Attachments"][0]["InstanceId"] == iid
    assert v["Attachments"][0]["State"] == "attached"
    # as on AWS (moto itself needs InstanceId): VolumeId alone detaches
    ec2_client.detach_volume(VolumeId=vol)
    _available(ec2_client, vol)  # "detaching" first
    assert _volume(ec2_client, vol)["Attachments"] == []


def test_attach_refuses_what_aws_refuses(ec2_clean, ec2_client):
    iid = ec2_clean.register_instance(zone=ZONE)
    other = ec2_clean.register_instance(zone=ZONE)
    vol = _new_volume(ec2_client, Size=1, AvailabilityZone=ZONE)
    ec2_client.attach_volume(VolumeId=vol, InstanceId=iid, Device="/dev/sdf")
    with pytest.raises(ClientError) as err:
        ec2_client.attach_volume(VolumeId=vol, InstanceId=other, Device="/dev/sdf")
    assert err.value.response["Error"]["Code"] == "VolumeInUse"
    far = _new_volume(ec2_client, Size=1, AvailabilityZone="us-east-1c")
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
    ec2_clean.timing.volume_create = 0  # the waiter below must answer on its first poll
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


def test_fault_after_another_action_waits_for_that_action(ec2_clean):
    ec2 = ec2_clean.client(retries={"mode": "standard", "total_max_attempts": 1})
    fault = ec2_clean.faults.fail_next("DescribeVolumes", "InternalError", after="CreateVolume")
    ec2.describe_volumes()  # not armed yet
    ec2.create_volume(Size=1, AvailabilityZone=ZONE)  # arms it; is not its target
    with pytest.raises(ClientError):
        ec2.describe_volumes()
    ec2.describe_volumes()  # used up
    assert fault.fired == 1


def test_after_success_runs_once_moto_acted_never_for_a_failed_call(ec2_clean):
    internal = ec2_clean.client(internal=True)
    seen = []

    def note(action, region):  # runs in the server before the answer leaves
        seen.append((action, region, [v["VolumeId"] for v in internal.describe_volumes()["Volumes"]]))

    ec2_clean.faults.fail_next("CreateVolume", "InternalError")
    fault = ec2_clean.faults.after_success("CreateVolume", note)
    ec2 = ec2_clean.client(retries={"mode": "standard", "total_max_attempts": 2})
    ec2.describe_volumes()  # another action: no callback
    volume_id = ec2.create_volume(Size=1, AvailabilityZone=ZONE)["VolumeId"]  # 1st attempt fails
    assert seen == [("CreateVolume", "us-east-1", [volume_id])] and fault.fired == 1
    ec2.create_volume(Size=1, AvailabilityZone=ZONE)
    assert len(seen) == 1  # used up


def test_after_success_kills_the_client_before_it_hears_the_answer(ec2_clean):
    """The crash a fault-matrix row needs: the volume exists (tagged), its creator never learnt
    its id."""
    import signal

    child = (
        "import boto3\n"
        "ec2 = boto3.client('ec2')\n"
        "v = ec2.create_volume(Size=1, AvailabilityZone='us-east-1a', ClientToken='rig-kill-1',\n"
        "    TagSpecifications=[{'ResourceType': 'volume', 'Tags': [{'Key': 'ams:volume-group-id', 'Value': '7'}]}])\n"
        "print(v['VolumeId'], flush=True)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    found = []

    def kill(action, region):
        found.extend(ec2_clean.client(internal=True).describe_volumes()["Volumes"])
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)  # dead before the answer is written

    fault = ec2_clean.faults.after_success("CreateVolume", kill)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL and out == "" and fault.fired == 1
    (volume,) = ec2_clean.client(internal=True).describe_volumes()["Volumes"]
    assert [v["VolumeId"] for v in found] == [volume["VolumeId"]]
    assert {"Key": "ams:volume-group-id", "Value": "7"} in volume["Tags"]


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





# ----------------------------------------------------------------------------------------------
# the hooks' guest protocol, with a stand-in guest (no QEMU)

class FakeGuest:
    """Records what the rig asks of a guest; ``busy`` holds volume ids "in use" inside."""

    user = "ams"
    password = "pw"
    key_path = None
    ssh_port = 2222

    def __init__(self, name="fake"):
        self.name = name
        self.running = True
        self.busy = set()
        self._plugged = {}
        self.calls = []

    def is_running(self):
        return self.running

    def plugged(self):
        return dict(self._plugged)

    def plug(self, volume_id, backing_file):
        assert os.path.exists(backing_file)
        self.calls.append(("plug", volume_id))
        self._plugged[volume_id] = backing_file
        return _by_id(volume_id)

    def unplug(self, volume_id):
        self.calls.append(("unplug", volume_id))
        self._plugged.pop(volume_id, None)
        self.busy.discard(volume_id)

    def in_use(self, volume_id):
        return volume_id in self.busy

    def stop(self):
        self.calls.append(("stop",))
        self.running = False

    def start(self):
        self.calls.append(("start",))
        self.running = True

    def reboot(self):
        self.calls.append(("reboot",))

    def pause(self):
        self.calls.append(("pause",))

    def resume(self):
        self.calls.append(("resume",))

    def run(self, command, timeout=120, sudo=False):
        self.calls.append(("run",))
        return 0, "", ""


def test_hooks_plug_unplug_and_busy_detach_with_a_stand_in_guest(ec2_clean, ec2_client):
    g = FakeGuest()
    iid = ec2_clean.register_instance(g, zone=ZONE)
    assert ec2_clean.guest_for_instance(iid) is g
    vol = _new_volume(ec2_client, Size=1, AvailabilityZone=ZONE)
    ec2_client.attach_volume(VolumeId=vol, InstanceId=iid, Device="/dev/sdf")
    assert g.plugged() == {vol: ec2_clean.volume_path(vol)}
    g.busy.add(vol)
    assert ec2_client.detach_volume(VolumeId=vol, InstanceId=iid)["State"] == "detaching"
    v = _volume(ec2_client, vol)
    assert (v["State"], v["Attachments"][0]["State"]) == ("in-use", "busy")
    inst = ec2_client.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
    bdm = {m["DeviceName"]: m["Ebs"]["Status"] for m in inst["BlockDeviceMappings"]}
    assert bdm["/dev/sdf"] == "detaching"
    assert vol in g.plugged()
    # still busy: a repeated detach changes nothing
    ec2_client.detach_volume(VolumeId=vol)
    assert _volume(ec2_client, vol)["Attachments"][0]["State"] == "busy"
    # released inside the guest: the next DescribeVolumes completes the detach
    g.busy.clear()
    time.sleep(0.6)
    _fast_wait(ec2_client, "volume_available", VolumeIds=[vol])
    assert g.plugged() == {} and ec2_clean.busy() == []
    # Force detaches a busy volume at once
    ec2_client.attach_volume(VolumeId=vol, InstanceId=iid, Device="/dev/sdf")
    g.busy.add(vol)
    ec2_client.detach_volume(VolumeId=vol, InstanceId=iid, Force=True)
    assert g.plugged() == {}  # at once; the attachment is "detaching" for a moment
    _available(ec2_client, vol)
    # plug failure: the attach is undone and the client sees a 500
    broken = FakeGuest("broken")
    broken.plug = lambda *a: (_ for _ in ()).throw(RuntimeError("no PCI slot"))
    iid2 = ec2_clean.register_instance(broken, zone=ZONE)
    ec2 = ec2_clean.client(retries={"mode": "standard", "total_max_attempts": 1})
    with pytest.raises(ClientError) as err:
        ec2.attach_volume(VolumeId=vol, InstanceId=iid2, Device="/dev/sdf")
    assert err.value.response["Error"]["Code"] == "InternalError"
    assert "no PCI slot" in err.value.response["Error"]["Message"]
    assert _volume(ec2_client, vol)["State"] == "available"


def test_hooks_stop_start_reboot_terminate_with_a_stand_in_guest(ec2_clean, ec2_client):
    g = FakeGuest()
    iid = ec2_clean.register_instance(g, zone=ZONE, name="web1")
    vol = _new_volume(ec2_client, Size=1, AvailabilityZone=ZONE)
    ec2_client.attach_volume(VolumeId=vol, InstanceId=iid, Device="/dev/sdf")
    g.busy.add(vol)
    ec2_client.detach_volume(VolumeId=vol, InstanceId=iid)
    assert ec2_clean.busy() == [vol]
    g.calls.clear()
    ec2_client.stop_instances(InstanceIds=[iid])
    # stopping completes the pending detach, as on EC2
    assert g.calls[0] == ("stop",) and ("unplug", vol) in g.calls
    assert _volume(ec2_client, vol)["State"] == "available"
    # attach while stopped: recorded; start plugs whatever is attached and missing
    ec2_client.attach_volume(VolumeId=vol, InstanceId=iid, Device="/dev/sdg")
    g._plugged.clear()  # as if the guest had lost it
    g.calls.clear()
    ec2_client.start_instances(InstanceIds=[iid])
    assert g.calls == [("start",), ("plug", vol)]
    g.calls.clear()
    ec2_client.reboot_instances(InstanceIds=[iid])
    assert g.calls == [("reboot",)]
    g.calls.clear()
    ec2_client.terminate_instances(InstanceIds=[iid])
    assert ("unplug", vol) in g.calls and g.plugged() == {}
    assert ec2_clean.guest_for_instance(iid) is None
    # the guest can be registered again
    assert ec2_clean.register_instance(g, zone=ZONE) != iid


def test_two_guests_in_two_regions_and_snapshots_pause_the_guest(ec2_clean):
    east, west = FakeGuest("east"), FakeGuest("west")
    i_east = ec2_clean.register_instance(east, region="us-east-1", zone="us-east-1a")
    i_west = ec2_clean.register_instance(west, region="eu-west-1", zone="eu-west-1b")
    assert ec2_clean.guest_instances() == {i_east: ("us-east-1", east),
                                           i_west: ("eu-west-1", west)}
    e, w = ec2_clean.client(region="us-east-1"), ec2_clean.client(region="eu-west-1")
    v_east = _new_volume(e, Size=1, AvailabilityZone="us-east-1a")
    e.attach_volume(VolumeId=v_east, InstanceId=i_east, Device="/dev/sdf")
    v_west = _new_volume(w, Size=1, AvailabilityZone="eu-west-1b")
    w.attach_volume(VolumeId=v_west, InstanceId=i_west, Device="/dev/sdf")
    assert list(east.plugged()) == [v_east] and list(west.plugged()) == [v_west]
    east.calls.clear()
    snaps = e.create_snapshots(InstanceSpecification={"InstanceId": i_east,
                                                      "ExcludeBootVolume": True})["Snapshots"]
    assert east.calls == [("pause",), ("resume",)]  # one point in time for all members
    assert ("pause",) not in west.calls
    copy = w.copy_snapshot(SourceSnapshotId=snaps[0]["SnapshotId"],
                           SourceRegion="us-east-1")["SnapshotId"]
    clone = _new_volume(w, SnapshotId=copy, AvailabilityZone="eu-west-1b")
    w.attach_volume(VolumeId=clone, InstanceId=i_west, Device="/dev/sdg")
    assert sorted(west.plugged()) == sorted([v_west, clone])
    # a snapshot of a volume nobody uses pauses nobody
    e.detach_volume(VolumeId=v_east)
    _available(e, v_east)  # still attached while "detaching"
    east.calls.clear()
    e.create_snapshot(VolumeId=v_east)
    assert east.calls == []


def test_cli_up_status_env_down_without_guest(tmp_path):
    state = str(tmp_path / "state")
    cli = [sys.executable, "-m", "tests.rig", "--state-dir", state]
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ)
    for k in [k for k in env if k.startswith(("AWS_", "AMS_"))]:
        del env[k]

    def run(*args, check=True):
        return subprocess.run(cli + list(args), capture_output=True, text=True, cwd=repo,
                              env=env, timeout=120, check=check)

    try:
        up = run("up", "--no-guest", "--zone", "eu-west-1b")
        exports = dict(line[len("export "):].split("=", 1) for line in up.stdout.splitlines())
        assert exports["AWS_DEFAULT_REGION"] == "eu-west-1"
        assert exports["AMS_RIG_STATE"] == state
        assert exports["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
        assert run("status").returncode == 0
        assert run("env").stdout == up.stdout
        assert run("up", "--no-guest").stdout == up.stdout  # already running: same lines
        import boto3

        ec2 = boto3.client("ec2", region_name="eu-west-1",
                           endpoint_url=exports["AWS_ENDPOINT_URL"],
                           aws_access_key_id="x", aws_secret_access_key="y")
        vol = ec2.create_volume(Size=1, AvailabilityZone="eu-west-1b")["VolumeId"]
        assert os.path.exists(os.path.join(state, "ec2", "volumes", vol + ".img"))
    finally:
        run("down", check=False)
    assert not os.path.exists(state)
    assert run("status", check=False).returncode == 3


def test_reset_unplugs_registered_guests(rig):
    rig.reset()
    g = FakeGuest()
    iid = rig.register_instance(g, zone=ZONE)
    ec2 = rig.client()
    vol = _new_volume(ec2, Size=1, AvailabilityZone=ZONE)
    ec2.attach_volume(VolumeId=vol, InstanceId=iid, Device="/dev/sdf")
    rig.reset()
    assert g.plugged() == {} and ("run",) in g.calls  # cleaned, then unplugged
    assert rig.guest_for_instance(iid) is None


# ----------------------------------------------------------------------------------------------
# with the QEMU guest: volumes are real disks

BY_ID = "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_"


def _by_id(volume_id):
    return BY_ID + volume_id.replace("-", "")


def _by_id_names(guest):
    out = guest.check("ls /dev/disk/by-id/ 2>/dev/null || true")
    return {n[len("nvme-Amazon_Elastic_Block_Store_"):] for n in out.split()
            if n.startswith("nvme-Amazon_Elastic_Block_Store_vol") and "-part" not in n}


def _serials(volume_ids):
    return {v.replace("-", "") for v in volume_ids}


def _fast_wait(ec2, waiter, **kw):
    ec2.get_waiter(waiter).wait(WaiterConfig={"Delay": 1, "MaxAttempts": 60}, **kw)


@pytest.mark.guest
def test_raid0_snapshot_clone_and_reboot_in_the_guest(ec2_clean, guest_instance):
    rig, g, iid = ec2_clean, guest_instance.guest, guest_instance.instance_id
    ec2 = rig.client()
    tags = [{"ResourceType": "volume", "Tags": [{"Key": "ams:test", "Value": "raid0"}]}]
    vols = [_new_volume(ec2, Size=1, AvailabilityZone=guest_instance.zone, VolumeType="gp3",
                        TagSpecifications=tags) for _ in range(2)]
    for vol, dev in zip(vols, ("/dev/sdf", "/dev/sdg")):
        ec2.attach_volume(VolumeId=vol, InstanceId=iid, Device=dev)
    _fast_wait(ec2, "volume_in_use", VolumeIds=vols)
    # the devices are there as soon as AttachVolume answered
    assert _serials(vols) <= _by_id_names(g)

    members = " ".join(_by_id(v) for v in vols)
    sha = g.check(
        f"mdadm --create /dev/md/rig --run --level=0 --chunk=256 --raid-devices=2 {members} "
        f"&& mkfs.xfs -q /dev/md/rig && mkdir -p /mnt/rig && mount /dev/md/rig /mnt/rig "
        f"&& head -c 24M /dev/urandom > /mnt/rig/data && sync "
        f"&& sha256sum /mnt/rig/data | cut -d' ' -f1", sudo=True, timeout=300).strip()
    assert len(sha) == 64

    # one multi-volume snapshot of the mounted array (crash-consistent across both members:
    # the rig pauses the guest while it copies the files); no fsfreeze needed after sync
    answer = ec2.create_snapshots(InstanceSpecification={"InstanceId": iid,
                                                         "ExcludeBootVolume": True},
                                  Description="raid0 members")
    by_volume = {s["VolumeId"]: s["SnapshotId"] for s in answer["Snapshots"]}
    assert sorted(by_volume) == sorted(vols)
    snaps = [by_volume[v] for v in vols]
    _fast_wait(ec2, "snapshot_completed", SnapshotIds=snaps)
    clones = [ec2.create_volume(SnapshotId=s, AvailabilityZone=guest_instance.zone)["VolumeId"]
              for s in snaps]
    _fast_wait(ec2, "volume_available", VolumeIds=clones)

    # detaching mounted members: EC2 keeps them "busy" until the guest lets go
    for vol in vols:
        answer = ec2.detach_volume(VolumeId=vol, InstanceId=iid)
        assert answer["State"] == "detaching"
    described = ec2.describe_volumes(VolumeIds=vols)["Volumes"]
    assert [v["State"] for v in described] == ["in-use", "in-use"]
    assert [v["Attachments"][0]["State"] for v in described] == ["busy", "busy"]
    assert rig.busy() == sorted(vols)
    assert _serials(vols) <= _by_id_names(g)
    g.check("umount /mnt/rig && mdadm --stop /dev/md/rig", sudo=True)
    _fast_wait(ec2, "volume_available", VolumeIds=vols)
    assert rig.busy() == []
    assert not (_serials(vols) & _by_id_names(g))

    # attach the clones (other order, other devices), assemble, same bytes
    for vol, dev in zip(reversed(clones), ("/dev/sdh", "/dev/sdi")):
        ec2.attach_volume(VolumeId=vol, InstanceId=iid, Device=dev)
    assert _serials(clones) <= _by_id_names(g)
    clone_members = " ".join(_by_id(v) for v in clones)
    sha2 = g.check(
        "udevadm settle; "
        f"[ -e /dev/md/rig ] || mdadm --assemble /dev/md/rig {clone_members}; "
        "mount /dev/md/rig /mnt/rig && sha256sum /mnt/rig/data | cut -d' ' -f1",
        sudo=True, timeout=300).strip()
    assert sha2 == sha
    g.check("umount /mnt/rig", sudo=True)

    # a reboot from inside keeps the volumes and the instance
    g.reboot()
    assert _serials(clones) <= _by_id_names(g)
    sha3 = g.check(
        "udevadm settle; "
        f"[ -e /dev/md/rig ] || mdadm --assemble /dev/md/rig {clone_members}; "
        "mount /dev/md/rig /mnt/rig && sha256sum /mnt/rig/data | cut -d' ' -f1",
        sudo=True, timeout=300).strip()
    assert sha3 == sha
    described = ec2.describe_volumes(VolumeIds=clones)["Volumes"]
    assert {v["Attachments"][0]["InstanceId"] for v in described} == {iid}
    inst = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
    assert inst["State"]["Name"] == "running"


@pytest.mark.guest
def test_forced_detach_and_delete_of_a_guest_volume(ec2_clean, guest_instance):
    rig, g, iid = ec2_clean, guest_instance.guest, guest_instance.instance_id
    # the fixture's ssh config and variables let ams (or ssh) in as the Name tag says
    assert os.environ["AMS_SUDO_PASSWORD"] == g.password
    ssh = subprocess.run(["ssh", "-F", os.environ["AMS_SSH_CONFIG_FILE"], "-o", "BatchMode=yes",
                          guest_instance.name, "echo", "in"],
                         capture_output=True, text=True, timeout=60)
    assert ssh.stdout.strip() == "in", ssh.stderr
    ec2 = rig.client()
    vol = _new_volume(ec2, Size=1, AvailabilityZone=guest_instance.zone)
    ec2.attach_volume(VolumeId=vol, InstanceId=iid, Device="/dev/sdf")
    g.check(f"mkfs.ext4 -q {_by_id(vol)} && mkdir -p /mnt/f && mount {_by_id(vol)} /mnt/f",
            sudo=True, timeout=120)
    ec2.detach_volume(VolumeId=vol, InstanceId=iid)
    assert _volume(ec2, vol)["Attachments"][0]["State"] == "busy"
    with pytest.raises(ClientError) as err:
        ec2.delete_volume(VolumeId=vol)
    assert err.value.response["Error"]["Code"] == "VolumeInUse"
    ec2.detach_volume(VolumeId=vol, InstanceId=iid, Force=True)
    assert vol.replace("-", "") not in _by_id_names(g)
    _available(ec2, vol)
    g.run("umount -l /mnt/f", sudo=True)
    ec2.delete_volume(VolumeId=vol)
    assert rig.files()["volumes"] == []


@pytest.mark.guest
def test_stop_and_start_instance_stops_and_starts_the_guest(ec2_clean, guest_instance):
    rig, g, iid = ec2_clean, guest_instance.guest, guest_instance.instance_id
    ec2 = rig.client()
    vol = _new_volume(ec2, Size=1, AvailabilityZone=guest_instance.zone)
    ec2.attach_volume(VolumeId=vol, InstanceId=iid, Device="/dev/sdf")
    g.check(f"mkfs.ext4 -q {_by_id(vol)} && mkdir -p /mnt/s && mount {_by_id(vol)} /mnt/s "
            f"&& echo kept > /mnt/s/file && umount /mnt/s", sudo=True, timeout=120)
    ec2.stop_instances(InstanceIds=[iid])
    assert not g.is_running()
    _fast_wait(ec2, "instance_stopped", InstanceIds=[iid])
    # attaching to a stopped instance: the disk shows up when it starts
    vol2 = _new_volume(ec2, Size=1, AvailabilityZone=guest_instance.zone)
    ec2.attach_volume(VolumeId=vol2, InstanceId=iid, Device="/dev/sdg")
    ec2.start_instances(InstanceIds=[iid])
    assert g.is_running()
    _fast_wait(ec2, "instance_running", InstanceIds=[iid])
    assert _serials([vol, vol2]) <= _by_id_names(g)
    assert g.check(f"mount {_by_id(vol)} /mnt/s && cat /mnt/s/file && umount /mnt/s",
                   sudo=True).strip() == "kept"


@pytest.mark.guest
def test_guest_faults_failing_command_and_dropped_ssh(ec2_clean, guest_instance):
    g = guest_instance.guest
    faults.fail_command(g, "blkid", times=2, rc=3, stderr="blkid: injected")
    results = [g.run("blkid -V", sudo=True) for _ in range(3)]
    assert [r[0] for r in results[:2]] == [3, 3]
    assert "blkid: injected" in results[0][2]
    assert results[2][0] == 0
    # only invocations through PATH are affected; match limits it to some arguments
    faults.fail_command(g, "blkid", times=1, match="*--probe*")
    assert g.run("blkid -V", sudo=True)[0] == 0
    assert g.run("/sbin/blkid -V", sudo=True)[0] == 0
    assert faults.command_failures_left(g, "blkid") == 1
    faults.clear_command_faults(g)
    assert g.run("blkid --probe /dev/vda", sudo=True)[0] in (0, 2)
    assert faults.command_failures_left(g, "blkid") == 0

    import paramiko
    other = paramiko.SSHClient()
    other.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    other.connect("127.0.0.1", port=g.ssh_port, username=g.user, key_filename=g.key_path,
                  allow_agent=False, look_for_keys=False, timeout=15)
    try:
        assert other.exec_command("echo hi", timeout=15)[1].read().strip() == b"hi"
        faults.drop_ssh(g)
        with pytest.raises(Exception):
            other.exec_command("echo again", timeout=15)[1].read()
            transport = other.get_transport()
            assert transport is not None and transport.is_active()
    finally:
        other.close()
    assert g.check("echo back").strip() == "back"  # new connections work at once

    # sshd down for a while: new connections fail, then work again
    def can_connect():
        c = paramiko.SSHClient()
        c.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        try:
            c.connect("127.0.0.1", port=g.ssh_port, username=g.user, key_filename=g.key_path,
                      allow_agent=False, look_for_keys=False, timeout=5, banner_timeout=5,
                      auth_timeout=5)
            return True
        except Exception:
            return False
        finally:
            c.close()

    faults.drop_ssh(g, block_seconds=3)
    assert not can_connect()
    deadline = time.monotonic() + 60
    while not can_connect():
        assert time.monotonic() < deadline, "sshd did not come back"
        time.sleep(1)
    assert g.check("systemctl is-active ssh").strip() == "active"

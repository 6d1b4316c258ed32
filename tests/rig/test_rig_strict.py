"""The rig is as strict as EC2 where ams depends on it: intermediate states that last a while
(creating, attaching, detaching), CreateVolume and AttachVolume refusals with EC2's codes,
ClientToken idempotency, the instance id as the guest's DMI board asset tag, and the guest
sshd's session limit."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.exceptions import ClientError

from tests.rig import ebs_rules
from tests.rig.faults import RigApiError
from tests.rig.test_rig import FakeGuest
from tests.rig.timing import DEFAULTS, Scheduler, Timing

ZONE = "us-east-1a"
SLOW = 1.5  # seconds an intermediate state lasts in the tests that watch it


def _volume(ec2, volume_id):
    return ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]


def _mapping(ec2, instance_id):
    inst = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    return {m["DeviceName"]: m["Ebs"]["Status"] for m in inst["BlockDeviceMappings"]}


def _until(predicate, timeout=20, interval=0.05):
    """Poll ``predicate`` until it returns something true; returns (value, seconds waited)."""
    t0 = time.monotonic()
    while True:
        value = predicate()
        if value:
            return value, time.monotonic() - t0
        assert time.monotonic() - t0 < timeout, "condition not reached in time"
        time.sleep(interval)


def _error(excinfo):
    return excinfo.value.response["Error"]["Code"], excinfo.value.response["Error"]["Message"]


def _available_volume(rig, ec2, **params):
    params.setdefault("Size", 1)
    params.setdefault("AvailabilityZone", ZONE)
    volume_id = ec2.create_volume(**params)["VolumeId"]
    _until(lambda: _volume(ec2, volume_id)["State"] == "available")
    return volume_id


# ----------------------------------------------------------------------------------------------
# timing

def test_timing_defaults_set_and_reset(ec2_clean):
    assert ec2_clean.timing.as_dict() == DEFAULTS == {"volume_create": 0.3, "attach": 0.3,
                                                      "detach": 0.2, "snapshot": 1.0,
                                                      "copy": 1.0}
    ec2_clean.timing.attach = 2
    ec2_clean.timing.set(volume_create=0, detach=1.5)
    assert ec2_clean.timing.as_dict() == dict(DEFAULTS, volume_create=0.0, attach=2.0,
                                              detach=1.5)
    with pytest.raises(ValueError):
        ec2_clean.timing.detach = -1
    with pytest.raises(TypeError):
        ec2_clean.timing.set(bogus=1)
    with pytest.raises(AttributeError):
        ec2_clean.timing.bogus = 1
    ec2_clean.reset()
    assert ec2_clean.timing.as_dict() == DEFAULTS
    assert Timing(attach=0).as_dict() == dict(DEFAULTS, attach=0.0)


def test_scheduler_runs_later_or_at_once_and_cancels():
    fired = []
    scheduler = Scheduler()
    scheduler.after(0, fired.append, "now")
    assert fired == ["now"]
    scheduler.after(0.1, fired.append, "later")
    scheduler.after(30, fired.append, "never")
    assert scheduler.pending() == 2
    _until(lambda: "later" in fired)
    scheduler.cancel_all()
    assert scheduler.pending() == 0 and fired == ["now", "later"]


def test_new_volume_is_creating_then_available(ec2_clean, ec2_client):
    ec2_clean.timing.volume_create = SLOW
    iid = ec2_clean.register_instance(zone=ZONE)
    t0 = time.monotonic()
    answer = ec2_client.create_volume(Size=1, AvailabilityZone=ZONE)
    vol = answer["VolumeId"]
    assert answer["State"] == "creating"
    assert _volume(ec2_client, vol)["State"] == "creating"
    found = ec2_client.describe_volumes(Filters=[{"Name": "status", "Values": ["creating"]}])
    assert [v["VolumeId"] for v in found["Volumes"]] == [vol]
    with pytest.raises(ClientError) as err:
        ec2_client.attach_volume(VolumeId=vol, InstanceId=iid, Device="/dev/sdf")
    assert _error(err) == ("IncorrectState", f"{vol} is not 'available'.")
    # botocore's waiter polls through "creating" as it does on EC2
    ec2_client.get_waiter("volume_available").wait(
        VolumeIds=[vol], WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})
    assert time.monotonic() - t0 >= SLOW - 0.05
    assert ec2_clean.counts()["DescribeVolumes"] >= 3
    ec2_client.attach_volume(VolumeId=vol, InstanceId=iid, Device="/dev/sdf")


def test_attach_is_attaching_then_attached_in_volumes_and_instances(ec2_clean, ec2_client):
    ec2_clean.timing.set(volume_create=0, attach=SLOW)
    iid = ec2_clean.register_instance(zone=ZONE)
    vol = ec2_client.create_volume(Size=1, AvailabilityZone=ZONE)["VolumeId"]
    assert _volume(ec2_client, vol)["State"] == "available"  # volume_create=0: at once
    t0 = time.monotonic()
    answer = ec2_client.attach_volume(VolumeId=vol, InstanceId=iid, Device="/dev/sdf")
    assert answer["State"] == "attaching"
    v = _volume(ec2_client, vol)
    assert (v["State"], v["Attachments"][0]["State"]) == ("in-use", "attaching")
    assert _mapping(ec2_client, iid)["/dev/sdf"] == "attaching"
    found = ec2_client.describe_volumes(
        Filters=[{"Name": "attachment.status", "Values": ["attaching"]}])["Volumes"]
    assert [x["VolumeId"] for x in found] == [vol]
    _, waited = _until(lambda: _volume(ec2_client, vol)["Attachments"][0]["State"] == "attached")
    assert time.monotonic() - t0 >= SLOW - 0.05
    assert _mapping(ec2_client, iid)["/dev/sdf"] == "attached"


def test_detach_is_detaching_then_available(ec2_clean, ec2_client):
    ec2_clean.timing.set(volume_create=0, attach=0, detach=SLOW)
    iid = ec2_clean.register_instance(zone=ZONE)
    vol = ec2_client.create_volume(Size=1, AvailabilityZone=ZONE)["VolumeId"]
    ec2_client.attach_volume(VolumeId=vol, InstanceId=iid, Device="/dev/sdf")
    assert _volume(ec2_client, vol)["Attachments"][0]["State"] == "attached"  # attach=0
    t0 = time.monotonic()
    assert ec2_client.detach_volume(VolumeId=vol)["State"] == "detaching"
    v = _volume(ec2_client, vol)
    assert (v["State"], v["Attachments"][0]["State"]) == ("in-use", "detaching")
    assert _mapping(ec2_client, iid)["/dev/sdf"] == "detaching"
    with pytest.raises(ClientError) as err:
        ec2_client.delete_volume(VolumeId=vol)
    assert _error(err)[0] == "VolumeInUse"
    # a repeated DetachVolume changes nothing (no second timer)
    assert ec2_client.detach_volume(VolumeId=vol, InstanceId=iid)["State"] == "detaching"
    ec2_client.get_waiter("volume_available").wait(
        VolumeIds=[vol], WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})
    assert time.monotonic() - t0 >= SLOW - 0.05
    assert _volume(ec2_client, vol)["Attachments"] == []
    assert "/dev/sdf" not in _mapping(ec2_client, iid)
    ec2_client.delete_volume(VolumeId=vol)


def test_busy_detach_is_detaching_once_the_guest_lets_go(ec2_clean, ec2_client):
    ec2_clean.timing.set(volume_create=0, attach=0, detach=SLOW)
    g = FakeGuest()
    iid = ec2_clean.register_instance(g, zone=ZONE)
    vol = ec2_client.create_volume(Size=1, AvailabilityZone=ZONE)["VolumeId"]
    ec2_client.attach_volume(VolumeId=vol, InstanceId=iid, Device="/dev/sdf")
    g.busy.add(vol)
    ec2_client.detach_volume(VolumeId=vol)
    assert _volume(ec2_client, vol)["Attachments"][0]["State"] == "busy"
    g.busy.clear()
    assert ec2_clean.release_busy() == [vol]
    assert vol not in g.plugged()  # the disk left the guest at once ...
    assert _volume(ec2_client, vol)["Attachments"][0]["State"] == "detaching"  # ... EC2 lags
    _until(lambda: _volume(ec2_client, vol)["State"] == "available")


def test_zero_timing_is_instant(ec2_clean, ec2_client):
    ec2_clean.timing.set(volume_create=0, attach=0, detach=0)
    iid = ec2_clean.register_instance(zone=ZONE)
    answer = ec2_client.create_volume(Size=1, AvailabilityZone=ZONE)
    assert answer["State"] == "available"
    ec2_client.attach_volume(VolumeId=answer["VolumeId"], InstanceId=iid, Device="/dev/sdf")
    assert _volume(ec2_client, answer["VolumeId"])["Attachments"][0]["State"] == "attached"
    ec2_client.detach_volume(VolumeId=answer["VolumeId"])
    assert _volume(ec2_client, answer["VolumeId"])["State"] == "available"


def test_reset_drops_pending_state_changes(ec2_clean, ec2_client):
    ec2_clean.timing.set(volume_create=30, attach=30, detach=30)
    ec2_client.create_volume(Size=1, AvailabilityZone=ZONE)
    assert ec2_clean._scheduler.pending() == 1
    ec2_clean.reset()
    assert ec2_clean._scheduler.pending() == 0
    assert ec2_clean.timing.as_dict() == DEFAULTS


# ----------------------------------------------------------------------------------------------
# CreateVolume: what EC2 refuses

REFUSED = [
    ({"VolumeType": "bogus"}, "InvalidParameterValue", "Value (bogus) for parameter volumeType"),
    ({"VolumeType": "GP3"}, "InvalidParameterValue", "parameter volumeType is invalid"),
    ({"VolumeType": "gp2", "Size": 0}, "InvalidParameterValue", "too small"),
    ({"VolumeType": "gp2", "Size": 16385}, "InvalidParameterValue", "maximum is 16384GiB"),
    ({"VolumeType": "gp3", "Size": 16385}, "InvalidParameterValue", "maximum is 16384GiB"),
    ({"VolumeType": "io1", "Size": 3, "Iops": 100}, "InvalidParameterValue", "minimum is 4GiB"),
    ({"VolumeType": "io1", "Size": 16385, "Iops": 100}, "InvalidParameterValue", "too large"),
    ({"VolumeType": "io2", "Size": 3, "Iops": 100}, "InvalidParameterValue", "minimum is 4GiB"),
    ({"VolumeType": "io2", "Size": 65537, "Iops": 100}, "InvalidParameterValue",
     "maximum is 65536GiB"),
    ({"VolumeType": "st1", "Size": 124}, "InvalidParameterValue", "minimum is 125GiB"),
    ({"VolumeType": "sc1", "Size": 16385}, "InvalidParameterValue", "maximum is 16384GiB"),
    ({"VolumeType": "standard", "Size": 1025}, "InvalidParameterValue", "maximum is 1024GiB"),
    ({"VolumeType": "io1", "Size": 10}, "InvalidParameterCombination",
     "The parameter iops must be specified for io1 volumes."),
    ({"VolumeType": "io2", "Size": 10}, "InvalidParameterCombination",
     "The parameter iops must be specified for io2 volumes."),
    ({"VolumeType": "gp2", "Size": 10, "Iops": 100}, "InvalidParameterCombination",
     "The parameter iops is not supported for gp2 volumes."),
    ({"Size": 10, "Iops": 100}, "InvalidParameterCombination",  # no type: gp2
     "The parameter iops is not supported for gp2 volumes."),
    ({"VolumeType": "st1", "Size": 500, "Iops": 500}, "InvalidParameterCombination",
     "not supported for st1"),
    ({"VolumeType": "standard", "Size": 10, "Iops": 100}, "InvalidParameterCombination",
     "not supported for standard"),
    ({"VolumeType": "gp2", "Size": 10, "Throughput": 125}, "InvalidParameterCombination",
     "The parameter throughput is not supported for gp2 volumes."),
    ({"VolumeType": "io1", "Size": 10, "Iops": 100, "Throughput": 125},
     "InvalidParameterCombination", "throughput is not supported for io1"),
    ({"VolumeType": "gp3"}, "MissingParameter", "size/snapshot"),
    ({"VolumeType": "gp3", "Size": 10, "Iops": 2999}, "InvalidParameterValue",
     "Volume iops of 2999 is too low; minimum is 3000."),
    ({"VolumeType": "gp3", "Size": 100, "Iops": 16001}, "InvalidParameterValue",
     "Volume iops of 16001 is too high; maximum is 16000."),
    ({"VolumeType": "gp3", "Size": 8, "Iops": 4001}, "InvalidParameterValue",
     "Iops to volume size ratio of 500.125000 is too high; maximum is 500"),
    ({"VolumeType": "io1", "Size": 10, "Iops": 99}, "InvalidParameterValue", "minimum is 100."),
    ({"VolumeType": "io1", "Size": 2000, "Iops": 64001}, "InvalidParameterValue",
     "maximum is 64000."),
    ({"VolumeType": "io1", "Size": 10, "Iops": 501}, "InvalidParameterValue",
     "ratio of 50.100000 is too high; maximum is 50"),
    ({"VolumeType": "io2", "Size": 300, "Iops": 256001}, "InvalidParameterValue",
     "maximum is 256000."),
    ({"VolumeType": "io2", "Size": 4, "Iops": 4001}, "InvalidParameterValue",
     "maximum is 1000"),
    ({"VolumeType": "gp3", "Size": 10, "Throughput": 124}, "InvalidParameterValue",
     "Volume throughput of 124 is too low; minimum is 125."),
    ({"VolumeType": "gp3", "Size": 32, "Iops": 16000, "Throughput": 1001},
     "InvalidParameterValue", "Volume throughput of 1001 is too high; maximum is 1000."),
    ({"VolumeType": "gp3", "Size": 10, "Throughput": 751}, "InvalidParameterValue",
     "Throughput (MiBps) to iops ratio of 0.250333 is too high; maximum is 0.250000 MiBps"),
    ({"VolumeType": "gp3", "Size": 10, "Iops": 3200, "Throughput": 801},
     "InvalidParameterValue", "to iops ratio"),
]


@pytest.mark.parametrize("params, code, message", REFUSED,
                         ids=[f"{p.get('VolumeType', 'default')}-{c}-{i}"
                              for i, (p, c, _) in enumerate(REFUSED)])
def test_create_volume_refuses_what_ec2_refuses(ec2_clean, ec2_client, params, code, message):
    with pytest.raises(ClientError) as err:
        ec2_client.create_volume(AvailabilityZone=ZONE, **params)
    got_code, got_message = _error(err)
    assert got_code == code
    assert message in got_message
    assert ec2_clean.files()["volumes"] == []
    assert ec2_client.describe_volumes()["Volumes"] == []


ACCEPTED = [
    {"Size": 1},  # gp2
    {"VolumeType": "gp3", "Size": 1},  # 3000 IOPS baseline at any size
    {"VolumeType": "gp3", "Size": 1, "Iops": 3000, "Throughput": 750},
    {"VolumeType": "gp3", "Size": 32, "Iops": 16000, "Throughput": 1000},
    {"VolumeType": "gp3", "Size": 8, "Iops": 4000},
    {"VolumeType": "io1", "Size": 4, "Iops": 200},
    {"VolumeType": "io2", "Size": 4, "Iops": 4000},
    {"VolumeType": "st1", "Size": 125},
    {"VolumeType": "sc1", "Size": 125},
    {"VolumeType": "standard", "Size": 1024},
]


def test_create_volume_accepts_the_limits(ec2_clean, ec2_client):
    made = {}
    for params in ACCEPTED:
        answer = ec2_client.create_volume(AvailabilityZone=ZONE, **params)
        made[answer["VolumeId"]] = params
    assert sorted(ec2_clean.files()["volumes"]) == sorted(made)
    for v in ec2_client.describe_volumes(VolumeIds=list(made))["Volumes"]:
        params = made[v["VolumeId"]]
        assert v["Size"] == params["Size"]
        assert v["VolumeType"] == params.get("VolumeType", "gp2")
        if "Iops" in params:
            assert v["Iops"] == params["Iops"]


def test_create_volume_from_snapshot_takes_its_size_and_refuses_less(ec2_clean, ec2_client):
    vol = ec2_client.create_volume(Size=2, AvailabilityZone=ZONE)["VolumeId"]
    snap = ec2_client.create_snapshot(VolumeId=vol)["SnapshotId"]
    clone = ec2_client.create_volume(SnapshotId=snap, AvailabilityZone=ZONE, VolumeType="gp3")
    assert clone["Size"] == 2
    with pytest.raises(ClientError) as err:
        ec2_client.create_volume(SnapshotId=snap, AvailabilityZone=ZONE, Size=1)
    assert _error(err)[0] == "InvalidParameterValue"
    with pytest.raises(ClientError) as err:  # the type's limits apply to the snapshot's size
        ec2_client.create_volume(SnapshotId=snap, AvailabilityZone=ZONE, VolumeType="io1",
                                 Iops=100)
    assert _error(err) == ("InvalidParameterValue",
                           "Volume of 2GiB is too small for volume type io1; minimum is 4GiB")


def test_rules_table_boundaries_without_the_endpoint():
    check = ebs_rules.check_create_volume
    assert check("gp3", "16384") == ("gp3", 16384, 3000, 125)
    assert check(None, "1") == ("gp2", 1, None, None)
    assert check("io2", "65536", "256000") == ("io2", 65536, 256000, None)
    assert check("gp3", None, snapshot_id="snap-1", snapshot_size=8) == ("gp3", 8, 3000, 125)
    for bad in ("-1", "1.5", "x"):
        with pytest.raises(RigApiError) as err:
            check("gp2", bad)
        assert err.value.code == "InvalidParameterValue"


# ----------------------------------------------------------------------------------------------
# ClientToken idempotency

def test_client_token_same_parameters_same_volume(ec2_clean, ec2_client):
    tags = [{"ResourceType": "volume", "Tags": [{"Key": "k", "Value": "v"}]}]
    params = dict(Size=1, AvailabilityZone=ZONE, VolumeType="gp3", TagSpecifications=tags,
                  ClientToken="ams-token-1")
    first = ec2_client.create_volume(**params)
    again = ec2_client.create_volume(**params)
    assert again["VolumeId"] == first["VolumeId"]
    assert ec2_clean.files()["volumes"] == [first["VolumeId"]]
    assert len(ec2_client.describe_volumes()["Volumes"]) == 1
    with pytest.raises(ClientError) as err:
        ec2_client.create_volume(**dict(params, Size=2))
    assert _error(err)[0] == "IdempotentParameterMismatch"
    with pytest.raises(ClientError) as err:
        ec2_client.create_volume(**dict(params, TagSpecifications=[]))
    assert _error(err)[0] == "IdempotentParameterMismatch"
    # tokens are per region; without a token (botocore makes a fresh one) nothing is shared
    west = ec2_clean.client(region="eu-west-1").create_volume(
        **dict(params, AvailabilityZone="eu-west-1a"))
    assert west["VolumeId"] != first["VolumeId"]
    other = ec2_client.create_volume(Size=1, AvailabilityZone=ZONE, VolumeType="gp3")
    assert other["VolumeId"] != first["VolumeId"]
    # a deleted volume: the token still names it
    ec2_client.get_waiter("volume_available").wait(
        VolumeIds=[first["VolumeId"]], WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})
    ec2_client.delete_volume(VolumeId=first["VolumeId"])
    gone = ec2_client.create_volume(**params)
    assert (gone["VolumeId"], gone["State"]) == (first["VolumeId"], "deleted")
    assert first["VolumeId"] not in ec2_clean.files()["volumes"]


def test_client_token_concurrent_requests_make_one_volume(ec2_clean):
    clients = [ec2_clean.client(region="us-east-1", retries={"max_attempts": 1})
               for _ in range(4)]
    barrier = threading.Barrier(len(clients))

    def create(client):
        barrier.wait()
        return client.create_volume(Size=1, AvailabilityZone=ZONE, ClientToken="same")["VolumeId"]

    with ThreadPoolExecutor(len(clients)) as pool:
        ids = set(pool.map(create, clients))
    assert len(ids) == 1
    assert ec2_clean.files()["volumes"] == sorted(ids)


# ----------------------------------------------------------------------------------------------
# AttachVolume: device names

@pytest.mark.parametrize("device", ["sdf", "/dev/sdZZ", "/dev/SDF", "/dev/nvme1n1", "/dev/sdf16",
                                    "/dev/vdb", "/dev/sd", "/dev/xvdf1x", "/dev/sdf ", ""])
def test_attach_refuses_a_malformed_device_name(ec2_clean, ec2_client, device):
    ec2_clean.timing.volume_create = 0
    iid = ec2_clean.register_instance(zone=ZONE)
    vol = ec2_client.create_volume(Size=1, AvailabilityZone=ZONE)["VolumeId"]
    with pytest.raises(ClientError) as err:
        ec2_client.attach_volume(VolumeId=vol, InstanceId=iid, Device=device)
    code, message = _error(err)
    assert code in ("InvalidParameterValue", "MissingParameter")
    if code == "InvalidParameterValue":
        assert message == (f"Value ({device}) for parameter device is invalid. "
                           f"{device} is not a valid EBS device name.")
    assert _volume(ec2_client, vol)["Attachments"] == []


@pytest.mark.parametrize("device", ["/dev/sdf", "/dev/sdp", "/dev/xvdf", "/dev/xvdba", "xvdg",
                                    "/dev/sdb1"])
def test_device_names_ec2_accepts(device):
    assert ebs_rules.check_device_name(device) == device


def test_attach_refuses_an_attachment_point_in_use(ec2_clean, ec2_client):
    ec2_clean.timing.set(volume_create=0, detach=SLOW)
    iid = ec2_clean.register_instance(zone=ZONE)
    other = ec2_clean.register_instance(zone=ZONE)
    vols = [ec2_client.create_volume(Size=1, AvailabilityZone=ZONE)["VolumeId"]
            for _ in range(3)]
    ec2_client.attach_volume(VolumeId=vols[0], InstanceId=iid, Device="/dev/sdf")
    with pytest.raises(ClientError) as err:
        ec2_client.attach_volume(VolumeId=vols[1], InstanceId=iid, Device="/dev/sdf")
    assert _error(err) == ("InvalidParameterValue", "Attachment point /dev/sdf is already in use")
    root = ec2_client.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0][
        "RootDeviceName"]
    with pytest.raises(ClientError) as err:
        ec2_client.attach_volume(VolumeId=vols[1], InstanceId=iid, Device=root)
    assert _error(err) == ("InvalidParameterValue", f"Attachment point {root} is already in use")
    ec2_client.attach_volume(VolumeId=vols[1], InstanceId=other, Device="/dev/sdf")  # per instance
    # the name stays taken while the detach is under way
    ec2_client.detach_volume(VolumeId=vols[0])
    with pytest.raises(ClientError) as err:
        ec2_client.attach_volume(VolumeId=vols[2], InstanceId=iid, Device="/dev/sdf")
    assert _error(err)[0] == "InvalidParameterValue"
    _until(lambda: _volume(ec2_client, vols[0])["State"] == "available")
    ec2_client.attach_volume(VolumeId=vols[2], InstanceId=iid, Device="/dev/sdf")
    assert ec2_client.describe_volumes(VolumeIds=[vols[2]])["Volumes"][0][
        "Attachments"][0]["Device"] == "/dev/sdf"


# ----------------------------------------------------------------------------------------------
# the guest: instance id as the DMI board asset tag, sshd's session limit

DMI = "/sys/devices/virtual/dmi/id/board_asset_tag"


def _tag(guest):
    return guest.check(f"cat {DMI} /sys/class/dmi/id/board_asset_tag").split("\n")[:2]


@pytest.mark.guest
def test_guest_board_asset_tag_is_the_instance_id(ec2_clean, guest_instance):
    rig, g, iid = ec2_clean, guest_instance.guest, guest_instance.instance_id
    assert _tag(g) == [iid, iid]  # readable without sudo, as on EC2
    assert g.check("cat /sys/class/dmi/id/board_vendor").strip() == "Amazon EC2"
    # the hooks answer after the guest rebooted or booted: no read timeout, no retry
    ec2 = rig.client(read_timeout=600, retries={"total_max_attempts": 1})
    # a reboot (QEMU keeps its SMBIOS table): the boot unit mounts the id again
    ec2.reboot_instances(InstanceIds=[iid])
    assert _tag(g) == [iid, iid]
    assert g.check("systemctl is-active ams-rig-asset-tag.service").strip() == "active"
    # unregistered: the tag is gone; another instance id for the same guest
    rig.unregister_instance(iid)
    assert _tag(g) == ["", ""]
    second = rig.register_instance(g, zone=guest_instance.zone, name=guest_instance.name)
    assert _tag(g) == [second, second]
    # stop/start: a cold boot mounts it again too
    ec2.stop_instances(InstanceIds=[second])
    ec2.start_instances(InstanceIds=[second])
    assert _tag(g) == [second, second]
    rig.unregister_instance(second)
    assert _tag(g) == ["", ""]
    # the file of an instance the guest stopped being while it was down: start() drops it
    g._apply_board_asset_tag("i-0123456789abcdef0")
    assert _tag(g) == ["i-0123456789abcdef0"] * 2
    g._sync_board_asset_tag()
    assert _tag(g) == ["", ""]


@pytest.mark.guest
def test_guest_sshd_keeps_debian_session_limits(rig_guest):
    import paramiko

    settings = dict(line.split(" ", 1) for line in
                    rig_guest.check("/usr/sbin/sshd -T", sudo=True).splitlines() if " " in line)
    assert settings["maxsessions"] == "10"
    assert settings["maxstartups"] == "10:30:100"
    # the 11th session on one connection is refused, as on an EC2 host
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect("127.0.0.1", port=rig_guest.ssh_port, username=rig_guest.user,
                   key_filename=rig_guest.key_path, allow_agent=False, look_for_keys=False,
                   timeout=15)
    try:
        transport = client.get_transport()
        channels = [transport.open_session(timeout=15) for _ in range(10)]
        with pytest.raises(paramiko.ChannelException):
            transport.open_session(timeout=15)
        for chan in channels:
            chan.close()
    finally:
        client.close()
    # the rig's own commands queue below the limit
    with ThreadPoolExecutor(16) as pool:
        outs = list(pool.map(lambda i: rig_guest.check(f"sleep 1; echo {i}").strip(), range(16)))
    assert outs == [str(i) for i in range(16)]

"""amslib.aws.ebs against the rig's EC2 endpoint (moto's server with the rig's hooks and faults):
create with tags and tokens, waiters, attach, detach, delete, describe, BatchError, retries."""

import threading
import time

import pytest

from amslib.aws.clients import AwsClients
from amslib.aws.ebs import BatchError, Ebs
from amslib.core.errors import AwsError, NotFoundError
from amslib.core.settings import load_settings
from amslib.ebs.params import check_volume_spec, group_tags

REGION = "us-east-1"
ZONE = "us-east-1a"


@pytest.fixture
def aws(ec2_clean):
    return AwsClients(load_settings(), region=REGION)


@pytest.fixture
def ebs(aws):
    return Ebs(aws, REGION, waiter_delay=0.2)


def member_requests(count, group_id=7, zone=ZONE, size=1, prefix="tok"):
    spec = check_volume_spec("gp3", size)
    return [{"spec": spec, "zone": zone, "tags": group_tags(group_id, 0 if count > 1 else None, i, 256, "xfs"),
             "token": f"{prefix}-{group_id}-{i}"} for i in range(count)]


def sent_params(client, action):
    """Every parameter dict the client sends for ``action`` (recorded before the request)."""
    seen = []
    client.meta.events.register(f"provide-client-params.ec2.{action}",
                                lambda params, **_: seen.append(dict(params)))
    return seen


def volume_ids_in_ec2(rig):
    """Ids of the data volumes EC2 knows (root volumes of instances have no ams tag)."""
    answer = rig.client(region=REGION, internal=True).describe_volumes(
        Filters=[{"Name": "tag-key", "Values": ["ams:volume-group-id"]}])
    return sorted(v["VolumeId"] for v in answer["Volumes"])


def tags_of(volume):
    return {t["Key"]: t["Value"] for t in volume.get("Tags", [])}


# -- the whole life of a group's volumes -----------------------------------------------------------

def test_create_wait_attach_detach_delete(ec2_clean, ebs):
    progress = []
    ebs.progress = progress.append
    created = sent_params(ebs.ec2, "CreateVolume")
    requests = member_requests(3)
    ids = ebs.create_volumes(requests)
    assert len(set(ids)) == 3 and all(i.startswith("vol-") for i in ids)
    assert sorted(p["ClientToken"] for p in created) == ["tok-7-0", "tok-7-1", "tok-7-2"]
    assert len([m for m in progress if m.startswith("created vol-")]) == 3

    ebs.wait_available(ids)
    found = ebs.describe(ids)
    assert set(found) == set(ids)
    for index, volume_id in enumerate(ids):  # ids come back in request order
        volume = found[volume_id]
        assert (volume["State"], volume["Size"], volume["VolumeType"], volume["AvailabilityZone"]) == \
            ("available", 1, "gp3", ZONE)
        assert tags_of(volume) == group_tags(7, 0, index, 256, "xfs")

    instance_id = ec2_clean.register_instance(zone=ZONE, name="plain")
    devices = ["/dev/sdf", "/dev/sdg", "/dev/sdh"]
    assert ebs.attach(list(zip(ids, [instance_id] * 3, devices))) == ids
    ebs.wait_attached(ids)
    found = ebs.describe(ids)
    for volume_id, device in zip(ids, devices):
        [attachment] = found[volume_id]["Attachments"]
        assert (attachment["InstanceId"], attachment["Device"], attachment["State"]) == \
            (instance_id, device, "attached")
    instance = ebs.instance(instance_id)
    assert instance["State"]["Name"] == "running" and instance["Placement"]["AvailabilityZone"] == ZONE
    mapped = {m["DeviceName"]: m["Ebs"]["VolumeId"] for m in instance["BlockDeviceMappings"]}
    assert {d: mapped[d] for d in devices} == dict(zip(devices, ids))

    detached = sent_params(ebs.ec2, "DetachVolume")
    assert ebs.detach(ids, instance_id) == ids
    assert {p["InstanceId"] for p in detached} == {instance_id}
    ebs.wait_detached(ids)
    assert {v["State"] for v in ebs.describe(ids).values()} == {"available"}

    assert ebs.delete(ids) == ids
    assert ebs.describe(ids) == {}
    assert volume_ids_in_ec2(ec2_clean) == []
    assert ebs.delete(ids) == ids  # already gone is fine


def test_create_volumes_run_in_parallel(ec2_clean, aws):
    ec2_clean.faults.set_latency(0.5, "CreateVolume")
    ebs = Ebs(aws, REGION, max_workers=4)
    started = time.monotonic()
    ids = ebs.create_volumes(member_requests(4))
    elapsed = time.monotonic() - started
    assert len(ids) == 4
    assert elapsed < 1.5, f"4 creates with 0.5 s latency took {elapsed:.2f} s: not parallel"


def test_max_workers_bounds_the_calls_in_flight(ec2_clean, aws):
    ebs = Ebs(aws, REGION, max_workers=2)
    lock = threading.Lock()
    in_flight = [0, 0]  # now, most

    def before(**_):
        with lock:
            in_flight[0] += 1
            in_flight[1] = max(in_flight[1], in_flight[0])

    def after(**_):
        with lock:
            in_flight[0] -= 1

    ebs.ec2.meta.events.register("before-call.ec2.CreateVolume", before)
    ebs.ec2.meta.events.register("after-call.ec2.CreateVolume", after)
    ec2_clean.faults.set_latency(0.2, "CreateVolume")
    assert len(ebs.create_volumes(member_requests(5))) == 5
    assert in_flight[1] == 2


def test_describe_leaves_out_unknown_volumes(ec2_clean, ebs):
    [volume_id] = ebs.create_volumes(member_requests(1))
    found = ebs.describe([volume_id, "vol-0123456789abcdef0", volume_id])
    assert list(found) == [volume_id]
    assert ebs.describe([]) == {}


def test_instance_not_found(ec2_clean, ebs):
    with pytest.raises(NotFoundError, match="i-0123456789abcdef0"):
        ebs.instance("i-0123456789abcdef0")


# -- failures --------------------------------------------------------------------------------------

def test_second_of_three_creates_fails(ec2_clean, aws):
    ebs = Ebs(aws, REGION, max_workers=1)
    calls = []

    def arm_on_second(**_):
        calls.append(1)
        if len(calls) == 2:
            ec2_clean.faults.fail_next("CreateVolume", "InsufficientVolumeCapacity",
                                       message="There is not enough capacity")

    ebs.ec2.meta.events.register("before-call.ec2.CreateVolume", arm_on_second)
    with pytest.raises(BatchError) as info:
        ebs.create_volumes(member_requests(3))
    err = info.value
    assert isinstance(err, AwsError) and err.exit_code == 7
    assert list(err.done) == [0] and list(err.failed) == [1] and err.skipped == [2]
    assert str(err) == ("CreateVolume #2 in us-east-1a failed: InsufficientVolumeCapacity: There is not enough "
                        "capacity (1 of 3 CreateVolume call(s) succeeded, 1 not started)")
    assert volume_ids_in_ec2(ec2_clean) == [err.done[0]]  # the caller knows every volume that exists
    assert ec2_clean.counts(REGION)["CreateVolume"] == 2


def test_a_failed_create_waits_for_the_creates_in_flight(ec2_clean, aws):
    ebs = Ebs(aws, REGION, max_workers=8)
    ec2_clean.faults.set_latency(0.3, "CreateVolume")  # all three are in flight when one fails
    fault = ec2_clean.faults.fail_next("CreateVolume", "InsufficientVolumeCapacity")
    with pytest.raises(BatchError, match="InsufficientVolumeCapacity") as info:
        ebs.create_volumes(member_requests(3))
    err = info.value
    assert fault.fired == 1
    assert len(err.failed) == 1 and len(err.done) == 2 and err.skipped == []
    assert volume_ids_in_ec2(ec2_clean) == sorted(err.done.values())


def test_attach_failure_reports_what_was_attached(ec2_clean, aws):
    ebs = Ebs(aws, REGION, max_workers=1)
    here, there = ebs.create_volumes(member_requests(1, group_id=1) + member_requests(1, group_id=2,
                                                                                      zone="us-east-1b"))
    ebs.wait_available([here, there])
    instance_id = ec2_clean.register_instance(zone=ZONE)
    with pytest.raises(BatchError, match=f"AttachVolume {there} to {instance_id} as /dev/sdg failed: "
                                         "InvalidVolume.ZoneMismatch") as info:
        ebs.attach([(here, instance_id, "/dev/sdf"), (there, instance_id, "/dev/sdg")])
    assert info.value.done == {0: here}
    ebs.wait_attached([here])
    with pytest.raises(BatchError, match="VolumeInUse"):
        ebs.attach([(here, instance_id, "/dev/sdh")])


def test_delete_tries_every_volume(ec2_clean, ebs):
    ids = ebs.create_volumes(member_requests(3))
    ebs.wait_available(ids)
    instance_id = ec2_clean.register_instance(zone=ZONE)
    ebs.attach([(ids[1], instance_id, "/dev/sdf")])
    ebs.wait_attached([ids[1]])
    with pytest.raises(BatchError, match=f"DeleteVolume {ids[1]} failed: VolumeInUse") as info:
        ebs.delete(ids)
    assert info.value.done == {0: ids[0], 2: ids[2]} and info.value.skipped == []
    assert volume_ids_in_ec2(ec2_clean) == [ids[1]]


def test_detach_of_a_volume_not_attached_there_fails(ec2_clean, ebs):
    ids = ebs.create_volumes(member_requests(2))
    ebs.wait_available(ids)
    instance_id = ec2_clean.register_instance(zone=ZONE)
    ebs.attach([(ids[0], instance_id, "/dev/sdf")])
    ebs.wait_attached([ids[0]])
    with pytest.raises(BatchError) as info:
        ebs.detach(ids, instance_id)
    assert info.value.done == {0: ids[0]} and list(info.value.failed) == [1]
    ebs.wait_detached([ids[0]])


def test_wait_attached_times_out_naming_the_state(ec2_clean, aws):
    ebs = Ebs(aws, REGION, waiter_delay=0.2)
    [volume_id] = ebs.create_volumes(member_requests(1))
    ebs.wait_available([volume_id])
    started = time.monotonic()
    with pytest.raises(AwsError, match=f"timed out after 0.5 s waiting for 1 volume\\(s\\) to be attached: "
                                       f"{volume_id} is available$"):
        ebs.wait_attached([volume_id], timeout=0.5)
    assert time.monotonic() - started < 5


def test_wait_detached_of_an_unknown_volume_fails_at_once(ec2_clean, ebs):
    started = time.monotonic()
    with pytest.raises(NotFoundError, match="InvalidVolume.NotFound"):
        ebs.wait_detached(["vol-0123456789abcdef0"])
    assert time.monotonic() - started < 2


# -- retries ---------------------------------------------------------------------------------------

def test_request_limit_exceeded_is_absorbed_by_retries(ec2_clean, ebs):
    create_fault = ec2_clean.faults.fail_next("CreateVolume", "RequestLimitExceeded", count=2)
    created = sent_params(ebs.ec2, "CreateVolume")
    [volume_id] = ebs.create_volumes(member_requests(1))
    assert create_fault.fired == 2
    assert ec2_clean.counts(REGION)["CreateVolume"] == 3  # one call, retried twice with its token
    assert [p["ClientToken"] for p in created] == ["tok-7-0"]
    assert volume_ids_in_ec2(ec2_clean) == [volume_id]

    describe_fault = ec2_clean.faults.fail_next("DescribeVolumes", "RequestLimitExceeded")
    ebs.wait_available([volume_id])
    assert describe_fault.fired == 1

    instance_id = ec2_clean.register_instance(zone=ZONE)
    attach_fault = ec2_clean.faults.fail_next("AttachVolume", "InternalError")
    ebs.attach([(volume_id, instance_id, "/dev/sdf")])
    assert attach_fault.fired == 1
    ebs.wait_attached([volume_id])


def test_throttling_beyond_the_retry_budget_is_one_error_line(ec2_clean, aws, monkeypatch):
    monkeypatch.setenv("AMS_AWS_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("AMS_AWS_RETRY_MODE", "standard")
    ebs = Ebs(AwsClients(load_settings(), region=REGION), REGION)
    fault = ec2_clean.faults.fail_next("DeleteVolume", "RequestLimitExceeded", count=5)
    with pytest.raises(BatchError, match="DeleteVolume vol-0123456789abcdef0 failed: RequestLimitExceeded") as info:
        ebs.delete(["vol-0123456789abcdef0"])
    assert "\n" not in str(info.value)
    assert fault.fired == 3  # botocore's max_attempts counts retries: 1 call + 2 retries


# -- the rig's EC2-like timings (volumes "creating", attachments "attaching") ------------------------

def test_waiters_follow_slow_state_changes(ec2_clean, ebs):
    timing = getattr(ec2_clean, "timing", None)
    if timing is None:
        pytest.skip("this rig changes volume states at once (no rig.timing)")
    timing.volume_create = 0.6
    timing.attach = 0.6
    ids = ebs.create_volumes(member_requests(2))
    assert {v["State"] for v in ebs.describe(ids).values()} == {"creating"}
    ec2_clean.reset_counts()
    ebs.wait_available(ids)
    assert ec2_clean.counts(REGION)["DescribeVolumes"] >= 2
    instance_id = ec2_clean.register_instance(zone=ZONE)
    ebs.attach([(ids[0], instance_id, "/dev/sdf"), (ids[1], instance_id, "/dev/sdg")])
    assert {a["State"] for v in ebs.describe(ids).values() for a in v["Attachments"]} == {"attaching"}
    ebs.wait_attached(ids)
    ebs.detach(ids, instance_id)
    ebs.wait_detached(ids)
    ebs.delete(ids)


def test_the_same_client_tokens_give_the_same_volumes_back(ec2_clean, ebs):
    first = ebs.create_volumes(member_requests(2))
    assert ebs.create_volumes(member_requests(2)) == first  # a re-run after a crash creates nothing
    assert volume_ids_in_ec2(ec2_clean) == sorted(first)
    with pytest.raises(BatchError, match="IdempotentParameterMismatch") as info:
        ebs.create_volumes(member_requests(2, size=2))
    assert info.value.done == {}

"""amslib.aws.ebs without an endpoint: waiter sequences on a stubbed client (botocore Stubber),
batches on a fake client, BatchError's shape."""

import threading

import boto3
import jmespath
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from amslib.aws import ebs as ebs_mod
from amslib.aws.ebs import BatchError, Ebs, waiter_attempts
from amslib.core.errors import AwsError, NotFoundError, UsageError
from amslib.ebs.params import VolumeSpec

A, B = "vol-0aaaaaaaaaaaaaaaa", "vol-0bbbbbbbbbbbbbbbb"
INSTANCE = "i-0123456789abcdef0"


class Clients:
    def __init__(self, client):
        self.client = client
        self.regions_asked = []

    def ec2(self, region=None):
        self.regions_asked.append(region)
        return self.client


def volume(volume_id, state, *attachment_states):
    return {
        "VolumeId": volume_id, "State": state, "Size": 1, "AvailabilityZone": "us-east-1a",
        "Attachments": [{"VolumeId": volume_id, "InstanceId": INSTANCE, "Device": "/dev/sdf", "State": s}
                        for s in attachment_states],
    }


@pytest.fixture(scope="module")
def client():
    return boto3.session.Session().client(
        "ec2", region_name="us-east-1", endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="x", aws_secret_access_key="y")


@pytest.fixture
def stubbed(client):
    with Stubber(client) as stub:
        yield Ebs(Clients(client), "us-east-1", waiter_delay=0.01), stub
        stub.assert_no_pending_responses()


def answers(stub, ids, *steps):
    """Queue DescribeVolumes answers: each step a list of volumes or an error code."""
    for step in steps:
        if isinstance(step, str):
            stub.add_client_error("describe_volumes", service_error_code=step, service_message="nope",
                                  http_status_code=400, expected_params={"VolumeIds": ids})
        else:
            stub.add_response("describe_volumes", {"Volumes": step}, {"VolumeIds": ids})


# -- waiters ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("timeout, delay, attempts", [
    (300, 1, 301), (1, 1, 2), (0.5, 1, 2), (10, 0.5, 21), (2.5, 1, 4), (0.05, 0.01, 6),
])
def test_waiter_attempts(timeout, delay, attempts):
    assert waiter_attempts(timeout, delay) == attempts


@pytest.mark.parametrize("timeout, delay", [(0, 1), (-1, 1), (1, 0)])
def test_waiter_attempts_refuses_nonsense(timeout, delay):
    with pytest.raises(ValueError):
        waiter_attempts(timeout, delay)


@pytest.mark.parametrize("volumes, attached", [
    ([], False),
    ([volume(A, "available")], False),
    ([volume(A, "in-use", "attaching")], False),
    ([volume(A, "in-use", "attached")], True),
    ([volume(A, "in-use", "attached"), volume(B, "available")], False),
    ([volume(A, "in-use", "attached"), volume(B, "in-use", "attaching")], False),
    ([volume(A, "in-use", "attached"), volume(B, "in-use", "attached")], True),
    ([volume(A, "in-use", "detaching", "attached"), volume(B, "in-use", "attached")], True),
    ([volume(A, "in-use", "detaching")], False),
])
def test_attached_expression(volumes, attached):
    assert jmespath.search(ebs_mod.ATTACHED_EXPRESSION, {"Volumes": volumes}) is attached


def test_waiters_are_botocore_waiters(stubbed):
    ebs, _ = stubbed
    for name in ("VolumesAvailable", "VolumesAttached", "VolumesDetached"):
        waiter = ebs.waiter(name)
        assert waiter.name == name and waiter.config.operation == "DescribeVolumes"


def test_wait_available_polls_until_available(stubbed):
    ebs, stub = stubbed
    answers(stub, [A, B],
            [volume(A, "creating"), volume(B, "creating")],
            [volume(A, "available"), volume(B, "creating")],
            [volume(A, "available"), volume(B, "available")])
    ebs.wait_available([A, B, A])  # repeats are asked once


def test_wait_available_retries_not_found_right_after_create(stubbed):
    ebs, stub = stubbed
    answers(stub, [A], "InvalidVolume.NotFound", [volume(A, "creating")], [volume(A, "available")])
    ebs.wait_available([A])


@pytest.mark.parametrize("state", ["error", "deleting", "deleted"])
def test_wait_available_fails_at_once_on_a_dead_volume(stubbed, state):
    ebs, stub = stubbed
    answers(stub, [A, B], [volume(A, "creating"), volume(B, state)])
    with pytest.raises(AwsError, match=f"become available failed: {B} is {state}$"):
        ebs.wait_available([A, B])


def test_wait_available_times_out_with_the_states(stubbed):
    ebs, stub = stubbed
    answers(stub, [A, B], *[[volume(A, "available"), volume(B, "creating")]] * 6)
    with pytest.raises(AwsError) as info:
        ebs.wait_available([A, B], timeout=0.05)
    assert str(info.value) == (
        f"timed out after 0.05 s waiting for 2 volume(s) to become available: "
        f"{A} is available, {B} is creating")


def test_wait_available_not_found_until_the_end(stubbed):
    ebs, stub = stubbed
    answers(stub, [A], *["InvalidVolume.NotFound"] * 2)
    with pytest.raises(NotFoundError, match="InvalidVolume.NotFound: nope"):
        ebs.wait_available([A], timeout=0.01)


def test_wait_attached(stubbed):
    ebs, stub = stubbed
    answers(stub, [A, B],
            [volume(A, "available"), volume(B, "available")],
            [volume(A, "in-use", "attaching"), volume(B, "available")],
            [volume(A, "in-use", "attached"), volume(B, "in-use", "attaching")],
            [volume(A, "in-use", "attached"), volume(B, "in-use", "attached")])
    ebs.wait_attached([A, B])


def test_wait_attached_times_out_naming_the_attachment_state(stubbed):
    ebs, stub = stubbed
    answers(stub, [A], *[[volume(A, "in-use", "attaching")]] * 3)
    with pytest.raises(AwsError, match=f"be attached: {A} is in-use \\(attaching to {INSTANCE}\\)$"):
        ebs.wait_attached([A], timeout=0.02)


def test_wait_attached_fails_on_a_deleted_volume(stubbed):
    ebs, stub = stubbed
    answers(stub, [A], [volume(A, "deleting")])
    with pytest.raises(AwsError, match=f"{A} is deleting"):
        ebs.wait_attached([A])


def test_wait_detached(stubbed):
    ebs, stub = stubbed
    answers(stub, [A], [volume(A, "in-use", "detaching")], [volume(A, "in-use", "detaching")],
            [volume(A, "available")])
    ebs.wait_detached([A])


def test_wait_detached_reports_a_busy_detachment_after_the_grace(stubbed, monkeypatch):
    """EC2 keeps a detachment "busy" while the instance uses the volume: ams says so after
    BUSY_GRACE instead of waiting out the whole timeout."""
    from amslib.core.errors import ConflictError

    ebs, stub = stubbed
    monkeypatch.setattr(ebs_mod, "BUSY_GRACE", 0.02)  # 3 polls at 0.01 s
    answers(stub, [A, B], *[[volume(A, "in-use", "busy"), volume(B, "available")]] * 3)
    with pytest.raises(ConflictError, match=f"^{A} still in use on {INSTANCE}: the detachment is busy after 0.02 s") as info:
        ebs.wait_detached([A, B], timeout=60)
    assert B not in str(info.value)


def test_wait_detached_goes_on_after_the_grace_while_not_busy(stubbed, monkeypatch):
    ebs, stub = stubbed
    monkeypatch.setattr(ebs_mod, "BUSY_GRACE", 0.02)
    answers(stub, [A], *[[volume(A, "in-use", "detaching")]] * 4, [volume(A, "available")])
    ebs.wait_detached([A], timeout=60)


def test_wait_detached_busy_only_before_the_grace_ends_is_no_error(stubbed, monkeypatch):
    ebs, stub = stubbed
    monkeypatch.setattr(ebs_mod, "BUSY_GRACE", 0.02)
    answers(stub, [A], [volume(A, "in-use", "busy")], [volume(A, "in-use", "detaching")], [volume(A, "available")])
    ebs.wait_detached([A], timeout=60)


def test_wait_detached_times_out_with_the_whole_timeout_in_the_message(stubbed, monkeypatch):
    ebs, stub = stubbed
    monkeypatch.setattr(ebs_mod, "BUSY_GRACE", 0.02)
    answers(stub, [A], *[[volume(A, "in-use", "detaching")]] * 6)  # 3 in the grace, 3 after it
    with pytest.raises(ebs_mod.WaitTimeout, match=f"timed out after 0.04 s waiting for 1 volume\\(s\\) to be detached: "
                                                  f"{A} is in-use \\(detaching to {INSTANCE}\\)$"):
        ebs.wait_detached([A], timeout=0.04)


def test_wait_detached_unknown_volume_fails_at_once(stubbed):
    ebs, stub = stubbed
    answers(stub, [A], "InvalidVolume.NotFound")
    with pytest.raises(NotFoundError, match=f"waiting for 1 volume\\(s\\) to be detached failed: InvalidVolume.NotFound"):
        ebs.wait_detached([A])


def test_wait_other_errors_are_aws_errors(stubbed):
    ebs, stub = stubbed
    answers(stub, [A], "UnauthorizedOperation")
    with pytest.raises(AwsError, match="UnauthorizedOperation: nope") as info:
        ebs.wait_detached([A])
    assert not isinstance(info.value, NotFoundError)


def test_wait_nothing_makes_no_call(stubbed):
    ebs, _ = stubbed
    ebs.wait_available([])
    ebs.wait_attached(())
    ebs.wait_detached({})


# -- describe and instance -------------------------------------------------------------------------

def test_describe_uses_filters_in_chunks(stubbed):
    ebs, stub = stubbed
    ids = [f"vol-{n:017x}" for n in range(450)]
    for chunk in (ids[:200], ids[200:400], ids[400:]):
        stub.add_response("describe_volumes", {"Volumes": [volume(v, "available") for v in chunk[::2]]},
                          {"Filters": [{"Name": "volume-id", "Values": chunk}], "MaxResults": 500})
    found = ebs.describe(ids)
    assert sorted(found) == sorted(ids[0:200:2] + ids[200:400:2] + ids[400::2])
    assert found[ids[0]]["State"] == "available"


def test_describe_follows_pages(stubbed):
    ebs, stub = stubbed
    stub.add_response("describe_volumes", {"Volumes": [volume(A, "available")], "NextToken": "t"},
                      {"Filters": [{"Name": "volume-id", "Values": [A, B]}], "MaxResults": 500})
    stub.add_response("describe_volumes", {"Volumes": [volume(B, "in-use", "attached")]},
                      {"Filters": [{"Name": "volume-id", "Values": [A, B]}], "MaxResults": 500,
                       "NextToken": "t"})
    assert sorted(ebs.describe([A, B])) == [A, B]


def test_describe_nothing_makes_no_call(stubbed):
    ebs, _ = stubbed
    assert ebs.describe([]) == {}


def test_instance(stubbed):
    ebs, stub = stubbed
    item = {"InstanceId": INSTANCE, "State": {"Name": "running"}, "Placement": {"AvailabilityZone": "us-east-1a"}}
    stub.add_response("describe_instances", {"Reservations": [{"Instances": [item]}]}, {"InstanceIds": [INSTANCE]})
    assert ebs.instance(INSTANCE)["Placement"]["AvailabilityZone"] == "us-east-1a"


@pytest.mark.parametrize("error", [None, "InvalidInstanceID.NotFound"])
def test_instance_not_found(stubbed, error):
    ebs, stub = stubbed
    if error:
        stub.add_client_error("describe_instances", service_error_code=error, service_message="gone")
    else:
        stub.add_response("describe_instances", {"Reservations": []}, {"InstanceIds": [INSTANCE]})
    with pytest.raises(NotFoundError, match=INSTANCE):
        ebs.instance(INSTANCE)


# -- batches on a fake client ----------------------------------------------------------------------

def client_error(code, action):
    return ClientError({"Error": {"Code": code, "Message": f"{code} injected"}}, action)


class FakeEc2:
    """Records calls; ``fail`` maps a volume id, or a request's Size, to an error code."""

    def __init__(self, fail=None, crash=None, together=None):
        self.fail = fail or {}
        self.crash = crash or set()
        self.together = threading.Barrier(together) if together else None
        self.calls = []
        self.lock = threading.Lock()
        self.created = 0

    def _record(self, action, kwargs):
        with self.lock:
            self.calls.append((action, kwargs))

    def create_volume(self, **kwargs):
        self._record("CreateVolume", kwargs)
        if self.together:
            self.together.wait(timeout=10)
        if kwargs["Size"] in self.fail:
            raise client_error(self.fail[kwargs["Size"]], "CreateVolume")
        if kwargs["Size"] in self.crash:
            raise RuntimeError("a bug")
        with self.lock:
            self.created += 1
            return {"VolumeId": f"vol-{kwargs['Size']:017x}"}

    def _volume_call(self, action, kwargs):
        self._record(action, kwargs)
        if kwargs["VolumeId"] in self.fail:
            raise client_error(self.fail[kwargs["VolumeId"]], action)
        return {}

    def attach_volume(self, **kwargs):
        return self._volume_call("AttachVolume", kwargs)

    def detach_volume(self, **kwargs):
        return self._volume_call("DetachVolume", kwargs)

    def delete_volume(self, **kwargs):
        return self._volume_call("DeleteVolume", kwargs)


def requests(*sizes, tags=None):
    return [{"spec": VolumeSpec("gp3", size), "zone": "us-east-1a", "tags": tags, "token": f"tok-{size}"}
            for size in sizes]


def test_create_volumes_sends_spec_zone_tags_token_in_order():
    fake = FakeEc2()
    progress = []
    ebs = Ebs(Clients(fake), "eu-west-1", progress=progress.append)
    spec = VolumeSpec("io2", 5, iops=500, encrypted=True, kms_key_id="alias/aws/ebs")
    reqs = [{"spec": spec, "zone": "eu-west-1b", "tags": {"ams:member-index": 0, "Name": "x"}, "token": "t0"},
            {"spec": VolumeSpec("gp3", 7), "zone": "eu-west-1b", "tags": {}, "token": None}]
    assert ebs.create_volumes(reqs) == [f"vol-{5:017x}", f"vol-{7:017x}"]
    calls = {kw["Size"]: kw for _, kw in fake.calls}
    assert calls[5] == {"VolumeType": "io2", "Size": 5, "Iops": 500, "Encrypted": True,
                        "KmsKeyId": "alias/aws/ebs", "AvailabilityZone": "eu-west-1b", "ClientToken": "t0",
                        "TagSpecifications": [{"ResourceType": "volume", "Tags": [
                            {"Key": "ams:member-index", "Value": "0"}, {"Key": "Name", "Value": "x"}]}]}
    assert calls[7] == {"VolumeType": "gp3", "Size": 7, "AvailabilityZone": "eu-west-1b"}
    assert sorted(m.rsplit(" (", 1)[0] for m in progress) == [
        f"created vol-{5:017x} in eu-west-1b", f"created vol-{7:017x} in eu-west-1b"]
    assert [m.rsplit(" ", 1)[1] for m in progress] == ["(1/2)", "(2/2)"]
    assert all(r == "eu-west-1" for r in ebs.aws.regions_asked)


@pytest.mark.parametrize("token", ["", "x" * 65, "with space", "tab\t", "ünï", "line\n"])
def test_create_volumes_refuses_bad_tokens_before_any_call(token):
    fake = FakeEc2()
    reqs = requests(1, 2)
    reqs[1]["token"] = token
    with pytest.raises(UsageError, match="invalid client token"):
        Ebs(Clients(fake), "us-east-1").create_volumes(reqs)
    assert fake.calls == []


def test_create_batch_error_in_order_stops_starting_more():
    fake = FakeEc2(fail={2: "VolumeLimitExceeded"})
    ebs = Ebs(Clients(fake), "us-east-1", max_workers=1)
    with pytest.raises(BatchError) as info:
        ebs.create_volumes(requests(1, 2, 3))
    err = info.value
    assert isinstance(err, AwsError) and err.exit_code == 7
    assert err.done == {0: f"vol-{1:017x}"}
    assert list(err.failed) == [1] and isinstance(err.failed[1], AwsError)
    assert err.skipped == [2] and err.total == 3 and err.action == "CreateVolume" and not err.interrupted
    assert str(err) == ("CreateVolume #2 in us-east-1a failed: VolumeLimitExceeded: VolumeLimitExceeded injected "
                        "(1 of 3 CreateVolume call(s) succeeded, 1 not started)")
    assert [kw["Size"] for _, kw in fake.calls] == [1, 2]


def test_create_batch_error_waits_for_running_calls_and_reports_the_lowest_failed_index():
    fake = FakeEc2(fail={3: "InternalError", 2: "VolumeLimitExceeded"}, together=4)  # all four in flight
    with pytest.raises(BatchError) as info:
        Ebs(Clients(fake), "us-east-1", max_workers=8).create_volumes(requests(1, 2, 3, 4))
    assert str(info.value).startswith("CreateVolume #2 in us-east-1a failed: VolumeLimitExceeded")
    assert str(info.value).endswith("(2 of 4 CreateVolume call(s) succeeded)")
    assert list(info.value.failed) == [1, 2] and info.value.skipped == []
    assert info.value.done == {0: f"vol-{1:017x}", 3: f"vol-{4:017x}"}


def test_unexpected_exception_in_a_call_is_a_failure_not_a_lost_batch():
    fake = FakeEc2(crash={2})
    with pytest.raises(BatchError, match="CreateVolume #2 failed: RuntimeError: a bug") as info:
        Ebs(Clients(fake), "us-east-1", max_workers=1).create_volumes(requests(1, 2))
    assert info.value.done == {0: f"vol-{1:017x}"}


def test_ctrl_c_waits_for_running_calls_and_reports_them():
    fake = FakeEc2()

    def progress(message):
        raise KeyboardInterrupt

    with pytest.raises(BatchError, match="^interrupted: ") as info:
        Ebs(Clients(fake), "us-east-1", max_workers=1, progress=progress).create_volumes(requests(1, 2, 3, 4))
    err = info.value
    assert err.interrupted and err.exit_code == 130 and err.failed == {}
    assert 0 in err.done and len(err.done) == fake.created
    assert sorted(list(err.done) + err.skipped) == [0, 1, 2, 3]


def test_attach_pairs_and_failure():
    fake = FakeEc2(fail={B: "InvalidParameterValue"})
    ebs = Ebs(Clients(fake), "us-east-1", max_workers=1)
    assert ebs.attach([(A, INSTANCE, "/dev/sdf")]) == [A]
    assert fake.calls[-1] == ("AttachVolume", {"VolumeId": A, "InstanceId": INSTANCE, "Device": "/dev/sdf"})
    with pytest.raises(BatchError, match=f"AttachVolume {B} to {INSTANCE} as /dev/sdg failed: InvalidParameterValue") as info:
        ebs.attach([(A, INSTANCE, "/dev/sdf"), (B, INSTANCE, "/dev/sdg"), ("vol-0c", INSTANCE, "/dev/sdh")])
    assert info.value.done == {0: A} and info.value.skipped == [2]


def test_detach_tries_every_volume_and_passes_the_instance():
    fake = FakeEc2(fail={A: "IncorrectState"})
    ebs = Ebs(Clients(fake), "us-east-1", max_workers=1)
    with pytest.raises(BatchError) as info:
        ebs.detach([A, B, "vol-0c"], INSTANCE, force=True)
    assert info.value.done == {1: B, 2: "vol-0c"} and list(info.value.failed) == [0] and info.value.skipped == []
    assert ("DetachVolume", {"VolumeId": B, "InstanceId": INSTANCE, "Force": True}) in fake.calls
    assert ebs.detach([B], INSTANCE) == [B]
    assert fake.calls[-1][1]["Force"] is False


def test_delete_tries_every_volume_and_gone_is_fine():
    fake = FakeEc2(fail={A: "InvalidVolume.NotFound", B: "VolumeInUse"})
    ebs = Ebs(Clients(fake), "us-east-1", max_workers=1)
    with pytest.raises(BatchError, match=f"DeleteVolume {B} failed: VolumeInUse") as info:
        ebs.delete([A, B, "vol-0c"])
    assert info.value.done == {0: A, 2: "vol-0c"}
    assert ebs.delete([A]) == [A]
    assert ebs.delete([]) == []


def test_batch_error_shape():
    err = BatchError("DeleteVolume", 3, {2: "vol-c", 0: "vol-a"}, {1: AwsError("DeleteVolume vol-b failed: X")})
    assert list(err.done) == [0, 2] and err.skipped == [] and err.exit_code == 7
    assert str(err) == "DeleteVolume vol-b failed: X (2 of 3 DeleteVolume call(s) succeeded)"
    assert err.message == str(err) and "\n" not in str(err)


def test_max_workers_must_be_positive():
    with pytest.raises(ValueError):
        Ebs(Clients(None), "us-east-1", max_workers=0)


def test_create_volumes_from_a_snapshot_takes_its_size_unless_given():
    sent = []

    class Recorder:
        def create_volume(self, **kwargs):
            sent.append(kwargs)
            return {"VolumeId": f"vol-{len(sent):017x}"}

    progress = []
    ebs = Ebs(Clients(Recorder()), "us-east-1", max_workers=1, progress=progress.append)
    reqs = [{"spec": VolumeSpec("gp3", None), "zone": "us-east-1b", "tags": {"a": "b"}, "token": "t0",
             "snapshot_id": "snap-0aaaaaaaaaaaaaaaa"},
            {"spec": VolumeSpec("io2", 20, iops=2000), "zone": "us-east-1b", "tags": None, "token": None,
             "snapshot_id": "snap-0bbbbbbbbbbbbbbbb"}]
    assert ebs.create_volumes(reqs) == [f"vol-{1:017x}", f"vol-{2:017x}"]
    assert sent == [
        {"VolumeType": "gp3", "AvailabilityZone": "us-east-1b", "SnapshotId": "snap-0aaaaaaaaaaaaaaaa",
         "ClientToken": "t0", "TagSpecifications": [{"ResourceType": "volume", "Tags": [{"Key": "a", "Value": "b"}]}]},
        {"VolumeType": "io2", "Size": 20, "Iops": 2000, "AvailabilityZone": "us-east-1b",
         "SnapshotId": "snap-0bbbbbbbbbbbbbbbb"},
    ]
    assert progress[0] == f"created vol-{1:017x} from snap-0aaaaaaaaaaaaaaaa in us-east-1b (1/2)"


def test_create_volumes_needs_a_size_without_a_snapshot():
    fake = FakeEc2()
    with pytest.raises(UsageError, match="a volume size is needed unless the volume is made from a snapshot"):
        Ebs(Clients(fake), "us-east-1").create_volumes([{"spec": VolumeSpec("gp3", None), "zone": "us-east-1a"}])
    assert fake.calls == []

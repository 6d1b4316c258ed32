"""amslib.aws.snapshots without an endpoint: exact requests and answers on stubbed clients
(botocore Stubber), batches and failures on a fake client, the waiter's acceptors and progress."""

import threading

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from amslib.aws import snapshots as snap_mod
from amslib.aws.ebs import BatchError
from amslib.aws.snapshots import Snapshots, progress_line, progress_of
from amslib.core.errors import AwsError, ConflictError, NotFoundError, UsageError

A, B, C = "vol-0aaaaaaaaaaaaaaaa", "vol-0bbbbbbbbbbbbbbbb", "vol-0cccccccccccccccc"
ROOT = "vol-0eeeeeeeeeeeeeeee"
SA, SB, SC, SR = "snap-0aaaaaaaaaaaaaaaa", "snap-0bbbbbbbbbbbbbbbb", "snap-0cccccccccccccccc", "snap-0eeeeeeeeeeeeeeee"
INSTANCE = "i-0123456789abcdef0"


class Clients:
    def __init__(self, **by_region):
        self.by_region = by_region
        self.regions_asked = []

    def ec2(self, region=None):
        self.regions_asked.append(region)
        return self.by_region[region]


def make_client(region):
    return boto3.session.Session().client(
        "ec2", region_name=region, endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="x", aws_secret_access_key="y")


@pytest.fixture(scope="module")
def east():
    return make_client("us-east-1")


@pytest.fixture(scope="module")
def west():
    return make_client("eu-west-1")


@pytest.fixture
def stubbed(east):
    with Stubber(east) as stub:
        yield Snapshots(Clients(**{"us-east-1": east}), "us-east-1", max_workers=1, waiter_delay=0.01), stub
        stub.assert_no_pending_responses()


def snapshot(snapshot_id, state="completed", progress=None, volume_id=A, tags=None, message=None):
    item = {"SnapshotId": snapshot_id, "State": state, "VolumeId": volume_id, "VolumeSize": 1,
            "Progress": progress if progress is not None else ("100%" if state == "completed" else "0%"),
            "OwnerId": "123456789012"}
    if tags:
        item["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
    if message:
        item["StateMessage"] = message
    return item


def polls(stub, ids, *steps):
    """Queue DescribeSnapshots answers of the waiter: each step a list of snapshots or an error code."""
    for step in steps:
        if isinstance(step, str):
            stub.add_client_error("describe_snapshots", service_error_code=step, service_message="nope",
                                  http_status_code=400, expected_params={"SnapshotIds": ids})
        else:
            stub.add_response("describe_snapshots", {"Snapshots": step}, {"SnapshotIds": ids})


def instance_item(*data, root=ROOT):
    mappings = [{"DeviceName": "/dev/xvda", "Ebs": {"VolumeId": root, "Status": "attached"}}] if root else []
    mappings += [{"DeviceName": f"/dev/sd{chr(ord('f') + n)}", "Ebs": {"VolumeId": v, "Status": "attached"}}
                 for n, v in enumerate(data)]
    return {"InstanceId": INSTANCE, "RootDeviceName": "/dev/xvda", "BlockDeviceMappings": mappings}


# -- progress lines and the waiter -------------------------------------------------------------------

@pytest.mark.parametrize("item, text", [
    (None, "not found"),
    (snapshot(SA, "pending", "37%"), "37%"),
    (snapshot(SA, "pending", ""), "0%"),
    ({"SnapshotId": SA, "State": "completed"}, "100%"),
    (snapshot(SA, "error", "12%"), "error"),
    (snapshot(SA, "recoverable", "100%"), "recoverable"),
])
def test_progress_of(item, text):
    assert progress_of(item) == text


def test_progress_line_keeps_the_order_asked():
    found = {SB: snapshot(SB, "pending", "40%"), SA: snapshot(SA)}
    assert progress_line([SB, SA, SC], found) == f"snapshots: {SB} 40%, {SA} 100%, {SC} not found"


def test_waiter_is_a_botocore_waiter(stubbed):
    snaps, _ = stubbed
    waiter = snaps.waiter()
    assert waiter.name == "SnapshotsCompleted" and waiter.config.operation == "DescribeSnapshots"


def test_wait_reports_progress_once_per_poll_and_returns_the_last_answer(stubbed):
    snaps, stub = stubbed
    polls(stub, [SA, SB],
          [snapshot(SA, "pending", "10%"), snapshot(SB, "pending", "0%")],
          [snapshot(SA, "pending", "60%"), snapshot(SB, "completed")],
          [snapshot(SA, "completed"), snapshot(SB, "completed")])
    lines = []
    found = snaps.wait_completed([SA, SB, SA], progress=lines.append)
    assert lines == [f"snapshots: {SA} 10%, {SB} 0%", f"snapshots: {SA} 60%, {SB} 100%",
                     f"snapshots: {SA} 100%, {SB} 100%"]
    assert list(found) == [SA, SB] and found[SA]["State"] == "completed"


def test_wait_uses_the_instance_progress_and_unregisters_its_handler(stubbed):
    snaps, stub = stubbed
    lines = []
    snaps.progress = lines.append
    polls(stub, [SA], [snapshot(SA)])
    snaps.wait_completed([SA])
    assert len(lines) == 1
    stub.add_response("describe_snapshots", {"Snapshots": [snapshot(SA)]}, {"SnapshotIds": [SA]})
    snaps.ec2.describe_snapshots(SnapshotIds=[SA])  # after the wait: nobody reports
    assert len(lines) == 1


def test_wait_ignores_other_threads_calls_on_the_shared_client(stubbed):
    snaps, stub = stubbed
    lines = []

    def other_thread(**_):  # another thread's DescribeSnapshots while the wait runs
        if not getattr(other_thread, "done", False):
            other_thread.done = True
            stub.add_response("describe_snapshots", {"Snapshots": [snapshot(SC)]}, {"SnapshotIds": [SC]})
            worker = threading.Thread(target=lambda: snaps.ec2.describe_snapshots(SnapshotIds=[SC]))
            worker.start()
            worker.join()

    polls(stub, [SA], [snapshot(SA, "pending", "5%")])
    stub.add_response("describe_snapshots", {"Snapshots": [snapshot(SA)]}, {"SnapshotIds": [SA]})
    snaps.ec2.meta.events.register("before-call.ec2.DescribeSnapshots", other_thread)
    try:
        snaps.wait_completed([SA], progress=lines.append)
    finally:
        snaps.ec2.meta.events.unregister("before-call.ec2.DescribeSnapshots", other_thread)
    assert lines == [f"snapshots: {SA} 5%", f"snapshots: {SA} 100%"]


def test_wait_fails_at_once_on_error_with_the_state_message(stubbed):
    snaps, stub = stubbed
    polls(stub, [SA, SB], [snapshot(SA, "pending", "50%"), snapshot(SB, "error", message="copy failed")])
    with pytest.raises(AwsError) as info:
        snaps.wait_completed([SA, SB])
    assert str(info.value) == f"waiting for 2 snapshot(s) to complete failed: {SB} is error (copy failed)"
    assert not isinstance(info.value, NotFoundError)


def test_wait_times_out_naming_states_and_progress(stubbed):
    snaps, stub = stubbed
    polls(stub, [SA, SB], *[[snapshot(SA), snapshot(SB, "pending", "99%")]] * 6)
    with pytest.raises(AwsError) as info:
        snaps.wait_completed([SA, SB], timeout=0.05)
    assert str(info.value) == (f"timed out after 0.05 s waiting for 2 snapshot(s) to complete: "
                               f"{SA} is completed, {SB} is pending (99%)")


def test_wait_retries_not_found_right_after_a_create(stubbed):
    snaps, stub = stubbed
    lines = []
    polls(stub, [SA], "InvalidSnapshot.NotFound", [snapshot(SA, "pending", "1%")], [snapshot(SA)])
    snaps.wait_completed([SA], progress=lines.append)
    assert lines == [f"snapshots: {SA} 1%", f"snapshots: {SA} 100%"]  # the error is not a progress line


def test_wait_gives_up_on_a_snapshot_unknown_beyond_the_grace(stubbed):
    snaps, stub = stubbed
    snaps.not_found_grace = 0
    polls(stub, [SA], "InvalidSnapshot.NotFound")
    with pytest.raises(NotFoundError, match="^waiting for 1 snapshot\\(s\\) to complete failed: "
                                            "InvalidSnapshot.NotFound: nope$"):
        snaps.wait_completed([SA])


def test_wait_not_found_until_the_timeout(stubbed):
    snaps, stub = stubbed
    polls(stub, [SA], *["InvalidSnapshot.NotFound"] * 2)
    with pytest.raises(NotFoundError, match="InvalidSnapshot.NotFound: nope"):
        snaps.wait_completed([SA], timeout=0.01)


def test_wait_other_errors_are_aws_errors(stubbed):
    snaps, stub = stubbed
    polls(stub, [SA], "UnauthorizedOperation")
    with pytest.raises(AwsError, match="UnauthorizedOperation: nope") as info:
        snaps.wait_completed([SA])
    assert not isinstance(info.value, NotFoundError)


def test_wait_nothing_makes_no_call(stubbed):
    snaps, _ = stubbed
    assert snaps.wait_completed([]) == {}


# -- describe --------------------------------------------------------------------------------------

def test_describe_filters_in_chunks_with_the_owner(stubbed):
    snaps, stub = stubbed
    ids = [f"snap-{n:017x}" for n in range(250)]
    for chunk in (ids[:200], ids[200:]):
        stub.add_response("describe_snapshots", {"Snapshots": [snapshot(s) for s in chunk[::2]]},
                          {"OwnerIds": ["self"], "Filters": [{"Name": "snapshot-id", "Values": chunk}],
                           "MaxResults": 1000})
    found = snaps.describe(ids + ids[:3])
    assert sorted(found) == sorted(ids[::2])


def test_describe_follows_pages(stubbed):
    snaps, stub = stubbed
    params = {"OwnerIds": ["self"], "Filters": [{"Name": "snapshot-id", "Values": [SA, SB]}], "MaxResults": 1000}
    stub.add_response("describe_snapshots", {"Snapshots": [snapshot(SA)], "NextToken": "t"}, params)
    stub.add_response("describe_snapshots", {"Snapshots": [snapshot(SB)]}, dict(params, NextToken="t"))
    assert sorted(snaps.describe([SA, SB])) == [SA, SB]
    assert snaps.describe([]) == {}


# -- create_multi (exact requests on a stubbed client) --------------------------------------------

def member_tags(group=5, **extra):
    return {v: {"ams:snapshot-group-id": str(group), "ams:member-index": str(i), **extra}
            for i, v in enumerate([A, B])}


def expect_create_snapshots(stub, answer, exclude_boot=True, excluded=(C,), common=None, description="d"):
    spec = {"InstanceId": INSTANCE, "ExcludeBootVolume": exclude_boot}
    if excluded:
        spec["ExcludeDataVolumeIds"] = list(excluded)
    params = {"InstanceSpecification": spec, "Description": description}
    if common:
        params["TagSpecifications"] = [{"ResourceType": "snapshot",
                                        "Tags": [{"Key": k, "Value": v} for k, v in common.items()]}]
    stub.add_response("create_snapshots", {"Snapshots": answer}, params)


def expect_tags(stub, snapshot_id, tags):
    stub.add_response("create_tags", {}, {"Resources": [snapshot_id],
                                          "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]})


def test_create_multi_only_the_members_with_their_tags(stubbed):
    snaps, stub = stubbed
    lines = []
    snaps.progress = lines.append
    stub.add_response("describe_instances", {"Reservations": [{"Instances": [instance_item(A, C, B)]}]},
                      {"InstanceIds": [INSTANCE]})
    expect_create_snapshots(stub, [{"VolumeId": B, "SnapshotId": SB}, {"VolumeId": A, "SnapshotId": SA}],
                            common={"ams:snapshot-group-id": "5", "team": "db"})
    expect_tags(stub, SA, {"ams:member-index": "0"})
    expect_tags(stub, SB, {"ams:member-index": "1"})
    result = snaps.create_multi(INSTANCE, [A, B], [C], "d", member_tags(team="db"))
    assert result == {A: SA, B: SB} and list(result) == [A, B]
    assert lines == [f"started 2 snapshot(s) of {INSTANCE} at one point in time"]


def test_create_multi_excludes_what_the_instance_shows_and_what_the_caller_names(stubbed):
    snaps, stub = stubbed
    other = "vol-0ddddddddddddddd0"
    expect_create_snapshots(stub, [{"VolumeId": A, "SnapshotId": SA}], excluded=(C, other), common={"k": "v"})
    assert snaps.create_multi(INSTANCE, [A], [other], "d", {A: {"k": "v"}},
                              instance=instance_item(A, C)) == {A: SA}


def test_create_multi_includes_the_boot_volume_only_as_a_member(stubbed):
    snaps, stub = stubbed
    expect_create_snapshots(stub, [{"VolumeId": ROOT, "SnapshotId": SR}, {"VolumeId": A, "SnapshotId": SA}],
                            exclude_boot=False, excluded=(), description="")
    assert snaps.create_multi(INSTANCE, [ROOT, A], instance=instance_item(A)) == {ROOT: SR, A: SA}


def test_create_multi_without_a_root_mapping(stubbed):
    snaps, stub = stubbed
    expect_create_snapshots(stub, [{"VolumeId": A, "SnapshotId": SA}], excluded=(), description="")
    assert snaps.create_multi(INSTANCE, [A], instance=instance_item(A, root=None)) == {A: SA}


def test_create_multi_deletes_snapshots_of_volumes_that_are_not_members(stubbed, caplog):
    snaps, stub = stubbed
    expect_create_snapshots(stub, [{"VolumeId": A, "SnapshotId": SA}, {"VolumeId": C, "SnapshotId": SC},
                                   {"VolumeId": B, "SnapshotId": SB}])
    stub.add_response("delete_snapshot", {}, {"SnapshotId": SC})
    with caplog.at_level("WARNING", logger="ams.aws.snapshots"):
        assert snaps.create_multi(INSTANCE, [A, B], [], "d", instance=instance_item(A, B, C)) == {A: SA, B: SB}
    assert f"not members: {SC} of {C}; deleting them" in caplog.text


def test_create_multi_logs_an_extra_snapshot_it_could_not_delete(stubbed, caplog):
    snaps, stub = stubbed
    expect_create_snapshots(stub, [{"VolumeId": A, "SnapshotId": SA}, {"VolumeId": C, "SnapshotId": SC}])
    stub.add_client_error("delete_snapshot", service_error_code="UnauthorizedOperation", service_message="no")
    with caplog.at_level("WARNING", logger="ams.aws.snapshots"):
        assert snaps.create_multi(INSTANCE, [A], [], "d", instance=instance_item(A, C)) == {A: SA}
    assert f"could not delete {SC} (not a member): DeleteSnapshot {SC} failed: UnauthorizedOperation: no" in caplog.text


def test_create_multi_refuses_a_member_not_attached_before_any_call(stubbed):
    snaps, _ = stubbed
    with pytest.raises(ConflictError, match=f"^cannot snapshot {B}, {C} together: not attached to {INSTANCE}$"):
        snaps.create_multi(INSTANCE, [A, B, C], instance=instance_item(A))


def test_create_multi_unknown_instance(stubbed):
    snaps, stub = stubbed
    stub.add_client_error("describe_instances", service_error_code="InvalidInstanceID.NotFound",
                          service_message="gone")
    with pytest.raises(NotFoundError, match="InvalidInstanceID.NotFound"):
        snaps.create_multi(INSTANCE, [A])


def test_create_multi_refused_call_is_one_aws_error(stubbed):
    snaps, stub = stubbed
    stub.add_client_error("create_snapshots", service_error_code="SnapshotCreationPerVolumeRateExceeded",
                          service_message="slow down")
    with pytest.raises(AwsError) as info:
        snaps.create_multi(INSTANCE, [A, B], [], "d", instance=instance_item(A, B))
    assert not isinstance(info.value, BatchError)
    assert str(info.value) == (f"CreateSnapshots of 2 volume(s) on {INSTANCE} failed: "
                               "SnapshotCreationPerVolumeRateExceeded: slow down")


def test_create_multi_member_missing_from_the_answer(stubbed):
    snaps, stub = stubbed
    expect_create_snapshots(stub, [{"VolumeId": B, "SnapshotId": SB}], excluded=())
    with pytest.raises(BatchError) as info:
        snaps.create_multi(INSTANCE, [A, B], [], "d", instance=instance_item(A, B))
    err = info.value
    assert err.snapshots == {B: SB} and err.done == {1: SB} and list(err.failed) == [0]
    assert str(err).startswith(f"CreateSnapshots on {INSTANCE} took no snapshot of {A} (1 of 2 ")


def test_create_multi_tag_failure_lists_every_snapshot_taken(stubbed):
    snaps, stub = stubbed
    expect_create_snapshots(stub, [{"VolumeId": A, "SnapshotId": SA}, {"VolumeId": B, "SnapshotId": SB}],
                            excluded=(), common={"ams:snapshot-group-id": "5"})
    stub.add_client_error("create_tags", service_error_code="TagLimitExceeded", service_message="too many")
    expect_tags(stub, SB, {"ams:member-index": "1"})
    with pytest.raises(BatchError) as info:
        snaps.create_multi(INSTANCE, [A, B], [], "d", member_tags(), instance=instance_item(A, B))
    err = info.value
    assert err.action == "CreateTags" and list(err.failed) == [0] and not err.interrupted
    assert err.done == {0: SA, 1: SB} and err.snapshots == {A: SA, B: SB}  # both exist: undo or record both
    assert str(err) == (f"CreateTags on {SA} (snapshot of {A}) failed: TagLimitExceeded: too many "
                        "(1 of 2 snapshot(s) tagged, all 2 taken)")


def test_create_multi_of_nothing_and_of_repeats(stubbed):
    snaps, _ = stubbed
    assert snaps.create_multi(INSTANCE, []) == {}
    with pytest.raises(ValueError):
        snaps.create_multi(INSTANCE, [A, A], instance=instance_item(A))


# -- batches on a fake client ----------------------------------------------------------------------

def client_error(code, action, message=None):
    return ClientError({"Error": {"Code": code, "Message": message or f"{code} injected"}}, action)


class FakeEc2:
    """Records calls; ``fail`` maps a volume or snapshot id to an error code."""

    def __init__(self, fail=None, answer_multi=None, interrupt_on=None):
        self.fail = fail or {}
        self.calls = []
        self.lock = threading.Lock()
        self.answer_multi = answer_multi
        self.interrupt_on = interrupt_on

    def _record(self, action, kwargs, key):
        with self.lock:
            self.calls.append((action, kwargs))
        if key in self.fail:
            raise client_error(self.fail[key], action)

    def create_snapshot(self, **kwargs):
        self._record("CreateSnapshot", kwargs, kwargs["VolumeId"])
        return {"SnapshotId": "snap-" + kwargs["VolumeId"][4:]}

    def create_snapshots(self, **kwargs):
        self._record("CreateSnapshots", kwargs, kwargs["InstanceSpecification"]["InstanceId"])
        return {"Snapshots": self.answer_multi}

    def create_tags(self, **kwargs):
        self._record("CreateTags", kwargs, kwargs["Resources"][0])
        return {}

    def delete_snapshot(self, **kwargs):
        self._record("DeleteSnapshot", kwargs, kwargs["SnapshotId"])
        return {}


def test_create_each_tags_every_snapshot_in_order():
    fake = FakeEc2()
    lines = []
    snaps = Snapshots(Clients(**{"eu-west-1": fake}), "eu-west-1", progress=lines.append)
    result = snaps.create_each([B, A], "nightly", {A: {"ams:member-index": 1}, B: {"ams:member-index": 0}})
    assert list(result.items()) == [(B, "snap-" + B[4:]), (A, "snap-" + A[4:])]
    calls = {kw["VolumeId"]: kw for _, kw in fake.calls}
    assert calls[A] == {"VolumeId": A, "Description": "nightly", "TagSpecifications": [
        {"ResourceType": "snapshot", "Tags": [{"Key": "ams:member-index", "Value": "1"}]}]}
    assert sorted(m.rsplit(" (", 1)[0] for m in lines) == sorted(
        [f"started snap-{A[4:]} of {A}", f"started snap-{B[4:]} of {B}"])


def test_create_each_without_tags():
    fake = FakeEc2()
    Snapshots(Clients(**{"us-east-1": fake}), "us-east-1").create_each([A])
    assert fake.calls == [("CreateSnapshot", {"VolumeId": A, "Description": ""})]


def test_create_each_partial_failure_lists_the_snapshots_taken():
    fake = FakeEc2(fail={B: "IncorrectState"})
    snaps = Snapshots(Clients(**{"us-east-1": fake}), "us-east-1", max_workers=1)
    with pytest.raises(BatchError) as info:
        snaps.create_each([A, B, C], "d")
    err = info.value
    assert err.done == {0: "snap-" + A[4:]} and list(err.failed) == [1] and err.skipped == [2]
    assert err.snapshots == {A: "snap-" + A[4:]}
    assert str(err) == (f"CreateSnapshot of {B} failed: IncorrectState: IncorrectState injected "
                        "(1 of 3 CreateSnapshot call(s) succeeded, 1 not started)")


def test_create_multi_ctrl_c_during_the_call_still_reports_what_was_taken(monkeypatch):
    fake = FakeEc2(answer_multi=[{"VolumeId": A, "SnapshotId": SA}, {"VolumeId": B, "SnapshotId": SB}])
    snaps = Snapshots(Clients(**{"us-east-1": fake}), "us-east-1")
    real = snap_mod.run_batch

    def interrupted_batch(*args, **kwargs):  # Ctrl-C while CreateSnapshots is in flight
        result = real(*args, **kwargs)
        if args[2] == "CreateSnapshots":
            raise BatchError("CreateSnapshots", 1, {0: result[0]}, {}, interrupted=True)
        return result

    monkeypatch.setattr(snap_mod, "run_batch", interrupted_batch)
    with pytest.raises(BatchError) as info:
        snaps.create_multi(INSTANCE, [A, B], [], "d", instance=instance_item(A, B))
    err = info.value
    assert err.interrupted and err.exit_code == 130 and err.snapshots == {A: SA, B: SB}
    assert [action for action, _ in fake.calls] == ["CreateSnapshots"]  # no tagging after Ctrl-C


def test_create_multi_ctrl_c_while_tagging_lists_every_snapshot(monkeypatch):
    fake = FakeEc2(answer_multi=[{"VolumeId": A, "SnapshotId": SA}, {"VolumeId": B, "SnapshotId": SB}])
    real = snap_mod.run_batch

    def interrupted_batch(*args, **kwargs):
        result = real(*args, **kwargs)
        if args[2] == "CreateTags":
            raise BatchError("CreateTags", 2, {0: result[0]}, {}, [1], interrupted=True)
        return result

    monkeypatch.setattr(snap_mod, "run_batch", interrupted_batch)
    with pytest.raises(BatchError) as info:
        Snapshots(Clients(**{"us-east-1": fake}), "us-east-1").create_multi(
            INSTANCE, [A, B], [], "d", member_tags(), instance=instance_item(A, B))
    err = info.value
    assert err.interrupted and err.exit_code == 130
    assert err.done == {0: SA, 1: SB} and err.snapshots == {A: SA, B: SB}


def test_delete_tries_every_snapshot_and_reports_refusals():
    fake = FakeEc2(fail={SA: "InvalidSnapshot.NotFound", SB: "InvalidSnapshot.InUse",
                         "snap-bad": "InvalidSnapshotID.Malformed", SR: "RequestLimitExceeded"})
    snaps = Snapshots(Clients(**{"us-east-1": fake}), "us-east-1", max_workers=1)
    deleted, refused = snaps.delete([SA, SB, SC, "snap-bad", SR, SC])
    assert deleted == [SA, SC]
    assert refused == {
        SB: f"DeleteSnapshot {SB} failed: InvalidSnapshot.InUse: InvalidSnapshot.InUse injected",
        "snap-bad": "DeleteSnapshot snap-bad failed: InvalidSnapshotID.Malformed: InvalidSnapshotID.Malformed injected",
        SR: f"DeleteSnapshot {SR} failed: RequestLimitExceeded: RequestLimitExceeded injected",
    }
    assert len(fake.calls) == 5
    assert snaps.delete([]) == ([], {})


def test_delete_ctrl_c_is_the_only_exception():
    fake = FakeEc2()

    def progress(message):
        raise KeyboardInterrupt

    snaps = Snapshots(Clients(**{"us-east-1": fake}), "us-east-1", max_workers=1, progress=progress)
    with pytest.raises(BatchError, match="^interrupted: ") as info:
        snaps.delete([SA, SB, SC])
    assert info.value.interrupted and 0 in info.value.done


# -- copy (stubbed source and destination clients) -------------------------------------------------

@pytest.fixture
def two_regions(east, west):
    with Stubber(east) as source, Stubber(west) as dest:
        snaps = Snapshots(Clients(**{"us-east-1": east, "eu-west-1": west}), "eu-west-1", max_workers=1)
        yield snaps, source, dest
        source.assert_no_pending_responses()
        dest.assert_no_pending_responses()


def expect_sources(stub, *items):
    stub.add_response("describe_snapshots", {"Snapshots": list(items)},
                      {"OwnerIds": ["self"], "MaxResults": 1000,
                       "Filters": [{"Name": "snapshot-id", "Values": [i["SnapshotId"] for i in items]}]})


def expect_token_lookup(stub, tokens, found=()):
    stub.add_response("describe_snapshots", {"Snapshots": list(found)},
                      {"OwnerIds": ["self"], "Filters": [{"Name": "tag:ams:client-token", "Values": tokens}],
                       "MaxResults": 1000})


def test_copy_with_the_source_tags_its_own_and_the_token(two_regions):
    snaps, source, dest = two_regions
    expect_sources(source, snapshot(SA, tags={"ams:member-index": "0", "aws:backup:x": "y",
                                              "ams:client-token": "old", "team": "db"}))
    expect_token_lookup(dest, ["tok-1"])
    dest.add_response("copy_snapshot", {"SnapshotId": SC}, {
        "SourceRegion": "us-east-1", "SourceSnapshotId": SA, "Description": "copy of 5",
        "TagSpecifications": [{"ResourceType": "snapshot", "Tags": [
            {"Key": "ams:member-index", "Value": "0"}, {"Key": "team", "Value": "ops"},
            {"Key": "ams:snapshot-group-id", "Value": "9"}, {"Key": "ams:client-token", "Value": "tok-1"}]}]})
    assert snaps.copy("us-east-1", SA, "copy of 5", {"team": "ops", "ams:snapshot-group-id": 9}, "tok-1") == SC


def test_copy_with_a_known_token_returns_the_earlier_copy(two_regions):
    snaps, source, dest = two_regions
    expect_sources(source, snapshot(SA))
    expect_token_lookup(dest, ["tok-1"], [snapshot(SR, "error", tags={"ams:client-token": "tok-1"}),
                                          snapshot(SB, "pending", "3%", tags={"ams:client-token": "tok-1"})])
    assert snaps.copy("us-east-1", SA, token="tok-1") == SB


def test_copy_without_token_tags_or_description(two_regions):
    snaps, source, dest = two_regions
    expect_sources(source, snapshot(SA))
    dest.add_response("copy_snapshot", {"SnapshotId": SC}, {"SourceRegion": "us-east-1", "SourceSnapshotId": SA})
    assert snaps.copy("us-east-1", SA) == SC


def test_copy_of_a_missing_source_copies_nothing(two_regions):
    snaps, source, _ = two_regions
    source.add_response("describe_snapshots", {"Snapshots": [snapshot(SA)]}, {
        "OwnerIds": ["self"], "Filters": [{"Name": "snapshot-id", "Values": [SA, SB]}], "MaxResults": 1000})
    with pytest.raises(NotFoundError, match=f"^snapshot '{SB}' not found in us-east-1$"):
        snaps.copy_many([{"source_region": "us-east-1", "snapshot_id": SA, "token": "t1"},
                         {"source_region": "us-east-1", "snapshot_id": SB, "token": "t2"}])


def test_copy_refused_is_the_one_error(two_regions):
    snaps, source, dest = two_regions
    expect_sources(source, snapshot(SA))
    dest.add_client_error("copy_snapshot", service_error_code="ResourceLimitExceeded", service_message="limit")
    with pytest.raises(AwsError) as info:
        snaps.copy("us-east-1", SA)
    assert not isinstance(info.value, BatchError)
    assert str(info.value) == f"CopySnapshot of {SA} from us-east-1 to eu-west-1 failed: ResourceLimitExceeded: limit"


def test_copy_many_partial_failure(two_regions):
    snaps, source, dest = two_regions
    expect_sources(source, snapshot(SA), snapshot(SB))
    expect_token_lookup(dest, ["a", "b"])
    dest.add_response("copy_snapshot", {"SnapshotId": SC})
    dest.add_client_error("copy_snapshot", service_error_code="InternalError", service_message="boom",
                          http_status_code=400)
    with pytest.raises(BatchError) as info:
        snaps.copy_many([{"source_region": "us-east-1", "snapshot_id": SA, "token": "a"},
                         {"source_region": "us-east-1", "snapshot_id": SB, "token": "b"}])
    assert info.value.done == {0: SC} and list(info.value.failed) == [1]


@pytest.mark.parametrize("tokens", [["", None], ["x" * 65], ["sp ace"], ["same", "same"]])
def test_copy_many_refuses_bad_or_repeated_tokens_before_any_call(tokens):
    fake = FakeEc2()
    items = [{"source_region": "us-east-1", "snapshot_id": SA, "token": t} for t in tokens]
    with pytest.raises((UsageError, ValueError)):
        Snapshots(Clients(**{"us-east-1": fake}), "us-east-1").copy_many(items)
    assert fake.calls == []


def test_copy_many_of_nothing():
    assert Snapshots(Clients(), "us-east-1").copy_many([]) == {}


def test_max_workers_must_be_positive():
    with pytest.raises(ValueError):
        Snapshots(Clients(), "us-east-1", max_workers=0)

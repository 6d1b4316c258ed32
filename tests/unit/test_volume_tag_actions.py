"""The tag steps of the volume plans: one CreateTags/DeleteTags call for all members, shown by
--dry-run, undone on failure; and the tags the builders put on volumes and snapshots."""

from datetime import datetime, timezone

import pytest

from amslib.ebs import params
from amslib.ebs import volume_actions as act
from amslib.ebs import volume_plans as plans
from amslib.ebs.runner import Execution, describe_plan
from amslib.ebs.snapshot_service import snapshot_tags
from tests.unit.test_volume_plans import ATTACHMENT, GROUP, MEMBERS, TARGET, create_plan

IDS = [m["volume_id"] for m in MEMBERS]


class FakeEc2:
    def __init__(self):
        self.calls = []

    def create_tags(self, volume_ids, tags):
        self.calls.append(("CreateTags", list(volume_ids), dict(tags)))

    def delete_tags(self, volume_ids, keys):
        self.calls.append(("DeleteTags", list(volume_ids), list(keys)))


def execution(**state):
    return Execution(engine=None, ec2=FakeEc2(), state=state)


def only(plan, cls):
    (found,) = [a for a in plan if isinstance(a, cls)]
    return found


def test_create_tags_the_host_side_values_in_one_call_for_every_member():
    step = only(create_plan(count=4, level=10), act.TagVolumes)
    assert "ams:md-uuid" in step.describe() and "ams:mount-point" in step.describe()
    ex = execution(volume_ids=["vol-1", "vol-2", "vol-3", "vol-4"], md_uuid="m", fs_uuid="f")
    step.run(ex)
    assert ex.ec2.calls == [("CreateTags", ["vol-1", "vol-2", "vol-3", "vol-4"], {
        "ams:array-name": "ams-vg7", "ams:md-uuid": "m", "ams:fs-uuid": "f", "ams:mount-point": "/srv/data",
        "ams:automount": "true"})]
    step.undo(ex)  # the mount tags go; the identity stays true
    assert ex.ec2.calls[-1] == ("DeleteTags", ["vol-1", "vol-2", "vol-3", "vol-4"], ["ams:mount-point", "ams:automount"])


def test_single_volume_without_mount_point_tags_only_its_filesystem():
    step = only(create_plan(mount_point=None, automount=False), act.TagVolumes)
    ex = execution(volume_ids=["vol-1"], fs_uuid="f")
    step.run(ex)
    assert ex.ec2.calls == [("CreateTags", ["vol-1"], {"ams:fs-uuid": "f"})]
    step.undo(ex)
    assert len(ex.ec2.calls) == 1  # no mount tags were set: nothing to remove


def test_attach_mount_and_automount_tag_the_recorded_identity():
    attach = only(plans.plan_attach(GROUP, MEMBERS, TARGET, ["/dev/sdf"] * 4, "/mnt/x", False), act.TagVolumes)
    ex = execution()
    attach.run(ex)
    assert ex.ec2.calls == [("CreateTags", IDS, {"ams:array-name": "ams-vg7", "ams:md-uuid": GROUP["md_uuid"],
                                                 "ams:fs-uuid": GROUP["fs_uuid"], "ams:mount-point": "/mnt/x",
                                                 "ams:automount": "false"})]
    mount = only(plans.plan_mount(GROUP, MEMBERS, ATTACHMENT, "/srv/data", True, array_active=True), act.TagVolumes)
    assert mount.mount_point == "/srv/data" and mount.automount is True and mount.volume_ids == IDS
    off = only(plans.plan_automount(GROUP, ATTACHMENT, "/srv/data", True, MEMBERS), act.TagVolumes)
    assert off.automount is False
    assert not any(isinstance(a, act.TagVolumes) for a in plans.plan_automount(GROUP, ATTACHMENT, "/srv/data", True))


def test_a_clone_tags_its_new_identity_not_its_sources():
    members = [{"volume_id": None, "device_name": d} for d in ("/dev/sdf", "/dev/sdg")]
    step = only(plans.plan_attach(dict(GROUP, raid_level=1), members, TARGET, ["/dev/sdf", "/dev/sdg"], None, False,
                                  renew_identity=True), act.TagVolumes)
    assert step.recorded == {}
    ex = execution(volume_ids=["vol-a", "vol-b"], md_uuid="new-md", fs_uuid="new-fs")
    step.volume_ids = None  # as snapshot_service._attach_after_create hands it the new ids
    step.run(ex)
    assert ex.ec2.calls == [("CreateTags", ["vol-a", "vol-b"], {"ams:array-name": "ams-vg7", "ams:md-uuid": "new-md",
                                                                 "ams:fs-uuid": "new-fs"})]


def test_detach_removes_the_mount_tags_after_the_detach_and_undo_restores_them():
    plan = plans.plan_detach(GROUP, MEMBERS, dict(ATTACHMENT, automount=True), mounted=True, unmount=True, force=False)
    assert [type(a).__name__ for a in plan][-2:] == ["DetachVolumes", "UntagVolumes"]
    step = plan[-1]
    ex = execution()
    step.run(ex)
    step.undo(ex)
    assert ex.ec2.calls == [("DeleteTags", IDS, ["ams:mount-point", "ams:automount"]),
                            ("CreateTags", IDS, {"ams:mount-point": "/srv/data", "ams:automount": "true"})]
    unmounted = plans.plan_detach(GROUP, MEMBERS, dict(ATTACHMENT, mount_point=None), mounted=False, unmount=False,
                                  force=False)
    assert not any(isinstance(a, act.UntagVolumes) for a in unmounted)


def test_dry_run_shows_the_tag_calls():
    lines = describe_plan(create_plan(count=2, level=1))
    assert any(line.startswith("EC2 CreateTags on the members of volume group 7") for line in lines)


def test_member_count_and_snapshot_source_tags():
    tags = params.group_tags(3, 0, 1, 64, "xfs", member_count=2)
    assert tags["ams:member-count"] == "2" and "ams:member-count" not in params.group_tags(3, 0, 1, 64, "xfs")
    group = {"id": 7, "raid_level": 1, "stripe_block_size": None, "fs_type": "xfs", "array_name": "ams-vg7",
             "md_uuid": "m", "fs_uuid": "f"}
    expires = datetime(2027, 1, 31, 13, 0, tzinfo=timezone.utc)
    tags = snapshot_tags(42, group, 1, expires, {}, member_count=2, source_instance_id="i-0123456789abcdef0",
                         source_mount_point="/data", retention_kind="weekly")
    assert {k: tags[k] for k in ("ams:member-count", "ams:array-name", "ams:md-uuid", "ams:fs-uuid", "ams:retention",
                                 "ams:source-instance-id", "ams:source-mount-point", "ams:expires")} == {
        "ams:member-count": "2", "ams:array-name": "ams-vg7", "ams:md-uuid": "m", "ams:fs-uuid": "f",
        "ams:retention": "weekly", "ams:source-instance-id": "i-0123456789abcdef0", "ams:source-mount-point": "/data",
        "ams:expires": "2027-01-31T13:00:00Z"}


@pytest.mark.parametrize("count", [1, 24])
def test_every_ams_tag_plus_the_most_user_tags_fit_ec2s_limit(count):
    user = params.parse_tags([f"k{i}=v" for i in range(params.MAX_USER_TAGS)])
    group = {"id": 7, "raid_level": 10, "stripe_block_size": 256, "fs_type": "xfs", "array_name": "ams-vg7",
             "md_uuid": "m", "fs_uuid": "f"}
    tags = snapshot_tags(42, group, 0, datetime(2027, 1, 1, tzinfo=timezone.utc), user, member_count=count,
                         source_instance_id="i-0123456789abcdef0", source_mount_point="/data", retention_kind="daily")
    tags.update({"ams:copied-from": "us-east-1/snap-0123456789abcdef0", "ams:client-token": "t"})  # a copy's
    assert len(tags) == 50
    volume = dict(user, **params.group_tags(7, 10, 0, 256, "xfs", member_count=count))
    volume.update(params.identity_tags("ams-vg7", "m", "f"))
    volume.update({"ams:mount-point": "/data", "ams:automount": "true", "ams:cloned-from": "snap-0"})
    assert len(volume) <= 50

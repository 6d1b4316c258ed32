"""The pure planners of the volume commands and the runner that executes and undoes plans."""

import pytest

from amslib.core.errors import AwsError, RemoteCommandError
from amslib.ebs import volume_actions as act
from amslib.ebs import volume_plans as plans
from amslib.ebs.params import check_volume_spec
from amslib.ebs.runner import Execution, describe_plan, run_plan

TARGET = plans.Target("i-0123456789abcdef0", "db1", "us-east-1a", "us-east-1")


def request(count=1, level=None, mount_point="/srv/data", automount=True, fs="xfs"):
    return plans.CreateRequest(
        target=TARGET, count=count, spec=check_volume_spec("gp3", 10), raid_level=level, chunk_kib=256,
        fs_type=fs, mount_point=mount_point, automount=automount, tags={},
        device_names=tuple(f"/dev/sd{c}" for c in "fghijklm"[:count]),
    )


def kinds(plan):
    return [type(a).__name__ for a in plan]


def create_plan(**kw):
    req = request(**kw)
    return plans.plan_create(req, 7, [{"spec": req.spec, "zone": "us-east-1a", "tags": {}, "token": "t"}] * req.count)


def test_single_volume_create_makes_no_array_and_mounts_with_fstab():
    plan = create_plan()
    assert kinds(plan) == ["CreateVolumes", "WaitAvailable", "AttachVolumes", "WaitAttached", "VerifyInstance",
                           "WaitDevices", "RequireEmpty", "UseSingleDevice", "Mkfs", "RecordBlockDevice",
                           "Mount", "SetFstab", "TagVolumes", "MarkGroup"]
    mkfs = next(a for a in plan if isinstance(a, act.Mkfs))
    assert mkfs.chunk_kib is None and mkfs.data_disks == 1


@pytest.mark.parametrize("level,count,chunk,disks", [(0, 4, 256, 4), (1, 2, None, 1), (5, 3, 256, 2), (10, 4, 256, 2)])
def test_raid_create_builds_the_array_before_the_filesystem(level, count, chunk, disks):
    plan = create_plan(count=count, level=level)
    names = kinds(plan)
    assert names.index("RequireEmpty") < names.index("CreateArray") < names.index("SetMdadmConf") < names.index("Mkfs")
    assert names.index("VerifyInstance") < names.index("RequireEmpty")
    mkfs = next(a for a in plan if isinstance(a, act.Mkfs))
    assert (mkfs.chunk_kib, mkfs.data_disks) == (chunk, disks)
    create = next(a for a in plan if isinstance(a, act.CreateArray))
    text = create.describe()
    assert "--create /dev/md/ams-vg7" in text and f"--level={level}" in text and f"--raid-devices={count}" in text


def test_create_without_mount_point_or_automount():
    assert "Mount" not in kinds(create_plan(mount_point=None, automount=False))
    plan = create_plan(count=2, level=0, automount=False)
    assert "SetFstab" not in kinds(plan) and "SetMdadmConf" not in kinds(plan) and "Mount" in kinds(plan)


def test_every_action_describes_itself_on_one_line():
    for plan in (create_plan(), create_plan(count=4, level=10)):
        for line in describe_plan(plan):
            assert line and "\n" not in line


GROUP = {"id": 7, "raid_level": 10, "array_name": "ams-vg7", "md_uuid": "a" * 8 + ":" + "b" * 8 + ":" + "c" * 8 + ":" + "d" * 8,
         "fs_uuid": "0b0e6a4c-2f67-4f6e-9d0e-3d6e2f1b9a10", "fs_type": "xfs"}
MEMBERS = [{"volume_id": f"vol-0123456789abcdef{i}", "device_name": f"/dev/sd{'fghi'[i]}"} for i in range(4)]
ATTACHMENT = {"instance_id": TARGET.instance_id, "hostname": "db1", "mount_point": "/srv/data",
              "block_device": "/dev/md/ams-vg7", "availability_zone": "us-east-1a", "region": "us-east-1"}


def test_attach_assembles_and_never_creates():
    plan = plans.plan_attach(GROUP, MEMBERS, TARGET, ["/dev/sdf", "/dev/sdg", "/dev/sdh", "/dev/sdi"], "/mnt/x", True)
    names = kinds(plan)
    assert "CreateArray" not in names and "Mkfs" not in names and "RequireEmpty" not in names
    assert names.index("WaitDevices") < names.index("AssembleArray") < names.index("Mount") < names.index("SetFstab")
    single = plans.plan_attach(dict(GROUP, raid_level=None), MEMBERS[:1], TARGET, ["/dev/sdf"], None, True)
    assert kinds(single) == ["AttachVolumes", "WaitAttached", "VerifyInstance", "WaitDevices", "UseSingleDevice",
                             "RecordBlockDevice", "TagVolumes"]


@pytest.mark.parametrize("mounted,unmount,expect_umount", [(True, True, True), (False, False, False), (False, True, False)])
def test_detach_order(mounted, unmount, expect_umount):
    plan = plans.plan_detach(GROUP, MEMBERS, ATTACHMENT, mounted=mounted, unmount=unmount, force=False)
    names = kinds(plan)
    assert ("Unmount" in names) == expect_umount
    assert names[0] == "VerifyInstance" and names[-2:] == ["DetachVolumes", "UntagVolumes"]
    assert names.index("RemoveFstab") < names.index("StopArray") < names.index("RemoveMdadmConf") < names.index("DetachVolumes")
    (stop,) = [step for step in plan if type(step).__name__ == "StopArray"]
    assert stop.md_uuid == GROUP["md_uuid"] and GROUP["md_uuid"] in stop.describe()  # found by UUID, not name
    single = plans.plan_detach(dict(GROUP, raid_level=None, md_uuid=None), MEMBERS[:1], ATTACHMENT,
                               mounted=False, unmount=False, force=True)
    assert "StopArray" not in kinds(single) and single[-2].force is True
    assert "Force" in single[-2].describe()


def test_mount_assembles_only_an_inactive_array():
    inactive = plans.plan_mount(GROUP, MEMBERS, ATTACHMENT, "/srv/data", True, array_active=False)
    assert "AssembleArray" in kinds(inactive) and "WaitDevices" in kinds(inactive)
    active = plans.plan_mount(GROUP, MEMBERS, ATTACHMENT, "/srv/data", False, array_active=True)
    assert kinds(active) == ["VerifyInstance", "UseRecorded", "Mount", "TagVolumes"]


def test_automount_set_and_remove():
    assert kinds(plans.plan_automount(GROUP, ATTACHMENT, "/srv/data", remove=False)) == ["VerifyInstance", "UseRecorded", "SetFstab"]
    assert kinds(plans.plan_automount(GROUP, ATTACHMENT, "/srv/data", remove=True)) == ["VerifyInstance", "RemoveFstab"]


# -- the runner --------------------------------------------------------------------------------------

class Step:
    def __init__(self, name, log, fail=None, undo_fail=None, partial=False, undoable=True):
        self.name, self.log, self.fail, self.undo_fail = name, log, fail, undo_fail
        self.partial_undo = partial
        if not undoable:
            self.undo = None

    def describe(self):
        return self.name

    def run(self, ex):
        self.log.append(("run", self.name))
        if self.fail:
            raise self.fail

    def undo(self, ex):
        self.log.append(("undo", self.name))
        if self.undo_fail:
            raise self.undo_fail


def execution():
    return Execution(engine=None, progress=lambda message: None)


def test_runner_undoes_done_steps_in_reverse_and_says_so():
    log = []
    plan = [Step("a", log), Step("b", log, undoable=False), Step("c", log), Step("d", log, fail=AwsError("boom"))]
    with pytest.raises(AwsError) as err:
        run_plan(plan, execution())
    assert log == [("run", "a"), ("run", "b"), ("run", "c"), ("run", "d"), ("undo", "c"), ("undo", "a")]
    assert str(err.value) == "boom (everything this command did was undone)"
    assert err.value.exit_code == 7


def test_runner_undoes_a_failing_batch_step_marked_partial():
    log = []
    plan = [Step("a", log), Step("batch", log, fail=AwsError("half"), partial=True)]
    with pytest.raises(AwsError):
        run_plan(plan, execution())
    assert log[-2:] == [("undo", "batch"), ("undo", "a")]


def test_runner_keeps_on_request_and_reports_failed_undos():
    log = []
    with pytest.raises(RemoteCommandError) as err:
        run_plan([Step("a", log), Step("b", log, fail=RemoteCommandError("mkfs failed"))], execution(),
                 keep_on_failure=True, leftover_hint="group 7 kept")
    assert ("undo", "a") not in log and "kept" in str(err.value) and "group 7 kept" in str(err.value)
    log = []
    with pytest.raises(RemoteCommandError) as err:
        run_plan([Step("a", log, undo_fail=AwsError("detach refused")), Step("b", log), Step("c", log, fail=RemoteCommandError("x"))],
                 execution())
    assert ("undo", "b") in log and ("undo", "a") in log
    assert "undo incomplete" in str(err.value) and "detach refused" in str(err.value)


def test_runner_undoes_after_ctrl_c():
    log = []
    with pytest.raises(KeyboardInterrupt):
        run_plan([Step("a", log), Step("b", log, fail=KeyboardInterrupt())], execution())
    assert log[-1] == ("undo", "a")


def test_attach_of_a_group_without_recorded_uuid_reads_it_from_the_members():
    plan = plans.plan_attach(dict(GROUP, md_uuid=None, array_name=None), MEMBERS, TARGET,
                             ["/dev/sdf", "/dev/sdg", "/dev/sdh", "/dev/sdi"], None, True)
    assemble = next(a for a in plan if isinstance(a, act.AssembleArray))
    assert "superblocks" in assemble.describe() and "/dev/md/ams-vg7" in assemble.describe()

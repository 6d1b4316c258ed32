"""ams snapshot … end to end on the rig: real guest kernel, md arrays and filesystems; the data
read back from clones is compared byte for byte with what was written before the snapshot.

Scenarios share the session guest; one of them moves it to another region (a new instance in
eu-west-1) to prove clones across regions.
"""

import threading
import time

import pytest

from tests.rig import faults
from tests.integration.test_volumes_guest import (
    ams_volumes, checksum, fstab_lines, gsh, mdadm_arrays, ok, one_error, write_data,
)

pytestmark = pytest.mark.guest


def snapshot_list(ams, *args):
    return ok(ams("--output", "json", "snapshot", "list", *args)).json


def ams_snapshots(rig, region="us-east-1"):
    ec2 = rig.client(region=region, internal=True)
    found = ec2.describe_snapshots(OwnerIds=["self"], Filters=[{"Name": "tag-key", "Values": ["ams:snapshot-group-id"]}])
    return {s["SnapshotId"]: s for s in found["Snapshots"]}


def tags_of(item):
    return {t["Key"]: t["Value"] for t in item.get("Tags", [])}


def writable(guest, mount_point):
    rc, _, err = guest.run(f"timeout 10 sh -c 'echo x > {mount_point}/.w && sync' ", sudo=True, timeout=30)
    return rc == 0


def drop_ssh_during_snapshot_call(rig, guest, block_seconds=0):
    """A thread that cuts every SSH session to the guest as soon as ams's CreateSnapshots call
    reaches the rig, i.e. between freeze and thaw (give that call some latency)."""
    before = rig.counts().get("CreateSnapshots", 0)

    def run():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if rig.counts().get("CreateSnapshots", 0) > before:
                faults.drop_ssh(guest, block_seconds=block_seconds)
                return
            time.sleep(0.1)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def setup(ams_db, guest_instance, ec2_clean):
    ok(ams_db("host", "discovery", "--region", "us-east-1"))
    return ams_db, guest_instance, ec2_clean


# Clone assembly does not depend on the RAID level, so one md layout per filesystem serves
# beside the single volume: raid1-xfs (xfs UUID renewed on an array), raid10-ext4 (ext4, with a
# reboot).  RAID 1 clones are also restored by test_recovery_guest, RAID 10 by test_verify_guest
# and every level is built by test_volumes_guest.
LAYOUTS = [
    pytest.param(1, None, "xfs", id="single-xfs"),
    pytest.param(2, 1, "xfs", id="raid1-xfs"),
    pytest.param(4, 10, "ext4", id="raid10-ext4"),
]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("count,level,fs", LAYOUTS)
def test_snapshot_with_hooks_and_freeze_then_clone_beside_the_original(setup, count, level, fs):
    ams, inst, rig = setup
    g = inst.guest
    argv = ["--output", "json", "volume", "create", "-H", inst.name, "-n", count, "-s", 1, "-f", fs, "-m", "/srv/src"]
    if level is not None:
        argv += ["-r", level]
    gid = ok(ams(*argv)).json["volume_group_id"]
    digest_a = write_data(g, "/srv/src", "a.bin", mib=4)
    gsh(g, "mkdir -p /srv/src/dir && echo hello > /srv/src/dir/b.txt && sync")

    created = ok(ams(
        "--output", "json", "snapshot", "create", "host", "-H", inst.name, "-m", "/srv/src", "--freeze", "--wait",
        "--pre", "echo before > /srv/src/pre.txt && sync && date +%s > /var/tmp/ams-pre",
        "--post", "echo after > /srv/src/post.txt; date +%s > /var/tmp/ams-post",
        "-d", "nightly 'test' $(not run)", "--tag", "purpose=test",
    )).json
    sgid = created["snapshot_group_id"]
    assert created["state"] == "completed" and len(created["snapshot_ids"]) == count
    assert writable(g, "/srv/src")  # thawed
    assert gsh(g, "cat /var/tmp/ams-pre /var/tmp/ams-post", sudo=False).count("\n") == 2

    (row,) = snapshot_list(ams, "volume", gid)
    assert row["snapshot_group_id"] == sgid and row["members"] == count and row["state"] == "completed"
    assert row["source_hostname"] == inst.name and row["source_mount_point"] == "/srv/src"
    assert row["description"] == "nightly 'test' $(not run)" and row["raid_level"] == level
    assert snapshot_list(ams, "host", inst.name, "-m", "/srv/src") == [row]
    snaps = ams_snapshots(rig)
    assert sorted(snaps) == sorted(created["snapshot_ids"])
    indexes = sorted(int(tags_of(s)["ams:member-index"]) for s in snaps.values())
    assert indexes == list(range(count))
    for snap in snaps.values():
        tags = tags_of(snap)
        assert tags["ams:snapshot-group-id"] == str(sgid) and tags["ams:volume-group-id"] == str(gid)
        assert tags["ams:filesystem"] == fs and tags["purpose"] == "test"
        assert snap["Description"] == "nightly 'test' $(not run)"

    cloned = ok(ams("--output", "json", "snapshot", "clone", "latest", "host", inst.name, "/srv/src",
                    "-i", inst.instance_id, "-m", "/srv/clone")).json
    new_gid = cloned["volume_group_id"]
    assert cloned["snapshot_group_id"] == sgid and new_gid != gid
    assert checksum(g, "/srv/clone/a.bin") == digest_a
    assert gsh(g, "cat /srv/clone/dir/b.txt /srv/clone/pre.txt", sudo=False).split() == ["hello", "before"]
    assert gsh(g, "ls /srv/clone", sudo=False).split().count("post.txt") == 0  # written after the snapshot
    # the clone lives beside its original: its own filesystem UUID (and array UUID)
    (src_line,) = fstab_lines(g, "/srv/src")
    (clone_line,) = fstab_lines(g, "/srv/clone")
    assert src_line.split()[0] != clone_line.split()[0]
    if level is not None:
        arrays = mdadm_arrays(g)
        assert len(arrays) == 2 and len({a.split("UUID=")[1].split()[0] for a in arrays}) == 2
    assert checksum(g, "/srv/src/a.bin") == digest_a  # the original is untouched
    if level is not None:  # and its own array name (udev names the array after it at boot)
        scan = gsh(g, "mdadm --detail --scan") + " "
        assert f"name=any:ams-vg{gid} " in scan and f"name=any:ams-vg{new_gid} " in scan, scan
    if level == 10:  # after a reboot both arrays come back under their names, both mounts too
        g.reboot()
        assert sorted(gsh(g, "ls /dev/md", sudo=False).split()) == sorted([f"ams-vg{gid}", f"ams-vg{new_gid}"])
        assert checksum(g, "/srv/clone/a.bin") == digest_a and checksum(g, "/srv/src/a.bin") == digest_a

    for group, mount_point in ((new_gid, "/srv/clone"), (gid, "/srv/src")):
        ok(ams("volume", "detach", "volume", group, "-u"))
        ok(ams("volume", "delete", group))
    ok(ams("snapshot", "delete", "snapshot", sgid))
    assert ams_snapshots(rig) == {} and ams_volumes(rig) == {}
    assert snapshot_list(ams) == []


@pytest.mark.parametrize("db_url", ["mariadb"], indirect=True)
def test_copy_to_another_region_and_clone_there(setup, register_guest):
    ams, inst, rig = setup
    g = inst.guest
    gid = ok(ams("--output", "json", "volume", "create", "-H", inst.name, "-n", 2, "-r", 1, "-s", 1,
                 "-m", "/srv/src")).json["volume_group_id"]
    digest = write_data(g, "/srv/src", mib=4)
    sgid = ok(ams("--output", "json", "snapshot", "create", "volume", gid, "--wait")).json["snapshot_group_id"]

    # a clone into another zone of the region, attached nowhere
    zonal = ok(ams("--output", "json", "snapshot", "clone", "snapshot", sgid, "-z", "us-east-1b")).json
    vols = [v for v in ams_volumes(rig).values() if tags_of(v)["ams:volume-group-id"] == str(zonal["volume_group_id"])]
    assert len(vols) == 2 and {v["AvailabilityZone"] for v in vols} == {"us-east-1b"}
    assert all(tags_of(v)["ams:cloned-from"] in ams_snapshots(rig) for v in vols)

    # copy to eu-west-1 on its own; listed as a group of its own, linked to its source
    copied = ok(ams("--output", "json", "snapshot", "copy", sgid, "--region", "eu-west-1")).json
    copy_id = copied["snapshot_group_id"]
    (row,) = snapshot_list(ams, "volume", gid, "-r", "eu-west-1")
    assert row["snapshot_group_id"] == copy_id and row["copied_from_id"] == sgid and row["state"] == "completed"
    west_snaps = ams_snapshots(rig, "eu-west-1")
    assert len(west_snaps) == 2
    assert {tags_of(s)["ams:snapshot-group-id"] for s in west_snaps.values()} == {str(copy_id)}
    assert all(tags_of(s)["ams:volume-group-id"] == str(gid) for s in west_snaps.values())

    # the guest becomes an instance in eu-west-1; the clone there reuses the copy
    rig.unregister_instance(inst.instance_id)
    west = register_guest(g, region="eu-west-1", zone="eu-west-1a")
    ok(ams("host", "discovery", "--region", "eu-west-1"))
    rig.reset_counts()
    cloned = ok(ams("--output", "json", "snapshot", "clone", "latest", "volume", gid, "-i", west.instance_id,
                    "-m", "/srv/west")).json
    assert cloned["copied"] == copy_id and "CopySnapshot" not in rig.counts()
    assert checksum(g, "/srv/west/data.bin") == digest
    assert cloned["zone"] == "eu-west-1a"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_faults_leave_the_filesystem_thawed_and_the_post_hook_run(setup, monkeypatch):
    ams, inst, rig = setup
    g = inst.guest
    gid = ok(ams("--output", "json", "volume", "create", "-H", inst.name, "-n", 2, "-s", 1,
                 "-m", "/srv/f")).json["volume_group_id"]
    post = "date +%s%N >> /var/tmp/ams-post-count"
    gsh(g, "rm -f /var/tmp/ams-post-count")

    def posts():
        return len(gsh(g, "cat /var/tmp/ams-post-count 2>/dev/null; true", sudo=False).split())

    # a hard EC2 error between freeze and thaw
    monkeypatch.setenv("AMS_AWS_MAX_ATTEMPTS", "1")
    rig.faults.fail_next("CreateSnapshots", code="InternalError", count=20)
    rig.faults.fail_next("CreateSnapshot", code="InternalError", count=20)
    one_error(ams("snapshot", "create", "volume", gid, "--freeze", "--post", post), 7, "InternalError")
    rig.faults.clear()
    assert writable(g, "/srv/f") and posts() == 1
    assert ams_snapshots(rig) == {} and snapshot_list(ams) == []

    # a failing pre hook: nothing is snapshotted, no post hook
    one_error(ams("snapshot", "create", "volume", gid, "--pre", "echo no >&2; exit 3", "--post", post), 5, "pre hook")
    assert posts() == 1 and ams_snapshots(rig) == {}

    # the SSH connection drops while the snapshots are being started: thaw reconnects
    rig.faults.set_latency(6.0, "CreateSnapshots")
    dropper = drop_ssh_during_snapshot_call(rig, g)
    created = ok(ams("--output", "json", "snapshot", "create", "volume", gid, "--freeze", "--post", post)).json
    dropper.join()
    rig.faults.clear()
    assert writable(g, "/srv/f") and posts() == 2 and len(created["snapshot_ids"]) == 2

    # sshd stays down past the thaw: the host's watchdog thaws by itself
    monkeypatch.setenv("AMS_FREEZE_TIMEOUT", "15")
    monkeypatch.setenv("AMS_SSH_CONNECT_TIMEOUT", "3")
    rig.faults.set_latency(6.0, "CreateSnapshots")
    dropper = drop_ssh_during_snapshot_call(rig, g, block_seconds=30)
    result = ams("snapshot", "create", "volume", gid, "--freeze")
    dropper.join()
    rig.faults.clear()
    assert result.code != 0 and "thaw" in result.err and result.err.count("\n") == 1, str(result)
    deadline = time.monotonic() + 120
    while True:  # sshd is back after 30 s: ams never reached the host again, the watchdog thawed it
        try:
            if g.run("true", timeout=20)[0] == 0:
                break
        except Exception:
            pass
        assert time.monotonic() < deadline, "the guest's sshd did not come back"
        time.sleep(2)
    assert writable(g, "/srv/f"), "the watchdog did not thaw the filesystem"

    # delete: a member already gone from EC2 is fine
    sgid = created["snapshot_group_id"]
    ec2 = rig.client(region="us-east-1", internal=True)
    ec2.delete_snapshot(SnapshotId=created["snapshot_ids"][0])
    ok(ams("snapshot", "delete", "snapshot", sgid))
    assert all(r["snapshot_group_id"] != sgid for r in snapshot_list(ams))


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_delete_refused_bad_input_and_failed_copy_change_nothing(setup, monkeypatch):
    ams, inst, rig = setup
    gid = ok(ams("--output", "json", "volume", "create", "-H", inst.name, "-n", 1, "-s", 1,
                 "-m", "/srv/b")).json["volume_group_id"]
    created = ok(ams("--output", "json", "snapshot", "create", "volume", gid, "--wait")).json
    sgid, (snap,) = created["snapshot_group_id"], created["snapshot_ids"]

    # a snapshot used by an AMI: the whole group is kept
    ec2 = rig.client(region="us-east-1", internal=True)
    image = ec2.register_image(Name="uses-snap", RootDeviceName="/dev/xvda", Architecture="x86_64",
                               BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": snap}}])["ImageId"]
    one_error(ams("snapshot", "delete", "snapshot", sgid), 4, str(sgid))
    assert [r["snapshot_group_id"] for r in snapshot_list(ams)] == [sgid] and snap in ams_snapshots(rig)
    ec2.deregister_image(ImageId=image)

    rig.reset_counts()
    for argv, code, fragment in [
        (["snapshot", "create", "volume", "999"], 3, "999"),
        (["snapshot", "create", "volume", gid, "--pre", "a\nb"], 2, "control"),
        (["snapshot", "create", "volume", gid, "--pre", "   "], 2, "empty"),
        (["snapshot", "create", "host", "-H", inst.name, "-m", "/nowhere"], 3, "/nowhere"),
        (["snapshot", "create", "volume", gid, "-d", "x" * 300], 2, "description"),
        (["snapshot", "delete", "snapshot", "abc"], 2, "abc"),
        (["snapshot", "clone", "snapshot", "999", "-z", "us-east-1a"], 3, "999"),
        (["snapshot", "clone", "snapshot", sgid, "-z", "us-east-1q"], 2, "us-east-1q"),
        (["snapshot", "clone", "snapshot", sgid, "-z", "us-east-1a", "--volume-type", "gp2", "-p", "3000"], 2, "iops"),
        (["snapshot", "clone", "snapshot", sgid, "-z", "us-east-1a", "--size", "0"], 2, "size"),
        (["snapshot", "clone", "snapshot", sgid, "-H", inst.name, "-m", "/srv/b"], 4, "/srv/b"),
        (["snapshot", "clone", "latest", "host", inst.name, "/srv/none", "-z", "us-east-1a"], 3, "/srv/none"),
        (["snapshot", "copy", sgid, "--region", "xx-nowhere-9"], 2, "xx-nowhere-9"),
        (["snapshot", "list", "volume", "abc"], 2, "abc"),
    ]:
        one_error(ams(*map(str, argv)), code, fragment)
    changing = {a for a in rig.counts() if not a.startswith("Describe")}
    assert not changing, rig.counts()
    assert [r["snapshot_group_id"] for r in snapshot_list(ams)] == [sgid]

    # a cross-region copy that fails midway leaves nothing behind in either region
    monkeypatch.setenv("AMS_AWS_MAX_ATTEMPTS", "1")
    rig.faults.fail_next("CopySnapshot", code="InternalError", count=20)
    one_error(ams("snapshot", "copy", sgid, "--region", "eu-west-1"), 7, "InternalError")
    rig.faults.clear()
    assert ams_snapshots(rig, "eu-west-1") == {}
    assert [r["snapshot_group_id"] for r in snapshot_list(ams)] == [sgid]

    # dry runs change nothing
    for argv in (["snapshot", "create", "volume", gid, "--freeze", "--dry-run"],
                 ["snapshot", "copy", sgid, "--region", "eu-west-1", "--dry-run"],
                 ["snapshot", "clone", "snapshot", sgid, "-z", "us-east-1b", "--dry-run"],
                 ["snapshot", "delete", "snapshot", sgid, "--dry-run"]):
        ok(ams(*map(str, argv)))
    assert list(ams_snapshots(rig)) == [snap] and ams_snapshots(rig, "eu-west-1") == {}
    assert len(ams_volumes(rig)) == 1

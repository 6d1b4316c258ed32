"""ams snapshot verify end to end on the rig: a RAID 10 group mounted on the guest is snapshotted,
then verified on the same guest — beside its original, with the same array and filesystem UUIDs.
The guest's own array, mount, fstab and mdadm.conf must not change; no scratch volume may stay
in EC2 or live in the database, also after a corrupted member and after Ctrl-C.
"""

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.dbfixtures import ROOT
from tests.integration.test_volumes_guest import checksum, gsh, listing, ok, setup, write_data  # noqa: F401 (setup: fixture)

pytestmark = pytest.mark.guest


def scratch_volumes(rig, region="us-east-1"):
    ec2 = rig.client(region=region, internal=True)
    found = ec2.describe_volumes(Filters=[{"Name": "tag-key", "Values": ["ams:verify-of"]}])["Volumes"]
    return {v["VolumeId"]: v for v in found if v["State"] != "deleted"}


def host_state(guest):
    """What the guest's own storage looks like: arrays, mounts, fstab, mdadm.conf, md names."""
    return gsh(guest, "cat /proc/mdstat; findmnt -rn -o TARGET,SOURCE,FSTYPE,OPTIONS; cat /etc/fstab; "
                      "cat /etc/mdadm/mdadm.conf; ls -l /dev/md/ | sed 1d | awk '{print $9, $11}'; "
                      "ls /run | grep -c ams-verify || true")


def live_verifying(ams):
    return [row for row in listing(ams) if row["state"] == "verifying"]


def interrupt_when_attached(rig, signum, count, *argv):
    """Run ams in a process of its own, send it ``signum`` once its ``count`` scratch volumes are
    attached, and check that it ends as interrupted (130)."""
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "ams"), *map(str, argv)],
                            cwd="/", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        if len([v for v in scratch_volumes(rig).values() if v["State"] == "in-use"]) == count:
            break
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, (out, err)
    assert "interrupted" in err.strip().splitlines()[-1], err


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_verify_raid10_beside_its_original(setup):
    ams, inst, rig = setup
    g = inst.guest
    gid = ok(ams("--output", "json", "volume", "create", "-H", inst.name, "-n", 4, "-s", 1, "-r", 10, "-f", "xfs",
                 "-m", "/srv/src")).json["volume_group_id"]
    digest = write_data(g, "/srv/src", "a.bin", mib=4)
    gsh(g, "mkdir -p /srv/src/dir && echo hello > /srv/src/dir/b.txt && ln -s /etc/shadow /srv/src/link && sync")
    sgid = ok(ams("--output", "json", "snapshot", "create", "host", "-H", inst.name, "-m", "/srv/src", "--freeze",
                  "--wait")).json["snapshot_group_id"]
    before = host_state(g)

    # dry run: the plan, nothing made
    plan = ok(ams("--output", "json", "snapshot", "verify", sgid, "-H", inst.name, "--dry-run")).json
    assert plan["dry_run"] and any("--readonly" in line for line in plan["plan"]) and scratch_volumes(rig) == {}
    # paths are checked before anything is made
    result = ams("snapshot", "verify", sgid, "-H", inst.name, "--checksum", "/etc/passwd")
    assert result.code == 2 and "relative" in result.err and scratch_volumes(rig) == {}

    # healthy: exit 0, the right checksum, size and count; nothing left; the original untouched
    report = ok(ams("--output", "json", "snapshot", "verify", sgid, "-H", inst.name,
                    "--checksum", "a.bin", "dir//b.txt")).json
    assert report["healthy"] and report["findings"] == []
    assert report["checksums"] == {"a.bin": digest, "dir/b.txt": checksum(g, "/srv/src/dir/b.txt")}
    assert report["files"] == 2 and report["directories"] == 1
    assert 1.5 * 2**30 < report["size_bytes"] < 2.1 * 2**30 and 4 * 2**20 < report["used_bytes"] < report["size_bytes"]
    assert scratch_volumes(rig) == {} and live_verifying(ams) == []
    assert host_state(g) == before
    assert checksum(g, "/srv/src/a.bin") == digest

    # Ctrl-C while the scratch volumes are attached: everything it made is removed
    interrupt_when_attached(rig, signal.SIGINT, 4, "snapshot", "verify", sgid, "-H", inst.name)
    assert scratch_volumes(rig) == {} and live_verifying(ams) == [] and host_state(g) == before

    # one member's snapshot damaged where its RAID superblock lives: unhealthy, nothing left behind
    snaps = rig.client(region="us-east-1", internal=True).describe_snapshots(
        OwnerIds=["self"], Filters=[{"Name": "tag:ams:snapshot-group-id", "Values": [str(sgid)]}])["Snapshots"]
    first = next(s for s in snaps if {t["Key"]: t["Value"] for t in s["Tags"]}["ams:member-index"] == "0")
    rig.corrupt_snapshot(first["SnapshotId"], offset_mib=0, length_mib=4)
    # ... verified as the newest of the mount point, with a symlink out of the restored filesystem
    # and a missing file among the paths: one finding each, exit 12
    result = ams("--output", "json", "snapshot", "verify", "latest", "host", inst.name, "/srv/src", "-H", inst.name,
                 "--checksum", "a.bin", "link", "nope")
    assert result.code == 12, str(result)
    report = result.json
    findings = report["findings"]
    assert report["snapshot_group_id"] == sgid and not report["healthy"]
    assert any(f.startswith("member 0 (") and "no RAID superblock" in f for f in findings), findings
    assert "the array runs degraded: 1 of its 4 members missing" in findings
    assert "--checksum link: not a regular file inside the restored filesystem" in findings
    assert "--checksum nope: not a regular file inside the restored filesystem" in findings
    assert report["checksums"] == {"a.bin": digest}  # the mirror of the damaged member still holds it
    assert len(findings) == 4 and result.err.count("ams: warning: finding: ") == 4
    assert scratch_volumes(rig) == {} and live_verifying(ams) == [] and host_state(g) == before
    assert checksum(g, "/srv/src/a.bin") == digest


@pytest.mark.parametrize("db_url", ["mariadb"], indirect=True)
def test_verify_single_ext4_and_corruption(setup):
    ams, inst, rig = setup
    g = inst.guest
    gid = ok(ams("--output", "json", "volume", "create", "-H", inst.name, "-n", 1, "-s", 1, "-f", "ext4",
                 "-m", "/srv/one")).json["volume_group_id"]
    digest = write_data(g, "/srv/one", "c.bin", mib=2)
    sgid = ok(ams("--output", "json", "snapshot", "create", "host", "-H", inst.name, "-m", "/srv/one",
                  "--wait")).json["snapshot_group_id"]
    before = host_state(g)
    # healthy, found as the newest of the volume group, kept (--keep): `volume list` shows it as
    # verifying until it is removed the way the report says
    report = ok(ams("--output", "json", "snapshot", "verify", "latest", "volume", gid, "-i", inst.instance_id,
                    "--checksum", "c.bin", "--keep")).json
    assert report["healthy"] and report["checksums"] == {"c.bin": digest} and report["files"] == 1
    assert report["fs_type"] == "ext4" and report["fsck_exit_status"] == 0
    kept = report["kept"]
    assert len(scratch_volumes(rig)) == 1
    (row,) = live_verifying(ams)
    assert row["volume_group_id"] == kept["volume_group_id"] and row["mount_point"] == kept["mount_point"]
    assert gsh(g, f"findmnt -rn -o OPTIONS {kept['mount_point']}").startswith("ro,")
    ok(ams("volume", "detach", "volume", kept["volume_group_id"], "--unmount"))
    assert gsh(g, f"stat -c '%a %U' {kept['mount_point']}").split() == ["700", "root"]  # mktemp -d's private dir
    ok(ams("volume", "delete", kept["volume_group_id"]))
    gsh(g, f"rmdir {kept['mount_point']}")
    assert scratch_volumes(rig) == {} and live_verifying(ams) == [] and host_state(g) == before
    # SIGTERM (a stopped cron job, a shutdown) cleans up as Ctrl-C does
    interrupt_when_attached(rig, signal.SIGTERM, 1, "snapshot", "verify", sgid, "-H", inst.name)
    assert scratch_volumes(rig) == {} and live_verifying(ams) == [] and host_state(g) == before
    (snap,) = rig.client(region="us-east-1", internal=True).describe_snapshots(
        OwnerIds=["self"], Filters=[{"Name": "tag:ams:snapshot-group-id", "Values": [str(sgid)]}])["Snapshots"]
    rig.corrupt_snapshot(snap["SnapshotId"], offset_mib=0, length_mib=4)
    result = ams("--output", "json", "snapshot", "verify", sgid, "-H", inst.name)
    assert result.code == 12, str(result)
    assert result.json["findings"][0].startswith("e2fsck -n: "), result.json["findings"]
    assert scratch_volumes(rig) == {} and live_verifying(ams) == [] and host_state(g) == before

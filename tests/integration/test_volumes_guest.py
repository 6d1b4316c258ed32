"""ams volume … end to end: the real CLI against the rig's EC2 endpoint and a real guest kernel
(NVMe hot-plug, mdadm, xfs/ext4, fstab at boot).

Each test is a scenario on the session guest, so one registration serves many assertions: what
a user would check — /proc/mdstat, the mount table, /etc/fstab and mdadm.conf in the guest, the
rows `volume list` shows, the EC2 volumes and their tags, and the bytes of a file.
"""

import shlex

import pytest

from tests.rig import faults

pytestmark = pytest.mark.guest

MDADM_CONF = "/etc/mdadm/mdadm.conf"


# -- helpers ---------------------------------------------------------------------------------------

def ok(result):
    assert result.code == 0, str(result)
    return result


def one_error(result, code, fragment=""):
    assert result.code == code, str(result)
    lines = result.err.strip().splitlines()
    if code == 2 and lines and lines[0].startswith("usage: "):  # argparse's own refusal: usage, then one error
        assert ": error: " in lines[-1] and fragment.lower() in lines[-1].lower(), str(result)
        return lines[-1]
    assert lines and lines[0].startswith("ams: error: "), str(result)
    assert all(line.startswith("ams: ") for line in lines), str(result)  # the error (and at most a hint)
    assert fragment.lower() in lines[0].lower(), str(result)
    return lines[0]


def gsh(guest, command, sudo=True):
    return guest.check(command, sudo=sudo)


def mounted_source(guest, mount_point):
    rc, out, _ = guest.run(f"findmnt -n -o SOURCE,FSTYPE {shlex.quote(mount_point)}")
    return out.split() if rc == 0 else None


def fstab_lines(guest, mount_point):
    text = gsh(guest, "cat /etc/fstab", sudo=False)
    return [line for line in text.splitlines() if line.split()[1:2] == [mount_point]]


def mdadm_arrays(guest):
    rc, out, _ = guest.run(f"cat {MDADM_CONF}", sudo=True)
    return [line for line in out.splitlines() if line.startswith("ARRAY")] if rc == 0 else []


def ams_volumes(rig, region="us-east-1"):
    """EC2 volumes carrying ams's group tag (every volume ams made, recorded or not)."""
    ec2 = rig.client(region=region, internal=True)
    found = ec2.describe_volumes(Filters=[{"Name": "tag-key", "Values": ["ams:volume-group-id"]}])["Volumes"]
    return {v["VolumeId"]: v for v in found}


def tags_of(volume):
    return {t["Key"]: t["Value"] for t in volume.get("Tags", [])}


def listing(ams, *args):
    return ok(ams("--output", "json", "volume", "list", *args)).json


def write_data(guest, mount_point, name="data.bin", mib=8):
    path = f"{mount_point}/{name}"
    gsh(guest, f"dd if=/dev/urandom of={path} bs=1M count={mib} status=none && sync")
    return checksum(guest, path)


def checksum(guest, path):
    return gsh(guest, f"sha256sum {shlex.quote(path)}").split()[0]


@pytest.fixture
def setup(ams_db, guest_instance, ec2_clean):
    """(ams, instance, rig): a database that knows the guest (through host discovery)."""
    ok(ams_db("host", "discovery", "--region", "us-east-1"))
    return ams_db, guest_instance, ec2_clean


# -- scenarios -------------------------------------------------------------------------------------

@pytest.mark.parametrize("db_url", ["mariadb"], indirect=True)
def test_raid10_lifecycle_survives_reboot_detach_and_reattach(setup):
    ams, inst, rig = setup
    g = inst.guest
    created = ok(ams("--output", "json", "volume", "create", "-H", inst.name, "-n", "4", "-r", "10",
                     "-s", "1", "-m", "/mnt/r10", "--tag", "team=storage"))
    gid = created.json["volume_group_id"]
    array = f"/dev/md/ams-vg{gid}"

    # the guest: a raid10 of the four NVMe members, xfs mounted, fstab and mdadm.conf entries
    mdstat = gsh(g, "cat /proc/mdstat", sudo=False)
    assert "raid10" in mdstat and mdstat.count("nvme") == 4, mdstat
    source, fstype = mounted_source(g, "/mnt/r10")
    assert fstype == "xfs"
    assert gsh(g, f"readlink -f {array}", sudo=False).strip() == gsh(g, f"readlink -f {source}", sudo=False).strip()
    (line,) = fstab_lines(g, "/mnt/r10")
    spec, _, fs, options = line.split()[:4]
    assert spec.startswith("UUID=") and fs == "xfs" and "nofail" in options.split(",")
    assert spec[5:] == gsh(g, f"blkid -s UUID -o value {array}").strip()
    (array_line,) = mdadm_arrays(g)
    assert array in array_line.split()

    # the database, as `volume list` shows it
    (row,) = listing(ams)
    assert row["volume_group_id"] == gid and row["raid_level"] == 10 and row["members"] == 4
    assert row["instance_id"] == inst.instance_id and row["mount_point"] == "/mnt/r10"
    assert row["automount"] is True and row["fs_type"] == "xfs" and row["state"] == "available"
    assert listing(ams, "host", inst.name) == [row]
    assert listing(ams, "instance_id", "--prefix", inst.instance_id[:5]) == [row]

    # EC2: four tagged members, one per index
    volumes = ams_volumes(rig)
    assert sorted(volumes) == sorted(created.json["volume_ids"])
    indexes = sorted(int(tags_of(v)["ams:member-index"]) for v in volumes.values())
    assert indexes == [0, 1, 2, 3]
    for volume in volumes.values():
        tags = tags_of(volume)
        assert tags["ams:volume-group-id"] == str(gid) and tags["ams:raid-level"] == "10"
        assert tags["ams:stripe-kb"] == "256" and tags["ams:filesystem"] == "xfs" and tags["team"] == "storage"
        assert volume["State"] == "in-use" and volume["VolumeType"] == "gp3"

    digest = write_data(g, "/mnt/r10")

    # a reboot brings the array and the mount back with the same bytes
    g.reboot()
    assert mounted_source(g, "/mnt/r10") is not None
    assert checksum(g, "/mnt/r10/data.bin") == digest

    # unmount / mount / automount
    ok(ams("volume", "unmount", gid))
    assert mounted_source(g, "/mnt/r10") is None
    assert len(fstab_lines(g, "/mnt/r10")) == 1  # unmount leaves automount alone
    ok(ams("volume", "mount", gid))
    assert checksum(g, "/mnt/r10/data.bin") == digest
    ok(ams("volume", "automount", gid, "-r"))
    assert fstab_lines(g, "/mnt/r10") == []
    ok(ams("volume", "automount", gid))
    assert len(fstab_lines(g, "/mnt/r10")) == 1

    # detach: refused while mounted, then with -u everything on the host is removed
    one_error(ams("volume", "detach", "volume", gid), 4, "mounted")
    assert mounted_source(g, "/mnt/r10") is not None
    one_error(ams("volume", "delete", gid), 4, "attached")
    ok(ams("volume", "detach", "host", inst.name, "/mnt/r10", "-u"))
    assert mounted_source(g, "/mnt/r10") is None
    assert "md" not in gsh(g, "cat /proc/mdstat", sudo=False).split("Personalities")[1].split("unused")[0].replace("md_mod", "")
    assert fstab_lines(g, "/mnt/r10") == [] and mdadm_arrays(g) == []
    assert all(v["State"] == "available" for v in ams_volumes(rig).values())
    (row,) = listing(ams)
    assert row["instance_id"] is None and row["mount_point"] is None
    assert listing(ams, "host", inst.name) == []

    # attach again elsewhere: the array is assembled (not re-created) and the data is there
    ok(ams("volume", "attach", gid, "-i", inst.instance_id, "-m", "/mnt/again"))
    assert checksum(g, "/mnt/again/data.bin") == digest
    assert len(fstab_lines(g, "/mnt/again")) == 1

    ok(ams("volume", "detach", "instance", inst.instance_id, "/mnt/again", "-u"))
    ok(ams("volume", "delete", gid))
    assert ams_volumes(rig) == {}
    assert listing(ams) == []
    one_error(ams("volume", "delete", gid), 3, "deleted")


# single-xfs and raid1-xfs are built, mounted and removed again and again by test_fault_matrix
LAYOUTS = [
    pytest.param(1, None, "ext4", id="single-ext4"),
    pytest.param(2, 0, "ext4", id="raid0-ext4"),
    pytest.param(3, 5, "ext4", id="raid5-ext4"),
]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("count,level,fs", LAYOUTS)
def test_each_layout_is_built_mounted_and_removed(setup, count, level, fs):
    ams, inst, rig = setup
    g = inst.guest
    argv = ["--output", "json", "volume", "create", "-i", inst.instance_id, "-n", count, "-s", 1, "-f", fs,
            "-m", "/srv/data"]
    if level is not None:
        argv += ["-r", level]
    gid = ok(ams(*argv)).json["volume_group_id"]
    source, fstype = mounted_source(g, "/srv/data")
    assert fstype == fs
    mdstat = gsh(g, "cat /proc/mdstat", sudo=False)
    if level is None:
        assert "md" not in source and "nvme" in gsh(g, f"readlink -f {source}", sudo=False)
        assert mdadm_arrays(g) == []
    else:
        assert f"raid{level}" in mdstat and mdstat.count("nvme") == count
        assert len(mdadm_arrays(g)) == 1
    assert len(fstab_lines(g, "/srv/data")) == 1
    digest = write_data(g, "/srv/data", mib=4)
    assert checksum(g, "/srv/data/data.bin") == digest

    ok(ams("volume", "detach", "volume", gid, "-u"))
    assert mounted_source(g, "/srv/data") is None and fstab_lines(g, "/srv/data") == []
    assert mdadm_arrays(g) == []
    ok(ams("volume", "delete", gid))
    assert ams_volumes(rig) == {}


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_failures_undo_everything_and_say_so_in_one_line(setup, monkeypatch):
    ams, inst, rig = setup
    g = inst.guest
    fstab_before = gsh(g, "cat /etc/fstab", sudo=False)

    def assert_nothing_left():
        assert ams_volumes(rig) == {} or all(v["State"] == "deleting" for v in ams_volumes(rig).values())
        assert listing(ams) == []
        assert gsh(g, "cat /etc/fstab", sudo=False) == fstab_before
        assert mdadm_arrays(g) == []
        assert "active" not in gsh(g, "cat /proc/mdstat 2>/dev/null; true", sudo=False)

    # an EC2 error that retries do not absorb, in the middle of the attachments
    monkeypatch.setenv("AMS_AWS_MAX_ATTEMPTS", "2")
    rig.faults.fail_next("AttachVolume", code="InternalError", count=50)
    line = one_error(ams("volume", "create", "-H", inst.name, "-n", 2, "-s", 1, "-m", "/mnt/x"), 7, "InternalError")
    assert "undone" in line
    rig.faults.clear()
    assert_nothing_left()

    # mdadm --create fails in the guest
    faults.fail_command(g, "mdadm", match="*--create*", stderr="mdadm: injected failure")
    line = one_error(ams("volume", "create", "-H", inst.name, "-n", 2, "-s", 1, "-m", "/mnt/x"), 5, "injected failure")
    assert "undone" in line
    faults.clear_command_faults(g)
    assert_nothing_left()

    # the SSH connection drops while mkfs runs: the undo reconnects and removes everything
    install_ssh_drop_wrapper(g, "mkfs.xfs")
    result = ams("volume", "create", "-H", inst.name, "-n", 2, "-s", 1, "-m", "/mnt/x")
    assert result.code in (5, 6), str(result)
    assert "undone" in result.err, str(result)
    faults.clear_command_faults(g)
    assert_nothing_left()

    # with --keep-on-failure the group is kept and recorded as failed
    faults.fail_command(g, "mkfs.ext4", stderr="mkfs.ext4: injected failure")
    result = ams("--output", "json", "volume", "create", "-H", inst.name, "-n", 1, "-s", 1, "-f", "ext4",
                 "--keep-on-failure")
    line = one_error(result, 5, "injected failure")
    assert "kept" in line
    faults.clear_command_faults(g)
    (row,) = listing(ams)
    assert row["state"] == "failed" and row["instance_id"] == inst.instance_id
    gid = row["volume_group_id"]
    ok(ams("volume", "detach", "volume", gid))
    ok(ams("volume", "delete", gid))
    assert ams_volumes(rig) == {}


def install_ssh_drop_wrapper(guest, name, match="*"):
    """Make the next ``name`` run (whose joined arguments match the shell glob ``match``) cut
    every SSH session to the guest while it runs; the command itself goes on 3 s later."""
    real = gsh(guest, f"PATH=/usr/sbin:/usr/bin:/sbin:/bin command -v {name}").strip()
    kill = ('L=$(cat /run/sshd.pid 2>/dev/null); '
            'for p in $(pgrep -x sshd); do [ "$p" = "$L" ] || kill -9 "$p"; done')
    wrapper = f"""#!/bin/sh
{faults._MARK}
case "$*" in
  {match})
    if mkdir /run/ams-rig-faults/{name}.once 2>/dev/null; then
      setsid sh -c {shlex.quote('sleep 0.3; ' + kill)} >/dev/null 2>&1 < /dev/null &
      sleep 3
    fi;;
esac
exec {real} "$@"
"""
    path = f"/usr/local/sbin/{name}"
    gsh(guest, f"mkdir -p /run/ams-rig-faults && printf %s {shlex.quote(wrapper)} > {path} && chmod 755 {path}")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_bad_input_and_the_wrong_host_change_nothing(setup, monkeypatch):
    ams, inst, rig = setup
    g = inst.guest
    rig.reset_counts()
    cases = [
        (["-n", 3, "-r", 10, "-s", 1], 2, "raid"),
        (["-n", 2, "-r", 7, "-s", 1], 2, "raid"),
        (["-n", 1, "-s", 0], 2, "size"),
        (["-n", 1, "-s", 1, "-m", "/mnt/a;reboot"], 2, "mount point"),
        (["-n", 1, "-s", 1, "-m", "/mnt/$(id)"], 2, "mount point"),
        (["-n", 1, "-s", 1, "-m", "relative"], 2, "mount point"),
        (["-n", 1, "-s", 1, "-m", "/etc"], 2, "mount point"),
        (["-n", 1, "-s", 1, "-f", "ntfs"], 2, "filesystem"),
        (["-n", 1, "-s", 1, "--volume-type", "gp2", "-p", 3000], 2, "iops"),
        (["-n", 1, "-s", 1, "--tag", "ams:volume-group-id=1"], 2, "tag"),
    ]
    for extra, code, fragment in cases:
        one_error(ams("volume", "create", "-H", inst.name, *extra), code, fragment)
    one_error(ams("volume", "create", "-H", "no-such-host", "-n", 1, "-s", 1), 3, "no-such-host")
    one_error(ams("volume", "create", "-i", "i-0123456789abcdef0", "-n", 1, "-s", 1), 3, "i-0123456789abcdef0")
    for command in (["attach", "999", "-H", inst.name], ["mount", "999"], ["unmount", "999"],
                    ["automount", "999"], ["delete", "999"], ["detach", "volume", "999"]):
        one_error(ams("volume", *command), 3, "999")
    one_error(ams("volume", "detach", "host", inst.name, "/nowhere"), 3, "/nowhere")
    one_error(ams("volume", "attach", "x1", "-H", inst.name), 2, "x1")
    assert set(rig.counts()) <= {"DescribeInstances"}, rig.counts()

    # a hostname that reaches another machine than the instance ams means: refused before EC2 changes
    other = rig.register_instance(None, zone="us-east-1a", name="other")
    ok(ams("host", "discovery", "--region", "us-east-1"))
    ok(ams("host", "edit", "-i", other, "-H", inst.name))  # now two instances share the name
    one_error(ams("volume", "create", "-H", inst.name, "-n", 1, "-s", 1), 4, "shared by")
    line = one_error(ams("volume", "create", "-i", other, "-n", 1, "-s", 1), 4, inst.instance_id)
    assert "refusing" in line
    assert ams_volumes(rig) == {} and listing(ams) == []

    # a mount point that is already in use on the host
    gsh(g, "mkdir -p /mnt/busy && mount -t tmpfs none /mnt/busy")
    one_error(ams("volume", "create", "-i", inst.instance_id, "-n", 1, "-s", 1, "-m", "/mnt/busy"), 4, "/mnt/busy")
    gsh(g, "umount /mnt/busy")
    assert ams_volumes(rig) == {} and listing(ams) == []

    # --dry-run prints the plan and changes nothing
    result = ok(ams("volume", "create", "-i", inst.instance_id, "-n", 2, "-s", 1, "-m", "/mnt/dry", "--dry-run"))
    assert "CreateVolume" in result.out and "mdadm --create" in result.out and "mkfs.xfs" in result.out
    assert ams_volumes(rig) == {} and listing(ams) == [] and fstab_lines(g, "/mnt/dry") == []

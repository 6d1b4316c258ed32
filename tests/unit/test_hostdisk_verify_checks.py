"""amslib.hostdisk.verify_checks: what `snapshot verify` runs on a host and how it reads the answers."""

import os
import shlex
import subprocess

import pytest

from amslib.cli.verify_cmd import parse_source, report_lines
from amslib.core.errors import Unhealthy, UsageError
from amslib.hostdisk import verify_checks as vc

UUID = "b1aa452f:a1434872:f377c012:c9b3064e"
MNT = "/run/ams-verify.AbC123xY"


# -- names and paths -----------------------------------------------------------------------------

def test_scratch_array_names_never_look_like_ams_own():
    assert vc.scratch_array_name(7) == "ams-verify7"
    assert vc.scratch_array_device(12) == "/dev/md/ams-verify12"
    assert not vc.scratch_array_name(1).startswith("ams-vg")
    for bad in (0, -1, "3", None, True):
        with pytest.raises(UsageError):
            vc.scratch_array_name(bad)


@pytest.mark.parametrize("given,expected", [
    ("a.bin", "a.bin"),
    ("dir/b.txt", "dir/b.txt"),
    ("dir//b.txt", "dir/b.txt"),
    ("./dir/./b.txt", "dir/b.txt"),
    ("dir/b.txt/", "dir/b.txt"),
    ("with space/é.txt", "with space/é.txt"),
    ("..hidden", "..hidden"),
    ("a..b/c", "a..b/c"),
    ("$(reboot)", "$(reboot)"),  # only ever quoted
])
def test_checksum_paths_are_normalised(given, expected):
    assert vc.check_checksum_path(given) == expected


@pytest.mark.parametrize("bad,fragment", [
    ("", "empty"),
    ("   ", "empty"),
    (None, "empty"),
    ("/etc/passwd", "absolute"),
    ("/", "absolute"),
    ("..", "'..'"),
    ("a/../../etc/shadow", "'..'"),
    ("a/..", "'..'"),
    (".", "root"),
    ("./", "root"),
    ("a\nb", "control"),
    ("a\x7fb", "control"),
    ("a" * 5000, "longer"),
])
def test_checksum_paths_refused(bad, fragment):
    with pytest.raises(UsageError) as err:
        vc.check_checksum_path(bad)
    assert fragment in str(err.value)


def test_checksum_path_lists():
    assert vc.check_checksum_paths(None) == []
    assert vc.check_checksum_paths(["a", "./a", "b", "a"]) == ["a", "b"]
    with pytest.raises(UsageError):
        vc.check_checksum_paths(["ok", "/abs"])
    with pytest.raises(UsageError, match="at most"):
        vc.check_checksum_paths([f"f{i}" for i in range(vc.MAX_CHECKSUM_PATHS + 1)])


@pytest.mark.parametrize("path", [MNT, "/run/ams-verify.12345678"])
def test_mount_dir_accepted(path):
    assert vc.check_mount_dir(path) == path


@pytest.mark.parametrize("path", ["/", "/run", "/run/ams-verify.", "/run/ams-verify.abc", "/srv/src",
                                  "/run/ams-verify.AbC123xY/..", "/run/ams-verify.AbC123x;", None, "/tmp/ams-verify.AbC123xY"])
def test_mount_dir_refused(path):
    with pytest.raises(UsageError):
        vc.check_mount_dir(path)


# -- commands ------------------------------------------------------------------------------------

def test_private_directory_and_read_only_device():
    assert vc.mkdtemp_argv() == ["mktemp", "-d", "-p", "/run", "ams-verify.XXXXXXXX"]
    assert vc.rmdir_argv(MNT) == ["rmdir", "--", MNT]
    assert vc.setro_argv("/dev/nvme4n1") == ["blockdev", "--setro", "/dev/nvme4n1"]
    with pytest.raises(UsageError):
        vc.rmdir_argv("/srv/src")
    with pytest.raises(UsageError):
        vc.setro_argv("--all")


def test_assemble_is_read_only_by_uuid_without_the_config():
    argv = vc.assemble_readonly_argv("/dev/md/ams-verify3", UUID.upper(), ["/dev/nvme4n1", "/dev/nvme5n1"])
    assert argv == ["mdadm", "--assemble", "/dev/md/ams-verify3", "--readonly", "--config=none",
                    f"--uuid={UUID}", "--run", "/dev/nvme4n1", "/dev/nvme5n1"]
    assert not any(a.startswith("--update") or a == "--force" for a in argv)
    for members in ([], "/dev/nvme4n1", ["-x"]):
        with pytest.raises(UsageError):
            vc.assemble_readonly_argv("/dev/md/x", UUID, members)
    with pytest.raises(UsageError):
        vc.assemble_readonly_argv("/dev/md/x", "not-a-uuid", ["/dev/a"])


def test_assemble_script_hides_the_host_map_in_its_own_namespace():
    script = vc.assemble_readonly_script("/dev/md/ams-verify3", UUID, ["/dev/nvme4n1"])
    outer = shlex.split(script)
    assert outer[:3] == ["mkdir", "-p", "/run/mdadm"] and outer[4:7] == ["unshare", "-m", "sh"]
    inner = outer[-1]
    assert inner.startswith("mount -t tmpfs -o mode=0700 ams-verify /run/mdadm && : > /run/mdadm/map && exec mdadm ")
    assert shlex.split(inner.split("exec ", 1)[1]) == vc.assemble_readonly_argv("/dev/md/ams-verify3", UUID, ["/dev/nvme4n1"])


def test_holders():
    assert vc.holders_argv("/dev/nvme4n1") == ["ls", "-1", "/sys/class/block/nvme4n1/holders"]
    assert vc.parse_holder("md126\n") == "/dev/md126"
    assert vc.parse_holder("") is None
    assert vc.parse_holder("md126\nmd127\n") is None  # never guess
    assert vc.parse_holder("dm-0\n") is None


@pytest.mark.parametrize("fs,argv", [
    ("xfs", ["xfs_repair", "-n", "/dev/md126"]),
    ("ext4", ["e2fsck", "-n", "-f", "/dev/md126"]),
    ("ext3", ["e2fsck", "-n", "-f", "/dev/md126"]),
])
def test_fsck_never_repairs(fs, argv):
    assert vc.fsck_argv(fs, "/dev/md126") == argv


def test_mount_is_read_only_without_replay_and_beside_the_original():
    assert vc.mount_argv("xfs", "/dev/md126", MNT) == ["mount", "-t", "xfs", "-o", "ro,nouuid,norecovery", "/dev/md126", MNT]
    assert vc.mount_argv("ext4", "/dev/x", MNT) == ["mount", "-t", "ext4", "-o", "ro,noload", "/dev/x", MNT]
    assert vc.umount_argv(MNT) == ["umount", MNT]
    for fs in ("xfs", "ext4", "ext3"):
        assert vc.mount_options(fs).split(",")[0] == "ro"
    with pytest.raises(UsageError):
        vc.mount_argv("btrfs", "/dev/x", MNT)
    with pytest.raises(UsageError):
        vc.mount_argv("xfs", "/dev/x", "/srv/src")


# -- the scripts, run by a real shell on a directory laid out like a restored filesystem -----------

@pytest.fixture
def fake_root(tmp_path, monkeypatch):
    """The scripts only accept /run/ams-verify.XXXXXXXX; run them with that prefix swapped for a
    temporary directory (the same text otherwise)."""
    root = tmp_path / "ams-verify.AbC123xY"
    (root / "dir").mkdir(parents=True)
    (root / "a.bin").write_bytes(b"hello\n")
    (root / "dir" / "b b.txt").write_bytes(b"")
    (root / "link-out").symlink_to("/etc/hostname")
    (root / "link-in").symlink_to("a.bin")
    (root / "dir" / "up").symlink_to("../a.bin")
    outside = tmp_path / "secret"
    outside.write_text("no")
    (root / "rel-out").symlink_to("../secret")

    def run(script):
        script = script.replace(MNT, str(root))
        return subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout

    return run


def test_checksum_script_on_a_real_shell(fake_root):
    paths = ["a.bin", "dir/b b.txt", "link-in", "dir/up", "link-out", "rel-out", "dir", "nope", "$(touch x)"]
    out = fake_root(vc.checksum_script(MNT, paths))
    sums, missing = vc.parse_checksums(out, paths)
    hello = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
    empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert sums == {"a.bin": hello, "dir/b b.txt": empty, "link-in": hello, "dir/up": hello}
    assert missing == ["link-out", "rel-out", "dir", "nope", "$(touch x)"]
    assert not os.path.exists("x")


def test_usage_script_on_a_real_shell(fake_root):
    values = vc.parse_usage(fake_root(vc.usage_script(MNT)))
    assert values["files"] == 2 and values["dirs"] == 1  # symlinks are not files
    assert values["size_bytes"] > 0 and 0 <= values["used_bytes"] <= values["size_bytes"]


# -- parsing -------------------------------------------------------------------------------------

DF = """Filesystem     1-blocks    Used Available Capacity Mounted on
/dev/md126   2134900736 4718592 2130182144       1% /run/ams-verify.AbC123xY
"""


def test_parse_df_and_usage():
    assert vc.parse_df(DF) == {"size_bytes": 2134900736, "used_bytes": 4718592, "available_bytes": 2130182144}
    assert vc.parse_usage(DF + "files 12\ndirs 3\n")["files"] == 12
    with pytest.raises(ValueError):
        vc.parse_df("Filesystem 1-blocks Used\n")
    with pytest.raises(ValueError):
        vc.parse_usage(DF + "files 12\n")
    with pytest.raises(ValueError):
        vc.parse_usage(DF + "files x\ndirs 1\n")


def test_parse_checksums_keeps_request_order_and_ignores_strays():
    h = "a" * 64
    text = f"{h} b\nmissing a\n{'b' * 64} stray\nnoise\n{h} with space\n"
    sums, missing = vc.parse_checksums(text, ["a", "b", "with space", "silent"])
    assert sums == {"b": h, "with space": h} and missing == ["a", "silent"]
    sums, missing = vc.parse_checksums(f"{h} missing x\n", ["missing x"])
    assert sums == {"missing x": h} and missing == []


XFS_CLEAN_LOG_DIRTY = """Phase 1 - find and verify superblock...
Phase 2 - using internal log
        - zero log...
ALERT: The filesystem has valuable metadata changes in a log which is being
ignored because the -n option was used.  Expect spurious inconsistencies
which may be resolved by first mounting the filesystem to replay the log.
        - scan filesystem freespace and inode maps...
sb_fdblocks 501752, counted 505287
        - found root inode chunk
Phase 3 - for each AG...
No modify flag set, skipping filesystem flush and exiting.
"""

XFS_DAMAGED = """Phase 1 - find and verify superblock...
bad primary superblock - bad magic number !!!
attempting to find secondary superblock...
bad primary superblock - bad magic number !!!
sb_fdblocks 501752, counted 505287
"""


def test_fsck_findings_xfs():
    assert vc.fsck_findings("xfs", 0, "anything") == []
    assert vc.fsck_findings("xfs", 1, XFS_CLEAN_LOG_DIRTY) == []  # stale lazy counters of an unreplayed log
    assert vc.xfs_log_dirty(XFS_CLEAN_LOG_DIRTY) and not vc.xfs_log_dirty(XFS_DAMAGED) and not vc.xfs_log_dirty(None)
    found = vc.fsck_findings("xfs", 1, XFS_DAMAGED)
    assert found == ["xfs_repair -n found corruption", "fsck: bad primary superblock - bad magic number !!!",
                     "fsck: attempting to find secondary superblock...", "fsck: sb_fdblocks 501752, counted 505287"]
    # counters alone but a clean log: a real mismatch
    assert vc.fsck_findings("xfs", 1, "sb_icount 64, counted 128\n")[0] == "xfs_repair -n found corruption"
    # a dirty log plus real damage still reports
    assert len(vc.fsck_findings("xfs", 1, XFS_CLEAN_LOG_DIRTY + "bad magic in block 7\n")) == 3
    assert vc.fsck_findings("xfs", 2, "") == ["xfs_repair -n could not check the filesystem (exit status 2)"]
    many = "\n".join(f"problem {i}" for i in range(20))
    assert len(vc.fsck_findings("xfs", 1, many)) == 1 + vc.MAX_FSCK_DETAIL


E2FSCK_DAMAGED = """e2fsck 1.47.0 (5-Feb-2023)
ext2fs_open2: Bad magic number in super-block
e2fsck: Superblock invalid, trying backup blocks....
Pass 1: Checking inodes, blocks, and sizes
Inode 12 has illegal blocks.  Clear? no

/dev/nvme4n1: ********** WARNING: Filesystem still has errors **********

/dev/nvme4n1: 12/65536 files (0.0% non-contiguous), 8861/262144 blocks
"""


def test_fsck_findings_ext():
    assert vc.fsck_findings("ext4", 0, "e2fsck 1.47.0\nPass 1: Checking inodes\n") == []
    found = vc.fsck_findings("ext4", 4, E2FSCK_DAMAGED)
    assert found[0] == "e2fsck -n: errors were found and left uncorrected"
    assert "fsck: ext2fs_open2: Bad magic number in super-block" in found
    assert not any("Pass 1" in f or "files (" in f or "e2fsck 1.47" in f for f in found)
    assert vc.fsck_findings("ext3", 12, "")[0] == "e2fsck -n: errors were found and left uncorrected; " \
                                                   "e2fsck could not check it (operational error)"
    assert vc.fsck_findings("ext4", 1, "") == ["e2fsck -n: exit status 1"]


def test_member_findings():
    members = [(0, "vol-a", "/dev/nvme4n1"), (1, "vol-b", "/dev/nvme5n1"), (2, "vol-c", "/dev/nvme6n1")]
    other = "00000000:00000000:00000000:00000001"
    found = {"/dev/nvme4n1": None, "/dev/nvme5n1": UUID, "/dev/nvme6n1": other}
    findings, good, uuid = vc.member_findings(members, UUID, found)
    assert findings == ["member 0 (vol-a, /dev/nvme4n1) carries no RAID superblock",
                        f"member 2 (vol-c, /dev/nvme6n1) belongs to array {other}, not {UUID}"]
    assert good == ["/dev/nvme5n1"] and uuid == UUID
    # the group's UUID not recorded: the one most members carry
    findings, good, uuid = vc.member_findings(members, None, {"/dev/nvme4n1": other, "/dev/nvme5n1": UUID,
                                                               "/dev/nvme6n1": UUID})
    assert uuid == UUID and good == ["/dev/nvme5n1", "/dev/nvme6n1"] and len(findings) == 1
    findings, good, uuid = vc.member_findings(members, None, {})
    assert uuid is None and good == [] and len(findings) == 3
    # the dashed form is the same UUID
    _, good, _ = vc.member_findings(members[1:2], "b1aa452f-a143-4872-f377-c012c9b3064e", {"/dev/nvme5n1": UUID})
    assert good == ["/dev/nvme5n1"]


DETAIL = """MD_LEVEL=raid10
MD_DEVICES=4
MD_METADATA=1.2
MD_UUID={uuid}
MD_DEGRADED={degraded}
MD_DEVICE_dev_nvme4n1_ROLE=0
MD_DEVICE_dev_nvme4n1_DEV=/dev/nvme4n1
MD_DEVICE_dev_nvme5n1_ROLE=1
MD_DEVICE_dev_nvme5n1_DEV=/dev/nvme5n1
MD_DEVICE_dev_nvme6n1_ROLE={role}
MD_DEVICE_dev_nvme6n1_DEV=/dev/nvme6n1
MD_DEVICE_dev_nvme7n1_ROLE=3
MD_DEVICE_dev_nvme7n1_DEV=/dev/nvme7n1
"""


def test_array_findings():
    assert vc.array_findings(DETAIL.format(uuid=UUID, degraded=0, role=2), 4) == []
    assert vc.array_findings(DETAIL.format(uuid=UUID, degraded=1, role="spare"), 4) == [
        "the array runs degraded: 1 of its 4 members missing"]
    three = "\n".join(l for l in DETAIL.format(uuid=UUID, degraded=1, role=2).splitlines() if "nvme7n1" not in l)
    assert vc.array_findings(three, 4) == ["the array runs degraded: 1 of its 4 members missing"]
    assert vc.array_findings(DETAIL.format(uuid=UUID, degraded=0, role=2), 6) == [
        "the array has 4 member slots, the snapshot group 6 members"]
    assert vc.array_findings("", 2) == ["the array runs degraded: 2 of its 2 members missing"]


# -- the command line's source words and report ------------------------------------------------------

@pytest.mark.parametrize("words,expected", [
    (["12"], {"snapshot_group_id": "12"}),
    (["latest", "volume", "3"], {"volume_group_id": "3"}),
    (["latest", "host", "web1", "/srv"], {"host": "web1", "mount_point": "/srv"}),
    (["latest", "instance", "i-0123456789abcdef0", "/srv"], {"instance": "i-0123456789abcdef0", "mount_point": "/srv"}),
])
def test_parse_source(words, expected):
    assert parse_source(words) == expected


@pytest.mark.parametrize("words,fragment", [
    ([], "expected"),
    (["latest"], "needs volume"),
    (["latest", "snapshot", "1"], "not 'snapshot'"),
    (["latest", "host", "web1"], "HOST MOUNT_POINT"),
    (["latest", "volume", "1", "2"], "VOLUME_GROUP_ID"),
    (["12", "13"], "expected"),
])
def test_parse_source_refused(words, fragment):
    with pytest.raises(UsageError) as err:
        parse_source(words)
    assert fragment in str(err.value)


def test_report_lines():
    report = {"snapshot_group_id": 4, "hostname": "web1", "fs_type": "xfs", "size_bytes": 2 * 2**30,
              "used_bytes": 5 * 2**20, "files": 2, "directories": 1, "checksums": {"b": "f" * 64, "a": "e" * 64},
              "findings": [], "kept": None}
    lines = report_lines(report)
    assert lines[0] == "snapshot group 4: xfs of 2.0 GiB, 5.0 MiB used, 2 files in 1 directories"
    assert lines[1:3] == [f"sha256 {'e' * 64}  a", f"sha256 {'f' * 64}  b"]
    assert lines[-1] == "snapshot group 4 restores cleanly on web1"
    kept = dict(report, findings=["x"], kept={"volume_group_id": 9, "volume_ids": ["vol-1"], "mount_point": MNT,
                                              "remove_with": ["ams volume detach volume 9 --unmount", "ams volume delete 9"]})
    lines = report_lines(kept)
    assert "restores cleanly" not in lines[-1] and "kept scratch volume group 9 (vol-1)" in lines[-1]
    assert "ams volume delete 9" in lines[-1]
    assert report_lines({"snapshot_group_id": 1, "dry_run": True, "plan": ["a", "b"]}) == [
        "dry run: nothing was changed; the plan:", "  a", "  b"]


def test_unhealthy_has_its_own_exit_code():
    from amslib.core import errors

    codes = [c.exit_code for c in vars(errors).values()
             if isinstance(c, type) and issubclass(c, errors.AmsError) and "exit_code" in vars(c)]
    assert Unhealthy.exit_code == 12 and codes.count(12) == 1
    assert Unhealthy("x", report={"findings": ["y"]}).report == {"findings": ["y"]}

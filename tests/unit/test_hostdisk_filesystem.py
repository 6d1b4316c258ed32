"""Filesystem checks, labels and mkfs/blkid argv lists (pure; the argv also runs against real mkfs)."""

import shutil
import subprocess

import pytest

from amslib.core.errors import UsageError
from amslib.hostdisk import filesystem as f
from amslib.hostdisk import raid


@pytest.mark.parametrize("name, expected", [("xfs", "xfs"), ("ext4", "ext4"), ("ext3", "ext3"), ("XFS", "xfs"),
                                            (" Ext4 ", "ext4")])
def test_check_filesystem(name, expected):
    assert f.check_filesystem(name) == expected


@pytest.mark.parametrize("name", ["", None, "btrfs", "ext2", "vfat", "zfs", "xfs;", "mkfs.xfs", "x fs", 4])
def test_check_filesystem_rejects(name):
    with pytest.raises(UsageError, match="unsupported filesystem .*: expected xfs, ext4 or ext3"):
        f.check_filesystem(name)


@pytest.mark.parametrize(
    "group_id, label",
    [
        (1, "ams-vg1"),
        (12, "ams-vg12"),
        (999999, "ams-vg999999"),
        (1000000, "vg1000000"),
        (9999999999, "vg9999999999"),
        (12345678901, "vg2345678901"),
    ],
)
def test_label_for(group_id, label):
    assert f.label_for(group_id) == label
    assert len(label) <= 12
    for fs in f.FILESYSTEMS:
        assert f.check_label(label, fs) == label


@pytest.mark.parametrize("group_id", [0, -1, "1", None, True, 1.0])
def test_label_for_rejects(group_id):
    with pytest.raises(UsageError, match="invalid volume group id"):
        f.label_for(group_id)


@pytest.mark.parametrize(
    "label, fs, ok",
    [
        ("a" * 12, "xfs", True),
        ("a" * 13, "xfs", False),
        ("a" * 16, "ext4", True),
        ("a" * 16, "ext3", True),
        ("a" * 17, "ext4", False),
        ("", "xfs", False),
        ("a b", "ext4", False),
        ("a'b", "xfs", False),
        ("a\n", "xfs", False),
        ("data_1.x-y", "xfs", True),
        (None, "xfs", False),
    ],
)
def test_check_label(label, fs, ok):
    if ok:
        assert f.check_label(label, fs) == label
    else:
        with pytest.raises(UsageError, match=f"invalid {fs} label"):
            f.check_label(label, fs)


@pytest.mark.parametrize(
    "fs, chunk, data_disks, middle",
    [
        ("xfs", None, 1, []),
        ("xfs", 256, 1, []),  # single volume or RAID 1: nothing to align to
        ("xfs", None, 4, []),  # no chunk given: mkfs.xfs reads the md geometry itself
        ("xfs", 256, 2, ["-d", "su=256k,sw=2"]),
        ("xfs", "64k", 3, ["-d", "su=64k,sw=3"]),
        ("xfs", 4, 24, ["-d", "su=4k,sw=24"]),
        ("ext4", None, 1, []),
        ("ext4", 256, 1, []),
        ("ext4", 256, 2, ["-b", "4096", "-E", "stride=64,stripe_width=128"]),
        ("ext4", 512, 3, ["-b", "4096", "-E", "stride=128,stripe_width=384"]),
        ("ext3", 4, 2, ["-b", "4096", "-E", "stride=1,stripe_width=2"]),
        ("ext3", 4096, 12, ["-b", "4096", "-E", "stride=1024,stripe_width=12288"]),
    ],
)
def test_mkfs_argv(fs, chunk, data_disks, middle):
    argv = f.mkfs_argv(fs, "/dev/md/ams-vg7", label="ams-vg7", chunk_kib=chunk, data_disks=data_disks)
    head = ["mkfs.xfs", "-L", "ams-vg7"] if fs == "xfs" else [f"mkfs.{fs}", "-q", "-L", "ams-vg7"]
    assert argv == head + middle + ["/dev/md/ams-vg7"]


def test_mkfs_never_forces():
    for fs in f.FILESYSTEMS:
        for chunk, disks in ((None, 1), (256, 4)):
            argv = f.mkfs_argv(fs, "/dev/x", label="l", chunk_kib=chunk, data_disks=disks)
            assert not {"-f", "-F", "--force"} & set(argv)


@pytest.mark.parametrize(
    "level, count, chunk, middle",
    [
        (None, 1, 256, []),
        (0, 4, 256, ["-d", "su=256k,sw=4"]),
        (1, 2, 256, []),
        (5, 5, 128, ["-d", "su=128k,sw=4"]),
        (10, 6, 512, ["-d", "su=512k,sw=3"]),
    ],
)
def test_mkfs_with_raid_geometry(level, count, chunk, middle):
    argv = f.mkfs_argv("xfs", "/dev/md/a", label="a", chunk_kib=chunk, data_disks=raid.data_disks(level, count))
    assert argv == ["mkfs.xfs", "-L", "a", *middle, "/dev/md/a"]


@pytest.mark.parametrize(
    "fs, device, label, chunk, disks, message",
    [
        ("btrfs", "/dev/x", "l", None, 1, "unsupported filesystem"),
        ("xfs", "/dev/x", "a" * 13, None, 1, "invalid xfs label"),
        ("xfs", "/dev/x", "", None, 1, "invalid xfs label"),
        ("xfs", "-f", "l", None, 1, "invalid device '-f'"),
        ("xfs", "", "l", None, 1, "invalid device"),
        ("xfs", "/dev/x\n", "l", None, 1, "invalid device"),
        ("xfs", None, "l", None, 1, "invalid device"),
        ("xfs", "/dev/x", "l", 300, 2, "invalid chunk size 300"),
        ("xfs", "/dev/x", "l", 256, 0, "invalid number of data disks 0"),
        ("ext4", "/dev/x", "l", 256, True, "invalid number of data disks True"),
        ("ext4", "/dev/x", "l", 256, 2.0, "invalid number of data disks 2.0"),
        ("ext4", "/dev/x", "l", 3, 2, "invalid chunk size 3"),
    ],
)
def test_mkfs_argv_rejects(fs, device, label, chunk, disks, message):
    with pytest.raises(UsageError, match=message):
        f.mkfs_argv(fs, device, label=label, chunk_kib=chunk, data_disks=disks)


def test_mkfs_argv_takes_a_placeholder():
    assert f.mkfs_argv("xfs", "<block device>", label="l")[-1] == "<block device>"


def test_signature_probe_argv():
    assert f.signature_probe_argv("/dev/nvme1n1") == ["blkid", "-p", "-o", "export", "/dev/nvme1n1"]
    with pytest.raises(UsageError, match="invalid device"):
        f.signature_probe_argv("-d")


# -- the argv lists against the real tools, on sparse files ---------------------------------

def need(*tools):
    missing = [tool for tool in tools if not shutil.which(tool)]
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")


def image(tmp_path, name="disk.img", size=1 << 30):
    path = tmp_path / name
    with open(path, "wb") as handle:
        handle.truncate(size)
    return str(path)


def run(argv):
    return subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)


def probe(path):
    result = run(f.signature_probe_argv(path))
    return result.returncode, raid.parse_export(result.stdout)


@pytest.mark.parametrize(
    "fs, chunk, disks",
    [("xfs", None, 1), ("xfs", 256, 4), ("ext4", None, 1), ("ext4", 256, 3), ("ext3", 64, 2)],
)
def test_real_mkfs_accepts_the_argv(tmp_path, fs, chunk, disks):
    need(f"mkfs.{fs}", "blkid")
    path = image(tmp_path)
    assert probe(path)[0] == f.PROBE_EXIT_BLANK
    result = run(f.mkfs_argv(fs, path, label=f.label_for(123456), chunk_kib=chunk, data_disks=disks))
    assert result.returncode == 0, result.stderr
    status, values = probe(path)
    assert status == 0
    assert (values["TYPE"], values["LABEL"]) == (fs, "ams-vg123456")
    assert raid.normalize_uuid(values["UUID"])


@pytest.mark.parametrize("fs, chunk, disks, expected", [("xfs", 256, 4, ("sunit=64", "swidth=256 blks"))])
def test_real_xfs_geometry(tmp_path, fs, chunk, disks, expected):
    need("mkfs.xfs")
    path = image(tmp_path)
    result = run(f.mkfs_argv(fs, path, label="g", chunk_kib=chunk, data_disks=disks))
    assert result.returncode == 0, result.stderr
    for text in expected:
        assert text in result.stdout


def test_real_ext4_geometry(tmp_path):
    need("mkfs.ext4", "dumpe2fs")
    path = image(tmp_path)
    assert run(f.mkfs_argv("ext4", path, label="g", chunk_kib=256, data_disks=3)).returncode == 0
    header = run(["dumpe2fs", "-h", path]).stdout
    assert "RAID stride:              64" in header
    assert "RAID stripe width:        192" in header
    assert "Block size:               4096" in header


def test_real_mkfs_xfs_refuses_an_existing_filesystem(tmp_path):
    need("mkfs.xfs", "mkfs.ext4")
    path = image(tmp_path)
    assert run(f.mkfs_argv("ext4", path, label="old")).returncode == 0
    result = run(f.mkfs_argv("xfs", path, label="new"))
    assert result.returncode != 0
    assert "appears to contain an existing filesystem" in result.stderr


def test_real_mkfs_ext4_overwrites_without_a_terminal(tmp_path):
    """Why callers must probe first: mke2fs only asks when stdin and stdout are terminals."""
    need("mkfs.xfs", "mkfs.ext4", "blkid")
    path = image(tmp_path)
    assert run(f.mkfs_argv("xfs", path, label="old")).returncode == 0
    assert probe(path)[1]["TYPE"] == "xfs"
    assert run(f.mkfs_argv("ext4", path, label="new")).returncode == 0
    assert probe(path)[1]["TYPE"] == "ext4"

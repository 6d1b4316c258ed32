"""RAID checks, mdadm argv lists and mdadm/blkid output parsing (pure)."""

import pytest

from amslib.core.errors import UsageError
from amslib.hostdisk import raid

MEMBERS = ["/dev/nvme1n1", "/dev/nvme2n1", "/dev/nvme3n1", "/dev/nvme4n1"]
UUID = "3a8605c3:bb2d5eb0:4bc8e4e8:8ff2c8a9"


@pytest.mark.parametrize(
    "level, expected",
    [(None, None), (0, 0), (1, 1), (5, 5), (10, 10), ("0", 0), ("10", 10), ("raid5", 5), ("RAID10", 10),
     (" raid1 ", 1), ("none", None), ("None", None), ("", None)],
)
def test_check_level(level, expected):
    assert raid.check_level(level) == expected


@pytest.mark.parametrize("level", [2, 3, 4, 6, -1, 100, "6", "raid", "raid-0", "r0", "0.0", 0.0, 1.0, True, False,
                                   "linear", "mirror", [0]])
def test_check_level_rejects(level):
    with pytest.raises(UsageError, match="invalid RAID level") as info:
        raid.check_level(level)
    assert "expected 0, 1, 5 or 10" in str(info.value)


def expected_raid(level, count):
    """The rule, written out independently of the module: effective level or None, or 'error'."""
    if not 1 <= count <= 24:
        return "error"
    if count == 1:
        return None if level in (None, 0) else "error"
    minimum = {None: 99, 0: 2, 1: 2, 5: 3, 10: 4}[level]
    if count < minimum or (level == 10 and count % 2):
        return "error"
    return level


@pytest.mark.parametrize("level", [None, 0, 1, 5, 10])
@pytest.mark.parametrize("count", range(0, 27))
def test_check_raid_exhaustive(level, count):
    expected = expected_raid(level, count)
    if expected == "error":
        with pytest.raises(UsageError):
            raid.check_raid(level, count)
    else:
        assert raid.check_raid(level, count) == expected


@pytest.mark.parametrize(
    "level, count, message",
    [
        (1, 1, "RAID 1 needs at least 2 volumes, not 1"),
        (5, 1, "RAID 5 needs at least 3 volumes, not 1"),
        (10, 1, "RAID 10 needs at least 4 volumes, not 1"),
        (5, 2, "RAID 5 needs at least 3 volumes, not 2"),
        (10, 2, "RAID 10 needs at least 4 volumes, not 2"),
        (10, 5, "RAID 10 needs an even number of volumes, not 5"),
        (None, 2, "2 volumes need a RAID level"),
        (0, 0, "invalid number of volumes 0: expected 1 to 24"),
        (0, 25, "invalid number of volumes 25"),
        (0, "2", "invalid number of volumes '2'"),
        (0, True, "invalid number of volumes True"),
        (0, 2.0, "invalid number of volumes 2.0"),
        (6, 4, "invalid RAID level 6"),
    ],
)
def test_check_raid_messages(level, count, message):
    with pytest.raises(UsageError, match=message):
        raid.check_raid(level, count)


def test_check_raid_accepts_text_levels():
    assert raid.check_raid("raid10", 4) == 10
    assert raid.check_raid("0", 1) is None


@pytest.mark.parametrize("kib, expected", [(4, 4), (8, 8), (64, 64), (256, 256), (512, 512), (4096, 4096),
                                           ("256", 256), ("256k", 256), ("256K", 256), (" 64 ", 64)])
def test_check_chunk(kib, expected):
    assert raid.check_chunk(kib) == expected


@pytest.mark.parametrize("kib", [0, 1, 2, 3, 5, 12, 96, 100, 255, 257, 768, 8192, -4, None, True, 256.0, "",
                                 "256m", "1M", "0x100", "2^8", "k"])
def test_check_chunk_rejects(kib):
    with pytest.raises(UsageError, match="invalid chunk size .*: expected a power of two from 4 to 4096"):
        raid.check_chunk(kib)


def test_every_power_of_two_in_range():
    assert [kib for kib in range(0, 5000) if _accepts(kib)] == [2 ** n for n in range(2, 13)]


def _accepts(kib):
    try:
        raid.check_chunk(kib)
        return True
    except UsageError:
        return False


@pytest.mark.parametrize(
    "level, count, disks",
    [(None, 1, 1), (0, 1, 1), (0, 2, 2), (0, 7, 7), (0, 24, 24), (1, 2, 1), (1, 3, 1), (1, 24, 1),
     (5, 3, 2), (5, 4, 3), (5, 24, 23), (10, 4, 2), (10, 6, 3), (10, 24, 12)],
)
def test_data_disks(level, count, disks):
    assert raid.data_disks(level, count) == disks


@pytest.mark.parametrize("level, count", [(10, 5), (5, 2), (1, 1), (None, 3), (0, 25)])
def test_data_disks_checks(level, count):
    with pytest.raises(UsageError):
        raid.data_disks(level, count)


@pytest.mark.parametrize("group_id, name", [(1, "ams-vg1"), (12, "ams-vg12"), (10 ** 20, "ams-vg1" + "0" * 20)])
def test_array_name(group_id, name):
    assert raid.array_name(group_id) == name
    assert raid.array_device(name) == "/dev/md/" + name
    assert raid.group_id_of(name) == group_id
    assert raid.group_id_of("any:" + name) == group_id


@pytest.mark.parametrize("group_id", [0, -1, True, "12", 1.0, None, 10 ** 21])
def test_array_name_rejects(group_id):
    with pytest.raises(UsageError):
        raid.array_name(group_id)


def test_array_name_fits_the_superblock():
    """``any:`` + the name must stay under the 32 bytes of the v1 superblock's set_name."""
    assert len("any:" + "x" * raid.MAX_NAME) < 32
    raid.check_array_name("x" * raid.MAX_NAME)
    with pytest.raises(UsageError, match="at most 27"):
        raid.check_array_name("x" * (raid.MAX_NAME + 1))


@pytest.mark.parametrize("name", ["", "-x", ".x", "a b", "a/b", "a:b", "a\n", "ams-vg1;id", None, 12])
def test_array_device_rejects(name):
    with pytest.raises(UsageError, match="invalid array name"):
        raid.array_device(name)


@pytest.mark.parametrize("name", ["md127", "ams-vg012", "ams-vg", "ams-vg1x", "host:other", "", None, "ams-vgl"])
def test_group_id_of_other_names(name):
    assert raid.group_id_of(name) is None


@pytest.mark.parametrize(
    "level, chunk, members, assume_clean, expected",
    [
        (0, 256, MEMBERS[:2], True,
         ["--level=0", "--raid-devices=2", "--chunk=256", "--homehost=any", "--name=ams-vg7", "--assume-clean"]),
        (0, None, MEMBERS[:2], True,
         ["--level=0", "--raid-devices=2", "--homehost=any", "--name=ams-vg7", "--assume-clean"]),
        (1, 256, MEMBERS[:2], True,
         ["--level=1", "--raid-devices=2", "--homehost=any", "--name=ams-vg7", "--assume-clean"]),
        (1, None, MEMBERS[:3], False, ["--level=1", "--raid-devices=3", "--homehost=any", "--name=ams-vg7"]),
        (5, "64k", MEMBERS[:3], True,
         ["--level=5", "--raid-devices=3", "--chunk=64", "--homehost=any", "--name=ams-vg7", "--assume-clean"]),
        (10, 512, MEMBERS, False, ["--level=10", "--raid-devices=4", "--chunk=512", "--homehost=any", "--name=ams-vg7"]),
        ("raid0", 4096, MEMBERS, True,
         ["--level=0", "--raid-devices=4", "--chunk=4096", "--homehost=any", "--name=ams-vg7", "--assume-clean"]),
    ],
)
def test_create_argv(level, chunk, members, assume_clean, expected):
    argv = raid.create_argv("/dev/md/ams-vg7", "ams-vg7", level, chunk, members, assume_clean=assume_clean)
    assert argv == ["mdadm", "--create", "/dev/md/ams-vg7", "--run", "--metadata=1.2", *expected, *members]


def test_create_argv_assumes_clean_by_default():
    assert "--assume-clean" in raid.create_argv("/dev/md/a", "a", 0, 256, MEMBERS[:2])


def test_create_argv_takes_placeholders():
    """--dry-run shows the command before the devices are known."""
    argv = raid.create_argv("/dev/md/a", "a", 0, 256, ["<member 0>", "<member 1>"])
    assert argv[-2:] == ["<member 0>", "<member 1>"]


@pytest.mark.parametrize(
    "device, name, level, chunk, members, message",
    [
        ("/dev/md/a", "a", 0, 256, MEMBERS[:1], "a single volume is not made into an array"),
        ("/dev/md/a", "a", None, 256, MEMBERS[:2], "need a RAID level"),
        ("/dev/md/a", "a", 5, 256, MEMBERS[:2], "RAID 5 needs at least 3"),
        ("/dev/md/a", "a", 10, 256, MEMBERS[:3], "RAID 10 needs at least 4"),
        ("/dev/md/a", "a", 0, 300, MEMBERS[:2], "invalid chunk size 300"),
        ("/dev/md/a", "a", 0, 256, [], "an array needs member devices"),
        ("/dev/md/a", "a", 0, 256, "/dev/nvme1n1", "not one string"),
        ("/dev/md/a", "a", 0, 256, [MEMBERS[0], MEMBERS[0]], "listed twice"),
        ("/dev/md/a", "a", 0, 256, [MEMBERS[0], "--zero-superblock"], "invalid member device"),
        ("/dev/md/a", "a", 0, 256, [MEMBERS[0], "/dev/x\n"], "invalid member device"),
        ("/dev/md/a", "a", 0, 256, [MEMBERS[0], ""], "invalid member device"),
        ("/dev/md/a", "a", 0, 256, [MEMBERS[0], None], "invalid member device"),
        ("", "a", 0, 256, MEMBERS[:2], "invalid array device"),
        ("--force", "a", 0, 256, MEMBERS[:2], "invalid array device"),
        ("/dev/md/a", "a b", 0, 256, MEMBERS[:2], "invalid array name"),
        ("/dev/md/a", "", 0, 256, MEMBERS[:2], "invalid array name"),
    ],
)
def test_create_argv_rejects(device, name, level, chunk, members, message):
    with pytest.raises(UsageError, match=message):
        raid.create_argv(device, name, level, chunk, members)


@pytest.mark.parametrize(
    "uuid, expected",
    [
        (UUID, UUID),
        (UUID.upper(), UUID),
        ("3a8605c3-bb2d-5eb0-4bc8-e4e88ff2c8a9", UUID),
        ("<from the members' superblocks>", "<from the members' superblocks>"),
    ],
)
def test_assemble_argv(uuid, expected):
    assert raid.assemble_argv("/dev/md/ams-vg7", uuid, MEMBERS[:2]) == [
        "mdadm", "--assemble", "/dev/md/ams-vg7", f"--uuid={expected}", "--run", *MEMBERS[:2]]


@pytest.mark.parametrize(
    "uuid, members, message",
    [
        ("", MEMBERS, "invalid array UUID"),
        ("--scan", MEMBERS, "invalid array UUID"),
        (None, MEMBERS, "invalid array UUID"),
        (UUID, [], "needs member devices"),
        (UUID, [MEMBERS[0], MEMBERS[0]], "listed twice"),
        (UUID, ["-s"], "invalid member device"),
    ],
)
def test_assemble_argv_rejects(uuid, members, message):
    with pytest.raises(UsageError, match=message):
        raid.assemble_argv("/dev/md/a", uuid, members)


def test_renew_identity_argvs_give_a_clone_a_new_uuid_and_its_own_name():
    assert raid.renew_identity_argvs("/dev/md/ams-vg7", MEMBERS[:2]) == [
        ["mdadm", "--assemble", "/dev/md/ams-vg7", "--run", "--update=uuid", *MEMBERS[:2]],
        ["mdadm", "--stop", "/dev/md/ams-vg7"],
        ["mdadm", "--assemble", "/dev/md/ams-vg7", "--run", "--update=name", "--homehost=any", "--name=ams-vg7",
         *MEMBERS[:2]],
    ]
    for device, members, message in (("/dev/md/a b", MEMBERS[:2], "invalid array"), ("/dev/md/x", [], "needs member"),
                                     ("--scan", MEMBERS[:2], "invalid array device")):
        with pytest.raises(UsageError, match=message):
            raid.renew_identity_argvs(device, members)


def test_other_argv():
    assert raid.stop_argv("/dev/md/ams-vg7") == ["mdadm", "--stop", "/dev/md/ams-vg7"]
    assert raid.examine_argv("/dev/nvme1n1") == ["mdadm", "--examine", "--export", "/dev/nvme1n1"]
    assert raid.detail_argv("/dev/md/ams-vg7") == ["mdadm", "--detail", "--export", "/dev/md/ams-vg7"]
    for build in (raid.stop_argv, raid.examine_argv, raid.detail_argv):
        with pytest.raises(UsageError):
            build("--scan")


DETAIL = """\
MD_LEVEL=raid0
MD_DEVICES=2
MD_METADATA=1.2
MD_UUID=3a8605c3:bb2d5eb0:4bc8e4e8:8ff2c8a9
MD_DEVNAME=ams-vg12
MD_NAME=any:ams-vg12
MD_DEVICE_dev_nvme1n1_ROLE=0
MD_DEVICE_dev_nvme1n1_DEV=/dev/nvme1n1
MD_DEVICE_dev_nvme2n1_ROLE=1
MD_DEVICE_dev_nvme2n1_DEV=/dev/nvme2n1
"""

EXAMINE = """\
MD_LEVEL=raid10
MD_DEVICES=4
MD_NAME=any:ams-vg3
MD_ARRAY_SIZE=2.14GB
MD_UUID=3a8605c3:bb2d5eb0:4bc8e4e8:8ff2c8a9
MD_UPDATE_TIME=1700000000
MD_DEV_UUID=0f1e2d3c:4b5a6978:8796a5b4:c3d2e1f0
MD_EVENTS=17
"""

BLKID = """\
DEVNAME=/dev/nvme1n1
UUID=3a8605c3-bb2d-5eb0-4bc8-e4e88ff2c8a9
UUID_SUB=0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0
LABEL=any:ams-vg12
VERSION=1.2
TYPE=linux_raid_member
USAGE=raid
"""


def test_parse_detail():
    values = raid.parse_export(DETAIL)
    assert values["MD_LEVEL"] == "raid0"
    assert values["MD_DEVICES"] == "2"
    assert raid.normalize_uuid(values["MD_UUID"]) == UUID
    assert raid.md_name(values["MD_NAME"]) == "ams-vg12"
    assert values["MD_DEVICE_dev_nvme2n1_DEV"] == "/dev/nvme2n1"
    assert len(values) == 10


def test_parse_examine_and_blkid():
    examine = raid.parse_export(EXAMINE)
    assert (examine["MD_LEVEL"], examine["MD_DEVICES"], examine["MD_EVENTS"]) == ("raid10", "4", "17")
    assert raid.group_id_of(examine["MD_NAME"]) == 3
    blkid = raid.parse_export(BLKID)
    assert blkid["TYPE"] == "linux_raid_member"
    assert raid.normalize_uuid(blkid["UUID"]) == UUID


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", {}),
        ("A=1\n\nB=2", {"A": "1", "B": "2"}),
        ("A=1\r\nB=2\r\n", {"A": "1", "B": "2"}),
        ("A=\n", {"A": ""}),
        ("A=x=y\n", {"A": "x=y"}),
        ("A=1\nA=2\n", {"A": "2"}),
        ("  A=1  \n", {"A": "1"}),
        ("LABEL=my\\ disk\n", {"LABEL": "my disk"}),
        ("LABEL=it\\'s\\\\\n", {"LABEL": "it's\\"}),
        ("LABEL=trailing\\\n", {"LABEL": "trailing\\"}),
        ("mdadm: No md superblock detected on /dev/x.\n", {}),
        ("no equals sign\n=x\n1A=2\nA B=3\n", {}),
    ],
)
def test_parse_export(text, expected):
    assert raid.parse_export(text) == expected


@pytest.mark.parametrize("value, name", [("any:ams-vg12", "ams-vg12"), ("ams-vg12", "ams-vg12"),
                                         ("web1:data", "data"), ("", ""), (None, "")])
def test_md_name(value, name):
    assert raid.md_name(value) == name


@pytest.mark.parametrize(
    "text, expected",
    [
        (UUID, UUID),
        (UUID.upper(), UUID),
        (f" {UUID}\n", UUID),
        ("3a8605c3-bb2d-5eb0-4bc8-e4e88ff2c8a9", UUID),
        ("3A8605C3-BB2D-5EB0-4BC8-E4E88FF2C8A9", UUID),
    ],
)
def test_normalize_uuid(text, expected):
    assert raid.normalize_uuid(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", None, 12, "3a8605c3bb2d5eb04bc8e4e88ff2c8a9", "3a8605c3:bb2d5eb0:4bc8e4e8", UUID + ":00000000",
     "3a8605c3:bb2d5eb0:4bc8e4e8:8ff2c8ag", "3a8605c3-bb2d-5eb0-4bc8e4e88ff2c8a9", "3a8605c3-bb2d5eb0-4bc8-e4e8-8ff2c8a9",
     "3a8605c3.bb2d5eb0.4bc8e4e8.8ff2c8a9", UUID + ";", "3a8605c3:bb2d-5eb0:4bc8e4e8:8ff2c8a9"],
)
def test_normalize_uuid_rejects(text):
    with pytest.raises(UsageError, match="invalid array UUID"):
        raid.normalize_uuid(text)

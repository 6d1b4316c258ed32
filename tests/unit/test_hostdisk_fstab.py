"""fstab lines: build, parse (as libmount does), set and remove (pure)."""

import re
import shutil
import subprocess

import pytest

from amslib.core.errors import ConflictError, UsageError
from amslib.hostdisk import fstab
from amslib.hostdisk.fstab import Entry

U1 = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
U2 = "11111111-2222-4333-8444-555555555555"
OPTS = "defaults,nofail,x-systemd.device-timeout=30s"
LINE1 = f"UUID={U1} /data xfs {OPTS} 0 2"


# --- fstab_line ---------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "args, kwargs, expected",
    [
        ((U1, "/data", "xfs"), {}, LINE1),
        ((U1.upper(), "/data", "xfs"), {}, LINE1),
        ((U1, "/var/lib/mysql", "ext4"), {}, f"UUID={U1} /var/lib/mysql ext4 {OPTS} 0 2"),
        ((U1, "/data", "ext3"), {"device_timeout": 90},
         f"UUID={U1} /data ext3 defaults,nofail,x-systemd.device-timeout=90s 0 2"),
        ((U1, "/data", "xfs"), {"device_timeout": 1},
         f"UUID={U1} /data xfs defaults,nofail,x-systemd.device-timeout=1s 0 2"),
        ((U1, "/my data", "xfs"), {}, f"UUID={U1} /my\\040data xfs {OPTS} 0 2"),
        ((U1, "/a\tb", "xfs"), {}, f"UUID={U1} /a\\011b xfs {OPTS} 0 2"),
        ((U1, "/a\nb", "xfs"), {}, f"UUID={U1} /a\\012b xfs {OPTS} 0 2"),
        ((U1, "/a\\b", "xfs"), {}, f"UUID={U1} /a\\134b xfs {OPTS} 0 2"),
        ((U1, "/a\\040b", "xfs"), {}, f"UUID={U1} /a\\134040b xfs {OPTS} 0 2"),
        ((U1, "/x y\t\\\n", "xfs"), {}, f"UUID={U1} /x\\040y\\011\\134\\012 xfs {OPTS} 0 2"),
        ((U1, "/#data", "xfs"), {}, f"UUID={U1} /#data xfs {OPTS} 0 2"),
        ((U1, "/grüße", "xfs"), {}, f"UUID={U1} /grüße xfs {OPTS} 0 2"),
        ((U1, "/", "xfs"), {}, f"UUID={U1} / xfs {OPTS} 0 2"),
    ],
)
def test_fstab_line(args, kwargs, expected):
    assert fstab.fstab_line(*args, **kwargs) == expected
    assert "\n" not in fstab.fstab_line(*args, **kwargs)


def test_device_timeout_default_is_thirty_seconds():
    assert fstab.DEVICE_TIMEOUT_S == 30


@pytest.mark.parametrize(
    "uuid",
    ["", "0a1b2c3d4e5f4a6b8c7d9e0f1a2b3c4d", U1 + "0", U1[:-1], "g" + U1[1:], " " + U1, U1 + "\n",
     "0a1b2c3d:4e5f4a6b:8c7d9e0f:1a2b3c4d", "ABCD-1234", f"{U1} /etc", None, 12],
)
def test_fstab_line_refuses_a_bad_uuid(uuid):
    with pytest.raises(UsageError, match="invalid filesystem UUID") as failure:
        fstab.fstab_line(uuid, "/data", "xfs")
    assert "\n" not in str(failure.value)


@pytest.mark.parametrize("mount_point", ["", "data", "./data", "~/data", "/da\0ta", None])
def test_fstab_line_refuses_a_relative_mount_point(mount_point):
    with pytest.raises(UsageError, match="invalid mount point"):
        fstab.fstab_line(U1, mount_point, "xfs")


@pytest.mark.parametrize("fs_type", ["", "XFS", "x fs", "xfs\n", "-xfs", "xfs;id", "x\tfs", None])
def test_fstab_line_refuses_a_bad_filesystem_type(fs_type):
    with pytest.raises(UsageError, match="invalid filesystem type"):
        fstab.fstab_line(U1, "/data", fs_type)


@pytest.mark.parametrize("timeout", [0, -1, 1.5, "30", "30s", True, None])
def test_fstab_line_refuses_a_bad_device_timeout(timeout):
    with pytest.raises(UsageError, match="invalid device timeout"):
        fstab.fstab_line(U1, "/data", "xfs", device_timeout=timeout)


# --- escapes ------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "raw, escaped",
    [
        ("/data", "/data"),
        ("/a b", "/a\\040b"),
        ("/a\tb", "/a\\011b"),
        ("/a\nb", "/a\\012b"),
        ("/a\\b", "/a\\134b"),
        ("/  ", "/\\040\\040"),
        ("/é", "/é"),
    ],
)
def test_escape_and_unescape_round_trip(raw, escaped):
    assert fstab.escape(raw) == escaped
    assert fstab.unescape(escaped) == raw


@pytest.mark.parametrize(
    "field, decoded",
    [
        ("/a\\040b", "/a b"),
        ("/a\\40b", "/a\\40b"),  # two digits: not an escape
        ("/a\\0401", "/a 1"),
        ("/a\\08", "/a\\08"),
        ("/a\\", "/a\\"),
        ("/\\303\\251", "/é"),  # an escaped UTF-8 sequence
        ("/\\101\\102", "/AB"),
        ("\\134040", "\\040"),  # an escaped backslash is not decoded twice
    ],
)
def test_unescape(field, decoded):
    assert fstab.unescape(field) == decoded


# --- parse --------------------------------------------------------------------------------------

def entry(spec, file, vfstype, mntops, freq, passno, line_no):
    return Entry(spec, file, vfstype, mntops, freq, passno, line_no)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", []),
        ("\n\n", []),
        ("# a comment\n", []),
        ("   # indented comment\n\t# tab comment\n  \t \n", []),
        ("\r\n \r\n", []),
        (LINE1 + "\n", [entry(f"UUID={U1}", "/data", "xfs", OPTS, 0, 2, 1)]),
        (LINE1, [entry(f"UUID={U1}", "/data", "xfs", OPTS, 0, 2, 1)]),  # no final newline
        ("# head\n\n" + LINE1 + "\r\n", [entry(f"UUID={U1}", "/data", "xfs", OPTS, 0, 2, 3)]),
        ("UUID=a\t/data\t\txfs  defaults\t 0   2 \t\n", [entry("UUID=a", "/data", "xfs", "defaults", 0, 2, 1)]),
        ("  /dev/sda1 / ext4 rw 1 1\n", [entry("/dev/sda1", "/", "ext4", "rw", 1, 1, 1)]),
        ("UUID=a /data xfs\n", [entry("UUID=a", "/data", "xfs", "", 0, 0, 1)]),
        ("UUID=a /data xfs ro\n", [entry("UUID=a", "/data", "xfs", "ro", 0, 0, 1)]),
        ("UUID=a /data xfs ro 1\n", [entry("UUID=a", "/data", "xfs", "ro", 1, 0, 1)]),
        ("UUID=a /data xfs ro +1 -2\n", [entry("UUID=a", "/data", "xfs", "ro", 1, -2, 1)]),
        ("UUID=a /data xfs ro 0 2 extra words # ignored\n", [entry("UUID=a", "/data", "xfs", "ro", 0, 2, 1)]),
        ("UUID=a /data xfs #\n", [entry("UUID=a", "/data", "xfs", "#", 0, 0, 1)]),
        ("UUID=a /my\\040data xfs ro 0 0\n", [entry("UUID=a", "/my data", "xfs", "ro", 0, 0, 1)]),
        ("LABEL=a\\040b /x\\011y\\012z\\134 xfs o\\040p 0 0\n",
         [entry("LABEL=a b", "/x\ty\nz\\", "xfs", "o p", 0, 0, 1)]),
        ("UUID=a /a\vb xfs ro 0 0\n", [entry("UUID=a", "/a\vb", "xfs", "ro", 0, 0, 1)]),  # only space and tab separate
        ("proc /proc proc defaults 0 0\n# x\n/dev/sdb none swap sw 0 0\n",
         [entry("proc", "/proc", "proc", "defaults", 0, 0, 1), entry("/dev/sdb", "none", "swap", "sw", 0, 0, 3)]),
        ("#UUID=a /data xfs ro 0 0\n", []),
    ],
)
def test_parse(text, expected):
    assert fstab.parse(text) == expected


@pytest.mark.parametrize(
    "text, line_no, reason",
    [
        ("UUID=a\n", 1, "no mount point"),
        ("# c\nUUID=a /data\n", 2, "no filesystem type"),
        ("UUID=a /data xfs ro x 2\n", 1, "invalid dump frequency 'x'"),
        ("UUID=a /data xfs ro 0 2x\n", 1, "invalid fsck pass number '2x'"),
        ("UUID=a /data xfs ro # comment\n", 1, "invalid dump frequency '#'"),
        ("UUID=a /data xfs ro 0x1 2\n", 1, "invalid dump frequency"),
        ("UUID=a /data xfs ro + 2\n", 1, "invalid dump frequency"),
        (LINE1 + "\n\n\nbroken\n", 4, "no mount point"),
        ("\vx\n", 1, "no mount point"),
    ],
)
def test_parse_refuses_what_libmount_refuses(text, line_no, reason):
    with pytest.raises(ConflictError) as failure:
        fstab.parse(text)
    message = str(failure.value)
    assert message.startswith(f"fstab line {line_no} ") and reason in message
    assert "\n" not in message


# Texts libmount reads in full (entries) and texts it reads with a parse error: the table above
# checked against the real libmount through findmnt when it is installed.
LIBMOUNT_SAMPLES = [
    "", "# c\n", "\r\n", LINE1, LINE1 + "\r\n", "UUID=a /data xfs\n", "UUID=a /d xfs ro +1 -2\n",
    "UUID=a /d xfs ro 0 2 extra\n", "UUID=a /d xfs #\n", "UUID=a /a\vb xfs ro 0 0\n",
    "UUID=a\n", "UUID=a /d\n", "UUID=a /d xfs ro x 2\n", "UUID=a /d xfs ro 0 2x\n", "UUID=a /d xfs ro # c\n",
    "UUID=a /d xfs ro 0x1 2\n", "\vx\n", "  \t# c\n" + LINE1 + "\n  /dev/sdb none swap sw\n",
]


@pytest.mark.skipif(not shutil.which("findmnt"), reason="findmnt (util-linux) is not installed")
@pytest.mark.parametrize("text", LIBMOUNT_SAMPLES)
def test_parse_agrees_with_libmount(text, tmp_path):
    path = tmp_path / "fstab"
    path.write_bytes(text.encode())
    result = subprocess.run(["findmnt", "--tab-file", str(path), "-n", "-r", "-o", "SOURCE,TARGET,FSTYPE"],
                            capture_output=True, text=True)
    libmount_error = "parse error" in result.stderr
    try:
        entries = fstab.parse(text)
    except ConflictError:
        assert libmount_error
        return
    assert not libmount_error
    listed = [line.split(" ") for line in result.stdout.splitlines()]
    assert len(listed) == len(entries)


# --- set_entry ----------------------------------------------------------------------------------

BASE = (
    "# /etc/fstab: static file system information.\n"
    "#\n"
    "UUID=f00dbabe-0000-4000-8000-000000000001\t/\text4\terrors=remount-ro 0       1\n"
    "\n"
    "proc  /proc  proc  defaults  0  0\r\n"
    "   # an indented comment naming /data and " + U1 + "\n"
    "/dev/xvdb   none   swap   sw   0 0\n"
)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", LINE1 + "\n"),
        ("\n", "\n" + LINE1 + "\n"),
        ("# only a comment", "# only a comment\n" + LINE1 + "\n"),
        (BASE, BASE + LINE1 + "\n"),
        (BASE.rstrip("\n"), BASE + LINE1 + "\n"),
        # the same filesystem elsewhere, the same mount point for another filesystem: both go
        (BASE + f"UUID={U1} /old xfs defaults 0 0\n", BASE + LINE1 + "\n"),
        (BASE + f"UUID={U1.upper()} /old xfs defaults 0 0\n", BASE + LINE1 + "\n"),
        (BASE + f'UUID="{U1}" /old xfs defaults 0 0\n', BASE + LINE1 + "\n"),
        (BASE + f"UUID='{U1}' /old xfs defaults 0 0\n", BASE + LINE1 + "\n"),
        (BASE + f"/dev/disk/by-uuid/{U1} /old xfs defaults 0 0\n", BASE + LINE1 + "\n"),
        (BASE + f"UUID={U2} /data ext4 defaults 0 2\n", BASE + LINE1 + "\n"),
        (BASE + "/dev/md0 /data/ ext4 defaults 0 2\n", BASE + LINE1 + "\n"),
        (BASE + "/dev/md0 //data ext4 defaults 0 2\n", BASE + LINE1 + "\n"),
        (f"UUID={U2} /data ext4 ro 0 2\n" + BASE + f"UUID={U1} /x xfs ro 0 0", BASE + LINE1 + "\n"),
        # a different line for the same pair is replaced (options, tabs, type)
        (BASE + f"UUID={U1}\t/data\txfs\t{OPTS}\t0\t2\n", BASE + LINE1 + "\n"),
        (BASE + f"UUID={U1} /data ext4 {OPTS} 0 2\n", BASE + LINE1 + "\n"),
        (BASE + LINE1 + " \n", BASE + LINE1 + "\n"),
        # the exact line twice: one is left
        (BASE + LINE1 + "\n" + LINE1 + "\n", BASE + LINE1 + "\n"),
        # the exact line first and something else matching later: rewritten at the end
        (LINE1 + "\n" + BASE + "/dev/md0 /data ext4 ro 0 0\n", BASE + LINE1 + "\n"),
        # lines that only look alike stay
        (BASE + f"UUID={U2} /data2 xfs ro 0 0\n", BASE + f"UUID={U2} /data2 xfs ro 0 0\n" + LINE1 + "\n"),
        (BASE + f"LABEL={U1} /lbl xfs ro 0 0\n", BASE + f"LABEL={U1} /lbl xfs ro 0 0\n" + LINE1 + "\n"),
        (BASE + f"#UUID={U1} /data xfs ro 0 0\n", BASE + f"#UUID={U1} /data xfs ro 0 0\n" + LINE1 + "\n"),
        (BASE + "/dev/md0 /data/sub ext4 ro 0 0\n", BASE + "/dev/md0 /data/sub ext4 ro 0 0\n" + LINE1 + "\n"),
        (BASE + "/dev/md0 /dat ext4 ro 0 0\n", BASE + "/dev/md0 /dat ext4 ro 0 0\n" + LINE1 + "\n"),
    ],
)
def test_set_entry(text, expected):
    assert fstab.set_entry(text, U1, "/data", "xfs") == expected
    assert fstab.set_entry(expected, U1, "/data", "xfs") == expected  # idempotent


@pytest.mark.parametrize(
    "text",
    [BASE + LINE1 + "\n", LINE1 + "\n" + BASE, LINE1, BASE + LINE1, BASE + LINE1 + "\r\n" + "# tail\n"],
)
def test_set_entry_returns_the_text_itself_when_the_line_is_there(text):
    assert fstab.set_entry(text, U1, "/data", "xfs") is text


def test_set_entry_keeps_every_other_line_byte_for_byte():
    text = BASE + f"UUID={U1} /old xfs ro 0 0\n" + "# between\n" + "/dev/md0 /data ext4 ro 0 0\n" + "# tail"
    result = fstab.set_entry(text, U1, "/data", "xfs")
    kept = [line for line in text.splitlines(keepends=True) if "/old" not in line and "/dev/md0" not in line]
    kept[-1] += "\n"
    assert result == "".join(kept) + LINE1 + "\n"


def test_set_entry_escapes_and_matches_an_escaped_mount_point():
    line = f"UUID={U1} /my\\040data xfs {OPTS} 0 2"
    assert fstab.set_entry(BASE, U1, "/my data", "xfs") == BASE + line + "\n"
    old = BASE + f"UUID={U2} /my\\040data ext4 ro 0 0\n"
    assert fstab.set_entry(old, U1, "/my data", "xfs") == BASE + line + "\n"
    assert fstab.parse(fstab.set_entry(old, U1, "/my data", "xfs"))[-1].file == "/my data"


def test_set_entry_passes_the_device_timeout_on():
    result = fstab.set_entry(BASE, U1, "/data", "xfs", device_timeout=5)
    assert result.endswith(" defaults,nofail,x-systemd.device-timeout=5s 0 2\n")
    assert fstab.set_entry(result, U1, "/data", "xfs") == BASE + LINE1 + "\n"


def test_set_entry_validates_before_looking_at_the_text():
    with pytest.raises(UsageError):
        fstab.set_entry("broken\n", "not-a-uuid", "/data", "xfs")


def test_set_entry_refuses_an_fstab_libmount_cannot_read():
    with pytest.raises(ConflictError, match="fstab line 2 has no mount point"):
        fstab.set_entry("# c\nbroken\n", U1, "/data", "xfs")


def test_set_entry_result_parses_back():
    result = fstab.set_entry(BASE, U1, "/data", "xfs")
    last = fstab.parse(result)[-1]
    assert (last.spec, last.file, last.vfstype, last.mntops, last.freq, last.passno) == (
        f"UUID={U1}", "/data", "xfs", OPTS, 0, 2)


# --- remove_entries -----------------------------------------------------------------------------

@pytest.mark.parametrize(
    "text, kwargs, expected",
    [
        ("", {"uuid": U1}, ""),
        (BASE, {"uuid": U1}, BASE),
        (BASE, {"mount_point": "/data"}, BASE),
        (BASE + LINE1 + "\n", {"uuid": U1}, BASE),
        (BASE + LINE1 + "\n", {"uuid": U1.upper()}, BASE),
        (BASE + LINE1 + "\n", {"mount_point": "/data"}, BASE),
        (BASE + LINE1 + "\n", {"mount_point": "/data/"}, BASE),
        (BASE + LINE1 + "\n", {"uuid": U1, "mount_point": "/data"}, BASE),
        (BASE + LINE1 + "\n", {"uuid": U2}, BASE + LINE1 + "\n"),
        (BASE + LINE1 + "\n", {"mount_point": "/dat"}, BASE + LINE1 + "\n"),
        (BASE + LINE1, {"uuid": U1}, BASE),
        (LINE1 + "\n" + BASE, {"uuid": U1}, BASE),
        (BASE + LINE1 + "\n# tail", {"uuid": U1}, BASE + "# tail"),
        (BASE + LINE1 + "\n" + LINE1 + "\n", {"uuid": U1}, BASE),
        # by filesystem and by mount point, each removes its own lines
        (BASE + f"UUID={U1} /a xfs ro 0 0\n/dev/md0 /data ext4 ro 0 0\n", {"uuid": U1, "mount_point": "/data"}, BASE),
        (BASE + f"UUID={U1} /a xfs ro 0 0\n/dev/md0 /data ext4 ro 0 0\n", {"uuid": U1},
         BASE + "/dev/md0 /data ext4 ro 0 0\n"),
        (BASE + f"UUID={U1} /a xfs ro 0 0\n/dev/md0 /data ext4 ro 0 0\n", {"mount_point": "/data"},
         BASE + f"UUID={U1} /a xfs ro 0 0\n"),
        (BASE + f'UUID="{U1}" /a xfs ro 0 0\n', {"uuid": U1}, BASE),
        (BASE + f"/dev/disk/by-uuid/{U1} /a xfs ro 0 0\n", {"uuid": U1}, BASE),
        (BASE + "/dev/md0 /my\\040data ext4 ro 0 0\n", {"mount_point": "/my data"}, BASE),
        (BASE + f"# UUID={U1} /data xfs ro 0 0\n", {"uuid": U1, "mount_point": "/data"},
         BASE + f"# UUID={U1} /data xfs ro 0 0\n"),
    ],
)
def test_remove_entries(text, kwargs, expected):
    result = fstab.remove_entries(text, **kwargs)
    assert result == expected
    assert fstab.remove_entries(result, **kwargs) == result  # idempotent
    if result == text:
        assert result is text


def test_remove_entries_needs_something_to_match():
    with pytest.raises(ValueError):
        fstab.remove_entries(BASE)


@pytest.mark.parametrize("kwargs, match", [({"uuid": "x"}, "invalid filesystem UUID"),
                                            ({"mount_point": "data"}, "invalid mount point")])
def test_remove_entries_checks_its_arguments(kwargs, match):
    with pytest.raises(UsageError, match=match):
        fstab.remove_entries(BASE, **kwargs)


def test_set_then_remove_gives_the_original_back():
    for text in (BASE, BASE.rstrip("\n") + "\n", "", "# c\n"):
        assert fstab.remove_entries(fstab.set_entry(text, U1, "/data", "xfs"), uuid=U1) == text


def test_check_uuid_lower_cases():
    assert fstab.check_uuid(U1.upper()) == U1
    assert re.fullmatch(r"[0-9a-f-]{36}", fstab.check_uuid(U2))

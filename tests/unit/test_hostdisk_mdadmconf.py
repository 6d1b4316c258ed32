"""mdadm.conf ARRAY lines: build, set and remove as mdadm reads the file (pure)."""

import pytest

from amslib.core.errors import UsageError
from amslib.hostdisk import mdadmconf

UUID = "0a1b2c3d:4e5f6a7b:8c9d0e1f:2a3b4c5d"
DASHED = "0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d"
OTHER = "11111111:22222222:33333333:44444444"
DEV = "/dev/md/ams-vg12"
NEW = f"ARRAY {DEV} metadata=1.2 UUID={UUID} name=ams-vg12"

BASE = (
    "# mdadm.conf\n"
    "#\n"
    "HOMEHOST <system>\n"
    "MAILADDR root\n"
    "\n"
    f"ARRAY /dev/md/other metadata=1.2 UUID={OTHER} name=host:other\n"
    "DEVICE partitions\t containers\n"
    "# ARRAY /dev/md/ams-vg12 UUID=" + UUID + " (commented out)\n"
)


def test_conf_paths_debian_first():
    assert mdadmconf.CONF_PATHS == ("/etc/mdadm/mdadm.conf", "/etc/mdadm.conf")


# --- array_line ---------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "args, expected",
    [
        ((DEV, UUID, "ams-vg12"), NEW),
        ((DEV, UUID), f"ARRAY {DEV} metadata=1.2 UUID={UUID}"),
        ((DEV, UUID.upper(), "ams-vg12"), NEW),
        ((DEV, DASHED, "ams-vg12"), NEW),
        ((DEV, DASHED.upper(), "ams-vg12"), NEW),
        (("/dev/md0", UUID, "host:md0"), f"ARRAY /dev/md0 metadata=1.2 UUID={UUID} name=host:md0"),
        ((DEV, UUID, "any:ams-vg12"), f"ARRAY {DEV} metadata=1.2 UUID={UUID} name=any:ams-vg12"),
    ],
)
def test_array_line(args, expected):
    assert mdadmconf.array_line(*args) == expected


@pytest.mark.parametrize(
    "uuid",
    ["", "0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d", UUID + ":00", UUID[:-1], "g" + UUID[1:], UUID + "\n", " " + UUID,
     "0a1b2c3d.4e5f6a7b.8c9d0e1f.2a3b4c5d", "0a1b2c3d-4e5f6a7b-8c9d0e1f-2a3b4c5d", None],
)
def test_array_line_refuses_a_bad_uuid(uuid):
    with pytest.raises(UsageError, match="invalid md UUID") as failure:
        mdadmconf.array_line(DEV, uuid)
    assert "\n" not in str(failure.value)


@pytest.mark.parametrize(
    "device",
    ["", "ams-vg12", "md/ams-vg12", "/dev/", "/dev/md/", "/dev/md//x", "/dev/md/a b", "/dev/md/a;b", "/dev/md/$(id)",
     "/dev/md/../sda", "/dev/md/.", "/dev/md/x\n", "/etc/passwd", "/dev/md/a'b", None],
)
def test_array_line_refuses_a_bad_device(device):
    with pytest.raises(UsageError, match="invalid md device"):
        mdadmconf.array_line(device, UUID)


@pytest.mark.parametrize("name", ["", "a b", "a\tb", "a\n", "a#b", "a'b", 'a"b', "a=b", "a/b"])
def test_array_line_refuses_a_bad_name(name):
    with pytest.raises(UsageError, match="invalid md array name"):
        mdadmconf.array_line(DEV, UUID, name)


@pytest.mark.parametrize(
    "text, digits",
    [
        (UUID, "0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d"),
        (DASHED.upper(), "0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d"),
        ("0a1b2c3d.4e5f6a7b.8c9d0e1f.2a3b4c5d", "0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d"),
        ("0a1b 2c3d4e5f6a7b8c9d0e1f2a3b4c5d", "0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d"),
        ("0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d", "0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d"),
        (UUID + "0", None),
        (UUID[:-1], None),
        ("0a1b2c3d_4e5f6a7b8c9d0e1f2a3b4c5d", None),
        ("", None),
        (None, None),
    ],
)
def test_uuid_digits_reads_what_mdadm_reads(text, digits):
    assert mdadmconf.uuid_digits(text) == digits


# --- set_array ----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "text, expected",
    [
        ("", NEW + "\n"),
        ("\n", "\n" + NEW + "\n"),
        ("MAILADDR root", "MAILADDR root\n" + NEW + "\n"),
        (BASE, BASE + NEW + "\n"),
        # same UUID, in every form mdadm reads, any key case: replaced in place
        (f"A 1\nARRAY /dev/md/old UUID={UUID}\nB 2\n", f"A 1\n{NEW}\nB 2\n"),
        (f"A 1\nARRAY /dev/md/old uuid={DASHED.upper()}\nB 2\n", f"A 1\n{NEW}\nB 2\n"),
        (f"A 1\nARRAY /dev/md/old Uuid=0a1b2c3d.4e5f6a7b.8c9d0e1f.2a3b4c5d\n", f"A 1\n{NEW}\n"),
        (f"A 1\narray /dev/md127 metadata=1.2 UUID={UUID} name=x:y", f"A 1\n{NEW}\n"),
        (f"ARR /dev/md127 UUID={UUID}\n", f"{NEW}\n"),
        (f"Arra /dev/md127 UUID={UUID}\n", f"{NEW}\n"),
        (f"ARRAY\t/dev/md127\tUUID={UUID}\n", f"{NEW}\n"),
        (f"ARRAY \"/dev/md127\" 'UUID={UUID}'\n", f"{NEW}\n"),
        (f"ARRAY <ignore> UUID={UUID}\n", f"{NEW}\n"),
        # same device (a bare name is in /dev/md/): replaced
        (f"ARRAY {DEV} UUID={OTHER}\n", f"{NEW}\n"),
        (f"ARRAY ams-vg12 UUID={OTHER}\n", f"{NEW}\n"),
        (f"ARRAY UUID={OTHER} {DEV}\n", f"{NEW}\n"),
        # continuation lines (space or tab first) belong to the ARRAY line before them
        (f"ARRAY {DEV}\n   metadata=1.2\n\tUUID={OTHER}\nMAILADDR root\n", f"{NEW}\nMAILADDR root\n"),
        (f"ARRAY /dev/md127\n  UUID={UUID}\nMAILADDR root\n", f"{NEW}\nMAILADDR root\n"),
        # ... even across blank and comment lines, which stay
        (f"ARRAY /dev/md127\n\n# note\n  UUID={UUID}\nMAILADDR root\n", f"{NEW}\n\n# note\nMAILADDR root\n"),
        # two matches: the first becomes the new line, the second goes
        (f"ARRAY {DEV} UUID={OTHER}\nMAILADDR root\nARRAY /dev/md9 UUID={UUID}\n  name=z\n",
         f"{NEW}\nMAILADDR root\n"),
        (f"{NEW}\n{NEW}\n", f"{NEW}\n"),
        (f"{NEW}\n  spares=1\n", f"{NEW}\n"),
        # look-alikes stay
        (f"ARRAY /dev/md/ams-vg1 UUID={OTHER}\n", f"ARRAY /dev/md/ams-vg1 UUID={OTHER}\n{NEW}\n"),
        (f"ARRAY /dev/md/ams-vg123 UUID={OTHER}\n", f"ARRAY /dev/md/ams-vg123 UUID={OTHER}\n{NEW}\n"),
        (f"# ARRAY {DEV} UUID={UUID}\n", f"# ARRAY {DEV} UUID={UUID}\n{NEW}\n"),
        (f"ARRAY /dev/md9 name={DEV}\n", f"ARRAY /dev/md9 name={DEV}\n{NEW}\n"),
        (f"ARRAY /dev/md9 #UUID={UUID}\n", f"ARRAY /dev/md9 #UUID={UUID}\n{NEW}\n"),
        (f"AR {DEV} UUID={UUID}\n", f"AR {DEV} UUID={UUID}\n{NEW}\n"),  # keywords need 3 letters
        (f"ARRAYS {DEV} UUID={UUID}\n", f"ARRAYS {DEV} UUID={UUID}\n{NEW}\n"),
        (f"DEVICE {DEV} UUID={UUID}\n", f"DEVICE {DEV} UUID={UUID}\n{NEW}\n"),
        (f"MAILADDR root\n  {DEV} UUID={UUID}\n", f"MAILADDR root\n  {DEV} UUID={UUID}\n{NEW}\n"),
    ],
)
def test_set_array(text, expected):
    assert mdadmconf.set_array(text, DEV, UUID, "ams-vg12") == expected
    assert mdadmconf.set_array(expected, DEV, UUID, "ams-vg12") == expected  # idempotent


@pytest.mark.parametrize("text", [f"{NEW}\n", f"{NEW}", BASE + NEW + "\n", f"{NEW}\n" + BASE, BASE + NEW + "\n# x"])
def test_set_array_returns_the_text_itself_when_the_line_is_there(text):
    assert mdadmconf.set_array(text, DEV, UUID, "ams-vg12") is text
    assert mdadmconf.set_array(text, DEV, DASHED, "ams-vg12") is text


def test_set_array_keeps_every_other_line_byte_for_byte():
    text = BASE + f"ARRAY {DEV} UUID={OTHER}\n  name=old\n# after\r\n\tweird  spacing  line\n"
    # "\tweird ..." continues the ARRAY line before it, so it goes with it
    assert mdadmconf.set_array(text, DEV, UUID, "ams-vg12") == BASE + NEW + "\n# after\r\n"
    assert mdadmconf.set_array(BASE, DEV, UUID, "ams-vg12").startswith(BASE)


def test_set_array_without_a_name():
    line = f"ARRAY {DEV} metadata=1.2 UUID={UUID}"
    assert mdadmconf.set_array(BASE, DEV, UUID) == BASE + line + "\n"
    assert mdadmconf.set_array(BASE + NEW + "\n", DEV, UUID) == BASE + line + "\n"


def test_set_array_validates_its_arguments():
    with pytest.raises(UsageError):
        mdadmconf.set_array(BASE, "ams-vg12", UUID)
    with pytest.raises(UsageError):
        mdadmconf.set_array(BASE, DEV, "x")


# --- remove_array -------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "text, kwargs, expected",
    [
        ("", {"uuid": UUID}, ""),
        (BASE, {"uuid": UUID}, BASE),
        (BASE, {"device": DEV}, BASE),
        (BASE + NEW + "\n", {"uuid": UUID}, BASE),
        (BASE + NEW + "\n", {"uuid": DASHED}, BASE),
        (BASE + NEW + "\n", {"device": DEV}, BASE),
        (BASE + NEW + "\n", {"uuid": UUID, "device": DEV}, BASE),
        (BASE + NEW, {"uuid": UUID}, BASE),
        (NEW + "\n" + BASE, {"uuid": UUID}, BASE),
        (BASE + NEW + "\n  spares=0\n# tail", {"uuid": UUID}, BASE + "# tail"),
        (BASE + f"ARRAY /dev/md127\n\n# c\n UUID={UUID}\n", {"uuid": UUID}, BASE + "\n# c\n"),
        (BASE + f"ARRAY ams-vg12 UUID={OTHER}\n", {"device": DEV}, BASE),
        (BASE + f"ARRAY ams-vg12 UUID={OTHER}\n", {"uuid": UUID}, BASE + f"ARRAY ams-vg12 UUID={OTHER}\n"),
        (BASE + NEW + "\n" + NEW + "\n", {"uuid": UUID}, BASE),
        (BASE, {"uuid": OTHER}, BASE.replace(f"ARRAY /dev/md/other metadata=1.2 UUID={OTHER} name=host:other\n", "")),
        (BASE + NEW + "\n", {"device": "/dev/md/other"}, BASE.replace(
            f"ARRAY /dev/md/other metadata=1.2 UUID={OTHER} name=host:other\n", "") + NEW + "\n"),
    ],
)
def test_remove_array(text, kwargs, expected):
    result = mdadmconf.remove_array(text, **kwargs)
    assert result == expected
    assert mdadmconf.remove_array(result, **kwargs) == result  # idempotent
    if result == text:
        assert result is text


def test_remove_array_needs_something_to_match():
    with pytest.raises(ValueError):
        mdadmconf.remove_array(BASE)


@pytest.mark.parametrize("kwargs, match", [({"uuid": "x"}, "invalid md UUID"), ({"device": "md0"}, "invalid md device")])
def test_remove_array_checks_its_arguments(kwargs, match):
    with pytest.raises(UsageError, match=match):
        mdadmconf.remove_array(BASE, **kwargs)


def test_set_then_remove_gives_the_original_back():
    for text in (BASE, "", "MAILADDR root\n"):
        assert mdadmconf.remove_array(mdadmconf.set_array(text, DEV, UUID, "ams-vg12"), uuid=UUID) == text

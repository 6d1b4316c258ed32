"""mdadm arrays of EBS volumes: parameter checks, argv lists and output parsing (pure).

Arrays use 1.2 metadata, a name ``ams-vg<group id>`` and ``--homehost=any``: the superblock
then holds ``any:<name>``, so the array keeps its name (``/dev/md/<name>``, not ``…_0``) when
its volumes, or volumes cloned from their snapshots, are assembled on another instance.
"""

import re

from ..core.errors import UsageError
from .devices import check_device_arg

RAID_LEVELS = (0, 1, 5, 10)
MAX_MEMBERS = 24
MIN_MEMBERS = {0: 2, 1: 2, 5: 3, 10: 4}
CHUNK_MIN_KIB = 4
CHUNK_MAX_KIB = 4096
NAME_PREFIX = "ams-vg"
# the v1 superblock keeps 32 bytes of "homehost:name"; "any:" takes 4 of them
MAX_NAME = 27

_LEVEL_RE = re.compile(r"^(?:raid)?([0-9]+)$")
_CHUNK_RE = re.compile(r"^([0-9]+)k?$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_EXPORT_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_COLON_UUID_RE = re.compile(r"^[0-9a-f]{8}(?::[0-9a-f]{8}){3}$")
_DASHED_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_GROUP_NAME_RE = re.compile(r"^(?:[^:]*:)?" + NAME_PREFIX + r"([1-9][0-9]*)$")


def check_level(level):
    """``level`` (None, 0, 1, 5, 10, "raid5", "none") as None or an int of RAID_LEVELS."""
    if level is None:
        return None
    if isinstance(level, str):
        text = level.strip().lower()
        if text in ("", "none"):
            return None
        match = _LEVEL_RE.fullmatch(text)
        value = int(match.group(1)) if match else None
    elif isinstance(level, int) and not isinstance(level, bool):
        value = level
    else:
        value = None
    if value not in RAID_LEVELS:
        raise UsageError(f"invalid RAID level {level!r}: expected 0, 1, 5 or 10")
    return value


def check_raid(level, count):
    """The effective RAID level of ``count`` volumes: None for a single volume, else the level."""
    level = check_level(level)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_MEMBERS:
        raise UsageError(f"invalid number of volumes {count!r}: expected 1 to {MAX_MEMBERS}")
    if count == 1:
        if level not in (None, 0):
            raise UsageError(f"RAID {level} needs at least {MIN_MEMBERS[level]} volumes, not 1")
        return None
    if level is None:
        raise UsageError(f"{count} volumes need a RAID level (0, 1, 5 or 10)")
    if count < MIN_MEMBERS[level]:
        raise UsageError(f"RAID {level} needs at least {MIN_MEMBERS[level]} volumes, not {count}")
    if level == 10 and count % 2:
        raise UsageError(f"RAID 10 needs an even number of volumes, not {count}")
    return level


def check_chunk(kib):
    """The mdadm chunk size in KiB: a power of two from 4 to 4096 ("256k" is accepted too)."""
    value = None
    if isinstance(kib, str):
        match = _CHUNK_RE.fullmatch(kib.strip().lower())
        value = int(match.group(1)) if match else None
    elif isinstance(kib, int) and not isinstance(kib, bool):
        value = kib
    if value is None or not CHUNK_MIN_KIB <= value <= CHUNK_MAX_KIB or value & (value - 1):
        raise UsageError(
            f"invalid chunk size {kib!r}: expected a power of two from {CHUNK_MIN_KIB} to {CHUNK_MAX_KIB} (KiB)"
        )
    return value


def data_disks(level, count):
    """How many members' worth of data a stripe holds (the filesystem's stripe width)."""
    level = check_raid(level, count)
    if level is None or level == 1:
        return 1
    if level == 0:
        return count
    if level == 5:
        return count - 1
    return count // 2


def check_group_id(group_id):
    if isinstance(group_id, bool) or not isinstance(group_id, int) or group_id < 1:
        raise UsageError(f"invalid volume group id {group_id!r}: expected a positive whole number")
    return group_id


def array_name(group_id):
    return check_array_name(f"{NAME_PREFIX}{check_group_id(group_id)}")


def check_array_name(name):
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or len(name) > MAX_NAME:
        raise UsageError(
            f"invalid array name {name!r}: expected at most {MAX_NAME} letters, digits, '.', '_' or '-'"
        )
    return name


def array_device(name):
    return f"/dev/md/{check_array_name(name)}"


def group_id_of(md_name):
    """The volume group id in an array name (``ams-vg12`` or ``any:ams-vg12``), or None."""
    match = _GROUP_NAME_RE.fullmatch((md_name or "").strip())
    return int(match.group(1)) if match else None


def _check_members(members):
    if isinstance(members, str):
        raise UsageError("members must be a list of devices, not one string")
    members = [check_device_arg(member, "member device") for member in members]
    if not members:
        raise UsageError("an array needs member devices")
    if len(set(members)) != len(members):
        raise UsageError(f"a member device is listed twice: {members!r}")
    return members


def create_argv(device, name, level, chunk_kib, members, assume_clean=True):
    """``mdadm --create`` of a new array (``--run``: no questions; the caller checks members are blank).

    ``chunk_kib`` is ignored for RAID 1 (mirrors have no chunk) and left to mdadm's default when
    None.  ``assume_clean`` skips the initial resync: right for new (all-zero) EBS volumes only.
    """
    members = _check_members(members)
    level = check_raid(level, len(members))
    if level is None:
        raise UsageError("a single volume is not made into an array")
    argv = [
        "mdadm", "--create", check_device_arg(device, "array device"), "--run", "--metadata=1.2",
        f"--level={level}", f"--raid-devices={len(members)}",
    ]
    if level != 1 and chunk_kib is not None:
        argv.append(f"--chunk={check_chunk(chunk_kib)}")
    argv += ["--homehost=any", f"--name={check_array_name(name)}"]
    if assume_clean:
        argv.append("--assume-clean")
    return argv + members


def assemble_argv(device, uuid, members):
    """``mdadm --assemble`` of the array ``uuid`` from exactly ``members`` (started even if degraded).

    ``uuid`` is normalised when it is one (:func:`normalize_uuid`); other text is passed on.
    """
    members = _check_members(members)
    try:
        uuid = normalize_uuid(uuid)
    except UsageError:
        uuid = check_device_arg(uuid, "array UUID")  # a dry run's placeholder; mdadm refuses a bad one
    return ["mdadm", "--assemble", check_device_arg(device, "array device"), f"--uuid={uuid}", "--run", *members]


def renew_identity_argvs(device, members):
    """The commands that assemble a clone's array under a new UUID and its own name (the name in
    the superblock is what udev names the array after at boot: a clone keeping its original's
    would come up as ``ams-vg1_0``).  mdadm updates one thing per assembly, hence three steps."""
    members = _check_members(members)
    device = check_device_arg(device, "array device")
    name = check_array_name(device.rsplit("/", 1)[-1])
    return [
        ["mdadm", "--assemble", device, "--run", "--update=uuid", *members],
        stop_argv(device),
        ["mdadm", "--assemble", device, "--run", "--update=name", "--homehost=any", f"--name={name}", *members],
    ]


def stop_argv(device):
    return ["mdadm", "--stop", check_device_arg(device, "array device")]


def examine_argv(member):
    """The member's superblock as KEY=VALUE lines (exit 1 when it has none)."""
    return ["mdadm", "--examine", "--export", check_device_arg(member, "member device")]


def detail_argv(device):
    """The running array as KEY=VALUE lines (MD_LEVEL, MD_DEVICES, MD_UUID, MD_NAME …)."""
    return ["mdadm", "--detail", "--export", check_device_arg(device, "array device")]


def _unescape(value):
    """Undo the backslash escapes that mdadm and blkid put before shell-special characters."""
    out = []
    chars = iter(value)
    for char in chars:
        if char == "\\":
            char = next(chars, "\\")
        out.append(char)
    return "".join(out)


def parse_export(text):
    """{KEY: value} of ``KEY=VALUE`` lines (mdadm ``--export``, ``blkid -o export``); others are skipped."""
    values = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and _EXPORT_KEY_RE.fullmatch(key):
            values[key] = _unescape(value)
    return values


def md_name(value):
    """The array name without the homehost mdadm puts before it: ``any:ams-vg12`` -> ``ams-vg12``."""
    return (value or "").rpartition(":")[2]


def normalize_uuid(text):
    """An array UUID in mdadm's form ``xxxxxxxx:xxxxxxxx:xxxxxxxx:xxxxxxxx`` (lower case).

    Accepts that form and the dashed 8-4-4-4-12 form (blkid, lsblk).
    """
    value = text.strip().lower() if isinstance(text, str) else ""
    if _DASHED_UUID_RE.fullmatch(value):
        digits = value.replace("-", "")
        return ":".join(digits[index:index + 8] for index in range(0, 32, 8))
    if _COLON_UUID_RE.fullmatch(value):
        return value
    raise UsageError(
        f"invalid array UUID {text!r}: expected xxxxxxxx:xxxxxxxx:xxxxxxxx:xxxxxxxx or the dashed 8-4-4-4-12 form"
    )

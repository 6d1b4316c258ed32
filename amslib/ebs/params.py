"""Checks of EBS volume parameters and tags before any EC2 call (pure: no I/O).

The limits are EC2's, so that ams refuses what CreateVolume would refuse (moto accepts nearly
anything).  Sizes are GiB, throughput MiB/s.

- size: gp2/gp3 1-16384, io1 4-16384, io2 4-65536, st1/sc1 125-16384, standard 1-1024
- IOPS: only gp3 (3000-16000, default 3000), io1 (100-64000, required) and io2 (100-256000,
  required); at most 500 (gp3), 50 (io1) or 1000 (io2) per GiB, except that gp3 always
  allows its 3000 baseline
- throughput: only gp3, 125-1000, at most 0.25 MiB/s per IOPS (the IOPS default counts)
- a KMS key needs encryption; it is a key id, a key ARN, an alias name or an alias ARN

Each ``check_*`` returns the normalised value or raises UsageError with one line that quotes
the rejected input with ``repr``.
"""

import dataclasses
import re

from ..core.errors import UsageError

VOLUME_TYPES = ("gp3", "gp2", "io1", "io2", "st1", "sc1", "standard")
DEFAULT_TYPE = "gp3"

# volume type -> (min GiB, max GiB)
SIZE_LIMITS = {
    "gp3": (1, 16384),
    "gp2": (1, 16384),
    "io1": (4, 16384),
    "io2": (4, 65536),
    "st1": (125, 16384),
    "sc1": (125, 16384),
    "standard": (1, 1024),
}

# volume type -> (min IOPS, max IOPS, max IOPS per GiB); types absent here take no IOPS
IOPS_LIMITS = {
    "gp3": (3000, 16000, 500),
    "io1": (100, 64000, 50),
    "io2": (100, 256000, 1000),
}
IOPS_REQUIRED = ("io1", "io2")
GP3_BASELINE_IOPS = 3000

THROUGHPUT_TYPES = ("gp3",)
THROUGHPUT_LIMITS = (125, 1000)
THROUGHPUT_PER_IOPS = 0.25  # MiB/s per provisioned IOPS: throughput * 4 <= IOPS

MIN_COUNT = 1
MAX_COUNT = 24

# EC2 allows 50 tags per resource.  ams adds at most 17 of its own (a snapshot copy: the 7 of
# group_tags with Name and ams:member-count, ams:snapshot-group-id, ams:expires, ams:retention,
# ams:source-instance-id, ams:source-mount-point, ams:array-name, ams:md-uuid, ams:fs-uuid,
# ams:copied-from, ams:client-token; a volume at most 13), so users keep the other 33.
MAX_AMS_TAGS = 17
MAX_USER_TAGS = 50 - MAX_AMS_TAGS
MAX_TAG_KEY = 128
MAX_TAG_VALUE = 256
RESERVED_TAG_PREFIXES = ("aws:", "ams:")

_HEX = "[0-9a-f]"
_KEY_ID = rf"(?:{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}|mrk-{_HEX}{{32}})"
_ALIAS = r"alias/[A-Za-z0-9/_-]{1,250}"
KMS_KEY_RE = re.compile(
    rf"(?:{_KEY_ID}|{_ALIAS}|arn:aws(?:-[a-z]+)*:kms:[a-z]{{2}}(?:-[a-z]+)+-\d+:\d{{12}}:"
    rf"(?:key/{_KEY_ID}|{_ALIAS}))"
)


@dataclasses.dataclass(frozen=True)
class VolumeSpec:
    """One checked volume shape (what every member of a group gets)."""

    volume_type: str
    size_gib: int
    iops: "int | None" = None
    throughput: "int | None" = None
    encrypted: bool = False
    kms_key_id: "str | None" = None

    def create_params(self):
        """The CreateVolume arguments this spec sets (unset ones are left to EC2's defaults)."""
        params = {"VolumeType": self.volume_type, "Size": self.size_gib}
        if self.iops is not None:
            params["Iops"] = self.iops
        if self.throughput is not None:
            params["Throughput"] = self.throughput
        if self.encrypted:
            params["Encrypted"] = True
        if self.kms_key_id is not None:
            params["KmsKeyId"] = self.kms_key_id
        return params


def whole_number(value, what):
    """``value`` (an int or a string of digits) as an int; UsageError otherwise."""
    if isinstance(value, bool):
        raise UsageError(f"{what} must be a whole number, not {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?[0-9]+\s*", value):
        return int(value)
    raise UsageError(f"{what} must be a whole number, not {value!r}")


def check_volume_type(volume_type):
    value = volume_type.strip().lower() if isinstance(volume_type, str) else volume_type
    if value not in VOLUME_TYPES:
        raise UsageError(f"unknown volume type {volume_type!r}: expected one of {', '.join(VOLUME_TYPES)}")
    return value


def check_size(volume_type, size_gib):
    size = whole_number(size_gib, "volume size")
    low, high = SIZE_LIMITS[volume_type]
    if not low <= size <= high:
        raise UsageError(f"volume size {size_gib!r} GiB is out of range for {volume_type}: {low}-{high} GiB")
    return size


def check_iops(volume_type, size, iops):
    """Checked IOPS (None when not given and not required)."""
    if iops is None:
        if volume_type in IOPS_REQUIRED:
            low, high, _ = IOPS_LIMITS[volume_type]
            raise UsageError(f"{volume_type} volumes need IOPS ({low}-{high})")
        return None
    if volume_type not in IOPS_LIMITS:
        raise UsageError(f"IOPS cannot be set for {volume_type} volumes: only for {', '.join(IOPS_LIMITS)}")
    value = whole_number(iops, "IOPS")
    low, high, per_gib = IOPS_LIMITS[volume_type]
    if not low <= value <= high:
        raise UsageError(f"IOPS {iops!r} is out of range for {volume_type}: {low}-{high}")
    most = per_gib * size
    if volume_type == "gp3":
        most = max(most, GP3_BASELINE_IOPS)
    if value > most:
        raise UsageError(
            f"IOPS {iops!r} is too many for a {size} GiB {volume_type} volume: "
            f"at most {per_gib} per GiB ({most})"
        )
    return value


def check_throughput(volume_type, iops, throughput):
    """Checked throughput (None when not given); ``iops`` is the checked IOPS or None."""
    if throughput is None:
        return None
    if volume_type not in THROUGHPUT_TYPES:
        raise UsageError(f"throughput cannot be set for {volume_type} volumes: only for gp3")
    value = whole_number(throughput, "throughput")
    low, high = THROUGHPUT_LIMITS
    if not low <= value <= high:
        raise UsageError(f"throughput {throughput!r} MiB/s is out of range for {volume_type}: {low}-{high} MiB/s")
    effective = GP3_BASELINE_IOPS if iops is None else iops
    if value > effective * THROUGHPUT_PER_IOPS:
        raise UsageError(
            f"throughput {throughput!r} MiB/s needs at least {int(value / THROUGHPUT_PER_IOPS)} IOPS "
            f"(0.25 MiB/s per IOPS), not {effective}"
        )
    return value


def check_kms_key(kms_key_id, encrypted):
    if kms_key_id is None:
        return None
    if not encrypted:
        raise UsageError(f"KMS key {kms_key_id!r} given without encryption: a KMS key needs an encrypted volume")
    if not isinstance(kms_key_id, str) or not KMS_KEY_RE.fullmatch(kms_key_id):
        raise UsageError(
            f"invalid KMS key {kms_key_id!r}: expected a key id, a key ARN, alias/NAME or an alias ARN"
        )
    return kms_key_id


def check_volume_spec(volume_type, size_gib, iops=None, throughput=None, encrypted=False, kms_key_id=None):
    """A VolumeSpec EC2 will accept, or UsageError naming the first problem."""
    vtype = check_volume_type(volume_type)
    size = check_size(vtype, size_gib)
    checked_iops = check_iops(vtype, size, iops)
    checked_throughput = check_throughput(vtype, checked_iops, throughput)
    if not isinstance(encrypted, bool):
        raise UsageError(f"encrypted must be true or false, not {encrypted!r}")
    key = check_kms_key(kms_key_id, encrypted)
    return VolumeSpec(vtype, size, checked_iops, checked_throughput, encrypted, key)


def check_count(n):
    """Number of volumes in a group: 1-24."""
    value = whole_number(n, "volume count")
    if not MIN_COUNT <= value <= MAX_COUNT:
        raise UsageError(f"volume count {n!r} is out of range: {MIN_COUNT}-{MAX_COUNT}")
    return value


def _has_control(text):
    return any(ord(char) < 32 or ord(char) == 127 for char in text)


def parse_tags(items):
    """``["KEY=VALUE", ...]`` as an ordered dict of user tags (the value may be empty)."""
    items = [items] if isinstance(items, str) else list(items or ())
    if len(items) > MAX_USER_TAGS:
        raise UsageError(f"too many tags: {len(items)} given, at most {MAX_USER_TAGS}")
    tags = {}
    for item in items:
        if not isinstance(item, str) or "=" not in item:
            raise UsageError(f"invalid tag {item!r}: expected KEY=VALUE")
        key, value = item.split("=", 1)
        if not key:
            raise UsageError(f"invalid tag {item!r}: the key is empty")
        if key.lower().startswith(RESERVED_TAG_PREFIXES):
            raise UsageError(f"invalid tag {item!r}: keys starting with 'aws:' or 'ams:' are reserved")
        if len(key) > MAX_TAG_KEY:
            raise UsageError(f"invalid tag {item!r}: the key is longer than {MAX_TAG_KEY} characters")
        if len(value) > MAX_TAG_VALUE:
            raise UsageError(f"invalid tag {item!r}: the value is longer than {MAX_TAG_VALUE} characters")
        if _has_control(item):
            raise UsageError(f"invalid tag {item!r}: control characters are not allowed")
        if key in tags:
            raise UsageError(f"duplicate tag key {key!r}")
        tags[key] = value
    return tags


def member_name(group_id, member_index):
    return f"ams-vg{group_id}-{member_index}"


def group_tags(group_id, raid_level, member_index, stripe_kb, filesystem, name=None, member_count=None):
    """The ``ams:*`` tags (and Name) of one member volume, so a group can be found from EC2 alone.

    ``raid_level`` None (a single volume) is "none"; ``stripe_kb`` None (not striped) is "none";
    ``member_count`` (when given) lets discovery see that a member is missing."""
    tags = {
        "ams:volume-group-id": str(group_id),
        "ams:raid-level": "none" if raid_level is None else str(raid_level),
        "ams:member-index": str(member_index),
        "ams:stripe-kb": "none" if stripe_kb is None else str(stripe_kb),
        "ams:filesystem": str(filesystem),
        "Name": member_name(group_id, member_index) if name is None else name,
    }
    if member_count is not None:
        tags["ams:member-count"] = str(member_count)
    return tags


def flag_tag(value):
    """A boolean as a tag value: "true" or "false"."""
    return "true" if value else "false"


def identity_tags(array_name=None, md_uuid=None, fs_uuid=None):
    """``ams:array-name``, ``ams:md-uuid``, ``ams:fs-uuid`` for the values that are known."""
    values = {"ams:array-name": array_name, "ams:md-uuid": md_uuid, "ams:fs-uuid": fs_uuid}
    return {key: str(value) for key, value in values.items() if value}

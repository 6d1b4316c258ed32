"""What EC2 refuses in EBS requests that moto accepts: CreateVolume parameters and AttachVolume
device names.  Pure checks; each refusal is a ``RigApiError`` with EC2's error code (the
messages follow EC2's wording where it is known; tests should match on the code).

The limits are the long-standing EBS ones the ams validation (``amslib.ebs.params``) uses too.
AWS raised some of them in 2025 (gp3 to 64 TiB, 80,000 IOPS, 2,000 MiB/s); change
``SIZE_GIB``/``IOPS``/``THROUGHPUT_MIBPS`` together with ams if ams is to allow those.
"""

import re

from tests.rig.faults import RigApiError

VOLUME_TYPES = ("standard", "io1", "io2", "gp2", "sc1", "st1", "gp3")
DEFAULT_TYPE = "gp2"  # CreateVolume without VolumeType

SIZE_GIB = {
    "gp2": (1, 16384), "gp3": (1, 16384), "io1": (4, 16384), "io2": (4, 65536),
    "st1": (125, 16384), "sc1": (125, 16384), "standard": (1, 1024),
}
# (minimum, maximum, maximum IOPS per GiB)
IOPS = {"gp3": (3000, 16000, 500), "io1": (100, 64000, 50), "io2": (100, 256000, 1000)}
IOPS_REQUIRED = ("io1", "io2")
GP3_BASELINE_IOPS = 3000  # gp3 gets it at any size: the per-GiB ratio applies above it
THROUGHPUT_MIBPS = {"gp3": (125, 1000)}
GP3_BASELINE_THROUGHPUT = 125
MAX_THROUGHPUT_PER_IOPS = 0.25

# Device names EC2 accepts for an EBS attachment: /dev/sdf, /dev/xvdf, /dev/xvdba, /dev/sda1,
# and the bare xvdf form of its API documentation.  NVMe names (/dev/nvme1n1), upper case,
# partitions above 15 and other bare names are refused.
DEVICE_NAME = re.compile(
    r"^(/dev/(sd[a-z]([a-z]|[1-9]|1[0-5])?|xvd[a-z][a-z]?|hd[a-z]([1-9]|1[0-5])?)|xvd[a-z][a-z]?)$"
)


def _invalid(message):
    return RigApiError("InvalidParameterValue", message)


def _combination(message):
    return RigApiError("InvalidParameterCombination", message)


def _whole(name, value):
    """``value`` (a query-string text or None) as an int >= 0, else InvalidParameterValue."""
    if value is None:
        return None
    text = str(value).strip()
    if not text.isdigit():
        raise _invalid(f"Value ({value}) for parameter {name} is invalid. "
                       f"Value must be a positive integer.")
    return int(text)


def check_create_volume(volume_type=None, size=None, iops=None, throughput=None,
                        snapshot_id=None, snapshot_size=None):
    """Refuse what EC2's CreateVolume refuses.  Arguments are the request's values (text or
    None); ``snapshot_size`` is the GiB of the snapshot ``snapshot_id`` when one is given.
    Returns the effective (type, size, iops, throughput)."""
    vtype = volume_type if volume_type is not None else DEFAULT_TYPE
    if vtype not in VOLUME_TYPES:
        raise _invalid(f"Value ({vtype}) for parameter volumeType is invalid. "
                       f"Valid values: {', '.join(VOLUME_TYPES)}.")
    size, iops, throughput = (_whole("size", size), _whole("iops", iops),
                              _whole("throughput", throughput))
    if vtype in IOPS_REQUIRED and iops is None:
        raise _combination(f"The parameter iops must be specified for {vtype} volumes.")
    if iops is not None and vtype not in IOPS:
        raise _combination(f"The parameter iops is not supported for {vtype} volumes.")
    if throughput is not None and vtype not in THROUGHPUT_MIBPS:
        raise _combination(f"The parameter throughput is not supported for {vtype} volumes.")
    if size is None:
        if snapshot_size is None:
            raise RigApiError("MissingParameter",
                              "The request must contain the parameter size/snapshot")
        size = int(snapshot_size)
    elif snapshot_size is not None and size < int(snapshot_size):
        raise _invalid(f"Volume of size {size}GB is smaller than snapshot '{snapshot_id}', "
                       f"expect size >= {int(snapshot_size)}GB")
    low, high = SIZE_GIB[vtype]
    if size < low:
        raise _invalid(f"Volume of {size}GiB is too small for volume type {vtype}; "
                       f"minimum is {low}GiB")
    if size > high:
        raise _invalid(f"Volume of {size}GiB is too large for volume type {vtype}; "
                       f"maximum is {high}GiB")
    if vtype in IOPS:
        if iops is None:
            iops = GP3_BASELINE_IOPS
        low, high, per_gib = IOPS[vtype]
        if iops < low:
            raise _invalid(f"Volume iops of {iops} is too low; minimum is {low}.")
        if iops > high:
            raise _invalid(f"Volume iops of {iops} is too high; maximum is {high}.")
        ratio_applies = not (vtype == "gp3" and iops <= GP3_BASELINE_IOPS)
        if ratio_applies and iops > size * per_gib:
            raise _invalid(f"Iops to volume size ratio of {iops / size:.6f} is too high; "
                           f"maximum is {per_gib}")
    if vtype in THROUGHPUT_MIBPS:
        if throughput is None:
            throughput = GP3_BASELINE_THROUGHPUT
        low, high = THROUGHPUT_MIBPS[vtype]
        if throughput < low:
            raise _invalid(f"Volume throughput of {throughput} is too low; minimum is {low}.")
        if throughput > high:
            raise _invalid(f"Volume throughput of {throughput} is too high; maximum is {high}.")
        if throughput > MAX_THROUGHPUT_PER_IOPS * iops:
            raise _invalid(f"Throughput (MiBps) to iops ratio of {throughput / iops:.6f} is too "
                           f"high; maximum is {MAX_THROUGHPUT_PER_IOPS:.6f} MiBps per iops")
    return vtype, size, iops, throughput


def check_device_name(device):
    """Refuse a device name EC2 refuses for AttachVolume (InvalidParameterValue)."""
    if device is None:
        raise RigApiError("MissingParameter", "The request must contain the parameter device")
    if not DEVICE_NAME.match(device):
        raise _invalid(f"Value ({device}) for parameter device is invalid. "
                       f"{device} is not a valid EBS device name.")
    return device


def check_attachment_point(device, used):
    """``used``: the device names the instance has (its block device mapping and root device)."""
    if device in used:
        raise _invalid(f"Attachment point {device} is already in use")


def request_fingerprint(querystring, ignore=("Action", "Version", "ClientToken", "DryRun")):
    """The request's parameters in a comparable form (for ClientToken idempotency)."""
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else (v,))
                        for k, v in querystring.items() if k not in ignore))

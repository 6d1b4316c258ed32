"""Filesystems for volume groups: checks and mkfs/blkid argv lists (pure).

mkfs never gets a force flag, but only mkfs.xfs refuses a device that holds a filesystem:
mke2fs asks about an existing filesystem only when stdin and stdout are terminals, so over
SSH mkfs.ext4 overwrites it silently.  Probe the device first (:func:`signature_probe_argv`).
"""

import re

from ..core.errors import UsageError
from .devices import check_device_arg
from .raid import check_chunk, check_group_id

FILESYSTEMS = ("xfs", "ext4", "ext3")
MAX_LABEL = {"xfs": 12, "ext4": 16, "ext3": 16}
EXT_BLOCK_KIB = 4
PROBE_EXIT_BLANK = 2  # blkid -p: no signature found

_LABEL_RE = re.compile(r"^[A-Za-z0-9._-]+$")


def check_filesystem(name):
    value = name.strip().lower() if isinstance(name, str) else ""
    if value not in FILESYSTEMS:
        raise UsageError(f"unsupported filesystem {name!r}: expected xfs, ext4 or ext3")
    return value


def label_for(group_id):
    """A label of at most 12 characters (the xfs limit): ``ams-vg<id>``, else ``vg<id>``.

    Ids of more than 10 digits keep their last 10 (labels are for people; ams finds
    filesystems by UUID).
    """
    digits = str(check_group_id(group_id))
    for label in (f"ams-vg{digits}", f"vg{digits}"):
        if len(label) <= MAX_LABEL["xfs"]:
            return label
    return f"vg{digits[-10:]}"


def check_label(label, fs):
    fs = check_filesystem(fs)
    if not isinstance(label, str) or not _LABEL_RE.fullmatch(label) or len(label) > MAX_LABEL[fs]:
        raise UsageError(
            f"invalid {fs} label {label!r}: expected 1 to {MAX_LABEL[fs]} letters, digits, '.', '_' or '-'"
        )
    return label


def mkfs_argv(fs, device, *, label, chunk_kib=None, data_disks=1):
    """mkfs of ``fs`` on ``device``, aligned to the RAID stripe when striped.

    Striped means a chunk is given and more than one data disk (RAID 0, 5, 10).  ext gets
    ``-b 4096`` then, as its stride is counted in filesystem blocks.
    """
    fs = check_filesystem(fs)
    device = check_device_arg(device)
    label = check_label(label, fs)
    if isinstance(data_disks, bool) or not isinstance(data_disks, int) or data_disks < 1:
        raise UsageError(f"invalid number of data disks {data_disks!r}: expected a positive whole number")
    striped = chunk_kib is not None and data_disks > 1
    chunk = check_chunk(chunk_kib) if chunk_kib is not None else None
    if fs == "xfs":
        argv = ["mkfs.xfs", "-L", label]
        if striped:
            argv += ["-d", f"su={chunk}k,sw={data_disks}"]
        return argv + [device]
    argv = [f"mkfs.{fs}", "-q", "-L", label]
    if striped:
        stride = chunk // EXT_BLOCK_KIB
        argv += ["-b", str(EXT_BLOCK_KIB * 1024), "-E", f"stride={stride},stripe_width={stride * data_disks}"]
    return argv + [device]


def signature_probe_argv(device):
    """blkid's low-level probe: KEY=VALUE lines (TYPE, PTTYPE, UUID …) on stdout; exit 2 when blank."""
    return ["blkid", "-p", "-o", "export", check_device_arg(device)]


def renew_uuid_argvs(fs, device):
    """Commands that give the (unmounted, journal replayed) filesystem on ``device`` a new UUID."""
    fs = check_filesystem(fs)
    if fs == "xfs":
        return [["xfs_admin", "-U", "generate", device]]
    # tune2fs wants a freshly checked filesystem before it rewrites the UUID (metadata_csum)
    return [["e2fsck", "-f", "-p", device], ["tune2fs", "-f", "-U", "random", device]]

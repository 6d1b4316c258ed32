"""Proving a restore (``ams snapshot verify``): argv lists, scripts and output parsing (pure).

The scratch copy of a snapshot group may sit on the very host that runs its original, with the
same array UUID and the same filesystem UUID.  Everything here is built so that nothing is
written to the scratch disks and nothing the host runs can be confused with them: the array is
assembled read-only under a name of its own (``ams-verify<volume group id>``, never ``ams-vg…``)
with no configuration file read, the filesystem is checked in no-modify mode and mounted
read-only without replaying its journal and without its UUID being checked against the
mounted original.

A finding is one line for people: a fact that makes the restore unhealthy.
"""

import re

from ..core.errors import UsageError
from ..ssh.quoting import join, quote
from .devices import check_device_arg
from .filesystem import check_filesystem
from .raid import array_device, check_array_name, check_group_id, normalize_uuid, parse_export

SCRATCH_PREFIX = "ams-verify"
MOUNT_PARENT = "/run"
MOUNT_TEMPLATE = "ams-verify.XXXXXXXX"  # mktemp -d: mode 0700, a name nobody can predict
MAX_CHECKSUM_PATHS = 100
MAX_PATH = 4096

_MOUNT_DIR_RE = re.compile(r"^/run/ams-verify\.[A-Za-z0-9]{8}$")
_SHA256_LINE_RE = re.compile(r"^([0-9a-f]{64}) (.*)$")


# -- names and paths -----------------------------------------------------------------------------

def scratch_array_name(volume_group_id):
    """The md name of a scratch array: ``ams-verify<id>`` (ams's own arrays are ``ams-vg<id>``)."""
    return check_array_name(f"{SCRATCH_PREFIX}{check_group_id(volume_group_id)}")


def scratch_array_device(volume_group_id):
    return array_device(scratch_array_name(volume_group_id))


def check_checksum_path(text):
    """A path relative to the restored filesystem's root, normalised (``a//b/./c`` -> ``a/b/c``).

    Refused: empty, absolute, ``..`` anywhere, control characters, longer than MAX_PATH.
    """
    if not isinstance(text, str) or not text.strip():
        raise UsageError("--checksum needs a path relative to the filesystem's root, not an empty one")
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise UsageError(f"invalid --checksum path {text!r}: control characters are not allowed")
    if len(text) > MAX_PATH:
        raise UsageError(f"invalid --checksum path: longer than {MAX_PATH} characters")
    if text.startswith("/"):
        raise UsageError(f"invalid --checksum path {text!r}: give it relative to the filesystem's root "
                         f"(e.g. {text.lstrip('/') or 'dir/file'!r}), not absolute")
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UsageError(f"invalid --checksum path {text!r}: '..' is not allowed")
    if not parts:
        raise UsageError(f"invalid --checksum path {text!r}: it names the root, not a file")
    return "/".join(parts)


def check_checksum_paths(paths):
    """Each path checked, duplicates dropped (first one kept), at most MAX_CHECKSUM_PATHS."""
    found = []
    for path in paths or []:
        path = check_checksum_path(path)
        if path not in found:
            found.append(path)
    if len(found) > MAX_CHECKSUM_PATHS:
        raise UsageError(f"at most {MAX_CHECKSUM_PATHS} --checksum paths, not {len(found)}")
    return found


def check_mount_dir(path):
    """The private mount directory mktemp made (anything else is refused before it is used)."""
    if not isinstance(path, str) or not _MOUNT_DIR_RE.fullmatch(path):
        raise UsageError(f"unexpected scratch mount directory {path!r}")
    return path


# -- commands ------------------------------------------------------------------------------------

def mkdtemp_argv():
    return ["mktemp", "-d", "-p", MOUNT_PARENT, MOUNT_TEMPLATE]


def rmdir_argv(path):
    return ["rmdir", "--", check_mount_dir(path)]


def setro_argv(device):
    """Mark the block device read-only in the kernel: no write reaches it, whatever runs."""
    return ["blockdev", "--setro", check_device_arg(device)]


def assemble_readonly_argv(device, md_uuid, members):
    """Assemble the array ``md_uuid`` read-only from exactly ``members`` as ``device``.

    ``--config=none``: the host's mdadm.conf (which may name the original, same UUID) is not
    read; ``--run``: start it degraded when a member is missing (that is a finding, not a stop).
    """
    if isinstance(members, str) or not members:
        raise UsageError("a scratch array needs member devices")
    members = [check_device_arg(m, "member device") for m in members]
    return ["mdadm", "--assemble", check_device_arg(device, "array device"), "--readonly", "--config=none",
            f"--uuid={normalize_uuid(md_uuid)}", "--run", *members]


def assemble_readonly_script(device, md_uuid, members):
    """:func:`assemble_readonly_argv` run where mdadm cannot see the host's map of running arrays.

    mdadm refuses to assemble an array whose UUID is already running ("Found some drive for an
    array that is already active") — the original, when the scratch copy sits beside it.  It
    reads that from /run/mdadm/map, so the command runs in a mount namespace of its own with an
    empty map over it; the host's map, and the original's entry in it, are not changed.
    """
    argv = assemble_readonly_argv(device, md_uuid, members)
    inner = f"mount -t tmpfs -o mode=0700 ams-verify /run/mdadm && : > /run/mdadm/map && exec {join(argv)}"
    return f"mkdir -p /run/mdadm && unshare -m sh -c {quote(inner)}"


def holders_argv(member):
    """What holds the member device (``md126`` once the array runs): its kernel name, one a line."""
    name = check_device_arg(member).rsplit("/", 1)[-1]
    return ["ls", "-1", f"/sys/class/block/{name}/holders"]


def parse_holder(text):
    """The md device that holds a member, from :func:`holders_argv`'s output, or None."""
    names = [n for n in text.split() if re.fullmatch(r"md[0-9]+", n)]
    return f"/dev/{names[0]}" if len(names) == 1 else None


def fsck_argv(fs_type, device):
    """Check without writing: ``xfs_repair -n`` (no-modify) or ``e2fsck -n -f`` (answer no, forced)."""
    fs_type = check_filesystem(fs_type)
    device = check_device_arg(device)
    if fs_type == "xfs":
        return ["xfs_repair", "-n", device]
    return ["e2fsck", "-n", "-f", device]


def mount_options(fs_type):
    """Read-only, no journal replay; xfs also ``nouuid`` (the original may be mounted beside it)."""
    fs_type = check_filesystem(fs_type)
    if fs_type == "xfs":
        return "ro,nouuid,norecovery"
    return "ro,noload"


def mount_argv(fs_type, device, path):
    fs_type = check_filesystem(fs_type)
    return ["mount", "-t", fs_type, "-o", mount_options(fs_type), check_device_arg(device), check_mount_dir(path)]


def umount_argv(path):
    return ["umount", check_mount_dir(path)]


def usage_script(path):
    """Size and use of the mounted filesystem (bytes), then its count of regular files and of
    directories (not crossing into other filesystems)."""
    p = quote(check_mount_dir(path))
    return (f"df -P -B1 {p} | tail -n 1 && "
            f"printf 'files %s\\n' \"$(find {p} -xdev -type f -printf . | wc -c)\" && "
            f"printf 'dirs %s\\n' \"$(find {p} -xdev -mindepth 1 -type d -printf . | wc -c)\"")


def checksum_script(path, relative_paths):
    """sha256 of each file under the mount; a path that is missing, not a regular file, or whose
    symlinks lead out of the restored filesystem prints ``missing <path>`` instead (a link in the
    restored data must not make ams read the host's own files)."""
    root = check_mount_dir(path)
    lines = [
        f"root={quote(root)}",
        "one() {",
        "  p=$(realpath -e -- \"$root/$1\" 2>/dev/null) || { printf 'missing %s\\n' \"$1\"; return 0; }",
        "  case \"$p\" in \"$root\"/*) ;; *) printf 'missing %s\\n' \"$1\"; return 0;; esac",
        "  [ -f \"$p\" ] || { printf 'missing %s\\n' \"$1\"; return 0; }",
        "  s=$(sha256sum < \"$p\") || return 1",
        "  printf '%s %s\\n' \"${s%% *}\" \"$1\"",
        "}",
    ]
    lines += [f"one {quote(check_checksum_path(rel))} || exit 1" for rel in relative_paths]
    return "\n".join(lines)


# -- parsing -------------------------------------------------------------------------------------

def parse_df(text):
    """{'size_bytes', 'used_bytes', 'available_bytes'} from the data line of ``df -P -B1``."""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 6 and all(p.isdigit() for p in parts[1:4]):
            return {"size_bytes": int(parts[1]), "used_bytes": int(parts[2]), "available_bytes": int(parts[3])}
    raise ValueError(f"no df data line in {text!r}")


def parse_usage(text):
    """The output of :func:`usage_script`: df's numbers plus ``files`` and ``dirs``."""
    values = parse_df(text)
    for line in text.splitlines():
        key, _, value = line.strip().partition(" ")
        if key in ("files", "dirs") and value.strip().isdigit():
            values[key] = int(value)
    for key in ("files", "dirs"):
        if key not in values:
            raise ValueError(f"no {key} count in {text!r}")
    return values


def parse_checksums(text, relative_paths):
    """({path: sha256}, [missing paths]) from :func:`checksum_script`'s output, in request order."""
    wanted = [check_checksum_path(p) for p in relative_paths]
    found, missing = {}, set()
    for line in text.splitlines():
        if line.startswith("missing "):
            missing.add(line[len("missing "):])
            continue
        match = _SHA256_LINE_RE.match(line)
        if match and match.group(2) in wanted:
            found[match.group(2)] = match.group(1)
    sums = {p: found[p] for p in wanted if p in found}
    return sums, [p for p in wanted if p not in sums or p in missing]


# xfs_repair -n: 0 clean, 1 corruption found; e2fsck -n: 0 clean, 4 errors left uncorrected,
# 8 operational error, 16 usage, 32 cancelled, 128 library error (1 and 2 mean it fixed
# something, which -n never does)
_E2FSCK_BITS = ((4, "errors were found and left uncorrected"), (8, "e2fsck could not check it (operational error)"),
                (16, "e2fsck usage error"), (32, "e2fsck was cancelled"), (128, "e2fsck shared-library error"))
_FSCK_NOISE = re.compile(
    r"^(Phase \d|- |No modify flag set|Pass \d|e2fsck \d|.*: \d+/\d+ files .* blocks$|"
    r"Warning: skipping journal recovery|Running journal anyway|Filesystem did not have a UUID|"
    r"ALERT: The filesystem has valuable metadata changes in a log|ignored because the -n option was used|"
    r"which may be resolved by first mounting the filesystem)"
)
# A snapshot of a mounted xfs (frozen or not) holds a log that was not replayed: the superblock's
# free block and inode counters are then stale on disk (xfs keeps them lazily and recounts them at
# mount), and xfs_repair -n says so with these lines and exit status 1.  Nothing is wrong with it.
XFS_DIRTY_LOG = "ALERT: The filesystem has valuable metadata changes in a log"
_XFS_LAZY_COUNTER = re.compile(r"^sb_(fdblocks|icount|ifree|frextents) \d+, counted \d+$")
MAX_FSCK_DETAIL = 5


def xfs_log_dirty(output):
    """xfs_repair -n saw a log that a mount would replay (its findings are then partly spurious)."""
    return XFS_DIRTY_LOG in (output or "")


def fsck_findings(fs_type, exit_status, output):
    """One line per problem the no-modify check reported ([] when the filesystem is clean).

    The first few meaningful lines of the checker's output follow its verdict, so the operator
    sees what kind of damage it is without rerunning the check by hand.  For xfs with a log not
    yet replayed, stale lazy superblock counters alone are not a problem.
    """
    fs_type = check_filesystem(fs_type)
    if exit_status == 0:
        return []
    details = []
    for line in (output or "").splitlines():
        line = line.strip()
        if line and not _FSCK_NOISE.match(line) and line not in details:
            details.append(line)
    if fs_type == "xfs":
        if exit_status == 1 and xfs_log_dirty(output) and details and all(_XFS_LAZY_COUNTER.match(d) for d in details):
            return []
        verdict = ("xfs_repair -n found corruption" if exit_status == 1
                   else f"xfs_repair -n could not check the filesystem (exit status {exit_status})")
    else:
        reasons = [text for bit, text in _E2FSCK_BITS if exit_status & bit]
        verdict = "e2fsck -n: " + ("; ".join(reasons) if reasons else f"exit status {exit_status}")
    return [verdict] + [f"fsck: {line}" for line in details[:MAX_FSCK_DETAIL]]


def member_findings(members, expected_uuid, found_uuids):
    """Findings about the superblocks of a RAID group's scratch members.

    ``members``: [(member index, volume id, device)] in member order; ``found_uuids``: {device:
    array UUID or None}.  Returns (findings, devices that carry the group's array UUID).
    """
    expected = normalize_uuid(expected_uuid) if expected_uuid else None
    if expected is None:  # not recorded: the UUID most members carry is the group's
        counts = {}
        for uuid in found_uuids.values():
            if uuid:
                counts[uuid] = counts.get(uuid, 0) + 1
        expected = max(sorted(counts), key=lambda u: counts[u]) if counts else None
    findings, good = [], []
    for index, volume_id, device in members:
        uuid = found_uuids.get(device)
        if uuid is None:
            findings.append(f"member {index} ({volume_id}, {device}) carries no RAID superblock")
        elif uuid != expected:
            findings.append(f"member {index} ({volume_id}, {device}) belongs to array {uuid}, not {expected}")
        else:
            good.append(device)
    return findings, good, expected


def array_findings(detail_text, expected_members):
    """Findings from ``mdadm --detail --export`` of the assembled scratch array."""
    values = parse_export(detail_text)
    roles = [value for key, value in values.items() if key.startswith("MD_DEVICE_") and key.endswith("_ROLE")]
    active = sum(1 for role in roles if role.isdigit())
    total = int(values["MD_DEVICES"]) if values.get("MD_DEVICES", "").isdigit() else expected_members
    findings = []
    if total != expected_members:
        findings.append(f"the array has {total} member slots, the snapshot group {expected_members} members")
    degraded = values.get("MD_DEGRADED", "0")
    if active < total or (degraded.isdigit() and int(degraded) > 0):
        missing = max(total - active, int(degraded) if degraded.isdigit() else 0)
        findings.append(f"the array runs degraded: {missing} of its {total} members missing")
    return findings

"""Which OS device an attached EBS volume is (pure: names in, names and a shell script out).

On Nitro instances a volume is an NVMe disk whose serial is the volume id without its dash;
udev links it as ``/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol…``, a name that does not
depend on the attach order.  On Xen instances the disk gets the API device name (``/dev/sdf``)
as ``/dev/xvdf`` (current kernels), ``/dev/sdf`` (old kernels) or, on RHEL/CentOS 6 kernels,
four letters later (``/dev/xvdj``).  The NVMe name is unambiguous; the Xen names are not
(``/dev/xvdj`` may also be the volume attached as ``/dev/sdj``), which is why
:func:`wait_for_devices_script` only accepts one naming scheme for all volumes at once and
distinct devices.
"""

import math
import re

from ..core.errors import ConflictError, RemoteCommandError, UsageError
from ..instance.validation import check_ec2_id
from ..ssh.quoting import quote

BY_ID_PREFIX = "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_"
# EC2 recommends /dev/sd[f-p] for EBS data volumes; f-z are accepted
API_DEVICE_NAMES = tuple(f"/dev/sd{letter}" for letter in "fghijklmnopqrstuvwxyz")
RHEL6_SHIFT = 4
WAIT_EXIT_MISSING = 3

_XEN_NAME_RE = re.compile(r"^(?:/dev/)?(?:sd|xvd)([a-z])$")
_USED_NAME_RE = re.compile(r"^(?:/dev/)?(?:sd|xvd)([a-z]+)[0-9]*$")
_WAIT_LINE_RE = re.compile(r"^(vol-[0-9a-f]{8}(?:[0-9a-f]{9})?)\t(/[^\t]*)$")


def check_volume_id(volume_id):
    """``volume_id`` as a lower-case ``vol-`` id (8 or 17 hex digits), else UsageError."""
    return check_ec2_id(volume_id, "vol", "volume id")


def nvme_serial(volume_id):
    """The NVMe serial EBS gives the volume: ``vol-0abc…`` -> ``vol0abc…``."""
    return check_volume_id(volume_id).replace("-", "", 1)


def nvme_by_id_path(volume_id):
    return BY_ID_PREFIX + nvme_serial(volume_id)


def _letter(api_device):
    match = _XEN_NAME_RE.fullmatch(api_device or "")
    if not match:
        raise UsageError(f"invalid device name {api_device!r}: expected /dev/sd[a-z] or /dev/xvd[a-z]")
    return match.group(1)


def xen_device_candidates(api_device):
    """The names a Xen guest may give the disk attached as ``api_device``, likeliest first."""
    letter = _letter(api_device)
    names = [f"/dev/xvd{letter}", f"/dev/sd{letter}"]
    shifted = ord(letter) + RHEL6_SHIFT
    if shifted <= ord("z"):
        names.append(f"/dev/xvd{chr(shifted)}")
    return names


def device_candidates(volume_id, api_device):
    """The NVMe by-id path, then the Xen names of ``api_device`` (none when it is None)."""
    names = [nvme_by_id_path(volume_id)]
    if api_device is not None:
        names.extend(xen_device_candidates(api_device))
    return names


def _used_letters(used):
    letters = set()
    for name in used:
        match = _USED_NAME_RE.fullmatch((name or "").strip().lower())
        if match:
            letters.add(match.group(1))
    return letters


def choose_api_devices(used, count):
    """The first ``count`` names of API_DEVICE_NAMES that neither ``used`` nor their sd/xvd twin hold.

    ``used`` holds the device names of the instance's current attachments, as EC2 reports them
    (``/dev/xvda``, ``/dev/sda1``, ``/dev/sdf`` …).
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise UsageError(f"invalid device count {count!r}: expected a whole number")
    taken = _used_letters(used)
    free = [name for name in API_DEVICE_NAMES if name[len("/dev/sd"):] not in taken]
    if len(free) < count:
        raise ConflictError(
            f"the instance has {len(free)} free device names ({API_DEVICE_NAMES[0]} to {API_DEVICE_NAMES[-1]}), "
            f"{count} needed"
        )
    return free[:count]


def check_device_arg(value, what="device"):
    """``value`` if it can stand as a device argument of a command (not an option, no control
    characters), else UsageError.  Paths are not required: dry runs show placeholders."""
    if not isinstance(value, str) or not value or value.startswith("-") or any(
            ord(c) < 32 or ord(c) == 127 for c in value):
        raise UsageError(
            f"invalid {what} {value!r}: it must not be empty, start with '-' or hold control characters"
        )
    return value


def check_device_path(path, what="device path"):
    """``path`` if it is an absolute path without control characters, else UsageError."""
    if not isinstance(path, str) or not path.startswith("/") or any(ord(c) < 32 or ord(c) == 127 for c in path):
        raise UsageError(f"invalid {what} {path!r}: expected an absolute path without control characters")
    return path


def _check_seconds(value, what, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < minimum:
        raise UsageError(f"invalid {what} {value!r}: expected a number of seconds, at least {minimum:g}")
    return value


def _check_candidates(candidates):
    checked = {}
    for key, paths in candidates.items():
        volume_id = check_volume_id(key)
        if volume_id in checked:
            raise UsageError(f"volume {volume_id} is listed twice")
        if isinstance(paths, str) or not paths:
            raise UsageError(f"no device names to wait for for volume {volume_id}")
        checked[volume_id] = [check_device_path(path) for path in paths]
    if not checked:
        raise UsageError("no volumes to wait for")
    return checked


def wait_for_devices_script(candidates, timeout, interval=0.5):
    """A POSIX sh script that waits until each volume's device exists, then prints them.

    ``candidates``: {volume id: [device path, …]}, e.g. from :func:`device_candidates`.  A
    naming scheme is a position in those lists (0: NVMe by-id, 1: xvdX, 2: sdX, 3: RHEL 6
    shift); the script accepts the first scheme under which every volume's path is a block
    device and all resolve to distinct devices.  It then prints ``<volume id>\\t<device>``
    (``readlink -f``) per volume, in the order given, and exits 0.  When ``timeout`` seconds
    pass first it prints one line ``missing: <volume id> …`` on stderr (the volumes without
    any existing candidate; or all of them followed by ``(ambiguous device names)`` when each
    has one but no scheme fits) and exits 3.  Reading device nodes needs no root.
    """
    checked = _check_candidates(candidates)
    timeout = _check_seconds(timeout, "timeout", 0)
    interval = _check_seconds(interval, "poll interval", 0.01)
    keys = list(checked)
    schemes = range(min(len(paths) for paths in checked.values()))
    found = [f"d{index}" for index in range(len(keys))]

    lines = [
        "distinct() {",
        "  for a; do",
        "    shift",
        '    for b; do [ "$a" = "$b" ] && return 1; done',
        "  done",
        "  return 0",
        "}",
    ]
    for scheme in schemes:
        paths = [quote(checked[key][scheme]) for key in keys]
        lines += [
            f"scheme{scheme}() {{",
            "  " + " && ".join(f"[ -b {path} ]" for path in paths) + " || return 1",
            "  " + " && ".join(f"{var}=$(readlink -f {path})" for var, path in zip(found, paths)) + " || return 1",
            "  distinct " + " ".join(f'"${var}"' for var in found) + " || return 1",
            "  printf '%s\\t%s\\n' " + " ".join(f'{quote(key)} "${var}"' for key, var in zip(keys, found)),
            "}",
        ]
    attempt = " || ".join(f"scheme{scheme}" for scheme in schemes)
    # sleeps add up to the timeout; the clock ends it when the checks themselves are slow
    lines += [
        f"tries={math.ceil(timeout / interval)}",
        f"end=$(( $(date +%s) + {math.ceil(timeout) + 1} ))",
        "while :; do",
        f"  if {attempt}; then exit 0; fi",
        '  [ "$tries" -gt 0 ] && [ "$(date +%s)" -lt "$end" ] || break',
        "  tries=$((tries - 1))",
        f"  sleep {format(interval, '.3f').rstrip('0').rstrip('.')}",
        "done",
        "missing=''",
    ]
    for key in keys:
        tests = " || ".join(f"[ -b {quote(path)} ]" for path in checked[key])
        lines.append(f"{{ {tests}; }} || missing=\"$missing \"{quote(key)}")
    lines += [
        'if [ -n "$missing" ]; then',
        '  echo "missing:$missing" >&2',
        "else",
        f"  echo {quote('missing: ' + ' '.join(keys) + ' (ambiguous device names)')} >&2",
        "fi",
        f"exit {WAIT_EXIT_MISSING}",
    ]
    return "\n".join(lines) + "\n"


def parse_wait_output(text):
    """{volume id: device} from the output of :func:`wait_for_devices_script`."""
    found = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        match = _WAIT_LINE_RE.fullmatch(line)
        if not match or match.group(1) in found:
            raise RemoteCommandError(f"unexpected line in the device wait output: {line!r}")
        found[match.group(1)] = match.group(2)
    return found

"""/etc/fstab lines for volume groups: build, parse, set and remove (pure: text in, text out).

Parsing follows libmount (what ``mount`` and systemd read): one entry per line,
fields separated by spaces or tabs, a line whose first non-blank character is
``#`` is a comment, one trailing ``\\r`` is ignored, ``\\NNN`` (three octal
digits) is a byte (``\\040`` space, ``\\011`` tab, ``\\012`` newline, ``\\134``
backslash).  An entry needs spec, file and type; options, freq and passno are
optional and anything after passno is ignored.  A line libmount would skip as
a parse error is refused with ConflictError: ams edits only an fstab that the
host reads in full.

Edits keep every line they do not drop byte for byte (comments, tabs, odd
spacing, ``\\r\\n`` endings) and return the input unchanged when there is
nothing to do.
"""

import re
from dataclasses import dataclass

from ..core.errors import ConflictError, UsageError

DEVICE_TIMEOUT_S = 30
DEFAULT_OPTIONS = "defaults,nofail"
BY_UUID_DIR = "/dev/disk/by-uuid/"

UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
FS_TYPE_RE = re.compile(r"[a-z0-9][a-z0-9._+-]*")
_FIELD_SEP = re.compile(r"[ \t]+")
_ESCAPE = re.compile(rb"\\([0-7]{3})")
_NUMBER = re.compile(r"[+-]?[0-9]+")
_LINE = re.compile(r"[^\n]*\n|[^\n]+")
_MANGLE = {" ": "\\040", "\t": "\\011", "\n": "\\012", "\\": "\\134"}


@dataclass(frozen=True)
class Entry:
    """One active fstab line, escapes decoded; ``line_no`` counts from 1."""

    spec: str
    file: str
    vfstype: str
    mntops: str
    freq: int
    passno: int
    line_no: int


def check_uuid(uuid):
    """A filesystem UUID (8-4-4-4-12 hex digits) in lower case, else UsageError."""
    if not isinstance(uuid, str) or not UUID_RE.fullmatch(uuid):
        raise UsageError(f"invalid filesystem UUID {uuid!r}: expected 8-4-4-4-12 hex digits")
    return uuid.lower()


def _check_mount_point(mount_point):
    if not isinstance(mount_point, str) or not mount_point.startswith("/") or "\0" in mount_point:
        raise UsageError(f"invalid mount point {mount_point!r}: expected an absolute path")
    return mount_point


def _check_fs_type(fs_type):
    if not isinstance(fs_type, str) or not FS_TYPE_RE.fullmatch(fs_type):
        raise UsageError(f"invalid filesystem type {fs_type!r}")
    return fs_type


def escape(field):
    """``field`` as fstab writes it: space, tab, newline and backslash as octal escapes."""
    return "".join(_MANGLE.get(char, char) for char in field)


def unescape(field):
    """Decode ``\\NNN`` octal escapes (bytes, so an escaped UTF-8 sequence decodes too)."""
    if "\\" not in field:
        return field
    raw = field.encode("utf-8", "surrogateescape")
    raw = _ESCAPE.sub(lambda m: bytes([int(m.group(1), 8) & 0xFF]), raw)
    return raw.decode("utf-8", "surrogateescape")


def fstab_line(uuid, mount_point, fs_type, *, device_timeout=DEVICE_TIMEOUT_S):
    """The fstab line (no newline) that mounts filesystem ``uuid`` on ``mount_point``.

    ``nofail`` and ``x-systemd.device-timeout`` keep the host booting when a
    volume is missing; passno 2 lets fsck check it after the root filesystem.
    """
    uuid = check_uuid(uuid)
    _check_mount_point(mount_point)
    _check_fs_type(fs_type)
    if isinstance(device_timeout, bool) or not isinstance(device_timeout, int) or device_timeout < 1:
        raise UsageError(f"invalid device timeout {device_timeout!r}: expected whole seconds >= 1")
    options = f"{DEFAULT_OPTIONS},x-systemd.device-timeout={device_timeout}s"
    return f"UUID={uuid} {escape(mount_point)} {fs_type} {options} 0 2"


def _lines(text):
    """``text`` split into lines that keep their ``\\n``."""
    return _LINE.findall(text)


def _content(line):
    """A line without its newline and the one ``\\r`` libmount drops."""
    line = line[:-1] if line.endswith("\n") else line
    return line[:-1] if line.endswith("\r") else line


def _parse_line(line, line_no):
    """The Entry of one line, None for a comment or blank line; ConflictError when libmount refuses it."""
    content = _content(line).lstrip(" \t")
    if not content or content.startswith("#"):
        return None
    fields = _FIELD_SEP.split(content.rstrip(" \t"))
    if len(fields) < 3:
        missing = "mount point" if len(fields) == 1 else "filesystem type"
        raise ConflictError(f"fstab line {line_no} has no {missing}: {_content(line)!r}")
    numbers = []
    for name, value in zip(("dump frequency", "fsck pass number"), fields[4:6]):
        if not _NUMBER.fullmatch(value):
            raise ConflictError(f"fstab line {line_no} has an invalid {name} {value!r}: {_content(line)!r}")
        numbers.append(int(value))
    numbers += [0] * (2 - len(numbers))
    mntops = unescape(fields[3]) if len(fields) > 3 else ""
    return Entry(unescape(fields[0]), unescape(fields[1]), unescape(fields[2]), mntops,
                 numbers[0], numbers[1], line_no)


def parse(text):
    """The active entries of fstab ``text`` (comments and blank lines skipped)."""
    entries = []
    for line_no, line in enumerate(_lines(text), 1):
        entry = _parse_line(line, line_no)
        if entry is not None:
            entries.append(entry)
    return entries


def _same_path(a, b):
    return (re.sub("/+", "/", a).rstrip("/") or "/") == (re.sub("/+", "/", b).rstrip("/") or "/")


def _spec_uuid(spec):
    """The filesystem UUID an fstab spec names (``UUID=…``, quoted or not, or a by-uuid path)."""
    if spec.startswith("UUID="):
        value = spec[5:]
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        return value.lower()
    if spec.startswith(BY_UUID_DIR):
        return spec[len(BY_UUID_DIR):].lower()
    return None


def _matches(entry, uuid, mount_point):
    if uuid is not None and _spec_uuid(entry.spec) == uuid:
        return True
    return mount_point is not None and _same_path(entry.file, mount_point)


def _split(text, uuid, mount_point):
    """``(lines, indexes of the lines that match)``."""
    lines = _lines(text)
    matched = []
    for index, line in enumerate(lines):
        entry = _parse_line(line, index + 1)
        if entry is not None and _matches(entry, uuid, mount_point):
            matched.append(index)
    return lines, matched


def set_entry(text, uuid, mount_point, fs_type, **kw):
    """``text`` with one line mounting ``uuid`` on ``mount_point``.

    Lines naming the same filesystem (``UUID=``, any case) or the same mount
    point are dropped and the new line is appended; ``text`` itself comes
    back when that exact line is already the only match.  ``kw``: see
    :func:`fstab_line`.
    """
    new = fstab_line(uuid, mount_point, fs_type, **kw)
    lines, matched = _split(text, check_uuid(uuid), mount_point)
    if len(matched) == 1 and _content(lines[matched[0]]) == new:
        return text
    drop = set(matched)
    kept = [line for index, line in enumerate(lines) if index not in drop]
    if kept and not kept[-1].endswith("\n"):
        kept[-1] += "\n"
    return "".join(kept) + new + "\n"


def remove_entries(text, *, uuid=None, mount_point=None):
    """``text`` without the lines naming filesystem ``uuid`` or mounting on ``mount_point``."""
    if uuid is None and mount_point is None:
        raise ValueError("remove_entries needs uuid or mount_point")
    uuid = check_uuid(uuid) if uuid is not None else None
    if mount_point is not None:
        _check_mount_point(mount_point)
    lines, matched = _split(text, uuid, mount_point)
    if not matched:
        return text
    drop = set(matched)
    return "".join(line for index, line in enumerate(lines) if index not in drop)

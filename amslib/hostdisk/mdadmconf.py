"""mdadm.conf ARRAY lines for volume groups: build, set and remove (pure: text in, text out).

Read as mdadm reads it (mdadm.conf(5)): words separated by spaces or tabs,
quotes (``'`` or ``"``) protect spaces, a word starting with ``#`` comments out
the rest of the line, a line starting with a space or tab continues the line
before (blank and comment lines in between do not end it), keywords are case
insensitive and may be cut to three letters (``ARR``).  In an ARRAY line the
device is the first word that starts with ``/`` or has no ``=`` (a bare name
means ``/dev/md/<name>``); ``uuid=`` (any case) is 32 hex digits with any of
``:.- `` between them.

Edits keep every line they do not touch byte for byte; an ARRAY record is its
line plus its indented continuation lines.
"""

import re

from ..core.errors import UsageError

CONF_PATHS = ("/etc/mdadm/mdadm.conf", "/etc/mdadm.conf")
METADATA = "1.2"

DEVICE_RE = re.compile(r"/dev(?:/(?!\.\.?(?:/|$))[A-Za-z0-9._-]+)+")
NAME_RE = re.compile(r"[A-Za-z0-9._:-]+")
_LINE = re.compile(r"[^\n]*\n|[^\n]+")
_UUID_SEPARATORS = re.compile(r"[:. -]")
_HEX32 = re.compile(r"[0-9a-f]{32}")


def uuid_digits(text):
    """The 32 lower-case hex digits of an md UUID as mdadm reads it, or None."""
    if not isinstance(text, str):
        return None
    digits = _UUID_SEPARATORS.sub("", text).lower()
    return digits if _HEX32.fullmatch(digits) else None


def check_uuid(uuid):
    """An md UUID in mdadm's form ``xxxxxxxx:xxxxxxxx:xxxxxxxx:xxxxxxxx``, else UsageError.

    Accepts that form and the dashed 8-4-4-4-12 one.
    """
    if not isinstance(uuid, str) or not re.fullmatch(
        r"[0-9a-fA-F]{8}(?::[0-9a-fA-F]{8}){3}|[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}", uuid
    ):
        raise UsageError(f"invalid md UUID {uuid!r}: expected 4 groups of 8 hex digits separated by ':'")
    digits = uuid_digits(uuid)
    return ":".join(digits[i:i + 8] for i in range(0, 32, 8))


def check_device(device):
    """An md device path (``/dev/md/<name>``, ``/dev/md0``), else UsageError."""
    if not isinstance(device, str) or not DEVICE_RE.fullmatch(device):
        raise UsageError(f"invalid md device {device!r}: expected a /dev path of letters, digits and . _ -")
    return device


def _check_name(name):
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise UsageError(f"invalid md array name {name!r}: only letters, digits and . _ : - are allowed")
    return name


def array_line(device, uuid, name=None):
    """The ARRAY line (no newline): ``ARRAY <device> metadata=1.2 UUID=<uuid> [name=<name>]``."""
    words = ["ARRAY", check_device(device), f"metadata={METADATA}", f"UUID={check_uuid(uuid)}"]
    if name is not None:
        words.append(f"name={_check_name(name)}")
    return " ".join(words)


def _words(line):
    """The words of one physical line as mdadm splits them (quotes removed, comment dropped)."""
    words = []
    word = None
    quote = None
    for char in line.rstrip("\n"):
        if quote:
            if char == quote:
                quote = None
            else:
                word += char
        elif char in " \t":
            if word is not None:
                words.append(word)
                word = None
        elif char == "#" and word is None:
            break
        elif char in "'\"":
            quote = char
            word = word or ""
        else:
            word = (word or "") + char
    if word is not None:
        words.append(word)
    return words


def _is_keyword(word, keyword):
    return len(word) >= 3 and keyword.startswith(word.lower())


def _records(lines):
    """``[(first_index, [line indexes], words)]`` of every logical line."""
    records = []
    for index, line in enumerate(lines):
        words = _words(line)
        indented = line[:1] in (" ", "\t")
        if indented and records:
            records[-1][1].append(index)
            records[-1][2].extend(words)
        elif words:
            records.append((index, [index], words))
    return records


def _device_of(words):
    for word in words[1:]:
        if word.startswith("/") or "=" not in word:
            return word if word.startswith("/") or word.startswith("<") else "/dev/md/" + word
    return None


def _uuid_of(words):
    for word in words[1:]:
        if word[:5].lower() == "uuid=":
            return uuid_digits(word[5:])
    return None


def _matching(lines, uuid, device):
    """The ARRAY records naming md UUID ``uuid`` (digits) or ``device``."""
    found = []
    for record in _records(lines):
        words = record[2]
        if not _is_keyword(words[0], "array"):
            continue
        same_uuid = uuid is not None and _uuid_of(words) == uuid
        if same_uuid or (device is not None and _device_of(words) == device):
            found.append(record)
    return found


def set_array(text, device, uuid, name=None):
    """``text`` with one ARRAY line for the array ``uuid`` assembled as ``device``.

    The first ARRAY record with the same UUID or device is replaced in place,
    further ones are dropped; without one the line is appended.  ``text``
    itself comes back when the exact line is already the only match.
    """
    new = array_line(device, uuid, name)
    lines = _LINE.findall(text)
    matched = _matching(lines, uuid_digits(uuid), device)
    if len(matched) == 1 and len(matched[0][1]) == 1 and lines[matched[0][0]].rstrip("\n") == new:
        return text
    if not matched:
        prefix = text if not text or text.endswith("\n") else text + "\n"
        return prefix + new + "\n"
    drop = {index for record in matched for index in record[1]}
    out = []
    for index, line in enumerate(lines):
        if index == matched[0][0]:
            out.append(new + "\n")
        elif index not in drop:
            out.append(line)
    return "".join(out)


def remove_array(text, *, uuid=None, device=None):
    """``text`` without the ARRAY records for md UUID ``uuid`` or ``device``."""
    if uuid is None and device is None:
        raise ValueError("remove_array needs uuid or device")
    digits = uuid_digits(check_uuid(uuid)) if uuid is not None else None
    if device is not None:
        check_device(device)
    lines = _LINE.findall(text)
    drop = {index for record in _matching(lines, digits, device) for index in record[1]}
    if not drop:
        return text
    return "".join(line for index, line in enumerate(lines) if index not in drop)

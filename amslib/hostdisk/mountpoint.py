"""Mount point checks (pure).

A mount point reaches a shell, ``mount``, ``mkdir`` and ``/etc/fstab`` (where spaces must be
escaped), so it is limited to characters that mean nothing to any of them.  Mounting over a
system directory hides what the host needs to run, so those are refused.  A pure check cannot
see symbolic links (``/var/run`` -> ``/run``): resolve the path on the host and check the
result again before mounting.
"""

import re

from ..core.errors import UsageError

MAX_LENGTH = 240
ALLOWED_RE = re.compile(r"^[A-Za-z0-9._@+=:,/-]+$")
ALLOWED_TEXT = "letters, digits, '/' and . _ @ + = : , -"
# nothing may be mounted on these
SYSTEM_DIRECTORIES = frozenset({
    "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32", "/opt", "/proc",
    "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var", "/mnt", "/media", "/lost+found",
    "/var/lib", "/var/run", "/var/lock",
})
# nor anywhere below these
SYSTEM_TREES = ("/proc", "/sys", "/dev", "/run", "/boot", "/etc", "/usr", "/bin", "/sbin",
                "/lib", "/lib32", "/lib64", "/libx32", "/var/run", "/var/lock")


def _problem(path):
    if not path:
        return "it is empty"
    if not path.startswith("/"):
        return "it must be an absolute path"
    if not ALLOWED_RE.fullmatch(path):
        return f"only {ALLOWED_TEXT} are allowed (no spaces, quotes, ;, $, newlines or other special characters)"
    if any(part in (".", "..") for part in path.split("/")):
        return "'.' and '..' parts are not allowed"
    if len(path) > MAX_LENGTH:
        return f"it is longer than {MAX_LENGTH} characters"
    if path == "/":
        return "it is the root directory"
    if path in SYSTEM_DIRECTORIES:
        return "it is a system directory"
    for tree in SYSTEM_TREES:
        if path.startswith(tree + "/"):
            return f"it is under the system directory {tree}"
    return None


def check_mount_point(path):
    """The mount point in normal form (repeated and trailing '/' removed), else UsageError."""
    if not isinstance(path, str):
        raise UsageError(f"invalid mount point {path!r}: expected a path")
    value = re.sub(r"/{2,}", "/", path)
    if len(value) > 1:
        value = value.rstrip("/")
    problem = _problem(value)
    if problem:
        raise UsageError(f"invalid mount point {path!r}: {problem}")
    return value

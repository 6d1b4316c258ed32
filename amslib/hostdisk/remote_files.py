"""Shell scripts that read and atomically replace a root-owned file on a host (pure: text out).

The executor runs them with sudo and, for :func:`atomic_replace_script`, the
new content on stdin.  The replace is a rename in the file's own directory:
a reader (``mount -a``, systemd, an initramfs hook) sees the old file or the
new one, never half of one, and a failed validation leaves the file as it was.
"""

from ..core.errors import UsageError
from ..ssh.quoting import quote

BACKUP_SUFFIX = ".ams.bak"
TMP_SUFFIX = ".ams-tmp."  # + the shell's pid
LOCK_TIMEOUT_S = 60

# exit statuses of the replace script (anything else non-zero: an I/O step failed, status 1)
EXIT_INVALID = 3  # the validate snippet refused the new content
EXIT_CHANGED = 4  # the file is not the one the caller read (expect_sha256)

# libmount must read every active line of the new fstab: findmnt skips a line it cannot parse
# (a message on stderr, status 0) and exits 1 for a file without entries, so its status proves
# nothing; its entry count must equal the count of lines that are not blank or comments.
FSTAB_VALIDATE = r"""command -v findmnt >/dev/null 2>&1 || { echo "findmnt is not installed" >&2; exit 1; }
lines=$(awk '{ sub(/\r$/, "") } !/^[ \t]*(#|$)/ { n++ } END { print n + 0 }' "$TMP") || exit 1
entries=$(findmnt --tab-file "$TMP" -n -r -o TARGET | wc -l)
[ "$lines" -eq "$entries" ] || { echo "libmount read $entries of $lines entries" >&2; exit 1; }"""

_SCRIPT = r"""p={path}
suffix={backup_suffix}
expect={expect}
fail() {{ printf 'ams: %s\n' "$2" >&2; exit "$1"; }}
if [ -L "$p" ]; then p=$(readlink -f "$p") || fail 1 "cannot resolve the symbolic link $p"; fi
[ -d "$p" ] && fail 1 "$p is a directory"
d=${{p%/*}}; [ -n "$d" ] || d=/
[ -d "$d" ] || fail 1 "no directory $d"
TMP=$p{tmp_suffix}$$
export TMP
trap 'rm -f "$TMP"' EXIT
trap 'exit 1' HUP INT TERM
if command -v flock >/dev/null 2>&1; then
  exec 9<"$d" && flock -w {lock_timeout} 9 || fail 1 "cannot lock $d"
fi
umask 077
cat >"$TMP" || fail 1 "cannot write $TMP"
if [ -n "$expect" ]; then
  if [ -e "$p" ]; then current=$(sha256sum <"$p") || fail 1 "cannot read $p"
  else current=$(printf '' | sha256sum); fi
  [ "${{current%% *}}" = "$expect" ] || fail {exit_changed} "$p changed since it was read"
fi
if [ -e "$p" ] && cmp -s "$TMP" "$p"; then echo unchanged; exit 0; fi
if [ -e "$p" ]; then
  chmod --reference="$p" "$TMP" && chown --reference="$p" "$TMP" ||
    fail 1 "cannot give $TMP the owner and mode of $p"
  if command -v selinuxenabled >/dev/null 2>&1 && selinuxenabled; then
    chcon --reference="$p" "$TMP" || fail 1 "cannot give $TMP the SELinux context of $p"
  fi
else
  chmod 0644 "$TMP" && chown 0:0 "$TMP" || fail 1 "cannot make $TMP root's with mode 0644"
fi
sync "$TMP" 2>/dev/null || sync
ams_validate() {{
:
{validate}
}}
if ! out=$(ams_validate 2>&1 </dev/null); then
  out=$(printf '%s' "$out" | tr '\n\t' '  ' | cut -c 1-300)
  fail {exit_invalid} "new $p refused, the file is unchanged: ${{out:-the check failed}}"
fi
if [ -n "$suffix" ] && [ -e "$p" ]; then
  cp -p "$p" "$p$suffix" || fail 1 "cannot back up $p to $p$suffix"
fi
mv -f "$TMP" "$p" || fail 1 "cannot rename $TMP to $p"
sync "$d" 2>/dev/null || sync
echo replaced
"""


def _check_path(path):
    if not isinstance(path, str) or not path.startswith("/") or path.endswith("/") or "\0" in path:
        raise UsageError(f"invalid file path {path!r}: expected an absolute path to a file")
    return path


def atomic_replace_script(path, *, validate=None, backup_suffix=BACKUP_SUFFIX, expect_sha256=None):
    """A POSIX sh script (run as root) that replaces ``path`` with its stdin, atomically.

    Steps: lock the directory (``flock``, when present) against a concurrent
    replace; write stdin to ``<path>.ams-tmp.<pid>`` in the same directory;
    with ``expect_sha256`` (hex digest of the content the caller read; an
    absent file reads as empty) stop with status EXIT_CHANGED when the file
    differs; print ``unchanged`` and stop when the content is the same; give
    the temp file the owner, mode (and SELinux context) of ``path``, or root
    and 0644 for a new file; sync it; run ``validate`` (shell code, the temp
    file is ``"$TMP"``; non-zero = refuse) and stop with EXIT_INVALID when it
    fails; copy ``path`` to ``path + backup_suffix`` (``cp -p``; None: no
    backup); rename the temp file onto ``path``, sync the directory and print
    ``replaced``.  A symbolic link is replaced at its target.  Every failure
    removes the temp file and prints one line ``ams: <reason>`` on stderr.
    """
    _check_path(path)
    if backup_suffix is not None and (not backup_suffix or "/" in backup_suffix or "\0" in backup_suffix):
        raise UsageError(f"invalid backup suffix {backup_suffix!r}: expected a non-empty file name suffix")
    if expect_sha256 is not None and (
        len(expect_sha256) != 64 or any(char not in "0123456789abcdef" for char in expect_sha256)
    ):
        raise UsageError(f"invalid sha256 digest {expect_sha256!r}: expected 64 lower-case hex digits")
    return _SCRIPT.format(
        path=quote(path),
        backup_suffix=quote(backup_suffix or ""),
        expect=quote(expect_sha256 or ""),
        tmp_suffix=quote(TMP_SUFFIX),
        lock_timeout=LOCK_TIMEOUT_S,
        exit_changed=EXIT_CHANGED,
        exit_invalid=EXIT_INVALID,
        validate=validate or "",
    )


def backup_path(path, backup_suffix=BACKUP_SUFFIX):
    """Where :func:`atomic_replace_script` keeps the previous version of ``path``."""
    return _check_path(path) + backup_suffix


def temp_path_prefix(path):
    """The prefix of the temp files :func:`atomic_replace_script` writes next to ``path``."""
    return _check_path(path) + TMP_SUFFIX


def read_file_command(path):
    """A command printing the file at ``path``: nothing, status 0, when it does not exist.

    A file that exists but cannot be read (or a dangling symbolic link) fails
    with ``cat``'s message and status.
    """
    p = quote(_check_path(path))
    return f"if [ -e {p} ] || [ -L {p} ]; then cat {p}; fi"

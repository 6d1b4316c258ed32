"""fsfreeze around a snapshot, and the user's pre/post hooks (pure: text in, shell text out).

The executor runs :func:`freeze_script` and :func:`thaw_script` with sudo.  Before freezing, the
freeze script starts a *watchdog*: a process in its own session (in its own systemd scope when
systemd can make one, so the end of the SSH session does not stop it either) that thaws the
filesystem after ``watchdog_seconds``.  A filesystem is therefore never left frozen when ams
dies, the connection drops or the thaw fails to arrive; the thaw script stops the watchdog.

The state of one mount point lives in ``<state_dir>/ams-freeze-<hash>.*`` (``/run``: a tmpfs,
never the frozen filesystem): ``.pid`` the watchdog, ``.lock`` serialises freeze and thaw,
``.fired`` says the watchdog thawed the filesystem before ams did, ``.freezer``/``.err`` a
``fsfreeze -f`` in progress.  A freeze still in progress when the watchdog fires (a long sync
of dirty data) is thawed as soon as it completes.

A hook is the user's command as one argument of ``sh -c``: only that shell interprets it, as the
user wrote it.
"""

import hashlib
import math
import re
import unicodedata

from ..core.errors import RemoteCommandError, UsageError
from ..ssh.quoting import join, quote
from .mountpoint import SYSTEM_DIRECTORIES, SYSTEM_TREES, check_mount_point

STATE_DIR = "/run"
DEFAULT_WATCHDOG_S = 60
MIN_WATCHDOG_S = 1
MAX_WATCHDOG_S = 3600
LOCK_TIMEOUT_S = 10  # waiting for another freeze/thaw of the same mount point
WATCHDOG_START_S = 10  # waiting for the watchdog to report its pid
# the host refuses to freeze the filesystem of any of these (sudo, sshd, logging and the
# watchdog itself live there), whatever path leads to it (a bind mount, a btrfs subvolume)
HOST_PATHS = ("/", "/usr", "/var", "/etc", "/boot", "/run", "/tmp", "/home", "/root")

# exit statuses of the freeze script (anything else non-zero: a step failed, status 1)
EXIT_NOT_MOUNTED = 3  # nothing is mounted at the mount point
EXIT_BUSY = 4  # already frozen, or another ams is freezing or thawing it
EXIT_REFUSED = 5  # the mount point is on a filesystem of the host itself (HOST_PATHS)

# the last line of stdout
FROZEN = "frozen"
THAWED = "thawed"
NOT_FROZEN = "not frozen"
THAWED_BY_WATCHDOG = "thawed by the watchdog"  # the freeze ended before ams thawed it
THAW_STATES = (THAWED, NOT_FROZEN, THAWED_BY_WATCHDOG)

HOOK_MAX_LENGTH = 4096
HOOK_KILL_AFTER_S = 5  # SIGKILL this long after the SIGTERM of a hook's timeout
HOOK_TIMEOUT_EXITS = (124, 137)  # GNU timeout: TERM worked / KILL was needed
_ENV_NAME_RE = re.compile(r"^[A-Z_][A-Z0-9_]*$")

# $1 pid file, $2 fired marker, $3 seconds, $4 fsfreeze, $5 mount point, $6 freezer pid file.
# $0 is the marker the scripts look for in /proc/<pid>/cmdline before signalling a pid.
_WATCHDOG = r"""trap '' HUP INT QUIT PIPE
pf=$1 fired=$2 secs=$3 ff=$4 mp=$5 freezer=$6
echo "$$" >"$pf.$$" && mv -f "$pf.$$" "$pf" || exit 1
sleep "$secs"
[ "$(cat "$pf" 2>/dev/null)" = "$$" ] && rm -f "$pf"
freezing() {
  fz=$(cat "$freezer" 2>/dev/null) && [ -n "$fz" ] || return 1
  { tr '\000' '\n' <"/proc/$fz/cmdline"; } 2>/dev/null | grep -qxF -e "$mp"
}
thawed=
while :; do
  "$ff" -u "$mp" >/dev/null 2>&1 && thawed=1
  freezing || break
  sleep 1
done
if [ -n "$thawed" ]; then
  date -u +%Y-%m-%dT%H:%M:%SZ >"$fired"
  logger -t ams -p user.warning -- "thawed $mp: still frozen ${secs}s after ams froze it" >/dev/null 2>&1
fi
exit 0"""

_COMMON = r"""mp={mp}
sd={state_dir}
name={name}
export LC_ALL=C
fail() {{ printf 'ams: %s\n' "$2" >&2; exit "$1"; }}
oneline() {{ printf '%s' "$1" | tr '\n\t' '  ' | cut -c 1-300; }}
ff=$(command -v fsfreeze) || fail 1 "fsfreeze is not installed (util-linux)"
if [ ! -d "$sd" ] && [ -d /var/run ]; then sd=/var/run; fi
pf=$sd/$name.pid
fired=$sd/$name.fired
freezer=$sd/$name.freezer
err=$sd/$name.err
watchdog() {{
  pid=$(cat "$pf" 2>/dev/null) || return 1
  case $pid in ''|*[!0-9]*) return 1;; esac
  {{ tr '\000' '\n' <"/proc/$pid/cmdline"; }} 2>/dev/null | grep -qxF -e "$name-watchdog"
}}
stop_watchdog() {{
  if watchdog; then
    kill -s TERM -- "-$pid" 2>/dev/null || kill -s TERM "$pid" 2>/dev/null
  fi
  rm -f "$pf"
}}
mounted() {{
  dev=
  command -v findmnt >/dev/null 2>&1 || return 0
  dev=$(findmnt -n -r -o MAJ:MIN -M "$mp" 2>/dev/null | tail -n 1)
  [ -n "$dev" ]
}}
if command -v flock >/dev/null 2>&1 && : >>"$sd/$name.lock" 2>/dev/null; then
  exec 9>>"$sd/$name.lock"
  locked=yes; flock -w {lock_timeout} 9 || locked=
else
  locked=yes
fi
"""

_FREEZE = _COMMON + r"""secs={seconds}
[ -n "$locked" ] || fail {exit_busy} "another ams is freezing or thawing $mp"
command -v setsid >/dev/null 2>&1 || fail 1 "setsid is not installed (util-linux)"
command -v findmnt >/dev/null 2>&1 || fail 1 "findmnt is not installed (util-linux)"
mounted || fail {exit_not_mounted} "nothing is mounted at $mp"
for host_path in {host_paths}; do
  [ -e "$host_path" ] || continue
  [ "$(findmnt -n -r -o MAJ:MIN -T "$host_path" 2>/dev/null | tail -n 1)" = "$dev" ] &&
    fail {exit_refused} "$mp is on the filesystem of $host_path: freezing it would hang the host"
done
if watchdog; then
  fail {exit_busy} "$mp is frozen by another ams (its watchdog is pid $pid)"
fi
rm -f "$pf" "$fired" "$freezer" "$err"
alive() {{
  st=
  {{ read -r _ _ st _ <"/proc/$1/stat"; }} 2>/dev/null
  [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}}
start_watchdog() {{
  setsid "$@" sh -c {watchdog} "$name-watchdog" "$pf" "$fired" "$secs" "$ff" "$mp" "$freezer" \
    </dev/null >/dev/null 2>&1 9>&- &
  job=$!
  i=0
  while [ "$i" -lt {start_tries} ]; do
    watchdog && return 0
    alive "$job" || return 1
    sleep 0.1
    i=$((i + 1))
  done
  kill -s TERM -- "-$job" 2>/dev/null || kill -s TERM "$job" 2>/dev/null
  return 1
}}
if command -v systemd-run >/dev/null 2>&1 &&
   start_watchdog systemd-run --scope --description="ams: thaws $mp ${{secs}}s after freezing it"; then
  :
elif start_watchdog; then
  :
else
  rm -f "$pf"
  fail 1 "cannot start the watchdog that thaws $mp if ams goes away"
fi
"$ff" -f "$mp" 2>"$err" &
echo "$!" >"$freezer"
wait "$!"
rc=$?
rm -f "$freezer"
out=$(oneline "$(cat "$err" 2>/dev/null)")
rm -f "$err"
if [ "$rc" -eq 0 ]; then
  if watchdog; then echo {frozen}; exit 0; fi
  "$ff" -u "$mp" >/dev/null 2>&1
  fail 1 "freezing $mp took longer than the watchdog's ${{secs}}s: it is thawed again"
fi
stop_watchdog
wait "$job" 2>/dev/null
case $out in
  *"Device or resource busy"*) fail {exit_busy} "$mp is already frozen (not by ams)";;
  *"Operation not supported"*|*"Inappropriate ioctl"*)
    fail 1 "cannot freeze $mp: its filesystem does not support freezing";;
  *) fail 1 "cannot freeze $mp: ${{out:-fsfreeze failed with status $rc}}";;
esac
"""

_THAW = _COMMON + r"""state={not_frozen}
if mounted; then
  if out=$("$ff" -u "$mp" 2>&1); then
    state={thawed}
  else
    case $out in
      *"Invalid argument"*) ;;
      *) out=$(oneline "$out"); fail 1 "cannot thaw $mp: ${{out:-fsfreeze failed}}";;
    esac
  fi
fi
stop_watchdog
if [ -e "$fired" ]; then state={thawed_by_watchdog}; fi
rm -f "$fired"
echo "$state"
"""


def check_freezable(mount_point):
    """The mount point in normal form when ams may freeze it, else UsageError.

    Freezing ``/`` or a system filesystem would stop the very programs (sshd, sudo, ams's own
    thaw) that end the freeze; the host script also refuses a mount point on their filesystem.
    """
    if isinstance(mount_point, str):
        value = re.sub(r"/{2,}", "/", mount_point)
        if len(value) > 1:
            value = value.rstrip("/")
        if value == "/" or value in SYSTEM_DIRECTORIES or any(value.startswith(tree + "/") for tree in SYSTEM_TREES):
            raise UsageError(
                f"cannot freeze {mount_point!r}: it is a system filesystem, and freezing it would hang "
                f"the host (sshd, sudo and the thaw itself write there)"
            )
    return check_mount_point(mount_point)


def check_watchdog_seconds(seconds):
    """``seconds`` when it is a number from MIN_WATCHDOG_S to MAX_WATCHDOG_S, else UsageError."""
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, (int, float))
        or not math.isfinite(seconds)
        or not MIN_WATCHDOG_S <= seconds <= MAX_WATCHDOG_S
    ):
        raise UsageError(
            f"invalid freeze timeout {seconds!r}: expected {MIN_WATCHDOG_S} to {MAX_WATCHDOG_S} seconds"
        )
    return seconds


def state_name(mount_point):
    """``ams-freeze-<hash of the mount point>``: the base name of the mount point's state files."""
    return "ams-freeze-" + hashlib.sha256(mount_point.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def watchdog_pid_path(mount_point, state_dir=STATE_DIR):
    """Where the freeze script keeps the pid of the mount point's watchdog."""
    return f"{_check_state_dir(state_dir)}/{state_name(mount_point)}.pid"


def _check_state_dir(state_dir):
    if not isinstance(state_dir, str) or not state_dir.startswith("/") or "\0" in state_dir:
        raise UsageError(f"invalid state directory {state_dir!r}: expected an absolute path")
    return state_dir.rstrip("/") or "/"


def _seconds_text(seconds):
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


def _render(template, mount_point, state_dir, **values):
    return template.format(
        mp=quote(mount_point),
        state_dir=quote(_check_state_dir(state_dir)),
        name=quote(state_name(mount_point)),
        lock_timeout=LOCK_TIMEOUT_S,
        exit_busy=EXIT_BUSY,
        **values,
    )


def _freeze_script(mount_point, seconds, state_dir, host_paths=HOST_PATHS, start_timeout=WATCHDOG_START_S):
    return _render(
        _FREEZE,
        mount_point,
        state_dir,
        seconds=quote(_seconds_text(seconds)),
        host_paths=join(host_paths),
        watchdog=quote(_WATCHDOG),
        start_tries=max(1, int(start_timeout * 10)),
        exit_not_mounted=EXIT_NOT_MOUNTED,
        exit_refused=EXIT_REFUSED,
        frozen=quote(FROZEN),
    )


def _thaw_script(mount_point, state_dir):
    return _render(
        _THAW,
        mount_point,
        state_dir,
        not_frozen=quote(NOT_FROZEN),
        thawed=quote(THAWED),
        thawed_by_watchdog=quote(THAWED_BY_WATCHDOG),
    )


def freeze_script(mount_point, watchdog_seconds, *, state_dir=STATE_DIR):
    """A POSIX sh script (run as root) that freezes the filesystem mounted at ``mount_point``.

    Under a lock per mount point: refuse (EXIT_NOT_MOUNTED) when nothing is mounted there,
    (EXIT_REFUSED) when it is the filesystem of one of HOST_PATHS, (EXIT_BUSY) when another
    ams's watchdog is alive or the filesystem is already frozen; start the watchdog (it thaws
    the filesystem ``watchdog_seconds`` after it started); ``fsfreeze -f``; print ``frozen``.
    A failed freeze stops the watchdog.  Every failure prints one line ``ams: <reason>`` on
    stderr.  When the script is killed midway the watchdog still thaws.
    """
    return _freeze_script(check_freezable(mount_point), check_watchdog_seconds(watchdog_seconds), state_dir)


def thaw_script(mount_point, *, state_dir=STATE_DIR):
    """A POSIX sh script (run as root) that thaws ``mount_point`` and stops its watchdog.

    Prints one of THAW_STATES and exits 0: ``thawed``; ``not frozen`` (also when nothing is
    mounted there; without findmnt it tries anyway); ``thawed by the watchdog`` when the
    watchdog thawed it first (the freeze did not last until this thaw).  When ``fsfreeze -u``
    fails otherwise: status 1, one line on stderr, and the watchdog is left to try again.
    """
    return _thaw_script(check_freezable(mount_point), state_dir)


def thaw_state(stdout):
    """The state the thaw script printed (one of THAW_STATES), else RemoteCommandError."""
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    if lines and lines[-1] in THAW_STATES:
        return lines[-1]
    raise RemoteCommandError(f"unexpected output of the thaw script: {stdout.strip()[:200]!r}")


def check_hook(text, *, name="hook"):
    """``text`` unchanged when it can be a hook command, else UsageError.

    A hook is one line (tabs allowed; no newline or other control character) of at most
    HOOK_MAX_LENGTH characters that is not blank.
    """
    if not isinstance(text, str):
        raise UsageError(f"invalid {name} {text!r}: expected a command")
    if len(text) > HOOK_MAX_LENGTH:
        raise UsageError(f"invalid {name} ({len(text)} characters): it is longer than {HOOK_MAX_LENGTH} characters")
    if not text.strip():
        raise UsageError(f"invalid {name} {text!r}: it is empty")
    for char in text:
        if char != "\t" and (unicodedata.category(char) in ("Cc", "Cs") or char in "\u2028\u2029"):
            raise UsageError(
                f"invalid {name} {text!r}: control characters such as {char!r} are not allowed "
                f"(write several commands on one line with ';' or '&&', or put them in a script on the host)"
            )
    return text


def hook_command(command, *, timeout=None, env=None):
    """The shell line that runs the hook ``command`` on the host (as the login user or with sudo).

    ``sh -c -- COMMAND`` with COMMAND quoted as one argument and stdin from /dev/null; ``env``
    ({NAME: value}) sets variables for it; ``timeout`` (seconds) kills it on the host with GNU
    ``timeout`` (SIGTERM, SIGKILL HOOK_KILL_AFTER_S later; exit status in HOOK_TIMEOUT_EXITS).
    """
    argv = ["sh", "-c", "--", check_hook(command)]
    if env:
        pairs = []
        for key, value in env.items():
            if not isinstance(key, str) or not _ENV_NAME_RE.fullmatch(key):
                raise UsageError(f"invalid hook environment variable name {key!r}")
            value = str(value)
            if "\0" in value:
                raise UsageError(f"invalid value of hook environment variable {key}: it contains NUL")
            pairs.append(f"{key}={value}")
        argv = ["env", *pairs, *argv]
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not (0 < timeout < math.inf):
            raise UsageError(f"invalid hook timeout {timeout!r}: expected a positive number of seconds")
        argv = ["timeout", "-k", _seconds_text(HOOK_KILL_AFTER_S), _seconds_text(timeout), *argv]
    return join(argv) + " </dev/null"


def hook_timed_out(exit_status):
    """Whether a hook run by :func:`hook_command` with a timeout was killed by it."""
    return exit_status in HOOK_TIMEOUT_EXITS

"""Freeze, thaw and hooks: arguments, quoting, and the scripts' behaviour under a local sh.

``fsfreeze`` is a stub on PATH (the host kernel cannot freeze test filesystems reliably): it keeps
the frozen state in files, answers like util-linux (``Device or resource busy``, ``Invalid
argument``), records its arguments and, like the ioctl, finishes a freeze it started even when
signalled.  Mount points are tmpfs mounts in a private mount namespace (``unshare -m``, root
only) so that ``findmnt`` sees real mounts; the real fsfreeze runs in the guest (service tests).
"""

import fcntl
import os
import shutil
import signal
import subprocess
import time

import pytest

from amslib.core.errors import RemoteCommandError, UsageError
from amslib.hostdisk import freeze as fz

# Debian's sh is dash, RHEL's is bash (POSIX mode when called as sh): the scripts run under both.
SHELLS = [argv for argv in (["dash"], ["bash", "--posix"]) if shutil.which(argv[0])] or [["sh"]]
shell = SHELLS[0]


@pytest.fixture(autouse=True, params=SHELLS, ids=lambda argv: argv[0])
def each_shell(request, monkeypatch):
    monkeypatch.setattr(f"{__name__}.shell", request.param)


NASTY = ["it's", "a b", "$(touch pwned)", "`touch pwned`", "x;y", "new\nline", "*", '"q"', "-n", "é",
         "tab\there", "back\\slash", "semi; touch pwned"]

STUB_FSFREEZE = r"""#!/bin/sh
# fsfreeze stub: state in $FSFREEZE_STUB; a freeze once started completes (like the ioctl)
trap '' TERM HUP INT
d=$FSFREEZE_STUB
{ printf '%s\0' "$@"; printf -- '--end--\0'; } >>"$d/calls"
key=$(printf '%s' "$2" | cksum | cut -d ' ' -f 1)
case $1 in
  -f)
    if [ -e "$d/fail-freeze" ]; then
      echo "fsfreeze: $2: freeze failed: $(cat "$d/fail-freeze")" >&2; exit 1
    fi
    if [ -e "$d/frozen.$key" ]; then
      echo "fsfreeze: $2: freeze failed: Device or resource busy" >&2; exit 1
    fi
    [ -e "$d/delay" ] && sleep "$(cat "$d/delay")"
    printf '%s' "$2" >"$d/frozen.$key"
    printf 'frozen %s\0' "$2" >>"$d/history"
    ;;
  -u)
    if [ -e "$d/fail-thaw" ]; then
      echo "fsfreeze: $2: unfreeze failed: $(cat "$d/fail-thaw")" >&2; exit 1
    fi
    if [ ! -e "$d/frozen.$key" ]; then
      echo "fsfreeze: $2: unfreeze failed: Invalid argument" >&2; exit 1
    fi
    rm -f "$d/frozen.$key"
    printf 'thawed %s\0' "$2" >>"$d/history"
    ;;
  *) echo "fsfreeze stub: unexpected arguments" >&2; exit 64;;
esac
"""

SYSTEMD_RUN = {
    # a systemd host: the command runs in a new scope, same pid
    "scope": r"""#!/bin/sh
{ printf '%s\0' "$@"; printf -- '--end--\0'; } >>"$FSFREEZE_STUB/systemd-run"
while [ $# -gt 0 ]; do case $1 in --*) shift;; *) break;; esac; done
exec "$@"
""",
    # installed, but systemd is not running (a container)
    "fails": "#!/bin/sh\necho 'System has not been booted with systemd as init system (PID 1).' >&2\nexit 1\n",
    # D-Bus hangs
    "hangs": "#!/bin/sh\necho $$ >\"$FSFREEZE_STUB/hang.pid\"\nexec sleep 60\n",
}

TOOLS = ["cat", "tr", "grep", "cut", "findmnt", "flock", "setsid", "sleep", "rm", "mv", "date", "tail", "cksum",
         "sh", "dash", "bash", "env", "timeout", "printf", "logger", "nsenter", "mount"]


class Stub:
    def __init__(self, root, systemd_run="scope"):
        self.dir = root / "stub"
        self.bin = root / "bin"
        self.dir.mkdir()
        self.bin.mkdir()
        self._script("fsfreeze", STUB_FSFREEZE)
        self.set_systemd_run(systemd_run)
        self.env = {**os.environ, "PATH": f"{self.bin}:{os.environ['PATH']}", "FSFREEZE_STUB": str(self.dir)}

    def _script(self, name, text):
        path = self.bin / name
        path.write_text(text)
        path.chmod(0o755)

    def set_systemd_run(self, kind):
        if kind is None:
            (self.bin / "systemd-run").unlink(missing_ok=True)
        else:
            self._script("systemd-run", SYSTEMD_RUN[kind])

    def only_tools(self, root, without):
        """An environment whose PATH holds the stub and TOOLS except ``without``."""
        tools = root / "tools"
        tools.mkdir()
        for name in TOOLS:
            found = shutil.which(name)
            if found and name != without:
                (tools / name).symlink_to(found)
        if without != "fsfreeze":
            (tools / "fsfreeze").symlink_to(self.bin / "fsfreeze")
        return {**self.env, "PATH": str(tools)}

    def calls(self, name="calls"):
        path = self.dir / name
        if not path.exists():
            return []
        calls, current = [], []
        for field in path.read_bytes().split(b"\0")[:-1]:
            if field == b"--end--":
                calls.append(current)
                current = []
            else:
                current.append(field.decode())
        return calls

    def frozen(self):
        found = []
        for path in self.dir.glob("frozen.*"):
            try:
                found.append(path.read_text())
            except FileNotFoundError:
                pass
        return sorted(found)

    def history(self):
        """What the stub froze and thawed, in order."""
        path = self.dir / "history"
        return path.read_text().split("\0")[:-1] if path.exists() else []

    def freeze_outside_ams(self, mount_point):
        subprocess.run(["fsfreeze", "-f", mount_point], env=self.env, check=True)
        (self.dir / "calls").unlink()

    def set(self, name, value):
        (self.dir / name).write_text(value)

    def clear(self, name):
        (self.dir / name).unlink()


class Namespace:
    """A private mount namespace (held by a sleeping process) for tmpfs mount points."""

    def __init__(self):
        self.holder = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sleep", "600"])
        deadline = time.monotonic() + 5
        mine = os.readlink("/proc/self/ns/mnt")
        while time.monotonic() < deadline:
            try:
                if os.readlink(f"/proc/{self.holder.pid}/ns/mnt") != mine:
                    return
            except OSError:
                pass
            time.sleep(0.01)
        raise RuntimeError("unshare did not enter a new mount namespace")

    @property
    def prefix(self):
        return ["nsenter", "-t", str(self.holder.pid), "-m", "--"]

    def mount(self, path, *source):
        os.makedirs(path, exist_ok=True)
        if source:
            argv = ["mount", "--bind", str(source[0]), str(path)]
        else:
            argv = ["mount", "-t", "tmpfs", "ams-test", str(path)]
        subprocess.run([*self.prefix, *argv], check=True)
        return str(path)

    def close(self):
        self.holder.kill()
        self.holder.wait()


def _can_unshare():
    if os.geteuid() != 0 or not all(shutil.which(tool) for tool in ("unshare", "nsenter", "findmnt", "setsid")):
        return False
    return subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode == 0


needs_mounts = pytest.mark.skipif(not _can_unshare(), reason="needs root and unshare -m (tmpfs mount points)")


@pytest.fixture
def stub(tmp_path):
    return Stub(tmp_path)


@pytest.fixture
def state(tmp_path):
    path = tmp_path / "run"
    path.mkdir()
    return str(path)


@pytest.fixture
def ns(tmp_path):
    namespace = Namespace()
    yield namespace
    namespace.close()
    _kill_leftovers(str(tmp_path))


def _kill_leftovers(marker):
    """Stop watchdogs and stubs a failed test left behind (their arguments name tmp_path)."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    cmdline = handle.read()
            except OSError:
                continue
            if marker.encode() in cmdline and int(entry) != os.getpid():
                try:
                    os.killpg(int(entry), signal.SIGKILL)
                except OSError:
                    try:
                        os.kill(int(entry), signal.SIGKILL)
                    except OSError:
                        pass


def run(script, env, ns=None, timeout=30):
    prefix = ns.prefix if ns else []
    return subprocess.run([*prefix, *shell, "-c", script], env=env, capture_output=True, timeout=timeout)


def freeze(mount_point, stub, state, ns=None, seconds=30, **kwargs):
    return run(fz._freeze_script(mount_point, seconds, state, **kwargs), stub.env, ns)


def thaw(mount_point, stub, state, ns=None):
    return run(fz._thaw_script(mount_point, state), stub.env, ns)


def proc_stat(pid):
    """(state, ppid, pgrp, session) of a live process, None when gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in "ZX" else (fields[0], int(fields[1]), int(fields[2]), int(fields[3]))


def group_alive(pgid):
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = proc_stat(entry)
            if stat and stat[2] == pgid:
                found.append(int(entry))
    return found


def watchdog_pid(mount_point, state):
    path = fz.watchdog_pid_path(mount_point, state)
    try:
        with open(path) as handle:
            return int(handle.read().strip())
    except FileNotFoundError:
        return None


def eventually(predicate, timeout=8.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def one_line(stderr):
    return stderr.startswith(b"ams: ") and stderr.count(b"\n") == 1


def leftovers(state):
    return sorted(name for name in os.listdir(state) if not name.endswith(".lock"))


# --- arguments ----------------------------------------------------------------------------------

@pytest.mark.parametrize("path, expected", [
    ("/data", "/data"), ("/data/", "/data"), ("//data//x/", "/data/x"), ("/var/lib/mysql", "/var/lib/mysql"),
    ("/mnt/x", "/mnt/x"), ("/srv/db", "/srv/db"), ("/home/app", "/home/app"), ("/tmp/scratch", "/tmp/scratch"),
])
def test_freezable(path, expected):
    assert fz.check_freezable(path) == expected


@pytest.mark.parametrize("path", [
    "/", "//", "///", "/usr", "/usr/", "/boot", "/boot/efi", "/usr/local", "/var", "/etc", "/etc/x", "/home",
    "/proc/x", "/sys/fs", "/dev/shm", "/run/user", "/lib/x", "/tmp", "/root", "/opt", "/mnt",
])
def test_system_filesystems_are_not_freezable(path):
    with pytest.raises(UsageError, match=r"^cannot freeze .*: it is a system filesystem, and freezing it would hang"):
        fz.check_freezable(path)


@pytest.mark.parametrize("path", ["", "data", "/da ta", "/data;id", "/da'ta", "/data/../x", None, 5, "/data\n"])
def test_freezable_mount_points_are_valid_mount_points(path):
    with pytest.raises(UsageError, match="^invalid mount point"):
        fz.check_freezable(path)


@pytest.mark.parametrize("path", ["/", "/usr", "/boot/efi", "relative", "/a b"])
def test_scripts_check_the_mount_point(path):
    with pytest.raises(UsageError):
        fz.freeze_script(path, 60)
    with pytest.raises(UsageError):
        fz.thaw_script(path)


@pytest.mark.parametrize("seconds", [1, 1.5, 60, fz.DEFAULT_WATCHDOG_S, 3599.5, 3600])
def test_watchdog_seconds_accepted(seconds):
    assert fz.check_watchdog_seconds(seconds) == seconds
    assert fz.freeze_script("/data", seconds)


@pytest.mark.parametrize("seconds", [0, 0.99, -1, 3600.5, 86400, float("nan"), float("inf"), True, "60", None])
def test_watchdog_seconds_refused(seconds):
    with pytest.raises(UsageError, match=r"^invalid freeze timeout .*: expected 1 to 3600 seconds$"):
        fz.freeze_script("/data", seconds)


@pytest.mark.parametrize("seconds, text", [(1, "1"), (60, "60"), (60.0, "60"), (1.5, "1.5"), (0.25, "0.25")])
def test_seconds_reach_the_watchdog_as_plain_numbers(seconds, text):
    assert f"\nsecs={text}\n" in fz._freeze_script("/data", seconds, "/run")


@pytest.mark.parametrize("state_dir", ["", "run", None, "/ru\0n"])
def test_state_dir_must_be_absolute(state_dir):
    with pytest.raises(UsageError, match="invalid state directory"):
        fz.freeze_script("/data", 60, state_dir=state_dir)
    with pytest.raises(UsageError, match="invalid state directory"):
        fz.thaw_script("/data", state_dir=state_dir)


def test_state_files_are_named_by_a_hash_of_the_mount_point():
    name = fz.state_name("/data")
    assert name.startswith("ams-freeze-") and len(name) == len("ams-freeze-") + 16
    assert int(name[-16:], 16) >= 0
    assert fz.state_name("/data") == name != fz.state_name("/data2")
    assert fz.state_name("it's $(x)\n").startswith("ams-freeze-")
    assert fz.watchdog_pid_path("/data") == f"/run/{name}.pid"
    assert fz.watchdog_pid_path("/data", "/var/run/") == f"/var/run/{name}.pid"


def test_everything_is_quoted():
    mount_point = "/mnt/it's $(id)"
    script = fz._freeze_script(mount_point, 60, "/run/a b")
    assert script.startswith("mp='/mnt/it'\"'\"'s $(id)'\n")
    assert "\nsd='/run/a b'\n" in script
    assert f"\nname={fz.state_name(mount_point)}\n" in script
    assert "for host_path in / /usr /var /etc /boot /run /tmp /home /root; do" in script
    thaw_text = fz._thaw_script("/mnt/it's $(id)", "/run")
    assert thaw_text.startswith("mp='/mnt/it'\"'\"'s $(id)'\n")


@pytest.mark.parametrize("build", [
    lambda: fz.freeze_script("/data", 60),
    lambda: fz.freeze_script("/var/lib/mysql", 1.5, state_dir="/var/run"),
    lambda: fz.thaw_script("/data"),
    lambda: fz._freeze_script("/it's \"$(x)\"\n;`y`", 60, "/r u'n"),
    lambda: fz._thaw_script("/it's \"$(x)\"\n;`y`", "/r u'n"),
    lambda: fz._WATCHDOG,
])
def test_script_syntax(build):
    for name in ("dash", "bash"):
        if shutil.which(name):
            result = subprocess.run([name, "-n", "-c", build()], capture_output=True)
            assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("text, expected", [
    ("thawed\n", fz.THAWED),
    ("not frozen\n", fz.NOT_FROZEN),
    ("thawed by the watchdog\n", fz.THAWED_BY_WATCHDOG),
    ("noise\nthawed\n\n", fz.THAWED),
    ("  not frozen  ", fz.NOT_FROZEN),
])
def test_thaw_state(text, expected):
    assert fz.thaw_state(text) == expected


@pytest.mark.parametrize("text", ["", "\n", "frozen\n", "thawed\nnoise\n", "Thawed"])
def test_thaw_state_refuses_anything_else(text):
    with pytest.raises(RemoteCommandError, match="unexpected output of the thaw script"):
        fz.thaw_state(text)


# --- hooks: arguments -----------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "echo hi", "  spaced  ", "a\tb", "systemctl stop my-app && sync", "echo 'é 😀'", "x" * fz.HOOK_MAX_LENGTH,
    "echo \"$(date)\"; `true`", "#", "-x",
])
def test_hooks_accepted_unchanged(text):
    assert fz.check_hook(text) is text


@pytest.mark.parametrize("text, reason", [
    ("", "it is empty"),
    ("   ", "it is empty"),
    ("\t", "it is empty"),
    ("echo a\necho b", "control characters"),
    ("echo a\n", "control characters"),
    ("echo\r", "control characters"),
    ("echo\0", "control characters"),
    ("echo \x1b[31m", "control characters"),
    ("echo \x7f", "control characters"),
    ("echo \x85", "control characters"),
    ("echo \udcff", "control characters"),
    ("echo \u2028", "control characters"),
    ("x" * (fz.HOOK_MAX_LENGTH + 1), "longer than 4096 characters"),
    (None, "expected a command"),
    (b"echo", "expected a command"),
])
def test_hooks_refused(text, reason):
    with pytest.raises(UsageError, match="^invalid hook") as caught:
        fz.check_hook(text)
    assert reason in caught.value.message and "\n" not in caught.value.message


def test_hook_name_in_messages():
    with pytest.raises(UsageError, match=r"^invalid --pre hook '': it is empty$"):
        fz.check_hook("", name="--pre hook")


@pytest.mark.parametrize("kwargs, expected", [
    ({}, "sh -c -- 'echo hi' </dev/null"),
    ({"timeout": 30}, "timeout -k 5 30 sh -c -- 'echo hi' </dev/null"),
    ({"timeout": 2.5}, "timeout -k 5 2.5 sh -c -- 'echo hi' </dev/null"),
    ({"env": {"AMS_HOOK": "pre"}}, "env AMS_HOOK=pre sh -c -- 'echo hi' </dev/null"),
    ({"env": {"AMS_MOUNT_POINT": "/a b", "N": 7}, "timeout": 1},
     "timeout -k 5 1 env 'AMS_MOUNT_POINT=/a b' N=7 sh -c -- 'echo hi' </dev/null"),
    ({"env": {}}, "sh -c -- 'echo hi' </dev/null"),
])
def test_hook_command_shape(kwargs, expected):
    assert fz.hook_command("echo hi", **kwargs) == expected


def test_hook_command_checks_the_hook():
    with pytest.raises(UsageError, match="invalid hook"):
        fz.hook_command("a\nb")


@pytest.mark.parametrize("env", [{"": "x"}, {"1A": "x"}, {"a": "x"}, {"A-B": "x"}, {"A B": "x"}, {"A=B": "x"},
                                 {"-A": "x"}, {5: "x"}])
def test_hook_environment_names(env):
    with pytest.raises(UsageError, match="invalid hook environment variable name"):
        fz.hook_command("true", env=env)


def test_hook_environment_values_without_nul():
    with pytest.raises(UsageError, match="contains NUL"):
        fz.hook_command("true", env={"A": "x\0y"})


@pytest.mark.parametrize("timeout", [0, -1, float("inf"), float("nan"), True, "5"])
def test_hook_timeouts(timeout):
    with pytest.raises(UsageError, match="invalid hook timeout"):
        fz.hook_command("true", timeout=timeout)


@pytest.mark.parametrize("status, expected",
                         [(124, True), (137, True), (0, False), (1, False), (127, False), (-1, False)])
def test_hook_timed_out(status, expected):
    assert fz.hook_timed_out(status) is expected


# --- hooks: behaviour (the line goes through a login shell, as sshd runs it) ---------------------

HOOKS = [
    "echo \"it's\"; echo 'a  b'",
    "printf '%s|' $(echo one two) \"$(echo 'x y')\"; echo",
    "echo $((1+2)); echo `echo bq`",
    "a=1; b=\"$a;2\"; echo \"$b\" | tr 1 X",
    "echo é ünï 😀",
    "printf '%s\\n' 'a\tb'",
    "false || echo \"fallback: $?\"",
    "for i in 1 2 3; do printf %s \"$i\"; done; echo",
    "echo \"a\\\\b\" 'c\\d'",
    "echo ${HOME:+home-set} ${NOPE:-default}",
    "printf '%s\\n' \"$@\"; echo \"#$#\"",
    "# only a comment",
    "{ echo grouped; echo err >&2; } 2>&1",
    "exit 7",
    "-x",
    "echo 'unbalanced",
    "cd / && pwd",
    "echo \"$0\"",
    "x='; touch pwned'; echo \"$x\"",
    "touch ./pwned-ok && ls pwned-ok && rm pwned-ok",
]


@pytest.mark.parametrize("command", HOOKS)
def test_hooks_run_as_written(tmp_path, command):
    direct = subprocess.run(["sh", "-c", "--", command], capture_output=True, cwd=tmp_path)
    line = fz.hook_command(command)
    via_login_shell = subprocess.run([*shell, "-c", line], capture_output=True, cwd=tmp_path)
    assert (via_login_shell.returncode, via_login_shell.stdout) == (direct.returncode, direct.stdout)
    assert not (tmp_path / "pwned").exists()
    timed = subprocess.run([*shell, "-c", fz.hook_command(command, timeout=20, env={"AMS_HOOK": "pre"})],
                           capture_output=True, cwd=tmp_path)
    assert (timed.returncode, timed.stdout) == (direct.returncode, direct.stdout)


def test_hook_environment_reaches_the_hook(tmp_path):
    env = {"AMS_MOUNT_POINT": "/da ta's $(touch pwned)", "AMS_HOOK": "post", "AMS_EMPTY": "", "AMS_Q": '"`;\\'}
    line = fz.hook_command('printf "%s\\0" "$AMS_MOUNT_POINT" "$AMS_HOOK" "${AMS_EMPTY-unset}" "$AMS_Q"', env=env)
    result = subprocess.run([*shell, "-c", line], capture_output=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split(b"\0")[:-1] == [value.encode() for value in env.values()]
    assert not (tmp_path / "pwned").exists()


def test_hook_stdin_is_empty():
    result = subprocess.run([*shell, "-c", fz.hook_command("cat; echo done")], input=b"secret\n",
                            capture_output=True, timeout=10)
    assert (result.returncode, result.stdout) == (0, b"done\n")


@pytest.mark.skipif(not shutil.which("timeout"), reason="GNU timeout is not installed")
def test_hook_timeout_kills_the_hook_and_its_children(tmp_path):
    started = time.monotonic()
    line = fz.hook_command(f"sleep 30 & echo $! >{tmp_path}/child; sleep 30", timeout=0.5)
    result = subprocess.run([*shell, "-c", line], capture_output=True, timeout=20)
    assert fz.hook_timed_out(result.returncode) and result.returncode == 124
    assert time.monotonic() - started < 5
    child = int((tmp_path / "child").read_text())
    assert eventually(lambda: proc_stat(child) is None, timeout=3)


@pytest.mark.skipif(not shutil.which("timeout"), reason="GNU timeout is not installed")
def test_hook_ignoring_sigterm_is_killed(monkeypatch):
    monkeypatch.setattr(fz, "HOOK_KILL_AFTER_S", 0.5)
    started = time.monotonic()
    line = fz.hook_command("trap '' TERM; sleep 30", timeout=0.5)
    assert line.startswith("timeout -k 0.5 0.5 ")
    result = subprocess.run([*shell, "-c", line], capture_output=True, timeout=20)
    assert result.returncode == 137 and fz.hook_timed_out(result.returncode)
    assert time.monotonic() - started < 5


def test_hook_within_its_timeout_keeps_its_status():
    result = subprocess.run([*shell, "-c", fz.hook_command("echo ok; exit 3", timeout=20)], capture_output=True)
    assert (result.returncode, result.stdout) == (3, b"ok\n")
    assert not fz.hook_timed_out(result.returncode)


# --- freeze and thaw without mounts ---------------------------------------------------------------

def test_nothing_mounted_is_refused(tmp_path, stub, state):
    directory = tmp_path / "data"
    directory.mkdir()
    result = freeze(str(directory), stub, state)
    assert result.returncode == fz.EXIT_NOT_MOUNTED
    assert result.stderr == f"ams: nothing is mounted at {directory}\n".encode() and result.stdout == b""
    missing = freeze(str(tmp_path / "missing"), stub, state)
    assert missing.returncode == fz.EXIT_NOT_MOUNTED
    assert stub.calls() == [] and leftovers(state) == []


def test_thaw_of_nothing_mounted_is_not_frozen(tmp_path, stub, state):
    result = thaw(str(tmp_path), stub, state)
    assert (result.returncode, result.stdout, result.stderr) == (0, b"not frozen\n", b"")
    assert fz.thaw_state(result.stdout.decode()) == fz.NOT_FROZEN
    assert stub.calls() == []


@pytest.mark.parametrize("tool, reason", [("fsfreeze", "fsfreeze is not installed"),
                                          ("setsid", "setsid is not installed"),
                                          ("findmnt", "findmnt is not installed")])
def test_missing_tools(tmp_path, stub, state, tool, reason):
    env = stub.only_tools(tmp_path, without=tool)
    result = run(fz._freeze_script(str(tmp_path), 30, state), env)
    assert result.returncode == 1 and one_line(result.stderr) and reason.encode() in result.stderr
    assert stub.calls() == [] and leftovers(state) == []


def test_thaw_without_findmnt_tries_anyway(tmp_path, stub, state):
    env = stub.only_tools(tmp_path, without="findmnt")
    stub.freeze_outside_ams(str(tmp_path))
    result = run(fz._thaw_script(str(tmp_path), state), env)
    assert (result.returncode, result.stdout, result.stderr) == (0, b"thawed\n", b"")
    assert stub.frozen() == []
    again = run(fz._thaw_script(str(tmp_path), state), env)
    assert (again.returncode, again.stdout) == (0, b"not frozen\n")


@pytest.mark.skipif(not os.path.isdir("/var/run"), reason="no /var/run")
def test_state_dir_falls_back_to_var_run(tmp_path, stub):
    mount_point = str(tmp_path / "never-mounted")
    try:
        script = fz._thaw_script(mount_point, str(tmp_path / "no-such-dir"))
        assert run(script, stub.env).stdout == b"not frozen\n"
        assert not (tmp_path / "no-such-dir").exists()
    finally:
        for suffix in (".lock", ".pid", ".fired"):
            try:
                os.unlink(f"/var/run/{fz.state_name(mount_point)}{suffix}")
            except FileNotFoundError:
                pass


# --- freeze and thaw on tmpfs mount points --------------------------------------------------------

@needs_mounts
def test_freeze_then_thaw(tmp_path, stub, state, ns):
    mp = ns.mount(tmp_path / "data")
    started = time.monotonic()
    result = freeze(mp, stub, state, ns, seconds=30)
    assert (result.returncode, result.stdout, result.stderr) == (0, b"frozen\n", b"")
    assert time.monotonic() - started < 10  # the watchdog does not hold the command's output open
    assert stub.frozen() == [mp]
    pid = watchdog_pid(mp, state)
    assert proc_stat(pid)[2:] == (pid, pid)  # its own process group and session
    assert ["--scope", f"--description=ams: thaws {mp} 30s after freezing it"] == stub.calls("systemd-run")[0][:2]

    result = thaw(mp, stub, state, ns)
    assert (result.returncode, result.stdout, result.stderr) == (0, b"thawed\n", b"")
    assert stub.frozen() == []
    assert eventually(lambda: not group_alive(pid), timeout=3)  # the watchdog and its sleep
    assert leftovers(state) == []
    assert stub.calls() == [["-f", mp], ["-u", mp]]
    again = thaw(mp, stub, state, ns)
    assert (again.returncode, again.stdout) == (0, b"not frozen\n")


@needs_mounts
def test_watchdog_thaws_when_nobody_else_does(tmp_path, stub, state, ns):
    mp = ns.mount(tmp_path / "data")
    assert freeze(mp, stub, state, ns, seconds=1).stdout == b"frozen\n"
    pid = watchdog_pid(mp, state)
    os.kill(pid, signal.SIGHUP)  # the SSH connection drops
    os.kill(pid, signal.SIGINT)
    assert stub.frozen() == [mp]
    assert eventually(lambda: stub.frozen() == [], timeout=6)
    assert eventually(lambda: not group_alive(pid), timeout=3)
    assert stub.calls() == [["-f", mp], ["-u", mp]]
    assert leftovers(state) == [fz.state_name(mp) + ".fired"]
    result = thaw(mp, stub, state, ns)
    assert (result.returncode, result.stdout, result.stderr) == (0, b"thawed by the watchdog\n", b"")
    assert leftovers(state) == []
    assert thaw(mp, stub, state, ns).stdout == b"not frozen\n"


@needs_mounts
def test_watchdog_survives_the_death_of_the_freeze_command(tmp_path, stub, state, ns):
    """GNU timeout (the sudo wrapper) or a dropped connection kills the command's process group."""
    mp = ns.mount(tmp_path / "data")
    stub.set("delay", "1.5")  # a long sync before the freeze completes
    process = subprocess.Popen([*ns.prefix, *shell, "-c", fz._freeze_script(mp, 1, state)], env=stub.env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    assert eventually(lambda: watchdog_pid(mp, state) is not None and stub.calls() == [["-f", mp]], timeout=5)
    os.killpg(process.pid, signal.SIGTERM)
    process.communicate(timeout=10)
    # the freeze completed after all, and the watchdog thawed it once it had
    assert eventually(lambda: stub.history() == [f"frozen {mp}", f"thawed {mp}"], timeout=8)
    assert eventually(lambda: not watchdogs(mp), timeout=3)
    assert stub.frozen() == [] and stub.calls()[-1] == ["-u", mp]
    assert thaw(mp, stub, state, ns).stdout == b"thawed by the watchdog\n"


@needs_mounts
def test_freeze_slower_than_the_watchdog_is_undone(tmp_path, stub, state, ns):
    mp = ns.mount(tmp_path / "data")
    stub.set("delay", "2")
    result = freeze(mp, stub, state, ns, seconds=1)
    assert result.returncode == 1 and one_line(result.stderr)
    assert f"freezing {mp} took longer than the watchdog's 1s: it is thawed again".encode() in result.stderr
    assert eventually(lambda: stub.history() == [f"frozen {mp}", f"thawed {mp}"], timeout=5)
    assert eventually(lambda: not watchdogs(mp), timeout=5)
    assert thaw(mp, stub, state, ns).returncode == 0
    assert stub.frozen() == []
    assert leftovers(state) == []


@needs_mounts
def test_already_frozen_outside_ams_is_left_frozen(tmp_path, stub, state, ns):
    mp = ns.mount(tmp_path / "data")
    stub.freeze_outside_ams(mp)
    result = freeze(mp, stub, state, ns, seconds=1)
    assert result.returncode == fz.EXIT_BUSY
    assert result.stderr == f"ams: {mp} is already frozen (not by ams)\n".encode()
    assert leftovers(state) == []
    time.sleep(1.5)  # the watchdog was stopped before it could thaw someone else's freeze
    assert stub.frozen() == [mp] and stub.calls() == [["-f", mp]]


@needs_mounts
def test_second_freeze_by_another_ams_is_refused(tmp_path, stub, state, ns):
    mp = ns.mount(tmp_path / "data")
    assert freeze(mp, stub, state, ns).returncode == 0
    pid = watchdog_pid(mp, state)
    result = freeze(mp, stub, state, ns)
    assert result.returncode == fz.EXIT_BUSY
    assert result.stderr == f"ams: {mp} is frozen by another ams (its watchdog is pid {pid})\n".encode()
    assert watchdog_pid(mp, state) == pid and proc_stat(pid) is not None
    assert stub.calls() == [["-f", mp]]
    assert thaw(mp, stub, state, ns).stdout == b"thawed\n"


@needs_mounts
def test_two_mount_points_are_independent(tmp_path, stub, state, ns):
    one, two = ns.mount(tmp_path / "one"), ns.mount(tmp_path / "two")
    assert freeze(one, stub, state, ns).returncode == 0
    assert freeze(two, stub, state, ns).returncode == 0
    assert stub.frozen() == sorted([one, two])
    assert thaw(one, stub, state, ns).stdout == b"thawed\n"
    assert stub.frozen() == [two] and proc_stat(watchdog_pid(two, state)) is not None
    assert thaw(two, stub, state, ns).stdout == b"thawed\n"


@needs_mounts
@pytest.mark.parametrize("message, expected", [
    ("Operation not supported", "its filesystem does not support freezing"),
    ("Inappropriate ioctl for device", "its filesystem does not support freezing"),
    ("Permission denied", "fsfreeze: {mp}: freeze failed: Permission denied"),
])
def test_failed_freeze_stops_the_watchdog(tmp_path, stub, state, ns, message, expected):
    mp = ns.mount(tmp_path / "data")
    stub.set("fail-freeze", message)
    result = freeze(mp, stub, state, ns)
    assert result.returncode == 1 and one_line(result.stderr)
    assert result.stderr.startswith(f"ams: cannot freeze {mp}: ".encode())
    assert expected.format(mp=mp).encode() in result.stderr
    assert leftovers(state) == [] and stub.frozen() == []
    assert eventually(lambda: not watchdogs(mp), timeout=3)


def _is_zombie(pid):
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def _cmdlines(with_pids=False):
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and proc_stat(entry):
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    line = handle.read().decode("utf-8", "replace")
            except OSError:
                continue
            found.append((int(entry), line) if with_pids else line)
    return found


def watchdogs(mount_point):
    marker = fz.state_name(mount_point) + "-watchdog"
    return sorted(pid for pid, line in _cmdlines(True) if marker in line.split("\0"))


@needs_mounts
def test_failed_thaw_keeps_the_watchdog(tmp_path, stub, state, ns):
    mp = ns.mount(tmp_path / "data")
    assert freeze(mp, stub, state, ns).returncode == 0
    pid = watchdog_pid(mp, state)
    stub.set("fail-thaw", "Input/output error")
    result = thaw(mp, stub, state, ns)
    assert result.returncode == 1
    assert result.stderr == f"ams: cannot thaw {mp}: fsfreeze: {mp}: unfreeze failed: Input/output error\n".encode()
    assert proc_stat(pid) is not None and watchdog_pid(mp, state) == pid
    stub.clear("fail-thaw")
    assert thaw(mp, stub, state, ns).stdout == b"thawed\n"
    assert eventually(lambda: not group_alive(pid), timeout=3)


@needs_mounts
@pytest.mark.parametrize("source", ["/", "/usr"])
def test_a_host_filesystem_is_refused_whatever_the_path(tmp_path, stub, state, ns, source):
    mp = ns.mount(tmp_path / "data", source)  # a bind mount of the root filesystem
    result = freeze(mp, stub, state, ns)
    assert result.returncode == fz.EXIT_REFUSED
    assert result.stderr.startswith(f"ams: {mp} is on the filesystem of /".encode()) and one_line(result.stderr)
    assert b"freezing it would hang the host" in result.stderr
    assert stub.calls() == [] and leftovers(state) == []


@needs_mounts
def test_a_bind_mount_of_a_protected_filesystem_is_refused(tmp_path, stub, state, ns):
    protected = ns.mount(tmp_path / "protected")
    subprocess.run([*ns.prefix, "mkdir", f"{protected}/sub"], check=True)
    mp = ns.mount(tmp_path / "data", f"{protected}/sub")
    result = freeze(mp, stub, state, ns, host_paths=[protected])
    assert result.returncode == fz.EXIT_REFUSED
    assert result.stderr == f"ams: {mp} is on the filesystem of {protected}: freezing it would hang the host\n".encode()
    other = ns.mount(tmp_path / "other")
    assert freeze(other, stub, state, ns, host_paths=[protected, str(tmp_path / "absent")]).returncode == 0
    assert thaw(other, stub, state, ns).stdout == b"thawed\n"


@needs_mounts
@pytest.mark.parametrize("name", NASTY)
def test_nasty_mount_points(tmp_path, stub, state, ns, name):
    mp = ns.mount(tmp_path / name)
    result = freeze(mp, stub, state, ns)
    assert (result.returncode, result.stdout) == (0, b"frozen\n"), result.stderr
    assert stub.frozen() == [mp]
    assert thaw(mp, stub, state, ns).stdout == b"thawed\n"
    assert stub.calls() == [["-f", mp], ["-u", mp]]
    assert leftovers(state) == []
    assert not list(tmp_path.glob("**/pwned")) and not os.path.exists("pwned")


@needs_mounts
def test_watchdog_thaws_a_nasty_mount_point_in_a_nasty_state_dir(tmp_path, stub, ns):
    state = tmp_path / "r u'n $(touch pwned)"
    state.mkdir()
    mp = ns.mount(tmp_path / "it's $(touch pwned); a b")
    assert freeze(mp, stub, str(state), ns, seconds=1).stdout == b"frozen\n"
    assert eventually(lambda: stub.frozen() == [], timeout=6)
    assert stub.calls() == [["-f", mp], ["-u", mp]]
    assert thaw(mp, stub, str(state), ns).stdout == b"thawed by the watchdog\n"
    assert not list(tmp_path.glob("**/pwned"))


@needs_mounts
def test_systemd_run_that_fails_falls_back_to_setsid(tmp_path, stub, state, ns):
    stub.set_systemd_run("fails")
    mp = ns.mount(tmp_path / "data")
    assert freeze(mp, stub, state, ns).stdout == b"frozen\n"
    pid = watchdog_pid(mp, state)
    assert proc_stat(pid)[2:] == (pid, pid)
    assert thaw(mp, stub, state, ns).stdout == b"thawed\n"
    assert eventually(lambda: not group_alive(pid), timeout=3)


@needs_mounts
def test_without_systemd_run(tmp_path, stub, state, ns):
    stub.set_systemd_run(None)
    env = stub.only_tools(tmp_path, without="systemd-run")
    mp = ns.mount(tmp_path / "data")
    result = run(fz._freeze_script(mp, 1, state), env, ns)
    assert result.stdout == b"frozen\n", result.stderr
    assert eventually(lambda: stub.frozen() == [], timeout=6)
    assert run(fz._thaw_script(mp, state), env, ns).stdout == b"thawed by the watchdog\n"


@needs_mounts
def test_systemd_run_that_hangs_is_stopped_and_setsid_used(tmp_path, stub, state, ns):
    stub.set_systemd_run("hangs")
    mp = ns.mount(tmp_path / "data")
    result = freeze(mp, stub, state, ns, start_timeout=0.5)
    assert result.stdout == b"frozen\n", result.stderr
    hung = int((stub.dir / "hang.pid").read_text())  # this test's own hanging systemd-run, not any `sleep 60`
    assert eventually(lambda: not os.path.exists(f"/proc/{hung}") or _is_zombie(hung), timeout=3)
    assert thaw(mp, stub, state, ns).stdout == b"thawed\n"


@needs_mounts
def test_a_watchdog_that_cannot_start_stops_the_freeze(tmp_path, stub, state, ns):
    stub._script("setsid", "#!/bin/sh\nexit 1\n")
    mp = ns.mount(tmp_path / "data")
    result = freeze(mp, stub, state, ns)
    assert result.returncode == 1
    assert result.stderr == f"ams: cannot start the watchdog that thaws {mp} if ams goes away\n".encode()
    assert stub.calls() == [] and leftovers(state) == []


@needs_mounts
def test_a_stale_pid_file_names_no_watchdog(tmp_path, stub, state, ns):
    mp = ns.mount(tmp_path / "data")
    bystander = subprocess.Popen(["sleep", "30"])
    try:
        with open(fz.watchdog_pid_path(mp, state), "w") as handle:
            handle.write(f"{bystander.pid}\n")
        result = thaw(mp, stub, state, ns)  # must not signal an unrelated process
        assert result.stdout == b"not frozen\n"
        assert bystander.poll() is None
        with open(fz.watchdog_pid_path(mp, state), "w") as handle:
            handle.write(f"{bystander.pid}\n")
        assert freeze(mp, stub, state, ns).stdout == b"frozen\n"  # not taken for a live watchdog
        assert watchdog_pid(mp, state) != bystander.pid
        assert thaw(mp, stub, state, ns).stdout == b"thawed\n"
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


@needs_mounts
@pytest.mark.parametrize("content", ["", "garbage\n", "-1\n", "1 2\n"])
def test_garbage_pid_files(tmp_path, stub, state, ns, content):
    mp = ns.mount(tmp_path / "data")
    with open(fz.watchdog_pid_path(mp, state), "w") as handle:
        handle.write(content)
    assert freeze(mp, stub, state, ns).stdout == b"frozen\n"
    assert thaw(mp, stub, state, ns).stdout == b"thawed\n"


@needs_mounts
def test_lock_held_by_another_freeze(tmp_path, stub, state, ns, monkeypatch):
    monkeypatch.setattr(fz, "LOCK_TIMEOUT_S", 1)
    mp = ns.mount(tmp_path / "data")
    with open(f"{state}/{fz.state_name(mp)}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = freeze(mp, stub, state, ns)
        assert result.returncode == fz.EXIT_BUSY
        assert result.stderr == f"ams: another ams is freezing or thawing {mp}\n".encode()
        assert stub.calls() == []
        stub.freeze_outside_ams(mp)
        assert thaw(mp, stub, state, ns).stdout == b"thawed\n"  # a thaw goes ahead after the wait
    assert freeze(mp, stub, state, ns).stdout == b"frozen\n"
    assert thaw(mp, stub, state, ns).stdout == b"thawed\n"


@needs_mounts
def test_thaw_when_only_something_else_froze_it(tmp_path, stub, state, ns):
    mp = ns.mount(tmp_path / "data")
    stub.freeze_outside_ams(mp)
    result = thaw(mp, stub, state, ns)
    assert (result.returncode, result.stdout) == (0, b"thawed\n")
    assert stub.frozen() == []


@needs_mounts
def test_concurrent_freezes_of_one_mount_point(tmp_path, stub, state, ns):
    mp = ns.mount(tmp_path / "data")
    processes = [subprocess.Popen([*ns.prefix, *shell, "-c", fz._freeze_script(mp, 30, state)], env=stub.env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(4)]
    results = [(process.wait(timeout=30), process.stdout.read(), process.stderr.read()) for process in processes]
    assert sorted(status for status, _, _ in results) == [0, fz.EXIT_BUSY, fz.EXIT_BUSY, fz.EXIT_BUSY]
    assert stub.calls() == [["-f", mp]]
    pid = watchdog_pid(mp, state)
    assert watchdogs(mp) == [pid]
    assert thaw(mp, stub, state, ns).stdout == b"thawed\n"
    assert eventually(lambda: not group_alive(pid), timeout=3)

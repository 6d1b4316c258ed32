"""HostDisk's host lock: the commands whose effect an undo must see run under flock(1) on the
host; after their connection dropped, ``settle`` waits for the lock before the undo looks."""

import shlex

import pytest

from amslib.core.errors import ConflictError, SshError
from amslib.hostdisk.remote import HOST_LOCK, HOST_LOCK_WAIT, HostDisk
from amslib.ssh.result import CommandResult


class Connection:
    """Records command lines; ``drop`` makes the next locked one raise SshError; ``status``: the
    exit status of the next locked one.  ``realpath`` answers its argument."""

    def __init__(self):
        self.lines, self.drop, self.status = [], False, 0

    def sudo(self, line, *, input=None, timeout=None, check=True):
        self.lines.append(line)
        if "realpath" in line:
            return CommandResult("h", line, 0, shlex.split(line)[-1].encode() + b"\n", b"")
        if "flock" not in line:
            return CommandResult("h", line, 0, b"", b"")
        if self.drop:
            self.drop = False
            raise SshError("host h: connection lost")
        status, self.status = self.status, 0
        result = CommandResult("h", line, status, b"", b"flock: failed to get lock\n" if status else b"")
        return result.check() if check else result

    run = sudo


@pytest.fixture
def host():
    conn = Connection()
    return HostDisk(lambda: conn, "h"), conn


def test_locked_commands_run_under_the_host_lock(host):
    disk, conn = host
    disk.mount("1b4e28ba-2fa1-11d2-883f-0016d3cca427", "/srv/a", "xfs")
    disk.mkfs(["mkfs.xfs", "/dev/nvme1n1"])
    locked = [shlex.split(line) for line in conn.lines if "flock" in line]
    assert [argv[argv.index("flock"):][:4] for argv in locked] == [["flock", "-w", str(HOST_LOCK_WAIT), HOST_LOCK]] * 2
    assert locked[0][-4:] == ["-t", "xfs", "UUID=1b4e28ba-2fa1-11d2-883f-0016d3cca427", "/srv/a"]
    assert locked[1][-2:] == ["mkfs.xfs", "/dev/nvme1n1"]
    assert not any("flock" in line for line in conn.lines if "mkdir" in line or "realpath" in line)


def test_settle_costs_nothing_when_no_connection_dropped(host):
    disk, conn = host
    disk.mkfs(["mkfs.xfs", "/dev/x"])
    sent = len(conn.lines)
    disk.settle()
    assert len(conn.lines) == sent and not disk.in_doubt


def test_a_dropped_locked_command_puts_the_host_in_doubt_until_settled(host):
    disk, conn = host
    conn.drop = True
    with pytest.raises(SshError):
        disk.mkfs(["mkfs.xfs", "/dev/x"])
    assert disk.in_doubt
    disk.settle()
    argv = shlex.split(conn.lines[-1])
    assert argv[argv.index("flock"):] == ["flock", "-w", str(HOST_LOCK_WAIT), HOST_LOCK, "true"]
    assert not disk.in_doubt
    sent = len(conn.lines)
    disk.settle()  # settled once is enough
    assert len(conn.lines) == sent


def test_a_lock_still_held_after_the_wait_is_one_clear_error(host):
    disk, conn = host
    conn.drop = True
    with pytest.raises(SshError):
        disk.mount("1b4e28ba-2fa1-11d2-883f-0016d3cca427", "/srv/a", "xfs")
    conn.status = 1
    with pytest.raises(ConflictError, match=f"^host h: a command of a dropped connection still holds {HOST_LOCK} after"):
        disk.settle()
    assert disk.in_doubt  # the next undo step tries again


def test_other_failures_leave_no_doubt(host):
    disk, conn = host
    conn.status = 32
    with pytest.raises(Exception):
        disk.mkfs(["mkfs.xfs", "/dev/x"])
    assert not disk.in_doubt

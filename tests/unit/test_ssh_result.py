"""CommandResult: text decoding and check() messages."""

import pytest

from amslib.core.errors import RemoteCommandError
from amslib.ssh.result import CommandResult, stderr_tail


def result(status, stderr=b"", command="mkfs.xfs /dev/nvme1n1"):
    return CommandResult(host="u@h:22", command=command, exit_status=status, stdout=b"ok\xff\n", stderr=stderr)


def test_check_passes_on_zero():
    ok = result(0)
    assert ok.check() is ok and ok.ok
    assert ok.text == "ok\ufffd\n"


def test_check_names_host_status_command_and_stderr_tail():
    with pytest.raises(RemoteCommandError) as failure:
        result(1, b"line 1\n\nline 2\nline 3\nline 4\n").check()
    message = str(failure.value)
    assert message == ("command on u@h:22 exited with status 1: mkfs.xfs /dev/nvme1n1 "
                       "(stderr: line 2 | line 3 | line 4)")
    assert failure.value.exit_status == 1 and failure.value.command == "mkfs.xfs /dev/nvme1n1"


def test_killed_by_signal_and_long_command():
    with pytest.raises(RemoteCommandError, match=r"was killed by a signal: x{197}\.\.\.$"):
        result(-1, command="x" * 1000).check()


def test_stderr_tail_is_bounded():
    tail = stderr_tail(b"y" * 10000)
    assert len(tail) == 400 and tail.startswith("...")
    assert stderr_tail(b"") == "" and stderr_tail(None) == ""


def test_a_failing_script_is_shown_on_one_line():
    result = CommandResult("db1", "set -e\n  mkdir -p /x\n  mount /x\n", 3, b"", b"mount: failed\n")
    with pytest.raises(RemoteCommandError) as err:
        result.check()
    assert "\n" not in str(err.value) and "set -e; mkdir -p /x; mount /x" in str(err.value)

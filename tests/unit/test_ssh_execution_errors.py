"""Failures of the SSH layer while a command runs are SshErrors (exit 6), on one line."""

import socket
import threading

import paramiko
import pytest

from amslib.core.errors import SshError
from amslib.ssh.execution import execute


class FakeTransport:
    def __init__(self, channel, active=True):
        self.channel = channel
        self.active = active

    def open_session(self, timeout=None):
        return self.channel

    def is_active(self):
        return self.active


class FakeChannel:
    """A channel whose exec_command or recv raises ``error``."""

    def __init__(self, error, where):
        self.error = error
        self.where = where
        self.status_event = threading.Event()
        self.closed = False
        self.eof_received = False
        self.transport = None
        self.remote_chanid = 0
        self.calls = []

    def get_transport(self):
        return self.transport

    def exec_command(self, command):
        if self.where == "exec":
            raise self.error

    def fileno(self):
        return -1

    def send_ready(self):
        return True

    def shutdown_write(self):
        self.calls.append("shutdown_write")

    def recv_ready(self):
        return self.where == "recv"

    def recv(self, size):
        raise self.error

    def recv_stderr_ready(self):
        return False

    def close(self):
        self.closed = True


@pytest.mark.parametrize("where", ["exec", "recv"])
@pytest.mark.parametrize("error", [
    paramiko.SSHException("Channel closed.\nmore"),
    EOFError(),
    socket.error("Connection reset by peer"),
    paramiko.ChannelException(2, "Connect failed"),
])
def test_raw_ssh_failures_become_one_line_ssh_errors(where, error):
    channel = FakeChannel(error, where)
    channel.transport = FakeTransport(channel, active=False)
    with pytest.raises(SshError) as failure:
        execute(channel.transport, "echo secret-free", host="u@h:22", timeout=5)
    message = str(failure.value)
    assert failure.value.exit_code == 6
    assert "\n" not in message
    assert message.startswith("SSH failure on u@h:22 while running echo secret-free: ")
    assert message.split(": ", 1)[1]  # a reason is given, even for a bare EOFError
    assert channel.closed


def test_other_exceptions_pass_unchanged():
    channel = FakeChannel(KeyboardInterrupt(), "exec")
    channel.transport = FakeTransport(channel, active=False)
    with pytest.raises(KeyboardInterrupt):
        execute(channel.transport, "true", host="h", timeout=5)

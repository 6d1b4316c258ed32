"""Run one command on an SSH channel: stdin, stdout and stderr at once, a deadline.

stdout and stderr are read in the same loop as stdin is written, so neither
a large output nor a large input can deadlock on the SSH flow-control window.
No pty is requested: stdout and stderr stay apart and bytes pass unchanged.
"""

import logging
import select
import time

import paramiko
from paramiko.common import cMSG_CHANNEL_REQUEST

from ..core.errors import CommandTimeoutError, SshError
from .result import CommandResult, shorten

log = logging.getLogger("ams.ssh.exec")

CHUNK = 32768
POLL = 0.5  # seconds between checks when nothing happens
KILL_GRACE = 1.0  # seconds between SIGTERM and SIGKILL on timeout


class Exchange:
    """What flows besides stdout: stdin to send, stderr to filter.

    The plain exchange sends ``input`` then end-of-file and keeps stderr as
    it is; sudo's exchange (``sudo.SudoExchange``) answers the password prompt
    first.
    """

    def __init__(self, input=None):
        self._stdin = bytearray(input or b"")
        self.stdin_complete = True  # all stdin is queued: send EOF once it is written

    def take_stdin(self):
        """Bytes queued for stdin (and forget them)."""
        data, self._stdin = bytes(self._stdin), bytearray()
        return data

    def queue_stdin(self, data):
        self._stdin += data

    def filter_stderr(self, chunk):
        """The part of ``chunk`` that belongs to the command's stderr."""
        return chunk

    def check_time(self):
        """Called on every turn of the loop (may raise when a phase takes too long)."""

    def finish(self, exit_status):
        """Called once the channel ended (may raise)."""


def _send_signal(channel, name):
    """Ask sshd to signal the command's process group (RFC 4254 "signal" request).

    paramiko has no public call for it; OpenSSH's sshd kills the session's
    process group with it.
    """
    try:
        message = paramiko.Message()
        message.add_byte(cMSG_CHANNEL_REQUEST)
        message.add_int(channel.remote_chanid)
        message.add_string("signal")
        message.add_boolean(False)
        message.add_string(name)
        channel.transport._send_user_message(message)
    except Exception as exc:  # best effort: the channel may be gone already
        log.debug("could not send signal %s: %s", name, exc)


def kill(channel):
    """End the remote command: EOF on its stdin and SIGTERM, SIGKILL if it lingers; close."""
    try:
        channel.shutdown_write()  # e.g. sudo waiting for a password gives up at once
    except (OSError, EOFError, paramiko.SSHException):
        pass
    transport = channel.get_transport()
    if transport is None or not transport.is_active():  # nobody left to signal
        channel.close()
        return
    _send_signal(channel, "TERM")
    if not channel.status_event.wait(KILL_GRACE):
        _send_signal(channel, "KILL")
    channel.close()


def execute(transport, command, *, host, timeout=None, exchange=None, shown=None):
    """Run ``command`` on a new session channel of ``transport``; return a CommandResult.

    ``timeout`` (seconds, None/0 = none) covers the whole command; when it
    passes the remote command is killed and CommandTimeoutError raised.
    ``shown`` is the command as it appears in messages (default ``command``).
    """
    exchange = exchange or Exchange()
    shown = shown if shown is not None else command
    deadline = time.monotonic() + timeout if timeout else None
    try:
        channel = transport.open_session(timeout=timeout or None)
    except (paramiko.SSHException, EOFError, OSError) as exc:
        raise SshError(f"cannot open a session on {host}: {exc or exc.__class__.__name__}") from None
    log.debug("run on %s: %s", host, shorten(shown, 500))
    started = time.monotonic()
    try:
        channel.exec_command(command)
        stdout, stderr = _pump(channel, exchange, deadline, host, shown, timeout)
        remaining = None if deadline is None else max(deadline - time.monotonic(), 0.1)
        channel.status_event.wait(remaining)
        exit_status = channel.exit_status if channel.status_event.is_set() else -1
        if exit_status == -1 and not transport.is_active():
            raise SshError(f"connection to {host} lost while running: {shorten(shown, 200)}")
        exchange.finish(exit_status)
    except (paramiko.SSHException, EOFError, OSError) as exc:  # the SSH layer failed, not ams
        kill(channel)
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise SshError(f"SSH failure on {host} while running {shorten(shown, 200)}: {reason}") from None
    except BaseException:
        kill(channel)
        raise
    finally:
        channel.close()
    log.debug("exit %s after %.2fs on %s (%d bytes stdout, %d bytes stderr)",
              exit_status, time.monotonic() - started, host, len(stdout), len(stderr))
    return CommandResult(host=host, command=shown, exit_status=exit_status,
                         stdout=bytes(stdout), stderr=bytes(stderr))


def _pump(channel, exchange, deadline, host, shown, timeout):
    """Move data until the remote side closed its output; return (stdout, stderr)."""
    stdout, stderr = bytearray(), bytearray()
    pending = bytearray()
    eof_sent = False
    wakeup = channel.fileno()  # readable whenever stdout or stderr data arrives
    while True:
        pending += exchange.take_stdin()
        if pending and channel.send_ready():
            try:
                sent = channel.send(bytes(pending[:CHUNK]))
            except OSError:  # the command closed its stdin or ended
                sent = len(pending)
            del pending[:sent]
        if not pending and exchange.stdin_complete and not eof_sent:
            channel.shutdown_write()
            eof_sent = True
        while channel.recv_ready():
            stdout += channel.recv(CHUNK)
        while channel.recv_stderr_ready():
            stderr += exchange.filter_stderr(channel.recv_stderr(CHUNK))
        exchange.check_time()
        if (channel.eof_received or channel.closed) and not (
            channel.recv_ready() or channel.recv_stderr_ready()
        ):
            return stdout, stderr
        wait = 0.01 if pending else POLL
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CommandTimeoutError(
                    f"command on {host} did not finish within {timeout:g}s and was killed: "
                    f"{shorten(shown, 200)}"
                )
            wait = min(wait, left)
        try:
            select.select([wakeup], [], [], wait)
        except (OSError, ValueError):  # the channel was closed under us
            time.sleep(wait)

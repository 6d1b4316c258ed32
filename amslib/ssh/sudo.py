"""sudo over SSH without a pty, with or without a password.

The command line is ``sudo -n -- sh -c SCRIPT`` (no password configured) or
``sudo -k -S -p PROMPT -- sh -c SCRIPT`` (password configured: sudo reads it
from stdin; ``-k`` makes it ask every time so the password line can never
reach the command).  SCRIPT prints a one-off *ready marker* on stderr as root
and then runs the command with ``sh -c`` (under ``timeout`` when the call has
a time limit: the client's signal cannot reach a root process), so:

- everything sudo says before the marker is sudo's, not the command's: a
  missing or refused password is told apart from the command's own failure;
- the password is written only after sudo printed its (one-off) prompt, and a
  second prompt means it was wrong: fail at once instead of waiting for sudo's
  retries;
- the command's own stdin (``input=``) is sent only after the marker.

The password is never part of a command line or a log record.
"""

import logging
import secrets
import time

from ..core.errors import SudoError
from .execution import Exchange
from .quoting import join
from .result import stderr_tail

log = logging.getLogger("ams.ssh.sudo")

# $1 ready marker, $2 the command, $3 time limit in seconds ("0": none).  The
# limit is enforced on the host as well because the client cannot signal a
# process running as root: GNU timeout kills the whole process group.
READY_SCRIPT = (
    'printf "%s\\n" "$1" >&2 || exit 125; '
    'if [ "$3" != 0 ] && command -v timeout >/dev/null 2>&1; '
    'then exec timeout -k 2 "$3" sh -c "$2"; else exec sh -c "$2"; fi'
)


def sudo_command(command, *, token, with_password, user=None, timeout=None):
    """The full remote command line running ``command`` (a shell string) as root/``user``.

    ``timeout`` (seconds) also limits the command on the host (if it has GNU timeout).
    """
    argv = ["sudo"]
    if with_password:
        argv += ["-k", "-S", "-p", prompt_marker(token)]
    else:
        argv += ["-n"]
    if user:
        argv += ["-u", user]
    limit = f"{timeout:.1f}" if timeout else "0"
    argv += ["--", "sh", "-c", READY_SCRIPT, "sh", ready_marker(token), command, limit]
    return join(argv)


def prompt_marker(token):
    return f"[ams-sudo-prompt-{token}]"


def ready_marker(token):
    return f"ams-sudo-ready-{token}"


def new_token():
    return secrets.token_hex(8)


class SudoExchange(Exchange):
    """Answer sudo's prompt, recognise its failures, then pass the command's I/O."""

    def __init__(self, *, token, password, input, host, login, start_timeout=None):
        super().__init__()
        self._start_timeout = start_timeout
        self._start_deadline = time.monotonic() + start_timeout if start_timeout else None
        self.stdin_complete = False
        self._password = password
        self._input = input or b""
        self._prompt = prompt_marker(token).encode()
        self._ready = ready_marker(token).encode() + b"\n"
        self._host = host
        self._login = login
        self._preamble = bytearray()  # sudo's own stderr, before the ready marker
        self._prompts = 0
        self.running = False

    def filter_stderr(self, chunk):
        if self.running:
            return chunk
        self._preamble += chunk
        while self._prompt in self._preamble:
            self._preamble = self._preamble.replace(self._prompt, b"", 1)
            self._prompts += 1
            if self._password is None:
                raise SudoError(self._needs_password())
            if self._prompts > 1:
                raise SudoError(f"sudo on {self._host}: wrong password for {self._login} (SUDO_PASSWORD)")
            log.debug("sudo on %s asked for the password; sending it on stdin", self._host)
            self.queue_stdin(self._password.encode() + b"\n")
        index = self._preamble.find(self._ready)
        if index < 0:
            return b""
        rest = bytes(self._preamble[index + len(self._ready):])
        del self._preamble[index:]
        self.running = True
        self.queue_stdin(self._input)
        self.stdin_complete = True
        return rest

    def check_time(self):
        """Fail when sudo neither asked in the expected way nor started the command in time.

        (A sudoers ``passprompt_override`` or a PAM module with its own prompt
        would otherwise leave sudo waiting for a password until the command's
        time limit.)
        """
        if self.running or self._start_deadline is None or time.monotonic() < self._start_deadline:
            return
        said = stderr_tail(bytes(self._preamble))
        raise SudoError(f"sudo on {self._host} did not start the command within {self._start_timeout:g}s"
                        + (f" (sudo said: {said})" if said else ""))

    def _needs_password(self):
        return f"sudo on {self._host} needs a password for {self._login} and none is configured (SUDO_PASSWORD)"

    def finish(self, exit_status):
        if self.running:
            return
        text = self._preamble.decode("utf-8", "replace")
        low = text.lower()
        if exit_status == 127 and "not found" in low:
            message = f"sudo is not installed on {self._host}"
        elif "a password is required" in low or "a terminal is required" in low:
            message = self._needs_password()
        elif "incorrect password" in low or "sorry, try again" in low:
            message = f"sudo on {self._host}: wrong password for {self._login} (SUDO_PASSWORD)"
        elif "not in the sudoers" in low or "not allowed" in low or "may not run sudo" in low:
            message = f"{self._login} may not use sudo on {self._host}: {stderr_tail(text)}"
        else:
            message = f"sudo failed on {self._host} (exit status {exit_status}): {stderr_tail(text) or 'no message'}"
        raise SudoError(message)

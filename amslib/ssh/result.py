"""The outcome of one remote command."""

import re
from dataclasses import dataclass

from ..core.errors import RemoteCommandError

COMMAND_SHOWN = 200  # characters of the command quoted in error messages
STDERR_TAIL_LINES = 3
STDERR_TAIL_CHARS = 400


def shorten(text, limit):
    """``text`` on one line (a script's line breaks shown as '; '), cut to ``limit`` characters
    (with an ellipsis when cut): error messages are one line."""
    text = re.sub(r"\s*\n\s*", "; ", text.strip())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def stderr_tail(stderr):
    """The last few non-empty stderr lines as one line (for error messages)."""
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else (stderr or "")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    tail = " | ".join(lines[-STDERR_TAIL_LINES:])
    return tail if len(tail) <= STDERR_TAIL_CHARS else "..." + tail[-(STDERR_TAIL_CHARS - 3):]


@dataclass(frozen=True)
class CommandResult:
    """stdout and stderr (bytes, kept apart) and the exit status of a command.

    ``exit_status`` is -1 when the remote process ended without one (killed by
    a signal).
    """

    host: str
    command: str
    exit_status: int
    stdout: bytes
    stderr: bytes

    @property
    def ok(self):
        return self.exit_status == 0

    @property
    def text(self):
        """stdout decoded as UTF-8 (undecodable bytes replaced)."""
        return self.stdout.decode("utf-8", "replace")

    @property
    def stderr_text(self):
        return self.stderr.decode("utf-8", "replace")

    def check(self):
        """Return self, or raise RemoteCommandError if the command failed."""
        if self.exit_status != 0:
            status = "was killed by a signal" if self.exit_status < 0 else f"exited with status {self.exit_status}"
            tail = stderr_tail(self.stderr)
            message = f"command on {self.host} {status}: {shorten(self.command, COMMAND_SHOWN)}"
            if tail:
                message += f" (stderr: {tail})"
            raise RemoteCommandError(
                message, command=self.command, exit_status=self.exit_status, stderr=self.stderr
            )
        return self

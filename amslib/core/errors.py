"""One error hierarchy for ams.

Every failure a user can meet is an :class:`AmsError` subclass carrying the
process exit code.  The CLI prints ``ams: error: <message>`` on stderr and
exits with ``exit_code``; tracebacks only appear with ``--debug``.
Messages must never contain secrets (passwords, private keys).
"""


class AmsError(Exception):
    """Base class: a failure with a one-line message and an exit code."""

    exit_code = 1

    def __init__(self, message, *, hint=None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self):
        return self.message


class UsageError(AmsError):
    """The command line or an input value is invalid (same code as argparse)."""

    exit_code = 2


class NotFoundError(AmsError):
    """A host, volume group, snapshot group, schedule ... does not exist."""

    exit_code = 3


class ConflictError(AmsError):
    """The request clashes with the current state (already exists, in use, ...)."""

    exit_code = 4


class BusyError(ConflictError):
    """Another ams is changing the same volume group now (its lock did not free up in
    LOCK_WAIT seconds); trying again later may succeed."""

    exit_code = 11


class RemoteCommandError(AmsError):
    """A command run on a host exited non-zero."""

    exit_code = 5

    def __init__(self, message, *, command=None, exit_status=None, stderr=None, hint=None):
        super().__init__(message, hint=hint)
        self.command = command
        self.exit_status = exit_status
        self.stderr = stderr


class SshError(AmsError):
    """Could not reach, authenticate to or talk to a host over SSH."""

    exit_code = 6


class SshConnectError(SshError):
    """Host unreachable, connection refused or connect timeout."""


class SshAuthError(SshError):
    """Authentication failed (the message names the method tried)."""


class HostKeyError(SshError):
    """The host key is unknown (strict policy) or has changed."""


class SudoError(SshError):
    """sudo needs a password that was not given, or the password is wrong."""


class CommandTimeoutError(SshError):
    """A remote command did not finish within its timeout."""

    exit_code = 10


class AwsError(AmsError):
    """The EC2 API refused or failed a request."""

    exit_code = 7


class DatabaseError(AmsError):
    """The state database is unreachable, refused the login or failed."""

    exit_code = 8


class SchemaError(DatabaseError):
    """The database schema is missing, behind or ahead of this version of ams."""


class ConfigError(AmsError):
    """The settings file or an AMS_* environment variable is invalid."""

    exit_code = 9


class Unhealthy(AmsError):
    """A verified restore (``snapshot verify``) has findings; ``report`` holds them."""

    exit_code = 12

    def __init__(self, message, *, report=None, hint=None):
        super().__init__(message, hint=hint)
        self.report = report


class Interrupted(AmsError):
    """The user pressed Ctrl-C."""

    exit_code = 130

"""Quoting for the remote shell: every value that reaches a shell goes through here."""

import shlex


def quote(value):
    """Quote one value for a POSIX shell (``str()`` of non-strings, e.g. numbers)."""
    if isinstance(value, bytes):
        raise TypeError("quote() takes text, not bytes")
    return shlex.quote(str(value))


def join(args):
    """Quote each argument and join them into one shell command line."""
    if isinstance(args, (str, bytes)):
        raise TypeError("join() takes a sequence of arguments, not a single string")
    return " ".join(quote(arg) for arg in args)

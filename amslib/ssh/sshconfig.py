"""The ssh config read as OpenSSH reads it where paramiko does not.

paramiko's ``SSHConfig`` (5.x) has no ``Include``, and it expands ProxyCommand
tokens (``%h %p %r``, and ``~`` anywhere) from the config alone, at lookup
time.  Here:

- ``Include`` (anywhere, several patterns per line, globs, ``~``) is
  replaced by the files it names; relative paths are relative to ``~/.ssh``
  as for OpenSSH's user config; missing files are ignored; after the included
  text the enclosing ``Host``/``Match`` block goes on, as in OpenSSH;
- ProxyCommand is left as written; :func:`proxy_command_line` expands its
  OpenSSH tokens (``%% %h %n %p %r``) with the port and user ams really uses.
  The expanded values reach ``sh`` unquoted (as in OpenSSH, where the config
  may quote them), so a user or host name with shell metacharacters is
  refused, as OpenSSH 9.6+ refuses them on its command line.
"""

import glob
import io
import os
import re
import shlex

import paramiko

from ..core.errors import ConfigError

MAX_INCLUDE_DEPTH = 16  # as OpenSSH's READCONF_MAX_DEPTH

_INCLUDE = re.compile(r"^\s*include(?:\s*=\s*|\s+)(.*?)\s*$", re.IGNORECASE)
_BLOCK = re.compile(r"^\s*(?:host|match)(?:\s*=\s*|\s+)", re.IGNORECASE)
# what a user or host name expanded into a ProxyCommand must not contain: anything sh treats
# specially (quotes, $, `, \, ;, &, |, <, >, (), {}, globs, ~, #, !) or that splits words
_SHELL_SPECIAL = re.compile(r"[\s'`\"$\\;&<>|(){}*?\[\]~#!\x00-\x1f\x7f]")
_TOKEN_NAMES = {"h": "host name", "n": "host alias", "r": "user name"}


class SshConfig(paramiko.SSHConfig):
    """paramiko's SSHConfig with ProxyCommand left unexpanded."""

    TOKENS_BY_CONFIG_KEY = {key: tokens for key, tokens in paramiko.SSHConfig.TOKENS_BY_CONFIG_KEY.items()
                            if key != "proxycommand"}


def read_ssh_config(path, *, base_dir=None):
    """Parse the ssh config file ``path`` with its Includes (OSError if unreadable)."""
    base_dir = base_dir or os.path.expanduser("~/.ssh")
    config = SshConfig()
    config.parse(io.StringIO("".join(_lines(path, base_dir, 0))))
    return config


def _lines(path, base_dir, depth):
    with open(path) as fh:
        lines = fh.readlines()
    block = "Host *\n"  # the Host/Match line the current lines belong to
    for line in lines:
        line = line if line.endswith("\n") else line + "\n"
        include = _INCLUDE.match(line)
        if include is None:
            if _BLOCK.match(line):
                block = line
            yield line
            continue
        if depth >= MAX_INCLUDE_DEPTH:
            raise ConfigError(f"ssh config: Include nested more than {MAX_INCLUDE_DEPTH} deep in {path} (a loop?)")
        try:
            patterns = shlex.split(include.group(1))
        except ValueError as exc:
            raise ConfigError(f"ssh config: bad Include line in {path}: {exc}") from None
        for pattern in patterns:
            pattern = os.path.expanduser(pattern)
            if not os.path.isabs(pattern):
                pattern = os.path.join(base_dir, pattern)
            for name in sorted(glob.glob(pattern)):
                if os.path.isfile(name):
                    yield from _lines(name, base_dir, depth + 1)
                    yield block  # the included file may have opened other blocks


def proxy_command_line(template, *, hostname, port, user, alias):
    """``template`` (a ProxyCommand) with ``%h %p %r %n %%`` expanded as OpenSSH does."""
    values = {"%": "%", "h": hostname, "p": str(port), "r": user, "n": alias}

    def replace(match):
        token = match.group(1)
        if token not in values:
            raise ConfigError(f"ssh config: ProxyCommand for {alias} has unknown token %{token}"
                              f" (known: %%, %h, %n, %p, %r)")
        value = values[token]
        if token in _TOKEN_NAMES and _SHELL_SPECIAL.search(value):
            raise ConfigError(f"ssh config: ProxyCommand for {alias!r}: the {_TOKEN_NAMES[token]} {value!r} contains"
                              f" characters a shell interprets; refusing to put it (%{token}) into a shell command")
        return value

    return re.sub(r"%(.?)", replace, template)


def shell_argv(command):
    """argv running ``command`` as OpenSSH runs a ProxyCommand: ``exec`` it in ``sh -c``."""
    return ["/bin/sh", "-c", "exec " + command]

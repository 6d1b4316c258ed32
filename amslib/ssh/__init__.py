"""SSH to hosts (paramiko): login, run/sudo with separate stdout/stderr, host keys, pool.

Public API::

    from amslib.ssh import connect, SshPool, quote, join
    with SshPool(settings) as pool:
        host = pool.get("db1")                       # HostConnection
        host.run("cat /proc/mdstat", check=True).text
        host.sudo(join(["mkfs.xfs", device]), check=True)
"""

import logging

from .client import HostConnection, connect
from .options import ConnectOptions, resolve_options
from .pool import SshPool
from .quoting import join, quote
from .result import CommandResult

# paramiko logs failures of its transport thread (with tracebacks) that ams
# reports as one-line errors anyway: without this, Python's last-resort handler
# would print them on stderr when the application configured no logging.
logging.getLogger("paramiko").addHandler(logging.NullHandler())

__all__ = ["CommandResult", "ConnectOptions", "HostConnection", "SshPool", "connect", "join",
           "quote", "resolve_options"]

"""SSH to hosts (paramiko): login, run/sudo with separate stdout/stderr, host keys, pool.

Public API::

    from amslib.ssh import connect, SshPool, quote, join
    with SshPool(settings) as pool:
        host = pool.get("db1")                       # HostConnection
        host.run("cat /proc/mdstat", check=True).text
        host.sudo(join(["mkfs.xfs", device]), check=True)
"""

from .client import HostConnection, connect
from .options import ConnectOptions, resolve_options
from .pool import SshPool
from .quoting import join, quote
from .result import CommandResult

__all__ = ["CommandResult", "ConnectOptions", "HostConnection", "SshPool", "connect", "join",
           "quote", "resolve_options"]

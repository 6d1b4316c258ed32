"""One connection per (user, host, port), reused for the length of one ams command."""

import logging
import threading

from .client import open_connection
from .options import load_ssh_config, resolve_options

log = logging.getLogger("ams.ssh.pool")


class SshPool:
    """Hands out shared HostConnections; ``close_all()`` (or ``with``) ends them.

    Thread-safe: two threads asking for the same host get the same
    connection; different hosts connect in parallel.  Hosts behind the same
    ProxyJump bastion share the pool's connection to it.
    """

    def __init__(self, settings):
        self.settings = settings
        self._ssh_config = load_ssh_config(settings.get("SSH_CONFIG_FILE"))
        self._connections = {}
        self._locks = {}
        self._lock = threading.Lock()

    def get(self, hostname, *, port=None, user=None, keyfile=None, password=None):
        """The open connection to ``hostname`` (made on first use, remade if it dropped)."""
        options = resolve_options(hostname, self.settings, port=port, user=user, keyfile=keyfile,
                                  password=password, ssh_config=self._ssh_config)
        return self._get(options, 0)

    def _get(self, options, depth):
        """Connection for resolved options; also the jump source for ProxyJump hops."""
        with self._lock:
            host_lock = self._locks.setdefault(options.key, threading.RLock())  # RLock: ProxyJump loops end at MAX_JUMPS
        with host_lock:
            connection = self._connections.get(options.key)
            if connection is not None and connection.is_active:
                return connection
            if connection is not None:
                log.info("connection to %s dropped; reconnecting", connection.label)
                connection.close()
            connection = open_connection(options, self.settings, self._ssh_config,
                                         jump_source=self._get, depth=depth)
            self._connections[options.key] = connection
            return connection

    def __len__(self):
        return len(self._connections)

    def close_all(self):
        """Close every connection of the pool."""
        with self._lock:
            connections, self._connections = list(self._connections.values()), {}
        for connection in connections:
            connection.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close_all()

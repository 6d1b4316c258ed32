"""One connection per (user, host, port), reused for the length of one ams command."""

import logging
import threading

from .client import connect
from .options import load_ssh_config, resolve_options

log = logging.getLogger("ams.ssh.pool")


class SshPool:
    """Hands out shared HostConnections; ``close_all()`` (or ``with``) ends them.

    Thread-safe: two threads asking for the same host get the same
    connection; different hosts connect in parallel.
    """

    def __init__(self, settings, *, connector=connect):
        self.settings = settings
        self._connector = connector
        self._ssh_config = None
        self._connections = {}
        self._locks = {}
        self._lock = threading.Lock()

    def get(self, hostname, *, port=None, user=None, keyfile=None, password=None):
        """The open connection to ``hostname`` (made on first use, remade if it dropped)."""
        with self._lock:
            if self._ssh_config is None:
                self._ssh_config = load_ssh_config(self.settings.get("SSH_CONFIG_FILE"))
        key = resolve_options(hostname, self.settings, port=port, user=user, keyfile=keyfile,
                              password=password, ssh_config=self._ssh_config).key
        with self._lock:
            host_lock = self._locks.setdefault(key, threading.Lock())
        with host_lock:
            connection = self._connections.get(key)
            if connection is not None and connection.is_active:
                return connection
            if connection is not None:
                log.info("connection to %s dropped; reconnecting", connection.label)
                connection.close()
            connection = self._connector(hostname, self.settings, port=port, user=user,
                                         keyfile=keyfile, password=password)
            self._connections[key] = connection
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

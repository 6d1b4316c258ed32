"""Host key verification against a known_hosts file.

Policies (``SSH_HOST_KEY_POLICY``):

- ``strict``: the host must already be in known_hosts with this key;
- ``accept-new`` (default): an unknown host is recorded on first use, a known
  host must present the recorded key;
- ``off``: every key is accepted and nothing is recorded.
"""

import logging
import os
import threading

import paramiko

from ..core.errors import HostKeyError

log = logging.getLogger("ams.ssh.hostkeys")

POLICIES = ("strict", "accept-new", "off")
_append_lock = threading.Lock()

# key type in known_hosts -> host key algorithms that present it
_ALGORITHMS = {"ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")}


def known_hosts_name(hostname, port):
    """The name a host has in known_hosts: ``host`` on port 22, else ``[host]:port``."""
    return hostname if port == 22 else f"[{hostname}]:{port}"


def fingerprint(key):
    """``SHA256:...`` fingerprint of a paramiko key."""
    return key.fingerprint


def load_known_hosts(path):
    """Parse ``path`` (a missing file is empty)."""
    keys = paramiko.HostKeys()
    if os.path.isfile(path):
        try:
            keys.load(path)
        except (OSError, paramiko.SSHException, paramiko.hostkeys.InvalidHostKey) as exc:
            raise HostKeyError(f"cannot read known_hosts file {path}: {exc}") from None
    return keys


def preferred_algorithms(known_hosts, hostname, port, offered):
    """``offered`` host key algorithms reordered so the ones known for the host come first."""
    entry = known_hosts.lookup(known_hosts_name(hostname, port)) or {}
    known = []
    for key_type in entry.keys():
        known.extend(_ALGORITHMS.get(key_type, (key_type,)))
    first = [alg for alg in offered if alg in known]
    return first + [alg for alg in offered if alg not in first]


def append_known_host(path, name, key):
    """Record ``name key`` at the end of known_hosts (creating it 0600 in a 0700 dir)."""
    directory = os.path.dirname(path)
    if directory and not os.path.isdir(directory):
        os.makedirs(directory, mode=0o700, exist_ok=True)
    line = f"{name} {key.get_name()} {key.get_base64()}\n"
    with _append_lock:
        needs_newline = False
        if os.path.isfile(path) and os.path.getsize(path) > 0:
            with open(path, "rb") as fh:
                fh.seek(-1, os.SEEK_END)
                needs_newline = fh.read(1) != b"\n"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a") as fh:
            fh.write(("\n" if needs_newline else "") + line)


def verify_host_key(key, hostname, port, known_hosts_path, policy):
    """Accept ``key`` for ``hostname:port`` under ``policy`` or raise HostKeyError."""
    if policy not in POLICIES:
        raise HostKeyError(f"unknown host key policy {policy!r} (strict, accept-new or off)")
    name = known_hosts_name(hostname, port)
    if policy == "off":
        log.debug("host key of %s not checked (policy off): %s %s", name, key.get_name(), fingerprint(key))
        return
    known = load_known_hosts(known_hosts_path).lookup(name)
    if known:
        recorded = known.get(key.get_name())
        if recorded is not None and recorded == key:
            log.debug("host key of %s matches %s", name, known_hosts_path)
            return
        if recorded is not None:
            problem = f"the host key of {name} has changed (now {key.get_name()} {fingerprint(key)})"
        else:
            problem = (f"{name} presented a {key.get_name()} key ({fingerprint(key)}) but "
                       f"only {', '.join(known.keys())} is recorded")
        raise HostKeyError(
            f"{problem}; it does not match {known_hosts_path}",
            hint=f"if the host was rebuilt, run: ssh-keygen -R '{name}' -f {known_hosts_path}",
        )
    if policy == "strict":
        raise HostKeyError(
            f"host key of {name} is unknown: not in {known_hosts_path} (SSH_HOST_KEY_POLICY=strict)",
            hint="add it with ssh-keyscan, or use SSH_HOST_KEY_POLICY=accept-new",
        )
    append_known_host(known_hosts_path, name, key)
    log.info("recorded new host key of %s in %s: %s %s", name, known_hosts_path, key.get_name(), fingerprint(key))

"""Host key verification against a known_hosts file.

Policies (``SSH_HOST_KEY_POLICY``):

- ``strict``: the host must already be in known_hosts with this key;
- ``accept-new`` (default): an unknown host is recorded on first use, a known
  host must present the recorded key;
- ``off``: every key is accepted and nothing is recorded.

known_hosts lines are read as OpenSSH reads them, with two markers:

- ``@revoked``: the key on the line must never be accepted.  A host presenting
  it is refused under *every* policy, ``off`` included (as OpenSSH, which
  refuses revoked keys even with StrictHostKeyChecking=no): ``off`` means
  "do not insist on knowing the host", not "accept a key known to be
  compromised".  The host patterns of an ``@revoked`` line are not compared:
  a revoked key is refused for any host (such lines usually say ``*``).
- ``@cert-authority``: a CA for host *certificates*.  ams does not do
  certificate host authentication, so these lines are skipped (they neither
  match nor break the plain host-key lines around them).

Lines with a key type paramiko does not know are skipped; a line whose key
is not valid base64 makes the file unreadable (HostKeyError), as before.
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


class KnownHosts(paramiko.HostKeys):
    """paramiko's HostKeys plus the ``@revoked`` keys; ``@cert-authority`` lines skipped."""

    def __init__(self):
        super().__init__()
        self.revoked = []  # (key, file) of every @revoked line

    def load(self, filename):
        with open(filename) as fh:
            for lineno, line in enumerate(fh, 1):
                self._load_line(line.strip(), filename, lineno)

    def _load_line(self, line, filename, lineno):
        if not line or line.startswith("#"):
            return
        marker = None
        if line.startswith("@"):
            marker, _, line = line.replace("\t", " ").partition(" ")
            line = line.strip()
            if marker == "@cert-authority":  # ams does not use host certificates
                log.debug("%s:%d: @cert-authority line skipped (no certificate host auth)", filename, lineno)
                return
            if marker != "@revoked":
                log.debug("%s:%d: unknown marker %s, line skipped", filename, lineno, marker)  # as OpenSSH
                return
        try:
            entry = paramiko.hostkeys.HostKeyEntry.from_line(line, lineno)
        except paramiko.SSHException as exc:  # as paramiko's own load(): skip the line
            log.debug("%s:%d: unusable line skipped: %s", filename, lineno, exc)
            return
        if entry is None:  # unknown key type or too few fields (paramiko logged it)
            return
        if marker == "@revoked":
            self.revoked.append((entry.key, filename))
            return
        entry.hostnames = [h for h in entry.hostnames if not self.check(h, entry.key)]
        if entry.hostnames:
            self._entries.append(entry)

    def revoked_in(self, key):
        """The file that revokes ``key``, or None."""
        for revoked, filename in self.revoked:
            if revoked == key:
                return filename
        return None


def load_known_hosts(paths, *, ignore_errors=False):
    """Parse the known_hosts file(s) ``paths`` (a path or a sequence; missing files are empty)."""
    keys = KnownHosts()
    for path in (paths,) if isinstance(paths, str) else paths:
        if path and os.path.isfile(path):
            try:
                keys.load(path)
            except (OSError, UnicodeDecodeError, paramiko.hostkeys.InvalidHostKey) as exc:
                if not ignore_errors:
                    raise HostKeyError(f"cannot read known_hosts file {path}: {exc}") from None
    return keys


def preferred_algorithms(known_hosts, hostname, port, offered, *, alias=None):
    """``offered`` host key algorithms reordered so the ones known for the host come first."""
    entry = known_hosts.lookup(alias or known_hosts_name(hostname, port)) or {}
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


def verify_host_key(key, hostname, port, known_hosts_path, policy, *, readonly=(), alias=None):
    """Accept ``key`` for ``hostname:port`` under ``policy`` or raise HostKeyError.

    ``known_hosts_path`` is the user's file (new keys are recorded there);
    ``readonly``: more files that are read, never written (the other
    UserKnownHostsFile files, the system-wide /etc/ssh/ssh_known_hosts).
    ``alias`` (ssh config HostKeyAlias) is the name looked up and recorded
    instead of ``host`` / ``[host]:port``.
    """
    if policy not in POLICIES:
        raise HostKeyError(f"unknown host key policy {policy!r} (strict, accept-new or off)")
    name = alias or known_hosts_name(hostname, port)
    paths = (known_hosts_path, *readonly)
    known_hosts = load_known_hosts(paths, ignore_errors=policy == "off")
    revoked_by = known_hosts.revoked_in(key)
    if revoked_by is not None:  # refused under every policy (see the module doc)
        raise HostKeyError(
            f"{name} presented a revoked host key ({key.get_name()} {fingerprint(key)}, "
            f"@revoked in {revoked_by}); connection refused",
        )
    if policy == "off":
        log.debug("host key of %s not checked (policy off): %s %s", name, key.get_name(), fingerprint(key))
        return
    known = known_hosts.lookup(name)
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
        where = [path for path in paths if load_known_hosts(path, ignore_errors=True).lookup(name)]
        source = where[0] if where else known_hosts_path
        raise HostKeyError(
            f"{problem}; it does not match {source}",
            hint=f"if the host was rebuilt, run: ssh-keygen -R '{name}' -f {source}",
        )
    if policy == "strict":
        raise HostKeyError(
            f"host key of {name} is unknown: not in {known_hosts_path}"
            f"{' or ' + ', '.join(readonly) if readonly else ''} (SSH_HOST_KEY_POLICY=strict)",
            hint="add it with ssh-keyscan, or use SSH_HOST_KEY_POLICY=accept-new",
        )
    append_known_host(known_hosts_path, name, key)
    log.info("recorded new host key of %s in %s: %s %s", name, known_hosts_path, key.get_name(), fingerprint(key))

"""Test hosts: real OpenSSH ``sshd`` processes on 127.0.0.x (pytest plugin).

Each :class:`TestHost` is one ``sshd -D -e`` started inside its own mount
namespace (``unshare -m --propagation private``) where ``/etc`` is an overlay
(overlayfs): the machine's ``/etc`` below, the host's private directory
``<workdir>/etc`` on top.  That directory starts with the host's own
``fstab`` and ``mdadm/mdadm.conf`` (``mdadm/`` is opaque: the machine's
``/etc/mdadm`` does not show through); whatever a test changes under ``/etc``
on the host (``sudo tee``, a rename onto ``/etc/fstab``, a new
``/etc/mdadm.conf``) lands there and never in the machine's ``/etc``.
``fstab_path`` and ``mdadm_conf_path`` are the files in that directory: read
them from outside, change them through the host (the overlay does not expect
its layers to change under it).  Mounts below the machine's ``/etc`` are
hidden on the host.  Every host has its own address, free port, host keys,
sshd_config and log file.

Every command line a client sends to a host is recorded on the host's side:
the test users' login shell is :data:`RECORD_SHELL`, which sshd runs as it
runs any shell (``SHELL -c COMMAND``); it appends COMMAND, NUL-terminated, to
the file named by ``AMS_RIG_COMMAND_LOG`` (set by the host's sshd_config
``SetEnv``: the host's ``command_log``) and then execs ``/bin/bash`` with the
same arguments.  (A ``ForceCommand`` would record it too, but sshd refuses
"signal" requests to forced-command sessions.)  ``tests/secrets_audit.py``
scans these logs and the sshd logs for secrets.

The test users (prefix ``amst-``) are real local accounts created once per
machine with ``useradd`` and reused by later runs; their passwords are random,
generated once and kept in a root-only file under ``STATE_DIR``.  Each run has
its own key pairs and authorized keys (``AuthorizedKeysFile`` points to a
per-run directory under ``STATE_DIR``), so concurrent runs do not disturb each
other.

Outside pytest::

    rig = SshRig(workdir)        # checks the requirements, creates users
    host = rig.start_host("a")   # -> TestHost (address, port, ...)
    ...
    rig.stop()

Fixtures: ``ssh_rig`` (session; an :class:`SshRig` with two hosts running,
``rig.host`` and ``rig.jump_host``) and ``fresh_ssh_host`` (a new
:class:`TestHost` for one test, e.g. to change its host key).
"""

import fcntl
import itertools
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass

import pytest

from amslib.core.settings import load_settings
from tests import secrets_audit
from tests.resources import unavailable

SSHD = "/usr/sbin/sshd"
STATE_DIR = "/var/lib/ams-test-rig"
USER_PREFIX = "amst-"
START_TIMEOUT = 10.0

# sudo kinds
SUDO_NONE = "none"
SUDO_PASSWORD = "password"
SUDO_NOPASSWD = "nopasswd"

# The test users' login shell: bash, after recording the command of "-c COMMAND" (see above).
RECORD_SHELL = os.path.join(STATE_DIR, "record-shell")
RECORD_SHELL_TEXT = r"""#!/bin/bash
# login shell of the ams test users (tests/rig/sshd.py): record the command line, run bash
log=$AMS_RIG_COMMAND_LOG
unset AMS_RIG_COMMAND_LOG
if [ "$#" -eq 2 ] && [ "$1" = -c ] && [ -n "$log" ]; then
  printf '%s\0' "$2" >>"$log" 2>/dev/null
fi
exec -a "$0" /bin/bash "$@"
"""


@dataclass(frozen=True)
class TestUser:
    """One test account: how it logs in and what sudo it has."""

    name: str
    key_login: bool  # its public key is authorized
    password_login: bool  # it has a usable password
    sudo: str  # SUDO_NONE | SUDO_PASSWORD | SUDO_NOPASSWD
    password: str = None  # None when password_login is False
    key_path: str = None  # private key file (every user has one, authorized or not)

    __test__ = False  # not a pytest test class


# name suffix -> (key_login, password_login, sudo)
USER_KINDS = {
    "key": (True, False, SUDO_NONE),
    "pass": (False, True, SUDO_NONE),
    "sudopw": (True, True, SUDO_PASSWORD),
    "sudo": (True, False, SUDO_NOPASSWD),
}


class RigUnavailable(Exception):
    """The machine cannot run test hosts (the message says why)."""


# tool the rig or its tests run -> Debian package that has it
REQUIRED_TOOLS = {
    SSHD: "openssh-server",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "ssh-agent": "openssh-client",
    "ssh-add": "openssh-client",
    "unshare": "util-linux",
    "mount": "mount",
    "sudo": "sudo",
    "visudo": "sudo",
    "useradd": "passwd",
    "usermod": "passwd",
    "chpasswd": "passwd",
    "pgrep": "procps",
    "timeout": "coreutils",
}


def check_requirements():
    """Raise :class:`RigUnavailable` unless root and every tool in REQUIRED_TOOLS are there."""
    if os.geteuid() != 0:
        raise RigUnavailable("the sshd test rig needs root (useradd, unshare -m)")
    for tool, package in REQUIRED_TOOLS.items():
        if not shutil.which(tool):
            raise RigUnavailable(f"{tool} is not installed (apt-get install {package})")


def _run(argv, **kwargs):
    return subprocess.run(argv, check=True, capture_output=True, **kwargs)


def _load_or_create_passwords(names):
    """Return {name: password}; generated once per machine, kept root-only."""
    path = os.path.join(STATE_DIR, "passwords.json")
    stored = {}
    if os.path.exists(path):
        with open(path) as fh:
            stored = json.load(fh)
    missing = [n for n in names if n not in stored]
    if missing:
        for name in missing:
            stored[name] = secrets.token_urlsafe(18)
        tmp = path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(stored, fh)
        os.replace(tmp, path)
    return {n: stored[n] for n in names}


def _update_file(path, text, mode, check=None):
    """Make ``path`` hold ``text`` (atomically: a concurrent run may be using it); ``check(tmp)``
    may refuse the new text before it replaces the file."""
    current = open(path).read() if os.path.exists(path) else None
    if current != text:
        tmp = path + ".tmp"
        with open(tmp, "w") as fh:
            fh.write(text)
        os.chmod(tmp, mode)
        if check:
            check(tmp)
        os.replace(tmp, path)


def _sudoers_text(users):
    lines = ["# ams test rig (tests/rig/sshd.py); safe to delete"]
    for user in users:
        if user.sudo == SUDO_PASSWORD:
            lines.append(f"{user.name} ALL=(ALL:ALL) ALL")
        elif user.sudo == SUDO_NOPASSWD:
            lines.append(f"{user.name} ALL=(ALL:ALL) NOPASSWD: ALL")
    return "\n".join(lines) + "\n"


def ensure_users(key_dir):
    """Create/refresh the test accounts and sudoers; return {suffix: TestUser}.

    Idempotent and safe against concurrent runs (an flock around it).  A key
    pair per user is generated in ``key_dir`` (this run's own keys).
    """
    os.makedirs(STATE_DIR, exist_ok=True)
    os.chmod(STATE_DIR, 0o711)  # sshd (as the user) reaches authorized-keys-* below it
    names = {suffix: USER_PREFIX + suffix for suffix in USER_KINDS}
    with open(os.path.join(STATE_DIR, "lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        passwords = _load_or_create_passwords(sorted(names.values()))
        _update_file(RECORD_SHELL, RECORD_SHELL_TEXT, 0o755)
        for name, password in passwords.items():
            secrets_audit.register(password, f"password of test user {name}")
        users = {}
        for suffix, (key_login, password_login, sudo) in USER_KINDS.items():
            name = names[suffix]
            if subprocess.run(["id", "-u", name], capture_output=True).returncode != 0:
                _run(["useradd", "--create-home", "--shell", RECORD_SHELL, name])
            elif pwd.getpwnam(name).pw_shell != RECORD_SHELL:
                _run(["usermod", "--shell", RECORD_SHELL, name])
            # '*' = no usable password but not "locked" (sshd refuses locked accounts).
            hashed = None if password_login else "*"
            if hashed:
                _run(["chpasswd", "-e"], input=f"{name}:{hashed}\n".encode())
            else:
                _run(["chpasswd"], input=f"{name}:{passwords[name]}\n".encode())
            key_path = os.path.join(key_dir, name)
            if not os.path.exists(key_path):
                _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", key_path])
            users[suffix] = TestUser(
                name=name,
                key_login=key_login,
                password_login=password_login,
                sudo=sudo,
                password=passwords[name] if (password_login or sudo == SUDO_PASSWORD) else None,
                key_path=key_path,
            )
        _update_file("/etc/sudoers.d/ams-test-rig", _sudoers_text(users.values()), 0o440,
                     check=lambda tmp: _run(["visudo", "-c", "-q", "-f", tmp]))
    return users


def _free_port(address):
    with socket.socket() as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


class TestHost:
    """One sshd in its own mount namespace; ``start()``/``stop()``."""

    __test__ = False

    def __init__(self, name, address, workdir, authorized_keys_dir):
        self.name = name
        self.address = address
        self.port = None
        self.workdir = workdir
        self.authorized_keys_dir = authorized_keys_dir
        # every command line sent to this host, NUL-terminated (the users must reach it)
        self.command_log = os.path.join(authorized_keys_dir, f"commands-{name}.log")
        self.etc_dir = os.path.join(workdir, "etc")  # the overlay's upper dir over /etc
        self.overlay_work_dir = os.path.join(workdir, "etc-overlay-work")
        self.fstab_path = os.path.join(self.etc_dir, "fstab")
        self.mdadm_dir = os.path.join(self.etc_dir, "mdadm")
        self.config_path = os.path.join(workdir, "sshd_config")
        self.log_path = os.path.join(workdir, "sshd.log")
        self.process = None
        os.makedirs(self.mdadm_dir, mode=0o755, exist_ok=True)
        os.makedirs(self.overlay_work_dir, mode=0o700, exist_ok=True)
        os.chmod(self.etc_dir, 0o755)  # the overlay's /etc takes the upper dir's mode
        os.setxattr(self.mdadm_dir, "trusted.overlay.opaque", b"y")
        self._init_files()
        self.regenerate_host_keys()
        fd = os.open(self.command_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
        os.fchmod(fd, 0o666)  # the test users append to it
        os.close(fd)
        secrets_audit.watch_file(self.log_path)
        secrets_audit.watch_file(self.command_log)

    def commands(self):
        """The command lines clients sent to this host so far (oldest first)."""
        with open(self.command_log, "rb") as fh:
            return [c.decode("utf-8", "surrogateescape") for c in fh.read().split(b"\0")[:-1]]

    @property
    def mdadm_conf_path(self):
        return os.path.join(self.mdadm_dir, "mdadm.conf")

    def _init_files(self):
        with open(self.fstab_path, "w") as fh:
            fh.write(f"# /etc/fstab of ams test host {self.name}\n")
        with open(self.mdadm_conf_path, "w") as fh:
            fh.write(f"# mdadm.conf of ams test host {self.name}\nHOMEHOST <system>\nMAILADDR root\n")

    def host_key_paths(self):
        return [os.path.join(self.workdir, f"ssh_host_{kind}_key") for kind in ("ed25519", "ecdsa")]

    def regenerate_host_keys(self):
        """Make new host keys (a running sshd needs ``restart()`` to use them)."""
        for path in self.host_key_paths():
            for old in (path, path + ".pub"):
                if os.path.exists(old):
                    os.unlink(old)
            kind = os.path.basename(path).split("_")[2]
            _run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", self.name, "-f", path])

    def public_host_keys(self):
        """The host's public keys as ``(type, base64)`` pairs."""
        keys = []
        for path in self.host_key_paths():
            with open(path + ".pub") as fh:
                kind, blob = fh.read().split()[:2]
            keys.append((kind, blob))
        return keys

    def _write_config(self):
        host_keys = "\n".join(f"HostKey {path}" for path in self.host_key_paths())
        with open(self.config_path, "w") as fh:
            fh.write(
                f"""# sshd_config of ams test host {self.name}
ListenAddress {self.address}:{self.port}
{host_keys}
PidFile none
UsePAM no
PubkeyAuthentication yes
PasswordAuthentication yes
KbdInteractiveAuthentication no
PermitRootLogin no
AllowUsers {USER_PREFIX}*
AuthorizedKeysFile {self.authorized_keys_dir}/%u
StrictModes no
AllowTcpForwarding yes
MaxSessions 100
MaxStartups 100
LogLevel DEBUG1
Subsystem sftp internal-sftp
SetEnv AMS_RIG_COMMAND_LOG={self.command_log}
"""
            )

    def start(self):
        """Start sshd on a free port; wait until it answers with its banner."""
        if self.process:
            return self
        self.port = self.port or _free_port(self.address)
        self._write_config()
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation dir
        # Relative upper/work dirs: overlayfs options cannot carry "," or ":" in a path.
        script = (
            'cd "$1" && mount -t overlay ams-etc -o lowerdir=/etc,upperdir=etc,workdir=etc-overlay-work /etc'
            ' && cd / && exec "$2" -D -e -f "$3"'
        )
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh",
                 self.workdir, SSHD, self.config_path],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            )
        try:
            self._wait_ready()
        except Exception:
            self.stop()
            raise
        return self

    def _wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RigUnavailable(f"sshd for test host {self.name} exited: {self.log_tail()}")
            try:
                with socket.create_connection((self.address, self.port), timeout=1) as sock:
                    if sock.recv(64).startswith(b"SSH-"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RigUnavailable(f"sshd for test host {self.name} did not answer: {self.log_tail()}")

    def log_tail(self, lines=5):
        try:
            with open(self.log_path, errors="replace") as fh:
                return " | ".join(fh.read().splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def read_log(self):
        with open(self.log_path, errors="replace") as fh:
            return fh.read()

    def stop(self):
        """Kill sshd and its session processes (its process group) by pid."""
        if not self.process:
            return
        pid = self.process.pid
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(timeout=5)
                break
            except subprocess.TimeoutExpired:
                continue
        self.process = None

    def restart(self):
        """Stop and start again on the same address and port."""
        self.stop()
        return self.start()

    def known_hosts_lines(self):
        """known_hosts lines for this host (``[address]:port type key``)."""
        return [f"[{self.address}]:{self.port} {kind} {blob}" for kind, blob in self.public_host_keys()]


class SshRig:
    """Test users plus the test hosts started for them."""

    _addresses = itertools.count(20)

    def __init__(self, workdir):
        check_requirements()
        self.workdir = workdir
        self.key_dir = os.path.join(workdir, "keys")
        os.makedirs(self.key_dir, exist_ok=True)
        self.users = ensure_users(self.key_dir)
        # sshd reads authorized keys as the user: keep them out of the (private) workdir.
        self.authorized_keys_dir = tempfile.mkdtemp(prefix="authorized-keys-", dir=STATE_DIR)
        os.chmod(self.authorized_keys_dir, 0o755)
        for user in self.users.values():
            path = os.path.join(self.authorized_keys_dir, user.name)
            with open(path, "w") as fh:
                if user.key_login:
                    with open(user.key_path + ".pub") as pub:
                        fh.write(pub.read())
            os.chmod(path, 0o644)
        self.empty_file = os.path.join(workdir, "empty")
        open(self.empty_file, "w").close()
        self.known_hosts = os.path.join(workdir, "known_hosts")
        self.hosts = []
        self.host = None
        self.jump_host = None

    def start_host(self, name):
        """Start one more test host on the next 127.0.0.x address."""
        address = f"127.0.0.{next(self._addresses) % 250 + 2}"
        host = TestHost(name, address, os.path.join(self.workdir, "hosts", name), self.authorized_keys_dir)
        self.hosts.append(host)
        return host.start()

    def start_default_hosts(self):
        self.host = self.start_host("host-a")
        self.jump_host = self.start_host("jump-b")
        return self

    def stop(self):
        """Stop every host and remove this run's authorized keys."""
        for host in self.hosts:
            host.stop()
            secrets_audit.unwatch_file(host.command_log)  # scanned a last time
        shutil.rmtree(self.authorized_keys_dir, ignore_errors=True)

    def user(self, suffix):
        """The TestUser ``amst-<suffix>`` (suffix: key, pass, sudopw, sudo)."""
        return self.users[suffix]

    def settings(self, user, host=None, *, key=True, password=None, sudo_password=None, **extra):
        """A Settings for ``user`` (a TestUser or suffix) on ``host`` (default rig.host).

        Isolated from the operator's files: an empty settings file and ssh
        config, this run's known_hosts, no agent.  ``key``/``password``
        choose what the user logs in with (password=True: the user's own);
        ``sudo_password`` likewise (True: the user's own).  ``extra``: other
        settings by NAME (e.g. SSH_HOST_KEY_POLICY="strict"); None leaves a
        setting at its default (e.g. SSH_USER=None to take it from ssh config).
        """
        user = self.users[user] if isinstance(user, str) else user
        host = host or self.host
        values = {
            "SSH_USER": user.name,
            "SSH_PORT": host.port,
            "SSH_CONFIG_FILE": self.empty_file,
            "SSH_KNOWN_HOSTS": self.known_hosts,
            "SSH_USE_AGENT": False,
            "SSH_CONNECT_TIMEOUT": 5.0,
            "SSH_AUTH_TIMEOUT": 5.0,
            "SSH_COMMAND_TIMEOUT": 60.0,
        }
        if key:
            values["SSH_KEYFILE"] = user.key_path if key is True else key
        if password:
            values["SSH_PASSWORD"] = user.password if password is True else password
        if sudo_password:
            values["SUDO_PASSWORD"] = user.password if sudo_password is True else sudo_password
        values.update(extra)
        environ = {"AMS_SETTINGS": self.empty_file}
        for name, value in values.items():
            if value is not None:
                environ["AMS_" + name] = str(value).lower() if isinstance(value, bool) else str(value)
        return load_settings(environ=environ, path=None)


def _unavailable(exc):
    unavailable(f"ssh test hosts unavailable: {exc}")


@pytest.fixture(scope="session")
def ssh_rig(tmp_path_factory):
    """SshRig with ``rig.host`` and ``rig.jump_host`` running; skips if impossible.

    ``rig.users``: {"key", "pass", "sudopw", "sudo"} -> TestUser;
    ``rig.settings(user, host=None, ...)``: a Settings to log in as that user.
    """
    try:
        rig = SshRig(str(tmp_path_factory.mktemp("sshrig")))
    except RigUnavailable as exc:
        _unavailable(exc)
    try:
        rig.start_default_hosts()
    except RigUnavailable as exc:
        rig.stop()
        _unavailable(exc)
    yield rig
    rig.stop()


@pytest.fixture
def fresh_ssh_host(ssh_rig):
    """A test host of its own for one test (stopped afterwards)."""
    host = ssh_rig.start_host(f"fresh-{len(ssh_rig.hosts)}")
    yield host
    host.stop()


def main():
    """``python -m tests.rig.sshd``: start the two default hosts until Ctrl-C (for poking)."""
    workdir = tempfile.mkdtemp(prefix="ams-sshd-rig-")
    rig = SshRig(workdir).start_default_hosts()
    try:
        for host in rig.hosts:
            print(f"{host.name}: {host.address} port {host.port} (log {host.log_path})")
        for user in rig.users.values():
            print(f"  ssh -i {user.key_path} -p {rig.host.port} {user.name}@{rig.host.address}"
                  f"   # key login: {user.key_login}, sudo: {user.sudo}")
        print(f"passwords: {STATE_DIR}/passwords.json; Ctrl-C stops the hosts")
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        rig.stop()


if __name__ == "__main__":
    main()

"""Resolve how to reach a host: explicit arguments, ams settings, ~/.ssh/config.

Precedence for the managed host, highest first:

1. explicit arguments of ``connect()`` (``port=``, ``user=``, ``keyfile=``, ``password=``);
2. ams settings (``SSH_USER``, ``SSH_PORT``, ``SSH_KEYFILE``, ``SSH_PASSWORD``) when set;
   ``SSH_PORT`` counts as set only when it is not the default 22;
3. the ssh config (``SSH_CONFIG_FILE`` or ``~/.ssh/config``, with its ``Include``
   files): ``HostName``, ``Port``, ``User``, ``IdentityFile``, ``IdentitiesOnly``,
   ``ProxyJump``, ``ProxyCommand`` (run with ``sh -c``, ``%h %p %r %n %%``
   expanded with the port and user used), ``UserKnownHostsFile`` (below
   ``SSH_KNOWN_HOSTS``), ``GlobalKnownHostsFile``, ``HostKeyAlias``;
4. defaults: port 22, the local user name, ``~/.ssh/id_ed25519``, ``id_ecdsa``,
   ``id_rsa`` (those that exist).

Jump hosts (``ProxyJump``) are the operator's bastions, not managed hosts:
for them the ``user@host:port`` of the ProxyJump entry wins, then the ssh
config of the jump host, then the ams settings, then the defaults.
``SSH_PASSWORD`` is never offered to a jump host: bastions log in with keys
or the agent only.
"""

import getpass
import os
import shlex
from dataclasses import dataclass, field

import paramiko

from ..core.errors import ConfigError
from ..core.settings import DEFAULTS
from .sshconfig import SshConfig, proxy_command_line, read_ssh_config

DEFAULT_PORT = 22
DEFAULT_IDENTITIES = ("~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa")
DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
SYSTEM_KNOWN_HOSTS = ("/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2")  # as OpenSSH; read-only
MAX_JUMPS = 8


@dataclass(frozen=True)
class ConnectOptions:
    """Everything needed to open one SSH connection (secrets kept out of repr)."""

    alias: str  # the name ams was given
    hostname: str  # the address or name actually connected to
    port: int
    user: str
    keyfiles: tuple = ()
    key_passphrase: str = field(default=None, repr=False)  # SSH_KEY_PASSPHRASE, for encrypted key files
    password: str = field(default=None, repr=False)
    use_agent: bool = True
    proxy_jump: tuple = ()  # jump host specs, first hop first
    proxy_command: str = None  # tokens expanded; run with sh -c
    known_hosts: str = None  # the user's known_hosts file: new keys are recorded here
    known_hosts_readonly: tuple = ()  # more files read, never written (e.g. /etc/ssh/ssh_known_hosts)
    host_key_alias: str = None  # ssh config HostKeyAlias: the host's name in known_hosts
    host_key_policy: str = "accept-new"
    connect_timeout: float = None
    auth_timeout: float = None
    command_timeout: float = None
    sudo_password: str = field(default=None, repr=False)

    @property
    def key(self):
        """(user, hostname, port): what identifies one connection."""
        return (self.user, self.hostname, self.port)

    @property
    def label(self):
        """``user@host:port`` for messages."""
        return f"{self.user}@{self.hostname}:{self.port}"


def load_ssh_config(path=None):
    """Parse the ssh config at ``path`` (None: ``~/.ssh/config`` if it exists), with its Includes."""
    if path is None:
        path = os.path.expanduser("~/.ssh/config")
        if not os.path.isfile(path):
            return SshConfig()
    try:
        return read_ssh_config(os.path.expanduser(path))
    except (OSError, paramiko.SSHException, ValueError) as exc:
        raise ConfigError(f"cannot read ssh config {path}: {exc}") from None


def parse_jump_spec(spec):
    """Split ``[user@]host[:port]`` (``[v6addr]:port`` allowed) into (user, host, port)."""
    user = None
    if "@" in spec:
        user, spec = spec.rsplit("@", 1)
    port = None
    if spec.startswith("["):
        host, _, rest = spec[1:].partition("]")
        if rest.startswith(":"):
            port = rest[1:]
    elif spec.count(":") == 1:
        host, port = spec.split(":")
    else:
        host = spec
    if port is not None:
        try:
            port = int(port)
        except ValueError:
            raise ConfigError(f"bad port in ProxyJump entry {spec!r}") from None
    if not host:
        raise ConfigError(f"bad ProxyJump entry {spec!r}")
    return user or None, host, port


def _setting(settings, name):
    """A settings value, or None when it is unset (SSH_PORT: when it is the default)."""
    value = settings.get(name)
    if name == "SSH_PORT" and value == DEFAULTS["SSH_PORT"]:
        return None
    return value


def _first(*values):
    for value in values:
        if value is not None and value != "":
            return value
    return None


def _expand(path):
    return os.path.expanduser(path)


def resolve_options(hostname, settings, *, port=None, user=None, keyfile=None, password=None,
                    ssh_config=None, jump=False):
    """Return the ConnectOptions for ``hostname`` (see the module doc for precedence).

    ``ssh_config``: a parsed ``paramiko.SSHConfig`` (None: loaded from
    ``settings.SSH_CONFIG_FILE``).  ``jump=True`` resolves a jump host.
    """
    if ssh_config is None:
        ssh_config = load_ssh_config(settings.get("SSH_CONFIG_FILE"))
    found = ssh_config.lookup(hostname)

    config_port = found.get("port")
    try:
        config_port = int(config_port) if config_port is not None else None
    except ValueError:
        raise ConfigError(f"ssh config: bad Port {config_port!r} for {hostname}") from None
    config_keys = tuple(_expand(p) for p in found.get("identityfile", ()))
    setting_keys = (_expand(settings.get("SSH_KEYFILE")),) if settings.get("SSH_KEYFILE") else ()

    if jump:  # explicit > ssh config > settings > defaults
        port = _first(port, config_port, _setting(settings, "SSH_PORT"), DEFAULT_PORT)
        user = _first(user, found.get("user"), settings.get("SSH_USER"))
        keyfiles = (_expand(keyfile),) if keyfile else (config_keys or setting_keys)
    else:  # explicit > settings > ssh config > defaults
        port = _first(port, _setting(settings, "SSH_PORT"), config_port, DEFAULT_PORT)
        user = _first(user, settings.get("SSH_USER"), found.get("user"))
        keyfiles = (_expand(keyfile),) if keyfile else (setting_keys or config_keys)
    if not keyfiles:
        keyfiles = tuple(p for p in map(_expand, DEFAULT_IDENTITIES) if os.path.isfile(p))

    identities_only = str(found.get("identitiesonly", "no")).lower() == "yes"
    proxy_jump = found.get("proxyjump")
    proxy_jump = () if not proxy_jump or proxy_jump.lower() == "none" else tuple(
        part.strip() for part in proxy_jump.split(",") if part.strip()
    )
    proxy_command = found.get("proxycommand")
    if proxy_command and proxy_command.lower() == "none":
        proxy_command = None
    user = user or getpass.getuser()
    hostname_used = found.get("hostname", hostname)
    if proxy_command and not proxy_jump:
        proxy_command = proxy_command_line(proxy_command, hostname=hostname_used, port=int(port),
                                           user=user, alias=hostname)
    known_hosts = _known_hosts_files(found, settings, jump)

    return ConnectOptions(
        alias=hostname,
        hostname=hostname_used,
        port=int(port),
        user=user,
        keyfiles=keyfiles,
        key_passphrase=settings.get("SSH_KEY_PASSPHRASE"),  # the operator's key files: jump hosts too
        # SSH_PASSWORD is the managed hosts' password: a ProxyJump bastion gets key/agent
        # auth only (and never sees that password).
        password=password if jump else _first(password, settings.get("SSH_PASSWORD")),
        use_agent=bool(settings.get("SSH_USE_AGENT")) and not identities_only,
        proxy_jump=proxy_jump,
        proxy_command=None if proxy_jump else proxy_command,
        known_hosts=known_hosts[0],
        known_hosts_readonly=known_hosts[1:],
        host_key_alias=found.get("hostkeyalias") or None,
        host_key_policy=settings.get("SSH_HOST_KEY_POLICY") or "accept-new",
        connect_timeout=settings.get("SSH_CONNECT_TIMEOUT"),
        auth_timeout=settings.get("SSH_AUTH_TIMEOUT"),
        command_timeout=settings.get("SSH_COMMAND_TIMEOUT"),
        sudo_password=settings.get("SUDO_PASSWORD"),
    )


def _split_files(value):
    """The file names of a UserKnownHostsFile/GlobalKnownHostsFile value (``none``: /dev/null)."""
    try:
        names = shlex.split(value)
    except ValueError:
        raise ConfigError(f"ssh config: bad known hosts file list {value!r}") from None
    return tuple(os.devnull if name.lower() == "none" else _expand(name) for name in names)


def _known_hosts_files(found, settings, jump):
    """(user file recorded to, *files only read): SSH_KNOWN_HOSTS or UserKnownHostsFile, then
    GlobalKnownHostsFile or the system-wide files."""
    setting = settings.get("SSH_KNOWN_HOSTS")
    setting_files = (_expand(setting),) if setting else ()
    config_files = _split_files(found["userknownhostsfile"]) if found.get("userknownhostsfile") else ()
    user_files = (config_files or setting_files) if jump else (setting_files or config_files)
    user_files = user_files or (_expand(DEFAULT_KNOWN_HOSTS),)
    if found.get("globalknownhostsfile"):
        system_files = _split_files(found["globalknownhostsfile"])
    else:
        system_files = SYSTEM_KNOWN_HOSTS
    return user_files + tuple(f for f in system_files if f not in user_files)


def resolve_jump(spec, settings, ssh_config):
    """ConnectOptions for one ProxyJump hop ``[user@]host[:port]``."""
    user, host, port = parse_jump_spec(spec)
    return resolve_options(host, settings, port=port, user=user, ssh_config=ssh_config, jump=True)

"""SSH connections to hosts: connect (direct, ProxyJump or ProxyCommand), log in, run.

``connect(hostname, settings)`` returns a :class:`HostConnection`; its
``run()`` and ``sudo()`` return :class:`~amslib.ssh.result.CommandResult`.
See ``options.py`` for where port, user and keys come from.
"""

import contextlib
import dataclasses
import logging
import socket

import paramiko

from ..core.errors import SshAuthError, SshConnectError, SshError
from . import hostkeys
from .execution import Exchange, execute
from .options import MAX_JUMPS, load_ssh_config, resolve_jump, resolve_options
from .quoting import join
from .sshconfig import shell_argv
from .sudo import SudoExchange, new_token, sudo_command

log = logging.getLogger("ams.ssh.client")

KEEPALIVE = 30  # seconds


def _as_bytes(data):
    if data is None or isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode("utf-8")
    return bytes(data)


class HostConnection:
    """One logged-in SSH connection; run commands with :meth:`run` and :meth:`sudo`.

    Several threads may run commands at once (one channel each).
    """

    def __init__(self, options, transport, jump=None, *, owns_jump=True):
        self.options = options
        self.transport = transport
        self.jump = jump  # the HostConnection this one is tunnelled through, if any
        self._owns_jump = owns_jump  # close the jump connection with this one

    @property
    def key(self):
        return self.options.key

    @property
    def label(self):
        return self.options.label

    @property
    def is_active(self):
        return self.transport is not None and self.transport.is_active()

    def _timeout(self, timeout):
        return self.options.command_timeout if timeout is None else timeout

    def _require_active(self):
        if not self.is_active:
            raise SshError(f"the connection to {self.label} is closed")

    def run(self, command, *, timeout=None, input=None, check=False):
        """Run ``command`` (a shell command line) as the login user.

        ``input``: bytes or text for its stdin (else stdin is at EOF).
        ``timeout``: seconds (None: SSH_COMMAND_TIMEOUT; 0: no limit).
        ``check=True`` raises RemoteCommandError on a non-zero exit.
        """
        self._require_active()
        result = execute(self.transport, command, host=self.label, timeout=self._timeout(timeout),
                         exchange=Exchange(_as_bytes(input)))
        return result.check() if check else result

    def sudo(self, command, *, timeout=None, input=None, check=False, user=None):
        """Run ``command`` with sudo (as root, or ``user``) through ``sh -c``.

        Without SUDO_PASSWORD sudo must not need one (``sudo -n``); with it the
        password goes to sudo on stdin.  SudoError when sudo refuses, or does
        not start the command within SSH_AUTH_TIMEOUT; otherwise like
        :meth:`run`.  The result's ``command`` is ``"sudo " + command``.
        """
        self._require_active()
        password = self.options.sudo_password
        token = new_token()
        timeout = self._timeout(timeout)
        line = sudo_command(command, token=token, with_password=password is not None, user=user,
                            timeout=timeout)
        exchange = SudoExchange(token=token, password=password, input=_as_bytes(input),
                                host=self.label, login=self.options.user,
                                start_timeout=self.options.auth_timeout)
        result = execute(self.transport, line, host=self.label, timeout=timeout,
                         exchange=exchange, shown=f"sudo {command}")
        return result.check() if check else result

    def close(self):
        """Close the connection (and the jump connection under it, unless shared)."""
        if self.transport is not None:
            self.transport.close()
            self.transport = None
            log.debug("closed connection to %s", self.label)
        if self.jump is not None and self._owns_jump:
            self.jump.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"<HostConnection {self.label}{'' if self.is_active else ' closed'}>"


def connect(hostname, settings, *, port=None, user=None, keyfile=None, password=None):
    """Open and authenticate a connection to ``hostname``; return a HostConnection.

    ``settings`` is an ``amslib.core.settings.Settings``.  Explicit arguments
    win over settings, settings over ~/.ssh/config (see ``options.py``).
    Raises SshConnectError, HostKeyError, SshAuthError.
    """
    ssh_config = load_ssh_config(settings.get("SSH_CONFIG_FILE"))
    options = resolve_options(hostname, settings, port=port, user=user, keyfile=keyfile,
                              password=password, ssh_config=ssh_config)
    return open_connection(options, settings, ssh_config)


def jump_options(options, settings, ssh_config):
    """ConnectOptions of the last ProxyJump hop before ``options``' host (None: direct).

    ``ProxyJump a,b`` reaches the host through b, and b through a.
    """
    if not options.proxy_jump:
        return None
    *before, last = options.proxy_jump
    hop = resolve_jump(last, settings, ssh_config)
    if before:
        hop = dataclasses.replace(hop, proxy_jump=tuple(before), proxy_command=None)
    return hop


def open_connection(options, settings, ssh_config, *, jump_source=None, depth=0):
    """Connect with resolved ``options``; return a HostConnection.

    ``jump_source(hop_options, depth)`` supplies a shared connection to a
    ProxyJump hop (the pool uses it so hosts behind one bastion share one
    bastion connection); without it the hop connection belongs to the new one.
    """
    hop = jump_options(options, settings, ssh_config)
    jump = None
    if hop is not None:
        if depth >= MAX_JUMPS:
            raise SshConnectError(f"too many ProxyJump hops to reach {options.hostname} (loop in ssh config?)")
        if jump_source is not None:
            jump = jump_source(hop, depth + 1)
        else:
            jump = open_connection(hop, settings, ssh_config, depth=depth + 1)
    owns_jump = jump is not None and jump_source is None
    try:
        sock = _open_socket(options, jump)
        transport = _start_transport(options, sock)
        try:
            _authenticate(options, transport)
        except BaseException:
            transport.close()
            raise
    except BaseException:
        if owns_jump:
            jump.close()
        raise
    log.info("connected to %s%s", options.label, f" via {jump.label}" if jump else "")
    return HostConnection(options, transport, jump, owns_jump=owns_jump)


def _open_socket(options, jump):
    """A connected socket (or channel/proxy) to the host's sshd."""
    target = f"{options.hostname}:{options.port}"
    timeout = options.connect_timeout or None
    if jump is not None:
        try:
            return jump.transport.open_channel(
                "direct-tcpip", (options.hostname, options.port), ("127.0.0.1", 0), timeout=timeout
            )
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise SshConnectError(f"jump host {jump.label} cannot reach {target}: {exc}") from None
    if options.proxy_command:
        try:
            return paramiko.ProxyCommand(join(shell_argv(options.proxy_command)))  # split back by shlex
        except (paramiko.SSHException, OSError) as exc:
            raise SshConnectError(f"ProxyCommand for {target} failed: {exc}") from None
    try:
        return socket.create_connection((options.hostname, options.port), timeout=timeout)
    except socket.gaierror as exc:
        raise SshConnectError(f"cannot resolve host {options.hostname}: {exc.strerror}") from None
    except socket.timeout:
        raise SshConnectError(f"timed out after {timeout:g}s connecting to {target}") from None
    except ConnectionRefusedError:
        raise SshConnectError(f"connection refused by {target} (is sshd running on that port?)") from None
    except OSError as exc:
        raise SshConnectError(f"cannot connect to {target}: {exc.strerror or exc}") from None


def _start_transport(options, sock):
    """SSH handshake on ``sock`` and host key check; return the Transport."""
    target = f"{options.hostname}:{options.port}"
    timeout = options.connect_timeout or None
    transport = paramiko.Transport(sock)
    if timeout:
        transport.banner_timeout = transport.handshake_timeout = timeout
    if options.auth_timeout:
        transport.auth_timeout = options.auth_timeout
    security = transport.get_security_options()
    if options.host_key_policy != "off":
        known = hostkeys.load_known_hosts((options.known_hosts, *options.known_hosts_readonly))
        security.key_types = hostkeys.preferred_algorithms(
            known, options.hostname, options.port, security.key_types, alias=options.host_key_alias
        )
    try:
        transport.start_client(timeout=timeout)
        if not (transport.is_active() and transport.initial_kex_done):  # start_client timed out
            raise transport.get_exception() or socket.timeout(f"no answer within {timeout or 0:g}s")
    except (paramiko.SSHException, EOFError, OSError) as exc:
        transport.close()
        reason = str(exc) or exc.__class__.__name__
        raise SshConnectError(f"SSH handshake with {target} failed: {reason}") from None
    try:
        hostkeys.verify_host_key(transport.get_remote_server_key(), options.hostname, options.port,
                                 options.known_hosts, options.host_key_policy,
                                 readonly=options.known_hosts_readonly, alias=options.host_key_alias)
    except BaseException:
        transport.close()
        raise
    transport.set_keepalive(KEEPALIVE)
    return transport


def _load_key(path, passphrase=None):
    """(key, None) or (None, why the file cannot be used).

    An encrypted key is opened with ``passphrase`` (SSH_KEY_PASSPHRASE); the
    passphrase never appears in the reason given.
    """
    try:
        return paramiko.PKey.from_path(path), None
    except (paramiko.PasswordRequiredException, TypeError):  # paramiko 3.2+: TypeError when encrypted
        pass
    except FileNotFoundError:
        return None, "no such file"
    except (OSError, paramiko.SSHException, ValueError) as exc:
        return None, f"unreadable: {exc}"
    if not passphrase:
        return None, "encrypted; set SSH_KEY_PASSPHRASE or load it into ssh-agent"
    try:
        return paramiko.PKey.from_path(path, passphrase.encode("utf-8")), None
    except (OSError, paramiko.SSHException, ValueError, TypeError):
        return None, "encrypted; SSH_KEY_PASSPHRASE does not decrypt it"


def _auth_attempts(options):
    """Yield (description, callable(transport)) in order: key files, agent, password."""
    for path in options.keyfiles:
        key, problem = _load_key(path, options.key_passphrase)
        if key is None:
            yield f"publickey {path} ({problem})", None
        else:
            yield f"publickey {path}", (lambda t, k=key: t.auth_publickey(options.user, k))
    if options.use_agent:
        agent = paramiko.Agent()  # no keys when SSH_AUTH_SOCK is unset
        try:
            for number, key in enumerate(agent.get_keys(), 1):
                yield f"agent key {number} ({key.get_name()})", (lambda t, k=key: t.auth_publickey(options.user, k))
        finally:
            agent.close()
    if options.password is not None:
        yield "password", (lambda t: t.auth_password(options.user, options.password))


def _authenticate(options, transport):
    """Log in with the first method that works; SshAuthError naming all tried."""
    tried = []
    with contextlib.closing(_auth_attempts(options)) as attempts:
        _try_attempts(options, transport, attempts, tried)
    if transport.is_authenticated():
        return
    if not tried:
        raise SshAuthError(
            f"no way to log in to {options.label}: no key file, agent key or password configured",
            hint="set SSH_KEYFILE, SSH_PASSWORD or IdentityFile in ~/.ssh/config",
        )
    raise SshAuthError(f"authentication failed for {options.label}; tried: {', '.join(tried)}")


def _try_attempts(options, transport, attempts, tried):
    """Run attempts until one logs in; note each in ``tried``."""
    allowed = None
    for description, attempt in attempts:
        tried.append(description)
        if attempt is None:
            continue
        methods = {"password", "keyboard-interactive"} if description == "password" else {"publickey"}
        if allowed is not None and not methods.intersection(allowed):
            tried[-1] += " (not offered by the server)"
            continue
        try:
            attempt(transport)
        except paramiko.BadAuthenticationType as exc:
            allowed = list(exc.allowed_types)
            tried[-1] += " (not offered by the server)"
            continue
        except paramiko.AuthenticationException:
            continue
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise SshAuthError(f"authentication with {options.label} broke off: {exc or 'timeout'}") from None
        if transport.is_authenticated():
            log.debug("logged in to %s with %s", options.label, description)
            return

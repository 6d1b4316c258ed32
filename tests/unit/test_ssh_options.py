"""Where port, user, keys and jumps come from: explicit > settings > ssh config > defaults."""

import getpass
import os

import paramiko
import pytest

from amslib.core.errors import ConfigError, SshConnectError
from amslib.core.settings import load_settings
from amslib.ssh import SshPool, connect
from amslib.ssh.options import parse_jump_spec, resolve_jump, resolve_options

SSH_CONFIG = """
Host db1
    HostName 10.0.0.5
    Port 2222
    User cfguser
    IdentityFile /keys/cfg_key

Host bastion
    HostName 192.0.2.1
    User jumper
    Port 2200
    IdentityFile /keys/jump_key

Host behind
    HostName 10.0.9.9
    ProxyJump admin@bastion:2022,bastion

Host only
    IdentitiesOnly yes
"""


@pytest.fixture
def settings_for(tmp_path):
    empty = tmp_path / "settings.py"
    empty.write_text("")

    def make(**values):
        environ = {"AMS_SETTINGS": str(empty), "AMS_SSH_KNOWN_HOSTS": str(tmp_path / "kh")}
        environ.update({"AMS_" + k: str(v) for k, v in values.items()})
        return load_settings(environ=environ, path=None)

    return make


@pytest.fixture
def config():
    return paramiko.SSHConfig.from_text(SSH_CONFIG)


def test_ssh_config_applies_when_settings_are_unset(settings_for, config):
    opts = resolve_options("db1", settings_for(), ssh_config=config)
    assert (opts.hostname, opts.port, opts.user, opts.keyfiles) == ("10.0.0.5", 2222, "cfguser", ("/keys/cfg_key",))
    assert opts.alias == "db1"


def test_settings_override_ssh_config(settings_for, config):
    opts = resolve_options("db1", settings_for(SSH_USER="admin", SSH_PORT="2022", SSH_KEYFILE="/keys/ams"),
                           ssh_config=config)
    assert (opts.hostname, opts.port, opts.user, opts.keyfiles) == ("10.0.0.5", 2022, "admin", ("/keys/ams",))


def test_default_ssh_port_setting_does_not_hide_config_port(settings_for, config):
    assert resolve_options("db1", settings_for(SSH_PORT="22"), ssh_config=config).port == 2222


def test_explicit_arguments_override_everything(settings_for, config):
    opts = resolve_options("db1", settings_for(SSH_USER="admin", SSH_PORT="2022", SSH_PASSWORD="s"),
                           port=2, user="me", keyfile="/k", password="p", ssh_config=config)
    assert (opts.port, opts.user, opts.keyfiles, opts.password) == (2, "me", ("/k",), "p")


def test_defaults_without_config(settings_for, monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "id_ed25519").write_text("x")
    opts = resolve_options("10.1.1.1", settings_for(), ssh_config=paramiko.SSHConfig())
    assert (opts.hostname, opts.port, opts.user) == ("10.1.1.1", 22, getpass.getuser())
    assert opts.keyfiles == (str(tmp_path / ".ssh" / "id_ed25519"),)


def test_settings_are_carried(settings_for, config):
    settings = settings_for(SSH_PASSWORD="pw", SUDO_PASSWORD="spw", SSH_HOST_KEY_POLICY="strict",
                            SSH_CONNECT_TIMEOUT="3", SSH_COMMAND_TIMEOUT="9", SSH_USE_AGENT="false")
    opts = resolve_options("db1", settings, ssh_config=config)
    assert (opts.password, opts.sudo_password, opts.host_key_policy) == ("pw", "spw", "strict")
    assert (opts.connect_timeout, opts.command_timeout, opts.use_agent) == (3.0, 9.0, False)


def test_secrets_stay_out_of_repr(settings_for, config):
    opts = resolve_options("db1", settings_for(SSH_PASSWORD="hunter2", SUDO_PASSWORD="sudo-secret"),
                           ssh_config=config)
    assert "hunter2" not in repr(opts) and "sudo-secret" not in repr(opts)


def test_identities_only_disables_agent(settings_for, config):
    assert resolve_options("only", settings_for(), ssh_config=config).use_agent is False
    assert resolve_options("db1", settings_for(), ssh_config=config).use_agent is True


def test_proxy_jump_chain_is_split(settings_for, config):
    opts = resolve_options("behind", settings_for(), ssh_config=config)
    assert opts.proxy_jump == ("admin@bastion:2022", "bastion")


def test_jump_host_prefers_spec_then_its_ssh_config_over_settings(settings_for, config):
    settings = settings_for(SSH_USER="admin", SSH_PORT="2022", SSH_KEYFILE="/keys/ams")
    hop = resolve_jump("bastion", settings, config)
    assert (hop.hostname, hop.port, hop.user, hop.keyfiles) == ("192.0.2.1", 2200, "jumper", ("/keys/jump_key",))
    hop = resolve_jump("root@bastion:7", settings, config)
    assert (hop.port, hop.user) == (7, "root")
    hop = resolve_jump("plainhost", settings, config)  # not in the config: settings apply
    assert (hop.port, hop.user, hop.keyfiles) == (2022, "admin", ("/keys/ams",))


@pytest.mark.parametrize("spec, expected", [
    ("host", (None, "host", None)),
    ("u@host", ("u", "host", None)),
    ("u@host:2200", ("u", "host", 2200)),
    ("[::1]:2200", (None, "::1", 2200)),
    ("u@[fe80::1]", ("u", "fe80::1", None)),
])
def test_parse_jump_spec(spec, expected):
    assert parse_jump_spec(spec) == expected


def test_bad_jump_port_is_a_config_error():
    with pytest.raises(ConfigError):
        parse_jump_spec("host:ssh")


def test_unreadable_ssh_config_is_a_config_error(settings_for, tmp_path):
    bad = tmp_path / "dir-not-file"
    bad.mkdir()
    with pytest.raises(ConfigError):
        resolve_options("x", settings_for(SSH_CONFIG_FILE=str(bad)))


def test_config_file_setting_is_read(settings_for, tmp_path):
    path = tmp_path / "ssh_config"
    path.write_text("Host web\n  HostName 10.2.2.2\n  Port 2022\n")
    opts = resolve_options("web", settings_for(SSH_CONFIG_FILE=str(path)))
    assert (opts.hostname, opts.port) == ("10.2.2.2", 2022)


def test_tilde_is_expanded_in_key_paths(settings_for, config):
    opts = resolve_options("db1", settings_for(SSH_KEYFILE="~/k"), ssh_config=config)
    assert opts.keyfiles == (os.path.expanduser("~/k"),)


@pytest.mark.parametrize("use_pool", [False, True])
def test_proxy_jump_loop_is_refused_before_any_connection(settings_for, tmp_path, use_pool):
    config = tmp_path / "ssh_config"
    config.write_text("Host a\n  ProxyJump b\nHost b\n  ProxyJump a\n")
    settings = settings_for(SSH_CONFIG_FILE=str(config))
    with pytest.raises(SshConnectError, match="too many ProxyJump hops"):
        if use_pool:
            with SshPool(settings) as pool:
                pool.get("a")
        else:
            connect("a", settings)


def test_ssh_password_is_not_used_for_jump_hosts(settings_for, config):
    settings = settings_for(SSH_PASSWORD="host-secret")
    assert resolve_options("behind", settings, ssh_config=config).password == "host-secret"
    for spec in ("bastion", "admin@bastion:2022", "plainhost"):
        assert resolve_jump(spec, settings, config).password is None

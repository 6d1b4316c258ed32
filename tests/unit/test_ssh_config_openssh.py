"""ssh config as OpenSSH reads it: Include, ProxyCommand tokens, known_hosts files, HostKeyAlias."""

import os

import paramiko
import pytest

from amslib.core.errors import ConfigError, HostKeyError
from amslib.core.settings import load_settings
from amslib.ssh import options as options_module
from amslib.ssh.hostkeys import verify_host_key
from amslib.ssh.options import load_ssh_config, resolve_jump, resolve_options
from amslib.ssh.sshconfig import proxy_command_line, shell_argv


@pytest.fixture
def home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / ".ssh" / "config.d").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    return home


@pytest.fixture
def settings_for(tmp_path):
    empty = tmp_path / "settings.py"
    empty.write_text("")

    def make(**values):
        environ = {"AMS_SETTINGS": str(empty)}
        environ.update({"AMS_" + k: str(v) for k, v in values.items()})
        return load_settings(environ=environ, path=None)

    return make


# --- Include --------------------------------------------------------------------------------------

def test_include_is_relative_to_dot_ssh_globbed_and_sorted(home):
    ssh = home / ".ssh"
    (ssh / "config.d" / "20-db").write_text("Host db1\n    HostName 10.0.0.20\n    User second\n")
    (ssh / "config.d" / "10-db").write_text("Host db1\n    HostName 10.0.0.10\n")
    (ssh / "config").write_text("Include config.d/*\nHost *\n    User fallback\n")
    found = load_ssh_config().lookup("db1")
    assert found["hostname"] == "10.0.0.10"  # first obtained value wins, files in sorted order
    assert found["user"] == "second"


def test_include_inside_a_host_block_and_the_block_goes_on(home, tmp_path):
    extra = tmp_path / "extra.conf"
    extra.write_text("Port 2200\nHost other\n    User otheruser\n")
    config = home / ".ssh" / "config"
    config.write_text(f"Host db1\n    Include ~/../extra.conf {tmp_path}/missing-*.conf\n"
                      "    User dbuser\n")
    parsed = load_ssh_config(str(config))
    assert parsed.lookup("db1")["port"] == "2200"
    assert parsed.lookup("db1")["user"] == "dbuser"  # still in "Host db1" after the Include
    assert parsed.lookup("other")["user"] == "otheruser"
    assert "port" not in parsed.lookup("other") and "user" not in parsed.lookup("db2")


def test_include_loop_is_a_config_error(home):
    (home / ".ssh" / "config").write_text("Include config\n")
    with pytest.raises(ConfigError, match="Include nested more than 16 deep"):
        load_ssh_config()


def test_include_keyword_forms(home):
    (home / ".ssh" / "config.d" / "a").write_text("Host a\n    Port 1\n")
    (home / ".ssh" / "config").write_text('INCLUDE = "config.d/a"\n')
    assert load_ssh_config().lookup("a")["port"] == "1"


# --- ProxyCommand -------------------------------------------------------------------------------

def test_proxy_command_tokens_use_the_port_and_user_ams_uses(settings_for, tmp_path):
    config = tmp_path / "config"
    config.write_text("Host db1\n    HostName 10.0.0.5\n    Port 2222\n    User cfg\n"
                      "    ProxyCommand nc -x proxy:1080 %h %p # %r %n 100%% ~/x\n")
    settings = settings_for(SSH_CONFIG_FILE=config, SSH_USER="ops", SSH_PORT=2022)
    opts = resolve_options("db1", settings)
    assert opts.proxy_command == "nc -x proxy:1080 10.0.0.5 2022 # ops db1 100% ~/x"
    assert shell_argv(opts.proxy_command) == ["/bin/sh", "-c", "exec " + opts.proxy_command]


def test_unknown_proxy_command_token_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown token %C"):
        proxy_command_line("ssh -W %h:%p -S %C bastion", hostname="h", port=22, user="u", alias="a")


# --- known_hosts files and HostKeyAlias -------------------------------------------------------------

def test_default_known_hosts_files(settings_for, home, tmp_path):
    config = tmp_path / "config"
    config.write_text("")
    opts = resolve_options("h", settings_for(SSH_CONFIG_FILE=config))
    assert opts.known_hosts == str(home / ".ssh" / "known_hosts")
    assert opts.known_hosts_readonly == options_module.SYSTEM_KNOWN_HOSTS
    assert opts.host_key_alias is None


def test_user_and_global_known_hosts_files_and_alias_from_config(settings_for, home, tmp_path):
    config = tmp_path / "config"
    config.write_text("Host h\n    UserKnownHostsFile ~/kh1 /kh2\n"
                      "    GlobalKnownHostsFile /etc/kh\n    HostKeyAlias h-alias\n"
                      "Host n\n    UserKnownHostsFile none\n")
    settings = settings_for(SSH_CONFIG_FILE=config)
    opts = resolve_options("h", settings)
    assert (opts.known_hosts, opts.known_hosts_readonly) == (str(home / "kh1"), ("/kh2", "/etc/kh"))
    assert opts.host_key_alias == "h-alias"
    assert resolve_options("n", settings).known_hosts == os.devnull
    # SSH_KNOWN_HOSTS wins for managed hosts; a jump host's own ssh config wins for it
    settings = settings_for(SSH_CONFIG_FILE=config, SSH_KNOWN_HOSTS=tmp_path / "kh")
    assert resolve_options("h", settings).known_hosts == str(tmp_path / "kh")
    assert resolve_jump("h", settings, load_ssh_config(str(config))).known_hosts == str(home / "kh1")


def ecdsa():
    return paramiko.ECDSAKey.generate()


def test_system_known_hosts_is_read_but_never_written(tmp_path):
    user, system = tmp_path / "known_hosts", tmp_path / "ssh_known_hosts"
    key, other = ecdsa(), ecdsa()
    system.write_text(f"h {key.get_name()} {key.get_base64()}\n")
    verify_host_key(key, "h", 22, str(user), "strict", readonly=(str(system),))
    with pytest.raises(HostKeyError, match=f"changed.*does not match {system}"):
        verify_host_key(other, "h", 22, str(user), "accept-new", readonly=(str(system),))
    verify_host_key(other, "new", 22, str(user), "accept-new", readonly=(str(system),))
    assert user.read_text().startswith("new ecdsa-sha2-nistp256 ")
    assert len(system.read_text().splitlines()) == 1
    with pytest.raises(HostKeyError, match=f"not in {user} or {system}"):
        verify_host_key(other, "unknown", 22, str(user), "strict", readonly=(str(system),))


def test_host_key_alias_is_the_name_looked_up_and_recorded(tmp_path):
    path = tmp_path / "known_hosts"
    key, other = ecdsa(), ecdsa()
    verify_host_key(key, "10.0.0.1", 2222, str(path), "accept-new", alias="db-alias")
    assert path.read_text() == f"db-alias {key.get_name()} {key.get_base64()}\n"  # no [host]:port
    verify_host_key(key, "10.9.9.9", 22, str(path), "strict", alias="db-alias")
    with pytest.raises(HostKeyError, match="db-alias has changed"):
        verify_host_key(other, "10.0.0.1", 2222, str(path), "strict", alias="db-alias")
    with pytest.raises(HostKeyError, match="unknown"):
        verify_host_key(key, "10.0.0.1", 2222, str(path), "strict")

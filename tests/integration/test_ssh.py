"""amslib.ssh against real OpenSSH sshd test hosts (tests/rig/sshd.py)."""

import logging
import os
import random
import re
import socket
import subprocess
import threading
import time

import pytest

from amslib.core.errors import (
    CommandTimeoutError,
    HostKeyError,
    RemoteCommandError,
    SshAuthError,
    SshConnectError,
    SshError,
    SudoError,
)
from amslib.ssh import SshPool, connect, join, quote
from tests.secrets_audit import SSH_KEY_PASSPHRASE


@pytest.fixture
def login(ssh_rig):
    """login(user_suffix, host=None, **settings_args) -> open HostConnection (closed after)."""
    opened = []

    def make(user, host=None, **kwargs):
        host = host or ssh_rig.host
        connection = connect(host.address, ssh_rig.settings(user, host, **kwargs))
        opened.append(connection)
        return connection

    yield make
    for connection in opened:
        connection.close()


def assert_one_line(exc):
    assert "\n" not in str(exc) and str(exc)


def accepted_logins(host):
    """How many logins the host's sshd accepted so far."""
    return len(re.findall(r"^Accepted \w+ for ", host.read_log(), re.MULTILINE))


# --- logging in ---------------------------------------------------------------------------------

def test_key_login(login, ssh_rig):
    assert login("key").run("id -un").text == "amst-key\n"


def test_password_login(login):
    assert login("pass", key=False, password=True).run("id -un").text == "amst-pass\n"


def test_password_login_of_a_user_that_also_has_a_key(login):
    assert login("sudopw", key=False, password=True).run("id -un").text == "amst-sudopw\n"


def test_explicit_arguments_override_settings(ssh_rig):
    user = ssh_rig.user("key")
    settings = ssh_rig.settings("pass", key=False, SSH_PORT=1)  # wrong user and port
    with connect(ssh_rig.host.address, settings, port=ssh_rig.host.port, user=user.name,
                 keyfile=user.key_path) as connection:
        assert connection.run("id -un").text == "amst-key\n"


def test_agent_login(ssh_rig, tmp_path, monkeypatch):
    sock = str(tmp_path / "agent.sock")
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", sock], stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        env = dict(os.environ, SSH_AUTH_SOCK=sock)
        subprocess.run(["ssh-add", "-q", ssh_rig.user("key").key_path], env=env, check=True,
                       capture_output=True)
        monkeypatch.setenv("SSH_AUTH_SOCK", sock)
        settings = ssh_rig.settings("key", key=False, SSH_USE_AGENT=True)
        with connect(ssh_rig.host.address, settings) as connection:
            assert connection.run("id -un").text == "amst-key\n"
    finally:
        agent.terminate()
        agent.wait()


def test_wrong_password_names_the_method_not_the_password(ssh_rig):
    settings = ssh_rig.settings("pass", key=False, password="not-the-password")
    with pytest.raises(SshAuthError) as failure:
        connect(ssh_rig.host.address, settings)
    message = str(failure.value)
    assert "amst-pass@" in message and "password" in message
    assert "not-the-password" not in message
    assert_one_line(failure.value)


def test_wrong_key_names_the_key_file(ssh_rig):
    other_key = ssh_rig.user("sudo").key_path
    with pytest.raises(SshAuthError, match=f"publickey {other_key}"):
        connect(ssh_rig.host.address, ssh_rig.settings("key", key=other_key))


def test_key_only_user_refuses_a_password(ssh_rig):
    settings = ssh_rig.settings("key", key=False, password=ssh_rig.user("sudopw").password)
    with pytest.raises(SshAuthError, match="tried: password"):
        connect(ssh_rig.host.address, settings)


def test_encrypted_key_with_ssh_key_passphrase(ssh_rig, tmp_path):
    passphrase = SSH_KEY_PASSPHRASE
    key = tmp_path / "encrypted_key"
    key.write_bytes(open(ssh_rig.user("key").key_path, "rb").read())
    key.chmod(0o600)
    subprocess.run(["ssh-keygen", "-q", "-p", "-N", passphrase, "-f", str(key)], check=True,
                   capture_output=True)
    settings = ssh_rig.settings("key", key=key, SSH_KEY_PASSPHRASE=passphrase)
    with connect(ssh_rig.host.address, settings) as connection:
        assert connection.run("id -un").text == "amst-key\n"
    with pytest.raises(SshAuthError, match="encrypted; set SSH_KEY_PASSPHRASE") as failure:
        connect(ssh_rig.host.address, ssh_rig.settings("key", key=key))
    assert_one_line(failure.value)
    with pytest.raises(SshAuthError, match="SSH_KEY_PASSPHRASE does not decrypt it") as failure:
        connect(ssh_rig.host.address, ssh_rig.settings("key", key=key, SSH_KEY_PASSPHRASE="wrong-pass"))
    assert "wrong-pass" not in str(failure.value) and passphrase not in str(failure.value)


def test_missing_key_file_is_named(ssh_rig, tmp_path):
    missing = str(tmp_path / "no-such-key")
    with pytest.raises(SshAuthError, match="no such file"):
        connect(ssh_rig.host.address, ssh_rig.settings("key", key=missing))


def test_nothing_to_log_in_with(ssh_rig, monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ssh/id_* either
    with pytest.raises(SshAuthError, match="no way to log in"):
        connect(ssh_rig.host.address, ssh_rig.settings("key", key=False))


def test_connection_refused(ssh_rig):
    with socket.socket() as probe:  # a port with nothing listening
        probe.bind((ssh_rig.host.address, 0))
        port = probe.getsockname()[1]
    with pytest.raises(SshConnectError, match="refused") as failure:
        connect(ssh_rig.host.address, ssh_rig.settings("key", SSH_PORT=port))
    assert_one_line(failure.value)


def test_connect_timeout_when_no_ssh_banner(ssh_rig):
    with socket.socket() as silent:  # accepts TCP connections, never says a word
        silent.bind((ssh_rig.host.address, 0))
        silent.listen(5)
        settings = ssh_rig.settings("key", SSH_PORT=silent.getsockname()[1], SSH_CONNECT_TIMEOUT=1)
        started = time.monotonic()
        with pytest.raises(SshConnectError) as failure:
            connect(ssh_rig.host.address, settings)
    assert time.monotonic() - started < 5
    assert_one_line(failure.value)


# --- running commands ---------------------------------------------------------------------------

def test_stdout_stderr_and_exit_status_are_separate(login):
    result = login("key").run("echo out; echo err >&2; echo out2; exit 3")
    assert (result.stdout, result.stderr, result.exit_status) == (b"out\nout2\n", b"err\n", 3)
    assert not result.ok


def test_check_raises_with_command_and_stderr_tail(login):
    with pytest.raises(RemoteCommandError) as failure:
        login("key").run("echo first >&2; echo 'the real reason' >&2; exit 7", check=True)
    error = failure.value
    assert error.exit_status == 7 and b"the real reason" in error.stderr
    assert "status 7" in str(error) and "the real reason" in str(error) and "exit 7" in str(error)
    assert_one_line(error)


def test_quoted_values_reach_the_remote_shell_unchanged(login):
    nasty = ["a b", "it's", "$(id)", "`id`", "x;y", "new\nline", "*"]
    result = login("key").run("printf '%s\\0' " + join(nasty), check=True)
    assert result.stdout.split(b"\0")[:-1] == [value.encode() for value in nasty]


def test_all_byte_values_pass_unchanged_both_ways(login):
    every_byte = bytes(range(256))
    connection = login("key")
    assert connection.run("cat", input=every_byte * 4).stdout == every_byte * 4
    octal = "".join(f"\\{value:03o}" for value in range(256))
    assert connection.run("printf " + quote(octal)).stdout == every_byte


def test_large_stdout_and_stderr_at_once(login):
    size = 12 * 1024 * 1024
    result = login("key").run(
        f"(yes err | head -c 3000000 >&2) & yes 0123456789abcde | head -c {size}; wait", timeout=120
    )
    assert len(result.stdout) == size
    assert result.stdout == (b"0123456789abcde\n" * (size // 16 + 1))[:size]
    assert len(result.stderr) == 3000000 and result.exit_status == 0


def test_large_input(login):
    data = os.urandom(5 * 1024 * 1024)
    result = login("key").run("wc -c", input=data, timeout=120)
    assert result.text.strip() == str(len(data))


def test_stdin_is_at_eof_without_input(login):
    result = login("key").run("cat", timeout=10)
    assert (result.stdout, result.exit_status) == (b"", 0)


def test_text_input_is_utf8(login):
    assert login("key").run("cat", input="grüße").stdout == "grüße".encode()


def remote_processes(pattern):
    return subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()


def unique_sleep():
    """A ``sleep`` command line no other test (or concurrent run) uses."""
    return f"sleep 37.{random.randrange(10**8):08d}"


def test_command_timeout_kills_the_command(login):
    connection = login("key")
    sleep = unique_sleep()
    started = time.monotonic()
    with pytest.raises(CommandTimeoutError) as failure:
        connection.run(f"{sleep}; echo never", timeout=1)
    assert time.monotonic() - started < 4
    assert sleep in str(failure.value)
    time.sleep(0.3)
    assert remote_processes(sleep) == []
    assert connection.run("echo still usable").text == "still usable\n"


def test_default_command_timeout_comes_from_settings(login):
    with pytest.raises(CommandTimeoutError, match="within 1s"):
        login("key", SSH_COMMAND_TIMEOUT=1).run("sleep 5")


def test_concurrent_commands_on_one_connection(login):
    connection = login("key")
    results = {}

    def work(number):
        results[number] = connection.run(f"sleep 0.2; echo {number}").text

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {n: f"{n}\n" for n in range(8)}


# --- sudo ---------------------------------------------------------------------------------------

def test_sudo_without_password(login):
    result = login("sudo").sudo("id -u; echo to-stderr >&2; exit 4")
    assert (result.stdout, result.stderr, result.exit_status) == (b"0\n", b"to-stderr\n", 4)
    assert result.command == "sudo id -u; echo to-stderr >&2; exit 4"


def test_sudo_with_password_and_input(login):
    connection = login("sudopw", sudo_password=True)
    result = connection.sudo("id -u && cat", input=b"stdin after the password\n")
    assert result.stdout == b"0\nstdin after the password\n"
    assert result.stderr == b""
    assert connection.sudo("id -un").text == "root\n"  # again: sudo asks again (-k), still fine


def test_sudo_with_password_over_password_login(login):
    connection = login("sudopw", key=False, password=True, sudo_password=True)
    assert connection.sudo("whoami").text == "root\n"


def test_sudo_password_is_not_fed_to_a_nopasswd_command(login):
    connection = login("sudo", sudo_password="should-not-appear")
    assert connection.sudo("cat").stdout == b""


def test_sudo_as_another_user(login):
    assert login("sudo").sudo("id -un", user="amst-key").text == "amst-key\n"


def test_wrong_sudo_password_fails_fast(login):
    connection = login("sudopw", sudo_password="wrong-sudo-password")
    started = time.monotonic()
    with pytest.raises(SudoError, match="wrong password") as failure:
        connection.sudo("id -u", timeout=60)
    assert time.monotonic() - started < 10  # one PAM failure delay, not three retries or a hang
    assert "wrong-sudo-password" not in str(failure.value)
    assert_one_line(failure.value)


def test_sudo_password_required_but_not_configured(login):
    with pytest.raises(SudoError, match="needs a password .* none is configured"):
        login("sudopw").sudo("id -u")


def test_user_without_sudo(login):
    with pytest.raises(SudoError, match="may not use sudo"):
        login("pass", key=False, password=True, sudo_password=True).sudo("id -u")
    with pytest.raises(SudoError):
        login("key").sudo("id -u")


def test_sudo_command_failure_is_a_remote_command_error(login):
    with pytest.raises(RemoteCommandError, match="sudo false"):
        login("sudo").sudo("false", check=True)


def test_sudo_timeout_kills_the_root_command(login):
    connection = login("sudopw", sudo_password=True)
    sleep = unique_sleep()
    with pytest.raises(CommandTimeoutError):
        connection.sudo(f"{sleep}; echo never", timeout=2)
    time.sleep(0.5)
    assert remote_processes(sleep) == []


def test_sudo_password_never_in_process_list(login, ssh_rig):
    user = ssh_rig.user("sudopw")
    connection = login("sudopw", sudo_password=True)
    observer = login("key")
    sleep = f"sleep 3.{random.randrange(10**8):08d}"
    worker = threading.Thread(target=connection.sudo, args=(sleep,))
    worker.start()
    seen_sudo = False
    try:
        while worker.is_alive():
            listing = observer.run("ps -eo args").text
            assert user.password not in listing
            seen_sudo = seen_sudo or sleep in listing
            time.sleep(0.1)
    finally:
        worker.join()
    assert seen_sudo  # the listing was taken while the sudo command ran


def test_no_password_in_log_records(ssh_rig, caplog):
    caplog.set_level(logging.DEBUG)
    user = ssh_rig.user("sudopw")
    settings = ssh_rig.settings(user, key=False, password=True, sudo_password=True)
    with connect(ssh_rig.host.address, settings) as connection:
        connection.sudo("cat", input=b"x", check=True)
        with pytest.raises(RemoteCommandError):
            connection.sudo("exit 1", check=True)
    wrong = ssh_rig.settings(user, key=False, password="wrong-login-pw", sudo_password="wrong-sudo-pw")
    with pytest.raises(SshAuthError):
        connect(ssh_rig.host.address, wrong)
    assert any(r.name.startswith("ams.ssh") for r in caplog.records)
    for record in caplog.records:
        text = record.getMessage() + repr(record.args)
        for secret in (user.password, "wrong-login-pw", "wrong-sudo-pw"):
            assert secret not in text, record.name


# --- host keys ----------------------------------------------------------------------------------

def test_accept_new_records_the_host_key(ssh_rig, tmp_path):
    known_hosts = tmp_path / "known_hosts"
    with connect(ssh_rig.host.address, ssh_rig.settings("key", SSH_KNOWN_HOSTS=known_hosts)) as c:
        c.run("true")
    recorded = known_hosts.read_text().splitlines()
    assert len(recorded) == 1 and recorded[0] in ssh_rig.host.known_hosts_lines()
    with connect(ssh_rig.host.address, ssh_rig.settings("key", SSH_KNOWN_HOSTS=known_hosts)) as c:
        c.run("true")
    assert len(known_hosts.read_text().splitlines()) == 1


def test_strict_rejects_an_unknown_host(ssh_rig, tmp_path):
    known_hosts = tmp_path / "known_hosts"
    settings = ssh_rig.settings("key", SSH_KNOWN_HOSTS=known_hosts, SSH_HOST_KEY_POLICY="strict")
    with pytest.raises(HostKeyError, match="unknown") as failure:
        connect(ssh_rig.host.address, settings)
    assert str(known_hosts) in str(failure.value)
    assert not known_hosts.exists()


def test_strict_accepts_a_known_host(ssh_rig, tmp_path):
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("\n".join(ssh_rig.host.known_hosts_lines()) + "\n")
    settings = ssh_rig.settings("key", SSH_KNOWN_HOSTS=known_hosts, SSH_HOST_KEY_POLICY="strict")
    with connect(ssh_rig.host.address, settings) as connection:
        assert connection.run("true").ok


def test_changed_host_key_is_rejected(ssh_rig, fresh_ssh_host, tmp_path):
    known_hosts = tmp_path / "known_hosts"
    settings = ssh_rig.settings("key", fresh_ssh_host, SSH_KNOWN_HOSTS=known_hosts)
    connect(fresh_ssh_host.address, settings).close()
    fresh_ssh_host.regenerate_host_keys()
    fresh_ssh_host.restart()
    with pytest.raises(HostKeyError) as failure:
        connect(fresh_ssh_host.address, settings)
    message = str(failure.value)
    assert f"[{fresh_ssh_host.address}]:{fresh_ssh_host.port}" in message
    assert "changed" in message and str(known_hosts) in message
    assert_one_line(failure.value)
    off = ssh_rig.settings("key", fresh_ssh_host, SSH_KNOWN_HOSTS=known_hosts, SSH_HOST_KEY_POLICY="off")
    with connect(fresh_ssh_host.address, off) as connection:
        assert connection.run("true").ok


def test_revoked_host_key_is_refused_even_with_policy_off(ssh_rig, tmp_path):
    known_hosts = tmp_path / "known_hosts"
    lines = ssh_rig.host.known_hosts_lines()
    known_hosts.write_text("".join(f"@revoked * {line.split(None, 1)[1]}\n" for line in lines))
    for policy in ("accept-new", "off"):
        settings = ssh_rig.settings("key", SSH_KNOWN_HOSTS=known_hosts, SSH_HOST_KEY_POLICY=policy)
        with pytest.raises(HostKeyError, match="revoked host key") as failure:
            connect(ssh_rig.host.address, settings)
        assert_one_line(failure.value)
    assert known_hosts.read_text().count("\n") == len(lines)  # nothing recorded


def test_cert_authority_lines_do_not_break_known_hosts(ssh_rig, tmp_path):
    known_hosts = tmp_path / "known_hosts"
    lines = ssh_rig.host.known_hosts_lines()
    ca = "@cert-authority *.example.com " + lines[0].split(None, 1)[1]
    known_hosts.write_text(ca + "\n" + "\n".join(lines) + "\n")
    settings = ssh_rig.settings("key", SSH_KNOWN_HOSTS=known_hosts, SSH_HOST_KEY_POLICY="strict")
    with connect(ssh_rig.host.address, settings) as connection:
        assert connection.run("true").ok


# --- the test hosts themselves -------------------------------------------------------------------

def test_test_host_has_private_fstab_and_mdadm_conf(ssh_rig, fresh_ssh_host):
    with open("/etc/fstab", "rb") as fh:
        real_fstab = fh.read()
    with connect(fresh_ssh_host.address, ssh_rig.settings("sudo", fresh_ssh_host)) as connection:
        assert connection.run("cat /etc/fstab").text.startswith(f"# /etc/fstab of ams test host {fresh_ssh_host.name}")
        connection.sudo("echo '/dev/xvdf /data xfs defaults 0 0' >> /etc/fstab", check=True)
        connection.sudo("echo 'ARRAY /dev/md0' > /etc/mdadm/new && mv /etc/mdadm/new /etc/mdadm/mdadm.conf",
                        check=True)
    with open(fresh_ssh_host.fstab_path) as fh:
        assert fh.read().endswith("/dev/xvdf /data xfs defaults 0 0\n")
    with open(fresh_ssh_host.mdadm_conf_path) as fh:
        assert fh.read() == "ARRAY /dev/md0\n"
    with open("/etc/fstab", "rb") as fh:
        assert fh.read() == real_fstab


# --- ssh config ---------------------------------------------------------------------------------

def write_ssh_config(tmp_path, text):
    path = tmp_path / "ssh_config"
    path.write_text(text)
    return str(path)


def bastion_entry(bastion, user):
    """An ssh config entry `bastion` logging in to the jump host as ``user``."""
    return f"""
Host bastion
    HostName {bastion.address}
    Port {bastion.port}
    User {user.name}
    IdentityFile {user.key_path}
"""


def test_ssh_config_alias(ssh_rig, tmp_path):
    user, host = ssh_rig.user("key"), ssh_rig.host
    config = write_ssh_config(tmp_path, f"""
Host db-alias
    HostName {host.address}
    Port {host.port}
    User {user.name}
    IdentityFile {user.key_path}
""")
    settings = ssh_rig.settings(user, key=False, SSH_USER=None, SSH_PORT=None, SSH_CONFIG_FILE=config)
    with connect("db-alias", settings) as connection:
        assert connection.key == (user.name, host.address, host.port)
        assert connection.run("id -un").text == "amst-key\n"


def test_proxy_jump_through_a_bastion(ssh_rig, tmp_path):
    user, target, bastion = ssh_rig.user("key"), ssh_rig.host, ssh_rig.jump_host
    config = write_ssh_config(tmp_path, bastion_entry(bastion, user) + f"""
Host behind
    HostName {target.address}
    Port {target.port}
    ProxyJump bastion
""")
    settings = ssh_rig.settings("sudo", SSH_PORT=None, SSH_CONFIG_FILE=config)
    forwarded = f"target {target.address} port {target.port}"
    before = bastion.read_log().count(forwarded)
    with connect("behind", settings) as connection:
        assert connection.sudo("id -u").text == "0\n"
        assert connection.jump is not None and connection.jump.label.startswith("amst-key@")
    assert not connection.jump.is_active  # closed with the connection it carried
    assert bastion.read_log().count(forwarded) == before + 1  # sshd's direct-tcpip debug line


def test_ssh_password_is_for_the_host_not_the_bastion(ssh_rig, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ssh/id_* to fall back on
    pass_user, key_user = ssh_rig.user("pass"), ssh_rig.user("key")
    target, bastion = ssh_rig.host, ssh_rig.jump_host
    behind = f"""
Host behind
    HostName {target.address}
    Port {target.port}
    ProxyJump bastion
"""
    # A bastion login that only SSH_PASSWORD could open: refused, the password never offered.
    config = write_ssh_config(tmp_path, f"""
Host bastion
    HostName {bastion.address}
    Port {bastion.port}
    User {pass_user.name}
""" + behind)
    settings = ssh_rig.settings("pass", key=False, password=True, SSH_PORT=None, SSH_CONFIG_FILE=config)
    failed = bastion.read_log().count(f"password for {pass_user.name}")
    with pytest.raises(SshAuthError, match=f"{pass_user.name}@{bastion.address}") as failure:
        connect("behind", settings)
    assert "tried: password" not in str(failure.value)
    assert bastion.read_log().count(f"password for {pass_user.name}") == failed
    # The bastion by key, the host behind it by SSH_PASSWORD.
    config = write_ssh_config(tmp_path, bastion_entry(bastion, key_user) + behind)
    settings = ssh_rig.settings("pass", key=False, password=True, SSH_PORT=None, SSH_CONFIG_FILE=config)
    with connect("behind", settings) as connection:
        assert connection.run("id -un").text == "amst-pass\n"
        assert connection.jump.label.startswith("amst-key@")


def test_proxy_command(ssh_rig, tmp_path):
    user, target, bastion = ssh_rig.user("key"), ssh_rig.host, ssh_rig.jump_host
    config = write_ssh_config(tmp_path, f"""
Host via-command
    HostName {target.address}
    Port {target.port}
    ProxyCommand ssh -q -i {user.key_path} -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -p {bastion.port} {user.name}@{bastion.address} -W %h:%p
""")
    settings = ssh_rig.settings("key", SSH_PORT=None, SSH_CONFIG_FILE=config)
    forwarded = f"target {target.address} port {target.port}"
    before = bastion.read_log().count(forwarded)
    with connect("via-command", settings) as connection:
        assert connection.run("id -un").text == "amst-key\n"
    assert bastion.read_log().count(forwarded) == before + 1


def test_proxy_command_runs_through_a_shell_with_tokens(ssh_rig, tmp_path):
    user, target, bastion = ssh_rig.user("key"), ssh_rig.host, ssh_rig.jump_host
    # $(...) and a redirection work only when run as OpenSSH runs it ("exec ..." in sh -c);
    # %r is the user ams logs in as, %n the name ams was given
    config = write_ssh_config(tmp_path, f"""
Host via-shell
    HostName {target.address}
    Port {target.port}
    ProxyCommand $(echo ssh) -q -i {user.key_path} -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -p {bastion.port} %r@{bastion.address} -W %h:%p 2>{tmp_path}/%n.stderr
""")
    settings = ssh_rig.settings("key", SSH_PORT=None, SSH_CONFIG_FILE=config)
    with connect("via-shell", settings) as connection:
        assert connection.run("id -un").text == "amst-key\n"
    assert (tmp_path / "via-shell.stderr").exists()


def test_include_user_known_hosts_file_and_host_key_alias(ssh_rig, tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / ".ssh" / "config.d").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    user, host = ssh_rig.user("key"), ssh_rig.host
    (home / ".ssh" / "config.d" / "db.conf").write_text(f"""
Host db-included
    HostName {host.address}
    Port {host.port}
    User {user.name}
    IdentityFile {user.key_path}
    HostKeyAlias db-included-key
    UserKnownHostsFile ~/.ssh/ams_known_hosts
""")
    config = home / ".ssh" / "config"
    config.write_text("Include config.d/*.conf\n")
    settings = ssh_rig.settings(user, key=False, SSH_USER=None, SSH_PORT=None, SSH_KNOWN_HOSTS=None,
                                SSH_CONFIG_FILE=config)
    with connect("db-included", settings) as connection:
        assert connection.run("id -un").text == "amst-key\n"
    recorded = (home / ".ssh" / "ams_known_hosts").read_text().splitlines()
    assert len(recorded) == 1 and recorded[0].startswith("db-included-key ")
    assert recorded[0].split(None, 1)[1] in [line.split(None, 1)[1] for line in host.known_hosts_lines()]
    strict = ssh_rig.settings(user, key=False, SSH_USER=None, SSH_PORT=None, SSH_KNOWN_HOSTS=None,
                              SSH_CONFIG_FILE=config, SSH_HOST_KEY_POLICY="strict")
    with connect("db-included", strict) as connection:  # found again under the alias
        assert connection.run("true").ok


# --- the pool -----------------------------------------------------------------------------------

def test_pool_reuses_one_connection_per_user_host_port(ssh_rig, tmp_path):
    host = ssh_rig.host
    config = write_ssh_config(tmp_path, f"Host alias-a\n    HostName {host.address}\n")
    settings = ssh_rig.settings("key", SSH_CONFIG_FILE=config)
    logins = accepted_logins(host)
    with SshPool(settings) as pool:
        first = pool.get(host.address)
        assert pool.get(host.address) is first
        assert pool.get("alias-a") is first  # same user, host and port
        other = pool.get(host.address, user="amst-sudo", keyfile=ssh_rig.user("sudo").key_path)
        assert other is not first and len(pool) == 2
        for _ in range(3):
            first.run("true", check=True)
    assert not first.is_active and not other.is_active
    assert accepted_logins(host) == logins + 2
    with pytest.raises(SshError, match="closed"):
        first.run("true")


def test_pool_replaces_a_dropped_connection(ssh_rig):
    with SshPool(ssh_rig.settings("key")) as pool:
        first = pool.get(ssh_rig.host.address)
        first.transport.close()  # as if the network dropped it
        second = pool.get(ssh_rig.host.address)
        assert second is not first and second.run("echo ok").text == "ok\n"


def test_pool_shares_the_bastion_connection(ssh_rig, tmp_path):
    user, target, bastion = ssh_rig.user("key"), ssh_rig.host, ssh_rig.jump_host
    config = write_ssh_config(tmp_path, bastion_entry(bastion, user) + f"""
Host {target.address}
    ProxyJump bastion
""")
    settings = ssh_rig.settings("key", SSH_CONFIG_FILE=config)
    logins = accepted_logins(bastion)
    with SshPool(settings) as pool:
        first = pool.get(target.address)
        second = pool.get(target.address, user="amst-sudo", keyfile=ssh_rig.user("sudo").key_path)
        assert first is not second and first.jump is second.jump is not None
        first.close()  # a shared bastion connection outlives one host's connection
        assert second.jump.is_active and second.sudo("id -u").text == "0\n"
    assert not second.jump.is_active
    assert accepted_logins(bastion) == logins + 1

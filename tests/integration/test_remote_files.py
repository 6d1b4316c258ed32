"""Atomic replace of /etc files on the sshd test hosts, through sudo (tests/rig/sshd.py).

Each test has a host of its own (``fresh_ssh_host``): /etc there is an overlay whose upper
directory is the host's ``etc_dir``, so a rename onto /etc/fstab works as on a real host and
never reaches this machine's /etc.
"""

import hashlib
import os
import threading

import pytest

from amslib.hostdisk import fstab, mdadmconf
from amslib.hostdisk import remote_files as rf
from amslib.ssh import connect, quote

U1 = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"


@pytest.fixture
def host(fresh_ssh_host):
    return fresh_ssh_host


@pytest.fixture
def login(ssh_rig, host):
    """login(user_suffix, **settings) -> an open HostConnection to ``host`` (closed after)."""
    opened = []

    def make(user="sudo", **kwargs):
        connection = connect(host.address, ssh_rig.settings(user, host, **kwargs))
        opened.append(connection)
        return connection

    yield make
    for connection in opened:
        connection.close()


def stat(connection, path):
    """``(inode, mode, uid, gid)`` of ``path`` on the host."""
    inode, mode, uid, gid = connection.sudo(f"stat -c '%i %a %u %g' {quote(path)}", check=True).text.split()
    return int(inode), mode, int(uid), int(gid)


def etc_listing(connection):
    return connection.run("ls -a /etc", check=True).text.split()


def read(connection, path):
    return connection.sudo(rf.read_file_command(path), check=True).stdout


def replace(connection, path, content, **kwargs):
    return connection.sudo(rf.atomic_replace_script(path, **kwargs), input=content)


def test_fstab_is_replaced_by_rename(login, host):
    connection = login()
    old = read(connection, "/etc/fstab")
    assert old.startswith(b"# /etc/fstab of ams test host ")
    connection.sudo("chmod 0640 /etc/fstab", check=True)
    inode, mode, uid, gid = stat(connection, "/etc/fstab")
    new = fstab.set_entry(old.decode(), U1, "/data", "xfs").encode()
    result = replace(connection, "/etc/fstab", new, validate=rf.FSTAB_VALIDATE)
    assert (result.exit_status, result.stdout, result.stderr) == (0, b"replaced\n", b"")
    assert read(connection, "/etc/fstab") == new
    with open(host.fstab_path, "rb") as fh:
        assert fh.read() == new
    new_inode, new_mode, new_uid, new_gid = stat(connection, "/etc/fstab")
    assert new_inode != inode  # renamed into place, not rewritten
    assert (new_mode, new_uid, new_gid) == (mode, uid, gid) == ("640", 0, 0)
    assert read(connection, "/etc/fstab.ams.bak") == old
    assert stat(connection, "/etc/fstab.ams.bak")[1:] == ("640", 0, 0)
    assert not [name for name in etc_listing(connection) if rf.TMP_SUFFIX in name]
    assert connection.sudo("findmnt --tab-file /etc/fstab -n -r -o TARGET", check=True).text == "/data\n"


def test_the_same_content_again_changes_nothing(login):
    connection = login()
    old = read(connection, "/etc/fstab")
    new = fstab.set_entry(old.decode(), U1, "/data", "xfs").encode()
    assert replace(connection, "/etc/fstab", new, validate=rf.FSTAB_VALIDATE).stdout == b"replaced\n"
    inode = stat(connection, "/etc/fstab")[0]
    again = replace(connection, "/etc/fstab", new, validate=rf.FSTAB_VALIDATE)
    assert (again.exit_status, again.stdout) == (0, b"unchanged\n")
    assert stat(connection, "/etc/fstab")[0] == inode
    assert read(connection, "/etc/fstab.ams.bak") == old  # still the version before the change


def test_with_a_sudo_password_the_content_still_arrives_whole(login):
    connection = login("sudopw", sudo_password=True)
    content = "# grüße\n".encode() + bytes(range(1, 256)).replace(b"\n", b"") + b"\n" + b"x" * 200000 + b"\n"
    result = replace(connection, "/etc/ams-test-blob", content)
    assert (result.exit_status, result.stderr) == (0, b"")
    assert read(connection, "/etc/ams-test-blob") == content
    assert stat(connection, "/etc/ams-test-blob")[1:] == ("644", 0, 0)


def test_failed_validation_leaves_fstab_byte_identical(login, host):
    connection = login()
    old = read(connection, "/etc/fstab")
    inode = stat(connection, "/etc/fstab")[0]
    broken = old + b"UUID=" + U1.encode() + b" /data\n"
    result = replace(connection, "/etc/fstab", broken, validate=rf.FSTAB_VALIDATE)
    assert result.exit_status == rf.EXIT_INVALID
    assert result.stdout == b""
    message = result.stderr.decode()
    assert message.startswith("ams: new /etc/fstab refused, the file is unchanged: ")
    assert message.count("\n") == 1 and "parse error at line 2" in message and "libmount read 0 of 1" in message
    assert read(connection, "/etc/fstab") == old
    assert stat(connection, "/etc/fstab")[0] == inode
    with open(host.fstab_path, "rb") as fh:
        assert fh.read() == old
    listing = etc_listing(connection)
    assert "fstab.ams.bak" not in listing
    assert not [name for name in listing if rf.TMP_SUFFIX in name]


def test_a_file_changed_since_it_was_read_is_not_replaced(login):
    connection = login()
    old = read(connection, "/etc/fstab")
    digest = hashlib.sha256(old).hexdigest()
    connection.sudo("echo '# edited by someone else' >> /etc/fstab", check=True)
    result = replace(connection, "/etc/fstab", old + b"# mine\n", expect_sha256=digest)
    assert result.exit_status == rf.EXIT_CHANGED
    assert result.stderr == b"ams: /etc/fstab changed since it was read\n"
    assert read(connection, "/etc/fstab") == old + b"# edited by someone else\n"


def test_concurrent_replaces_of_what_both_read_one_wins(login):
    first, second = login(), login()
    old = read(first, "/etc/fstab")
    digest = hashlib.sha256(old).hexdigest()
    results = {}

    def work(name, connection):
        # the validation is slow, so both scripts are in flight together
        results[name] = replace(connection, "/etc/fstab", old + f"# {name}\n".encode(), expect_sha256=digest,
                                validate="sleep 1")

    threads = [threading.Thread(target=work, args=(name, conn)) for name, conn in (("a", first), ("b", second))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = sorted(result.exit_status for result in results.values())
    assert statuses == [0, rf.EXIT_CHANGED]
    winner = next(name for name, result in results.items() if result.exit_status == 0)
    assert read(first, "/etc/fstab") == old + f"# {winner}\n".encode()


def machine_file(path):
    """This machine's own file (None when absent)."""
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        return None


def test_mdadm_conf_created_and_kept_private(login, host):
    connection = login()
    machine_before = machine_file("/etc/mdadm.conf")
    path = mdadmconf.CONF_PATHS[1]  # /etc/mdadm.conf: absent on the host (and on this machine)
    assert read(connection, path) == b""
    line = mdadmconf.set_array("", "/dev/md/ams-vg12", "0a1b2c3d:4e5f6a7b:8c9d0e1f:2a3b4c5d", "ams-vg12")
    result = replace(connection, path, line.encode())
    assert (result.exit_status, result.stdout) == (0, b"replaced\n")
    assert read(connection, path) == line.encode()
    assert stat(connection, path)[1:] == ("644", 0, 0)
    assert "mdadm.conf.ams.bak" not in etc_listing(connection)  # nothing to back up
    with open(os.path.join(host.etc_dir, "mdadm.conf"), "rb") as fh:
        assert fh.read() == line.encode()
    assert machine_file("/etc/mdadm.conf") == machine_before  # this machine's /etc never sees it


def test_debian_mdadm_conf_is_replaced_by_rename(login, host):
    connection = login()
    path = mdadmconf.CONF_PATHS[0]
    old = read(connection, path)
    assert old.startswith(b"# mdadm.conf of ams test host ")
    inode = stat(connection, path)[0]
    new = mdadmconf.set_array(old.decode(), "/dev/md/ams-vg1", "11111111:22222222:33333333:44444444").encode()
    assert replace(connection, path, new).exit_status == 0
    assert stat(connection, path)[0] != inode
    with open(host.mdadm_conf_path, "rb") as fh:
        assert fh.read() == new


def test_read_file_command_on_the_host(login):
    connection = login()
    missing = connection.run(rf.read_file_command("/etc/ams-no-such-file"))
    assert (missing.exit_status, missing.stdout, missing.stderr) == (0, b"", b"")
    connection.sudo("umask 077 && echo secret > /etc/ams-root-only", check=True)
    unreadable = connection.run(rf.read_file_command("/etc/ams-root-only"))  # not as root
    assert unreadable.exit_status != 0 and b"Permission denied" in unreadable.stderr
    assert read(connection, "/etc/ams-root-only") == b"secret\n"

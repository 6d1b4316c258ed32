"""Shell injection through every user-supplied value that can reach a shell (issue 11).

What can reach a shell, and what ams does with it:

==========================  ====================================  ==================================
value                       reaches                               ams
==========================  ====================================  ==================================
mount point (-m, MOUNT_     mkdir/mount/umount/findmnt/realpath   refused unless letters, digits and
POINT of every command)     argv, fstab, freeze script, hook env  ``/ . _ @ + = : , -`` (mountpoint.py)
hostname (-H, HOSTNAME)     ssh target, ProxyCommand %h/%n         refused unless a DNS name or an IP
--pre/--post hooks          ``sh -c -- HOOK`` as root on the host  shell by design: quoted as one
                                                                  argument, arrives byte for byte;
                                                                  newlines/control chars refused
hook environment            ``env AMS_MOUNT_POINT=… sh -c``        quoted (join), values checked
SSH_USER, host alias,       ProxyCommand ``%r %n %h`` (sh -c on    refused when it holds characters
ssh config HostName         the operator's machine)                a shell interprets
description, tags           EC2 only (never a shell)              stored as given
array name, fs label,       mdadm/mkfs argv                       made by ams from the group id
devices                                                           (pure checks), quoted
==========================  ====================================  ==================================

The tables below try each payload in each field: refused with one error line and nothing changed
(database rows, the rig's EC2 state, no mutating EC2 call: the helpers and the shared state of
test_bad_input.py), or,
for hooks, run on a real host (an sshd test host here, the QEMU guest through the command line in
test_secrets_guest.py) with exactly the bytes a local ``sh -c`` of the same text gives.  After
every table no ``pwned-*`` marker exists.
"""

import shlex
import subprocess

import pytest

from amslib.core.errors import ConfigError, UsageError
from amslib.hostdisk.remote import HostDisk
from amslib.ssh import connect
from tests.integration.test_bad_input import (  # noqa: F401  (state: a fixture)
    all_rows, check_one_error, ec2_state, mutating_calls, state,
)
from tests.integration.test_schedules import ZONE


@pytest.fixture
def db_url(sqlite_url):
    """SQLite only: one database serves every row of a table."""
    return sqlite_url


def payloads(marker):
    """(name, text) pairs; running any of them as shell code creates ``marker``-N."""
    return [
        ("command substitution", f"$(touch {marker}-1)"),
        ("backquotes", f"`touch {marker}-2`"),
        ("semicolon", f";touch {marker}-3"),
        ("quote breakout", f"'; touch {marker}-4; '"),
        ("double quote breakout", f'"; touch {marker}-5; "'),
        ("newline", f"\ntouch {marker}-6"),
        ("pipe", f"|touch {marker}-7"),
        ("background", f"&touch {marker}-8"),
        ("redirect", f">{marker}-9"),
        ("space", " x"),
        ("glob", "*"),
        ("tab and brace", "\t{a,b}"),
    ]


def field_cases(ids, name, value):
    """(argv, exit code, fragment of the error) of every field that takes ``value``."""
    i, h, gid, sgid = ids["instance"], ids["hostname"], ids["gid"], ids["sgid"]
    mount_point = "/srv/x" + value
    host = "web" + value
    return [
        # mount points
        (("volume", "create", "-i", i, "-n", 1, "-s", 1, "-m", mount_point), 2, "mount point"),
        (("volume", "attach", gid, "-i", i, "-m", mount_point), 2, "mount point"),
        (("volume", "detach", "host", h, mount_point), 2, "mount point"),
        (("volume", "detach", "instance", i, mount_point), 2, "mount point"),
        (("snapshot", "create", "host", "-H", h, "-m", mount_point, "--freeze"), 2, "mount point"),
        (("snapshot", "create", "host", "-i", i, "-m", mount_point), 2, "mount point"),
        (("snapshot", "clone", "snapshot", sgid, "-i", i, "-m", mount_point), 2, "mount point"),
        (("snapshot", "clone", "latest", "host", h, mount_point, "-z", ZONE), 2, "mount point"),
        (("snapshot", "schedule", "add", "host", h, "-m", mount_point), 2, "mount point"),
        (("snapshot", "schedule", "add", "instance", i, "-m", mount_point), 2, "mount point"),
        # hostnames
        (("host", "add", "-i", "i-0cccccccccccccccc", "-z", ZONE, "-H", host), 2, "invalid hostname"),
        (("host", "edit", "-i", i, "-H", host), 2, "invalid hostname"),
        (("volume", "attach", gid, "-H", host, "-m", "/srv/x"), 2, "hostname"),
        (("volume", "detach", "host", host, "/srv/x"), 2, "hostname"),
        (("snapshot", "create", "host", "-H", host, "-m", "/srv/x"), 2, "hostname"),
        (("snapshot", "clone", "snapshot", sgid, "-H", host), 2, "hostname"),
        (("snapshot", "schedule", "add", "host", host, "-m", "/srv/x"), 2, "hostname"),
    ]


def test_values_with_shell_syntax_are_refused_by_every_command(state, db_url, tmp_path):  # noqa: F811
    ams, rig, ids = state
    marker = tmp_path / "pwned"
    cases = [case for name, value in payloads(marker) for case in field_cases(ids, name, value)]
    # a hook is shell code by design, but one line: a newline or other control character is refused
    for option in ("--pre", "--post"):
        for hook in (f"true\ntouch {marker}-10", f"true\rtouch {marker}-11", f"true\0touch {marker}-12"):
            cases += [
                (("snapshot", "create", "volume", ids["gid"], option, hook), 2, option),
                (("snapshot", "schedule", "add", "volume", ids["gid"], option, hook), 2, option),
            ]
    cases = [case for case in cases if "\0" not in "".join(map(str, case[0]))]  # argv cannot hold NUL
    assert len(cases) >= 200
    rows_before, ec2_before = all_rows(db_url), ec2_state(rig)
    rig.reset_counts()
    failures = []
    for argv, code, fragment in cases:
        result = ams(*argv)
        why = check_one_error(result, code, fragment)
        if why:
            failures.append(f"{' '.join(map(repr, map(str, argv)))}: {why}\n{result}")
    assert not failures, f"{len(failures)} of {len(cases)} cases failed:\n\n" + "\n\n".join(failures)
    # nothing changed (checked once for the whole table: test_bad_input.py checks row by row)
    assert mutating_calls(rig) == {}
    assert all_rows(db_url) == rows_before and ec2_state(rig) == ec2_before
    assert not list(tmp_path.glob("pwned*"))


# --- ProxyCommand tokens: the user and host names reach sh -c on the operator's machine ---------

def test_proxy_command_tokens_with_shell_syntax_are_refused(ssh_rig, tmp_path):
    marker = tmp_path / "pwned"
    config = tmp_path / "ssh_config"
    config.write_text(f"Host *\n    ProxyCommand touch {marker}-r-%r {marker}-n-%n {marker}-h-%h; exit 1\n")
    for name, value in payloads(marker):
        user = "amst-key" + value
        settings = ssh_rig.settings("key", SSH_CONFIG_FILE=config, SSH_USER=user)
        with pytest.raises(ConfigError) as failure:
            connect(ssh_rig.host.address, settings)
        message = str(failure.value)
        assert "\n" not in message and "(%r)" in message and "shell interprets" in message, name
        with pytest.raises(ConfigError, match=r"\(%n\)"):
            connect("web" + value, ssh_rig.settings("key", SSH_CONFIG_FILE=config))
    # a HostName from the ssh config is expanded as %h: the same check
    config.write_text(f"Host evil\n    HostName h$(touch {marker}-h)\n    ProxyCommand nc %h %p\n")
    with pytest.raises(ConfigError, match=r"host name .* \(%h\)"):
        connect("evil", ssh_rig.settings("key", SSH_CONFIG_FILE=config))
    assert not list(tmp_path.glob("pwned*"))


# --- hooks: shell by design, byte for byte on a real host ------------------------------------------

def hooks(marker):
    """Hook commands full of quoting traps; none of them creates ``marker``-N when run as written."""
    return [
        "printf '%s|' \"$AMS_HOOK\" \"$AMS_MOUNT_POINT\" \"$AMS_VOLUME_GROUP_ID\"",
        f"printf '[%s]' 'single $(touch {marker}-20) `touch {marker}-21`'",
        "printf '[%s]' \"double \\\"quoted\\\" \\$HOME \\\\ \\`x\\`\" a\\ b '' \"\"",
        f"echo $((6 * 7)) '*' \"?\" '~' '#not a comment' ; echo 'semi;colon' && echo 'and&&' || touch {marker}-22",
        "printf '%s\\n' \"tab\there\" 'ünïcödé ☃' \"$0\" \"$#\"",
        "x='it'\"'\"'s'; echo \"$x\" | tr a-z A-Z; exit 0",
        "cat; echo \"stdin: $?\"",  # stdin is /dev/null: nothing read, no hang
    ]


def local_run(hook, env):
    """What ``sh -c -- HOOK`` prints here with ``env`` (the expected bytes on the host)."""
    pairs = [f"{k}={v}" for k, v in env.items()]
    return subprocess.run(["env", *pairs, "sh", "-c", "--", hook], stdin=subprocess.DEVNULL,
                          capture_output=True, check=True, cwd="/").stdout


@pytest.mark.parametrize("user, sudo_password", [("sudo", None), ("sudopw", True)])
def test_hooks_reach_the_host_byte_for_byte(ssh_rig, tmp_path, user, sudo_password):
    marker = tmp_path / "pwned"
    env = {"AMS_HOOK": "pre", "AMS_MOUNT_POINT": "/srv/data", "AMS_VOLUME_GROUP_ID": "7"}
    host = ssh_rig.host
    settings = ssh_rig.settings(user, sudo_password=sudo_password)
    with connect(host.address, settings) as connection:
        disk = HostDisk(lambda: connection, host.name)
        for hook in hooks(marker):
            sent = len(host.commands())
            result = disk.run_hook(hook, "pre", timeout=30, env=env)
            assert result.stdout == local_run(hook, env), hook
            (line,) = host.commands()[sent:]  # the one command line the host received
            assert shlex.split(shlex.split(line)[-2])[-2:] == [hook, "</dev/null"], line
        with pytest.raises(UsageError, match="control characters"):
            disk.run_hook(f"true\ntouch {marker}-23", "pre", timeout=30, env=env)
    assert not list(tmp_path.glob("pwned*"))

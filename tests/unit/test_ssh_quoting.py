"""quote()/join(): what a POSIX shell receives is exactly the arguments given."""

import subprocess

import pytest

from amslib.ssh.quoting import join, quote

NASTY = [
    "plain",
    "",
    "two words",
    "it's",
    '"double"',
    "$(touch /tmp/ams-quoting-pwned)",
    "`id`",
    "a;b&&c|d",
    "new\nline",
    "tab\tand*glob?[x]",
    "-n",
    "~root",
    "ünïcödé",
    "back\\slash",
]


def shell_argv(command_line):
    """The argv a real sh builds from ``printf '%s\\0' <command_line>``."""
    out = subprocess.run(["sh", "-c", "printf '%s\\0' " + command_line], check=True,
                         capture_output=True).stdout
    return out.decode().split("\0")[:-1]


@pytest.mark.parametrize("value", NASTY)
def test_quote_survives_the_shell(value):
    assert shell_argv(quote(value)) == [value]


def test_join_keeps_argument_boundaries():
    assert shell_argv(join(NASTY)) == NASTY


def test_quote_converts_numbers():
    assert quote(42) == "42"


def test_quote_leaves_safe_words_alone():
    assert join(["mkfs.xfs", "-f", "/dev/nvme1n1"]) == "mkfs.xfs -f /dev/nvme1n1"


def test_join_refuses_a_plain_string():
    with pytest.raises(TypeError):
        join("rm -rf /")


def test_quote_refuses_bytes():
    with pytest.raises(TypeError):
        quote(b"x")

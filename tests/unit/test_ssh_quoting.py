"""quote()/join(): what a POSIX shell receives is exactly the arguments given."""

import subprocess

import pytest

from amslib.core.errors import ConfigError
from amslib.ssh.quoting import join, quote
from amslib.ssh.sshconfig import proxy_command_line

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


# --- ProxyCommand tokens: OpenSSH expands %h %n %r unquoted into sh -c, so ams refuses values a
# shell would interpret (as OpenSSH 9.6+ does for names on its command line) ------------------

TOKEN_ARGS = {"h": "hostname", "n": "alias", "r": "user"}


@pytest.mark.parametrize("token", sorted(TOKEN_ARGS))
@pytest.mark.parametrize("value", [v for v in NASTY if v not in ("plain", "-n", "ünïcödé")])
def test_proxy_command_refuses_shell_syntax_in_names(tmp_path, token, value):
    marker = tmp_path / "pwned"
    value = value.replace("/tmp/ams-quoting-pwned", str(marker))
    names = {"hostname": "h", "alias": "a", "user": "u", TOKEN_ARGS[token]: value}
    if value == "":
        assert proxy_command_line(f"echo %{token}", port=22, **names) == "echo "
        return
    with pytest.raises(ConfigError, match=f"contains characters a shell interprets.*%{token}"):
        proxy_command_line(f"touch {marker}-%{token}; echo %{token}", port=22, **names)
    assert not list(tmp_path.iterdir())


def test_proxy_command_keeps_usual_names_and_ignores_unused_tokens():
    line = proxy_command_line("printf '%%s\\n' %r %h %n %p", hostname="10.0.0.5", port=2222,
                              user="ec2-user", alias="db-1.example.com")
    out = subprocess.run(["sh", "-c", line], check=True, capture_output=True, text=True).stdout
    assert out.split("\n") == ["ec2-user", "10.0.0.5", "db-1.example.com", "2222", ""]
    assert proxy_command_line("nc proxy %p", hostname="h", port=22, user="a b;c", alias="a") == "nc proxy 22"
    assert proxy_command_line("nc %h %p", hostname="fe80::1", port=22, user="u", alias="a") == "nc fe80::1 22"

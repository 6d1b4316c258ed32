"""The sudo exchange: prompt answered once, sudo's failures told apart, stdin order."""

import shlex
import time

import pytest

from amslib.core.errors import SudoError
from amslib.ssh.sudo import SudoExchange, prompt_marker, ready_marker, sudo_command

TOKEN = "0123abcd"
PROMPT = prompt_marker(TOKEN).encode()
READY = ready_marker(TOKEN).encode() + b"\n"


def exchange(password="pw", input=b"payload", start_timeout=None):
    return SudoExchange(token=TOKEN, password=password, input=input, host="u@h:22", login="u",
                        start_timeout=start_timeout)


def test_password_is_sent_after_the_prompt_and_input_after_the_ready_marker():
    ex = exchange()
    assert ex.take_stdin() == b"" and not ex.stdin_complete
    assert ex.filter_stderr(PROMPT[:5]) == b""
    assert ex.take_stdin() == b""  # half a prompt is no prompt
    assert ex.filter_stderr(PROMPT[5:]) == b""
    assert ex.take_stdin() == b"pw\n"
    assert not ex.stdin_complete
    assert ex.filter_stderr(READY + b"own stderr") == b"own stderr"
    assert ex.take_stdin() == b"payload" and ex.stdin_complete
    assert ex.filter_stderr(b" more") == b" more"
    ex.finish(0)


def test_no_prompt_no_password_sent():
    ex = exchange()
    assert ex.filter_stderr(READY) == b""
    assert ex.take_stdin() == b"payload"


def test_second_prompt_means_wrong_password():
    ex = exchange()
    ex.filter_stderr(PROMPT)
    with pytest.raises(SudoError, match="wrong password"):
        ex.filter_stderr(b"Sorry, try again.\n" + PROMPT)


def test_prompt_without_configured_password():
    with pytest.raises(SudoError, match="none is configured"):
        exchange(password=None).filter_stderr(PROMPT)


@pytest.mark.parametrize("stderr, status, expected", [
    (b"sudo: a password is required\n", 1, "none is configured"),
    (b"u is not in the sudoers file.  This incident will be reported.\n", 1, "may not use sudo"),
    (b"sh: 1: sudo: not found\n", 127, "not installed"),
    (b"sudo: 3 incorrect password attempts\n", 1, "wrong password"),
    (b"sudo: something else\n", 1, "something else"),
])
def test_sudo_failures_before_the_command_ran(stderr, status, expected):
    ex = exchange()
    assert ex.filter_stderr(stderr) == b""
    with pytest.raises(SudoError, match=expected):
        ex.finish(status)


def test_command_failure_is_not_a_sudo_error():
    ex = exchange()
    ex.filter_stderr(READY + b"a password is required\n")
    ex.finish(1)  # the command's own words: no SudoError


def test_command_line_quotes_and_keeps_the_password_out():
    line = sudo_command("echo 'a b' && id", token=TOKEN, with_password=True, timeout=5)
    argv = shlex.split(line)
    assert argv[:5] == ["sudo", "-k", "-S", "-p", prompt_marker(TOKEN)]
    assert argv[-3:] == [ready_marker(TOKEN), "echo 'a b' && id", "5.0"]
    assert shlex.split(sudo_command("id", token=TOKEN, with_password=False, user="bob"))[:5] == [
        "sudo", "-n", "-u", "bob", "--"]


def test_sudo_that_never_starts_the_command_fails_after_the_start_timeout():
    ex = exchange(start_timeout=0.01)
    ex.check_time()  # not yet
    ex.filter_stderr(b"Enter your PIN: ")  # some prompt ams does not recognise
    time.sleep(0.02)
    with pytest.raises(SudoError, match="did not start the command within 0.01s.*Enter your PIN"):
        ex.check_time()


def test_start_timeout_does_not_apply_once_the_command_runs():
    ex = exchange(start_timeout=0.01)
    ex.filter_stderr(READY)
    time.sleep(0.02)
    ex.check_time()

"""The secrets audit (tests/secrets_audit.py) finds what it must, shows no secret, and fails a run.

The scanner is tested on its own ``Audit`` objects (the session's audit must not see these
deliberate leaks); the plugin is tested end to end by running pytest on a small test file in a
child process.
"""

import base64
import os
import re
import subprocess
import sys
import urllib.parse

import pytest

from tests.secrets_audit import AWS_SECRET_ACCESS_KEY, Audit, encodings

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SECRET = "s3cr3t-for-the-audit's \"own\" test/+="


@pytest.fixture
def audit():
    audit = Audit()
    audit.register(SECRET, "test password", user="amst-x")
    audit.register("db-password", "db password", user="dbuser", bare=False)
    return audit


@pytest.mark.parametrize("shown, kind", [
    (SECRET, "plain"),
    (urllib.parse.quote(SECRET, safe=""), "URL-encoded"),
    (urllib.parse.quote_plus(SECRET), "URL-encoded"),
    (repr(SECRET)[1:-1], "repr-escaped"),
    ('"' + SECRET.replace('"', '\\"') + '"', "JSON-escaped"),
    (base64.b64encode(SECRET.encode()).decode(), "base64"),
    (base64.b64encode(f"amst-x:{SECRET}".encode()).decode(), "base64 of user:password"),
    ("mysql://dbuser:db-password@h/db", "user:password@"),
    ("Authorization: Basic " + base64.b64encode(b"dbuser:db-password").decode(), "base64 of user:password"),
])
def test_each_encoding_is_found_and_never_shown(audit, shown, kind):
    text = f"line one\nsomething said {shown} and more\n"
    found = audit.find(text)
    assert kind in [k for _, k, _ in found], found
    for name, _, excerpt in found:
        assert f"<{name}>" in excerpt
        assert SECRET not in excerpt and "db-password" not in excerpt and shown not in excerpt


def test_clean_text_and_a_common_password_alone_are_not_leaks(audit):
    assert audit.find("") == [] and audit.find(b"binary \xff output") == []
    assert audit.find("the db-password setting is masked: ********") == []  # bare=False
    assert audit.find("s3cr3t-for-the-audit") == []  # a prefix is not the secret


def test_short_values_are_not_looked_for():
    assert encodings("pw") == {}
    assert set(encodings("abcdef")) >= {"abcdef"}


def test_excerpt_never_cuts_a_second_secret_in_two(audit):
    text = "x" * 30 + SECRET + "y" * 35 + SECRET + "z"
    (_, _, excerpt), = audit.find(text)
    assert excerpt.count("<test password>") == 2 and "s3cr" not in excerpt and "=" not in excerpt


def test_observe_records_one_line_per_leak_with_test_and_place(audit):
    audit.observe("ams stderr", f"error: bad {SECRET}", test="t.py::one")
    audit.observe("ams stderr", f"again {SECRET}", test="t.py::one")
    audit.observe("Captured log call", "fine", test="t.py::two")
    (line,) = audit.leaks()
    assert line.startswith("t.py::one: test password (plain) in ams stderr: ") and SECRET not in line


def test_watched_files_are_scanned_incrementally(audit, tmp_path):
    log = tmp_path / "commands.log"
    log.write_bytes(b"echo hello\0")
    audit.watch_file(log)
    audit.scan_watched(test="t::a")
    assert audit.leaks() == [] and audit.scanned == len("echo hello\n")
    with open(log, "ab") as fh:
        fh.write(f"sudo -S {SECRET}\0".encode())
    audit.scan_watched(test="t::b")
    (line,) = audit.leaks()
    assert line.startswith(f"t::b: test password (plain) in file {log}:")
    audit.unwatch_file(log)
    log.write_bytes(f"{SECRET}\0".encode() * 3)
    audit.scan_watched(test="t::c")
    assert len(audit.leaks()) == 1


SAMPLE = '''
import os, sys
from tests.dbfixtures import AmsResult
from tests.secrets_audit import AWS_SECRET_ACCESS_KEY, register, watch_file

def test_clean():
    print("nothing to see")

def test_prints_a_secret():
    if os.environ.get("LEAK") == "stdout":
        print("key:", AWS_SECRET_ACCESS_KEY)

def test_ams_output():
    if os.environ.get("LEAK") == "ams":
        AmsResult(0, "", "ams: error: bad key " + AWS_SECRET_ACCESS_KEY + "\\n")

def test_log_record():
    if os.environ.get("LEAK") == "log":
        import logging
        logging.getLogger("ams.x").warning("password %s", register("runtime-secret-99", "runtime"))

def test_remote_command(tmp_path):
    if os.environ.get("LEAK") == "file":
        log = tmp_path / "commands.log"
        log.write_text("")
        watch_file(log)
        register("runtime-secret-98", "runtime")
        log.write_text("sudo sh -c 'echo runtime-secret-98'\\0")
'''


def run_sample(tmp_path, leak):
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    env = dict(os.environ, PYTHONPATH=ROOT, LEAK=leak)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.secrets_audit", "-p", "no:cacheprovider",
         "--rootdir", str(tmp_path), str(tmp_path / "test_sample.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("leak, where", [
    ("stdout", "Captured stdout call"),
    ("ams", "ams stderr"),
    ("log", "Captured log call"),
    ("file", "file "),
])
def test_the_plugin_fails_a_passing_run_that_leaked(tmp_path, leak, where):
    result = run_sample(tmp_path, leak)
    output = result.stdout + result.stderr
    assert "5 passed" in output, output
    assert result.returncode == 1, output
    lines = [line for line in output.splitlines() if line.startswith("SECRET LEAK ")]
    assert len(lines) == 1 and where in lines[0], output
    assert AWS_SECRET_ACCESS_KEY not in output and "runtime-secret-9" not in output


def test_the_plugin_passes_a_clean_run(tmp_path):
    result = run_sample(tmp_path, "none")
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "5 passed" in output, output
    assert re.search(r"secrets audit: none of \d+ known secrets", output) and "SECRET LEAK" not in output

"""Shell completion as a shell runs it: the checkout's `ams` script (one Python process), the
argcomplete protocol (environment, fd 8 or _ARGCOMPLETE_STDOUT_FILENAME), bash's own hooks, and
candidates read from the database without loading boto3, paramiko or SQLAlchemy."""

import os
import shutil
import subprocess
import sys

import pytest

from tests.completiondb import install_and_fill
from tests.dbfixtures import ROOT

SCRIPT = os.path.join(ROOT, "ams")
HEAVY = {"boto3", "botocore", "paramiko", "sqlalchemy", "alembic", "prettytable"}


@pytest.fixture
def filled_env(db_url, tmp_path):
    """Environment for an `ams` process on a filled database (SQLite, then MariaDB)."""
    install_and_fill(db_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AMS_", "_ARGCOMPLETE", "COMP_"))}
    home = tmp_path / "home"
    home.mkdir()
    env.update(HOME=str(home), AMS_DB_URL=db_url)
    return env


def completion_env(env, line, out):
    env = dict(env)
    env.update(_ARGCOMPLETE="1", _ARGCOMPLETE_SHELL="bash", COMP_LINE=line, COMP_POINT=str(len(line)),
               _ARGCOMPLETE_STDOUT_FILENAME=str(out), _ARGCOMPLETE_IFS="\n", PYTHONPROFILEIMPORTTIME="1")
    return env


def imported_modules(stderr):
    """Top-level names of the modules -X importtime reported."""
    return {line.split("|")[-1].strip().split(".")[0] for line in stderr.splitlines() if line.startswith("import time:")}


def interpreters(stderr):
    """Python processes started, from -X importtime (each imports `encodings` first, once)."""
    return sum(1 for line in stderr.splitlines() if line.startswith("import time:") and line.endswith("| encodings"))


@pytest.mark.parametrize("line,expected", [
    ("ams volume create -H web", ["web1.example.com", "web2.example.com", "web_x.example.com"]),
    ("ams volume attach 1", ["1", "12"]),
    ("ams volume detach host web1.example.com /", ["/data", "/logs"]),
    ("ams snapshot schedule run 3", ["3"]),
])
def test_dynamic_completion_through_the_checkout_script(filled_env, tmp_path, db_url, line, expected):
    """The real script, run as the shell runs it, answers from the database and imports nothing
    heavy (and, on SQLite, no database library but sqlite3)."""
    out = tmp_path / "completions"
    proc = subprocess.run([SCRIPT], env=completion_env(filled_env, line, out), cwd=str(tmp_path),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert [word.rstrip(" ") for word in out.read_text().split("\n")] == expected  # one gets a space
    imported = imported_modules(proc.stderr)
    assert "argcomplete" in imported and "amslib" in imported
    assert not imported & HEAVY
    if db_url.startswith("sqlite"):
        assert "sqlite3" in imported and "pymysql" not in imported
    else:
        assert "pymysql" in imported
    assert interpreters(proc.stderr) == 1


def test_completion_with_an_unreachable_database_answers_the_static_part(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AMS_", "_ARGCOMPLETE", "COMP_"))}
    env.update(HOME=str(tmp_path), AMS_DB_URL="mysql+pymysql://nobody@127.0.0.1:1/ams")
    out = tmp_path / "completions"
    env = completion_env(env, "ams volume attach ", out)
    del env["PYTHONPROFILEIMPORTTIME"]
    proc = subprocess.run([SCRIPT], env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    candidates = out.read_text().split("\n")
    assert "--host" in candidates and all(word.startswith("-") for word in candidates)
    assert proc.stderr == "" and proc.stdout == ""


def _bash_completion(env, setup, function, line):
    """COMPREPLY of bash's completion function for ``line``, as bash computes it."""
    script = f"""
{setup}
COMP_LINE=$1; COMP_POINT=${{#1}}; COMP_TYPE=9
read -ra COMP_WORDS <<< "$1"
case $1 in *" ") COMP_WORDS+=("") ;; esac
COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
{function} ams "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    proc = subprocess.run(["bash", "-c", script, "bash", line], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return [word.strip() for word in proc.stdout.splitlines() if word.strip()]


@pytest.fixture
def ams_on_path(filled_env, tmp_path):
    """The environment with a directory on PATH whose `ams` is a symlink to the checkout's."""
    if shutil.which("bash") is None:
        pytest.fail("bash is needed to run argcomplete's shell hooks")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ams").symlink_to(SCRIPT)
    env = dict(filled_env)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return env


def test_register_python_argcomplete_completes_through_the_script(ams_on_path):
    """README's way: eval "$(register-python-argcomplete ams)" (candidates come back on fd 8)."""
    register = os.path.join(os.path.dirname(sys.executable), "register-python-argcomplete")
    setup = f'eval "$("{register}" ams)"'
    assert _bash_completion(ams_on_path, setup, "_python_argcomplete", "ams vol") == ["volume"]
    assert _bash_completion(ams_on_path, setup, "_python_argcomplete", "ams host edit -i i-0c") == ["i-0ccccccccccccccc1"]


def test_global_completion_recognises_the_shell_script(ams_on_path):
    """argcomplete's global hook finds PYTHON_ARGCOMPLETE_OK in the sh script's first 1024 bytes."""
    import argcomplete

    with open(SCRIPT, "rb") as script:
        assert b"PYTHON_ARGCOMPLETE_OK" in script.read(1024)
    hook = os.path.join(os.path.dirname(argcomplete.__file__), "bash_completion.d", "_python-argcomplete")
    setup = f'source "{hook}"'
    assert _bash_completion(ams_on_path, setup, "_python_argcomplete_global", "ams snapshot schedule edit 3") == ["3"]


# -- the script starts one interpreter ------------------------------------------------------------------

def test_the_checkout_script_starts_one_python_process(tmp_path):
    env = dict(os.environ, PYTHONPROFILEIMPORTTIME="1")
    proc = subprocess.run([SCRIPT, "--version"], env=env, cwd=str(tmp_path), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("ams ")
    assert interpreters(proc.stderr) == 1
    # the same file is still a Python script (`python ams`, as the tests run it) and valid sh
    assert subprocess.run([sys.executable, SCRIPT, "--version"], capture_output=True).returncode == 0
    assert subprocess.run(["sh", "-n", SCRIPT]).returncode == 0


def test_without_a_virtualenv_the_script_runs_python3_from_path(tmp_path):
    """A checkout without .venv: the script execs the python3 found on PATH, once."""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    shutil.copy2(SCRIPT, checkout / "ams")
    (checkout / "amslib").symlink_to(os.path.join(ROOT, "amslib"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(sys.executable)
    link = tmp_path / "elsewhere" / "ams"
    link.parent.mkdir()
    link.symlink_to(checkout / "ams")
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}/usr/bin:/bin", PYTHONPROFILEIMPORTTIME="1")
    proc = subprocess.run([str(link), "--version"], env=env, cwd="/", capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("ams ")
    assert interpreters(proc.stderr) == 1

"""The command line as a user meets it: entry script, errors, exit codes, completion."""

import os
import subprocess
import sys

import pytest

from amslib import __version__
from tests.dbfixtures import ROOT, run_ams_process


def test_script_runs_from_any_directory_and_through_a_symlink(tmp_path, ams_env):
    link = tmp_path / "bin" / "ams"
    link.parent.mkdir()
    link.symlink_to(os.path.join(ROOT, "ams"))
    result = subprocess.run([str(link), "--version"], cwd=str(tmp_path), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"ams {__version__}"


def test_install_and_upgrade_on_embedded_sqlite_with_no_settings(tmp_path):
    env = {"HOME": str(tmp_path), "AMS_DB_URL": ""}
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMS_")}
    env["HOME"] = str(tmp_path)
    first = run_ams_process("internals", "database", "install", env=env)
    assert first.code == 0, first
    assert (tmp_path / ".ams" / "ams.db").exists()
    second = run_ams_process("internals", "database", "upgrade", env=env)
    assert second.code == 0 and "nothing to do" in second.out


@pytest.mark.parametrize(
    "argv,code,fragment",
    [
        (["bogus"], 2, "invalid choice: 'bogus'"),
        (["internals", "database", "explode"], 2, "invalid choice: 'explode'"),
        (["--output", "yaml", "internals", "database", "upgrade"], 2, "invalid choice: 'yaml'"),
        (["internals", "database", "upgrade", "--no-such-option"], 2, "unrecognized arguments"),
    ],
)
def test_usage_errors_exit_2_with_one_error_line(ams, argv, code, fragment):
    result = ams(*argv)
    assert result.code == code
    assert fragment in result.err
    last = result.err.strip().splitlines()[-1]
    assert last.startswith("ams") and "error:" in last and fragment in last
    assert "Traceback" not in result.err


def test_command_group_without_subcommand_shows_help_and_fails(ams):
    result = ams("internals")
    assert result.code == 2
    assert "database" in result.out


@pytest.mark.parametrize(
    "url,fragment",
    [
        ("mysql+pymysql://root@127.0.0.1:1/ams", "Can't connect"),
        ("postgresql://u@h/db", "unsupported database"),
        ("not a url", "invalid database URL"),
    ],
)
def test_database_errors_exit_8_with_one_line(ams, monkeypatch, url, fragment):
    monkeypatch.setenv("AMS_DB_URL", url)
    result = ams("internals", "database", "upgrade")
    assert result.code == 8, result
    assert fragment in result.err
    assert result.err.count("\n") == 1


def test_wrong_database_password_is_one_line_without_the_password(ams, monkeypatch, mariadb_server):
    server = mariadb_server.url.set(password="s3cret-wrong", database="ams")
    monkeypatch.setenv("AMS_DB_URL", server.render_as_string(hide_password=False))
    result = ams("--debug", "internals", "database", "upgrade")
    assert result.code == 8
    assert "Access denied" in result.err
    assert "s3cret-wrong" not in result.err + result.out


def test_bad_settings_value_is_a_config_error(ams, monkeypatch):
    monkeypatch.setenv("AMS_SSH_PORT", "twenty-two")
    result = ams("internals", "database", "upgrade")
    assert result.code == 9
    assert result.err.strip() == "ams: error: AMS_SSH_PORT must be a whole number, not 'twenty-two'"


def test_debug_shows_the_traceback(ams, monkeypatch):
    monkeypatch.setenv("AMS_DB_URL", "mysql+pymysql://root@127.0.0.1:1/ams")
    result = ams("--debug", "internals", "database", "upgrade")
    assert result.code == 8 and "Traceback" in result.err


def test_global_options_work_after_the_command(ams):
    result = ams("internals", "database", "upgrade", "--dry-run", "--output", "json")
    assert result.code == 0, result
    assert result.json["dry_run"] is True


def test_completion_does_not_import_heavy_libraries(tmp_path):
    """`ams in<TAB>` answers without importing boto3, paramiko or SQLAlchemy."""
    out = tmp_path / "completions"
    env = dict(os.environ)
    env.update(
        _ARGCOMPLETE="1",
        _ARGCOMPLETE_SHELL="bash",
        COMP_LINE="ams in",
        COMP_POINT="6",
        _ARGCOMPLETE_STDOUT_FILENAME=str(out),
        _ARGCOMPLETE_IFS="\n",
    )
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", os.path.join(ROOT, "ams")],
        env=env,
        capture_output=True,
        text=True,
        cwd=str(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert out.read_text().split() == ["internals"]
    imported = {line.split("|")[-1].strip().split(".")[0] for line in proc.stderr.splitlines() if "|" in line}
    assert "argcomplete" in imported
    assert not imported & {"boto3", "botocore", "paramiko", "sqlalchemy", "alembic", "pymysql", "prettytable"}

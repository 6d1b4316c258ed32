"""Database and CLI fixtures shared by the integration tests.

``db_url`` runs a test on SQLite and on a real MariaDB (a fresh database per
test, dropped afterwards).  MariaDB is found at ``AMS_TEST_MYSQL_URL``
(default: the ams_test account that scripts/start-mariadb creates); when it cannot be reached the
MariaDB variant skips with the reason, unless ``AMS_TEST_REQUIRE_ALL=1`` (set
by CI), where it fails instead.

``ams`` runs the real command line in-process: ``ams("host", "list")`` returns
the exit code, stdout, stderr and, with ``--output json``, the parsed document.
"""

import json
import os
import shlex
import subprocess
import sys
import uuid
from dataclasses import dataclass

import pytest

from tests import secrets_audit
from tests.resources import unavailable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MYSQL_SERVER_URL = os.environ.get(
    "AMS_TEST_MYSQL_URL", "mysql+pymysql://ams_test:ams_test@127.0.0.1:3306"  # scripts/start-mariadb makes it
)
secrets_audit.register_url(MYSQL_SERVER_URL, "MariaDB password of AMS_TEST_MYSQL_URL")


def _mysql_admin():
    import sqlalchemy

    return sqlalchemy.create_engine(MYSQL_SERVER_URL, connect_args={"connect_timeout": 5})


@pytest.fixture(scope="session")
def mariadb_server():
    """An admin engine on the MariaDB server, or a skip with the reason."""
    from sqlalchemy.exc import OperationalError

    engine = _mysql_admin()
    try:
        with engine.connect():
            pass
    except OperationalError as exc:
        shown = engine.url.render_as_string(hide_password=True)
        unavailable(f"MariaDB not reachable at {shown}: {exc.orig}")
    yield engine
    engine.dispose()


@pytest.fixture
def mariadb_url(request):
    """URL of a new, empty MariaDB database, dropped after the test."""
    from sqlalchemy import text

    admin = request.getfixturevalue("mariadb_server")
    name = "ams_test_" + uuid.uuid4().hex[:12]
    with admin.begin() as conn:
        conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    yield f"{MYSQL_SERVER_URL.rstrip('/')}/{name}"
    with admin.begin() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path}/ams.db"


@pytest.fixture(params=["sqlite", "mariadb"])
def db_url(request):
    """Each test using it runs once on SQLite and once on MariaDB."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def ams_env(monkeypatch, tmp_path, db_url):
    """A clean environment for ams: own HOME, no settings file, AMS_DB_URL set."""
    for name in list(os.environ):
        if name.startswith("AMS_") and not name.startswith("AMS_TEST_") and not name.startswith("AMS_RIG_"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("AMS_DB_URL", db_url)
    return {"HOME": str(home), "AMS_DB_URL": db_url}


@dataclass
class AmsResult:
    code: int
    out: str
    err: str

    def __post_init__(self):
        secrets_audit.observe("ams stdout", self.out)
        secrets_audit.observe("ams stderr", self.err)

    @property
    def json(self):
        return json.loads(self.out)

    def __str__(self):
        return f"exit {self.code}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"


@pytest.fixture
def ams(ams_env, capsys):
    """Run ams in-process with the given arguments."""
    from amslib.cli.main import main

    def run(*argv):
        capsys.readouterr()
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse usage errors
            code = exc.code if isinstance(exc.code, int) else 2
        captured = capsys.readouterr()
        return AmsResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def ams_db(ams):
    """``ams`` on a database with the schema installed."""
    result = ams("internals", "database", "install")
    assert result.code == 0, str(result)
    return ams


def run_ams_process(*argv, env=None, cwd=None, timeout=120):
    """Run the ``ams`` script of this checkout as a separate process."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "ams"), *map(str, argv)],
        env=full_env,
        cwd=cwd or "/",
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return AmsResult(proc.returncode, proc.stdout, proc.stderr)


def shell_join(argv):
    return " ".join(shlex.quote(str(a)) for a in argv)

"""`pip install .` gives a working `ams` with its migrations."""

import os
import subprocess
import sys
import zipfile

import pytest

from tests.dbfixtures import ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), ROOT],
        check=True,
        capture_output=True,
        cwd=str(out),
    )
    (path,) = out.glob("ams-*.whl")
    return path


def test_wheel_holds_every_package_and_the_migrations(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for directory, _, files in os.walk(os.path.join(ROOT, "amslib")):
        if "__init__.py" in files:
            package = os.path.relpath(directory, ROOT)
            assert f"{package}/__init__.py" in names, f"{package} is missing from pyproject's package list"
    migrations = sorted(os.listdir(os.path.join(ROOT, "sql", "versions")))
    for name in [m for m in migrations if m.endswith(".py")]:
        assert f"amslib/sql/versions/{name}" in names
    assert "amslib/sql/env.py" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "ams = amslib.cli.main:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_installed_copy_installs_the_schema(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMS_")}
    env.update(HOME=str(tmp_path), PYTHONPATH=str(target))
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from amslib.cli.main import main; sys.exit(main())",
         "internals", "database", "install"],
        env=env, cwd=str(tmp_path), capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "installed the ams schema version" in proc.stdout
    check = subprocess.run(
        [sys.executable, "-c", "from amslib.store.migrate import script_location; print(script_location())"],
        env=env, cwd=str(tmp_path), capture_output=True, text=True,
    )
    assert check.stdout.strip().startswith(str(target))

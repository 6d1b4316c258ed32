"""The command-line conventions as a user meets them, on the real CLI.

- every list command prints ``[]`` on an empty database and rows with exactly the keys
  tests/unit/test_cli_conventions.py documents, datetimes as ISO 8601 UTC (SQLite and MariaDB);
- ``-q`` prints lists, dry-run plans, JSON, warnings and errors, and nothing else: a command that
  changes something and works is silent (cron); ``-v`` adds steps; progress of a long wait only
  reaches a terminal (a real pseudo-terminal here) or ``-v``;
- bad input: one ``ams: error:`` line and its exit code, a traceback only with ``--debug``;
- ``--dry-run`` of the schema commands checks what the real command checks and creates nothing.
"""

import os
import pty
import re
import select
import subprocess
import sys

import pytest

from tests.dbfixtures import ROOT, run_ams_process
from tests.unit.test_cli_conventions import DATETIME_KEYS, LIST_COMMANDS

SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the backend changes nothing here
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$")
REGION, ZONE = "us-east-1", "us-east-1a"
HOST, INSTANCE = "web1.example.com", "i-0123456789abcdef0"


def ok(result):
    assert result.code == 0, str(result)
    return result


def only_error(result, code, text):
    """Exit ``code``, nothing on stdout, and stderr exactly one ``ams: error:`` line containing ``text``."""
    assert result.code == code, str(result)
    assert result.out == "", str(result)
    lines = result.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ams: error: ") and text in lines[0], str(result)


def engine_of(db_url):
    from amslib.store.db import create_engine

    return create_engine(db_url)


def fill(db_url, volume_ids=("vol-0aaaaaaaaaaaaaaa1", "vol-0aaaaaaaaaaaaaaa2")):
    """One host with a RAID volume group mounted at /data, a completed snapshot group of it and a
    schedule that ran once; returns the volume group id."""
    from amslib.store import schema
    from amslib.store.types import utcnow

    now = utcnow()
    engine = engine_of(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(schema.hosts.insert().values(
                instance_id=INSTANCE, hostname=HOST, hostname_source="user", name="web", region=REGION,
                availability_zone=ZONE, instance_type="t3.small", state="running", tags='{"Name": "web"}',
                created_at=now, updated_at=now, discovered_at=now, terminated_at=None))
            gid = conn.execute(schema.volume_groups.insert().values(
                raid_level=0, stripe_block_size=256, fs_type="xfs", region=REGION, availability_zone=ZONE,
                created_at=now, state="available")).inserted_primary_key[0]
            conn.execute(schema.volumes.insert(), [
                {"volume_id": v, "volume_group_id": gid, "member_index": i, "size_gib": 100, "volume_type": "gp3",
                 "availability_zone": ZONE, "created_at": now} for i, v in enumerate(volume_ids)])
            conn.execute(schema.host_volumes.insert().values(
                volume_group_id=gid, instance_id=INSTANCE, mount_point="/data", automount=True,
                block_device="/dev/md/ams-vg1", attached_at=now))
            sid = conn.execute(schema.snapshot_schedules.insert().values(
                resource_type="host", hostname=HOST, mount_point="/data", created_at=now,
                updated_at=now)).inserted_primary_key[0]
            sgid = conn.execute(schema.snapshot_groups.insert().values(
                volume_group_id=gid, region=REGION, description="nightly", schedule_id=sid, created_at=now,
                state="completed", expires_at=now.replace(year=now.year + 1), raid_level=0, stripe_block_size=256,
                fs_type="xfs", member_count=len(volume_ids), source_instance_id=INSTANCE, source_hostname=HOST,
                source_mount_point="/data")).inserted_primary_key[0]
            conn.execute(schema.snapshots.insert(), [
                {"snapshot_id": f"snap-0aaaaaaaaaaaaaaa{i}", "snapshot_group_id": sgid, "volume_id": v,
                 "member_index": i, "size_gib": 100, "region": REGION, "created_at": now, "state": "completed",
                 "progress": 100} for i, v in enumerate(volume_ids)])
            conn.execute(schema.schedule_runs.insert().values(
                schedule_id=sid, slot=None, manual=True, tiers="hourly", outcome="succeeded",
                snapshot_group_id=sgid, started_at=now, finished_at=now))
    finally:
        engine.dispose()
    return gid


def list_argv(command, gid):
    """The command line of a list command, with the argument its FIELD form needs."""
    argv = command.split()
    if command == "snapshot list volume":
        argv.append(gid)
    elif command in ("host list host", "volume list host", "snapshot list host"):
        argv.append(HOST)
    elif command in ("host list instance_id", "volume list instance_id", "snapshot list instance"):
        argv.append(INSTANCE)
    return argv


def datetime_keys(command):
    return next(keys for prefix, keys in sorted(DATETIME_KEYS.items(), key=lambda item: -len(item[0]))
                if command.startswith(prefix + " list"))


# -- lists --------------------------------------------------------------------------------------------

def test_every_list_on_an_empty_database(ams_db):
    for command in sorted(LIST_COMMANDS):
        argv = list_argv(command, 1)
        if command == "snapshot list volume":  # a volume group that was never recorded is not found
            result = ams_db(*argv)
            assert (result.code, result.out, result.err) == (3, "", "ams: error: volume group 1 not found\n"), str(result)
            continue
        for quiet in ([], ["-q"]):
            result = ok(ams_db(*quiet, *argv, "--output", "json"))
            assert (result.out, result.err) == ("[]\n", ""), (command, str(result))
        result = ok(ams_db(*argv))
        assert result.out.startswith("no ") and result.out.count("\n") == 1 and result.err == "", (command, str(result))
        result = ok(ams_db("-q", *argv))
        assert (result.out, result.err) == ("", ""), (command, str(result))


def test_every_list_prints_its_documented_keys_and_utc_datetimes(ams_db, db_url):
    gid = fill(db_url)
    for command, keys in sorted(LIST_COMMANDS.items()):
        result = ok(ams_db(*list_argv(command, gid), "--output", "json"))
        rows = result.json
        assert len(rows) == 1, (command, rows)
        assert set(rows[0]) == keys, command
        for key in datetime_keys(command):
            value = rows[0][key]
            assert value is None or ISO_UTC.match(value), (command, key, value)
        assert result.err == ""
    volume = ok(ams_db("volume", "list", "--output", "json")).json[0]
    assert (volume["members"], volume["size_gib"], volume["total_gib"], volume["automount"]) == (2, 100, 200, True)
    host = ok(ams_db("host", "list", "--output", "json")).json[0]
    assert host["tags"] == {"Name": "web"} and ISO_UTC.match(host["created_at"])
    schedule = ok(ams_db("snapshot", "schedule", "list", "--output", "json")).json[0]
    assert schedule["last_outcome"] == "succeeded" and ISO_UTC.match(schedule["last_run"])
    assert ISO_UTC.match(schedule["next_due"])


@SQLITE
def test_quiet_still_prints_the_rows_of_a_list(ams_db, db_url):
    gid = fill(db_url)
    for command in sorted(LIST_COMMANDS):
        result = ok(ams_db("-q", *list_argv(command, gid)))
        assert result.out.startswith("+--") and result.err == "", (command, str(result))


# -- bad input, --debug -------------------------------------------------------------------------------

@SQLITE
def test_bad_input_is_one_error_line_whatever_the_verbosity(ams_db):
    for verbosity in ([], ["-q"], ["-v"], ["-vv"]):
        only_error(ams_db(*verbosity, "volume", "delete", "abc"), 2, "invalid volume group id 'abc'")
        only_error(ams_db(*verbosity, "snapshot", "schedule", "delete", "7", "--dry-run"), 3,
                   "snapshot schedule 7 not found")


@SQLITE
def test_debug_adds_the_traceback_and_keeps_the_error_line_last(ams_db):
    for argv in (["volume", "delete", "abc"], ["host", "edit", "-i", "i-nope", "--notes", "x"]):
        plain = run_ams_process(*argv)
        assert plain.code == 2 and "Traceback" not in plain.err and plain.err.count("\n") == 1, str(plain)
        debug = run_ams_process("--debug", *argv)
        assert debug.code == 2 and debug.out == "", str(debug)
        assert debug.err.startswith("Traceback (most recent call last):"), str(debug)
        assert debug.err.splitlines()[-1] == plain.err.strip()


# -- the schema commands: dry runs and -q ------------------------------------------------------------

def module_ams(*argv, env):
    """``python -m amslib.cli.main`` in a process of its own."""
    proc = subprocess.run([sys.executable, "-m", "amslib.cli.main", *map(str, argv)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    return proc


def test_schema_dry_runs_create_nothing_and_check_what_the_real_commands_check(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMS_")}
    path = tmp_path / "new" / "ams.db"
    env.update(HOME=str(tmp_path), AMS_DB_URL=f"sqlite:///{path}")

    for quiet in ([], ["-q"]):  # a dry run's plan is its result: -q prints it too
        install = module_ams(*quiet, "internals", "database", "install", "--dry-run", env=env)
        assert install.returncode == 0 and install.stderr == "", install.stderr
        assert install.stdout.startswith(f"would create {path} and install the ams schema version ")
        upgrade = module_ams(*quiet, "internals", "database", "upgrade", "--dry-run", "--output", "json", env=env)
        assert upgrade.returncode == 0 and '"dry_run": true' in upgrade.stdout and '"version": null' in upgrade.stdout
    assert not path.parent.exists()

    done = module_ams("-q", "internals", "database", "install", env=env)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")  # -q: a change that worked is silent
    assert path.exists()
    again = module_ams("internals", "database", "install", "--dry-run", env=env)
    assert again.returncode == 4 and again.stdout == "" and "is not empty (at version" in again.stderr
    assert again.stderr.count("\n") == 1
    current = module_ams("-q", "internals", "database", "upgrade", env=env)
    assert (current.returncode, current.stdout, current.stderr) == (0, "", "")
    plan = module_ams("-q", "internals", "database", "upgrade", "--dry-run", env=env)
    assert plan.returncode == 0 and plan.stdout.endswith("would apply: nothing\n")


def test_upgrade_dry_run_refuses_what_upgrade_refuses(tmp_path):
    import sqlite3

    path = tmp_path / "foreign.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE hosts (x INTEGER)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMS_")}
    env.update(HOME=str(tmp_path), AMS_DB_URL=f"sqlite:///{path}")
    for dry in (["--dry-run"], []):
        result = module_ams("internals", "database", "upgrade", *dry, env=env)
        assert result.returncode == 8 and "has tables but no ams version" in result.stderr, result.stderr
        assert result.stdout == "" and result.stderr.count("\n") == 1


@SQLITE
def test_dry_runs_that_need_no_ec2_change_nothing(ams_db, db_url):
    from sqlalchemy import select

    from amslib.store import schema

    gid = fill(db_url)

    def dump():
        engine = engine_of(db_url)
        try:
            with engine.connect() as conn:
                return {t.name: [dict(r) for r in conn.execute(select(t)).mappings()]
                        for t in schema.metadata.sorted_tables}
        finally:
            engine.dispose()

    before = dump()
    sid = ok(ams_db("snapshot", "schedule", "list", "--output", "json")).json[0]["schedule_id"]
    for argv, shown in (
        (["host", "edit", "-i", INSTANCE, "--notes", "primary"], "would change host"),
        (["snapshot", "schedule", "add", "volume", gid], "would be added"),
        (["snapshot", "schedule", "edit", sid, "--ret_day", "3"], "would change schedule"),
        (["snapshot", "schedule", "delete", sid], "would delete snapshot schedule"),
    ):
        for quiet in ([], ["-q"]):
            result = ok(ams_db(*quiet, *argv, "--dry-run"))
            assert shown in result.out and result.err == "", str(result)
        assert ok(ams_db(*argv, "--dry-run", "--output", "json")).json["dry_run"] is True
    assert dump() == before
    # and the real commands, with -q, change things silently
    for argv in (["host", "edit", "-i", INSTANCE, "--notes", "primary"],
                 ["snapshot", "schedule", "edit", sid, "--ret_day", "3"]):
        result = ok(ams_db("-q", *argv))
        assert (result.out, result.err) == ("", "")
    assert dump() != before


# -- long waits, steps and -q on commands that reach EC2 (the rig) ------------------------------------

@pytest.fixture
def snapshot_env(ams_db, ec2_clean, db_url, monkeypatch):
    """(ams, volume group id): an unattached two-volume group whose volumes exist in the rig;
    snapshots stay pending 0.4 s, polled every 0.2 s in this process."""
    from amslib.aws.snapshots import Snapshots
    from amslib.store import volume_groups as vg_store
    from amslib.store.types import utcnow

    ec2_clean.timing.snapshot = 0.4
    monkeypatch.setattr(Snapshots, "DEFAULT_WAITER_DELAY", 0.2)
    ec2 = ec2_clean.client(region=REGION, internal=True)
    ids = [ec2.create_volume(Size=1, VolumeType="gp3", AvailabilityZone=ZONE)["VolumeId"] for _ in range(2)]
    engine = engine_of(db_url)
    try:
        with engine.begin() as conn:
            gid = vg_store.insert_group(conn, {"raid_level": 0, "stripe_block_size": 256, "fs_type": "xfs",
                                               "region": REGION, "availability_zone": ZONE, "state": "available",
                                               "created_at": utcnow()})
            vg_store.insert_volumes(conn, [{"volume_id": v, "volume_group_id": gid, "member_index": i, "size_gib": 1,
                                            "volume_type": "gp3", "availability_zone": ZONE, "created_at": utcnow()}
                                           for i, v in enumerate(ids)])
    finally:
        engine.dispose()
    return ams_db, gid


def snapshot_groups(ams):
    return ok(ams("snapshot", "list", "--output", "json")).json


@SQLITE
def test_snapshot_wait_default_verbose_and_quiet(snapshot_env):
    ams, gid = snapshot_env
    plain = ok(ams("snapshot", "create", "volume", gid, "--wait"))
    assert plain.out.startswith("snapshot group ") and plain.out.endswith("(completed)\n")
    assert plain.err == ""  # stderr is no terminal here: neither steps nor progress

    verbose = ok(ams("-v", "snapshot", "create", "volume", gid, "--wait"))
    lines = verbose.err.splitlines()
    assert any(line.startswith("snapshots: snap-") and "%" in line for line in lines), verbose.err  # progress
    assert "starting the snapshots" in lines and any(line.startswith("started snap-") for line in lines)  # steps

    quiet = ok(ams("-q", "snapshot", "create", "volume", gid, "--wait"))
    assert (quiet.out, quiet.err) == ("", "")
    assert [g["state"] for g in snapshot_groups(ams)] == ["completed"] * 3

    quiet_json = ok(ams("-q", "--output", "json", "snapshot", "create", "volume", gid))
    assert quiet_json.json["volume_group_id"] == gid and quiet_json.err == ""


def run_on_terminal(*argv):
    """Run the ams script with stderr on a pseudo-terminal: (exit code, stdout, what the terminal got)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "ams"), *map(str, argv)], cwd="/",
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    terminal = []
    while True:
        if select.select([master], [], [], 0.1)[0]:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: every writer is gone
                data = b""
            if not data:
                break
            terminal.append(data)
        elif proc.poll() is not None:
            break
    out = proc.stdout.read().decode()
    proc.wait(timeout=60)
    os.close(master)
    return proc.returncode, out, b"".join(terminal).decode().replace("\r\n", "\n")


@SQLITE
def test_progress_of_a_wait_reaches_a_terminal_but_not_with_quiet(snapshot_env, ec2_clean):
    _, gid = snapshot_env
    ec2_clean.timing.snapshot = 0  # the process polls every 5 s: complete at the first poll
    code, out, terminal = run_on_terminal("snapshot", "create", "volume", gid, "--wait")
    assert code == 0 and out.endswith("(completed)\n"), terminal
    lines = terminal.splitlines()
    assert lines and all(line.startswith("snapshots: snap-") for line in lines), terminal  # progress, no steps
    assert lines[-1].count("100%") == 2

    code, out, terminal = run_on_terminal("-q", "snapshot", "create", "volume", gid, "--wait")
    assert (code, out, terminal) == (0, "", "")


@SQLITE
def test_discovery_progress_only_with_v_and_silent_with_q(ams_db, ec2_clean, db_url):
    ec2 = ec2_clean.client(region=REGION, internal=True)
    ec2.run_instances(ImageId=ec2_clean.image_id(REGION), MinCount=2, MaxCount=2, InstanceType="t3.small",
                      Placement={"AvailabilityZone": ZONE})
    dry = ok(ams_db("-q", "host", "discovery", "--region", REGION, "--dry-run"))
    assert "| us-east-1 | 2 " in dry.out and "dry run" not in dry.out and dry.err == ""  # the plan, no note
    assert ok(ams_db("host", "list", "--output", "json")).json == []

    quiet = ok(ams_db("-q", "host", "discovery", "--region", REGION))
    assert (quiet.out, quiet.err) == ("", "")
    assert len(ok(ams_db("host", "list", "--output", "json")).json) == 2

    plain = ok(ams_db("host", "discovery", "--region", REGION))
    assert "| us-east-1 | 2 " in plain.out and plain.err == ""
    verbose = ok(ams_db("-v", "host", "discovery", "--region", REGION))
    assert "us-east-1: 2 instance(s) in 1 page(s)" in verbose.err


@SQLITE
def test_schedule_run_for_cron_is_silent_when_it_works_and_warns_when_the_clock_is_behind(
        snapshot_env, monkeypatch):
    ams, gid = snapshot_env
    monkeypatch.setenv("AMS_NOW", "2027-03-12T05:07:00Z")
    assert (ok(ams("-q", "snapshot", "schedule", "run")).out) == ""  # nothing scheduled yet
    ok(ams("-q", "snapshot", "schedule", "add", "volume", gid))
    run = ok(ams("-q", "snapshot", "schedule", "run", "--purge"))
    assert (run.out, run.err) == ("", "")
    assert [g["schedule_id"] is not None for g in snapshot_groups(ams)] == [True]

    monkeypatch.setenv("AMS_NOW", "2027-03-12T03:00:00Z")  # before the slot just taken
    behind = ok(ams("-q", "snapshot", "schedule", "run"))
    assert behind.out == ""
    assert behind.err.startswith("ams: warning: schedule ") and "the clock is behind" in behind.err
    assert behind.err.count("\n") == 1

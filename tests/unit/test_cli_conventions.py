"""Conventions every command follows, checked on the real parser tree.

The tree is walked, not listed by hand, so a command added later without ``--dry-run``, the
global options or a documented JSON shape fails here.  The tables below are decisions: a
read-only command, or a key added to or dropped from a list's JSON rows, is changed here on
purpose.  tests/integration/test_cli_conventions.py runs the commands themselves.
"""

import importlib
import os
import subprocess
import sys

import pytest

from amslib.cli.main import build_parser

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

HOST_KEYS = {
    "instance_id", "hostname", "hostname_source", "name", "region", "availability_zone", "instance_type",
    "ami_id", "hostname_internal", "hostname_external", "ip_internal", "ip_external", "vpc_id", "subnet_id",
    "state", "tags", "notes", "created_at", "updated_at", "discovered_at", "terminated_at",
}
VOLUME_KEYS = {
    "volume_group_id", "raid_level", "stripe_block_size", "members", "size_gib", "total_gib", "volume_type",
    "iops", "throughput", "availability_zone", "hostname", "instance_id", "mount_point", "block_device",
    "fs_type", "automount", "state", "created_at",
}
SNAPSHOT_KEYS = {
    "snapshot_group_id", "created_at", "expires_at", "region", "volume_group_id", "members", "state", "progress",
    "description", "source_hostname", "source_instance_id", "source_mount_point", "copied_from_id", "raid_level",
    "stripe_block_size", "fs_type", "schedule_id",
}
SCHEDULE_KEYS = {
    "schedule_id", "resource_type", "hostname", "instance_id", "volume_group_id", "mount_point", "interval_hour",
    "interval_day", "interval_week", "interval_month", "retain_hourly", "retain_daily", "retain_weekly",
    "retain_monthly", "retain_yearly", "pre_command", "post_command", "description", "freeze", "created_at",
    "last_run", "last_outcome", "last_snapshot_group_id", "next_due",
}

# Every command whose job is to list, with the keys of each row of its --output json.  These are
# also the only read-only commands: everything else changes the database, EC2 or a host.
LIST_COMMANDS = {
    "host list": HOST_KEYS,
    "host list host": HOST_KEYS,
    "host list instance_id": HOST_KEYS,
    "volume list": VOLUME_KEYS,
    "volume list host": VOLUME_KEYS,
    "volume list instance_id": VOLUME_KEYS,
    "snapshot list": SNAPSHOT_KEYS,
    "snapshot list volume": SNAPSHOT_KEYS,
    "snapshot list host": SNAPSHOT_KEYS,
    "snapshot list instance": SNAPSHOT_KEYS,
    "snapshot schedule list": SCHEDULE_KEYS,
}
READ_ONLY = set(LIST_COMMANDS)

# Which values of a list's JSON rows are datetimes (printed as ISO 8601 in UTC).
DATETIME_KEYS = {
    "host": {"created_at", "updated_at", "discovered_at", "terminated_at"},
    "volume": {"created_at"},
    "snapshot": {"created_at", "expires_at"},
    "snapshot schedule": {"created_at", "last_run", "next_due"},
}

GLOBAL_OPTIONS = ("-q", "--quiet", "-v", "--verbose", "--debug", "--output", "--profile")


def walk(parser, path=()):
    """(command path, parser) of every command: a parser that runs a handler of its own
    (groups that only print their help are skipped; a list with FIELD subcommands counts)."""
    func = parser.get_default("func")
    if path and not getattr(func, "shows_help", False):
        yield " ".join(path), parser
    for action in parser._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            for name, sub in action.choices.items():
                yield from walk(sub, path + (name,))


COMMANDS = dict(walk(build_parser()))


def options(parser):
    return {flag: action for action in parser._actions for flag in action.option_strings}


def test_the_walk_finds_the_command_tree():
    # a sample from each group, so a broken walk cannot pass the tests below vacuously
    for command in ("host discovery", "volume detach host", "snapshot clone latest instance",
                    "snapshot schedule add volume", "internals database upgrade", "snapshot list volume"):
        assert command in COMMANDS
    assert "volume detach" not in COMMANDS and "snapshot" not in COMMANDS  # groups: help only
    assert len(COMMANDS) >= 40


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_takes_the_global_options(command):
    found = options(COMMANDS[command])
    missing = [flag for flag in GLOBAL_OPTIONS if flag not in found]
    assert not missing, f"'ams {command}' lacks {missing}"
    assert tuple(found["--output"].choices) == ("table", "json")
    assert found["-q"].dest == "quiet" and found["-v"].dest == "verbose" and found["--debug"].dest == "debug"


def test_every_command_that_changes_anything_has_dry_run():
    lacking = sorted(command for command, parser in COMMANDS.items()
                     if command not in READ_ONLY and "--dry-run" not in options(parser))
    assert lacking == [], f"commands without --dry-run (add it, or list them in READ_ONLY if they change nothing): {lacking}"


def test_the_read_only_commands_exist_and_have_no_dry_run():
    assert READ_ONLY <= set(COMMANDS), f"stale READ_ONLY entries: {sorted(READ_ONLY - set(COMMANDS))}"
    pretending = sorted(command for command in READ_ONLY if "--dry-run" in options(COMMANDS[command]))
    assert pretending == []


def test_dry_run_is_an_off_by_default_flag():
    for command, parser in COMMANDS.items():
        action = options(parser).get("--dry-run")
        if action is not None:
            assert action.dest == "dry_run" and action.nargs == 0 and action.default is False, command


def _handler_module(command):
    return importlib.import_module(COMMANDS[command].get_default("func").__module__)


@pytest.mark.parametrize("command", sorted(LIST_COMMANDS))
def test_each_list_command_prints_the_documented_json_keys(command):
    keys = _handler_module(command).JSON_KEYS
    assert len(keys) == len(set(keys)), f"duplicate keys in {command}"
    assert set(keys) == LIST_COMMANDS[command]


def test_datetime_keys_are_among_the_json_keys():
    for prefix, keys in DATETIME_KEYS.items():
        assert keys <= LIST_COMMANDS[f"{prefix} list"]


def test_building_the_parser_imports_nothing_heavy():
    code = ("import sys; from amslib.cli.main import build_parser; build_parser(); "
            "print(' '.join(sorted(m for m in sys.modules if '.' not in m)))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    heavy = {"boto3", "botocore", "paramiko", "sqlalchemy", "alembic", "pymysql", "prettytable"}
    assert heavy.isdisjoint(proc.stdout.split())

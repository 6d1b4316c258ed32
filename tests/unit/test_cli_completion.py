"""Completion of stored names and ids (amslib.cli.completion) on a real SQLite database built
with the project's migrations (tests/completiondb.py lists its rows)."""

import argparse
import io
import os
import random
import string
import sys
import time

import argcomplete
import pytest

from amslib.cli import completion
from amslib.cli.main import build_parser
from tests.completiondb import HOSTS, install_and_fill

LIVE_HOSTNAMES = sorted(HOSTS.values())


@pytest.fixture(scope="module")
def db_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("completion") / "ams.db"
    install_and_fill(f"sqlite:///{path}")
    return path


@pytest.fixture
def database(db_path):
    database = completion.Database(f"sqlite:///{db_path}")
    yield database
    database.close()


def values(database, kind, prefix="", **context):
    return completion.DatabaseCompleter(kind, database)(prefix=prefix, parsed_args=argparse.Namespace(**context))


# -- the queries ---------------------------------------------------------------------------------

def test_hostnames_start_with_the_prefix_and_skip_terminated_hosts(database):
    assert values(database, "hostname") == LIVE_HOSTNAMES
    assert values(database, "hostname", "web") == ["web1.example.com", "web2.example.com", "web_x.example.com"]
    assert values(database, "hostname", "web1") == ["web1.example.com"]
    assert values(database, "hostname", "web9") == []  # terminated
    assert values(database, "hostname", "nothing") == []


def test_like_wildcards_in_the_prefix_are_literal(database):
    assert values(database, "hostname", "web_") == ["web_x.example.com"]
    assert values(database, "hostname", "%") == []
    assert values(database, "hostname", "w%") == []
    assert values(database, "hostname", "web!") == []


def test_instance_ids(database):
    assert values(database, "instance", "i-0a") == ["i-0aaaaaaaaaaaaaaa1", "i-0aaaaaaaaaaaaaaa2", "i-0aaaaaaaaaaaaaaa3"]
    assert values(database, "instance", "i-0b") == []  # terminated
    assert values(database, "instance") == sorted(HOSTS)


def test_group_and_schedule_ids_leave_deleted_rows_out(database):
    assert values(database, "volume_group") == ["1", "2", "12"]
    assert values(database, "volume_group", "1") == ["1", "12"]
    assert values(database, "volume_group", "3") == []  # deleted
    assert values(database, "snapshot_group") == ["5", "6", "55"]
    assert values(database, "snapshot_group", "5") == ["5", "55"]
    assert values(database, "snapshot_group", "7") == []  # deleted
    assert values(database, "schedule") == ["1", "3"]
    assert values(database, "schedule", "2") == []  # deleted


def test_mount_points_narrow_to_the_host_instance_or_group_on_the_line(database):
    assert values(database, "mount_point") == ["/data", "/logs"]
    assert values(database, "mount_point", "/l") == ["/logs"]
    assert values(database, "mount_point", hostname="web2.example.com") == ["/data"]
    assert values(database, "mount_point", host="WEB1.example.com ") == ["/data", "/logs"]
    assert values(database, "mount_point", instance="i-0aaaaaaaaaaaaaaa2") == ["/data"]
    assert values(database, "mount_point", instance_id="i-0ccccccccccccccc1") == []
    assert values(database, "mount_point", volume_group_id="12") == ["/logs"]
    assert values(database, "mount_point", volume_group_id="not-a-number") == ["/data", "/logs"]
    # `snapshot schedule add host|instance RESOURCE -m`
    assert values(database, "mount_point", resource_type="host", resource="web2.example.com") == ["/data"]
    assert values(database, "mount_point", resource_type="instance", resource="i-0aaaaaaaaaaaaaaa1") == ["/data", "/logs"]


def test_snapshot_mount_points_are_those_of_live_snapshot_groups(database):
    assert values(database, "snapshot_mount_point") == ["/archive", "/data"]  # /old is deleted
    assert values(database, "snapshot_mount_point", "/a") == ["/archive"]
    # `snapshot list host VALUE -m`, `snapshot clone latest instance ID SRC_MOUNT_POINT`
    assert values(database, "snapshot_mount_point", list_kind="host", value="web2.example.com") == ["/data"]
    assert values(database, "snapshot_mount_point", src_instance_id="i-0aaaaaaaaaaaaaaa1") == ["/archive", "/data"]


def test_schedule_list_resource_id_follows_the_resource_kind(database):
    assert values(database, "resource", "web", resource="host")[0] == "web1.example.com"
    assert values(database, "resource", "i-0c", resource="instance") == ["i-0ccccccccccccccc1"]
    assert values(database, "resource", "1", resource="volume") == ["1", "12"]
    assert values(database, "resource", "") == []


# -- no database, no candidates, no noise ----------------------------------------------------------

@pytest.mark.parametrize("url", [
    "sqlite:///{tmp}/missing.db",
    "sqlite:///{tmp}/not-a-database.db",
    "sqlite:///{tmp}/empty.db",
    "sqlite://",
    "sqlite:///:memory:",
    "postgresql://u@h/db",
    "not a url",
    "mysql+pymysql://nobody@127.0.0.1:1/ams",
])
def test_an_unusable_database_gives_no_candidates_and_no_output(url, tmp_path, capfd):
    (tmp_path / "not-a-database.db").write_text("this is not SQLite\n" * 100)
    (tmp_path / "empty.db").write_bytes(b"")
    database = completion.Database(url.format(tmp=tmp_path))
    started = time.monotonic()
    for kind in completion.QUERIES:
        assert values(database, kind) == []
    assert time.monotonic() - started < 5
    assert not (tmp_path / "missing.db").exists()  # never created by completion
    assert capfd.readouterr() == ("", "")


def test_the_database_comes_from_the_settings(db_path, monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith("AMS_") and not name.startswith("AMS_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    settings = tmp_path / "settings.py"
    settings.write_text(f"DB_URL = 'sqlite:///{db_path}'\n")
    monkeypatch.setenv("AMS_SETTINGS", str(settings))
    assert values(completion.Database(), "schedule") == ["1", "3"]
    monkeypatch.setenv("AMS_DB_URL", f"sqlite:///{tmp_path}/other.db")  # AMS_DB_URL wins
    assert values(completion.Database(), "schedule") == []
    monkeypatch.delenv("AMS_DB_URL")
    monkeypatch.setenv("AMS_SSH_PORT", "twenty-two")  # settings that do not load: nothing
    assert values(completion.Database(), "schedule") == []


def test_relative_sqlite_paths_are_relative_to_the_working_directory(db_path, monkeypatch):
    monkeypatch.chdir(db_path.parent)
    assert values(completion.Database("sqlite:///ams.db"), "schedule") == ["1", "3"]


# -- which arguments complete what ---------------------------------------------------------------------

def _kinds():
    found = {}
    for words, action in completion.walk(build_parser()):
        kind = completion.kind_for(words, action)
        found[(" ".join(words), action.option_strings[0] if action.option_strings else action.dest)] = kind
    return found


@pytest.mark.parametrize("command,argument,kind", [
    ("volume attach", "volume_group_id", "volume_group"),
    ("volume attach", "-H", "hostname"),
    ("volume attach", "-i", "instance"),
    ("volume attach", "-m", None),  # where the group will be mounted: new
    ("volume create", "-m", None),
    ("volume mount", "-m", "mount_point"),
    ("volume automount", "-m", "mount_point"),
    ("volume detach host", "hostname", "hostname"),
    ("volume detach host", "mount_point", "mount_point"),
    ("volume detach instance", "instance_id", "instance"),
    ("volume list host", "value", "hostname"),
    ("volume list instance_id", "value", "instance"),
    ("host list host", "value", "hostname"),
    ("host edit", "-i", "instance"),
    ("host edit", "-H", None),  # the hostname to set
    ("host add", "-i", None),  # a new host
    ("host add", "-H", None),
    ("snapshot list host", "value", "hostname"),
    ("snapshot list host", "-m", "snapshot_mount_point"),
    ("snapshot list volume", "volume_group_id", "volume_group"),
    ("snapshot create host", "-m", "mount_point"),
    ("snapshot delete snapshot", "snapshot_group_id", "snapshot_group"),
    ("snapshot copy", "snapshot_group_id", "snapshot_group"),
    ("snapshot clone snapshot", "-m", None),
    ("snapshot clone latest host", "src_hostname", "hostname"),
    ("snapshot clone latest host", "src_mount_point", "snapshot_mount_point"),
    ("snapshot schedule edit", "schedule_id", "schedule"),
    ("snapshot schedule run", "schedule_id", "schedule"),
    ("snapshot schedule add host", "resource", "hostname"),
    ("snapshot schedule add volume", "resource", "volume_group"),
    ("snapshot schedule add host", "-m", "mount_point"),
    ("snapshot schedule list", "resource_id", "resource"),
    ("snapshot schedule list", "resource", None),  # its choices complete it
    ("host list", "--zone", None),
])
def test_arguments_get_the_completer_of_what_they_name(command, argument, kind):
    assert _kinds()[(command, argument)] == kind


def test_every_completer_kind_has_a_query():
    kinds = {kind for kind in _kinds().values() if kind is not None}
    assert kinds <= set(completion.QUERIES) | {"resource"}
    assert set(completion.QUERIES) <= kinds


# -- the whole of a completion request, in-process -------------------------------------------------------

class Done(Exception):
    pass


def complete(line, database, monkeypatch):
    """The candidates ams's completion answers for ``line`` (the cursor at its end)."""
    for name, value in {"_ARGCOMPLETE": "1", "_ARGCOMPLETE_SHELL": "bash", "_ARGCOMPLETE_IFS": "\n",
                        "COMP_LINE": line, "COMP_POINT": str(len(line))}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("_ARGCOMPLETE_STDOUT_FILENAME", raising=False)
    parser = build_parser()
    completion.attach(parser, database)

    class Finder(completion.finder_class(argcomplete.CompletionFinder)):
        def _init_debug_stream(self):  # not fd 9: pytest may use it
            argcomplete.io.debug_stream = sys.stderr

    out = io.StringIO()

    def stop(code):
        raise Done(code)

    with pytest.raises(Done):
        Finder()(parser, output_stream=out, exit_method=stop)
    return [word.rstrip() for word in out.getvalue().split("\n") if word]


@pytest.mark.parametrize("line,expected", [
    ("ams volume attach 1", ["1", "12"]),
    ("ams volume attach 12 -H web", ["web1.example.com", "web2.example.com", "web_x.example.com"]),
    ("ams volume detach host web2.example.com /", ["/data"]),
    ("ams volume detach host web1.example.com /", ["/data", "/logs"]),
    ("ams volume automount 12 -m /", ["/logs"]),
    ("ams volume detach volume 1", ["1", "12"]),
    ("ams host edit -i i-0c", ["i-0ccccccccccccccc1"]),
    ("ams host list host d", ["db1.example.com"]),
    ("ams snapshot list host web1.example.com -m /", ["/archive", "/data"]),
    ("ams snapshot delete snapshot 5", ["5", "55"]),
    ("ams snapshot schedule edit ", ["-h", "--help"]),  # options first...
    ("ams snapshot schedule delete 3", ["3"]),
    ("ams snapshot schedule add host web2.example.com -m /", ["/data"]),
    ("ams snapshot schedule list instance i-0aaaaaaaaaaaaaaa3", ["i-0aaaaaaaaaaaaaaa3"]),
    ("ams snapshot clone latest host web1.example.com /a", ["/archive"]),
])
def test_completion_requests(line, expected, database, monkeypatch):
    got = complete(line, database, monkeypatch)
    assert got[: len(expected)] == expected


def test_positional_ids_after_the_options(database, monkeypatch):
    got = complete("ams snapshot schedule edit ", database, monkeypatch)
    assert got[-2:] == ["1", "3"]


# -- the finder stays linear and quotes as argcomplete does ----------------------------------------------

def test_the_finder_deduplicates_in_order_and_honours_exclude():
    finder = completion.finder_class(argcomplete.CompletionFinder)()
    finder.exclude = ["b"]
    assert finder.filter_completions(["a", "b", "c", "a", "d", "c"]) == ["a", "c", "d"]
    started = time.perf_counter()
    many = [f"host-{n:05d}" for n in range(10000)] * 2
    assert len(finder.filter_completions(many)) == 10000
    assert time.perf_counter() - started < 0.1


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_the_finder_quotes_exactly_as_argcomplete(shell, monkeypatch):
    monkeypatch.setenv("_ARGCOMPLETE_SHELL", shell)
    rng = random.Random(13)
    alphabet = string.ascii_letters + string.digits + "./-_@+,%=~^ :$'\"*?()[]{}!&;<>|`\\"
    cases = [["web1"], ["a", "b"], ["/data", "/logs"], ["x y", "z"], ["a:b", "a:c"]]
    cases += [["".join(rng.choice(alphabet) for _ in range(rng.randint(4, 9))) for _ in range(rng.randint(1, 6))]
              for _ in range(300)]
    ours = completion.finder_class(argcomplete.CompletionFinder)()
    theirs = argcomplete.CompletionFinder()
    for completions in cases:
        for prequote, wordbreak in (("", None), ('"', None), ("'", None), ("", 2)):
            assert ours.quote_completions(list(completions), prequote, wordbreak) == \
                theirs.quote_completions(list(completions), prequote, wordbreak), (completions, prequote, wordbreak)

"""What Output prints at each verbosity (the table in amslib/cli/output.py), JSON's shape
and datetimes, and progress only on a terminal: a real pseudo-terminal against a pipe."""

import io
import json
import os
import pty
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from amslib.cli.output import Output, iso_utc

COLUMNS = [("name", "Name"), ("when", "When (UTC)")]
ROWS = [{"name": "web1", "when": datetime(2027, 3, 12, 5, 7, tzinfo=timezone.utc), "secret": "not listed"}]


def output(fmt="table", **kwargs):
    out, err = io.StringIO(), io.StringIO()
    return Output(fmt, stdout=out, stderr=err, **kwargs), out, err


def everything(o):
    """Call every kind of output once."""
    o.listing(ROWS, COLUMNS, ["name", "when"], empty="nothing listed")
    o.table(ROWS, COLUMNS, empty="nothing done")
    o.result({"done": True}, "changed web1")
    o.note("a note for people")
    o.warning("something is wrong")
    o.waiting("snapshots: 40%")
    o.step("[1/2] a step")


# -- the verbosity table ----------------------------------------------------------------------------

def test_default_prints_results_and_warnings_but_no_steps_or_progress_off_a_terminal():
    o, out, err = output()
    everything(o)
    text = out.getvalue()
    assert text.count("web1") == 3 and "changed web1" in text and "a note for people" in text
    assert err.getvalue() == "ams: warning: something is wrong\n"


def test_quiet_keeps_list_rows_and_warnings_only():
    o, out, err = output(quiet=True, verbose=2)  # -q wins over -v
    everything(o)
    text = out.getvalue()
    assert "web1" in text and text.count("web1") == 1  # the listing; not the report table nor "changed"
    assert "changed" not in text and "a note" not in text
    assert err.getvalue() == "ams: warning: something is wrong\n"


def test_quiet_dry_run_still_prints_the_plan():
    o, out, err = output(quiet=True, dry_run=True)
    everything(o)
    text = out.getvalue()
    assert text.count("web1") == 3 and "changed web1" in text  # listing, plan table, plan text
    assert "a note" not in text
    assert err.getvalue() == "ams: warning: something is wrong\n"


def test_verbose_adds_steps_and_progress():
    o, out, err = output(verbose=1)
    everything(o)
    assert err.getvalue().splitlines() == ["ams: warning: something is wrong", "snapshots: 40%", "[1/2] a step"]


@pytest.mark.parametrize("quiet", [False, True])
def test_json_prints_only_the_documents_whatever_the_verbosity(quiet):
    o, out, err = output("json", quiet=quiet)
    o.listing(ROWS, COLUMNS, ["name", "when"], empty="nothing listed")
    o.result({"done": True}, "changed web1")
    o.note("a note for people")
    decoder = json.JSONDecoder()
    text = out.getvalue()
    first, end = decoder.raw_decode(text)
    second, _ = decoder.raw_decode(text, end + 1)
    assert first == [{"name": "web1", "when": "2027-03-12T05:07:00+00:00"}]
    assert second == {"done": True}
    assert "note" not in text and err.getvalue() == ""


# -- lists ------------------------------------------------------------------------------------------

def test_an_empty_list_is_an_empty_json_array():
    for quiet in (False, True):
        o, out, err = output("json", quiet=quiet)
        o.listing([], COLUMNS, ["name", "when"], empty="nothing listed")
        assert out.getvalue() == "[]\n" and err.getvalue() == ""


def test_an_empty_list_in_a_table_is_a_note_hidden_by_quiet():
    o, out, _ = output()
    o.listing([], COLUMNS, ["name"], empty="nothing listed")
    assert out.getvalue() == "nothing listed\n"
    o, out, _ = output(quiet=True)
    o.listing([], COLUMNS, ["name"], empty="nothing listed")
    assert out.getvalue() == ""


def test_json_rows_have_exactly_the_keys_given_in_any_case():
    o, out, _ = output("json")
    o.listing([{"a": 1, "b": 2}, {"a": 3}], [("a", "A")], ["a", "c"], empty="")
    assert json.loads(out.getvalue()) == [{"a": 1, "c": None}, {"a": 3, "c": None}]


def test_a_table_shows_the_columns_in_utc():
    o, out, _ = output()
    plus_two = timezone(timedelta(hours=2))
    o.listing([{"name": "db1", "when": datetime(2027, 1, 1, 2, 30, tzinfo=plus_two), "flag": True}],
              [("name", "Name"), ("when", "When (UTC)"), ("flag", "Flag")], [], empty="")
    lines = out.getvalue().splitlines()
    assert lines[1].split("|")[1:4] == [" Name ", " When (UTC)          ", " Flag "]
    assert "| db1  | 2027-01-01 00:30:00 | yes  |" in lines


# -- datetimes and numbers in JSON ------------------------------------------------------------------

@pytest.mark.parametrize("value,text", [
    (datetime(2027, 3, 12, 5, 0, tzinfo=timezone.utc), "2027-03-12T05:00:00+00:00"),
    (datetime(2027, 3, 12, 7, 0, tzinfo=timezone(timedelta(hours=2))), "2027-03-12T05:00:00+00:00"),
    (datetime(2027, 3, 12, 5, 0), "2027-03-12T05:00:00+00:00"),  # naive: stored UTC
    (datetime(2027, 3, 12, 5, 0, 0, 999999, tzinfo=timezone.utc), "2027-03-12T05:00:00+00:00"),
])
def test_datetimes_are_iso_8601_utc_to_the_second(value, text):
    assert iso_utc(value) == text
    o, out, _ = output("json")
    o.result({"at": value, "nested": [{"at": value}]})
    assert json.loads(out.getvalue()) == {"at": text, "nested": [{"at": text}]}


def test_decimals_from_database_sums_are_numbers():
    o, out, _ = output("json")
    o.result({"total": Decimal("300"), "ratio": Decimal("1.5")})
    assert json.loads(out.getvalue()) == {"total": 300, "ratio": 1.5}


# -- progress: a terminal against a pipe ------------------------------------------------------------

def _read_available(fd):
    import select

    chunks = []
    while select.select([fd], [], [], 0.2)[0]:
        try:
            data = os.read(fd, 4096)
        except OSError:  # EIO: the other side is closed
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks).decode()


@pytest.fixture
def terminal():
    """(stderr stream on a pseudo-terminal, function reading what reached the terminal)."""
    master, slave = pty.openpty()
    stream = os.fdopen(slave, "w", buffering=1)
    yield stream, lambda: _read_available(master)
    stream.close()
    os.close(master)


@pytest.fixture
def pipe():
    """(stderr stream on a pipe, function reading what went through)."""
    read_end, write_end = os.pipe()
    stream = os.fdopen(write_end, "w", buffering=1)
    yield stream, lambda: (stream.close(), os.fdopen(read_end).read())[1]
    if not stream.closed:
        stream.close()


def emit(stream, **kwargs):
    o = Output("table", stdout=io.StringIO(), stderr=stream, **kwargs)
    o.waiting("snapshots: snap-1 40%")
    o.step("[1/3] a step")
    o.warning("a real problem")


def test_progress_reaches_a_terminal_without_steps(terminal):
    stream, read = terminal
    assert stream.isatty()
    emit(stream)
    assert read().splitlines() == ["snapshots: snap-1 40%", "ams: warning: a real problem"]


def test_progress_never_goes_to_a_pipe_by_default(pipe):
    stream, read = pipe
    assert not stream.isatty()
    emit(stream)
    assert read() == "ams: warning: a real problem\n"


def test_verbose_sends_progress_and_steps_to_a_pipe(pipe):
    stream, read = pipe
    emit(stream, verbose=1)
    assert read().splitlines() == ["snapshots: snap-1 40%", "[1/3] a step", "ams: warning: a real problem"]


@pytest.mark.parametrize("verbose", [0, 1])
def test_quiet_silences_progress_even_on_a_terminal(terminal, verbose):
    stream, read = terminal
    emit(stream, quiet=True, verbose=verbose)
    assert read().splitlines() == ["ams: warning: a real problem"]


def test_a_stream_without_isatty_counts_as_no_terminal():
    class Bare:
        def __init__(self):
            self.lines = []

        def write(self, text):
            self.lines.append(text)

        def flush(self):
            pass

    bare = Bare()
    Output("table", stderr=bare).waiting("snapshots: 10%")
    assert bare.lines == []

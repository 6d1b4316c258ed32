"""What commands print: tables (prettytable) or one JSON document, and what goes to stderr.

stdout carries results only, so that ``--output json`` is one parseable document.

What each verbosity shows (tests/unit/test_cli_output.py holds these rules):

============================  =========  ==========  ====================  ===========
what                          -q         (default)   -v                    stream
============================  =========  ==========  ====================  ===========
JSON document (--output json) yes        yes         yes                   stdout
rows of a list command        yes        yes         yes                   stdout
plan of a --dry-run           yes        yes         yes                   stdout
what a change did (table)     no         yes         yes                   stdout
notes (empty list, reminders) no         yes         yes                   stdout
errors, warnings              yes        yes         yes                   stderr
progress of a long wait       no         terminal    yes                   stderr
steps of a command            no         no          yes                   stderr
============================  =========  ==========  ====================  ===========

So with ``-q`` a command that changes something prints nothing when it works (its exit status
says so; ``--output json`` still prints the document), which keeps cron quiet.  Warnings are
real problems (a failed undo, a filesystem thawed too early) and are never hidden.
"""

import json
import sys
from datetime import datetime, timezone


def iso_utc(value):
    """A datetime as JSON shows it: ISO 8601 in UTC, to the second ('2027-03-12T05:00:00+00:00').
    A naive datetime is taken to be UTC already (the database stores UTC)."""
    if value.tzinfo is None or value.utcoffset() is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat(timespec="seconds")


def _json_default(value):
    if isinstance(value, datetime):
        return iso_utc(value)
    from decimal import Decimal

    if isinstance(value, Decimal):  # MySQL's SUM() of integers
        return int(value) if value == value.to_integral_value() else float(value)
    return str(value)


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, datetime):
        if value.tzinfo is not None and value.utcoffset() is not None:
            value = value.astimezone(timezone.utc)
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _isatty(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Output:
    """Formats results for the chosen ``--output`` and verbosity (see the module's table)."""

    def __init__(self, fmt="table", quiet=False, stdout=None, stderr=None, verbose=0, dry_run=False):
        self.fmt = fmt
        self.quiet = quiet
        self.verbose = verbose
        self.dry_run = dry_run
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr

    @property
    def json(self):
        return self.fmt == "json"

    @property
    def _report_hidden(self):
        """-q hides what a change did; a dry run's plan is its result and stays."""
        return self.quiet and not self.dry_run

    # -- stderr -------------------------------------------------------------------------------

    def step(self, message):
        """A step of a command (what runs now): only with -v, never with -q."""
        if self.verbose and not self.quiet:
            print(message, file=self.stderr, flush=True)

    def waiting(self, message):
        """Progress of a long wait (regions, percentages): on a terminal, or with -v; never with -q."""
        if self.quiet:
            return
        if self.verbose or _isatty(self.stderr):
            print(message, file=self.stderr, flush=True)

    def warning(self, message):
        """A real problem that did not stop the command: always shown, -q included."""
        print(f"ams: warning: {message}", file=self.stderr, flush=True)

    # -- stdout -------------------------------------------------------------------------------

    def listing(self, rows, columns, json_keys, *, empty):
        """The rows a list command was asked for, shown with -q too.

        JSON: a list of objects with exactly ``json_keys`` (``[]`` when empty).  Table:
        ``columns`` (a list of (key, header) pairs); an empty list prints the note ``empty``.
        """
        if self.json:
            self._dump([{key: row.get(key) for key in json_keys} for row in rows])
        elif rows:
            self._table(rows, columns)
        else:
            self.note(empty)

    def table(self, rows, columns, *, empty):
        """A table reporting what a command did (or, in a dry run, would do); hidden by -q
        unless it is a dry run's plan.  JSON: the rows restricted to the columns' keys."""
        if self.json:
            self._dump([{key: row.get(key) for key, _ in columns} for row in rows])
        elif not rows:
            self.note(empty)
        elif not self._report_hidden:
            self._table(rows, columns)

    def result(self, data, text=None):
        """The outcome of a command: ``data`` as JSON, or ``text`` for people (hidden by -q
        unless it is a dry run's plan)."""
        if self.json:
            self._dump(data)
        elif text is not None and not self._report_hidden:
            print(text, file=self.stdout)

    def note(self, text):
        """A remark for people (an empty list, "dry run: nothing was written"): table output
        only, hidden by -q."""
        if not self.json and not self.quiet:
            print(text, file=self.stdout)

    def _table(self, rows, columns):
        from .text_table import render

        cells = [[_cell(row.get(key)) for key, _ in columns] for row in rows]
        print(render([header for _, header in columns], cells), file=self.stdout)

    def _dump(self, data):
        json.dump(data, self.stdout, indent=2, sort_keys=True, default=_json_default)
        self.stdout.write("\n")
        self.stdout.flush()

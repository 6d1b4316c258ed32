"""What commands print: tables (prettytable) or one JSON document, and progress.

Results go to stdout; progress and warnings go to stderr so that
``--output json`` stays one parseable document and cron mails stay short.
"""

import json
import sys
from datetime import datetime


def _json_default(value):
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, datetime):
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
    """Formats results for the chosen ``--output`` and verbosity."""

    def __init__(self, fmt="table", quiet=False, stdout=None, stderr=None, verbose=0):
        self.fmt = fmt
        self.quiet = quiet
        self.verbose = verbose
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr

    @property
    def json(self):
        return self.fmt == "json"

    def progress(self, message):
        """A line about work in progress (stderr; hidden by --quiet)."""
        if not self.quiet:
            print(message, file=self.stderr, flush=True)

    def step(self, message):
        """A step of a long command (stderr, only with -v): what runs now, for people watching."""
        if self.verbose and not self.quiet:
            print(message, file=self.stderr, flush=True)

    def waiting(self, message):
        """Progress of a long wait (percentages): on a terminal, or with -v; never with -q."""
        if self.quiet:
            return
        if self.verbose or _isatty(self.stderr):
            print(message, file=self.stderr, flush=True)

    def warning(self, message):
        print(f"ams: warning: {message}", file=self.stderr, flush=True)

    def table(self, rows, columns, *, empty="no rows"):
        """Print ``rows`` (dicts) with ``columns``: a list of (key, header) pairs."""
        if self.json:
            self._dump([{key: row.get(key) for key, _ in columns} for row in rows])
            return
        if not rows:
            if not self.quiet:
                print(empty, file=self.stdout)
            return
        from prettytable import PrettyTable

        table = PrettyTable([header for _, header in columns])
        table.align = "l"
        for row in rows:
            table.add_row([_cell(row.get(key)) for key, _ in columns])
        print(table, file=self.stdout)

    def result(self, data, text=None):
        """Print the outcome of a command: ``data`` as JSON, or ``text`` for people."""
        if self.json:
            self._dump(data)
        elif text is not None and not self.quiet:
            print(text, file=self.stdout)

    def _dump(self, data):
        json.dump(data, self.stdout, indent=2, sort_keys=True, default=_json_default)
        self.stdout.write("\n")
        self.stdout.flush()

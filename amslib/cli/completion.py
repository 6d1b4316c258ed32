"""Shell completion of stored names and ids: hosts, instances, groups, schedules, mount points.

``attach(parser)`` walks the built parser once and gives every argument that names something
already in the database (``VOLUME_GROUP_ID``, ``SNAPSHOT_GROUP_ID``, ``SCHEDULE_ID``,
``HOSTNAME``/``HOST``, ``INSTANCE``/``INSTANCE_ID``, ``MOUNT_POINT``, ...) an argcomplete completer,
chosen by the argument's metavar (or dest), so the ``*_cmd`` modules need nothing of their own.
``main`` calls it only for a completion request (``_ARGCOMPLETE`` set).

The candidates come from the database the settings point at (``AMS_DB_URL``, the settings file,
else the embedded SQLite file), read without SQLAlchemy: SQLite through the stdlib ``sqlite3``
opened read-only (a missing file is never created), MySQL/MariaDB through PyMySQL.  Every query is
in :data:`QUERIES`, with bound parameters only, and filters by the prefix typed.  Deleted volume
groups, snapshot groups and schedules and terminated hosts are not offered.  A completer never
raises and never prints: no settings, no database, no schema or no server means no candidates.

Arguments whose value is new rather than stored get no completer: everything of ``host add``,
the hostname ``host edit`` sets, and the mount point of a group being created, attached or
cloned.  A mount point is narrowed to the host, instance or volume group already on the line
(``ams volume detach host web1 /d<TAB>``); the mount points of ``snapshot list`` and of
``snapshot clone latest host|instance`` are those snapshots were taken of.

``finder_class`` adapts argcomplete's CompletionFinder so that 10,000 candidates cost
milliseconds, not a third of a second (bench/cli_latency.py measures it).
"""

import argparse
import os
import re

# kind -> SQL with named parameters (:name); :prefix is a LIKE pattern escaped with '!'.
QUERIES = {
    "hostname": (
        "SELECT DISTINCT hostname FROM hosts"
        " WHERE terminated_at IS NULL AND hostname LIKE :prefix ESCAPE '!'"
        " ORDER BY hostname"
    ),
    "instance": (
        "SELECT instance_id FROM hosts"
        " WHERE terminated_at IS NULL AND instance_id LIKE :prefix ESCAPE '!'"
        " ORDER BY instance_id"
    ),
    "volume_group": (
        "SELECT id FROM volume_groups"
        " WHERE deleted_at IS NULL AND CAST(id AS CHAR) LIKE :prefix ESCAPE '!'"
        " ORDER BY id"
    ),
    "snapshot_group": (
        "SELECT id FROM snapshot_groups"
        " WHERE deleted_at IS NULL AND CAST(id AS CHAR) LIKE :prefix ESCAPE '!'"
        " ORDER BY id"
    ),
    "schedule": (
        "SELECT id FROM snapshot_schedules"
        " WHERE deleted_at IS NULL AND CAST(id AS CHAR) LIKE :prefix ESCAPE '!'"
        " ORDER BY id"
    ),
    # where volume groups are mounted now (host_volumes holds current attachments only)
    "mount_point": (
        "SELECT DISTINCT hv.mount_point FROM host_volumes hv"
        " JOIN hosts h ON h.instance_id = hv.instance_id"
        " JOIN volume_groups vg ON vg.id = hv.volume_group_id"
        " WHERE vg.deleted_at IS NULL AND hv.mount_point LIKE :prefix ESCAPE '!'"
        " AND (:hostname IS NULL OR h.hostname = :hostname)"
        " AND (:instance_id IS NULL OR h.instance_id = :instance_id)"
        " AND (:volume_group_id IS NULL OR hv.volume_group_id = :volume_group_id)"
        " ORDER BY hv.mount_point"
    ),
    # the mount points snapshot groups were taken of
    "snapshot_mount_point": (
        "SELECT DISTINCT source_mount_point FROM snapshot_groups"
        " WHERE deleted_at IS NULL AND source_mount_point LIKE :prefix ESCAPE '!'"
        " AND (:hostname IS NULL OR source_hostname = :hostname)"
        " AND (:instance_id IS NULL OR source_instance_id = :instance_id)"
        " ORDER BY source_mount_point"
    ),
}

# the parameters each query takes besides :prefix
CONTEXT_PARAMETERS = {
    "mount_point": ("hostname", "instance_id", "volume_group_id"),
    "snapshot_mount_point": ("hostname", "instance_id"),
}

# metavar (or dest, upper-cased) -> kind
KINDS = {
    "HOSTNAME": "hostname",
    "HOST": "hostname",
    "INSTANCE": "instance",
    "INSTANCE_ID": "instance",
    "VOLUME_GROUP_ID": "volume_group",
    "SNAPSHOT_GROUP_ID": "snapshot_group",
    "SCHEDULE_ID": "schedule",
    "MOUNT_POINT": "mount_point",
    "SRC_MOUNT_POINT": "snapshot_mount_point",
    "RESOURCE_ID": "resource",  # schedule list host|instance|volume RESOURCE_ID
}

# (command words, metavar or None for every argument) -> kind, None: no completer.
# The first rule whose command words start the command's words wins.
OVERRIDES = (
    (("host", "add"), None, None),  # a new host: nothing stored to offer
    (("host", "edit"), "HOSTNAME", None),  # the hostname to set
    (("volume", "create"), "MOUNT_POINT", None),  # where a new group goes
    (("volume", "attach"), "MOUNT_POINT", None),
    (("snapshot", "clone"), "MOUNT_POINT", None),
    (("snapshot", "list"), "MOUNT_POINT", "snapshot_mount_point"),
)

RESOURCE_KINDS = {"host": "hostname", "instance": "instance", "volume": "volume_group"}

LIKE_ESCAPE = "!"  # the queries say ESCAPE '!': the same on SQLite and MySQL (unlike a backslash)


def like_prefix(prefix):
    """A LIKE pattern (escape character '!') matching the values that start with ``prefix``."""
    for char in (LIKE_ESCAPE, "%", "_"):
        prefix = prefix.replace(char, LIKE_ESCAPE + char)
    return prefix + "%"


def kind_for(words, action):
    """The completion kind of ``action`` in the command ``words`` ('volume', 'attach'), or None."""
    name = action.metavar if isinstance(action.metavar, str) else action.dest.upper()
    for command, metavar, kind in OVERRIDES:
        if words[: len(command)] == command and metavar in (None, name):
            return kind
    return KINDS.get(name)


def walk(parser, words=()):
    """(command words, action) for every argument of ``parser`` and its subcommands."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, subparser in action.choices.items():
                yield from walk(subparser, words + (name,))
        else:
            yield words, action


def attach(parser, database=None):
    """Give each argument naming a stored row a completer reading ``database`` (default: the
    database of the settings, opened on first use).  Returns the number of completers set."""
    database = database or Database()
    count = 0
    for words, action in walk(parser):
        kind = kind_for(words, action)
        if kind is not None:
            action.completer = DatabaseCompleter(kind, database)
            count += 1
    return count


# characters that never need a shell escape in a candidate (argcomplete escapes the others)
_PLAIN = re.compile(r"[\w./@+,%=~^-]*\Z")


def finder_class(base):
    """A subclass of ``base`` (argcomplete.CompletionFinder) linear in the number of candidates.

    argcomplete de-duplicates with a list (quadratic: 0.35 s for 10,000 hostnames) and runs
    ~25 replaces on every candidate; here de-duplication keeps order through a dict, and a long
    list of candidates that need no escaping is returned as it is.
    """
    class Finder(base):
        def filter_completions(self, completions):
            exclude = self.exclude or ()
            return [c for c in dict.fromkeys(completions) if c not in exclude]

        def quote_completions(self, completions, cword_prequote, last_wordbreak_pos):
            if (
                len(completions) > 1
                and cword_prequote == ""
                and last_wordbreak_pos is None
                and os.environ.get("_ARGCOMPLETE_SHELL") in ("bash", "zsh", None)
                and all(_PLAIN.match(c) for c in completions)
            ):
                return list(completions)  # what the escaping would return: nothing to escape
            return super().quote_completions(completions, cword_prequote, last_wordbreak_pos)

    return Finder


def _text(value):
    if value is None or not isinstance(value, str):
        return None
    value = value.strip().lower()  # hostnames and instance ids are stored in lower case
    return value or None


def _context(parsed_args):
    """hostname, instance_id and volume_group_id already given on the command line."""
    get = lambda name: getattr(parsed_args, name, None)  # noqa: E731
    hostname = _text(get("hostname")) or _text(get("host")) or _text(get("src_hostname"))
    instance_id = _text(get("instance_id")) or _text(get("instance")) or _text(get("src_instance_id"))
    # `snapshot list host|instance VALUE`, `snapshot schedule add host|instance RESOURCE`
    kind = get("list_kind") or get("resource_type")
    value = _text(get("value")) if get("list_kind") else _text(get("resource"))
    if kind == "host" and value and not hostname:
        hostname = value
    elif kind == "instance" and value and not instance_id:
        instance_id = value
    group = _text(get("volume_group_id"))
    volume_group_id = int(group) if group and group.isdigit() else None
    return {"hostname": hostname, "instance_id": instance_id, "volume_group_id": volume_group_id}


class DatabaseCompleter:
    """An argcomplete completer: the stored values of one kind that start with the prefix."""

    def __init__(self, kind, database):
        self.kind = kind
        self.database = database

    def __call__(self, prefix="", action=None, parser=None, parsed_args=None, **kwargs):
        try:
            kind = self.kind
            if kind == "resource":
                kind = RESOURCE_KINDS.get(getattr(parsed_args, "resource", None))
                if kind is None:
                    return []
            params = {"prefix": like_prefix(prefix or "")}
            if kind in CONTEXT_PARAMETERS:
                context = _context(parsed_args)
                params.update({name: context[name] for name in CONTEXT_PARAMETERS[kind]})
            return [str(value) for value in self.database.values(QUERIES[kind], params)]
        except Exception:  # completion must never fail loudly
            return []


def _settings_db_url():
    from ..core.settings import load_settings

    return str(load_settings().db_url)


class Database:
    """A lazily opened read-only connection to the ams database; every failure means no rows."""

    def __init__(self, url=None):
        self._url = url
        self._connection = None
        self._paramstyle = None
        self._failed = False

    @property
    def url(self):
        if self._url is None:
            self._url = _settings_db_url()
        return self._url

    def values(self, sql, params):
        """The first column of ``sql``'s rows ([] when the database cannot be read)."""
        connection = self._connect()
        if connection is None:
            return []
        if self._paramstyle == "pyformat":
            sql = re.sub(r":(\w+)", r"%(\1)s", sql)
        cursor = connection.cursor()
        try:
            cursor.execute(sql, params)
            return [row[0] for row in cursor.fetchall()]
        finally:
            cursor.close()

    def _connect(self):
        if self._connection is None and not self._failed:
            try:
                self._connection = self._open(self.url)
            except Exception:
                self._connection = None
            self._failed = self._connection is None
        return self._connection

    def _open(self, url):
        scheme, sep, rest = url.partition("://")
        if not sep:
            return None
        backend = scheme.split("+", 1)[0].lower()
        if backend == "sqlite":
            self._paramstyle = "named"
            return _open_sqlite(rest)
        if backend in ("mysql", "mariadb"):
            self._paramstyle = "pyformat"
            return _open_mysql(url)
        return None

    def close(self):
        if self._connection is not None:
            try:
                self._connection.close()
            except Exception:
                pass
            self._connection = None


def _unquote(text):
    if "%" not in text:
        return text
    from urllib.parse import unquote

    return unquote(text)


def _open_sqlite(rest):
    """``rest`` is what follows ``sqlite://``: ``/relative.db`` or ``//absolute.db``."""
    path, _, query = rest[1:].partition("?") if rest.startswith("/") else ("", "", "")
    path = _unquote(path)
    if not path or path == ":memory:" or "uri=true" in query.lower() or path.startswith("file:"):
        return None  # nothing stored, or a form completion does not try to follow
    import sqlite3

    path = os.path.abspath(path)
    if not os.path.isfile(path):
        return None
    uri = "file:" + path.replace("%", "%25").replace("?", "%3f").replace("#", "%23") + "?mode=ro"
    connection = sqlite3.connect(uri, uri=True, timeout=0.5)
    return connection


def _open_mysql(url):
    from urllib.parse import parse_qs, urlsplit

    import pymysql

    parts = urlsplit(url)
    query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
    kwargs = {
        "host": parts.hostname or "localhost",
        "user": _unquote(parts.username) if parts.username else None,
        "password": _unquote(parts.password) if parts.password else "",
        "database": _unquote(parts.path.lstrip("/")) or None,
        "connect_timeout": 2,
        "read_timeout": 5,
        "charset": query.get("charset", "utf8mb4"),
    }
    if parts.port:
        kwargs["port"] = parts.port
    if query.get("unix_socket"):
        kwargs["unix_socket"] = query["unix_socket"]
    if kwargs["database"] is None:
        return None
    return pymysql.connect(**kwargs)

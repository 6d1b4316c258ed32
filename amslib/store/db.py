"""Engines for the state database: MySQL/MariaDB through PyMySQL, or SQLite."""

import logging
import os

from ..core.errors import DatabaseError

log = logging.getLogger("ams.store")


def safe_url(url):
    """The URL as text with any password masked, for messages and logs."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparsable database URL>"


def create_engine(url):
    """Create an engine for ``url``; nothing is connected yet."""
    import sqlalchemy
    from sqlalchemy import event
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseError(f"invalid database URL {safe_url(url)}") from None
    kwargs = {"future": True}
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(parsed.database)), exist_ok=True)
        kwargs["connect_args"] = {"timeout": 30}
    elif backend in ("mysql", "mariadb"):
        kwargs.update(pool_pre_ping=True, pool_recycle=3600)
        kwargs["connect_args"] = {"connect_timeout": 10, "charset": "utf8mb4"}
    else:
        raise DatabaseError(f"unsupported database {backend!r}: use mysql+pymysql://… or sqlite:///…")
    try:
        engine = sqlalchemy.create_engine(parsed, **kwargs)
    except (NoSuchModuleError, ImportError) as exc:
        raise DatabaseError(f"no driver for {safe_url(url)}: {exc}") from None
    if backend == "sqlite":
        # SQLAlchemy's documented pysqlite recipe: the driver would begin no transaction before a
        # SELECT or DDL (so a read-then-write was not atomic and migrations not transactional);
        # instead every transaction starts with BEGIN IMMEDIATE, which takes the write lock at
        # once, so concurrent ams processes serialise on it (waiting up to the busy timeout).

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            dbapi_connection.isolation_level = None  # the driver emits no BEGIN of its own
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(connection):
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def driver_error_detail(exc):
    """The driver's own words for a DBAPIError, on one line: '(1045) Access denied …'."""
    orig = getattr(exc, "orig", None) or exc
    args = getattr(orig, "args", ())
    if len(args) >= 2 and isinstance(args[0], int):
        return f"({args[0]}) {args[1]}"
    return str(orig).splitlines()[0] if str(orig) else orig.__class__.__name__


def describe_connect_error(engine, exc):
    """Turn a driver error into one line naming the database (password masked)."""
    return f"cannot use database {safe_url(engine.url)}: {driver_error_detail(exc)}"


def connect(engine):
    """Open a connection, turning driver errors into DatabaseError."""
    from sqlalchemy.exc import DBAPIError

    try:
        return engine.connect()
    except DBAPIError as exc:
        raise DatabaseError(describe_connect_error(engine, exc)) from None

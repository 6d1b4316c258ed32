"""Versioned schema migrations (Alembic, script location ``sql/``).

``install`` builds the whole schema on an empty database, ``upgrade`` brings an
older one to head, and ``require_current`` is what every other command calls
before touching the database.
"""

import functools
import os

from ..core.errors import ConflictError, SchemaError
from .db import connect, safe_url


def script_location():
    """``sql/`` of a checkout, or the copy installed as ``amslib/sql``."""
    here = os.path.dirname(os.path.abspath(__file__))
    for candidate in (
        os.path.join(here, "..", "..", "sql"),  # source checkout
        os.path.join(here, "..", "sql"),  # pip install (package-dir mapping)
    ):
        if os.path.isfile(os.path.join(candidate, "env.py")):
            return os.path.normpath(candidate)
    raise SchemaError("the migration scripts (sql/) are missing from this installation")


def _config(connection=None):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", script_location())
    cfg.attributes["connection"] = connection
    return cfg


def _script():
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config())


@functools.cache
def head_revision():
    """The newest revision of the scripts (read once a process: they do not change under it)."""
    return _script().get_current_head()


def all_revisions():
    """Revision ids from the first to head."""
    return [rev.revision for rev in reversed(list(_script().walk_revisions()))]


def current_revision(connection):
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def _tables(connection):
    from sqlalchemy import inspect

    return set(inspect(connection).get_table_names())


def _upgrade(connection, target):
    from alembic import command

    command.upgrade(_config(connection), target)


def install(engine, dry_run=False):
    """Create the full schema on an empty database; return the new version.

    ``dry_run``: make the same checks, change nothing, return the version it would install."""
    with connect(engine) as connection:
        existing = _tables(connection)
        if existing:
            version = current_revision(connection)
            state = f"at version {version}" if version else "with tables but no ams version"
            raise ConflictError(
                f"database {safe_url(engine.url)} is not empty ({state}); "
                "use 'ams internals database upgrade' to update an existing schema"
            )
        if dry_run:
            return head_revision()
        _upgrade(connection, "head")
        connection.commit()
        return current_revision(connection)


def upgrade(engine, target="head", dry_run=False):
    """Migrate to ``target``; return (version before, version after).

    ``dry_run``: make the same checks, change nothing, return (version now, version now)."""
    with connect(engine) as connection:
        before = current_revision(connection)
        if before is None and _tables(connection):
            raise SchemaError(
                f"database {safe_url(engine.url)} has tables but no ams version; refusing to guess"
            )
        if before is not None and before not in all_revisions():
            raise SchemaError(
                f"database version {before} is newer than this ams knows ({head_revision()}); upgrade ams"
            )
        if dry_run:
            return before, before
        _upgrade(connection, target)
        connection.commit()
        return before, current_revision(connection)


def require_current(engine):
    """Refuse to work on a database whose schema is missing, behind or ahead."""
    with connect(engine) as connection:
        version = current_revision(connection)
    head = head_revision()
    if version == head:
        return version
    where = safe_url(engine.url)
    if version is None:
        raise SchemaError(f"database {where} has no ams schema; run 'ams internals database install'")
    if version in all_revisions():
        raise SchemaError(
            f"database {where} is at version {version}, this ams needs {head}; "
            "run 'ams internals database upgrade'"
        )
    raise SchemaError(f"database {where} is at version {version}, newer than this ams ({head}); upgrade ams")

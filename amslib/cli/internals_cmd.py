"""ams internals database install|upgrade — schema management."""

from .base import add_command, add_group


def _missing_sqlite_file(ctx):
    """The path of the SQLite file the settings name, when it does not exist yet: a dry run
    reports on it without opening it (opening would create the file and its directory)."""
    import os

    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(ctx.settings.db_url)
    except ArgumentError:
        return None  # ctx.engine() reports the bad URL
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    path = os.path.abspath(url.database)
    return None if os.path.exists(path) else path


def cmd_database_install(ctx, args):
    from ..store.db import safe_url
    from ..store.migrate import head_revision, install

    if ctx.dry_run:
        missing = _missing_sqlite_file(ctx)
        if missing:
            where, version, verb = safe_url(ctx.settings.db_url), head_revision(), f"would create {missing} and install"
        else:
            engine = ctx.engine(require_current_schema=False)
            where, version, verb = safe_url(engine.url), install(engine, dry_run=True), "would install"
        ctx.out.result(
            {"database": where, "action": "install", "version": version, "dry_run": True},
            f"{verb} the ams schema version {version} into {where}",
        )
        return 0
    engine = ctx.engine(require_current_schema=False)
    where = safe_url(engine.url)
    version = install(engine)
    ctx.out.result(
        {"database": where, "action": "installed", "version": version},
        f"installed the ams schema version {version} into {where}",
    )
    return 0


def cmd_database_upgrade(ctx, args):
    from ..store.db import safe_url
    from ..store.migrate import all_revisions, head_revision, upgrade

    head = head_revision()
    if ctx.dry_run:
        if _missing_sqlite_file(ctx):
            where, before = safe_url(ctx.settings.db_url), None
        else:
            engine = ctx.engine(require_current_schema=False)
            where, (before, _) = safe_url(engine.url), upgrade(engine, dry_run=True)
        revisions = all_revisions()
        pending = revisions[revisions.index(before) + 1 :] if before in revisions else revisions
        ctx.out.result(
            {"database": where, "version": before, "target": head, "pending": pending, "dry_run": True},
            f"{where} is at version {before or 'none'}; would apply: {', '.join(pending) or 'nothing'}",
        )
        return 0
    engine = ctx.engine(require_current_schema=False)
    where = safe_url(engine.url)
    before, after = upgrade(engine)
    if before == after:
        text = f"{where} is already at version {after}; nothing to do"
        action = "current"
    else:
        text = f"upgraded {where} from version {before or 'none'} to {after}"
        action = "upgraded"
    ctx.out.result({"database": where, "action": action, "from": before, "version": after}, text)
    return 0


def register(subparsers):
    _, groups = add_group(subparsers, "internals", "ams's own housekeeping")
    _, database = add_group(groups, "database", "install or upgrade the state database schema")
    add_command(
        database,
        "install",
        "create the ams tables in an empty database",
        cmd_database_install,
        description="Create every ams table in an empty database (SQLite by default, or the "
        "database of DB_URL / AMS_DB_URL). Refuses a database that already has tables; with "
        "--dry-run, checks that and says where the schema would go.",
        dry_run=True,
    )
    add_command(
        database,
        "upgrade",
        "bring the schema to this version of ams",
        cmd_database_upgrade,
        description="Apply the migrations this database is missing. Safe to run any time: "
        "on a current database it changes nothing.",
        dry_run=True,
    )

"""ams internals database install|upgrade — schema management."""

from .base import add_command, add_group


def cmd_database_install(ctx, args):
    from ..store.db import safe_url
    from ..store.migrate import head_revision, install

    engine = ctx.engine(require_current_schema=False)
    where = safe_url(engine.url)
    if ctx.dry_run:
        ctx.out.result(
            {"database": where, "action": "install", "version": head_revision(), "dry_run": True},
            f"would install the ams schema version {head_revision()} into {where}",
        )
        return 0
    version = install(engine)
    ctx.out.result(
        {"database": where, "action": "installed", "version": version},
        f"installed the ams schema version {version} into {where}",
    )
    return 0


def cmd_database_upgrade(ctx, args):
    from ..store.db import connect, safe_url
    from ..store.migrate import all_revisions, current_revision, head_revision, upgrade

    engine = ctx.engine(require_current_schema=False)
    where = safe_url(engine.url)
    head = head_revision()
    if ctx.dry_run:
        with connect(engine) as connection:
            before = current_revision(connection)
        revisions = all_revisions()
        pending = revisions[revisions.index(before) + 1 :] if before in revisions else revisions
        ctx.out.result(
            {"database": where, "version": before, "target": head, "pending": pending, "dry_run": True},
            f"{where} is at version {before or 'none'}; would apply: {', '.join(pending) or 'nothing'}",
        )
        return 0
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
        "database of DB_URL / AMS_DB_URL). Refuses a database that already has tables.",
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

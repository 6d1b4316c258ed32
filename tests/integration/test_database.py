"""Migrations and the schema-version rules, on SQLite and on a real MariaDB."""

import pytest
from sqlalchemy import inspect

from amslib.store import migrate, schema
from amslib.store.db import create_engine


@pytest.fixture
def engine(db_url):
    engine = create_engine(db_url)
    yield engine
    engine.dispose()


def table_names(engine):
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


def schema_shape(engine):
    """Tables with their columns and indexes (name, columns, unique)."""
    inspector = inspect(engine)
    shape = {}
    for name in table_names(engine):
        columns = tuple(sorted(c["name"] for c in inspector.get_columns(name)))
        indexes = tuple(sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                               for i in inspector.get_indexes(name)))
        shape[name] = (columns, indexes)
    return shape


def test_every_migration_applies_in_order_from_empty(engine):
    revisions = migrate.all_revisions()
    assert revisions[0] == "0001" and revisions[-1] == migrate.head_revision()
    seen = {}
    for revision in revisions:
        before, after = migrate.upgrade(engine, revision)
        assert after == revision
        shape = schema_shape(engine)
        assert shape != seen, f"migration {revision} changed nothing"
        seen = shape
    assert set(seen) == set(schema.metadata.tables)


def test_migrated_schema_matches_the_code(engine):
    """Columns, nullability and indexes built by the migrations equal schema.py."""
    migrate.install(engine)
    inspector = inspect(engine)
    for table in schema.metadata.sorted_tables:
        columns = {c["name"]: c for c in inspector.get_columns(table.name)}
        assert set(columns) == {c.name for c in table.columns}, table.name
        for column in table.columns:
            assert columns[column.name]["nullable"] == column.nullable, f"{table.name}.{column.name}"
        indexes = {i["name"]: (tuple(i["column_names"]), bool(i["unique"])) for i in inspector.get_indexes(table.name)}
        for index in table.indexes:
            expected = (tuple(c.name for c in index.columns), bool(index.unique))
            assert indexes.get(index.name) == expected, f"{table.name}.{index.name}"


def test_install_then_upgrade_is_a_no_op(ams):
    first = ams("--output", "json", "internals", "database", "install")
    assert first.code == 0, first
    assert first.json["version"] == migrate.head_revision()
    again = ams("internals", "database", "upgrade")
    assert again.code == 0, again
    assert "nothing to do" in again.out


def test_install_refuses_an_existing_schema(ams):
    assert ams("internals", "database", "install").code == 0
    second = ams("internals", "database", "install")
    assert second.code == 4
    assert second.err.count("\n") == 1 and "not empty" in second.err
    assert "internals database upgrade" in second.err


def test_commands_refuse_a_database_that_is_behind_and_upgrade_fixes_it(ams, ams_env):
    engine = create_engine(ams_env["AMS_DB_URL"])
    migrate.upgrade(engine, "0001")
    engine.dispose()
    behind = ams("host", "list")
    assert behind.code == 8, behind
    assert "at version 0001" in behind.err and "ams internals database upgrade" in behind.err
    upgraded = ams("--output", "json", "internals", "database", "upgrade")
    assert upgraded.code == 0, upgraded
    assert upgraded.json["from"] == "0001" and upgraded.json["version"] == migrate.head_revision()
    assert ams("host", "list").code == 0


def test_commands_refuse_a_database_without_schema(ams):
    result = ams("host", "list")
    assert result.code == 8
    assert "ams internals database install" in result.err


def test_upgrade_dry_run_lists_pending_and_changes_nothing(ams, ams_env):
    result = ams("--output", "json", "internals", "database", "upgrade", "--dry-run")
    assert result.code == 0, result
    assert result.json["pending"] == migrate.all_revisions()
    engine = create_engine(ams_env["AMS_DB_URL"])
    assert table_names(engine) == set()
    engine.dispose()


def test_upgrade_refuses_foreign_tables(ams, ams_env):
    engine = create_engine(ams_env["AMS_DB_URL"])
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE unrelated (id INTEGER)")
    engine.dispose()
    result = ams("internals", "database", "upgrade")
    assert result.code == 8 and "no ams version" in result.err
    assert ams("internals", "database", "install").code == 4


def test_a_database_failure_mid_command_is_exit_8_with_one_line(ams_db, ams_env):
    engine = create_engine(ams_env["AMS_DB_URL"])
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE host_volumes")
        conn.exec_driver_sql("DROP TABLE schedule_runs")
        conn.exec_driver_sql("DROP TABLE snapshots")
        conn.exec_driver_sql("DROP TABLE snapshot_groups")
        conn.exec_driver_sql("DROP TABLE snapshot_schedules")
        conn.exec_driver_sql("DROP TABLE hosts")
    engine.dispose()
    result = ams_db("host", "list")
    assert result.code == 8, result
    assert result.err.startswith("ams: error: database error:") and "hosts" in result.err
    assert result.err.count("\n") == 1

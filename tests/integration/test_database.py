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


def schema_drift(engine, metadata=None):
    """What Alembic's autogenerate finds between the database and ``metadata`` (schema.py's by
    default): tables, columns, types, nullability, server defaults, indexes, unique constraints
    and foreign keys.  An empty list means no drift."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        return compare_metadata(context, schema.metadata if metadata is None else metadata)


def describe_drift(diffs):
    return "\n".join(repr(diff) for diff in diffs)


def test_every_migration_applies_in_order_from_empty(engine):
    """One revision at a time from an empty database to head; a migration may change anything
    (a type, a constraint), so no step is required to add a table or a column."""
    revisions = migrate.all_revisions()
    assert revisions[0] == "0001" and revisions[-1] == migrate.head_revision()
    for revision in revisions:
        before, after = migrate.upgrade(engine, revision)
        assert after == revision
    assert table_names(engine) == set(schema.metadata.tables)
    drift = schema_drift(engine)
    assert drift == [], describe_drift(drift)


def test_migrated_schema_matches_the_code(engine):
    """The database built by the migrations equals schema.py in everything Alembic compares:
    tables, columns, types, nullability, server defaults, indexes, unique constraints, foreign keys."""
    migrate.install(engine)
    drift = schema_drift(engine)
    assert drift == [], describe_drift(drift)


def test_the_drift_check_sees_types_foreign_keys_and_unique_constraints(engine):
    """The comparison above can fail: schema.py with a wider column, a foreign key and a unique
    constraint left out is reported on both databases."""
    from sqlalchemy import ForeignKeyConstraint, MetaData, String, UniqueConstraint

    migrate.install(engine)
    altered = MetaData()
    for table in schema.metadata.sorted_tables:
        table.to_metadata(altered)
    altered.tables["hosts"].c.region.type = String(64)
    volumes = altered.tables["volumes"]
    volumes.constraints.remove(next(c for c in volumes.constraints if isinstance(c, ForeignKeyConstraint)))
    host_volumes = altered.tables["host_volumes"]
    host_volumes.constraints.remove(next(c for c in host_volumes.constraints if isinstance(c, UniqueConstraint)))

    drift = schema_drift(engine, altered)
    flat = [item for diff in drift for item in (diff if isinstance(diff, list) else [diff])]
    kinds = {item[0] for item in flat}
    assert ("modify_type", "hosts", "region") in {(i[0], i[2], i[3]) for i in flat if i[0] == "modify_type"}
    assert "remove_fk" in kinds, describe_drift(drift)
    # a unique constraint is reflected as one on SQLite, as a unique index on MariaDB
    removed = {getattr(i[1], "name", None) for i in flat if i[0] in ("remove_constraint", "remove_index")}
    assert kinds & {"remove_constraint", "remove_index"}, describe_drift(drift)
    assert removed <= {"uq_host_volumes_volume_group", None}, describe_drift(drift)
    assert len(flat) == 3, describe_drift(drift)


# -- timestamps: whole seconds on both databases (issue 11) ---------------------------------------


def _times_table():
    from sqlalchemy import Column, Integer, MetaData, Table

    from amslib.store.types import UtcDateTime

    metadata = MetaData()
    return Table("ams_test_times", metadata, Column("id", Integer, primary_key=True), Column("at", UtcDateTime()))


@pytest.mark.parametrize(
    "written",
    [
        "2027-03-04T05:06:07.999999+00:00",  # MySQL would round this into the next second
        "2027-03-04T05:06:07.500000+00:00",
        "2027-03-04T05:06:07.000001+00:00",
        "2027-03-04T07:06:07.123456+02:00",  # not UTC: stored as 05:06:07 UTC
        "2027-12-31T23:59:59.999999+00:00",  # truncation never moves a time into the next year
    ],
)
def test_a_timestamp_reads_back_as_written_to_the_second(engine, written):
    from datetime import datetime, timezone

    from sqlalchemy import select

    from amslib.store.types import whole_seconds

    table = _times_table()
    table.metadata.create_all(engine)
    value = datetime.fromisoformat(written)
    with engine.begin() as conn:
        conn.execute(table.insert().values(id=1, at=value))
    with engine.connect() as conn:
        back = conn.execute(select(table.c.at)).scalar_one()
        # a comparison binds through the same rule, so the exact value written finds the row
        found = conn.execute(select(table.c.id).where(table.c.at == value)).scalar_one_or_none()
    assert back == whole_seconds(value) == value.replace(microsecond=0)
    assert back.tzinfo == timezone.utc and back.microsecond == 0
    assert found == 1


def test_utcnow_round_trips_exactly(engine):
    from sqlalchemy import select

    from amslib.store.types import utcnow

    table = _times_table()
    table.metadata.create_all(engine)
    now = utcnow()
    assert now.microsecond == 0
    with engine.begin() as conn:
        conn.execute(table.insert().values(id=1, at=now))
    with engine.connect() as conn:
        assert conn.execute(select(table.c.at)).scalar_one() == now


def test_a_fraction_already_stored_reads_back_as_whole_seconds(engine):
    """Rows written before the rule (SQLite kept the microseconds) read as MariaDB's would."""
    from datetime import datetime, timezone

    from sqlalchemy import select

    table = _times_table()
    table.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO ams_test_times (id, at) VALUES (1, '2027-03-04 05:06:07.250000')")
    with engine.connect() as conn:
        back = conn.execute(select(table.c.at)).scalar_one()
    assert back == datetime(2027, 3, 4, 5, 6, 7, tzinfo=timezone.utc)


def test_a_naive_timestamp_is_refused(engine):
    from datetime import datetime

    from sqlalchemy.exc import StatementError

    table = _times_table()
    table.metadata.create_all(engine)
    with pytest.raises(StatementError, match="naive datetime"):
        with engine.begin() as conn:
            conn.execute(table.insert().values(id=1, at=datetime(2027, 1, 1)))


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

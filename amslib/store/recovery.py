"""Reads and writes of volume and snapshot discovery (``amslib.recovery``).

Discovery compares whole tables, so the state is read with one SELECT per table, and a plan is
written in the caller's transaction: attachments to replace are removed first, then, table by
table in foreign-key order, the inserts as one executemany (with the ids the tags name) and the
updates as one executemany per set of changed columns.
"""

from sqlalchemy import bindparam, select, update

from .schema import host_volumes, snapshot_groups, snapshots, volume_groups, volumes

TABLES = {
    "volume_groups": (volume_groups, "id"),
    "volumes": (volumes, "volume_id"),
    "host_volumes": (host_volumes, "volume_group_id"),
    "snapshot_groups": (snapshot_groups, "id"),
    "snapshots": (snapshots, "snapshot_id"),
}
TABLE_ORDER = ("volume_groups", "volumes", "host_volumes", "snapshot_groups", "snapshots")


def rows_by_key(conn, name):
    """{key: row} of every row of table ``name``."""
    table, key = TABLES[name]
    return {row[key]: dict(row) for row in conn.execute(select(table)).mappings()}


def snapshot_groups_of_snapshots(conn):
    """{snapshot id: snapshot group id} of every stored snapshot."""
    query = select(snapshots.c.snapshot_id, snapshots.c.snapshot_group_id)
    return {row[0]: row[1] for row in conn.execute(query)}


def apply(conn, plan):
    """Write ``plan`` (an amslib.recovery.discovery_plan.RecoveryPlan) in ``conn``'s transaction."""
    for name, keys in plan.deletes.items():
        table, key = TABLES[name]
        if keys:
            conn.execute(table.delete().where(table.c[key].in_(sorted(set(keys)))))
    for name in TABLE_ORDER:
        table, key = TABLES[name]
        rows = plan.inserts.get(name)
        if rows:
            _insert(conn, table, rows)
        by_columns = {}
        for row_key, values in plan.updates.get(name, []):
            by_columns.setdefault(tuple(sorted(values)), []).append((row_key, values))
        for columns, items in by_columns.items():
            statement = (update(table).where(table.c[key] == bindparam("k_"))
                         .values({c: bindparam(f"v_{c}") for c in columns}))
            conn.execute(statement, [dict({"k_": k}, **{f"v_{c}": v for c, v in values.items()}) for k, values in items])


def _insert(conn, table, rows):
    """Rows in order, one executemany per run of rows with the same columns."""
    batch = []
    for row in rows:
        if batch and set(batch[0]) != set(row):
            conn.execute(table.insert(), batch)
            batch = []
        batch.append(row)
    if batch:
        conn.execute(table.insert(), batch)

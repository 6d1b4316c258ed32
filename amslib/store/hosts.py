"""Queries on the ``hosts`` table (SQLAlchemy Core, bound parameters only).

Matching for ``host list``:

* exact:  ``column = :value``
* like:   the user's ``*`` and ``%`` are wildcards, everything else is literal
          (``_`` and ``\\`` are escaped); a pattern without a wildcard matches
          anywhere in the value (``--like web`` finds ``app-web-1``)
* prefix: ``column LIKE :escaped_value || '%'``

Hostnames and instance ids are stored in lower case (see
``amslib.instance.validation``), so matching behaves the same on SQLite and on
MySQL's case-insensitive collations.

Discovery writes in bulk: :func:`upsert_discovered` sends every new or changed
row as one executemany of a dialect upsert (``ON CONFLICT DO UPDATE`` on
SQLite, ``ON DUPLICATE KEY UPDATE`` on MySQL) that never replaces a hostname
whose ``hostname_source`` is ``user``, even if a ``host edit`` ran meanwhile.
"""

from sqlalchemy import and_, case, literal_column, select, update

from .schema import hosts

LIKE_ESCAPE = "\\"
USER_WILDCARDS = ("*", "%")

# Columns discovery owns: refreshed from EC2 on every pass.
DISCOVERED_COLUMNS = (
    "name",
    "region",
    "availability_zone",
    "instance_type",
    "ami_id",
    "hostname_internal",
    "hostname_external",
    "ip_internal",
    "ip_external",
    "vpc_id",
    "subnet_id",
    "state",
    "tags",
    "terminated_at",
)

WRITE_CHUNK = 1000  # rows per executemany (MySQL packs them into few statements)
IN_CHUNK = 500  # ids per IN (...) list


def _escape(text):
    return text.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2).replace("%", LIKE_ESCAPE + "%").replace("_", LIKE_ESCAPE + "_")


def like_pattern(user_pattern):
    """A LIKE pattern from a user's wildcard pattern (``*``/``%`` wild, the rest literal)."""
    parts = []
    for char in user_pattern:
        if char in USER_WILDCARDS:
            parts.append("%")
        else:
            parts.append(_escape(char))
    pattern = "".join(parts)
    if not any(char in USER_WILDCARDS for char in user_pattern):
        pattern = f"%{pattern}%"
    return pattern


def prefix_pattern(prefix):
    """A LIKE pattern matching values that start with ``prefix`` (taken literally)."""
    return _escape(prefix) + "%"


def match_clause(column, *, exact=None, like=None, prefix=None):
    """A WHERE clause for one of exact / like / prefix, or None when none is given."""
    if exact is not None:
        return column == exact
    if like is not None:
        return column.like(like_pattern(like), escape=LIKE_ESCAPE)
    if prefix is not None:
        return column.like(prefix_pattern(prefix), escape=LIKE_ESCAPE)
    return None


def select_hosts(field=None, *, exact=None, like=None, prefix=None, zone=None):
    """The SELECT for ``host list``: ``field`` is 'hostname' or 'instance_id'."""
    clauses = []
    if field is not None:
        clause = match_clause(hosts.c[field], exact=exact, like=like, prefix=prefix)
        if clause is not None:
            clauses.append(clause)
    if zone is not None:
        clauses.append(match_clause(hosts.c.availability_zone, prefix=zone))
    query = select(hosts)
    if clauses:
        query = query.where(and_(*clauses))
    return query.order_by(hosts.c.availability_zone, hosts.c.hostname, hosts.c.instance_id)


def list_hosts(conn, field=None, *, exact=None, like=None, prefix=None, zone=None):
    query = select_hosts(field, exact=exact, like=like, prefix=prefix, zone=zone)
    return [dict(row) for row in conn.execute(query).mappings()]


def get_host(conn, instance_id):
    row = conn.execute(select(hosts).where(hosts.c.instance_id == instance_id)).mappings().first()
    return dict(row) if row else None


def all_hosts(conn):
    """Every row, keyed by instance id (discovery diffs against this)."""
    return {row["instance_id"]: dict(row) for row in conn.execute(select(hosts)).mappings()}


def insert_host(conn, values):
    conn.execute(hosts.insert().values(**values))


def update_host(conn, instance_id, values):
    conn.execute(update(hosts).where(hosts.c.instance_id == instance_id).values(**values))


def chunks(items, size):
    """Lists of at most ``size`` of ``items`` (bounded IN lists and executemany batches)."""
    items = list(items)
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _upsert_statement(dialect_name):
    if dialect_name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert

        stmt = insert(hosts)
        new = stmt.excluded
    elif dialect_name in ("mysql", "mariadb"):
        from sqlalchemy.dialects.mysql import insert

        stmt = insert(hosts)
        new = stmt.inserted
    else:  # db.create_engine only accepts the two above
        raise NotImplementedError(f"no bulk upsert for {dialect_name}")
    assignments = {name: new[name] for name in DISCOVERED_COLUMNS + ("updated_at", "discovered_at")}
    # A literal, not a bound parameter: PyMySQL's executemany cannot batch a
    # statement whose ON DUPLICATE KEY part holds parameters.
    user_set = hosts.c.hostname_source == literal_column("'user'")
    assignments["hostname"] = case((user_set, hosts.c.hostname), else_=new.hostname)
    if dialect_name == "sqlite":
        return stmt.on_conflict_do_update(index_elements=[hosts.c.instance_id], set_=assignments)
    return stmt.on_duplicate_key_update(assignments)


def upsert_discovered(conn, rows):
    """Insert or refresh discovered hosts (full rows) in a few round trips."""
    if not rows:
        return
    stmt = _upsert_statement(conn.dialect.name)
    for chunk in chunks(rows, WRITE_CHUNK):
        conn.execute(stmt, chunk)


def mark_gone(conn, instance_ids, now):
    """Mark hosts that EC2 no longer returns: state 'missing', terminated_at kept or set."""
    for chunk in chunks(sorted(instance_ids), IN_CHUNK):
        conn.execute(
            update(hosts)
            .where(hosts.c.instance_id.in_(chunk))
            .values(
                state="missing",
                terminated_at=case((hosts.c.terminated_at.is_(None), now), else_=hosts.c.terminated_at),
                updated_at=now,
            )
        )


def touch_seen(conn, regions, now):
    """Record that discovery saw every host of ``regions`` that it did not mark missing."""
    if not regions:
        return
    conn.execute(
        update(hosts)
        .where(hosts.c.region.in_(sorted(regions)))
        .where((hosts.c.state.is_(None)) | (hosts.c.state != "missing"))
        .values(discovered_at=now)
    )

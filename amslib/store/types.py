"""Column types shared by the schema and the migrations."""

import os
from datetime import datetime, timezone

from sqlalchemy import DateTime, String
from sqlalchemy.types import TypeDecorator

# EC2 ids in the long format are up to 21 characters (vol-0123456789abcdef0);
# 32 leaves room for longer prefixes such as 'import-snap-…' without a migration.
EC2_ID_LENGTH = 32


def Ec2Id():
    return String(EC2_ID_LENGTH)


def whole_seconds(value):
    """``value`` without its fraction of a second: the one rule for stored times.

    MariaDB/MySQL DATETIME (no fsp) keeps whole seconds (MariaDB truncates the fraction, MySQL
    rounds it) while SQLite keeps microseconds, so the same write would read back differently.
    Every time is therefore truncated (never rounded: a time must not move into the next second,
    or the next schedule slot) before it reaches either database: by :func:`utcnow` and by
    :class:`UtcDateTime`'s bind processing, which covers inserts, updates and comparisons in
    WHERE clauses alike.
    """
    return value.replace(microsecond=0)


class UtcDateTime(TypeDecorator):
    """A timestamp stored as naive UTC, to the second, and read back as an aware UTC datetime.

    MySQL DATETIME and SQLite have no time zone; storing UTC everywhere and
    attaching tzinfo on the way out keeps comparisons and output unambiguous.
    Fractions of a second are dropped on the way in (see :func:`whole_seconds`), and on the
    way out too (rows SQLite stored with microseconds before this rule read back the same as
    they would from MariaDB), so a value read back equals ``whole_seconds`` of the value written
    on both databases.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; use amslib.store.types.utcnow()")
        return whole_seconds(value.astimezone(timezone.utc).replace(tzinfo=None))

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return whole_seconds(value.replace(tzinfo=timezone.utc))


def utcnow():
    """The current time in UTC, to the second (MySQL DATETIME has no fraction by default).

    ``AMS_NOW`` (ISO 8601 in UTC, e.g. ``2027-01-01T00:00:00Z``) sets the clock, for tests and
    simulations of schedules; every command reads the time through here.
    """
    fixed = os.environ.get("AMS_NOW")
    if fixed:
        return parse_now(fixed)
    return whole_seconds(datetime.now(timezone.utc))


def parse_now(text):
    """``AMS_NOW`` as an aware UTC datetime; ConfigError when it is not ISO 8601 with a UTC offset."""
    from ..core.errors import ConfigError

    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ConfigError(f"AMS_NOW must be an ISO 8601 time in UTC such as 2027-01-01T00:00:00Z, not {text!r}") from None
    if value.tzinfo is None:
        raise ConfigError(f"AMS_NOW must give its time zone (end it with Z for UTC), not {text!r}")
    return whole_seconds(value.astimezone(timezone.utc))

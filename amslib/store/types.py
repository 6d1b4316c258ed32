"""Column types shared by the schema and the migrations."""

from datetime import datetime, timezone

from sqlalchemy import DateTime, String
from sqlalchemy.types import TypeDecorator

# EC2 ids in the long format are up to 21 characters (vol-0123456789abcdef0);
# 32 leaves room for longer prefixes such as 'import-snap-…' without a migration.
EC2_ID_LENGTH = 32


def Ec2Id():
    return String(EC2_ID_LENGTH)


class UtcDateTime(TypeDecorator):
    """A timestamp stored as naive UTC and read back as an aware UTC datetime.

    MySQL DATETIME and SQLite have no time zone; storing UTC everywhere and
    attaching tzinfo on the way out keeps comparisons and output unambiguous.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; use amslib.store.types.utcnow()")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc)


def utcnow():
    """The current time in UTC, to the second (MySQL DATETIME has no fraction by default)."""
    return datetime.now(timezone.utc).replace(microsecond=0)

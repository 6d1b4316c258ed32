"""Slot, due-ness and expiry math of snapshot schedules (pure: datetimes in, datetimes out, no I/O).

Time
    Everything is UTC.  Every datetime given must be timezone-aware (any offset; it is converted
    to UTC) and every datetime returned is aware with ``tzinfo=timezone.utc``.  A naive datetime
    is a bug in the caller and raises ValueError, as does a ``now`` outside 1900-01-01 .. 9800-01-01
    or a taken slot outside 1700-01-01 .. 9800-01-01 (far outside any real clock; the margins keep
    every slot start and expiry representable).
    Daylight saving time therefore never matters.

Tiers and units
    ``hourly``, ``daily``, ``weekly``, ``monthly`` and ``yearly``, counted in whole units from a
    fixed epoch: hours and days since 1970-01-01T00:00Z, weeks of Monday 00:00 to Monday 00:00
    since Monday 1970-01-05 (ISO weeks: an ISO week 53 such as 2026-12-28 .. 2027-01-03 is one
    ordinary week, not split at New Year), calendar months as ``year * 12 + month - 1`` and
    calendar years.  Each tier has an interval (hour, day, week, month given; yearly is always 1)
    and a retention (how many of its slots are kept; 0 disables the tier).  Defaults: intervals
    1/1/1/1, retentions 24/14/4/12/3.

Slots
    The slot start of a tier at time t is the start of the newest unit u <= t with
    ``u % interval == 0``: slots are evenly spaced from the epoch and never reset at midnight, on
    the 1st or at New Year (hourly interval 5 runs at 00, 05, ... 20, then 01, 06, ... the next
    day; monthly interval 5 across 2026/2027 is Sep, Feb, Jul, Dec).  Intervals that divide the
    next unit stay aligned with the calendar: hourly 6 is 00/06/12/18 every day, monthly 3 is
    Jan/Apr/Jul/Oct, monthly 12 is every January.  Daily slots count from 1970-01-01, a Thursday,
    so daily 7 is every Thursday; use weekly for Mondays.

Due-ness and catch-up
    ``taken`` maps a tier to the latest slot start of that tier a successful run has served
    (missing or None: never).  A tier is due when it is enabled and its current slot start is
    later than ``taken[tier]``.  When runs were missed, the next run takes ONE snapshot group for
    the current (most recent) slot of each due tier, never one per missed slot; ``skipped`` says
    how many slots went unserved.  Any value in [served slot start, that run's time] works as
    ``taken`` (e.g. the run's slot key), since only "is the current slot later" is asked.  After
    an interval edit a taken value may lie off the new grid; the next slot after it is then the
    first new-grid slot later than it, so an edit never snapshots one moment twice.

Slot key (idempotency)
    One snapshot group serves every tier due at that moment; its run record is keyed by
    ``RunPlan.slot``, the NEWEST due slot start, and a unique constraint on (schedule_id, slot)
    makes a duplicate run fail to record.  Why not the current hour: two runs that read the same
    records at 00:59:59 and 01:00:01 with the hourly tier disabled both plan the daily slot, and
    hour keys (00:00, 01:00) would not collide, while newest-due-slot keys (both 00:00) do.  For
    unchanged settings and the same records: two plans with equal keys serve exactly the same tier
    slots (a true duplicate), a plan whose key is later serves a slot that did not exist yet at
    the earlier time, and after recording a run every later run has a strictly later key - so the
    constraint only ever rejects duplicates.  A second plan in the same slot after the first was
    recorded takes nothing (the constraint is the backstop for runs racing past each other).  If
    a tier is enabled by an edit within a slot that already has a run, the new tier's first plan
    may reuse that key and be refused as a duplicate; the tier starts at its next slot.  Only
    successful runs count in ``taken``; a failed run that holds a key is retried under the same
    key (the runner updates that record rather than inserting a second one).

Expiry
    A tier's expiry is its slot start + interval x retention of its unit, in calendar months and
    years (never 30/365 days): month arithmetic clamps to the end of the month (Jan 31 + 1 month =
    Feb 28 or 29; Feb 29 + 1 year = Feb 28).  A run's expiry is the LATEST expiry of its due tiers,
    so one group kept for several tiers lives as long as the longest-lived of them.  A group is
    expired when ``expiry <= now``: retention 24 hourly then keeps exactly the 24 newest hourly
    slots after each run and purge.  A scheduled run's expiry is never None and always later than
    its ``now``.

Manual runs (``schedule run ID``)
    Snapshot now regardless of due-ness, with ``manual_expiry``: now (to the whole second) plus
    the longest span interval x retention among the enabled tiers, so an ad-hoc snapshot (often
    taken before a risky change) outlives any snapshot the schedule would take at that moment,
    and still expires.
    A manual run serves no tier (the next scheduled run is unaffected) and has no slot key
    (``slot`` None: NULLs never collide in a UNIQUE index, on MariaDB nor on SQLite).

Clock moved backwards
    If ``now`` is earlier than a taken slot (the clock was ahead and was set back, or records come
    from a host with a clock ahead), that tier is simply not due until its next slot after the
    taken one: nothing is taken twice, nothing raises, ``RunPlan.clock_behind`` is set for the
    runner to report, and ``next_due`` says when taking resumes.

Validation
    Intervals are whole numbers 1-1000 (yearly: always 1), retentions whole numbers 0-10000, a
    tier may keep at most 100 years (interval x retention <= 876600 hours, 36525 days, 5217 weeks,
    1200 months, 100 years), and at least one retention must be > 0: a schedule that can never
    take a snapshot is refused (delete it instead), so a manual run always has an expiry.
    Failures raise UsageError with one line.
"""

import calendar
import dataclasses
import re
from datetime import datetime, timedelta, timezone

from ..core.errors import UsageError

UTC = timezone.utc

TIERS = ("hourly", "daily", "weekly", "monthly", "yearly")
INTERVAL_TIERS = TIERS[:4]  # the tiers whose interval can be set (hour day week month)
UNITS = {"hourly": "hour", "daily": "day", "weekly": "week", "monthly": "month", "yearly": "year"}

DEFAULT_INTERVALS = (1, 1, 1, 1)
DEFAULT_RETENTIONS = (24, 14, 4, 12, 3)

MAX_INTERVAL = 1000
MAX_RETENTION = 10000
MAX_KEEP_YEARS = 100
# tier -> the longest interval x retention, in the tier's unit (100 years of 365.25 days)
MAX_SPAN = {"hourly": 876600, "daily": 36525, "weekly": 5217, "monthly": 1200, "yearly": 100}

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # hours and days count from here
WEEK_EPOCH = datetime(1970, 1, 5, tzinfo=UTC)  # a Monday: weeks count from here
MIN_TIME = datetime(1900, 1, 1, tzinfo=UTC)  # the range of ``now``
MAX_TIME = datetime(9800, 1, 1, tzinfo=UTC)
MIN_TAKEN = datetime(1700, 1, 1, tzinfo=UTC)  # taken slots may start up to 1000 months before now

_STEP = {"hourly": timedelta(hours=1), "daily": timedelta(days=1), "weekly": timedelta(weeks=1)}
_ORIGIN = {"hourly": EPOCH, "daily": EPOCH, "weekly": WEEK_EPOCH}


# -- time ------------------------------------------------------------------------------------------

def _aware(value, what):
    if not isinstance(value, datetime):
        raise TypeError(f"{what} must be a datetime, not {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} {value.isoformat()} is naive: give a timezone-aware datetime")
    return value.astimezone(UTC)


def utc(value, what="time", earliest=MIN_TIME):
    """``value`` converted to UTC; ValueError for a naive datetime or one out of range."""
    result = _aware(value, what)
    if not earliest <= result < MAX_TIME:
        raise ValueError(f"{what} {result.isoformat()} is outside the supported range "
                         f"{earliest.year}-{MAX_TIME.year - 1}")
    return result


def add_months(value, months):
    """``value`` plus whole calendar months, clamped to the month's last day (Jan 31 + 1 = Feb 28/29)."""
    index = value.year * 12 + value.month - 1 + months
    year, month0 = divmod(index, 12)
    day = min(value.day, calendar.monthrange(year, month0 + 1)[1])
    return value.replace(year=year, month=month0 + 1, day=day)


def add_years(value, years):
    """``value`` plus whole calendar years (Feb 29 + 1 year = Feb 28)."""
    return add_months(value, 12 * years)


def add_units(tier, value, count):
    """``value`` plus ``count`` units of the tier (hours, days, weeks, calendar months or years)."""
    if tier in _STEP:
        return value + count * _STEP[tier]
    if tier == "monthly":
        return add_months(value, count)
    if tier == "yearly":
        return add_years(value, count)
    raise ValueError(f"unknown tier {tier!r}")


def unit_index(tier, value):
    """The number of the unit of the tier that contains ``value`` (hours, days or weeks since the
    epoch, ``year * 12 + month - 1``, or the year)."""
    value = _aware(value, "time")
    if tier in _STEP:
        return (value - _ORIGIN[tier]) // _STEP[tier]
    if tier == "monthly":
        return value.year * 12 + value.month - 1
    if tier == "yearly":
        return value.year
    raise ValueError(f"unknown tier {tier!r}")


def unit_start(tier, index):
    """The start of unit number ``index`` of the tier (inverse of :func:`unit_index`)."""
    if tier in _STEP:
        return _ORIGIN[tier] + index * _STEP[tier]
    if tier == "monthly":
        year, month0 = divmod(index, 12)
        return datetime(year, month0 + 1, 1, tzinfo=UTC)
    if tier == "yearly":
        return datetime(index, 1, 1, tzinfo=UTC)
    raise ValueError(f"unknown tier {tier!r}")


def slot_start(tier, interval, value):
    """The start of the newest unit u <= ``value`` of the tier with ``u % interval == 0``."""
    interval = check_interval(tier, interval)
    index = unit_index(tier, value)
    return unit_start(tier, index - index % interval)


def next_slot_start(tier, interval, value):
    """The first slot start of the tier strictly later than ``value``."""
    return add_units(tier, slot_start(tier, interval, value), check_interval(tier, interval))


def tier_expiry(tier, interval, retention, slot):
    """When a snapshot serving ``slot`` of the tier expires: slot + interval x retention units."""
    return add_units(tier, _aware(slot, "slot"), interval * retention)


# -- validation ------------------------------------------------------------------------------------

def _whole(value, what):
    if isinstance(value, bool):
        raise UsageError(f"{what} must be a whole number, not {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?[0-9]+\s*", value):
        return int(value)
    raise UsageError(f"{what} must be a whole number, not {value!r}")


def _tier(tier):
    if tier not in TIERS:
        raise ValueError(f"unknown tier {tier!r}: expected one of {', '.join(TIERS)}")
    return tier


def check_interval(tier, value):
    """One tier's interval as an int: 1-1000 (the yearly interval is always 1)."""
    number = _whole(value, f"{_tier(tier)} interval")
    if tier == "yearly":
        if number != 1:
            raise UsageError(f"yearly interval {value!r} is not supported: it is always 1")
        return number
    if not 1 <= number <= MAX_INTERVAL:
        raise UsageError(f"{tier} interval {value!r} is out of range: 1-{MAX_INTERVAL}")
    return number


def check_retention(tier, value):
    """One tier's retention as an int: 0 (tier disabled) to 10000."""
    number = _whole(value, f"{_tier(tier)} retention")
    if not 0 <= number <= MAX_RETENTION:
        raise UsageError(f"{tier} retention {value!r} is out of range: 0-{MAX_RETENTION} (0 disables the tier)")
    return number


def _values(values, count, what, names):
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__") or len(values) != count:
        raise UsageError(f"{what} take {count} values ({names}), not {values!r}")
    return tuple(values)


def check_intervals(values):
    """The 4 intervals (hour day week month) as a tuple of ints."""
    values = _values(values, 4, "intervals", "hour day week month")
    return tuple(check_interval(tier, value) for tier, value in zip(INTERVAL_TIERS, values))


def check_retentions(values):
    """The 5 retentions (hours days weeks months years) as a tuple of ints; not all 0."""
    values = _values(values, 5, "retentions", "hours days weeks months years")
    numbers = tuple(check_retention(tier, value) for tier, value in zip(TIERS, values))
    if not any(numbers):
        raise UsageError("every retention is 0, so the schedule would never take a snapshot: "
                         "keep at least one tier (delete the schedule to stop it)")
    return numbers


def check_spans(intervals, retentions):
    """Refuse a tier that would keep a snapshot longer than 100 years."""
    for tier, interval, retention in zip(TIERS, tuple(intervals) + (1,), retentions):
        if interval * retention > MAX_SPAN[tier]:
            unit = UNITS[tier]
            raise UsageError(
                f"{tier} tier keeps {retention} snapshots {interval} {unit}(s) apart "
                f"({interval * retention} {unit}s): at most {MAX_SPAN[tier]} {unit}s "
                f"({MAX_KEEP_YEARS} years)")


@dataclasses.dataclass(frozen=True)
class ScheduleSettings:
    """A schedule's checked intervals (hour day week month) and retentions (hours .. years)."""

    intervals: tuple = DEFAULT_INTERVALS
    retentions: tuple = DEFAULT_RETENTIONS

    def __post_init__(self):
        intervals = check_intervals(self.intervals)
        retentions = check_retentions(self.retentions)
        check_spans(intervals, retentions)
        object.__setattr__(self, "intervals", intervals)
        object.__setattr__(self, "retentions", retentions)

    def interval(self, tier):
        return 1 if _tier(tier) == "yearly" else self.intervals[TIERS.index(tier)]

    def retention(self, tier):
        return self.retentions[TIERS.index(_tier(tier))]

    @property
    def enabled(self):
        """The tiers with a retention > 0, in TIERS order (never empty)."""
        return tuple(tier for tier, keep in zip(TIERS, self.retentions) if keep)


def check_settings(intervals=DEFAULT_INTERVALS, retentions=DEFAULT_RETENTIONS):
    """Checked :class:`ScheduleSettings` (UsageError with one line otherwise)."""
    return ScheduleSettings(intervals, retentions)


# -- planning --------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class RunPlan:
    """What one run of a schedule at ``now`` takes.

    now           the run's time in UTC
    due           the tiers whose current slot is not served yet, in TIERS order
    slots         due tier -> the slot start this run serves (record these as the new ``taken``)
    expiries      due tier -> that tier's expiry for its slot
    slot          the run's idempotency key: the newest due slot start; None when nothing is due
                  and for a manual run
    expiry        the snapshot group's expiry: the latest of ``expiries`` (manual: manual_expiry);
                  None only when nothing is taken
    skipped       due tier -> how many of its slots went unserved before this one (catch-up);
                  None when the tier was never served
    clock_behind  ``now`` is earlier than a taken slot (the clock moved backwards)
    manual        a run requested by hand (``schedule run ID``): takes a snapshot, serves no tier
    """

    now: datetime
    due: tuple = ()
    slots: dict = dataclasses.field(default_factory=dict)
    expiries: dict = dataclasses.field(default_factory=dict)
    slot: "datetime | None" = None
    expiry: "datetime | None" = None
    skipped: dict = dataclasses.field(default_factory=dict)
    clock_behind: bool = False
    manual: bool = False

    @property
    def takes(self):
        """True when this run takes a snapshot group."""
        return self.manual or bool(self.due)


def _taken(taken):
    """``taken`` as a dict tier -> UTC datetime or None, for every tier."""
    result = dict.fromkeys(TIERS)
    for tier, value in (taken or {}).items():
        _tier(tier)
        result[tier] = None if value is None else utc(value, f"taken {tier} slot", MIN_TAKEN)
    return result


def _skipped(tier, interval, last, current):
    if last is None:
        return None
    first_missed = next_slot_start(tier, interval, last)
    if first_missed >= current:
        return 0
    return (unit_index(tier, current) - unit_index(tier, first_missed)) // interval


def plan_run(settings, now, taken=None):
    """The :class:`RunPlan` of a scheduled run of ``settings`` at ``now`` given the ``taken`` slots."""
    now = utc(now, "now")
    taken = _taken(taken)
    slots, expiries, skipped = {}, {}, {}
    for tier in settings.enabled:
        interval = settings.interval(tier)
        current = slot_start(tier, interval, now)
        last = taken[tier]
        if last is not None and current <= last:
            continue
        slots[tier] = current
        expiries[tier] = tier_expiry(tier, interval, settings.retention(tier), current)
        skipped[tier] = _skipped(tier, interval, last, current)
    return RunPlan(
        now=now,
        due=tuple(slots),
        slots=slots,
        expiries=expiries,
        slot=max(slots.values()) if slots else None,
        expiry=max(expiries.values()) if expiries else None,
        skipped=skipped,
        clock_behind=any(last is not None and last > now for last in taken.values()),
    )


def tiers_due(settings, now, taken=None):
    """The tiers a scheduled run at ``now`` would serve, in TIERS order."""
    return plan_run(settings, now, taken).due


def manual_expiry(settings, now):
    """The expiry of a snapshot taken by hand at ``now``: now (whole seconds) plus the longest
    interval x retention among the enabled tiers, in calendar units."""
    start = utc(now, "now").replace(microsecond=0)
    return max(add_units(tier, start, settings.interval(tier) * settings.retention(tier))
               for tier in settings.enabled)


def plan_manual_run(settings, now, taken=None):
    """The :class:`RunPlan` of ``schedule run ID``: takes a snapshot whatever is due, serves no tier."""
    now = utc(now, "now")
    taken = _taken(taken)
    return RunPlan(
        now=now,
        expiry=manual_expiry(settings, now),
        clock_behind=any(last is not None and last > now for last in taken.values()),
        manual=True,
    )


def next_due(settings, now, taken=None):
    """When a scheduled run takes something: the earliest, over the enabled tiers, of the first slot
    start after the served one (a tier never served: its current slot start).

    A value <= ``now`` means a run now takes something, and has been due since then (runs after it
    were missed); a later value is the first time a scheduled run will take something.  After the
    clock moved backwards it is the first slot after the taken one.
    """
    now = utc(now, "now")
    taken = _taken(taken)
    candidates = []
    for tier in settings.enabled:
        interval = settings.interval(tier)
        last = taken[tier]
        if last is None:
            candidates.append(slot_start(tier, interval, now))
        else:
            candidates.append(next_slot_start(tier, interval, last))
    return min(candidates)

"""Snapshot schedule slot, due-ness and expiry math (pure): amslib.schedule.slots.

Expected values are written out by hand (calendar facts checked against a calendar), and the
random property tests compare against a small brute-force checker below that finds slots by
stepping unit by unit instead of by index arithmetic.
"""

import calendar
import dataclasses
import random
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

import pytest

from amslib.core.errors import UsageError
from amslib.schedule import slots as s

UTC = timezone.utc
DEFAULTS = s.ScheduleSettings()
HOUR = timedelta(hours=1)


def T(text):
    """'2027-01-01T00:30' -> an aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def settings(intervals=(1, 1, 1, 1), retentions=(24, 14, 4, 12, 3)):
    return s.ScheduleSettings(intervals, retentions)


def refused(match, func, *args, **kwargs):
    with pytest.raises(UsageError, match=match) as info:
        func(*args, **kwargs)
    assert "\n" not in str(info.value)
    return str(info.value)


def record(taken, plan):
    """The ``taken`` a run store would derive after recording ``plan`` as successful."""
    updated = dict(taken or {})
    updated.update(plan.slots)
    return updated


# -- brute-force checker (independent of the code under test) --------------------------------------

def b_slot(tier, n, t):
    """Newest slot start <= t, found by stepping back one unit at a time."""
    t = t.astimezone(UTC)
    if tier == "hourly":
        hour = calendar.timegm(t.utctimetuple()) // 3600
        while hour % n:
            hour -= 1
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(hours=hour)
    if tier == "daily":
        day = t.date()
        while (day.toordinal() - date(1970, 1, 1).toordinal()) % n:
            day -= timedelta(days=1)
        return datetime.combine(day, time(), UTC)
    if tier == "weekly":
        day = t.date()
        while day.isoweekday() != 1:
            day -= timedelta(days=1)
        while ((day.toordinal() - date(1970, 1, 5).toordinal()) // 7) % n:
            day -= timedelta(days=7)
        return datetime.combine(day, time(), UTC)
    if tier == "monthly":
        year, month = t.year, t.month
        while (year * 12 + month - 1) % n:
            month -= 1
            if month == 0:
                year, month = year - 1, 12
        return datetime(year, month, 1, tzinfo=UTC)
    assert tier == "yearly" and n == 1
    return datetime(t.year, 1, 1, tzinfo=UTC)


def b_add(tier, t, count):
    """t + count units, months stepped one at a time with the day clamped at the end."""
    if tier in ("hourly", "daily", "weekly"):
        return t + count * {"hourly": HOUR, "daily": timedelta(days=1), "weekly": timedelta(days=7)}[tier]
    months = count * (12 if tier == "yearly" else 1)
    year, month = t.year, t.month
    for _ in range(months):
        month += 1
        if month == 13:
            year, month = year + 1, 1
    return t.replace(year=year, month=month, day=min(t.day, calendar.monthrange(year, month)[1]))


def b_next(tier, n, t):
    """First slot start > t: walk unit starts forward until one is aligned."""
    candidate = b_slot(tier, 1, t)
    while True:
        candidate = b_add(tier, candidate, 1)
        if b_slot(tier, n, candidate) == candidate:
            return candidate


def b_plan(conf, now, taken):
    """(due, slots, expiries, key, expiry) as the module docstring defines them."""
    now = now.astimezone(UTC)
    slots, expiries = {}, {}
    for tier, ret in zip(s.TIERS, conf.retentions):
        if not ret:
            continue
        n = conf.intervals[s.TIERS.index(tier)] if tier != "yearly" else 1
        current = b_slot(tier, n, now)
        last = taken.get(tier)
        if last is None or current > last:
            slots[tier] = current
            expiries[tier] = b_add(tier, current, n * ret)
    return (tuple(slots), slots, expiries, max(slots.values(), default=None),
            max(expiries.values(), default=None))


def b_next_due(conf, now, taken):
    best = None
    for tier, ret in zip(s.TIERS, conf.retentions):
        if not ret:
            continue
        n = conf.intervals[s.TIERS.index(tier)] if tier != "yearly" else 1
        last = taken.get(tier)
        candidate = b_slot(tier, n, now) if last is None else b_next(tier, n, last)
        best = candidate if best is None or candidate < best else best
    return best


def random_settings(rng):
    choices = (1, 1, 1, 2, 3, 5, 6, 7, 12, 13, 24, 100)
    while True:
        intervals = tuple(rng.choice(choices) for _ in range(4))
        retentions = tuple(rng.choice((0, 1, 2, 3, 4, 12, 14, 24)) for _ in range(5))
        try:
            return settings(intervals, retentions)
        except UsageError:  # every tier disabled, or kept over 100 years
            continue


def random_time(rng, low=T("1971-01-01T00:00"), high=T("2100-01-01T00:00")):
    seconds = rng.randrange(int((high - low).total_seconds()))
    moment = low + timedelta(seconds=seconds, microseconds=rng.choice((0, 0, rng.randrange(10**6))))
    if rng.random() < 0.3:  # sometimes on an exact hour / midnight / month start
        moment = moment.replace(minute=0, second=0, microsecond=0)
        if rng.random() < 0.5:
            moment = moment.replace(hour=0)
            if rng.random() < 0.5:
                moment = moment.replace(day=1)
    offset = timezone(timedelta(minutes=rng.choice((0, 0, 60, -300, 330, 840, -720))))
    return moment.astimezone(offset)


def random_taken(rng, conf, now):
    taken = {}
    for tier in s.TIERS:
        roll = rng.random()
        if roll < 0.2:
            continue
        n = conf.interval(tier)
        if roll < 0.5:  # a served slot: the current one, or an older or (clock ahead) newer one
            slot = b_slot(tier, n, now)
            for _ in range(rng.choice((0, 0, 1, 3))):
                slot = b_slot(tier, n, slot - timedelta(microseconds=1))
            if rng.random() < 0.15:
                slot = b_next(tier, n, slot)
            taken[tier] = slot
        else:  # any time near now (a slot key, or off-grid after an interval edit)
            taken[tier] = now + timedelta(hours=rng.uniform(-24 * 400, 24 * 40))
    return taken


# -- constants and settings ------------------------------------------------------------------------

def test_tiers_and_defaults():
    assert s.TIERS == ("hourly", "daily", "weekly", "monthly", "yearly")
    assert s.DEFAULT_INTERVALS == (1, 1, 1, 1)
    assert s.DEFAULT_RETENTIONS == (24, 14, 4, 12, 3)
    assert DEFAULTS.intervals == (1, 1, 1, 1) and DEFAULTS.retentions == (24, 14, 4, 12, 3)
    assert DEFAULTS.enabled == s.TIERS
    assert [DEFAULTS.interval(t) for t in s.TIERS] == [1, 1, 1, 1, 1]
    assert [DEFAULTS.retention(t) for t in s.TIERS] == [24, 14, 4, 12, 3]
    assert s.check_settings() == DEFAULTS


def test_settings_normalise_and_expose_tiers():
    conf = settings(["2", " 3", "+4", 5], ("0", 7, "0", 1, 0))
    assert conf.intervals == (2, 3, 4, 5) and conf.retentions == (0, 7, 0, 1, 0)
    assert conf.enabled == ("daily", "monthly")
    assert conf.interval("weekly") == 4 and conf.interval("yearly") == 1
    assert conf.retention("daily") == 7
    with pytest.raises(ValueError, match="unknown tier"):
        conf.interval("minutely")
    with pytest.raises(dataclasses.FrozenInstanceError):
        conf.intervals = (1, 1, 1, 1)


def test_settings_replace_is_checked_again():
    refused("every retention is 0", dataclasses.replace, DEFAULTS, retentions=(0, 0, 0, 0, 0))
    assert dataclasses.replace(DEFAULTS, intervals=(2, 1, 1, 1)).interval("hourly") == 2


# -- validation ------------------------------------------------------------------------------------

@pytest.mark.parametrize("tier", s.INTERVAL_TIERS)
def test_interval_limits(tier):
    assert s.check_interval(tier, 1) == 1
    assert s.check_interval(tier, 1000) == 1000
    assert s.check_interval(tier, "17") == 17
    for bad in (0, -1, 1001, "0", "1001"):
        message = refused("out of range: 1-1000", s.check_interval, tier, bad)
        assert message.startswith(f"{tier} interval {bad!r}")


@pytest.mark.parametrize("bad", [True, False, 1.0, 2.5, None, "", "1.5", "two", "1e3", b"1", "1 2", [1]])
def test_interval_not_whole(bad):
    message = refused("must be a whole number", s.check_interval, "daily", bad)
    assert message == f"daily interval must be a whole number, not {bad!r}"


def test_yearly_interval_is_always_one():
    assert s.check_interval("yearly", 1) == 1
    refused("yearly interval 2 is not supported: it is always 1", s.check_interval, "yearly", 2)


def test_unknown_tier_is_a_bug():
    with pytest.raises(ValueError, match="unknown tier 'minutely'"):
        s.check_interval("minutely", 1)
    with pytest.raises(ValueError, match="unknown tier"):
        s.check_retention("Hourly", 1)


@pytest.mark.parametrize("tier", s.TIERS)
def test_retention_limits(tier):
    assert s.check_retention(tier, 0) == 0
    assert s.check_retention(tier, 10000) == 10000
    assert s.check_retention(tier, " 24 ") == 24
    for bad in (-1, 10001, "-3"):
        message = refused(r"out of range: 0-10000 \(0 disables the tier\)", s.check_retention, tier, bad)
        assert message.startswith(f"{tier} retention {bad!r}")
    refused("must be a whole number", s.check_retention, tier, 1.5)
    refused("must be a whole number", s.check_retention, tier, True)


def test_check_intervals_and_retentions():
    assert s.check_intervals([1, "2", 3, 4]) == (1, 2, 3, 4)
    assert s.check_retentions(("24", 14, 4, 12, 3)) == (24, 14, 4, 12, 3)
    assert s.check_retentions((0, 0, 0, 0, 1)) == (0, 0, 0, 0, 1)
    refused(r"intervals take 4 values \(hour day week month\)", s.check_intervals, (1, 1, 1))
    refused("intervals take 4 values", s.check_intervals, (1, 1, 1, 1, 1))
    refused("intervals take 4 values", s.check_intervals, "1111")
    refused("intervals take 4 values", s.check_intervals, None)
    refused("intervals take 4 values", s.check_intervals, iter((1, 1, 1, 1)))
    refused(r"retentions take 5 values \(hours days weeks months years\)", s.check_retentions, (1, 1, 1, 1))
    message = refused("weekly interval 0 is out of range", s.check_intervals, (1, 1, 0, 1))
    assert "1-1000" in message
    refused("monthly retention -1 is out of range", s.check_retentions, (1, 1, 1, -1, 1))


def test_all_tiers_disabled_is_refused():
    message = refused("every retention is 0", s.check_retentions, (0, 0, 0, 0, 0))
    assert "never take a snapshot" in message and "delete the schedule" in message
    refused("every retention is 0", s.ScheduleSettings, (1, 1, 1, 1), ("0", 0, 0, 0, 0))
    refused("every retention is 0", s.check_settings, retentions=(0, 0, 0, 0, 0))


@pytest.mark.parametrize("intervals, retentions, message", [
    ((1000, 1, 1, 1), (877, 0, 0, 0, 0), "hourly tier keeps 877 snapshots 1000 hour(s) apart (877000 hours): "
                                         "at most 876600 hours (100 years)"),
    ((1, 100, 1, 1), (0, 366, 0, 0, 0), "daily tier keeps 366 snapshots 100 day(s) apart"),
    ((1, 1, 2, 1), (0, 0, 2609, 0, 0), "weekly tier keeps 2609 snapshots 2 week(s) apart (5218 weeks): "
                                       "at most 5217 weeks (100 years)"),
    ((1, 1, 1, 12), (0, 0, 0, 101, 0), "monthly tier keeps 101 snapshots 12 month(s) apart (1212 months): "
                                       "at most 1200 months (100 years)"),
    ((1, 1, 1, 1), (0, 0, 0, 0, 101), "yearly tier keeps 101 snapshots 1 year(s) apart"),
])
def test_span_over_100_years_refused(intervals, retentions, message):
    assert refused("at most", s.ScheduleSettings, intervals, retentions).startswith(message)


def test_span_limits_accepted():
    conf = settings((1000, 100, 1, 12), (876, 365, 5217, 100, 100))
    assert conf.retentions == (876, 365, 5217, 100, 100)
    assert settings((1, 1, 1, 1), (10000, 10000, 5217, 1200, 100)).retention("monthly") == 1200


# -- time input ------------------------------------------------------------------------------------

def test_naive_datetimes_are_refused():
    naive = datetime(2027, 1, 1, 0, 30)
    with pytest.raises(ValueError, match="naive"):
        s.plan_run(DEFAULTS, naive)
    with pytest.raises(ValueError, match="naive"):
        s.plan_run(DEFAULTS, T("2027-01-01T00:30"), {"daily": naive})
    with pytest.raises(ValueError, match="naive"):
        s.next_due(DEFAULTS, naive)
    with pytest.raises(ValueError, match="naive"):
        s.manual_expiry(DEFAULTS, naive)
    with pytest.raises(ValueError, match="naive"):
        s.slot_start("daily", 1, naive)
    with pytest.raises(ValueError, match="naive"):
        s.tier_expiry("daily", 1, 14, naive)
    with pytest.raises(ValueError, match="naive"):
        s.utc(naive)


def test_tzinfo_without_offset_is_naive():
    class NoOffset(tzinfo):
        def utcoffset(self, dt):
            return None

    with pytest.raises(ValueError, match="naive"):
        s.utc(datetime(2027, 1, 1, tzinfo=NoOffset()))


@pytest.mark.parametrize("bad", [date(2027, 1, 1), "2027-01-01T00:00:00Z", 1798761600, None])
def test_non_datetimes_are_refused(bad):
    with pytest.raises(TypeError, match="must be a datetime"):
        s.plan_run(DEFAULTS, bad)


def test_unknown_tier_in_taken_is_refused():
    with pytest.raises(ValueError, match="unknown tier 'daily '"):
        s.plan_run(DEFAULTS, T("2027-01-01T00:30"), {"daily ": T("2027-01-01T00:00")})


@pytest.mark.parametrize("bad", [T("1899-12-31T23:59:59"), T("9800-01-01T00:00"), T("0001-01-01T00:00")])
def test_now_out_of_range_is_refused(bad):
    with pytest.raises(ValueError, match="now .* is outside the supported range 1900-9799"):
        s.plan_run(DEFAULTS, bad)
    with pytest.raises(ValueError, match="outside the supported range"):
        s.next_due(DEFAULTS, bad)
    with pytest.raises(ValueError, match="outside the supported range"):
        s.manual_expiry(DEFAULTS, bad)


@pytest.mark.parametrize("bad", [T("1699-12-31T23:59:59"), T("9800-01-01T00:00"), T("0001-01-01T00:00")])
def test_taken_out_of_range_is_refused(bad):
    with pytest.raises(ValueError, match="taken hourly slot .* is outside the supported range 1700-9799"):
        s.plan_run(DEFAULTS, T("2027-01-01T00:00"), {"hourly": bad})


def test_range_edges_work_with_the_largest_settings():
    big = settings((1000, 1000, 1000, 1000), (876, 36, 5, 1, 100))
    for now in (T("1900-01-01T00:00"), T("9799-12-31T23:59:59.999999")):
        plan = s.plan_run(big, now)
        assert plan.due == s.TIERS and plan.expiry > now
        assert s.manual_expiry(big, now) > now
        assert s.next_due(big, now, plan.slots) > now


def test_other_offsets_are_converted_to_utc():
    plus5 = timezone(timedelta(hours=5))
    now = datetime(2027, 1, 1, 1, 30, tzinfo=plus5)  # 2026-12-31T20:30Z
    plan = s.plan_run(DEFAULTS, now)
    assert plan.now == T("2026-12-31T20:30") and plan.now.tzinfo is UTC
    assert plan.slots == {
        "hourly": T("2026-12-31T20:00"), "daily": T("2026-12-31T00:00"), "weekly": T("2026-12-28T00:00"),
        "monthly": T("2026-12-01T00:00"), "yearly": T("2026-01-01T00:00"),
    }
    assert all(v.tzinfo is UTC for v in (*plan.slots.values(), *plan.expiries.values(), plan.expiry))
    minus8 = timezone(timedelta(hours=-8))
    assert s.plan_run(DEFAULTS, datetime(2027, 1, 31, 16, 5, tzinfo=minus8)).slots["monthly"] == T("2027-02-01T00:00")
    half = timezone(timedelta(hours=5, minutes=30))
    assert s.slot_start("hourly", 1, datetime(2027, 6, 1, 0, 15, tzinfo=half)) == T("2027-05-31T18:00")


def test_taken_with_offsets_is_converted():
    plus2 = timezone(timedelta(hours=2))
    taken = {"hourly": datetime(2027, 1, 1, 12, 0, tzinfo=plus2)}  # 10:00Z
    assert "hourly" not in s.plan_run(DEFAULTS, T("2027-01-01T10:59"), taken).due
    assert "hourly" in s.plan_run(DEFAULTS, T("2027-01-01T11:00"), taken).due


def test_dst_is_irrelevant():
    """Local times across a DST change map to evenly spaced UTC hours; no slot is doubled or lost."""
    ny = ZoneInfo("America/New_York")
    # 2027-03-14 02:00 EST -> 03:00 EDT; 2027-11-07 02:00 EDT -> 01:00 EST (01:xx happens twice)
    spring = [datetime(2027, 3, 14, 0, 30, tzinfo=ny) + k * HOUR for k in range(6)]
    spring_utc = [t.astimezone(UTC) for t in spring]
    assert [s.slot_start("hourly", 1, t) for t in spring] == [b_slot("hourly", 1, t) for t in spring_utc]
    first = datetime(2027, 11, 7, 1, 30, tzinfo=ny, fold=0)  # 05:30Z
    second = datetime(2027, 11, 7, 1, 30, tzinfo=ny, fold=1)  # 06:30Z
    assert s.slot_start("hourly", 1, first) == T("2027-11-07T05:00")
    assert s.slot_start("hourly", 1, second) == T("2027-11-07T06:00")
    taken = s.plan_run(DEFAULTS, first).slots
    assert s.plan_run(DEFAULTS, second, taken).due == ("hourly",)
    # the daily slot is midnight UTC, whatever the local date says
    assert s.slot_start("daily", 1, datetime(2027, 3, 13, 20, 0, tzinfo=ny)) == T("2027-03-14T00:00")


# -- calendar arithmetic ---------------------------------------------------------------------------

@pytest.mark.parametrize("start, months, expected", [
    ("2027-01-31T10:20", 1, "2027-02-28T10:20"),
    ("2028-01-31T10:20", 1, "2028-02-29T10:20"),
    ("2027-03-31T00:00", 1, "2027-04-30T00:00"),
    ("2027-03-31T00:00", -1, "2027-02-28T00:00"),
    ("2027-08-31T00:00", 6, "2028-02-29T00:00"),
    ("2027-12-15T23:59:59", 1, "2028-01-15T23:59:59"),
    ("2027-01-01T00:00", 12, "2028-01-01T00:00"),
    ("2027-11-30T00:00", 25, "2029-12-30T00:00"),
    ("2027-01-31T00:00", 0, "2027-01-31T00:00"),
    ("2027-01-01T00:00", -13, "2025-12-01T00:00"),
    ("2027-05-31T00:00", 1200, "2127-05-31T00:00"),
])
def test_add_months(start, months, expected):
    assert s.add_months(T(start), months) == T(expected)
    assert s.add_units("monthly", T(start), months) == T(expected)


@pytest.mark.parametrize("start, years, expected", [
    ("2028-02-29T06:00", 1, "2029-02-28T06:00"),
    ("2028-02-29T06:00", 4, "2032-02-29T06:00"),
    ("2096-02-29T00:00", 4, "2100-02-28T00:00"),  # 2100 is not a leap year
    ("2096-02-29T00:00", 104, "2200-02-28T00:00"),
    ("2000-02-29T00:00", 400, "2400-02-29T00:00"),
    ("2027-03-01T00:00", 3, "2030-03-01T00:00"),
])
def test_add_years(start, years, expected):
    assert s.add_years(T(start), years) == T(expected)
    assert s.add_units("yearly", T(start), years) == T(expected)


def test_add_months_keeps_the_offset():
    plus2 = timezone(timedelta(hours=2))
    moved = s.add_months(datetime(2027, 1, 31, 1, 0, tzinfo=plus2), 1)
    assert moved == datetime(2027, 2, 28, 1, 0, tzinfo=plus2) and moved.tzinfo is plus2


def test_add_units_fixed_length_tiers():
    start = T("2027-03-13T12:00")
    assert s.add_units("hourly", start, 24) == T("2027-03-14T12:00")
    assert s.add_units("daily", start, 14) == T("2027-03-27T12:00")
    assert s.add_units("weekly", start, 4) == T("2027-04-10T12:00")
    with pytest.raises(ValueError, match="unknown tier"):
        s.add_units("fortnightly", start, 1)


# -- unit numbering --------------------------------------------------------------------------------

@pytest.mark.parametrize("tier, when, index", [
    ("hourly", "1970-01-01T00:00", 0),
    ("hourly", "1970-01-01T00:59:59.999999", 0),
    ("hourly", "1970-01-01T01:00", 1),
    ("hourly", "1969-12-31T23:59:59", -1),
    ("hourly", "2027-01-01T00:00", 499656),
    ("daily", "1970-01-01T23:59", 0),
    ("daily", "1969-12-31T00:00", -1),
    ("daily", "2027-01-01T00:00", 20819),
    ("weekly", "1970-01-05T00:00", 0),
    ("weekly", "1970-01-04T23:59", -1),
    ("weekly", "1970-01-01T00:00", -1),
    ("weekly", "2020-12-28T00:00", 2660),
    ("weekly", "2021-01-03T23:59", 2660),
    ("weekly", "2021-01-04T00:00", 2661),
    ("weekly", "2026-12-28T00:00", 2973),
    ("weekly", "2027-01-03T23:59:59", 2973),
    ("weekly", "2027-01-04T00:00", 2974),
    ("monthly", "2027-01-31T23:59", 2027 * 12),
    ("monthly", "2026-12-01T00:00", 2027 * 12 - 1),
    ("yearly", "2028-02-29T12:00", 2028),
])
def test_unit_index(tier, when, index):
    assert s.unit_index(tier, T(when)) == index
    assert s.unit_start(tier, index) <= T(when) < s.unit_start(tier, index + 1)


def test_unit_start_round_trip():
    rng = random.Random(7)
    for _ in range(500):
        t = random_time(rng)
        for tier in s.TIERS:
            index = s.unit_index(tier, t)
            assert s.unit_start(tier, index) <= t < s.unit_start(tier, index + 1)
            assert s.unit_index(tier, s.unit_start(tier, index)) == index


# -- slot starts -----------------------------------------------------------------------------------

@pytest.mark.parametrize("tier, n, when, expected", [
    ("hourly", 1, "2027-01-01T00:30", "2027-01-01T00:00"),
    ("hourly", 1, "2027-01-01T00:00", "2027-01-01T00:00"),
    ("hourly", 1, "2026-12-31T23:59:59.999999", "2026-12-31T23:00"),
    ("hourly", 6, "2027-03-14T17:59:59", "2027-03-14T12:00"),
    ("hourly", 24, "2027-03-14T17:00", "2027-03-14T00:00"),
    # hourly 5 runs evenly across midnight: 2027-01-01T00:00 is hour 499656 = 5 * 99931 + 1
    ("hourly", 5, "2027-01-01T00:30", "2026-12-31T23:00"),
    ("hourly", 5, "2027-01-01T03:59", "2026-12-31T23:00"),
    ("hourly", 5, "2027-01-01T04:00", "2027-01-01T04:00"),
    ("daily", 1, "2028-02-29T23:59", "2028-02-29T00:00"),
    # daily 3 across New Year: 2027-01-01 is day 20819 = 3 * 6939 + 2
    ("daily", 3, "2027-01-01T12:00", "2026-12-30T00:00"),
    ("daily", 3, "2027-01-02T00:00", "2027-01-02T00:00"),
    ("daily", 7, "2027-01-01T12:00", "2026-12-31T00:00"),  # day 20818 = 7 * 2974: a Thursday
    # ISO week 53 (2026-12-28 .. 2027-01-03) is one ordinary week
    ("weekly", 1, "2026-12-28T00:00", "2026-12-28T00:00"),
    ("weekly", 1, "2027-01-01T00:00", "2026-12-28T00:00"),
    ("weekly", 1, "2027-01-03T23:59:59", "2026-12-28T00:00"),
    ("weekly", 1, "2027-01-04T00:00", "2027-01-04T00:00"),
    ("weekly", 1, "2020-12-31T08:00", "2020-12-28T00:00"),
    ("weekly", 1, "2021-01-03T23:00", "2020-12-28T00:00"),
    ("weekly", 2, "2027-01-01T00:00", "2026-12-21T00:00"),  # week 2973 is odd
    ("weekly", 2, "2027-01-04T00:00", "2027-01-04T00:00"),  # week 2974
    ("weekly", 2, "2021-01-10T23:59", "2020-12-28T00:00"),  # week 2660 = 2020-W53
    ("weekly", 2, "2021-01-11T00:00", "2021-01-11T00:00"),
    ("weekly", 1, "1970-01-01T00:00", "1969-12-29T00:00"),
    ("monthly", 1, "2028-02-29T23:59", "2028-02-01T00:00"),
    ("monthly", 1, "2027-12-31T23:59:59", "2027-12-01T00:00"),
    ("monthly", 3, "2027-05-20T00:00", "2027-04-01T00:00"),
    ("monthly", 6, "2027-12-31T00:00", "2027-07-01T00:00"),
    ("monthly", 12, "2027-11-30T00:00", "2027-01-01T00:00"),
    # monthly 5 across New Year: 2026-09 (index 24320) then 2027-02 (24325)
    ("monthly", 5, "2026-11-15T00:00", "2026-09-01T00:00"),
    ("monthly", 5, "2027-01-31T23:59", "2026-09-01T00:00"),
    ("monthly", 5, "2027-02-01T00:00", "2027-02-01T00:00"),
    ("monthly", 7, "2027-01-31T23:59:59", "2026-07-01T00:00"),
    ("monthly", 7, "2027-02-01T00:00", "2027-02-01T00:00"),
    ("yearly", 1, "2028-02-29T12:00", "2028-01-01T00:00"),
    ("yearly", 1, "2026-12-31T23:59:59.999999", "2026-01-01T00:00"),
])
def test_slot_start(tier, n, when, expected):
    assert s.slot_start(tier, n, T(when)) == T(expected)
    assert b_slot(tier, n, T(when)) == T(expected)


@pytest.mark.parametrize("tier, n, when, expected", [
    ("hourly", 5, "2027-01-01T00:00", "2027-01-01T04:00"),
    ("daily", 3, "2026-12-30T00:00", "2027-01-02T00:00"),
    ("weekly", 1, "2027-01-01T00:00", "2027-01-04T00:00"),
    ("weekly", 2, "2020-12-28T00:00", "2021-01-11T00:00"),
    ("monthly", 1, "2028-01-31T00:00", "2028-02-01T00:00"),
    ("monthly", 5, "2026-09-01T00:00", "2027-02-01T00:00"),
    ("yearly", 1, "2028-02-29T00:00", "2029-01-01T00:00"),
])
def test_next_slot_start(tier, n, when, expected):
    assert s.next_slot_start(tier, n, T(when)) == T(expected)


def test_slot_start_checks_the_interval():
    refused("out of range", s.slot_start, "daily", 0, T("2027-01-01T00:00"))
    refused("always 1", s.slot_start, "yearly", 2, T("2027-01-01T00:00"))


def test_slot_start_matches_brute_force():
    rng = random.Random(11)
    for _ in range(1500):
        t = random_time(rng)
        tier = rng.choice(s.TIERS)
        n = 1 if tier == "yearly" else rng.choice((1, 2, 3, 4, 5, 7, 12, 13, 24, 53, 100))
        expected = b_slot(tier, n, t)
        assert s.slot_start(tier, n, t) == expected, (tier, n, t)
        assert s.next_slot_start(tier, n, t) == b_next(tier, n, t), (tier, n, t)


# -- expiry ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("tier, n, keep, slot, expected", [
    ("hourly", 1, 24, "2027-01-01T05:00", "2027-01-02T05:00"),
    ("hourly", 5, 3, "2026-12-31T23:00", "2027-01-01T14:00"),
    ("daily", 1, 14, "2027-12-25T00:00", "2028-01-08T00:00"),
    ("daily", 3, 10, "2026-12-30T00:00", "2027-01-29T00:00"),
    ("weekly", 1, 4, "2026-12-28T00:00", "2027-01-25T00:00"),
    ("weekly", 2, 4, "2020-12-28T00:00", "2021-02-22T00:00"),
    ("monthly", 1, 12, "2027-01-01T00:00", "2028-01-01T00:00"),
    ("monthly", 1, 1, "2028-02-01T00:00", "2028-03-01T00:00"),
    ("monthly", 5, 3, "2026-09-01T00:00", "2027-12-01T00:00"),
    ("yearly", 1, 3, "2028-01-01T00:00", "2031-01-01T00:00"),
])
def test_tier_expiry(tier, n, keep, slot, expected):
    assert s.tier_expiry(tier, n, keep, T(slot)) == T(expected)


def test_run_expiry_is_the_latest_of_the_due_tiers():
    plan = s.plan_run(DEFAULTS, T("2027-01-01T00:30"))
    assert plan.expiries == {
        "hourly": T("2027-01-02T00:00"), "daily": T("2027-01-15T00:00"), "weekly": T("2027-01-25T00:00"),
        "monthly": T("2028-01-01T00:00"), "yearly": T("2030-01-01T00:00"),
    }
    assert plan.expiry == T("2030-01-01T00:00")
    # a Monday midnight that is not the 1st: hourly, daily and weekly; weekly lives longest
    taken = record({}, plan)
    plan = s.plan_run(DEFAULTS, T("2027-01-04T00:10"), taken)
    assert plan.due == ("hourly", "daily", "weekly")
    assert plan.expiry == T("2027-02-01T00:00")
    taken = record(taken, plan)
    plan = s.plan_run(DEFAULTS, T("2027-01-04T01:10"), taken)
    assert plan.due == ("hourly",) and plan.expiry == T("2027-01-05T01:00")


def test_expiry_by_calendar_months_not_30_days():
    conf = settings(retentions=(0, 0, 0, 1, 0))
    assert s.plan_run(conf, T("2027-02-10T00:00")).expiry == T("2027-03-01T00:00")  # 28 days
    assert s.plan_run(conf, T("2028-02-10T00:00")).expiry == T("2028-03-01T00:00")  # 29 days
    assert s.plan_run(conf, T("2027-01-31T23:00")).expiry == T("2027-02-01T00:00")  # 31 days
    yearly = settings(retentions=(0, 0, 0, 0, 1))
    assert s.plan_run(yearly, T("2028-12-31T00:00")).expiry == T("2029-01-01T00:00")  # 366 days


def test_weekly_can_outlive_monthly():
    conf = settings((1, 1, 1, 1), (0, 0, 9, 2, 0))
    plan = s.plan_run(conf, T("2027-02-01T00:00"))  # a Monday and the 1st
    assert plan.expiries == {"weekly": T("2027-04-05T00:00"), "monthly": T("2027-04-01T00:00")}
    assert plan.expiry == T("2027-04-05T00:00")


# -- due-ness, idempotency and the slot key --------------------------------------------------------

def test_first_run_serves_every_enabled_tier():
    plan = s.plan_run(DEFAULTS, T("2027-06-15T10:20"))
    assert plan.takes and not plan.manual and not plan.clock_behind
    assert plan.due == s.TIERS
    assert plan.slots == {
        "hourly": T("2027-06-15T10:00"), "daily": T("2027-06-15T00:00"), "weekly": T("2027-06-14T00:00"),
        "monthly": T("2027-06-01T00:00"), "yearly": T("2027-01-01T00:00"),
    }
    assert plan.slot == T("2027-06-15T10:00")
    assert plan.skipped == dict.fromkeys(s.TIERS)
    assert s.tiers_due(DEFAULTS, T("2027-06-15T10:20")) == s.TIERS
    assert s.tiers_due(DEFAULTS, T("2027-06-15T10:20"), {}) == s.TIERS


def test_second_run_in_the_same_slot_takes_nothing():
    now = T("2027-06-15T10:20")
    taken = record({}, s.plan_run(DEFAULTS, now))
    for later in (now, T("2027-06-15T10:00"), T("2027-06-15T10:59:59.999999")):
        plan = s.plan_run(DEFAULTS, later, taken)
        assert not plan.takes and plan.due == () and plan.slot is None and plan.expiry is None
        assert plan.slots == plan.expiries == plan.skipped == {}
        assert s.tiers_due(DEFAULTS, later, taken) == ()
    plan = s.plan_run(DEFAULTS, T("2027-06-15T11:00"), taken)
    assert plan.due == ("hourly",) and plan.slot == T("2027-06-15T11:00") and plan.skipped == {"hourly": 0}


def test_recording_the_key_instead_of_the_tier_slots_is_equivalent():
    now = T("2027-06-15T10:20")
    plan = s.plan_run(DEFAULTS, now)
    by_key = {tier: plan.slot for tier in plan.due}
    by_run_time = {tier: plan.now for tier in plan.due}
    for later in (now, T("2027-06-15T11:00"), T("2027-06-16T00:00"), T("2027-06-21T00:00"), T("2027-07-01T00:00")):
        expected = s.plan_run(DEFAULTS, later, plan.slots)
        assert s.plan_run(DEFAULTS, later, by_key).slots == expected.slots
        assert s.plan_run(DEFAULTS, later, by_run_time).slots == expected.slots


def test_key_is_the_newest_due_slot_not_the_hour():
    """Hourly disabled: runs racing at 00:59:59 and 01:00:01 share their key, so a unique
    constraint on (schedule, slot) lets only one of them record."""
    conf = settings(retentions=(0, 14, 4, 12, 3))
    taken = {"daily": T("2027-06-14T00:00"), "weekly": T("2027-06-14T00:00"),
             "monthly": T("2027-06-01T00:00"), "yearly": T("2027-01-01T00:00")}
    first = s.plan_run(conf, T("2027-06-15T00:59:59"), taken)
    second = s.plan_run(conf, T("2027-06-15T01:00:01"), taken)
    assert first.slot == second.slot == T("2027-06-15T00:00")
    assert first.slots == second.slots == {"daily": T("2027-06-15T00:00")}


def test_catch_up_key_is_the_newest_slot():
    plan = s.plan_run(DEFAULTS, T("2027-06-15T10:20"), {"hourly": T("2027-06-15T10:00")})
    assert plan.due == ("daily", "weekly", "monthly", "yearly")
    assert plan.slot == T("2027-06-15T00:00")
    plan = s.plan_run(DEFAULTS, T("2027-06-15T10:20"), {"daily": T("2027-06-14T00:00")})
    assert plan.slot == T("2027-06-15T10:00")


def test_sequential_keys_strictly_increase_and_racing_equal_keys_are_duplicates():
    rng = random.Random(5)
    for _ in range(150):
        conf = random_settings(rng)
        now = random_time(rng, T("2026-01-01T00:00"), T("2030-01-01T00:00")).astimezone(UTC)
        taken, previous = {}, None
        for _ in range(40):
            now += timedelta(minutes=rng.choice((1, 30, 60, 61, 600, 1440, 1440 * 9, 1440 * 40)))
            plan = s.plan_run(conf, now, taken)
            racer_time = now + timedelta(minutes=rng.choice((0, 1, 59, 60, 61, 1440)))
            racer = s.plan_run(conf, racer_time, taken)  # read the same records before we wrote
            if plan.takes and racer.takes and racer.slot == plan.slot:
                assert racer.slots == plan.slots
            if racer.takes and plan.takes and racer.slot > plan.slot:
                assert set(racer.slots.values()) - set(plan.slots.values())
                assert any(slot > plan.now for slot in racer.slots.values())
            if plan.takes:
                if previous is not None:
                    assert plan.slot > previous
                previous = plan.slot
                taken = record(taken, plan)
                assert not s.plan_run(conf, now, taken).takes


# -- catch-up --------------------------------------------------------------------------------------

def test_catch_up_after_days_takes_one_snapshot():
    taken = record({}, s.plan_run(DEFAULTS, T("2027-01-01T00:00")))
    plan = s.plan_run(DEFAULTS, T("2027-01-05T13:20"), taken)
    assert plan.due == ("hourly", "daily", "weekly")
    assert plan.slots == {"hourly": T("2027-01-05T13:00"), "daily": T("2027-01-05T00:00"),
                          "weekly": T("2027-01-04T00:00")}
    assert plan.slot == T("2027-01-05T13:00")
    assert plan.skipped == {"hourly": 4 * 24 + 12, "daily": 3, "weekly": 0}
    assert plan.expiry == T("2027-02-01T00:00")  # weekly: 2027-01-04 + 4 weeks
    assert not s.plan_run(DEFAULTS, T("2027-01-05T13:59"), record(taken, plan)).takes


def test_catch_up_after_weeks():
    taken = record({}, s.plan_run(DEFAULTS, T("2027-03-03T12:00")))  # a Wednesday
    plan = s.plan_run(DEFAULTS, T("2027-04-22T07:45"), taken)  # seven weeks later, Thursday
    assert plan.due == ("hourly", "daily", "weekly", "monthly")
    assert plan.slots["weekly"] == T("2027-04-19T00:00")
    assert plan.slots["monthly"] == T("2027-04-01T00:00")
    assert plan.skipped["weekly"] == 6  # Mar 8, 15, 22, 29, Apr 5, 12
    assert plan.skipped["monthly"] == 0
    assert plan.skipped["daily"] == 49
    assert plan.expiry == T("2028-04-01T00:00")


def test_catch_up_after_months_and_across_new_year():
    taken = record({}, s.plan_run(DEFAULTS, T("2026-10-31T23:30")))
    plan = s.plan_run(DEFAULTS, T("2027-03-15T00:10"), taken)
    assert plan.due == s.TIERS
    assert plan.slots["monthly"] == T("2027-03-01T00:00") and plan.skipped["monthly"] == 4  # Nov Dec Jan Feb
    assert plan.slots["yearly"] == T("2027-01-01T00:00") and plan.skipped["yearly"] == 0
    assert plan.expiry == T("2030-01-01T00:00")
    taken = record(taken, plan)
    assert s.tiers_due(DEFAULTS, T("2027-03-15T01:00"), taken) == ("hourly",)
    assert s.tiers_due(DEFAULTS, T("2027-03-16T00:00"), taken) == ("hourly", "daily")


def test_catch_up_with_intervals_over_a_year_boundary():
    conf = settings((5, 3, 2, 5), (10, 10, 10, 10, 0))
    taken = record({}, s.plan_run(conf, T("2026-12-20T12:00")))
    # hour 499380 = 5 * 99876; day 20807 = 3 * 6935 + 2; week of Dec 14 = 2971 (odd); 2026-09 = 24320
    assert taken == {"hourly": T("2026-12-20T12:00"), "daily": T("2026-12-18T00:00"),
                     "weekly": T("2026-12-07T00:00"), "monthly": T("2026-09-01T00:00")}
    plan = s.plan_run(conf, T("2027-02-03T02:40"), taken)
    # hour 500450 = 5 * 100090; day 20852 = 3 * 6950 + 2; week of Feb 1 = 2978 (even); 2027-02 = 24325
    assert plan.slots == {"hourly": T("2027-02-03T02:00"), "daily": T("2027-02-01T00:00"),
                          "weekly": T("2027-02-01T00:00"), "monthly": T("2027-02-01T00:00")}
    assert plan.slot == T("2027-02-03T02:00")
    assert plan.skipped == {"hourly": (500450 - 499385) // 5, "daily": 14, "weekly": 3, "monthly": 0}
    assert plan.expiries["weekly"] == T("2027-06-21T00:00")  # 20 weeks
    assert plan.expiries["monthly"] == T("2031-04-01T00:00")  # 50 months
    assert plan.expiry == T("2031-04-01T00:00")


# -- retention 0 -----------------------------------------------------------------------------------

def test_retention_zero_disables_a_tier():
    conf = settings(retentions=(0, 14, 4, 12, 3))
    taken = record({}, s.plan_run(conf, T("2027-06-15T00:05")))
    assert "hourly" not in taken
    for hour in range(1, 24):
        assert not s.plan_run(conf, T("2027-06-15T00:05") + hour * HOUR, taken).takes
    assert s.tiers_due(conf, T("2027-06-16T00:05"), taken) == ("daily",)
    assert s.next_due(conf, T("2027-06-15T00:05"), taken) == T("2027-06-16T00:00")


def test_only_monthly():
    conf = settings(retentions=(0, 0, 0, 1, 0))
    assert s.ScheduleSettings((1, 1, 1, 1), (0, 0, 0, 1, 0)).enabled == ("monthly",)
    taken = record({}, s.plan_run(conf, T("2028-02-29T12:00")))
    assert taken == {"monthly": T("2028-02-01T00:00")}
    assert s.next_due(conf, T("2028-02-29T12:00"), taken) == T("2028-03-01T00:00")
    assert not s.plan_run(conf, T("2028-02-29T23:59:59"), taken).takes
    assert s.plan_run(conf, T("2028-03-01T00:00"), taken).due == ("monthly",)


def test_taken_of_a_disabled_tier_is_ignored():
    conf = settings(retentions=(24, 0, 0, 0, 0))
    plan = s.plan_run(conf, T("2027-06-15T10:20"), {"daily": T("2027-06-15T00:00"), "yearly": None})
    assert plan.due == ("hourly",)


# -- clock moved backwards -------------------------------------------------------------------------

def test_clock_moved_back_within_a_day_takes_nothing():
    taken = record({}, s.plan_run(DEFAULTS, T("2027-01-01T10:10")))
    plan = s.plan_run(DEFAULTS, T("2027-01-01T08:30"), taken)
    assert not plan.takes and plan.clock_behind and plan.slot is None and plan.expiry is None
    assert s.next_due(DEFAULTS, T("2027-01-01T08:30"), taken) == T("2027-01-01T11:00")
    assert not s.plan_run(DEFAULTS, T("2027-01-01T10:59"), taken).takes
    plan = s.plan_run(DEFAULTS, T("2027-01-01T11:00"), taken)
    assert plan.due == ("hourly",) and not plan.clock_behind


def test_clock_moved_back_across_midnight_and_new_year():
    taken = record({}, s.plan_run(DEFAULTS, T("2027-01-01T00:20")))
    plan = s.plan_run(DEFAULTS, T("2026-12-31T23:50"), taken)
    assert not plan.takes and plan.clock_behind
    assert s.next_due(DEFAULTS, T("2026-12-31T23:50"), taken) == T("2027-01-01T01:00")


def test_clock_reset_to_the_epoch():
    taken = record({}, s.plan_run(DEFAULTS, T("2027-01-01T00:20")))
    plan = s.plan_run(DEFAULTS, T("1970-01-01T00:00"), taken)
    assert not plan.takes and plan.clock_behind
    manual = s.plan_manual_run(DEFAULTS, T("1970-01-01T00:00"), taken)
    assert manual.takes and manual.clock_behind and manual.expiry == T("1973-01-01T00:00")


def test_clock_behind_only_when_a_taken_slot_is_later_than_now():
    now = T("2027-01-01T10:10")
    taken = record({}, s.plan_run(DEFAULTS, now))
    assert not s.plan_run(DEFAULTS, T("2027-01-01T10:00"), taken).clock_behind
    assert s.plan_run(DEFAULTS, T("2027-01-01T09:59:59.999999"), taken).clock_behind
    assert not s.plan_run(DEFAULTS, now, {}).clock_behind


def test_clock_behind_for_one_tier_still_serves_the_others():
    taken = {"hourly": T("2027-01-01T12:00"), "daily": T("2026-12-31T00:00")}
    plan = s.plan_run(DEFAULTS, T("2027-01-01T09:30"), taken)
    assert plan.clock_behind
    assert plan.due == ("daily", "weekly", "monthly", "yearly")


# -- interval edits --------------------------------------------------------------------------------

def test_interval_edit_never_takes_a_slot_twice():
    # served daily at day 20823 (2027-01-05, odd) with interval 1; now interval 2 (even days)
    taken = {"daily": T("2027-01-05T00:00")}
    conf = settings((1, 2, 1, 1), (0, 7, 0, 0, 0))
    assert s.slot_start("daily", 2, T("2027-01-05T12:00")) == T("2027-01-04T00:00")
    assert not s.plan_run(conf, T("2027-01-05T12:00"), taken).takes
    assert s.next_due(conf, T("2027-01-05T12:00"), taken) == T("2027-01-06T00:00")
    assert s.plan_run(conf, T("2027-01-06T00:00"), taken).skipped == {"daily": 0}


def test_off_grid_taken_counts_skipped_slots_from_the_next_grid_slot():
    conf = settings((6, 1, 1, 1), (4, 0, 0, 0, 0))
    plan = s.plan_run(conf, T("2027-01-02T13:00"), {"hourly": T("2027-01-01T07:30")})
    assert plan.slots == {"hourly": T("2027-01-02T12:00")}
    assert plan.skipped == {"hourly": 4}  # 12:00, 18:00, 00:00, 06:00


# -- next due --------------------------------------------------------------------------------------

def test_next_due_defaults():
    now = T("2027-06-15T10:20")
    assert s.next_due(DEFAULTS, now) == T("2027-01-01T00:00")  # the yearly slot was never served
    taken = record({}, s.plan_run(DEFAULTS, now))
    assert s.next_due(DEFAULTS, now, taken) == T("2027-06-15T11:00")
    # runs missed since 11:00: overdue since then (a run now takes the 13:00 slot)
    assert s.next_due(DEFAULTS, T("2027-06-15T13:20"), taken) == T("2027-06-15T11:00")
    assert s.plan_run(DEFAULTS, T("2027-06-15T13:20"), taken).slot == T("2027-06-15T13:00")
    taken = record(taken, s.plan_run(DEFAULTS, T("2027-06-16T00:05"), taken))
    assert s.next_due(DEFAULTS, T("2027-06-16T00:05"), taken) == T("2027-06-16T01:00")


@pytest.mark.parametrize("intervals, retentions, now, expected", [
    ((5, 1, 1, 1), (1, 0, 0, 0, 0), "2026-12-31T23:10", "2027-01-01T04:00"),
    ((1, 3, 1, 1), (0, 1, 0, 0, 0), "2026-12-30T05:00", "2027-01-02T00:00"),
    ((1, 1, 1, 1), (0, 0, 1, 0, 0), "2026-12-28T05:00", "2027-01-04T00:00"),
    ((1, 1, 2, 1), (0, 0, 1, 0, 0), "2020-12-30T05:00", "2021-01-11T00:00"),
    ((1, 1, 1, 1), (0, 0, 0, 1, 0), "2028-01-31T23:59", "2028-02-01T00:00"),
    ((1, 1, 1, 7), (0, 0, 0, 1, 0), "2027-02-01T00:00", "2027-09-01T00:00"),
    ((1, 1, 1, 1), (0, 0, 0, 0, 1), "2027-12-31T23:59:59", "2028-01-01T00:00"),
])
def test_next_due_after_a_run(intervals, retentions, now, expected):
    conf = settings(intervals, retentions)
    taken = record({}, s.plan_run(conf, T(now)))
    assert s.next_due(conf, T(now), taken) == T(expected)
    assert s.plan_run(conf, T(expected), taken).takes
    assert not s.plan_run(conf, T(expected) - timedelta(microseconds=1), taken).takes


# -- manual runs -----------------------------------------------------------------------------------

def test_manual_expiry_is_the_longest_retention_from_now():
    assert s.manual_expiry(DEFAULTS, T("2027-06-15T10:20:30.123456")) == T("2030-06-15T10:20:30")
    assert s.manual_expiry(DEFAULTS, T("2028-02-29T10:00")) == T("2031-02-28T10:00")
    hourly = settings(retentions=(24, 0, 0, 0, 0))
    assert s.manual_expiry(hourly, T("2027-06-15T10:20")) == T("2027-06-16T10:20")
    hourly5 = settings((5, 1, 1, 1), (3, 0, 0, 0, 0))
    assert s.manual_expiry(hourly5, T("2027-06-15T10:20")) == T("2027-06-16T01:20")
    monthly = settings(retentions=(0, 0, 0, 1, 0))
    assert s.manual_expiry(monthly, T("2027-01-31T12:00")) == T("2027-02-28T12:00")
    assert s.manual_expiry(monthly, T("2028-01-31T12:00")) == T("2028-02-29T12:00")
    both = settings((1, 1, 1, 1), (0, 0, 9, 2, 0))  # 9 weeks (63 days) beats Jan 31 + 2 months (59)
    assert s.manual_expiry(both, T("2027-01-31T00:00")) == T("2027-04-04T00:00")
    assert s.manual_expiry(both, T("2027-03-31T00:00")) == T("2027-06-02T00:00")  # 63 days vs 61
    plus9 = timezone(timedelta(hours=9))
    assert s.manual_expiry(hourly, datetime(2027, 1, 1, 8, 0, tzinfo=plus9)) == T("2027-01-01T23:00")


def test_manual_run_takes_even_when_nothing_is_due_and_serves_no_tier():
    now = T("2027-06-15T10:20")
    taken = record({}, s.plan_run(DEFAULTS, now))
    plan = s.plan_manual_run(DEFAULTS, now, taken)
    assert plan.takes and plan.manual
    assert plan.due == () and plan.slots == {} and plan.slot is None
    assert plan.expiry == s.manual_expiry(DEFAULTS, now) == T("2030-06-15T10:20")
    assert record(taken, plan) == taken
    assert s.plan_manual_run(DEFAULTS, now).expiry == plan.expiry
    assert s.plan_manual_run(DEFAULTS, now).clock_behind is False


def test_manual_expiry_is_never_none_and_later_than_now():
    rng = random.Random(3)
    for _ in range(300):
        conf = random_settings(rng)
        now = random_time(rng)
        expiry = s.manual_expiry(conf, now)
        assert expiry is not None and expiry > now and expiry.tzinfo is UTC and expiry.microsecond == 0
        for tier in conf.enabled:
            spanned = b_add(tier, now.astimezone(UTC).replace(microsecond=0),
                            conf.interval(tier) * conf.retention(tier))
            assert expiry >= spanned


# -- property tests against the brute-force checker ------------------------------------------------

def test_plan_matches_brute_force():
    rng = random.Random(20270101)
    for _ in range(2500):
        conf = random_settings(rng)
        now = random_time(rng)
        taken = random_taken(rng, conf, now)
        plan = s.plan_run(conf, now, taken)
        due, slots, expiries, key, expiry = b_plan(conf, now, taken)
        context = (conf, now, taken)
        assert plan.due == due, context
        assert plan.slots == slots and plan.expiries == expiries, context
        assert plan.slot == key and plan.expiry == expiry, context
        assert plan.takes == bool(due)
        assert plan.clock_behind == any(v > now for v in taken.values())
        if plan.takes:
            assert plan.expiry > plan.now and plan.slot <= plan.now
            assert all(v.tzinfo is UTC for v in (*plan.slots.values(), *plan.expiries.values()))
            assert not s.plan_run(conf, now, record(taken, plan)).takes


def test_next_due_matches_brute_force():
    rng = random.Random(42)
    for _ in range(1500):
        conf = random_settings(rng)
        now = random_time(rng)
        taken = random_taken(rng, conf, now)
        due_at = s.next_due(conf, now, taken)
        assert due_at == b_next_due(conf, now, taken), (conf, now, taken)
        assert s.plan_run(conf, now, taken).takes == (due_at <= now)
        if due_at > now:
            assert s.plan_run(conf, due_at, taken).takes
            assert not s.plan_run(conf, due_at - timedelta(microseconds=1), taken).takes
            for _ in range(3):
                probe = now + (due_at - now) * rng.random()
                assert not s.plan_run(conf, min(probe, due_at - timedelta(microseconds=1)), taken).takes


def test_skipped_matches_brute_force():
    rng = random.Random(99)
    for _ in range(300):
        conf = random_settings(rng)
        now = random_time(rng).astimezone(UTC)
        taken = {t: now - timedelta(hours=rng.uniform(0, 24 * rng.choice((2, 30, 120)))) for t in s.TIERS}
        plan = s.plan_run(conf, now, taken)
        for tier, count in plan.skipped.items():
            n = conf.interval(tier)
            walked, slot = 0, b_next(tier, n, taken[tier])
            while slot < plan.slots[tier]:
                walked, slot = walked + 1, b_next(tier, n, slot)
            assert count == walked, (tier, n, taken[tier], plan.slots[tier])


# -- simulations -----------------------------------------------------------------------------------

def simulate(conf, times, purge=True):
    """Run at each time, record successes, purge groups with expiry <= now; return the live
    groups (key -> RunPlan) and every key taken."""
    taken, live, keys = {}, {}, []
    for now in times:
        plan = s.plan_run(conf, now, taken)
        if plan.takes:
            assert plan.slot not in live and plan.slot not in keys  # the unique (schedule, slot)
            keys.append(plan.slot)
            live[plan.slot] = plan
            taken = record(taken, plan)
        if purge:
            live = {key: group for key, group in live.items() if group.expiry > now}
    return live, keys


def hours(first, last):
    result, t = [], T(first)
    while t <= T(last):
        result.append(t)
        t += HOUR
    return result


def test_two_years_of_hourly_runs_keep_exactly_the_retained_slots():
    times = [t + timedelta(minutes=7) for t in hours("2024-12-31T20:00", "2027-03-10T15:00")]
    live, keys = simulate(DEFAULTS, times)
    assert len(keys) == len(times) and len(set(keys)) == len(keys)  # one group per hour, never two
    expected = set(hours("2027-03-09T16:00", "2027-03-10T15:00"))  # 24 hourly
    expected |= {T(f"2027-02-{d}T00:00") for d in range(25, 29)}  # 14 daily: Feb 25 .. Mar 10
    expected |= {T(f"2027-03-{d:02}T00:00") for d in range(1, 11)}
    expected |= {T("2027-02-15T00:00"), T("2027-02-22T00:00"), T("2027-03-01T00:00"),
                 T("2027-03-08T00:00")}  # 4 Mondays
    expected |= {T(f"2026-{m:02}-01T00:00") for m in range(4, 13)}  # 12 months: Apr 2026 .. Mar 2027
    expected |= {T("2027-01-01T00:00"), T("2027-02-01T00:00"), T("2027-03-01T00:00")}
    expected |= {T("2025-01-01T00:00"), T("2026-01-01T00:00"), T("2027-01-01T00:00")}  # 3 years
    assert set(live) == expected
    # 24 hourly, 13 more daily (Mar 10 is an hourly), 2 more Mondays (Mar 1, 8 are dailies),
    # 11 more months (Mar 1 is a daily), 2 more years (2027-01-01 is a month)
    assert len(expected) == 24 + 13 + 2 + 11 + 2
    march = live[T("2027-03-01T00:00")]
    assert (march.expiry, march.due) == (T("2028-03-01T00:00"), ("hourly", "daily", "weekly", "monthly"))
    assert live[T("2025-01-01T00:00")].expiry == T("2028-01-01T00:00")
    assert (live[T("2027-03-09T16:00")].expiry, live[T("2027-03-09T16:00")].due) == (T("2027-03-10T16:00"), ("hourly",))
    for group in live.values():  # every group kept is still retained by one of its tiers
        assert group.slot == max(group.slots.values())


def test_hourly_runs_with_misses_and_duplicates():
    rng = random.Random(2027)
    times = []
    for t in hours("2026-01-01T00:00", "2027-01-15T00:00"):
        roll = rng.random()
        if roll < 0.08:
            continue  # missed hour
        times.append(t + timedelta(minutes=rng.randrange(60)))
        if roll > 0.92:
            times.append(times[-1] + timedelta(seconds=rng.randrange(1, 60)))  # a duplicated run
    for t in hours("2026-05-01T00:00", "2026-05-12T00:00"):  # a host down for 11 days
        times = [x for x in times if not t <= x < t + HOUR]
    times.sort()
    taken, keys, served = {}, set(), {tier: [] for tier in s.TIERS}
    for now in times:
        plan = s.plan_run(DEFAULTS, now, taken)
        if plan.takes:
            assert plan.slot not in keys
            keys.add(plan.slot)
            for tier, slot in plan.slots.items():
                served[tier].append(slot)
            taken = record(taken, plan)
        for tier in s.TIERS:  # after every run, each tier's current slot is served
            assert taken[tier] == b_slot(tier, 1, now)
    for tier, slots in served.items():
        assert slots == sorted(set(slots)), tier  # no slot served twice, in order
    assert T("2026-05-03T00:00") not in served["daily"]  # nothing invented for the outage
    assert T("2026-05-12T00:00") in served["daily"]  # one catch-up when it came back
    assert len(served["yearly"]) == 2 and len(served["monthly"]) == 13


def test_intervals_over_several_years():
    conf = settings((5, 3, 2, 7), (4, 4, 4, 4, 2))
    times = [t + timedelta(minutes=30) for t in hours("2025-12-25T00:00", "2028-03-05T00:00")]
    live, keys = simulate(conf, times)
    assert len(set(keys)) == len(keys)
    # at 2028-03-05T00:30, each tier's newest `retention` slots (worked out by hand):
    retained = {
        # 2028-03-05T00:00 is hour 509952 = 5 * 101990 + 2
        "hourly": [T("2028-03-04T22:00"), T("2028-03-04T17:00"), T("2028-03-04T12:00"), T("2028-03-04T07:00")],
        # day 21248 = 3 * 7082 + 2
        "daily": [T("2028-03-03T00:00"), T("2028-02-29T00:00"), T("2028-02-26T00:00"), T("2028-02-23T00:00")],
        # the week of 2028-02-28 is week 3034 (even)
        "weekly": [T("2028-02-28T00:00"), T("2028-02-14T00:00"), T("2028-01-31T00:00"), T("2028-01-17T00:00")],
        # 2025-12 is month 24311 = 7 * 3473
        "monthly": [T("2027-09-01T00:00"), T("2027-02-01T00:00"), T("2026-07-01T00:00"), T("2025-12-01T00:00")],
        "yearly": [T("2028-01-01T00:00"), T("2027-01-01T00:00")],
    }
    pairs = {(tier, slot) for tier, slots in retained.items() for slot in slots}
    # a group lives exactly while one of the tier slots it serves is still retained
    every = simulate(conf, times, purge=False)[0]
    expected = {key for key, group in every.items() if pairs & set(group.slots.items())}
    assert set(live) == expected
    kept = {(tier, slot) for group in live.values() for tier, slot in group.slots.items()}
    assert kept >= pairs
    assert ("yearly", T("2025-01-01T00:00")) in kept  # served by the group kept for monthly 2025-12

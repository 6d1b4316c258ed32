"""Pure rules of snapshot groups: descriptions, tags, group state, the settings of a clone."""

from datetime import datetime, timezone

import pytest

from amslib.core.errors import UsageError
from amslib.ebs import snapshot_service as svc

MEMBER = {"member_index": 0, "size_gib": 100, "volume_type": "io2", "iops": 4000, "throughput": None,
          "encrypted": False, "snapshot_id": "snap-0123456789abcdef0"}
GP3 = dict(MEMBER, volume_type="gp3", iops=6000, throughput=250)


@pytest.mark.parametrize("text", ["", "nightly", "x" * 255, "quotes ' \" $(x) ; are fine"])
def test_descriptions_that_are_kept(text):
    assert svc.check_description(text) == text


@pytest.mark.parametrize("text,fragment", [("x" * 256, "255"), ("a\nb", "control"), ("a\x00b", "control")])
def test_descriptions_that_are_refused(text, fragment):
    with pytest.raises(UsageError, match=fragment):
        svc.check_description(text)


@pytest.mark.parametrize("text", ["0", "-1", "x", "1.5", ""])
def test_bad_snapshot_group_ids(text):
    with pytest.raises(UsageError):
        svc.check_snapshot_group_id(text)


def test_snapshot_tags_carry_the_layout_and_expiry():
    group = {"id": 7, "raid_level": 10, "stripe_block_size": 256, "fs_type": "xfs"}
    expires = datetime(2027, 1, 31, 13, 0, tzinfo=timezone.utc)
    tags = svc.snapshot_tags(42, group, 3, expires, {"team": "db"})
    assert tags == {
        "ams:volume-group-id": "7", "ams:raid-level": "10", "ams:member-index": "3", "ams:stripe-kb": "256",
        "ams:filesystem": "xfs", "Name": "ams-sg42-3", "ams:snapshot-group-id": "42",
        "ams:expires": "2027-01-31T13:00:00Z", "team": "db",
    }
    single = svc.snapshot_tags(1, dict(group, raid_level=None, stripe_block_size=None), 0, None, {})
    assert single["ams:raid-level"] == "none" and single["ams:stripe-kb"] == "none" and "ams:expires" not in single
    mirror = svc.snapshot_tags(1, dict(group, raid_level=1), 0, None, {})
    assert mirror["ams:stripe-kb"] == "none"


@pytest.mark.parametrize("states,expected", [
    (["completed", "completed"], "completed"),
    (["pending", "completed"], "pending"),
    (["completed", "error"], "error"),
    (["completed", "missing"], "error"),
    ([], "failed"),
])
def test_group_state_from_member_states(states, expected):
    assert svc._group_state(states) == expected


def test_clone_keeps_the_source_settings_by_default():
    spec = svc._clone_spec(MEMBER, None, None, None)
    assert (spec.volume_type, spec.size_gib, spec.iops) == ("io2", 100, 4000)
    spec = svc._clone_spec(GP3, None, None, None)
    assert (spec.volume_type, spec.iops, spec.throughput) == ("gp3", 6000, 250)


def test_clone_overrides():
    assert svc._clone_spec(GP3, None, 0, None).iops is None  # -p 0 drops provisioned IOPS
    assert svc._clone_spec(GP3, None, 9000, None).iops == 9000
    spec = svc._clone_spec(MEMBER, "gp2", None, None)
    assert (spec.volume_type, spec.iops) == ("gp2", None)  # another type does not inherit IOPS
    assert svc._clone_spec(MEMBER, None, None, 200).size_gib == 200


@pytest.mark.parametrize("volume_type,iops,size,fragment", [
    (None, None, 50, "grow"),  # never shrink
    ("gp2", 3000, None, "iops"),  # no IOPS on gp2
    ("io1", 0, None, "iops"),  # io1 needs IOPS
    ("bogus", None, None, "type"),
])
def test_clone_refusals(volume_type, iops, size, fragment):
    with pytest.raises(UsageError, match="(?i)" + fragment):
        svc._clone_spec(MEMBER, volume_type, iops, size)

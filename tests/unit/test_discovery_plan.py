"""Discovery planning: instances versus stored hosts (pure)."""

import json
from datetime import datetime, timedelta, timezone

import pytest

from amslib.core.errors import ConfigError
from amslib.instance.reconcile import (
    HOSTNAME_SOURCES,
    choose_hostname,
    parse_hostname_rule,
    plan_discovery,
    record_from_instance,
)

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
EARLIER = NOW - timedelta(days=1)
RULE = ("name-tag", "private-dns", "private-ip")


def instance(iid="i-0123456789abcdef0", *, name="web1", zone="us-east-1a", state="running",
             private_dns="ip-10-0-0-1.ec2.internal", public_dns="ec2-1-2-3-4.compute-1.amazonaws.com",
             private_ip="10.0.0.1", public_ip="1.2.3.4", tags=None):
    all_tags = dict(tags or {})
    if name is not None:
        all_tags["Name"] = name
    return {
        "InstanceId": iid,
        "Placement": {"AvailabilityZone": zone},
        "InstanceType": "m5.large",
        "ImageId": "ami-0123abcd",
        "PrivateDnsName": private_dns,
        "PublicDnsName": public_dns,
        "PrivateIpAddress": private_ip,
        "PublicIpAddress": public_ip,
        "VpcId": "vpc-1",
        "SubnetId": "subnet-1",
        "State": {"Code": 16, "Name": state},
        "Tags": [{"Key": k, "Value": val} for k, val in all_tags.items()],
    }


def record(region="us-east-1", **kwargs):
    return record_from_instance(instance(**kwargs), region)


def stored(rec, **overrides):
    """A stored row as the previous discovery pass would have left it."""
    row = dict(rec)
    row.update(hostname=choose_hostname(rec, RULE), hostname_source="discovery", notes=None,
               created_at=EARLIER, updated_at=EARLIER, discovered_at=EARLIER,
               terminated_at=EARLIER if rec["state"] == "terminated" else None)
    row.update(overrides)
    return row


# -- hostname rule ---------------------------------------------------------------------------

def test_parse_rule():
    assert parse_hostname_rule("name-tag, Private-DNS,,private-ip") == ("name-tag", "private-dns", "private-ip")
    assert parse_hostname_rule(["public-ip", "public-ip"]) == ("public-ip",)
    assert parse_hostname_rule(",".join(HOSTNAME_SOURCES)) == HOSTNAME_SOURCES


@pytest.mark.parametrize("rule, message", [("", "empty"), (" , ", "empty"), ("name-tag,dns", "unknown source 'dns'"),
                                           (None, "empty")])
def test_parse_rule_rejects(rule, message):
    with pytest.raises(ConfigError, match=message):
        parse_hostname_rule(rule)


@pytest.mark.parametrize(
    "rule, kwargs, expected",
    [
        (RULE, {}, "web1"),
        (RULE, {"name": None}, "ip-10-0-0-1.ec2.internal"),
        (RULE, {"name": "Web One"}, "ip-10-0-0-1.ec2.internal"),  # not a DNS name: skipped
        (RULE, {"name": "web;rm"}, "ip-10-0-0-1.ec2.internal"),
        (RULE, {"name": "WEB1"}, "web1"),
        (RULE, {"name": None, "private_dns": ""}, "10.0.0.1"),
        (RULE, {"name": None, "private_dns": "", "private_ip": None}, None),
        (("public-dns",), {}, "ec2-1-2-3-4.compute-1.amazonaws.com"),
        (("public-ip", "private-ip"), {"public_ip": None}, "10.0.0.1"),
        (("public-ip",), {}, "1.2.3.4"),
    ],
)
def test_choose_hostname(rule, kwargs, expected):
    assert choose_hostname(record(**kwargs), rule) == expected


def test_record_from_instance():
    rec = record(tags={"env": "prod"})
    assert rec == {
        "instance_id": "i-0123456789abcdef0", "name": "web1", "region": "us-east-1",
        "availability_zone": "us-east-1a", "instance_type": "m5.large", "ami_id": "ami-0123abcd",
        "hostname_internal": "ip-10-0-0-1.ec2.internal", "hostname_external": "ec2-1-2-3-4.compute-1.amazonaws.com",
        "ip_internal": "10.0.0.1", "ip_external": "1.2.3.4", "vpc_id": "vpc-1", "subnet_id": "subnet-1",
        "state": "running", "tags": json.dumps({"Name": "web1", "env": "prod"}, sort_keys=True),
    }
    bare = record_from_instance({"InstanceId": "i-0123abcd", "State": {"Name": "pending"}, "PublicDnsName": ""}, "r")
    assert bare["tags"] is None and bare["name"] is None and bare["hostname_external"] is None
    assert len(record(name="x" * 300)["name"]) == 255


# -- planning --------------------------------------------------------------------------------

def test_new_instances_are_added():
    recs = [record(iid="i-0000000a"), record(iid="i-0000000b", name=None)]
    plan = plan_discovery({}, {"us-east-1": recs, "eu-west-1": []}, NOW, RULE)
    assert [row["instance_id"] for row in plan.writes] == ["i-0000000a", "i-0000000b"]
    first, second = plan.writes
    assert first["hostname"] == "web1" and second["hostname"] == "ip-10-0-0-1.ec2.internal"
    assert first["hostname_source"] == "discovery"
    assert first["created_at"] == first["updated_at"] == first["discovered_at"] == NOW
    assert first["terminated_at"] is None
    assert plan.gone == []
    assert plan.summaries["us-east-1"].as_dict() == {"region": "us-east-1", "seen": 2, "added": 2, "updated": 0,
                                                     "terminated": 0, "unchanged": 0}
    assert plan.summaries["eu-west-1"].seen == 0
    assert plan.regions == ["us-east-1", "eu-west-1"]


def test_unchanged_instances_are_not_written():
    rec = record()
    plan = plan_discovery({rec["instance_id"]: stored(rec)}, {"us-east-1": [rec]}, NOW, RULE)
    assert plan.writes == [] and plan.gone == []
    assert plan.summaries["us-east-1"].unchanged == 1


def test_changed_instance_is_refreshed_and_keeps_notes_and_created_at():
    old = stored(record(), notes="db primary")
    rec = record(private_ip="10.0.0.9", tags={"env": "prod"})
    plan = plan_discovery({old["instance_id"]: old}, {"us-east-1": [rec]}, NOW, RULE)
    (row,) = plan.writes
    assert row["ip_internal"] == "10.0.0.9" and row["notes"] == "db primary"
    assert row["created_at"] == EARLIER and row["updated_at"] == NOW
    assert set(plan.changes[rec["instance_id"]]) == {"ip_internal", "tags"}
    assert plan.summaries["us-east-1"].updated == 1


def test_discovered_hostname_follows_the_rule():
    old = stored(record(name="web1"))
    plan = plan_discovery({old["instance_id"]: old}, {"us-east-1": [record(name="web2")]}, NOW, RULE)
    assert plan.writes[0]["hostname"] == "web2"
    assert plan.changes[old["instance_id"]]["hostname"] == ("web1", "web2")


def test_user_hostname_is_never_replaced():
    old = stored(record(name="web1"), hostname="my-own-name", hostname_source="user")
    plan = plan_discovery({old["instance_id"]: old}, {"us-east-1": [record(name="web2")]}, NOW, RULE)
    (row,) = plan.writes
    assert row["hostname"] == "my-own-name" and row["hostname_source"] == "user"
    assert "hostname" not in plan.changes[old["instance_id"]]


def test_user_hostname_only_difference_is_unchanged():
    old = stored(record(name="web1"), hostname="mine", hostname_source="user")
    plan = plan_discovery({old["instance_id"]: old}, {"us-east-1": [record(name="web1")]}, NOW, RULE)
    assert plan.writes == [] and plan.summaries["us-east-1"].unchanged == 1


def test_hostname_kept_when_no_candidate_is_left():
    old = stored(record(name=None))
    gone_addresses = record(name=None, private_dns="", public_dns="", private_ip=None, public_ip=None, state="stopped")
    plan = plan_discovery({old["instance_id"]: old}, {"us-east-1": [gone_addresses]}, NOW, RULE)
    assert plan.writes[0]["hostname"] == "ip-10-0-0-1.ec2.internal"


def test_terminated_instance_is_marked_once():
    old = stored(record())
    dead = record(state="terminated")
    plan = plan_discovery({old["instance_id"]: old}, {"us-east-1": [dead]}, NOW, RULE)
    (row,) = plan.writes
    assert row["state"] == "terminated" and row["terminated_at"] == NOW
    summary = plan.summaries["us-east-1"]
    assert (summary.terminated, summary.updated) == (1, 0)
    # the next pass: already terminated, nothing to do, the first time stays
    again = plan_discovery({old["instance_id"]: dict(row, terminated_at=NOW)}, {"us-east-1": [dead]},
                           NOW + timedelta(hours=1), RULE)
    assert again.writes == [] and again.summaries["us-east-1"].unchanged == 1


def test_new_terminated_instance_is_added_terminated():
    plan = plan_discovery({}, {"us-east-1": [record(state="terminated")]}, NOW, RULE)
    assert plan.writes[0]["terminated_at"] == NOW
    assert plan.summaries["us-east-1"].added == 1


def test_restarted_instance_clears_terminated_at():
    old = stored(record(), state="missing", terminated_at=EARLIER)
    plan = plan_discovery({old["instance_id"]: old}, {"us-east-1": [record()]}, NOW, RULE)
    assert plan.writes[0]["terminated_at"] is None and plan.writes[0]["state"] == "running"
    assert plan.summaries["us-east-1"].updated == 1


def test_disappeared_instances_are_marked_gone_not_deleted():
    live = record(iid="i-0000000a")
    vanished = stored(record(iid="i-0000000b"))
    was_terminated = stored(record(iid="i-0000000c", state="terminated"))
    already_missing = stored(record(iid="i-0000000d"), state="missing", terminated_at=EARLIER)
    other_region = stored(record(iid="i-0000000e", region="eu-west-1", zone="eu-west-1a"))
    existing = {r["instance_id"]: r for r in (stored(live), vanished, was_terminated, already_missing, other_region)}
    plan = plan_discovery(existing, {"us-east-1": [live]}, NOW, RULE)
    assert plan.gone == ["i-0000000b", "i-0000000c"]
    summary = plan.summaries["us-east-1"]
    assert (summary.terminated, summary.updated, summary.unchanged) == (1, 1, 1)
    assert "eu-west-1" not in plan.summaries


def test_instance_found_in_another_region_moves_instead_of_vanishing():
    # added by hand in the wrong region; discovery finds it elsewhere
    misplaced = stored(record(iid="i-0000000a"), hostname="db1", hostname_source="user")
    rec = record(iid="i-0000000a", region="eu-west-1", zone="eu-west-1b")
    plan = plan_discovery({"i-0000000a": misplaced}, {"us-east-1": [], "eu-west-1": [rec]}, NOW, RULE)
    assert plan.gone == []
    (row,) = plan.writes
    assert (row["region"], row["availability_zone"], row["hostname"]) == ("eu-west-1", "eu-west-1b", "db1")


def test_duplicate_listing_counts_once():
    rec = record()
    plan = plan_discovery({}, {"us-east-1": [rec, rec]}, NOW, RULE)
    assert len(plan.writes) == 1 and plan.summaries["us-east-1"].seen == 1


def test_totals():
    existing = {"i-0000000b": stored(record(iid="i-0000000b"))}
    plan = plan_discovery(existing, {"us-east-1": [record(iid="i-0000000a")], "eu-west-1": [record(iid="i-0000000c", region="eu-west-1")]},
                          NOW, RULE)
    assert plan.totals().as_dict() == {"region": "total", "seen": 2, "added": 2, "updated": 0,
                                       "terminated": 1, "unchanged": 0}

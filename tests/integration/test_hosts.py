"""ams host list/add/edit/discovery through the real CLI, against the rig's EC2 endpoint
(moto's server on 127.0.0.1) and a real database (each test runs on SQLite and MariaDB)."""

import json

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

from amslib.instance import discovery
from tests.dbfixtures import run_ams_process
from tests.rig.ec2 import ACCOUNT_ID

REGIONS = "us-east-1,eu-west-1,ap-southeast-2"


# -- helpers ---------------------------------------------------------------------------------------

@pytest.fixture
def hosts_env(ams_db, ec2_clean):
    """(ams, rig): a database with the schema and a clean EC2 endpoint."""
    return ams_db, ec2_clean


def launch(rig, zone, count=1, name=None, tags=None):
    """Start ``count`` instances in one reservation; return their ids."""
    region = zone[:-1]
    tag_list = [{"Key": k, "Value": v} for k, v in (tags or {}).items()]
    if name is not None:
        tag_list.append({"Key": "Name", "Value": name})
    kwargs = {"TagSpecifications": [{"ResourceType": "instance", "Tags": tag_list}]} if tag_list else {}
    answer = rig.client(region=region, internal=True).run_instances(
        ImageId=rig.image_id(region), MinCount=count, MaxCount=count, InstanceType="t3.small",
        Placement={"AvailabilityZone": zone}, **kwargs)
    return [i["InstanceId"] for i in answer["Instances"]]


def rows(db_url):
    """Every hosts row, ordered, as plain dicts (to compare before/after)."""
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            result = conn.execute(sa.text("SELECT * FROM hosts ORDER BY instance_id")).mappings()
            return [dict(r) for r in result]
    finally:
        engine.dispose()


def by_id(db_url):
    return {r["instance_id"]: r for r in rows(db_url)}


def ok(result):
    assert result.code == 0, str(result)
    return result


def discover(ams, *extra):
    return ok(ams("host", "discovery", "--output", "json", *extra)).json


def summary(doc, region):
    return next(s for s in doc["regions"] if s["region"] == region)


def listing(ams, *args):
    return ok(ams("host", "list", *args, "--output", "json")).json


def hostnames(doc):
    return sorted(h["hostname"] for h in doc)


def assert_one_error(result, code, fragment):
    assert result.code == code, str(result)
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ams: error: "), str(result)
    assert fragment in lines[0], str(result)
    assert result.out == "", str(result)


class RoundTrips:
    """Counts statements sent by every SQLAlchemy engine in this process."""

    def __init__(self):
        self.count = 0

    def __call__(self, *args, **kwargs):
        self.count += 1


@pytest.fixture
def round_trips():
    counter = RoundTrips()
    event.listen(Engine, "before_cursor_execute", counter)
    yield counter
    event.remove(Engine, "before_cursor_execute", counter)


def forget_instance(instance_id, region):
    """Make EC2 forget an instance, as AWS does about an hour after termination."""
    from moto.ec2.models import ec2_backends

    backend = ec2_backends[ACCOUNT_ID][region]
    for reservation_id, reservation in list(backend.reservations.items()):
        reservation.instances = [i for i in reservation.instances if i.id != instance_id]
        if not reservation.instances:
            del backend.reservations[reservation_id]


# -- discovery -------------------------------------------------------------------------------------

def test_discovery_across_regions_and_zones(hosts_env, db_url):
    ams, rig = hosts_env
    web = launch(rig, "us-east-1a", 2, name="web", tags={"env": "prod"})
    api = launch(rig, "us-east-1b", 1, name="api-1")
    unnamed = launch(rig, "eu-west-1c", 1)
    bad_name = launch(rig, "ap-southeast-2a", 1, name="db server; #1")
    launch(rig, "us-west-2a", 1, name="not-scanned")

    doc = discover(ams, "--region", REGIONS)
    assert [s["region"] for s in doc["regions"]] == REGIONS.split(",")
    assert summary(doc, "us-east-1") == {"region": "us-east-1", "seen": 3, "added": 3, "updated": 0,
                                         "terminated": 0, "unchanged": 0}
    assert summary(doc, "eu-west-1")["added"] == summary(doc, "ap-southeast-2")["added"] == 1
    assert doc["total"]["added"] == 5 and doc["dry_run"] is False

    stored = by_id(db_url)
    assert set(stored) == set(web + api + unnamed + bad_name)  # us-west-2 was not scanned
    ec2 = rig.client(region="us-east-1", internal=True)
    inst = ec2.describe_instances(InstanceIds=[web[0]])["Reservations"][0]["Instances"][0]
    row = stored[web[0]]
    assert row["hostname"] == "web" and row["hostname_source"] == "discovery" and row["name"] == "web"
    assert (row["region"], row["availability_zone"], row["instance_type"]) == ("us-east-1", "us-east-1a", "t3.small")
    assert row["ami_id"] == inst["ImageId"] and row["state"] == "running"
    assert row["ip_internal"] == inst["PrivateIpAddress"] and row["ip_external"] == inst["PublicIpAddress"]
    assert row["hostname_internal"] == inst["PrivateDnsName"] and row["hostname_external"] == inst["PublicDnsName"]
    assert row["vpc_id"] == inst["VpcId"] and row["subnet_id"] == inst["SubnetId"]
    assert json.loads(row["tags"]) == {"Name": "web", "env": "prod"}
    assert row["discovered_at"] is not None and row["terminated_at"] is None
    # hostname rule (default name-tag, private-dns, private-ip): invalid or missing Name -> private DNS
    assert stored[unnamed[0]]["hostname"] == stored[unnamed[0]]["hostname_internal"].lower()
    assert stored[bad_name[0]]["hostname"] == stored[bad_name[0]]["hostname_internal"].lower()
    assert stored[bad_name[0]]["name"] == "db server; #1"

    # json listing carries every column, tags as an object
    listed = {h["instance_id"]: h for h in listing(ams)}
    assert listed[web[0]]["tags"] == {"Name": "web", "env": "prod"}
    assert listed[web[0]]["vpc_id"] == inst["VpcId"]

    # the same pass again changes nothing
    again = discover(ams, "--region", REGIONS)
    assert again["total"] == {"region": "total", "seen": 5, "added": 0, "updated": 0, "terminated": 0, "unchanged": 5}


def test_rediscovery_terminates_keeps_user_hostnames_and_marks_vanished(hosts_env, db_url):
    ams, rig = hosts_env
    ids = launch(rig, "us-east-1a", 4, name="app")
    other = launch(rig, "eu-west-1a", 1, name="eu-app")
    discover(ams, "--region", "us-east-1,eu-west-1")

    ok(ams("host", "edit", "-i", ids[0], "-H", "App-Primary.example.com"))
    ec2 = rig.client(region="us-east-1", internal=True)
    ec2.create_tags(Resources=[ids[0], ids[1]], Tags=[{"Key": "Name", "Value": "renamed"}])
    ec2.terminate_instances(InstanceIds=[ids[2], ids[3]])

    doc = discover(ams, "--region", "us-east-1,eu-west-1")
    assert summary(doc, "us-east-1") == {"region": "us-east-1", "seen": 4, "added": 0, "updated": 2,
                                         "terminated": 2, "unchanged": 0}
    assert summary(doc, "eu-west-1")["unchanged"] == 1
    stored = by_id(db_url)
    assert stored[ids[0]]["hostname"] == "app-primary.example.com"  # set by the user: kept
    assert stored[ids[0]]["hostname_source"] == "user" and stored[ids[0]]["name"] == "renamed"
    assert stored[ids[1]]["hostname"] == "renamed"  # chosen by discovery: follows the Name tag
    for dead in ids[2:]:
        assert stored[dead]["state"] == "terminated" and stored[dead]["terminated_at"] is not None
        assert stored[dead]["hostname"] == "app"  # kept although the instance lost its addresses

    # AWS forgets terminated instances after a while: the rows stay, marked missing
    first_terminated = stored[ids[2]]["terminated_at"]
    forget_instance(ids[2], "us-east-1")
    doc = discover(ams, "--region", "us-east-1,eu-west-1")
    assert summary(doc, "us-east-1")["updated"] == 1  # only its state changes: it was terminated already
    stored = by_id(db_url)
    assert stored[ids[2]]["state"] == "missing" and stored[ids[2]]["terminated_at"] == first_terminated
    assert len(stored) == 5

    # a running instance that vanishes counts as terminated; other regions are left alone
    forget_instance(ids[1], "us-east-1")
    forget_instance(other[0], "eu-west-1")
    doc = discover(ams, "--region", "us-east-1")
    assert summary(doc, "us-east-1")["terminated"] == 1 and [s["region"] for s in doc["regions"]] == ["us-east-1"]
    stored = by_id(db_url)
    assert stored[ids[1]]["state"] == "missing" and stored[ids[1]]["terminated_at"] is not None
    assert stored[other[0]]["state"] == "running"
    # a host added by hand whose instance EC2 does not know is marked missing too
    ok(ams("host", "add", "-i", "i-0fffffffffffffff0", "-H", "ghost", "-z", "us-east-1b"))
    discover(ams, "--region", "us-east-1")
    assert by_id(db_url)["i-0fffffffffffffff0"]["state"] == "missing"


def test_paging_over_1000_instances_in_bulk(hosts_env, db_url, round_trips, monkeypatch):
    ams, rig = hosts_env
    for index in range(110):  # moto pages by reservation: 110 reservations of 10 instances
        launch(rig, "us-west-2" + "abc"[index % 3], 10, name=f"node-{index}")
    monkeypatch.setattr(discovery, "PAGE_SIZE", 25)
    rig.reset_counts()
    round_trips.count = 0

    doc = discover(ams, "--region", "us-west-2")
    assert summary(doc, "us-west-2")["added"] == 1100
    assert rig.counts("us-west-2").get("DescribeInstances") == 5  # 110 reservations / 25 per page
    # bulk: a handful of statements for 1100 rows (schema check, one read, upserts, marks)
    assert round_trips.count <= 12, round_trips.count
    assert len(rows(db_url)) == 1100
    assert len(listing(ams, "--zone", "us-west-2b")) == 370

    ec2 = rig.client(region="us-west-2", internal=True)
    victims = [r["instance_id"] for r in rows(db_url)][:100]
    ec2.terminate_instances(InstanceIds=victims)
    round_trips.count = 0
    doc = discover(ams, "--region", "us-west-2")
    assert summary(doc, "us-west-2") == {"region": "us-west-2", "seen": 1100, "added": 0, "updated": 0,
                                         "terminated": 100, "unchanged": 1000}
    assert round_trips.count <= 12, round_trips.count
    terminated = [r for r in rows(db_url) if r["state"] == "terminated"]
    assert sorted(r["instance_id"] for r in terminated) == sorted(victims)


def test_discovery_in_a_process_with_default_paging(hosts_env, db_url):
    ams, rig = hosts_env
    launch(rig, "us-east-1a", 3, name="proc")
    result = run_ams_process("host", "discovery", "--region", "us-east-1", "--output", "json", "-v")
    assert result.code == 0, str(result)
    assert summary(result.json, "us-east-1")["added"] == 3
    # progress on stderr (off a terminal only with -v), json alone on stdout
    assert "us-east-1: 3 instance(s) in 1 page(s)" in result.err
    assert rig.counts("us-east-1").get("DescribeInstances") == 1
    listed = run_ams_process("host", "list", "host", "proc", "--output", "json")
    assert listed.code == 0 and len(listed.json) == 3


def test_region_selection(hosts_env, db_url, monkeypatch):
    ams, rig = hosts_env
    launch(rig, "us-east-1a", 1, name="a")
    launch(rig, "eu-west-1a", 1, name="b")
    launch(rig, "sa-east-1a", 1, name="c")

    monkeypatch.setenv("AMS_AWS_REGIONS", "eu-west-1,sa-east-1")
    rig.reset_counts()
    doc = discover(ams)
    assert [s["region"] for s in doc["regions"]] == ["eu-west-1", "sa-east-1"]
    assert rig.counts().get("DescribeRegions") == 1  # the settings' regions are checked with the account
    assert hostnames(listing(ams)) == ["b", "c"]

    doc = discover(ams, "--region", "us-east-1")  # --region wins over settings
    assert [s["region"] for s in doc["regions"]] == ["us-east-1"]

    monkeypatch.delenv("AMS_AWS_REGIONS")
    rig.reset_counts()
    doc = discover(ams)  # every region enabled for the account
    assert rig.counts().get("DescribeRegions") == 1
    assert {"us-east-1", "eu-west-1", "sa-east-1", "ap-southeast-2"} <= {s["region"] for s in doc["regions"]}
    assert doc["total"]["seen"] == 3


def test_discovery_dry_run_and_table(hosts_env, db_url, monkeypatch):
    ams, rig = hosts_env
    launch(rig, "us-east-1a", 2, name="dry")
    result = ok(ams("host", "discovery", "--region", "us-east-1", "--dry-run"))
    assert "dry run: nothing was written" in result.out
    assert "| us-east-1 | 2         | 2     |" in result.out
    assert rows(db_url) == []
    monkeypatch.setenv("AMS_HOSTNAME_RULE", "public-ip")
    result = ok(ams("host", "discovery", "--region", "us-east-1", "-v"))
    assert "discovering instances in 1 region(s): us-east-1" in result.err
    ips = sorted(r["ip_external"] for r in rows(db_url))
    assert sorted(r["hostname"] for r in rows(db_url)) == ips


# -- add, edit, list -------------------------------------------------------------------------------

def test_add_and_edit(hosts_env, db_url):
    ams, rig = hosts_env
    iid = "i-0123456789abcdef0"
    result = ok(ams("host", "add", "-i", iid, "-H", "db1.example.com", "-z", "us-east-1b", "--dry-run"))
    assert result.out.startswith("would add host i-0123456789abcdef0 (db1.example.com) in us-east-1b")
    assert rows(db_url) == []

    doc = ok(ams("host", "add", "--instance", iid.upper(), "--hostname", "DB1.example.com", "--zone", "us-east-1b",
                 "--hostname-internal", "ip-10-0-0-5.ec2.internal", "--hostname-external", "db1.public.example.com",
                 "--ip-internal", "10.0.0.5", "--ip-external", "203.0.113.5", "--ami-id", "ami-0123abcd",
                 "--instance-type", "r5.xlarge", "--notes", "primary database", "--output", "json")).json
    assert doc["instance_id"] == iid and doc["dry_run"] is False
    (row,) = rows(db_url)
    assert {k: row[k] for k in ("hostname", "hostname_source", "availability_zone", "region", "hostname_internal",
                                "hostname_external", "ip_internal", "ip_external", "ami_id", "instance_type",
                                "notes")} == {
        "hostname": "db1.example.com", "hostname_source": "user", "availability_zone": "us-east-1b",
        "region": "us-east-1", "hostname_internal": "ip-10-0-0-5.ec2.internal",
        "hostname_external": "db1.public.example.com", "ip_internal": "10.0.0.5", "ip_external": "203.0.113.5",
        "ami_id": "ami-0123abcd", "instance_type": "r5.xlarge", "notes": "primary database"}

    # only the given fields change
    doc = ok(ams("host", "edit", "-i", iid, "--notes", "replica now", "--output", "json")).json
    assert doc["changes"] == {"notes": {"old": "primary database", "new": "replica now"}}
    (after,) = rows(db_url)
    assert {k: v for k, v in after.items() if k not in ("notes", "updated_at")} == \
        {k: v for k, v in row.items() if k not in ("notes", "updated_at")}

    result = ok(ams("host", "edit", "-i", iid, "-z", "eu-west-1a", "-H", "10.1.2.3", "--dry-run"))
    assert result.out.startswith("would change host i-0123456789abcdef0:")
    assert rows(db_url)[0]["availability_zone"] == "us-east-1b"
    ok(ams("host", "edit", "-i", iid, "-z", "eu-west-1a", "-H", "10.1.2.3"))
    (after,) = rows(db_url)
    assert (after["availability_zone"], after["region"], after["hostname"]) == ("eu-west-1a", "eu-west-1", "10.1.2.3")

    result = ok(ams("host", "edit", "-i", iid, "--notes", "replica now"))
    assert "nothing changed" in result.out

    # a discovered host edited by hand becomes user-set
    (found,) = launch(rig, "us-east-1a", 1, name="auto")
    discover(ams, "--region", "us-east-1")
    assert by_id(db_url)[found]["hostname_source"] == "discovery"
    ok(ams("host", "edit", "-i", found, "-H", "auto"))  # same name, now pinned
    assert by_id(db_url)[found]["hostname_source"] == "user"


@pytest.fixture
def listed_hosts(hosts_env):
    ams, _ = hosts_env
    for iid, name, zone in [
        ("i-0000000000000000a", "web1.example.com", "us-east-1a"),
        ("i-0000000000000000b", "web2.example.com", "us-east-1b"),
        ("i-0000000000000000c", "db1.example.com", "us-west-2a"),
        ("i-0000000000000000d", "webapp", "eu-west-1a"),
        ("i-0000000000000001d", "x-web", "eu-west-1b"),
        ("i-0123abcd", "10.0.0.7", "ap-southeast-2a"),
    ]:
        ok(ams("host", "add", "-i", iid, "-H", name, "-z", zone))
    return ams


# (host list arguments, hostnames expected); all run against one set of hosts
LIST_CASES = [
        ((), ["10.0.0.7", "db1.example.com", "web1.example.com", "web2.example.com", "webapp", "x-web"]),
        (("--zone", "us"), ["db1.example.com", "web1.example.com", "web2.example.com"]),
        (("--zone", "us-east"), ["web1.example.com", "web2.example.com"]),
        (("--zone", "us-east-1"), ["web1.example.com", "web2.example.com"]),
        (("--zone", "US-EAST-1B"), ["web2.example.com"]),
        (("--zone", "u%"), []),  # % is literal in a prefix
        (("--zone", "us_east"), []),  # so is _
        (("host", "web1.example.com"), ["web1.example.com"]),
        (("host", "WEB1.Example.com"), ["web1.example.com"]),
        (("host", "web1"), []),  # exact means exact
        (("host", "--like", "web*"), ["web1.example.com", "web2.example.com", "webapp"]),
        (("host", "--like", "web%"), ["web1.example.com", "web2.example.com", "webapp"]),
        (("host", "--like", "web"), ["web1.example.com", "web2.example.com", "webapp", "x-web"]),
        (("host", "--like", "*.example.*"), ["db1.example.com", "web1.example.com", "web2.example.com"]),
        (("host", "--like", "web_.example.com"), []),  # _ is not a wildcard
        (("host", "--like", "web?.example.com"), []),
        (("host", "--prefix", "web"), ["web1.example.com", "web2.example.com", "webapp"]),
        (("host", "--prefix", "web%"), []),
        (("host", "--prefix", "10.0"), ["10.0.0.7"]),
        (("host", "--like", "web*", "--zone", "us-east-1b"), ["web2.example.com"]),
        (("--zone", "eu", "host", "--like", "*web*"), ["webapp", "x-web"]),  # --zone before the subcommand
        (("instance_id", "i-0000000000000000c"), ["db1.example.com"]),
        (("instance_id", "I-0000000000000000C"), ["db1.example.com"]),
        (("instance_id", "--prefix", "i-0000000000000000"), ["db1.example.com", "web1.example.com",
                                                              "web2.example.com", "webapp"]),
        (("instance_id", "--like", "*1d"), ["x-web"]),
        (("instance_id", "--like", "i-0123*"), ["10.0.0.7"]),
        (("instance_id", "--like", "*d", "--zone", "eu-west-1a"), ["webapp"]),
]


def test_list_filters(listed_hosts):
    failures = []
    for args, expected in LIST_CASES:
        got = hostnames(listing(listed_hosts, *args))
        if got != expected:
            failures.append(f"host list {' '.join(args)}: expected {expected}, got {got}")
    assert not failures, "\n".join(failures)


def test_list_table(listed_hosts):
    result = ok(listed_hosts("host", "list", "host", "--prefix", "web1"))
    assert "| Instance ID" in result.out and "web1.example.com" in result.out and "webapp" not in result.out
    result = ok(listed_hosts("host", "list", "host", "nothing-like-this"))
    assert result.out.strip() == "no hosts match"
    assert listing(listed_hosts, "host", "nothing-like-this") == []


# -- bad input -------------------------------------------------------------------------------------

EXISTING = "i-0aaaaaaaaaaaaaaa0"

BAD_INPUT = [
    (("host", "edit", "-i", "i-0bbbbbbbbbbbbbbb0", "-H", "web"), 3, "host i-0bbbbbbbbbbbbbbb0 not found"),
    (("host", "edit", "-i", "i-12345", "-H", "web"), 2, "invalid instance id 'i-12345'"),
    (("host", "edit", "-i", EXISTING), 2, "nothing to change"),
    (("host", "edit", "-i", EXISTING, "-z", ""), 2, "the availability zone cannot be cleared"),
    (("host", "edit", "-i", EXISTING, "--notes", "", "-z", " "), 2, "the availability zone cannot be cleared"),
    (("host", "edit", "-i", EXISTING, "-z", "us-east-1q"), 2, "does not exist in us-east-1"),
    (("host", "add", "-i", "vol-0123456789abcdef0", "-H", "web", "-z", "us-east-1a"), 2, "invalid instance id"),
    (("host", "add", "-i", "i-0123456789abcdef", "-H", "web", "-z", "us-east-1a"), 2, "invalid instance id"),
    (("host", "add", "-i", EXISTING, "-H", "web", "-z", "us-east-1a"), 4, "already exists"),
    (("host", "add", "-i", "i-0cccccccccccccccc", "-H", "web", "-z", "us-east-1z"), 2,
     "availability zone 'us-east-1z' does not exist in us-east-1"),
    (("host", "add", "-i", "i-0cccccccccccccccc", "-H", "web", "-z", "xx-nowhere-9a"), 2,
     "availability zone 'xx-nowhere-9a' is in unknown region 'xx-nowhere-9': not a region enabled"),
    (("host", "add", "-i", "i-0cccccccccccccccc", "-H", "web", "-z", "us-east"), 2, "invalid availability zone"),
    (("host", "add", "-i", "i-0cccccccccccccccc", "-H", "", "-z", "us-east-1a"), 2, "hostname must not be empty"),
    (("host", "add", "-i", "i-0cccccccccccccccc", "-H", "web;reboot", "-z", "us-east-1a"), 2, "invalid hostname"),
    (("host", "add", "-i", "i-0cccccccccccccccc", "-H", "web'1", "-z", "us-east-1a"), 2, "invalid hostname"),
    (("host", "add", "-i", "i-0cccccccccccccccc", "-H", 'web"1', "-z", "us-east-1a"), 2, "invalid hostname"),
    (("host", "add", "-i", "i-0cccccccccccccccc", "--hostname=-oProxyCommand=sh", "-z", "us-east-1a"), 2,
     "invalid hostname"),
    (("host", "add", "-i", "i-0cccccccccccccccc", "-H", "web", "-z", "us-east-1a", "--ip-internal", "10.0.0.999"), 2,
     "invalid internal IP address"),
    (("host", "add", "-i", "i-0cccccccccccccccc", "-H", "web", "-z", "us-east-1a", "--ami-id", "ami-1"), 2,
     "invalid AMI id"),
    (("host", "discovery", "--region", "us-east-1,narnia"), 2, "invalid region 'narnia'"),
    (("host", "discovery", "--region", "us-east-9"), 2, "unknown region 'us-east-9'"),
    (("host", "discovery", "--region", "x;y"), 2, "invalid region 'x;y'"),
]


def test_bad_input_changes_nothing(hosts_env, db_url):
    ams, rig = hosts_env
    launch(rig, "us-east-1a", 2, name="present")
    discover(ams, "--region", "us-east-1")
    ok(ams("host", "add", "-i", EXISTING, "-H", "existing", "-z", "us-east-1a"))
    before = rows(db_url)
    for argv, code, fragment in BAD_INPUT:
        assert_one_error(ams(*argv), code, fragment)
        assert rows(db_url) == before, argv
    # the same in a separate process
    result = run_ams_process("host", "edit", "-i", "i-0bbbbbbbbbbbbbbb0", "--notes", "x")
    assert_one_error(result, 3, "not found")
    assert rows(db_url) == before


def test_aws_and_settings_failures_change_nothing(hosts_env, db_url, monkeypatch):
    ams, rig = hosts_env
    launch(rig, "us-east-1a", 2, name="present")
    launch(rig, "eu-west-1a", 1, name="eu")
    discover(ams, "--region", "us-east-1")
    before = rows(db_url)
    monkeypatch.setenv("AMS_AWS_MAX_ATTEMPTS", "1")

    # one region failing aborts the whole pass before anything is written
    rig.client(region="us-east-1", internal=True).terminate_instances(InstanceIds=[before[0]["instance_id"]])
    rig.faults.fail_next("DescribeInstances", code="UnauthorizedOperation", count=5, region="eu-west-1",
                         message="You are not authorized to perform this operation.")
    result = ams("-q", "host", "discovery", "--region", "us-east-1,eu-west-1")
    assert_one_error(result, 7, "DescribeInstances in eu-west-1 failed: UnauthorizedOperation")
    assert rows(db_url) == before

    monkeypatch.setenv("AMS_HOSTNAME_RULE", "name-tag,fqdn")
    assert_one_error(ams("host", "discovery", "--region", "us-east-1"), 9, "unknown source 'fqdn'")
    assert rows(db_url) == before
    monkeypatch.delenv("AMS_HOSTNAME_RULE")
    monkeypatch.setenv("AMS_AWS_REGIONS", "us-east-1,us_east_1")
    assert_one_error(ams("host", "discovery"), 9, "AWS_REGIONS: invalid region 'us_east_1'")
    assert rows(db_url) == before
    monkeypatch.delenv("AMS_AWS_REGIONS")

    # host add needs EC2 to check the zone: unreachable -> one line, nothing written
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    result = ams("host", "add", "-i", "i-0dddddddddddddddd", "-H", "web", "-z", "us-east-1a")
    assert_one_error(result, 7, "DescribeRegions in us-east-1 failed: cannot reach")
    assert_one_error(ams("-q", "host", "discovery", "--region", "us-east-1"), 7, "cannot reach")
    assert rows(db_url) == before


# -- regions: the shape first (no call), then what the account's EC2 reports -----------------------

def test_regions_are_checked_against_the_account(hosts_env, db_url):
    ams, rig = hosts_env
    reported = {r["RegionName"] for r in rig.client(region="us-east-1").describe_regions()["Regions"]}
    assert "sa-east-1" in reported and "us-east-9" not in reported
    launch(rig, "sa-east-1a", 1, name="south")

    rig.reset_counts()
    doc = discover(ams, "--region", "sa-east-1")  # reported by the rig: accepted
    assert [s["region"] for s in doc["regions"]] == ["sa-east-1"] and doc["total"]["added"] == 1
    assert rig.counts().get("DescribeRegions") == 1
    before = rows(db_url)

    # well formed, but not reported: one line naming some known regions, no instance listed
    rig.reset_counts()
    result = ams("host", "discovery", "--region", "sa-east-1,us-east-9")
    assert_one_error(result, 2, "unknown region 'us-east-9': not a region enabled for this AWS account (EC2 lists ")
    assert "sa-east-1" in result.err or "... (" in result.err
    assert "DescribeInstances" not in rig.counts()
    assert_one_error(ams("host", "add", "-i", "i-0cccccccccccccccc", "-H", "web", "-z", "us-east-9a"), 2,
                     "availability zone 'us-east-9a' is in unknown region 'us-east-9'")
    assert "DescribeAvailabilityZones" not in rig.counts()
    assert rows(db_url) == before

    # malformed: refused before any EC2 call, by discovery, add/edit and any command's --region
    rig.reset_counts()
    for argv, fragment in [
        (("host", "discovery", "--region", "x;y"), "invalid region 'x;y'"),
        (("host", "discovery", "--region", "us-east-1,us_east_1"), "invalid region 'us_east_1'"),
        (("host", "add", "-i", "i-0cccccccccccccccc", "-H", "web", "-z", "x;ya"), "invalid availability zone"),
        (("host", "edit", "-i", before[0]["instance_id"], "-z", "us-east-1;a"), "invalid availability zone"),
    ]:
        assert_one_error(ams(*argv), 2, fragment)
    assert rig.counts() == {}
    assert rows(db_url) == before


def test_a_malformed_global_region_makes_no_call(hosts_env, ams_env, monkeypatch):
    """The global --region of the commands that reach EC2 goes through the same shape check."""
    _, rig = hosts_env
    from amslib.aws.clients import AwsClients
    from amslib.core.errors import UsageError
    from amslib.core.settings import load_settings

    rig.reset_counts()
    aws = AwsClients(load_settings(), region="x;y")
    with pytest.raises(UsageError, match="invalid region .x;y.") as caught:
        aws.ec2().describe_regions()
    assert caught.value.exit_code == 2
    assert rig.counts() == {}


# -- edit: clearing fields, handing a hostname back to discovery -----------------------------------

def test_edit_clears_fields_and_hands_the_hostname_back_to_discovery(hosts_env, db_url):
    ams, rig = hosts_env
    (found,) = launch(rig, "us-east-1a", 1, name="auto")
    (other,) = launch(rig, "us-east-1a", 1, name="other")
    discover(ams, "--region", "us-east-1")
    ok(ams("host", "edit", "-i", found, "-H", "pinned.example.com", "--notes", "keep me", "--ami-id", "ami-0123abcd"))
    ok(ams("host", "edit", "-i", other, "-H", "other-pinned"))
    row = by_id(db_url)[found]
    assert (row["hostname"], row["hostname_source"], row["notes"]) == ("pinned.example.com", "user", "keep me")

    # an empty value clears that field and nothing else (dry run first: nothing written)
    result = ok(ams("host", "edit", "-i", found, "--notes", "", "--dry-run"))
    assert result.out.startswith(f"would change host {found}: notes keep me -> (none)")
    assert by_id(db_url)[found] == row
    doc = ok(ams("host", "edit", "-i", found, "--notes", "", "--output", "json")).json
    assert doc["changes"] == {"notes": {"old": "keep me", "new": None}}
    after = by_id(db_url)[found]
    assert after["notes"] is None
    assert {k: v for k, v in after.items() if k not in ("notes", "updated_at")} == \
        {k: v for k, v in row.items() if k not in ("notes", "updated_at")}
    assert "nothing changed" in ok(ams("host", "edit", "-i", found, "--notes", "")).out

    # --hostname '' hands the name back to discovery
    result = ok(ams("host", "edit", "-i", found, "-H", ""))
    assert result.out.strip() == (f"changed host {found}: hostname pinned.example.com -> (none); "
                                  "hostname_source user -> discovery (the next 'ams host discovery' sets its hostname)")
    row = by_id(db_url)[found]
    assert (row["hostname"], row["hostname_source"], row["ami_id"]) == (None, "discovery", "ami-0123abcd")

    discover(ams, "--region", "us-east-1")
    hosts = by_id(db_url)
    assert (hosts[found]["hostname"], hosts[found]["hostname_source"]) == ("auto", "discovery")
    assert (hosts[other]["hostname"], hosts[other]["hostname_source"]) == ("other-pinned", "user")
    assert hosts[found]["ami_id"] != "ami-0123abcd"  # discovery-owned again from EC2
    assert hosts[found]["notes"] is None

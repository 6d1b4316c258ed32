"""Bad input to every ams command (issue 11): one clear error, the right exit code, no change.

One shared state is built once: a host found by ``host discovery`` on the rig's EC2 endpoint, a
volume group attached nowhere (its volumes made with the rig's EC2 client and its rows written
straight into the database, as test_schedules.py does), a schedule on it and the snapshot group
that schedule's first run made.  Every case in the tables below then runs the real command line
in-process (the database failures also as a separate ``ams`` process) and must

- exit with the code of amslib/core/errors.py named in the table (usage 2, not found 3,
  conflict 4, database 8, settings 9);
- print exactly one ``ams: error: ...`` line (possibly followed by one ``ams: hint: ...``), or
  argparse's usage followed by one error line;
- leave every row of every table, the rig's volumes, snapshots and tags unchanged, and make no
  mutating EC2 call.

No guest is used: input that would need a host must be refused before any host is contacted.
SQLite only (the MariaDB side of each command is covered by the command's own tests); one
database serves every case.
"""

import socket

import pytest
import sqlalchemy as sa

from tests.dbfixtures import run_ams_process
from tests.integration.test_schedules import REGION, ZONE, make_volume_group

HOSTNAME = "badinput-host"
UNKNOWN_INSTANCE = "i-0bbbbbbbbbbbbbbb0"
NOT_A_HOST = f"instance {UNKNOWN_INSTANCE} is not in the hosts table"


@pytest.fixture
def db_url(sqlite_url):
    """SQLite only: one database shared by every case of a test."""
    return sqlite_url


# ---------------------------------------------------------------------------------------------
# helpers

def check_one_error(result, code, fragment):
    """'' when ``result`` is one clear error with exit ``code`` mentioning ``fragment``; else why not."""
    lines = result.err.strip().splitlines()
    if result.code != code:
        return f"exit {result.code}, expected {code}"
    if "Traceback" in result.err:
        return "traceback"
    if lines and lines[0].startswith("usage: "):
        if code != 2:
            return "usage error with a code other than 2"
        errors = [line for line in lines if ": error: " in line]
        if len(errors) != 1 or errors[0] is not lines[-1]:
            return "not usage + one error line"
        line = errors[0]
    else:
        if not lines or not lines[0].startswith("ams: error: "):
            return "first stderr line is not 'ams: error: ...'"
        if len(lines) > 2 or (len(lines) == 2 and not lines[1].startswith("ams: hint: ")):
            return "more than one error line (or a second line that is not a hint)"
        line = lines[0]
    if fragment.lower() not in line.lower():
        return f"the error line lacks {fragment!r}"
    return ""


def all_rows(db_url):
    """{table: every row, in primary key order} of every table in the database."""
    engine = sa.create_engine(db_url)
    try:
        meta = sa.MetaData()
        meta.reflect(bind=engine)
        with engine.connect() as conn:
            out = {}
            for table in meta.sorted_tables:
                order = list(table.primary_key.columns) or list(table.columns)
                out[table.name] = [dict(r) for r in conn.execute(sa.select(table).order_by(*order)).mappings()]
            return out
    finally:
        engine.dispose()


def ec2_state(rig):
    """The rig's volumes and snapshots with their state, size, attachments and tags, in every region
    this module uses."""
    out = {}
    for region in (REGION, "eu-west-1"):
        ec2 = rig.client(region=region, internal=True)
        for page in ec2.get_paginator("describe_volumes").paginate():
            for v in page["Volumes"]:
                out[v["VolumeId"]] = (v["State"], v["Size"], v["AvailabilityZone"],
                                      sorted((a["InstanceId"], a["Device"]) for a in v.get("Attachments", [])),
                                      sorted((t["Key"], t["Value"]) for t in v.get("Tags", [])))
        for page in ec2.get_paginator("describe_snapshots").paginate(OwnerIds=["self"]):
            for s in page["Snapshots"]:
                out[s["SnapshotId"]] = (s["VolumeId"], s.get("Description"),
                                        sorted((t["Key"], t["Value"]) for t in s.get("Tags", [])))
    return out


def mutating_calls(rig):
    return {name: n for name, n in rig.counts().items()
            if not name.startswith(("Describe", "Get", "List"))}


def closed_port():
    """A TCP port on 127.0.0.1 nobody listens on."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def run_table(ams, rig, db_url, cases):
    """Run every case; return the failures (argv, why, output) after checking nothing changed."""
    failures = []
    rows_before, ec2_before = all_rows(db_url), ec2_state(rig)
    for argv, code, fragment in cases:
        rig.reset_counts()
        result = ams(*argv)
        why = check_one_error(result, code, fragment)
        calls = mutating_calls(rig)
        if calls:
            why = (why + "; " if why else "") + f"mutating EC2 calls {calls}"
        rows_after, ec2_after = all_rows(db_url), ec2_state(rig)
        if rows_after != rows_before:
            changed = sorted(t for t in set(rows_before) | set(rows_after) if rows_before.get(t) != rows_after.get(t))
            why = (why + "; " if why else "") + f"the database changed (tables {', '.join(changed)})"
            rows_before = rows_after
        if ec2_after != ec2_before:
            why = (why + "; " if why else "") + "the EC2 state changed"
            ec2_before = ec2_after
        if why:
            failures.append(f"{' '.join(map(repr, map(str, argv)))}: {why}\n{result}")
    return failures


# ---------------------------------------------------------------------------------------------
# the shared state

@pytest.fixture
def state(ams_db, ec2_clean, db_url, monkeypatch):
    """(ams, rig, ids): a discovered host, a volume group attached nowhere, a schedule on it, the
    snapshot group its first run made and a snapshot group the database still has as pending."""
    rig = ec2_clean
    rig.timing.set(volume_create=0, snapshot=0)
    answer = rig.client(region=REGION, internal=True).run_instances(
        ImageId=rig.image_id(REGION), MinCount=1, MaxCount=1, InstanceType="t3.small",
        Placement={"AvailabilityZone": ZONE},
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": HOSTNAME}]}])
    instance = answer["Instances"][0]["InstanceId"]
    result = ams_db("host", "discovery", "--region", REGION, "--output", "json")
    assert result.code == 0, str(result)
    hosts = ams_db("host", "list", "--output", "json").json
    assert [h["instance_id"] for h in hosts] == [instance], hosts
    hostname = hosts[0]["hostname"]
    gid, volume_ids = make_volume_group(rig, db_url, volumes=2)
    monkeypatch.setenv("AMS_NOW", "2027-03-12T05:07:00Z")
    result = ams_db("--output", "json", "snapshot", "schedule", "add", "volume", gid)
    assert result.code == 0, str(result)
    sid = result.json["schedule_id"]
    result = ams_db("--output", "json", "snapshot", "schedule", "run", sid)
    assert result.code == 0, str(result)
    (run,) = result.json["runs"]
    assert run["outcome"] == "succeeded", run
    # 'snapshot list' records the snapshots' completion, so no case below is the first to do it
    listed = ams_db("--output", "json", "snapshot", "list").json
    assert [g["state"] for g in listed] == ["completed"], listed
    # ... except this one: completed in EC2, still pending in the database until a command asks EC2
    result = ams_db("--output", "json", "snapshot", "create", "volume", gid)
    assert result.code == 0 and result.json["state"] == "pending", str(result)
    ids = {"instance": instance, "hostname": hostname, "gid": str(gid), "sid": str(sid),
           "sgid": str(run["snapshot_group_id"]), "pending": str(result.json["snapshot_group_id"]),
           "volumes": volume_ids}
    return ams_db, rig, ids


# ---------------------------------------------------------------------------------------------
# the tables

def host_cases(s):
    i = s["instance"]
    add = ("host", "add", "-i", "i-0cccccccccccccccc", "-z", ZONE)
    return [
        (("host", "list", "--bogus"), 2, "unrecognized arguments"),
        (("host", "add", "-i", i, "-H", "dup", "-z", ZONE), 4, "already exists"),
        (("host", "add", "-i", "i-12345", "-H", "web", "-z", ZONE), 2, "invalid instance id"),
        (("host", "add", "-i", "i-0123456789abcdef0;ls", "-H", "web", "-z", ZONE), 2, "invalid instance id"),
        (("host", "add", "-i", "$(reboot)", "-H", "web", "-z", ZONE), 2, "invalid instance id"),
        ((*add, "-H", "web;reboot"), 2, "invalid hostname"),
        ((*add, "-H", "web$(reboot)"), 2, "invalid hostname"),
        ((*add, "-H", "web host"), 2, "invalid hostname"),
        ((*add, "-H", "web\nhost"), 2, "invalid hostname"),
        ((*add, "-H", "web'1"), 2, "invalid hostname"),
        ((*add, "-H", ""), 2, "hostname must not be empty"),
        (("host", "add", "-i", "i-0cccccccccccccccc", "-H", "web", "-z", "us-east-1z"), 2, "does not exist"),
        (("host", "add", "-i", "i-0cccccccccccccccc", "-H", "web", "-z", "xx-nowhere-9a"), 2, "unknown region"),
        ((*add, "-H", "web", "--ip-internal", "10.0.0.999"), 2, "invalid internal IP address"),
        ((*add, "-H", "web", "--ip-external", "1.2.3"), 2, "invalid external IP address"),
        ((*add, "-H", "web", "--ami-id", "ami-1;ls"), 2, "invalid AMI id"),
        (("host", "edit", "-i", UNKNOWN_INSTANCE, "-H", "web"), 3, "not found"),
        (("host", "edit", "-i", "i-xyz", "-H", "web"), 2, "invalid instance id"),
        (("host", "edit", "-i", i), 2, "nothing to change"),
        (("host", "edit", "-i", i, "-z", ""), 2, "cannot be cleared"),
        (("host", "edit", "-i", i, "-z", "us-east-1q"), 2, "does not exist"),
        (("host", "edit", "-i", i, "-H", "a b"), 2, "invalid hostname"),
        (("host", "edit", "-i", i, "-H", "a`id`"), 2, "invalid hostname"),
        (("host", "discovery", "--region", "narnia"), 2, "invalid region"),
        (("host", "discovery", "--region", "us-east-9"), 2, "unknown region"),
        (("host", "discovery", "--region", "x;y"), 2, "invalid region"),
        (("host", "discovery", "--region", "$(id)"), 2, "invalid region"),
        (("host", "frobnicate"), 2, "invalid choice"),
    ]


def volume_cases(s):
    i, h, gid = s["instance"], s["hostname"], s["gid"]
    create = ("volume", "create", "-i", i)
    return [
        (("volume", "list", "host", "x", "--like", "y"), 2, "not allowed"),
        (("volume", "list", "instance_id", "i-1"), 2, "invalid instance id"),
        (("volume", "list", "instance_id", "i-0123;ls"), 2, "invalid instance id"),
        ((*create, "-n", 0, "-s", 10), 2, "--numvols"),
        ((*create, "-n", -1, "-s", 10), 2, "--numvols"),
        ((*create, "-n", "two", "-s", 10), 2, "--numvols"),
        ((*create, "-n", 1, "-s", 0), 2, "size"),
        ((*create, "-n", 1, "-s", -5), 2, "size"),
        ((*create, "-n", 1, "-s", 20000), 2, "size"),
        ((*create, "-n", 1, "-s", "10G"), 2, "--size"),
        ((*create, "-n", 1000, "-s", 10), 2, "volume count 1000 is out of range"),
        ((*create, "-n", 1, "-s", 10, "-r", 1), 2, "raid"),
        ((*create, "-n", 2, "-s", 10, "-r", 5), 2, "raid"),
        ((*create, "-n", 3, "-s", 10, "-r", 10), 2, "raid"),
        ((*create, "-n", 2, "-s", 10, "-r", 6), 2, "raid"),
        ((*create, "-n", 2, "-s", 10, "-r", 0, "-b", 3), 2, "invalid chunk size 3"),
        ((*create, "-n", 1, "-s", 10, "-f", "ntfs"), 2, "filesystem"),
        ((*create, "-n", 1, "-s", 10, "--volume-type", "gp9"), 2, "volume type"),
        ((*create, "-n", 1, "-s", 10, "-p", -1), 2, "--iops"),
        ((*create, "-n", 1, "-s", 10, "--throughput", 0), 2, "--throughput"),
        ((*create, "-n", 1, "-s", 10, "--tag", "novalue"), 2, "tag"),
        ((*create, "-n", 1, "-s", 10, "-m", "relative/path"), 2, "mount point"),
        ((*create, "-n", 1, "-s", 10, "-m", "/srv/da ta"), 2, "mount point"),
        ((*create, "-n", 1, "-s", 10, "-m", "/srv/data;reboot"), 2, "mount point"),
        ((*create, "-n", 1, "-s", 10, "-m", "/srv/$(reboot)"), 2, "mount point"),
        ((*create, "-n", 1, "-s", 10, "-m", "/srv/'data'"), 2, "mount point"),
        ((*create, "-n", 1, "-s", 10, "-m", "/srv/data\n/etc"), 2, "mount point"),
        ((*create, "-n", 1, "-s", 10, "-m", "/"), 2, "mount point"),
        (("volume", "create", "-i", UNKNOWN_INSTANCE, "-n", 1, "-s", 10), 3, NOT_A_HOST),
        (("volume", "create", "-i", "i-1;ls", "-n", 1, "-s", 10), 2, "invalid instance id"),
        (("volume", "create", "-H", "no-such-host", "-n", 1, "-s", 10), 3, "no-such-host"),
        (("volume", "create", "-n", 1, "-s", 10), 2, "required"),
        (("volume", "attach", "999", "-i", i), 3, "not found"),
        (("volume", "attach", "abc", "-i", i), 2, "invalid volume group id"),
        (("volume", "attach", "-1", "-i", i), 2, ""),
        (("volume", "attach", gid, "-i", UNKNOWN_INSTANCE), 3, NOT_A_HOST),
        (("volume", "attach", gid, "-H", "no-such-host"), 3, "no-such-host"),
        (("volume", "attach", gid, "-i", i, "-m", "/srv/a b"), 2, "mount point"),
        (("volume", "detach", "volume", "999"), 3, "not found"),
        (("volume", "detach", "volume", "1;2"), 2, "invalid volume group id"),
        (("volume", "detach", "volume", gid), 4, "not attached"),
        (("volume", "detach", "host", "no-such-host", "/srv/data"), 3, "no-such-host"),
        (("volume", "detach", "host", h, "srv"), 2, "mount point"),
        (("volume", "detach", "instance", "i-1", "/srv/data"), 2, "invalid instance id"),
        (("volume", "detach", "instance", UNKNOWN_INSTANCE, "/srv/data"), 3, NOT_A_HOST),
        (("volume", "mount", "999"), 3, "not found"),
        (("volume", "mount", "x"), 2, "invalid volume group id"),
        (("volume", "mount", gid), 4, "not attached"),
        (("volume", "mount", gid, "-m", "/srv/$(id)"), 4, "not attached"),
        (("volume", "unmount", "999"), 3, "not found"),
        (("volume", "unmount", "1e3"), 2, "invalid volume group id"),
        (("volume", "unmount", gid), 4, "not attached"),
        (("volume", "automount", "999"), 3, "not found"),
        (("volume", "automount", "vg-1"), 2, "invalid volume group id"),
        (("volume", "automount", gid), 4, "not attached"),
        (("volume", "automount", gid, "-m", "/a b"), 4, "not attached"),
        (("volume", "delete", "999"), 3, "not found"),
        (("volume", "delete", ""), 2, "invalid volume group id"),
        (("volume", "delete", "0"), 2, "invalid volume group id"),
    ]


def snapshot_cases(s):
    i, h, gid, sgid, pending = s["instance"], s["hostname"], s["gid"], s["sgid"], s["pending"]
    return [
        (("snapshot", "list", "-r", "narnia"), 2, "region"),
        (("snapshot", "list", "volume", "abc"), 2, "invalid volume group id"),
        (("snapshot", "list", "volume", "999"), 3, "volume group 999 not found"),
        (("snapshot", "list", "instance", "i-1"), 2, "invalid instance id"),
        (("snapshot", "list", "instance", "i-0123456789abcdef0x", "-m", "/srv"), 2, "invalid instance id"),
        (("snapshot", "create", "volume", gid, "--freeze"), 4, f"volume group {gid} is attached nowhere"),
        (("snapshot", "create", "volume", gid, "--freeze", "--pre", "sync"), 4, "freezing needs"),
        (("snapshot", "create", "volume", gid, "--pre", "sync"), 4, f"--pre: volume group {gid} is attached nowhere"),
        (("snapshot", "create", "volume", gid, "--post", "sync"), 4, f"--post: volume group {gid} is attached nowhere"),
        # a group still pending in the database: the option checks come before recording its completion
        (("snapshot", "clone", "snapshot", pending, "-z", ZONE, "--volume-type", "gp9"), 2, "volume type"),
        (("snapshot", "clone", "snapshot", pending, "-z", ZONE, "--volume-type", "io2"), 2, "out of range for io2"),
        (("snapshot", "clone", "snapshot", pending, "-i", i, "--volume-type", "gp9"), 2, "volume type"),
        (("snapshot", "clone", "snapshot", pending, "-z", "us-east-1q"), 2, "us-east-1q"),
        (("snapshot", "copy", pending, "--region", REGION), 2, "already in us-east-1"),
        (("snapshot", "copy", pending, "--region", "us-east-9"), 2, "region"),
        (("snapshot", "create", "volume", "999"), 3, "not found"),
        (("snapshot", "create", "volume", "x"), 2, "invalid volume group id"),
        (("snapshot", "create", "volume", gid, "-d", "two\nlines"), 2, "description"),
        (("snapshot", "create", "volume", gid, "--pre", "echo a\necho b"), 2, "--pre"),
        (("snapshot", "create", "volume", gid, "--post", "sync\r"), 2, "--post"),
        (("snapshot", "create", "volume", gid, "--tag", "=x"), 2, "tag"),
        (("snapshot", "create", "volume", gid, "--tag", "ams:snapshot-group-id=1"), 2, "tag"),
        (("snapshot", "create", "host", "-H", "no-such-host", "-m", "/srv/data"), 3, "no-such-host"),
        (("snapshot", "create", "host", "-H", h, "-m", "srv;ls"), 2, "mount point"),
        (("snapshot", "create", "host", "-i", "i-1", "-m", "/srv/data"), 2, "invalid instance id"),
        (("snapshot", "create", "host", "-i", UNKNOWN_INSTANCE, "-m", "/srv/data"), 3, NOT_A_HOST),
        (("snapshot", "create", "host", "-H", h, "-m", "/srv/nothing-here"), 3, "/srv/nothing-here"),
        (("snapshot", "delete", "snapshot", "999"), 3, "not found"),
        (("snapshot", "delete", "snapshot", "abc"), 2, "invalid snapshot group id"),
        (("snapshot", "delete", "snapshot", "1 OR 1=1"), 2, "invalid snapshot group id"),
        (("snapshot", "copy", "999", "--region", "eu-west-1"), 3, "not found"),
        (("snapshot", "copy", "x", "--region", "eu-west-1"), 2, "invalid snapshot group id"),
        (("snapshot", "copy", sgid, "--region", "narnia"), 2, "region"),
        (("snapshot", "copy", sgid, "--region", "us-east-9"), 2, "region"),
        (("snapshot", "copy", sgid, "--region", REGION), 2, "already in us-east-1"),
        (("snapshot", "copy", sgid), 2, "required"),
        (("snapshot", "clone", "snapshot", "999", "-z", ZONE), 3, "not found"),
        (("snapshot", "clone", "snapshot", "x", "-z", ZONE), 2, "invalid snapshot group id"),
        (("snapshot", "clone", "snapshot", sgid, "-z", "us-east-1q"), 2, "us-east-1q"),
        (("snapshot", "clone", "snapshot", sgid, "-z", "nowhere"), 2, "nowhere"),
        (("snapshot", "clone", "snapshot", sgid, "-z", ZONE, "--size", 0), 2, "--size"),
        (("snapshot", "clone", "snapshot", sgid, "-z", ZONE, "--volume-type", "gp9"), 2, "volume type"),
        (("snapshot", "clone", "snapshot", sgid, "-z", ZONE, "-p", -5), 2, "--iops"),
        (("snapshot", "clone", "snapshot", sgid, "-i", i, "-m", "/srv/a b"), 2, "mount point"),
        (("snapshot", "clone", "snapshot", sgid, "-i", i, "-m", "/srv/`id`"), 2, "mount point"),
        (("snapshot", "clone", "snapshot", sgid, "-i", UNKNOWN_INSTANCE), 3, NOT_A_HOST),
        (("snapshot", "clone", "snapshot", sgid, "-H", "no-such-host"), 3, "no-such-host"),
        (("snapshot", "clone", "snapshot", sgid), 2, "required"),
        (("snapshot", "clone", "latest", "volume", "999", "-z", ZONE), 3, "no snapshot group of volume group 999"),
        (("snapshot", "clone", "latest", "host", "no-such-host", "/srv/data", "-z", ZONE), 3, "no-such-host"),
        (("snapshot", "clone", "latest", "instance", "i-1", "/srv/data", "-z", ZONE), 2, "invalid instance id"),
    ]


def schedule_cases(s):
    h, gid, sid = s["hostname"], s["gid"], s["sid"]
    sched = ("snapshot", "schedule")
    return [
        ((*sched, "add", "volume", "999"), 3, "not found"),
        ((*sched, "add", "volume", "vg1"), 2, "invalid volume group id"),
        ((*sched, "add", "host", "no-such-host", "-m", "/srv/data"), 3, "no-such-host"),
        ((*sched, "add", "host", h, "-m", "srv data"), 2, "mount point"),
        ((*sched, "add", "host", h, "-m", "/srv/$(id)"), 2, "mount point"),
        ((*sched, "add", "instance", "i-1", "-m", "/srv/data"), 2, "invalid instance id"),
        ((*sched, "add", "instance", UNKNOWN_INSTANCE, "-m", "/srv/data"), 3, NOT_A_HOST),
        ((*sched, "add", "volume", gid, "--intervals", 0, 1, 1, 1), 2, "--intervals"),
        ((*sched, "add", "volume", gid, "--int_hour", 1001), 2, "hourly interval"),
        ((*sched, "add", "volume", gid, "--int_day", "x"), 2, "--int_day"),
        ((*sched, "add", "volume", gid, "--ret_day", -1), 2, "--ret_day"),
        ((*sched, "add", "volume", gid, "--retentions", 0, 0, 0, 0, 0), 2, "every retention is 0"),
        ((*sched, "add", "volume", gid, "--ret_hour", 876601), 2, "out of range"),
        ((*sched, "add", "volume", gid, "--pre", "echo a\necho b"), 2, "--pre hook"),
        ((*sched, "add", "volume", gid, "--post", "sync\r"), 2, "--post hook"),
        ((*sched, "add", "volume", gid, "-d", "two\nlines"), 2, "description"),
        ((*sched, "add", "volume", gid, "--freeze"), 4, f"volume group {gid} is attached nowhere"),
        ((*sched, "edit", sid, "--freeze"), 4, f"volume group {gid} is attached nowhere"),
        ((*sched, "edit", "999", "--ret_hour", 3), 3, "not found"),
        ((*sched, "edit", "x1", "--ret_hour", 3), 2, "invalid schedule id"),
        ((*sched, "edit", sid), 2, "nothing to change"),
        ((*sched, "edit", sid, "--retentions", 0, 0, 0, 0, 0), 2, "every retention is 0"),
        ((*sched, "edit", sid, "--post", "echo a\necho b"), 2, "--post hook"),
        ((*sched, "edit", sid, "-d", "a\nb"), 2, "description"),
        ((*sched, "edit", sid, "--freeze", "--no-freeze"), 2, "not allowed with"),
        ((*sched, "delete", "999"), 3, "not found"),
        ((*sched, "delete", "-3"), 2, ""),
        ((*sched, "delete", "1;DROP TABLE hosts"), 2, "invalid schedule id"),
        ((*sched, "list", "x"), 2, "invalid choice"),
        ((*sched, "list", "volume", "abc"), 2, "invalid volume group id"),
        ((*sched, "list", "volume", "999"), 3, "volume group 999 not found"),
        ((*sched, "list", "instance", "i-1"), 2, "invalid instance id"),
        ((*sched, "run", "999"), 3, "not found"),
        ((*sched, "run", "0"), 2, "invalid schedule id"),
        ((*sched, "run", "abc", "--dry-run"), 2, "invalid schedule id"),
    ]


def internals_cases(s):
    return [
        (("internals", "database", "install"), 4, "is not empty"),
        (("internals", "database", "frobnicate"), 2, "invalid choice"),
        (("internals", "database", "upgrade", "--to", "9999"), 2, "unrecognized arguments"),
    ]


# ---------------------------------------------------------------------------------------------
# the tests

def test_bad_input_changes_nothing(state, db_url):
    ams, rig, ids = state
    cases = (host_cases(ids) + volume_cases(ids) + snapshot_cases(ids) + schedule_cases(ids)
             + internals_cases(ids))
    assert len(cases) >= 100
    failures = run_table(ams, rig, db_url, cases)
    assert not failures, f"{len(failures)} of {len(cases)} cases failed:\n\n" + "\n\n".join(failures)


# A few commands of every group, for the failures that are about the environment, not the input.
def environment_commands(s):
    return [
        ("host", "list"),
        ("host", "edit", "-i", s["instance"], "--notes", "x"),
        ("host", "discovery", "--region", REGION),
        ("volume", "list"),
        ("volume", "delete", s["gid"]),
        ("volume", "create", "-i", s["instance"], "-n", 1, "-s", 10),
        ("snapshot", "list"),
        ("snapshot", "create", "volume", s["gid"]),
        ("snapshot", "delete", "snapshot", s["sgid"]),
        ("snapshot", "copy", s["sgid"], "--region", "eu-west-1"),
        ("snapshot", "clone", "snapshot", s["sgid"], "-z", ZONE),
        ("snapshot", "schedule", "list"),
        ("snapshot", "schedule", "add", "volume", s["gid"]),
        ("snapshot", "schedule", "edit", s["sid"], "--ret_hour", 3),
        ("snapshot", "schedule", "delete", s["sid"]),
        ("snapshot", "schedule", "run"),
    ]


def test_an_unreachable_database_is_exit_8_and_changes_nothing(state, db_url, monkeypatch):
    ams, rig, ids = state
    port = closed_port()
    unreachable = f"mysql+pymysql://ams_test:ams_test@127.0.0.1:{port}/ams"
    monkeypatch.setenv("AMS_DB_URL", unreachable)
    fragment = "cannot use database mysql+pymysql://ams_test:***@127.0.0.1"
    cases = [(argv, 8, fragment) for argv in environment_commands(ids)]
    cases += [(("internals", "database", "install"), 8, fragment), (("internals", "database", "upgrade"), 8, fragment)]
    failures = run_table(ams, rig, db_url, cases)
    # the same in a separate process; the password is never shown
    result = run_ams_process("host", "list", env={"AMS_DB_URL": unreachable})
    why = check_one_error(result, 8, fragment)
    if why or "ams_test:ams_test" in result.err:
        failures.append(f"separate process: {why or 'the password is shown'}\n{result}")
    assert not failures, f"{len(failures)} of {len(cases) + 1} cases failed:\n\n" + "\n\n".join(failures)


def test_a_database_behind_is_exit_8_and_changes_nothing(state, db_url, tmp_path, monkeypatch):
    from amslib.store import migrate
    from amslib.store.db import create_engine

    ams, rig, ids = state
    behind = f"sqlite:///{tmp_path}/behind.db"
    engine = create_engine(behind)
    migrate.upgrade(engine, "0001")
    engine.dispose()
    monkeypatch.setenv("AMS_DB_URL", behind)
    cases = [(argv, 8, "at version 0001") for argv in environment_commands(ids)]
    cases.append((("internals", "database", "install"), 4, "is not empty"))
    failures = run_table(ams, rig, behind, cases)
    result = run_ams_process("snapshot", "schedule", "run", env={"AMS_DB_URL": behind})
    why = check_one_error(result, 8, "at version 0001")
    if why:
        failures.append(f"separate process: {why}\n{result}")
    assert not failures, f"{len(failures)} of {len(cases) + 1} cases failed:\n\n" + "\n\n".join(failures)


SETTINGS_FILES = [
    ("SSH_USRE = 'admin'\n", "unknown setting SSH_USRE; did you mean SSH_USER?"),
    ("AWS_MAX_ATTEMPTS = 'eight'\n", "AWS_MAX_ATTEMPTS"),
    ("AWS_REGIONS = 'us-east-1'\n", "AWS_REGIONS"),
    ("AWS_DEFAULT_REGION = 7\n", "AWS_DEFAULT_REGION"),
]


def test_a_bad_settings_file_is_exit_9_and_changes_nothing(state, db_url, tmp_path, monkeypatch):
    ams, rig, ids = state
    commands = environment_commands(ids)
    cases = []
    for n, (text, name) in enumerate(SETTINGS_FILES):
        path = tmp_path / f"settings{n}.py"
        path.write_text(text)
        path.chmod(0o600)
        cases.append((str(path), name))
    failures, total = [], 0
    for path, name in cases:
        monkeypatch.setenv("AMS_SETTINGS", path)
        table = [(argv, 9, name) for argv in commands[::4]]
        failures += [f"{path} ({name}): {f}" for f in run_table(ams, rig, db_url, table)]
        total += len(table)
    monkeypatch.delenv("AMS_SETTINGS")
    monkeypatch.setenv("AMS_AWS_MAX_ATTEMPTS", "eight")  # the environment is checked as the file is
    table = [(argv, 9, "AMS_AWS_MAX_ATTEMPTS") for argv in commands[1::4]]
    failures += [f"AMS_AWS_MAX_ATTEMPTS=eight: {f}" for f in run_table(ams, rig, db_url, table)]
    total += len(table)
    monkeypatch.delenv("AMS_AWS_MAX_ATTEMPTS")
    path, name = cases[0]
    result = run_ams_process("volume", "list", env={"AMS_SETTINGS": path, "AMS_DB_URL": db_url})
    why = check_one_error(result, 9, name)
    if why:
        failures.append(f"separate process: {why}\n{result}")
    assert not failures, f"{len(failures)} of {total + 1} cases failed:\n\n" + "\n\n".join(failures)

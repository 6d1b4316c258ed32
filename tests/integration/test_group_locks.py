"""The lock of a volume group (amslib/store/group_locks.py): two ams processes never change one
group at once (issue 11, Concurrency).

- The SQL and the context manager on SQLite and on MariaDB: acquire, refuse, expire, renew,
  release (only by its owner), the owner text and the message naming the holder, a new group
  claimed by its INSERT, waiting until the holder is done.
- Two real ``ams`` processes on the rig's EC2 endpoint, no guest: the first is kept inside its
  critical section by latency injected on one EC2 call (CreateSnapshot, DeleteVolume); the second
  fails after LOCK_WAIT with one line naming the holder and exit 11, or succeeds once the first
  is done; a schedule run finding the group busy records a failed run; a dry run takes no lock.
  After both, the rows agree with each other and with EC2, and no lock is left.
"""

import threading
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from amslib.core.errors import BusyError, NotFoundError
from amslib.store import group_locks
from amslib.store.schema import volume_groups
from amslib.store.types import utcnow
from tests.dbfixtures import run_ams_process
from tests.integration.test_schedules import REGION, make_volume_group
from tests.integration.test_volumes_guest import ok, one_error

BUSY = "volume group {gid} is busy: `{command}` by ams pid "


# ---------------------------------------------------------------------------------------------
# helpers

def engine_of(url):
    from amslib.store.db import create_engine

    return create_engine(url)


def lock_row(engine, gid):
    with engine.connect() as conn:
        row = conn.execute(sa.select(volume_groups.c.lock_owner, volume_groups.c.lock_since,
                                     volume_groups.c.lock_until).where(volume_groups.c.id == gid)).first()
    return row._asdict()


def new_group(engine, **values):
    from amslib.store import volume_groups as vg_store

    with engine.begin() as conn:
        return vg_store.insert_group(conn, {"region": REGION, "availability_zone": REGION + "a", "created_at": utcnow(),
                                            **values})


@pytest.fixture
def engine(db_url):
    from amslib.store import migrate

    engine = engine_of(db_url)
    migrate.install(engine)
    yield engine
    engine.dispose()


# ---------------------------------------------------------------------------------------------
# pure parts

def test_owner_text_names_host_pid_and_command_and_is_unique_per_acquisition():
    first, second = group_locks.owner_text("volume detach"), group_locks.owner_text("volume detach")
    assert first != second
    host, pid, token, command = first.split(":", 3)
    assert (host, pid) == tuple(group_locks.this_process().split(":")) and command == "volume detach" and token
    assert group_locks.parse_owner(first) == {"host": host, "pid": pid, "command": "volume detach"}
    assert group_locks.parse_owner("h:1:t:snapshot schedule run (schedule 3)")["command"] == \
        "snapshot schedule run (schedule 3)"
    assert group_locks.parse_owner(None) == {"host": "", "pid": "", "command": ""}


def test_the_busy_message_names_command_pid_host_and_time():
    from datetime import datetime, timezone

    lock = {"owner": "web1:1234:ab12cd34:volume detach", "since": datetime(2026, 11, 30, 12, 0, 1, tzinfo=timezone.utc)}
    assert group_locks.describe(3, lock) == (
        "volume group 3 is busy: `volume detach` by ams pid 1234 on host web1 since 2026-11-30 12:00:01 UTC")


# ---------------------------------------------------------------------------------------------
# the SQL, on SQLite and MariaDB

def test_acquire_refuse_release_only_by_the_owner(engine):
    gid = new_group(engine)
    now = utcnow()
    mine, theirs = group_locks.owner_text("volume mount"), group_locks.owner_text("volume detach")
    with engine.begin() as conn:
        assert group_locks.try_acquire(conn, gid, mine, now)
    assert lock_row(engine, gid) == {"lock_owner": mine, "lock_since": now, "lock_until": now + group_locks.LEASE}
    with engine.begin() as conn:
        assert not group_locks.try_acquire(conn, gid, theirs, now + timedelta(seconds=5))
        assert group_locks.holder(conn, gid, now)[1]["owner"] == mine
        assert not group_locks.release(conn, gid, theirs)  # not theirs to release
        assert not group_locks.renew(conn, gid, theirs, now)
    assert lock_row(engine, gid)["lock_owner"] == mine
    with engine.begin() as conn:
        assert group_locks.renew(conn, gid, mine, now + timedelta(seconds=30))
    assert lock_row(engine, gid)["lock_until"] == now + timedelta(seconds=30) + group_locks.LEASE
    with engine.begin() as conn:
        assert group_locks.release(conn, gid, mine)
        assert group_locks.holder(conn, gid, now) == (True, None)
    assert lock_row(engine, gid) == {"lock_owner": None, "lock_since": None, "lock_until": None}
    with engine.begin() as conn:
        assert group_locks.try_acquire(conn, gid, theirs, now)  # free again
        assert group_locks.holder(conn, 999999, now) == (False, None)
        assert not group_locks.try_acquire(conn, 999999, theirs, now)


def test_an_expired_lease_is_taken_over_and_its_old_owner_can_neither_renew_nor_release(engine):
    gid = new_group(engine)
    now = utcnow()
    dead, alive = group_locks.owner_text("volume attach"), group_locks.owner_text("snapshot create")
    with engine.begin() as conn:
        assert group_locks.try_acquire(conn, gid, dead, now)
    at_end = now + group_locks.LEASE
    with engine.begin() as conn:
        assert not group_locks.try_acquire(conn, gid, alive, at_end)  # the lease's last second still counts
        assert group_locks.holder(conn, gid, at_end + timedelta(seconds=1)) == (True, None)  # expired: free
        assert group_locks.try_acquire(conn, gid, alive, at_end + timedelta(seconds=1))
        assert not group_locks.renew(conn, gid, dead, at_end)
        assert not group_locks.release(conn, gid, dead)
    assert lock_row(engine, gid)["lock_owner"] == alive


def test_the_context_manager_refuses_after_waiting_names_the_holder_and_releases_on_failure(engine):
    gid = new_group(engine)
    with group_locks.GroupLock(engine, gid, "volume detach") as held:
        told = []
        began = time.monotonic()
        with pytest.raises(BusyError) as busy:
            with group_locks.GroupLock(engine, gid, "snapshot create", wait=1.2, on_wait=told.append):
                pass
        waited = time.monotonic() - began
        assert 1.2 <= waited < 5, waited
        host, pid = group_locks.this_process().split(":")
        assert str(busy.value).startswith(f"volume group {gid} is busy: `volume detach` by ams pid {pid} on host {host} since ")
        assert str(busy.value).endswith(" UTC; try again later") and busy.value.exit_code == 11
        assert told == [str(busy.value).replace("; try again later", "; waiting up to 1.2s")]
        assert lock_row(engine, gid)["lock_owner"] == held.owner
    assert lock_row(engine, gid)["lock_owner"] is None
    with pytest.raises(RuntimeError):
        with group_locks.GroupLock(engine, gid, "volume mount"):
            raise RuntimeError("the command failed")
    assert lock_row(engine, gid) == {"lock_owner": None, "lock_since": None, "lock_until": None}
    with pytest.raises(NotFoundError, match="volume group 999999 not found"):
        with group_locks.GroupLock(engine, 999999, "volume mount"):
            pass


def test_a_waiting_ams_gets_the_lock_when_the_holder_is_done_within_the_wait(engine):
    gid = new_group(engine)
    first = group_locks.GroupLock(engine, gid, "volume detach")
    first.__enter__()
    threading.Timer(1.0, first.__exit__, (None, None, None)).start()
    began = time.monotonic()
    with group_locks.GroupLock(engine, gid, "volume delete", wait=10) as second:
        assert 0.9 <= time.monotonic() - began < 5
        assert lock_row(engine, gid)["lock_owner"] == second.owner
    assert lock_row(engine, gid)["lock_owner"] is None


def test_a_new_group_is_claimed_by_its_insert_and_the_lease_is_renewed_while_held(engine):
    now = utcnow()
    owner = group_locks.owner_text("volume create")
    gid = new_group(engine, **group_locks.claim_values(owner, now, timedelta(seconds=2)))
    with pytest.raises(BusyError):
        with group_locks.GroupLock(engine, gid, "volume attach"):
            pass
    with group_locks.GroupLock(engine, gid, "volume create", owner=owner, lease=timedelta(seconds=2)):
        time.sleep(3.5)  # past the first lease: the beats (every 0.5 s) kept it
        row = lock_row(engine, gid)
        assert row["lock_owner"] == owner and row["lock_until"] >= now + timedelta(seconds=3)
        with pytest.raises(BusyError):
            with group_locks.GroupLock(engine, gid, "volume attach"):
                pass
    assert lock_row(engine, gid)["lock_owner"] is None


def test_upgrade_from_the_previous_head_keeps_groups_and_leaves_them_unlocked(ams, ams_env):
    from amslib.store import migrate

    engine = engine_of(ams_env["AMS_DB_URL"])
    try:
        migrate.upgrade(engine, "0006")
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO volume_groups (region, availability_zone, created_at, state) "
                                 "VALUES ('us-east-1', 'us-east-1a', '2026-11-30 12:00:00', 'available')"))
        upgraded = ams("--output", "json", "internals", "database", "upgrade")
        assert upgraded.code == 0, upgraded
        assert upgraded.json["from"] == "0006" and upgraded.json["version"] == migrate.head_revision()
        with engine.connect() as conn:
            gid = conn.execute(sa.select(volume_groups.c.id)).scalar_one()
        assert lock_row(engine, gid) == {"lock_owner": None, "lock_since": None, "lock_until": None}
        with group_locks.GroupLock(engine, gid, "volume mount") as held:
            assert lock_row(engine, gid)["lock_owner"] == held.owner
        assert ams("volume", "list").code == 0
    finally:
        engine.dispose()


# ---------------------------------------------------------------------------------------------
# two real ams processes (no guest)

@pytest.fixture
def rig(ec2_clean):
    ec2_clean.timing.set(volume_create=0, snapshot=0)
    yield ec2_clean
    ec2_clean.faults.clear()


def start_ams(*argv, env=None):
    """Run ``ams argv`` as a separate process in a thread; returns (thread, result box)."""
    box = {}

    def run():
        began = time.monotonic()
        box["result"] = run_ams_process(*argv, env=env, timeout=120)
        box["span"] = (began, time.monotonic())

    thread = threading.Thread(target=run)
    thread.start()
    return thread, box


def wait_for_lock(engine, gid, command, timeout=60):
    """The owner text once an ams holds ``gid``'s lock for ``command``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        owner = lock_row(engine, gid)["lock_owner"]
        if owner and owner.endswith(":" + command):
            return owner
        time.sleep(0.1)
    raise AssertionError(f"no ams took the lock of volume group {gid} for {command} within {timeout}s")


def rows(engine):
    from amslib.store.schema import schedule_runs, snapshot_groups, snapshots, volumes

    with engine.connect() as conn:
        return {t.name: [dict(r) for r in conn.execute(sa.select(t).order_by(*t.primary_key.columns)).mappings()]
                for t in (volume_groups, volumes, snapshot_groups, snapshots, schedule_runs)}


def ec2_ids(rig):
    ec2 = rig.client(region=REGION, internal=True)
    volumes = {v["VolumeId"]: v["State"] for v in ec2.describe_volumes()["Volumes"]}
    snapshots = {s["SnapshotId"]: s["Tags"] for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]}
    return volumes, snapshots


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_every_command_that_changes_a_group_waits_for_its_lock(ams_db, rig, db_url, monkeypatch):
    """While this test holds the lock, each command fails busy before it reads or changes anything."""
    instance = rig.client(region=REGION, internal=True).run_instances(
        ImageId=rig.image_id(REGION), MinCount=1, MaxCount=1, InstanceType="t3.small",
        Placement={"AvailabilityZone": REGION + "a"})["Instances"][0]["InstanceId"]
    ok(ams_db("host", "discovery", "--region", REGION))
    gid, _ = make_volume_group(rig, db_url, volumes=2)
    monkeypatch.setenv("AMS_LOCK_WAIT", "0")
    commands = [
        ("volume", "attach", gid, "-i", instance, "-m", "/srv/data"),
        ("volume", "detach", "volume", gid),
        ("volume", "mount", gid, "-m", "/srv/data"),
        ("volume", "unmount", gid),
        ("volume", "automount", gid),
        ("volume", "delete", gid),
        ("snapshot", "create", "volume", gid),
        ("snapshot", "create", "volume", gid, "--wait"),
    ]
    engine = engine_of(db_url)
    try:
        with group_locks.GroupLock(engine, gid, "test holder") as held:
            before = rows(engine)
            rig.reset_counts()
            for argv in commands:
                busy_line(ams_db(*argv), gid, "test holder", held.owner)
            assert rows(engine) == before
            assert not {a for a in rig.counts() if not a.startswith("Describe")}, rig.counts()
            dry = ok(ams_db("volume", "delete", gid, "--dry-run"))
            assert BUSY.format(gid=gid, command="test holder") in dry.err and "would wait up to 0s" in dry.err
            assert rows(engine) == before
        created = ok(ams_db("--output", "json", "snapshot", "create", "volume", gid, "--wait")).json  # free again
        assert lock_row(engine, gid)["lock_owner"] is None
        cloned = ok(ams_db("--output", "json", "snapshot", "clone", "snapshot", created["snapshot_group_id"],
                           "-z", REGION + "a")).json  # the new group was claimed by its INSERT, then released
        assert lock_row(engine, cloned["volume_group_id"])["lock_owner"] is None
    finally:
        engine.dispose()


def busy_line(result, gid, command, owner):
    """The busy refusal: one line, exit 11, naming the holder's command, pid and host."""
    line = one_error(result, 11, BUSY.format(gid=gid, command=command))
    who = group_locks.parse_owner(owner)
    assert f"by ams pid {who['pid']} on host {who['host']} since " in line and line.endswith("; try again later"), line
    assert len(result.err.strip().splitlines()) == 1, str(result)
    return line


def test_a_second_ams_fails_fast_while_the_first_snapshots_and_waits_when_it_is_nearly_done(ams_db, rig, db_url):
    engine = engine_of(db_url)
    try:
        gid, (volume_id,) = make_volume_group(rig, db_url, volumes=1)
        # 1. the first ams is inside CreateSnapshot for 8 s; a delete with LOCK_WAIT 1 fails
        rig.faults.set_latency(8, "CreateSnapshot")
        thread, first = start_ams("--output", "json", "snapshot", "create", "volume", gid)
        owner = wait_for_lock(engine, gid, "snapshot create")
        refused = run_ams_process("volume", "delete", gid, env={"AMS_LOCK_WAIT": "1"})
        if thread.is_alive():  # (on a loaded machine the first may be done already: the line below still says)
            assert lock_row(engine, gid)["lock_owner"] == owner  # neither took nor broke the first one's lock
        thread.join()
        busy_line(refused, gid, "snapshot create", owner)
        ok(first["result"])
        snapshot_id = first["result"].json["snapshot_ids"][0]

        state = rows(engine)
        (group,) = state["volume_groups"]
        assert group["state"] == "available" and group["deleted_at"] is None and group["lock_owner"] is None
        assert [s["snapshot_id"] for s in state["snapshots"]] == [snapshot_id]
        volumes, snapshots = ec2_ids(rig)
        assert volumes == {volume_id: "available"} and list(snapshots) == [snapshot_id]

        # 2. the first ams needs 2 s more; the second (LOCK_WAIT 30) waits for it, then deletes
        rig.faults.set_latency(2, "CreateSnapshot")
        thread, first = start_ams("--output", "json", "snapshot", "create", "volume", gid)
        wait_for_lock(engine, gid, "snapshot create")
        second = ok(run_ams_process("--output", "json", "volume", "delete", gid, env={"AMS_LOCK_WAIT": "30"}))
        thread.join()
        ok(first["result"])  # its CreateSnapshot, 2 s long, would have failed had the delete not waited
        state = rows(engine)
        (group,) = state["volume_groups"]
        assert group["state"] == "deleted" and group["lock_owner"] is None, group
        assert [g["state"] for g in state["snapshot_groups"]] in (["pending", "pending"], ["pending", "completed"],
                                                                 ["completed", "pending"], ["completed", "completed"])
        assert len(state["snapshots"]) == 2 and second.json["volume_ids"] == [volume_id]
        volumes, snapshots = ec2_ids(rig)
        assert volume_id not in volumes and sorted(snapshots) == sorted(s["snapshot_id"] for s in state["snapshots"])
    finally:
        engine.dispose()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the lock's SQL is proven on MariaDB above
def test_a_schedule_run_finding_its_group_busy_records_a_failed_run(ams_db, rig, db_url):
    engine = engine_of(db_url)
    try:
        gid, _ = make_volume_group(rig, db_url, volumes=1)
        sid = ok(ams_db("--output", "json", "snapshot", "schedule", "add", "volume", gid)).json["schedule_id"]
        rig.faults.set_latency(8, "DeleteVolume")
        thread, first = start_ams("volume", "delete", gid)
        owner = wait_for_lock(engine, gid, "volume delete")
        run = run_ams_process("--output", "json", "snapshot", "schedule", "run", sid, env={"AMS_LOCK_WAIT": "1"})
        thread.join()
        ok(first["result"])
        line = one_error(run, 11, f"1 of 1 schedule run(s) failed: schedule {sid}: "
                                  + BUSY.format(gid=gid, command="volume delete"))
        assert f"pid {group_locks.parse_owner(owner)['pid']} " in line
        state = rows(engine)
        (failed,) = state["schedule_runs"]
        assert failed["outcome"] == "failed" and failed["lease_until"] is None and failed["snapshot_group_id"] is None
        assert failed["error"].startswith(BUSY.format(gid=gid, command="volume delete")), failed
        assert state["snapshot_groups"] == [] and state["snapshots"] == []
        (group,) = state["volume_groups"]
        assert group["state"] == "deleted" and group["lock_owner"] is None
        assert ec2_ids(rig) == ({}, {})
    finally:
        engine.dispose()

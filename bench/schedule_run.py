#!/usr/bin/env python3
"""Benchmark one ``ams snapshot schedule run --purge`` (issue 10) on the test rig's EC2 endpoint.

    python bench/schedule_run.py [--schedules 500] [--snapshots 10000] [--expired 0.2]
                                 [--latency 0.05] [--workers N] [--db-url URL] [--json]

Goals (issue 10), with ``--latency`` (50 ms) injected on every EC2 call: EC2 calls at most 1.05x
the lower bound, and wall time at most 0.1 x calls x latency.

State (built untimed, then the rig's counters are reset):

- ``--schedules`` volume groups of 2 volumes each, attached nowhere, and one schedule with the
  default settings (1/1/1/1, 24/14/4/12/3) on each: 500 groups, 1,000 volumes.
- ``--snapshots`` existing snapshots: per schedule, groups of 2 snapshots taken by its hourly runs
  of the last hours (each with its succeeded ``schedule_runs`` row); a share ``--expired`` of
  them are the oldest groups, taken 25, 26, ... hours ago, so they expired (slot + 24 h) before
  now.  The run 5 hours ago (00:00) also served the day, week, month and year, so at "now"
  (``AMS_NOW`` 2027-03-10T05:10Z) exactly the hourly slot of every schedule is due.
- The volumes and the existing snapshots are made in moto's backend directly, in this process
  (``ec2_backends[account][region].create_volume/create_snapshot/create_tags``): 10,000
  CreateSnapshot calls through the API would take minutes, and volumes made that way have no
  backing file, so the rig copies no file when ams snapshots them (the bench measures ams, not
  the rig's disk images).  The database rows are written with executemany.

Measured: ``ams snapshot schedule run --purge`` in its own process, as cron runs it (this script
again with ``--child``: the CLI handler with a Context built as the CLI builds it, settings from
the environment only, output to a buffer), so the interpreter, the imports, the boto3 client, the
schema check and the output are included; the rig's moto keeps this process and its CPU.

- EC2 calls by action, counted by the rig on the server (every request that reaches moto);
- the lower bound: one CreateSnapshot per due volume (these groups are attached nowhere, so
  CreateSnapshots, which needs an instance, cannot serve them), one DeleteSnapshot per expired
  snapshot, and one describe per region (one page of the account's own AMIs is enough to know
  which snapshots they use, for an account with fewer than 1,000 AMIs);
- database round trips in the ams process: SQLAlchemy ``before_cursor_execute`` on every engine
  (BEGIN, SELECT, INSERT, UPDATE, ...) and commits;
- wall time of the ams process, the time of the purge (``snapshot_service.delete_expired``,
  timed by a wrapper; it runs alongside the snapshots), and wall against calls x latency.

The latency is a sleep on the server, so concurrent calls overlap as on EC2.

Last measured (2 shared cores, moto 5.x, defaults): EC2 calls 3,001 (CreateSnapshot 1,000,
DeleteSnapshot 2,000, DescribeImages 1) against a lower bound of 3,001: ratio 1.000 (goal <= 1.05:
met).  Database: 9,514 statements (BEGIN 2,505, UPDATE 2,501, SELECT 2,007, INSERT 1,500,
SAVEPOINT/RELEASE 500 each), 2,002 commits.  Wall 11.5 s against calls x latency 150 s: ratio
0.077 (goal <= 0.1, i.e. 15 s: met); MariaDB 13.9 s (0.092); with --latency 0, 9.1 s (the CPU of
the 3,001 calls in botocore and of the database work).  Before (session 2): 102.5 s, 0.68.  What
changed:

- the purge claims a region's expired groups in one transaction, deletes their snapshots in one
  batch of DELETE_WORKERS (16) parallel calls and records the outcome in one transaction (it
  deleted group after group: 68 ms each), and it runs while the snapshots are taken;
- DescribeImages lists the account's AMIs once when more than 200 snapshot ids are checked (it
  was called once per 200 ids);
- the schema is checked once per invocation (it re-read the migration scripts at every
  ``ctx.engine()``);
- the rig: moto looked up a resource's tags by scanning every tag of the region (half of this
  benchmark's CPU with 10,000 snapshots), and kept the tags of deleted snapshots; and ams ran in
  moto's process, sharing its GIL.
"""

import argparse
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

REGION = "us-east-1"
ZONE = "us-east-1a"
UTC = timezone.utc
NOW = datetime(2027, 3, 10, 5, 10, tzinfo=UTC)  # a Wednesday
SLOT = NOW.replace(minute=0)
CALLS_GOAL = 1.05
WALL_GOAL = 0.1
MEMBERS = 2


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Benchmark one 'ams snapshot schedule run --purge' on the test rig: many schedules "
                    "due, many snapshots, some expired, latency on every EC2 call.")
    parser.add_argument("--schedules", type=int, default=500,
                        help="schedules, each on its own group of 2 volumes (default 500)")
    parser.add_argument("--snapshots", type=int, default=10000, help="existing snapshots (default 10000)")
    parser.add_argument("--expired", type=float, default=0.2, help="share of them expired (default 0.2)")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds the rig adds to every EC2 call")
    parser.add_argument("--workers", type=int, default=None, help="SCHEDULE_WORKERS (default: ams's)")
    parser.add_argument("--db-url", default=None, help="an EMPTY database (default: a temporary SQLite file)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    opts = parser.parse_args(argv)
    per_schedule, rest = divmod(opts.snapshots, opts.schedules * MEMBERS)
    if opts.schedules < 1 or per_schedule < 1 or rest:
        parser.error(f"--snapshots must be a multiple of 2 x --schedules ({opts.schedules * MEMBERS})")
    expired, rest = divmod(round(opts.snapshots * opts.expired), opts.schedules * MEMBERS)
    if rest or not 0 <= expired < per_schedule:
        parser.error("--expired must leave whole groups per schedule, and at least one live group")
    if opts.latency < 0 or (opts.workers is not None and opts.workers < 1):
        parser.error("--latency must not be negative, --workers at least 1")
    opts.groups_per_schedule = per_schedule
    opts.expired_per_schedule = expired
    return opts


def say(message):
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# state

def build_state(rig, engine, opts):
    """EC2 volumes and snapshots in moto's backend, and every database row; returns a summary."""
    from moto.ec2.models import ec2_backends

    from amslib.schedule import service
    from amslib.store.schema import (schedule_runs, snapshot_groups, snapshot_schedules, snapshots, volume_groups,
                                     volumes)
    from tests.rig.ec2 import ACCOUNT_ID

    backend = ec2_backends[ACCOUNT_ID][REGION]
    started = time.monotonic()
    created = NOW - timedelta(days=30)
    vg_rows, vol_rows, sched_rows = [], [], []
    members = {}
    for gid in range(1, opts.schedules + 1):
        vg_rows.append({"id": gid, "raid_level": 0, "stripe_block_size": 256, "fs_type": "xfs", "region": REGION,
                        "availability_zone": ZONE, "state": "available", "created_at": created})
        members[gid] = []
        for index in range(MEMBERS):
            volume = backend.create_volume(size=1, zone_name=ZONE, volume_type="gp3")
            backend.create_tags([volume.id], {"ams:volume-group-id": str(gid), "ams:member-index": str(index)})
            members[gid].append(volume.id)
            vol_rows.append({"volume_id": volume.id, "volume_group_id": gid, "member_index": index, "size_gib": 1,
                             "volume_type": "gp3", "availability_zone": ZONE, "created_at": created})
        sched_rows.append({"id": gid, "resource_type": "volume", "volume_group_id": gid, "created_at": created,
                           "updated_at": created})
    # hours ago of each schedule's groups: the newest first, the expired ones 25, 26, ... hours ago
    live_hours = list(range(1, opts.groups_per_schedule - opts.expired_per_schedule + 1))
    expired_hours = list(range(25, 25 + opts.expired_per_schedule))
    if max(live_hours) >= 24:
        raise SystemExit("too many live groups per schedule for the hourly tier (at most 23)")
    day_run = (SLOT - SLOT.replace(hour=0)) // timedelta(hours=1)  # the run at 00:00 served the day, week, ...
    group_rows, snap_rows, run_rows = [], [], []
    sg_id = 0
    expired_groups = 0
    for gid in range(1, opts.schedules + 1):
        for hours_ago in sorted(live_hours + expired_hours, reverse=True):
            sg_id += 1
            slot = SLOT - timedelta(hours=hours_ago)
            expires = slot + timedelta(hours=24)
            expired_groups += expires <= NOW
            group_rows.append({"id": sg_id, "volume_group_id": gid, "region": REGION, "schedule_id": gid,
                               "retention_kind": "hourly", "created_at": slot + timedelta(minutes=10),
                               "state": "completed", "expires_at": expires, "raid_level": 0,
                               "stripe_block_size": 256, "fs_type": "xfs", "member_count": MEMBERS})
            for index, volume_id in enumerate(members[gid]):
                snap = backend.create_snapshot(volume_id, f"ams snapshot group {sg_id} of volume group {gid}")
                backend.create_tags([snap.id], {"ams:snapshot-group-id": str(sg_id), "ams:volume-group-id": str(gid),
                                                "ams:member-index": str(index)})
                snap_rows.append({"snapshot_id": snap.id, "snapshot_group_id": sg_id, "volume_id": volume_id,
                                  "member_index": index, "size_gib": 1, "region": REGION, "expires_at": expires,
                                  "created_at": slot + timedelta(minutes=10), "state": "completed",
                                  "progress": 100, "volume_type": "gp3"})
            run = {"schedule_id": gid, "slot": slot, "manual": False, "tiers": "hourly", "slot_hourly": slot,
                   "slot_daily": None, "slot_weekly": None, "slot_monthly": None, "slot_yearly": None,
                   "outcome": "succeeded", "snapshot_group_id": sg_id, "expires_at": expires,
                   "runner": "bench:0", "started_at": slot + timedelta(minutes=10),
                   "finished_at": slot + timedelta(minutes=10)}
            if hours_ago == day_run:
                run.update(slot_daily=SLOT.replace(hour=0), slot_weekly=SLOT.replace(hour=0) - timedelta(days=2),
                           slot_monthly=SLOT.replace(day=1, hour=0), slot_yearly=SLOT.replace(month=1, day=1, hour=0))
            run_rows.append(run)
    if day_run not in live_hours:
        raise SystemExit("the run at 00:00 must be among the live groups (keep at least 5 live groups per schedule)")
    with engine.begin() as conn:
        for table, rows in ((volume_groups, vg_rows), (volumes, vol_rows), (snapshot_schedules, sched_rows),
                            (snapshot_groups, group_rows), (snapshots, snap_rows), (schedule_runs, run_rows)):
            conn.execute(table.insert(), rows)
    assert len(service.RESOURCE_TYPES) == 3  # the service imports (and so do its stores)
    return {"volume_groups": len(vg_rows), "volumes": len(vol_rows), "schedules": len(sched_rows),
            "snapshot_groups": len(group_rows), "snapshots": len(snap_rows), "expired_groups": expired_groups,
            "expired_snapshots": expired_groups * MEMBERS, "build_s": time.monotonic() - started}


# ---------------------------------------------------------------------------------------------
# measurement

class DbCounter:
    """Cursor executions (by the statement's first word) and commits of every engine."""

    def __init__(self):
        self.statements = Counter()
        self.commits = 0
        self.enabled = False

    def before_cursor_execute(self, conn, cursor, statement, parameters, context, executemany):
        if self.enabled:
            words = statement.split(None, 1)
            self.statements[words[0].upper() if words else "?"] += 1

    def commit(self, conn):
        if self.enabled:
            self.commits += 1

    def install(self):
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        event.listen(Engine, "before_cursor_execute", self.before_cursor_execute)
        event.listen(Engine, "commit", self.commit)


def measure(rig, environ, opts):
    """One 'ams snapshot schedule run --purge' at NOW in its own process (as cron runs it: the
    rig's moto keeps this process's CPU, ams gets its own): the process's wall time, calls,
    round trips, purge time and result."""
    # moto loads EC2's service model on its first request (about a second of the rig's CPU,
    # not ams's): one untimed call before the run
    rig.client(region=REGION, internal=True).describe_regions()
    rig.reset_counts()
    rig.faults.set_latency(opts.latency)
    with tempfile.NamedTemporaryFile(prefix="ams-bench-child-", suffix=".json") as report:
        env = dict(environ, AMS_NOW=NOW.strftime("%Y-%m-%dT%H:%M:%SZ"), PYTHONPATH=ROOT)
        try:
            started = time.monotonic()
            done = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", report.name],
                                  env=env, capture_output=True, text=True)
            wall = time.monotonic() - started
        finally:
            rig.faults.set_latency(0)
        if done.returncode != 0:
            raise SystemExit(f"schedule run exited {done.returncode}: {done.stderr.strip()[-2000:]}")
        with open(report.name) as f:
            child = json.load(f)
    return dict(child, wall=wall, calls=rig.counts(region=REGION))


def child_main(report_path):
    """The measured process: the CLI handler with a Context built as the CLI builds it (settings
    from this environment only), database statements counted, the purge timed."""
    began = time.monotonic()
    from amslib.cli import main as cli_main
    from amslib.cli.context import Context
    from amslib.core.settings import load_settings
    from amslib.ebs import snapshot_service

    db = DbCounter()
    db.install()
    purge_time = []
    original = snapshot_service.delete_expired

    def timed_delete_expired(*args, **kwargs):  # the purge, timed (ams's own function runs)
        started = time.monotonic()
        try:
            return original(*args, **kwargs)
        finally:
            purge_time.append(time.monotonic() - started)

    snapshot_service.delete_expired = timed_delete_expired
    settings = load_settings(environ=dict(os.environ), path=os.devnull)  # no settings file
    args = cli_main.parse_args(cli_main.build_parser(), ["--output", "json", "snapshot", "schedule", "run", "--purge"])
    out, err = io.StringIO(), io.StringIO()
    db.enabled = True
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli_main.run(args, context_factory=lambda parsed: Context(parsed, settings=settings))
    if code != 0:
        print(err.getvalue(), file=sys.stderr)
        return code
    with open(report_path, "w") as f:
        json.dump({"inner_wall": time.monotonic() - began, "purge": sum(purge_time),
                   "db_statements": dict(db.statements), "db_commits": db.commits,
                   "schedule_workers": settings.SCHEDULE_WORKERS, "result": json.loads(out.getvalue())}, f)
    return 0


def check_outcome(rig, engine, state, opts, result):
    """What the run must have done: every schedule's slot taken, every expired group deleted."""
    from sqlalchemy import func, select

    from amslib.store.schema import snapshot_groups

    runs = result["runs"]
    succeeded = [r for r in runs if r["outcome"] == "succeeded"]
    deleted = [p for p in result["purge"] if p["deleted"]]
    problems = []
    if len(succeeded) != opts.schedules:
        problems.append(f"{len(succeeded)} of {opts.schedules} schedules taken")
    if len(deleted) != state["expired_groups"]:
        problems.append(f"{len(deleted)} of {state['expired_groups']} expired groups deleted")
    with engine.connect() as conn:
        live = conn.execute(select(func.count()).select_from(snapshot_groups)
                            .where(snapshot_groups.c.deleted_at.is_(None))).scalar()
    wanted = state["snapshot_groups"] - state["expired_groups"] + opts.schedules
    if live != wanted:
        problems.append(f"{live} live snapshot groups in the database, expected {wanted}")
    from moto.ec2.models import ec2_backends

    from tests.rig.ec2 import ACCOUNT_ID

    in_ec2 = len(ec2_backends[ACCOUNT_ID][REGION].snapshots)  # moto's DescribeSnapshots of 10,000 is slow
    if in_ec2 != wanted * MEMBERS:
        problems.append(f"{in_ec2} snapshots in EC2, expected {wanted * MEMBERS}")
    return problems


def main(argv=None):
    opts = parse_args(argv)
    from amslib.store.db import create_engine
    from amslib.store.migrate import install
    from tests.rig.ec2 import Ec2Rig

    workdir = tempfile.mkdtemp(prefix="ams-bench-schedule-")
    rig = Ec2Rig(state_dir=os.path.join(workdir, "rig"))
    engine = None
    try:
        rig.start()
        for name in Ec2Rig.ENV_TO_UNSET:
            os.environ.pop(name, None)
        os.environ.update(rig.env(REGION))  # boto3 reads the endpoint and keys from here
        rig.timing.set(volume_create=0, snapshot=0)  # new snapshots complete at once (nothing waits)
        db_url = opts.db_url or f"sqlite:///{workdir}/ams.db"
        environ = dict(rig.env(REGION), AMS_DB_URL=db_url, PATH=os.environ.get("PATH", ""),
                       HOME=os.environ.get("HOME", "/"))
        if opts.workers is not None:
            environ["AMS_SCHEDULE_WORKERS"] = str(opts.workers)
        engine = create_engine(db_url)
        install(engine)
        say(f"rig at {rig.url}; building {opts.schedules} schedules, {opts.schedules * MEMBERS} volumes, "
            f"{opts.snapshots} snapshots ({opts.expired:.0%} expired) ...")
        state = build_state(rig, engine, opts)
        say(f"built in {state['build_s']:.1f} s; running 'ams snapshot schedule run --purge' with "
            f"{opts.latency * 1000:.0f} ms per EC2 call ...")
        run = measure(rig, environ, opts)
        say(f"wall {run['wall']:.2f} s (purge {run['purge']:.2f} s); checking the outcome ...")
        problems = check_outcome(rig, engine, state, opts, run["result"])
    finally:
        rig.stop()
        if engine is not None:
            engine.dispose()
        shutil.rmtree(workdir, ignore_errors=True)

    calls = dict(sorted(run["calls"].items()))
    total = sum(calls.values())
    due_volumes = opts.schedules * MEMBERS
    bound = {"CreateSnapshot": due_volumes, "DeleteSnapshot": state["expired_snapshots"], "describes": 1}
    bound_total = sum(bound.values())
    serial = total * opts.latency
    result = {
        "latency_s": opts.latency,
        "schedule_workers": run["schedule_workers"],
        "state": state,
        "calls": calls,
        "calls_total": total,
        "lower_bound": bound,
        "lower_bound_total": bound_total,
        "calls_ratio": total / bound_total,
        "calls_goal_met": total <= CALLS_GOAL * bound_total,
        "db_statements": dict(Counter(run["db_statements"]).most_common()),
        "db_round_trips": sum(run["db_statements"].values()),
        "db_commits": run["db_commits"],
        "wall_s": run["wall"],
        "wall_in_process_s": run["inner_wall"],
        "purge_s": run["purge"],
        "calls_x_latency_s": serial,
        "wall_ratio": run["wall"] / serial if serial else None,
        "wall_goal_met": bool(serial) and run["wall"] <= WALL_GOAL * serial,
        "problems": problems,
    }
    if opts.json:
        json.dump(result, sys.stdout, indent=2)
        print()
        return 1 if problems else 0

    print()
    print(f"'ams snapshot schedule run --purge' at {NOW:%Y-%m-%d %H:%M}Z: {opts.schedules} schedules due "
          f"({due_volumes} volumes), {state['expired_groups']} expired groups ({state['expired_snapshots']} "
          f"snapshots) of {state['snapshot_groups']} ({state['snapshots']} snapshots)")
    print(f"latency {opts.latency * 1000:.0f} ms per EC2 call; SCHEDULE_WORKERS {run['schedule_workers']}; "
          f"database {'SQLite (temporary file)' if not opts.db_url else 'given'}")
    print()
    width = 26
    print(f"  {'EC2 calls (server side)':<{width}} {'count':>7} {'lower bound':>12}")
    for action, count in calls.items():
        low = bound.get(action, "")
        print(f"  {action:<{width}} {count:>7} {low:>12}")
    print(f"  {'(describes, any)':<{width}} {'':>7} {bound['describes']:>12}")
    print(f"  {'total':<{width}} {total:>7} {bound_total:>12}   ratio {result['calls_ratio']:.3f} "
          f"(goal <= {CALLS_GOAL}: {'met' if result['calls_goal_met'] else 'NOT met'})")
    print()
    stmts = ", ".join(f"{k} {v}" for k, v in result["db_statements"].items())
    print(f"  database round trips {result['db_round_trips']} ({stmts}); commits {run['db_commits']}")
    print()
    print(f"  wall {run['wall']:.2f} s of the ams process (from its start: {run['inner_wall']:.2f} s after "
          f"its interpreter started); the purge, alongside the snapshots, {run['purge']:.2f} s")
    if serial:
        print(f"  calls x latency {serial:.2f} s; wall / (calls x latency) {result['wall_ratio']:.3f} "
              f"(goal <= {WALL_GOAL}: {'met' if result['wall_goal_met'] else 'NOT met'})")
    else:
        print("  no latency: the wall goal does not apply")
    if problems:
        print()
        print("PROBLEMS: " + "; ".join(problems))
        return 1
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        sys.exit(child_main(sys.argv[2]))
    sys.exit(main())

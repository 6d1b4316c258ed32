#!/usr/bin/env python3
"""Benchmark the EC2 phase of ``ams volume create`` (issue 8) on the test rig's EC2 endpoint.

    python bench/volume_create.py [--volumes 8] [--repeat 3] [--latency 0.2]
                                  [--waiter-delay SECONDS] [--size 10] [--warmup 1] [--json]

Goal (issue 8): with 200 ms of latency on every EC2 call, the EC2 phase of an 8-volume RAID0
create takes at most 1.5x the EC2 phase of a single-volume create.

The EC2 phase is the first four steps of the plan ``volume_service.create`` runs: CreateVolumes,
WaitAvailable, AttachVolumes, WaitAttached.  They are ams's own actions, built by
``volume_plans.plan_create`` from the requests ``volume_service._create_requests`` makes, and run
by ``runner.run_plan`` with a real ``amslib.aws.ebs.Ebs`` adapter (``AwsClients`` with
``load_settings()`` in the rig's environment) and a fresh SQLite database (``migrate.install``),
so the database writes of the actions are included.  The host phase (devices, mdadm, mkfs,
mount) is not: the instance is a plain rig instance, no guest.

Each run registers a new instance in us-east-1a (and its hosts row), and then, untimed, does what
create does before its plan: DescribeInstances (which also creates the boto3 client and opens a
connection), free device names, the volume group row.  The server-side counter of the rig is
reset and only then is the EC2 phase timed.  Runs alternate between the cases (1, N, 1, N, ...)
so that a change in the machine's load hits both; the median of ``--repeat`` runs is reported.
``--warmup`` untimed single-volume runs come first (imports, first connections).

The latency is the rig's (``faults.set_latency``): the server sleeps before it answers every EC2
request, DescribeVolumes of the waiters included.  The rig's timing (``rig.timing``: a volume is
"creating", an attachment "attaching" for a while) is left at its defaults and reported.  moto
runs in this process (the rig's threaded server), so its CPU shares the GIL with ams.

Calls by action are counted by the rig on the server (every request that reaches moto).
``--waiter-delay`` overrides the adapter's poll interval (``Ebs(waiter_delay=...)``; default
ams's ``amslib.aws.ebs.WAITER_DELAY``) to show how much of the phase is waiting.

Last measured (2 shared cores, moto 5.2.5, defaults: --latency 0.2 --repeat 3, waiter delay 1 s,
rig timing volume_create 0.3 s / attach 0.3 s): 1 volume 3.26 s, 8 volumes 3.37 s, ratio 1.03
(goal <= 1.5: met).  Per run: 1 volume CreateVolume 1, DescribeVolumes 4, AttachVolume 1;
8 volumes CreateVolume 8, DescribeVolumes 4, AttachVolume 8.  Steps (1 / 8 volumes): create
0.21 / 0.25 s, wait available 1.42 / 1.43 s, attach 0.21 / 0.25 s, wait attached 1.42 / 1.44 s.
Single runs: --waiter-delay 0.25 gives 1.88 s / 1.86 s; --volumes 16 gives 3.90 s (ratio 1.18:
create and attach take two rounds of the adapter's 8 workers, 0.50 s each).
"""

import argparse
import inspect
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

REGION = "us-east-1"
ZONE = "us-east-1a"
GOAL = 1.5
EC2_STEPS = ("CreateVolumes", "WaitAvailable", "AttachVolumes", "WaitAttached")
ACTION_ORDER = ("CreateVolume", "DescribeVolumes", "AttachVolume")  # as the phase calls them


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Benchmark the EC2 phase of 'ams volume create' (create, wait, attach, wait) "
                    "on the test rig: an N-volume RAID0 group against a single volume.")
    parser.add_argument("--volumes", type=int, default=8,
                        help="members of the RAID0 case, 2-24 (default 8)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per case; the median is reported (default 3)")
    parser.add_argument("--latency", type=float, default=0.2,
                        help="seconds the rig adds to every EC2 call (default 0.2)")
    parser.add_argument("--waiter-delay", type=float, default=None,
                        help="seconds between the waiters' DescribeVolumes (default: ams's WAITER_DELAY)")
    parser.add_argument("--size", type=int, default=10, help="GiB per volume, gp3 (default 10; files are sparse)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed single-volume runs first (default 1)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    opts = parser.parse_args(argv)
    if not 2 <= opts.volumes <= 24:
        parser.error("--volumes must be 2-24 (RAID0 needs at least 2 members; ams allows at most 24)")
    if opts.repeat < 1:
        parser.error("--repeat must be at least 1")
    if opts.latency < 0 or opts.warmup < 0 or opts.size < 1:
        parser.error("--latency and --warmup must not be negative, --size at least 1")
    if opts.waiter_delay is not None and opts.waiter_delay <= 0:
        parser.error("--waiter-delay must be positive")
    return opts


def say(message):
    print(message, file=sys.stderr, flush=True)


class Bench:
    """The rig, the database and the settings shared by every run."""

    def __init__(self, rig, engine, settings, opts, waiter_delay):
        self.rig = rig
        self.engine = engine
        self.settings = settings
        self.opts = opts
        self.waiter_delay = waiter_delay
        self.serial = 0

    def new_target(self, label):
        """A new plain instance in ZONE, with its hosts row (foreign keys hold)."""
        from amslib.ebs.volume_plans import Target
        from amslib.store.hosts import insert_host
        from amslib.store.types import utcnow

        self.serial += 1
        name = f"bench-{label}-{self.serial}"
        instance_id = self.rig.register_instance(None, zone=ZONE, name=name)
        now = utcnow()
        with self.engine.begin() as conn:
            insert_host(conn, {
                "instance_id": instance_id, "hostname": name, "hostname_source": "user", "name": name,
                "region": REGION, "availability_zone": ZONE, "instance_type": "t3.micro",
                "state": "running", "created_at": now, "updated_at": now,
            })
        return Target(instance_id, name, ZONE, REGION)

    def run_once(self, count):
        """One create's EC2 phase with ``count`` volumes: {wall, steps, calls}."""
        from amslib.aws.clients import AwsClients
        from amslib.aws.ebs import Ebs
        from amslib.ebs import params, volume_plans, volume_service
        from amslib.ebs.runner import Execution, run_plan
        from amslib.hostdisk import filesystem, raid
        from amslib.store import volume_groups as store
        from amslib.store.types import utcnow

        # what volume_service.create checks and prepares before its plan (untimed)
        spec = params.check_volume_spec("gp3", self.opts.size)
        level = raid.check_raid(0, params.check_count(count))  # the CLI's default level: 0 (None for 1)
        chunk = raid.check_chunk(256)
        fs_type = filesystem.check_filesystem("xfs")
        target = self.new_target(f"{count}vol")
        ebs = Ebs(AwsClients(self.settings), target.region, waiter_delay=self.waiter_delay)
        instance_info = volume_service._running_instance(ebs, target)  # DescribeInstances: client made
        with self.engine.connect() as conn:
            device_names = volume_service._free_devices(conn, instance_info, count)
        request = volume_plans.CreateRequest(
            target=target, count=count, spec=spec, raid_level=level, chunk_kib=chunk, fs_type=fs_type,
            mount_point=None, automount=False, tags={}, device_names=tuple(device_names),
        )
        with self.engine.begin() as conn:
            group_id = store.insert_group(conn, {
                "raid_level": level, "stripe_block_size": chunk if level not in (None, 1) else None,
                "fs_type": fs_type, "region": target.region, "availability_zone": target.zone,
                "state": "creating", "tags": None, "created_at": utcnow(),
            })
        plan = volume_plans.plan_create(request, group_id, volume_service._create_requests(request, group_id))
        ec2_plan = plan[:len(EC2_STEPS)]
        found = tuple(type(action).__name__ for action in ec2_plan)
        if found != EC2_STEPS:
            raise SystemExit(f"plan_create no longer starts with {', '.join(EC2_STEPS)}: {', '.join(found)}")

        stamps = []  # run_plan reports each step as it starts
        ex = Execution(engine=self.engine, ec2=ebs, progress=lambda message: stamps.append(time.monotonic()))
        self.rig.reset_counts()
        started = time.monotonic()
        run_plan(ec2_plan, ex)
        ended = time.monotonic()
        calls = self.rig.counts(region=REGION)

        attached = ex.state.get("attached", {})
        if len(ex.state.get("volume_ids", [])) != count or len(attached) != count:
            raise SystemExit(f"{count}-volume run: {len(attached)} of {count} volumes attached")
        bounds = stamps[:len(EC2_STEPS)] + [ended]
        steps = {name: bounds[i + 1] - bounds[i] for i, name in enumerate(EC2_STEPS)}
        return {"wall": ended - started, "steps": steps, "calls": calls, "group_id": group_id,
                "instance_id": target.instance_id, "volume_ids": ex.state["volume_ids"]}


def summarize(count, runs):
    walls = [r["wall"] for r in runs]
    seen = {a for r in runs for a in r["calls"]}
    actions = [a for a in ACTION_ORDER if a in seen] + sorted(seen - set(ACTION_ORDER))
    calls = {}
    for action in actions:
        values = [r["calls"].get(action, 0) for r in runs]
        calls[action] = {"min": min(values), "max": max(values), "median": statistics.median(values)}
    totals = [sum(r["calls"].values()) for r in runs]
    return {
        "volumes": count,
        "raid_level": None if count == 1 else 0,
        "runs": len(runs),
        "wall_s": {"median": statistics.median(walls), "min": min(walls), "max": max(walls), "all": walls},
        "steps_median_s": {name: statistics.median(r["steps"][name] for r in runs) for name in EC2_STEPS},
        "calls": calls,
        "calls_total": {"min": min(totals), "max": max(totals), "median": statistics.median(totals)},
    }


def _calls_text(entry):
    low, high = entry["min"], entry["max"]
    return f"{low}" if low == high else f"{low}-{high}"


def print_case(case):
    kind = "single volume" if case["volumes"] == 1 else f"RAID0 of {case['volumes']}"
    wall = case["wall_s"]
    print(f"{case['volumes']} volume(s) ({kind}), {case['runs']} run(s): EC2 phase median {wall['median']:.2f} s "
          f"(min {wall['min']:.2f}, max {wall['max']:.2f})")
    width = 24
    print(f"  {'step':<{width}} {'median s':>9}")
    for name, seconds in case["steps_median_s"].items():
        print(f"  {name:<{width}} {seconds:>9.2f}")
    print(f"  {'EC2 phase':<{width}} {wall['median']:>9.2f}")
    print(f"  {'EC2 calls (server side)':<{width}} {'per run':>9}")
    for action, entry in case["calls"].items():
        print(f"  {action:<{width}} {_calls_text(entry):>9}")
    print(f"  {'total':<{width}} {_calls_text(case['calls_total']):>9}")
    print()


def main(argv=None):
    opts = parse_args(argv)
    from amslib.aws import ebs as ebs_mod
    from amslib.core.settings import load_settings
    from amslib.store.db import create_engine
    from amslib.store.migrate import install
    from tests.rig.ec2 import Ec2Rig

    waiter_delay = ebs_mod.WAITER_DELAY if opts.waiter_delay is None else opts.waiter_delay
    workdir = tempfile.mkdtemp(prefix="ams-bench-create-")
    rig = Ec2Rig(state_dir=os.path.join(workdir, "rig"))
    engine = None
    try:
        rig.start()
        for name in Ec2Rig.ENV_TO_UNSET:
            os.environ.pop(name, None)
        os.environ.update(rig.env(REGION))  # boto3 reads the endpoint and keys from here
        db_url = f"sqlite:///{workdir}/ams.db"
        # the rig's environment only: no settings file, no AMS_* of the caller's shell
        settings = load_settings(environ=dict(rig.env(REGION), AMS_DB_URL=db_url), path=os.devnull)
        engine = create_engine(settings.db_url)
        install(engine)
        timing = getattr(rig, "timing", None)
        timing = timing.as_dict() if hasattr(timing, "as_dict") else None
        rig.faults.set_latency(opts.latency)
        bench = Bench(rig, engine, settings, opts, waiter_delay)

        say(f"rig at {rig.url}; latency {opts.latency * 1000:.0f} ms/call, waiter delay {waiter_delay:g} s, "
            f"rig timing {timing}")
        for n in range(opts.warmup):
            run = bench.run_once(1)
            say(f"warm-up {n + 1}: {run['wall']:.2f} s")
        cases = (1, opts.volumes)
        runs = {count: [] for count in cases}
        for n in range(opts.repeat):
            for count in cases:
                run = bench.run_once(count)
                runs[count].append(run)
                say(f"run {n + 1}/{opts.repeat}, {count} volume(s): {run['wall']:.2f} s "
                    + " ".join(f"{k}={v:.2f}" for k, v in run["steps"].items()))
    finally:
        rig.stop()  # removes the rig's state dir (volume files)
        if engine is not None:
            engine.dispose()
        shutil.rmtree(workdir, ignore_errors=True)

    single, multi = (summarize(count, runs[count]) for count in cases)
    ratio = multi["wall_s"]["median"] / single["wall_s"]["median"]
    result = {
        "latency_s": opts.latency,
        "waiter_delay_s": waiter_delay,
        "ams_waiter_delay_s": ebs_mod.WAITER_DELAY,
        "max_workers": inspect.signature(ebs_mod.Ebs).parameters["max_workers"].default,
        "retry_mode": settings.AWS_RETRY_MODE,
        "max_attempts": settings.AWS_MAX_ATTEMPTS,
        "rig_timing_s": timing,
        "repeat": opts.repeat,
        "cases": [single, multi],
        "ratio": ratio,
        "goal": GOAL,
        "goal_met": ratio <= GOAL,
    }
    if opts.json:
        json.dump(result, sys.stdout, indent=2)
        print()
        return 0

    print()
    timing_text = ", ".join(f"{k} {v:g} s" for k, v in timing.items()) if timing else "not configurable (instant)"
    print(f"EC2 phase of 'ams volume create' (CreateVolumes, WaitAvailable, AttachVolumes, WaitAttached) "
          f"in {ZONE}")
    print(f"latency {opts.latency * 1000:.0f} ms per EC2 call; waiter delay {waiter_delay:g} s "
          f"(ams's WAITER_DELAY {ebs_mod.WAITER_DELAY:g} s); retry mode {settings.AWS_RETRY_MODE}; "
          f"rig timing: {timing_text}")
    print()
    print_case(single)
    print_case(multi)
    verdict = "met" if result["goal_met"] else "NOT met"
    print(f"ratio {opts.volumes}-volume / 1-volume EC2 phase (medians): {ratio:.2f}  "
          f"(goal <= {GOAL:g}: {verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Benchmark host discovery against moto's EC2 server (a separate process on 127.0.0.1).

    python bench/discovery.py [--instances 10000] [--regions 4] [--per-reservation 25]
                              [--latency 0.05] [--db-url mysql+pymysql://root@127.0.0.1/empty_db]

Creates the instances spread over the regions (and three zones each), then measures:

* listing alone: ams's own listing code (the describe_instances paginator in every
  region, records built) with no database at all;
* discovery, first pass: the same listing plus planning and writing every host;
* discovery after 10% of the instances were terminated (the other 90% unchanged).

For each: EC2 calls (client side, ``before-call.ec2.*``), database round trips
(SQLAlchemy ``before_cursor_execute``), wall time, the part of it spent listing
(ams's ``list_regions``, timed inside discovery too) and the rest (planning and
the database), the rest as a share of the listing in the same pass, and wall
time as a ratio of the listing-only pass.  ``--latency`` sleeps
that many seconds before every EC2 request (a ``before-send`` hook) to resemble
a real endpoint.  The database is a fresh SQLite file unless ``--db-url`` names
an empty database.

moto runs in a separate process, so its CPU is not charged to ams's process.
Its rendering and botocore's parsing of the answers cost about 4 ms of CPU per
instance listed: that, not ams, dominates the wall time here.

moto pages DescribeInstances by reservation (AWS pages by instance): with the
default 25 instances per reservation and ams's page size of 1000, every region
is one page.  Use ``--page-size`` to force more pages.
"""

import argparse
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

ALL_REGIONS = ["us-east-1", "us-west-2", "eu-west-1", "ap-southeast-2", "eu-central-1", "sa-east-1"]


class Counter:
    def __init__(self):
        self.count = 0

    def __call__(self, *args, **kwargs):
        self.count += 1


def parse_args(argv):
    parser = argparse.ArgumentParser(description="Benchmark ams host discovery against moto.")
    parser.add_argument("--instances", type=int, default=10000, help="instances in total (default 10000)")
    parser.add_argument("--regions", type=int, default=4, choices=range(1, len(ALL_REGIONS) + 1),
                        help="regions to spread them over (default 4)")
    parser.add_argument("--per-reservation", type=int, default=25,
                        help="instances per run_instances call (default 25)")
    parser.add_argument("--page-size", type=int, default=None, help="DescribeInstances MaxResults (default: ams's)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every EC2 answer")
    parser.add_argument("--db-url", default=None, help="an EMPTY database to use (default: a temporary SQLite file)")
    return parser.parse_args(argv)


ACCESS_KEY = "AKIABENCHTESTING0000"
SECRET_KEY = "bench-secret-key-not-a-real-one"


# moto's own entry point runs Flask in debug mode and logs every request: slower
MOTO_SERVER = """
import logging, sys, threading
from moto.server import ThreadedMotoServer
logging.getLogger("werkzeug").setLevel(logging.ERROR)
ThreadedMotoServer(ip_address="127.0.0.1", port=int(sys.argv[1]), verbose=False).start()
threading.Event().wait()
"""


def free_port():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_moto():
    """moto's server in a child process; returns (process, endpoint url)."""
    import subprocess

    port = free_port()
    env = dict(os.environ, MOTO_EC2_LOAD_DEFAULT_AMIS="false")
    proc = subprocess.Popen(
        [sys.executable, "-c", MOTO_SERVER, str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    return proc, f"http://127.0.0.1:{port}"


def wait_ready(proc, url):
    import urllib.request

    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1).read()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"moto's server at {url} did not start")
            time.sleep(0.2)


def create_instances(endpoints, total, per_reservation):
    """Create the instances, region after region (moto's server is busy enough with one)."""
    regions = list(endpoints)
    per_region = [total // len(regions) + (1 if i < total % len(regions) else 0) for i in range(len(regions))]
    started = time.monotonic()
    ids = {region: create_in_region(endpoints[region], region, count, per_reservation)
           for region, count in zip(regions, per_region)}
    return ids, time.monotonic() - started


def create_in_region(url, region, count, per_reservation):
    import boto3

    ec2 = boto3.session.Session().client("ec2", region_name=region, endpoint_url=url)
    ids = []
    made = 0
    batch = 0
    while made < count:
        n = min(per_reservation, count - made)
        zone = region + "abc"[batch % 3]
        answer = ec2.run_instances(
            ImageId="ami-0123456789abcdef0", MinCount=n, MaxCount=n, InstanceType="m5.large",
            Placement={"AvailabilityZone": zone},
            TagSpecifications=[{"ResourceType": "instance",
                                "Tags": [{"Key": "Name", "Value": f"{region}-node-{batch}"},
                                         {"Key": "team", "Value": "bench"}]}],
        )
        ids.extend(i["InstanceId"] for i in answer["Instances"])
        made += n
        batch += 1
    return ids


def terminate_share(endpoints, ids, share):
    import boto3

    for region, region_ids in ids.items():
        chosen = region_ids[: int(len(region_ids) * share)]
        ec2 = boto3.session.Session().client("ec2", region_name=region, endpoint_url=endpoints[region])
        for start in range(0, len(chosen), 1000):
            ec2.terminate_instances(InstanceIds=chosen[start : start + 1000])


def run(opts, endpoints, db_url):
    from sqlalchemy import event

    from amslib.aws.clients import AwsClients
    from amslib.core.settings import load_settings
    from amslib.instance import discovery
    from amslib.store.db import create_engine
    from amslib.store.migrate import install

    regions = list(endpoints)
    print(f"creating {opts.instances} instances in {', '.join(regions)} "
          f"({opts.per_reservation} per reservation) ...", file=sys.stderr, flush=True)
    ids, creation = create_instances(endpoints, opts.instances, opts.per_reservation)
    print(f"created in {creation:.1f} s", file=sys.stderr, flush=True)

    settings = load_settings(environ={"AMS_DB_URL": db_url}, path=os.devnull)
    engine = create_engine(db_url)
    install(engine)
    db_calls = Counter()
    event.listen(engine, "before_cursor_execute", db_calls)

    # time the listing phase inside discovery, so the rest is what the database part costs
    listing_time = [0.0]
    real_list_regions = discovery.list_regions

    def timed_list_regions(*args, **kwargs):
        started = time.monotonic()
        try:
            return real_list_regions(*args, **kwargs)
        finally:
            listing_time[0] += time.monotonic() - started

    discovery.list_regions = timed_list_regions

    def slow_down(**kwargs):
        time.sleep(opts.latency)  # returning None lets the request go ahead

    results = []

    def measure(label, work):
        aws = AwsClients(settings)  # fresh clients per scenario
        ec2_calls = Counter()
        aws.session.events.register("before-call.ec2.*", ec2_calls)
        if opts.latency:
            aws.session.events.register("before-send.ec2.*", slow_down)
        db_calls.count = 0
        listing_time[0] = 0.0
        started = time.monotonic()
        outcome = work(aws)
        wall = time.monotonic() - started
        results.append((label, ec2_calls.count, db_calls.count, wall, listing_time[0], outcome))
        print(f"{label}: {wall:.1f} s", file=sys.stderr, flush=True)

    def listing(aws):
        found = discovery.list_regions(aws, regions)
        return f"{sum(len(r) for r in found.values())} listed"

    def discover(aws):
        totals = discovery.discover(engine, aws, settings, regions=regions).totals()
        return (f"added {totals.added}, updated {totals.updated}, terminated {totals.terminated}, "
                f"unchanged {totals.unchanged}")

    measure("listing only (no database)", listing)
    measure("discovery, first pass", discover)
    terminate_share(endpoints, ids, 0.10)
    measure("discovery, 10% terminated", discover)
    backend = engine.url.get_backend_name()
    engine.dispose()
    discovery.list_regions = real_list_regions
    return results, backend


def main(argv=None):
    opts = parse_args(argv)
    from amslib.instance import discovery

    if opts.page_size:
        discovery.PAGE_SIZE = opts.page_size
    regions = ALL_REGIONS[: opts.regions]
    workdir = tempfile.mkdtemp(prefix="ams-bench-")
    db_url = opts.db_url or f"sqlite:///{workdir}/ams.db"
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL",
                 "AWS_ENDPOINT_URL_EC2"):
        os.environ.pop(name, None)
    os.environ.update(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY,
                      AWS_EC2_METADATA_DISABLED="true",
                      AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    proc, url = start_moto()
    os.environ["AWS_ENDPOINT_URL"] = url
    try:
        wait_ready(proc, url)
        results, backend = run(opts, {region: url for region in regions}, db_url)
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    base = results[0][3]
    print()
    print(f"{opts.instances} instances, {len(regions)} regions, {opts.per_reservation} per reservation, "
          f"page size {discovery.PAGE_SIZE}, latency {opts.latency * 1000:.0f} ms/call, database {backend}")
    header = (f"{'scenario':<28} {'EC2 calls':>9} {'DB round trips':>14} {'wall s':>7} {'listing s':>9} "
              f"{'rest s':>7} {'rest/listing':>12} {'x listing-only':>14}  result")
    print(header)
    print("-" * len(header))
    for label, ec2_count, db_count, wall, listed, outcome in results:
        listed = wall if label.startswith("listing") else listed
        rest = wall - listed
        print(f"{label:<28} {ec2_count:>9} {db_count:>14} {wall:>7.2f} {listed:>9.2f} {rest:>7.2f} "
              f"{rest / listed:>11.1%} {wall / base:>14.2f}  {outcome}")
    print("listing s: ams's listing code inside this pass; rest s: planning and the database;\n"
          "rest/listing: the database overhead within one pass (robust when the machine is busy);\n"
          "x listing-only: this pass's wall time over the listing-only pass.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

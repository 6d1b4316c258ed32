"""Host discovery: list every instance of the chosen regions and sync the hosts table.

Regions: ``--region`` (comma list), else settings AWS_REGIONS, else every
region enabled for the account (DescribeRegions).  Chosen regions are checked
twice: their shape before anything else (no AWS call), then against the
account's DescribeRegions answer before any instance is listed.  Regions are listed in
parallel through the ``describe_instances`` paginator; nothing is written
until every region answered, and then everything is written in one
transaction: one SELECT of the hosts table, the new and changed rows as a bulk
upsert, one UPDATE for the hosts that disappeared, one to record that the rest
were seen.  The rules are in :mod:`amslib.instance.reconcile`.
"""

import logging
from concurrent.futures import ThreadPoolExecutor

from ..aws.clients import aws_errors
from ..core.errors import ConfigError, UsageError
from ..store import hosts as store
from ..store.types import utcnow
from .reconcile import parse_hostname_rule, plan_discovery, record_from_instance
from .validation import check_region

log = logging.getLogger("ams.instance.discovery")

PAGE_SIZE = 1000  # DescribeInstances MaxResults: the largest page AWS allows
MAX_PARALLEL_REGIONS = 8


def checked_setting_regions(names):
    """AWS_REGIONS from settings, each a well-formed region name (ConfigError otherwise)."""
    out = []
    for name in names:
        try:
            out.append(check_region(str(name)))
        except UsageError:
            raise ConfigError(f"AWS_REGIONS: invalid region {name!r}: expected a name such as us-west-2") from None
    return out


def list_region(ec2, region, page_size=None):
    """Every instance of ``region`` as host records, and the number of pages it took."""
    records = []
    pages = 0
    paginator = ec2.get_paginator("describe_instances")
    with aws_errors(f"DescribeInstances in {region}"):
        for page in paginator.paginate(PaginationConfig={"PageSize": page_size or PAGE_SIZE}):
            pages += 1
            for reservation in page.get("Reservations", []):
                for instance in reservation.get("Instances", []):
                    records.append(record_from_instance(instance, region))
    return records, pages


def list_regions(aws, regions, progress=None, lister=None, noun="instance"):
    """{region: records} for every region, listed in parallel; any failure aborts.

    ``lister(region)`` -> (records, pages); default: the instances of the region."""
    discovered = {}

    def one(region):
        return region, (lister(region) if lister else list_region(aws.ec2(region), region))

    pool = ThreadPoolExecutor(max_workers=max(1, min(MAX_PARALLEL_REGIONS, len(regions))))
    try:
        for region, (records, pages) in pool.map(one, regions):
            discovered[region] = records
            if progress:
                progress(f"{region}: {len(records)} {noun}(s) in {pages} page(s)")
    except BaseException:  # a failed region or Ctrl-C: do not start the regions still queued
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return discovered


def discover(engine, aws, settings, regions=None, dry_run=False, progress=None):
    """Run one discovery pass; return the plan (with per-region summaries)."""
    sources = parse_hostname_rule(settings.HOSTNAME_RULE)  # a bad rule fails before any AWS call
    if not regions and settings.AWS_REGIONS:
        regions = checked_setting_regions(settings.AWS_REGIONS)
    if regions:  # chosen by --region or settings: each must be enabled for the account
        aws.require_regions(regions)
    regions = aws.regions(only=regions)
    if progress:
        progress(f"discovering instances in {len(regions)} region(s): {', '.join(regions)}")
    discovered = list_regions(aws, regions, progress)
    now = utcnow()
    with engine.begin() as conn:
        existing = store.all_hosts(conn)
        plan = plan_discovery(existing, discovered, now, sources)
        if dry_run:
            conn.rollback()
            return plan
        store.upsert_discovered(conn, plan.writes)
        store.mark_gone(conn, plan.gone, now)
        store.touch_seen(conn, plan.regions, now)
    log.info("discovery wrote %d row(s), marked %d gone", len(plan.writes), len(plan.gone))
    return plan

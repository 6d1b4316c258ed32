"""Volume and snapshot discovery: rebuild the database's rows from the ``ams:*`` tags in EC2.

Regions are chosen as host discovery chooses them (``--region``, else settings AWS_REGIONS,
else every region enabled for the account; chosen ones checked against DescribeRegions).  Each
region is listed in parallel with one paginated DescribeVolumes (or DescribeSnapshots, own
snapshots) filtered by ``tag-key``; nothing is written until every region answered.  Then, in
one transaction: one SELECT per table, the pure plan (:mod:`amslib.recovery.discovery_plan`),
and its writes in bulk (:mod:`amslib.store.recovery`); a dry run rolls back instead.
"""

import logging

from ..instance.discovery import checked_setting_regions, list_regions
from ..store import recovery as store
from ..store.hosts import all_hosts
from ..store.types import utcnow
from . import discovery_plan as rules

log = logging.getLogger("ams.recovery")


def choose_regions(aws, settings, regions=None):
    """The regions to scan (see the module doc); UsageError for one the account lacks."""
    if not regions and settings.AWS_REGIONS:
        regions = checked_setting_regions(settings.AWS_REGIONS)
    if regions:
        aws.require_regions(regions)
    return aws.regions(only=regions)


def list_tagged(aws, regions, kind, progress=None):
    """{region: [tagged volume or snapshot]} for every region, listed in parallel; any failure aborts."""
    from ..aws.ebs import Ebs
    from ..aws.snapshots import Snapshots

    adapter, tag = (Ebs, rules.VOLUME_GROUP_TAG) if kind == "volume" else (Snapshots, rules.SNAPSHOT_GROUP_TAG)
    return list_regions(aws, regions, progress, lister=lambda region: adapter(aws, region).tagged(tag),
                        noun=f"tagged {kind}")


def _volume_state(conn):
    return rules.VolumeState(
        groups=store.rows_by_key(conn, "volume_groups"), volumes=store.rows_by_key(conn, "volumes"),
        attachments=store.rows_by_key(conn, "host_volumes"), hosts=all_hosts(conn),
        snapshot_group_of=store.snapshot_groups_of_snapshots(conn),
    )


def _snapshot_state(conn):
    return rules.SnapshotState(
        groups=store.rows_by_key(conn, "snapshot_groups"), snapshots=store.rows_by_key(conn, "snapshots"),
        volume_groups=store.rows_by_key(conn, "volume_groups"), volumes=store.rows_by_key(conn, "volumes"),
        hosts=all_hosts(conn),
    )


def discover(engine, aws, settings, kind, *, regions=None, prune=False, dry_run=False, progress=None):
    """One discovery pass of ``kind`` ("volume" or "snapshot"); returns the plan it wrote (or,
    with ``dry_run``, would write)."""
    regions = choose_regions(aws, settings, regions)
    if progress:
        progress(f"discovering {kind}s in {len(regions)} region(s): {', '.join(regions)}")
    found = list_tagged(aws, regions, kind, progress)
    now = utcnow()
    with engine.begin() as conn:
        if kind == "volume":
            plan = rules.plan_volumes(found, _volume_state(conn), now, prune=prune)
        else:
            plan = rules.plan_snapshots(found, _snapshot_state(conn), now, prune=prune)
        if dry_run:
            conn.rollback()
            return plan
        store.apply(conn, plan)
    log.info("%s discovery wrote %d row(s)", kind, plan.writes)
    return plan

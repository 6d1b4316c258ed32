"""Hosts by hand: ``host add`` and ``host edit``.

Both validate everything before writing anything: field formats
(:mod:`amslib.instance.validation`), the instance id (malformed -> usage error;
for edit, unknown -> NotFoundError; for add, already stored -> ConflictError),
and the availability zone.  A zone is checked three times: its name must be well
formed, its region enabled for the account (DescribeRegions) and EC2 must know
it (DescribeAvailabilityZones in the zone's region),
so ``host add`` needs the EC2 API and fails with one line when it cannot be
reached.  The instance itself is not looked up: discovery will mark a host
whose instance EC2 does not return as ``missing``.

A hostname given to add or edit is marked ``hostname_source='user'``:
discovery never replaces it.  ``host edit`` clears a field given as an empty
string (``--notes ''``); ``--hostname ''`` clears the hostname and hands it back
to discovery (``hostname_source='discovery'``), whose next pass names the host
by HOSTNAME_RULE again.
"""

from ..aws.clients import aws_errors
from ..core.errors import ConflictError, NotFoundError, UsageError
from ..store import hosts as store
from ..store.types import utcnow
from .validation import check_fields, check_instance_id, check_zone


def check_zone_exists(aws, text):
    """Return (zone, region) after checking the name and asking EC2 that the zone exists."""
    zone, region = check_zone(text)
    aws.require_regions([region], what=lambda r: f"availability zone {zone!r} is in unknown region {r!r}")
    from botocore.exceptions import ClientError

    with aws_errors(f"DescribeAvailabilityZones in {region}"):
        try:
            answer = aws.ec2(region).describe_availability_zones(ZoneNames=[zone], AllAvailabilityZones=True)
        except ClientError as exc:  # AWS answers InvalidParameterValue for an unknown zone name
            if exc.response.get("Error", {}).get("Code") != "InvalidParameterValue":
                raise
            answer = {"AvailabilityZones": []}
    if not any(z.get("ZoneName") == zone for z in answer.get("AvailabilityZones", [])):
        raise UsageError(f"availability zone {zone!r} does not exist in {region}")
    return zone, region


def plan_add(conn, aws, instance, zone, fields):
    """The row ``host add`` would insert (nothing written)."""
    instance_id = check_instance_id(instance)
    values = check_fields(fields)
    if "hostname" not in values:
        raise UsageError("hostname must not be empty")
    if store.get_host(conn, instance_id) is not None:
        raise ConflictError(f"host {instance_id} already exists; use 'ams host edit -i {instance_id}' to change it")
    zone, region = check_zone_exists(aws, zone)
    now = utcnow()
    row = {
        "instance_id": instance_id,
        "hostname_source": "user",
        "availability_zone": zone,
        "region": region,
        "created_at": now,
        "updated_at": now,
    }
    row.update(values)
    return row


def add_host(engine, aws, instance, zone, fields, dry_run=False):
    from sqlalchemy.exc import IntegrityError

    with engine.begin() as conn:
        row = plan_add(conn, aws, instance, zone, fields)
        if dry_run:
            return row
        try:
            store.insert_host(conn, row)
        except IntegrityError:  # added by someone else since the check
            raise ConflictError(f"host {row['instance_id']} already exists") from None
    return row


def plan_edit(conn, aws, instance, zone, fields):
    """(current row, {column: (old, new)}) for ``host edit``; nothing written."""
    instance_id = check_instance_id(instance)
    values = check_fields(fields, clearing=True)
    if zone is not None and not zone.strip():
        raise UsageError("the availability zone cannot be cleared: give the zone the instance is in")
    if not values and zone is None:
        raise UsageError("nothing to change: give at least one field to edit (see 'ams host edit -h')")
    current = store.get_host(conn, instance_id)
    if current is None:
        raise NotFoundError(f"host {instance_id} not found; add it with 'ams host add' or run 'ams host discovery'")
    if zone is not None:
        values["availability_zone"], values["region"] = check_zone_exists(aws, zone)
    if "hostname" in values:  # a name given is kept by discovery; an empty one hands it back
        values["hostname_source"] = "user" if values["hostname"] is not None else "discovery"
    changes = {column: (current.get(column), value) for column, value in values.items() if current.get(column) != value}
    return current, changes


def edit_host(engine, aws, instance, zone, fields, dry_run=False):
    with engine.begin() as conn:
        current, changes = plan_edit(conn, aws, instance, zone, fields)
        if changes and not dry_run:
            values = {column: new for column, (_, new) in changes.items()}
            values["updated_at"] = utcnow()
            store.update_host(conn, current["instance_id"], values)
    return current, changes

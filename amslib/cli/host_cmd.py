"""ams host list|add|edit|discovery — the hosts ams knows and how it reaches them."""

import json

from .base import SUPPRESS, add_command, add_group, add_match_arguments

ZONE_HELP = (
    "only hosts whose availability zone starts with ZONE: 'us', 'us-west', 'us-west-2' "
    "and 'us-west-2a' are ever more specific"
)

LIST_COLUMNS = [
    ("instance_id", "Instance ID"),
    ("hostname", "Hostname"),
    ("hostname_source", "Set by"),
    ("name", "Name"),
    ("availability_zone", "Zone"),
    ("instance_type", "Type"),
    ("state", "State"),
    ("ip_internal", "Private IP"),
    ("ip_external", "Public IP"),
]

# the keys of each host in `host list --output json` (every column of the hosts table, tags as an
# object); a new column appears here only by a decision (tests/unit/test_cli_conventions.py)
JSON_KEYS = [
    "instance_id",
    "hostname",
    "hostname_source",
    "name",
    "region",
    "availability_zone",
    "instance_type",
    "ami_id",
    "hostname_internal",
    "hostname_external",
    "ip_internal",
    "ip_external",
    "vpc_id",
    "subnet_id",
    "state",
    "tags",
    "notes",
    "created_at",
    "updated_at",
    "discovered_at",
    "terminated_at",
]

# options of add and edit besides -i and -z (dest = column name)
FIELD_OPTIONS = (
    "hostname",
    "hostname_internal",
    "hostname_external",
    "ip_internal",
    "ip_external",
    "ami_id",
    "instance_type",
    "notes",
)


def _for_json(row):
    out = dict(row)
    if out.get("tags"):
        try:
            out["tags"] = json.loads(out["tags"])
        except ValueError:
            pass
    return out


def cmd_list(ctx, args):
    from ..store.hosts import list_hosts

    field = getattr(args, "list_field", None)
    # hostnames and instance ids are stored in lower case
    exact, like, prefix, zone = (
        value.strip().lower() if value is not None else None
        for value in (getattr(args, "value", None), getattr(args, "like", None), getattr(args, "prefix", None), args.zone)
    )
    with ctx.engine().connect() as conn:
        if ctx.out.json:
            rows = [_for_json(row) for row in list_hosts(conn, field, exact=exact, like=like, prefix=prefix, zone=zone)]
        else:
            rows = _table_rows(conn, field, exact=exact, like=like, prefix=prefix, zone=zone)
    ctx.out.listing(rows, LIST_COLUMNS, JSON_KEYS, empty="no hosts match")
    return 0


def _table_rows(conn, field, **match):
    """The rows of ``host list``'s table: its columns only (no timestamps to parse, no tags),
    in the order and with the filters of store.hosts.select_hosts."""
    from ..store.hosts import select_hosts
    from ..store.schema import hosts

    query = select_hosts(field, **match).with_only_columns(*(hosts.c[key] for key, _ in LIST_COLUMNS))
    return [dict(row) for row in conn.execute(query).mappings()]


def _fields(args):
    return {name: getattr(args, name, None) for name in FIELD_OPTIONS}


def _describe(value):
    return "(none)" if value is None or value == "" else str(value)


def cmd_add(ctx, args):
    from ..instance.hosts import add_host

    row = add_host(ctx.engine(), ctx.aws, args.instance, args.zone, _fields(args), dry_run=ctx.dry_run)
    verb = "would add" if ctx.dry_run else "added"
    data = _for_json(row)
    data["dry_run"] = ctx.dry_run
    ctx.out.result(
        data,
        f"{verb} host {row['instance_id']} ({row['hostname']}) in {row['availability_zone']}",
    )
    return 0


def cmd_edit(ctx, args):
    from ..instance.hosts import edit_host

    current, changes = edit_host(ctx.engine(), ctx.aws, args.instance, args.zone, _fields(args), dry_run=ctx.dry_run)
    instance_id = current["instance_id"]
    data = {
        "instance_id": instance_id,
        "changes": {column: {"old": old, "new": new} for column, (old, new) in changes.items()},
        "dry_run": ctx.dry_run,
    }
    if not changes:
        text = f"host {instance_id}: nothing changed (the values given are the stored ones)"
    else:
        verb = "would change" if ctx.dry_run else "changed"
        parts = [f"{column} {_describe(old)} -> {_describe(new)}" for column, (old, new) in changes.items()]
        text = f"{verb} host {instance_id}: " + "; ".join(parts)
        if changes.get("hostname_source", (None, None))[1] == "discovery":
            text += " (the next 'ams host discovery' sets its hostname)"
    ctx.out.result(data, text)
    return 0


def cmd_discovery(ctx, args):
    from ..instance.discovery import discover
    from ..instance.validation import check_regions

    regions = check_regions(args.region) if args.region else None
    engine = ctx.engine()
    plan = discover(engine, ctx.aws, ctx.settings, regions=regions, dry_run=ctx.dry_run, progress=ctx.out.waiting)
    summaries = [s.as_dict() for s in plan.summaries.values()]
    total = plan.totals().as_dict()
    if ctx.out.json:
        ctx.out.result({"regions": summaries, "total": total, "dry_run": ctx.dry_run})
        return 0
    columns = [
        ("region", "Region"),
        ("seen", "Instances"),
        ("added", "Added"),
        ("updated", "Updated"),
        ("terminated", "Terminated"),
        ("unchanged", "Unchanged"),
    ]
    ctx.out.table(summaries + [total], columns, empty="no regions scanned")
    if ctx.dry_run:
        ctx.out.note("dry run: nothing was written")
    return 0


def _add_match_command(subparsers, name, dest_help, noun):
    parser = add_command(
        subparsers,
        name,
        f"list hosts by {noun}",
        cmd_list,
        description=f"List hosts whose {noun} matches: exactly (the positional), "
        f"by wildcard pattern (--like, '*' or '%' match any text; without a wildcard "
        f"the text may appear anywhere) or by prefix (--prefix).",
        region=False,
    )
    parser.set_defaults(list_field="hostname" if name == "host" else "instance_id")
    add_match_arguments(parser, "HOSTNAME" if name == "host" else "INSTANCE_ID", noun, dest_help)
    # SUPPRESS: a --zone given before the subcommand (`host list --zone us host`) is kept
    parser.add_argument("--zone", metavar="ZONE", default=SUPPRESS, help=ZONE_HELP)
    return parser


def _add_field_options(parser, *, required):
    parser.add_argument(
        "-i", "--instance", metavar="INSTANCE", required=True, help="EC2 instance id (i-0123456789abcdef0)"
    )
    parser.add_argument(
        "-H",
        "--hostname",
        metavar="HOSTNAME",
        required=required,
        help="name or address ams connects to over SSH; discovery never replaces it",
    )
    parser.add_argument(
        "-z", "--zone", metavar="ZONE", required=required, help="availability zone of the instance (checked with EC2)"
    )
    parser.add_argument("--hostname-internal", metavar="HOSTNAME_INTERNAL", help="private DNS name (informational)")
    parser.add_argument("--hostname-external", metavar="HOSTNAME_EXTERNAL", help="public DNS name (informational)")
    parser.add_argument("--ip-internal", metavar="IP_INTERNAL", help="private IP address (informational)")
    parser.add_argument("--ip-external", metavar="IP_EXTERNAL", help="public IP address (informational)")
    parser.add_argument("--ami-id", metavar="AMI_ID", help="AMI the instance runs (informational)")
    parser.add_argument("--instance-type", metavar="INSTANCE_TYPE", help="instance type, e.g. m5.large (informational)")
    parser.add_argument("--notes", metavar="NOTES", help="free text kept with the host")


def register(subparsers):
    _, commands = add_group(
        subparsers,
        "host",
        "hosts (EC2 instances) ams manages and the names it uses to reach them",
    )

    list_parser = add_command(
        commands,
        "list",
        "list hosts",
        cmd_list,
        description="List the hosts in the database; 'host' and 'instance_id' narrow the list by "
        "hostname or instance id.",
        region=False,
    )
    list_parser.add_argument("--zone", metavar="ZONE", default=None, help=ZONE_HELP)
    list_parser.set_defaults(list_field=None)
    by = list_parser.add_subparsers(title="match on", metavar="FIELD")
    _add_match_command(by, "host", "exact hostname", "hostname")
    _add_match_command(by, "instance_id", "exact instance id", "instance id")

    add_parser = add_command(
        commands,
        "add",
        "add a host by hand",
        cmd_add,
        description="Record one instance and the hostname ams uses to SSH to it. Discovery "
        "('ams host discovery') does this for every instance; use add for a hostname of your "
        "own choosing. The zone must exist in EC2.",
        region=False,
        dry_run=True,
    )
    _add_field_options(add_parser, required=True)

    edit_parser = add_command(
        commands,
        "edit",
        "change a host's stored details",
        cmd_edit,
        description="Change the given fields of a stored host and nothing else; an empty value "
        "(--notes '') clears a field. A hostname set here is kept by later discovery passes; "
        "--hostname '' hands it back to discovery, whose next pass names the host again.",
        region=False,
        dry_run=True,
    )
    _add_field_options(edit_parser, required=False)

    discovery_parser = add_command(
        commands,
        "discovery",
        "find every instance and update the hosts table",
        cmd_discovery,
        description="List the instances of every region (--region REGION[,REGION...], else "
        "AWS_REGIONS from settings, else all regions enabled for the account) and add, refresh "
        "or mark terminated the stored hosts. Hostnames set with 'host add' or 'host edit' are "
        "never replaced; new hosts are named by HOSTNAME_RULE.",
        dry_run=True,
    )
    return discovery_parser

"""ams snapshot schedule add|edit|delete|list|run — snapshots every hour/day/week/month/year."""

from .base import add_command, add_group, non_negative_int, positive_int

LIST_COLUMNS = [
    ("schedule_id", "ID"),
    ("target", "Snapshots"),
    ("intervals", "Every H/D/W/M"),
    ("retentions", "Keep H/D/W/M/Y"),
    ("hooks", "Hooks"),
    ("last", "Last run"),
    ("next_due", "Next due (UTC)"),
    ("description", "Description"),
]

# the keys of each schedule in `snapshot schedule list --output json` (tests/unit/test_cli_conventions.py)
JSON_KEYS = ["schedule_id", "resource_type", "hostname", "instance_id", "volume_group_id", "mount_point",
             "interval_hour", "interval_day", "interval_week", "interval_month", "retain_hourly", "retain_daily",
             "retain_weekly", "retain_monthly", "retain_yearly", "pre_command", "post_command", "description",
             "freeze", "created_at", "last_run", "last_outcome", "last_snapshot_group_id", "next_due"]


def _list_row(row):
    out = dict(row)
    if row["resource_type"] == "volume":
        out["target"] = f"volume group {row['volume_group_id']}"
    else:
        out["target"] = f"{row['hostname'] or row['instance_id']}:{row['mount_point']}"
    out["intervals"] = "/".join(str(row[c]) for c in ("interval_hour", "interval_day", "interval_week", "interval_month"))
    out["retentions"] = "/".join(str(row[c]) for c in ("retain_hourly", "retain_daily", "retain_weekly",
                                                       "retain_monthly", "retain_yearly"))
    out["hooks"] = ", ".join(n for n, v in (("pre", row["pre_command"]), ("post", row["post_command"]),
                                            ("freeze", row["freeze"])) if v)
    out["last"] = f"{row['last_run']:%Y-%m-%d %H:%M} {row['last_outcome']}" if row["last_run"] else "never"
    return out


def cmd_list(ctx, args):
    from ..schedule import service

    resource, value = args.resource, args.resource_id
    if resource is None and value is not None:
        from ..core.errors import UsageError

        raise UsageError("give the kind of resource first: host, instance or volume")
    exact = value.strip().lower() if value is not None else None
    if resource == "volume" and exact is not None:
        from ..ebs.volume_service import check_group_id

        exact = check_group_id(exact)
    elif resource == "instance" and exact is not None:
        from ..instance.validation import check_instance_id

        exact = check_instance_id(exact)
    rows = service.list_schedules(ctx, resource_type=resource, exact=exact,
                                  like=args.like.lower() if args.like else None,
                                  prefix=args.prefix.lower() if args.prefix else None)
    ctx.out.listing([_list_row(r) for r in rows], LIST_COLUMNS, JSON_KEYS, empty="no snapshot schedules")
    return 0


def _settings_kwargs(args):
    singles = {name: getattr(args, name) for name in ("int_hour", "int_day", "int_week", "int_month",
                                                     "ret_hour", "ret_day", "ret_week", "ret_month", "ret_year")}
    return {"intervals": args.intervals, "retentions": args.retentions, "singles": singles,
            "pre": args.pre, "post": args.post, "description": args.description}


def cmd_add(ctx, args):
    from ..schedule import service

    result = service.add(ctx, resource_type=args.resource_type, resource=args.resource,
                         mount_point=getattr(args, "mount_point", None), freeze=args.freeze,
                         dry_run=ctx.dry_run, **_settings_kwargs(args))
    if result["dry_run"]:
        ctx.out.result(result, "dry run: the schedule would be added (nothing was changed)")
    else:
        ctx.out.result(result, f"added snapshot schedule {result['schedule_id']}")
    return 0


def cmd_edit(ctx, args):
    from ..schedule import service

    freeze = True if args.freeze else (False if args.no_freeze else None)
    result = service.edit(ctx, schedule_id=args.schedule_id, freeze=freeze, dry_run=ctx.dry_run, **_settings_kwargs(args))
    verb = "would change" if result["dry_run"] else "changed"
    parts = [f"{k} {v['old']} -> {v['new']}" for k, v in result["changes"].items()]
    ctx.out.result(result, f"{verb} schedule {result['schedule_id']}: " + "; ".join(parts))
    return 0


def cmd_delete(ctx, args):
    from ..schedule import service

    result = service.delete(ctx, schedule_id=args.schedule_id, dry_run=ctx.dry_run)
    verb = "would delete" if result["dry_run"] else "deleted"
    ctx.out.result(result, f"{verb} snapshot schedule {result['schedule_id']} (kept as history)")
    return 0


RUN_COLUMNS = [("schedule_id", "Schedule"), ("outcome", "Outcome"), ("tiers", "Tiers"), ("slot", "Slot (UTC)"),
               ("expires_at", "Expires (UTC)"), ("snapshot_group_id", "Snapshot group"), ("error", "Error")]
PURGE_COLUMNS = [("snapshot_group_id", "Snapshot group"), ("expires_at", "Expired (UTC)"), ("what", "Purge")]


def cmd_run(ctx, args):
    from ..schedule import service

    result = service.run(ctx, schedule_id=args.schedule_id, purge=args.purge, dry_run=ctx.dry_run)
    if ctx.out.json:
        ctx.out.result(result)
    else:
        runs = [dict(r, tiers=",".join(r["tiers"])) for r in result["runs"]]
        ctx.out.table(runs, RUN_COLUMNS, empty=f"no schedule is due ({result['schedules']} schedule(s) at "
                                              f"{result['now']:%Y-%m-%d %H:%M}Z)")
        if args.purge:
            rows = [dict(p, what=_purge_text(p)) for p in result["purge"]]
            ctx.out.table(rows, PURGE_COLUMNS, empty="nothing expired to purge")
        if ctx.dry_run:
            ctx.out.note("dry run: nothing was taken or deleted")
    service.raise_for_failures(result)
    return 0


def _purge_text(p):
    if p.get("skipped"):
        return f"skipped: {p['skipped']}"
    if p["refused"]:
        return "kept: EC2 refused " + ", ".join(f"{s} ({why})" for s, why in sorted(p["refused"].items()))
    return "would delete" if p["dry_run"] else f"deleted {len(p['snapshot_ids'])} snapshot(s)"


def _add_settings(parser):
    parser.add_argument("-i", "--intervals", nargs=4, type=positive_int, metavar=("HOUR", "DAY", "WEEK", "MONTH"),
                        help="all four intervals at once (they replace the single --int_* options)")
    parser.add_argument("-r", "--retentions", nargs=5, type=non_negative_int,
                        metavar=("HOURS", "DAYS", "WEEKS", "MONTHS", "YEARS"),
                        help="all five retentions at once (they replace the single --ret_* options)")
    for name, what in (("hour", "hourly"), ("day", "daily"), ("week", "weekly"), ("month", "monthly")):
        parser.add_argument(f"--int_{name}", metavar=f"{name.upper()}S", type=positive_int,
                            help=f"take the {what} snapshot every N {name}s, counted from a fixed epoch (1)")
    for name, what, default in (("hour", "hourly", 24), ("day", "daily", 14), ("week", "weekly", 4),
                                ("month", "monthly", 12), ("year", "yearly", 3)):
        parser.add_argument(f"--ret_{name}", metavar=f"{name.upper()}S", type=non_negative_int,
                            help=f"keep N {what} snapshots; 0 turns the tier off ({default})")
    parser.add_argument("--pre", metavar="PRE_COMMAND", help="command run as root on the host before the snapshot")
    parser.add_argument("--post", metavar="POST_COMMAND", help="command run as root on the host after it started")
    parser.add_argument("-d", "--description", metavar="DESCRIPTION", help="description of the snapshots")


def register(subparsers):
    _, commands = add_group(subparsers, "schedule", "snapshot schedules with hourly to yearly retention")

    list_parser = add_command(
        commands, "list", "list snapshot schedules", cmd_list,
        description="List schedules with their settings, last run and next due time; 'host NAME', "
        "'instance ID' or 'volume GROUP' narrows the list.",
        region=False,
    )
    list_parser.add_argument("resource", nargs="?", choices=("host", "instance", "volume"),
                             help="kind of resource: host, instance or volume")
    list_parser.add_argument("resource_id", nargs="?", metavar="RESOURCE_ID", help="hostname, instance id or volume group id")
    match = list_parser.add_mutually_exclusive_group()
    match.add_argument("--like", metavar="LIKE", help="wildcard pattern for the hostname or instance id")
    match.add_argument("--prefix", metavar="PREFIX", help="the hostname or instance id starts with PREFIX")

    _, add = add_group(commands, "add", "add a snapshot schedule")
    for kind, metavar, text in (
        ("host", "HOSTNAME", "whatever volume group is mounted at -m on the host, even after it changed"),
        ("instance", "INSTANCE_ID", "the volume group mounted at -m on the instance"),
        ("volume", "VOLUME_GROUP_ID", "one volume group, wherever it is attached (or attached nowhere)"),
    ):
        parser = add_command(add, kind, f"snapshot {text}", cmd_add,
                             description=f"Schedule snapshots of {text}. Slots are counted from a fixed "
                             "epoch in UTC; one snapshot group serves every tier due at the same time and "
                             "expires when the longest of those tiers' retentions ends.",
                             region=False, dry_run=True)
        parser.set_defaults(resource_type=kind)
        parser.add_argument("resource", metavar=metavar, help=metavar.lower().replace("_", " "))
        if kind != "volume":
            parser.add_argument("-m", "--mount-point", metavar="MOUNT_POINT", required=True,
                                help="the mount point of the group to snapshot")
        parser.add_argument("--freeze", action="store_true", help="fsfreeze the mount point while the snapshots start")
        _add_settings(parser)

    edit = add_command(
        commands, "edit", "change a snapshot schedule", cmd_edit,
        description="Change only the settings given; --intervals/--retentions replace all of theirs. "
        "A new description applies to snapshots taken from now on.",
        region=False, dry_run=True,
    )
    edit.add_argument("schedule_id", metavar="SCHEDULE_ID", help="the schedule")
    freeze = edit.add_mutually_exclusive_group()
    freeze.add_argument("--freeze", action="store_true", help="freeze the filesystem from now on")
    freeze.add_argument("--no-freeze", action="store_true", help="stop freezing the filesystem")
    _add_settings(edit)

    delete = add_command(commands, "delete", "delete a snapshot schedule (kept as history)", cmd_delete,
                         region=False, dry_run=True)
    delete.add_argument("schedule_id", metavar="SCHEDULE_ID", help="the schedule")

    run = add_command(
        commands, "run", "take the snapshots that are due (for an hourly cron)", cmd_run,
        description="Without SCHEDULE_ID: snapshot every schedule that is due now (a second run in the "
        "same slot takes nothing; a missed slot is caught up once). With SCHEDULE_ID: snapshot that "
        "schedule now, with an expiry from its retention. --purge also deletes expired snapshot groups "
        "meanwhile, never the one that is a schedule's newest successful group when the run starts. Exits non-zero when anything failed.",
        region=False, dry_run=True,
    )
    run.add_argument("schedule_id", nargs="?", metavar="SCHEDULE_ID", help="run this schedule now")
    run.add_argument("--purge", action="store_true", help="also delete expired snapshot groups")

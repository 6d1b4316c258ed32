"""ams volume discovery | ams snapshot discovery — rebuild the database's rows from EC2 tags."""

from .base import add_command

PRUNE_HELP = "mark the groups (and members) the database holds but EC2 no longer has as deleted"


def _change(value):
    return "-" if value is None else str(value)


def _lines(plan, noun):
    """One line per group added, repaired or missing, then the totals."""
    lines = [f"added {noun} group {gid}" for gid in sorted(plan.added)]
    for gid in sorted(plan.repaired):
        changes = "; ".join(f"{column} {_change(old)} -> {_change(new)}"
                            for column, (old, new) in sorted(plan.changes.get(gid, {}).items()))
        lines.append(f"repaired {noun} group {gid}: {changes}")
    for item in plan.missing:
        gid = item[f"{noun}_group_id"]
        members = item["volume_ids" if noun == "volume" else "snapshot_ids"]
        what = "marked deleted" if plan.prune else "not in EC2 (--prune-missing marks it deleted)"
        lines.append(f"missing {noun} group {gid} in {item['region']}"
                     + (f" ({', '.join(members)})" if members else "") + f": {what}")
    totals = plan.totals()
    lines.append(f"{noun} discovery in {len(plan.regions)} region(s): {totals['added']} added, "
                 f"{totals['repaired']} repaired, {totals['unchanged']} unchanged, {totals['missing']} missing, "
                 f"{totals['findings']} finding(s)")
    return lines


def _handler(kind):
    def handler(ctx, args):
        from ..instance.validation import check_regions
        from ..recovery.discovery import discover

        regions = check_regions(args.region) if args.region else None
        plan = discover(ctx.engine(), ctx.aws, ctx.settings, kind, regions=regions, prune=args.prune_missing,
                        dry_run=ctx.dry_run, progress=ctx.out.waiting)
        if ctx.out.json:
            ctx.out.result(dict(plan.as_dict(), dry_run=ctx.dry_run))
            return 0
        for finding in plan.findings:
            ctx.out.warning(finding.message)
        text = "\n".join(_lines(plan, kind))
        if ctx.dry_run:
            text += "\ndry run: nothing was written"
        ctx.out.result(None, text)
        return 0

    handler.__name__ = f"cmd_{kind}_discovery"
    return handler


cmd_volume_discovery = _handler("volume")
cmd_snapshot_discovery = _handler("snapshot")


def _register(commands, kind, handler, description):
    parser = add_command(commands, "discovery", f"rebuild the database's {kind} groups from their EC2 tags", handler,
                         description=description, dry_run=True)
    parser.add_argument("--prune-missing", action="store_true", help=PRUNE_HELP)
    return parser


def register_volume(commands):
    return _register(
        commands, "volume", cmd_volume_discovery,
        "Read the ams:* tags of the EBS volumes of every region (--region REGION[,REGION...], else "
        "AWS_REGIONS from settings, else all regions enabled for the account) and add or repair the "
        "volume groups, their volumes and where they are attached (from EC2's attachments and the "
        "hosts table: run 'ams host discovery' first). Reports what was added, repaired and "
        "unchanged, tagged volumes that do not form a consistent group, and groups the database "
        "holds that EC2 no longer has. Running it again changes nothing.")


def register_snapshot(commands):
    return _register(
        commands, "snapshot", cmd_snapshot_discovery,
        "Read the ams:* tags of this account's snapshots in every region (--region as for 'volume "
        "discovery') and add or repair the snapshot groups, their snapshots, expiries, retention "
        "and cross-region copies. Schedules are not in EC2: restored groups belong to no schedule "
        "but keep their expiry, so purges still delete them on time. Running it again changes nothing.")

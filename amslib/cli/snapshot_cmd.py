"""ams snapshot create|list|delete|copy|clone (and schedule) — snapshot groups of volume groups."""

from .base import add_command, add_group, add_match_arguments, non_negative_int, positive_int

LIST_COLUMNS = [
    ("snapshot_group_id", "Group"),
    ("created_at", "Created (UTC)"),
    ("expires_at", "Expires (UTC)"),
    ("region", "Region"),
    ("volume_group_id", "Volume group"),
    ("members", "Snaps"),
    ("status", "State"),
    ("description", "Description"),
    ("source", "Source"),
    ("copied_from_id", "Copy of"),
]

# the keys of each group in `snapshot list --output json` (tests/unit/test_cli_conventions.py)
JSON_KEYS = ["snapshot_group_id", "created_at", "expires_at", "region", "volume_group_id", "members", "state",
             "progress", "description", "source_hostname", "source_instance_id", "source_mount_point",
             "copied_from_id", "raid_level", "stripe_block_size", "fs_type", "schedule_id"]


def _row(row):
    out = dict(row)
    out["snapshot_group_id"] = row["id"]
    out["members"] = row.get("members") or 0
    state = row["state"]
    if state == "pending" and row.get("progress") is not None:
        state = f"pending {row['progress']}%"
    out["status"] = state
    where = row.get("source_hostname") or row.get("source_instance_id")
    out["source"] = f"{where}:{row['source_mount_point']}" if where and row.get("source_mount_point") else (where or "")
    return out


def _print_rows(ctx, rows):
    ctx.out.listing([_row(r) for r in rows], LIST_COLUMNS, JSON_KEYS, empty="no snapshot groups match")


def _report(ctx, result, text):
    if result.get("dry_run"):
        if ctx.out.json:
            ctx.out.result(result)
        else:
            ctx.out.result(None, "dry run: nothing was changed; the plan:\n" + "\n".join(f"  {l}" for l in result["plan"]))
        return 0
    ctx.out.result(result, text)
    return 0


def _region_filter(args):
    from ..instance.validation import check_region

    return check_region(args.snapshot_region) if getattr(args, "snapshot_region", None) else None


# -- create ----------------------------------------------------------------------------------------

def cmd_create(ctx, args):
    from ..ebs import snapshot_service

    result = snapshot_service.create(
        ctx, group_id=getattr(args, "volume_group_id", None), host=getattr(args, "host", None),
        instance=getattr(args, "instance", None), mount_point=getattr(args, "mount_point", None),
        pre=args.pre, post=args.post, description=args.description, freeze=args.freeze, tags=args.tag,
        wait=args.wait, dry_run=ctx.dry_run,
    )
    text = None
    if not result["dry_run"]:
        text = (f"snapshot group {result['snapshot_group_id']} of volume group {result['volume_group_id']}: "
                f"{', '.join(result['snapshot_ids'])} ({result['state']})")
    return _report(ctx, result, text)


def _add_create_options(parser):
    parser.add_argument("--pre", metavar="PRE_COMMAND", help="command run on the host (as root, sh -c) before the snapshot; "
                        "if it fails nothing is snapshotted")
    parser.add_argument("--post", metavar="POST_COMMAND", help="command run on the host after the snapshots have started; "
                        "always runs once --pre succeeded")
    parser.add_argument("-d", "--description", metavar="DESCRIPTION", help="description stored on every snapshot")
    parser.add_argument("--freeze", action="store_true", help="fsfreeze the mount point while the snapshots start "
                        "(thawed right after; the host thaws by itself after FREEZE_TIMEOUT at the latest)")
    parser.add_argument("--tag", metavar="KEY=VALUE", action="append", help="tag every snapshot (repeatable)")
    parser.add_argument("--wait", action="store_true", help="wait until every snapshot is completed")


# -- list --------------------------------------------------------------------------------------------

def cmd_list(ctx, args):
    from ..ebs import snapshot_service, volume_service
    from ..hostdisk.mountpoint import check_mount_point

    filters = {"region": _region_filter(args)}
    kind = getattr(args, "list_kind", None)
    if kind == "volume":
        filters["volume_group_id"] = volume_service.check_group_id(args.volume_group_id)
    elif kind in ("host", "instance"):
        filters["host_field"] = "hostname" if kind == "host" else "instance_id"
        for name in ("value", "like", "prefix"):
            value = getattr(args, name, None)
            filters["exact" if name == "value" else name] = value.strip().lower() if value is not None else None
        if kind == "instance" and filters["exact"] is not None:  # a malformed id is refused, not an empty list
            from ..instance.validation import check_instance_id

            filters["exact"] = check_instance_id(filters["exact"])
        if getattr(args, "mount_point", None):
            filters["mount_point"] = check_mount_point(args.mount_point)
    _print_rows(ctx, snapshot_service.list_groups(ctx, **filters))
    return 0


def _add_region_filter(parser):
    parser.add_argument("-r", "--region", dest="snapshot_region", metavar="REGION", help="only snapshot groups in REGION")


def _add_list_by(subparsers, name, metavar, noun):
    parser = add_command(
        subparsers, name, f"snapshot groups taken on a {noun}", cmd_list,
        description=f"List the snapshot groups taken of volume groups attached to a {noun} whose name matches "
        f"exactly (the positional), by wildcard (--like) or by prefix (--prefix); -m narrows to one mount point.",
        region=False,
    )
    parser.set_defaults(list_kind=name)
    add_match_arguments(parser, metavar, noun)
    parser.add_argument("-m", "--mount-point", metavar="MOUNT_POINT", help="only snapshots of this mount point")
    _add_region_filter(parser)


# -- delete ------------------------------------------------------------------------------------------

def _delete_report(ctx, results):
    refused = [r for r in results if r["refused"]]
    if ctx.out.json:
        ctx.out.result(results)
    else:
        for r in results:
            if r.get("skipped"):
                ctx.out.result(None, f"skipped snapshot group {r['snapshot_group_id']}: {r['skipped']}")
            elif r["refused"]:
                reasons = "; ".join(f"{s}: {why}" for s, why in sorted(r["refused"].items()))
                ctx.out.result(None, f"kept snapshot group {r['snapshot_group_id']}: EC2 refused {reasons}")
            elif r["dry_run"]:
                ctx.out.result(None, f"would delete snapshot group {r['snapshot_group_id']} ({', '.join(r['snapshot_ids'])})")
            else:
                ctx.out.result(None, f"deleted snapshot group {r['snapshot_group_id']} ({', '.join(r['snapshot_ids'])})")
        if not results:
            ctx.out.note("no snapshot groups to delete")
    if refused:
        from ..core.errors import ConflictError

        raise ConflictError(f"{len(refused)} snapshot group(s) could not be deleted and were kept: "
                            + ", ".join(str(r["snapshot_group_id"]) for r in refused))
    return 0


def cmd_delete_group(ctx, args):
    from ..ebs import snapshot_service

    return _delete_report(ctx, [snapshot_service.delete(ctx, group_id=args.snapshot_group_id, dry_run=ctx.dry_run)])


def cmd_delete_expired(ctx, args):
    from ..ebs import snapshot_service

    return _delete_report(ctx, snapshot_service.delete_expired(ctx, dry_run=ctx.dry_run))


# -- copy and clone ------------------------------------------------------------------------------------

def cmd_copy(ctx, args):
    from ..ebs import snapshot_service

    result = snapshot_service.copy(ctx, group_id=args.snapshot_group_id, region=args.to_region, dry_run=ctx.dry_run)
    verb = "reused" if result.get("reused") else "copied"
    return _report(ctx, result, f"{verb}: snapshot group {result['snapshot_group_id']} in {result['region']} "
                                f"is the copy of {result['copied_from_id']}")


def cmd_clone(ctx, args):
    from ..ebs import snapshot_service

    source = {}
    kind = args.clone_kind
    if kind == "snapshot":
        source["snapshot_group_id"] = args.snapshot_group_id
    elif kind == "volume":
        source["volume_group_id"] = args.volume_group_id
    elif kind == "host":
        source.update(host=args.src_hostname, mount_point=args.src_mount_point)
    else:
        source.update(instance=args.src_instance_id, mount_point=args.src_mount_point)
    result = snapshot_service.clone(
        ctx, source=source, zone=args.zone, host=args.host, instance=args.instance, mount_point=args.mount_point,
        automount=not args.no_automount, iops=args.iops, volume_type=args.volume_type, size=args.size,
        keep_on_failure=args.keep_on_failure, dry_run=ctx.dry_run,
    )
    text = None
    if not result["dry_run"]:
        where = f", attached to {result['instance_id']}" if result["instance_id"] else ""
        mounted = f", mounted at {result['mount_point']}" if result["mount_point"] else ""
        text = (f"volume group {result['volume_group_id']} cloned from snapshot group {result['snapshot_group_id']} "
                f"in {result['zone']}{where}{mounted}")
    return _report(ctx, result, text)


def _add_clone_options(parser):
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("-z", "--zone", metavar="ZONE", help="create the new volume group in ZONE (not attached)")
    target.add_argument("-i", "--instance", metavar="INSTANCE", help="instance id to attach the new group to")
    target.add_argument("-H", "--host", metavar="HOST", help="hostname to attach the new group to")
    parser.add_argument("-m", "--mount_point", "--mount-point", dest="mount_point", metavar="MOUNT_POINT",
                        help="mount the new group here (with -H or -i)")
    parser.add_argument("-a", "--no-automount", action="store_true", help="no fstab/mdadm.conf entries")
    parser.add_argument("-p", "--iops", metavar="IOPS", type=non_negative_int,
                        help="provisioned IOPS per volume; 0 drops them (default: the source volumes')")
    parser.add_argument("--volume-type", metavar="TYPE", help="volume type (default: the source volumes')")
    parser.add_argument("--size", metavar="GIB", type=positive_int, help="grow each volume to GIB (never shrink)")
    parser.add_argument("--keep-on-failure", action="store_true", help="keep what was created when a step fails")


def register(subparsers):
    _, commands = add_group(subparsers, "snapshot", "snapshot groups: one point-in-time snapshot of every member of a volume group")

    _, create = add_group(commands, "create", "snapshot a volume group")
    by_group = add_command(
        create, "volume", "snapshot a volume group by id", cmd_create,
        description="Snapshot every member of a volume group at one point in time: pre hook, freeze, start the "
        "snapshots (one multi-volume CreateSnapshots when the group is attached), thaw, post hook. Thaw and "
        "the post hook always run once the pre hook succeeded.",
        region=False, dry_run=True,
    )
    by_group.add_argument("volume_group_id", metavar="VOLUME_GROUP_ID", help="the group to snapshot")
    _add_create_options(by_group)
    by_host = add_command(
        create, "host", "snapshot the volume group at a mount point of a host", cmd_create,
        description="As 'create volume', for the group mounted at -m on the host (-H) or instance (-i).",
        region=False, dry_run=True,
    )
    target = by_host.add_mutually_exclusive_group(required=True)
    target.add_argument("-H", "--host", metavar="HOST", help="hostname")
    target.add_argument("-i", "--instance", metavar="INSTANCE", help="instance id")
    by_host.add_argument("-m", "--mount-point", metavar="MOUNT_POINT", required=True, help="the group's mount point")
    _add_create_options(by_host)

    list_parser = add_command(
        commands, "list", "list snapshot groups", cmd_list,
        description="List snapshot groups, newest first: id, created, expiry, region, members, state (with "
        "progress while pending), description, source host and mount point, and the group a copy was made from.",
        region=False,
    )
    _add_region_filter(list_parser)
    list_parser.set_defaults(list_kind=None)
    by = list_parser.add_subparsers(title="match on", metavar="FIELD")
    vol = add_command(by, "volume", "snapshot groups of one volume group", cmd_list, region=False)
    vol.set_defaults(list_kind="volume")
    vol.add_argument("volume_group_id", metavar="VOLUME_GROUP_ID", help="the volume group")
    _add_region_filter(vol)
    _add_list_by(by, "host", "HOSTNAME", "host")
    _add_list_by(by, "instance", "INSTANCE_ID", "instance")

    _, delete = add_group(commands, "delete", "delete snapshot groups")
    one = add_command(
        delete, "snapshot", "delete one snapshot group", cmd_delete_group,
        description="Delete every snapshot of a group. A snapshot already gone from EC2 is fine; a snapshot "
        "EC2 refuses to delete (used by an AMI) keeps the whole group, and the command fails.",
        region=False, dry_run=True,
    )
    one.add_argument("snapshot_group_id", metavar="SNAPSHOT_GROUP_ID", help="the snapshot group")
    add_command(
        delete, "expired", "delete every snapshot group whose expiry has passed", cmd_delete_expired,
        description="Delete every snapshot group whose expiry (UTC) has passed, with the rules of 'delete "
        "snapshot'. Made for cron.",
        region=False, dry_run=True,
    )

    copy = add_command(
        commands, "copy", "copy a snapshot group to another region", cmd_copy,
        description="Copy every snapshot of a group to REGION (tags copied), wait until the copies complete and "
        "record them as a snapshot group of their own, linked to the source. A later clone in REGION reuses it.",
        region=False, dry_run=True,
    )
    copy.add_argument("snapshot_group_id", metavar="SNAPSHOT_GROUP_ID", help="the snapshot group")
    copy.add_argument("--region", dest="to_region", metavar="REGION", required=True, help="the destination region")

    _, clone = add_group(commands, "clone", "a new volume group from a snapshot group")
    sn = add_command(
        clone, "snapshot", "clone a snapshot group", cmd_clone,
        description="Create a new volume group from the snapshots, in the zone of -z or of the host, with the "
        "same layout (copied to the host's region first when needed); with a host, attach it, assemble its "
        "array (never re-create it) and mount it at -m.",
        region=False, dry_run=True,
    )
    sn.set_defaults(clone_kind="snapshot")
    sn.add_argument("snapshot_group_id", metavar="SNAPSHOT_GROUP_ID", help="the snapshot group")
    _add_clone_options(sn)
    _, latest = add_group(clone, "latest", "clone the newest snapshot group of a volume group or mount point")
    lv = add_command(latest, "volume", "the newest snapshot group of a volume group", cmd_clone, region=False, dry_run=True)
    lv.set_defaults(clone_kind="volume")
    lv.add_argument("volume_group_id", metavar="VOLUME_GROUP_ID", help="the volume group")
    _add_clone_options(lv)
    lh = add_command(latest, "host", "the newest snapshot group of a host's mount point", cmd_clone, region=False,
                     dry_run=True)
    lh.set_defaults(clone_kind="host")
    lh.add_argument("src_hostname", metavar="HOSTNAME", help="the host the snapshots were taken on")
    lh.add_argument("src_mount_point", metavar="SRC_MOUNT_POINT", help="the mount point there")
    _add_clone_options(lh)
    li = add_command(latest, "instance", "the newest snapshot group of an instance's mount point", cmd_clone,
                     region=False, dry_run=True)
    li.set_defaults(clone_kind="instance")
    li.add_argument("src_instance_id", metavar="INSTANCE_ID", help="the instance the snapshots were taken on")
    li.add_argument("src_mount_point", metavar="SRC_MOUNT_POINT", help="the mount point there")
    _add_clone_options(li)

    from . import schedule_cmd, verify_cmd

    schedule_cmd.register(commands)
    verify_cmd.register(commands)
    from . import discovery_cmd

    discovery_cmd.register_snapshot(commands)

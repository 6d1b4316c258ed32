"""ams volume list|create|attach|detach|mount|unmount|automount|delete — volume groups on hosts."""

from .base import SUPPRESS, add_command, add_group, add_match_arguments, non_negative_int, positive_int

ZONE_HELP = (
    "only groups whose availability zone starts with ZONE: 'us', 'us-west', 'us-west-2' "
    "and 'us-west-2a' are ever more specific"
)

LIST_COLUMNS = [
    ("volume_group_id", "Group"),
    ("raid", "RAID"),
    ("members", "Vols"),
    ("size", "Size GiB"),
    ("volume_type", "Type"),
    ("performance", "IOPS/MiB/s"),
    ("availability_zone", "Zone"),
    ("hostname", "Host"),
    ("instance_id", "Instance"),
    ("mount_point", "Mount point"),
    ("block_device", "Device"),
    ("fs_type", "FS"),
    ("automount", "Auto"),
    ("state", "State"),
]

# the keys of each group in `volume list --output json` (tests/unit/test_cli_conventions.py)
JSON_KEYS = ["volume_group_id", "raid_level", "stripe_block_size", "members", "size_gib", "total_gib",
             "volume_type", "iops", "throughput", "availability_zone", "hostname", "instance_id",
             "mount_point", "block_device", "fs_type", "automount", "state", "created_at"]


def _list_row(row):
    out = dict(row)
    level = row["raid_level"]
    out["raid"] = "none" if level is None else f"raid{level}"
    members = row["members"] or 0
    out["members"] = members
    if row["total_gib"] is not None:
        out["total_gib"] = int(row["total_gib"])  # MySQL sums to a Decimal
    out["size"] = row["size_gib"] if members <= 1 else f"{members}x{row['size_gib']}"
    perf = [str(v) for v in (row["iops"], row["throughput"]) if v]
    out["performance"] = "/".join(perf)
    if row["instance_id"] is None:
        out["automount"] = None
    return out


def cmd_list(ctx, args):
    from ..store.volume_groups import list_groups

    field = getattr(args, "list_field", None)
    exact, like, prefix, zone = (
        value.strip().lower() if value is not None else None
        for value in (getattr(args, "value", None), getattr(args, "like", None), getattr(args, "prefix", None), args.zone)
    )
    if field == "instance_id" and exact is not None:  # a malformed id is refused, not an empty list
        from ..instance.validation import check_instance_id

        exact = check_instance_id(exact)
    with ctx.engine().connect() as conn:
        rows = [_list_row(r) for r in list_groups(conn, field, exact=exact, like=like, prefix=prefix, zone=zone)]
    ctx.out.listing(rows, LIST_COLUMNS, JSON_KEYS, empty="no volume groups match")
    return 0


def _report(ctx, result, done_text):
    if result["dry_run"]:
        if ctx.out.json:
            ctx.out.result(result)
        else:
            ctx.out.result(None, "dry run: nothing was changed; the plan:\n" + "\n".join(f"  {line}" for line in result["plan"]))
        return 0
    ctx.out.result(result, done_text)
    return 0


def cmd_create(ctx, args):
    from ..ebs import volume_service

    result = volume_service.create(
        ctx, host=args.host, instance=args.instance, count=args.numvols, size=args.size,
        raid_level=args.raid_level, chunk=args.stripe_block_size, fs_type=args.filesystem,
        mount_point=args.mount_point, automount=not args.no_automount, volume_type=args.volume_type,
        iops=args.iops, throughput=args.throughput, encrypted=args.encrypted, kms_key_id=args.kms_key_id,
        tags=args.tag, keep_on_failure=args.keep_on_failure, dry_run=ctx.dry_run,
    )
    text = None
    if not result["dry_run"]:
        where = f", mounted at {result['mount_point']}" if result["mount_point"] else ""
        text = (f"created volume group {result['volume_group_id']} ({', '.join(result['volume_ids'])}) "
                f"as {result['block_device']}{where}")
    return _report(ctx, result, text)


def cmd_attach(ctx, args):
    from ..ebs import volume_service

    result = volume_service.attach(
        ctx, group_id=args.volume_group_id, host=args.host, instance=args.instance,
        mount_point=args.mount_point, automount=not args.no_automount,
        keep_on_failure=args.keep_on_failure, dry_run=ctx.dry_run,
    )
    where = f", mounted at {result['mount_point']}" if result["mount_point"] else ""
    text = f"attached volume group {result['volume_group_id']} to {result['instance_id']} as {result['block_device']}{where}"
    return _report(ctx, result, text)


def cmd_detach(ctx, args):
    from ..ebs import volume_service

    result = volume_service.detach(
        ctx, group_id=getattr(args, "volume_group_id", None), host=getattr(args, "hostname", None),
        instance=getattr(args, "instance_id", None), mount_point=getattr(args, "mount_point", None),
        unmount=args.unmount, force=args.force, dry_run=ctx.dry_run,
    )
    return _report(ctx, result, f"detached volume group {result['volume_group_id']} from {result['instance_id']}")


def cmd_mount(ctx, args):
    from ..ebs import volume_service

    result = volume_service.mount(ctx, group_id=args.volume_group_id, mount_point=args.mount_point,
                                  automount=not args.no_automount, dry_run=ctx.dry_run)
    return _report(ctx, result, f"mounted volume group {result['volume_group_id']} at {result['mount_point']}")


def cmd_unmount(ctx, args):
    from ..ebs import volume_service

    result = volume_service.unmount(ctx, group_id=args.volume_group_id, dry_run=ctx.dry_run)
    return _report(ctx, result, f"unmounted volume group {result['volume_group_id']} from {result['mount_point']} "
                                "(automount, if configured, still mounts it at boot)")


def cmd_automount(ctx, args):
    from ..ebs import volume_service

    result = volume_service.automount(ctx, group_id=args.volume_group_id, mount_point=args.mount_point,
                                      remove=args.remove, dry_run=ctx.dry_run)
    verb = "configured" if result["automount"] else "removed"
    return _report(ctx, result, f"{verb} automounting of volume group {result['volume_group_id']} at {result['mount_point']}")


def cmd_delete(ctx, args):
    from ..ebs import volume_service

    result = volume_service.delete(ctx, group_id=args.volume_group_id, dry_run=ctx.dry_run)
    return _report(ctx, result, f"deleted volume group {result['volume_group_id']} ({', '.join(result['volume_ids'])})")


# ---------------------------------------------------------------------------------------------
# parsers

def _add_match_command(subparsers, name, metavar, noun):
    parser = add_command(
        subparsers, name, f"list volume groups by the {noun} they are attached to", cmd_list,
        description=f"List the volume groups attached to hosts whose {noun} matches: exactly (the "
        f"positional), by wildcard pattern (--like, '*' or '%' match any text) or by prefix (--prefix).",
        region=False,
    )
    parser.set_defaults(list_field="hostname" if name == "host" else "instance_id")
    add_match_arguments(parser, metavar, noun)
    parser.add_argument("--zone", metavar="ZONE", default=SUPPRESS, help=ZONE_HELP)


def _add_target(parser, verb):
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("-i", "--instance", metavar="INSTANCE", help=f"instance id to {verb}")
    target.add_argument("-H", "--host", metavar="HOST", help=f"hostname (as in 'ams host list') to {verb}")


def _add_mount_options(parser, mount_help):
    parser.add_argument("-m", "--mount-point", metavar="MOUNT_POINT", help=mount_help)
    parser.add_argument("-a", "--no-automount", action="store_true",
                        help="do not add the group to /etc/fstab (and mdadm.conf) for mounting at boot")


def _add_keep(parser):
    parser.add_argument("--keep-on-failure", action="store_true",
                        help="when a step fails, keep what was created (for inspection) instead of undoing it")


def _add_detach_options(parser):
    parser.add_argument("-u", "--unmount", action="store_true",
                        help="unmount the group first if it is mounted (without it a mounted group is refused)")
    parser.add_argument("-f", "--force", action="store_true",
                        help="force-detach the EBS volumes at the EC2 level (the host may lose unwritten data)")


def register(subparsers):
    _, commands = add_group(subparsers, "volume", "volume groups: one EBS volume or an mdadm RAID of several")

    list_parser = add_command(
        commands, "list", "list volume groups", cmd_list,
        description="List the volume groups in the database with their members, size, type, zone, "
        "host, mount point and device; 'host' and 'instance_id' narrow it to attached groups.",
        region=False,
    )
    list_parser.add_argument("--zone", metavar="ZONE", default=None, help=ZONE_HELP)
    list_parser.set_defaults(list_field=None)
    by = list_parser.add_subparsers(title="match on", metavar="FIELD")
    _add_match_command(by, "host", "HOSTNAME", "hostname")
    _add_match_command(by, "instance_id", "INSTANCE_ID", "instance id")

    create = add_command(
        commands, "create", "create a volume group and attach it to a host", cmd_create,
        description="Create NUMVOLS EBS volumes in the host's zone, attach them, build an mdadm RAID "
        "when there are several, make the filesystem, and with -m mount it and configure mounting at "
        "boot. If a step fails, what was created is undone (unless --keep-on-failure).",
        region=False, dry_run=True,
    )
    _add_target(create, "attach the new group to")
    create.add_argument("-n", "--numvols", metavar="NUMVOLS", type=positive_int, required=True,
                        help="number of EBS volumes in the group")
    create.add_argument("-s", "--size", metavar="SIZE", type=int, required=True, help="size of each volume in GiB")
    create.add_argument("-r", "--raid-level", metavar="{0,1,5,10}", type=int, default=0,
                        help="RAID level when NUMVOLS > 1 (default 0)")
    create.add_argument("-b", "--stripe-block-size", metavar="STRIPE_BLOCK_SIZE", type=int, default=256,
                        help="RAID chunk size in KiB (default 256)")
    create.add_argument("-f", "--filesystem", metavar="FILESYSTEM", default="xfs",
                        help="filesystem to create: xfs (default), ext4 or ext3")
    create.add_argument("-p", "--iops", metavar="IOPS", type=non_negative_int,
                        help="provisioned IOPS per volume (gp3, io1, io2)")
    create.add_argument("--volume-type", metavar="TYPE", default="gp3",
                        help="EBS volume type: gp3 (default), gp2, io1, io2, st1, sc1 or standard")
    create.add_argument("--throughput", metavar="MIBPS", type=positive_int, help="throughput per volume in MiB/s (gp3)")
    create.add_argument("--encrypted", action="store_true", help="encrypt the volumes (account default key unless --kms-key-id)")
    create.add_argument("--kms-key-id", metavar="KEY", help="KMS key (id, ARN or alias/NAME) for --encrypted")
    create.add_argument("--tag", metavar="KEY=VALUE", action="append", help="tag every volume (repeatable)")
    _add_mount_options(create, "mount the new filesystem here (without it nothing is mounted)")
    _add_keep(create)

    attach = add_command(
        commands, "attach", "attach an existing volume group to a host", cmd_attach,
        description="Attach every member of a volume group (for example one cloned from snapshots) to "
        "a host in the group's zone and assemble its existing RAID from them — never re-create it — "
        "then, with -m, mount it and configure mounting at boot.",
        region=False, dry_run=True,
    )
    attach.add_argument("volume_group_id", metavar="VOLUME_GROUP_ID", help="the group to attach")
    _add_target(attach, "attach the group to")
    _add_mount_options(attach, "mount the group here")
    _add_keep(attach)

    detach_parser, detach = add_group(commands, "detach", "detach a volume group from its host")
    by_group = add_command(
        detach, "volume", "detach a volume group by id", cmd_detach,
        description="Detach a volume group from the host it is attached to: unmount it with -u "
        "(a mounted group is refused otherwise), remove its fstab and mdadm.conf entries, stop its "
        "array and detach every member, waiting until EC2 reports them detached.",
        region=False, dry_run=True,
    )
    by_group.add_argument("volume_group_id", metavar="VOLUME_GROUP_ID", help="the group to detach")
    _add_detach_options(by_group)
    by_host = add_command(
        detach, "host", "detach the volume group mounted at a mount point of a host", cmd_detach,
        description="As 'detach volume', for the group that a host uses at MOUNT_POINT.",
        region=False, dry_run=True,
    )
    by_host.add_argument("hostname", metavar="HOSTNAME", help="the host")
    by_host.add_argument("mount_point", metavar="MOUNT_POINT", help="the group's mount point on that host")
    _add_detach_options(by_host)
    by_instance = add_command(
        detach, "instance", "detach the volume group mounted at a mount point of an instance", cmd_detach,
        description="As 'detach volume', for the group that an instance uses at MOUNT_POINT.",
        region=False, dry_run=True,
    )
    by_instance.add_argument("instance_id", metavar="INSTANCE_ID", help="the instance")
    by_instance.add_argument("mount_point", metavar="MOUNT_POINT", help="the group's mount point on that instance")
    _add_detach_options(by_instance)

    mount = add_command(
        commands, "mount", "mount an attached volume group", cmd_mount,
        description="Mount a volume group on the host it is attached to, at -m MOUNT_POINT or the "
        "mount point recorded for it, assembling its RAID first when needed, and configure mounting "
        "at boot unless -a.",
        region=False, dry_run=True,
    )
    mount.add_argument("volume_group_id", metavar="VOLUME_GROUP_ID", help="the group to mount")
    _add_mount_options(mount, "mount point (default: the one recorded for the group)")

    unmount = add_command(
        commands, "unmount", "unmount a volume group", cmd_unmount,
        description="Unmount a volume group on its host. The automount configuration is left as it is.",
        region=False, dry_run=True,
    )
    unmount.add_argument("volume_group_id", metavar="VOLUME_GROUP_ID", help="the group to unmount")

    automount = add_command(
        commands, "automount", "configure (or remove) mounting at boot", cmd_automount,
        description="Write the group's /etc/fstab entry (UUID, nofail) for -m MOUNT_POINT or its "
        "recorded mount point; with -r remove it.",
        region=False, dry_run=True,
    )
    automount.add_argument("volume_group_id", metavar="VOLUME_GROUP_ID", help="the group")
    automount.add_argument("-m", "--mount-point", metavar="MOUNT_POINT",
                           help="mount point (default: the one recorded for the group)")
    automount.add_argument("-r", "--remove", action="store_true", help="remove the automount configuration")

    delete = add_command(
        commands, "delete", "delete a volume group's EBS volumes", cmd_delete,
        description="Delete every EBS volume of a group that is attached nowhere. The group stays in "
        "the database as history (state deleted).",
        region=False, dry_run=True,
    )
    delete.add_argument("volume_group_id", metavar="VOLUME_GROUP_ID", help="the group to delete")
    from . import discovery_cmd

    discovery_cmd.register_volume(commands)
    return detach_parser

"""ams snapshot verify — restore a snapshot group into scratch volumes and check it."""

from .base import add_command

SOURCE_METAVAR = "SNAPSHOT_GROUP_ID | latest volume VOLUME_GROUP_ID | latest host HOSTNAME MOUNT_POINT | latest instance INSTANCE_ID MOUNT_POINT"
SOURCE_FORMS = {  # the words after 'latest': how many, and the resolve_source keywords they fill
    "volume": ("volume_group_id",),
    "host": ("host", "mount_point"),
    "instance": ("instance", "mount_point"),
}


def parse_source(words):
    """The snapshot group to verify, as snapshot_service.resolve_source keywords."""
    from ..core.errors import UsageError

    words = list(words or [])
    if len(words) == 1 and words[0] != "latest":
        return {"snapshot_group_id": words[0]}
    if words and words[0] == "latest":
        kind = words[1] if len(words) > 1 else None
        if kind not in SOURCE_FORMS:
            raise UsageError(f"'verify latest' takes volume, host or instance, not {kind!r}" if kind
                             else "'verify latest' needs volume, host or instance")
        names = SOURCE_FORMS[kind]
        values = words[2:]
        if len(values) != len(names):
            wanted = " ".join(n.upper() for n in names)
            raise UsageError(f"'verify latest {kind}' takes {wanted}, not {len(values)} value(s)")
        return dict(zip(names, values))
    raise UsageError(f"expected {SOURCE_METAVAR}")


def _size(value):
    if value is None:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(value)


def report_lines(report):
    """What a person reads: the verdict, the numbers, one line per checksum and per finding."""
    source = f"snapshot group {report['snapshot_group_id']}"
    if report.get("dry_run"):
        return ["dry run: nothing was changed; the plan:"] + [f"  {line}" for line in report["plan"]]
    lines = []
    if "size_bytes" in report:
        lines.append(f"{source}: {report['fs_type']} of {_size(report['size_bytes'])}, {_size(report['used_bytes'])} used, "
                     f"{report['files']} files in {report['directories']} directories")
    for path, digest in sorted(report.get("checksums", {}).items()):
        lines.append(f"sha256 {digest}  {path}")
    if report.get("kept"):
        kept = report["kept"]
        where = f", mounted read-only at {kept['mount_point']}" if kept.get("mount_point") else ""
        lines.append(f"kept scratch volume group {kept['volume_group_id']} ({', '.join(kept['volume_ids'])}){where}; "
                     "remove it with: " + "; ".join(kept["remove_with"]))
    if not report["findings"]:
        lines.append(f"{source} restores cleanly on {report['hostname']}")
    return lines


def cmd_verify(ctx, args):
    from ..core.errors import Unhealthy
    from ..ebs import verify_service

    try:
        report = verify_service.verify(
            ctx, source=parse_source(args.source), host=args.host, instance=args.instance, keep=args.keep,
            checksums=args.checksum or [], dry_run=ctx.dry_run,
        )
    except Unhealthy as exc:
        _print(ctx, exc.report)
        for finding in exc.report["findings"]:  # on stderr, so cron's -q still shows them
            ctx.out.warning(f"finding: {finding}")
        raise
    _print(ctx, report)
    return 0


def _print(ctx, report):
    if ctx.out.json:
        ctx.out.result(report)
    else:
        ctx.out.result(None, "\n".join(report_lines(report)))


def register(commands):
    parser = add_command(
        commands, "verify", "prove that a snapshot group restores, on a scratch copy", cmd_verify,
        description="Restore a snapshot group into new scratch volumes attached to a host (copied to the "
        "host's region first if needed), bring its array up read-only under a name of its own, check the "
        "filesystem without repairing anything, mount it read-only in a private directory and report its "
        "size, used space, number of files and, for --checksum paths, their sha256. The scratch volumes are "
        "then removed again, also after an error, Ctrl-C or SIGTERM, unless --keep. The original volumes and "
        "their mounts on the host are never touched. Exits 0 only when the restore is healthy; otherwise "
        "prints one 'finding:' line per problem on stderr and exits 12. 'latest' picks the newest snapshot group of "
        "a volume group or of a mount point, for a weekly cron job.",
        region=False, dry_run=True,
    )
    parser.add_argument("source", nargs="+", metavar="SOURCE",
                        help=f"which snapshot group: {SOURCE_METAVAR}")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("-H", "--host", metavar="HOST", help="the host that gets the scratch copy (by hostname)")
    target.add_argument("-i", "--instance", metavar="INSTANCE", help="the host that gets the scratch copy (by instance id)")
    parser.add_argument("--checksum", metavar="PATH", nargs="+", action="extend",
                        help="report the sha256 of these files (paths relative to the restored filesystem's root; "
                        "repeatable); a missing one is a finding")
    parser.add_argument("--keep", action="store_true",
                        help="leave the scratch copy attached and mounted read-only, and say how to remove it")

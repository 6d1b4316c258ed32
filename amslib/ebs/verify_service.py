"""``ams snapshot verify``: prove that a snapshot group restores.

The group is cloned (``snapshot_service.clone(verify=True)``: copied to the host's region when
needed, created in the host's zone, recorded as a volume group in state "verifying" and tagged
``ams:verify-of``) and attached to the host; then, without writing a byte to the scratch disks:
every member's superblock is read, the array is assembled read-only as ``/dev/md/ams-verify<id>``
(the original may run on the same host with the same UUIDs), the filesystem is checked in
no-modify mode, mounted read-only at a private ``mktemp -d`` directory, measured and, for the
paths asked, checksummed.  Then everything is taken down again: unmount, stop, detach, delete —
also after a failure, Ctrl-C or SIGTERM (a second signal during the clean-up is ignored) —
unless ``keep``.

The result is a report: healthy when there is no finding.  :class:`Unhealthy` carries it when
there are findings, so the CLI prints one line per finding and exits with its own code.
"""

import logging
import signal
import threading
from contextlib import ExitStack

from ..core.errors import AmsError, ConflictError, Unhealthy
from ..hostdisk import raid
from ..hostdisk import verify_checks as checks
from ..hostdisk.filesystem import check_filesystem
from ..store import volume_groups as vg_store
from . import snapshot_service, volume_service
from . import volume_actions as act
from .runner import Execution

log = logging.getLogger("ams.ebs.verify")

FSCK_TIMEOUT_FLOOR = 600.0  # a check reads every metadata block of a lazily loaded volume


# ---------------------------------------------------------------------------------------------
# signals: SIGTERM acts as Ctrl-C while verifying; both wait during the clean-up

class _Signals:
    def __init__(self, ctx):
        self.ctx = ctx
        self.saved = {}
        self.cleaning = False

    def _handler(self, signum, frame):  # noqa: ARG002
        if self.cleaning:
            self.ctx.out.warning("removing the scratch volumes first; ams stops when that is done")
            return
        raise KeyboardInterrupt

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self.saved[signum] = signal.signal(signum, self._handler)
        return self

    def __exit__(self, *exc):
        for signum, handler in self.saved.items():
            signal.signal(signum, handler)
        return False


# ---------------------------------------------------------------------------------------------
# the command

def verify(ctx, *, source, host=None, instance=None, keep=False, checksums=(), dry_run=False):
    """Verify the snapshot group named by ``source`` (resolve_source kwargs) on a host."""
    paths = checks.check_checksum_paths(checksums)
    engine = ctx.engine()
    with engine.connect() as conn:
        group, members = snapshot_service.resolve_source(conn, **source)
        target = volume_service.resolve_target(conn, host, instance)
    if not group["fs_type"]:
        raise ConflictError(f"snapshot group {group['id']} has no filesystem recorded; there is nothing to check")
    fs_type = check_filesystem(group["fs_type"])
    clone_args = dict(source={"snapshot_group_id": group["id"]}, host=target.hostname if instance is None else None,
                      instance=instance, automount=False, verify=True)
    report = {"snapshot_group_id": group["id"], "volume_group_id": group["volume_group_id"],
              "instance_id": target.instance_id, "hostname": target.hostname, "raid_level": group["raid_level"],
              "members": len(members), "fs_type": fs_type, "dry_run": dry_run, "healthy": None, "findings": [],
              "checksums": {}, "kept": None}
    if dry_run:
        planned = snapshot_service.clone(ctx, dry_run=True, **clone_args)
        report["plan"] = planned["plan"] + _plan_lines(group, fs_type, paths, keep)
        return report

    with _Signals(ctx) as signals, ExitStack() as held:
        scratch = {}  # what exists now, for the clean-up
        try:
            ctx.out.step(f"cloning snapshot group {group['id']} into scratch volumes on {target.hostname}")
            try:
                cloned = snapshot_service.clone(ctx, dry_run=False, **clone_args)
            except AmsError as exc:
                exc.message = f"the scratch copy could not be made: {exc.message}"
                exc.args = (exc.message,)
                raise
            scratch.update(volume_group_id=cloned["volume_group_id"], volume_ids=cloned["volume_ids"],
                           devices=cloned["os_devices"], stable=cloned["stable_devices"])
            # the scratch group stays locked until it is gone (clone released its claim on return)
            held.enter_context(volume_service.group_lock(ctx, cloned["volume_group_id"], "snapshot verify"))
            report.update(scratch_volume_group_id=cloned["volume_group_id"], scratch_volume_ids=cloned["volume_ids"],
                          copied_to_region=cloned["copied"])
            hostdisk = volume_service._host(ctx, target.hostname)
            _inspect(ctx, hostdisk, group, members, fs_type, paths, scratch, report)
        finally:
            signals.cleaning = True
            if scratch:
                if keep:
                    report["kept"] = _keep(engine, scratch, target)
                else:
                    _clean_up(ctx, engine, target, scratch)
    if scratch.get("left"):
        raise ConflictError(scratch["left"])
    report["healthy"] = not report["findings"]
    if not report["healthy"]:
        raise Unhealthy(f"snapshot group {group['id']} did not restore cleanly: {len(report['findings'])} finding(s)",
                        report=report)
    return report


def _plan_lines(group, fs_type, paths, keep):
    """What --dry-run shows after the clone's own plan (the devices are known only at run time)."""
    raid_group = group["raid_level"] is not None
    device = "/dev/md<N>" if raid_group else "<the member's device>"
    lines = []
    if raid_group:
        lines.append("host: mdadm --examine each member (the array UUID in its superblock); blockdev --setro each")
        lines.append("host: in a mount namespace with an empty /run/mdadm/map: mdadm --assemble "
                     "/dev/md/ams-verify<scratch group id> --readonly --config=none --uuid=<the group's> --run <members>")
    else:
        lines.append(f"host: blockdev --setro {device}")
    lines.append("host: " + " ".join(checks.fsck_argv(fs_type, device)))
    lines.append(f"host: mktemp -d -p {checks.MOUNT_PARENT} {checks.MOUNT_TEMPLATE}; "
                 f"mount -t {fs_type} -o {checks.mount_options(fs_type)} {device} <that directory>")
    lines.append("host: df, a count of the files and directories" + (f"; sha256 of {', '.join(paths)}" if paths else ""))
    if keep:
        lines.append("keep the scratch volumes attached and mounted read-only (--keep)")
    else:
        lines.append("host: umount, rmdir" + (", mdadm --stop" if raid_group else "")
                     + "; EC2 DetachVolume (Force), DeleteVolume; record the scratch group deleted")
    return lines


def _record_attachment(engine, group_id, values):
    with engine.begin() as conn:
        vg_store.update_attachment(conn, group_id, values)


def _inspect(ctx, hostdisk, group, members, fs_type, paths, scratch, report):
    """Assemble, check, mount, measure; findings go into ``report``; nothing is written."""
    findings = report["findings"]
    gid = scratch["volume_group_id"]
    engine = ctx.engine()
    if group["raid_level"] is None:
        device = scratch["stable"][0]
        hostdisk.sudo(checks.setro_argv(device))
    else:
        device = checks.scratch_array_device(gid)
        hostdisk.sudo(["udevadm", "settle", "--timeout=30"], check=False)
        # udev may have assembled the new members by itself (as md127): stop that first
        hostdisk.stop_arrays_holding(scratch["devices"])
        ctx.out.step("reading the members' RAID superblocks")
        found = {d: hostdisk.member_uuid(d) for d in scratch["devices"]}
        rows = [(m["member_index"], v, d) for m, v, d in zip(members, scratch["volume_ids"], scratch["devices"])]
        member_problems, good, uuid = checks.member_findings(rows, group["md_uuid"], found)
        findings += member_problems
        if not good:
            findings.append("no member carries the group's RAID superblock: nothing to assemble")
            return
        for d in good:
            hostdisk.sudo(checks.setro_argv(d))
        ctx.out.step(f"assembling {device} read-only")
        result = hostdisk.sudo(checks.assemble_readonly_script(device, uuid, good), check=False)
        real = hostdisk.realpaths(good[:1])[0]
        holder = checks.parse_holder(hostdisk.run(checks.holders_argv(real), check=False).text)
        if holder is not None:
            scratch["array"] = device = holder
        if not result.ok or holder is None:
            why = (result.stderr_text.strip().splitlines() or ["mdadm failed"])[-1]
            findings.append(f"the array did not assemble: {why}"[:400])
            return
        with engine.begin() as conn:
            vg_store.update_group(conn, gid, {"array_name": checks.scratch_array_name(gid)})
        _record_attachment(engine, gid, {"block_device": device})
        findings += checks.array_findings(hostdisk.sudo(raid.detail_argv(device), check=False).text, len(members))
    report["block_device"] = scratch["device"] = device

    ctx.out.step(f"checking the {fs_type} filesystem without writing")
    timeout = max(FSCK_TIMEOUT_FLOOR, hostdisk.slow_timeout or 0)
    result = hostdisk.sudo(checks.fsck_argv(fs_type, device), timeout=timeout, check=False)
    report["fsck_exit_status"] = result.exit_status
    output = result.text + "\n" + result.stderr_text
    findings += checks.fsck_findings(fs_type, result.exit_status, output)
    if fs_type == "xfs":  # a log not replayed (nothing is written): stale lazy counters are then expected
        report["xfs_log_dirty"] = checks.xfs_log_dirty(output)

    path = hostdisk.sudo(checks.mkdtemp_argv()).text.strip()
    scratch["mount_dir"] = checks.check_mount_dir(path)
    result = hostdisk.sudo(checks.mount_argv(fs_type, device, path), check=False)
    if not result.ok:
        findings.append(f"the filesystem does not mount read-only: {result.stderr_text.strip() or 'mount failed'}"[:400])
        return
    scratch["mounted"] = True
    report["mount_point"] = path
    _record_attachment(engine, gid, {"mount_point": path, "block_device": device})
    ctx.out.step("measuring the restored filesystem")
    usage = checks.parse_usage(hostdisk.sudo(checks.usage_script(path), timeout=timeout).text)
    report.update(size_bytes=usage["size_bytes"], used_bytes=usage["used_bytes"], files=usage["files"],
                  directories=usage["dirs"])
    if paths:
        ctx.out.step(f"checksumming {len(paths)} file(s)")
        text = hostdisk.sudo(checks.checksum_script(path, paths), timeout=timeout).text
        sums, missing = checks.parse_checksums(text, paths)
        report["checksums"] = sums
        findings += [f"--checksum {p}: not a regular file inside the restored filesystem" for p in missing]


def _keep(engine, scratch, target):
    gid = scratch["volume_group_id"]
    steps = [f"ams volume detach volume {gid} --unmount", f"ams volume delete {gid}"]
    if scratch.get("mount_dir"):
        steps.append(f"on {target.hostname}: rmdir {scratch['mount_dir']}")
    return {"volume_group_id": gid, "volume_ids": scratch["volume_ids"], "block_device": scratch.get("device"),
            "mount_point": scratch.get("mount_dir") if scratch.get("mounted") else None, "remove_with": steps}


def _clean_up(ctx, engine, target, scratch):
    """Take down everything the verify made, in reverse; every step is tried, failures are told."""
    gid = scratch["volume_group_id"]
    hostdisk = volume_service._host(ctx, target.hostname)
    ex = Execution(engine=engine, ec2=volume_service._ebs(ctx, target.region), host=hostdisk, progress=ctx.out.step)
    problems = []

    def attempt(what, fn):
        try:
            ctx.out.step(f"clean-up: {what}")
            fn()
            return True
        except Exception as exc:  # keep going: the volumes must still go
            log.warning("clean-up step %r failed: %s", what, exc)
            problems.append(f"{what}: {exc}")
            return False

    host_ok = True
    if scratch.get("mounted"):
        host_ok &= attempt(f"umount {scratch['mount_dir']}", lambda: hostdisk.sudo(checks.umount_argv(scratch["mount_dir"])))
    if scratch.get("mount_dir"):
        attempt(f"rmdir {scratch['mount_dir']}", lambda: hostdisk.sudo(checks.rmdir_argv(scratch["mount_dir"])))
    if scratch.get("array"):
        host_ok &= attempt(f"mdadm --stop {scratch['array']}", lambda: hostdisk.stop_array(scratch["array"]))
    if scratch.get("devices"):
        host_ok &= attempt("stop any array holding the scratch disks",
                           lambda: hostdisk.stop_arrays_holding(scratch["devices"]))
    ids = scratch["volume_ids"]
    detached = host_ok and attempt(
        f"detach {', '.join(ids)}", lambda: act.DetachVolumes(gid, target.instance_id, ids, force=True).run(ex))
    if detached:
        attempt(f"delete {', '.join(ids)}", lambda: act.DeleteVolumes(gid, ids).run(ex))
    if problems:
        with engine.begin() as conn:
            vg_store.update_group(conn, gid, {"state": "failed"})
        message = (f"the scratch volume group {gid} could not be removed completely ({'; '.join(problems)}); "
                   f"remove it with 'ams volume detach volume {gid} --unmount --force' and 'ams volume delete {gid}'")
        ctx.out.warning(message)
        scratch["left"] = message

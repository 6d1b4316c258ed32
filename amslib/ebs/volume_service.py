"""The volume group commands: check everything, plan, then act step by step (or print the plan).

Each public function takes the command's :class:`amslib.cli.context.Context` and checked or raw
user values, and returns a dict describing the outcome.  Checks come first and change nothing:
input formats, the database (group, host, mount point), EC2 (instance state, zone, free device
names, member states) and the host (it is the instance ams means, the mount point is free).
With ``dry_run`` the plan is returned instead of run.  A real run holds the volume group's lock
(:func:`holds_group_lock`, amslib/store/group_locks.py) from right after the input checks until
it returns, so the state it checks is the state it acts on.
"""

import contextlib
import functools
import logging
import secrets

from ..core.errors import ConflictError, NotFoundError, UsageError
from ..hostdisk import devices, filesystem, raid
from ..hostdisk.mountpoint import check_mount_point
from ..instance.validation import check_hostname, check_instance_id, check_row_id
from ..store import hosts as host_store
from ..store import volume_groups as store
from ..store.types import utcnow
from . import params, volume_plans
from .runner import Execution, describe_plan, run_plan
from .volume_plans import Target

log = logging.getLogger("ams.ebs.volumes")

GONE_STATES = ("terminated", "shutting-down", "missing")


# ---------------------------------------------------------------------------------------------
# lookups

def resolve_target(conn, host=None, instance=None):
    """The Target named by ``-H HOST`` or ``-i INSTANCE`` (exactly one of them)."""
    if instance is not None:
        instance_id = check_instance_id(instance)
        row = host_store.get_host(conn, instance_id)
        if row is None:
            raise NotFoundError(
                f"instance {instance_id} is not in the hosts table; run 'ams host discovery' or 'ams host add'"
            )
        rows = [row]
    else:
        name = check_hostname(host)
        rows = [r for r in host_store.list_hosts(conn, "hostname", exact=name) if r["state"] not in GONE_STATES]
        if not rows:
            raise NotFoundError(f"no running host is named {name!r}; see 'ams host list'")
        if len(rows) > 1:
            ids = ", ".join(r["instance_id"] for r in rows)
            raise ConflictError(f"hostname {name!r} is shared by instances {ids}; name the instance with -i")
    row = rows[0]
    if row["state"] in GONE_STATES:
        raise ConflictError(f"instance {row['instance_id']} is {row['state']}")
    if not row["hostname"]:
        raise ConflictError(
            f"instance {row['instance_id']} has no hostname to connect to; set one with "
            f"'ams host edit -i {row['instance_id']} -H NAME'"
        )
    if not row["availability_zone"] or not row["region"]:
        raise ConflictError(f"instance {row['instance_id']} has no availability zone recorded; run 'ams host discovery'")
    return Target(row["instance_id"], row["hostname"], row["availability_zone"], row["region"])


def check_group_id(text):
    return check_row_id(text, "volume group id")


def load_group(conn, group_id):
    """(group, members, attachment) of a live group; NotFoundError otherwise."""
    group = store.get_group(conn, group_id)
    if group is None or group["deleted_at"] is not None:
        raise NotFoundError(f"volume group {group_id} not found" + (" (it was deleted)" if group else ""))
    return group, store.members(conn, group_id), store.attachment(conn, group_id)


def require_group_row(conn, group_id):
    """NotFoundError unless volume group ``group_id`` was ever recorded (a deleted one counts:
    its snapshots and schedules are history worth listing)."""
    if store.get_group(conn, group_id) is None:
        raise NotFoundError(f"volume group {group_id} not found")


def group_at(conn, target, mount_point):
    """The group attached to ``target`` at ``mount_point``."""
    found = store.attachment_at(conn, target.instance_id, mount_point)
    if found is None:
        raise NotFoundError(f"no volume group is attached at {mount_point} on {target.hostname} ({target.instance_id})")
    return found["volume_group_id"]


def _target_of(attachment):
    return Target(attachment["instance_id"], attachment["hostname"], attachment["availability_zone"], attachment["region"])


# ---------------------------------------------------------------------------------------------
# EC2 and host access

def _ebs(ctx, region):
    from ..aws.ebs import Ebs

    return Ebs(ctx.aws, region, progress=ctx.out.step)


def _host(ctx, hostname):
    from ..hostdisk.remote import HostDisk

    return HostDisk(lambda: ctx.ssh.get(hostname), hostname, device_timeout=ctx.settings.DEVICE_TIMEOUT)


def _running_instance(ebs, target):
    """EC2's view of the instance: it must be running in the recorded zone."""
    instance = ebs.instance(target.instance_id)
    state = instance.get("State", {}).get("Name")
    if state != "running":
        raise ConflictError(f"instance {target.instance_id} is {state}, not running")
    zone = instance.get("Placement", {}).get("AvailabilityZone")
    if zone and zone != target.zone:
        raise ConflictError(
            f"instance {target.instance_id} is in {zone} but the hosts table says {target.zone}; run 'ams host discovery'"
        )
    return instance


def _free_devices(conn, instance, count):
    used = {m.get("DeviceName") for m in instance.get("BlockDeviceMappings", [])}
    used |= store.device_names_in_use(conn, instance["InstanceId"])
    if instance.get("RootDeviceName"):
        used.add(instance["RootDeviceName"])
    return devices.choose_api_devices({u for u in used if u}, count)


def _check_mount_point_free(conn, target, mount_point, *, except_group=None):
    """No other group of the instance claims ``mount_point`` (the database's view)."""
    taken = store.attachment_at(conn, target.instance_id, mount_point)
    if taken is not None and taken["volume_group_id"] != except_group:
        raise ConflictError(
            f"{mount_point} on {target.hostname} is already used by volume group {taken['volume_group_id']}"
        )


def _check_not_mounted(hostdisk, target, mount_point):
    """Nothing is mounted at ``mount_point`` on the host (the host's view)."""
    mounted = hostdisk.mounts().get(mount_point)
    if mounted is not None:
        raise ConflictError(f"{mount_point} on {target.hostname} is already a mount point (of {mounted[0]})")


def group_lock(ctx, group_id, command, *, dry_run=False, owner=None):
    """The lock of volume group ``group_id`` for ``command``, as a context manager (waits up to
    LOCK_WAIT for another ams, then BusyError).  A dry run takes no lock; it warns when the
    group is busy.  ``owner``: adopt the lock a new group's INSERT claimed."""
    from ..store import group_locks

    if dry_run:
        message = group_locks.busy_message(ctx.engine(), group_id)
        if message:
            ctx.out.warning(f"{message}; the real run would wait up to {ctx.settings.LOCK_WAIT:g}s for it")
        return contextlib.nullcontext()
    return group_locks.GroupLock(ctx.engine(), group_id, command, wait=ctx.settings.LOCK_WAIT,
                                 on_wait=ctx.out.step, owner=owner)


def holds_group_lock(func):
    """Gives ``func`` a ``lock_group(group_id, command, owner=None)`` argument: the call takes that
    group's lock (:func:`group_lock`, honouring the command's ``dry_run``) and holds it until
    ``func`` returns or fails.  Called after the input checks, before the group's state is read."""

    @functools.wraps(func)
    def run(ctx, **kwargs):
        with contextlib.ExitStack() as held:
            def lock_group(group_id, command, owner=None):
                held.enter_context(group_lock(ctx, group_id, command, dry_run=kwargs.get("dry_run", False), owner=owner))

            return func(ctx, lock_group=lock_group, **kwargs)

    return run


def _finish(ctx, plan, ex, dry_run, **kw):
    if dry_run:
        return {"dry_run": True, "plan": describe_plan(plan)}
    run_plan(plan, ex, **kw)
    return {"dry_run": False, "plan": describe_plan(plan)}


# ---------------------------------------------------------------------------------------------
# commands

@holds_group_lock
def create(ctx, *, host, instance, count, size, raid_level, chunk, fs_type, mount_point, automount,
           volume_type, iops, throughput, encrypted, kms_key_id, tags, keep_on_failure, dry_run, lock_group):
    count = params.check_count(count)
    spec = params.check_volume_spec(volume_type, size, iops, throughput, encrypted, kms_key_id)
    level = raid.check_raid(raid_level, count)
    chunk = raid.check_chunk(chunk)
    fs_type = filesystem.check_filesystem(fs_type)
    mount_point = check_mount_point(mount_point) if mount_point is not None else None
    user_tags = params.parse_tags(tags or [])
    engine = ctx.engine()
    with engine.connect() as conn:
        target = resolve_target(conn, host, instance)
        if mount_point:
            _check_mount_point_free(conn, target, mount_point)
    ebs = _ebs(ctx, target.region)
    instance_info = _running_instance(ebs, target)
    with engine.connect() as conn:
        device_names = _free_devices(conn, instance_info, count)
    hostdisk = _host(ctx, target.hostname)
    hostdisk.verify_instance(target.instance_id)
    if mount_point:
        _check_not_mounted(hostdisk, target, mount_point)
    request = volume_plans.CreateRequest(
        target=target, count=count, spec=spec, raid_level=level, chunk_kib=chunk, fs_type=fs_type,
        mount_point=mount_point, automount=automount and mount_point is not None, tags=user_tags,
        device_names=tuple(device_names),
    )
    if dry_run:  # names shown with the id the group would get if nobody creates one meanwhile
        with engine.connect() as conn:
            next_id = store.next_group_id(conn)
        plan = volume_plans.plan_create(request, next_id, _create_requests(request, next_id))
        return {"dry_run": True, "plan": describe_plan(plan), "volume_group_id": None}
    from ..store import group_locks

    now = utcnow()
    owner = group_locks.owner_text("volume create")
    with engine.begin() as conn:  # the new group is locked from its INSERT on
        group_id = store.insert_group(conn, {
            "raid_level": level, "stripe_block_size": chunk if level not in (None, 1) else None, "fs_type": fs_type,
            "region": target.region, "availability_zone": target.zone, "state": "creating",
            "tags": _json(user_tags), "created_at": now, **group_locks.claim_values(owner, now),
        })
    lock_group(group_id, "volume create", owner=owner)
    plan = volume_plans.plan_create(request, group_id, _create_requests(request, group_id))
    ex = Execution(engine=engine, ec2=ebs, host=hostdisk, progress=ctx.out.step)
    try:
        run_plan(plan, ex, keep_on_failure=keep_on_failure,
                 leftover_hint=f"volume group {group_id} is recorded as failed; remove it with 'ams volume detach volume {group_id}' and 'ams volume delete {group_id}'")
    except BaseException:
        with engine.begin() as conn:
            if keep_on_failure:
                store.update_group(conn, group_id, {"state": "failed"})
            elif not store.members(conn, group_id):
                store.update_group(conn, group_id, {"state": "deleted", "deleted_at": utcnow()})
            else:
                store.update_group(conn, group_id, {"state": "failed"})
        raise
    return {"dry_run": False, "volume_group_id": group_id, "volume_ids": ex.state["volume_ids"],
            "block_device": ex.state.get("block_device"), "mount_point": mount_point,
            "plan": describe_plan(plan)}


def _create_requests(request, group_id):
    token = secrets.token_hex(8)
    stripe = request.chunk_kib if request.raid_level not in (None, 1) else None
    out = []
    for index in range(request.count):
        tags = dict(request.tags)
        tags.update(params.group_tags(group_id, request.raid_level, index, stripe, request.fs_type,
                                      member_count=request.count))
        out.append({"spec": request.spec, "zone": request.target.zone, "tags": tags,
                    "token": f"ams-{token}-{group_id}-{index}"})
    return out


def _json(value):
    import json

    return json.dumps(value, sort_keys=True) if value else None


@holds_group_lock
def attach(ctx, *, group_id, host, instance, mount_point, automount, keep_on_failure, dry_run, lock_group):
    group_id = check_group_id(group_id)
    mount_point = check_mount_point(mount_point) if mount_point is not None else None
    engine = ctx.engine()
    lock_group(group_id, "volume attach")
    with engine.connect() as conn:
        group, members, attachment = load_group(conn, group_id)
        target = resolve_target(conn, host, instance)
        if attachment is not None:
            raise ConflictError(
                f"volume group {group_id} is attached to {attachment['hostname']} ({attachment['instance_id']}); detach it first"
            )
        if not members:
            raise ConflictError(f"volume group {group_id} has no volumes")
        if group["availability_zone"] != target.zone:
            raise ConflictError(
                f"volume group {group_id} is in {group['availability_zone']}, instance {target.instance_id} in {target.zone}; "
                "EBS volumes attach only within their zone (clone its snapshots into the other zone)"
            )
        if mount_point:
            _check_mount_point_free(conn, target, mount_point)
    ebs = _ebs(ctx, target.region)
    instance_info = _running_instance(ebs, target)
    found = ebs.describe([m["volume_id"] for m in members])
    for member in members:
        volume = found.get(member["volume_id"])
        if volume is None:
            raise ConflictError(f"volume {member['volume_id']} of group {group_id} no longer exists in EC2")
        if volume.get("State") != "available":
            raise ConflictError(f"volume {member['volume_id']} of group {group_id} is {volume.get('State')}, not available")
    with engine.connect() as conn:
        device_names = _free_devices(conn, instance_info, len(members))
    hostdisk = _host(ctx, target.hostname)
    hostdisk.verify_instance(target.instance_id)
    if mount_point:
        _check_not_mounted(hostdisk, target, mount_point)
    plan = volume_plans.plan_attach(group, members, target, device_names, mount_point, automount and mount_point is not None,
                                    renew_identity=_first_attach_of_clone(engine, group))
    ex = Execution(engine=engine, ec2=ebs, host=hostdisk, progress=ctx.out.step,
                   state={"volume_ids": [m["volume_id"] for m in members], "fs_uuid": group["fs_uuid"]})
    result = _finish(ctx, plan, ex, dry_run, keep_on_failure=keep_on_failure)
    result.update(volume_group_id=group_id, instance_id=target.instance_id, mount_point=mount_point,
                  block_device=ex.state.get("block_device"))
    return result


def _first_attach_of_clone(engine, group):
    """A clone still carries its source's array and filesystem UUIDs until its first attach."""
    if group.get("cloned_from_id") is None:
        return False
    from ..store import snapshot_groups

    with engine.connect() as conn:
        source = snapshot_groups.get_group(conn, group["cloned_from_id"])
    return source is not None and source["fs_uuid"] == group["fs_uuid"]


def _attached(conn, group_id):
    group, members, attachment = load_group(conn, group_id)
    if attachment is None:
        raise ConflictError(f"volume group {group_id} is not attached to any host")
    return group, members, attachment


@holds_group_lock
def detach(ctx, *, group_id=None, host=None, instance=None, mount_point=None, unmount, force, dry_run, lock_group):
    engine = ctx.engine()
    if group_id is None:
        mount_point = check_mount_point(mount_point)
        with engine.connect() as conn:
            group_id = group_at(conn, resolve_target(conn, host, instance), mount_point)
    else:
        group_id = check_group_id(group_id)
    lock_group(group_id, "volume detach")
    with engine.connect() as conn:
        group, members, attachment = _attached(conn, group_id)
    target = _target_of(attachment)
    hostdisk = _host(ctx, target.hostname)
    hostdisk.verify_instance(target.instance_id)
    mounted = bool(attachment["mount_point"]) and hostdisk.is_mounted(attachment["mount_point"])
    if mounted and not unmount:
        raise ConflictError(
            f"volume group {group_id} is mounted at {attachment['mount_point']} on {target.hostname}; "
            "unmount it first or pass -u"
        )
    plan = volume_plans.plan_detach(group, members, attachment, mounted=mounted, unmount=unmount, force=force)
    ex = Execution(engine=engine, ec2=_ebs(ctx, target.region), host=hostdisk, progress=ctx.out.step)
    result = _finish(ctx, plan, ex, dry_run)
    result.update(volume_group_id=group_id, instance_id=target.instance_id)
    return result


def _attached_at(engine, group_id, mount_point):
    """(group, members, attachment, mount point) of an attached group: ``mount_point`` checked, or
    the recorded one (UsageError when there is none), free on the group's host."""
    with engine.connect() as conn:
        group, members, attachment = _attached(conn, group_id)
        mount_point = check_mount_point(mount_point) if mount_point is not None else attachment["mount_point"]
        if mount_point is None:
            raise UsageError(f"volume group {group_id} has no mount point recorded; give one with -m")
        _check_mount_point_free(conn, _target_of(attachment), mount_point, except_group=group_id)
    return group, members, attachment, mount_point


@holds_group_lock
def mount(ctx, *, group_id, mount_point, automount, dry_run, lock_group):
    group_id = check_group_id(group_id)
    lock_group(group_id, "volume mount")
    engine = ctx.engine()
    group, members, attachment, mount_point = _attached_at(engine, group_id, mount_point)
    target = _target_of(attachment)
    hostdisk = _host(ctx, target.hostname)
    hostdisk.verify_instance(target.instance_id)
    _check_not_mounted(hostdisk, target, mount_point)
    array_active = True
    if group["raid_level"] is not None:
        active = hostdisk.active_arrays()
        array_active = bool(group["md_uuid"]) and group["md_uuid"] in active
        if array_active:  # udev may have assembled it under another name
            attachment = dict(attachment, block_device=active[group["md_uuid"]])
    plan = volume_plans.plan_mount(group, members, attachment, mount_point, automount, array_active=array_active)
    ex = Execution(engine=engine, ec2=_ebs(ctx, target.region), host=hostdisk, progress=ctx.out.step,
                   state={"fs_uuid": group["fs_uuid"]})
    result = _finish(ctx, plan, ex, dry_run)
    result.update(volume_group_id=group_id, mount_point=mount_point)
    return result


@holds_group_lock
def unmount(ctx, *, group_id, dry_run, lock_group):
    group_id = check_group_id(group_id)
    lock_group(group_id, "volume unmount")
    with ctx.engine().connect() as conn:
        group, members, attachment = _attached(conn, group_id)
    if not attachment["mount_point"]:
        raise ConflictError(f"volume group {group_id} has no mount point")
    hostdisk = _host(ctx, attachment["hostname"])
    hostdisk.verify_instance(attachment["instance_id"])
    if not hostdisk.is_mounted(attachment["mount_point"]):
        raise ConflictError(f"volume group {group_id} is not mounted at {attachment['mount_point']} on {attachment['hostname']}")
    plan = volume_plans.plan_unmount(group, attachment)
    ex = Execution(engine=ctx.engine(), host=hostdisk, progress=ctx.out.step)
    result = _finish(ctx, plan, ex, dry_run)
    result.update(volume_group_id=group_id, mount_point=attachment["mount_point"])
    return result


@holds_group_lock
def automount(ctx, *, group_id, mount_point, remove, dry_run, lock_group):
    group_id = check_group_id(group_id)
    lock_group(group_id, "volume automount")
    engine = ctx.engine()
    group, members, attachment, mount_point = _attached_at(engine, group_id, mount_point)
    if not group["fs_uuid"]:
        raise ConflictError(f"volume group {group_id} has no filesystem recorded; mount it once with 'ams volume mount'")
    hostdisk = _host(ctx, attachment["hostname"])
    plan = volume_plans.plan_automount(group, attachment, mount_point, remove, members)
    ex = Execution(engine=engine, ec2=_ebs(ctx, group["region"]), host=hostdisk, progress=ctx.out.step)
    result = _finish(ctx, plan, ex, dry_run)
    result.update(volume_group_id=group_id, mount_point=mount_point, automount=not remove)
    return result


@holds_group_lock
def delete(ctx, *, group_id, dry_run, lock_group):
    group_id = check_group_id(group_id)
    lock_group(group_id, "volume delete")
    engine = ctx.engine()
    with engine.connect() as conn:
        group, members, attachment = load_group(conn, group_id)
    if attachment is not None:
        raise ConflictError(
            f"volume group {group_id} is attached to {attachment['hostname']} ({attachment['instance_id']}); "
            f"detach it first with 'ams volume detach volume {group_id}'"
        )
    ebs = _ebs(ctx, group["region"])
    found = ebs.describe([m["volume_id"] for m in members])
    for member in members:
        volume = found.get(member["volume_id"])
        if volume is not None and volume.get("State") != "available":
            attached = ", ".join(a.get("InstanceId", "?") for a in volume.get("Attachments", []))
            raise ConflictError(
                f"volume {member['volume_id']} of group {group_id} is {volume.get('State')}"
                + (f" (attached to {attached})" if attached else "") + "; refusing to delete"
            )
    plan = volume_plans.plan_delete(group, members)
    ex = Execution(engine=engine, ec2=ebs, progress=ctx.out.step)
    result = _finish(ctx, plan, ex, dry_run)
    result.update(volume_group_id=group_id, volume_ids=[m["volume_id"] for m in members])
    return result

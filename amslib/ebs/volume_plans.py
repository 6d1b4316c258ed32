"""Pure planners of the volume group commands: checked values in, the list of actions out.

Nothing here reads the database, calls EC2 or reaches a host; ``--dry-run`` prints the
``describe()`` of each action, a real run hands the same list to :func:`runner.run_plan`.
"""

from dataclasses import dataclass

from ..hostdisk import raid
from . import volume_actions as act


@dataclass(frozen=True)
class Target:
    """The instance a command works on, as the hosts table knows it."""

    instance_id: str
    hostname: str
    zone: str
    region: str


@dataclass(frozen=True)
class CreateRequest:
    target: Target
    count: int
    spec: object  # amslib.ebs.params.VolumeSpec
    raid_level: int  # None: a single volume
    chunk_kib: int
    fs_type: str
    mount_point: str  # None: not mounted
    automount: bool
    tags: dict  # the user's --tag values
    device_names: tuple  # EC2 device name per member


def _array_steps(group_id, hostname, array_name, md_uuid, automount_array=True, renew_uuid=False):
    steps = [act.AssembleArray(group_id, hostname, array_name, md_uuid, renew_uuid=renew_uuid)]
    if automount_array:
        steps.append(act.SetMdadmConf(hostname, group_id, array_name))
    return steps


def _mount_steps(group_id, hostname, mount_point, fs_type, automount):
    if mount_point is None:
        return []
    steps = [act.Mount(group_id, hostname, mount_point, fs_type)]
    if automount:
        steps.append(act.SetFstab(group_id, hostname, mount_point, fs_type))
    return steps


def plan_create(request, group_id, requests):
    """Create, attach, build, format, mount.  ``requests``: the CreateVolume requests per member."""
    t = request.target
    plan = [
        act.CreateVolumes(group_id, requests),
        act.WaitAvailable(),
        act.AttachVolumes(group_id, t.instance_id, list(request.device_names), request.mount_point, created_here=True),
        act.WaitAttached(),
        act.VerifyInstance(t.hostname, t.instance_id),
        act.WaitDevices(t.hostname, None, list(request.device_names)),
        act.RequireEmpty(t.hostname),
    ]
    if request.raid_level is None:
        plan.append(act.UseSingleDevice())
    else:
        plan.append(act.CreateArray(group_id, t.hostname, request.raid_level, request.chunk_kib, request.count))
        if request.automount:
            plan.append(act.SetMdadmConf(t.hostname, group_id, raid.array_name(group_id)))
    striped = request.raid_level not in (None, 1)
    plan.append(act.Mkfs(
        group_id, t.hostname, request.fs_type,
        chunk_kib=request.chunk_kib if striped else None,
        data_disks=raid.data_disks(request.raid_level, request.count),
    ))
    plan.append(act.RecordBlockDevice(group_id))
    plan += _mount_steps(group_id, t.hostname, request.mount_point, request.fs_type, request.automount)
    plan.append(act.TagVolumes(group_id, None, None if request.raid_level is None else raid.array_name(group_id),
                               request.mount_point, request.automount))
    plan.append(act.MarkGroup(group_id, "available"))
    return plan


def _recorded(group):
    return {key: group.get(key) for key in ("md_uuid", "fs_uuid") if group.get(key)}


def plan_attach(group, members, target, device_names, mount_point, automount, *, renew_identity=False):
    """Attach an existing group and assemble (never create) its array, then mount if asked.

    ``renew_identity`` (a clone's first attach): new array and filesystem UUIDs, so the clone can
    live beside its original on one host.
    """
    gid = group["id"]
    ids = [m["volume_id"] for m in members]
    plan = [
        act.AttachVolumes(gid, target.instance_id, list(device_names), mount_point, created_here=renew_identity),
        act.WaitAttached(),
        act.VerifyInstance(target.hostname, target.instance_id),
        act.WaitDevices(target.hostname, ids, list(device_names)),
    ]
    if group["raid_level"] is None:
        plan.append(act.UseSingleDevice())
    else:
        name = raid.array_name(gid) if renew_identity else (group["array_name"] or raid.array_name(gid))
        plan += _array_steps(gid, target.hostname, name, group["md_uuid"], automount_array=automount,
                             renew_uuid=renew_identity)
    if renew_identity:
        plan.append(act.RenewFilesystemUuid(gid, target.hostname, group["fs_type"]))
    plan.append(act.RecordBlockDevice(gid))
    plan += _mount_steps(gid, target.hostname, mount_point, group["fs_type"], automount)
    array = None if group["raid_level"] is None else name
    plan.append(act.TagVolumes(gid, ids, array, mount_point, automount,
                               recorded={} if renew_identity else _recorded(group)))
    return plan


def plan_detach(group, members, attachment, *, mounted, unmount, force):
    """Unmount (when asked), drop the automount entries, stop the array, detach every member."""
    gid = group["id"]
    host = attachment["hostname"]
    plan = [act.VerifyInstance(host, attachment["instance_id"])]
    if mounted and unmount:
        plan.append(act.Unmount(gid, host, attachment["mount_point"]))
    if group["fs_uuid"] or attachment["mount_point"]:
        plan.append(act.RemoveFstab(gid, host, group["fs_uuid"], attachment["mount_point"]))
    if group["raid_level"] is not None:
        plan.append(act.StopArray(host, attachment["block_device"] or raid.array_device(group["array_name"] or raid.array_name(gid)),
                                  group["md_uuid"]))
        if group["md_uuid"]:
            plan.append(act.RemoveMdadmConf(host, group["md_uuid"]))
    ids = [m["volume_id"] for m in members]
    plan.append(act.DetachVolumes(gid, attachment["instance_id"], ids, force=force))
    if attachment["mount_point"]:
        from .params import flag_tag

        plan.append(act.UntagVolumes(gid, ids, restore={"ams:mount-point": attachment["mount_point"],
                                                         "ams:automount": flag_tag(attachment.get("automount"))}))
    return plan


def plan_mount(group, members, attachment, mount_point, automount, *, array_active):
    """Mount an attached group (assembling its array first when it is not active)."""
    gid = group["id"]
    host = attachment["hostname"]
    plan = [act.VerifyInstance(host, attachment["instance_id"])]
    if group["raid_level"] is not None and not array_active:
        plan.append(act.WaitDevices(host, [m["volume_id"] for m in members], [m["device_name"] for m in members]))
        plan += _array_steps(gid, host, group["array_name"] or raid.array_name(gid), group["md_uuid"], automount_array=automount)
        plan.append(act.RecordBlockDevice(gid))
    else:
        plan.append(act.UseRecorded({"block_device": attachment["block_device"]}))
    plan += _mount_steps(gid, host, mount_point, group["fs_type"], automount)
    array = None if group["raid_level"] is None else (group["array_name"] or raid.array_name(gid))
    plan.append(act.TagVolumes(gid, [m["volume_id"] for m in members], array, mount_point, automount,
                               recorded=_recorded(group)))
    return plan


def plan_unmount(group, attachment):
    return [
        act.VerifyInstance(attachment["hostname"], attachment["instance_id"]),
        act.Unmount(group["id"], attachment["hostname"], attachment["mount_point"]),
    ]


def plan_automount(group, attachment, mount_point, remove, members=None):
    """Write or remove the fstab entry; with ``members``, tag them with the new state too."""
    gid = group["id"]
    host = attachment["hostname"]
    plan = [act.VerifyInstance(host, attachment["instance_id"])]
    if remove:
        plan.append(act.RemoveFstab(gid, host, group["fs_uuid"], mount_point))
    else:
        plan.append(act.UseRecorded({"fs_uuid": group["fs_uuid"]}))
        plan.append(act.SetFstab(gid, host, mount_point, group["fs_type"]))
    if members:
        array = None if group["raid_level"] is None else (group["array_name"] or raid.array_name(gid))
        plan.append(act.TagVolumes(gid, [m["volume_id"] for m in members], array, mount_point, not remove,
                                   recorded=_recorded(group)))
    return plan


def plan_delete(group, members):
    return [act.DeleteVolumes(group["id"], [m["volume_id"] for m in members])]

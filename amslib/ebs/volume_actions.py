"""The steps of the volume group commands: EC2 calls, host commands, and their records.

Each action is built by a planner (``volume_plans``) from checked values only, so that its
``describe()`` is exactly what ``--dry-run`` prints.  ``run(ex)`` does the work and records it
in the database in a short transaction of its own, after the EC2 call or host command has
really happened; ``undo(ex)`` (when present) reverses it.  Values known only while running
(volume ids, OS devices, UUIDs) travel in ``ex.state``.
"""

import logging
from dataclasses import dataclass, field

from ..hostdisk import devices, filesystem, raid
from ..ssh.quoting import join
from ..store import volume_groups as store
from ..store.types import utcnow


log = logging.getLogger("ams.ebs.volumes")


def _db(ex):
    return ex.engine.begin()


def _member_ids(ex):
    return ex.state.get("volume_ids", [])


# ---------------------------------------------------------------------------------------------
# EC2

@dataclass
class CreateVolumes:
    group_id: int
    requests: list  # [{"spec": VolumeSpec, "zone": str, "tags": dict, "token": str}] in member order
    partial_undo = True

    def describe(self):
        spec = self.requests[0]["spec"]
        extra = "".join(
            f", {name} {value}" for name, value in (("iops", spec.iops), ("throughput", spec.throughput)) if value
        )
        enc = ", encrypted" if spec.encrypted else ""
        return (
            f"EC2 CreateVolume x{len(self.requests)}: {spec.volume_type} {spec.size_gib} GiB{extra}{enc} "
            f"in {self.requests[0]['zone']}, tagged ams:volume-group-id={self.group_id}"
        )

    def run(self, ex):
        from ..aws.ebs import BatchError

        try:
            ids = ex.ec2.create_volumes(self.requests)
        except BatchError as exc:
            created = dict(sorted(exc.done.items()))
            self._record(ex, created)
            ex.state["volume_ids"] = list(created.values())
            raise
        self._record(ex, dict(enumerate(ids)))
        ex.state["volume_ids"] = ids

    def _record(self, ex, created):
        now = utcnow()
        rows = []
        for index, volume_id in created.items():
            request = self.requests[index]
            spec = request["spec"]
            rows.append({
                "volume_id": volume_id, "volume_group_id": self.group_id, "member_index": index,
                "size_gib": spec.size_gib, "volume_type": spec.volume_type, "iops": spec.iops,
                "throughput": spec.throughput, "availability_zone": request["zone"], "created_at": now,
                "encrypted": bool(spec.encrypted), "kms_key_id": spec.kms_key_id,
            })
        with _db(ex) as conn:
            store.insert_volumes(conn, rows)

    def undo(self, ex):
        ids = _member_ids(ex)
        if not ids:
            return
        ex.ec2.wait_available(ids)
        ex.ec2.delete(ids)
        with _db(ex) as conn:
            store.mark_volumes_deleted(conn, ids, utcnow())


@dataclass
class WaitAvailable:
    what: str = "the new volumes"

    def describe(self):
        return f"EC2 wait until {self.what} are available"

    def run(self, ex):
        ex.ec2.wait_available(_member_ids(ex))


@dataclass
class AttachVolumes:
    group_id: int
    instance_id: str
    device_names: list  # EC2 device name per member, in member order
    mount_point: str = None
    created_here: bool = False  # the volumes were made by this command: undo may force the detach
    partial_undo = True

    def describe(self):
        return f"EC2 AttachVolume x{len(self.device_names)} to {self.instance_id} as {', '.join(self.device_names)}"

    def run(self, ex):
        from ..aws.ebs import BatchError

        ids = _member_ids(ex)
        pairs = [(volume_id, self.instance_id, device) for volume_id, device in zip(ids, self.device_names)]
        with _db(ex) as conn:  # the attachment (and its mount point) is claimed before EC2 is asked
            store.insert_attachment(conn, {
                "volume_group_id": self.group_id, "instance_id": self.instance_id,
                "mount_point": self.mount_point, "automount": False, "attached_at": utcnow(),
            })
        try:
            ex.ec2.attach(pairs)
            attached = dict(zip(ids, self.device_names))
        except BatchError as exc:
            attached = {pairs[i][0]: pairs[i][2] for i in exc.done}
            self._record(ex, attached)
            raise
        self._record(ex, attached)

    def _record(self, ex, attached):
        ex.state["attached"] = attached
        with _db(ex) as conn:
            for volume_id, device in attached.items():
                store.update_volume(conn, volume_id, {"device_name": device})

    def undo(self, ex):
        attached = list(ex.state.get("attached", {}))
        if attached and ex.host is not None and ex.state.get("os_devices"):
            try:  # e.g. an array udev assembled by itself from the new members
                ex.host.settle()  # an mdadm or mkfs of a dropped connection finishes first
                ex.host.stop_arrays_holding(ex.state["os_devices"])
            except Exception as exc:
                if not self.created_here:
                    raise
                log.warning("could not stop what holds the new volumes on the host (%s); forcing the detach", exc)
        if attached:
            # volumes this command created hold nothing of the user's: force them off
            ex.ec2.detach(attached, self.instance_id, force=self.created_here)
            ex.ec2.wait_detached(attached)
        with _db(ex) as conn:
            for volume_id in attached:
                store.update_volume(conn, volume_id, {"device_name": None})
            store.delete_attachment(conn, self.group_id)


@dataclass
class WaitAttached:
    def describe(self):
        return "EC2 wait until every member is attached"

    def run(self, ex):
        ex.ec2.wait_attached(_member_ids(ex))


@dataclass
class DetachVolumes:
    group_id: int
    instance_id: str
    volume_ids: list
    force: bool = False

    def describe(self):
        verb = "DetachVolume (Force)" if self.force else "DetachVolume"
        return f"EC2 {verb} x{len(self.volume_ids)} from {self.instance_id}: {', '.join(self.volume_ids)}, then wait until available"

    def run(self, ex):
        found = ex.ec2.describe(self.volume_ids)
        # members an earlier ams detached but failed or died before recording it are left out
        attached = [v for v in self.volume_ids if any(
            a.get("InstanceId") == self.instance_id for a in found.get(v, {}).get("Attachments") or [])]
        ex.ec2.detach(attached, self.instance_id, force=self.force)
        ex.ec2.wait_detached(self.volume_ids)
        with _db(ex) as conn:
            for volume_id in self.volume_ids:
                store.update_volume(conn, volume_id, {"device_name": None})
            store.delete_attachment(conn, self.group_id)


@dataclass
class DeleteVolumes:
    group_id: int
    volume_ids: list

    def describe(self):
        return f"EC2 DeleteVolume x{len(self.volume_ids)}: {', '.join(self.volume_ids)}"

    def run(self, ex):
        ex.ec2.delete(self.volume_ids)
        now = utcnow()
        with _db(ex) as conn:
            store.mark_volumes_deleted(conn, self.volume_ids, now)
            store.update_group(conn, self.group_id, {"deleted_at": now, "state": "deleted"})


MOUNT_TAGS = ("ams:mount-point", "ams:automount")


@dataclass
class TagVolumes:
    """ONE CreateTags call on every member with what only the host side knows (array name, md
    and filesystem UUIDs from ``ex.state`` or as recorded) and where the group is mounted, so
    that ``ams volume discovery`` can rebuild the group's row and attachment from EC2 alone.

    Undo removes the mount tags it set; the identity tags stay (they remain true)."""

    group_id: int
    volume_ids: list  # None: the ids of ex.state (new volumes)
    array_name: str = None
    mount_point: str = None  # None: the mount tags are not touched
    automount: bool = False
    recorded: dict = field(default_factory=dict)  # md_uuid/fs_uuid known before the plan runs

    def _keys(self):
        keys = ["ams:array-name"] if self.array_name else []
        keys += ["ams:md-uuid", "ams:fs-uuid"]
        return keys + (list(MOUNT_TAGS) if self.mount_point else [])

    def describe(self):
        return f"EC2 CreateTags on the members of volume group {self.group_id}: {', '.join(self._keys())}"

    def tags(self, ex):
        def known(name):
            return ex.state.get(name) or self.recorded.get(name)

        from .params import flag_tag, identity_tags

        tags = identity_tags(self.array_name, known("md_uuid"), known("fs_uuid"))
        if self.mount_point:
            tags.update({"ams:mount-point": self.mount_point, "ams:automount": flag_tag(self.automount)})
        return tags

    def run(self, ex):
        ids = self.volume_ids or _member_ids(ex)
        tags = self.tags(ex)
        ex.ec2.create_tags(ids, tags)
        ex.state["tagged_mount"] = [k for k in MOUNT_TAGS if k in tags]

    def undo(self, ex):
        keys = ex.state.get("tagged_mount")
        if keys:
            ex.ec2.delete_tags(self.volume_ids or _member_ids(ex), keys)


@dataclass
class UntagVolumes:
    """ONE DeleteTags call removing ``keys`` from every member (the mount tags on detach); undo
    puts ``restore`` back."""

    group_id: int
    volume_ids: list
    keys: tuple = MOUNT_TAGS
    restore: dict = field(default_factory=dict)

    def describe(self):
        return f"EC2 DeleteTags on the members of volume group {self.group_id}: {', '.join(self.keys)}"

    def run(self, ex):
        ex.ec2.delete_tags(self.volume_ids, list(self.keys))

    def undo(self, ex):
        if self.restore:
            ex.ec2.create_tags(self.volume_ids, self.restore)


# ---------------------------------------------------------------------------------------------
# host

@dataclass
class VerifyInstance:
    hostname: str
    instance_id: str

    def describe(self):
        return f"host {self.hostname}: confirm it is instance {self.instance_id} (DMI asset tag / instance metadata)"

    def run(self, ex):
        ex.host.verify_instance(self.instance_id)


@dataclass
class WaitDevices:
    hostname: str
    volume_ids: list  # None: the ids of ex.state (new volumes)
    device_names: list

    def describe(self):
        names = ", ".join(self.device_names)
        return f"host {self.hostname}: wait for the devices of the members (NVMe by-id link, else {names})"

    def run(self, ex):
        ids = self.volume_ids or _member_ids(ex)
        candidates = {v: devices.device_candidates(v, d) for v, d in zip(ids, self.device_names)}
        found = ex.host.wait_for_devices(candidates)
        ex.state["os_devices"] = [found[v] for v in ids]
        ex.state["stable_devices"] = [self._stable(v, found[v], candidates[v]) for v in ids]

    @staticmethod
    def _stable(volume_id, found, candidates):
        """The NVMe by-id link when the volume showed up as NVMe (its name survives reboots), else the device."""
        return candidates[0] if found.startswith("/dev/nvme") else found


@dataclass
class RequireEmpty:
    hostname: str

    def describe(self):
        return f"host {self.hostname}: blkid -p on each new device; refuse any that already holds data"

    def run(self, ex):
        for volume_id, device in zip(_member_ids(ex), ex.state["os_devices"]):
            ex.host.require_empty(device, volume_id)


@dataclass
class CreateArray:
    group_id: int
    hostname: str
    level: int
    chunk_kib: int
    members: int

    @property
    def name(self):
        return raid.array_name(self.group_id)

    @property
    def device(self):
        return raid.array_device(self.name)

    def describe(self):
        placeholders = [f"/dev/<member-{i}>" for i in range(self.members)]
        return f"host {self.hostname}: " + join(raid.create_argv(self.device, self.name, self.level, self.chunk_kib, placeholders))

    def run(self, ex):
        uuid = ex.host.create_array(self.device, self.name, self.level, self.chunk_kib, ex.state["os_devices"])
        ex.state.update(md_uuid=uuid, block_device=self.device)
        with _db(ex) as conn:
            store.update_group(conn, self.group_id, {"md_uuid": uuid, "array_name": self.name})

    def undo(self, ex):
        ex.host.settle()
        ex.host.stop_array(self.device)


@dataclass
class AssembleArray:
    group_id: int
    hostname: str
    array_name: str
    md_uuid: str  # None: read from the members' superblocks
    renew_uuid: bool = False  # a clone's first assembly: a new array UUID

    @property
    def device(self):
        return raid.array_device(self.array_name)

    def describe(self):
        if self.renew_uuid:
            command = "; ".join(join(argv) for argv in raid.renew_identity_argvs(self.device, ["/dev/<members-in-order>"]))
            command += " (a new array UUID and name for the clone)"
        elif self.md_uuid:
            command = join(raid.assemble_argv(self.device, self.md_uuid, ["/dev/<members-in-order>"]))
        else:
            command = f"mdadm --assemble {self.device} --uuid=<read from the members' superblocks> ..."
        return f"host {self.hostname}: {command} (an array the OS assembled already is used as it is)"

    def run(self, ex):
        from ..core.errors import ConflictError

        members = ex.state["os_devices"]
        uuids = {ex.host.member_uuid(device) for device in members}
        if self.md_uuid:
            uuids.add(self.md_uuid)
        if len(uuids) != 1 or None in uuids:
            raise ConflictError(
                f"host {self.hostname}: the members of volume group {self.group_id} do not carry one RAID "
                f"superblock (found {sorted(str(u) for u in uuids)}); refusing to assemble"
            )
        uuid = uuids.pop()
        device = ex.host.assemble(self.device, uuid, members, renew_uuid=self.renew_uuid)
        if self.renew_uuid:
            uuid = ex.host.array_uuid(device)
        ex.state.update(md_uuid=uuid, block_device=device, assembled_here=device == self.device)
        with _db(ex) as conn:
            store.update_group(conn, self.group_id, {"md_uuid": uuid, "array_name": self.array_name})

    def undo(self, ex):
        ex.host.settle()
        ex.host.stop_array(ex.state.get("block_device") or self.device)


@dataclass
class RenewFilesystemUuid:
    """A clone's first attach: replay the journal and give the filesystem a new UUID, so it can be
    mounted (and found by UUID in fstab) beside its original on the same host."""

    group_id: int
    hostname: str
    fs_type: str
    partial_undo = True  # the scratch mount may be left when the connection drops

    @property
    def scratch(self):
        return f"/run/ams-clone-{self.group_id}"

    def describe(self):
        tool = "xfs_admin -U generate" if self.fs_type == "xfs" else "e2fsck -f -p, tune2fs -U random"
        return f"host {self.hostname}: replay the journal (mount/umount at a scratch path), then {tool} on the group device"

    def run(self, ex):
        fs_uuid = ex.host.renew_filesystem_uuid(ex.state["block_device"], self.fs_type, self.scratch)
        ex.state["fs_uuid"] = fs_uuid
        with _db(ex) as conn:
            store.update_group(conn, self.group_id, {"fs_uuid": fs_uuid})

    def undo(self, ex):
        ex.host.settle()
        if ex.host.is_mounted(self.scratch):
            ex.host.umount(self.scratch)


@dataclass
class UseSingleDevice:
    """A single-volume group: its block device is the member's stable by-id link."""

    def describe(self):
        return "use the single member's device (its stable by-id link) as the group's block device"

    def run(self, ex):
        ex.state["block_device"] = ex.state["stable_devices"][0]


@dataclass
class StopArray:
    hostname: str
    device: str
    md_uuid: str = None  # the array is found by its UUID: after a reboot it may have another name

    def describe(self):
        found = f" (the array with UUID {self.md_uuid}, whatever its name)" if self.md_uuid else ""
        return f"host {self.hostname}: " + join(raid.stop_argv(self.device)) + found

    def run(self, ex):
        device = ex.host.active_arrays().get(self.md_uuid) if self.md_uuid else None
        ex.host.stop_array(device or self.device)


@dataclass
class SetMdadmConf:
    hostname: str
    group_id: int
    array_name: str

    def describe(self):
        return f"host {self.hostname}: add ARRAY {raid.array_device(self.array_name)} to mdadm.conf, refresh the initramfs where the tool exists"

    def run(self, ex):
        ex.state["mdadm_conf_changed"] = ex.host.set_mdadm_conf(
            raid.array_device(self.array_name), ex.state["md_uuid"], self.array_name
        )

    def undo(self, ex):
        if ex.state.get("mdadm_conf_changed"):
            ex.host.remove_mdadm_conf(ex.state["md_uuid"])


@dataclass
class RemoveMdadmConf:
    hostname: str
    md_uuid: str

    def describe(self):
        return f"host {self.hostname}: remove the ARRAY line UUID={self.md_uuid} from mdadm.conf"

    def run(self, ex):
        ex.host.remove_mdadm_conf(self.md_uuid)


@dataclass
class Mkfs:
    group_id: int
    hostname: str
    fs_type: str
    chunk_kib: int = None
    data_disks: int = 1

    def argv(self, device):
        return filesystem.mkfs_argv(
            self.fs_type, device, label=filesystem.label_for(self.group_id),
            chunk_kib=self.chunk_kib, data_disks=self.data_disks,
        )

    def describe(self):
        return f"host {self.hostname}: " + join(self.argv("/dev/<group-device>"))

    def run(self, ex):
        device = ex.state["block_device"]
        ex.host.mkfs(self.argv(device))
        fs_uuid = ex.host.filesystem(device).get("UUID")
        ex.state["fs_uuid"] = fs_uuid
        with _db(ex) as conn:
            store.update_group(conn, self.group_id, {"fs_uuid": fs_uuid, "fs_type": self.fs_type})


@dataclass
class Mount:
    group_id: int
    hostname: str
    mount_point: str
    fs_type: str
    partial_undo = True  # the SSH connection may drop after the host mounted it

    def describe(self):
        return f"host {self.hostname}: mkdir -p {self.mount_point} && mount -t {self.fs_type} UUID=<filesystem> {self.mount_point}"

    def run(self, ex):
        from ..core.errors import ConflictError

        fs_uuid = ex.state.get("fs_uuid")
        found = ex.host.filesystem(ex.state["block_device"])
        if not found.get("UUID"):
            raise ConflictError(f"host {self.hostname}: {ex.state['block_device']} holds no filesystem to mount")
        if fs_uuid and found["UUID"] != fs_uuid:
            raise ConflictError(
                f"host {self.hostname}: {ex.state['block_device']} holds filesystem {found['UUID']}, "
                f"not the group's {fs_uuid}; refusing to mount"
            )
        fs_uuid = found["UUID"]
        fs_type = found.get("TYPE") or self.fs_type
        ex.host.mount(fs_uuid, self.mount_point, fs_type)
        ex.state.update(fs_uuid=fs_uuid, mounted=True)
        with _db(ex) as conn:
            store.update_group(conn, self.group_id, {"fs_uuid": fs_uuid, "fs_type": fs_type})
            store.update_attachment(conn, self.group_id, {
                "mount_point": self.mount_point, "block_device": ex.state["block_device"],
            })

    def undo(self, ex):
        ex.host.settle()  # a mount of a dropped connection may still be running
        if ex.host.is_mounted(self.mount_point):  # also after a mount whose answer was lost
            ex.host.umount(self.mount_point)


@dataclass
class Unmount:
    group_id: int
    hostname: str
    mount_point: str

    def describe(self):
        return f"host {self.hostname}: umount {self.mount_point}"

    def run(self, ex):
        ex.host.umount(self.mount_point)


@dataclass
class SetFstab:
    group_id: int
    hostname: str
    mount_point: str
    fs_type: str

    def describe(self):
        return (f"host {self.hostname}: /etc/fstab: UUID=<filesystem> {self.mount_point} {self.fs_type} "
                f"with nofail (temp file, validated, backup kept, renamed)")

    def run(self, ex):
        ex.state["fstab_changed"] = ex.host.set_fstab(ex.state["fs_uuid"], self.mount_point, self.fs_type)
        with _db(ex) as conn:
            store.update_attachment(conn, self.group_id, {"automount": True, "mount_point": self.mount_point})

    def undo(self, ex):
        if ex.state.get("fstab_changed"):
            ex.host.remove_fstab(fs_uuid=ex.state["fs_uuid"], mount_point=self.mount_point)


@dataclass
class RemoveFstab:
    group_id: int
    hostname: str
    fs_uuid: str
    mount_point: str

    def describe(self):
        what = " and ".join(p for p in (self.fs_uuid and f"UUID={self.fs_uuid}", self.mount_point) if p)
        return f"host {self.hostname}: /etc/fstab: remove the entries of {what}"

    def run(self, ex):
        ex.host.remove_fstab(fs_uuid=self.fs_uuid, mount_point=self.mount_point)
        with _db(ex) as conn:
            store.update_attachment(conn, self.group_id, {"automount": False})


@dataclass
class RecordBlockDevice:
    group_id: int

    def describe(self):
        return "record the group's block device"

    def run(self, ex):
        with _db(ex) as conn:
            store.update_attachment(conn, self.group_id, {"block_device": ex.state["block_device"]})


@dataclass
class RecordUnmounted:
    group_id: int
    forget_mount_point: bool = False

    def describe(self):
        return "record the group as unmounted" + (" (mount point released)" if self.forget_mount_point else "")

    def run(self, ex):
        values = {"mount_point": None, "automount": False} if self.forget_mount_point else {}
        if values:
            with _db(ex) as conn:
                store.update_attachment(conn, self.group_id, values)


@dataclass
class MarkGroup:
    group_id: int
    state: str
    extra: dict = field(default_factory=dict)

    def describe(self):
        return f"record volume group {self.group_id} as {self.state}"

    def run(self, ex):
        with _db(ex) as conn:
            store.update_group(conn, self.group_id, {"state": self.state, **self.extra})


@dataclass
class UseRecorded:
    """Start from what the database recorded (block device, filesystem UUID) instead of a step."""

    values: dict

    def describe(self):
        return "use the recorded " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in self.values.items())

    def run(self, ex):
        ex.state.update(self.values)

"""Hooks that make moto's EBS volumes real disk images (and its instances real guests).

Only the HTTP-layer response methods are wrapped (``moto.ec2.responses.elastic_block_store.
ElasticBlockStore`` and ``...instances.InstanceResponse``), so the hooks fire for real client
requests only, never for moto's internal calls (root volumes of every instance get no file).
They run in the server's request thread: the API answers after the hook is done (after the
backing file exists, after the device is plugged into the guest, ...).  One model property is
patched too: ``Volume.status`` reports the rig's "creating" (and "deleted") states.

What each request does besides moto's own work (files are ``<state>/volumes/<vol-id>.img`` and
``<state>/snapshots/<snap-id>.img``; ids are unique across regions; the delays are
``rig.timing``, see ``tests.rig.timing``):

- CreateVolume: refused as EC2 refuses it (``tests.rig.ebs_rules``: sizes per type, IOPS and
  throughput ranges and ratios, InvalidParameterValue / InvalidParameterCombination /
  MissingParameter); a ClientToken seen before with the same parameters answers with that
  volume again (nothing new is created), with other parameters IdempotentParameterMismatch.
  Then a sparse file of Size GiB; with SnapshotId a sparse copy of the snapshot's file, grown to
  Size.  The volume is "creating" for ``timing.volume_create`` seconds, then "available".
- AttachVolume: refused as on AWS (not moto) when the device name is malformed or already used
  on the instance (InvalidParameterValue), the volume is attached already (VolumeInUse), not
  "available" yet (IncorrectState) or in another zone (InvalidVolume.ZoneMismatch); then, when
  the instance is a registered, running guest, ``guest.plug()`` before the answer (a plug failure
  undoes the attachment: 500).  The attachment (and the instance's block-device mapping) is
  "attaching" until ``timing.attach`` seconds after the answer, then "attached".
- DetachVolume: VolumeId alone is accepted (as on AWS; moto needs InstanceId).  For a guest
  instance, when the volume is in use inside the guest and Force is not set, the volume is NOT
  released: moto keeps the attachment, its state becomes "busy" (instance block-device mapping:
  "detaching"), the volume stays "in-use", the answer says "detaching".  The rig retries such
  busy detachments on every DescribeVolumes request (at most every 0.5 s per volume) and in
  ``Ec2Rig.release_busy()``: once the guest no longer uses the device it is unplugged.  A repeated
  DetachVolume retries at once; Force=True unplugs regardless.  Once the disk is released the
  attachment is "detaching" for ``timing.detach`` seconds, then gone (volume "available").
  StopInstances completes pending busy detachments at once.
- CreateSnapshot / CreateSnapshots: a sparse copy of each volume's file, taken before the answer,
  with the guests using the volumes paused (QMP stop/cont) during the copies: one point in time.
- CopySnapshot (any region): a copy of the source snapshot's file.
- DeleteVolume / DeleteSnapshot: the file is removed.
- StopInstances / StartInstances / RebootInstances of guest instances: ``guest.stop()`` /
  ``guest.start()`` (then any attached volume the guest lacks is plugged) / ``guest.reboot()``.
- TerminateInstances of a guest instance: its volumes are unplugged and the guest unregistered
  (the guest itself keeps running so that a session guest can be registered again).
"""

import os
import subprocess

from tests.rig import ebs_rules
from tests.rig.faults import RigApiError

GIB = 1 << 30
STATE_ATTR = "_ams_rig_state"  # on a moto Volume: "creating" or "deleted" overrides its status

_active = {"rig": None}
_originals = {}


# ---------------------------------------------------------------------------------------------
# backing files

def make_sparse(path, size_gib):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.truncate(int(size_gib) * GIB)
    os.replace(tmp, path)


def sparse_copy(src, dst, size_gib=None):
    """Sparse copy of ``src`` to ``dst`` (atomic rename), grown to ``size_gib`` if bigger."""
    tmp = dst + ".tmp"
    subprocess.run(["cp", "--sparse=always", src, tmp], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if size_gib is not None and os.path.getsize(tmp) < int(size_gib) * GIB:
        os.truncate(tmp, int(size_gib) * GIB)
    os.replace(tmp, dst)


def remove_file(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _internal(err, what):
    return RigApiError("InternalError", f"ams rig: {what}: {err}", 500)


# ---------------------------------------------------------------------------------------------
# hooks on ElasticBlockStore (HTTP layer)

def _create_volume(orig, self):
    from moto.core.responses import ActionResult

    rig = _active["rig"]
    backend = self.ec2_backend
    snapshot_id = self._get_param("SnapshotId")
    snapshot_size = backend.get_snapshot(snapshot_id).volume_size if snapshot_id else None
    ebs_rules.check_create_volume(
        volume_type=self._get_param("VolumeType"), size=self._get_param("Size"),
        iops=self._get_param("Iops"), throughput=self._get_param("Throughput"),
        snapshot_id=snapshot_id, snapshot_size=snapshot_size,
    )
    token = self._get_param("ClientToken")
    if not token or self._get_bool_param("DryRun", False):
        return _new_volume(rig, orig, self, snapshot_id)
    fingerprint = ebs_rules.request_fingerprint(self.querystring)
    with rig._client_token(backend, token) as slot:
        if slot.volume is not None:
            if slot.fingerprint != fingerprint:
                raise RigApiError(
                    "IdempotentParameterMismatch",
                    f"Client token '{token}' was already used with different parameters",
                )
            return ActionResult(slot.volume)
        result = _new_volume(rig, orig, self, snapshot_id)
        slot.fingerprint, slot.volume = fingerprint, result.result
        return result


def _new_volume(rig, orig, self, snapshot_id):
    result = orig(self)
    volume = result.result
    rig._begin_creating(volume)
    path = rig.volume_path(volume.id)
    try:
        source = rig.snapshot_path(snapshot_id) if snapshot_id else None
        if source and os.path.exists(source):
            sparse_copy(source, path, volume.size)
        else:
            make_sparse(path, volume.size)
    except Exception as err:
        self.ec2_backend.volumes.pop(volume.id, None)
        remove_file(path)
        raise _internal(err, f"creating the backing file of {volume.id}")
    return result


def _delete_volume(orig, self):
    rig = _active["rig"]
    volume_id = self._get_param("VolumeId")
    volume = self.ec2_backend.volumes.get(volume_id)
    result = orig(self)
    if volume is not None:
        volume.__dict__[STATE_ATTR] = "deleted"  # what a ClientToken repeat answers with
    remove_file(rig.volume_path(volume_id))
    return result


def _attach_volume(orig, self):
    rig = _active["rig"]
    volume_id = self._get_param("VolumeId")
    instance_id = self._get_param("InstanceId")
    device = self._get_param("Device")
    ebs_rules.check_device_name(device)
    self.error_on_dryrun()
    backend = self.ec2_backend
    volume = backend.get_volume(volume_id)
    instance = backend.get_instance(instance_id)
    if volume.attachment is not None:
        raise RigApiError(
            "VolumeInUse", f"{volume_id} is already attached to an instance"
        )
    if volume.status != "available":
        raise RigApiError("IncorrectState", f"{volume_id} is not 'available'.")
    if volume.zone is not None and instance.placement.zone and \
            volume.zone.name != instance.placement.zone:
        raise RigApiError(
            "InvalidVolume.ZoneMismatch",
            f"The volume '{volume_id}' is not in the same availability zone as instance "
            f"'{instance_id}'",
        )
    used = set(instance.block_device_mapping)
    if getattr(instance, "root_device_name", None):
        used.add(instance.root_device_name)
    ebs_rules.check_attachment_point(device, used)
    result = orig(self)
    attachment = volume.attachment
    rig._begin_attaching(volume, instance)
    guest = rig.guest_for_instance(instance_id)
    path = rig.volume_path(volume_id)
    if guest is not None and os.path.exists(path):
        try:
            rig._plug(guest, volume_id, path)
        except Exception as err:
            if volume.attachment is attachment:
                backend.detach_volume(volume_id, instance_id, attachment.device)
            raise _internal(err, f"plugging {volume_id} into guest {guest.name}")
    rig._end_attaching_later(volume, instance, attachment)
    return result


def _detach_volume(orig, self):
    from moto.core.responses import ActionResult
    from moto.ec2.exceptions import InvalidVolumeAttachmentError, InvalidVolumeDetachmentError

    rig = _active["rig"]
    volume_id = self._get_param("VolumeId")
    instance_id = self._get_param("InstanceId")
    device = self._get_param("Device")
    force = bool(self._get_bool_param("Force", False))
    self.error_on_dryrun()
    backend = self.ec2_backend
    volume = backend.get_volume(volume_id)
    attachment = volume.attachment
    if attachment is None or (instance_id and attachment.instance.id != instance_id):
        raise InvalidVolumeAttachmentError(volume_id, instance_id or "any instance")
    instance_id = attachment.instance.id
    if device and device != attachment.device:
        raise InvalidVolumeDetachmentError(volume_id, instance_id, device)
    device = attachment.device
    guest = rig.guest_for_instance(instance_id)
    if guest is not None:
        try:
            released = rig._unplug(guest, volume_id, force)
        except Exception as err:
            raise _internal(err, f"unplugging {volume_id} from guest {guest.name}")
        if not released:
            rig._mark_busy(volume, backend, instance_id, device, guest)
            return ActionResult({
                "VolumeId": volume_id, "InstanceId": instance_id, "Device": device,
                "State": "detaching", "AttachTime": attachment.attach_time,
            })
    rig._forget_busy(volume_id)
    rig._begin_detaching(backend, volume, attachment)
    return ActionResult({
        "VolumeId": volume_id, "InstanceId": instance_id, "Device": device,
        "State": "detaching", "AttachTime": attachment.attach_time,
    })


def _describe_volumes(orig, self):
    rig = _active["rig"]
    rig.release_busy(min_interval=0.5)
    return orig(self)


def _create_snapshot(orig, self):
    rig = _active["rig"]
    result = orig(self)
    _copy_for_snapshots(rig, self.ec2_backend, [result.result])
    return result


def _create_snapshots(orig, self):
    rig = _active["rig"]
    result = orig(self)
    _copy_for_snapshots(rig, self.ec2_backend, list(result.result["Snapshots"]))
    return result


def _copy_for_snapshots(rig, backend, snapshots):
    """Copy the volumes' files; guests using them are paused meanwhile, so that the copies are
    one point in time (crash-consistent across the volumes, as EBS multi-volume snapshots)."""
    guests = []
    for snapshot in snapshots:
        attachment = snapshot.volume.attachment
        guest = rig.guest_for_instance(attachment.instance.id) if attachment else None
        if guest is not None and all(g is not guest for g in guests):
            guests.append(guest)
    try:
        with rig.paused(guests):
            for snapshot in snapshots:
                source = rig.volume_path(snapshot.volume.id)
                if os.path.exists(source):
                    sparse_copy(source, rig.snapshot_path(snapshot.id))
    except Exception as err:
        for snapshot in snapshots:
            backend.snapshots.pop(snapshot.id, None)
            remove_file(rig.snapshot_path(snapshot.id))
        raise _internal(err, "copying volume files for a snapshot")


def _copy_snapshot(orig, self):
    rig = _active["rig"]
    source_id = self._get_param("SourceSnapshotId")
    result = orig(self)
    new_id = result.result["SnapshotId"]
    source = rig.snapshot_path(source_id)
    if os.path.exists(source):
        try:
            sparse_copy(source, rig.snapshot_path(new_id))
        except Exception as err:
            self.ec2_backend.snapshots.pop(new_id, None)
            raise _internal(err, f"copying the file of {source_id}")
    return result


def _delete_snapshot(orig, self):
    rig = _active["rig"]
    snapshot_id = self._get_param("SnapshotId")
    result = orig(self)
    remove_file(rig.snapshot_path(snapshot_id))
    return result


# ---------------------------------------------------------------------------------------------
# hooks on InstanceResponse

def _guest_ids(rig, self):
    ids = self._get_param("InstanceIds", []) or []
    pairs = [(i, rig.guest_for_instance(i)) for i in ids]
    return [(i, guest) for i, guest in pairs if guest is not None]


def _after_instances(verb, act):
    """A hook that lets moto change the instances, then calls ``act(rig, guest, instance_id)`` per guest."""

    def hook(orig, self):
        rig = _active["rig"]
        result = orig(self)
        for instance_id, guest in _guest_ids(rig, self):
            try:
                act(rig, guest, instance_id)
            except Exception as err:
                raise _internal(err, f"{verb} guest {guest.name}")
        return result

    return hook


_stop_instances = _after_instances("stopping", lambda rig, guest, instance_id: rig._guest_stop(guest, instance_id))
_start_instances = _after_instances("starting", lambda rig, guest, instance_id: rig._guest_start(guest, instance_id))
_reboot_instances = _after_instances("rebooting", lambda rig, guest, _instance_id: rig._guest_reboot(guest))


def _terminate_instances(orig, self):
    rig = _active["rig"]
    guests = _guest_ids(rig, self)
    result = orig(self)
    for instance_id, guest in guests:
        try:
            rig._guest_unplug_all(guest)
        finally:
            rig.unregister_instance(instance_id)
    return result


_HOOKS = {
    "elastic_block_store.ElasticBlockStore": {
        "create_volume": _create_volume,
        "delete_volume": _delete_volume,
        "attach_volume": _attach_volume,
        "detach_volume": _detach_volume,
        "describe_volumes": _describe_volumes,
        "create_snapshot": _create_snapshot,
        "create_snapshots": _create_snapshots,
        "copy_snapshot": _copy_snapshot,
        "delete_snapshot": _delete_snapshot,
    },
    "instances.InstanceResponse": {
        "stop_instances": _stop_instances,
        "start_instances": _start_instances,
        "reboot_instances": _reboot_instances,
        "terminate_instances": _terminate_instances,
    },
}


def _classes():
    from moto.ec2.responses import elastic_block_store, instances

    modules = {"elastic_block_store": elastic_block_store, "instances": instances}
    for qual, hooks in _HOOKS.items():
        mod, cls = qual.split(".")
        yield getattr(modules[mod], cls), hooks


def _make(orig, hook):
    def method(self):
        if _active["rig"] is None:
            return orig(self)
        return hook(orig, self)

    method.__name__ = orig.__name__
    method.__qualname__ = orig.__qualname__
    method.__doc__ = orig.__doc__
    method.__wrapped__ = orig
    return method


def _volume_status(orig):
    def status(self):
        return self.__dict__.get(STATE_ATTR) or orig.fget(self)

    status.__doc__ = orig.__doc__
    return property(status)


def install(rig):
    """Activate the hooks for ``rig`` (patches the classes once per process)."""
    from moto.ec2.models.elastic_block_store import Volume

    if _active["rig"] is not None and _active["rig"] is not rig:
        raise RuntimeError("another Ec2Rig is active in this process")
    _active["rig"] = rig
    if _originals:
        return
    for cls, hooks in _classes():
        for name, hook in hooks.items():
            orig = cls.__dict__[name]
            _originals[(cls, name)] = orig
            setattr(cls, name, _make(orig, hook))
    orig = Volume.__dict__["status"]
    _originals[(Volume, "status")] = orig
    Volume.status = _volume_status(orig)


def uninstall(rig=None):
    if rig is not None and _active["rig"] is not rig:
        return
    _active["rig"] = None
    for (cls, name), orig in _originals.items():
        setattr(cls, name, orig)
    _originals.clear()

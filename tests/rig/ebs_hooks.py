"""Hooks that make moto's EBS volumes real disk images (and its instances real guests).

Only the HTTP-layer response methods are wrapped (``moto.ec2.responses.elastic_block_store.
ElasticBlockStore`` and ``...instances.InstanceResponse``), so the hooks fire for real client
requests only, never for moto's internal calls (root volumes of every instance get no file).
They run in the server's request thread: the API answers after the hook is done (after the
backing file exists, after the device is plugged into the guest, ...).  Some model properties
are patched too: ``Volume.status`` reports the rig's "creating" (and "deleted") states,
``Snapshot.progress`` a pending snapshot's rising Progress, ``Ami.block_device_mappings`` the
mappings given to RegisterImage; ``Snapshot.state`` (new) gives CreateSnapshots' answer the
State moto leaves out.

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
  CreateSnapshots honours ExcludeDataVolumeIds (moto ignores it): those volumes get no snapshot;
  the root volume among them, or more than 40 ids, is InvalidParameterValue.  Each snapshot is
  "pending" with a rising Progress ("0%" .. "99%") for ``timing.snapshot`` seconds, then
  "completed" ("100%").
- CopySnapshot (any region): a copy of the source snapshot's file (a source in state "error" is
  IncorrectState).  The copy is "pending" for ``timing.copy`` seconds, then "completed" - or
  "error" (its file removed) when ``rig.faults.fail_copy()`` claimed it.
- CreateVolume from a snapshot in state "error": IncorrectState.
- RegisterImage: the image's BlockDeviceMappings are the ones given (moto ignores them and makes
  a snapshot of its own, which is dropped); a SnapshotId that does not exist is
  InvalidSnapshot.NotFound.  DescribeImages filters ``block-device-mapping.*`` (snapshot-id,
  device-name, volume-size, volume-type, delete-on-termination, encrypted; moto has none).
- DeleteSnapshot of a snapshot a registered image maps: InvalidSnapshot.InUse, as on EC2.
- DeleteVolume / DeleteSnapshot: the file is removed.
- StopInstances / StartInstances / RebootInstances of guest instances: ``guest.stop()`` /
  ``guest.start()`` (then any attached volume the guest lacks is plugged) / ``guest.reboot()``.
- TerminateInstances of a guest instance: its volumes are unplugged and the guest unregistered
  (the guest itself keeps running so that a session guest can be registered again).
"""

import fnmatch
import os
import subprocess
import time

from tests.rig import ebs_rules
from tests.rig.faults import RigApiError

GIB = 1 << 30
STATE_ATTR = "_ams_rig_state"  # on a moto Volume: "creating" or "deleted" overrides its status
PENDING_ATTR = "_ams_rig_pending"  # on a moto Snapshot: {"start", "seconds", "progress"}
MAPPINGS_ATTR = "_ams_rig_mappings"  # on a moto Ami: the BlockDeviceMappings of RegisterImage
MAX_EXCLUDED = 40  # ExcludeDataVolumeIds per CreateSnapshots

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


def pending_progress(record):
    """Percent done (0..99) of a pending snapshot's ``PENDING_ATTR`` record."""
    if record["seconds"] <= 0:
        return 0
    done = (time.monotonic() - record["start"]) / record["seconds"]
    return max(0, min(99, int(done * 100)))


# ---------------------------------------------------------------------------------------------
# hooks on ElasticBlockStore (HTTP layer)

def _create_volume(orig, self):
    from moto.core.responses import ActionResult

    rig = _active["rig"]
    backend = self.ec2_backend
    snapshot_id = self._get_param("SnapshotId")
    snapshot = backend.get_snapshot(snapshot_id) if snapshot_id else None
    if snapshot is not None and snapshot.status == "error":
        raise RigApiError("IncorrectState", f"Snapshot '{snapshot_id}' is in invalid state - error")
    snapshot_size = snapshot.volume_size if snapshot is not None else None
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
    _forget_tags(self.ec2_backend, volume_id)
    remove_file(rig.volume_path(volume_id))
    return result


def _forget_tags(backend, resource_id):
    """EC2 forgets a deleted resource's tags; moto keeps them (DescribeTags would list them, and
    a year of schedule runs piles them up)."""
    getattr(backend, "tags", {}).pop(resource_id, None)


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
    rig._mark_pending(result.result)
    _copy_for_snapshots(rig, self.ec2_backend, [result.result])
    rig._begin_pending(result.result, rig.timing.snapshot)
    return result


def _create_snapshots(orig, self):
    from moto.core.responses import ActionResult

    rig = _active["rig"]
    backend = self.ec2_backend
    spec = self._get_param("InstanceSpecification", {}) or {}
    excluded = set(spec.get("ExcludeDataVolumeIds") or [])
    _check_excluded(backend, spec.get("InstanceId"), excluded)
    result = orig(self)
    snapshots = list(result.result["Snapshots"])
    kept = [snap for snap in snapshots if snap.volume.id not in excluded]
    for snap in kept:
        rig._mark_pending(snap)
    for snap in snapshots:
        if snap.volume.id in excluded:
            backend.snapshots.pop(snap.id, None)
            _forget_tags(backend, snap.id)
    _copy_for_snapshots(rig, backend, kept)
    for snap in kept:
        rig._begin_pending(snap, rig.timing.snapshot)
    return ActionResult({"Snapshots": kept})


def _check_excluded(backend, instance_id, excluded):
    if not excluded or not instance_id:
        return
    if len(excluded) > MAX_EXCLUDED:
        raise RigApiError(
            "InvalidParameterValue",
            f"ExcludeDataVolumeIds can name at most {MAX_EXCLUDED} volumes, not {len(excluded)}",
        )
    instance = backend.get_instance(instance_id)
    root = instance.block_device_mapping.get(getattr(instance, "root_device_name", None))
    root_id = getattr(root, "volume_id", None)
    if root_id in excluded:
        raise RigApiError(
            "InvalidParameterValue",
            f"The root volume {root_id} of {instance_id} cannot be in ExcludeDataVolumeIds; "
            "use ExcludeBootVolume",
        )


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
    from moto.ec2.models import ec2_backends

    rig = _active["rig"]
    backend = self.ec2_backend
    source_id = self._get_param("SourceSnapshotId")
    source_region = self._get_param("SourceRegion") or backend.region_name
    source_snapshot = ec2_backends[backend.account_id][source_region].snapshots.get(source_id)
    if source_snapshot is not None and source_snapshot.status == "error":
        raise RigApiError("IncorrectState", f"Snapshot '{source_id}' is in invalid state - error")
    result = orig(self)
    new_id = result.result["SnapshotId"]
    snapshot = backend.snapshots.get(new_id)
    if snapshot is not None:
        rig._mark_pending(snapshot)
    source = rig.snapshot_path(source_id)
    if os.path.exists(source):
        try:
            sparse_copy(source, rig.snapshot_path(new_id))
        except Exception as err:
            backend.snapshots.pop(new_id, None)
            raise _internal(err, f"copying the file of {source_id}")
    if snapshot is not None:
        fails = rig.faults.take_copy_failure(backend.region_name)
        rig._begin_pending(snapshot, rig.timing.copy, "error" if fails else "completed")
    return result


def _delete_snapshot(orig, self):
    rig = _active["rig"]
    snapshot_id = self._get_param("SnapshotId")
    image_id = image_using(self.ec2_backend, snapshot_id)
    if image_id is not None:
        raise RigApiError(
            "InvalidSnapshot.InUse", f"The snapshot {snapshot_id} is currently in use by {image_id}"
        )
    result = orig(self)
    _forget_tags(self.ec2_backend, snapshot_id)
    remove_file(rig.snapshot_path(snapshot_id))
    return result


# ---------------------------------------------------------------------------------------------
# hooks on AmisResponse

BDM_FILTERS = {  # DescribeImages filter -> (key in the mapping's Ebs, or None: the mapping)
    "block-device-mapping.device-name": (None, "DeviceName"),
    "block-device-mapping.snapshot-id": ("Ebs", "SnapshotId"),
    "block-device-mapping.volume-size": ("Ebs", "VolumeSize"),
    "block-device-mapping.volume-type": ("Ebs", "VolumeType"),
    "block-device-mapping.delete-on-termination": ("Ebs", "DeleteOnTermination"),
    "block-device-mapping.encrypted": ("Ebs", "Encrypted"),
}


def image_using(backend, snapshot_id):
    """The id of a registered image (in ``backend``'s region) that maps ``snapshot_id``, or None."""
    for ami in list(backend.amis.values()):
        for mapping in ami.__dict__.get(MAPPINGS_ATTR) or ():
            if (mapping.get("Ebs") or {}).get("SnapshotId") == snapshot_id:
                return ami.id
    return None


def _register_image(orig, self):
    backend = self.ec2_backend
    mappings = self._get_param("BlockDeviceMappings") or []
    snapshots = {}
    for mapping in mappings:
        snapshot_id = (mapping.get("Ebs") or {}).get("SnapshotId")
        if snapshot_id:
            snapshots[snapshot_id] = backend.get_snapshot(snapshot_id)
    result = orig(self)
    ami = backend.amis.get(result.result["ImageId"]) if mappings else None
    if ami is None:
        return result
    own = getattr(ami, "ebs_snapshot", None)
    if own is not None and own.from_ami == ami.id:
        backend.snapshots.pop(own.id, None)  # EC2 makes no snapshot for RegisterImage
    ami.__dict__[MAPPINGS_ATTR] = [_image_mapping(m, snapshots) for m in mappings]
    return result


def _image_mapping(mapping, snapshots):
    out = {"DeviceName": mapping.get("DeviceName")}
    for key in ("VirtualName", "NoDevice"):
        if mapping.get(key) is not None:
            out[key] = mapping[key]
    ebs = mapping.get("Ebs")
    if ebs is None:
        return out
    snapshot = snapshots.get(ebs.get("SnapshotId"))
    encrypted = ebs.get("Encrypted")
    if encrypted is None:
        encrypted = bool(snapshot.encrypted) if snapshot is not None else False
    delete = ebs.get("DeleteOnTermination")
    out["Ebs"] = {
        "DeleteOnTermination": True if delete is None else _bool(delete),
        "VolumeType": ebs.get("VolumeType") or "gp2",
        "Encrypted": _bool(encrypted),
    }
    if snapshot is not None:
        out["Ebs"]["SnapshotId"] = snapshot.id
    size = ebs.get("VolumeSize") or (snapshot.volume_size if snapshot is not None else None)
    if size is not None:
        out["Ebs"]["VolumeSize"] = int(size)
    for key in ("Iops", "Throughput"):
        if ebs.get(key) is not None:
            out["Ebs"][key] = int(ebs[key])
    if ebs.get("KmsKeyId"):
        out["Ebs"]["KmsKeyId"] = ebs["KmsKeyId"]
    return out


def _bool(value):
    return value if isinstance(value, bool) else str(value).lower() == "true"


def _describe_images(orig, self):
    """``block-device-mapping.*`` filters (any mapping matching any value, ``*``/``?``
    wildcards, as on EC2); the other filters are moto's."""
    from moto.core.responses import ActionResult

    filters = self._filters_from_querystring()
    ours = {k: v for k, v in filters.items() if k.startswith("block-device-mapping.")}
    if not ours:
        return orig(self)
    self.error_on_dryrun()
    for name in ours:
        if name not in BDM_FILTERS:
            raise RigApiError("InvalidParameterValue", f"The filter '{name}' is invalid")
    images = self.ec2_backend.describe_images(
        ami_ids=self._get_param("ImageIds", []),
        filters={k: v for k, v in filters.items() if k not in ours},
        exec_users=self._get_param("ExecutableUsers", []),
        owners=self._get_param("Owners", []),
    )
    return ActionResult({"Images": [i for i in images if _image_matches(i, ours)]})


def _image_matches(ami, filters):
    mappings = ami.block_device_mappings
    for name, patterns in filters.items():
        where, key = BDM_FILTERS[name]
        values = []
        for mapping in mappings:
            value = (mapping.get(where) or {}).get(key) if where else mapping.get(key)
            if value is not None:
                values.append(str(value).lower() if isinstance(value, bool) else str(value))
        if not any(fnmatch.fnmatchcase(v, p) for v in values for p in patterns):
            return False
    return True


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
    "amis.AmisResponse": {
        "register_image": _register_image,
        "describe_images": _describe_images,
    },
    "instances.InstanceResponse": {
        "stop_instances": _stop_instances,
        "start_instances": _start_instances,
        "reboot_instances": _reboot_instances,
        "terminate_instances": _terminate_instances,
    },
}


def _classes():
    from moto.ec2.responses import amis, elastic_block_store, instances

    modules = {"elastic_block_store": elastic_block_store, "instances": instances, "amis": amis}
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


def _snapshot_progress(orig):
    def progress(self):
        record = self.__dict__.get(PENDING_ATTR)
        if record is None or self.status == "completed":
            return orig.fget(self)
        if self.status == "pending":
            return f"{pending_progress(record)}%"
        if record["progress"] is not None:
            return f"{record['progress']}%"
        return orig.fget(self)

    progress.__doc__ = orig.__doc__
    return property(progress)


def _image_mappings(orig):
    def block_device_mappings(self):
        if MAPPINGS_ATTR in self.__dict__:
            return self.__dict__[MAPPINGS_ATTR]
        return orig.fget(self)

    block_device_mappings.__doc__ = orig.__doc__
    return property(block_device_mappings)


def _own_tags(self):
    """A resource's tags as moto's get_tags returns them, read from its own entry: moto scans
    every tag of the region for each resource it describes (a benchmark with 10,000 snapshots
    spent half its time there)."""
    from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE, get_prefix

    resource_id = getattr(self, "id", None)
    if not resource_id:
        return []
    tags = self.ec2_backend.tags.get(resource_id, {})
    kind = EC2_PREFIX_TO_RESOURCE.get(get_prefix(resource_id), "")
    return [{"resource_id": resource_id, "key": key, "value": value, "resource_type": kind}
            for key, value in list(tags.items())]


def install(rig):
    """Activate the hooks for ``rig`` (patches the classes once per process)."""
    from moto.ec2.models.amis import Ami
    from moto.ec2.models.elastic_block_store import Snapshot, Volume

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
    for cls, name, wrap in ((Volume, "status", _volume_status),
                            (Snapshot, "progress", _snapshot_progress),
                            (Ami, "block_device_mappings", _image_mappings)):
        orig = cls.__dict__[name]
        _originals[(cls, name)] = orig
        setattr(cls, name, wrap(orig))
    from moto.ec2.models.core import TaggedEC2Resource

    _originals[(TaggedEC2Resource, "get_tags")] = TaggedEC2Resource.__dict__["get_tags"]
    TaggedEC2Resource.get_tags = _own_tags
    if "state" not in Snapshot.__dict__:
        _originals[(Snapshot, "state")] = None  # added: removed again by uninstall
        Snapshot.state = property(lambda self: self.status, doc="The snapshot's State.")


def uninstall(rig=None):
    if rig is not None and _active["rig"] is not rig:
        return
    _active["rig"] = None
    for (cls, name), orig in _originals.items():
        if orig is None:
            delattr(cls, name)
        else:
            setattr(cls, name, orig)
    _originals.clear()

"""The EC2 half of the test rig: moto's server in-process, with EBS volumes as disk images.

    rig = Ec2Rig()            # state dir: given, or a fresh temp dir
    rig.start()
    os.environ.update(rig.env())            # AWS_ENDPOINT_URL, fake keys, region, ...
    iid = rig.register_instance(guest, region="us-east-1", zone="us-east-1a")
    ...
    rig.timing.attach = 1.0   # EC2's intermediate states last this long (tests.rig.timing)
    rig.faults.fail_copy()    # the next CopySnapshot ends in "error" (tests.rig.faults)
    rig.corrupt_snapshot(snap_id)   # random bytes in the middle of its backing file
    rig.reset()               # moto state, files, faults, counters, timing; guests cleaned,
                              # unplugged and unregistered
    rig.stop()                # also removes the state dir

ams never imports moto; only the rig does.  ``MOTO_EC2_LOAD_DEFAULT_AMIS=false`` is set when
this module is imported (moto reads it when a region's backend is created).  The request hooks
are described in ``tests.rig.ebs_hooks``; fault injection in ``tests.rig.faults``; accounting
in ``tests.rig.accounting``.
"""

import contextlib
import json
import logging
import os
import shlex
import shutil
import tempfile
import threading
import time
import urllib.request

os.environ["MOTO_EC2_LOAD_DEFAULT_AMIS"] = "false"

from tests.rig import ebs_hooks, faults as faults_mod  # noqa: E402
from tests.rig.accounting import ApiCounter  # noqa: E402
from tests.rig.faults import INTERNAL_USER_AGENT, ApiFaults  # noqa: E402
from tests.rig.timing import Scheduler, Timing  # noqa: E402
from tests.secrets_audit import AWS_SECRET_ACCESS_KEY  # noqa: E402

log = logging.getLogger("ams.rig.ec2")

ACCESS_KEY = "AKIAAMSRIGTESTING000"
SECRET_KEY = AWS_SECRET_ACCESS_KEY  # tests/secrets_audit.py looks for it in every output
ACCOUNT_ID = "123456789012"  # moto's default account
MIB = 1 << 20
DEFAULT_REGION = "us-east-1"
IMAGE_NAME = "ams-rig-debian"

# Script run (with sudo) in a guest to bring it back to a clean state before its volumes are
# unplugged: unmount what lives on NVMe/md devices, stop md arrays, restore the fstab and
# mdadm.conf saved the first time the rig saw the guest, remove fault wrappers.
_CLEAN_GUEST = r"""
P=/var/lib/ams-rig/pristine
mkdir -p $P
[ -e $P/fstab ] || cp -a /etc/fstab $P/fstab
if [ ! -e $P/mdadm.conf ] && [ ! -e $P/mdadm.conf.absent ]; then
  if [ -e /etc/mdadm/mdadm.conf ]; then cp -a /etc/mdadm/mdadm.conf $P/mdadm.conf
  else touch $P/mdadm.conf.absent; fi
fi
findmnt -rn -o TARGET,SOURCE | awk '$2 ~ "^/dev/(md|nvme)" {print $1}' | sort -r |
  while read -r t; do umount "$t" 2>/dev/null || umount -l "$t"; done
for s in $(awk '$1 ~ "^/dev/(md|nvme)" {print $1}' /proc/swaps); do swapoff "$s"; done
mdadm --stop --scan >/dev/null 2>&1
for md in /dev/md?* /dev/md/*; do [ -b "$md" ] && mdadm --stop "$md" >/dev/null 2>&1; done
changed=
cmp -s $P/fstab /etc/fstab || { cp -a $P/fstab /etc/fstab; changed=1; }
if [ -e $P/mdadm.conf ]; then cmp -s $P/mdadm.conf /etc/mdadm/mdadm.conf || cp -a $P/mdadm.conf /etc/mdadm/mdadm.conf
else rm -f /etc/mdadm/mdadm.conf; fi
[ -n "$changed" ] && systemctl daemon-reload
for f in /usr/local/sbin/*; do grep -q '# ams-rig fault wrapper' "$f" 2>/dev/null && rm -f "$f"; done
rm -rf /run/ams-rig-faults
true
"""


def default_state_root():
    """State dir of ``python -m tests.rig``: $AMS_RIG_STATE or ~/.cache/ams-rig/run."""
    return os.environ.get("AMS_RIG_STATE") or os.path.join(
        os.path.expanduser("~"), ".cache", "ams-rig", "run"
    )


class Ec2Rig:
    """moto's ThreadedMotoServer on 127.0.0.1 plus the EBS/instance hooks.

    One active rig per process (the hooks are class patches)."""

    def __init__(self, state_dir=None, port=0, region=DEFAULT_REGION, quiet=True):
        self._given_state_dir = state_dir
        self.state_dir = None
        self.port = port
        self.region = region
        self.quiet = quiet
        self.url = None
        self.faults = ApiFaults()
        self.counter = ApiCounter()
        self._server = None
        self._lock = threading.RLock()
        self._guests = {}  # instance id -> Guest
        self._guest_region = {}  # instance id -> region
        self._guest_locks = {}  # id(guest) -> lock
        self._seen_guests = set()  # id(guest): cleaned once by this rig
        self._amis = {}  # region -> image id
        self._busy = {}  # volume id -> record
        self._clients = {}
        self.timing = Timing()
        self._scheduler = Scheduler(on_error=self._timer_failed)
        self._tokens = {}  # (account, region, ClientToken) -> _TokenSlot

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self):
        from moto.server import ThreadedMotoServer

        if self.state_dir is None:
            if self._given_state_dir:
                self.state_dir = os.path.abspath(self._given_state_dir)
                os.makedirs(self.state_dir, exist_ok=True)
            else:
                self.state_dir = tempfile.mkdtemp(prefix="ams-rig-ec2-")
        for sub in ("volumes", "snapshots"):
            os.makedirs(os.path.join(self.state_dir, sub), exist_ok=True)
        for name in ("aws-config", "aws-credentials"):
            open(os.path.join(self.state_dir, name), "a").close()
        if self.quiet:
            logging.getLogger("werkzeug").setLevel(logging.ERROR)
        ebs_hooks.install(self)
        faults_mod.install(self.faults, self.counter)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.port = port
        self.url = f"http://{host}:{port}"
        return self

    def stop(self, remove_state=True):
        self._scheduler.cancel_all()
        with self._lock:
            for instance_id, guest in list(self._guests.items()):
                try:
                    self._guest_unplug_all(guest, clean=True)
                except Exception as err:  # pragma: no cover - best effort at teardown
                    log.warning("cleaning guest %s: %s", getattr(guest, "name", guest), err)
            self._guests.clear()
        if self._server is not None:
            self._server.stop()
            self._server = None
        faults_mod.uninstall()
        ebs_hooks.uninstall(self)
        if remove_state and self.state_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)
        self._clients.clear()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- environment and clients ------------------------------------------------------------
    def env(self, region=None):
        """Environment variables that point boto3 (and ams) at this endpoint."""
        region = region or self.region
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": region,
            "AWS_REGION": region,
            "AWS_CONFIG_FILE": os.path.join(self.state_dir, "aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": os.path.join(self.state_dir, "aws-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    # variables from the user's shell that would bend boto3 away from the rig
    ENV_TO_UNSET = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN",
                    "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL_EC2", "AWS_CA_BUNDLE")

    def client(self, service="ec2", region=None, internal=False, **config):
        """A boto3 client for the endpoint.  ``internal=True``: the rig's own client (its
        requests are not counted and never get injected faults)."""
        import boto3
        from botocore.config import Config

        region = region or self.region
        extra = INTERNAL_USER_AGENT if internal else None
        cfg = Config(user_agent_extra=extra, **config) if (extra or config) else None
        key = (service, region, internal) if not config else None
        if key and key in self._clients:
            return self._clients[key]
        client = boto3.session.Session().client(
            service, region_name=region, endpoint_url=self.url,
            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, config=cfg,
        )
        if key:
            self._clients[key] = client
        return client

    # -- accounting shortcuts --------------------------------------------------------------------
    def counts(self, region=None):
        return self.counter.counts(region=region)

    def reset_counts(self):
        self.counter.reset()

    # -- files --------------------------------------------------------------------------------------
    def volume_path(self, volume_id):
        return os.path.join(self.state_dir, "volumes", f"{volume_id}.img")

    def snapshot_path(self, snapshot_id):
        return os.path.join(self.state_dir, "snapshots", f"{snapshot_id}.img")

    def files(self):
        """{"volumes": [ids], "snapshots": [ids]} that have backing files."""
        out = {}
        for sub in ("volumes", "snapshots"):
            names = os.listdir(os.path.join(self.state_dir, sub))
            out[sub] = sorted(n[:-4] for n in names if n.endswith(".img"))
        return out

    # -- reset ----------------------------------------------------------------------------------
    def reset(self):
        """Fresh moto state: guests cleaned and unplugged and unregistered (board asset tag
        cleared), moto reset, backing files removed, faults, counters, client tokens and
        pending state changes cleared, ``timing`` back to its defaults."""
        with self._lock:
            self._scheduler.cancel_all()
            errors = []
            for instance_id, guest in list(self._guests.items()):
                try:
                    self._guest_unplug_all(guest, clean=True)
                    _set_asset_tag(guest, None)
                except Exception as err:
                    errors.append(f"{getattr(guest, 'name', guest)}: {err}")
            self._guests.clear()
            self._guest_region.clear()
            self._busy.clear()
            self._amis.clear()
            self._tokens.clear()
            self.timing.reset()
            req = urllib.request.Request(self.url + "/moto-api/reset", data=b"", method="POST")
            urllib.request.urlopen(req, timeout=30).read()
            for sub in ("volumes", "snapshots"):
                d = os.path.join(self.state_dir, sub)
                for name in os.listdir(d):
                    os.unlink(os.path.join(d, name))
            self.faults.clear()
            self.counter.reset()
            if errors:
                raise RuntimeError("rig reset: cleaning guests failed: " + "; ".join(errors))

    # -- instances and guests ---------------------------------------------------------------------
    def image_id(self, region=None):
        """A dummy AMI in ``region`` (default AMIs are off), created once per reset."""
        region = region or self.region
        with self._lock:
            if region not in self._amis:
                ec2 = self.client(region=region, internal=True)
                found = ec2.describe_images(
                    Owners=["self"], Filters=[{"Name": "name", "Values": [IMAGE_NAME]}]
                )["Images"]
                if found:
                    self._amis[region] = found[0]["ImageId"]
                else:
                    self._amis[region] = ec2.register_image(
                        Name=IMAGE_NAME, Architecture="x86_64", VirtualizationType="hvm",
                        RootDeviceName="/dev/xvda",
                        BlockDeviceMappings=[{"DeviceName": "/dev/xvda",
                                              "Ebs": {"VolumeSize": 8}}],
                    )["ImageId"]
            return self._amis[region]

    def register_instance(self, guest=None, region=None, zone=None, name=None,
                          instance_type="t3.micro", tags=None):
        """Create an EC2 instance (run_instances) with a Name tag in ``zone`` and, when
        ``guest`` is given, map it to that guest and give the guest the instance id as its DMI
        board asset tag (``Guest.set_board_asset_tag``).  Returns the instance id.

        A guest can be registered once at a time (terminate or reset to re-register)."""
        region = region or (zone[:-1] if zone else self.region)
        zone = zone or region + "a"
        if name is None:
            name = getattr(guest, "name", None) or "ams-rig-plain"
        with self._lock:
            if guest is not None and any(g is guest for g in self._guests.values()):
                raise RuntimeError(f"guest {guest.name} is already registered")
        if guest is not None and not guest.is_running():
            guest.start()  # a new instance runs (a test may have left the guest stopped)
        if guest is not None and (id(guest) not in self._seen_guests or guest.plugged()):
            # leftovers of an earlier run or of other tests (saves the pristine configs the
            # first time): a new instance has no data volumes
            self._guest_unplug_all(guest, clean=True)
            self._seen_guests.add(id(guest))
        all_tags = [{"Key": "Name", "Value": name}]
        if guest is not None:
            all_tags.append({"Key": "ams-rig:guest", "Value": guest.name})
        all_tags += [{"Key": k, "Value": v} for k, v in (tags or {}).items()]
        ec2 = self.client(region=region, internal=True)
        answer = ec2.run_instances(
            ImageId=self.image_id(region), MinCount=1, MaxCount=1, InstanceType=instance_type,
            Placement={"AvailabilityZone": zone},
            TagSpecifications=[{"ResourceType": "instance", "Tags": all_tags}],
        )
        instance_id = answer["Instances"][0]["InstanceId"]
        if guest is not None:
            with self._lock:
                self._guests[instance_id] = guest
                self._guest_region[instance_id] = region
            with self._glock(guest):
                _set_asset_tag(guest, instance_id)
        return instance_id

    def unregister_instance(self, instance_id):
        """Forget the guest of ``instance_id`` (moto state untouched); its board asset tag is
        cleared."""
        with self._lock:
            guest = self._guests.pop(instance_id, None)
            self._guest_region.pop(instance_id, None)
        if guest is not None:
            with self._glock(guest):
                _set_asset_tag(guest, None)

    def guest_for_instance(self, instance_id):
        with self._lock:
            return self._guests.get(instance_id)

    def instance_for_guest(self, guest):
        with self._lock:
            for instance_id, g in self._guests.items():
                if g is guest:
                    return instance_id
        return None

    def guest_instances(self):
        """{instance id: (region, guest)} of registered guests."""
        with self._lock:
            return {i: (self._guest_region[i], g) for i, g in self._guests.items()}

    def _glock(self, guest):
        with self._lock:
            return self._guest_locks.setdefault(id(guest), threading.RLock())

    # -- guest operations used by the hooks (run in request threads) ------------------------------
    def _plug(self, guest, volume_id, path):
        with self._glock(guest):
            return guest.plug(volume_id, path)  # a stopped guest records it for its next start

    def _unplug(self, guest, volume_id, force):
        """True when the volume is released (unplugged or not plugged), False when busy."""
        with self._glock(guest):
            if volume_id not in guest.plugged():
                return True
            if guest.is_running() and not force and guest.in_use(volume_id):
                return False
            guest.unplug(volume_id)
            return True

    def _mark_busy(self, volume, backend, instance_id, device, guest):
        attachment = volume.attachment
        attachment.status = "busy"
        instance = backend.get_instance(instance_id)
        bdt = instance.block_device_mapping.get(device)
        if bdt is not None:
            bdt.status = "detaching"
        with self._lock:
            self._busy[volume.id] = {
                "account": backend.account_id, "region": backend.region_name,
                "instance_id": instance_id, "device": device, "guest": guest,
                "checked": time.monotonic(),
            }

    def _forget_busy(self, volume_id):
        with self._lock:
            self._busy.pop(volume_id, None)

    def _finish_detach(self, volume_id, record, delay=None):
        """The guest let the disk go: the attachment is "detaching" for ``delay`` seconds
        (default ``timing.detach``), then removed."""
        from moto.ec2.models import ec2_backends

        backend = ec2_backends[record["account"]][record["region"]]
        volume = backend.volumes.get(volume_id)
        self._forget_busy(volume_id)
        if volume is not None and volume.attachment is not None:
            self._begin_detaching(backend, volume, volume.attachment, delay)

    # -- EC2's intermediate states: set by the hooks, ended by timers (tests.rig.timing) ----
    def _timer_failed(self, fn, err):
        log.warning("rig state change %s failed: %s", getattr(fn, "__name__", fn), err)

    def _begin_creating(self, volume):
        if self.timing.volume_create > 0:
            volume.__dict__[ebs_hooks.STATE_ATTR] = "creating"
            self._scheduler.after(self.timing.volume_create, _end_creating, volume)

    def _begin_attaching(self, volume, instance):
        attachment = volume.attachment
        if attachment is None or self.timing.attach <= 0:
            return
        attachment.status = "attaching"
        mapping = instance.block_device_mapping.get(attachment.device)
        if mapping is not None:
            mapping.status = "attaching"

    def _end_attaching_later(self, volume, instance, attachment):
        self._scheduler.after(self.timing.attach, _end_attaching, volume, instance, attachment)

    def _begin_detaching(self, backend, volume, attachment, delay=None):
        if attachment.status == "detaching":
            return  # already on its way
        attachment.status = "detaching"
        mapping = attachment.instance.block_device_mapping.get(attachment.device)
        if mapping is not None:
            mapping.status = "detaching"
        delay = self.timing.detach if delay is None else delay
        self._scheduler.after(delay, _end_detaching, backend, volume, attachment)

    def _mark_pending(self, snapshot):
        """"pending" at "0%" while the hook copies the file (no request sees it "completed"
        before ``_begin_pending``)."""
        snapshot.__dict__[ebs_hooks.PENDING_ATTR] = {"start": time.monotonic(), "seconds": 0,
                                                     "progress": None}
        snapshot.status = "pending"

    def _begin_pending(self, snapshot, seconds, outcome="completed"):
        """The snapshot is "pending" with a rising Progress for ``seconds`` from now, then
        ``outcome`` ("completed", or "error": its backing file is removed, Progress stays where
        it was); at once when ``seconds`` is 0."""
        snapshot.__dict__[ebs_hooks.PENDING_ATTR] = {"start": time.monotonic(),
                                                     "seconds": seconds, "progress": None}
        snapshot.status = "pending"
        self._scheduler.after(seconds, _end_pending, snapshot, outcome,
                              self.snapshot_path(snapshot.id))

    @contextlib.contextmanager
    def _client_token(self, backend, token):
        """The slot of a CreateVolume ClientToken, held for the request (same token at the same
        time: one creates, the other answers with its volume)."""
        with self._lock:
            slot = self._tokens.setdefault(
                (backend.account_id, backend.region_name, token), _TokenSlot())
        with slot.lock:
            yield slot

    def release_busy(self, min_interval=0.0):
        """Retry busy detachments: unplug each volume whose guest no longer uses it and finish
        the detach in moto.  Returns the volume ids released."""
        released = []
        with self._lock:
            items = list(self._busy.items())
        for volume_id, record in items:
            if time.monotonic() - record["checked"] < min_interval:
                continue
            record["checked"] = time.monotonic()
            try:
                ok = self._unplug(record["guest"], volume_id, force=False)
            except Exception as err:
                log.warning("retrying the detach of %s: %s", volume_id, err)
                continue
            if ok:
                self._finish_detach(volume_id, record)
                released.append(volume_id)
        return released

    def busy(self):
        with self._lock:
            return sorted(self._busy)

    def corrupt_snapshot(self, snapshot_id, offset_mib=None, length_mib=4):
        """Overwrite ``length_mib`` MiB of the snapshot's backing file with random bytes, from
        ``offset_mib`` (default: the middle of the file).  The file keeps its size; every
        volume created from the snapshot afterwards carries the damage.  Returns
        (offset, length) in bytes.  FileNotFoundError when the snapshot has no file (unknown,
        deleted, or of a volume without one); ValueError when the range is not inside it."""
        path = self.snapshot_path(snapshot_id)
        size = os.path.getsize(path)
        length = int(length_mib * MIB)
        if offset_mib is None:
            offset = max(0, (size - length) // 2) // MIB * MIB
        else:
            offset = int(offset_mib * MIB)
        if length <= 0 or offset < 0 or offset + length > size:
            raise ValueError(f"{snapshot_id}: {length_mib} MiB at {offset_mib} MiB is not inside "
                             f"its {size / MIB:g} MiB file")
        with open(path, "r+b") as f:
            f.seek(offset)
            left = length
            while left:
                chunk = os.urandom(min(left, MIB))
                f.write(chunk)
                left -= len(chunk)
            f.flush()
            os.fsync(f.fileno())
        return offset, length

    def _guest_stop(self, guest, instance_id):
        with self._glock(guest):
            if guest.is_running():
                guest.stop()
        # as on EC2: a stopped instance completes pending detachments
        with self._lock:
            pending = [(v, r) for v, r in self._busy.items() if r["instance_id"] == instance_id]
        for volume_id, record in pending:
            with self._glock(guest):
                if volume_id in guest.plugged():
                    guest.unplug(volume_id)
            self._finish_detach(volume_id, record, delay=0)

    def _guest_start(self, guest, instance_id):
        from moto.ec2.models import ec2_backends

        with self._glock(guest):
            if not guest.is_running():
                guest.start()
            region = self._guest_region.get(instance_id, self.region)
            backend = ec2_backends[ACCOUNT_ID][region]
            plugged = guest.plugged()
            for volume in list(backend.volumes.values()):
                att = volume.attachment
                if att is None or att.instance.id != instance_id or volume.id in plugged:
                    continue
                path = self.volume_path(volume.id)
                if os.path.exists(path):
                    guest.plug(volume.id, path)

    @contextlib.contextmanager
    def paused(self, guests):
        """Pause the running ``guests`` (vCPUs stopped, pending I/O drained) for the block."""
        stopped = []
        try:
            for guest in guests:
                if guest.is_running():
                    _vm_pause(guest)
                    stopped.append(guest)
            yield
        finally:
            for guest in stopped:
                try:
                    _vm_resume(guest)
                except Exception as err:  # pragma: no cover
                    log.error("resuming guest %s: %s", guest.name, err)

    def _guest_reboot(self, guest):
        with self._glock(guest):
            guest.reboot()

    def _guest_unplug_all(self, guest, clean=False):
        with self._glock(guest):
            if not guest.is_running():
                for volume_id in list(guest.plugged()):
                    guest.unplug(volume_id)
                return
            if clean:
                self._clean_guest(guest)
            for volume_id in list(guest.plugged()):
                guest.unplug(volume_id)

    def _clean_guest(self, guest):
        rc, out, err = guest.run(_CLEAN_GUEST, sudo=True, timeout=120)
        if rc != 0:
            raise RuntimeError(f"cleaning guest {guest.name} failed (rc {rc}): {err or out}")

    def clean_guest(self, guest):
        """Unmount NVMe/md filesystems, stop md arrays, restore the guest's pristine fstab and
        mdadm.conf, remove fault wrappers, and unplug every volume (moto state untouched)."""
        self._guest_unplug_all(guest, clean=True)

    # -- description (for the CLI's status) ---------------------------------------------------
    def describe(self):
        return {
            "url": self.url,
            "state_dir": self.state_dir,
            "instances": {i: {"region": r, "guest": g.name}
                          for i, (r, g) in self.guest_instances().items()},
            "busy": self.busy(),
        }


class _TokenSlot:
    def __init__(self):
        self.lock = threading.Lock()
        self.fingerprint = None
        self.volume = None


def _end_creating(volume):
    if volume.__dict__.get(ebs_hooks.STATE_ATTR) == "creating":
        volume.__dict__.pop(ebs_hooks.STATE_ATTR, None)


def _end_attaching(volume, instance, attachment):
    if volume.attachment is not attachment or attachment.status != "attaching":
        return
    attachment.status = "attached"
    mapping = instance.block_device_mapping.get(attachment.device)
    if mapping is not None and mapping.status == "attaching":
        mapping.status = "in-use"  # moto shows a mapping's "in-use" as "attached"


def _end_detaching(backend, volume, attachment):
    if volume.attachment is attachment and backend.volumes.get(volume.id) is volume:
        backend.detach_volume(volume.id, attachment.instance.id, attachment.device)


def _end_pending(snapshot, outcome, path):
    if snapshot.status != "pending":
        return
    if outcome == "error":
        record = snapshot.__dict__.get(ebs_hooks.PENDING_ATTR)
        if record is not None:
            record["progress"] = ebs_hooks.pending_progress(record)
        ebs_hooks.remove_file(path)
    snapshot.status = outcome


def _set_asset_tag(guest, instance_id):
    """The instance id as the guest's DMI board asset tag (None clears it); stand-in guests
    without ``set_board_asset_tag`` are left alone."""
    setter = getattr(guest, "set_board_asset_tag", None)
    if setter is not None:
        setter(instance_id)


def _vm_pause(guest):
    if hasattr(guest, "pause"):
        guest.pause()
    elif hasattr(guest, "_qmp_exec"):
        guest._qmp_exec("stop")  # QEMU drains in-flight I/O before it reports the stop


def _vm_resume(guest):
    if hasattr(guest, "resume"):
        guest.resume()
    elif hasattr(guest, "_qmp_exec"):
        guest._qmp_exec("cont")


def ssh_config_text(hosts):
    """An OpenSSH client config: ``hosts`` is a list of dicts with name, port, user, key."""
    blocks = []
    for h in hosts:
        lines = [f"Host {h['name']}", "    HostName 127.0.0.1", f"    Port {h['port']}",
                 f"    User {h['user']}"]
        if h.get("key"):
            lines.append(f"    IdentityFile {h['key']}")
            lines.append("    IdentitiesOnly yes")
        lines += ["    StrictHostKeyChecking no", "    UserKnownHostsFile /dev/null",
                  "    LogLevel ERROR"]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def export_lines(env):
    return "\n".join(f"export {k}={shlex.quote(str(v))}" for k, v in env.items())


def dump_json(path, data):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
    os.replace(tmp, path)

"""The host side of volume groups, run over one SSH connection.

:class:`HostDisk` executes what the pure planners of this package build (argv lists, scripts,
file texts): every argument is quoted with :func:`amslib.ssh.quoting.join`; commands that need
root go through the connection's ``sudo`` (password on stdin only).  Nothing here decides what
to do; the services do.
"""

import logging
import re

from ..core.errors import ConflictError, RemoteCommandError, SshError
from ..ssh.quoting import join, quote
from . import devices, filesystem, freeze, fstab, mdadmconf, raid, remote_files
from .mountpoint import check_mount_point

log = logging.getLogger("ams.hostdisk")

ASSET_TAG = "/sys/devices/virtual/dmi/id/board_asset_tag"
INSTANCE_ID_RE = re.compile(r"^i-[0-9a-f]{8}(?:[0-9a-f]{9})?$")

# Where an EC2 instance shows its own id: the Nitro DMI board asset tag, else the instance
# metadata service (IMDSv2).  Prints the id, or nothing.
_IDENTITY_SCRIPT = f"""
t=$(cat {ASSET_TAG} 2>/dev/null)
case "$t" in i-*) echo "$t"; exit 0;; esac
if command -v curl >/dev/null 2>&1; then
  tok=$(curl -fsS -m 2 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' http://169.254.169.254/latest/api/token 2>/dev/null) &&
  curl -fsS -m 2 -H "X-aws-ec2-metadata-token: $tok" http://169.254.169.254/latest/meta-data/instance-id 2>/dev/null
fi
exit 0
"""

_MDADM_CONF_PATH_SCRIPT = (
    f"if [ -d /etc/mdadm ]; then echo {quote(mdadmconf.CONF_PATHS[0])}; else echo {quote(mdadmconf.CONF_PATHS[1])}; fi"
)
_REFRESH_INITRAMFS = (
    "if command -v update-initramfs >/dev/null 2>&1; then update-initramfs -u; "
    "elif command -v dracut >/dev/null 2>&1; then dracut -f; fi"
)
_DAEMON_RELOAD = "if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi"


EDIT_ATTEMPTS = 3

# The host's ams lock (flock(1), root-only /run): held by the host commands whose effect an undo
# must see -- mdadm create/assemble, mkfs, mount.  Such a command goes on running on the host
# when its SSH connection drops; ``settle`` takes the lock to wait for it before an undo looks.
HOST_LOCK = "/run/ams.lock"
HOST_LOCK_WAIT = 300  # seconds: the longest such a command may still run (mkfs of a large RAID)


class FreezeRefused(ConflictError):
    """The host refused to freeze (nothing was frozen, so nothing must be thawed)."""


def _sha256(text):
    import hashlib

    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


class HostDisk:
    """Disk operations on one host.

    ``connect()`` returns a connected :class:`amslib.ssh.client.HostConnection`; it is called
    for every command, so a pool that reconnects after a dropped connection (``SshPool.get``)
    lets the undo of a failed command still reach the host.
    """

    def __init__(self, connect, name, *, device_timeout=120.0, slow_timeout=None):
        self.connect = connect
        self.name = name
        self.device_timeout = device_timeout
        self.slow_timeout = slow_timeout  # mkfs, initramfs (None: SSH_COMMAND_TIMEOUT)
        self.verified_instance = None
        self.in_doubt = False  # a locked command's connection dropped: it may still run on the host

    # -- plumbing -----------------------------------------------------------------------------
    def sudo(self, argv, *, input=None, timeout=None, check=True):
        line = argv if isinstance(argv, str) else join(argv)
        return self.connect().sudo(line, input=input, timeout=timeout, check=check)

    def run(self, argv, *, timeout=None, check=True):
        line = argv if isinstance(argv, str) else join(argv)
        return self.connect().run(line, timeout=timeout, check=check)

    def sudo_locked(self, argv, *, timeout=None):
        """``sudo`` holding the host lock; when the connection drops (or the command times
        out) the host is in doubt until :meth:`settle`."""
        try:
            return self.sudo(["flock", "-w", str(HOST_LOCK_WAIT), HOST_LOCK, *argv], timeout=timeout)
        except SshError:
            self.in_doubt = True
            raise

    def settle(self):
        """Wait until no locked command of an earlier, dropped connection still runs on the
        host (so an undo sees what it did); nothing to do when no connection dropped."""
        if not self.in_doubt:
            return
        result = self.sudo(["flock", "-w", str(HOST_LOCK_WAIT), HOST_LOCK, "true"],
                           timeout=HOST_LOCK_WAIT + 30, check=False)
        if not result.ok:
            raise ConflictError(f"host {self.name}: a command of a dropped connection still holds {HOST_LOCK} "
                                f"after {HOST_LOCK_WAIT} s; look at it (fuser -v {HOST_LOCK}) before retrying")
        self.in_doubt = False

    # -- identity ------------------------------------------------------------------------------
    def instance_id(self):
        """The instance id the host reports about itself, or None."""
        text = self.run(_IDENTITY_SCRIPT, timeout=30).text.strip()
        return text if INSTANCE_ID_RE.match(text) else None

    def verify_instance(self, expected):
        """Refuse (ConflictError) unless the host says it is instance ``expected``."""
        if self.verified_instance == expected:
            return
        found = self.instance_id()
        if found is None:
            raise ConflictError(
                f"cannot confirm that host {self.name} is instance {expected}: it shows no instance id "
                f"(neither the DMI board asset tag nor the instance metadata service answered)"
            )
        if found != expected:
            raise ConflictError(
                f"host {self.name} is instance {found}, not {expected}: refusing to touch its disks",
                hint="the hostname may point at another machine now; check 'ams host list' or run 'ams host discovery'",
            )
        self.verified_instance = expected

    # -- devices -------------------------------------------------------------------------------
    def wait_for_devices(self, candidates, timeout=None):
        """{volume id: OS device} once every volume's device exists (RemoteCommandError on timeout)."""
        timeout = self.device_timeout if timeout is None else timeout
        script = devices.wait_for_devices_script(candidates, timeout)
        result = self.run(script, timeout=timeout + 30, check=False)
        if result.exit_status == 3:
            raise RemoteCommandError(
                f"host {self.name}: no device appeared within {timeout:g}s for "
                f"{result.stderr_text.strip().removeprefix('missing:').strip() or 'some volumes'}",
                command=result.command, exit_status=3, stderr=result.stderr,
            )
        result.check()
        return devices.parse_wait_output(result.text)

    def signature(self, device):
        """The type of whatever the device holds (filesystem, RAID member, partition table), or None."""
        result = self.sudo(["blkid", "-p", "-o", "export", device], check=False)
        if result.exit_status == 2:
            return None
        result.check()
        values = raid.parse_export(result.text)
        return values.get("TYPE") or values.get("PTTYPE") or "unknown"

    def require_empty(self, device, volume_id):
        found = self.signature(device)
        if found is not None:
            raise ConflictError(
                f"host {self.name}: {device} ({volume_id}) already holds {found}; refusing to overwrite it"
            )

    def filesystem(self, device):
        """{'UUID':…, 'TYPE':…} of the filesystem on ``device`` ({} when none)."""
        result = self.sudo(["blkid", "-o", "export", device], check=False)
        if result.exit_status == 2:
            return {}
        result.check()
        return raid.parse_export(result.text)

    # -- md arrays -------------------------------------------------------------------------------
    def create_array(self, device, name, level, chunk_kib, members):
        self.sudo_locked(raid.create_argv(device, name, level, chunk_kib, members))
        return self.array_uuid(device)

    def array_uuid(self, device):
        values = raid.parse_export(self.sudo(raid.detail_argv(device)).text)
        return raid.normalize_uuid(values["MD_UUID"])

    def member_uuid(self, member):
        """The array UUID in ``member``'s md superblock, or None when it has none."""
        result = self.sudo(raid.examine_argv(member), check=False)
        if not result.ok:
            return None
        uuid = raid.parse_export(result.text).get("MD_UUID")
        return raid.normalize_uuid(uuid) if uuid else None

    def active_arrays(self):
        """{array UUID: md device} of the arrays assembled on the host (active or not)."""
        text = self.sudo(["mdadm", "--detail", "--scan"], check=False).text
        found = {}
        for line in text.splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] in ("ARRAY", "INACTIVE-ARRAY"):  # udev may hold a partial one
                for part in parts[2:]:
                    if part.startswith("UUID="):
                        found[raid.normalize_uuid(part[5:])] = parts[1]
        return found

    def array_members(self, device):
        """The real paths of the member devices of the active array ``device``."""
        values = raid.parse_export(self.sudo(raid.detail_argv(device), check=False).text)
        names = [v for k, v in values.items() if k.startswith("MD_DEVICE_") and k.endswith("_DEV")]
        return set(self.realpaths(names)) if names else set()

    def realpaths(self, paths):
        return self.run(["readlink", "-f", "--", *paths]).text.split()

    def assemble(self, device, uuid, members, *, renew_uuid=False):
        """Assemble the array from ``members`` as ``device``; return the md device in use.

        An array the OS already assembled from these very members (udev does it for arrays it
        knows) is used as it is; an active array with the same UUID but other members (the
        original of a clone on the same host) is left alone.  ``renew_uuid``: give the array a
        new random UUID (a clone must not share its original's).
        """
        self.sudo(["udevadm", "settle", "--timeout=30"], check=False)  # udev may be assembling it now
        wanted = set(self.realpaths(members))
        for active_uuid, active_device in self.active_arrays().items():
            if active_uuid == uuid and self.array_members(active_device) == wanted:
                if not renew_uuid:
                    log.info("%s: array %s is already assembled as %s", self.name, uuid, active_device)
                    return active_device
                # udev assembled the clone's members by itself: stop it to assemble it anew
                self._stop_unmounted(active_device)
        argvs = raid.renew_identity_argvs(device, members) if renew_uuid else [raid.assemble_argv(device, uuid, members)]
        for argv in argvs:
            self.sudo_locked(argv)
        return device

    def renew_filesystem_uuid(self, device, fs_type, scratch):
        """Give the filesystem on ``device`` a new UUID (a clone must not share its original's).

        The journal is replayed first by a mount at ``scratch`` (xfs with ``nouuid``, since the
        original may be mounted on the same host), then the UUID is changed.
        """
        options = ["-o", "nouuid"] if fs_type == "xfs" else []
        self.sudo(["mkdir", "-p", scratch])
        self.sudo_locked(["mount", "-t", fs_type, *options, device, scratch])
        self.sudo(["umount", scratch])
        self.sudo(["rmdir", scratch], check=False)
        for argv in filesystem.renew_uuid_argvs(fs_type, device):
            result = self.sudo(argv, timeout=self.slow_timeout, check=False)
            if not (result.ok or (argv[0] == "e2fsck" and result.exit_status == 1)):  # 1: errors fixed
                result.check()
        return self.filesystem(device).get("UUID")

    def mounted_at(self, device):
        """Where ``device`` is mounted (findmnt resolves the device's names)."""
        result = self.run(["findmnt", "-rn", "-o", "TARGET", "--source", device], check=False)
        return result.text.split() if result.ok else []

    def _stop_unmounted(self, md_device):
        mounted = self.mounted_at(md_device)
        if mounted:
            raise ConflictError(f"host {self.name}: {md_device} is mounted at {mounted[0]}; refusing to stop it")
        self.stop_array(md_device)

    def stop_arrays_holding(self, devices):
        """Stop every (unmounted) array that holds one of ``devices``: what an attach left
        assembled must go before its volumes can be detached."""
        wanted = set(self.realpaths(devices))
        for active_device in set(self.active_arrays().values()):
            if self.array_members(active_device) & wanted:
                self._stop_unmounted(active_device)

    def stop_array(self, device):
        result = self.sudo(raid.stop_argv(device), check=False)
        if not result.ok and "No such file" not in result.stderr_text:
            result.check()

    # -- filesystems and mounts ----------------------------------------------------------------
    def mkfs(self, argv):
        self.sudo_locked(argv, timeout=self.slow_timeout)

    def mounts(self):
        """{mount point: (source, fstype)} of the host's mount table."""
        result = self.run(["findmnt", "-rn", "-o", "TARGET,SOURCE,FSTYPE"])
        table = {}
        for line in result.text.splitlines():
            parts = line.split(" ")
            if len(parts) >= 3:
                target = parts[0].encode().decode("unicode_escape")
                table[target] = (parts[1].encode().decode("unicode_escape"), parts[2])
        return table

    def is_mounted(self, mount_point):
        return mount_point in self.mounts()

    def mount(self, fs_uuid, mount_point, fs_type):
        resolved = self.run(["realpath", "-m", mount_point]).text.strip()
        if resolved != mount_point:  # a symlink on the way (/var/run -> /run) must not lead somewhere refused
            check_mount_point(resolved)
        self.sudo(["mkdir", "-p", mount_point])
        self.sudo_locked(["mount", "-t", fs_type, f"UUID={fs_uuid}", mount_point])

    def umount(self, mount_point):
        self.sudo(["umount", mount_point])

    # -- snapshot brackets ------------------------------------------------------------------------
    def run_hook(self, command, which, *, timeout, env=None):
        """Run a user's pre/post hook as root; RemoteCommandError (one line) when it fails."""
        line = freeze.hook_command(command, timeout=timeout, env=env)
        result = self.sudo(line, timeout=timeout + freeze.HOOK_KILL_AFTER_S + 10, check=False)
        if freeze.hook_timed_out(result.exit_status):
            raise RemoteCommandError(f"host {self.name}: the {which} hook did not finish within {timeout:g}s and was killed",
                                     command=result.command, exit_status=result.exit_status, stderr=result.stderr)
        if not result.ok:
            from ..ssh.result import stderr_tail

            tail = stderr_tail(result.stderr)
            raise RemoteCommandError(
                f"host {self.name}: the {which} hook exited with status {result.exit_status}" + (f" ({tail})" if tail else ""),
                command=result.command, exit_status=result.exit_status, stderr=result.stderr)
        return result

    def freeze(self, mount_point, watchdog_seconds):
        """fsfreeze the filesystem; the host thaws it by itself after ``watchdog_seconds``.

        FreezeRefused (nothing was frozen: not mounted, busy, a system filesystem) must not be
        followed by a thaw; any other failure may have frozen it, so the caller thaws.
        """
        script = freeze.freeze_script(mount_point, watchdog_seconds)
        result = self.sudo(script, check=False,
                           timeout=watchdog_seconds + freeze.LOCK_TIMEOUT_S + freeze.WATCHDOG_START_S + 10)
        reason = result.stderr_text.strip().splitlines()[-1].removeprefix("ams: ") if result.stderr_text.strip() else ""
        if result.exit_status in (freeze.EXIT_NOT_MOUNTED, freeze.EXIT_BUSY, freeze.EXIT_REFUSED):
            raise FreezeRefused(f"host {self.name}: cannot freeze {mount_point}: {reason}")
        if not result.ok or result.text.strip() != freeze.FROZEN:
            raise RemoteCommandError(f"host {self.name}: freezing {mount_point} failed: {reason or 'no answer'}",
                                     command=result.command, exit_status=result.exit_status, stderr=result.stderr)

    def thaw(self, mount_point):
        """Thaw (and stop the watchdog); returns the state the script reported."""
        result = self.sudo(freeze.thaw_script(mount_point), timeout=freeze.LOCK_TIMEOUT_S + 30)
        return freeze.thaw_state(result.text)

    # -- configuration files -------------------------------------------------------------------
    def read_file(self, path):
        """The file's text (undecodable bytes kept as surrogates, so they are written back unchanged)."""
        return self.sudo(remote_files.read_file_command(path)).stdout.decode("utf-8", "surrogateescape")

    def replace_file(self, path, content, validate=None, expect=None):
        """Replace the file atomically (temp file, validated, backup kept, rename).

        ``expect``: the text read before editing; the host refuses (exit 4) when the file changed since.
        """
        expect_sha256 = _sha256(expect) if expect is not None else None
        script = remote_files.atomic_replace_script(path, validate=validate, expect_sha256=expect_sha256)
        return self.sudo(script, input=content.encode("utf-8", "surrogateescape"), check=False)

    def edit_file(self, path, transform, validate=None):
        """Apply ``transform(text) -> text`` to the file; write only when it changed.  Returns changed.

        A concurrent edit of the same file (another ams on the same host) is detected and the edit
        is made again on the new content.
        """
        for _ in range(EDIT_ATTEMPTS):
            before = self.read_file(path)
            after = transform(before)
            if after == before:
                return False
            result = self.replace_file(path, after, validate, expect=before)
            if result.exit_status != remote_files.EXIT_CHANGED:
                result.check()
                return True
        raise ConflictError(f"host {self.name}: {path} kept changing while ams edited it; try again")

    def set_fstab(self, fs_uuid, mount_point, fs_type):
        changed = self.edit_file(
            "/etc/fstab", lambda text: fstab.set_entry(text, fs_uuid, mount_point, fs_type), remote_files.FSTAB_VALIDATE
        )
        if changed:
            self.sudo(_DAEMON_RELOAD)
        return changed

    def remove_fstab(self, *, fs_uuid=None, mount_point=None):
        changed = self.edit_file(
            "/etc/fstab",
            lambda text: fstab.remove_entries(text, uuid=fs_uuid, mount_point=mount_point),
            remote_files.FSTAB_VALIDATE,
        )
        if changed:
            self.sudo(_DAEMON_RELOAD)
        return changed

    def mdadm_conf_path(self):
        return self.run(_MDADM_CONF_PATH_SCRIPT).text.strip()

    def set_mdadm_conf(self, device, uuid, name):
        changed = self.edit_file(self.mdadm_conf_path(), lambda text: mdadmconf.set_array(text, device, uuid, name))
        if changed:
            self.refresh_initramfs()
        return changed

    def remove_mdadm_conf(self, uuid):
        changed = self.edit_file(self.mdadm_conf_path(), lambda text: mdadmconf.remove_array(text, uuid=uuid))
        if changed:
            self.refresh_initramfs()
        return changed

    def refresh_initramfs(self):
        self.sudo(_REFRESH_INITRAMFS, timeout=self.slow_timeout)

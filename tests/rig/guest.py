"""A QEMU (TCG) guest that behaves like an EC2 instance, for the test rig.

``Guest`` boots the cached Debian image (see ``tests.rig.image``) on a qcow2 overlay, forwards a
port on 127.0.0.1 to its sshd, and hot-plugs EBS volumes as NVMe disks whose serial is the volume
id without the dash, so that the guest sees ``/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol…``
as on a Nitro instance. ``plug``/``unplug``/``in_use`` are thread-safe (moto calls them from its
request threads).

Lifecycle: ``start()`` → (``reboot()`` from inside | ``stop()`` → ``start()``)* → ``shutdown()``.
Volumes plugged at ``stop()`` come back cold-plugged (same serials) at the next ``start()``;
volumes hot-plugged survive an in-guest reboot (the QEMU process and its devices stay).
Every QEMU started here is killed by pid at interpreter exit (atexit, SIGTERM) if still running.

Like a Nitro instance, the guest shows its EC2 instance id as the DMI board asset tag
(``/sys/devices/virtual/dmi/id/board_asset_tag``): QEMU gets an SMBIOS type 2 (baseboard) table,
and ``set_board_asset_tag()`` bind-mounts a file holding the id over that sysfs file; the image's
``ams-rig-asset-tag.service`` mounts it again at every boot.

sshd keeps Debian's defaults, as on an EC2 host (MaxSessions 10): ``run`` keeps at most
``MAX_CHANNELS`` commands open at once on its connection and queues the rest.

Files in ``workdir`` per guest: ``<name>.qcow2`` (overlay), ``<name>.serial.log``,
``<name>.qmp`` (socket), ``<name>.pid``.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import re
import shlex
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import paramiko

from tests import secrets_audit
from tests.rig.image import (Image, ImageError, build_image, cache_dir, cached_image,
                             missing_build_tools)
from tests.rig.qmp import QMPClient, QMPError

log = logging.getLogger("tests.rig.guest")

QEMU = os.environ.get("AMS_RIG_QEMU", "qemu-system-x86_64")
BY_ID_PREFIX = "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_"
DMI_ASSET_TAG = "/sys/devices/virtual/dmi/id/board_asset_tag"
ASSET_TAG_FILE = "/var/lib/ams-rig/board_asset_tag"  # mounted at boot by ams-rig-asset-tag.service
MAX_CHANNELS = 6  # sshd's MaxSessions is 10; a loaded guest frees a session a while after its close
_SERIAL_RE = re.compile(r"^[A-Za-z0-9]{1,20}$")

_live: "set[Guest]" = set()
_live_lock = threading.Lock()


class GuestError(RuntimeError):
    """The guest failed to boot, answer or (un)plug a device."""


class GuestCommandTimeout(GuestError, TimeoutError):
    """A command run in the guest did not finish in time."""


def serial_of(volume_id: str) -> str:
    """NVMe serial EBS exposes for a volume: the id without the dash (vol0123…)."""
    serial = volume_id.replace("-", "")
    if not _SERIAL_RE.match(serial):
        raise ValueError(f"not a usable volume id for an NVMe serial: {volume_id!r}")
    return serial


def by_id_path(volume_id: str) -> str:
    return BY_ID_PREFIX + serial_of(volume_id)


def _opt(value: object) -> str:
    """Escape a value for a QEMU comma-separated option string."""
    return str(value).replace(",", ",,")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def process_cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


_unavailable: list[str | None] = []


def qemu_unavailable_reason(build: bool = True) -> str | None:
    """Why guest tests cannot run here (None when they can).

    Checks the QEMU binaries and builds (or reuses) the image; the answer is computed once per
    process. With ``build=False`` only a complete cached image is accepted.
    """
    if _unavailable:
        return _unavailable[0]
    reason: str | None = None
    from shutil import which

    if which(QEMU) is None:
        reason = f"{QEMU} not found (apt-get install qemu-system-x86)"
    elif which("qemu-img") is None:
        reason = "qemu-img not found (apt-get install qemu-utils)"
    elif cached_image() is None:
        if not build:
            reason = "no cached guest image (run python -m tests.rig.image)"
        else:
            missing = missing_build_tools()
            if missing:
                reason = "guest image not cached and cannot be built, missing: " + ", ".join(missing)
            else:
                try:
                    build_image()
                except ImageError as exc:
                    reason = f"guest image cannot be built: {exc}"
    else:
        try:
            build_image()  # cached: only checks the key; rebuilds the last stage if inputs changed
        except ImageError as exc:
            reason = f"guest image cannot be built: {exc}"
    _unavailable.append(reason)
    return reason


def _registry() -> Path:
    return cache_dir() / "guests"


def _register(pid: int, pidfile: Path) -> None:
    """Remember which process owns a QEMU, so that a later run can kill it when that process
    died without cleaning up (SIGKILL, OOM, a crashed CI step)."""
    try:
        reg = _registry()
        reg.mkdir(parents=True, exist_ok=True)
        (reg / f"{pid}.json").write_text(json.dumps({"owner": os.getpid(),
                                                     "pidfile": str(pidfile)}))
    except OSError as exc:
        log.warning("cannot register QEMU %s: %s", pid, exc)


def _unregister(pid: int | None) -> None:
    if pid:
        try:
            (_registry() / f"{pid}.json").unlink(missing_ok=True)
        except OSError:
            pass


def reap_orphans() -> list[int]:
    """Kill QEMUs of this rig whose owning process is gone; returns their pids."""
    killed = []
    try:
        entries = list(_registry().glob("*.json"))
    except OSError:
        return killed
    for entry in entries:
        try:
            pid = int(entry.stem)
            info = json.loads(entry.read_text())
        except (ValueError, OSError):
            continue
        alive = pid_alive(pid) and info.get("pidfile", "\0") in process_cmdline(pid)
        if alive and not pid_alive(info.get("owner")):
            log.warning("killing orphaned rig QEMU %s (owner %s is gone)", pid, info.get("owner"))
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
            alive = False
        if not alive:
            entry.unlink(missing_ok=True)
    return killed


def _atexit_cleanup() -> None:
    with _live_lock:
        guests = list(_live)
    for guest in guests:
        try:
            guest._kill(remove_files=True)
        except Exception:  # pragma: no cover - best effort at exit
            pass


atexit.register(_atexit_cleanup)
_sigterm_installed = False


def _install_sigterm_handler() -> None:
    """Turn SIGTERM into SystemExit so that atexit kills the guests (main thread only)."""
    global _sigterm_installed
    if _sigterm_installed or threading.current_thread() is not threading.main_thread():
        return
    _sigterm_installed = True
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        def handler(signum, frame):  # noqa: ARG001
            raise SystemExit(128 + signum)
        signal.signal(signal.SIGTERM, handler)


class Guest:
    """One QEMU guest; see the module docstring."""

    ssh_host = "127.0.0.1"

    def __init__(self, name: str, workdir: str | os.PathLike, image: Image | None = None,
                 ssh_port: int | None = None, memory_mb: int = 1024, smp: int = 2):
        self.name = name
        self.workdir = Path(workdir).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.image = image or build_image()
        self._auto_port = ssh_port is None
        self.ssh_port = ssh_port or _free_port()
        self.memory_mb = memory_mb
        self.smp = smp
        self.user = self.image.user
        self.password = secrets_audit.register(self.image.password, "sudo password of the rig guest")
        self.key_path = str(self.image.key_path)
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "guest"
        self.hostname = re.sub(r"[^a-z0-9-]", "-", safe.lower())[:63].strip("-") or "guest"
        self.overlay = self.workdir / f"{safe}.qcow2"
        self.serial_log = self.workdir / f"{safe}.serial.log"
        self.pidfile = self.workdir / f"{safe}.pid"
        qmp = self.workdir / f"{safe}.qmp"
        if len(str(qmp)) > 100:  # sun_path limit
            import tempfile
            qmp = Path(tempfile.mkdtemp(prefix="ams-rig-")) / f"{safe[:40]}.qmp"
        self.qmp_path = qmp
        self.pid: int | None = None
        self.boot_seconds: float | None = None  # last start()/reboot() to SSH-ready
        self._plugged: dict[str, str] = {}
        self.board_asset_tag: str | None = None  # EC2 instance id (set_board_asset_tag)
        self._lock = threading.RLock()  # lifecycle + plug/unplug
        self._ssh_lock = threading.Lock()
        self._channels = threading.BoundedSemaphore(MAX_CHANNELS)
        self._ssh: paramiko.SSHClient | None = None
        self._qmp: QMPClient | None = None

    def __repr__(self) -> str:
        return f"<Guest {self.name} port={self.ssh_port} pid={self.pid}>"

    # ------------------------------------------------------------------ lifecycle
    def is_running(self) -> bool:
        return pid_alive(self.pid) and str(self.pidfile) in process_cmdline(self.pid)

    def _qemu_command(self) -> list[str]:
        img = self.image
        cmd = [
            QEMU, "-name", _opt(self.name),
            "-machine", "pc", "-accel", "tcg,thread=multi,tb-size=256", "-cpu", "max",
            "-smp", str(self.smp), "-m", str(self.memory_mb),
            "-nodefaults", "-display", "none",
            "-kernel", str(img.kernel), "-initrd", str(img.initrd),
            "-append", f"root=/dev/vda rw console=ttyS0 panic=-1 systemd.hostname={self.hostname}",
            "-drive", f"file={_opt(self.overlay)},if=virtio,format=qcow2,node-name=rootdisk",
            "-netdev", f"user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:{self.ssh_port}-:22",
            "-device", "virtio-net-pci,netdev=net0,romfile=",  # direct kernel boot: no PXE ROM
            # a baseboard table, so that board_asset_tag exists (set_board_asset_tag)
            "-smbios", "type=2,manufacturer=Amazon EC2,asset=",
            "-serial", f"file:{self.serial_log}",
            "-qmp", f"unix:{_opt(self.qmp_path)},server=on,wait=off",
            "-daemonize", "-pidfile", str(self.pidfile),
        ]
        for volume_id, backing in self._plugged.items():
            serial = serial_of(volume_id)
            cmd += ["-blockdev", f"driver=file,filename={_opt(backing)},node-name=n{serial},discard=unmap",
                    "-device", f"nvme,id=dev-{serial},drive=n{serial},serial={serial}"]
        return cmd

    def _reap_stale(self) -> None:
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            pid = 0
        if pid and pid_alive(pid) and str(self.pidfile) in process_cmdline(pid):
            log.warning("killing stale QEMU %s of guest %s", pid, self.name)
            os.kill(pid, signal.SIGKILL)
            self._wait_exit(pid, 10)
        for p in (self.pidfile, self.qmp_path):
            p.unlink(missing_ok=True)

    def start(self, timeout: float = 180) -> None:
        """Boot the guest and wait until SSH answers (no-op if already running)."""
        with self._lock:
            if self.is_running():
                return
            _install_sigterm_handler()
            reap_orphans()
            self._reap_stale()
            if not self.overlay.exists():
                subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(self.image.root),
                                "-F", "qcow2", str(self.overlay)], check=True)
            if self.serial_log.exists():
                self.serial_log.replace(self.serial_log.with_suffix(".log.prev"))
            t0 = time.monotonic()
            for attempt in range(3):
                proc = subprocess.run(self._qemu_command(), capture_output=True, text=True)
                if proc.returncode == 0:
                    break
                if "hostfwd" in proc.stderr and self._auto_port and attempt < 2:
                    self.ssh_port = _free_port()  # lost a race for the port
                    continue
                raise GuestError(f"QEMU failed to start guest {self.name}: {proc.stderr.strip()}")
            self.pid = int(self.pidfile.read_text().strip())
            _register(self.pid, self.pidfile)
            with _live_lock:
                _live.add(self)
            try:
                self._qmp = QMPClient(str(self.qmp_path)).connect()
                self._wait_ssh(t0 + timeout)
                self._sync_board_asset_tag()
            except BaseException:
                self._kill(remove_files=False)
                raise
            self.boot_seconds = time.monotonic() - t0
            log.info("guest %s up in %.1fs (ssh 127.0.0.1:%s, pid %s)", self.name,
                     self.boot_seconds, self.ssh_port, self.pid)

    def _serial_tail(self, lines: int = 25) -> str:
        try:
            text = self.serial_log.read_text(errors="replace")
        except OSError:
            return "(no serial log)"
        return "\n".join(text.splitlines()[-lines:])

    def _wait_ssh(self, deadline: float, not_boot_id: str | None = None) -> None:
        """Poll until a fresh SSH connection runs a command (and, after a reboot, the boot id
        differs from ``not_boot_id``)."""
        last: Exception | None = None
        while time.monotonic() < deadline:
            if not self.is_running():
                raise GuestError(f"QEMU of guest {self.name} exited during boot; serial log:\n"
                                 + self._serial_tail())
            self._drop_ssh()
            if not self._banner():
                time.sleep(0.5)
                continue
            try:
                rc, out, _ = self.run("cat /proc/sys/kernel/random/boot_id", timeout=15)
                if rc == 0 and (not_boot_id is None or out.strip() != not_boot_id):
                    return
            except Exception as exc:  # noqa: BLE001 - anything means "not yet"
                last = exc
            time.sleep(1.0)
        raise GuestError(f"guest {self.name} did not answer SSH on 127.0.0.1:{self.ssh_port} "
                         f"in time (last error: {last}); serial log:\n" + self._serial_tail())

    def _banner(self) -> bool:
        """True when sshd in the guest sends its banner (QEMU's port forward accepts TCP
        connections long before; probing this way keeps paramiko from logging banner errors)."""
        try:
            with socket.create_connection((self.ssh_host, self.ssh_port), timeout=3) as s:
                s.settimeout(3)
                return s.recv(4).startswith(b"SSH-")
        except OSError:
            return False

    @staticmethod
    def _wait_exit(pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                return True
            time.sleep(0.2)
        return not pid_alive(pid)

    def reboot(self, timeout: float = 180) -> None:
        """``sudo reboot`` inside the guest (as on EC2); wait until SSH is back. QEMU keeps
        running, so hot-plugged devices stay."""
        with self._lock:
            if not self.is_running():
                raise GuestError(f"guest {self.name} is not running")
            t0 = time.monotonic()
            boot_id = self.check("cat /proc/sys/kernel/random/boot_id").strip()
            try:
                self.run("systemd-run --on-active=1 --timer-property=AccuracySec=100ms --no-block systemctl reboot || reboot",
                         sudo=True, timeout=20)
            except (GuestError, paramiko.SSHException, OSError, EOFError):
                pass
            self._wait_ssh(t0 + timeout, not_boot_id=boot_id)
            self.boot_seconds = time.monotonic() - t0

    def stop(self, timeout: float = 120) -> None:
        """Power off cleanly (``systemctl poweroff`` inside). Overlay and plugged volumes stay
        for the next ``start()``."""
        with self._lock:
            if not self.is_running():
                self._close_channels()
                return
            pid = self.pid
            try:
                self.run("systemd-run --on-active=1 --timer-property=AccuracySec=100ms --no-block systemctl poweroff "
                         "|| systemctl poweroff", sudo=True, timeout=20)
            except Exception:  # noqa: BLE001 - SSH may be gone (fault injection): use ACPI
                try:
                    self._qmp_exec("system_powerdown")
                except QMPError:
                    pass
            if not self._wait_exit(pid, timeout):
                log.warning("guest %s did not power off in %ss; killing it", self.name, timeout)
                self._kill(remove_files=False)
            _unregister(pid)
            self._close_channels()
            self.pidfile.unlink(missing_ok=True)
            self.qmp_path.unlink(missing_ok=True)

    def shutdown(self) -> None:
        """Final stop: power off (kill if that hangs) and remove overlay, sockets, pidfile."""
        with self._lock:
            try:
                if self.is_running():
                    self.stop(timeout=30)
            finally:
                self._kill(remove_files=True)

    def _close_channels(self) -> None:
        self._drop_ssh()
        if self._qmp is not None:
            self._qmp.close()
            self._qmp = None

    def _kill(self, remove_files: bool) -> None:
        pid = self.pid
        if pid and self.is_running():
            try:
                os.kill(pid, signal.SIGTERM)
                if not self._wait_exit(pid, 5):
                    os.kill(pid, signal.SIGKILL)
                    self._wait_exit(pid, 5)
            except ProcessLookupError:
                pass
        if pid and not self.is_running():
            _unregister(pid)
        self._close_channels()
        if remove_files:
            for p in (self.pidfile, self.qmp_path, self.overlay):
                try:
                    p.unlink(missing_ok=True)
                except OSError:
                    pass
            with _live_lock:
                _live.discard(self)

    def pause(self) -> None:
        """Freeze the vCPUs (QMP ``stop``; QEMU drains and flushes in-flight I/O first), e.g.
        to copy backing files at one point in time. No-op when the guest is not running."""
        with self._lock:
            if self.is_running():
                self._qmp_exec("stop")

    def resume(self) -> None:
        """Undo ``pause`` (QMP ``cont``)."""
        with self._lock:
            if self.is_running():
                self._qmp_exec("cont")

    def peak_memory_kb(self) -> int | None:
        """Peak resident memory of the QEMU process (VmHWM), while it runs."""
        try:
            with open(f"/proc/{self.pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1])
        except (OSError, TypeError):
            return None
        return None

    # ------------------------------------------------------------------ commands
    def _client(self) -> paramiko.SSHClient:
        with self._ssh_lock:
            if self._ssh is not None:
                transport = self._ssh.get_transport()
                if transport is not None and transport.is_active():
                    return self._ssh
                self._ssh.close()
                self._ssh = None
            client = paramiko.SSHClient()
            client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
            client.connect(self.ssh_host, port=self.ssh_port, username=self.user,
                           key_filename=self.key_path, timeout=10, banner_timeout=10,
                           auth_timeout=10, allow_agent=False, look_for_keys=False)
            transport = client.get_transport()
            if transport is not None:
                transport.set_keepalive(15)
            self._ssh = client
            return client

    def _drop_ssh(self) -> None:
        with self._ssh_lock:
            if self._ssh is not None:
                self._ssh.close()
                self._ssh = None

    def run(self, command: str, timeout: float = 120, sudo: bool = False) -> tuple[int, str, str]:
        """Run a shell command in the guest as ``user`` (as root through ``sudo -S`` with the
        password on stdin when ``sudo``). Returns (exit code, stdout, stderr); exit code -1 when
        the connection ended without one. Raises GuestCommandTimeout, or GuestError/paramiko
        errors when SSH cannot connect. Thread-safe (one multiplexed connection)."""
        if not self.is_running():
            raise GuestError(f"guest {self.name} is not running")
        if sudo:
            command = "sudo -k -S -p '' -- sh -c " + shlex.quote(command)
        with self._channels:
            return self._run_channel(command, timeout, sudo)

    def _open_channel(self) -> paramiko.Channel:
        refused_until = time.monotonic() + 60
        attempt = 0
        while True:
            client = self._client()
            try:
                return client.get_transport().open_session(timeout=30)
            except paramiko.ChannelException:
                # MaxSessions reached: sessions closed a moment ago are not freed yet
                if time.monotonic() > refused_until:
                    raise
                time.sleep(0.2)
            except (paramiko.SSHException, OSError, EOFError, AttributeError):
                self._drop_ssh()
                attempt += 1
                if attempt == 2:
                    raise

    def _run_channel(self, command: str, timeout: float, sudo: bool) -> tuple[int, str, str]:
        chan = self._open_channel()
        deadline = time.monotonic() + timeout
        out, err = bytearray(), bytearray()
        try:
            chan.settimeout(timeout)
            chan.exec_command(command)
            if sudo:
                chan.sendall((self.password + "\n").encode())
            chan.shutdown_write()
            while True:
                got = False
                if chan.recv_ready():
                    out += chan.recv(65536)
                    got = True
                if chan.recv_stderr_ready():
                    err += chan.recv_stderr(65536)
                    got = True
                if not got:
                    # sshd may send the exit status before the last output: read up to EOF
                    if chan.eof_received or chan.closed:
                        if not (chan.recv_ready() or chan.recv_stderr_ready()):
                            break
                        continue
                    if time.monotonic() > deadline:
                        raise GuestCommandTimeout(
                            f"guest {self.name}: command timed out after {timeout}s: {command[:200]}")
                    time.sleep(0.005)
            while not (chan.exit_status_ready() or chan.closed) and time.monotonic() < deadline:
                time.sleep(0.005)
            rc = chan.recv_exit_status() if chan.exit_status_ready() else -1
        finally:
            chan.close()
        return rc, out.decode(errors="replace"), err.decode(errors="replace")

    def check(self, command: str, timeout: float = 120, sudo: bool = False) -> str:
        """``run`` that raises GuestError on a non-zero exit; returns stdout."""
        rc, out, err = self.run(command, timeout=timeout, sudo=sudo)
        if rc != 0:
            raise GuestError(f"guest {self.name}: `{command[:200]}` exited {rc}: {err.strip()[-500:]}")
        return out

    # ------------------------------------------------------------------ DMI board asset tag
    _ASSET_TAG_SCRIPT = r"""
T={tag_path}; F={file}
[ -e "$T" ] || {{ echo "$T does not exist (QEMU without an SMBIOS type 2 table)" >&2; exit 3; }}
while findmnt -rn --mountpoint "$T" >/dev/null; do umount "$T" || exit 1; done
if [ -n {value} ]; then
  mkdir -p "${{F%/*}}"
  printf '%s\n' {value} > "$F.tmp" && chmod 0444 "$F.tmp" && mv -f "$F.tmp" "$F" &&
    mount --bind -o ro "$F" "$T"
else
  rm -f "$F"
fi
"""

    def set_board_asset_tag(self, value: str | None) -> None:
        """Show ``value`` (an EC2 instance id; None: nothing) as the DMI board asset tag, as a
        Nitro instance shows its id: a file in the guest bind-mounted read-only over the sysfs
        file (QEMU's own table keeps an empty tag), mounted again at every boot. On a stopped
        guest the change is made when it starts."""
        if value is not None and not re.match(r"^[A-Za-z0-9-]{1,64}$", value):
            raise ValueError(f"not a usable board asset tag: {value!r}")
        with self._lock:
            self.board_asset_tag = value
            if self.is_running():
                self._apply_board_asset_tag(value)

    def _apply_board_asset_tag(self, value: str | None) -> None:
        script = self._ASSET_TAG_SCRIPT.format(tag_path=shlex.quote(DMI_ASSET_TAG),
                                               file=shlex.quote(ASSET_TAG_FILE),
                                               value=shlex.quote(value or ""))
        rc, out, err = self.run(script, sudo=True, timeout=60)
        if rc != 0:
            raise GuestError(f"guest {self.name}: setting the board asset tag failed (rc {rc}): "
                             f"{(err or out).strip()[-300:]}")

    def _sync_board_asset_tag(self) -> None:
        """After a boot: a tag file left from an earlier registration would show an old id."""
        rc, out, _ = self.run(f"cat {DMI_ASSET_TAG}", timeout=30)
        if rc == 0 and out.strip() != (self.board_asset_tag or ""):
            self._apply_board_asset_tag(self.board_asset_tag)

    # ------------------------------------------------------------------ volumes
    def _qmp_exec(self, command: str, **args):
        if self._qmp is None or not self._qmp.connected:
            self._qmp = QMPClient(str(self.qmp_path)).connect()
        return self._qmp.execute(command, args)

    def _pci_ids(self) -> set[str]:
        ids: set[str] = set()

        def walk(devices):
            for dev in devices:
                if dev.get("qdev_id"):
                    ids.add(dev["qdev_id"])
                bridge = dev.get("pci_bridge")
                if bridge:
                    walk(bridge.get("devices", []))

        for bus in self._qmp_exec("query-pci"):
            walk(bus.get("devices", []))
        return ids

    def plugged(self) -> dict[str, str]:
        """volume id -> backing file of every plugged volume (also while stopped)."""
        with self._lock:
            return dict(self._plugged)

    def plug(self, volume_id: str, backing_file: str, timeout: float = 60) -> str:
        """Hot-plug ``backing_file`` as an NVMe disk with serial = volume id without the dash;
        wait until the guest has the EBS by-id link and return its path. On a stopped guest the
        volume is recorded and cold-plugged at the next start."""
        serial = serial_of(volume_id)
        path = BY_ID_PREFIX + serial
        backing_file = str(Path(backing_file).resolve())
        with self._lock:
            if volume_id in self._plugged:
                if self._plugged[volume_id] != backing_file:
                    raise GuestError(f"{volume_id} is already plugged into {self.name} "
                                     f"from {self._plugged[volume_id]}")
                return path
            if not os.path.exists(backing_file):
                raise GuestError(f"backing file {backing_file} does not exist")
            running = self.is_running()
            if running:
                node = f"n{serial}"
                self._qmp_exec("blockdev-add", driver="file", filename=backing_file,
                               **{"node-name": node, "discard": "unmap"})
                try:
                    self._qmp_exec("device_add", driver="nvme", id=f"dev-{serial}", drive=node,
                                   serial=serial)
                except QMPError:
                    self._qmp_exec("blockdev-del", **{"node-name": node})
                    raise
            self._plugged[volume_id] = backing_file
        if running:
            secs = max(1, int(timeout * 10))
            rc, _, err = self.run(f"i=0; while [ ! -e {path} ]; do i=$((i+1)); "
                                  f"[ $i -gt {secs} ] && exit 1; sleep 0.1; done",
                                  timeout=timeout + 15)
            if rc != 0:
                raise GuestError(f"guest {self.name}: {path} did not appear in {timeout}s {err}")
        return path

    def unplug(self, volume_id: str, timeout: float = 60) -> None:
        """Hot-unplug a volume: device_del, wait until it left the PCI bus, blockdev-del.
        The guest must have released it (unmount, mdadm --stop) first. No-op if not plugged."""
        serial = serial_of(volume_id)
        with self._lock:
            if volume_id not in self._plugged:
                return
            if self.is_running():
                dev_id = f"dev-{serial}"
                if dev_id in self._pci_ids():
                    try:
                        self._qmp_exec("device_del", id=dev_id)
                    except QMPError as exc:
                        if "in the process of unplug" not in str(exc).lower():
                            raise
                    deadline = time.monotonic() + timeout
                    while dev_id in self._pci_ids():
                        if time.monotonic() > deadline:
                            raise GuestError(f"guest {self.name} did not release {volume_id} "
                                             f"({dev_id}) in {timeout}s")
                        time.sleep(0.1)
                # The device leaves query-pci slightly before it lets go of its block node.
                deadline = time.monotonic() + 10
                while True:
                    try:
                        self._qmp_exec("blockdev-del", **{"node-name": f"n{serial}"})
                        break
                    except QMPError as exc:
                        if "in use" not in str(exc) or time.monotonic() > deadline:
                            log.warning("blockdev-del n%s: %s", serial, exc)
                            break
                        time.sleep(0.1)
            del self._plugged[volume_id]
        if self.is_running():
            path = BY_ID_PREFIX + serial
            try:  # let udev drop the link, so that a re-plug is observed cleanly
                self.run(f"i=0; while [ -e {path} ] && [ $i -lt 100 ]; do i=$((i+1)); sleep 0.1; done",
                         timeout=30)
            except Exception:  # noqa: BLE001
                pass

    _USAGE_SCRIPT = r"""
p={path}
[ -e "$p" ] || exit 0
d=$(readlink -f "$p"); n=${{d##*/}}
for s in /sys/block/$n /sys/block/$n/$n*; do
  [ -d "$s" ] || continue
  part=${{s##*/}}
  [ -n "$(ls -A "$s/holders" 2>/dev/null)" ] && echo "held $part by $(ls "$s/holders" | tr '\n' ' ')"
  majmin=$(cat "$s/dev")
  awk -v mm="$majmin" '$3 == mm {{ print "mounted at " $5; exit }}' /proc/self/mountinfo
  grep -q "^/dev/$part " /proc/swaps && echo "swap $part"
done
grep -q "\b$n\[" /proc/mdstat 2>/dev/null && echo "md member $n"
exit 0
"""

    def usage(self, volume_id: str) -> list[str]:
        """Why a volume is in use inside the guest (empty list: free, absent or guest down)."""
        if not self.is_running():
            return []
        script = self._USAGE_SCRIPT.format(path=shlex.quote(by_id_path(volume_id)))
        rc, out, err = self.run(script, timeout=60)
        if rc != 0:
            raise GuestError(f"guest {self.name}: usage check failed: {err.strip()}")
        return [line for line in out.splitlines() if line.strip()]

    def in_use(self, volume_id: str) -> bool:
        """Mounted, an md member, swap, or held (holders) inside the guest."""
        return bool(self.usage(volume_id))

"""Build and cache the Debian guest image of the test rig.

The guest behaves like a small EC2 instance: Debian bookworm (systemd, udev, sshd, sudo, mdadm,
xfsprogs, nvme-cli), the stock Debian 6.1 kernel, a user ``ams`` with a password, an authorized
ed25519 key and sudo *with* password, systemd-networkd DHCP, and a udev rule that gives hot-plugged
NVMe disks the EBS by-id name ``/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol…``.

Nothing is mounted and no loop device is used: the root filesystem is made with ``mkfs.ext4 -d``
from a directory, then converted to qcow2. Stages are cached separately:

* ``debootstrap/``  the minbase root (about a minute, network), keyed by suite/mirror/packages;
* ``kernel/``       the extracted ``linux-image-6.1.0-*-amd64`` package (``dpkg-deb -x``);
* ``images/<key>/`` vmlinuz, initrd.img (busybox), root.qcow2, keyed by everything that goes in,
  including this file's source, so editing the guest configuration rebuilds only this stage;
* ``id_ed25519{,.pub}``, ``password``: generated once per cache directory.

Cache directory: ``$AMS_RIG_CACHE`` or ``~/.cache/ams-rig``. Other environment variables:
``AMS_RIG_MIRROR`` (Debian mirror for debootstrap; by default the Debian archive this machine's
apt sources use, see ``tests/rig/apt_sources.py``),
``AMS_RIG_KERNEL_DEB`` (a linux-image .deb to use instead of ``apt-get download``).

Run ``python -m tests.rig.image [--force]`` to build (or check) the image and print timings.
Building needs root (debootstrap, chroot), debootstrap, dpkg-deb, busybox-static, cpio,
e2fsprogs (mkfs.ext4 -d), qemu-utils (qemu-img) and apt-get for the kernel package.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

SUITE = "bookworm"
PACKAGES = (
    "systemd-sysv,udev,openssh-server,sudo,mdadm,xfsprogs,e2fsprogs,kmod,iproute2,"
    "nvme-cli,util-linux,procps,dbus,libpam-systemd"
)
KERNEL_META_PACKAGE = "linux-image-amd64"
USER = "ams"
ROOT_SIZE = "2G"
#: Bump to force a rebuild of the final image stage (the source of this file is hashed too).
IMAGE_VERSION = 1
DEBOOTSTRAP_VERSION = 1

#: Module trees copied into the guest (relative to lib/modules/VER/kernel); the rest of the
#: ~400 MB tree (sound, gpu, wireless, …) is left out.
MODULE_TREES = (
    "arch/x86/crypto",
    "block",
    "crypto",
    "lib",
    "fs",
    "drivers/md",
    "drivers/nvme",
    "drivers/block",
    "drivers/virtio",
    "drivers/char/hw_random",
    "drivers/net/virtio_net.ko",
    "drivers/net/net_failover.ko",
    "net/core/failover.ko",
)
#: Loaded (with their dependencies) by the initramfs before the root is mounted.
INITRAMFS_MODULES = ("virtio_pci", "virtio_blk", "crc32c_generic", "ext4")
BUSYBOX_APPLETS = ("sh", "mount", "umount", "insmod", "sleep", "cat", "echo", "switch_root",
                   "poweroff", "mkdir", "ls")

MASKED_UNITS = (
    "systemd-networkd-wait-online.service",
    "e2scrub_reap.service",
    "e2scrub_all.timer",
    "nvmf-autoconnect.service",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "fstrim.timer",
    "mdcheck_start.timer",
    "mdcheck_continue.timer",
    "mdmonitor-oneshot.timer",
    "getty@tty1.service",
    # modules nothing in the rig uses; each costs a second of boot under TCG
    "modprobe@dm_mod.service",
    "modprobe@fuse.service",
    "modprobe@drm.service",
    "modprobe@efi_pstore.service",
)

INIT_SCRIPT = r"""#!/bin/sh
# ams rig initramfs: load the virtio/ext4 modules, mount the root, switch_root.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /modules.list); do
    insmod "/modules/$m" || echo "initramfs: insmod $m failed"
done
root=/dev/vda
for arg in $(cat /proc/cmdline); do
    case "$arg" in root=*) root="${arg#root=}" ;; esac
done
i=0
while [ ! -b "$root" ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done
mkdir -p /newroot
if ! mount -t ext4 -o rw "$root" /newroot; then
    echo "initramfs: cannot mount $root; powering off"
    sleep 1
    poweroff -f
fi
umount /proc /sys
mount --move /dev /newroot/dev || umount /dev
exec switch_root /newroot /sbin/init
"""

GUEST_FILES = {
    "etc/systemd/network/20-dhcp.network": "[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n",
    "etc/fstab": "/dev/vda / ext4 rw,errors=remount-ro 0 1\n",
    "etc/hostname": "ams-guest\n",
    "etc/hosts": "127.0.0.1 localhost\n127.0.1.1 ams-guest\n",
    "etc/modprobe.d/ams-rig-blacklist.conf": (
        "# no nested virtualisation in the rig\nblacklist kvm\nblacklist kvm_intel\nblacklist kvm_amd\n"
    ),
    "etc/udev/rules.d/70-ec2-nvme.rules": (
        "# EBS volumes appear as NVMe disks whose serial is the volume id without the dash;\n"
        "# QEMU's model string is fixed, so give them the name EC2 (Nitro) gives them.\n"
        'KERNEL=="nvme*", ENV{DEVTYPE}=="disk", ENV{ID_SERIAL_SHORT}=="vol*", '
        'SYMLINK+="disk/by-id/nvme-Amazon_Elastic_Block_Store_$env{ID_SERIAL_SHORT}"\n'
    ),
    # Debian's limits stay (MaxSessions 10, MaxStartups 10:30:100), as on an EC2 host: ams must
    # live with them; tests/rig/test_rig_strict.py checks it.
    "etc/ssh/sshd_config.d/ams-rig.conf": "UseDNS no\nPasswordAuthentication yes\n",
    "etc/sysctl.d/90-ams-rig.conf": "kernel.printk = 4 4 1 7\n",
    # restrict=on: nothing outside answers DNS; with no nameserver line lookups fail at once
    # (the host's resolv.conf copied by debootstrap made every sudo wait for DNS timeouts).
    "usr/local/sbin/ams-rig-hosts": (
        "#!/bin/sh\nprintf '127.0.0.1 localhost\\n127.0.1.1 %s\\n' \"$(hostname)\" > /etc/hosts\n"
    ),
    "etc/resolv.conf": "# no DNS in the rig guest (QEMU user networking with restrict=on)\n",
    # The hostname comes from the kernel command line (systemd.hostname=): make it resolvable.
    "etc/systemd/system/ams-rig-hosts.service": (
        "[Unit]\nDescription=ams rig: /etc/hosts for the hostname given on the command line\n"
        "DefaultDependencies=no\nAfter=local-fs.target systemd-remount-fs.service\n"
        "Before=sysinit.target ssh.service\n\n"
        "[Service]\nType=oneshot\nRemainAfterExit=yes\n"
        "ExecStart=/usr/local/sbin/ams-rig-hosts\n\n"
        "[Install]\nWantedBy=sysinit.target\n"
    ),
    # As on a Nitro instance, the DMI board asset tag is the EC2 instance id: the rig writes it
    # to this file (tests.rig.guest.Guest.set_board_asset_tag), mounted over the sysfs file at
    # every boot (QEMU's SMBIOS table is fixed when QEMU starts; a reboot keeps QEMU).
    "etc/systemd/system/ams-rig-asset-tag.service": (
        "[Unit]\nDescription=ams rig: the EC2 instance id as the DMI board asset tag\n"
        "DefaultDependencies=no\nAfter=local-fs.target systemd-remount-fs.service\n"
        "Before=sysinit.target ssh.service\n"
        "ConditionPathExists=/var/lib/ams-rig/board_asset_tag\n"
        "ConditionPathExists=/sys/devices/virtual/dmi/id/board_asset_tag\n\n"
        "[Service]\nType=oneshot\nRemainAfterExit=yes\n"
        "ExecStart=/bin/mount --bind -o ro /var/lib/ams-rig/board_asset_tag "
        "/sys/devices/virtual/dmi/id/board_asset_tag\n\n"
        "[Install]\nWantedBy=sysinit.target\n"
    ),
}


class ImageError(RuntimeError):
    """The guest image cannot be built."""


@dataclasses.dataclass(frozen=True)
class Image:
    """Paths and credentials of a built guest image."""

    directory: Path
    kernel: Path
    initrd: Path
    root: Path  # qcow2; never written: guests run on an overlay
    key_path: Path  # private ed25519 key authorized for USER
    public_key: str
    user: str
    password: str
    kernel_version: str
    key: str  # cache key of this image

    def describe(self) -> str:
        return f"{self.root} (kernel {self.kernel_version}, key {self.key[:12]})"


def cache_dir() -> Path:
    env = os.environ.get("AMS_RIG_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "ams-rig"


def _log_default(msg: str) -> None:
    print(f"[rig-image] {msg}", file=sys.stderr, flush=True)


def _run(cmd: list[str], *, input: str | None = None, cwd: Path | None = None,
         env: dict | None = None) -> str:
    full_env = dict(os.environ)
    full_env["PATH"] = full_env.get("PATH", "") + ":/usr/sbin:/sbin"
    full_env.update(env or {})
    proc = subprocess.run(cmd, input=input, cwd=cwd, env=full_env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
        raise ImageError(f"{' '.join(cmd[:3])}… failed (exit {proc.returncode}):\n" + "\n".join(tail))
    return proc.stdout


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    tmp.replace(path)


def _rmtree(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def missing_build_tools() -> list[str]:
    """Programs (or privileges) the build needs that this machine lacks."""
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    missing = [tool for tool in ("debootstrap", "dpkg-deb", "cpio", "mkfs.ext4", "depmod",
                                 "chroot", "qemu-img", "gzip")
               if shutil.which(tool, path=path) is None]
    if _busybox() is None:
        missing.append("busybox (static, package busybox-static)")
    if os.geteuid() != 0:
        missing.append("root privileges (debootstrap/chroot)")
    return missing


def _is_static_elf(path: str) -> bool:
    """True for a 64-bit little-endian ELF without a PT_INTERP (dynamic loader) segment."""
    import struct

    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
            if head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
                return False
            phoff, = struct.unpack_from("<Q", head, 0x20)
            phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
            fh.seek(phoff)
            table = fh.read(phentsize * phnum)
    except OSError:
        return False
    return all(struct.unpack_from("<I", table, i * phentsize)[0] != 3 for i in range(phnum))


def _busybox() -> str | None:
    for candidate in ("/bin/busybox", "/usr/bin/busybox"):
        if os.path.exists(candidate) and _is_static_elf(candidate):
            return candidate
    return None


# ---------------------------------------------------------------- stage 0: credentials

def _credentials(cache: Path) -> tuple[Path, str, str]:
    key_path = cache / "id_ed25519"
    pub_path = cache / "id_ed25519.pub"
    pw_path = cache / "password"
    if not (key_path.exists() and pub_path.exists()):
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        key = Ed25519PrivateKey.generate()
        private = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.OpenSSH,
                                    serialization.NoEncryption())
        public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                               serialization.PublicFormat.OpenSSH)
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(private)
        pub_path.write_text(public.decode() + " ams-rig\n")
    if not pw_path.exists():
        fd = os.open(pw_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write("rig-" + secrets.token_urlsafe(12) + "\n")
    os.chmod(key_path, 0o600)
    return key_path, pub_path.read_text().strip(), pw_path.read_text().strip()


# ---------------------------------------------------------------- stage 1: debootstrap

def debian_mirror() -> str:
    """The Debian mirror for debootstrap: ``AMS_RIG_MIRROR``, else the main Debian archive of
    this machine's apt sources. No address is built in: without either, ImageError."""
    override = os.environ.get("AMS_RIG_MIRROR", "").strip()
    if override:
        return override
    from tests.rig.apt_sources import looked_in, pick_debian_mirror, read_apt_sources

    mirror = pick_debian_mirror(read_apt_sources(), SUITE)
    if mirror is None:
        raise ImageError(
            f"no Debian mirror for debootstrap: found no 'deb' entry of the Debian archive "
            f"({SUITE} or {SUITE}-updates, or another Debian release; http(s), ftp or file: URI) "
            f"in {looked_in()}; set AMS_RIG_MIRROR to the URL of a Debian mirror (the directory "
            f"that holds dists/ and pool/)")
    return mirror


def _debootstrap(cache: Path, mirror: str, log: Callable[[str], None]) -> tuple[Path, str]:
    inputs = {"suite": SUITE, "mirror": mirror, "packages": PACKAGES, "variant": "minbase",
              "version": DEBOOTSTRAP_VERSION}
    root = cache / "debootstrap"
    stamp = cache / "debootstrap.json"
    if _read_json(stamp) == inputs and (root / "usr/sbin/sshd").exists():
        return root, json.dumps(inputs, sort_keys=True)
    _rmtree(root)
    stamp.unlink(missing_ok=True)
    log(f"debootstrap {SUITE} from {mirror} (about a minute)")
    t0 = time.monotonic()
    _run(["debootstrap", "--variant=minbase", f"--include={PACKAGES}", SUITE, str(root), mirror])
    _write_json(stamp, inputs)
    log(f"debootstrap done in {time.monotonic() - t0:.1f}s")
    return root, json.dumps(inputs, sort_keys=True)


# ---------------------------------------------------------------- stage 2: kernel

def _kernel_package_name() -> str:
    def depends() -> str | None:
        out = subprocess.run(["apt-cache", "depends", KERNEL_META_PACKAGE],
                             capture_output=True, text=True).stdout
        for line in out.splitlines():
            line = line.strip()
            if line.startswith("Depends: linux-image-"):
                return line.split(": ", 1)[1].strip()
        return None

    name = depends()
    if name is None and os.geteuid() == 0:
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True)
        name = depends()
    if name is None:
        raise ImageError(f"cannot resolve {KERNEL_META_PACKAGE} with apt-cache "
                         "(run apt-get update, or set AMS_RIG_KERNEL_DEB to a linux-image .deb)")
    return name


def _kernel(cache: Path, log: Callable[[str], None]) -> tuple[Path, str, str]:
    """Extracted kernel package: (directory, kernel version, package id)."""
    kdir = cache / "kernel"
    stamp = cache / "kernel.json"
    deb_override = os.environ.get("AMS_RIG_KERNEL_DEB")
    current = _read_json(stamp)
    if current and (kdir / "boot").is_dir():
        # A cached kernel is kept until the override changes: no apt look-up on cached runs.
        if deb_override is None or current.get("source") == os.path.abspath(deb_override):
            return kdir, current["version"], current["package"]
    _rmtree(kdir)
    stamp.unlink(missing_ok=True)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        if deb_override:
            deb = Path(deb_override).resolve()
            source = str(deb)
        else:
            name = _kernel_package_name()
            log(f"apt-get download {name}")
            try:
                _run(["apt-get", "download", name], cwd=Path(tmp))
            except ImageError:
                if os.geteuid() != 0:
                    raise
                # stale package lists (the version they name is gone from the mirror)
                _run(["apt-get", "update", "-qq"])
                _run(["apt-get", "download", name], cwd=Path(tmp))
            debs = sorted(Path(tmp).glob("*.deb"))
            if not debs:
                raise ImageError(f"apt-get download {name} produced no .deb")
            deb = debs[0]
            source = "apt"
        package = deb.name
        _run(["dpkg-deb", "-x", str(deb), str(kdir)])
    versions = sorted(p.name for p in (kdir / "lib/modules").iterdir())
    if len(versions) != 1 or not list((kdir / "boot").glob("vmlinuz-*")):
        raise ImageError(f"unexpected kernel package layout in {package}")
    version = versions[0]
    _run(["depmod", "-b", str(kdir), version])
    _write_json(stamp, {"version": version, "package": package, "source": source})
    log(f"kernel {version} ({package}) extracted in {time.monotonic() - t0:.1f}s")
    return kdir, version, package


# ---------------------------------------------------------------- stage 3: image

def _module_closure(kmod_dir: Path, names: tuple[str, ...]) -> list[str]:
    """Module files (relative paths) for `names` and their dependencies, in load order."""
    deps: dict[str, list[str]] = {}
    by_name: dict[str, str] = {}
    for line in (kmod_dir / "modules.dep").read_text().splitlines():
        mod, _, rest = line.partition(":")
        deps[mod] = rest.split()
        base = os.path.basename(mod).split(".ko")[0]
        by_name[base.replace("-", "_")] = mod
    builtin = {os.path.basename(line).split(".ko")[0].replace("-", "_")
               for line in (kmod_dir / "modules.builtin").read_text().splitlines()}
    order: list[str] = []

    def visit(mod: str) -> None:
        if mod in order:
            return
        for dep in deps.get(mod, []):
            visit(dep)
        order.append(mod)

    for name in names:
        key = name.replace("-", "_")
        if key in builtin:
            continue
        if key not in by_name:
            raise ImageError(f"kernel module {name} not found")
        visit(by_name[key])
    return order


def _make_initramfs(kdir: Path, version: str, out: Path) -> None:
    kmod_dir = kdir / "lib/modules" / version
    busybox = _busybox()
    if busybox is None:
        raise ImageError("a static busybox is needed (apt-get install busybox-static)")
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        d = Path(tmp)
        for sub in ("bin", "dev", "proc", "sys", "newroot", "modules"):
            (d / sub).mkdir()
        shutil.copy2(busybox, d / "bin/busybox")
        for applet in BUSYBOX_APPLETS:
            os.symlink("busybox", d / "bin" / applet)
        os.mknod(d / "dev/console", 0o600 | stat.S_IFCHR, os.makedev(5, 1))
        os.mknod(d / "dev/null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        listed = []
        for rel in _module_closure(kmod_dir, INITRAMFS_MODULES):
            name = os.path.basename(rel)
            shutil.copy2(kmod_dir / rel, d / "modules" / name)
            listed.append(name)
        (d / "modules.list").write_text("\n".join(listed) + "\n")
        (d / "init").write_text(INIT_SCRIPT)
        os.chmod(d / "init", 0o755)
        files = subprocess.run(["find", "."], cwd=d, capture_output=True, text=True,
                               check=True).stdout
        with open(out, "wb") as fh:
            cpio = subprocess.Popen(["cpio", "--quiet", "-o", "-H", "newc"], cwd=d,
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            gz = subprocess.Popen(["gzip", "-1"], stdin=cpio.stdout, stdout=fh)
            cpio.stdout.close()
            cpio.communicate(files.encode())
            gz.wait()
            if cpio.returncode or gz.returncode:
                raise ImageError("building the initramfs failed")


def _configure_root(stage: Path, kdir: Path, version: str, public_key: str,
                    password: str) -> None:
    # Trim what a test guest never needs (also makes mkfs faster).
    for junk in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc",
                 "usr/share/man", "usr/share/locale", "usr/share/info"):
        p = stage / junk
        if p.is_dir():
            for child in p.iterdir():
                if child.name not in ("partial", "lock"):
                    _rmtree(child)
    for pkgcache in (stage / "var/cache/apt").glob("*.bin"):
        pkgcache.unlink()

    for rel, text in GUEST_FILES.items():
        path = stage / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink():
            path.unlink()
        path.write_text(text)
        if text.startswith("#!"):
            os.chmod(path, 0o755)

    # Kernel modules: only the trees a storage test guest needs.
    src = kdir / "lib/modules" / version
    dst = stage / "lib/modules" / version
    _rmtree(dst)
    (dst / "kernel").mkdir(parents=True)
    for name in ("modules.order", "modules.builtin", "modules.builtin.modinfo"):
        shutil.copy2(src / name, dst / name)
    for tree in MODULE_TREES:
        s, t = src / "kernel" / tree, dst / "kernel" / tree
        if s.is_dir():
            shutil.copytree(s, t, symlinks=True)
        elif s.exists():
            t.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(s, t)
    _run(["depmod", "-b", str(stage), version])

    systemd = stage / "etc/systemd/system"
    for unit in MASKED_UNITS:
        link = systemd / unit
        _rmtree(link)
        os.symlink("/dev/null", link)
    _run(["chroot", str(stage), "systemctl", "enable", "systemd-networkd.service",
          "ams-rig-hosts.service", "ams-rig-asset-tag.service"])

    # The EC2-like login user: password, authorized key, sudo *with* password (group sudo).
    _run(["chroot", str(stage), "useradd", "--create-home", "--shell", "/bin/bash",
          "--groups", "sudo", USER])
    # SHA-512 with few rounds instead of yescrypt: every sudo checks the password, and
    # yescrypt costs ~0.7 s per check under TCG.
    _run(["chroot", str(stage), "chpasswd", "--crypt-method", "SHA512", "--sha-rounds", "1000"],
         input=f"{USER}:{password}\n")
    home = stage / "home" / USER
    ssh_dir = home / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text(public_key + "\n")
    os.chmod(ssh_dir / "authorized_keys", 0o600)
    uid_gid = _run(["chroot", str(stage), "id", "-u", USER]).strip(), \
        _run(["chroot", str(stage), "id", "-g", USER]).strip()
    for p in (ssh_dir, ssh_dir / "authorized_keys"):
        os.chown(p, int(uid_gid[0]), int(uid_gid[1]))
    # Debian's sudoers already has "%sudo ALL=(ALL:ALL) ALL": a password is required.
    sudoers = (stage / "etc/sudoers").read_text()
    if "%sudo\tALL=(ALL:ALL) ALL" not in sudoers and "%sudo ALL=(ALL:ALL) ALL" not in sudoers:
        raise ImageError("unexpected /etc/sudoers in the guest root")
    # A clean mdadm.conf without arrays (ams adds its own ARRAY lines).
    mdadm_conf = stage / "etc/mdadm/mdadm.conf"
    mdadm_conf.parent.mkdir(parents=True, exist_ok=True)
    mdadm_conf.write_text("HOMEHOST <system>\nMAILADDR root\n")
    (stage / "etc/machine-id").write_text("")


def _image_key(deb_inputs: str, kernel_package: str, public_key: str, password: str) -> str:
    h = hashlib.sha256()
    for part in (str(IMAGE_VERSION), deb_inputs, kernel_package, public_key, password,
                 Path(__file__).read_text()):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:20]


def _load_image(directory: Path, key: str, key_path: Path, public_key: str,
                password: str) -> Image | None:
    meta = _read_json(directory / "image.json")
    if not meta or meta.get("key") != key:
        return None
    paths = [directory / n for n in ("vmlinuz", "initrd.img", "root.qcow2")]
    if not all(p.exists() for p in paths):
        return None
    return Image(directory=directory, kernel=paths[0], initrd=paths[1], root=paths[2],
                 key_path=key_path, public_key=public_key, user=USER, password=password,
                 kernel_version=meta["kernel_version"], key=key)


def cached_image(cache: Path | None = None) -> Image | None:
    """The newest complete image in the cache, without checking or building anything."""
    cache = cache or cache_dir()
    pointer = _read_json(cache / "current.json")
    if not pointer:
        return None
    try:
        key_path = cache / "id_ed25519"
        public_key = (cache / "id_ed25519.pub").read_text().strip()
        password = (cache / "password").read_text().strip()
    except OSError:
        return None
    return _load_image(cache / "images" / pointer["key"], pointer["key"], key_path,
                       public_key, password)


def build_image(cache: Path | None = None, force: bool = False,
                log: Callable[[str], None] = _log_default) -> Image:
    """Build the guest image or return the cached one (rebuilt only when an input changed)."""
    cache = (cache or cache_dir()).resolve()
    with _locked(cache):
        key_path, public_key, password = _credentials(cache)
        if force:
            for name in ("debootstrap", "kernel", "images"):
                _rmtree(cache / name)
            for name in ("debootstrap.json", "kernel.json", "current.json"):
                (cache / name).unlink(missing_ok=True)
        # Fast path: the final image with the same key exists (no tools, no network).
        pointer = _read_json(cache / "current.json")
        deb_stamp = _read_json(cache / "debootstrap.json")
        kernel_stamp = _read_json(cache / "kernel.json")
        mirror = debian_mirror()
        if pointer and deb_stamp and kernel_stamp and "AMS_RIG_KERNEL_DEB" not in os.environ:
            if deb_stamp.get("mirror") == mirror:
                key = _image_key(json.dumps(deb_stamp, sort_keys=True), kernel_stamp["package"],
                                 public_key, password)
                image = _load_image(cache / "images" / key, key, key_path, public_key, password)
                if image is not None and pointer.get("key") == key:
                    return image

        missing = missing_build_tools()
        if missing:
            raise ImageError("cannot build the guest image, missing: " + ", ".join(missing))
        t0 = time.monotonic()
        root, deb_inputs = _debootstrap(cache, mirror, log)
        kdir, version, package = _kernel(cache, log)
        key = _image_key(deb_inputs, package, public_key, password)
        images = cache / "images"
        out = images / key
        image = _load_image(out, key, key_path, public_key, password)
        if image is None:
            t1 = time.monotonic()
            images.mkdir(exist_ok=True)
            work = images / (key + ".tmp")
            _rmtree(work)
            work.mkdir()
            stage = work / "root"
            try:
                log("copying the debootstrap tree")
                _run(["cp", "-a", str(root), str(stage)])
                log("configuring the guest")
                _configure_root(stage, kdir, version, public_key, password)
                shutil.copy2(next((kdir / "boot").glob("vmlinuz-*")), work / "vmlinuz")
                log("building the initramfs")
                _make_initramfs(kdir, version, work / "initrd.img")
                raw = work / "root.raw"
                log("mkfs.ext4 -d (no mount) and qemu-img convert")
                _run(["truncate", "-s", ROOT_SIZE, str(raw)])
                _run(["mkfs.ext4", "-q", "-F", "-L", "rootfs", "-d", str(stage), str(raw)])
                _run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(work / "root.qcow2")])
                raw.unlink()
                _rmtree(stage)
                _write_json(work / "image.json", {"key": key, "kernel_version": version,
                                                   "kernel_package": package,
                                                   "built": time.time()})
                _rmtree(out)
                work.rename(out)
            finally:
                _rmtree(work)
            log(f"image stage built in {time.monotonic() - t1:.1f}s")
            image = _load_image(out, key, key_path, public_key, password)
            assert image is not None
        _write_json(cache / "current.json", {"key": key})
        # Old images: keep the two newest besides the current one (a guest started from an
        # older image in another process still needs its backing file for a stop/start).
        old = sorted((p for p in images.iterdir()
                      if p.name != key and not p.name.endswith(".tmp")),
                     key=lambda p: p.stat().st_mtime, reverse=True)
        for stale in old[2:]:
            _rmtree(stale)
        log(f"image ready in {time.monotonic() - t0:.1f}s: {image.describe()}")
        return image


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tests.rig.image",
                                     description="Build (or reuse) the rig's guest image.")
    parser.add_argument("--force", action="store_true", help="rebuild every stage from scratch")
    parser.add_argument("--cache", help="cache directory (default: $AMS_RIG_CACHE or ~/.cache/ams-rig)")
    args = parser.parse_args(argv)
    t0 = time.monotonic()
    try:
        image = build_image(Path(args.cache) if args.cache else None, force=args.force)
    except ImageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"image: {image.root}")
    print(f"kernel: {image.kernel} ({image.kernel_version})")
    print(f"initrd: {image.initrd}")
    print(f"key: {image.key_path}  user: {image.user}")
    print(f"time: {time.monotonic() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

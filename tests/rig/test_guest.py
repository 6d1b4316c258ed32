"""The guest half of the rig, by hand (no EC2 endpoint): NVMe hot-plug as EBS, md RAID0 + xfs,
a "snapshot" by copying backing files, re-plug in another order, reboot and stop/start.

The tests share one session guest and run in file order (each step builds on the previous one).
"""

from __future__ import annotations

import secrets
import subprocess
import threading
import time

import pytest

import tests.rig.guest as guest_mod
from tests.rig.guest import BY_ID_PREFIX, Guest, serial_of
from tests.rig.image import _is_static_elf, _module_closure, cached_image

guest = pytest.mark.guest

GIB = 1024 ** 3
MD = "/dev/md/rigtest"
MNT = "/mnt/rigtest"


def new_volume_id() -> str:
    return "vol-" + secrets.token_hex(9)[:17]


@pytest.fixture(scope="module")
def state(rig_guest: Guest, tmp_path_factory: pytest.TempPathFactory):
    """Volumes of this module; whatever is left plugged is released and unplugged at the end."""
    st = {"dir": tmp_path_factory.mktemp("guest-volumes"), "timings": {}}
    yield st
    if rig_guest.is_running():
        rig_guest.run(f"umount {MNT}; mdadm --stop {MD}; mdadm --stop --scan", sudo=True)
        for volume_id in list(rig_guest.plugged()):
            rig_guest.unplug(volume_id)


def sparse_file(directory, name: str, size: int = GIB) -> str:
    path = directory / name
    with open(path, "wb") as fh:
        fh.truncate(size)
    return str(path)


def by_id(volume_id: str) -> str:
    return BY_ID_PREFIX + serial_of(volume_id)


def test_serial_is_the_volume_id_without_dash():
    assert serial_of("vol-0123456789abcdef0") == "vol0123456789abcdef0"
    assert len(serial_of("vol-0123456789abcdef0")) == 20  # the NVMe serial limit
    with pytest.raises(ValueError):
        serial_of("vol-0123456789abcdef0'; rm -rf /")


def test_unavailable_reason_names_the_missing_qemu(monkeypatch):
    monkeypatch.setattr(guest_mod, "QEMU", "qemu-system-nonexistent")
    monkeypatch.setattr(guest_mod, "_unavailable", [])
    assert "qemu-system-nonexistent not found" in guest_mod.qemu_unavailable_reason()


def test_initramfs_module_order_and_static_busybox_check():
    assert not _is_static_elf("/bin/sh")
    image = cached_image()
    kmods = image and image.directory.parent.parent / "kernel/lib/modules" / image.kernel_version
    if not kmods or not kmods.is_dir():
        pytest.skip("no cached kernel")
    order = [m.rsplit("/", 1)[-1] for m in _module_closure(kmods, ("virtio_blk", "ext4"))]
    assert order.index("virtio.ko") < order.index("virtio_blk.ko")
    assert order.index("jbd2.ko") < order.index("ext4.ko") and order[-1] == "ext4.ko"


@guest
def test_ssh_user_and_sudo_with_password(rig_guest: Guest, state):
    t0 = time.monotonic()
    for _ in range(5):
        assert rig_guest.run("true") == (0, "", "")
    state["timings"]["ssh_command_s"] = (time.monotonic() - t0) / 5
    assert rig_guest.check("id -un").strip() == rig_guest.user == "ams"
    rc, _, err = rig_guest.run("sudo -n true")
    assert rc != 0 and "password is required" in err  # EC2-like: sudo needs the password
    assert rig_guest.check("id -u", sudo=True).strip() == "0"
    assert "6.1." in rig_guest.check("uname -r")
    assert rig_guest.check("/sbin/mdadm --version 2>&1").startswith("mdadm - v4")
    rig_guest.pause()
    assert rig_guest._qmp_exec("query-status")["status"] == "paused"
    rig_guest.resume()
    assert rig_guest.check("echo back").strip() == "back"


@guest
def test_hotplug_two_volumes_concurrently(rig_guest: Guest, state):
    vols = [new_volume_id(), new_volume_id()]
    files = [sparse_file(state["dir"], f"{v}.img") for v in vols]
    paths: dict[str, str] = {}
    errors: list[BaseException] = []

    def plug(v, f):
        try:
            paths[v] = rig_guest.plug(v, f)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    t0 = time.monotonic()
    threads = [threading.Thread(target=plug, args=vf) for vf in zip(vols, files)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    state["timings"]["plug_two_s"] = time.monotonic() - t0
    assert not errors
    assert paths == {v: by_id(v) for v in vols}
    assert rig_guest.plugged() == dict(zip(vols, files))
    listing = rig_guest.check("ls /dev/disk/by-id/")
    for v in vols:
        assert f"nvme-Amazon_Elastic_Block_Store_{serial_of(v)}" in listing
        assert rig_guest.check(f"cat /sys/block/$(basename $(readlink -f {by_id(v)}))/size").strip() \
            == str(GIB // 512)
        assert not rig_guest.in_use(v)
    assert not rig_guest.in_use(new_volume_id())  # not plugged at all
    state["originals"] = dict(zip(vols, files))


@guest
def test_raid0_xfs_by_hand(rig_guest: Guest, state):
    vols = list(state["originals"])
    devs = " ".join(by_id(v) for v in vols)
    rig_guest.check(
        f"mdadm --create {MD} --run --level=0 --chunk=256 --raid-devices=2 {devs} "
        f"&& mkfs.xfs -q {MD} && mkdir -p {MNT} && mount {MD} {MNT} "
        f"&& head -c 8M /dev/urandom > {MNT}/data && sync", sudo=True, timeout=180)
    state["sha256"] = rig_guest.check(f"sha256sum {MNT}/data").split()[0]
    for v in vols:
        usage = rig_guest.usage(v)
        assert any(u.startswith("held") for u in usage), usage
        assert rig_guest.in_use(v)
    rig_guest.check(f"umount {MNT} && mdadm --stop {MD}", sudo=True)
    for v in vols:
        assert not rig_guest.in_use(v)


@guest
def test_unplug_copy_replug_in_other_order_and_assemble(rig_guest: Guest, state):
    t0 = time.monotonic()
    for v in state["originals"]:
        rig_guest.unplug(v)
    state["timings"]["unplug_two_s"] = time.monotonic() - t0
    assert _devices(rig_guest) == set()
    assert rig_guest.plugged() == {}

    # "snapshot" + "volume from snapshot": sparse copies under new volume ids
    copies = {}
    for v, f in state["originals"].items():
        nv = new_volume_id()
        dst = str(state["dir"] / f"{nv}.img")
        subprocess.run(["cp", "--sparse=always", f, dst], check=True)
        copies[nv] = dst
    for nv in reversed(list(copies)):  # another order: other PCI slots, other nvmeN names
        rig_guest.plug(nv, copies[nv])
    devs = " ".join(by_id(v) for v in copies)
    # Debian's udev rules may already have assembled it (homehost matches); else assemble.
    rig_guest.check(f"udevadm settle; [ -e {MD} ] || mdadm --assemble {MD} --run {devs}",
                    sudo=True)
    rig_guest.check(f"mkdir -p {MNT} && mount {MD} {MNT}", sudo=True)
    assert rig_guest.check(f"sha256sum {MNT}/data").split()[0] == state["sha256"]
    for v in copies:
        assert rig_guest.in_use(v)
    state["copies"] = copies


def _devices(guest: Guest) -> set[str]:
    out = guest.check("ls /dev/disk/by-id/ 2>/dev/null; true")  # gone when no disk has an id
    return {name for name in out.split() if name.startswith("nvme-Amazon_Elastic_Block_Store_")}


@guest
def test_reboot_from_inside_keeps_plugged_volumes(rig_guest: Guest, state):
    before = _devices(rig_guest)
    assert len(before) == 2
    pid = rig_guest.pid
    rig_guest.reboot()
    state["timings"]["reboot_s"] = rig_guest.boot_seconds
    assert rig_guest.pid == pid  # same QEMU process: a reset, not a restart
    assert _devices(rig_guest) == before
    assert rig_guest.plugged() == state["copies"]
    # the array is not in mdadm.conf/fstab: assemble and mount by hand, same bytes
    devs = " ".join(by_id(v) for v in state["copies"])
    rig_guest.check(f"udevadm settle; [ -e {MD} ] || mdadm --assemble {MD} --run {devs}; "
                    f"mount {MD} {MNT}", sudo=True)
    assert rig_guest.check(f"sha256sum {MNT}/data").split()[0] == state["sha256"]


@guest
def test_stop_start_cold_plugs_the_same_volumes(rig_guest: Guest, state):
    before = _devices(rig_guest)
    t0 = time.monotonic()
    rig_guest.stop()
    state["timings"]["stop_s"] = time.monotonic() - t0
    assert not rig_guest.is_running()
    assert rig_guest.plugged() == state["copies"]
    assert not rig_guest.in_use(next(iter(state["copies"])))  # stopped: nothing is held
    # EC2 also attaches to a stopped instance: recorded now, cold-plugged at start
    extra = new_volume_id()
    assert rig_guest.plug(extra, sparse_file(state["dir"], f"{extra}.img")) == by_id(extra)
    rig_guest.start()
    state["timings"]["start_s"] = rig_guest.boot_seconds
    assert _devices(rig_guest) == before | {f"nvme-Amazon_Elastic_Block_Store_{serial_of(extra)}"}
    rig_guest.unplug(extra)
    assert _devices(rig_guest) == before
    devs = " ".join(by_id(v) for v in state["copies"])
    rig_guest.check(f"udevadm settle; [ -e {MD} ] || mdadm --assemble {MD} --run {devs}; "
                    f"mount {MD} {MNT}", sudo=True)
    assert rig_guest.check(f"sha256sum {MNT}/data").split()[0] == state["sha256"]
    rig_guest.check(f"umount {MNT} && mdadm --stop {MD}", sudo=True)
    for v in list(state["copies"]):
        rig_guest.unplug(v)
    assert _devices(rig_guest) == set()
    peak = rig_guest.peak_memory_kb()
    print("timings:", {k: round(v, 2) for k, v in state["timings"].items()},
          "peak RSS MB:", peak and peak // 1024)


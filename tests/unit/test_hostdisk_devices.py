"""Device names of EBS volumes and the wait script (pure; the script also runs in a real sh)."""

import glob
import os
import shutil
import stat
import subprocess
import threading

import pytest

from amslib.core.errors import ConflictError, RemoteCommandError, UsageError
from amslib.hostdisk import devices as d

VOL_A = "vol-0123456789abcdef0"
VOL_B = "vol-0123456789abcdef1"
VOL_C = "vol-0123abcd"


@pytest.mark.parametrize(
    "volume_id, serial",
    [
        ("vol-0123456789abcdef0", "vol0123456789abcdef0"),
        ("vol-0123abcd", "vol0123abcd"),
        ("VOL-0123456789ABCDEF0", "vol0123456789abcdef0"),
        (" vol-0123abcd ", "vol0123abcd"),
        ("vol-0123abcd\n", "vol0123abcd"),
    ],
)
def test_nvme_serial(volume_id, serial):
    assert d.nvme_serial(volume_id) == serial
    assert d.nvme_by_id_path(volume_id) == "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_" + serial


@pytest.mark.parametrize(
    "volume_id",
    ["", None, "vol-", "vol-0123abc", "vol-0123abcde", "vol-0123456789abcdef", "vol-0123456789abcdef01",
     "vol-0123abcg", "vol0123abcd", "i-0123abcd", "vol-0123abcd;", "vol-01\n23abcd", "vol_0123abcd",
     "snap-0123abcd"],
)
def test_nvme_serial_rejects(volume_id):
    with pytest.raises(UsageError, match="invalid volume id") as info:
        d.nvme_serial(volume_id)
    assert "\n" not in str(info.value)


def test_serial_fits_nvme():
    assert len(d.nvme_serial(VOL_A)) == 20  # the NVMe serial number field holds 20 characters


@pytest.mark.parametrize(
    "api_device, names",
    [
        ("/dev/sdf", ["/dev/xvdf", "/dev/sdf", "/dev/xvdj"]),
        ("/dev/xvdg", ["/dev/xvdg", "/dev/sdg", "/dev/xvdk"]),
        ("/dev/sda", ["/dev/xvda", "/dev/sda", "/dev/xvde"]),
        ("/dev/sdv", ["/dev/xvdv", "/dev/sdv", "/dev/xvdz"]),
        ("/dev/sdw", ["/dev/xvdw", "/dev/sdw"]),
        ("/dev/xvdz", ["/dev/xvdz", "/dev/sdz"]),
        ("sdp", ["/dev/xvdp", "/dev/sdp", "/dev/xvdt"]),
        ("xvdh", ["/dev/xvdh", "/dev/sdh", "/dev/xvdl"]),
    ],
)
def test_xen_device_candidates(api_device, names):
    assert d.xen_device_candidates(api_device) == names


@pytest.mark.parametrize(
    "api_device",
    ["", None, "/dev/sdf1", "/dev/sdaa", "/dev/xvdba", "/dev/nvme1n1", "/dev/hdf", "/dev/sdF", "/dev/sd",
     "/dev/sdf ", "/dev/sdf\n", "/dev/sdf;id", "/tmp/sdf", "dev/sdf"],
)
def test_xen_device_candidates_reject(api_device):
    with pytest.raises(UsageError, match="invalid device name"):
        d.xen_device_candidates(api_device)


def test_device_candidates():
    assert d.device_candidates(VOL_A, "/dev/sdf") == [
        "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0",
        "/dev/xvdf", "/dev/sdf", "/dev/xvdj",
    ]
    assert d.device_candidates(VOL_C, None) == ["/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123abcd"]
    with pytest.raises(UsageError, match="invalid volume id"):
        d.device_candidates("vol-x", "/dev/sdf")
    with pytest.raises(UsageError, match="invalid device name"):
        d.device_candidates(VOL_A, "/dev/sdf1")


def test_api_device_names():
    assert d.API_DEVICE_NAMES[0] == "/dev/sdf"
    assert d.API_DEVICE_NAMES[-1] == "/dev/sdz"
    assert len(d.API_DEVICE_NAMES) == len(set(d.API_DEVICE_NAMES)) == 21
    for name in d.API_DEVICE_NAMES:
        assert d.xen_device_candidates(name)[1] == name


@pytest.mark.parametrize(
    "used, count, chosen",
    [
        ([], 1, ["/dev/sdf"]),
        ([], 3, ["/dev/sdf", "/dev/sdg", "/dev/sdh"]),
        ([], 0, []),
        (["/dev/xvda"], 1, ["/dev/sdf"]),
        (["/dev/sda1", "/dev/xvdb", "/dev/sde"], 1, ["/dev/sdf"]),
        (["/dev/sdf"], 2, ["/dev/sdg", "/dev/sdh"]),
        (["/dev/xvdf"], 1, ["/dev/sdg"]),  # the xvd twin blocks the sd name
        (["/dev/sdf1"], 1, ["/dev/sdg"]),  # a partition-style name too
        (["xvdf", "sdg"], 1, ["/dev/sdh"]),  # names without /dev/
        (["/dev/SDF", " /dev/sdg "], 1, ["/dev/sdh"]),
        (["/dev/sdf", "/dev/sdh"], 3, ["/dev/sdg", "/dev/sdi", "/dev/sdj"]),
        (["/dev/xvdba", "/dev/sdfa", "/dev/nvme1n1", "", None], 1, ["/dev/sdf"]),  # two-letter names block nothing
        (["/dev/sd" + letter for letter in "fghijklmnopqrstuvwxy"], 1, ["/dev/sdz"]),
        ([], 21, list(d.API_DEVICE_NAMES)),
        (("/dev/sdf" for _ in range(1)), 1, ["/dev/sdg"]),  # any iterable
    ],
)
def test_choose_api_devices(used, count, chosen):
    assert d.choose_api_devices(used, count) == chosen


@pytest.mark.parametrize(
    "used, count, message",
    [
        ([], 22, "has 21 free device names"),
        (["/dev/sdf"], 21, "has 20 free device names"),
        (["/dev/xvd" + letter for letter in "fghijklmnopqrstuvwxyz"], 1, "has 0 free device names"),
    ],
)
def test_choose_api_devices_conflict(used, count, message):
    with pytest.raises(ConflictError, match=message):
        d.choose_api_devices(used, count)


@pytest.mark.parametrize("count", [-1, 1.5, "2", None, True])
def test_choose_api_devices_bad_count(count):
    with pytest.raises(UsageError, match="invalid device count"):
        d.choose_api_devices([], count)


# -- the wait script, as text -------------------------------------------------------------------

@pytest.mark.parametrize(
    "candidates, message",
    [
        ({}, "no volumes to wait for"),
        ({"vol-x": ["/dev/sdf"]}, "invalid volume id"),
        ({VOL_A: []}, "no device names"),
        ({VOL_A: "/dev/sdf"}, "no device names"),
        ({VOL_A: ["dev/sdf"]}, "invalid device path"),
        ({VOL_A: ["/dev/sd\nf"]}, "invalid device path"),
        ({VOL_A: [None]}, "invalid device path"),
        ({VOL_A: ["/dev/sdf"], VOL_A.upper(): ["/dev/sdg"]}, "listed twice"),
    ],
)
def test_wait_script_rejects_candidates(candidates, message):
    with pytest.raises(UsageError, match=message):
        d.wait_for_devices_script(candidates, 10)


@pytest.mark.parametrize(
    "timeout, interval, message",
    [
        (-1, 0.5, "invalid timeout"),
        (float("inf"), 0.5, "invalid timeout"),
        (float("nan"), 0.5, "invalid timeout"),
        ("10", 0.5, "invalid timeout"),
        (True, 0.5, "invalid timeout"),
        (10, 0, "invalid poll interval"),
        (10, 0.001, "invalid poll interval"),
    ],
)
def test_wait_script_rejects_times(timeout, interval, message):
    with pytest.raises(UsageError, match=message):
        d.wait_for_devices_script({VOL_A: ["/dev/sdf"]}, timeout, interval)


@pytest.mark.parametrize(
    "timeout, interval, tries, end, sleep",
    [(30, 0.5, 60, 31, "0.5"), (0.3, 1, 1, 2, "1"), (0, 0.25, 0, 1, "0.25"), (120.5, 2.0, 61, 122, "2"),
     (1, 0.3, 4, 2, "0.3"), (5, 0.125, 40, 6, "0.125")],
)
def test_wait_script_times(timeout, interval, tries, end, sleep):
    script = d.wait_for_devices_script({VOL_A: ["/dev/sdf"]}, timeout, interval)
    assert f"\ntries={tries}\n" in script
    assert f"+ {end} ))" in script
    assert f"\n  sleep {sleep}\n" in script


def test_wait_script_quotes_every_path():
    nasty = "/dev/it's $(touch /tmp/ams-pwned) `id`;x"
    script = d.wait_for_devices_script({VOL_A: [nasty, "/dev/a b"]}, 1)
    assert "'/dev/it'\"'\"'s $(touch /tmp/ams-pwned) `id`;x'" in script
    assert "'/dev/a b'" in script
    assert "/dev/a b ]" not in script.replace("'/dev/a b' ]", "")


def test_wait_script_normalises_keys():
    script = d.wait_for_devices_script({VOL_A.upper(): ["/dev/sdf"]}, 1)
    assert VOL_A in script and VOL_A.upper() not in script


# -- the wait script, run by real shells --------------------------------------------------------

SHELLS = [shell for shell in ("dash", "bash") if shutil.which(shell)]
if shutil.which("busybox"):
    SHELLS.append("busybox sh")


def block_devices(count):
    found = []
    for path in sorted(glob.glob("/dev/loop[0-9]*")) + sorted(glob.glob("/dev/[sv]d[a-z]")):
        try:
            if stat.S_ISBLK(os.stat(path).st_mode):
                found.append(path)
        except OSError:
            pass
    if len(found) < count:
        pytest.skip(f"needs {count} block devices in /dev to point test links at")
    return found[:count]


@pytest.fixture(params=SHELLS)
def run(request):
    def run_script(script, timeout=30, cwd=None):
        return subprocess.run(request.param.split() + ["-c", script], capture_output=True, text=True,
                              timeout=timeout, cwd=cwd)
    return run_script


def link(tmp_path, name, target):
    path = tmp_path / name
    path.symlink_to(target)
    return str(path)


def test_found_under_the_first_scheme(tmp_path, run):
    dev1, dev2 = block_devices(2)
    candidates = {
        VOL_A: [link(tmp_path, "nvme-a", dev1), str(tmp_path / "xvdf"), link(tmp_path, "sdf", dev2)],
        VOL_B: [link(tmp_path, "nvme-b", dev2), str(tmp_path / "xvdg"), str(tmp_path / "sdg")],
    }
    result = run(d.wait_for_devices_script(candidates, 5))
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == f"{VOL_A}\t{dev1}\n{VOL_B}\t{dev2}\n"
    assert d.parse_wait_output(result.stdout) == {VOL_A: dev1, VOL_B: dev2}


def test_one_scheme_for_all_volumes(tmp_path, run):
    """VOL_A's first candidate exists, but only the second scheme has a device for both."""
    dev1, dev2, dev3 = block_devices(3)
    candidates = {
        VOL_A: [link(tmp_path, "nvme-a", dev1), link(tmp_path, "xvdf", dev2)],
        VOL_B: [str(tmp_path / "nvme-b"), link(tmp_path, "xvdg", dev3)],
    }
    result = run(d.wait_for_devices_script(candidates, 0))
    assert result.returncode == 0, result.stderr
    assert d.parse_wait_output(result.stdout) == {VOL_A: dev2, VOL_B: dev3}


def test_same_device_twice_is_ambiguous(tmp_path, run):
    dev1, dev2 = block_devices(2)
    candidates = {
        VOL_A: [link(tmp_path, "a0", dev1), link(tmp_path, "a1", dev2)],
        VOL_B: [link(tmp_path, "b0", dev1), link(tmp_path, "b1", dev2)],
    }
    result = run(d.wait_for_devices_script(candidates, 0))
    assert result.returncode == 3
    assert result.stdout == ""
    assert result.stderr == f"missing: {VOL_A} {VOL_B} (ambiguous device names)\n"


def test_distinct_devices_in_a_later_scheme(tmp_path, run):
    dev1, dev2 = block_devices(2)
    candidates = {
        VOL_A: [link(tmp_path, "a0", dev1), link(tmp_path, "a1", dev1)],
        VOL_B: [link(tmp_path, "b0", dev1), link(tmp_path, "b1", dev2)],
    }
    result = run(d.wait_for_devices_script(candidates, 0))
    assert result.returncode == 0, result.stderr
    assert d.parse_wait_output(result.stdout) == {VOL_A: dev1, VOL_B: dev2}


def test_missing_volumes_are_named(tmp_path, run):
    (dev1,) = block_devices(1)
    candidates = {
        VOL_A: [link(tmp_path, "a0", dev1)],
        VOL_B: [str(tmp_path / "b0")],
        VOL_C: [str(tmp_path / "c0"), link(tmp_path, "c1", "/dev/null")],  # not a block device
    }
    result = run(d.wait_for_devices_script(candidates, 0, 0.1))
    assert result.returncode == 3
    assert result.stdout == ""
    assert result.stderr == f"missing: {VOL_B} {VOL_C}\n"


def test_waits_for_a_late_device(tmp_path, run):
    (dev1,) = block_devices(1)
    late = tmp_path / "late"
    timer = threading.Timer(0.6, lambda: late.symlink_to(dev1))
    timer.start()
    try:
        result = run(d.wait_for_devices_script({VOL_A: [str(late)]}, 20, 0.1))
    finally:
        timer.cancel()
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{VOL_A}\t{dev1}\n"


def test_gives_up_after_the_timeout(tmp_path, run):
    import time

    started = time.monotonic()
    result = run(d.wait_for_devices_script({VOL_A: [str(tmp_path / "never")]}, 1, 0.1))
    elapsed = time.monotonic() - started
    assert result.returncode == 3
    assert result.stderr == f"missing: {VOL_A}\n"
    assert 0.9 <= elapsed < 5


def test_nasty_paths_are_data(tmp_path, run):
    dev1, dev2 = block_devices(2)
    weird = "it's a $(touch pwned) `touch pwned`;x"
    candidates = {VOL_A: [link(tmp_path, weird, dev1)], VOL_B: [link(tmp_path, "b c", dev2)]}
    result = run(d.wait_for_devices_script(candidates, 0), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert d.parse_wait_output(result.stdout) == {VOL_A: dev1, VOL_B: dev2}
    assert not (tmp_path / "pwned").exists()


# -- parsing the output -------------------------------------------------------------------------

@pytest.mark.parametrize(
    "text, parsed",
    [
        ("", {}),
        ("\n\n", {}),
        (f"{VOL_A}\t/dev/nvme1n1\n", {VOL_A: "/dev/nvme1n1"}),
        (f"{VOL_A}\t/dev/nvme1n1\n{VOL_C}\t/dev/xvdf\n", {VOL_A: "/dev/nvme1n1", VOL_C: "/dev/xvdf"}),
        (f"{VOL_A}\t/dev/nvme1n1\r\n", {VOL_A: "/dev/nvme1n1"}),
        (f"{VOL_A}\t/dev/nvme1n1", {VOL_A: "/dev/nvme1n1"}),
        (f"{VOL_A}\t/tmp/a b\n", {VOL_A: "/tmp/a b"}),
    ],
)
def test_parse_wait_output(text, parsed):
    assert d.parse_wait_output(text) == parsed


@pytest.mark.parametrize(
    "text",
    [
        f"{VOL_A} /dev/nvme1n1\n",
        f"{VOL_A}\tnvme1n1\n",
        f"{VOL_A}\t\n",
        f"{VOL_A.upper()}\t/dev/nvme1n1\n",
        "vol-x\t/dev/nvme1n1\n",
        f"{VOL_A}\t/dev/a\t/dev/b\n",
        f"{VOL_A}\t/dev/nvme1n1\n{VOL_A}\t/dev/nvme2n1\n",
        "missing: vol-0123abcd\n",
    ],
)
def test_parse_wait_output_rejects(text):
    with pytest.raises(RemoteCommandError, match="unexpected line in the device wait output"):
        d.parse_wait_output(text)


# -- device arguments ---------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["/dev/nvme1n1", "/dev/md/ams-vg1", "<member 0>", "/dev/a b"])
def test_check_device_arg(value):
    assert d.check_device_arg(value) == value


@pytest.mark.parametrize("value", ["", None, 3, "-f", "--scan", "/dev/x\n", "/dev/x\x7f", b"/dev/x"])
def test_check_device_arg_rejects(value):
    with pytest.raises(UsageError, match="must not be empty, start with '-' or hold control characters"):
        d.check_device_arg(value)


@pytest.mark.parametrize("value, ok", [("/dev/xvdf", True), ("/tmp/a b", True), ("dev/xvdf", False),
                                       ("<member 0>", False), ("", False), ("/dev/x\t", False), (None, False)])
def test_check_device_path(value, ok):
    if ok:
        assert d.check_device_path(value) == value
    else:
        with pytest.raises(UsageError, match="expected an absolute path"):
            d.check_device_path(value)

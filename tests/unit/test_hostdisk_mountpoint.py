"""Mount point checks (pure)."""

import pytest

from amslib.core.errors import UsageError
from amslib.hostdisk.mountpoint import MAX_LENGTH, SYSTEM_DIRECTORIES, SYSTEM_TREES, check_mount_point


@pytest.mark.parametrize(
    "path, expected",
    [
        ("/data", "/data"),
        ("/mnt/x", "/mnt/x"),
        ("/srv/x", "/srv/x"),
        ("/var/lib/mysql", "/var/lib/mysql"),
        ("/var/log", "/var/log"),
        ("/home/app", "/home/app"),
        ("/opt/app/data", "/opt/app/data"),
        ("/root/scratch", "/root/scratch"),
        ("/tmp/scratch", "/tmp/scratch"),
        ("/media/usb", "/media/usb"),
        ("/Data-1_x.y@z+a=b:c,d", "/Data-1_x.y@z+a=b:c,d"),
        ("/data/.hidden", "/data/.hidden"),
        ("/data/...", "/data/..."),
        ("/data/..x", "/data/..x"),
        ("/library", "/library"),  # not /lib*
        ("/bin2", "/bin2"),
        ("/etcetera/x", "/etcetera/x"),
        ("/ETC", "/ETC"),  # paths are case-sensitive
        ("/" + "a" * (MAX_LENGTH - 1), "/" + "a" * (MAX_LENGTH - 1)),
    ],
)
def test_accepted(path, expected):
    assert check_mount_point(path) == expected


@pytest.mark.parametrize(
    "path, expected",
    [
        ("/data/", "/data"),
        ("/data///", "/data"),
        ("//data", "/data"),
        ("/mnt//x/", "/mnt/x"),
        ("/var//lib/mysql", "/var/lib/mysql"),
    ],
)
def test_normalised(path, expected):
    assert check_mount_point(path) == expected
    assert check_mount_point(expected) == expected


@pytest.mark.parametrize(
    "path, reason",
    [
        ("", "it is empty"),
        ("data", "absolute path"),
        ("./data", "absolute path"),
        ("~/data", "absolute path"),
        ("/data x", "only letters"),
        ("/data\tx", "only letters"),
        ("/data\nx", "only letters"),
        ("/data\n", "only letters"),
        ("/da'ta", "only letters"),
        ('/da"ta', "only letters"),
        ("/data;rm -rf /", "only letters"),
        ("/data$HOME", "only letters"),
        ("/data$(id)", "only letters"),
        ("/data`id`", "only letters"),
        ("/data\\x", "only letters"),
        ("/data*", "only letters"),
        ("/data?", "only letters"),
        ("/data[1]", "only letters"),
        ("/data#1", "only letters"),
        ("/data&", "only letters"),
        ("/data|x", "only letters"),
        ("/data>x", "only letters"),
        ("/data%x", "only letters"),
        ("/dätä", "only letters"),
        ("/data\x00", "only letters"),
        ("/data/.", "'.' and '..'"),
        ("/data/..", "'.' and '..'"),
        ("/data/../etc", "'.' and '..'"),
        ("/./data", "'.' and '..'"),
        ("/..", "'.' and '..'"),
        ("/" + "a" * MAX_LENGTH, f"longer than {MAX_LENGTH}"),
        ("/", "root directory"),
        ("//", "root directory"),
        ("///", "root directory"),
        ("/etc", "system directory"),
        ("/etc/", "system directory"),
        ("/home", "system directory"),
        ("/mnt", "system directory"),
        ("/var", "system directory"),
        ("/var/lib", "system directory"),
        ("/etc/x", "under the system directory /etc"),
        ("/usr/local/data", "under the system directory /usr"),
        ("/proc/1", "under the system directory /proc"),
        ("/sys/fs/cgroup", "under the system directory /sys"),
        ("/dev/shm", "under the system directory /dev"),
        ("/run/user/0", "under the system directory /run"),
        ("/boot/efi", "under the system directory /boot"),
        ("/lib64/x", "under the system directory /lib64"),
        ("/var/run/x", "under the system directory /var/run"),
    ],
)
def test_rejected(path, reason):
    with pytest.raises(UsageError, match="invalid mount point") as info:
        check_mount_point(path)
    message = str(info.value)
    assert reason in message
    assert "\n" not in message
    assert repr(path) in message


def test_the_allowed_characters_are_named():
    with pytest.raises(UsageError) as info:
        check_mount_point("/a b")
    assert "letters, digits, '/' and . _ @ + = : , -" in str(info.value)
    assert "spaces, quotes, ;, $, newlines" in str(info.value)


@pytest.mark.parametrize("path", ["/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/opt",
                                  "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var", "/mnt"])
def test_every_listed_system_directory(path):
    assert path in SYSTEM_DIRECTORIES
    with pytest.raises(UsageError, match="system directory"):
        check_mount_point(path)


@pytest.mark.parametrize("tree", ["/proc", "/sys", "/dev", "/run", "/boot", "/etc", "/usr", "/bin", "/sbin", "/lib",
                                  "/lib32", "/lib64"])
def test_nothing_under_system_trees(tree):
    assert tree in SYSTEM_TREES
    for path in (tree + "/x", tree + "/x/y", tree + "//x/"):
        with pytest.raises(UsageError, match=f"under the system directory {tree}"):
            check_mount_point(path)


@pytest.mark.parametrize("top", ["/home", "/opt", "/root", "/srv", "/tmp", "/var", "/mnt", "/media"])
def test_below_some_system_directories_is_fine(top):
    assert check_mount_point(top + "/data") == top + "/data"


@pytest.mark.parametrize("value", [None, 12, b"/data", ["/data"]])
def test_not_text(value):
    with pytest.raises(UsageError, match="invalid mount point"):
        check_mount_point(value)

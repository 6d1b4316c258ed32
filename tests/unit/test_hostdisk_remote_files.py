"""The atomic replace and read scripts: arguments, quoting, and their behaviour under a local sh.

The scripts are run here with the local ``sh`` on files in a temp directory (no SSH, no sudo);
tests/integration/test_remote_files.py runs them on the sshd test hosts with sudo.
"""

import hashlib
import os
import shlex
import shutil
import subprocess

import pytest

from amslib.core.errors import UsageError
from amslib.hostdisk import remote_files as rf

NASTY = ["it's", "a b", "$(touch pwned)", "`touch pwned`", "x;y", "new\nline", "*", '"q"', "-n", "é"]


# Debian's sh is dash, RHEL's is bash (POSIX mode when called as sh): the scripts run under both.
SHELLS = [argv for argv in (["dash"], ["bash", "--posix"]) if shutil.which(argv[0])] or [["sh"]]
shell = SHELLS[0]


@pytest.fixture(autouse=True, params=SHELLS, ids=lambda argv: argv[0])
def each_shell(request, monkeypatch):
    monkeypatch.setattr(f"{__name__}.shell", request.param)


def run(script, input=b""):
    return subprocess.run([*shell, "-c", script], input=input, capture_output=True)


def replace(path, content, **kwargs):
    return run(rf.atomic_replace_script(str(path), **kwargs), content)


def leftovers(directory):
    return sorted(name for name in os.listdir(directory) if rf.TMP_SUFFIX in name)


# --- arguments ----------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["", "etc/fstab", "fstab", "/etc/", "/etc/fs\0tab", None])
def test_paths_must_be_absolute_files(path):
    with pytest.raises(UsageError, match="invalid file path"):
        rf.atomic_replace_script(path)
    with pytest.raises(UsageError, match="invalid file path"):
        rf.read_file_command(path)


@pytest.mark.parametrize("suffix", ["", "/x", "a/b", "\0"])
def test_backup_suffix_must_be_a_file_name_suffix(suffix):
    with pytest.raises(UsageError, match="invalid backup suffix"):
        rf.atomic_replace_script("/etc/fstab", backup_suffix=suffix)


@pytest.mark.parametrize("digest", ["", "0" * 63, "0" * 65, "A" * 64, "g" * 64, "0" * 63 + "\n"])
def test_expected_digest_must_be_sha256_hex(digest):
    with pytest.raises(UsageError, match="invalid sha256 digest"):
        rf.atomic_replace_script("/etc/fstab", expect_sha256=digest)


def test_paths_are_quoted():
    script = rf.atomic_replace_script("/etc/it's $(id)")
    assert "p='/etc/it'\"'\"'s $(id)'\n" in script
    assert rf.read_file_command("/etc/a b") == "if [ -e '/etc/a b' ] || [ -L '/etc/a b' ]; then cat '/etc/a b'; fi"


def test_helper_paths():
    assert rf.backup_path("/etc/fstab") == "/etc/fstab.ams.bak"
    assert rf.backup_path("/etc/fstab", ".old") == "/etc/fstab.old"
    assert rf.temp_path_prefix("/etc/mdadm/mdadm.conf") == "/etc/mdadm/mdadm.conf.ams-tmp."


@pytest.mark.skipif(not shutil.which("dash") and not shutil.which("bash"), reason="no shell to check syntax")
@pytest.mark.parametrize("kwargs", [{}, {"validate": rf.FSTAB_VALIDATE}, {"backup_suffix": None},
                                    {"expect_sha256": "0" * 64, "validate": "# only a comment"},
                                    {"validate": ""}])
def test_script_syntax(kwargs):
    for shell in ("dash", "bash"):
        if shutil.which(shell):
            result = subprocess.run([shell, "-n", "-c", rf.atomic_replace_script("/etc/fstab", **kwargs)],
                                    capture_output=True)
            assert result.returncode == 0, result.stderr


# --- behaviour (local sh, files in tmp_path) ----------------------------------------------------

def test_replace_writes_content_keeps_mode_and_backs_up(tmp_path):
    path = tmp_path / "fstab"
    path.write_bytes(b"old\n")
    os.chmod(path, 0o640)
    inode = os.stat(path).st_ino
    result = replace(path, b"new\n")
    assert (result.returncode, result.stdout, result.stderr) == (0, b"replaced\n", b"")
    assert path.read_bytes() == b"new\n"
    assert os.stat(path).st_mode & 0o7777 == 0o640
    assert os.stat(path).st_ino != inode  # a rename, not a rewrite
    assert (tmp_path / "fstab.ams.bak").read_bytes() == b"old\n"
    assert os.stat(tmp_path / "fstab.ams.bak").st_mode & 0o7777 == 0o640
    assert leftovers(tmp_path) == []


def test_every_byte_arrives(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"")
    content = bytes(range(256)) * 3
    assert replace(path, content).returncode == 0
    assert path.read_bytes() == content


def test_same_content_is_left_alone(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"same\n")
    (tmp_path / "f.ams.bak").write_bytes(b"the previous version\n")
    inode = os.stat(path).st_ino
    result = replace(path, b"same\n")
    assert (result.returncode, result.stdout) == (0, b"unchanged\n")
    assert os.stat(path).st_ino == inode
    assert (tmp_path / "f.ams.bak").read_bytes() == b"the previous version\n"
    assert leftovers(tmp_path) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="a new file is chowned to root")
def test_new_file_is_root_0644_without_backup(tmp_path):
    path = tmp_path / "mdadm.conf"
    result = replace(path, b"ARRAY x\n")
    assert (result.returncode, result.stdout) == (0, b"replaced\n")
    assert path.read_bytes() == b"ARRAY x\n"
    st = os.stat(path)
    assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o644, 0, 0)
    assert not (tmp_path / "mdadm.conf.ams.bak").exists()


def test_no_backup_when_asked(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"old\n")
    assert replace(path, b"new\n", backup_suffix=None).returncode == 0
    assert sorted(os.listdir(tmp_path)) == ["f"]


def test_other_backup_suffix(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"old\n")
    assert replace(path, b"new\n", backup_suffix=".before-ams").returncode == 0
    assert (tmp_path / "f.before-ams").read_bytes() == b"old\n"


@pytest.mark.parametrize("name", NASTY)
def test_nasty_file_names(tmp_path, name):
    path = tmp_path / name.replace("/", "_")
    path.write_bytes(b"old\n")
    result = replace(path, b"new\n")
    assert result.returncode == 0, result.stderr
    assert path.read_bytes() == b"new\n"
    assert (tmp_path / (path.name + ".ams.bak")).read_bytes() == b"old\n"
    assert not (tmp_path / "pwned").exists()
    assert leftovers(tmp_path) == []
    listed = run(rf.read_file_command(str(path)))
    assert (listed.returncode, listed.stdout) == (0, b"new\n")


@pytest.mark.parametrize(
    "validate, reason",
    [
        ("false", b"the check failed"),
        ("echo 'it is broken' >&2; exit 1", b"it is broken"),
        ("echo line one; echo line two >&2; exit 9", b"line one line two"),
        ('grep -q "^good$" "$TMP"', b"the check failed"),
    ],
)
def test_failed_validation_leaves_the_file_alone(tmp_path, validate, reason):
    path = tmp_path / "f"
    path.write_bytes(b"old\n")
    inode = os.stat(path).st_ino
    result = replace(path, b"bad\n", validate=validate)
    assert result.returncode == rf.EXIT_INVALID
    assert result.stdout == b""
    assert result.stderr.count(b"\n") == 1 and result.stderr.startswith(b"ams: new ")
    assert b"refused, the file is unchanged: " + reason in result.stderr
    assert path.read_bytes() == b"old\n" and os.stat(path).st_ino == inode
    assert not (tmp_path / "f.ams.bak").exists()
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("validate", [None, "", "# a comment only", "true"])
def test_no_or_empty_validation_passes(tmp_path, validate):
    path = tmp_path / "f"
    path.write_bytes(b"old\n")
    assert replace(path, b"new\n", validate=validate).returncode == 0
    assert path.read_bytes() == b"new\n"


def test_validation_sees_the_new_content_in_the_same_directory(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"old\n")
    check = f'[ "$(cat "$TMP")" = good ] && [ "${{TMP%/*}}" = {shlex.quote(str(tmp_path))} ]'
    assert replace(path, b"bad\n", validate=check).returncode == rf.EXIT_INVALID
    assert replace(path, b"good\n", validate=check).returncode == 0
    assert path.read_bytes() == b"good\n"


def test_expected_digest(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"old\n")
    stale = hashlib.sha256(b"what the caller read earlier\n").hexdigest()
    result = replace(path, b"new\n", expect_sha256=stale)
    assert result.returncode == rf.EXIT_CHANGED
    assert result.stderr == f"ams: {path} changed since it was read\n".encode()
    assert path.read_bytes() == b"old\n" and leftovers(tmp_path) == []
    fresh = hashlib.sha256(b"old\n").hexdigest()
    assert replace(path, b"new\n", expect_sha256=fresh).returncode == 0
    assert path.read_bytes() == b"new\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="a new file is chowned to root")
def test_expected_digest_of_an_absent_file_is_that_of_nothing(tmp_path):
    path = tmp_path / "new"
    empty = hashlib.sha256(b"").hexdigest()
    assert replace(path, b"x\n", expect_sha256=hashlib.sha256(b"x\n").hexdigest()).returncode == rf.EXIT_CHANGED
    assert not path.exists()
    assert replace(path, b"x\n", expect_sha256=empty).returncode == 0


def test_a_symbolic_link_is_replaced_at_its_target(tmp_path):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "mdadm.conf"
    target.write_bytes(b"old\n")
    link = tmp_path / "link.conf"
    link.symlink_to(target)
    result = replace(link, b"new\n")
    assert result.returncode == 0, result.stderr
    assert link.is_symlink() and target.read_bytes() == b"new\n"
    assert (tmp_path / "real" / "mdadm.conf.ams.bak").read_bytes() == b"old\n"


@pytest.mark.parametrize("make, reason", [
    (lambda p: p.mkdir(), b"is a directory"),
    (lambda p: None, b"no directory"),
])
def test_refusals_are_one_line(tmp_path, make, reason):
    target = tmp_path / "thing"
    make(target)
    path = target if target.exists() else tmp_path / "missing-dir" / "f"
    result = replace(path, b"x\n")
    assert result.returncode == 1
    assert result.stderr.startswith(b"ams: ") and result.stderr.count(b"\n") == 1 and reason in result.stderr


def test_read_file_command(tmp_path):
    present = tmp_path / "present"
    present.write_bytes(b"a\nb")
    assert run(rf.read_file_command(str(present))).stdout == b"a\nb"
    absent = run(rf.read_file_command(str(tmp_path / "absent")))
    assert (absent.returncode, absent.stdout, absent.stderr) == (0, b"", b"")
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    broken = run(rf.read_file_command(str(dangling)))
    assert broken.returncode != 0 and (b"nowhere" in broken.stderr or b"dangling" in broken.stderr)
    directory = run(rf.read_file_command(str(tmp_path)))
    assert directory.returncode != 0 and directory.stderr


# --- FSTAB_VALIDATE -----------------------------------------------------------------------------

U = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"


@pytest.mark.skipif(not shutil.which("findmnt"), reason="findmnt (util-linux) is not installed")
@pytest.mark.parametrize(
    "content, good",
    [
        (b"", True),
        (b"# only comments\n\n   # and blanks\n", True),
        (f"UUID={U} /data xfs defaults,nofail 0 2\n".encode(), True),
        (f"# c\r\n\r\nUUID={U} /data xfs defaults 0 2\r\n".encode(), True),
        (f"UUID={U} /data xfs defaults 0 2".encode(), True),
        (b"proc /proc proc defaults 0 0\n/dev/sdb none swap sw\nUUID=x /my\\040data ext4 ro\n", True),
        (b"broken\n", False),
        (f"UUID={U} /data xfs defaults 0 2\nUUID={U} /data2\n".encode(), False),
        (f"UUID={U} /data xfs defaults zero 2\n".encode(), False),
        (f"UUID={U} /data xfs defaults # note\n".encode(), False),
        (b"# c\n\x0bx\n", False),
    ],
)
def test_fstab_validate(tmp_path, content, good):
    path = tmp_path / "fstab"
    path.write_bytes(b"# before\n")
    result = replace(path, content, validate=rf.FSTAB_VALIDATE)
    if good:
        assert result.returncode == 0, result.stderr
        assert path.read_bytes() == content
    else:
        assert result.returncode == rf.EXIT_INVALID
        assert b"libmount read " in result.stderr and result.stderr.count(b"\n") == 1
        assert path.read_bytes() == b"# before\n"
    assert leftovers(tmp_path) == []

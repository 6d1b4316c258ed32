"""The sshd test rig reports why it cannot run instead of failing obscurely."""

import pytest

from tests.rig import sshd


def test_missing_sshd_is_reported(monkeypatch):
    monkeypatch.setattr(sshd, "REQUIRED_TOOLS", {"/nonexistent/sshd": "openssh-server"})
    monkeypatch.setattr(sshd.os, "geteuid", lambda: 0)
    with pytest.raises(sshd.RigUnavailable, match=r"/nonexistent/sshd is not installed \(apt-get install openssh-server\)"):
        sshd.check_requirements()


def test_non_root_is_reported(monkeypatch):
    monkeypatch.setattr(sshd.os, "geteuid", lambda: 1000)
    with pytest.raises(sshd.RigUnavailable, match="needs root"):
        sshd.check_requirements()


def test_sudoers_lines_follow_the_sudo_kind():
    users = [sshd.TestUser("amst-a", True, False, sshd.SUDO_NONE),
             sshd.TestUser("amst-b", True, True, sshd.SUDO_PASSWORD),
             sshd.TestUser("amst-c", True, False, sshd.SUDO_NOPASSWD)]
    lines = sshd._sudoers_text(users).splitlines()
    assert lines[1:] == ["amst-b ALL=(ALL:ALL) ALL", "amst-c ALL=(ALL:ALL) NOPASSWD: ALL"]

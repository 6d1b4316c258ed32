"""Host key policies against a known_hosts file."""

import paramiko
import pytest

from amslib.core.errors import HostKeyError
from amslib.ssh.hostkeys import known_hosts_name, load_known_hosts, preferred_algorithms, verify_host_key



def ecdsa():
    return paramiko.ECDSAKey.generate()


def test_known_hosts_name():
    assert known_hosts_name("h", 22) == "h"
    assert known_hosts_name("h", 2222) == "[h]:2222"


def test_accept_new_records_then_checks(tmp_path):
    path = str(tmp_path / "sub" / "known_hosts")
    key, other = ecdsa(), ecdsa()
    verify_host_key(key, "10.0.0.1", 2222, path, "accept-new")
    assert open(path).read() == f"[10.0.0.1]:2222 {key.get_name()} {key.get_base64()}\n"
    verify_host_key(key, "10.0.0.1", 2222, path, "accept-new")  # same key: fine
    with pytest.raises(HostKeyError, match=r"\[10.0.0.1\]:2222 has changed.*" + str(tmp_path)):
        verify_host_key(other, "10.0.0.1", 2222, path, "accept-new")
    assert len(open(path).readlines()) == 1


def test_strict_rejects_unknown_and_records_nothing(tmp_path):
    path = tmp_path / "known_hosts"
    with pytest.raises(HostKeyError, match="unknown"):
        verify_host_key(ecdsa(), "h", 22, str(path), "strict")
    assert not path.exists()


def test_strict_accepts_known(tmp_path):
    path = tmp_path / "known_hosts"
    key = ecdsa()
    path.write_text(f"h {key.get_name()} {key.get_base64()}\n")
    verify_host_key(key, "h", 22, str(path), "strict")


def test_off_accepts_anything_and_records_nothing(tmp_path):
    path = tmp_path / "known_hosts"
    path.write_text(f"h {ecdsa().get_name()} {ecdsa().get_base64()}\n")
    verify_host_key(ecdsa(), "h", 22, str(path), "off")
    assert len(path.read_text().splitlines()) == 1


def test_other_key_type_only_is_rejected(tmp_path):
    path = tmp_path / "known_hosts"
    rsa = paramiko.RSAKey.generate(1024)
    path.write_text(f"h {rsa.get_name()} {rsa.get_base64()}\n")
    with pytest.raises(HostKeyError, match="only ssh-rsa is recorded"):
        verify_host_key(ecdsa(), "h", 22, str(path), "accept-new")


def test_append_adds_missing_newline(tmp_path):
    path = tmp_path / "known_hosts"
    path.write_text("# no newline at end")
    key = ecdsa()
    verify_host_key(key, "h", 22, str(path), "accept-new")
    assert path.read_text().splitlines()[1].startswith("h ecdsa-sha2-nistp256 ")


def test_known_key_types_are_negotiated_first(tmp_path):
    path = tmp_path / "known_hosts"
    rsa = paramiko.RSAKey.generate(1024)
    path.write_text(f"[h]:2 {rsa.get_name()} {rsa.get_base64()}\n")
    offered = ["ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]
    assert preferred_algorithms(load_known_hosts(str(path)), "h", 2, offered) == [
        "rsa-sha2-512", "rsa-sha2-256", "ssh-rsa", "ssh-ed25519", "ecdsa-sha2-nistp256"]
    assert preferred_algorithms(load_known_hosts(str(path)), "other", 2, offered) == offered


def test_hashed_entries_are_understood(tmp_path):
    path = tmp_path / "known_hosts"
    key, other = ecdsa(), ecdsa()
    hashed = paramiko.HostKeys.hash_host("[h]:2222")
    path.write_text(f"{hashed} {key.get_name()} {key.get_base64()}\n")
    verify_host_key(key, "h", 2222, str(path), "strict")
    with pytest.raises(HostKeyError, match="changed"):
        verify_host_key(other, "h", 2222, str(path), "accept-new")


def test_corrupt_known_hosts_is_a_host_key_error(tmp_path):
    path = tmp_path / "known_hosts"
    path.write_text("h ssh-ed25519 AAAA!!!notbase64\n")
    with pytest.raises(HostKeyError, match=f"cannot read known_hosts file {path}"):
        verify_host_key(ecdsa(), "h", 22, str(path), "accept-new")


# --- @cert-authority and @revoked markers --------------------------------------------------------

def test_cert_authority_line_is_skipped_without_breaking_other_lines(tmp_path):
    path = tmp_path / "known_hosts"
    key, ca = ecdsa(), ecdsa()
    path.write_text(f"@cert-authority *.example.com {ca.get_name()} {ca.get_base64()}\n"
                    f"h {key.get_name()} {key.get_base64()}\n")
    verify_host_key(key, "h", 22, str(path), "strict")
    with pytest.raises(HostKeyError, match="unknown"):  # the CA key is no host key of h
        verify_host_key(ca, "h.example.com", 22, str(path), "strict")
    assert load_known_hosts(str(path)).revoked == []


@pytest.mark.parametrize("policy", ["strict", "accept-new", "off"])
def test_revoked_key_is_refused_under_every_policy(tmp_path, policy):
    path = tmp_path / "known_hosts"
    key, good = ecdsa(), ecdsa()
    path.write_text(f"@revoked * {key.get_name()} {key.get_base64()}\n"
                    f"h {key.get_name()} {key.get_base64()}\n"
                    f"good {good.get_name()} {good.get_base64()}\n")
    before = path.read_text()
    with pytest.raises(HostKeyError, match=r"h presented a revoked host key .*@revoked in") as failure:
        verify_host_key(key, "h", 22, str(path), policy)
    assert "\n" not in str(failure.value) and key.fingerprint in str(failure.value)
    with pytest.raises(HostKeyError, match="revoked"):  # unknown host, revoked key: not recorded
        verify_host_key(key, "new", 22, str(path), policy)
    assert path.read_text() == before
    verify_host_key(good, "good", 22, str(path), policy)  # other lines still work


def test_revoked_marker_may_be_tab_separated(tmp_path):
    path = tmp_path / "known_hosts"
    key = ecdsa()
    path.write_text(f"@revoked\t[h]:2222 {key.get_name()} {key.get_base64()}\n")
    with pytest.raises(HostKeyError, match="revoked"):
        verify_host_key(key, "h", 2222, str(path), "accept-new")

"""Encrypted private key files are opened with SSH_KEY_PASSPHRASE, a secret."""

import subprocess

import pytest

from amslib.core.settings import load_settings
from amslib.ssh.client import _load_key
from amslib.ssh.options import resolve_jump, resolve_options
from amslib.ssh.sshconfig import SshConfig
from tests.secrets_audit import SSH_KEY_PASSPHRASE_QUOTED as PASSPHRASE


def keygen(path, kind, passphrase, *extra):
    subprocess.run(["ssh-keygen", "-q", "-t", kind, *extra, "-N", passphrase, "-C", "", "-f", str(path)],
                   check=True, capture_output=True)
    return str(path)


@pytest.fixture(params=[("ed25519",), ("rsa", "-b", "2048", "-m", "PEM"), ("ecdsa",)],
                ids=["ed25519-openssh", "rsa-pem", "ecdsa-openssh"])
def encrypted(request, tmp_path):
    return keygen(tmp_path / "key", request.param[0], PASSPHRASE, *request.param[1:])


def test_encrypted_key_opens_with_the_passphrase(encrypted):
    key, problem = _load_key(encrypted, PASSPHRASE)
    assert problem is None and key is not None


def test_encrypted_key_without_a_passphrase_says_what_to_do(encrypted):
    assert _load_key(encrypted) == (None, "encrypted; set SSH_KEY_PASSPHRASE or load it into ssh-agent")


def test_wrong_passphrase_is_named_but_not_shown(encrypted):
    key, problem = _load_key(encrypted, "not-the-passphrase")
    assert key is None and problem == "encrypted; SSH_KEY_PASSPHRASE does not decrypt it"


def test_a_passphrase_does_not_hurt_unencrypted_keys(tmp_path):
    plain = keygen(tmp_path / "plain", "ed25519", "")
    key, problem = _load_key(plain, PASSPHRASE)
    assert problem is None and key is not None


def test_passphrase_setting_is_a_masked_secret_and_reaches_every_hop(tmp_path):
    empty = tmp_path / "settings.py"
    empty.write_text("")
    settings = load_settings(environ={"AMS_SETTINGS": str(empty), "AMS_SSH_KEY_PASSPHRASE": PASSPHRASE},
                             path=None)
    assert PASSPHRASE not in repr(settings.as_dict())
    options = resolve_options("h", settings, ssh_config=SshConfig())
    assert options.key_passphrase == PASSPHRASE and PASSPHRASE not in repr(options)
    assert resolve_jump("bastion", settings, SshConfig()).key_passphrase == PASSPHRASE

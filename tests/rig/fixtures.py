"""pytest fixtures of the EC2 half of the rig (loaded as a plugin by tests/conftest.py).

- ``rig`` (session): a started ``tests.rig.ec2.Ec2Rig``; ``os.environ`` carries ``rig.env()``
  (AWS_ENDPOINT_URL, fake keys, AWS_DEFAULT_REGION, ...) for the whole session, so boto3 in the
  test process and a subprocess ``ams`` both reach the endpoint.
- ``ec2_clean`` (function): the same rig after ``rig.reset()`` (fresh moto state, no backing
  files, no faults, zero counters, guests cleaned and unplugged).
- ``ec2_client`` (function): a counted boto3 EC2 client for us-east-1 on a clean rig.
- ``register_guest`` (function): ``register_guest(guest, region=, zone=, name=)`` registers a
  guest as an instance on the clean rig, writes/extends the ssh config, sets the AMS_SSH_* and
  AMS_SUDO_PASSWORD variables for the test, and returns a ``RigInstance``.
- ``guest_instance`` (function): the session guest (``rig_guest``) registered in us-east-1a;
  skips with the reason when QEMU is unavailable.
"""

import dataclasses
import os

import pytest

from tests.rig.ec2 import Ec2Rig, ssh_config_text

@dataclasses.dataclass
class RigInstance:
    instance_id: str
    guest: object
    region: str
    zone: str
    name: str

    @property
    def ssh_port(self):
        return self.guest.ssh_port


def guest_ssh_env(guest, ssh_config_path):
    """AMS_* variables that let ams log in to ``guest`` (a host named ``guest.name``)."""
    env = {
        "AMS_SSH_CONFIG_FILE": ssh_config_path,
        "AMS_SSH_USER": guest.user,
        "AMS_SSH_HOST_KEY_POLICY": "off",
    }
    if getattr(guest, "key_path", None):
        env["AMS_SSH_KEYFILE"] = str(guest.key_path)
    if getattr(guest, "password", None):
        env["AMS_SUDO_PASSWORD"] = guest.password
    return env


@pytest.fixture(scope="session")
def rig(tmp_path_factory):
    ec2 = Ec2Rig(state_dir=str(tmp_path_factory.mktemp("ec2-rig")))
    ec2.start()
    saved = {k: os.environ.get(k) for k in list(ec2.env()) + list(Ec2Rig.ENV_TO_UNSET)}
    for k in Ec2Rig.ENV_TO_UNSET:
        os.environ.pop(k, None)
    os.environ.update(ec2.env())
    try:
        yield ec2
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        ec2.stop()


@pytest.fixture
def ec2_clean(rig):
    rig.reset()
    return rig


@pytest.fixture
def ec2_client(ec2_clean):
    return ec2_clean.client(region="us-east-1")


@pytest.fixture
def register_guest(ec2_clean, monkeypatch):
    registered = []
    config_path = os.path.join(ec2_clean.state_dir, "ssh_config")

    def register(guest, region="us-east-1", zone=None, name=None):
        zone = zone or region + "a"
        name = name or guest.name
        instance_id = ec2_clean.register_instance(guest, region=region, zone=zone, name=name)
        inst = RigInstance(instance_id, guest, region, zone, name)
        registered.append(inst)
        hosts = [{"name": i.name, "port": i.guest.ssh_port, "user": i.guest.user,
                  "key": str(i.guest.key_path) if getattr(i.guest, "key_path", None) else None}
                 for i in registered]
        with open(config_path, "w") as f:
            f.write(ssh_config_text(hosts))
        for k, v in guest_ssh_env(guest, config_path).items():
            monkeypatch.setenv(k, v)
        return inst

    yield register
    for inst in registered:
        try:
            ec2_clean.clean_guest(inst.guest)
        except Exception:
            pass
        ec2_clean.unregister_instance(inst.instance_id)


@pytest.fixture
def guest_instance(request, register_guest):
    guest = request.getfixturevalue("rig_guest")
    return register_guest(guest, region="us-east-1", zone="us-east-1a")

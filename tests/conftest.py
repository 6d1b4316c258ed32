"""Shared pytest configuration: fixture modules of the rig are loaded as plugins."""

import os
from pathlib import Path

# The guest image cache is found through $HOME unless AMS_RIG_CACHE is set; tests give ams a
# private HOME, so pin the cache to the real one before any test changes HOME (else the first
# guest test of a run would build the image again inside a temporary home).
os.environ.setdefault("AMS_RIG_CACHE", str(Path.home() / ".cache" / "ams-rig"))

pytest_plugins = [
    "tests.secrets_audit",  # first: the fixture modules register their secrets with it
    "tests.rig.sshd",
    "tests.rig.guest_fixtures",
    "tests.rig.fixtures",
    "tests.dbfixtures",
]

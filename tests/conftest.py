"""Shared pytest configuration: fixture modules of the rig are loaded as plugins."""

pytest_plugins = [
    "tests.rig.sshd",
    "tests.rig.guest_fixtures",
    "tests.rig.fixtures",
    "tests.dbfixtures",
]

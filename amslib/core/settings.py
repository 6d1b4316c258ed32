"""Settings: defaults < settings.py < AMS_* environment variables.

The settings file is found at ``$AMS_SETTINGS``, else ``~/.ams/settings.py``,
else ``/etc/ams/settings.py``; with none, ams runs on the embedded defaults
(SQLite at ``~/.ams/ams.db``).  Every setting ``NAME`` can be overridden by the
environment variable ``AMS_NAME``; the value is converted to the type of the
default (int, float, bool, comma separated list).  ``sample_settings.py`` at the
project root documents each one.
"""

import os
import runpy

from .errors import ConfigError


def _home():
    return os.path.expanduser("~")


# name -> default.  The type of the default decides how AMS_<NAME> is parsed;
# a None default is parsed as a string.  Keep sample_settings.py in step.
DEFAULTS = {
    # State database: SQLAlchemy URL. mysql+pymysql://user:pass@host/db or sqlite:///path
    "DB_URL": None,  # None means sqlite at ~/.ams/ams.db
    # AWS: credentials come from boto3's chain unless given here.
    "AWS_ACCESS_KEY_ID": None,
    "AWS_SECRET_ACCESS_KEY": None,
    "AWS_PROFILE": None,
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGIONS": [],  # regions for discovery; empty = every region enabled for the account
    "AWS_MAX_ATTEMPTS": 8,
    "AWS_RETRY_MODE": "adaptive",
    # SSH
    "SSH_USER": None,  # None: ~/.ssh/config or the local user name
    "SSH_PORT": 22,
    "SSH_KEYFILE": None,
    "SSH_PASSWORD": None,
    "SSH_USE_AGENT": True,
    "SSH_CONFIG_FILE": None,  # None: ~/.ssh/config when it exists
    "SSH_KNOWN_HOSTS": None,  # None: ~/.ssh/known_hosts
    "SSH_HOST_KEY_POLICY": "accept-new",  # strict | accept-new | off
    "SSH_CONNECT_TIMEOUT": 15.0,
    "SSH_AUTH_TIMEOUT": 15.0,
    "SSH_COMMAND_TIMEOUT": 600.0,
    "SUDO_PASSWORD": None,
    # Volumes
    "DEVICE_TIMEOUT": 120.0,  # seconds to wait for an attached volume's device to appear on the host
    # Snapshots
    "HOOK_TIMEOUT": 600.0,  # seconds a --pre or --post hook may run
    "FREEZE_TIMEOUT": 120.0,  # a frozen filesystem is thawed on the host by itself after this
    "SNAPSHOT_WAIT_TIMEOUT": 7200.0,  # seconds to wait for snapshots and copies to complete
    "SCHEDULE_WORKERS": 4,  # due schedules snapshotted at once by 'schedule run'
    # Hosts
    "HOSTNAME_RULE": "name-tag,private-dns,private-ip",  # order tried for new hosts
    # Logging
    "LOG_FILE": None,
}

SECRET_NAMES = frozenset({"AWS_SECRET_ACCESS_KEY", "SSH_PASSWORD", "SUDO_PASSWORD"})


SYSTEM_SETTINGS_PATH = "/etc/ams/settings.py"


def default_db_url():
    return "sqlite:///" + os.path.join(_home(), ".ams", "ams.db")


def settings_path(environ=None):
    """Return the settings file to read, or None when there is none."""
    environ = os.environ if environ is None else environ
    explicit = environ.get("AMS_SETTINGS")
    if explicit:
        if not os.path.isfile(explicit):
            raise ConfigError(f"AMS_SETTINGS points to {explicit}, which is not a file")
        return explicit
    for candidate in (os.path.join(_home(), ".ams", "settings.py"), SYSTEM_SETTINGS_PATH):
        if os.path.isfile(candidate):
            return candidate
    return None


def _convert(name, raw, default):
    if isinstance(default, bool):
        low = raw.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"AMS_{name} must be true or false, not {raw!r}")
    if isinstance(default, int):
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"AMS_{name} must be a whole number, not {raw!r}") from None
    if isinstance(default, float):
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"AMS_{name} must be a number, not {raw!r}") from None
    if isinstance(default, list):
        return [part.strip() for part in raw.split(",") if part.strip()]
    return raw


class Settings:
    """Resolved settings; attribute access by NAME, plus where they came from."""

    def __init__(self, values, source):
        self._values = dict(values)
        self.source = source  # path of the settings file, or None

    def __getattr__(self, name):
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def get(self, name, default=None):
        return self._values.get(name, default)

    def as_dict(self, reveal_secrets=False):
        out = dict(self._values)
        if not reveal_secrets:
            for name in SECRET_NAMES:
                if out.get(name):
                    out[name] = "********"
        return out

    @property
    def db_url(self):
        return self._values["DB_URL"] or default_db_url()


def load_settings(environ=None, path=None):
    """Resolve settings: defaults, then the settings file, then AMS_* variables."""
    environ = os.environ if environ is None else environ
    values = {name: (list(v) if isinstance(v, list) else v) for name, v in DEFAULTS.items()}
    source = path or settings_path(environ)
    if source:
        try:
            namespace = runpy.run_path(source)
        except Exception as exc:  # a syntax error or a failing import in the user's file
            raise ConfigError(f"cannot read settings file {source}: {exc.__class__.__name__}: {exc}") from None
        for name, value in namespace.items():
            if name in DEFAULTS:
                values[name] = value
    for name, default in DEFAULTS.items():
        raw = environ.get("AMS_" + name)
        if raw is not None:
            values[name] = _convert(name, raw, default)
    policy = values["SSH_HOST_KEY_POLICY"]
    if policy not in ("strict", "accept-new", "off"):
        raise ConfigError(f"SSH_HOST_KEY_POLICY must be strict, accept-new or off, not {policy!r}")
    return Settings(values, source)

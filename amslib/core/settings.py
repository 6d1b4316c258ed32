"""Settings: defaults < settings.py < AMS_* environment variables.

The settings file is found at ``$AMS_SETTINGS``, else ``~/.ams/settings.py``,
else ``/etc/ams/settings.py``; with none, ams runs on the embedded defaults
(SQLite at ``~/.ams/ams.db``).  Every setting ``NAME`` can be overridden by the
environment variable ``AMS_NAME``; the value is converted to the type of the
default (int, float, bool, comma separated list).  ``sample_settings.py`` at the
project root documents each one.

Values in the settings file are checked against the same types (an int where a
float is expected is accepted; a path may be a ``pathlib.Path``); a wrong type
is a ConfigError naming the file and the setting.  Every UPPER_CASE name the
file defines must be a known setting: a misspelt one (``SSH_USRE``) is a
ConfigError with the closest known names, so a typo never silently leaves a
default in force.  Lower-case names, names starting with ``_`` and names
the file imports are the file's own business and are ignored.

A settings file that holds a secret (a password, a passphrase, the AWS secret
key, a DB_URL with a password) and that group or others can read gets one
warning on stderr suggesting ``chmod 600``; the secret itself is never shown.
"""

import os
import runpy
import stat
import sys
import types

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
    "SSH_KEY_PASSPHRASE": None,  # secret: passphrase of encrypted key files
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
    # Concurrency
    "LOCK_WAIT": 10.0,  # seconds to wait for a volume group another ams is changing before failing
    # Hosts
    "HOSTNAME_RULE": "name-tag,private-dns,private-ip",  # order tried for new hosts
    # Logging
    "LOG_FILE": None,
}

SECRET_NAMES = frozenset({"AWS_SECRET_ACCESS_KEY", "SSH_KEY_PASSPHRASE", "SSH_PASSWORD", "SUDO_PASSWORD"})


def is_secret_name(name):
    """True for settings whose value must never be shown: the known secrets, and any
    setting named like a password, passphrase or secret (future ones included)."""
    return name in SECRET_NAMES or any(word in name for word in ("PASSWORD", "PASSPHRASE", "SECRET"))


def url_has_password(url):
    """True when a database URL carries a password (stdlib parsing: no SQLAlchemy import)."""
    from urllib.parse import urlsplit

    if not isinstance(url, str):
        return False
    try:
        return bool(urlsplit(url).password)
    except ValueError:
        return "@" in url  # unparsable: assume the worst


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


_TYPE_WORDS = {bool: "true or false (True/False)", int: "a whole number", float: "a number"}


def _describe(name, value):
    """How a wrong value is shown in a message: never the value of a secret."""
    if is_secret_name(name) or name == "DB_URL":
        return f"a value of type {type(value).__name__}"
    return f"{value!r} ({type(value).__name__})"


def _check_file_value(source, name, value, default):
    """The value ``name`` has in the settings file, checked against the type of its default
    (and normalised: int to float, a path object to str, a tuple to a list)."""
    def wrong(expected):
        return ConfigError(f"settings file {source}: {name} must be {expected}, not {_describe(name, value)}")

    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise wrong(_TYPE_WORDS[bool])
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong(_TYPE_WORDS[int])
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise wrong(_TYPE_WORDS[float])
        return float(value)
    if isinstance(default, list):
        if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) for item in value):
            raise wrong("a list of strings such as ['us-east-1', 'eu-west-1']")
        return list(value)
    # A string setting; one whose default is None may also be None (= the default behaviour).
    if value is None and default is None:
        return None
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise wrong("a string" + (" or None" if default is None else ""))
    return value


def _imported_names(source):
    """Names the settings file binds by ``import``/``from ... import`` (anywhere in it)."""
    import ast

    try:
        with open(source, "rb") as handle:
            tree = ast.parse(handle.read(), filename=source)
    except (OSError, SyntaxError, ValueError):
        return set()
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                names.add(alias.asname or alias.name.split(".")[0])
    return names


def _is_setting_like(name, value, imported):
    """Names the settings file is taken to mean as settings: UPPER_CASE, not private, not imported."""
    if name.startswith("_") or name in imported or isinstance(value, types.ModuleType):
        return False
    return name.upper() == name and any(ch.isalpha() for ch in name)


def _read_settings_file(source):
    """The settings the file sets, type-checked; ConfigError for an unknown name or a wrong type."""
    try:
        namespace = runpy.run_path(source)
    except Exception as exc:  # a syntax error or a failing import in the user's file
        raise ConfigError(f"cannot read settings file {source}: {exc.__class__.__name__}: {exc}") from None
    found = {}
    imported = None
    for name, value in namespace.items():
        if name in DEFAULTS:
            found[name] = _check_file_value(source, name, value, DEFAULTS[name])
            continue
        if imported is None and _is_setting_like(name, value, ()):
            imported = _imported_names(source)  # parsed only when an unknown name turns up
        if _is_setting_like(name, value, imported or ()):
            import difflib

            close = difflib.get_close_matches(name, DEFAULTS, n=1, cutoff=0.6)
            hint = f"did you mean {' or '.join(close)}?" if close else "sample_settings.py lists the known ones"
            raise ConfigError(
                f"settings file {source}: unknown setting {name}; {hint} "
                f"(names of your own must be lower case or start with _)"
            )
    return found


def _secrets_in(found):
    """Names of the settings in ``found`` that hold a secret (the values are never returned)."""
    names = [name for name, value in found.items() if is_secret_name(name) and value]
    if url_has_password(found.get("DB_URL")):
        names.append("DB_URL")
    return sorted(names)


def _warn_if_readable(source, found, warn):
    secrets = _secrets_in(found)
    if not secrets:
        return
    try:
        mode = os.stat(source).st_mode
    except OSError:
        return
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        warn(
            f"settings file {source} holds secrets ({', '.join(secrets)}) and can be read by "
            f"{'group and others' if mode & stat.S_IROTH else 'its group'} "
            f"(mode {stat.S_IMODE(mode):o}); run: chmod 600 {source}"
        )


def _stderr_warning(message):
    # Never during shell completion (argcomplete sets _ARGCOMPLETE): a completer must not print.
    if os.environ.get("_ARGCOMPLETE"):
        return
    print(f"ams: warning: {message}", file=sys.stderr, flush=True)


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
            for name in out:
                if is_secret_name(name) and out[name]:
                    out[name] = "********"
        return out

    @property
    def db_url(self):
        return self._values["DB_URL"] or default_db_url()


def load_settings(environ=None, path=None, warn=None):
    """Resolve settings: defaults, then the settings file, then AMS_* variables.

    ``warn`` receives warnings as one-line messages (default: ``ams: warning: ...`` on stderr).
    """
    environ = os.environ if environ is None else environ
    warn = _stderr_warning if warn is None else warn
    values = {name: (list(v) if isinstance(v, list) else v) for name, v in DEFAULTS.items()}
    source = path or settings_path(environ)
    if source:
        found = _read_settings_file(source)
        values.update(found)
        _warn_if_readable(source, found, warn)
    for name, default in DEFAULTS.items():
        raw = environ.get("AMS_" + name)
        if raw is not None:
            values[name] = _convert(name, raw, default)
    policy = values["SSH_HOST_KEY_POLICY"]
    if policy not in ("strict", "accept-new", "off"):
        raise ConfigError(f"SSH_HOST_KEY_POLICY must be strict, accept-new or off, not {policy!r}")
    return Settings(values, source)

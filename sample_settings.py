# ams settings. Copy to ~/.ams/settings.py (or /etc/ams/settings.py, or any
# path named by $AMS_SETTINGS) and set what you need. Every value here can also
# be given as an environment variable AMS_<NAME>, which wins over this file;
# lists are then comma separated (AMS_AWS_REGIONS=us-east-1,eu-west-1).
# Anything left out keeps the default shown. Values must have the type shown
# (a number, True/False, a list of strings, a string or None); every UPPER_CASE
# name is taken as a setting, so a misspelt one is an error: names of your own
# must be lower case or start with _. A file holding a password or secret key
# must be private (chmod 600), else ams warns on every run.

# --- State database ---------------------------------------------------------
# SQLAlchemy URL. None: SQLite at ~/.ams/ams.db (fine for one operator).
# For a team, use MySQL/MariaDB through PyMySQL:
#   DB_URL = "mysql+pymysql://ams_user:secret@db.example.com/ams"
DB_URL = None

# --- AWS ----------------------------------------------------------------------
# Credentials come from boto3's usual chain (AWS_* environment variables,
# ~/.aws/credentials, an instance role) unless both keys are set here.
AWS_ACCESS_KEY_ID = None
AWS_SECRET_ACCESS_KEY = None
AWS_PROFILE = None            # a profile of ~/.aws/config (--profile wins)
AWS_DEFAULT_REGION = "us-east-1"  # region for commands that need one (--region wins)
AWS_REGIONS = []              # regions host discovery visits; [] = all enabled for the account
AWS_MAX_ATTEMPTS = 8          # botocore retries, with backoff, for throttling and 5xx
AWS_RETRY_MODE = "adaptive"   # botocore retry mode: legacy, standard or adaptive

# --- SSH to hosts -------------------------------------------------------------
# Precedence: command options > the values here > ~/.ssh/config > defaults.
SSH_USER = None               # None: User from ~/.ssh/config, else your login name
SSH_PORT = 22
SSH_KEYFILE = None            # private key file; the SSH agent is also tried
SSH_KEY_PASSPHRASE = None     # passphrase of encrypted key files (a secret: never shown)
SSH_PASSWORD = None           # password login (prefer keys)
SSH_USE_AGENT = True
SSH_CONFIG_FILE = None        # None: ~/.ssh/config when it exists
SSH_KNOWN_HOSTS = None        # None: ~/.ssh/known_hosts
SSH_HOST_KEY_POLICY = "accept-new"  # strict (unknown hosts refused) | accept-new | off
SSH_CONNECT_TIMEOUT = 15.0    # seconds
SSH_AUTH_TIMEOUT = 15.0       # seconds
SSH_COMMAND_TIMEOUT = 600.0   # seconds for one remote command (hooks, mkfs, ...)
SUDO_PASSWORD = None          # None: sudo must be passwordless; sent on stdin, never on a command line

# --- Volumes ------------------------------------------------------------------
DEVICE_TIMEOUT = 120.0        # seconds to wait for an attached EBS volume to show up as a device

# --- Snapshots ----------------------------------------------------------------
HOOK_TIMEOUT = 600.0          # seconds a --pre or --post hook may run on the host
FREEZE_TIMEOUT = 120.0        # with --freeze: the host thaws the filesystem by itself after this,
                              # even if ams or the connection dies (the snapshot starts in seconds)
SNAPSHOT_WAIT_TIMEOUT = 7200.0  # seconds to wait for snapshots and cross-region copies
SCHEDULE_WORKERS = 4          # due schedules that 'ams snapshot schedule run' snapshots at once

# --- Concurrency --------------------------------------------------------------
LOCK_WAIT = 10.0              # seconds to wait for a volume group that another ams is changing
                              # (attach, detach, mount, snapshot ...) before failing with exit 11

# --- Hosts --------------------------------------------------------------------
# How discovery names a new host (the name ams uses to SSH to it): the first of
# these that the instance has. Choices: name-tag, private-dns, public-dns,
# private-ip, public-ip. Names set with `ams host add/edit` are never replaced.
HOSTNAME_RULE = "name-tag,private-dns,private-ip"

# --- Logging ------------------------------------------------------------------
LOG_FILE = None               # also write log records here (never contains secrets)

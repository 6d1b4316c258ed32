"""boto3 clients per region with retries, and EC2 errors turned into AwsError.

Credentials follow boto3's chain (environment, profile, instance role) unless
AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY are set in settings.  The endpoint can
be redirected with the standard ``AWS_ENDPOINT_URL`` variable (boto3 reads it
itself), which is how the test rig points ams at its EC2 endpoint.
"""

import contextlib
import hashlib
import json
import logging
import os
import threading
import time

from ..core.errors import AwsError, NotFoundError, UsageError

log = logging.getLogger("ams.aws")

# Error codes that mean "the thing you named does not exist".
NOT_FOUND_CODES = frozenset(
    {
        "InvalidInstanceID.NotFound",
        "InvalidInstanceID.Malformed",
        "InvalidVolume.NotFound",
        "InvalidVolumeID.Malformed",
        "InvalidSnapshot.NotFound",
        "InvalidSnapshotID.Malformed",
    }
)


@contextlib.contextmanager
def aws_errors(action):
    """Translate botocore failures inside the block into one-line AmsErrors."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
        WaiterError,
    )

    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = error.get("Code", "Unknown")
        message = error.get("Message", "")
        cls = NotFoundError if code in NOT_FOUND_CODES else AwsError
        raise cls(f"{action} failed: {code}: {message}".rstrip(": ")) from None
    except (NoCredentialsError, PartialCredentialsError):
        raise AwsError(
            f"{action} failed: no AWS credentials (set them in the environment, a profile, or settings)"
        ) from None
    except NoRegionError:
        raise AwsError(f"{action} failed: no AWS region given (--region or AWS_DEFAULT_REGION)") from None
    except EndpointConnectionError as exc:
        raise AwsError(f"{action} failed: cannot reach {exc.kwargs.get('endpoint_url', 'the endpoint')}") from None
    except WaiterError as exc:
        raise AwsError(f"{action} failed while waiting: {exc.last_response.get('Error', {}).get('Message') or exc}") from None
    except BotoCoreError as exc:
        raise AwsError(f"{action} failed: {exc}") from None


MAX_POOL_CONNECTIONS = 64
REGION_CACHE_SECONDS = 15 * 60  # how long a DescribeRegions answer kept on disk is reused


def read_region_cache(path, now=None):
    """The region list saved at ``path`` if it is recent (and well formed), else None."""
    from ..instance.validation import REGION_RE

    now = time.time() if now is None else now
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        saved_at, regions = float(data["saved_at"]), data["regions"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not 0 <= now - saved_at <= REGION_CACHE_SECONDS:
        return None
    if not isinstance(regions, list) or not all(isinstance(r, str) and REGION_RE.match(r) for r in regions):
        return None
    return sorted(regions)


def write_region_cache(path, regions, now=None):
    """Save ``regions`` at ``path`` (private directory and file, replaced atomically); best effort."""
    data = {"saved_at": time.time() if now is None else now, "regions": list(regions)}
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        temp = f"{path}.{os.getpid()}.tmp"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle)
        os.replace(temp, path)
    except OSError as exc:
        log.debug("cannot save the region list at %s: %s", path, exc)
        with contextlib.suppress(OSError, UnboundLocalError):
            os.unlink(temp)


class AwsClients:
    """Creates and caches one boto3 client per (service, region)."""

    def __init__(self, settings, profile=None, region=None):
        self.settings = settings
        self.profile = profile or settings.AWS_PROFILE
        self.region = region or settings.AWS_DEFAULT_REGION
        self._session = None
        self._clients = {}
        self._lock = threading.Lock()
        self._account_regions = None  # DescribeRegions, asked at most once per process
        self._regions_source = None  # "ec2" (asked by this process) or "disk" (the cache file)

    @property
    def session(self):
        if self._session is None:
            import boto3

            kwargs = {}
            if self.profile:
                kwargs["profile_name"] = self.profile
            if self.settings.AWS_ACCESS_KEY_ID and self.settings.AWS_SECRET_ACCESS_KEY:
                kwargs["aws_access_key_id"] = self.settings.AWS_ACCESS_KEY_ID
                kwargs["aws_secret_access_key"] = self.settings.AWS_SECRET_ACCESS_KEY
            with aws_errors("opening the AWS session"):
                self._session = boto3.session.Session(**kwargs)
        return self._session

    def _config(self):
        from botocore.config import Config

        return Config(
            retries={"mode": self.settings.AWS_RETRY_MODE, "max_attempts": self.settings.AWS_MAX_ATTEMPTS},
            connect_timeout=10,
            read_timeout=60,
            # calls run in parallel (schedules x batch workers): keep a connection per thread
            # instead of botocore's 10, past which each call opens and closes its own
            max_pool_connections=MAX_POOL_CONNECTIONS,
        )

    def client(self, service="ec2", region=None):
        region = region or self.region
        if region:
            from ..instance.validation import check_region

            region = check_region(region)  # the shape only: a malformed name never reaches botocore
        key = (service, region)
        with self._lock:
            if key not in self._clients:
                with aws_errors(f"creating the {service} client for {region}"):
                    self._clients[key] = self.session.client(service, region_name=region, config=self._config())
            return self._clients[key]

    def ec2(self, region=None):
        return self.client("ec2", region)

    def regions(self, only=None):
        """Regions to work in: ``only`` if given, else settings AWS_REGIONS, else all enabled ones."""
        if only:
            return list(only)
        if self.settings.AWS_REGIONS:
            return list(self.settings.AWS_REGIONS)
        return self.account_regions(fresh=True)  # every region to work in: EC2's word of now

    def _home_region(self):
        """Where to ask DescribeRegions: the first well-formed of the default region, settings
        AWS_DEFAULT_REGION and the AWS config's region that botocore knows (else the first
        well-formed one, else us-east-1)."""
        from ..instance.validation import REGION_RE

        candidates = [self.region, self.settings.AWS_DEFAULT_REGION, self.session.region_name]
        candidates = [c for c in candidates if c and REGION_RE.match(c)]
        bundled = set()
        for partition in self.session.get_available_partitions():
            bundled.update(self.session.get_available_regions("ec2", partition_name=partition))
        for candidate in candidates:
            if candidate in bundled:
                return candidate
        return candidates[0] if candidates else "us-east-1"

    def _cache_path(self, home_region):
        """~/.ams/cache/ec2-regions-<key>.json; the key covers what decides the answer (profile,
        access key id, endpoint, the region asked), never a secret."""
        parts = [self.profile, self.settings.AWS_ACCESS_KEY_ID, os.environ.get("AWS_ENDPOINT_URL"),
                 os.environ.get("AWS_ENDPOINT_URL_EC2"), home_region]
        key = hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]
        return os.path.join(os.path.expanduser("~"), ".ams", "cache", f"ec2-regions-{key}.json")

    def account_regions(self, fresh=False):
        """The regions enabled for the account, as its EC2 reports them (DescribeRegions with
        AllRegions=False: regions not opted in cannot be used), sorted, so a region newer than
        the installed botocore is known as soon as the account has it.

        Asked once per process; the answer is also kept on disk for REGION_CACHE_SECONDS and
        reused by later commands unless ``fresh`` (then only an answer EC2 gave this process
        will do).  The disk copy is a shortcut only: every failure to read or write it is
        ignored, and :meth:`require_regions` asks EC2 again before refusing a region on its word.
        """
        with self._lock:
            cached, source = self._account_regions, self._regions_source
        if cached is not None and (source == "ec2" or not fresh):
            return list(cached)
        region = self._home_region()
        path = self._cache_path(region)
        if not fresh:
            cached = read_region_cache(path)
            if cached is not None:
                with self._lock:
                    self._account_regions, self._regions_source = cached, "disk"
                return list(cached)
        with aws_errors(f"DescribeRegions in {region}"):
            answer = self.ec2(region).describe_regions(AllRegions=False)
        cached = sorted(r["RegionName"] for r in answer.get("Regions", []))
        with self._lock:
            self._account_regions, self._regions_source = cached, "ec2"
        write_region_cache(path, cached)
        return list(cached)

    def require_regions(self, regions, what=None):
        """Refuse (UsageError, one line) the first of ``regions`` (well-formed names) that the
        account's EC2 does not report; ``what(region)`` words the start of the message."""
        from ..instance.validation import unknown_region_message

        known = None
        for region in regions:
            known = known if known is not None else set(self.account_regions())
            if region not in known and self._regions_source != "ec2":
                known = set(self.account_regions(fresh=True))  # the disk copy may predate an opt-in
            if region not in known:
                raise UsageError(unknown_region_message(region, known, what(region) if what else None))

"""boto3 clients per region with retries, and EC2 errors turned into AwsError.

Credentials follow boto3's chain (environment, profile, instance role) unless
AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY are set in settings.  The endpoint can
be redirected with the standard ``AWS_ENDPOINT_URL`` variable (boto3 reads it
itself), which is how the test rig points ams at its EC2 endpoint.
"""

import contextlib
import logging
import threading

from ..core.errors import AwsError, NotFoundError

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


class AwsClients:
    """Creates and caches one boto3 client per (service, region)."""

    def __init__(self, settings, profile=None, region=None):
        self.settings = settings
        self.profile = profile or settings.AWS_PROFILE
        self.region = region or settings.AWS_DEFAULT_REGION
        self._session = None
        self._clients = {}
        self._lock = threading.Lock()

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
        with aws_errors("DescribeRegions"):
            answer = self.ec2().describe_regions(AllRegions=False)
        return sorted(r["RegionName"] for r in answer["Regions"])

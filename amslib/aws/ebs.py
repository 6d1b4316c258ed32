"""EBS volumes through the EC2 API: create, wait, attach, detach, delete, describe.

The only module that calls EC2 for volumes.  One client per region (``AwsClients.ec2``) is
shared by a bounded thread pool.  Throttling and transient errors are retried inside each call
by botocore's configured retry mode (``amslib.aws.clients``); nothing here sleeps or polls.

Batches (create, attach, detach, delete) run their calls in parallel (``run_batch``, shared
with ``amslib.aws.snapshots``).  When some fail, :class:`BatchError` carries what succeeded so
that the caller can undo it or record it.  A volume may be created from a snapshot (request key
``snapshot_id``; the spec's size None then means the snapshot's size).  create and attach
stop starting new calls after the first failure (the caller undoes anyway); detach and delete
try every volume (they are how the caller undoes).  Ctrl-C stops starting calls, waits for the
running ones and raises BatchError with ``interrupted`` set (exit 130).

Waits are botocore waiters on DescribeVolumes built from :data:`WAITERS` (Delay
``waiter_delay``, default 1 s; MaxAttempts from the timeout):

- ``VolumesAvailable`` (after CreateVolume): every volume "available"; fails at once on
  "error", "deleting" or "deleted"; InvalidVolume.NotFound is retried, as EC2 is eventually
  consistent right after a create.
- ``VolumesAttached``: every volume has an attachment in state "attached"; fails as above.
- ``VolumesDetached``: every volume "available" again; an unknown volume fails at once.
"""

import concurrent.futures
import logging
import math
import re
import threading

from ..core.errors import AmsError, AwsError, ConflictError, Interrupted, NotFoundError, UsageError
from .clients import NOT_FOUND_CODES, aws_errors

log = logging.getLogger("ams.aws.ebs")

WAITER_DELAY = 1.0
DEFAULT_TIMEOUT = 300
FILTER_CHUNK = 200  # values per DescribeVolumes filter
PAGE_SIZE = 500  # DescribeVolumes MaxResults: the largest page AWS allows
BUSY_GRACE = 30  # seconds a detachment may stay "busy" before the volume counts as in use on the instance
CLIENT_TOKEN_RE = re.compile(r"[\x21-\x7e]{1,64}")  # EC2: at most 64 printable ASCII characters

_FAILED_STATES = ("error", "deleting", "deleted")
_FAIL_ON_STATES = [
    {"matcher": "pathAny", "argument": "Volumes[].State", "expected": state, "state": "failure"}
    for state in _FAILED_STATES
]
# true when there are volumes and none of them lacks an attachment in state "attached"
ATTACHED_EXPRESSION = "length(Volumes) > `0` && length(Volumes[?!(Attachments[?State == 'attached'])]) == `0`"

WAITERS = {
    "version": 2,
    "waiters": {
        "VolumesAvailable": {
            "operation": "DescribeVolumes",
            "delay": WAITER_DELAY,
            "maxAttempts": DEFAULT_TIMEOUT,
            "acceptors": [
                {"matcher": "pathAll", "argument": "Volumes[].State", "expected": "available", "state": "success"},
                *_FAIL_ON_STATES,
                {"matcher": "error", "expected": "InvalidVolume.NotFound", "state": "retry"},
            ],
        },
        "VolumesAttached": {
            "operation": "DescribeVolumes",
            "delay": WAITER_DELAY,
            "maxAttempts": DEFAULT_TIMEOUT,
            "acceptors": [
                {"matcher": "path", "argument": ATTACHED_EXPRESSION, "expected": True, "state": "success"},
                *_FAIL_ON_STATES,
            ],
        },
        "VolumesDetached": {
            "operation": "DescribeVolumes",
            "delay": WAITER_DELAY,
            "maxAttempts": DEFAULT_TIMEOUT,
            "acceptors": [
                {"matcher": "pathAll", "argument": "Volumes[].State", "expected": "available", "state": "success"},
                *_FAIL_ON_STATES,
            ],
        },
    },
}


class _NotStarted(Exception):
    """A batch call skipped because an earlier one failed or Ctrl-C was pressed."""


class WaitTimeout(AwsError):
    """A volume waiter ran out of time; ``volumes``: the last DescribeVolumes items."""

    def __init__(self, message, volumes=()):
        super().__init__(message)
        self.volumes = list(volumes)


class BatchError(AwsError):
    """Some calls of a batch failed (or Ctrl-C stopped it).

    ``done``: {request index: volume id} of the calls that succeeded; ``failed``: {request index:
    AmsError}; ``skipped``: indexes never started; ``total``: number of requests; ``action``: the
    EC2 action; ``interrupted``: True after Ctrl-C (exit code 130 then).  The message is the
    first failure's (lowest index) and the counts."""

    def __init__(self, action, total, done, failed, skipped=(), interrupted=False):
        self.action = action
        self.total = total
        self.done = dict(sorted(done.items()))
        self.failed = dict(sorted(failed.items()))
        self.skipped = sorted(skipped)
        self.interrupted = interrupted
        counts = f"{len(self.done)} of {total} {action} call(s) succeeded"
        if self.skipped:
            counts += f", {len(self.skipped)} not started"
        if self.failed and not interrupted:
            message = f"{next(iter(self.failed.values()))} ({counts})"
        else:
            message = f"interrupted: {counts}" if interrupted else f"{action}: {counts}"
        super().__init__(message)
        if interrupted:
            self.exit_code = Interrupted.exit_code


def waiter_attempts(timeout, delay):
    """MaxAttempts for a waiter that polls every ``delay`` seconds for ``timeout`` seconds."""
    if timeout <= 0 or delay <= 0:
        raise ValueError("timeout and delay must be positive")
    return max(1, math.ceil(timeout / delay)) + 1


def _tag_list(tags):
    return [{"Key": str(key), "Value": str(value)} for key, value in tags.items()]


def _volume_state(volume):
    """A volume's state for a message: "creating", "in-use (attaching to i-1)", ..."""
    state = volume.get("State", "unknown")
    attachments = [f"{a.get('State')} to {a.get('InstanceId')}" for a in volume.get("Attachments") or []]
    return f"{state} ({', '.join(attachments)})" if attachments else state


def _pages(ec2, operation, region, filter_name, values, *, page_size, **params):
    """Every page of the paginated ``operation`` whose filter ``filter_name`` is one of
    ``values``: one filtered call per FILTER_CHUNK values (EC2 takes at most 200 per filter)."""
    paginator = ec2.get_paginator(operation)
    action = "".join(part.title() for part in operation.split("_"))  # describe_volumes -> DescribeVolumes
    with aws_errors(f"{action} in {region}"):
        for chunk in _chunks(list(values), FILTER_CHUNK):
            yield from paginator.paginate(Filters=[{"Name": filter_name, "Values": chunk}],
                                          PaginationConfig={"PageSize": page_size}, **params)


def describe_filtered(ec2, operation, key, region, filter_name, values, *, page_size, **params):
    """Every item (``page[key]``) of :func:`_pages`."""
    for page in _pages(ec2, operation, region, filter_name, values, page_size=page_size, **params):
        yield from page.get(key, [])


def describe_tagged(ec2, operation, key, tag_key, region, *, page_size, **params):
    """(every item of the paginated ``operation`` filtered by ``tag-key=tag_key``, pages)."""
    items, pages = [], 0
    for page in _pages(ec2, operation, region, "tag-key", [tag_key], page_size=page_size, **params):
        pages += 1
        items.extend(page.get(key, []))
    return items, pages


def _chunks(items, size):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def run_batch(ec2, region, action, items, call, *, max_workers, say, stop_on_error, done_message):
    """``call(ec2, index, item)`` for every item in a pool of ``max_workers`` threads; the
    results in item order.  ``say(text)`` (or None) gets ``done_message(item, result)`` and the
    count after each success.

    Raises BatchError when a call fails (or on Ctrl-C), after every started call ended."""
    items = list(items)
    if not items:
        return []
    stop = threading.Event()  # set: calls not yet started are skipped

    def run(index, item):
        if stop.is_set():
            raise _NotStarted()
        try:
            return call(ec2, index, item)
        except BaseException:
            if stop_on_error:
                stop.set()
            raise

    log.debug("%s: %d call(s) in %s", action, len(items), region)
    pool = concurrent.futures.ThreadPoolExecutor(
        max_workers=min(max_workers, len(items)), thread_name_prefix=f"ams-{action}"
    )
    futures = {pool.submit(run, index, item): index for index, item in enumerate(items)}
    interrupted = False
    finished = 0
    try:
        for future in concurrent.futures.as_completed(futures):
            if future.cancelled() or future.exception() is not None:
                continue
            finished += 1
            if say is not None:
                say(f"{done_message(items[futures[future]], future.result())} ({finished}/{len(items)})")
    except KeyboardInterrupt:
        interrupted = True
        stop.set()
        concurrent.futures.wait(futures)  # what the running calls create must be known
    finally:
        pool.shutdown(wait=True)
    done, failed, skipped = {}, {}, []
    for future, index in futures.items():
        err = None if future.cancelled() else future.exception()
        if future.cancelled() or isinstance(err, _NotStarted):
            skipped.append(index)
        elif err is not None:
            failed[index] = err if isinstance(err, AmsError) else AwsError(
                f"{action} #{index + 1} failed: {err.__class__.__name__}: {err}")
        else:
            done[index] = future.result()
    if failed or interrupted or skipped:
        error = BatchError(action, len(items), done, failed, skipped, interrupted)
        log.info("%s: %s", action, error)
        raise error
    return [done[index] for index in range(len(items))]


def waiter_api_error(response, what):
    """The AmsError for an API error a waiter stopped on (NotFoundError for the not-found codes),
    or None when the waiter stopped on a state."""
    error = response.get("Error")
    if not error:
        return None
    code = error.get("Code", "Unknown")
    cls = NotFoundError if code in NOT_FOUND_CODES else AwsError
    return cls(f"waiting for {what} failed: {code}: {error.get('Message') or ''}".rstrip(": "))


class RegionCalls:
    """EC2 calls in one region: the client (made on first use), a bound on parallel calls,
    the waiter delay, and a progress callback.  Base of the volume and snapshot adapters."""

    DEFAULT_WAITER_DELAY = WAITER_DELAY

    def __init__(self, aws_clients, region, *, max_workers=8, progress=None, waiter_delay=None):
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self.aws = aws_clients
        self.region = region
        self.max_workers = max_workers
        self.progress = progress
        self.waiter_delay = self.DEFAULT_WAITER_DELAY if waiter_delay is None else waiter_delay
        self._ec2 = None

    @property
    def ec2(self):
        if self._ec2 is None:
            self._ec2 = self.aws.ec2(self.region)
        return self._ec2

    def _say(self, message):
        if self.progress:
            self.progress(message)


class Ebs(RegionCalls):
    """EBS volume calls in one region."""

    # -- batches ---------------------------------------------------------------------------
    def _batch(self, action, items, call, stop_on_error, done_message):
        items = list(items)
        if not items:
            return []
        return run_batch(self.ec2, self.region, action, items, call, max_workers=self.max_workers,
                         say=self._say, stop_on_error=stop_on_error, done_message=done_message)

    def create_volumes(self, requests):
        """Create one volume per request ({spec, zone, tags, token[, snapshot_id]}); ids in
        request order.

        ``spec`` is a VolumeSpec, ``tags`` a dict (volume tags at creation), ``token`` the
        ClientToken (the same token and parameters give the same volume back, so botocore's
        retries and a re-run after a crash do not create twice).  With ``snapshot_id`` the
        volume is made from that snapshot; a spec whose ``size_gib`` is None then takes the
        snapshot's size."""
        requests = list(requests)
        for request in requests:
            token = request.get("token")
            if token is not None and not CLIENT_TOKEN_RE.fullmatch(str(token)):
                raise UsageError(f"invalid client token {token!r}: at most 64 printable ASCII characters")
            if request["spec"].size_gib is None and not request.get("snapshot_id"):
                raise UsageError("a volume size is needed unless the volume is made from a snapshot")
        return self._batch("CreateVolume", requests, self._create_one, stop_on_error=True,
                           done_message=self._created_message)

    @staticmethod
    def _created_message(request, volume_id):
        source = f" from {request['snapshot_id']}" if request.get("snapshot_id") else ""
        return f"created {volume_id}{source} in {request['zone']}"

    @staticmethod
    def _create_one(ec2, index, request):
        zone = request["zone"]
        kwargs = {key: value for key, value in request["spec"].create_params().items()
                  if not (key == "Size" and value is None)}
        kwargs["AvailabilityZone"] = zone
        if request.get("snapshot_id"):
            kwargs["SnapshotId"] = request["snapshot_id"]
        if request.get("tags"):
            kwargs["TagSpecifications"] = [{"ResourceType": "volume", "Tags": _tag_list(request["tags"])}]
        if request.get("token") is not None:
            kwargs["ClientToken"] = str(request["token"])
        with aws_errors(f"CreateVolume #{index + 1} in {zone}"):
            return ec2.create_volume(**kwargs)["VolumeId"]

    def attach(self, pairs):
        """Attach each (volume_id, instance_id, device); the volume ids in order."""
        return self._batch("AttachVolume", pairs, self._attach_one, stop_on_error=True,
                           done_message=lambda pair, _: f"attaching {pair[0]} to {pair[1]} as {pair[2]}")

    @staticmethod
    def _attach_one(ec2, _index, pair):
        volume_id, instance_id, device = pair
        with aws_errors(f"AttachVolume {volume_id} to {instance_id} as {device}"):
            ec2.attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device=device)
        return volume_id

    def detach(self, volume_ids, instance_id, force=False):
        """Detach every volume from ``instance_id`` (all are tried); the volume ids in order."""

        def one(ec2, _index, volume_id):
            with aws_errors(f"DetachVolume {volume_id} from {instance_id}"):
                ec2.detach_volume(VolumeId=volume_id, InstanceId=instance_id, Force=bool(force))
            return volume_id

        return self._batch("DetachVolume", volume_ids, one, stop_on_error=False,
                           done_message=lambda volume_id, _: f"detaching {volume_id} from {instance_id}")

    def delete(self, volume_ids):
        """Delete every volume (all are tried; one already gone counts as deleted)."""
        return self._batch("DeleteVolume", volume_ids, self._delete_one, stop_on_error=False,
                           done_message=lambda volume_id, _: f"deleted {volume_id}")

    @staticmethod
    def _delete_one(ec2, _index, volume_id):
        try:
            with aws_errors(f"DeleteVolume {volume_id}"):
                ec2.delete_volume(VolumeId=volume_id)
        except NotFoundError:
            log.info("DeleteVolume %s: already gone", volume_id)
        return volume_id

    # -- waits -----------------------------------------------------------------------------
    def wait_available(self, volume_ids, timeout=DEFAULT_TIMEOUT):
        """Wait until every volume is "available" (after CreateVolume)."""
        self._wait("VolumesAvailable", volume_ids, timeout, "become available")

    def wait_attached(self, volume_ids, timeout=DEFAULT_TIMEOUT):
        """Wait until every volume has an attachment in state "attached"."""
        self._wait("VolumesAttached", volume_ids, timeout, "be attached")

    def wait_detached(self, volume_ids, timeout=DEFAULT_TIMEOUT):
        """Wait until every volume is "available" again (detached).

        EC2 keeps a detachment "busy" while the instance still uses the volume (mounted, in an
        array, held open) and finishes it only once the instance lets go.  A volume still busy
        after :data:`BUSY_GRACE` seconds is reported then (ConflictError), not after ``timeout``."""
        grace = min(BUSY_GRACE, timeout)
        try:
            self._wait("VolumesDetached", volume_ids, grace, "be detached")
            return
        except WaitTimeout as exc:
            busy = [v for v in exc.volumes if any(a.get("State") == "busy" for a in v.get("Attachments") or [])]
            if busy:
                instances = sorted({a.get("InstanceId") for v in busy for a in v["Attachments"]})
                raise ConflictError(
                    f"{', '.join(v['VolumeId'] for v in busy)} still in use on {', '.join(instances)}: "
                    f"the detachment is busy after {grace:g} s (mounted, in an array or held open there); "
                    f"release it on the host, the detachment then finishes by itself") from None
            if grace >= timeout:
                raise
        self._wait("VolumesDetached", volume_ids, timeout - grace, "be detached", total=timeout)

    def waiter(self, name):
        """The botocore waiter ``name`` of :data:`WAITERS` on this region's client."""
        from botocore.waiter import WaiterModel, create_waiter_with_client

        return create_waiter_with_client(name, WaiterModel(WAITERS), self.ec2)

    def _wait(self, name, volume_ids, timeout, goal, total=None):
        from botocore.exceptions import WaiterError

        volume_ids = list(dict.fromkeys(volume_ids))
        if not volume_ids:
            return
        what = f"{len(volume_ids)} volume(s) to {goal}"
        config = {"Delay": self.waiter_delay, "MaxAttempts": waiter_attempts(timeout, self.waiter_delay)}
        self._say(f"waiting for {what}")
        with aws_errors(f"waiting for {what}"):
            try:
                self.waiter(name).wait(VolumeIds=volume_ids, WaiterConfig=config)
            except WaiterError as exc:
                raise self._wait_error(exc, what, total or timeout) from None

    @staticmethod
    def _wait_error(exc, what, timeout):
        response = exc.last_response or {}
        api_error = waiter_api_error(response, what)
        if api_error is not None:
            return api_error
        volumes = response.get("Volumes") or []
        broken = [v for v in volumes if v.get("State") in _FAILED_STATES]
        if broken:
            listed = ", ".join(f"{v['VolumeId']} is {v['State']}" for v in broken)
            return AwsError(f"waiting for {what} failed: {listed}")
        listed = ", ".join(f"{v['VolumeId']} is {_volume_state(v)}" for v in volumes)
        return WaitTimeout(f"timed out after {timeout:g} s waiting for {what}: {listed}", volumes)

    # -- descriptions ----------------------------------------------------------------------
    def describe(self, volume_ids):
        """{volume id: DescribeVolumes item} of the volumes that exist (unknown ids are absent)."""
        volumes = describe_filtered(self.ec2, "describe_volumes", "Volumes", self.region, "volume-id",
                                    dict.fromkeys(volume_ids), page_size=PAGE_SIZE)
        return {volume["VolumeId"]: volume for volume in volumes}

    def tagged(self, tag_key, page_size=None):
        """Every volume of this region carrying the tag ``tag_key`` (DescribeVolumes filtered by
        ``tag-key``, paginated); (items, number of pages)."""
        return describe_tagged(self.ec2, "describe_volumes", "Volumes", tag_key, self.region,
                               page_size=page_size or PAGE_SIZE)

    def create_tags(self, volume_ids, tags):
        """ONE CreateTags call setting ``tags`` on every volume of ``volume_ids``."""
        if volume_ids and tags:
            with aws_errors(f"CreateTags on {', '.join(volume_ids)}"):
                self.ec2.create_tags(Resources=list(volume_ids), Tags=_tag_list(tags))

    def delete_tags(self, volume_ids, keys):
        """ONE DeleteTags call removing the tag ``keys`` (whatever their values) from every volume."""
        if volume_ids and keys:
            with aws_errors(f"DeleteTags on {', '.join(volume_ids)}"):
                self.ec2.delete_tags(Resources=list(volume_ids), Tags=[{"Key": str(k)} for k in keys])

    def instance(self, instance_id):
        """The DescribeInstances item of ``instance_id`` (State, Placement, BlockDeviceMappings,
        ...); NotFoundError when EC2 does not know it."""
        with aws_errors(f"DescribeInstances {instance_id} in {self.region}"):
            answer = self.ec2.describe_instances(InstanceIds=[instance_id])
        for reservation in answer.get("Reservations", []):
            for item in reservation.get("Instances", []):
                if item.get("InstanceId") == instance_id:
                    return item
        raise NotFoundError(f"instance {instance_id!r} not found in {self.region}")

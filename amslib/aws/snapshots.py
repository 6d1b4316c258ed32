"""EBS snapshots through the EC2 API: create, wait, copy across regions, delete, describe.

The only module that calls EC2 for snapshots.  It works as ``amslib.aws.ebs`` does: one client
per region (``AwsClients.ec2``), batches in a bounded thread pool (``run_batch``) that raise
:class:`~amslib.aws.ebs.BatchError` with what succeeded, errors through ``aws_errors``, retries
by botocore's retry mode, waits by botocore waiters (nothing here sleeps or polls).

- ``create_multi``: ONE CreateSnapshots call, crash-consistent across the members, restricted to
  them: the boot volume is excluded unless it is a member, every other attached volume goes to
  ExcludeDataVolumeIds.  Tags that all members share are set at creation, the others (such as
  ``ams:member-index``) by one CreateTags per snapshot.  A snapshot of a volume that is not a
  member (an endpoint that ignores ExcludeDataVolumeIds) is deleted at once and logged.
- ``create_each``: one CreateSnapshot per volume, started back to back (parallel).
- A BatchError from either has ``done`` {member index: snapshot id} and ``snapshots``
  {volume id: snapshot id} of every member snapshot that exists (even when only its tagging
  failed), for the caller to record or delete.  Other errors: nothing was created.
- ``wait_completed``: the waiter ``SnapshotsCompleted`` of :data:`WAITERS` on DescribeSnapshots
  (every snapshot "completed"; fails at once on "error"; InvalidSnapshot.NotFound is retried for
  ``not_found_grace`` seconds, as EC2 is eventually consistent right after a create or copy).
  While it waits, an ``after-call.ec2.DescribeSnapshots`` handler reports each poll's progress.
- ``copy``/``copy_many``: CopySnapshot called in this (the destination) region with
  SourceRegion; the copy gets the source's tags, then the given ones.  EC2's CopySnapshot has no
  ClientToken: the token is the copy's ``ams:client-token`` tag instead, and a snapshot of this
  region that carries it (and is not in "error") is returned rather than copied again.
- ``delete``: every snapshot is tried; refusals (InvalidSnapshot.InUse for a snapshot an AMI
  uses, ...) are returned, not raised.
"""

import logging
import threading
import time

from ..core.errors import AmsError, AwsError, ConflictError, NotFoundError, UsageError
from .clients import aws_errors
from .ebs import (CLIENT_TOKEN_RE, FILTER_CHUNK, BatchError, Ebs, RegionCalls, _tag_list, describe_filtered,
                  describe_tagged, run_batch, waiter_api_error, waiter_attempts)

log = logging.getLogger("ams.aws.snapshots")

WAITER_DELAY = 5.0  # snapshots take minutes; DescribeSnapshots is throttled per account
DEFAULT_TIMEOUT = 3600
NOT_FOUND_GRACE = 60.0  # seconds a snapshot may be unknown right after its create or copy
PAGE_SIZE = 1000  # DescribeSnapshots MaxResults: the largest page AWS allows
TOKEN_TAG = "ams:client-token"
NOT_FOUND = "InvalidSnapshot.NotFound"

WAITERS = {
    "version": 2,
    "waiters": {
        "SnapshotsCompleted": {
            "operation": "DescribeSnapshots",
            "delay": WAITER_DELAY,
            "maxAttempts": int(DEFAULT_TIMEOUT / WAITER_DELAY),
            "acceptors": [
                {"matcher": "pathAll", "argument": "Snapshots[].State", "expected": "completed",
                 "state": "success"},
                {"matcher": "pathAny", "argument": "Snapshots[].State", "expected": "error",
                 "state": "failure"},
                {"matcher": "error", "expected": NOT_FOUND, "state": "retry"},
            ],
        },
    },
}


def progress_of(snapshot):
    """One snapshot's progress for a message: "40%", "100%", "error"; None: "not found"."""
    if snapshot is None:
        return "not found"
    state = snapshot.get("State")
    if state == "error":
        return "error"
    if state not in (None, "pending", "completed"):
        return state
    return snapshot.get("Progress") or ("100%" if state == "completed" else "0%")


def progress_line(snapshot_ids, found):
    """"snapshots: snap-a 40%, snap-b 100%" for the ids in order (``found``: {id: snapshot})."""
    return "snapshots: " + ", ".join(f"{i} {progress_of(found.get(i))}" for i in snapshot_ids)


def _state_of(snapshot):
    state = snapshot.get("State", "unknown")
    return f"{state} ({snapshot['Progress']})" if state == "pending" and snapshot.get("Progress") else state


def _reason(snapshot):
    return f" ({snapshot['StateMessage']})" if snapshot.get("StateMessage") else ""


def _tags_of(item):
    return {t["Key"]: t["Value"] for t in item.get("Tags") or []}


def _split_tags(members, tags_by_volume):
    """(tags every member has with the same value, {volume id: its other tags})."""
    tag_sets = [{str(k): str(v) for k, v in (tags_by_volume.get(v) or {}).items()} for v in members]
    common = dict(tag_sets[0]) if tag_sets else {}
    for tags in tag_sets[1:]:
        common = {k: v for k, v in common.items() if tags.get(k) == v}
    rest = {v: {k: x for k, x in tags.items() if k not in common} for v, tags in zip(members, tag_sets)}
    return common, rest


def _unique(ids, what):
    ids = list(ids)
    if len(set(ids)) != len(ids):
        raise ValueError(f"{what} are repeated: {ids!r}")
    return ids


class Snapshots(RegionCalls):
    """EBS snapshot calls in one region."""

    DEFAULT_WAITER_DELAY = WAITER_DELAY

    def __init__(self, aws_clients, region, **kw):
        super().__init__(aws_clients, region, **kw)
        self.not_found_grace = NOT_FOUND_GRACE

    def _batch(self, action, items, call, stop_on_error, done_message=None, say=True):
        items = list(items)
        if not items:
            return []
        return run_batch(self.ec2, self.region, action, items, call, max_workers=self.max_workers,
                         say=self._say if say else None, stop_on_error=stop_on_error,
                         done_message=done_message or (lambda item, result: f"{action} {result}"))

    # -- create ------------------------------------------------------------------------------
    def create_multi(self, instance_id, volume_ids, other_data_volume_ids=(), description="",
                     tags_by_volume=None, *, instance=None):
        """Snapshot ``volume_ids`` (attached to ``instance_id``) at one point in time with ONE
        CreateSnapshots call; {volume id: snapshot id} in ``volume_ids`` order.

        ``other_data_volume_ids``: volumes on the instance that are not members (excluded, as
        is every other volume DescribeInstances shows); ``tags_by_volume``: {volume id: tags};
        ``instance``: the DescribeInstances item when the caller has it (else it is asked for).
        ConflictError, before any call, when a member is not attached to the instance."""
        members = _unique(volume_ids, "volume ids")
        if not members:
            return {}
        tags_by_volume = tags_by_volume or {}
        if instance is None:
            instance = Ebs(self.aws, self.region).instance(instance_id)
        mapped = {m["Ebs"]["VolumeId"]: m.get("DeviceName") for m in instance.get("BlockDeviceMappings") or []
                  if m.get("Ebs", {}).get("VolumeId")}
        root = next((v for v, device in mapped.items() if device == instance.get("RootDeviceName")), None)
        missing = [v for v in members if v not in mapped]
        if missing:
            raise ConflictError(f"cannot snapshot {', '.join(missing)} together: not attached to {instance_id}")
        excluded = sorted((set(other_data_volume_ids or ()) | set(mapped)) - set(members) - {root})
        spec = {"InstanceId": instance_id, "ExcludeBootVolume": root not in members}
        if excluded:
            spec["ExcludeDataVolumeIds"] = excluded
        common, rest = _split_tags(members, tags_by_volume)
        kwargs = {"InstanceSpecification": spec, "Description": description or ""}
        if common:
            kwargs["TagSpecifications"] = [{"ResourceType": "snapshot", "Tags": _tag_list(common)}]

        def call(ec2, _index, params):
            with aws_errors(f"CreateSnapshots of {len(members)} volume(s) on {instance_id}"):
                return ec2.create_snapshots(**params).get("Snapshots") or []

        interrupted = None
        try:
            [answer] = self._batch("CreateSnapshots", [kwargs], call, stop_on_error=True, say=False)
        except BatchError as err:
            if not err.done:
                if err.interrupted:
                    err.snapshots = {}
                    raise
                raise next(iter(err.failed.values())) from None
            answer, interrupted = err.done[0], err
        taken = self._keep_members(instance_id, members, answer)
        if interrupted is not None:
            raise self._members_error("CreateSnapshots", members, taken, {}, interrupted=True)
        missed = [v for v in members if v not in taken]
        if missed:
            failed = {members.index(v): AwsError(f"CreateSnapshots on {instance_id} took no snapshot of {v}")
                      for v in missed}
            raise self._members_error("CreateSnapshots", members, taken, failed)
        self._say(f"started {len(members)} snapshot(s) of {instance_id} at one point in time")
        self._tag_each(members, taken, rest)
        return {v: taken[v] for v in members}

    def _keep_members(self, instance_id, members, answer):
        """{member volume id: snapshot id} of a CreateSnapshots answer; the snapshots of other
        volumes are deleted at once."""
        taken, extra = {}, {}
        for item in answer:
            volume_id, snapshot_id = item.get("VolumeId"), item.get("SnapshotId")
            if volume_id in members and volume_id not in taken:
                taken[volume_id] = snapshot_id
            elif snapshot_id:
                extra[snapshot_id] = volume_id
        if extra:
            listed = ", ".join(f"{s} of {v}" for s, v in extra.items())
            log.warning("CreateSnapshots on %s also snapshotted volumes that are not members: %s; deleting them",
                        instance_id, listed)
            _, refused = self.delete(list(extra))
            for snapshot_id, reason in refused.items():
                log.warning("could not delete %s (not a member): %s", snapshot_id, reason)
        return taken

    @staticmethod
    def _members_error(action, members, taken, failed, interrupted=False):
        done = {i: taken[v] for i, v in enumerate(members) if v in taken}
        skipped = [i for i in range(len(members)) if i not in done and i not in failed]
        err = BatchError(action, len(members), done, failed, skipped, interrupted)
        err.snapshots = {v: taken[v] for v in members if v in taken}
        return err

    def _tag_each(self, members, taken, rest):
        """CreateTags with each member's own tags (members without any are skipped)."""
        items = [(v, taken[v], rest.get(v) or {}) for v in members]

        def call(ec2, _index, item):
            volume_id, snapshot_id, tags = item
            if tags:
                with aws_errors(f"CreateTags on {snapshot_id} (snapshot of {volume_id})"):
                    ec2.create_tags(Resources=[snapshot_id], Tags=_tag_list(tags))
            return snapshot_id

        if not any(tags for _, _, tags in items):
            return
        try:
            self._batch("CreateTags", items, call, stop_on_error=False, say=False)
        except BatchError as err:
            every = {i: taken[v] for i, v in enumerate(members)}
            error = BatchError("CreateTags", len(members), every, err.failed, (), err.interrupted)
            if err.failed and not err.interrupted:
                error.message = (f"{next(iter(error.failed.values()))} ({len(err.done)} of {len(members)} "
                                 f"snapshot(s) tagged, all {len(members)} taken)")
                error.args = (error.message,)
            error.snapshots = {v: taken[v] for v in members}
            raise error from None

    def create_each(self, volume_ids, description="", tags_by_volume=None):
        """One CreateSnapshot per volume, in parallel, each with its tags; {volume id: snapshot
        id} in ``volume_ids`` order.  BatchError (``done`` {index: snapshot id}, ``snapshots``)
        when some fail; no new call starts after the first failure."""
        volume_ids = _unique(volume_ids, "volume ids")
        tags_by_volume = tags_by_volume or {}

        def call(ec2, index, volume_id):
            kwargs = {"VolumeId": volume_id, "Description": description or ""}
            tags = tags_by_volume.get(volume_id)
            if tags:
                kwargs["TagSpecifications"] = [{"ResourceType": "snapshot", "Tags": _tag_list(tags)}]
            with aws_errors(f"CreateSnapshot of {volume_id}"):
                return ec2.create_snapshot(**kwargs)["SnapshotId"]

        try:
            ids = self._batch("CreateSnapshot", volume_ids, call, stop_on_error=True,
                              done_message=lambda volume_id, snapshot_id: f"started {snapshot_id} of {volume_id}")
        except BatchError as err:
            err.snapshots = {volume_ids[i]: s for i, s in err.done.items()}
            raise
        return dict(zip(volume_ids, ids))

    # -- wait ----------------------------------------------------------------------------------
    def waiter(self, name="SnapshotsCompleted"):
        """The botocore waiter ``name`` of :data:`WAITERS` on this region's client."""
        from botocore.waiter import WaiterModel, create_waiter_with_client

        return create_waiter_with_client(name, WaiterModel(WAITERS), self.ec2)

    def wait_completed(self, snapshot_ids, timeout=DEFAULT_TIMEOUT, progress=None):
        """Wait until every snapshot is "completed"; {id: snapshot} of the last poll.

        ``progress`` (default: the instance's) gets one line per poll, e.g.
        "snapshots: snap-a 40%, snap-b 100%".  AwsError at once when one is in "error";
        NotFoundError when one stays unknown for ``not_found_grace`` seconds."""
        from botocore.exceptions import WaiterError

        snapshot_ids = list(dict.fromkeys(snapshot_ids))
        if not snapshot_ids:
            return {}
        say = progress or self.progress
        what = f"{len(snapshot_ids)} snapshot(s) to complete"
        config = {"Delay": self.waiter_delay, "MaxAttempts": waiter_attempts(timeout, self.waiter_delay)}
        last = {}
        started = time.monotonic()
        owner = threading.get_ident()

        def after_call(parsed, **_):
            if threading.get_ident() != owner:  # another thread's call on the shared client
                return
            error = parsed.get("Error")
            if error:
                if error.get("Code") == NOT_FOUND and time.monotonic() - started > self.not_found_grace:
                    raise NotFoundError(f"waiting for {what} failed: {NOT_FOUND}: "
                                        f"{error.get('Message') or 'unknown snapshot'}")
                return
            last.clear()
            last.update({s["SnapshotId"]: s for s in parsed.get("Snapshots") or []})
            if say:
                say(progress_line(snapshot_ids, last))

        event = "after-call.ec2.DescribeSnapshots"
        self.ec2.meta.events.register(event, after_call)
        try:
            with aws_errors(f"waiting for {what}"):
                try:
                    self.waiter().wait(SnapshotIds=snapshot_ids, WaiterConfig=config)
                except WaiterError as exc:
                    raise self._wait_error(exc, what, timeout) from None
        finally:
            self.ec2.meta.events.unregister(event, after_call)
        return {i: last[i] for i in snapshot_ids if i in last}

    @staticmethod
    def _wait_error(exc, what, timeout):
        response = exc.last_response or {}
        api_error = waiter_api_error(response, what)
        if api_error is not None:
            return api_error
        snapshots = response.get("Snapshots") or []
        broken = [s for s in snapshots if s.get("State") == "error"]
        if broken:
            listed = ", ".join(f"{s['SnapshotId']} is error{_reason(s)}" for s in broken)
            return AwsError(f"waiting for {what} failed: {listed}")
        listed = ", ".join(f"{s['SnapshotId']} is {_state_of(s)}" for s in snapshots)
        return AwsError(f"timed out after {timeout:g} s waiting for {what}: {listed}")

    # -- copy ----------------------------------------------------------------------------------
    def copy(self, source_region, snapshot_id, description=None, tags=None, token=None):
        """Copy ``snapshot_id`` of ``source_region`` into this region; the new snapshot id."""
        item = {"source_region": source_region, "snapshot_id": snapshot_id, "description": description,
                "tags": tags, "token": token}
        try:
            return self.copy_many([item])[0]
        except BatchError as err:
            if err.interrupted or not err.failed:
                raise
            raise next(iter(err.failed.values())) from None

    def copy_many(self, items):
        """CopySnapshot into this region for each item {source_region, snapshot_id, description,
        tags, token}, in parallel; {item index: new snapshot id}.

        Every source is described first (NotFoundError, before any copy, when one is missing);
        its tags (but ``aws:*``) are copied, then ``tags``, then ``ams:client-token``.  BatchError
        (``done`` {index: id}) when some copies fail; no new copy starts after the first failure."""
        items = [dict(item) for item in items]
        if not items:
            return {}
        tokens = [item.get("token") for item in items]
        for token in tokens:
            if token is not None and not CLIENT_TOKEN_RE.fullmatch(str(token)):
                raise UsageError(f"invalid client token {token!r}: at most 64 printable ASCII characters")
        given = [str(t) for t in tokens if t is not None]
        if len(set(given)) != len(given):
            raise ValueError(f"client tokens are repeated: {given!r}")
        sources = {}
        for region in dict.fromkeys(item["source_region"] for item in items):
            wanted = [item["snapshot_id"] for item in items if item["source_region"] == region]
            found = Snapshots(self.aws, region).describe(wanted)
            for snapshot_id in wanted:
                if snapshot_id not in found:
                    raise NotFoundError(f"snapshot {snapshot_id!r} not found in {region}")
                sources[(region, snapshot_id)] = found[snapshot_id]
        earlier = self._copies_by_token(given)

        def call(ec2, _index, item):
            token = None if item.get("token") is None else str(item["token"])
            if token in earlier:
                log.info("CopySnapshot of %s: %s carries token %s already", item["snapshot_id"], earlier[token], token)
                return earlier[token]
            source = sources[(item["source_region"], item["snapshot_id"])]
            tags = {k: v for k, v in _tags_of(source).items() if not k.startswith("aws:") and k != TOKEN_TAG}
            tags.update({str(k): str(v) for k, v in (item.get("tags") or {}).items()})
            if token is not None:
                tags[TOKEN_TAG] = token
            kwargs = {"SourceRegion": item["source_region"], "SourceSnapshotId": item["snapshot_id"]}
            if item.get("description"):
                kwargs["Description"] = item["description"]
            if tags:
                kwargs["TagSpecifications"] = [{"ResourceType": "snapshot", "Tags": _tag_list(tags)}]
            with aws_errors(f"CopySnapshot of {item['snapshot_id']} from {item['source_region']} to {self.region}"):
                return ec2.copy_snapshot(**kwargs)["SnapshotId"]

        ids = self._batch("CopySnapshot", items, call, stop_on_error=True,
                          done_message=lambda item, new_id: f"copying {item['snapshot_id']} from "
                                                            f"{item['source_region']} as {new_id}")
        return dict(enumerate(ids))

    def _copies_by_token(self, tokens):
        """{token: snapshot id} of this region's snapshots tagged with one of ``tokens`` (not
        in "error")."""
        wanted = set(tokens)
        found = {}
        for snapshot in describe_filtered(self.ec2, "describe_snapshots", "Snapshots", self.region,
                                          f"tag:{TOKEN_TAG}", tokens, page_size=PAGE_SIZE, OwnerIds=["self"]):
            token = _tags_of(snapshot).get(TOKEN_TAG)
            if token in wanted and snapshot.get("State") != "error":
                found.setdefault(token, snapshot["SnapshotId"])
        return found

    # -- delete and describe ---------------------------------------------------------------------
    def delete(self, snapshot_ids):
        """Delete every snapshot (all are tried); (deleted ids in order, refused {id: reason}).

        InvalidSnapshot.NotFound counts as deleted; every other error (InvalidSnapshot.InUse
        for a snapshot an AMI uses, throttling beyond the retries, ...) is a refusal, whose
        reason is one line.  Only Ctrl-C raises (BatchError, ``interrupted``)."""
        snapshot_ids = list(dict.fromkeys(snapshot_ids))

        def call(ec2, _index, snapshot_id):
            from botocore.exceptions import ClientError

            try:
                with aws_errors(f"DeleteSnapshot {snapshot_id}"):
                    try:
                        ec2.delete_snapshot(SnapshotId=snapshot_id)
                    except ClientError as exc:
                        if exc.response.get("Error", {}).get("Code") != NOT_FOUND:
                            raise
                        log.info("DeleteSnapshot %s: already gone", snapshot_id)
            except AmsError as err:
                return str(err)
            return None

        reasons = self._batch("DeleteSnapshot", snapshot_ids, call, stop_on_error=False,
                              done_message=lambda snapshot_id, reason: (
                                  f"could not delete {snapshot_id}" if reason else f"deleted {snapshot_id}"))
        deleted = [s for s, reason in zip(snapshot_ids, reasons) if reason is None]
        refused = {s: reason for s, reason in zip(snapshot_ids, reasons) if reason is not None}
        for snapshot_id, reason in refused.items():
            log.info("%s", reason)
        return deleted, refused

    def describe(self, snapshot_ids):
        """{snapshot id: DescribeSnapshots item} of this account's snapshots among
        ``snapshot_ids`` (unknown ids are absent)."""
        snapshots = describe_filtered(self.ec2, "describe_snapshots", "Snapshots", self.region, "snapshot-id",
                                      dict.fromkeys(snapshot_ids), page_size=PAGE_SIZE, OwnerIds=["self"])
        return {snapshot["SnapshotId"]: snapshot for snapshot in snapshots}

    def tagged(self, tag_key, page_size=None):
        """Every snapshot this account owns in this region carrying the tag ``tag_key``
        (DescribeSnapshots filtered by ``tag-key``, paginated); (items, number of pages)."""
        return describe_tagged(self.ec2, "describe_snapshots", "Snapshots", tag_key, self.region,
                               page_size=page_size or PAGE_SIZE, OwnerIds=["self"])

    def in_use_by_images(self, snapshot_ids):
        """{snapshot id: AMI id} of the given snapshots that this account's AMIs use (EC2 refuses
        to delete those, so a group is checked whole before any member is deleted).

        Up to FILTER_CHUNK ids: one filtered call.  More: the account's own AMIs are listed
        (one page per 1,000 AMIs) rather than one filtered call per FILTER_CHUNK ids."""
        wanted = set(snapshot_ids)
        used = {}
        if not wanted:
            return used
        filters = ([{"Name": "block-device-mapping.snapshot-id", "Values": sorted(wanted)}]
                   if len(wanted) <= FILTER_CHUNK else [])
        paginator = self.ec2.get_paginator("describe_images")
        with aws_errors(f"DescribeImages in {self.region}"):
            for page in paginator.paginate(Owners=["self"], Filters=filters):
                for image in page.get("Images", []):
                    for mapping in image.get("BlockDeviceMappings", []):
                        snapshot_id = mapping.get("Ebs", {}).get("SnapshotId")
                        if snapshot_id in wanted:
                            used[snapshot_id] = image["ImageId"]
        return used

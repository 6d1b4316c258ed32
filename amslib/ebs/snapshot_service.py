"""Snapshot groups: create (hooks and freeze), list, delete, copy across regions, clone.

A snapshot group is one snapshot of every member of a volume group, taken at one point in time,
with the group's layout (RAID level, chunk, member order, filesystem, array and filesystem
UUIDs) and its source (instance, hostname, mount point) recorded so it can be restored without
the original.  Every snapshot is tagged ``ams:snapshot-group-id`` and the layout tags, so the
group can be found from EC2 alone.

Creating one is a bracket: pre hook -> freeze -> start every member's snapshot -> thaw -> post
hook.  Once the pre hook has succeeded, thaw and post always run, whatever fails in between
(EC2 error, lost connection, Ctrl-C); on the host a watchdog thaws by itself after
FREEZE_TIMEOUT should ams die while the filesystem is frozen.  A snapshot's point in time is
when EC2 accepts the call, so the filesystem is thawed right after that, not at completion.
"""

import json
import logging
import secrets
from datetime import timedelta

from ..core.errors import AmsError, ConflictError, NotFoundError, RemoteCommandError, UsageError
from ..hostdisk import freeze as freeze_mod
from ..hostdisk.mountpoint import check_mount_point
from ..instance.validation import check_row_id
from ..store import snapshot_groups as store
from ..store import volume_groups as vg_store
from ..store.types import utcnow
from . import params, volume_plans, volume_service
from .runner import Execution, describe_plan, run_plan

log = logging.getLogger("ams.ebs.snapshots")

MAX_DESCRIPTION = 255  # EC2's limit for a snapshot description
# DeleteSnapshot calls at once in a purge: light calls, and many of them (an hourly schedule's
# groups expire daily); EC2 throttles past its request rate and botocore's retry mode waits
DELETE_WORKERS = 16
DELETE_LEASE = timedelta(minutes=30)  # a group left "deleting" by an ams that died is retried after this


# ---------------------------------------------------------------------------------------------
# checks and lookups

def check_description(text):
    if text is None:
        return None
    if len(text) > MAX_DESCRIPTION:
        raise UsageError(f"description is longer than {MAX_DESCRIPTION} characters (EC2's limit)")
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise UsageError(f"invalid description {text!r}: control characters are not allowed")
    return text


def check_snapshot_group_id(text):
    return check_row_id(text, "snapshot group id")


def load_snapshot_group(conn, group_id):
    group = store.get_group(conn, group_id)
    if group is None or group["deleted_at"] is not None:
        raise NotFoundError(f"snapshot group {group_id} not found" + (" (it was deleted)" if group else ""))
    return group, store.members(conn, group_id)


def source_volume_group(conn, *, group_id=None, host=None, instance=None, mount_point=None):
    """(volume group, members, attachment) named by id or by host/instance + mount point."""
    if group_id is None:
        mount_point = check_mount_point(mount_point)
        target = volume_service.resolve_target(conn, host, instance)
        group_id = volume_service.group_at(conn, target, mount_point)
    else:
        group_id = volume_service.check_group_id(group_id)
    group, members, attachment = volume_service.load_group(conn, group_id)
    if group["state"] != "available":
        raise ConflictError(f"volume group {group_id} is {group['state']}; only an available group can be snapshotted")
    if not members:
        raise ConflictError(f"volume group {group_id} has no volumes")
    return group, members, attachment


def snapshot_tags(snapshot_group_id, group, member_index, expires_at, user_tags, *, member_count=None,
                  source_instance_id=None, source_mount_point=None, retention_kind=None):
    """The tags of one member snapshot: the volume group's layout and identity, the snapshot
    group, its expiry, retention and source, so ``ams snapshot discovery`` can rebuild its row."""
    tags = dict(user_tags or {})
    stripe = group["stripe_block_size"] if group["raid_level"] not in (None, 1) else None
    tags.update(params.group_tags(group["id"], group["raid_level"], member_index, stripe, group["fs_type"],
                                  name=f"ams-sg{snapshot_group_id}-{member_index}", member_count=member_count))
    tags.update(params.identity_tags(group.get("array_name"), group.get("md_uuid"), group.get("fs_uuid")))
    tags["ams:snapshot-group-id"] = str(snapshot_group_id)
    if expires_at is not None:
        tags["ams:expires"] = expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    optional = {"ams:retention": retention_kind, "ams:source-instance-id": source_instance_id,
                "ams:source-mount-point": source_mount_point}
    tags.update({key: str(value) for key, value in optional.items() if value})
    return tags


def _json(value):
    return json.dumps(value, sort_keys=True) if value else None


def _snapshots(ctx, region, **kwargs):
    from ..aws.snapshots import Snapshots

    return Snapshots(ctx.aws, region, progress=ctx.out.step, **kwargs)


def _wait(ctx, snaps, snapshot_ids):
    snaps.wait_completed(snapshot_ids, timeout=ctx.settings.SNAPSHOT_WAIT_TIMEOUT, progress=ctx.out.waiting)


# ---------------------------------------------------------------------------------------------
# create

def create(ctx, *, group_id=None, host=None, instance=None, mount_point=None, pre=None, post=None,
           description=None, freeze=False, tags=None, wait=False, dry_run=False,
           expires_at=None, schedule_id=None, retention_kind=None):
    pre = freeze_mod.check_hook(pre, name="--pre hook") if pre is not None else None
    post = freeze_mod.check_hook(post, name="--post hook") if post is not None else None
    description = check_description(description)
    user_tags = params.parse_tags(tags or [])
    engine = ctx.engine()
    with engine.connect() as conn:
        vg, members, attachment = source_volume_group(conn, group_id=group_id, host=host, instance=instance,
                                                      mount_point=mount_point)
    # (a scheduled run of a group detached since only warns: see _take)
    if freeze and attachment is None:
        raise ConflictError(f"--freeze: volume group {vg['id']} is attached nowhere; freezing needs its filesystem "
                            "mounted on a host")
    if attachment is None and (pre is not None or post is not None):
        option = "--pre" if pre is not None else "--post"
        raise ConflictError(f"{option}: volume group {vg['id']} is attached nowhere; hooks run on the host it is "
                            "attached to (leave them out to snapshot it as it is)")
    return take(ctx, vg, members, attachment, pre=pre, post=post, description=description, freeze=freeze,
                user_tags=user_tags, wait=wait, dry_run=dry_run, expires_at=expires_at,
                schedule_id=schedule_id, retention_kind=retention_kind)


WAIT_STEP = "EC2 wait until every snapshot is completed"


def take(ctx, vg, members, attachment, *, wait, dry_run, command="snapshot create", **options):
    """Snapshot every member of ``vg`` (checked already); returns the result dict.

    The volume group's lock (for ``command``) is held from the pre hook to the post hook, and the
    group, its members and its attachment are read again under it (a detach or delete may have
    finished meanwhile); it is not held while waiting for completion (``wait``): a detach does not
    disturb snapshots that have started.  ``options``: the keyword arguments of :func:`_take`."""
    if dry_run:
        with volume_service.group_lock(ctx, vg["id"], command, dry_run=True):
            return _take(ctx, vg, members, attachment, wait=wait, dry_run=True, **options)
    with volume_service.group_lock(ctx, vg["id"], command):
        with ctx.engine().connect() as conn:
            vg, members, attachment = source_volume_group(conn, group_id=vg["id"])
        result = _take(ctx, vg, members, attachment, wait=False, dry_run=False, **options)
    if wait:
        result["plan"].append(WAIT_STEP)
        _wait(ctx, _snapshots(ctx, vg["region"]), result["snapshot_ids"])
        _mark_completed(ctx.engine(), result["snapshot_group_id"], result["snapshot_ids"])
        result["state"] = "completed"
    return result


def _take(ctx, vg, members, attachment, *, pre, post, description, freeze, user_tags, wait, dry_run,
          expires_at=None, schedule_id=None, retention_kind=None):
    """The snapshot of :func:`take` (``wait`` only adds its step to a dry run's plan)."""
    engine = ctx.engine()
    warnings = []
    hostdisk = None
    mount_point = attachment["mount_point"] if attachment else None
    if attachment is None:
        if pre or post or freeze:
            warnings.append(f"volume group {vg['id']} is attached nowhere: snapshot taken without hooks or freeze")
        pre = post = None
        freeze = False
    else:
        hostdisk = volume_service._host(ctx, attachment["hostname"])
        hostdisk.verify_instance(attachment["instance_id"])
        if freeze:
            if not mount_point or not hostdisk.is_mounted(mount_point):
                raise ConflictError(f"--freeze: volume group {vg['id']} is not mounted on {attachment['hostname']}")
            freeze_mod.check_freezable(mount_point)
    for warning in warnings:
        ctx.out.warning(warning)
    volume_ids = [m["volume_id"] for m in members]
    snaps = _snapshots(ctx, vg["region"])
    multi = attachment is not None and len(members) > 1
    other_data = []
    if multi:
        from ..aws.ebs import Ebs

        instance_info = Ebs(ctx.aws, vg["region"]).instance(attachment["instance_id"])
        root = instance_info.get("RootDeviceName")
        other_data = sorted(
            m["Ebs"]["VolumeId"] for m in instance_info.get("BlockDeviceMappings", [])
            if m.get("Ebs", {}).get("VolumeId") not in volume_ids and m.get("DeviceName") != root
        )
    host = attachment["hostname"] if attachment else None
    plan = []
    if pre:
        plan.append(f"host {host}: run the pre hook (sudo sh -c …, timeout {ctx.settings.HOOK_TIMEOUT:g}s)")
    if freeze:
        plan.append(f"host {host}: fsfreeze -f {mount_point} (thawed by the host itself after {ctx.settings.FREEZE_TIMEOUT:g}s at the latest)")
    if multi:
        plan.append(f"EC2 CreateSnapshots of instance {attachment['instance_id']}: {', '.join(volume_ids)} "
                    f"(crash-consistent; other data volumes excluded)")
    else:
        plan.append(f"EC2 CreateSnapshot x{len(volume_ids)}: {', '.join(volume_ids)}")
    if freeze:
        plan.append(f"host {host}: fsfreeze -u {mount_point}")
    if post:
        plan.append(f"host {host}: run the post hook")
    if wait:
        plan.append(WAIT_STEP)
    if dry_run:
        return {"dry_run": True, "plan": plan, "warnings": warnings, "snapshot_group_id": None}

    now = utcnow()
    with engine.begin() as conn:
        sg_id = store.insert_group(conn, {
            "volume_group_id": vg["id"], "region": vg["region"], "description": description,
            "schedule_id": schedule_id, "retention_kind": retention_kind, "created_at": now,
            "state": "pending", "expires_at": expires_at, "raid_level": vg["raid_level"],
            "stripe_block_size": vg["stripe_block_size"], "fs_type": vg["fs_type"],
            "array_name": vg["array_name"], "md_uuid": vg["md_uuid"], "fs_uuid": vg["fs_uuid"],
            "member_count": len(members),
            "source_instance_id": attachment["instance_id"] if attachment else None,
            "source_hostname": attachment["hostname"] if attachment else None,
            "source_mount_point": mount_point, "tags": _json(user_tags),
        })
    tags_by_volume = {m["volume_id"]: snapshot_tags(
        sg_id, vg, m["member_index"], expires_at, user_tags, member_count=len(members),
        source_instance_id=attachment["instance_id"] if attachment else None, source_mount_point=mount_point,
        retention_kind=retention_kind) for m in members}
    ec2_description = description or f"ams snapshot group {sg_id} of volume group {vg['id']}"

    def start():
        if multi:
            return snaps.create_multi(attachment["instance_id"], volume_ids, other_data, ec2_description, tags_by_volume)
        return snaps.create_each(volume_ids, ec2_description, tags_by_volume)

    try:
        started = _bracket(ctx, hostdisk, mount_point, pre, post, freeze, start,
                           on_started=lambda created: _record_snapshots(engine, sg_id, members, created, expires_at),
                           hook_env={"AMS_MOUNT_POINT": mount_point or "", "AMS_VOLUME_GROUP_ID": str(vg["id"])})
    except BaseException as exc:
        _forget_partial(ctx, engine, snaps, sg_id, exc)
        raise
    result = {"dry_run": False, "snapshot_group_id": sg_id, "volume_group_id": vg["id"],
              "snapshot_ids": [started[v] for v in volume_ids], "state": "pending", "plan": plan,
              "expires_at": expires_at, "warnings": warnings}
    return result


def _record_snapshots(engine, sg_id, members, created, expires_at):
    """Record the snapshots EC2 accepted (called inside the bracket, right after the call)."""
    now = utcnow()
    by_volume = {m["volume_id"]: m for m in members}
    rows = []
    for volume_id, snapshot_id in created.items():
        m = by_volume[volume_id]
        rows.append({
            "snapshot_id": snapshot_id, "snapshot_group_id": sg_id, "volume_id": volume_id,
            "member_index": m["member_index"], "size_gib": m["size_gib"], "region": None, "expires_at": expires_at,
            "created_at": now, "state": "pending", "volume_type": m["volume_type"], "iops": m["iops"],
            "throughput": m["throughput"], "encrypted": bool(m.get("encrypted")),
        })
    with engine.begin() as conn:
        region = store.get_group(conn, sg_id)["region"]
        for row in rows:
            row["region"] = region
        store.insert_snapshots(conn, rows)


def _forget_partial(ctx, engine, snaps, sg_id, exc):
    """After a failed create: delete the snapshots that were started (not a point in time for
    the whole group) and mark the group deleted; the error says what happened."""
    from ..aws.ebs import BatchError

    with engine.connect() as conn:
        recorded = [m["snapshot_id"] for m in store.members(conn, sg_id)]
    started = set(recorded)
    if isinstance(exc, BatchError):
        started |= set(exc.done.values())
    deleted, refused = (snaps.delete(sorted(started)) if started else ([], {}))
    with engine.begin() as conn:
        store.mark_snapshots_deleted(conn, deleted, utcnow())
        if refused:
            store.update_group(conn, sg_id, {"state": "failed"})
        else:
            store.mark_group_deleted(conn, sg_id, utcnow())
    if isinstance(exc, AmsError) and started:
        clause = f"the {len(deleted)} snapshot(s) already started were deleted"
        if refused:
            clause += f"; could not delete {', '.join(sorted(refused))} (snapshot group {sg_id} kept as failed)"
        exc.message = f"{exc.message} ({clause})"
        exc.args = (exc.message,)


def _bracket(ctx, hostdisk, mount_point, pre, post, freeze, start, on_started, hook_env):
    """pre -> freeze -> start() -> thaw -> post; thaw and post always run once pre succeeded.

    Hooks run as root with AMS_HOOK (pre|post), AMS_MOUNT_POINT and AMS_VOLUME_GROUP_ID set."""
    settings = ctx.settings
    from ..hostdisk.remote import FreezeRefused

    if pre:
        ctx.out.step("running the pre hook")
        hostdisk.run_hook(pre, "pre", timeout=settings.HOOK_TIMEOUT, env=dict(hook_env, AMS_HOOK="pre"))
    problems = []
    try:
        frozen = False
        try:
            if freeze:
                ctx.out.step(f"freezing {mount_point}")
                try:
                    hostdisk.freeze(mount_point, settings.FREEZE_TIMEOUT)
                except FreezeRefused:
                    raise
                except BaseException:
                    frozen = True  # it may have frozen before the failure: thaw to be sure
                    raise
                frozen = True
            ctx.out.step("starting the snapshots")
            created = start()
            on_started(created)
            return created
        finally:
            if frozen:
                try:
                    ctx.out.step(f"thawing {mount_point}")
                    if hostdisk.thaw(mount_point) == freeze_mod.THAWED_BY_WATCHDOG:
                        ctx.out.warning(f"the host's watchdog thawed {mount_point} before the snapshots started; "
                                        "the snapshot is crash-consistent only (raise FREEZE_TIMEOUT)")
                except Exception as exc:  # keep going: the post hook must still run
                    problems.append(f"thaw of {mount_point} failed: {exc} (the host's watchdog thaws it within "
                                    f"{settings.FREEZE_TIMEOUT:g}s)")
    finally:
        if post:
            try:
                ctx.out.step("running the post hook")
                hostdisk.run_hook(post, "post", timeout=settings.HOOK_TIMEOUT, env=dict(hook_env, AMS_HOOK="post"))
            except Exception as exc:
                problems.append(f"post hook failed: {exc}")
        if problems:
            _report_problems(problems)


def _report_problems(problems):
    """Thaw/post failures: raised when nothing else failed, else added to the error in flight."""
    import sys

    current = sys.exc_info()[1]
    text = "; ".join(problems)
    if current is None:
        raise RemoteCommandError(text)
    if isinstance(current, AmsError):
        current.message = f"{current.message}; also: {text}"
        current.args = (current.message,)


def _mark_completed(engine, sg_id, snapshot_ids):
    with engine.begin() as conn:
        for snapshot_id in snapshot_ids:
            store.update_snapshot(conn, snapshot_id, {"state": "completed", "progress": 100})
        store.update_group(conn, sg_id, {"state": "completed"})


# ---------------------------------------------------------------------------------------------
# state refresh, list

def refresh(ctx, groups):
    """Ask EC2 about the members of pending groups; record their progress and completion."""
    engine = ctx.engine()
    pending = [g for g in groups if g["state"] == "pending"]
    by_region = {}
    with engine.connect() as conn:
        for g, members in store.members_of_groups(conn, pending):
            by_region.setdefault(g["region"], []).append((g, members))
    for region, items in by_region.items():
        ids = [m["snapshot_id"] for _, members in items for m in members]
        found = _snapshots(ctx, region).describe(ids) if ids else {}
        with engine.begin() as conn:
            for group, members in items:
                states = []
                for m in members:
                    snap = found.get(m["snapshot_id"])
                    state = snap.get("State", "pending") if snap else "missing"
                    progress = _percent(snap.get("Progress")) if snap else None
                    store.update_snapshot(conn, m["snapshot_id"], {"state": state, "progress": progress})
                    states.append(state)
                new = _group_state(states)
                if new != group["state"]:
                    store.update_group(conn, group["id"], {"state": new})
                    group["state"] = new


def _percent(text):
    try:
        return int(str(text).rstrip("%"))
    except (TypeError, ValueError):
        return None


def _group_state(states):
    if not states:
        return "failed"
    if all(s == "completed" for s in states):
        return "completed"
    if any(s in ("error", "missing") for s in states):
        return "error"
    return "pending"


def list_groups(ctx, **filters):
    engine = ctx.engine()
    with engine.connect() as conn:
        if filters.get("volume_group_id") is not None:
            volume_service.require_group_row(conn, filters["volume_group_id"])
        rows = store.list_groups(conn, **filters)
    if any(r["state"] == "pending" for r in rows):
        refresh(ctx, rows)
        with engine.connect() as conn:
            rows = store.list_groups(conn, **filters)
    return rows


# ---------------------------------------------------------------------------------------------
# delete

def delete(ctx, *, group_id, dry_run=False):
    group_id = check_snapshot_group_id(group_id)
    with ctx.engine().connect() as conn:
        group, members = load_snapshot_group(conn, group_id)
    return _delete_groups(ctx, [(group, members)], dry_run=dry_run)[0]


def delete_expired(ctx, *, now=None, dry_run=False, keep=frozenset()):
    """Delete every group whose expiry has passed (``keep``: group ids to spare)."""
    now = now or utcnow()
    engine = ctx.engine()
    with engine.connect() as conn:
        groups = store.members_of_groups(conn, [g for g in store.expired(conn, now) if g["id"] not in keep])
    return _delete_groups(ctx, groups, dry_run=dry_run)


def _delete_groups(ctx, groups, *, dry_run):
    """Delete each group's snapshots; a group EC2 refuses any member of is kept whole in the
    database (the refused members are reported, the deleted ones recorded as deleted).

    Per region: one DescribeImages check, one transaction claiming the groups, one bounded
    batch of DeleteSnapshot calls for all of them, one transaction recording the outcome."""
    engine = ctx.engine()
    results = {}
    by_region = {}
    for group, members in groups:
        by_region.setdefault(group["region"], []).append((group, members))
    for region, items in by_region.items():
        snaps = _snapshots(ctx, region, max_workers=DELETE_WORKERS)
        ids = [m["snapshot_id"] for _, members in items for m in members]
        in_use = snaps.in_use_by_images(ids) if ids else {}
        wanted = []
        for group, members in items:
            member_ids = [m["snapshot_id"] for m in members]
            blocked = {s: f"used by {in_use[s]}" for s in member_ids if s in in_use}
            results[group["id"]] = {"snapshot_group_id": group["id"], "region": region, "snapshot_ids": member_ids,
                                    "deleted": [], "refused": blocked, "dry_run": dry_run, "skipped": None,
                                    "expires_at": group["expires_at"]}
            if not blocked and not dry_run:
                wanted.append((group, member_ids))
        if not wanted:
            continue
        now = utcnow()
        with engine.begin() as conn:  # one ams deletes a group; another running at once skips it
            claimed = [(g, m) for g, m in wanted if store.claim_for_delete(conn, g["id"], now, now + DELETE_LEASE)]
        for group_id in {g["id"] for g, _ in wanted} - {g["id"] for g, _ in claimed}:
            results[group_id]["skipped"] = "another ams is deleting it"
        if not claimed:
            continue
        deleted, refused = snaps.delete([s for _, member_ids in claimed for s in member_ids])
        deleted = set(deleted)
        now = utcnow()
        with engine.begin() as conn:
            store.mark_snapshots_deleted(conn, deleted, now)
            for group, member_ids in claimed:
                kept = {s: refused[s] for s in member_ids if s in refused}
                if kept:
                    store.release_delete_claim(conn, group["id"], group["state"] if group["state"] != "deleting" else "completed")
                else:
                    store.mark_group_deleted(conn, group["id"], now)
                results[group["id"]].update(deleted=sorted(s for s in member_ids if s in deleted), refused=kept)
    return [results[group["id"]] for group, _ in groups]


# ---------------------------------------------------------------------------------------------
# copy across regions

def copy(ctx, *, group_id, region, dry_run=False):
    from ..instance.validation import check_region

    group_id = check_snapshot_group_id(group_id)
    region = check_region(region)
    with ctx.engine().connect() as conn:
        group, members = load_snapshot_group(conn, group_id)
    return copy_group(ctx, group, members, region, dry_run=dry_run)


def _require_completed(ctx, group):
    if group["state"] == "pending":
        refresh(ctx, [group])
    if group["state"] != "completed":
        raise ConflictError(f"snapshot group {group['id']} is {group['state']}, not completed; "
                            "wait until it completes ('ams snapshot list' shows its progress)")


def copy_group(ctx, group, members, region, *, dry_run=False):
    """The group's copy in ``region``: an existing one, or a new one (waited for)."""
    if group["region"] == region:
        raise UsageError(f"snapshot group {group['id']} is already in {region}")
    _check_region_known(ctx, region)
    engine = ctx.engine()
    with engine.connect() as conn:
        existing = store.copy_in_region(conn, group["id"], region)
        copies = store.members(conn, existing["id"]) if existing is not None else []
    if existing is not None and len(copies) < len(members):
        # an ams died between CopySnapshot and recording the copies (findable by their tag
        # ams:snapshot-group-id): not a copy to reuse; it is marked failed and a new one made
        if not dry_run:
            with engine.begin() as conn:
                store.update_group(conn, existing["id"], {"state": "failed"})
        existing = None
    if existing is not None:
        if existing["state"] == "pending" and not dry_run:
            _wait(ctx, _snapshots(ctx, region), [m["snapshot_id"] for m in copies])
            _mark_completed(engine, existing["id"], [m["snapshot_id"] for m in copies])
        return {"dry_run": dry_run, "snapshot_group_id": existing["id"], "copied_from_id": group["id"],
                "region": region, "reused": True, "plan": []}
    _require_completed(ctx, group)
    plan = [f"EC2 CopySnapshot x{len(members)} from {group['region']} to {region}, tags copied; wait until completed"]
    if dry_run:
        return {"dry_run": True, "snapshot_group_id": None, "copied_from_id": group["id"], "region": region,
                "reused": False, "plan": plan}
    snaps = _snapshots(ctx, region)
    source = _snapshots(ctx, group["region"]).describe([m["snapshot_id"] for m in members])
    now = utcnow()
    with engine.begin() as conn:
        values = {k: group[k] for k in ("volume_group_id", "description", "schedule_id", "retention_kind",
                                        "expires_at", "raid_level", "stripe_block_size", "fs_type", "array_name",
                                        "md_uuid", "fs_uuid", "member_count", "source_instance_id",
                                        "source_hostname", "source_mount_point", "tags")}
        values.update(region=region, copied_from_id=group["id"], created_at=now, state="pending")
        copy_id = store.insert_group(conn, values)
    token = secrets.token_hex(8)
    items = []
    for m in members:
        tags = {t["Key"]: t["Value"] for t in source.get(m["snapshot_id"], {}).get("Tags", [])}
        tags["ams:snapshot-group-id"] = str(copy_id)
        tags["ams:copied-from"] = f"{group['region']}/{m['snapshot_id']}"
        items.append({"source_region": group["region"], "snapshot_id": m["snapshot_id"],
                      "description": f"ams copy of snapshot group {group['id']} ({m['snapshot_id']})",
                      "tags": tags, "token": f"ams-{token}-{copy_id}-{m['member_index']}"})
    try:
        done = snaps.copy_many(items)
        _record_copies(engine, copy_id, members, done, region)
        copy_ids = [done[i] for i in range(len(members))]
        _wait(ctx, snaps, copy_ids)
    except BaseException as exc:
        _forget_partial(ctx, engine, snaps, copy_id, exc)
        raise
    _mark_completed(engine, copy_id, copy_ids)
    return {"dry_run": False, "snapshot_group_id": copy_id, "copied_from_id": group["id"], "region": region,
            "reused": False, "plan": plan, "snapshot_ids": copy_ids}


def _record_copies(engine, copy_id, members, done, region):
    now = utcnow()
    rows = []
    for index, snapshot_id in done.items():
        m = members[index]
        rows.append({
            "snapshot_id": snapshot_id, "snapshot_group_id": copy_id, "volume_id": m["volume_id"],
            "member_index": m["member_index"], "size_gib": m["size_gib"], "region": region,
            "expires_at": m["expires_at"], "created_at": now, "state": "pending",
            "volume_type": m["volume_type"], "iops": m["iops"], "throughput": m["throughput"],
            "encrypted": m["encrypted"], "source_snapshot_id": m["snapshot_id"],
        })
    with engine.begin() as conn:
        store.insert_new_snapshots(conn, copy_id, rows)


def _check_region_known(ctx, region):
    """The target region must be enabled for the account (DescribeRegions), whatever AWS_REGIONS says."""
    ctx.aws.require_regions([region])


# ---------------------------------------------------------------------------------------------
# clone

def resolve_source(conn, *, snapshot_group_id=None, volume_group_id=None, host=None, instance=None,
                   mount_point=None):
    """The snapshot group a clone starts from: given, or the latest of a volume group or of a
    host's/instance's mount point."""
    if snapshot_group_id is not None:
        return load_snapshot_group(conn, check_snapshot_group_id(snapshot_group_id))
    if volume_group_id is not None:
        found = store.latest(conn, volume_group_id=volume_service.check_group_id(volume_group_id))
        what = f"volume group {volume_group_id}"
    else:
        mount_point = check_mount_point(mount_point)
        if host is not None:
            from ..instance.validation import check_hostname

            found = store.latest(conn, host_field="hostname", exact=check_hostname(host), mount_point=mount_point)
            what = f"{host}:{mount_point}"
        else:
            from ..instance.validation import check_instance_id

            found = store.latest(conn, host_field="instance_id", exact=check_instance_id(instance),
                                 mount_point=mount_point)
            what = f"{instance}:{mount_point}"
    if found is None:
        raise NotFoundError(f"no snapshot group of {what}")
    return found, store.members(conn, found["id"])


@volume_service.holds_group_lock
def clone(ctx, *, source, zone=None, host=None, instance=None, mount_point=None, automount=True, iops=None,
          volume_type=None, size=None, keep_on_failure=False, dry_run=False, verify=False, lock_group):
    """A new volume group from a snapshot group (``source`` = resolve_source kwargs), in the
    target's zone; copied to the target's region first when needed; attached (its array
    assembled, never re-created) and mounted when a host is given.

    ``verify`` (``snapshot verify``'s scratch copy): tagged ``ams:verify-of``, recorded as
    "verifying", attached but never assembled, renewed, mounted or written to."""
    from ..instance.hosts import check_zone_exists

    mount_point = check_mount_point(mount_point) if mount_point is not None else None
    if mount_point and zone and not (host or instance):
        raise UsageError("-m needs a host (-H or -i) to mount on")
    engine = ctx.engine()
    with engine.connect() as conn:
        group, members = resolve_source(conn, **source)
        target = volume_service.resolve_target(conn, host, instance) if (host or instance) else None
        if target and mount_point:
            volume_service._check_mount_point_free(conn, target, mount_point)
    if target is not None:
        zone, region = target.zone, target.region
    else:
        zone, region = check_zone_exists(ctx.aws, zone)
    if not members:
        raise ConflictError(f"snapshot group {group['id']} has no snapshots")
    specs = [_clone_spec(m, volume_type, iops, size) for m in members]
    hostdisk = None
    instance_info = None
    if target is not None:
        ebs = volume_service._ebs(ctx, region)
        instance_info = volume_service._running_instance(ebs, target)
        hostdisk = volume_service._host(ctx, target.hostname)
        hostdisk.verify_instance(target.instance_id)
        if mount_point:
            volume_service._check_not_mounted(hostdisk, target, mount_point)
    _require_completed(ctx, group)  # after every check: it records the snapshots' progress
    copied = None
    verify_of = group["id"]
    if region != group["region"]:
        copied = copy_group(ctx, group, members, region, dry_run=dry_run)
        if not dry_run:
            with engine.connect() as conn:
                group, members = load_snapshot_group(conn, copied["snapshot_group_id"])
    plan_lines = list(copied["plan"]) if copied else []
    if dry_run:
        plan_lines.append(f"EC2 CreateVolume x{len(members)} from the snapshots of group {group['id']} in {zone}")
        if target and verify:
            plan_lines.append(f"attach to {target.hostname} (nothing assembled, renewed or written by the attach)")
        elif target:
            plan_lines.append(f"attach to {target.hostname}, assemble (never create) and mount at {mount_point or '(not mounted)'}")
        return {"dry_run": True, "plan": plan_lines, "volume_group_id": None}
    with engine.connect() as conn:
        device_names = volume_service._free_devices(conn, instance_info, len(members)) if target else []
    from ..store import group_locks

    now = utcnow()
    owner = group_locks.owner_text("snapshot clone")
    with engine.begin() as conn:  # the new group is locked from its INSERT on (released when clone returns)
        new_id = vg_store.insert_group(conn, {
            **group_locks.claim_values(owner, now),
            "raid_level": group["raid_level"], "stripe_block_size": group["stripe_block_size"],
            "fs_type": group["fs_type"], "region": region, "availability_zone": zone, "state": "creating",
            # a scratch copy does not take its source's identity: a later 'volume detach' of a copy
            # kept by 'snapshot verify --keep' must not touch the original's fstab/mdadm.conf lines
            **({} if verify else {"array_name": group["array_name"], "md_uuid": group["md_uuid"],
                                  "fs_uuid": group["fs_uuid"]}),
            "created_at": now, "cloned_from_id": group["id"],
            "tags": _json({"ams:verify-of": str(verify_of)} if verify else None),
        })
    lock_group(new_id, "snapshot clone", owner=owner)
    token = secrets.token_hex(8)
    requests = []
    for spec, m in zip(specs, members):
        tags = params.group_tags(new_id, group["raid_level"], m["member_index"],
                                 group["stripe_block_size"] if group["raid_level"] not in (None, 1) else None,
                                 group["fs_type"], member_count=len(members))
        tags["ams:cloned-from"] = m["snapshot_id"]
        if verify:
            tags["ams:verify-of"] = str(verify_of)
        requests.append({"spec": spec, "zone": zone, "tags": tags, "token": f"ams-{token}-{new_id}-{m['member_index']}",
                         "snapshot_id": m["snapshot_id"]})
    from . import volume_actions as act

    plan = [act.CreateVolumes(new_id, requests), act.WaitAvailable()]
    new_group = dict(raid_level=group["raid_level"], id=new_id, array_name=group["array_name"],
                     md_uuid=group["md_uuid"], fs_uuid=group["fs_uuid"], fs_type=group["fs_type"])
    if target is not None and verify:
        plan += [act.AttachVolumes(new_id, target.instance_id, list(device_names), None, created_here=True),
                 act.WaitAttached(), act.VerifyInstance(target.hostname, target.instance_id),
                 act.WaitDevices(target.hostname, None, list(device_names))]
    elif target is not None:
        vols = [{"volume_id": None, "device_name": d} for d in device_names]
        plan += _attach_after_create(new_group, vols, target, device_names, mount_point, automount and mount_point is not None)
    plan.append(act.MarkGroup(new_id, "verifying" if verify else "available"))
    ex = Execution(engine=engine, ec2=volume_service._ebs(ctx, region), host=hostdisk, progress=ctx.out.step)
    try:
        run_plan(plan, ex, keep_on_failure=keep_on_failure)
    except BaseException:
        with engine.begin() as conn:
            gone = not vg_store.members(conn, new_id)
            vg_store.update_group(conn, new_id, {"state": "deleted", "deleted_at": utcnow()} if gone and not keep_on_failure
                                  else {"state": "failed"})
        raise
    return {"dry_run": False, "volume_group_id": new_id, "snapshot_group_id": group["id"],
            "copied": copied["snapshot_group_id"] if copied else None, "zone": zone,
            "volume_ids": ex.state["volume_ids"], "instance_id": target.instance_id if target else None,
            "mount_point": mount_point, "block_device": ex.state.get("block_device"),
            "os_devices": ex.state.get("os_devices"), "stable_devices": ex.state.get("stable_devices"),
            "plan": describe_plan(plan)}


def _attach_after_create(group, members, target, device_names, mount_point, automount):
    """The attach half of a clone (the volume ids come from the create step at run time)."""
    plan = volume_plans.plan_attach(group, members, target, device_names, mount_point, automount, renew_identity=True)
    for action in plan:
        if hasattr(action, "volume_ids") and action.volume_ids == [None] * len(members):
            action.volume_ids = None  # WaitDevices: take the ids the create step left in the state
    return plan


def _clone_spec(member, volume_type, iops, size):
    """The VolumeSpec of a member's clone: the source's settings unless overridden.

    ``iops`` 0 drops provisioned IOPS; ``size`` may only grow the volume.
    """
    vtype = volume_type or member["volume_type"] or params.DEFAULT_TYPE
    if iops == 0:
        new_iops = None
    elif iops is not None:
        new_iops = iops
    else:
        new_iops = member["iops"] if vtype == member["volume_type"] else None
    if size is not None and size < member["size_gib"]:
        raise UsageError(f"--size {size} is smaller than the snapshot of member {member['member_index']} "
                         f"({member['size_gib']} GiB); a clone can only grow")
    throughput = member["throughput"] if vtype == member["volume_type"] == "gp3" and iops is None else None
    if vtype == "gp3" and new_iops is not None and throughput is None and member["throughput"] and iops is None:
        throughput = member["throughput"]
    return params.check_volume_spec(vtype, size or member["size_gib"], new_iops, throughput,
                                    bool(member.get("encrypted")), None)

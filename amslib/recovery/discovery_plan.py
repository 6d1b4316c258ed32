"""Discovery planning: the ``ams:*`` tags EC2 holds versus the stored rows (pure: no I/O).

``plan_volumes`` takes what DescribeVolumes returned per region (volumes tagged
``ams:volume-group-id``) and the stored rows, and decides which rows of ``volume_groups``,
``volumes`` and ``host_volumes`` to insert, repair or mark deleted; ``plan_snapshots`` does the
same for ``snapshot_groups`` and ``snapshots`` from DescribeSnapshots (snapshots tagged
``ams:snapshot-group-id``).  Rules:

* Ids come from the tags: a group missing from the database is inserted with the id its tag
  names.  A stored group with that id that describes other resources (none of its stored
  members is among the tagged ones, one of them is stored under another group, another region
  or volume group) is an *id collision*: reported, never overwritten.
* A group is written only when its members agree: members in different zones (volumes) or
  regions, two members with one ``ams:member-index``, or members whose layout tags differ are
  reported as inconsistent and left alone.  A group with a member missing (fewer members than
  its ``ams:member-count``, or a gap in the indexes) is recorded with the members found, and
  reported.
* A stored row is repaired only in the columns the tags or EC2 know for sure: a tag that an
  older ams did not write yet (``ams:md-uuid``, ``ams:mount-point``, ...) never clears a stored
  value; a stored schedule, description or hostname chosen by a user is kept.
* Attachments come from EC2's attachment data and the hosts table: every member attached to
  one instance that the hosts table knows gives the group's attachment (mount point and
  automount from ``ams:mount-point`` and ``ams:automount``).  An instance the hosts table does
  not know is reported ("run `ams host discovery` first") and the group recorded unattached.
* A snapshot group's volume group may be gone from EC2 and the database: it is then recorded
  as a deleted volume group (its layout from the snapshot tags) so the snapshot group has one.
* Copies are linked by ``ams:copied-from`` ("region/snap-id"): the copy's ``copied_from_id`` is
  the group of that snapshot, its snapshots' ``source_snapshot_id`` the snapshot named.
* A live stored group (or member) of a scanned region that EC2 no longer has is reported as
  missing; with ``prune`` it is marked deleted (``deleted_at`` and state ``deleted``; an
  attachment of a deleted volume group is removed).  Regions not scanned are left alone.
* A volume group whose lock another ams holds (and the snapshot groups of such a group) are
  left alone and reported: that ams records what it does itself.
* Planning again over the result of applying a plan gives a plan with no writes.
"""

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone

from ..ebs import params
from ..hostdisk import devices, raid
from ..store.types import whole_seconds

VOLUME_GROUP_TAG = "ams:volume-group-id"
SNAPSHOT_GROUP_TAG = "ams:snapshot-group-id"
EXPIRES_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
RAID_LEVELS = (0, 1, 5, 10)
STRIPED = (0, 5, 10)
RETENTION_KINDS = ("hourly", "daily", "weekly", "monthly", "yearly")
GONE_VOLUME_STATES = ("deleting", "deleted")
UNKNOWN_ZONE = "unknown"  # the zone of a volume group known only from its snapshots
DEFAULT_DESCRIPTIONS = ("ams snapshot group ", "ams copy of snapshot group ")
# tags every member of a group must carry with one value
VOLUME_LAYOUT_TAGS = ("ams:raid-level", "ams:stripe-kb", "ams:filesystem", "ams:member-count", "ams:array-name",
                      "ams:md-uuid", "ams:fs-uuid", "ams:mount-point", "ams:automount")
SNAPSHOT_LAYOUT_TAGS = (VOLUME_GROUP_TAG,) + VOLUME_LAYOUT_TAGS[:7] + (
    "ams:expires", "ams:retention", "ams:source-instance-id", "ams:source-mount-point")

# finding kinds: what is in EC2 but cannot be recorded as it is
BAD_TAG = "bad-tag"
MISSING_MEMBER = "missing-member"
DUPLICATE_INDEX = "duplicate-index"
MIXED_ZONES = "mixed-zones"
MIXED_REGIONS = "mixed-regions"
CONFLICTING_TAGS = "conflicting-tags"
ID_COLLISION = "id-collision"
UNKNOWN_HOST = "unknown-host"
SPLIT_ATTACHMENT = "split-attachment"
MOUNT_POINT_TAKEN = "mount-point-taken"
SOURCE_GONE = "source-gone"
BUSY = "busy"
VOLUME_GROUP_GONE = "volume-group-gone"


class BadTag(ValueError):
    """A tag value discovery cannot read."""


@dataclass
class Finding:
    kind: str
    subject: str
    message: str

    def as_dict(self):
        return {"kind": self.kind, "subject": self.subject, "message": self.message}


@dataclass
class RecoveryPlan:
    """What one discovery pass writes and reports.

    ``inserts``/``updates``/``deletes``: {table: rows}, {table: [(key, values)]}, {table: [keys]},
    applied in the order of :data:`TABLE_ORDER`.  ``added``/``repaired``/``unchanged``: group
    ids; ``changes``: {group id: {"table.column": (old, new)}}; ``missing``: stored rows EC2 no
    longer has; ``findings``: what EC2 holds that cannot be recorded as it is."""

    kind: str  # "volume" or "snapshot"
    regions: list = field(default_factory=list)
    prune: bool = False
    inserts: dict = field(default_factory=dict)
    updates: dict = field(default_factory=dict)
    deletes: dict = field(default_factory=dict)
    added: list = field(default_factory=list)
    repaired: list = field(default_factory=list)
    unchanged: list = field(default_factory=list)
    changes: dict = field(default_factory=dict)
    missing: list = field(default_factory=list)
    findings: list = field(default_factory=list)

    @property
    def writes(self):
        """The number of rows this plan writes."""
        return sum(len(rows) for part in (self.inserts, self.updates, self.deletes) for rows in part.values())

    def insert(self, table, row):
        self.inserts.setdefault(table, []).append(row)

    def update(self, table, key, values):
        self.updates.setdefault(table, []).append((key, values))

    def delete(self, table, key):
        self.deletes.setdefault(table, []).append(key)

    def find(self, kind, subject, message):
        self.findings.append(Finding(kind, subject, message))

    def totals(self):
        return {"added": len(self.added), "repaired": len(self.repaired), "unchanged": len(self.unchanged),
                "missing": len(self.missing), "pruned": len(self.missing) if self.prune else 0,
                "findings": len(self.findings)}

    def as_dict(self):
        return {
            "kind": self.kind, "regions": list(self.regions), "added": sorted(self.added),
            "repaired": [{"id": gid, "changes": {k: list(v) for k, v in sorted(self.changes.get(gid, {}).items())}}
                         for gid in sorted(self.repaired)],
            "unchanged": sorted(self.unchanged), "missing": list(self.missing), "pruned": self.prune,
            "findings": [f.as_dict() for f in self.findings], "totals": self.totals(),
        }


# ---------------------------------------------------------------------------------------------
# reading tags

def tags_of(item):
    return {t["Key"]: t.get("Value", "") for t in item.get("Tags") or []}


def user_tags(tags):
    """The tags a user set (neither ``ams:*``, ``aws:*`` nor Name) as the JSON ams stores."""
    mine = {k: v for k, v in tags.items() if not k.lower().startswith(("ams:", "aws:")) and k != "Name"}
    return json.dumps(mine, sort_keys=True) if mine else None


def positive_id(text, what):
    if text is None or not str(text).isdigit() or int(text) < 1:
        raise BadTag(f"{what} {text!r} is not a positive whole number")
    return int(text)


def optional_int(text, what):
    if text is None or text == "none":
        return None
    if not str(text).isdigit():
        raise BadTag(f"{what} {text!r} is not a whole number")
    return int(text)


def raid_level(text):
    if text is None:
        raise BadTag("ams:raid-level is missing")
    level = optional_int(text, "ams:raid-level")
    if level is not None and level not in RAID_LEVELS:
        raise BadTag(f"ams:raid-level {text!r} is not none, 0, 1, 5 or 10")
    return level


def expiry(text):
    if text is None:
        return None
    try:
        return datetime.strptime(text, EXPIRES_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        raise BadTag(f"ams:expires {text!r} is not a time such as 2027-01-31T13:00:00Z") from None


def copied_from(text):
    """``"region/snap-id"`` -> (region, snapshot id); None when untagged."""
    if text is None:
        return None
    region, _, snapshot_id = text.partition("/")
    if not region or not snapshot_id.startswith("snap-"):
        raise BadTag(f"ams:copied-from {text!r} is not REGION/SNAPSHOT_ID")
    return region, snapshot_id


def flag(text):
    if text is None:
        return None
    if text not in ("true", "false"):
        raise BadTag(f"ams:automount {text!r} is not true or false")
    return text == "true"


def _time(value):
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return whole_seconds(value.astimezone(timezone.utc))


def _percent(text):
    try:
        return int(str(text).rstrip("%"))
    except (TypeError, ValueError):
        return None


@dataclass
class Member:
    """One tagged volume or snapshot."""

    id: str
    region: str
    item: dict
    tags: dict
    index: int


def _members(discovered, id_key, group_tag, plan):
    """{group id: [Member]} of the tagged items of every region; bad tags are findings."""
    groups = {}
    for region, items in discovered.items():
        for item in items:
            tags = tags_of(item)
            if group_tag not in tags:
                continue
            if id_key == "VolumeId" and item.get("State") in GONE_VOLUME_STATES:
                continue
            try:
                gid = positive_id(tags[group_tag], group_tag)
                index = optional_int(tags.get("ams:member-index"), "ams:member-index")
                if index is None:
                    raise BadTag("ams:member-index is missing")
            except BadTag as exc:
                plan.find(BAD_TAG, item[id_key], f"{item[id_key]} in {region}: {exc}; not recorded")
                continue
            groups.setdefault(gid, []).append(Member(item[id_key], region, item, tags, index))
    for members in groups.values():
        members.sort(key=lambda m: (m.index, m.id))
    return groups


def _agreed(plan, subject, members, layout_tags, zone_of):
    """The tags all members agree on ({tag: value}), or None (with findings) when they do not
    form one group: several regions or zones, two members with one index, differing tags."""
    regions = sorted({m.region for m in members})
    if len(regions) > 1:
        plan.find(MIXED_REGIONS, subject, f"{subject}: members in several regions ({', '.join(regions)}); not recorded")
        return None
    zones = sorted({zone_of(m) for m in members if zone_of(m)})
    if len(zones) > 1:
        plan.find(MIXED_ZONES, subject, f"{subject}: members in several zones ({', '.join(zones)}); not recorded")
        return None
    by_index = {}
    for m in members:
        by_index.setdefault(m.index, []).append(m.id)
    doubled = {i: ids for i, ids in by_index.items() if len(ids) > 1}
    if doubled:
        listed = "; ".join(f"index {i}: {', '.join(ids)}" for i, ids in sorted(doubled.items()))
        plan.find(DUPLICATE_INDEX, subject, f"{subject}: two members with one ams:member-index ({listed}); not recorded")
        return None
    agreed = {}
    for key in layout_tags:
        values = sorted({m.tags[key] for m in members if key in m.tags})
        if len(values) > 1:
            plan.find(CONFLICTING_TAGS, subject, f"{subject}: members disagree on {key} ({', '.join(values)}); not recorded")
            return None
        if values:
            agreed[key] = values[0]
    return agreed


def _read_group_tags(plan, subject, members, agreed, parse):
    """``parse(agreed, members)`` checked with the member count; None (with its finding) when a tag
    cannot be read or the members cannot be one group."""
    try:
        parsed = parse(agreed, members)
        if not _check_count(plan, subject, members, agreed.get("ams:member-count")):
            return None
    except BadTag as exc:
        plan.find(BAD_TAG, subject, f"{subject}: {exc}; not recorded")
        return None
    return parsed


def _volume_layout(agreed, members):  # noqa: ARG001 (the snapshot layout needs the members)
    """(raid level, stripe KiB, automount) of a volume group's agreed tags."""
    level = raid_level(agreed.get("ams:raid-level"))
    stripe = optional_int(agreed.get("ams:stripe-kb"), "ams:stripe-kb")
    automount = flag(agreed.get("ams:automount"))
    if not agreed.get("ams:filesystem"):
        raise BadTag("ams:filesystem is missing")
    return level, stripe, automount


def _snapshot_layout(agreed, members):
    """The layout, expiry and copy sources of a snapshot group's agreed tags."""
    layout = {
        "volume_group_id": positive_id(agreed.get(VOLUME_GROUP_TAG), VOLUME_GROUP_TAG),
        "raid_level": raid_level(agreed.get("ams:raid-level")),
        "stripe": optional_int(agreed.get("ams:stripe-kb"), "ams:stripe-kb"),
        "expires_at": expiry(agreed.get("ams:expires")),
        "sources": {m.id: copied_from(m.tags.get("ams:copied-from")) for m in members},
    }
    if agreed.get("ams:retention") not in (None,) + RETENTION_KINDS:
        raise BadTag(f"ams:retention {agreed['ams:retention']!r} is not one of {', '.join(RETENTION_KINDS)}")
    return layout


def _by_group(rows, key):
    """{group id: [member rows]} of stored member rows."""
    grouped = {}
    for row in rows:
        grouped.setdefault(row[key], []).append(row)
    return grouped


def _check_count(plan, subject, members, count_tag):
    """A finding when a member is missing (by ``ams:member-count`` or a gap in the indexes);
    False when the indexes cannot be those of one group."""
    count = optional_int(count_tag, "ams:member-count")
    indexes = [m.index for m in members]
    expected = count if count is not None else max(indexes) + 1
    beyond = [i for i in indexes if i >= expected]
    if beyond:
        plan.find(CONFLICTING_TAGS, subject, f"{subject}: ams:member-index {beyond[0]} is beyond ams:member-count "
                                             f"{expected}; not recorded")
        return False
    absent = [i for i in range(expected) if i not in indexes]
    if absent:
        plan.find(MISSING_MEMBER, subject, f"{subject}: member(s) {', '.join(map(str, absent))} of {expected} missing "
                                           f"in EC2; recorded with the {len(members)} found")
    return True


def _busy(plan, subject, volume_group, now):
    """True (with a finding) while another ams holds the volume group's lock: what it does is
    recorded by itself, and discovery must not write the same rows meanwhile."""
    until = (volume_group or {}).get("lock_until")
    if until is None or until <= now:
        return False
    plan.find(BUSY, subject, f"{subject}: being changed by {volume_group.get('lock_owner') or 'another ams'}; "
                             "left alone (run discovery again when it is done)")
    return True


def _diff(old, new, columns, prefix):
    """{"prefix.column": (old, new)} for the columns whose values differ."""
    return {f"{prefix}.{c}": (old.get(c), new[c]) for c in columns if c in new and old.get(c) != new[c]}


class _Groups:
    """Bookkeeping of one group's changes: collects them, then files the group as added,
    repaired or unchanged."""

    def __init__(self, plan, gid):
        self.plan, self.gid, self.changes, self.added = plan, gid, {}, False

    def insert(self, table, row, label=None):
        self.plan.insert(table, row)
        if label:
            self.changes[label] = (None, "added")

    def update(self, table, key, old, new, columns, label):
        changes = _diff(old, new, columns, label)
        if changes:
            self.plan.update(table, key, {c.rsplit(".", 1)[1]: v[1] for c, v in changes.items()})
            self.changes.update(changes)

    def file(self):
        if self.added:
            self.plan.added.append(self.gid)
        elif self.changes:
            self.plan.repaired.append(self.gid)
            self.plan.changes[self.gid] = self.changes
        else:
            self.plan.unchanged.append(self.gid)


# ---------------------------------------------------------------------------------------------
# volumes

@dataclass
class VolumeState:
    """The stored rows volume discovery compares with: {id: row} each (attachments by group id)."""

    groups: dict
    volumes: dict
    attachments: dict
    hosts: dict
    snapshot_group_of: dict = field(default_factory=dict)  # {snapshot id: snapshot group id}


def _provisioned(v):
    """(IOPS, throughput) as ams records them: only what was provisioned, so gp3's baseline
    (3000 IOPS, 125 MiB/s, which EC2 reports for every gp3 volume) is None, as when created."""
    vtype = v.get("VolumeType")
    iops = v.get("Iops") if vtype in params.IOPS_LIMITS else None
    throughput = v.get("Throughput") if vtype in params.THROUGHPUT_TYPES else None
    if vtype == "gp3":
        iops = None if iops == params.GP3_BASELINE_IOPS else iops
        throughput = None if throughput == params.THROUGHPUT_LIMITS[0] else throughput
    return iops, throughput


def _volume_row(m, gid, now):
    v = m.item
    attached = [a for a in v.get("Attachments") or [] if a.get("State") in ("attaching", "attached")]
    iops, throughput = _provisioned(v)
    return {
        "volume_id": m.id, "volume_group_id": gid, "member_index": m.index, "size_gib": v.get("Size"),
        "volume_type": v.get("VolumeType"), "iops": iops, "throughput": throughput,
        "availability_zone": v.get("AvailabilityZone"), "created_at": _time(v.get("CreateTime")) or now,
        "deleted_at": None, "device_name": attached[0].get("Device") if len(attached) == 1 else None,
        "encrypted": bool(v.get("Encrypted")), "kms_key_id": v.get("KmsKeyId"),
    }


def _attachments(m):
    return [a for a in m.item.get("Attachments") or [] if a.get("State") in ("attaching", "attached")]


def _collides(plan, kind, gid, members, stored_by_id, stored_members, moved):
    """True (with a finding) when the stored group ``gid`` describes other resources than the
    tagged ``members``: one of them is stored under another group, none of the stored members is
    among them, or the stored group is elsewhere (``moved``)."""
    ids = [m.id for m in members]
    foreign = [i for i in ids if i in stored_by_id and stored_by_id[i][kind.group_key] != gid]
    stored_ids = {r[kind.member_key] for r in stored_members.get(gid, [])}
    if not (foreign or (stored_ids and not stored_ids & set(ids)) or moved):
        return False
    noun = kind.group_table[:-len("_groups")]
    plan.find(ID_COLLISION, f"{noun} group {gid}", f"{noun} group {gid}: the database's group {gid} holds other "
                                                   f"{kind.member_table} than {', '.join(ids)} (tagged {gid}); "
                                                   "not overwritten")
    return True


def plan_volumes(discovered, state, now, prune=False):
    """Plan volume discovery: ``discovered`` {region: [DescribeVolumes item]} of every scanned
    region, ``state`` a :class:`VolumeState`."""
    plan = RecoveryPlan("volume", list(discovered), prune)
    groups = _members(discovered, "VolumeId", VOLUME_GROUP_TAG, plan)
    stored_members = _by_group(state.volumes.values(), "volume_group_id")
    # mount points in use per instance: stored ones (of groups this pass does not handle), then new ones
    taken = {(a["instance_id"], a["mount_point"]): gid for gid, a in state.attachments.items() if a.get("mount_point")}
    for gid, members in sorted(groups.items()):
        subject = f"volume group {gid}"
        if _busy(plan, subject, state.groups.get(gid), now):
            continue
        agreed = _agreed(plan, subject, members, VOLUME_LAYOUT_TAGS, lambda m: m.item.get("AvailabilityZone"))
        if agreed is None:
            continue
        parsed = _read_group_tags(plan, subject, members, agreed, _volume_layout)
        if parsed is None:
            continue
        level, stripe, automount = parsed
        stored = state.groups.get(gid)
        moved = stored is not None and stored_members.get(gid) and stored["region"] != members[0].region
        if _collides(plan, VOLUMES, gid, members, state.volumes, stored_members, moved):
            continue
        _plan_volume_group(plan, state, gid, members, agreed, level, stripe, automount, now, taken)
    _plan_missing(plan, VOLUMES, state.groups, stored_members, groups, now, state.attachments)
    return plan


def _plan_volume_group(plan, state, gid, members, agreed, level, stripe, automount, now, taken):
    g = _Groups(plan, gid)
    first = members[0]
    array = agreed.get("ams:array-name") or (raid.array_name(gid) if level is not None else None)
    cloned = state.snapshot_group_of.get(first.tags.get("ams:cloned-from"))
    row = {
        "id": gid, "raid_level": level, "stripe_block_size": stripe if level in STRIPED else None,
        "fs_type": agreed["ams:filesystem"], "region": first.region,
        "availability_zone": first.item.get("AvailabilityZone"), "tags": user_tags(first.tags),
        "created_at": min(_time(m.item.get("CreateTime")) or now for m in members), "deleted_at": None,
        "state": "available", "array_name": array if level is not None else None,
        "md_uuid": agreed.get("ams:md-uuid"), "fs_uuid": agreed.get("ams:fs-uuid"), "cloned_from_id": cloned,
    }
    stored = state.groups.get(gid)
    if stored is None:
        g.added = True
        g.insert("volume_groups", row)
    else:
        new = {k: row[k] for k in ("raid_level", "fs_type", "region", "availability_zone", "deleted_at")}
        if stored["state"] == "deleted":
            new["state"] = "available"
        if level in STRIPED and stripe is not None:
            new["stripe_block_size"] = stripe
        for column, tag in (("md_uuid", "ams:md-uuid"), ("fs_uuid", "ams:fs-uuid"), ("array_name", "ams:array-name")):
            if agreed.get(tag):
                new[column] = agreed[tag]
        for column in ("cloned_from_id", "tags", "array_name"):
            if stored.get(column) is None and row[column] is not None:
                new.setdefault(column, row[column])
        if stored["availability_zone"] == UNKNOWN_ZONE:  # known from its snapshots only until now
            new.update(created_at=row["created_at"], tags=row["tags"])
        g.update("volume_groups", gid, stored, new, list(new), "volume_groups")
    for m in members:
        vrow = _volume_row(m, gid, now)
        old = state.volumes.get(m.id)
        if old is None:
            g.insert("volumes", vrow, f"volumes.{m.id}")
            continue
        columns = ["volume_group_id", "member_index", "size_gib", "volume_type", "availability_zone", "deleted_at",
                   "device_name", "encrypted"]
        columns += [c for c in ("iops", "throughput") if old.get(c) is not None]
        g.update("volumes", m.id, old, vrow, columns, f"volumes.{m.id}")
    _plan_attachment(plan, g, state, gid, members, agreed, level, array, automount, taken, now)
    g.file()


def _plan_attachment(plan, g, state, gid, members, agreed, level, array, automount, taken, now):
    subject = f"volume group {gid}"
    stored = state.attachments.get(gid)
    attached = {m.id: _attachments(m) for m in members}
    instances = sorted({a.get("InstanceId") for found in attached.values() for a in found})
    if not instances:
        if stored is not None:
            g.plan.delete("host_volumes", gid)
            g.changes["host_volumes.instance_id"] = (stored["instance_id"], None)
        return
    if len(instances) > 1 or any(not found for found in attached.values()):
        plan.find(SPLIT_ATTACHMENT, subject, f"{subject}: members attached to {', '.join(instances)} and "
                                             f"{sum(1 for f in attached.values() if not f)} not attached; "
                                             "its attachment is left as recorded")
        return
    instance_id = instances[0]
    if instance_id not in state.hosts:
        plan.find(UNKNOWN_HOST, subject, f"{subject}: attached to {instance_id}, which the hosts table does not know; "
                                         "recorded unattached (run `ams host discovery` first)")
        if stored is not None:
            g.plan.delete("host_volumes", gid)
            g.changes["host_volumes.instance_id"] = (stored["instance_id"], None)
        return
    mount_point = agreed.get("ams:mount-point")
    if mount_point is None and stored is not None and stored["instance_id"] == instance_id:
        mount_point = stored.get("mount_point")  # an older ams did not tag it: keep what is recorded
    holder = taken.get((instance_id, mount_point)) if mount_point else None
    if holder is not None and holder != gid:
        plan.find(MOUNT_POINT_TAKEN, subject, f"{subject}: tagged for {mount_point} on {instance_id}, which volume "
                                              f"group {holder} uses; recorded without a mount point")
        mount_point = None
    if mount_point:
        taken[(instance_id, mount_point)] = gid
    if level is None:
        block_device = devices.nvme_by_id_path(members[0].id)
    else:
        block_device = raid.array_device(array)
    times = [_time(a.get("AttachTime")) for found in attached.values() for a in found if a.get("AttachTime")]
    row = {"volume_group_id": gid, "instance_id": instance_id, "mount_point": mount_point,
           "automount": bool(automount) if mount_point else False, "block_device": block_device,
           "attached_at": min(times) if times else None}
    if stored is None or stored["instance_id"] != instance_id:
        if stored is not None:
            g.plan.delete("host_volumes", gid)
        row["attached_at"] = row["attached_at"] or now
        g.insert("host_volumes", row)
        g.changes["host_volumes.instance_id"] = (stored["instance_id"] if stored else None, instance_id)
        return
    new = {"mount_point": mount_point}
    if automount is not None or not mount_point:
        new["automount"] = row["automount"]
    if not stored.get("block_device"):
        new["block_device"] = block_device
    g.update("host_volumes", gid, stored, new, list(new), "host_volumes")


@dataclass(frozen=True)
class _Kind:
    """How a kind of group is stored, for :func:`_plan_missing`."""

    group_table: str
    member_table: str
    group_key: str  # the member's column naming its group
    member_key: str
    left_alone: tuple  # group states another ams is working on (or already deleted)
    member_deleted: tuple  # (column, value) pairs besides deleted_at of a pruned member


VOLUMES = _Kind("volume_groups", "volumes", "volume_group_id", "volume_id", ("creating", "deleted"),
                (("device_name", None),))
SNAPSHOTS = _Kind("snapshot_groups", "snapshots", "snapshot_group_id", "snapshot_id", ("deleting", "deleted"),
                  (("state", "deleted"),))


def _plan_missing(plan, kind, stored_groups, stored_members, groups, now, attachments=(), volume_groups=None):
    """Report (and with ``plan.prune`` mark deleted) the live stored groups of the scanned
    regions that EC2 no longer has, and the members of the others that it no longer has
    (not while another ams holds the lock of the volume group: it may be creating them)."""
    scanned = set(plan.regions)
    collided = {f.subject for f in plan.findings if f.kind == ID_COLLISION}
    busy = {f.subject for f in plan.findings if f.kind == BUSY}
    noun = kind.group_table[:-len("_groups")]
    listed = f"{kind.member_key}s"

    def prune_members(ids):
        for member_id in ids:
            plan.update(kind.member_table, member_id, dict(kind.member_deleted, deleted_at=now))

    for gid, row in sorted(stored_groups.items()):
        if row["deleted_at"] is not None or row["state"] in kind.left_alone or row["region"] not in scanned:
            continue
        volume_group = row if kind is VOLUMES else volume_groups.get(row["volume_group_id"])
        if f"{noun} group {gid}" in busy or ((volume_group or {}).get("lock_until") or now) > now:
            continue
        live = sorted(m[kind.member_key] for m in stored_members.get(gid, []) if m["deleted_at"] is None)
        if gid not in groups:
            plan.missing.append({kind.group_key: gid, "region": row["region"], listed: live})
            if plan.prune:
                plan.update(kind.group_table, gid, {"deleted_at": now, "state": "deleted"})
                prune_members(live)
                if gid in attachments:
                    plan.delete("host_volumes", gid)
            continue
        if f"{noun} group {gid}" in collided:
            continue
        tagged = {m.id for m in groups[gid]}
        gone = [m for m in live if m not in tagged]
        if gone:
            plan.missing.append({kind.group_key: gid, "region": row["region"], listed: gone})
            if plan.prune:
                prune_members(gone)


# ---------------------------------------------------------------------------------------------
# snapshots

@dataclass
class SnapshotState:
    """The stored rows snapshot discovery compares with: {id: row} each."""

    groups: dict
    snapshots: dict
    volume_groups: dict
    volumes: dict
    hosts: dict


def _description(text):
    """The user's description: None for the ones ams writes by default."""
    if not text or text.startswith(DEFAULT_DESCRIPTIONS):
        return None
    return text


def _group_state(states):
    from ..ebs.snapshot_service import _group_state as rule

    return rule(states)


def plan_snapshots(discovered, state, now, prune=False):
    """Plan snapshot discovery: ``discovered`` {region: [DescribeSnapshots item]} of every
    scanned region, ``state`` a :class:`SnapshotState`."""
    plan = RecoveryPlan("snapshot", list(discovered), prune)
    groups = _members(discovered, "SnapshotId", SNAPSHOT_GROUP_TAG, plan)
    tagged = {m.id: (gid, m) for gid, members in groups.items() for m in members}
    stored_members = _by_group(state.snapshots.values(), "snapshot_group_id")
    accepted = {}
    for gid, members in sorted(groups.items()):
        subject = f"snapshot group {gid}"
        agreed = _agreed(plan, subject, members, SNAPSHOT_LAYOUT_TAGS, lambda m: None)
        if agreed is None:
            continue
        if agreed.get(VOLUME_GROUP_TAG, "").isdigit() and _busy(
                plan, subject, state.volume_groups.get(int(agreed[VOLUME_GROUP_TAG])), now):
            continue
        layout = _read_group_tags(plan, subject, members, agreed, _snapshot_layout)
        if layout is None:
            continue
        stored = state.groups.get(gid)
        moved = stored is not None and (stored["region"] != members[0].region
                                        or stored["volume_group_id"] != layout["volume_group_id"])
        if _collides(plan, SNAPSHOTS, gid, members, state.snapshots, stored_members, moved):
            continue
        accepted[gid] = (members, agreed, layout)
    stub_volume_groups = set()
    order = _copies_last(accepted, tagged, state)
    for gid in order:
        members, agreed, layout = accepted[gid]
        _plan_snapshot_group(plan, state, gid, members, agreed, layout, tagged, accepted, now, stub_volume_groups)
    _plan_missing(plan, SNAPSHOTS, state.groups, stored_members, groups, now, volume_groups=state.volume_groups)
    return plan


def _source_group(sources, tagged, state):
    """The snapshot group the members were copied from (or None) and {member: source snapshot}."""
    source_ids = {member: src[1] for member, src in sources.items() if src}
    group_ids = set()
    for snapshot_id in source_ids.values():
        if snapshot_id in tagged:
            group_ids.add(tagged[snapshot_id][0])
        elif snapshot_id in state.snapshots:
            group_ids.add(state.snapshots[snapshot_id]["snapshot_group_id"])
    return (group_ids.pop() if len(group_ids) == 1 else None), source_ids


def _copies_last(accepted, tagged, state):
    """Group ids in an order where a copy comes after the group it was copied from."""
    depth = {}

    def depth_of(gid, trail=()):
        if gid in depth:
            return depth[gid]
        source, _ = _source_group(accepted[gid][2]["sources"], tagged, state)
        depth[gid] = 0 if source is None or source not in accepted or source in trail else 1 + depth_of(source, trail + (gid,))
        return depth[gid]

    return sorted(accepted, key=lambda gid: (depth_of(gid), gid))


def _plan_snapshot_group(plan, state, gid, members, agreed, layout, tagged, accepted, now, stubs):
    g = _Groups(plan, gid)
    first = members[0]
    subject = f"snapshot group {gid}"
    source_gid, source_ids = _source_group(layout["sources"], tagged, state)
    if source_ids and source_gid is None:
        plan.find(SOURCE_GONE, subject, f"{subject}: a copy of {', '.join(sorted(set(source_ids.values())))}, which "
                                        "neither EC2 nor the database knows; recorded without its source")
    elif source_gid is not None and source_gid not in accepted and source_gid not in state.groups:
        source_gid = None
    vgid = layout["volume_group_id"]
    level = layout["raid_level"]
    instance_id = agreed.get("ams:source-instance-id")
    host = state.hosts.get(instance_id) if instance_id else None
    created = min(_time(m.item.get("StartTime")) or now for m in members)
    row = {
        "id": gid, "volume_group_id": vgid, "region": first.region, "description": _description(first.item.get("Description")),
        "schedule_id": None, "copied_from_id": source_gid, "retention_kind": agreed.get("ams:retention"),
        "created_at": created, "deleted_at": None,
        "state": _group_state([m.item.get("State", "pending") for m in members]),
        "expires_at": layout["expires_at"], "raid_level": level,
        "stripe_block_size": layout["stripe"] if level in STRIPED else None, "fs_type": agreed.get("ams:filesystem"),
        "array_name": agreed.get("ams:array-name"), "md_uuid": agreed.get("ams:md-uuid"),
        "fs_uuid": agreed.get("ams:fs-uuid"),
        "member_count": optional_int(agreed.get("ams:member-count"), "ams:member-count") or len(members),
        "source_instance_id": instance_id, "source_hostname": host.get("hostname") if host else None,
        "source_mount_point": agreed.get("ams:source-mount-point"), "tags": user_tags(first.tags),
    }
    if vgid not in state.volume_groups and vgid not in stubs:
        stubs.add(vgid)
        plan.insert("volume_groups", {
            "id": vgid, "raid_level": level, "stripe_block_size": row["stripe_block_size"], "fs_type": row["fs_type"],
            "region": first.region, "availability_zone": UNKNOWN_ZONE, "tags": None, "created_at": created,
            "deleted_at": now, "state": "deleted", "array_name": row["array_name"], "md_uuid": row["md_uuid"],
            "fs_uuid": row["fs_uuid"], "cloned_from_id": None,
        })
        plan.find(VOLUME_GROUP_GONE, f"volume group {vgid}",
                  f"volume group {vgid} of {subject} is not in the database; recorded as deleted (if its volumes "
                  "still exist, `ams volume discovery` restores it)")
    stored = state.groups.get(gid)
    if stored is None:
        g.added = True
        g.insert("snapshot_groups", row)
    else:
        new = {"deleted_at": None, "raid_level": level, "fs_type": row["fs_type"]}
        if stored["state"] != "deleting":
            new["state"] = row["state"]
        if source_gid is not None:
            new["copied_from_id"] = source_gid
        if level in STRIPED and layout["stripe"] is not None:
            new["stripe_block_size"] = layout["stripe"]
        for column, tag in (("retention_kind", "ams:retention"), ("array_name", "ams:array-name"),
                            ("md_uuid", "ams:md-uuid"), ("fs_uuid", "ams:fs-uuid"),
                            ("member_count", "ams:member-count"), ("source_instance_id", "ams:source-instance-id"),
                            ("source_mount_point", "ams:source-mount-point"), ("expires_at", "ams:expires")):
            if agreed.get(tag) is not None:
                new[column] = row[column]
        for column in ("source_hostname", "tags", "description"):
            if stored.get(column) is None and row[column] is not None:
                new[column] = row[column]
        g.update("snapshot_groups", gid, stored, new, list(new), "snapshot_groups")
    for m in members:
        srow = _snapshot_row(m, gid, layout, source_ids, tagged, state, now)
        old = state.snapshots.get(m.id)
        if old is None:
            g.insert("snapshots", srow, f"snapshots.{m.id}")
            continue
        columns = ["member_index", "size_gib", "region", "deleted_at", "state", "progress", "encrypted"]
        if layout["expires_at"] is not None:
            columns.append("expires_at")
        if m.id in source_ids:
            columns.append("source_snapshot_id")
        if old["state"] == "deleting":
            columns.remove("state")
        g.update("snapshots", m.id, old, srow, columns, f"snapshots.{m.id}")
    g.file()


def _snapshot_row(m, gid, layout, source_ids, tagged, state, now):
    s = m.item
    volume_id = s.get("VolumeId")
    source = source_ids.get(m.id)
    if source is not None:  # a copy: EC2 shows no source volume (vol-ffffffff); the original's is kept
        if source in tagged:
            volume_id = tagged[source][1].item.get("VolumeId") or volume_id
        elif source in state.snapshots:
            volume_id = state.snapshots[source]["volume_id"]
    volume = state.volumes.get(volume_id) or {}
    return {
        "snapshot_id": m.id, "snapshot_group_id": gid, "volume_id": volume_id, "member_index": m.index,
        "size_gib": s.get("VolumeSize"), "region": m.region, "expires_at": layout["expires_at"],
        "created_at": _time(s.get("StartTime")) or now, "deleted_at": None, "state": s.get("State", "pending"),
        "progress": _percent(s.get("Progress")), "volume_type": volume.get("volume_type"), "iops": volume.get("iops"),
        "throughput": volume.get("throughput"), "encrypted": bool(s.get("Encrypted")), "source_snapshot_id": source,
    }

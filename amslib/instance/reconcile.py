"""Discovery planning: EC2 instances versus stored hosts (pure: no I/O).

``plan_discovery`` takes the rows of the hosts table and what DescribeInstances
returned per region, and decides, per region, which hosts to add, which to
refresh, and which to mark gone.  Rules:

* A new instance is added with ``hostname_source='discovery'`` and the first
  usable candidate of the hostname rule (``HOSTNAME_RULE``: a comma list of
  name-tag, private-dns, public-dns, private-ip, public-ip).  A candidate is
  usable when it is a valid DNS name or IP address (a Name tag like
  ``"web server #1"`` is skipped).
* A known instance gets every EC2-owned column refreshed; its hostname is
  recomputed only when discovery chose it (a hostname set by ``host add`` or
  ``host edit`` is never replaced) and kept when no candidate is usable (a
  terminated instance has lost its DNS names and IPs).
* An instance in state ``terminated`` keeps its row; ``terminated_at`` is set
  the first time it is seen so.
* A stored host of a scanned region that EC2 no longer returns (AWS forgets
  terminated instances after about an hour; or the id never existed) is marked
  ``state='missing'`` with ``terminated_at`` set.  Hosts of regions that were
  not scanned are left alone.
* Notes and ``hostname_source`` are never touched by discovery.
"""

import json
from collections import OrderedDict
from dataclasses import dataclass, field

from ..core.errors import ConfigError
from ..store.hosts import DISCOVERED_COLUMNS
from .validation import hostname_problem

HOSTNAME_SOURCES = ("name-tag", "private-dns", "public-dns", "private-ip", "public-ip")
_CANDIDATE_COLUMN = {
    "name-tag": "name",
    "private-dns": "hostname_internal",
    "public-dns": "hostname_external",
    "private-ip": "ip_internal",
    "public-ip": "ip_external",
}
TERMINATED = "terminated"
MISSING = "missing"
NAME_LENGTH = 255


def parse_hostname_rule(rule):
    """``"name-tag,private-dns"`` (or a list) -> ('name-tag', 'private-dns'); ConfigError if bad."""
    items = rule if isinstance(rule, (list, tuple)) else str(rule or "").split(",")
    sources = []
    for item in items:
        name = str(item).strip().lower()
        if not name:
            continue
        if name not in HOSTNAME_SOURCES:
            raise ConfigError(
                f"HOSTNAME_RULE: unknown source {item!r} (choose from {', '.join(HOSTNAME_SOURCES)})"
            )
        if name not in sources:
            sources.append(name)
    if not sources:
        raise ConfigError(f"HOSTNAME_RULE is empty (choose from {', '.join(HOSTNAME_SOURCES)})")
    return tuple(sources)


def choose_hostname(record, sources):
    """The first usable hostname candidate of ``record`` in rule order, or None."""
    for source in sources:
        value = record.get(_CANDIDATE_COLUMN[source])
        if value:
            value = str(value).strip().lower()
            if hostname_problem(value) is None:
                return value
    return None


def record_from_instance(instance, region):
    """The EC2-owned host columns of one DescribeInstances instance."""
    tags = {tag["Key"]: tag.get("Value", "") for tag in instance.get("Tags") or []}
    name = tags.get("Name") or None
    return {
        "instance_id": instance["InstanceId"],
        "name": name[:NAME_LENGTH] if name else None,
        "region": region,
        "availability_zone": (instance.get("Placement") or {}).get("AvailabilityZone"),
        "instance_type": instance.get("InstanceType"),
        "ami_id": instance.get("ImageId"),
        "hostname_internal": instance.get("PrivateDnsName") or None,
        "hostname_external": instance.get("PublicDnsName") or None,
        "ip_internal": instance.get("PrivateIpAddress") or None,
        "ip_external": instance.get("PublicIpAddress") or None,
        "vpc_id": instance.get("VpcId") or None,
        "subnet_id": instance.get("SubnetId") or None,
        "state": (instance.get("State") or {}).get("Name"),
        "tags": json.dumps(tags, sort_keys=True) if tags else None,
    }


@dataclass
class RegionSummary:
    region: str
    seen: int = 0
    added: int = 0
    updated: int = 0
    terminated: int = 0
    unchanged: int = 0

    def as_dict(self):
        return {
            "region": self.region,
            "seen": self.seen,
            "added": self.added,
            "updated": self.updated,
            "terminated": self.terminated,
            "unchanged": self.unchanged,
        }


@dataclass
class DiscoveryPlan:
    writes: list = field(default_factory=list)  # full rows to upsert (new or changed)
    gone: list = field(default_factory=list)  # instance ids to mark missing
    summaries: "OrderedDict[str, RegionSummary]" = field(default_factory=OrderedDict)
    changes: dict = field(default_factory=dict)  # instance id -> {column: (old, new)}

    @property
    def regions(self):
        return list(self.summaries)

    def totals(self):
        total = RegionSummary("total")
        for summary in self.summaries.values():
            for name in ("seen", "added", "updated", "terminated", "unchanged"):
                setattr(total, name, getattr(total, name) + getattr(summary, name))
        return total


def _refreshed(existing, record, sources, now):
    """The row to write for a known host, and its changes ({} when nothing changed)."""
    new = dict(record)
    if record["state"] == TERMINATED:
        new["terminated_at"] = existing.get("terminated_at") or now
    else:
        new["terminated_at"] = None
    changes = {}
    for column in DISCOVERED_COLUMNS:
        old = existing.get(column)
        if column == "terminated_at":
            if (old is None) != (new[column] is None):
                changes[column] = (old, new[column])
        elif old != new[column]:
            changes[column] = (old, new[column])
    hostname = existing.get("hostname")
    if existing.get("hostname_source") != "user":
        hostname = choose_hostname(record, sources) or hostname
        if hostname != existing.get("hostname"):
            changes["hostname"] = (existing.get("hostname"), hostname)
    new.update(
        hostname=hostname,
        hostname_source=existing.get("hostname_source") or "discovery",
        notes=existing.get("notes"),
        created_at=existing.get("created_at") or now,
        updated_at=now,
        discovered_at=now,
    )
    return new, changes


def _new_row(record, sources, now):
    row = dict(record)
    row.update(
        hostname=choose_hostname(record, sources),
        hostname_source="discovery",
        notes=None,
        created_at=now,
        updated_at=now,
        discovered_at=now,
        terminated_at=now if record["state"] == TERMINATED else None,
    )
    return row


def plan_discovery(existing, discovered, now, sources):
    """Plan one discovery pass.

    ``existing``: {instance_id: stored row} for every host; ``discovered``:
    {region: [record_from_instance(...), ...]} for every scanned region (an
    empty list when a region has no instances); ``sources``: the parsed
    hostname rule.
    """
    plan = DiscoveryPlan()
    seen = set()
    for region, records in discovered.items():
        summary = plan.summaries.setdefault(region, RegionSummary(region))
        for record in records:
            instance_id = record["instance_id"]
            if instance_id in seen:  # the same instance twice in one listing: keep the first
                continue
            seen.add(instance_id)
            summary.seen += 1
            old = existing.get(instance_id)
            if old is None:
                plan.writes.append(_new_row(record, sources, now))
                summary.added += 1
                continue
            row, changes = _refreshed(old, record, sources, now)
            if not changes:
                summary.unchanged += 1
                continue
            plan.writes.append(row)
            plan.changes[instance_id] = changes
            if "terminated_at" in changes and row["terminated_at"] is not None:
                summary.terminated += 1
            else:
                summary.updated += 1
    for instance_id, row in sorted(existing.items()):
        region = row.get("region")
        if instance_id in seen or region not in plan.summaries or row.get("state") == MISSING:
            continue
        plan.gone.append(instance_id)
        plan.changes[instance_id] = {"state": (row.get("state"), MISSING)}
        if row.get("terminated_at") is None:
            plan.summaries[region].terminated += 1
        else:  # already terminated; only its state changes
            plan.summaries[region].updated += 1
    return plan

"""Checks and normalisation of host fields (pure: no I/O).

Hostnames reach ``ssh`` as a command-line argument, so they must be a DNS name
(RFC 1123 labels: letters, digits and inner hyphens) or an IPv4/IPv6 address;
anything else (``;``, quotes, spaces, a leading ``-`` that ssh would read as an
option) is refused.  Names are stored in lower case: DNS is case-insensitive and
this keeps exact matching the same on SQLite and MySQL.

Each ``check_*`` returns the normalised value or raises UsageError with one
line that quotes the rejected input with ``repr`` (so a newline in it cannot
split the message).
"""

import ipaddress
import re

from ..core.errors import UsageError

# EC2 ids: a prefix, a dash and 8 (short format) or 17 (long format) hex digits
EC2_ID_DIGITS = r"(?:[0-9a-f]{8}|[0-9a-f]{17})"
# us-west-2, us-gov-west-1, eusc-de-east-1: only the shape is checked here; whether the account
# can use the region is asked of EC2 (AwsClients.require_regions) when a command reaches EC2
REGION_RE = re.compile(r"^[a-z]{2,}(?:-[a-z]+)+-\d+$")
# us-west-2a, us-gov-west-1b, and local zones such as us-west-2-lax-1a
ZONE_RE = re.compile(r"^(?P<region>[a-z]{2,}(?:-[a-z]+)+-\d+)(?:[a-z]|-[a-z]+-\d+[a-z])$")
MAX_REGIONS_SHOWN = 8
INSTANCE_TYPE_RE = re.compile(r"^[a-z0-9][a-z0-9-]*\.[a-z0-9-]+$")
LABEL_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
MAX_HOSTNAME = 253
MAX_NOTES = 4000


def hostname_problem(text):
    """Why ``text`` is not a usable (lower-case) hostname, or None when it is."""
    if not text:
        return "it is empty"
    if len(text) > MAX_HOSTNAME:
        return f"it is longer than {MAX_HOSTNAME} characters"
    try:
        ipaddress.ip_address(text)
        return None
    except ValueError:
        pass
    for label in text.split("."):
        if not label:
            return "it has an empty label (leading, trailing or double dot)"
        if not LABEL_RE.match(label):
            return "only letters, digits, '-' and '.' are allowed, and no label may start or end with '-'"
    return None


def check_hostname(text, what="hostname"):
    value = (text or "").strip().lower()
    problem = hostname_problem(value)
    if problem:
        if not value:
            raise UsageError(f"{what} must not be empty")
        raise UsageError(f"invalid {what} {text!r}: {problem}")
    return value


def check_ec2_id(text, prefix, what):
    """``text`` as a lower-case EC2 id ``<prefix>-<8 or 17 hex digits>``, else UsageError."""
    value = (text or "").strip().lower()
    if not re.fullmatch(prefix + "-" + EC2_ID_DIGITS, value):
        raise UsageError(f"invalid {what} {text!r}: expected {prefix}- followed by 8 or 17 hex digits")
    return value


def check_row_id(text, what):
    """``text`` as the whole-number id (>= 1) of a database row (volume group, snapshot group,
    schedule), else UsageError."""
    try:
        value = int(str(text).strip())
    except ValueError:
        raise UsageError(f"invalid {what} {text!r}: expected a whole number") from None
    if value < 1:
        raise UsageError(f"invalid {what} {text!r}: expected a whole number >= 1")
    return value


def check_instance_id(text):
    return check_ec2_id(text, "i", "instance id")


def check_ami_id(text):
    return check_ec2_id(text, "ami", "AMI id")


def check_ip(text, what="IP address"):
    try:
        return str(ipaddress.ip_address((text or "").strip()))
    except ValueError:
        raise UsageError(f"invalid {what} {text!r}: not an IPv4 or IPv6 address") from None


def check_instance_type(text):
    value = (text or "").strip().lower()
    if not INSTANCE_TYPE_RE.match(value) or len(value) > 32:
        raise UsageError(f"invalid instance type {text!r}: expected family.size, e.g. m5.large")
    return value


def check_notes(text):
    if len(text) > MAX_NOTES:
        raise UsageError(f"notes are longer than {MAX_NOTES} characters")
    if any(ord(char) < 32 and char not in "\t\n" for char in text):
        raise UsageError("notes must not contain control characters")
    return text


def check_zone(text):
    """Return (zone, region) for a well-formed availability zone name."""
    value = (text or "").strip().lower()
    match = ZONE_RE.match(value)
    if not match:
        raise UsageError(
            f"invalid availability zone {text!r}: expected a zone name such as us-west-2a or us-west-2-lax-1a"
        )
    return value, match.group("region")


def check_region(text):
    value = (text or "").strip().lower()
    if not REGION_RE.match(value):
        raise UsageError(f"invalid region {text!r}: expected a region name such as us-west-2")
    return value


def unknown_region_message(region, known, what=None):
    """One line refusing ``region`` (well formed, but not among the account's ``known`` regions),
    naming some of the known ones."""
    known = sorted(known)
    shown = ", ".join(known[:MAX_REGIONS_SHOWN])
    if len(known) > MAX_REGIONS_SHOWN:
        shown += f", ... ({len(known)} in all)"
    prefix = what or f"unknown region {region!r}"
    if not known:
        return f"{prefix}: EC2 lists no region enabled for this account"
    return f"{prefix}: not a region enabled for this AWS account (EC2 lists {shown})"


def check_regions(text):
    """A comma separated list of regions (``--region us-east-1,eu-west-1``), in order, without repeats."""
    regions = []
    for part in (text or "").split(","):
        if part.strip():
            region = check_region(part)
            if region not in regions:
                regions.append(region)
    if not regions:
        raise UsageError("--region must name at least one region")
    return regions


# option name -> (column, checker)
FIELD_CHECKS = {
    "hostname": ("hostname", check_hostname),
    "hostname_internal": ("hostname_internal", lambda v: check_hostname(v, "internal hostname")),
    "hostname_external": ("hostname_external", lambda v: check_hostname(v, "external hostname")),
    "ip_internal": ("ip_internal", lambda v: check_ip(v, "internal IP address")),
    "ip_external": ("ip_external", lambda v: check_ip(v, "external IP address")),
    "ami_id": ("ami_id", check_ami_id),
    "instance_type": ("instance_type", check_instance_type),
    "notes": ("notes", check_notes),
}


def check_fields(given, clearing=False):
    """Validate the optional host fields that are not None; return column -> value.

    With ``clearing`` (``host edit``) an empty or blank value clears the field: its column
    maps to None.  Without it (``host add``) an empty value is the same as not giving the
    option, except the hostname, which must not be empty.
    ``zone`` is not handled here: it needs a region and an existence check.
    """
    values = {}
    for option, (column, checker) in FIELD_CHECKS.items():
        raw = given.get(option)
        if raw is None:
            continue
        if not raw.strip():
            if clearing:
                values[column] = None
            elif option == "hostname":
                checker(raw)  # raises "hostname must not be empty"
            continue
        values[column] = checker(raw)
    return values

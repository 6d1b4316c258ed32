"""Host field checks and LIKE pattern building (pure)."""

import pytest

from amslib.core.errors import UsageError
from amslib.instance import validation as v
from amslib.store.hosts import like_pattern, prefix_pattern, select_hosts


@pytest.mark.parametrize(
    "text, expected",
    [
        ("i-0123abcd", "i-0123abcd"),
        ("i-0123456789abcdef0", "i-0123456789abcdef0"),
        ("I-0123456789ABCDEF0", "i-0123456789abcdef0"),
        (" i-0123abcd ", "i-0123abcd"),
    ],
)
def test_instance_id_accepted(text, expected):
    assert v.check_instance_id(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "i-", "i-0123abc", "i-0123abcde", "i-0123456789abcdef", "i-0123456789abcdef01", "i-0123abcg",
     "vol-0123abcd", "0123abcd", "i-0123abcd;", "i_0123abcd"],
)
def test_instance_id_rejected(text):
    with pytest.raises(UsageError, match="invalid instance id"):
        v.check_instance_id(text)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("web1", "web1"),
        ("Web-01.Example.COM", "web-01.example.com"),
        ("ip-10-0-0-1.ec2.internal", "ip-10-0-0-1.ec2.internal"),
        ("10.0.0.1", "10.0.0.1"),
        ("::1", "::1"),
        ("fe80::1", "fe80::1"),
        ("a" * 63 + ".b", "a" * 63 + ".b"),
    ],
)
def test_hostname_accepted(text, expected):
    assert v.check_hostname(text) == expected


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        ("web;rm -rf /", "only letters"),
        ("web'1", "only letters"),
        ('web"1', "only letters"),
        ("web 1", "only letters"),
        ("web$(id)", "only letters"),
        ("web`id`", "only letters"),
        ("-oProxyCommand=x", "only letters"),
        ("web-", "only letters"),
        ("web_1", "only letters"),
        ("web..example", "empty label"),
        (".web", "empty label"),
        ("web.", "empty label"),
        ("a" * 64, "only letters"),
        ("a." * 127 + "aa", "longer than 253"),
        ("web\n1", "only letters"),
    ],
)
def test_hostname_rejected(text, reason):
    with pytest.raises(UsageError, match=reason) as info:
        v.check_hostname(text)
    assert "\n" not in str(info.value)  # one line even when the input has a newline


@pytest.mark.parametrize(
    "text, zone, region",
    [
        ("us-west-2a", "us-west-2a", "us-west-2"),
        ("US-EAST-1B", "us-east-1b", "us-east-1"),
        ("us-gov-west-1a", "us-gov-west-1a", "us-gov-west-1"),
        ("ap-southeast-2c", "ap-southeast-2c", "ap-southeast-2"),
        ("us-west-2-lax-1a", "us-west-2-lax-1a", "us-west-2"),
    ],
)
def test_zone_accepted(text, zone, region):
    assert v.check_zone(text) == (zone, region)


@pytest.mark.parametrize("text", ["", "us", "us-west", "us-west-2", "uswest2a", "us-west-2ab", "us-west-a",
                                  "us-west-2a;", "1s-west-2a"])
def test_zone_rejected(text):
    with pytest.raises(UsageError, match="invalid availability zone"):
        v.check_zone(text)


def test_regions_list():
    assert v.check_regions("us-east-1, eu-west-1,us-east-1") == ["us-east-1", "eu-west-1"]
    with pytest.raises(UsageError, match="invalid region"):
        v.check_regions("us-east-1,us-east-1a")
    with pytest.raises(UsageError, match="at least one"):
        v.check_regions(" , ")


def test_other_fields():
    assert v.check_fields({"hostname": "A", "ip_internal": "10.0.0.1", "ami_id": "AMI-0123ABCD",
                           "instance_type": "M5.Large", "notes": "x", "hostname_external": None}) == {
        "hostname": "a", "ip_internal": "10.0.0.1", "ami_id": "ami-0123abcd", "instance_type": "m5.large",
        "notes": "x"}
    for field, bad, message in [
        ("ip_external", "10.0.0.256", "invalid external IP address"),
        ("ami_id", "ami-xyz", "invalid AMI id"),
        ("instance_type", "large", "invalid instance type"),
        ("hostname_internal", "a b", "invalid internal hostname"),
        ("notes", "a\x00b", "control characters"),
        ("notes", "x" * 4001, "longer than"),
    ]:
        with pytest.raises(UsageError, match=message):
            v.check_fields({field: bad})


@pytest.mark.parametrize(
    "user, pattern",
    [
        ("web*", "web%"),
        ("web%", "web%"),
        ("*web*", "%web%"),
        ("w*b", "w%b"),
        ("web", "%web%"),  # no wildcard: anywhere
        ("web_1*", "web\\_1%"),  # _ is literal
        ("a\\b*", "a\\\\b%"),  # backslash is literal
        ("*", "%"),
    ],
)
def test_like_pattern(user, pattern):
    assert like_pattern(user) == pattern


@pytest.mark.parametrize("user, pattern", [("web", "web%"), ("w%b", "w\\%b%"), ("a_b", "a\\_b%"), ("us-west-2", "us-west-2%")])
def test_prefix_pattern(user, pattern):
    assert prefix_pattern(user) == pattern


def test_queries_use_bound_parameters():
    query = select_hosts("hostname", like="x'; DROP TABLE hosts; --*", zone="us")
    sql = str(query.compile())
    assert "DROP" not in sql and "'" not in sql.replace("'\\'", "")
    params = query.compile().params
    assert "x'; DROP TABLE hosts; --%" in params.values()
    assert "us%" in params.values()


# -- regions: the shape here, the account's list in AwsClients (tests/unit/test_aws_regions.py) ----

@pytest.mark.parametrize("text", ["us-east-1", "us-gov-west-1", "cn-north-1", "eusc-de-east-1", " EU-West-1 "])
def test_region_shape_accepted(text):
    assert v.check_region(text) == text.strip().lower()


@pytest.mark.parametrize("text", ["", "x;y", "us_east_1", "us-east", "us-east-1a", "u-east-1", "us-east-1;ls"])
def test_region_shape_rejected(text):
    with pytest.raises(UsageError, match="invalid region"):
        v.check_region(text)


def test_zone_of_a_new_partition():
    assert v.check_zone("eusc-de-east-1a") == ("eusc-de-east-1a", "eusc-de-east-1")


def test_unknown_region_message_names_some_known_ones():
    few = v.unknown_region_message("us-east-9", {"us-east-1", "eu-west-1"})
    assert few == "unknown region 'us-east-9': not a region enabled for this AWS account " \
                  "(EC2 lists eu-west-1, us-east-1)"
    many = v.unknown_region_message("us-east-9", {f"r{i:02d}-x-1" for i in range(20)})
    assert "r00-x-1, r01-x-1" in many and "r08-x-1" not in many and many.endswith(", ... (20 in all))")
    assert "\n" not in many
    assert v.unknown_region_message("r", [], "zone 'ra' is in unknown region 'r'").startswith("zone 'ra' is in")


def test_fields_cleared_by_an_empty_value_only_when_editing():
    given = {"notes": "", "ip_internal": "  ", "hostname": "", "ami_id": None}
    assert v.check_fields(given, clearing=True) == {"notes": None, "ip_internal": None, "hostname": None}
    # adding: an empty optional field is as good as not given, an empty hostname is refused
    assert v.check_fields({"notes": "", "ip_internal": ""}) == {}
    with pytest.raises(UsageError, match="hostname must not be empty"):
        v.check_fields({"hostname": " ", "notes": "x"})
    with pytest.raises(UsageError, match="invalid internal IP address"):
        v.check_fields({"ip_internal": "10.0.0.999", "notes": ""}, clearing=True)

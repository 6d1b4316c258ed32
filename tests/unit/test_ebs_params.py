"""EBS parameter checks (pure): volume specs, counts, user tags, group tags."""

import pytest

from amslib.core.errors import UsageError
from amslib.ebs import params as p

KEY_UUID = "1234abcd-12ab-34cd-56ef-1234567890ab"
MRK = "mrk-" + "0123456789abcdef" * 2


def refused(match, func, *args, **kwargs):
    with pytest.raises(UsageError, match=match) as info:
        func(*args, **kwargs)
    assert "\n" not in str(info.value)
    return str(info.value)


# -- volume type -----------------------------------------------------------------------------------

def test_types_and_default():
    assert p.VOLUME_TYPES == ("gp3", "gp2", "io1", "io2", "st1", "sc1", "standard")
    assert p.DEFAULT_TYPE == "gp3"
    assert set(p.SIZE_LIMITS) == set(p.VOLUME_TYPES)


@pytest.mark.parametrize("text, expected", [
    ("gp3", "gp3"), ("GP2", "gp2"), (" io1 ", "io1"), ("Io2", "io2"), ("st1", "st1"), ("sc1", "sc1"),
    ("standard", "standard"), ("STANDARD", "standard"), ("gp3\n", "gp3"),
])
def test_volume_type_accepted(text, expected):
    assert p.check_volume_type(text) == expected


@pytest.mark.parametrize("text", ["", "gp4", "io3", "magnetic", "gp 3", "gp3\nio1", "gp3;", None, 3])
def test_volume_type_refused(text):
    message = refused("unknown volume type", p.check_volume_type, text)
    assert repr(text) in message and "gp3, gp2, io1, io2, st1, sc1, standard" in message


# -- sizes: every type at and just beyond both limits -----------------------------------------------

SIZE_TABLE = [
    ("gp3", 1, 16384), ("gp2", 1, 16384), ("io1", 4, 16384), ("io2", 4, 65536),
    ("st1", 125, 16384), ("sc1", 125, 16384), ("standard", 1, 1024),
]
IOPS_FOR = {"io1": 100, "io2": 100}


@pytest.mark.parametrize("vtype, low, high", SIZE_TABLE)
def test_size_limits(vtype, low, high):
    assert p.SIZE_LIMITS[vtype] == (low, high)
    for size in (low, high):
        assert p.check_volume_spec(vtype, size, iops=IOPS_FOR.get(vtype)).size_gib == size
    for size in (low - 1, high + 1):
        message = refused("out of range", p.check_volume_spec, vtype, size, iops=IOPS_FOR.get(vtype))
        assert f"{vtype}: {low}-{high} GiB" in message


@pytest.mark.parametrize("size, expected", [("100", 100), (" 8 ", 8), (5, 5), ("+7", 7)])
def test_size_whole_numbers(size, expected):
    assert p.check_volume_spec("gp3", size).size_gib == expected


@pytest.mark.parametrize("size", ["", "1.5", 1.0, 2.5, "ten", None, True, False, "1e3", "0x10", [8]])
def test_size_not_a_number(size):
    refused("volume size must be a whole number", p.check_volume_spec, "gp3", size)


@pytest.mark.parametrize("size", [0, -1, "-5"])
def test_size_zero_or_negative(size):
    refused("out of range for gp3", p.check_volume_spec, "gp3", size)


# -- IOPS ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("vtype, size, iops", [
    ("gp3", 1, 3000),        # the baseline is allowed at any size
    ("gp3", 6, 3000),
    ("gp3", 7, 3500),        # 500 per GiB
    ("gp3", 32, 16000),
    ("gp3", 16384, 16000),
    ("io1", 4, 100),
    ("io1", 4, 200),         # 50 per GiB
    ("io1", 1280, 64000),
    ("io1", 16384, 64000),
    ("io2", 4, 100),
    ("io2", 4, 4000),        # 1000 per GiB
    ("io2", 256, 256000),
    ("io2", 65536, 256000),
    ("io1", 100, "5000"),
])
def test_iops_accepted(vtype, size, iops):
    spec = p.check_volume_spec(vtype, size, iops=iops)
    assert spec.iops == int(iops)
    assert spec.create_params()["Iops"] == int(iops)


@pytest.mark.parametrize("vtype, size, iops, reason", [
    ("gp3", 100, 2999, "out of range for gp3: 3000-16000"),
    ("gp3", 100, 16001, "out of range for gp3: 3000-16000"),
    ("gp3", 6, 3001, r"too many for a 6 GiB gp3 volume: at most 500 per GiB \(3000\)"),
    ("gp3", 7, 3501, r"at most 500 per GiB \(3500\)"),
    ("io1", 100, 99, "out of range for io1: 100-64000"),
    ("io1", 16384, 64001, "out of range for io1: 100-64000"),
    ("io1", 4, 201, r"at most 50 per GiB \(200\)"),
    ("io1", 1000, 50001, r"at most 50 per GiB \(50000\)"),
    ("io2", 100, 99, "out of range for io2: 100-256000"),
    ("io2", 65536, 256001, "out of range for io2: 100-256000"),
    ("io2", 4, 4001, r"at most 1000 per GiB \(4000\)"),
    ("io2", 100, 100001, r"at most 1000 per GiB \(100000\)"),
    ("io1", 100, 0, "out of range"),
    ("io1", 100, -100, "out of range"),
])
def test_iops_refused(vtype, size, iops, reason):
    refused(reason, p.check_volume_spec, vtype, size, iops=iops)


@pytest.mark.parametrize("vtype, size", [("gp2", 100), ("st1", 500), ("sc1", 500), ("standard", 100)])
def test_iops_not_for_these_types(vtype, size):
    message = refused(f"IOPS cannot be set for {vtype} volumes", p.check_volume_spec, vtype, size, iops=3000)
    assert "only for gp3, io1, io2" in message


@pytest.mark.parametrize("vtype, limits", [("io1", "100-64000"), ("io2", "100-256000")])
def test_iops_required_for_provisioned_types(vtype, limits):
    refused(f"{vtype} volumes need IOPS \\({limits}\\)", p.check_volume_spec, vtype, 100)


@pytest.mark.parametrize("iops", ["many", 3000.5, True, "3e3"])
def test_iops_not_a_number(iops):
    refused("IOPS must be a whole number", p.check_volume_spec, "gp3", 100, iops=iops)


def test_iops_default_left_to_ec2():
    assert p.check_volume_spec("gp3", 100).iops is None
    assert "Iops" not in p.check_volume_spec("gp3", 100).create_params()


# -- throughput ------------------------------------------------------------------------------------

@pytest.mark.parametrize("size, iops, throughput", [
    (100, None, 125),
    (100, None, 750),       # 0.25 x the 3000 IOPS default
    (100, 3000, 750),
    (100, 4000, 1000),
    (100, 16000, 1000),
    (1, None, 125),
    (100, None, "300"),
])
def test_throughput_accepted(size, iops, throughput):
    spec = p.check_volume_spec("gp3", size, iops=iops, throughput=throughput)
    assert spec.throughput == int(throughput)
    assert spec.create_params()["Throughput"] == int(throughput)


@pytest.mark.parametrize("iops, throughput, reason", [
    (None, 124, "out of range for gp3: 125-1000 MiB/s"),
    (16000, 1001, "out of range for gp3: 125-1000 MiB/s"),
    (None, 0, "out of range"),
    (None, 751, r"needs at least 3004 IOPS \(0.25 MiB/s per IOPS\), not 3000"),
    (3000, 751, "needs at least 3004 IOPS"),
    (3999, 1000, "needs at least 4000 IOPS.*not 3999"),
    (None, "fast", "throughput must be a whole number"),
])
def test_throughput_refused(iops, throughput, reason):
    refused(reason, p.check_volume_spec, "gp3", 100, iops=iops, throughput=throughput)


@pytest.mark.parametrize("vtype, iops", [("gp2", None), ("io1", 1000), ("io2", 1000), ("st1", None),
                                         ("sc1", None), ("standard", None)])
def test_throughput_only_gp3(vtype, iops):
    refused(f"throughput cannot be set for {vtype} volumes: only for gp3",
            p.check_volume_spec, vtype, 500, iops=iops, throughput=250)


def test_first_problem_is_reported_in_order():
    # type, then size, then IOPS, then throughput, then encryption
    refused("unknown volume type", p.check_volume_spec, "gp9", 0, iops=1, throughput=1)
    refused("volume size", p.check_volume_spec, "gp3", 0, iops=1, throughput=1)
    refused("IOPS", p.check_volume_spec, "gp3", 100, iops=1, throughput=1)
    refused("throughput", p.check_volume_spec, "gp3", 100, throughput=1, kms_key_id="bad")


# -- encryption ------------------------------------------------------------------------------------

@pytest.mark.parametrize("key", [
    KEY_UUID,
    MRK,
    "alias/aws/ebs",
    "alias/my-key_1/prod",
    f"arn:aws:kms:us-east-1:123456789012:key/{KEY_UUID}",
    f"arn:aws:kms:eu-west-1:123456789012:key/{MRK}",
    "arn:aws:kms:us-east-1:123456789012:alias/my-key",
    f"arn:aws-us-gov:kms:us-gov-west-1:123456789012:key/{KEY_UUID}",
    f"arn:aws-cn:kms:cn-north-1:123456789012:key/{KEY_UUID}",
])
def test_kms_key_accepted(key):
    spec = p.check_volume_spec("gp3", 100, encrypted=True, kms_key_id=key)
    assert spec.kms_key_id == key
    assert spec.create_params()["KmsKeyId"] == key and spec.create_params()["Encrypted"] is True


@pytest.mark.parametrize("key", [
    "", "my-key", "alias/", "alias/bad key", "alias/x;y", KEY_UUID[:-1], KEY_UUID + "0",
    KEY_UUID.replace("-", ""), "mrk-1234", f"arn:aws:kms:us-east-1:12345:key/{KEY_UUID}",
    f"arn:aws:s3:us-east-1:123456789012:key/{KEY_UUID}", f"arn:aws:kms:us-east-1:123456789012:key/nope",
    f"{KEY_UUID}\n", "alias/" + "a" * 251, 42,
])
def test_kms_key_refused(key):
    message = refused("invalid KMS key", p.check_volume_spec, "gp3", 100, encrypted=True, kms_key_id=key)
    assert repr(key) in message


def test_kms_key_needs_encryption():
    refused("a KMS key needs an encrypted volume", p.check_volume_spec, "gp3", 100, kms_key_id=KEY_UUID)


@pytest.mark.parametrize("encrypted", ["yes", 1, None])
def test_encrypted_must_be_a_bool(encrypted):
    refused("encrypted must be true or false", p.check_volume_spec, "gp3", 100, encrypted=encrypted)


def test_encrypted_without_key_uses_the_default_key():
    spec = p.check_volume_spec("gp3", 100, encrypted=True)
    assert spec.create_params() == {"VolumeType": "gp3", "Size": 100, "Encrypted": True}


# -- VolumeSpec ------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, kwargs, params", [
    (("gp3", 10), {}, {"VolumeType": "gp3", "Size": 10}),
    (("GP3", "10"), {"iops": 4000, "throughput": 500},
     {"VolumeType": "gp3", "Size": 10, "Iops": 4000, "Throughput": 500}),
    (("io2", 100), {"iops": 20000, "encrypted": True, "kms_key_id": "alias/aws/ebs"},
     {"VolumeType": "io2", "Size": 100, "Iops": 20000, "Encrypted": True, "KmsKeyId": "alias/aws/ebs"}),
    (("st1", 125), {"encrypted": False}, {"VolumeType": "st1", "Size": 125}),
    (("standard", 1), {}, {"VolumeType": "standard", "Size": 1}),
])
def test_create_params_only_what_is_set(args, kwargs, params):
    assert p.check_volume_spec(*args, **kwargs).create_params() == params


def test_spec_is_frozen_and_comparable():
    spec = p.check_volume_spec("gp3", "10")
    assert spec == p.VolumeSpec("gp3", 10)
    assert hash(spec) == hash(p.VolumeSpec("gp3", 10))
    with pytest.raises(AttributeError):
        spec.size_gib = 20


# -- count -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("n, expected", [(1, 1), (2, 2), (24, 24), ("4", 4)])
def test_count_accepted(n, expected):
    assert p.check_count(n) == expected


@pytest.mark.parametrize("n, reason", [
    (0, "0 is out of range: 1-24"), (25, "25 is out of range: 1-24"), (-1, "-1 is out of range"),
    ("0", "'0' is out of range"), ("two", "must be a whole number"), (2.0, "must be a whole number"),
    (None, "must be a whole number"), (True, "must be a whole number"),
])
def test_count_refused(n, reason):
    refused("volume count " + reason, p.check_count, n)


# -- user tags -------------------------------------------------------------------------------------

@pytest.mark.parametrize("items, expected", [
    ([], {}),
    (None, {}),
    (["env=prod"], {"env": "prod"}),
    (["env=prod", "team=db"], {"env": "prod", "team": "db"}),
    (["empty="], {"empty": ""}),
    (["expr=a=b=c"], {"expr": "a=b=c"}),
    (["Name=my volume"], {"Name": "my volume"}),
    (["cost center=42 / ops"], {"cost center": "42 / ops"}),
    (["Env=1", "env=2"], {"Env": "1", "env": "2"}),   # keys are case-sensitive
    (["k" * 128 + "=" + "v" * 256], {"k" * 128: "v" * 256}),
    (["ünïcode=välue"], {"ünïcode": "välue"}),
    (["awsx=1", "amsterdam=2", "x:aws:y=3"], {"awsx": "1", "amsterdam": "2", "x:aws:y": "3"}),
    ("one=1", {"one": "1"}),
    ([f"k{i}=v" for i in range(33)], {f"k{i}": "v" for i in range(33)}),
])
def test_tags_accepted(items, expected):
    tags = p.parse_tags(items)
    assert tags == expected
    assert list(tags) == list(expected)


@pytest.mark.parametrize("items, reason", [
    (["env"], "expected KEY=VALUE"),
    ([""], "expected KEY=VALUE"),
    (["=prod"], "the key is empty"),
    (["aws:cloudformation=1"], "reserved"),
    (["AWS:x=1"], "reserved"),
    (["ams:volume-group-id=7"], "reserved"),
    (["Ams:raid-level=0"], "reserved"),
    (["k" * 129 + "=v"], "key is longer than 128"),
    (["k=" + "v" * 257], "value is longer than 256"),
    (["k=line\nbreak"], "control characters"),
    (["k\t=v"], "control characters"),
    (["k=\x7f"], "control characters"),
    (["env=prod", "env=dev"], "duplicate tag key 'env'"),
    ([f"k{i}=v" for i in range(34)], "too many tags: 34 given, at most 33"),
    ([3], "expected KEY=VALUE"),
])
def test_tags_refused(items, reason):
    refused(reason, p.parse_tags, items)


def test_tag_message_quotes_the_item():
    message = refused("reserved", p.parse_tags, ["aws:x='q'"])
    assert repr("aws:x='q'") in message


# -- group tags ------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, kwargs, expected", [
    ((12, 0, 1, 256, "xfs"), {}, {
        "ams:volume-group-id": "12", "ams:raid-level": "0", "ams:member-index": "1",
        "ams:stripe-kb": "256", "ams:filesystem": "xfs", "Name": "ams-vg12-1"}),
    ((3, None, 0, None, "ext4"), {}, {
        "ams:volume-group-id": "3", "ams:raid-level": "none", "ams:member-index": "0",
        "ams:stripe-kb": "none", "ams:filesystem": "ext4", "Name": "ams-vg3-0"}),
    ((40, 10, 3, 64, "xfs"), {"name": "db-data"}, {
        "ams:volume-group-id": "40", "ams:raid-level": "10", "ams:member-index": "3",
        "ams:stripe-kb": "64", "ams:filesystem": "xfs", "Name": "db-data"}),
    ((5, 1, 1, None, "ext3"), {}, {
        "ams:volume-group-id": "5", "ams:raid-level": "1", "ams:member-index": "1",
        "ams:stripe-kb": "none", "ams:filesystem": "ext3", "Name": "ams-vg5-1"}),
])
def test_group_tags(args, kwargs, expected):
    tags = p.group_tags(*args, **kwargs)
    assert tags == expected
    assert all(isinstance(v, str) for v in tags.values())


def test_group_tags_are_what_user_tags_may_not_be():
    for key in p.group_tags(1, 0, 0, 256, "xfs"):
        if key != "Name":
            refused("reserved", p.parse_tags, [f"{key}=x"])

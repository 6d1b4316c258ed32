"""AwsClients' region checks: the shape before any call, then the account's DescribeRegions
answer (asked once per process, kept on disk a short while), with a fake boto3 session (no
network) and a private HOME."""

import json
import os
import stat
from types import SimpleNamespace

import pytest

from amslib.aws import clients
from amslib.aws.clients import AwsClients
from amslib.core.errors import UsageError


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path

BUNDLED = ["us-east-1", "eu-west-1"]  # what the "installed botocore" knows


class FakeEc2:
    def __init__(self, calls, region, answer):
        self.calls, self.region, self.answer = calls, region, answer

    def describe_regions(self, AllRegions):
        self.calls.append(("DescribeRegions", self.region, AllRegions))
        return {"Regions": [{"RegionName": name} for name in self.answer]}


class FakeSession:
    region_name = None

    def __init__(self, answer):
        self.answer = answer
        self.calls = []
        self.clients = []

    def get_available_partitions(self):
        return ["aws"]

    def get_available_regions(self, service, partition_name):
        return list(BUNDLED)

    def client(self, service, region_name, config):
        self.clients.append(region_name)
        return FakeEc2(self.calls, region_name, self.answer)


def make(answer, region=None, default=None, profile=None):
    settings = SimpleNamespace(AWS_PROFILE=profile, AWS_DEFAULT_REGION=default, AWS_REGIONS=[],
                               AWS_ACCESS_KEY_ID=None, AWS_SECRET_ACCESS_KEY=None,
                               AWS_RETRY_MODE="standard", AWS_MAX_ATTEMPTS=3)
    aws = AwsClients(settings, region=region)
    aws._session = FakeSession(answer)
    return aws


def test_a_region_newer_than_botocore_is_accepted_when_the_account_has_it():
    aws = make(["us-east-1", "eu-west-1", "mx-central-9"], default="eu-west-1")
    aws.require_regions(["mx-central-9"])
    aws.require_regions(["us-east-1", "eu-west-1"])
    assert aws.account_regions() == ["eu-west-1", "mx-central-9", "us-east-1"]
    # asked once, opted-in regions only, in the default region
    assert aws._session.calls == [("DescribeRegions", "eu-west-1", False)]


def test_a_region_the_account_does_not_report_is_refused_with_the_known_ones():
    aws = make(["us-east-1", "eu-west-1"])  # ap-east-1 is in botocore's list for real, not opted in here
    with pytest.raises(UsageError) as caught:
        aws.require_regions(["us-east-1", "ap-east-1"])
    assert str(caught.value) == ("unknown region 'ap-east-1': not a region enabled for this AWS account "
                                 "(EC2 lists eu-west-1, us-east-1)")
    assert caught.value.exit_code == 2


def test_describe_regions_goes_to_a_region_botocore_knows():
    # the default region is a comma list (discovery's --region) or not known: ask elsewhere
    assert make([], region="us-east-1,eu-west-1", default="eu-west-1")._home_region() == "eu-west-1"
    assert make([], region="zz-new-1", default="us-east-1")._home_region() == "us-east-1"
    assert make([], region="zz-new-1")._home_region() == "zz-new-1"
    assert make([])._home_region() == "us-east-1"


@pytest.mark.parametrize("region", ["x;y", "us-east-1 --debug", "US_EAST_1"])
def test_a_malformed_region_makes_no_call(region):
    aws = make(["us-east-1"])
    with pytest.raises(UsageError, match="invalid region"):
        aws.ec2(region)
    aws = make(["us-east-1"], region=region)
    with pytest.raises(UsageError, match="invalid region"):
        aws.ec2()
    assert aws._session.clients == [] and aws._session.calls == []


def test_no_regions_to_check_makes_no_call():
    aws = make(["us-east-1"])
    aws.require_regions([])
    assert aws._session.calls == []


# -- the copy on disk ---------------------------------------------------------------------------

def cache_files(home):
    folder = home / ".ams" / "cache"
    return sorted(folder.iterdir()) if folder.exists() else []


def test_a_later_command_reuses_the_answer_kept_on_disk(home):
    make(["us-east-1", "eu-west-1"]).require_regions(["eu-west-1"])
    (path,) = cache_files(home)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert json.loads(path.read_text())["regions"] == ["eu-west-1", "us-east-1"]

    later = make(["us-east-1", "eu-west-1"])
    later.require_regions(["us-east-1"])
    assert later._session.calls == []
    # listing every region to work in (discovery) always asks EC2
    assert later.regions() == ["eu-west-1", "us-east-1"] and len(later._session.calls) == 1
    # another profile is another account: its own file
    other = make(["us-east-1"], profile="other")
    other.require_regions(["us-east-1"])
    assert len(other._session.calls) == 1 and len(cache_files(home)) == 2


def test_a_refusal_is_never_on_the_word_of_the_disk_copy(home):
    make(["us-east-1"]).require_regions(["us-east-1"])
    opted_in = make(["us-east-1", "me-south-1"])  # opted in since the file was written
    opted_in.require_regions(["me-south-1"])
    assert len(opted_in._session.calls) == 1
    assert json.loads(cache_files(home)[0].read_text())["regions"] == ["me-south-1", "us-east-1"]
    refused = make(["us-east-1", "me-south-1"])
    with pytest.raises(UsageError, match="unknown region 'xx-none-1'"):
        refused.require_regions(["xx-none-1"])
    assert len(refused._session.calls) == 1  # asked EC2 before refusing


@pytest.mark.parametrize("content", [
    "not json", "{}", '{"saved_at": "x", "regions": []}', '{"saved_at": 0, "regions": ["us-east-1"]}',
    '{"saved_at": NOW, "regions": ["us-east-1;x"]}', '{"saved_at": NOW, "regions": "us-east-1"}',
    '{"saved_at": FUTURE, "regions": ["us-east-1"]}',
])
def test_a_stale_or_damaged_copy_is_ignored_and_replaced(home, content):
    import time

    first = make(["us-east-1"])
    first.require_regions(["us-east-1"])
    (path,) = cache_files(home)
    now = time.time()
    path.write_text(content.replace("NOW", str(now)).replace("FUTURE", str(now + 3600)))
    again = make(["us-east-1"])
    again.require_regions(["us-east-1"])
    assert len(again._session.calls) == 1
    assert clients.read_region_cache(str(path)) == ["us-east-1"]


def test_an_unwritable_cache_folder_only_costs_the_cache(home):
    (home / ".ams").write_text("a file where the folder would be")
    aws = make(["us-east-1"])
    aws.require_regions(["us-east-1"])
    aws.require_regions(["us-east-1"])
    assert len(aws._session.calls) == 1
    later = make(["us-east-1"])
    assert later.account_regions() == ["us-east-1"]
    assert len(later._session.calls) == 1  # asked again: nothing was saved
    assert (home / ".ams").read_text() == "a file where the folder would be"

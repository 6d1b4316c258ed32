"""Argument types and the shared option handling of the command tree."""

import argparse

import pytest

from amslib.cli.base import int_at_least, non_negative_int, positive_int
from amslib.cli.main import build_parser, parse_args


@pytest.mark.parametrize("text,value", [("1", 1), ("42", 42), (" 7 ", 7)])
def test_positive_int_accepts_whole_numbers(text, value):
    assert positive_int(text) == value


@pytest.mark.parametrize("text", ["0", "-1", "1.5", "x", ""])
def test_positive_int_rejects_the_rest(text):
    with pytest.raises(argparse.ArgumentTypeError):
        positive_int(text)


def test_non_negative_int_allows_zero():
    assert non_negative_int("0") == 0
    with pytest.raises(argparse.ArgumentTypeError, match="less than 0"):
        non_negative_int("-3")


def test_int_at_least_names_the_bound():
    with pytest.raises(argparse.ArgumentTypeError, match="4 is less than 5"):
        int_at_least(5)("4")


@pytest.mark.parametrize(
    "argv",
    [
        ["--output", "json", "-q", "internals", "database", "upgrade"],
        ["internals", "database", "upgrade", "--output", "json", "-q"],
        ["internals", "--output", "json", "database", "upgrade", "-q"],
    ],
)
def test_global_options_are_accepted_at_any_level(argv):
    args = parse_args(build_parser(), argv)
    assert args.output == "json" and args.quiet is True and args.verbose == 0


def test_defaults_when_no_global_option_is_given():
    args = parse_args(build_parser(), ["internals", "database", "upgrade"])
    assert (args.output, args.quiet, args.debug, args.region, args.profile) == ("table", False, False, None, None)

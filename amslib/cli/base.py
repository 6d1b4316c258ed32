"""Helpers every command module uses to build its parsers.

Options that belong to every command (verbosity, --output, --profile,
--region) are accepted both before the command group (``ams --output json
host list``) and after the command (``ams host list --output json``).
"""

import argparse

SUPPRESS = argparse.SUPPRESS


def _common_parent():
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("global options")
    group.add_argument(
        "-v", "--verbose", action="count", default=SUPPRESS,
        help="also print each step (and progress even off a terminal) on stderr; -vv adds debug logging",
    )
    group.add_argument(
        "-q", "--quiet", action="store_true", default=SUPPRESS,
        help="for cron: no progress, steps or confirmations; lists, dry-run plans, JSON, "
        "warnings and errors still print",
    )
    group.add_argument("--debug", action="store_true", default=SUPPRESS, help="print the traceback of an error")
    group.add_argument(
        "--output", choices=("table", "json"), default=SUPPRESS, help="result format (default: table)"
    )
    group.add_argument("--profile", default=SUPPRESS, help="AWS profile from ~/.aws/config")
    return parent


def _region_parent():
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--region", default=SUPPRESS, help="AWS region (default: from settings or AWS config)")
    return parent


COMMON = _common_parent()
REGION = _region_parent()

GLOBAL_DEFAULTS = {"verbose": 0, "quiet": False, "debug": False, "output": "table", "profile": None, "region": None}


def show_help(parser):
    """A handler for a command group given without a subcommand."""

    def handler(ctx, args):
        parser.print_help()
        return 2

    handler.shows_help = True  # not a command of its own (tests walking the tree skip it)
    return handler


def add_group(subparsers, name, help_text, description=None):
    """A command level with its own subcommands; prints its help when given alone."""
    parser = subparsers.add_parser(
        name, help=help_text, description=description or help_text, parents=[COMMON, REGION]
    )
    parser.set_defaults(func=show_help(parser))
    return parser, parser.add_subparsers(title="commands", metavar="COMMAND")


def add_command(subparsers, name, help_text, handler, *, description=None, region=True, dry_run=False):
    """A leaf command calling ``handler(ctx, args)``.

    ``region=False`` for commands whose own ``-r/--region`` means something
    else (a filter); ``dry_run=True`` for commands that change anything.
    """
    parents = [COMMON, REGION] if region else [COMMON]
    parser = subparsers.add_parser(name, help=help_text, description=description or help_text, parents=parents)
    parser.set_defaults(func=handler)
    if dry_run:
        parser.add_argument("--dry-run", action="store_true", help="show what would be done and change nothing")
    return parser


def add_match_arguments(parser, metavar, noun, value_help=None):
    """The value to match on: exactly (the optional positional), by wildcard (--like) or by
    prefix (--prefix), one of the three (store.hosts.match_clause reads them)."""
    match = parser.add_mutually_exclusive_group()
    match.add_argument("value", nargs="?", metavar=metavar, help=value_help or f"exact {noun}")
    match.add_argument("--like", metavar="LIKE", help=f"wildcard pattern for the {noun}")
    match.add_argument("--prefix", metavar="PREFIX", help=f"the {noun} starts with PREFIX")


def int_at_least(minimum):
    """An argparse type: a whole number no smaller than ``minimum``."""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is less than {minimum}")
        return value

    parse.__name__ = f"whole number >= {minimum}"
    return parse


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)

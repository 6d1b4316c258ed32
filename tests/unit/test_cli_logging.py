"""Running commands in-process leaves the logging configuration as it was."""

import logging

from amslib.cli.main import build_parser, parse_args, setup_logging


def test_setup_logging_levels_and_restore():
    logger = logging.getLogger("ams")
    before = (logger.level, list(logger.handlers), logger.propagate)
    for argv, level in (([], logging.WARNING), (["-v"], logging.INFO), (["-vv"], logging.DEBUG),
                        (["--debug"], logging.DEBUG), (["-q"], logging.WARNING)):
        args = parse_args(build_parser(), argv + ["internals", "database", "upgrade"])
        got, restore = setup_logging(args)
        assert got is logger and logger.level == level
        assert len(logger.handlers) == len(before[1]) + 1
        restore()
        assert (logger.level, list(logger.handlers), logger.propagate) == before

# PYTHON_ARGCOMPLETE_OK
"""The ``ams`` command: parses the command line and runs one handler.

Only argparse-level code is imported here; handlers import boto3, paramiko and
SQLAlchemy when they run, so ``--help`` and shell completion stay fast.
"""

import argparse
import logging
import os
import sys

from .. import __version__
from ..core.errors import AmsError, DatabaseError, Interrupted
from . import base

# Command groups in the order `ams -h` lists them; each module has register(subparsers).
COMMAND_MODULES = ("host", "volume", "snapshot", "internals")


def _command_modules():
    import importlib

    for name in COMMAND_MODULES:
        try:
            yield importlib.import_module(f"{__package__}.{name}_cmd")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__package__}.{name}_cmd":
                raise


def build_parser():
    parser = argparse.ArgumentParser(
        prog="ams",
        description="AWS Management Suite: EBS volume groups, snapshot groups and hosts.",
        parents=[base.COMMON, base.REGION],
    )
    parser.add_argument("--version", action="version", version=f"ams {__version__}")
    parser.set_defaults(func=base.show_help(parser))
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for module in _command_modules():
        module.register(subparsers)
    return parser


def parse_args(parser, argv):
    args = parser.parse_args(argv)
    for name, value in base.GLOBAL_DEFAULTS.items():
        if not hasattr(args, name):
            setattr(args, name, value)
    return args


def setup_logging(args):
    """Send ams's log records to stderr at the chosen verbosity.

    Returns a function that puts the ``ams`` logger back as it was, so that
    running several commands in one process (tests, embedding) does not stack
    handlers or leave levels behind.
    """
    level = logging.WARNING
    if args.verbose == 1:
        level = logging.INFO
    elif args.verbose >= 2 or args.debug:
        level = logging.DEBUG
    if args.quiet:  # -q hides info and debug; warnings are real problems and stay (cli/output.py)
        level = logging.WARNING
    logger = logging.getLogger("ams")
    saved = (logger.level, list(logger.handlers), logger.propagate)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("ams: %(levelname)s: %(message)s"))
    logger.setLevel(level)
    logger.addHandler(handler)

    def restore():
        for extra in logger.handlers[:]:
            if extra not in saved[1]:
                logger.removeHandler(extra)
                extra.close()
        logger.setLevel(saved[0])
        logger.propagate = saved[2]

    return logger, restore


def _add_log_file(ctx, logger):
    path = ctx.settings.LOG_FILE
    if path:
        handler = logging.FileHandler(path)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        logger.addHandler(handler)


def run(args, context_factory=None):
    """Run the handler chosen by ``args``; return the exit code."""
    from .context import Context

    logger, restore_logging = setup_logging(args)
    ctx = (context_factory or Context)(args)
    try:
        _add_log_file(ctx, logger)
        code = args.func(ctx, args)
        return 0 if code is None else code
    except KeyboardInterrupt:
        return _fail(args, Interrupted("interrupted"))
    except AmsError as exc:
        return _fail(args, exc)
    except Exception as exc:  # a bug or an unmapped library error: still one line, still non-zero
        known = _library_error(exc)
        return _fail(args, known, unexpected=False) if known else _fail(args, exc, unexpected=True)
    finally:
        try:
            ctx.close()
        except Exception:  # closing must not hide the real outcome
            logger.debug("error while closing connections", exc_info=True)
        restore_logging()


def _library_error(exc):
    """Map failures of libraries every command shares to AmsErrors (None: a bug)."""
    sqlalchemy_exc = sys.modules.get("sqlalchemy.exc")
    if sqlalchemy_exc is not None and isinstance(exc, sqlalchemy_exc.DBAPIError):
        from ..store.db import driver_error_detail

        error = DatabaseError(f"database error: {driver_error_detail(exc)}")
        error.__traceback__ = exc.__traceback__
        return error
    return None


def _fail(args, exc, unexpected=False):
    if args.debug:
        import traceback

        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    if unexpected:
        print(
            f"ams: error: unexpected {exc.__class__.__name__}: {exc} (run with --debug for details)",
            file=sys.stderr,
        )
        return 1
    print(f"ams: error: {exc}", file=sys.stderr)
    if getattr(exc, "hint", None):
        print(f"ams: hint: {exc.hint}", file=sys.stderr)
    return exc.exit_code


def complete(parser):
    """Answer a shell completion request (argcomplete's ``_ARGCOMPLETE`` is set) and exit.

    Only here are the database completers attached (amslib.cli.completion): a normal run
    never walks the parser for them.
    """
    try:
        import argcomplete
    except ImportError:  # nothing can answer: fail quietly rather than run the command
        return 1
    from . import completion

    completion.attach(parser)
    finder = completion.finder_class(argcomplete.CompletionFinder)()
    finder(parser)  # as argcomplete.autocomplete(parser): writes the candidates and exits
    return 1


def main(argv=None):
    parser = build_parser()
    if "_ARGCOMPLETE" in os.environ:
        return complete(parser)
    args = parse_args(parser, argv)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())

"""Every `ams …` command line README.md shows parses: run with -h appended, it prints help
and exits 0 (a renamed command, a dropped option or a value of the wrong type fails here)."""

import contextlib
import io
import os
import re
import shlex

import pytest

README = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "README.md")
SHELL_OPERATORS = {"|", "||", "&&", ";", ">", ">>", "2>&1", "<", "&"}
TOP = {"host", "volume", "snapshot", "internals"}


def _command_after(tokens, start):
    """The ams arguments from ``tokens[start]`` up to a shell operator."""
    args = []
    for token in tokens[start:]:
        if token in SHELL_OPERATORS or token.startswith((">", "2>")):
            break
        args.append(token)
    return args


def commands_in(text):
    """[(line number, [args])] of every ams command line in code blocks and inline code."""
    found = []
    in_block = False
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            in_block = not in_block
            continue
        candidates = [line] if in_block else re.findall(r"`([^`]+)`", line)
        for candidate in candidates:
            if "…" in candidate or "ams " not in candidate + " " or re.search(r"\[\s*-|\[[A-Z]", candidate):
                continue  # not a command line: a syntax summary (ellipsis, [OPTIONAL] parts)
            try:
                tokens = shlex.split(candidate.split(" #")[0].strip().lstrip("$ "), comments=False)
            except ValueError:
                continue
            for index, token in enumerate(tokens):
                if token in ("ams", "./ams") and index + 1 < len(tokens) and (
                        tokens[index + 1] in TOP or tokens[index + 1].startswith("-")):
                    args = _command_after(tokens, index + 1)
                    if "|" not in " ".join(args):
                        found.append((number, args))
                    break
    return found


with open(README) as _f:
    COMMANDS = commands_in(_f.read())


def test_the_readme_shows_commands_of_every_group():
    groups = {args[0] for _, args in COMMANDS if args and not args[0].startswith("-")}
    assert groups == TOP
    assert len(COMMANDS) >= 40


@pytest.mark.parametrize("line,args", COMMANDS, ids=[f"L{n}:{' '.join(a)[:60]}" for n, a in COMMANDS])
def test_readme_command_parses_with_help(line, args):
    from amslib.cli import main as cli_main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exit_:
        cli_main.parse_args(cli_main.build_parser(), args + ["-h"])
    assert exit_.value.code in (0, None), f"README.md line {line}: ams {' '.join(args)} -h: {err.getvalue().strip()}"
    assert out.getvalue().startswith("ams " if "--version" in args else "usage: ams")


def test_the_extractor_reads_blocks_inline_code_and_cron_lines():
    text = "\n".join([
        "Run `ams host list --prefix web` first; `ams host|volume …` is a summary.",
        "```sh",
        "ams volume create -H db1 -n 2 -s 10   # a comment",
        "$ ams -q snapshot list | head",
        "5 * * * * ams  ams -q snapshot schedule run --purge >> /var/log/ams.log 2>&1",
        "git pull && ams internals database upgrade",
        "```",
        "`amsterdam` is not ams; `ams volume list [--zone Z]` is a summary too",
    ])
    assert [args for _, args in commands_in(text)] == [
        ["host", "list", "--prefix", "web"],
        ["volume", "create", "-H", "db1", "-n", "2", "-s", "10"],
        ["-q", "snapshot", "list"],
        ["-q", "snapshot", "schedule", "run", "--purge"],
        ["internals", "database", "upgrade"],
    ]

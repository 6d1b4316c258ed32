#!/usr/bin/env python3
"""Benchmark how long the ``ams`` command takes to answer a person (issue 13): help, shell
completion, and ``host list`` of 10,000 hosts.

    .venv/bin/python bench/cli_latency.py [--runs 20] [--hosts 10000] [--no-awscli] [--json]

Method.  A temporary directory gets a SQLite database installed with ams's migrations and filled
with ``--hosts`` hosts (half ``web-NNNNN.example.com``, half ``db-NNNNN.example.com``), a HOME
without settings, and ``AMS_DB_URL`` pointing at the database.  ams is measured through its
installed entry point: the ``ams`` console script of ``.venv`` when the project is pip-installed
there, else (the usual case in a checkout) a copy of the sources is ``pip install``-ed
(``--no-deps``, not editable) into a virtualenv of the benchmark whose dependencies are .venv's
(a ``.pth`` file), giving the console script pip writes.  The checkout's ``ams`` script is measured
beside it.  aws-cli's ``aws_completer`` is installed with pip into another virtualenv of the
benchmark (``pip install awscli``); when that fails the benchmark says so and goes on.

Every case is a new process started from here (``subprocess``, output to a file or /dev/null),
timed from start to exit; the cases take turns (one run of each, ``--runs`` times, after two
untimed rounds) so that a change in the machine's load hits all of them.  The median is reported.
A completion request is what bash's hook sends (``_ARGCOMPLETE=1``, ``COMP_LINE``,
``COMP_POINT``; the candidates go to ``_ARGCOMPLETE_STDOUT_FILENAME``) and its candidates are
checked after the runs.

Goals (issue 13), medians through the installed entry point:

* static completion (``ams vol<TAB>``) <= 60 ms;
* dynamic completion of hostnames from 10,000 hosts <= 100 ms, both for a prefix
  (``ams volume create -H web-0012<TAB>``, 5 candidates) and for all of them (``-H <TAB>``);
* ``ams host list`` of 10,000 hosts (a table on stdout) <= 1 s.

Last measured (2 shared cores, a QEMU guest of another process running beside; Python 3.11.7,
argcomplete 3.7.2, awscli 1.46.3; 20 runs, medians): ``python -c pass`` 8.6 ms;
``ams --help`` 36 ms; ``ams vol<TAB>`` 40 ms (checkout script 41 ms; goal <= 60: met);
hostnames by prefix 44 ms, all 10,000 hostnames 57 ms (goal <= 100: met); ``ams host list``
of 10,000 hosts 0.40 s (goal <= 1 s: met); aws_completer ``aws ec2 describe-vol<TAB>`` 330 ms.

Before issue 13's changes (same machine, ad hoc runs): the checkout script started two
interpreters (python3 only to exec .venv's), 69 ms for ``ams vol<TAB>`` against 41 ms for .venv's
python alone; all 10,000 hostnames took 485 ms (argcomplete de-duplicates candidates with a list:
quadratic, 0.35 s; and escapes each with ~25 replaces, 60 ms), now linear in
``amslib.cli.completion.finder_class``; ``host list`` took 0.85-1.3 s, a third of it
prettytable drawing the table (now ``amslib.cli.text_table``, the same characters) and 0.1 s
reading every column of every row (the table now reads its nine).

Where the time goes now (``python -X importtime``, cProfile): a completion is interpreter
start (~9 ms), imports (argparse ~5 ms, argcomplete ~6 ms, logging ~4 ms, the command modules),
building the parser (~12 ms) and, for hostnames, sqlite3 (~2 ms) and the query (~4 ms for
10,000 rows).  ``host list`` spends ~0.15 s importing SQLAlchemy, ~0.1 s importing Alembic for
the schema check (amslib.store.migrate.require_current: reading ``alembic_version`` directly
would save it), ~40 ms reading the rows and ~40 ms drawing the table.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

GOAL_STATIC_S = 0.060
GOAL_DYNAMIC_S = 0.100
GOAL_HOST_LIST_S = 1.0
DYNAMIC_PREFIX = "web-0012"
SOURCES = ("amslib", "sql", "pyproject.toml", "README.md", "requirements.txt")


def parse_args(argv):
    parser = argparse.ArgumentParser(description="Benchmark ams's start-up, completion and host list latency.")
    parser.add_argument("--runs", type=int, default=20, help="timed runs of each case (default 20)")
    parser.add_argument("--hosts", type=int, default=10000, help="hosts in the database (default 10000)")
    parser.add_argument("--no-awscli", action="store_true", help="do not install and measure aws_completer")
    parser.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    return parser.parse_args(argv)


def say(message):
    print(message, file=sys.stderr, flush=True)


def run(cmd, **kwargs):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kwargs)


# -- setup -------------------------------------------------------------------------------------------

def build_database(path, count):
    from datetime import datetime, timezone

    from amslib.store.db import create_engine
    from amslib.store.migrate import install
    from amslib.store.schema import hosts

    now = datetime.now(timezone.utc).replace(microsecond=0)
    zones = ("us-east-1a", "us-east-1b", "us-west-2a", "eu-west-1c")
    rows = []
    for n in range(count):
        zone = zones[n % len(zones)]
        rows.append({
            "instance_id": f"i-{0x10000000 + n:017x}",
            "hostname": f"{'web' if n % 2 else 'db'}-{n:05d}.example.com",
            "hostname_source": "discovery",
            "name": f"node {n}",
            "region": zone[:-1],
            "availability_zone": zone,
            "instance_type": "m5.large",
            "ami_id": "ami-0123456789abcdef0",
            "hostname_internal": f"ip-10-{n // 65536}-{n // 256 % 256}-{n % 256}.ec2.internal",
            "ip_internal": f"10.{n // 65536}.{n // 256 % 256}.{n % 256}",
            "state": "running",
            "tags": json.dumps({"Name": f"node {n}"}),
            "created_at": now,
            "updated_at": now,
            "discovered_at": now,
        })
    engine = create_engine(f"sqlite:///{path}")
    try:
        install(engine)
        with engine.begin() as conn:
            conn.execute(hosts.insert(), rows)
    finally:
        engine.dispose()


def installed_entry_point(workdir):
    """(path of an installed `ams` console script, how it was found or made)."""
    venv_ams = os.path.join(ROOT, ".venv", "bin", "ams")
    if os.path.exists(venv_ams):
        return venv_ams, "the console script pip installed in .venv"
    src = os.path.join(workdir, "src")
    os.mkdir(src)
    for name in SOURCES:
        source = os.path.join(ROOT, name)
        if os.path.isdir(source):
            shutil.copytree(source, os.path.join(src, name), ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, src)
    venv = os.path.join(workdir, "ams-venv")
    run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = os.path.join(venv, "bin", "python")
    site = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    with open(os.path.join(site, "ams-bench-deps.pth"), "w") as pth:
        pth.write(sysconfig.get_paths()["purelib"] + "\n")  # .venv's packages: boto3, argcomplete, ...
    run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", src], cwd=workdir)
    return os.path.join(venv, "bin", "ams"), "a copy of the checkout pip-installed (--no-deps) in the benchmark's venv"


def install_awscli(workdir):
    """(path of aws_completer, None) or (None, why not)."""
    venv = os.path.join(workdir, "aws-venv")
    try:
        run([sys.executable, "-m", "venv", venv])
        run([os.path.join(venv, "bin", "python"), "-m", "pip", "install", "-q", "awscli"], timeout=900)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        detail = (getattr(exc, "stderr", None) or str(exc)).strip().splitlines()
        return None, f"pip install awscli failed: {detail[-1] if detail else exc}"
    completer = os.path.join(venv, "bin", "aws_completer")
    if not os.path.exists(completer):
        return None, "pip install awscli gave no aws_completer"
    version = run([os.path.join(venv, "bin", "python"), "-c", "import awscli; print(awscli.__version__)"])
    return completer, f"awscli {version.stdout.strip()}"


# -- the cases ---------------------------------------------------------------------------------------

class Case:
    def __init__(self, name, argv, env, out=None, expect=None):
        self.name = name
        self.argv = argv
        self.env = env
        self.out = out  # file the candidates are written to (completion), else stdout to /dev/null
        self.expect = expect  # check(output) -> error text or None
        self.times = []

    def once(self):
        started = time.perf_counter()
        proc = subprocess.run(self.argv, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        elapsed = time.perf_counter() - started
        if proc.returncode != 0:
            raise SystemExit(f"{self.name}: exit {proc.returncode}: {proc.stderr.decode()[-500:]}")
        return elapsed

    def check(self):
        if self.expect is None:
            return
        if self.out:
            with open(self.out) as handle:
                output = handle.read()
        else:
            output = subprocess.run(self.argv, env=self.env, capture_output=True, text=True).stdout
        problem = self.expect(output)
        if problem:
            raise SystemExit(f"{self.name}: unexpected output: {problem}")


def completion_env(env, line, out):
    env = dict(env)
    env.update(_ARGCOMPLETE="1", _ARGCOMPLETE_SHELL="bash", _ARGCOMPLETE_SUPPRESS_SPACE="1",
               COMP_LINE=line, COMP_POINT=str(len(line)), COMP_TYPE="9", _ARGCOMPLETE_STDOUT_FILENAME=out)
    return env


def candidates(output):
    return [word for word in output.split("\013") if word]


def expect_candidates(expected):
    def check(output):
        got = candidates(output)
        return None if got == expected else f"{got[:5]}... ({len(got)}), expected {expected[:5]}... ({len(expected)})"

    return check


def expect_count(count):
    def check(output):
        got = candidates(output)
        return None if len(got) == count else f"{len(got)} candidates, expected {count}"

    return check


def build_cases(workdir, env, entry_point, aws_completer, hosts):
    python = os.path.join(os.path.dirname(entry_point), "python")
    if not os.path.exists(python):
        python = sys.executable
    checkout = os.path.join(ROOT, "ams")
    out = lambda name: os.path.join(workdir, f"{name}.out")  # noqa: E731
    prefix_hosts = [f"web-{n:05d}.example.com" for n in range(hosts) if n % 2 and f"{n:05d}".startswith("0012")]
    cases = [
        Case("python -c pass", [python, "-c", "pass"], env),
        Case("ams --help", [entry_point, "--help"], env,
             expect=lambda text: None if "usage: ams" in text else text[:200]),
        Case("ams vol<TAB>", [entry_point], completion_env(env, "ams vol", out("static")), out("static"),
             expect_candidates(["volume"])),
        Case("ams vol<TAB> (checkout script)", [checkout], completion_env(env, "ams vol", out("static-checkout")),
             out("static-checkout"), expect_candidates(["volume"])),
        Case(f"ams volume create -H {DYNAMIC_PREFIX}<TAB>", [entry_point],
             completion_env(env, f"ams volume create -H {DYNAMIC_PREFIX}", out("prefix")), out("prefix"),
             expect_candidates(prefix_hosts)),
        Case("ams volume create -H <TAB> (all hostnames)", [entry_point],
             completion_env(env, "ams volume create -H ", out("all")), out("all"), expect_count(hosts)),
        Case(f"ams host list ({hosts} hosts)", [entry_point, "host", "list"], env,
             expect=lambda text: None if text.count("\n") == hosts + 4 else f"{text.count(chr(10))} lines"),
    ]
    if aws_completer:
        aws_env = dict(os.environ, COMP_LINE="aws ec2 describe-vol", COMP_POINT=str(len("aws ec2 describe-vol")))
        cases.append(Case("aws_completer: aws ec2 describe-vol<TAB>", [aws_completer], aws_env,
                          expect=lambda text: None if "describe-volumes" in text else text[:200]))
    return cases


def measure(cases, runs, warmup=2):
    for n in range(warmup + runs):
        for case in cases:
            elapsed = case.once()
            if n >= warmup:
                case.times.append(elapsed)
        if n >= warmup:
            say(f"round {n - warmup + 1}/{runs}: " + ", ".join(f"{c.times[-1] * 1000:.0f}" for c in cases) + " ms")
    for case in cases:
        case.check()


def main(argv=None):
    opts = parse_args(argv)
    workdir = tempfile.mkdtemp(prefix="ams-bench-cli-")
    try:
        home = os.path.join(workdir, "home")
        os.mkdir(home)
        db_path = os.path.join(workdir, "ams.db")
        say(f"building a database of {opts.hosts} hosts in {db_path}")
        build_database(db_path, opts.hosts)
        # as a person's shell runs ams: no AMS_* of the caller, and bytecode cached (with
        # PYTHONDONTWRITEBYTECODE the checkout's changed modules would be compiled on every run)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("AMS_", "_ARGCOMPLETE", "COMP_")) and k != "PYTHONDONTWRITEBYTECODE"}
        env.update(HOME=home, AMS_DB_URL=f"sqlite:///{db_path}")
        say("installing ams (entry point)")
        entry_point, how = installed_entry_point(workdir)
        aws_completer, aws_note = (None, "not measured (--no-awscli)")
        if not opts.no_awscli:
            say("installing awscli into the benchmark's virtualenv (pip install awscli)")
            aws_completer, aws_note = install_awscli(workdir)
            if aws_completer is None:
                say(f"aws_completer: {aws_note}; going on without it")
        cases = build_cases(workdir, env, entry_point, aws_completer, opts.hosts)
        say(f"measuring {len(cases)} cases, {opts.runs} runs each: " + "; ".join(c.name for c in cases))
        measure(cases, opts.runs)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    results = {c.name: {"median_s": statistics.median(c.times), "min_s": min(c.times), "max_s": max(c.times)}
               for c in cases}
    median = {c.name: results[c.name]["median_s"] for c in cases}
    static = median["ams vol<TAB>"]
    dynamic = max(median[f"ams volume create -H {DYNAMIC_PREFIX}<TAB>"], median["ams volume create -H <TAB> (all hostnames)"])
    host_list = median[f"ams host list ({opts.hosts} hosts)"]
    goals = [
        {"goal": "static completion (entry point)", "limit_s": GOAL_STATIC_S, "median_s": static,
         "met": static <= GOAL_STATIC_S},
        {"goal": f"dynamic completion of hostnames ({opts.hosts} hosts; slower of prefix and all)",
         "limit_s": GOAL_DYNAMIC_S, "median_s": dynamic, "met": dynamic <= GOAL_DYNAMIC_S},
        {"goal": f"host list of {opts.hosts} hosts", "limit_s": GOAL_HOST_LIST_S, "median_s": host_list,
         "met": host_list <= GOAL_HOST_LIST_S},
    ]
    result = {"runs": opts.runs, "hosts": opts.hosts, "entry_point": how, "aws_completer": aws_note,
              "python": sys.version.split()[0], "cases": results, "goals": goals}
    if opts.json:
        json.dump(result, sys.stdout, indent=2)
        print()
        return 0

    print()
    print(f"ams latency, median of {opts.runs} runs; entry point: {how}; aws_completer: {aws_note}")
    width = max(len(name) for name in results) + 2
    print(f"  {'case':<{width}} {'median ms':>10} {'min ms':>8} {'max ms':>8}")
    for name, entry in results.items():
        print(f"  {name:<{width}} {entry['median_s'] * 1000:>10.1f} {entry['min_s'] * 1000:>8.1f} "
              f"{entry['max_s'] * 1000:>8.1f}")
    print()
    for goal in goals:
        verdict = "met" if goal["met"] else "NOT met"
        print(f"{goal['goal']}: {goal['median_s'] * 1000:.0f} ms (goal <= {goal['limit_s'] * 1000:.0f} ms: {verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

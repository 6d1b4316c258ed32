"""The fault matrix of issue 11: every mutating flow x each of its EC2 and host steps x a fault,
driven through the real ``ams`` command against the rig (moto EC2 server + QEMU guest).

``MATRIX`` below is the whole table, one row per (flow, step, fault) with what a user must find
afterwards.  Faults:

- ``throttled``: ``RequestLimitExceeded`` twice at that step; botocore's retry mode absorbs it
  (the command exits 0).  The throttled rows of a flow run as one command, one fault armed per
  step, and each row checks that its own fault fired both times.
- ``InternalError``: as many times as botocore tries (``AMS_AWS_MAX_ATTEMPTS``) for every call
  of the step: one ``ams: error:`` line, exit 7, and the undo ran.
- ``ssh-drop``: every SSH session to the guest is cut while the step's command runs; the command
  itself goes on on the host 3 s later, and the undo must wait for it (the host lock)
  (``install_ssh_drop_wrapper``, the same kill as ``faults.drop_ssh``); ``answer lost``: right
  after it ran, before its exit status reached ams (``faults.drop_ssh_after_command``); ``drop
  during CreateSnapshots``: between freeze and thaw.
- ``command-fails``: the step's host command exits non-zero (``faults.fail_command``).
- ``killed``: the ams process is SIGKILLed right after the step's EC2 call succeeded in moto,
  before ams heard the answer (``ApiFaults.after_success``): the resource exists, ams never
  recorded it.

Outcomes: ``absorbed`` (exit 0), ``cleaned`` (everything undone: EC2's volumes and their
attachments, the database's attachments, the guest's mounts and arrays are as before the
command; every EC2 resource is recorded live in the database or deleted), ``recorded`` (what exists is recorded live; the command did not
finish), ``tagged, findable`` (a killed ams left EC2 resources it never recorded: each carries
the ``ams:*`` group tag of a group row the database has, and is removed by the test as an
operator would).

After every row: the EC2 invariant above (both regions), no filesystem of the guest frozen (a
write with a timeout on every mount point of /proc/self/mountinfo under /srv/fm-), the post hook
ran whenever the pre hook ran, exactly one ``ams: error:`` line and a non-zero exit (0 for
absorbed rows), the guest's fstab and mdadm.conf unchanged by a failed create or clone onto
the host, and the next
command works (the flows run in sequence on the same groups; each ends with a successful one).
"""

import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest

from tests.dbfixtures import ROOT, AmsResult
from tests.integration.test_snapshots_guest import drop_ssh_during_snapshot_call, writable
from tests.integration.test_volumes_guest import (  # noqa: F401  (setup is a fixture)
    MDADM_CONF, gsh, install_ssh_drop_wrapper, ok, setup,
)
from tests.rig import faults

pytestmark = pytest.mark.guest

EAST, WEST = "us-east-1", "eu-west-1"

# fmt: off
MATRIX = [
    # flow             step: EC2 action [> after] [@ region] | host: command  fault            outcome
    ("create single",   "DescribeInstances",                            "InternalError", "cleaned"),
    ("create single",   "CreateVolume",                                 "InternalError", "cleaned"),
    ("create single",   "DescribeVolumes > CreateVolume",               "InternalError", "cleaned"),
    ("create single",   "AttachVolume",                                 "InternalError", "cleaned"),
    ("create single",   "DescribeVolumes > AttachVolume",               "InternalError", "cleaned"),
    ("create single",   "CreateTags",                                   "InternalError", "cleaned"),
    ("create single",   "host: mkfs.xfs",                               "command-fails", "cleaned"),
    ("create single",   "host: mount",                                  "command-fails", "cleaned"),
    ("create single",   "host: mkfs.xfs",                               "ssh-drop",      "cleaned"),
    ("create single",   "CreateVolume",                                 "killed",        "tagged, findable"),
    ("create single",   "AttachVolume",                                 "killed",        "recorded"),
    ("create single",   "DescribeInstances",                            "throttled",     "absorbed"),
    ("create single",   "CreateVolume",                                 "throttled",     "absorbed"),
    ("create single",   "DescribeVolumes > CreateVolume",               "throttled",     "absorbed"),
    ("create single",   "AttachVolume",                                 "throttled",     "absorbed"),
    ("create single",   "DescribeVolumes > AttachVolume",               "throttled",     "absorbed"),
    ("create single",   "CreateTags",                                   "throttled",     "absorbed"),

    ("detach",          "host: umount",                                 "command-fails", "recorded"),
    ("detach",          "host: umount",                                 "ssh-drop",      "recorded"),
    ("detach",          "DetachVolume",                                 "InternalError", "recorded"),
    ("detach",          "DescribeVolumes > DetachVolume",               "InternalError", "recorded"),
    ("detach",          "DeleteTags",                                   "InternalError", "recorded"),
    ("detach",          "DetachVolume",                                 "throttled",     "absorbed"),
    ("detach",          "DescribeVolumes > DetachVolume",               "throttled",     "absorbed"),
    ("detach",          "DeleteTags",                                   "throttled",     "absorbed"),

    ("attach",          "DescribeInstances",                            "InternalError", "cleaned"),
    ("attach",          "DescribeVolumes",                              "InternalError", "cleaned"),
    ("attach",          "AttachVolume",                                 "InternalError", "cleaned"),
    ("attach",          "DescribeVolumes > AttachVolume",               "InternalError", "cleaned"),
    ("attach",          "CreateTags",                                   "InternalError", "cleaned"),
    ("attach",          "host: mount",                                  "command-fails", "cleaned"),
    ("attach",          "host: mount (answer lost)",                    "ssh-drop",      "cleaned"),
    ("attach",          "host: mount (while it runs)",                  "ssh-drop",      "cleaned"),
    ("attach",          "AttachVolume",                                 "killed",        "recorded"),
    ("attach",          "DescribeInstances",                            "throttled",     "absorbed"),
    ("attach",          "DescribeVolumes",                              "throttled",     "absorbed"),
    ("attach",          "AttachVolume",                                 "throttled",     "absorbed"),
    ("attach",          "DescribeVolumes > AttachVolume",               "throttled",     "absorbed"),
    ("attach",          "CreateTags",                                   "throttled",     "absorbed"),
    ("detach",          "DetachVolume",                                 "killed",        "recorded"),

    ("create raid1",    "DescribeInstances",                            "InternalError", "cleaned"),
    ("create raid1",    "CreateVolume",                                 "InternalError", "cleaned"),
    ("create raid1",    "DescribeVolumes > CreateVolume",               "InternalError", "cleaned"),
    ("create raid1",    "AttachVolume",                                 "InternalError", "cleaned"),
    ("create raid1",    "DescribeVolumes > AttachVolume",               "InternalError", "cleaned"),
    ("create raid1",    "CreateTags",                                   "InternalError", "cleaned"),
    ("create raid1",    "host: mdadm",                                  "command-fails", "cleaned"),
    ("create raid1",    "host: mdadm",                                  "ssh-drop",      "cleaned"),
    ("create raid1",    "CreateVolume",                                 "killed",        "tagged, findable"),
    ("create raid1",    "DescribeInstances",                            "throttled",     "absorbed"),
    ("create raid1",    "CreateVolume",                                 "throttled",     "absorbed"),
    ("create raid1",    "DescribeVolumes > CreateVolume",               "throttled",     "absorbed"),
    ("create raid1",    "AttachVolume",                                 "throttled",     "absorbed"),
    ("create raid1",    "DescribeVolumes > AttachVolume",               "throttled",     "absorbed"),
    ("create raid1",    "CreateTags",                                   "throttled",     "absorbed"),

    ("snapshot create", "DescribeInstances",                            "InternalError", "cleaned"),
    ("snapshot create", "CreateSnapshots",                              "InternalError", "cleaned"),
    ("snapshot create", "DescribeSnapshots",                            "InternalError", "recorded"),
    ("snapshot create", "host: pre hook (touch)",                       "command-fails", "cleaned"),
    ("snapshot create", "host: fsfreeze",                               "command-fails", "cleaned"),
    ("snapshot create", "host: post hook (touch)",                      "command-fails", "cleaned"),
    ("snapshot create", "host: fsfreeze",                               "ssh-drop",      "cleaned"),
    ("snapshot create", "host: thaw (drop during CreateSnapshots)",     "ssh-drop",      "absorbed"),
    ("snapshot create", "CreateSnapshots",                              "killed",        "tagged, findable"),
    ("snapshot create", "DescribeInstances",                            "throttled",     "absorbed"),
    ("snapshot create", "CreateSnapshots",                              "throttled",     "absorbed"),
    ("snapshot create", "DescribeSnapshots",                            "throttled",     "absorbed"),

    ("clone to region", "DescribeAvailabilityZones",                    "InternalError", "cleaned"),
    ("clone to region", "DescribeSnapshots @ us-east-1",                "InternalError", "cleaned"),
    ("clone to region", "CopySnapshot @ eu-west-1",                     "InternalError", "cleaned"),
    ("clone to region", "DescribeSnapshots > CopySnapshot @ eu-west-1", "InternalError", "cleaned"),
    ("clone to region", "CopySnapshot @ eu-west-1",                     "killed",        "tagged, findable"),
    ("clone to region", "DescribeAvailabilityZones",                    "throttled",     "absorbed"),
    ("clone to region", "DescribeSnapshots @ us-east-1",                "throttled",     "absorbed"),
    ("clone to region", "CopySnapshot @ eu-west-1",                     "throttled",     "absorbed"),
    ("clone to region", "DescribeSnapshots > CopySnapshot @ eu-west-1", "throttled",     "absorbed"),
    ("clone to region", "CreateVolume @ eu-west-1",                     "throttled",     "absorbed"),
    ("clone to region", "DescribeVolumes > CreateVolume @ eu-west-1",   "throttled",     "absorbed"),
    ("clone to region", "CreateVolume @ eu-west-1",                     "InternalError", "cleaned"),
    ("clone to region", "DescribeVolumes > CreateVolume @ eu-west-1",   "InternalError", "cleaned"),
    ("clone to region", "CreateVolume @ eu-west-1",                     "killed",        "tagged, findable"),

    ("clone to host",   "AttachVolume @ eu-west-1",                     "InternalError", "cleaned"),
    ("clone to host",   "DescribeVolumes > AttachVolume @ eu-west-1",   "InternalError", "cleaned"),
    ("clone to host",   "host: mdadm --assemble",                       "command-fails", "cleaned"),
    ("clone to host",   "host: mdadm --assemble (while it runs)",       "ssh-drop",      "cleaned"),
    ("clone to host",   "host: mount (scratch, while it runs)",         "ssh-drop",      "cleaned"),
    ("clone to host",   "host: xfs_admin",                              "command-fails", "cleaned"),
    ("clone to host",   "host: mount (while it runs)",                  "ssh-drop",      "cleaned"),
    ("clone to host",   "AttachVolume @ eu-west-1",                     "killed",        "recorded"),
    ("clone to host",   "AttachVolume @ eu-west-1",                     "throttled",     "absorbed"),
    ("clone to host",   "DescribeVolumes > AttachVolume @ eu-west-1",   "throttled",     "absorbed"),
    ("clone to host",   "CreateTags @ eu-west-1",                       "throttled",     "absorbed"),

    ("schedule run",    "DescribeInstances",                            "throttled",     "absorbed"),
    ("schedule run",    "CreateSnapshots",                              "throttled",     "absorbed"),
    ("schedule run",    "DescribeImages",                               "throttled",     "absorbed"),
    ("schedule run",    "DeleteSnapshot",                               "throttled",     "absorbed"),
    ("schedule run",    "DescribeInstances",                            "InternalError", "cleaned"),
    ("schedule run",    "CreateSnapshots",                              "InternalError", "cleaned"),
    ("schedule run",    "DescribeImages",                               "InternalError", "recorded"),
    ("schedule run",    "DeleteSnapshot",                               "InternalError", "recorded"),
    ("schedule run",    "host: fsfreeze",                               "command-fails", "cleaned"),
    ("schedule run",    "host: post hook (touch)",                      "command-fails", "cleaned"),
    ("schedule run",    "host: fsfreeze",                               "ssh-drop",      "cleaned"),
    ("schedule run",    "CreateSnapshots",                              "killed",        "tagged, findable"),
    ("schedule run",    "DeleteSnapshot",                               "killed",        "recorded"),
]
# fmt: on

MIN_ROWS = 100  # the matrix may grow; it may not quietly shrink

ATTEMPTS = 2  # AMS_AWS_MAX_ATTEMPTS here, botocore's max_attempts: the retries after the first call
TRIES = ATTEMPTS + 1  # calls botocore makes: 2 throttles are absorbed, 3 InternalErrors are not
THROTTLES = 2
FREEZE_TIMEOUT = 15  # AMS_FREEZE_TIMEOUT of a killed ams: its freeze is undone by the host's watchdog
HOOKS = "/var/tmp/ams-fm-hooks"
PRE = f"touch /var/tmp/ams-fm-pre-ok && echo pre >> {HOOKS}"
POST = f"touch /var/tmp/ams-fm-post-ok && echo post >> {HOOKS}"
BATCHED = {"CreateVolume", "AttachVolume", "DetachVolume", "CopySnapshot", "DeleteSnapshot", "CreateSnapshot"}
HOOKED = ("snapshot create", "schedule run")  # the flows that run --pre/--post hooks
NEW_ON_HOST = ("create single", "create raid1", "clone to host")  # a failure leaves fstab, mdadm.conf as they were
EXIT = {"InternalError": (7,), "command-fails": (5,), "ssh-drop": (5, 6)}

DONE = set()  # indexes of the MATRIX rows that ran and passed their checks


@dataclass(frozen=True)
class Row:
    index: int
    flow: str
    step: str
    fault: str
    outcome: str

    @property
    def host_command(self):
        if not self.step.startswith("host: "):
            return None
        text = self.step[len("host: "):]
        if text.startswith(("pre hook", "post hook")):  # the command the hook runs
            return text.split("(")[1].rstrip(")")
        return text.split()[0]

    @property
    def action(self):
        return None if self.host_command else self.step.split(" @ ")[0].split(" > ")[0]

    @property
    def after(self):
        head = self.step.split(" @ ")[0]
        return head.split(" > ")[1] if " > " in head else None

    @property
    def region(self):
        return self.step.split(" @ ")[1] if " @ " in self.step else None

    def __str__(self):
        return f"#{self.index} {self.flow} | {self.step} | {self.fault} -> {self.outcome}"


ROWS = [Row(i, *r) for i, r in enumerate(MATRIX)]


def rows(flow, fault=None, step=None):
    found = [r for r in ROWS if r.flow == flow and (fault is None or r.fault == fault)
             and (step is None or r.step == step)]
    assert found, (flow, fault, step)
    return found


def row(flow, step, fault):
    (found,) = rows(flow, fault, step)
    return found


def format_matrix():
    width = max(len(r.step) for r in ROWS)
    lines = [f"{'#':>3}  {'flow':<16} {'step':<{width}}  {'fault':<14} outcome"]
    lines += [f"{r.index:>3}  {r.flow:<16} {r.step:<{width}}  {r.fault:<14} {r.outcome}" for r in ROWS]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# the harness


class Matrix:
    """Runs rows: arms the fault, runs ams (in process, or as a child process to kill), checks."""

    def __init__(self, ams, inst, rig, monkeypatch):
        import sqlalchemy

        self._ams, self.inst, self.rig, self.g = ams, inst, rig, inst.guest
        self.now = None  # AMS_NOW for the commands (the schedule rows set it), else the clock below
        self.skew = timedelta(0)  # after a kill: how long the user waited for its lock to lapse
        self.monkeypatch = monkeypatch
        self.db = sqlalchemy.create_engine(os.environ["AMS_DB_URL"])
        monkeypatch.setenv("AMS_AWS_MAX_ATTEMPTS", str(ATTEMPTS))
        self.baseline = self._ec2_resources()  # what the rig's instances bring (root volumes)
        gsh(self.g, f"rm -f {HOOKS} /var/tmp/ams-fm-*-ok")
        self.timings = {}

    # -- state a user would look at ------------------------------------------------------------
    def _ec2_resources(self):
        found = {}
        for region in (EAST, WEST):
            ec2 = self.rig.client(region=region, internal=True)
            for v in ec2.describe_volumes()["Volumes"]:
                if v["State"] not in ("deleting", "deleted"):
                    found[v["VolumeId"]] = (region, v)
            for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]:
                found[s["SnapshotId"]] = (region, s)
        return found

    def _live_rows(self):
        from sqlalchemy import text

        with self.db.connect() as conn:
            volumes = {r[0] for r in conn.execute(text("SELECT volume_id FROM volumes WHERE deleted_at IS NULL"))}
            snapshots = {r[0] for r in conn.execute(text("SELECT snapshot_id FROM snapshots WHERE deleted_at IS NULL"))}
            vgs = {r[0] for r in conn.execute(text("SELECT id FROM volume_groups"))}
            sgs = {r[0] for r in conn.execute(text("SELECT id FROM snapshot_groups"))}
        return volumes | snapshots, vgs, sgs

    def unrecorded(self):
        """EC2 volumes and snapshots that are neither recorded live in the database nor deleted."""
        live, _, _ = self._live_rows()
        return {k: v for k, v in self._ec2_resources().items() if k not in live and k not in self.baseline}

    def fingerprint(self):
        """What a ``cleaned`` row must leave as it found it: EC2's volumes (beyond the baseline)
        and the instance each is attached to, the database's attachments, the guest's mounts
        under /srv/fm- and its arrays."""
        from sqlalchemy import text

        ec2 = {k: tuple(a["InstanceId"] for a in v.get("Attachments") or [])
               for k, (_, v) in self._ec2_resources().items() if k.startswith("vol-") and k not in self.baseline}
        with self.db.connect() as conn:
            attached = sorted(tuple(r) for r in conn.execute(text(
                "SELECT volume_group_id, instance_id, mount_point FROM host_volumes")))
        points = gsh(self.g, "awk '{print $5}' /proc/self/mountinfo", sudo=False).split()
        arrays = gsh(self.g, "ls /dev/md 2>/dev/null; true", sudo=False).split()
        return {"ec2": ec2, "attachments": attached, "arrays": sorted(arrays),
                "mounts": sorted(p for p in points if p.startswith(("/srv/fm-", "/run/ams-clone-")))}

    def guest_text(self):
        return gsh(self.g, f"cat /etc/fstab; echo ---; cat {MDADM_CONF} 2>/dev/null; true", sudo=True)

    def frozen_mounts(self, wait=0.0):
        """Mount points under /srv/fm- (from /proc/self/mountinfo) that refuse a write; with
        ``wait``, keep trying that long (a killed ams's freeze ends by the host's watchdog)."""
        deadline = time.monotonic() + wait
        while True:
            points = gsh(self.g, "awk '{print $5}' /proc/self/mountinfo", sudo=False).split()
            frozen = [p for p in points if p.startswith("/srv/fm-") and not writable(self.g, p)]
            if not frozen or time.monotonic() > deadline:
                return frozen
            time.sleep(2)

    def hooks(self):
        words = gsh(self.g, f"cat {HOOKS} 2>/dev/null; true", sudo=False).split()
        return words.count("pre"), words.count("post")

    # -- running -------------------------------------------------------------------------------
    def _clock(self):
        if self.now:
            self.monkeypatch.setenv("AMS_NOW", self.now)
        elif self.skew:
            later = datetime.now(timezone.utc) + self.skew
            self.monkeypatch.setenv("AMS_NOW", later.strftime("%Y-%m-%dT%H:%M:%SZ"))

    def ams(self, *argv):
        self._clock()
        return self._ams(*argv)

    def waited_out_the_lock(self):
        """A killed ams holds its group's lock until the lease lapses: the user waits that long
        (the clock of the next commands moves past it)."""
        from amslib.store.group_locks import LEASE

        self.skew += LEASE + timedelta(seconds=10)

    def run(self, the_row, argv, *, calls=1, recover=None, before=None):
        """Run one failing (or killed, or ssh-drop-absorbed) row of ``argv``; check it; return
        the result.  ``calls``: parallel calls of the step (an InternalError must hit them all).
        ``recover(result)``: what a user does next (must work); ``before()``: set up."""
        t0 = time.monotonic()
        print(f"fault matrix: {the_row}", file=sys.__stderr__, flush=True)
        if before:
            before()
        guest_before = self.guest_text() if the_row.flow in NEW_ON_HOST else None
        state_before = self.fingerprint() if the_row.outcome == "cleaned" else None
        hooks_before = self.hooks() if the_row.flow in HOOKED else None
        armed = self._arm(the_row, calls)
        if the_row.fault == "killed":
            result = self._run_killed(argv, armed)
            self.waited_out_the_lock()
        else:
            result = self.ams(*argv)
        try:
            self._check_fired(the_row, armed, result)
        finally:
            self.rig.faults.clear()
            if the_row.host_command:
                faults.clear_command_faults(self.g)
        self._check(the_row, result, guest_before, hooks_before)
        if state_before is not None:  # everything the command did was undone
            after = self.fingerprint()
            assert after == state_before, f"{the_row}: not undone:\n  before {state_before}\n  after  {after}\n{result}"
        if recover is not None:
            recover(result)
        self._check_invariants(the_row, after_recovery=True)
        DONE.add(the_row.index)
        self.timings[the_row.index] = time.monotonic() - t0
        return result

    def run_throttled(self, flow, argv, calls=None):
        """Every throttled row of ``flow`` in one command: RequestLimitExceeded twice at each
        step; the command succeeds and every fault fired twice."""
        t0 = time.monotonic()
        these = rows(flow, "throttled")
        print(f"fault matrix: {flow}: {len(these)} throttled rows", file=sys.__stderr__, flush=True)
        armed = {r.index: self.rig.faults.fail_next(r.action, "RequestLimitExceeded", count=THROTTLES,
                                                    region=r.region, after=r.after) for r in these}
        hooks_before = self.hooks() if flow in HOOKED else (0, 0)
        try:
            result = self.ams(*argv)
        finally:
            self.rig.faults.clear()
        assert result.code == 0, f"{flow} throttled: {result}"
        for r in these:
            assert armed[r.index].fired == THROTTLES, f"{r}: fired {armed[r.index].fired}, counts {self.rig.counts()}"
        assert "ams: error:" not in result.err, str(result)
        pre, post = self.hooks() if flow in HOOKED else (0, 0)
        assert post - hooks_before[1] == pre - hooks_before[0], f"{flow}: pre ran without post"
        self._check_invariants(these[0])
        for r in these:
            DONE.add(r.index)
            self.timings[r.index] = (time.monotonic() - t0) / len(these)
        return result

    def _arm(self, r, calls):
        if r.fault == "InternalError":
            count = TRIES * (calls if r.action in BATCHED else 1)
            return self.rig.faults.fail_next(r.action, "InternalError", count=count, region=r.region, after=r.after)
        if r.fault == "killed":
            holder = {}

            def kill(action, region):  # in the rig's server thread, before the answer leaves
                proc = holder["proc"]
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=60)

            holder["fault"] = self.rig.faults.after_success(r.action, kill, region=r.region, after=r.after)
            return holder
        if r.fault == "command-fails":
            name, match = self._command_of(r)
            faults.fail_command(self.g, name, match=match, stderr=f"{name}: failure injected by the fault matrix")
            return name
        if r.fault == "ssh-drop":
            if r.host_command == "thaw":
                self.rig.faults.set_latency(6.0, "CreateSnapshots")
                return drop_ssh_during_snapshot_call(self.rig, self.g)
            if "answer lost" in r.step:  # the command ran; the connection drops before its exit status
                faults.drop_ssh_after_command(self.g, r.host_command)
            else:  # the connection drops while the command runs (it goes on on the host)
                install_ssh_drop_wrapper(self.g, *self._command_of(r))
            return r.host_command
        raise AssertionError(f"unknown fault {r.fault}")

    @staticmethod
    def _command_of(r):
        name = r.host_command
        if "pre hook" in r.step:
            return name, "*ams-fm-pre-ok*"
        if "post hook" in r.step:
            return name, "*ams-fm-post-ok*"
        if "--assemble" in r.step:
            return name, "*--assemble*"
        if "scratch" in r.step:
            return name, "*/run/ams-clone-*"
        return name, {"mdadm": "*--create*", "fsfreeze": "*-f*", "mount": "*/srv/fm-*"}.get(name, "*")

    def _run_killed(self, argv, holder):
        self._clock()
        holder["proc"] = proc = subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "ams"), *map(str, argv)],
            env=dict(os.environ, AMS_FREEZE_TIMEOUT=str(FREEZE_TIMEOUT)),
            cwd="/", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = proc.communicate(timeout=300)
        return AmsResult(proc.returncode, out, err)

    def _check_fired(self, r, armed, result):
        if r.fault == "InternalError":
            assert armed.fired >= TRIES, f"{r}: fired {armed.fired}; counts {self.rig.counts()}\n{result}"
        elif r.fault == "killed":
            assert armed["fault"].fired == 1, f"{r}: the kill did not fire; counts {self.rig.counts()}\n{result}"
        elif r.fault == "command-fails":
            assert faults.command_failures_left(self.g, armed) == 0, f"{r}: {armed} never ran\n{result}"
        elif r.fault == "ssh-drop":
            if isinstance(armed, str):
                rc, _, _ = self.g.run(f"test -d /run/ams-rig-faults/{shlex.quote(armed)}.once", sudo=True)
                assert rc == 0, f"{r}: {armed} never ran\n{result}"
            else:
                armed.join(timeout=130)
                assert not armed.is_alive(), f"{r}: CreateSnapshots never reached the rig"

    def _check(self, r, result, guest_before, hooks_before):
        """What a user checks right after the command."""
        assert "Traceback" not in result.err, f"{r}\n{result}"
        if r.fault == "killed":
            assert result.code == -signal.SIGKILL, f"{r}\n{result}"
        elif r.outcome == "absorbed":
            assert result.code == 0 and "ams: error:" not in result.err, f"{r}\n{result}"
        else:  # one error line (warnings may come first), the exit code of the failure
            codes = EXIT[r.fault] if r.flow != "schedule run" else range(1, 126)  # a run: its failure's
            lines = result.err.strip().splitlines()
            assert result.code in codes, f"{r}\n{result}"
            assert all(line.startswith("ams: ") for line in lines), f"{r}\n{result}"
            assert sum(line.startswith("ams: error: ") for line in lines) == 1, f"{r}\n{result}"
        if r.flow in NEW_ON_HOST and r.outcome != "absorbed" and r.fault != "killed":
            assert self.guest_text() == guest_before, f"{r}: fstab or mdadm.conf changed"
        if r.flow not in HOOKED:
            pass
        elif r.fault == "killed":  # the post hook of a killed ams cannot run; the watchdog thaws
            gsh(self.g, f"rm -f {HOOKS}")
        else:
            pre, post = self.hooks()
            assert post - hooks_before[1] == pre - hooks_before[0] or "post hook" in r.step, \
                f"{r}: the pre hook ran {pre - hooks_before[0]}x, the post hook {post - hooks_before[1]}x"
        self._check_invariants(r)

    def _check_invariants(self, r, after_recovery=False):
        wait = FREEZE_TIMEOUT + 30 if r.fault == "killed" else 0
        assert self.frozen_mounts(wait=wait) == [], f"{r}: a filesystem is left frozen"
        left = self.unrecorded()
        if r.fault == "killed" and not after_recovery:
            if r.outcome == "tagged, findable":
                assert left, f"{r}: the kill left nothing unrecorded (did it fire too late?)"
            _, vgs, sgs = self._live_rows()
            for resource_id, (region, item) in left.items():
                tags = {t["Key"]: t["Value"] for t in item.get("Tags", [])}
                key = "ams:volume-group-id" if resource_id.startswith("vol-") else "ams:snapshot-group-id"
                assert key in tags, f"{r}: {resource_id} is not findable by {key}: {tags}"
                assert int(tags[key]) in (vgs if key == "ams:volume-group-id" else sgs), f"{r}: {tags}"
                # what an operator does with them: find them by the tag, remove them
                self._remove(region, resource_id)
        else:
            assert left == {}, f"{r}: left in EC2 unrecorded: {sorted(left)}"
        ok(self.ams("--output", "json", "volume", "list"))  # the state still reads
        ok(self.ams("--output", "json", "snapshot", "list"))

    def _remove(self, region, resource_id):
        ec2 = self.rig.client(region=region, internal=True)
        if resource_id.startswith("snap-"):
            ec2.delete_snapshot(SnapshotId=resource_id)
            return
        ec2.get_waiter("volume_available").wait(VolumeIds=[resource_id], WaiterConfig={"Delay": 0.5, "MaxAttempts": 60})
        ec2.delete_volume(VolumeId=resource_id)

    def remove_newest_group(self, _result=None):
        """What a user does with the group a killed create or clone left: detach it, delete it."""
        gid = self.newest_group()
        ok(self.ams("volume", "detach", "volume", gid, "-u"))
        ok(self.ams("volume", "delete", gid))

    def move_guest(self, register_guest, region):
        """The guest becomes an instance in ``region`` (its old instance is forgotten by the rig);
        what the new instance brings (its root volume) joins the baseline."""
        self.rig.unregister_instance(self.inst.instance_id)
        moved = register_guest(self.g, region=region, zone=f"{region}a")
        ok(self.ams("host", "discovery", "--region", region))
        brought = self.unrecorded()
        assert all(k.startswith("vol-") and v[0] == region for k, v in brought.items()), brought
        self.baseline.update(brought)
        return moved

    def newest_group(self, table="volume_groups"):
        from sqlalchemy import text

        with self.db.connect() as conn:
            return conn.execute(text(f"SELECT MAX(id) FROM {table}")).scalar()


@pytest.fixture
def matrix(setup, monkeypatch):
    ams, inst, rig = setup
    return Matrix(ams, inst, rig, monkeypatch)


def _report(m, flows):
    ran = [r for r in ROWS if r.flow in flows]
    missing = [str(r) for r in ran if r.index not in DONE]
    print(f"\nfault matrix: {len(ran) - len(missing)} of {len(ran)} rows of {', '.join(flows)} ran and passed")
    for r in ran:
        if r.index in m.timings:
            print(f"  {m.timings[r.index]:5.1f}s  {r}")
    assert not missing, missing


# ---------------------------------------------------------------------------------------------
# the flows


def test_matrix_is_a_table_of_at_least_min_rows():
    print("\n" + format_matrix())
    print(f"fault matrix: {len(MATRIX)} rows")
    assert len(MATRIX) >= MIN_ROWS
    assert len(set(MATRIX)) == len(MATRIX), "a row is listed twice"
    for r in ROWS:
        assert r.fault in ("throttled", "InternalError", "ssh-drop", "command-fails", "killed"), r
        assert r.outcome in ("absorbed", "cleaned", "recorded", "tagged, findable"), r
        assert (r.outcome == "absorbed") == (r.fault == "throttled") or r.host_command == "thaw", r


def test_retries_are_botocore_retry_modes_not_sleeps():
    """Throttling is absorbed by botocore's configured retry mode, nowhere by hand."""
    import pathlib

    from amslib.aws.clients import AwsClients
    from amslib.core.settings import load_settings

    settings = load_settings(environ={"HOME": "/nonexistent"})
    config = AwsClients(settings)._config()
    assert config.retries == {"mode": settings.AWS_RETRY_MODE, "max_attempts": settings.AWS_MAX_ATTEMPTS}
    assert settings.AWS_RETRY_MODE in ("standard", "adaptive")
    for part in ("aws", "ebs", "schedule", "instance"):  # the code that calls EC2
        for path in pathlib.Path(ROOT, "amslib", part).rglob("*.py"):
            assert "sleep(" not in path.read_text(), f"{path}: a hand-written sleep"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_volume_flows(matrix):
    """create (single), detach, attach on one group of the guest."""
    m = matrix
    name = m.inst.name
    create = ["--output", "json", "volume", "create", "-H", name, "-n", 1, "-s", 1, "-m", "/srv/fm-a"]
    for step in ("DescribeInstances", "CreateVolume", "DescribeVolumes > CreateVolume", "AttachVolume",
                 "DescribeVolumes > AttachVolume", "CreateTags"):
        m.run(row("create single", step, "InternalError"), create)
    m.run(row("create single", "host: mkfs.xfs", "command-fails"), create)
    m.run(row("create single", "host: mount", "command-fails"), create)
    m.run(row("create single", "host: mkfs.xfs", "ssh-drop"), create)
    m.run(row("create single", "CreateVolume", "killed"), create)
    m.run(row("create single", "AttachVolume", "killed"), create, recover=m.remove_newest_group)
    gid = m.run_throttled("create single", create).json["volume_group_id"]

    detach = ["volume", "detach", "volume", gid, "-u"]
    m.run(row("detach", "host: umount", "command-fails"), detach)
    m.run(row("detach", "host: umount", "ssh-drop"), detach)
    m.run(row("detach", "DetachVolume", "InternalError"), detach)
    m.run(row("detach", "DescribeVolumes > DetachVolume", "InternalError"), detach)
    m.run(row("detach", "DeleteTags", "InternalError"), detach,  # detached already: attach it again
          recover=lambda _: ok(m.ams("volume", "attach", gid, "-H", name, "-m", "/srv/fm-a")))
    m.run_throttled("detach", detach)

    attach = ["volume", "attach", gid, "-H", name, "-m", "/srv/fm-a"]
    for step in ("DescribeInstances", "DescribeVolumes", "AttachVolume", "DescribeVolumes > AttachVolume",
                 "CreateTags"):
        m.run(row("attach", step, "InternalError"), attach)
    m.run(row("attach", "host: mount", "command-fails"), attach)
    m.run(row("attach", "host: mount (answer lost)", "ssh-drop"), attach)
    m.run(row("attach", "host: mount (while it runs)", "ssh-drop"), attach)  # the undo waits for it
    m.run(row("attach", "AttachVolume", "killed"), attach,
          recover=lambda _: ok(m.ams("volume", "detach", "volume", gid, "-u")))
    m.run_throttled("attach", attach)

    m.run(row("detach", "DetachVolume", "killed"), detach,
          recover=lambda _: ok(m.ams("volume", "detach", "volume", gid, "-u")))
    ok(m.ams("volume", "delete", gid))
    assert m.unrecorded() == {}
    _report(m, ("create single", "detach", "attach"))


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_raid_snapshot_clone_and_schedule_flows(matrix, register_guest):
    """create (RAID 1 of 2), then snapshot create, clone into another region, schedule run
    with purge, all of that RAID group; last, the guest becomes an instance in that other
    region and the snapshot is cloned onto it (reusing the copy)."""
    m = matrix
    name = m.inst.name
    create = ["--output", "json", "volume", "create", "-H", name, "-n", 2, "-r", 1, "-s", 1, "-m", "/srv/fm-r"]
    for step in ("DescribeInstances", "CreateVolume", "DescribeVolumes > CreateVolume", "AttachVolume",
                 "DescribeVolumes > AttachVolume", "CreateTags"):
        m.run(row("create raid1", step, "InternalError"), create, calls=2)
    m.run(row("create raid1", "host: mdadm", "command-fails"), create)
    m.run(row("create raid1", "host: mdadm", "ssh-drop"), create)
    m.run(row("create raid1", "CreateVolume", "killed"), create)
    gid = m.run_throttled("create raid1", create).json["volume_group_id"]

    snap = ["--output", "json", "snapshot", "create", "volume", gid, "--freeze", "--pre", PRE, "--post", POST, "--wait"]
    for step in ("DescribeInstances", "CreateSnapshots", "DescribeSnapshots"):
        m.run(row("snapshot create", step, "InternalError"), snap)
    for step in ("host: pre hook (touch)", "host: fsfreeze", "host: post hook (touch)"):
        m.run(row("snapshot create", step, "command-fails"), snap)
    m.run(row("snapshot create", "host: fsfreeze", "ssh-drop"), snap)
    m.run(row("snapshot create", "host: thaw (drop during CreateSnapshots)", "ssh-drop"), snap)
    m.run(row("snapshot create", "CreateSnapshots", "killed"), snap)
    sgid = m.run_throttled("snapshot create", snap).json["snapshot_group_id"]

    clone = ["--output", "json", "snapshot", "clone", "snapshot", sgid, "-z", "eu-west-1a"]
    for step in ("DescribeAvailabilityZones", "DescribeSnapshots @ us-east-1", "CopySnapshot @ eu-west-1",
                 "DescribeSnapshots > CopySnapshot @ eu-west-1"):
        m.run(row("clone to region", step, "InternalError"), clone, calls=2)
    m.run(row("clone to region", "CopySnapshot @ eu-west-1", "killed"), clone)
    cloned = m.run_throttled("clone to region", clone).json
    assert cloned["copied"] is not None
    for step in ("CreateVolume @ eu-west-1", "DescribeVolumes > CreateVolume @ eu-west-1"):
        m.run(row("clone to region", step, "InternalError"), clone, calls=2)
    m.run(row("clone to region", "CreateVolume @ eu-west-1", "killed"), clone)
    again = ok(m.ams(*clone)).json  # the next clone works, reusing the copy
    assert again["copied"] == cloned["copied"]
    for vg in (cloned["volume_group_id"], again["volume_group_id"]):
        ok(m.ams("volume", "delete", vg))

    # schedule: hourly only, one kept; each row is the next hour's run (AMS_NOW)
    ok(m.ams("snapshot", "schedule", "add", "volume", gid, "--freeze", "--pre", PRE, "--post", POST,
             "-r", 1, 0, 0, 0, 0))
    hours = iter(range(1, 100))

    def next_hour():
        m.now = f"2027-03-10T{next(hours):02d}:05:00Z"

    run = ["--output", "json", "snapshot", "schedule", "run", "--purge"]
    for _ in range(3):  # from the third run on, each purge finds the group of two hours before
        next_hour()
        ok(m.ams(*run))
    next_hour()
    m.run_throttled("schedule run", run)
    m.run(row("schedule run", "DescribeImages", "InternalError"), run, before=next_hour)
    m.run(row("schedule run", "DeleteSnapshot", "InternalError"), run, calls=4, before=next_hour)  # 2 groups
    for step, fault in (("DescribeInstances", "InternalError"), ("CreateSnapshots", "InternalError"),
                        ("host: fsfreeze", "command-fails"), ("host: post hook (touch)", "command-fails"),
                        ("host: fsfreeze", "ssh-drop"), ("CreateSnapshots", "killed")):
        m.run(row("schedule run", step, fault), run, before=next_hour)
    next_hour()
    ok(m.ams(*run))  # a newer group than the last purged one's successor: a purge candidate again
    m.run(row("schedule run", "DeleteSnapshot", "killed"), run, before=next_hour)
    for _ in range(2):  # the next runs work, and finish the purge the killed one left "deleting"
        next_hour()
        ok(m.ams(*run))
    m.now = None

    # clone onto a host in eu-west-1: new array and filesystem identity beside the original (a
    # failing mount and CreateTags of the last steps are the attach and create rows above)
    west = m.move_guest(register_guest, WEST)
    onto = ["--output", "json", "snapshot", "clone", "snapshot", sgid, "-i", west.instance_id, "-m", "/srv/fm-w"]
    for step in ("AttachVolume @ eu-west-1", "DescribeVolumes > AttachVolume @ eu-west-1"):
        m.run(row("clone to host", step, "InternalError"), onto, calls=2)
    for step, fault in (("host: mdadm --assemble", "command-fails"),
                        ("host: mdadm --assemble (while it runs)", "ssh-drop"),
                        ("host: mount (scratch, while it runs)", "ssh-drop"),
                        ("host: xfs_admin", "command-fails"),
                        ("host: mount (while it runs)", "ssh-drop")):
        m.run(row("clone to host", step, fault), onto)
    m.run(row("clone to host", "AttachVolume @ eu-west-1", "killed"), onto, recover=m.remove_newest_group)
    cloned = m.run_throttled("clone to host", onto).json
    assert cloned["copied"] is not None and cloned["zone"] == f"{WEST}a"
    assert "/srv/fm-w" in gsh(m.g, "findmnt -rn -o TARGET", sudo=False).split()
    ok(m.ams("volume", "detach", "volume", cloned["volume_group_id"], "-u"))
    ok(m.ams("volume", "delete", cloned["volume_group_id"]))
    _report(m, ("create raid1", "snapshot create", "clone to region", "schedule run", "clone to host"))

"""Runs a plan: a list of actions, in order, each undone in reverse when a later one fails.

An action is an object with ``describe() -> str`` (one line: the EC2 call or the host command,
for ``--dry-run`` and for progress) and ``run(ex)``; it may have ``undo(ex)``.  ``ex`` is the
:class:`Execution` that carries what every action needs (EC2 adapter, host executor, database)
and ``ex.state``, where actions leave what later actions use (volume ids, device paths, ...).

An action with ``partial_undo = True`` (a batch of EC2 calls) is undone even when it fails
itself: its ``undo`` reverses whatever part of the batch happened.

On failure the runner undoes what this command did (unless ``keep_on_failure``), then raises
the original error with one clause added: what was undone, or what was left and why.
"""

import logging

from ..core.errors import AmsError

log = logging.getLogger("ams.ebs.runner")


class Execution:
    """What actions work with: ``ec2``, ``host`` (a HostDisk or None), ``engine``, ``state``."""

    def __init__(self, *, engine, ec2=None, host=None, progress=None, state=None):
        self.engine = engine
        self.ec2 = ec2
        self.host = host
        self.progress = progress or (lambda message: None)
        self.state = dict(state or {})


def describe_plan(plan):
    return [action.describe() for action in plan]


def _is_undoable(action):
    return callable(getattr(action, "undo", None))


def run_plan(plan, ex, *, keep_on_failure=False, leftover_hint=None):
    """Run every action of ``plan``; on failure undo (or keep) and re-raise with a summary."""
    done = []
    try:
        for number, action in enumerate(plan, 1):
            ex.progress(f"[{number}/{len(plan)}] {action.describe()}")
            if getattr(action, "partial_undo", False):
                done.append(action)  # a batch that fails midway undoes the part that happened
                action.run(ex)
            else:
                action.run(ex)
                done.append(action)
    except BaseException as exc:
        undoable = [a for a in reversed(done) if _is_undoable(a)]
        if keep_on_failure or not undoable:
            if undoable:
                _add_clause(exc, "kept what was done (--keep-on-failure)" + (f"; {leftover_hint}" if leftover_hint else ""))
            raise
        failures = []
        for action in undoable:
            try:
                ex.progress(f"undo: {action.describe()}")
                action.undo(ex)
            except Exception as undo_exc:  # keep undoing the rest; report each failure
                log.warning("undo of %r failed: %s", action.describe(), undo_exc)
                failures.append(f"{action.describe()}: {undo_exc}")
        if failures:
            _add_clause(exc, "undo incomplete: " + "; ".join(failures) + (f"; {leftover_hint}" if leftover_hint else ""))
        else:
            _add_clause(exc, "everything this command did was undone")
        raise


def _add_clause(exc, clause):
    if isinstance(exc, AmsError):
        exc.message = f"{exc.message} ({clause})"
        exc.args = (exc.message,)
    else:
        log.error("%s", clause)

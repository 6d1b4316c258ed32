"""Fault injection for the rig: EC2 API errors and latency, guest SSH drops and failing commands.

API side (server, in-process): ``moto.core.responses.BaseResponse.call_action`` is wrapped once
per process (``install``/``uninstall``).  The wrapper, for every request that is not the rig's own:
counts it (``tests.rig.accounting``), sleeps the configured latency, and answers with an injected
error if one is armed for the action.  Errors use the EC2 XML error format that botocore parses::

    <Response><Errors><Error><Code>..</Code><Message>..</Message></Error></Errors>
    <RequestID>..</RequestID></Response>

``after_success`` is not an error either: once the action has succeeded in moto (its resource
exists) the wrapper calls a callback before the answer leaves, e.g. to kill the client that asked,
so that a test can prove what a crash between an EC2 call and its database write leaves behind.
``after=ACTION`` (both kinds) arms a fault only once a call of ACTION reached the rig after it was
armed, to aim at e.g. the DescribeVolumes of the wait that follows AttachVolume.

``fail_copy`` is not an error answer: the CopySnapshot hook (``tests.rig.ebs_hooks``) accepts
the copy and lets it end in state "error", as a failed copy does on EC2.

Guest side (over SSH through ``Guest.run``): ``drop_ssh`` kills every sshd process of the guest
except the listener (so every open SSH connection breaks, new ones still work);
``fail_command`` installs a wrapper in ``/usr/local/sbin`` (first in PATH and in Debian's sudo
``secure_path``) that makes the next N invocations of a command exit non-zero.
"""

import shlex
import threading
import time
import uuid
from xml.sax.saxutils import escape

INTERNAL_USER_AGENT = "ams-rig-internal"

DEFAULT_STATUS = {
    "RequestLimitExceeded": 503,
    "Throttling": 400,
    "ThrottlingException": 400,
    "InternalError": 500,
    "InternalFailure": 500,
    "ServiceUnavailable": 503,
    "Unavailable": 503,
}


class RigApiError(Exception):
    """Raised by rig hooks inside a request: answered as an EC2 error with this status."""

    def __init__(self, code, message, status=400):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


def error_body(code, message):
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Response><Errors><Error><Code>{escape(code)}</Code>"
        f"<Message>{escape(message)}</Message></Error></Errors>"
        f"<RequestID>{uuid.uuid4()}</RequestID></Response>"
    )


def error_response(code, message, status):
    headers = {"Content-Type": "text/xml;charset=UTF-8", "status": str(status)}
    return status, headers, error_body(code, message)


class _Fault:
    def __init__(self, action, code, status, count, message, region, after=None, callback=None):
        self.action = action
        self.code = code
        self.status = status
        self.remaining = count
        self.message = message
        self.region = region
        self.after = after  # None, or an action that must have been called first (since arming)
        self.callback = callback  # after_success: callback(action, region)
        self.fired = 0

    def matches(self, action, region):
        return (self.remaining > 0 and self.after is None and self.action in ("*", action)
                and self.region in (None, region))


class ApiFaults:
    """Armed API errors and latencies.  Thread-safe; one instance per rig."""

    def __init__(self):
        self._lock = threading.Lock()
        self._faults = []
        self._latency = {}  # action or "*" -> seconds
        self._copy_failures = []

    def fail_next(self, action, code="InternalError", count=1, status=None, message=None,
                  region=None, after=None):
        """Make the next ``count`` calls of ``action`` (e.g. "AttachVolume"; "*" = any EC2
        action) fail with ``code``.  ``status`` defaults by code (RequestLimitExceeded 503,
        InternalError 500, otherwise 400).  ``after``: only calls made after a call of that
        action reached the rig count.  Returns the fault; ``fault.fired`` counts hits."""
        if status is None:
            status = DEFAULT_STATUS.get(code, 400)
        if message is None:
            message = f"Injected by the ams rig: {code}"
        fault = _Fault(action, code, int(status), int(count), message, region, after=after)
        with self._lock:
            self._faults.append(fault)
        return fault

    def after_success(self, action, callback, count=1, region=None, after=None):
        """Call ``callback(action, region)`` after each of the next ``count`` calls of ``action``
        that succeeded (2xx: moto acted, the resource exists), in the server's thread, before
        the answer is sent; ``after`` as for :meth:`fail_next`.  Returns the fault;
        ``fault.fired`` counts the callbacks made (the callback's exceptions are not caught)."""
        if not callable(callback):
            raise TypeError("callback must be callable")
        fault = _Fault(action, "after-success", None, int(count), None, region, after=after,
                       callback=callback)
        with self._lock:
            self._faults.append(fault)
        return fault

    def fail_copy(self, count=1, region=None):
        """Make the next ``count`` CopySnapshot calls (in ``region``, the copy's destination;
        None = any) succeed but the copies end in state "error" after being "pending" for
        ``rig.timing.copy`` seconds, as a failed copy does on EC2.  Returns the fault;
        ``fault.fired`` counts the copies it failed."""
        fault = _Fault("CopySnapshot", "error", None, int(count), None, region)
        with self._lock:
            self._copy_failures.append(fault)
        return fault

    def set_latency(self, seconds, action="*"):
        """Add ``seconds`` of delay to every call of ``action`` ("*" = all); 0 removes it."""
        with self._lock:
            if seconds:
                self._latency[action] = float(seconds)
            else:
                self._latency.pop(action, None)

    def pending(self):
        """(action, code, remaining) of armed faults; a ``fail_copy`` shows as
        ("CopySnapshot", "error", n)."""
        with self._lock:
            return [(f.action, f.code, f.remaining) for f in self._faults + self._copy_failures
                    if f.remaining > 0]

    def clear(self):
        with self._lock:
            self._faults.clear()
            self._latency.clear()
            self._copy_failures.clear()

    # -- used by the call_action wrapper --
    def latency_for(self, action):
        with self._lock:
            return self._latency.get(action, 0.0) + self._latency.get("*", 0.0)

    def take_copy_failure(self, region):
        """True when an armed ``fail_copy`` claims this CopySnapshot (used by the hook)."""
        with self._lock:
            for fault in self._copy_failures:
                if fault.remaining > 0 and fault.region in (None, region):
                    fault.remaining -= 1
                    fault.fired += 1
                    return True
        return False

    def take(self, action, region):
        """The error fault that claims this call (or None); then arms the faults waiting for a
        call of ``action`` (``after=``), so the call that arms a fault is never its target."""
        with self._lock:
            found = None
            for fault in self._faults:
                if fault.callback is None and fault.matches(action, region):
                    fault.remaining -= 1
                    fault.fired += 1
                    found = fault
                    break
            for fault in self._faults:
                if fault.after == action:
                    fault.after = None
        return found

    def take_callbacks(self, action, region):
        """The ``after_success`` callbacks this successful call claims."""
        with self._lock:
            claimed = []
            for fault in self._faults:
                if fault.callback is not None and fault.matches(action, region):
                    fault.remaining -= 1
                    fault.fired += 1
                    claimed.append(fault.callback)
        return claimed


# ---------------------------------------------------------------------------------------------
# The call_action wrapper (one per process; the active faults/counter are swapped in by the rig)

_state = {"original": None, "faults": None, "counter": None}


def install(faults, counter):
    from moto.core.responses import BaseResponse

    _state["faults"] = faults
    _state["counter"] = counter
    if _state["original"] is not None:
        return
    original = BaseResponse.call_action

    def call_action(self):
        try:
            action = self._get_action()
        except Exception:
            action = None
        headers = getattr(self, "headers", None) or {}
        internal = INTERNAL_USER_AGENT in (headers.get("User-Agent") or "")
        service = getattr(self, "service_name", None)
        region = getattr(self, "region", None)
        if action and not internal:
            counter = _state["counter"]
            faults_ = _state["faults"]
            if counter is not None:
                counter.record(service, region, action)
            if faults_ is not None and service == "ec2":
                delay = faults_.latency_for(action)
                if delay:
                    time.sleep(delay)
                fault = faults_.take(action, region)
                if fault is not None:
                    return error_response(fault.code, fault.message, fault.status)
        try:
            answer = original(self)
        except RigApiError as err:
            return error_response(err.code, err.message, err.status)
        faults_ = _state["faults"]
        if action and not internal and faults_ is not None and service == "ec2" and _succeeded(answer):
            for callback in faults_.take_callbacks(action, region):
                callback(action, region)
        return answer

    BaseResponse.call_action = call_action
    _state["original"] = original


def _succeeded(answer):
    try:
        return 200 <= int(answer[0]) < 300
    except (TypeError, ValueError, IndexError):
        return False


def uninstall():
    from moto.core.responses import BaseResponse

    if _state["original"] is not None:
        BaseResponse.call_action = _state["original"]
        _state["original"] = None
    _state["faults"] = None
    _state["counter"] = None


# ---------------------------------------------------------------------------------------------
# Guest faults (need a tests.rig.guest.Guest)

FAULT_DIR = "/run/ams-rig-faults"
WRAPPER_DIR = "/usr/local/sbin"
_MARK = "# ams-rig fault wrapper"


def _check(guest, command, what):
    rc, out, err = guest.run(command, sudo=True)
    if rc != 0:
        raise RuntimeError(f"{what} failed in guest {guest.name} (rc {rc}): {err.strip() or out.strip()}")
    return out


# kills every sshd process of the guest but the listener: every open SSH connection breaks
KILL_SSH_SESSIONS = (
    'L=$(cat /run/sshd.pid 2>/dev/null); '
    'for p in $(pgrep -x sshd); do [ "$p" = "$L" ] || kill -9 "$p"; done'
)


def drop_ssh(guest, block_seconds=0, settle=1.0):
    """Break every open SSH connection to the guest (kill all sshd processes but the listener).

    ``block_seconds=0``: new connections work again at once.  ``block_seconds=N``: sshd is
    also stopped and started again by a systemd timer after N seconds (connections are refused
    meanwhile; the forwarded port accepts and closes at once, as a host whose sshd is down).
    The kill runs detached inside the guest, so the connection that asks for it may be cut."""
    kill = KILL_SSH_SESSIONS
    if block_seconds:
        n = max(1, int(round(block_seconds)))
        kill = (
            f"systemd-run --quiet --collect --unit=ams-rig-ssh-back-$$ --on-active={n}s "
            "systemctl start ssh.service; systemctl stop ssh.service; " + kill
        )
    command = f"setsid sh -c {shlex.quote('sleep 0.3; ' + kill)} >/dev/null 2>&1 < /dev/null &"
    try:
        guest.run(command, sudo=True, timeout=60)
    except Exception:
        pass  # the connection may be cut under us; that is the point
    time.sleep(0.3 + settle)


def fail_command(guest, name, times=1, rc=1, stderr=None, match=None):
    """Make the next ``times`` invocations of command ``name`` (found through PATH, e.g.
    ``mdadm``, ``mkfs.xfs``, ``mount``) exit with ``rc`` and print ``stderr``.

    ``match``: a shell ``case`` glob tested against the joined arguments (e.g. ``"*--create*"``);
    non-matching invocations run the real command and do not consume a failure.  Invocations by
    absolute path (udev's ``/sbin/mdadm``) are not affected.  After ``times`` failures the
    wrapper passes through; ``clear_command_faults`` removes it."""
    if "/" in name or not name or name.startswith("."):
        raise ValueError(f"bad command name {name!r}")
    if stderr is None:
        stderr = f"{name}: failure injected by the ams rig"
    pattern = match or "*"
    real = _check(
        guest,
        f"PATH=/usr/sbin:/usr/bin:/sbin:/bin command -v {shlex.quote(name)}",
        f"finding {name}",
    ).strip()
    if not real.startswith("/"):
        raise RuntimeError(f"{name} not found in guest {guest.name}")
    counter = f"{FAULT_DIR}/{name}.count"
    wrapper = f"""#!/bin/sh
{_MARK}
c={shlex.quote(counter)}
case "$*" in
  {pattern})
    if mkdir {FAULT_DIR}/{name}.lock 2>/dev/null; then
      n=$(cat "$c" 2>/dev/null || echo 0)
      if [ "$n" -gt 0 ] 2>/dev/null; then
        echo $((n - 1)) > "$c"
        rmdir {FAULT_DIR}/{name}.lock
        echo {shlex.quote(stderr)} >&2
        exit {int(rc)}
      fi
      rmdir {FAULT_DIR}/{name}.lock
    fi
    ;;
esac
exec {shlex.quote(real)} "$@"
"""
    path = f"{WRAPPER_DIR}/{name}"
    command = (
        f"mkdir -p {FAULT_DIR} && chmod 1777 {FAULT_DIR} && "
        f"echo {int(times)} > {shlex.quote(counter)} && chmod 666 {shlex.quote(counter)} && "
        f"printf %s {shlex.quote(wrapper)} > {shlex.quote(path)}.tmp && "
        f"chmod 755 {shlex.quote(path)}.tmp && mv {shlex.quote(path)}.tmp {shlex.quote(path)}"
    )
    _check(guest, command, f"installing the {name} fault wrapper")


def drop_ssh_after_command(guest, name):
    """Make the next invocation of command ``name`` (found through PATH) run to its end and
    then cut every SSH session to the guest before its exit status can be sent: the host did
    the work, the client never hears it.  ``clear_command_faults`` removes the wrapper; the
    directory ``FAULT_DIR/<name>.once`` shows that it fired."""
    if "/" in name or not name or name.startswith("."):
        raise ValueError(f"bad command name {name!r}")
    real = _check(guest, f"PATH=/usr/sbin:/usr/bin:/sbin:/bin command -v {shlex.quote(name)}",
                  f"finding {name}").strip()
    once = f"{FAULT_DIR}/{name}.once"
    wrapper = f"""#!/bin/sh
{_MARK}
if mkdir {shlex.quote(once)} 2>/dev/null; then
  {shlex.quote(real)} "$@"
  rc=$?
  {KILL_SSH_SESSIONS}
  exit $rc
fi
exec {shlex.quote(real)} "$@"
"""
    path = f"{WRAPPER_DIR}/{name}"
    _check(guest, f"mkdir -p {FAULT_DIR} && chmod 1777 {FAULT_DIR} && "
                  f"printf %s {shlex.quote(wrapper)} > {shlex.quote(path)}.tmp && "
                  f"chmod 755 {shlex.quote(path)}.tmp && mv {shlex.quote(path)}.tmp {shlex.quote(path)}",
           f"installing the {name} ssh-drop wrapper")


def command_failures_left(guest, name):
    rc, out, _ = guest.run(f"cat {FAULT_DIR}/{shlex.quote(name)}.count", sudo=True)
    return int(out.strip()) if rc == 0 and out.strip().isdigit() else 0


def clear_command_faults(guest):
    """Remove every fault wrapper the rig installed in the guest."""
    command = (
        f"for f in {WRAPPER_DIR}/*; do "
        f'grep -q {shlex.quote(_MARK)} "$f" 2>/dev/null && rm -f "$f"; done; '
        f"rm -rf {FAULT_DIR}; true"
    )
    _check(guest, command, "clearing fault wrappers")

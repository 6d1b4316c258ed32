"""How long the rig's EBS state changes take, and the timers that end them.

EC2 answers CreateVolume, AttachVolume, DetachVolume, CreateSnapshot(s) and CopySnapshot at
once and finishes the work later: the volume is "creating", the attachment "attaching" or
"detaching", the snapshot "pending" for a while.  moto changes every state instantly; the rig
puts these intermediate states back (``tests.rig.ebs_hooks``) and ends each one with a timer
from ``Scheduler``.

    rig.timing.attach = 2.0          # seconds; 0 = instant (as plain moto)
    rig.timing.set(volume_create=0, attach=0, detach=0, snapshot=0, copy=0)
    rig.reset()                      # back to DEFAULTS
"""

import threading

DEFAULTS = {"volume_create": 0.3, "attach": 0.3, "detach": 0.2, "snapshot": 1.0, "copy": 1.0}


class Timing:
    """Seconds a new volume stays "creating" (``volume_create``), an attachment "attaching"
    (``attach``), a detach "detaching" (``detach``, after the guest let the disk go), a new
    snapshot "pending" (``snapshot``) and a snapshot copy "pending" (``copy``)."""

    __slots__ = tuple(DEFAULTS)

    def __init__(self, **seconds):
        self.reset()
        self.set(**seconds)

    def __setattr__(self, name, value):
        value = float(value)
        if not value >= 0:
            raise ValueError(f"rig timing {name} must be >= 0 seconds, not {value!r}")
        super().__setattr__(name, value)

    def set(self, **seconds):
        unknown = set(seconds) - set(DEFAULTS)
        if unknown:
            raise TypeError(f"unknown rig timing {sorted(unknown)}; known: {sorted(DEFAULTS)}")
        for name, value in seconds.items():
            setattr(self, name, value)
        return self

    def reset(self):
        for name, value in DEFAULTS.items():
            setattr(self, name, value)
        return self

    def as_dict(self):
        return {name: getattr(self, name) for name in DEFAULTS}

    def __repr__(self):
        return "Timing(" + ", ".join(f"{k}={v}" for k, v in self.as_dict().items()) + ")"


class Scheduler:
    """Runs ``fn(*args)`` after a delay on daemon timer threads; ``cancel_all()`` drops those
    still pending (a reset must not let old timers touch the new state)."""

    def __init__(self, on_error=None):
        self._lock = threading.Lock()
        self._timers = set()
        self._on_error = on_error

    def after(self, seconds, fn, *args):
        """Call ``fn(*args)`` in ``seconds`` (at once, in this thread, when ``seconds`` <= 0)."""
        if seconds <= 0:
            fn(*args)
            return None
        timer = None

        def fire():
            with self._lock:
                if timer not in self._timers:
                    return
                self._timers.discard(timer)
            try:
                fn(*args)
            except Exception as err:  # a timer thread has nobody to raise to
                if self._on_error is not None:
                    self._on_error(fn, err)

        timer = threading.Timer(seconds, fire)
        timer.daemon = True
        with self._lock:
            self._timers.add(timer)
        timer.start()
        return timer

    def pending(self):
        with self._lock:
            return len(self._timers)

    def cancel_all(self):
        with self._lock:
            timers, self._timers = self._timers, set()
        for timer in timers:
            timer.cancel()

"""The lock of a volume group: a lease row in the database, so that two ams processes (two
operators, two cron hosts, a schedule run and a detach) never change the same group at once.

The lease lives in ``volume_groups`` (``lock_owner``, ``lock_since``, ``lock_until``) and works
alike on MariaDB and SQLite:

- acquire is one conditional UPDATE (the group is free, or its lease has passed) whose rowcount
  says who won; a group created by a command is claimed in the INSERT that creates it;
- the holder renews the lease every LEASE/4 from a background thread (its own short
  transactions), so a lease of LEASE covers a step of any length (a hook, a detach waiter, a
  snapshot bracket) while a holder that was killed frees the group within LEASE;
- release clears the lease only where this holder still owns it (owner text compared).

No transaction is ever held while the lock is held: each of the statements above is a
transaction of its own.  The owner text ``host:pid:token:command`` names the holder in the
message the waiting ams prints; the random token makes each acquisition unique, so a holder never
releases or renews a lease that expired and was taken by someone else.

A holder stopped for longer than LEASE (SIGSTOP, a suspended laptop) loses its lease; it logs a
warning when it notices.  That is the price of a lease: without it a killed ams would lock the
group until someone cleared it by hand.
"""

import logging
import os
import secrets
import socket
import threading
import time
from datetime import timedelta

from sqlalchemy import and_, or_, select, update

from ..core.errors import BusyError, NotFoundError
from .schema import volume_groups
from .types import utcnow

log = logging.getLogger("ams.store.locks")

LEASE = timedelta(minutes=2)  # renewed every LEASE / 4 while held; a dead holder's lease ends after this
POLL = 0.5  # seconds between two attempts while waiting for a busy group

_c = volume_groups.c


def this_process():
    """``host:pid`` of this ams (also the runner of schedule runs)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_text(command):
    """The owner of a new acquisition: ``host:pid:token:command``."""
    return f"{this_process()}:{secrets.token_hex(4)}:{command}"


def parse_owner(owner):
    """{host, pid, command} of an owner text (whatever parts it has)."""
    parts = (owner or "").split(":", 3)
    parts += [""] * (4 - len(parts))
    return {"host": parts[0], "pid": parts[1], "command": parts[3] or parts[2]}


def claim_values(owner, now, lease=LEASE):
    """Columns that make a new group's INSERT claim its lock."""
    return {"lock_owner": owner, "lock_since": now, "lock_until": now + lease}


def try_acquire(conn, group_id, owner, now, lease=LEASE):
    """Take the lock of ``group_id`` when it is free or its lease has passed; True when taken."""
    result = conn.execute(
        update(volume_groups)
        .where(_c.id == group_id)
        .where(or_(_c.lock_until.is_(None), _c.lock_until < now))
        .values(lock_owner=owner, lock_since=now, lock_until=now + lease)
    )
    return result.rowcount == 1


def renew(conn, group_id, owner, now, lease=LEASE):
    """Push the lease on; False when ``owner`` no longer holds it."""
    result = conn.execute(
        update(volume_groups).where(and_(_c.id == group_id, _c.lock_owner == owner)).values(lock_until=now + lease)
    )
    return result.rowcount == 1


def release(conn, group_id, owner):
    """Free the lock if ``owner`` still holds it; False when it does not (expired and taken)."""
    result = conn.execute(
        update(volume_groups).where(and_(_c.id == group_id, _c.lock_owner == owner))
        .values(lock_owner=None, lock_since=None, lock_until=None)
    )
    return result.rowcount == 1


def holder(conn, group_id, now):
    """(exists, lock) of ``group_id``: lock is {owner, since, until} while held, None when free
    or expired; exists is False when there is no such group row."""
    row = conn.execute(select(_c.lock_owner, _c.lock_since, _c.lock_until).where(_c.id == group_id)).first()
    if row is None:
        return False, None
    if row.lock_until is None or row.lock_until < now:
        return True, None
    return True, {"owner": row.lock_owner, "since": row.lock_since, "until": row.lock_until}


def describe(group_id, lock):
    """'volume group 3 is busy: `volume detach` by ams pid 1234 on host web1 since 2026-11-30 12:00:01 UTC'."""
    who = parse_owner(lock["owner"])
    since = f" since {lock['since']:%Y-%m-%d %H:%M:%S} UTC" if lock.get("since") else ""
    return f"volume group {group_id} is busy: `{who['command']}` by ams pid {who['pid']} on host {who['host']}{since}"


def busy_message(engine, group_id):
    """The holder of ``group_id``'s lock as :func:`describe` says it, or None when it is free."""
    with engine.connect() as conn:
        _, lock = holder(conn, group_id, utcnow())
    return describe(group_id, lock) if lock else None


class GroupLock:
    """``with GroupLock(engine, 3, "volume detach", wait=10):`` holds volume group 3's lock.

    Entering waits up to ``wait`` seconds for a busy group (``on_wait`` gets one line when it
    starts waiting), then raises BusyError naming the holder; NotFoundError when there is no
    such group.  ``owner`` adopts a lock claimed already (by the INSERT of a new group).  While
    held, a daemon thread renews the lease; leaving releases it, whatever happened inside."""

    def __init__(self, engine, group_id, command, *, wait=0.0, on_wait=None, owner=None, lease=LEASE):
        self.engine = engine
        self.group_id = group_id
        self.command = command
        self.wait = max(0.0, float(wait))
        self.on_wait = on_wait
        self.lease = lease
        self.owner = owner
        self._adopted = owner is not None
        self._stop = threading.Event()
        self._thread = None

    def __enter__(self):
        if not self._adopted:
            self.owner = owner_text(self.command)
            self._acquire()
        self._thread = threading.Thread(target=self._renew_until_released, daemon=True,
                                        name=f"ams-lock-vg{self.group_id}")
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            with self.engine.begin() as conn:
                if not release(conn, self.group_id, self.owner):
                    log.warning("the lock of volume group %s had been lost before it was released", self.group_id)
        except Exception as exc:  # never hide the command's own outcome; the lease ends by itself
            log.warning("could not release the lock of volume group %s (it expires within %s): %s",
                        self.group_id, self.lease, exc)
        return False

    def _acquire(self):
        deadline = time.monotonic() + self.wait
        told = False
        while True:
            now = utcnow()
            with self.engine.begin() as conn:
                if try_acquire(conn, self.group_id, self.owner, now, self.lease):
                    return
                exists, lock = holder(conn, self.group_id, now)
            if not exists:
                raise NotFoundError(f"volume group {self.group_id} not found")
            left = deadline - time.monotonic()
            if lock is not None and left <= 0:
                raise BusyError(f"{describe(self.group_id, lock)}; try again later")
            if lock is not None and not told and self.on_wait is not None:
                self.on_wait(f"{describe(self.group_id, lock)}; waiting up to {self.wait:g}s")
                told = True
            time.sleep(min(POLL, max(left, 0.05)))

    def _renew_until_released(self):
        interval = self.lease.total_seconds() / 4
        lost = False
        while not self._stop.wait(interval):
            try:
                with self.engine.begin() as conn:
                    held = renew(conn, self.group_id, self.owner, utcnow(), self.lease)
            except Exception as exc:  # a database hiccup: try again at the next beat
                log.warning("could not renew the lock of volume group %s: %s", self.group_id, exc)
                continue
            if not held and not lost:
                lost = True
                log.warning("the lock of volume group %s was lost (its lease passed and another ams took it)",
                            self.group_id)

"""A small synchronous QMP (QEMU Machine Protocol) client over a unix socket.

Enough for the rig: connect, negotiate capabilities, execute commands, skip asynchronous events
(kept in ``events`` for inspection). One instance is safe to share between threads: each
``execute`` holds a lock for its request/response round trip.

The ``qemu.qmp`` package exists but is asyncio-based and would add a dependency for ~100 lines.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from typing import Any


class QMPError(RuntimeError):
    """QEMU answered a command with an error, or the connection failed."""

    def __init__(self, message: str, error_class: str | None = None):
        super().__init__(message)
        self.error_class = error_class


class QMPClient:
    def __init__(self, path: str, timeout: float = 30.0):
        self.path = str(path)
        self.timeout = timeout
        self.events: deque[dict] = deque(maxlen=200)
        self.greeting: dict | None = None
        self._sock: socket.socket | None = None
        self._buf = b""
        self._lock = threading.RLock()
        self._next_id = 0

    # -- connection -----------------------------------------------------------------------
    def connect(self, wait: float = 10.0) -> "QMPClient":
        """Connect (retrying while the socket does not exist yet) and negotiate capabilities."""
        deadline = time.monotonic() + wait
        with self._lock:
            while True:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(self.timeout)
                try:
                    sock.connect(self.path)
                    break
                except (FileNotFoundError, ConnectionRefusedError) as exc:
                    sock.close()
                    if time.monotonic() > deadline:
                        raise QMPError(f"cannot connect to QMP socket {self.path}: {exc}") from exc
                    time.sleep(0.1)
            self._sock = sock
            self._buf = b""
            self.greeting = self._read_message()
            if "QMP" not in self.greeting:
                raise QMPError(f"unexpected QMP greeting: {self.greeting}")
            self.execute("qmp_capabilities")
        return self

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                try:
                    self._sock.close()
                finally:
                    self._sock = None

    @property
    def connected(self) -> bool:
        return self._sock is not None

    def __enter__(self) -> "QMPClient":
        return self.connect() if not self.connected else self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- protocol -------------------------------------------------------------------------
    def _read_message(self) -> dict:
        assert self._sock is not None
        while b"\n" not in self._buf:
            try:
                chunk = self._sock.recv(65536)
            except socket.timeout as exc:
                raise QMPError("timed out waiting for QEMU (QMP)") from exc
            except OSError as exc:
                raise QMPError(f"QMP connection failed: {exc}") from exc
            if not chunk:
                self.close()
                raise QMPError("QEMU closed the QMP connection")
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return json.loads(line)

    def execute(self, command: str, arguments: dict | None = None, **kwargs: Any) -> Any:
        """Run a QMP command and return its ``return`` value; raise QMPError on ``error``."""
        args = dict(arguments or {}, **kwargs)
        with self._lock:
            if self._sock is None:
                raise QMPError("QMP not connected")
            self._next_id += 1
            req_id = f"rig-{self._next_id}"
            msg: dict[str, Any] = {"execute": command, "id": req_id}
            if args:
                msg["arguments"] = args
            try:
                self._sock.sendall(json.dumps(msg).encode() + b"\n")
            except OSError as exc:
                self.close()
                raise QMPError(f"QMP send failed: {exc}") from exc
            while True:
                reply = self._read_message()
                if "event" in reply:
                    self.events.append(reply)
                    continue
                if reply.get("id") != req_id:
                    continue
                if "error" in reply:
                    err = reply["error"]
                    raise QMPError(f"{command}: {err.get('desc', err)}", err.get("class"))
                return reply.get("return")

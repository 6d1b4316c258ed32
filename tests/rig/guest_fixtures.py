"""pytest plugin: the session-scoped QEMU guest of the rig (fixture ``rig_guest``).

Register it in ``tests/conftest.py`` (``pytest_plugins``) or with ``-p tests.rig.guest_fixtures``.
The guest boots once per session; when QEMU cannot run here (binary missing, image cannot be
built) every test that asks for it is skipped with the reason. A guest that is available but
fails to boot is an error, not a skip.
"""

from __future__ import annotations

import time

import pytest

from tests.resources import unavailable
from tests.rig.guest import Guest, qemu_unavailable_reason

_stats: dict[str, float] = {}


@pytest.fixture(scope="session")
def rig_guest(tmp_path_factory: pytest.TempPathFactory):
    t0 = time.monotonic()
    reason = qemu_unavailable_reason()
    if reason:
        unavailable(f"QEMU guest unavailable: {reason}")
    _stats["image_s"] = time.monotonic() - t0
    guest = Guest("rig-guest", tmp_path_factory.mktemp("rig-guest"))
    try:
        guest.start()
        _stats["boot_s"] = guest.boot_seconds or 0.0
        yield guest
    finally:
        peak = guest.peak_memory_kb()
        if peak:
            _stats["peak_rss_mb"] = peak / 1024
        guest.shutdown()


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # noqa: ARG001
    if _stats:
        parts = [f"image ready {_stats['image_s']:.1f}s" if "image_s" in _stats else "",
                 f"boot to SSH {_stats['boot_s']:.1f}s" if "boot_s" in _stats else "",
                 f"QEMU peak RSS {_stats['peak_rss_mb']:.0f} MB" if "peak_rss_mb" in _stats else ""]
        terminalreporter.write_line("rig guest: " + ", ".join(p for p in parts if p))

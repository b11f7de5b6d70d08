"""Short GIL slices while a worker thread does a burst of pure-Python work beside the loop.

When a map reload swaps in its table, the thread doing it holds the GIL for ~5-10 ms of CPU:
the child's reply unpickled, the entries assembled, the table built, the audit entry
written. Each time the serving loop wakes meanwhile (a request arrived), it waits for the GIL
for up to the interpreter's switch interval, 5 ms by default, and the requests due then pile
up behind it. With a 0.5 ms interval the loop waits at most that long per wake-up; the thread
takes a little longer (more switches), which nobody waits on.

The switch interval is process-wide, so blocks nest and overlap across threads: the first to
enter saves the interval and shortens it, the last to leave puts the saved one back.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

SLICE_S = 0.0005

_lock = threading.Lock()
_depth = 0
_saved = 0.0


@contextmanager
def short_gil_slices() -> Iterator[None]:
    global _depth, _saved
    with _lock:
        if _depth == 0:
            _saved = sys.getswitchinterval()
            if _saved > SLICE_S:
                sys.setswitchinterval(SLICE_S)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                sys.setswitchinterval(_saved)

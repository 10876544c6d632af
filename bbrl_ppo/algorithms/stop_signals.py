"""SIGINT/SIGTERM as a request to stop at the next clean boundary, not a crash."""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: Seconds after a first SIGTERM during which another is that request delivered again,
#: not a second one: a batch scheduler (SLURM's scancel) signals every process of a job,
#: and torchrun forwards the signal it got to its processes, which get it twice. A second
#: Ctrl-C (SIGINT), a user's, still stops at once.
DUPLICATE_WINDOW_S = 2.0


class StopRequest:
    """Records the first SIGINT/SIGTERM while `listening`; a second one interrupts at once.

    The training loop checks `requested` between rollouts and saves a checkpoint
    before it returns. SIGTERM again within `DUPLICATE_WINDOW_S` is the first one
    delivered twice and changes nothing. Outside the main thread, signals are left
    alone.
    """

    def __init__(self) -> None:
        #: The name of the signal that asked to stop, or None.
        self.requested: str | None = None
        self._requested_at = -float("inf")

    @contextmanager
    def listening(self) -> Iterator[None]:
        self.requested = None
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.getsignal(sig) for sig in _SIGNALS}

        def request_stop(signum: int, frame: Any) -> None:
            name = signal.Signals(signum).name
            now = time.monotonic()
            duplicate = now - self._requested_at < DUPLICATE_WINDOW_S
            if name == self.requested == "SIGTERM" and duplicate:
                return
            if self.requested is not None:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
                raise KeyboardInterrupt
            self.requested, self._requested_at = name, now
            print(
                f"\n{self.requested}: stopping after this rollout and saving a checkpoint "
                "(send it again to stop at once)",
                file=sys.stderr,
            )

        for sig in previous:
            signal.signal(sig, request_stop)
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

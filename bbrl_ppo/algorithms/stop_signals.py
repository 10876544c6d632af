"""SIGINT/SIGTERM as a request to stop at the next clean boundary, not a crash."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Records the first SIGINT/SIGTERM while `listening`; a second one interrupts at once.

    The training loop checks `requested` between rollouts and saves a checkpoint
    before it returns. Outside the main thread, signals are left alone.
    """

    def __init__(self) -> None:
        #: The name of the signal that asked to stop, or None.
        self.requested: str | None = None

    @contextmanager
    def listening(self) -> Iterator[None]:
        self.requested = None
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.getsignal(sig) for sig in _SIGNALS}

        def request_stop(signum: int, frame: Any) -> None:
            if self.requested is not None:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
                raise KeyboardInterrupt
            self.requested = signal.Signals(signum).name
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

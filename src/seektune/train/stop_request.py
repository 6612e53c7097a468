"""A polite stop: SIGTERM (a scheduler's preemption, `kill`, the web UI's Stop) asks training to finish the
optimizer step it is in, write a checkpoint and exit, so `--resume` continues from there instead of from the last
`save_every` checkpoint (or from nothing). A second SIGTERM, or SIGKILL, still ends the process at once."""

from __future__ import annotations

import signal
import threading


class StopRequest:
    """Installed around the training loop (main thread only: a signal handler cannot be set elsewhere)."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def _handle(self, signum, frame) -> None:
        if self.requested:   # asked twice: stop now, as without this handler
            signal.signal(signal.SIGTERM, self._previous or signal.SIG_DFL)
            signal.raise_signal(signal.SIGTERM)
        self.requested = True

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        if threading.current_thread() is threading.main_thread() and self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)

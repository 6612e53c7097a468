"""What the bench scripts share: run one seektune command in this process, timed, and stop the script when it
fails (a bench figure from a failed step would be wrong). Import it from a script run as `python bench/x.py`."""

from __future__ import annotations

import sys
import time


def timed_cli(*argv: str) -> float:
    """`seektune argv...`; prints and returns its wall time in seconds."""
    from seektune.cli import main

    started = time.perf_counter()
    code = main(list(argv))
    if code != 0:
        sys.exit(f"seektune {' '.join(argv)} failed ({code})")
    took = time.perf_counter() - started
    print(f"[{took:.0f} s] seektune {argv[0]} {argv[1]}", flush=True)
    return took

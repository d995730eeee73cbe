"""How much memory the process holds now: recorded after every trial, so growth over a
long study is visible in ``trials.csv`` (``rss_mib``) rather than discovered as a crash."""

from __future__ import annotations

import os


def resident_mib() -> float:
    """This process's resident set size in MiB, or NaN where it cannot be read.

    Read from ``/proc/self/statm`` (Linux), else psutil when installed; the peak from
    ``getrusage`` would hide memory given back, so it is not used.
    """
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
        return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)
    except (OSError, ValueError, IndexError, AttributeError):
        pass
    try:
        import psutil
    except ImportError:
        return float("nan")
    return round(psutil.Process().memory_info().rss / 2**20, 1)

"""How much memory the process holds now: recorded after every trial, so growth over a
long study is visible in ``trials.csv`` (``rss_mib``, and ``device_mib`` on an accelerator)
rather than discovered as a crash."""

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


def device_mib() -> float:
    """Accelerator memory the Keras backend's allocator holds now, in MiB, for the first
    device this process sees (a worker sees only its own GPU); NaN on a CPU or where the
    backend does not say. Each backend is asked in its own terms, imported only here."""
    import keras

    backend = keras.backend.backend()
    try:
        if backend == "jax":
            import jax

            device = jax.local_devices()[0]
            stats = device.memory_stats() if device.platform != "cpu" else None
            in_use = (stats or {}).get("bytes_in_use")
        elif backend == "tensorflow":
            import tensorflow as tf

            in_use = (tf.config.experimental.get_memory_info("GPU:0")["current"]
                      if tf.config.list_logical_devices("GPU") else None)
        elif backend == "torch":
            import torch

            in_use = torch.cuda.memory_allocated() if torch.cuda.is_available() else None
        else:
            in_use = None
    except (RuntimeError, ValueError, KeyError, IndexError):
        in_use = None
    return float("nan") if in_use is None else round(in_use / 2**20, 1)

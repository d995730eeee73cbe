"""Numeric precision of the fine-tuning models: Keras dtype policies.

``float32`` (the default) computes and stores everything in float32. ``mixed_bfloat16``
is Keras's mixed precision: layers compute in bfloat16 and keep their weights, optimizer
state and the loss in float32. On GPUs since Ampere (A100, H100, H200) bfloat16's peak
is about twice that of TF32 (what those cards run float32 products as by default), and
it halves memory traffic; on a CPU it is no faster. bfloat16 keeps float32's range, so
no loss scaling is needed.
``mixed_float16`` is not offered: it needs a loss-scale optimizer, whose extra state
would have to be reset between executions like every other variable (``reuse.py``).

The policy is applied where the fine-tuning models are built (``FineTuneHyperModel``)
and captured by each layer then; source pretraining always runs in float32, so its
cached weights serve every precision. Other numbers than float32's are expected: a
run records its precision and a resumed run keeps it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from bench.errors import BenchError

PRECISIONS = ("float32", "mixed_bfloat16")


def check_precision(name: str) -> str:
    """``name`` if it is one of ``PRECISIONS``; the user's error otherwise."""
    if name in PRECISIONS:
        return name
    why = (" (it needs loss scaling; mixed_bfloat16 does not, and is as fast where the "
           "device has bfloat16 units: GPUs since Ampere, TPUs)"
           if name == "mixed_float16" else "")
    raise BenchError(f"--precision must be one of {', '.join(PRECISIONS)}; got {name!r}{why}")


def compute_dtype(name: str) -> str:
    """The dtype layers compute in under precision ``name`` (bfloat16 for mixed)."""
    return "float32" if name == "float32" else "bfloat16"


@contextmanager
def dtype_policy(name: str) -> Iterator[None]:
    """Keras's global dtype policy set to ``name`` while the block runs (layers made in
    it keep it), the previous one after."""
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)

"""Setting an execution's global seeds without making TensorFlow recompile its kernels.

``keras.utils.set_random_seed`` seeds Python, NumPy and Keras's global seed generator, and
calls ``tf.random.set_seed``. In eager mode that sets TensorFlow's global seed and also
clears the context's kernel cache, so that stateful random kernels start their sequences
again. A reused model's compiled training step is one of those cached kernels: its next
call instantiates and optimises the whole graph again, about 2.4 s for the default
study's model on two cores, longer than the training of a short execution.

Keras draws random numbers with stateless operations from seed-generator variables,
which the reuse restores (``bench.tuning.reuse``); TensorFlow's stateful random kernels
are not part of a Keras model. So on TensorFlow ``set_seed`` sets the same seeds as
``keras.utils.set_random_seed`` (TensorFlow's global seed and the random source it derives
operation seeds from included) and leaves the kernel cache alone. Elsewhere it is
``keras.utils.set_random_seed``.
"""

from __future__ import annotations

import keras


def set_seed(seed: int) -> None:
    """``keras.utils.set_random_seed(seed)``, keeping TensorFlow's compiled kernels."""
    context = _tensorflow_context()
    if context is None:
        keras.utils.set_random_seed(seed)
        return
    # tf.random.set_seed clears the cache only where the context has a handle; hidden
    # for this one call, the seed and the source of operation seeds are set all the same.
    handle = context._context_handle
    try:
        context._context_handle = None
        keras.utils.set_random_seed(seed)
    finally:
        context._context_handle = handle


def _tensorflow_context():
    """TensorFlow's eager context where this is the TensorFlow backend in eager mode and
    the context has the attributes ``set_seed`` relies on; None otherwise."""
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf
    from tensorflow.python.eager import context as eager

    if not tf.executing_eagerly():
        return None
    current = eager.context()
    if not (hasattr(current, "_context_handle") and hasattr(current, "_set_global_seed")):
        return None
    return current

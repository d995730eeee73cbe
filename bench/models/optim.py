"""An optimizer whose learning rate for the backbone is a fixed fraction of the head's.

The Dive into Deep Learning recipe trains the new output layer at ten times the rate of
the copied layers. Keras 3 has one learning rate per optimizer, so the scale is applied
per variable inside ``update_step``, which the training loop calls for every variable.
(Keras's torch backend swaps the stock classes, matched exactly, for fused ones that
skip ``update_step``; a subclass such as this one is not swapped. Tested on the
TensorFlow and JAX backends only.) Decoupled
weight decay (``weight_decay=``) is applied at each variable's own scaled rate too: Keras
applies it as ``variable -= variable * weight_decay * lr`` with the optimizer's unscaled
rate, which would decay the backbone ten times faster than the recipe means.

Every optimizer ``make_optimizer`` returns carries ``body_lr_scale``, so the suite can
check after a space's own ``compile`` that the scale the tables record is the one that ran.
"""

from __future__ import annotations

import functools

import numpy as np

from bench.errors import BenchError


@functools.cache
def _scaled_class(base):
    class Scaled(base):
        def __init__(self, *, body_variables=(), body_lr_scale=1.0, **kwargs):
            super().__init__(**kwargs)
            self._body_keys = {self._var_key(v) for v in body_variables}
            self.body_lr_scale = float(body_lr_scale)
            self._lr_scales = []

        def build(self, variables):
            super().build(variables)
            self._lr_scales = [
                self.body_lr_scale if self._var_key(v) in self._body_keys else 1.0
                for v in variables
            ]

        def _scale(self, variable) -> float:
            return self._lr_scales[self._get_variable_index(variable)]

        def update_step(self, gradient, variable, learning_rate):
            super().update_step(gradient, variable, learning_rate * self._scale(variable))

        def _apply_weight_decay(self, variables):
            # Replaces Keras's decay at the unscaled rate (and the TensorFlow backend's
            # tf.distribute variant, which the suite does not use).
            from keras import ops

            for variable in variables:
                decay = self._decay_of(variable)
                if decay is not None and self._use_weight_decay(variable):
                    lr = ops.cast(self.learning_rate, variable.dtype) * self._scale(variable)
                    wd = ops.cast(decay, variable.dtype)
                    variable.assign(variable - variable * wd * lr)

        def _decay_of(self, variable):
            # Muon decays the variables it leaves to AdamW at its own adam_weight_decay.
            if hasattr(self, "adam_weight_decay") and self._should_use_adamw(variable):
                return self.adam_weight_decay
            return self.weight_decay

    Scaled.__name__ = f"BodyScaled{base.__name__}"
    return Scaled


def optimizer_class(name: str):
    """``keras.optimizers.<name>``; a BenchError naming the choices when there is none."""
    import keras

    base = getattr(keras.optimizers, name, None)
    if not (isinstance(base, type) and issubclass(base, keras.optimizers.Optimizer)
            and base is not keras.optimizers.Optimizer):
        raise BenchError(f"unknown optimizer {name!r}; name a class in keras.optimizers, "
                         "such as Adam, AdamW, SGD, RMSprop, Adagrad or Ftrl")
    return base


def optimizer_name(optimizer) -> str:
    """The ``keras.optimizers`` class an optimizer is ("SGD" for what ``make_optimizer``
    makes of SGD)."""
    return next(c.__name__ for c in type(optimizer).__mro__
                if not c.__name__.startswith("BodyScaled"))


@functools.cache
def reads_weights(optimizer_type: type) -> bool:
    """Whether optimizers of this class (a ``keras.optimizers`` class, or what
    ``make_optimizer`` makes of one) copy the weights into their state when built
    (ScheduleFreeAdamW does): such a state cannot be kept from one build and given to
    another model, so the suite's fast paths build it afresh with every model.

    Found by building it on a variable at two values and comparing its state.
    """
    import keras

    def state(value: float) -> list:
        variable = keras.Variable(np.full((2, 2), value, "float32"))
        optimizer = optimizer_type(learning_rate=0.1)
        optimizer.build([variable])
        return [keras.ops.convert_to_numpy(v) for v in optimizer.variables]

    try:
        one, two = state(1.0), state(2.0)
    except Exception:  # noqa: BLE001 (one that needs more arguments is built by its space)
        return False
    return any(not np.array_equal(a, b) for a, b in zip(one, two))


def make_optimizer(name: str, /, *, learning_rate: float, body_variables=(),
                   body_lr_scale: float = 1.0, **kwargs):
    """Builds ``keras.optimizers.<name>`` with the backbone's variables at a scaled rate.

    The result is an instance of a subclass of ``keras.optimizers.<name>`` with a
    ``body_lr_scale`` attribute; the backbone's variables get ``learning_rate *
    body_lr_scale`` for both their update and their weight decay.

    Args:
        name: A class in ``keras.optimizers``, such as ``"Adam"`` or ``"SGD"``.
        learning_rate: The head's learning rate.
        body_variables: The trainable backbone variables.
        body_lr_scale: Their learning rate as a fraction of ``learning_rate``.
        **kwargs: Passed to the optimizer (``weight_decay``, ``momentum``...).

    Raises:
        BenchError: for a name that is not an optimizer in ``keras.optimizers``, or
            options that optimizer does not take.

    Example::

        make_optimizer("SGD", learning_rate=0.01, body_variables=parts.body_variables,
                       body_lr_scale=0.1, momentum=0.9, weight_decay=1e-3)
    """
    base = optimizer_class(name)
    try:
        return _scaled_class(base)(learning_rate=learning_rate, body_variables=body_variables,
                                   body_lr_scale=body_lr_scale, **kwargs)
    except (TypeError, ValueError) as error:
        # Keras answers an unknown keyword with a ValueError, a bad value with either.
        raise BenchError(f"optimizer {name} refused the options {kwargs}: {error}; see "
                         f"keras.optimizers.{name} for the ones it takes") from None

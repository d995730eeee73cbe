"""An optimizer whose learning rate for the backbone is a fixed fraction of the head's.

The Dive into Deep Learning recipe trains the new output layer at ten times the rate of
the copied layers. Keras 3 has one learning rate per optimizer, so the scale is applied
per variable inside ``update_step``, which every backend's training loop calls (the
TensorFlow and JAX backends; the torch backend's fused optimizers skip it).
"""

from __future__ import annotations

import functools


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

        def update_step(self, gradient, variable, learning_rate):
            scale = self._lr_scales[self._get_variable_index(variable)]
            super().update_step(gradient, variable, learning_rate * scale)

    Scaled.__name__ = f"BodyScaled{base.__name__}"
    return Scaled


def make_optimizer(name: str, *, learning_rate: float, body_variables=(),
                   body_lr_scale: float = 1.0, **kwargs):
    """Builds ``keras.optimizers.<name>`` with the backbone's variables at a scaled rate.

    Args:
        name: A class in ``keras.optimizers``, such as ``"Adam"`` or ``"SGD"``.
        learning_rate: The head's learning rate.
        body_variables: The trainable backbone variables.
        body_lr_scale: Their learning rate as a fraction of ``learning_rate``.
        **kwargs: Passed to the optimizer (``weight_decay``, ``momentum``...).
    """
    import keras

    base = getattr(keras.optimizers, name)
    if body_lr_scale == 1.0:
        return base(learning_rate=learning_rate, **kwargs)
    return _scaled_class(base)(learning_rate=learning_rate, body_variables=body_variables,
                               body_lr_scale=body_lr_scale, **kwargs)

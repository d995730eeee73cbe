"""Reusing compiled models across executions: the same graph, fresh state.

On two CPU cores, tracing a new model's training step costs about three seconds, as long
as eight epochs of the default study. Executions that differ only in initial weights
(the repeats of a trial, or ``init``) or in the head's learning rate share one compiled
model. Reuse must be invisible, so each reused execution gets every variable a fresh
build would have: all model variables (weights, BatchNormalization statistics, and the
seed-generator states of Dropout and random augmentation layers, which ``set_weights``
leaves running on), and every optimizer variable as a freshly built optimizer has it
(Adagrad and Ftrl start their accumulators at 0.1, not 0), including its learning rate.
Where equality cannot be guaranteed, there is no reuse: a space that overrides
``compile`` or ``fit`` (which may recompile or refreeze mid-run) always gets a fresh
model, and so does an execution whose fresh optimizer is configured unlike the cached one.
"""

from __future__ import annotations

import keras

from bench.models.model import FineTuneModel
from bench.space import SearchSpace

#: Hyperparameters that change only weights or the learning-rate value, not the graph.
RESETTABLE = ("init", "head_lr")

#: Compiled models kept at once, by default.
DEFAULT_SIZE = 4


def reusable(space: SearchSpace) -> bool:
    cls = type(space)
    return cls.compile is SearchSpace.compile and cls.fit is SearchSpace.fit


def reuse_note(space: SearchSpace, *, enabled: bool) -> str | None:
    """The line a run prints when it cannot reuse compiled models, or None."""
    if not enabled or reusable(space):
        return None
    cls = type(space)
    hooks = [name for name in ("compile", "fit")
             if getattr(cls, name) is not getattr(SearchSpace, name)]
    return (f"compiled-model reuse off: space {space.name} overrides {' and '.join(hooks)}, "
            "so every execution builds and compiles a new model")


def structure_key(hp, space: SearchSpace | None = None) -> tuple:
    """What fixes the compiled graph: every hyperparameter but the resettable ones, and
    the space's effective ``body_lr_scale`` and optimizer (which it may derive)."""
    key = tuple(sorted((name, repr(value)) for name, value in hp.values.items()
                       if name not in RESETTABLE and not name.startswith("tuner/")))
    if space is not None:
        name, options = space.optimizer(hp)
        key += (("body_lr_scale", repr(space.value(hp, "body_lr_scale"))),
                ("optimizer", repr((name, sorted(options.items())))))
    return key


def _optimizer_signature(optimizer) -> tuple:
    """Everything about an optimizer that is baked into the traced step, not a variable."""
    config = {k: v for k, v in optimizer.get_config().items()
              if k not in ("learning_rate", "name")}
    return (type(optimizer).__name__, repr(sorted(config.items())),
            getattr(optimizer, "body_lr_scale", None),
            tuple(getattr(optimizer, "_lr_scales", ())))


def _shapes(variables) -> list:
    return [(tuple(v.shape), str(v.dtype)) for v in variables]


def restore_state(cached: FineTuneModel, fresh: FineTuneModel) -> bool:
    """Copies every model and optimizer variable of ``fresh`` into ``cached``.

    ``fresh`` is a newly built and compiled model of the same structure; its optimizer is
    built here on its own trainable variables, as ``fit`` would build it.

    Returns:
        False, copying nothing, where the two differ in anything that is not a variable
        value (the variables' shapes, the optimizer's class, options or scales).
    """
    model_from, model_to = fresh.model.variables, cached.model.variables
    if _shapes(model_from) != _shapes(model_to):
        return False
    source, target = fresh.model.optimizer, cached.model.optimizer
    if not source.built:
        source.build(fresh.model.trainable_variables)
    if not target.built:
        target.build(cached.model.trainable_variables)
    if (_optimizer_signature(source) != _optimizer_signature(target)
            or _shapes(source.variables) != _shapes(target.variables)):
        return False
    for to, value in zip([*model_to, *target.variables], [*model_from, *source.variables]):
        to.assign(value)
    return True


class CompiledModels:
    """Hands out compiled models, reusing one per graph structure (at most ``size``).

    Args:
        hypermodel: The ``FineTuneHyperModel``.
        enabled: False builds and compiles a new model for every execution.
        size: Compiled models kept at once (default ``DEFAULT_SIZE``).
    """

    def __init__(self, hypermodel, *, enabled: bool = True, size: int | None = None):
        self.hypermodel = hypermodel
        self.enabled = enabled and reusable(hypermodel.space)
        self.size = size or DEFAULT_SIZE
        self._models: dict[tuple, FineTuneModel] = {}
        self.reused = 0
        self.built = 0

    def prepare(self, hp, *, seed: int) -> FineTuneModel:
        """A compiled model with the initial state of ``hp`` and ``seed``."""
        key = structure_key(hp, self.hypermodel.space)
        if not self.enabled or key not in self._models:
            if not self._models or not self.enabled:
                keras.backend.clear_session()
            keras.utils.set_random_seed(seed)
            parts = self.hypermodel.build_parts(hp)
            self.built += 1
            if self.enabled:
                if len(self._models) >= self.size:
                    self._models.pop(next(iter(self._models)))
                self._models[key] = parts
            return parts
        cached = self._models[key]
        keras.utils.set_random_seed(seed)
        fresh = self.hypermodel.build_parts(hp)
        if not restore_state(cached, fresh):
            # The fresh model is as a new build would be: train it, and keep it instead.
            self._models[key] = fresh
            self.built += 1
            return fresh
        self.reused += 1
        return cached

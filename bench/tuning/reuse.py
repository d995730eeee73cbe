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
model, and so does an execution whose fresh optimizer is configured unlike the cached one,
a graph that draws from TensorFlow's own random state (``bench.tuning.random_ops``), and,
for a space with its own head or augmentation, an execution whose fresh build computes
other outputs or gradients on a few images than the cached model given the same variables
(``bench.tuning.probe``: what no layer configuration records).

The fresh build that gives those values costs more than a short execution's training.
Where only ``init``, ``frozen_blocks`` and the seed can change what it makes (the default
head, no augmentation hook, the default ``compile``), its result is kept: the values of
every model variable and the Python and NumPy random states it leaves, so that the trials
that differ only in ``head_lr`` or ``frozen_blocks`` (each repeat at its own seed) take
them instead of building again; the optimizer's variables get the values a newly built
one has (kept once per compiled model and optimizer configuration, with each execution's
learning rate). Freezing changes none of them, so one state serves every depth.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from dataclasses import dataclass

import keras
import numpy as np

from bench.models.model import FineTuneModel
from bench.models.optim import optimizer_name, reads_weights
from bench.space import SearchSpace, default_optimizer
from bench.tuning.probe import same_function
from bench.tuning.random_ops import stateful_random_ops
from bench.tuning.seeding import set_seed

#: Hyperparameters that change only weights or the learning-rate value, not the graph.
RESETTABLE = ("init", "head_lr")

#: Compiled models kept at once, by default.
DEFAULT_SIZE = 4

#: Bytes of initial states (variable values) kept at once, a value several states hold
#: counted once. A study cycles through its repeats' seeds trial after trial, so the states
#: of all of them must fit or the least recently used one is always the next one needed:
#: 9 random-init ResNet50V2 states take 0.9 GB.
STATE_MEMORY = 2048 * 2**20


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


def only_suite_layers(space: SearchSpace) -> bool:
    """Whether every layer of a build is the suite's: the default head and no augmentation
    hook. Then each layer's class and configuration say all it computes; a hook's layers
    may compute what no configuration shows (``bench.tuning.probe``)."""
    cls = type(space)
    return all(getattr(cls, hook) is getattr(SearchSpace, hook)
               for hook in ("build_head", "augment"))


def states_reusable(space: SearchSpace) -> bool:
    """Whether a build's result depends on nothing but the graph, ``init``,
    ``frozen_blocks`` and the seed: the default head and no augmentation hook, which
    could read any hyperparameter (``head_lr`` included), and a reusable space."""
    return reusable(space) and only_suite_layers(space)


def structure_key(hp, space: SearchSpace | None = None) -> tuple:
    """What fixes the compiled graph: every hyperparameter but the resettable ones, and
    the space's effective ``frozen_blocks``, ``body_lr_scale`` and optimizer. Effective:
    as the space's ``value`` gives them, which may derive one from another (a depth from
    ``init``, say), so two trials with one declared value can build other graphs."""
    names = {name for name in hp.values
             if name not in RESETTABLE and not name.startswith("tuner/")}
    if space is None:
        return tuple(sorted((name, repr(hp.values[name])) for name in names))
    names |= {"frozen_blocks", "body_lr_scale"}
    optimizer, options = space.optimizer(hp)
    return (*sorted((name, repr(space.value(hp, name))) for name in names),
            ("optimizer", repr((optimizer, sorted(options.items())))))


def _optimizer_signature(optimizer) -> tuple:
    """Everything about an optimizer that is baked into the traced step, not a variable."""
    config = {k: v for k, v in optimizer.get_config().items()
              if k not in ("learning_rate", "name")}
    return (type(optimizer).__name__, repr(sorted(config.items())),
            getattr(optimizer, "body_lr_scale", None),
            tuple(getattr(optimizer, "_lr_scales", ())))


def graph_signature(model) -> list:
    """Every operation's class and configuration but names, with what it is applied to,
    nested models operation by operation: two builds of one graph agree; a hook that adds
    a layer without variables (a Dropout for one init), a Keras op (``x * 0.5``,
    ``keras.ops.normalize``), another constant or other wiring, or sets another
    activation, does not. An operation that cannot give its configuration makes the graph
    unlike any other (it is then built afresh)."""
    by_depth = getattr(model, "_nodes_by_depth", None)
    if not by_depth:  # a Sequential or subclassed model: its layers, in order
        return [_operation_signature(layer) for layer in model.layers]
    # This graph's calls, inputs first; a layer called in another graph too (the prefix
    # cache's rest model) has other nodes, which are not this graph's.
    nodes = [node for depth in sorted(by_depth, reverse=True) for node in by_depth[depth]]
    position = {id(node): i for i, node in enumerate(nodes)}
    signature = []
    for node in nodes:
        arguments = node.arguments
        inputs, constants = [], []
        if arguments is not None:
            for value in keras.tree.flatten((arguments.args, arguments.kwargs)):
                if isinstance(value, keras.KerasTensor):
                    operation, node_index, tensor_index = value._keras_history
                    source = operation._inbound_nodes[node_index]
                    inputs.append((position.get(id(source)), tensor_index))
                else:
                    constants.append(repr(value))
        signature.append((_operation_signature(node.operation), inputs, constants))
    return signature


def _operation_signature(operation):
    if getattr(operation, "layers", None):
        # A nested model's own configuration names its inputs and outputs by their
        # automatic names ("input_layer_3"), which differ between two builds.
        return (type(operation).__name__, graph_signature(operation))
    try:
        config = {k: v for k, v in operation.get_config().items() if k != "name"}
    except Exception:  # noqa: BLE001 - Keras raises NotImplementedError, users anything
        return object()  # equal to nothing
    return (type(operation).__name__, repr(sorted(config.items(), key=str)))


def _shapes(variables) -> list:
    return [(tuple(v.shape), str(v.dtype)) for v in variables]


def restore_state(cached: FineTuneModel, fresh: FineTuneModel) -> bool:
    """Copies every model and optimizer variable of ``fresh`` into ``cached``.

    ``fresh`` is a newly built and compiled model of the same structure; its optimizer is
    built here on its own trainable variables, as ``fit`` would build it.

    Returns:
        False, copying nothing, where the two differ in anything that is not a variable
        value (a layer, the variables' shapes, the optimizer's class, options or scales).
    """
    if graph_signature(cached.model) != graph_signature(fresh.model):
        return False
    source = fresh.model.optimizer
    if not source.built:
        source.build(fresh.model.trainable_variables)
    return _assign(cached, values=fresh.model.variables,
                   shapes=_shapes(fresh.model.variables), optimizer=FreshOptimizer.of(source))


@dataclass
class FreshOptimizer:
    """A just-built optimizer's variable values, and what must match to assign them."""

    signature: tuple
    shapes: list
    values: list
    learning_rate_index: int | None  # which value is the learning rate (None: a schedule)

    @classmethod
    def of(cls, optimizer) -> FreshOptimizer:
        variables = optimizer.variables
        rate = getattr(optimizer, "_learning_rate", None)
        index = next((i for i, v in enumerate(variables) if v is rate), None)
        return cls(signature=_optimizer_signature(optimizer), shapes=_shapes(variables),
                   values=list(variables), learning_rate_index=index)

    def kept(self) -> FreshOptimizer:
        """The same, its values copied out of the variables (NumPy), to keep."""
        return FreshOptimizer(self.signature, self.shapes,
                              [keras.ops.convert_to_numpy(v) for v in self.values],
                              self.learning_rate_index)

    def at_learning_rate(self, optimizer) -> FreshOptimizer:
        """These values with ``optimizer``'s learning rate (an unbuilt optimizer of the
        same configuration otherwise), as building ``optimizer`` would give them."""
        index = self.learning_rate_index
        rate = getattr(optimizer, "_learning_rate", None)
        if index is None or not isinstance(rate, keras.Variable):
            return self
        values = list(self.values)
        values[index] = keras.ops.convert_to_numpy(rate)
        return FreshOptimizer(self.signature, self.shapes, values, index)


def _assign(cached: FineTuneModel, *, values, shapes, optimizer: FreshOptimizer) -> bool:
    """Assigns ``values`` to ``cached``'s model variables and ``optimizer``'s values to its
    optimizer's variables; False, assigning nothing, where they do not fit."""
    model_to = cached.model.variables
    if shapes != _shapes(model_to):
        return False
    target = cached.model.optimizer
    if not target.built:
        target.build(cached.model.trainable_variables)
    if (optimizer.signature != _optimizer_signature(target)
            or optimizer.shapes != _shapes(target.variables)):
        return False
    for to, value in zip([*model_to, *target.variables], [*values, *optimizer.values]):
        to.assign(value)
    return True


@dataclass
class InitialState:
    """What a fresh build of one graph, init and seed leaves behind."""

    values: list  # every model variable's value (NumPy)
    shapes: list
    python_random: tuple  # the random states after the build: training draws on from them
    numpy_random: tuple


def _state_of(parts: FineTuneModel, *, like: InitialState | None = None) -> InitialState:
    """A just-built model's variable values and the random states its build left.

    A value byte for byte equal to ``like``'s at the same place is ``like``'s array, not a
    copy: builds of a pretrained init at different seeds differ only in the new head, and
    a ResNet50V2's backbone is 100 MB a copy. Kept values are read-only."""
    variables = parts.model.variables
    values = [keras.ops.convert_to_numpy(v) for v in variables]
    shapes = _shapes(variables)
    if like is not None and like.shapes == shapes:
        values = [theirs if _same_bytes(mine, theirs) else mine
                  for mine, theirs in zip(values, like.values)]
    for value in values:
        value.flags.writeable = False
    return InitialState(values=values, shapes=shapes, python_random=random.getstate(),
                        numpy_random=np.random.get_state())


def _same_bytes(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal bit for bit (0.0 is not -0.0, and a NaN equals the same NaN)."""
    return (a.dtype == b.dtype and a.shape == b.shape
            and np.array_equal(np.ascontiguousarray(a).reshape(-1).view(np.uint8),
                               np.ascontiguousarray(b).reshape(-1).view(np.uint8)))


def kept_bytes(states) -> int:
    """The bytes of ``states``' values, an array several of them hold counted once."""
    return sum({id(value): value.nbytes for state in states
                for value in state.values}.values())


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
        self.keep_states = self.enabled and states_reusable(hypermodel.space)
        self.size = size or DEFAULT_SIZE
        self._models: dict[tuple, FineTuneModel] = {}
        self._states: OrderedDict[tuple, InitialState] = OrderedDict()
        # A just-built optimizer's values per compiled model and optimizer configuration:
        # building one per execution would create new Keras variables each time, and on
        # TensorFlow every Keras variable created leaves memory behind when dropped.
        self._fresh_optimizers: dict[tuple, FreshOptimizer] = {}
        self.reused = 0
        self.built = 0
        self.states_reused = 0  # reused executions that took a kept state, not a build
        self.adopted = 0  # compiled models taken over from the pre-flight check
        #: Called with every newly built model before it is used or kept (it may raise).
        self.check_build = None
        #: A few images on which a hook's graph is checked to compute what a kept model of
        #: the same configuration computes, before the kept one is reused (None: not
        #: checked).
        self.probe_images = None
        #: Called with each line that says why a graph is not reused (``notes`` too).
        self.note = None
        self.notes: list[str] = []
        self._random_ops: dict[str, list[str]] = {}  # graph signature -> its stateful ops

    def adopt(self, parts: FineTuneModel, hp) -> None:
        """Keeps ``parts``, a model built and compiled for ``hp`` (and trained or not), as
        the compiled model of its structure: an execution of that structure gets a fresh
        state restored into it, as into any reused model, instead of tracing a new one."""
        if self.enabled and self._keepable(parts):
            self._models[structure_key(hp, self.hypermodel.space)] = parts
            self.adopted += 1

    def prepare(self, hp, *, seed: int) -> FineTuneModel:
        """A compiled model with the initial state of ``hp`` and ``seed``."""
        key = structure_key(hp, self.hypermodel.space)
        if not self.enabled or key not in self._models:
            if not self._models or not self.enabled:
                keras.backend.clear_session()
            parts = self._build(hp, key=key, seed=seed)
            self.built += 1
            if self.enabled and self._keepable(parts):
                if len(self._models) >= self.size:
                    self._forget(next(iter(self._models)))
                self._models[key] = parts
            return parts
        cached = self._models[key]
        if self._take_state(cached, hp, key=key, seed=seed):
            self.reused += 1
            self.states_reused += 1
            return cached
        fresh = self._build(hp, key=key, seed=seed)
        if not restore_state(cached, fresh) or not self._computes_alike(cached, fresh):
            # The fresh model is as a new build would be: train it, and keep it instead
            # (where it can be reused at all).
            if self._keepable(fresh):
                self._forget(key)
                self._models[key] = fresh
            self.built += 1
            return fresh
        self.reused += 1
        return cached

    def _computes_alike(self, cached: FineTuneModel, fresh: FineTuneModel) -> bool:
        """Whether ``cached``, holding ``fresh``'s variables, computes what ``fresh`` does,
        forward and backward. Layer configurations do not show everything a hook's layer
        computes: a function given as an activation is saved by name (a temperature or a
        ``stop_gradient`` it closes over is not), an attribute set after construction is
        not saved, a NumPy draw in ``call`` is a constant of each trace."""
        if self.keep_states or self.probe_images is None:
            return True
        if same_function(cached.model, fresh.model, self.probe_images):
            return True
        self._say(f"compiled-model reuse off for some executions of space "
                  f"{self.hypermodel.space.name}: a new build computed other outputs or "
                  "gradients than a kept model with the same layers, configurations and "
                  "weights (something no layer configuration records: a function's "
                  "closure, an attribute set after construction, or NumPy or Python "
                  "randomness in a call), so those executions trained on a new build")
        return False

    def _keepable(self, parts: FineTuneModel) -> bool:
        """False for a graph with a stateful TensorFlow random op, which no reuse can
        start where a fresh build would: it is built afresh for every execution."""
        optimizer = getattr(parts.model, "optimizer", None)
        if optimizer is not None and reads_weights(type(optimizer)):
            self._say(f"compiled-model reuse off for space {self.hypermodel.space.name}'s "
                      f"{optimizer_name(optimizer)}: it copies the weights into its state "
                      "when it is built, so a reused model's optimizer would hold another "
                      "execution's weights; each execution builds a new model")
            return False
        if self.keep_states:  # the default head and no augmentation: Keras layers only
            return True
        signature = repr(graph_signature(parts.model))
        if signature not in self._random_ops:
            ops = self._random_ops[signature] = stateful_random_ops(parts.model)
            if ops:
                self._say(f"compiled-model reuse off for a graph of space "
                          f"{self.hypermodel.space.name}: it draws from random state "
                          f"that is not the model's ({'; '.join(ops)}), which a reused model would "
                          "carry from one execution into the next, so each of its "
                          "executions builds a new model (keras.random with a "
                          "SeedGenerator, or Keras's random layers, can be reused)")
        return not self._random_ops[signature]

    def _say(self, line: str) -> None:
        if line not in self.notes:
            self.notes.append(line)
            if self.note is not None:
                self.note(line)

    def _forget(self, key: tuple) -> None:
        self._models.pop(key, None)
        self._fresh_optimizers = {k: v for k, v in self._fresh_optimizers.items()
                                  if k[0] != key}

    def fresh(self, hp, *, seed: int) -> FineTuneModel:
        """A new build at ``seed``, not handed out again; its initial state is kept."""
        self.built += 1
        return self._build(hp, key=structure_key(hp, self.hypermodel.space), seed=seed)

    def initial_state(self, hp, *, seed: int) -> InitialState:
        """The variable values a build of ``hp`` at ``seed`` starts from (kept, or built
        now). Needs ``keep_states``."""
        key = structure_key(hp, self.hypermodel.space)
        state_key = self._state_key(hp, key=key, seed=seed)
        state = self._states.get(state_key)
        if state is not None:
            self._states.move_to_end(state_key)
            return state
        parts = self.fresh(hp, seed=seed)
        # Larger than the memory for states, it was not kept: the build's own values.
        return self._states.get(state_key) or _state_of(parts)

    def _state_key(self, hp, *, key: tuple, seed: int) -> tuple:
        space = self.hypermodel.space
        # Freezing sets which variables train, not their values, their order or any random
        # state: one build's state serves every frozen depth of the same graph otherwise.
        unfrozen = tuple(item for item in key if item[0] != "frozen_blocks")
        return unfrozen + (("init", repr(space.value(hp, "init"))), ("seed", seed))

    def _build(self, hp, *, key: tuple, seed: int) -> FineTuneModel:
        """A fresh build at ``seed``, its initial state kept where that is safe."""
        set_seed(seed)
        parts = self.hypermodel.build_parts(hp)
        if self.check_build is not None:
            self.check_build(parts.model)
        if self.keep_states:
            state_key = self._state_key(hp, key=key, seed=seed)
            # The latest kept state of the same graph and init: what this one may share.
            like = next((state for other, state in reversed(self._states.items())
                         if other[:-1] == state_key[:-1]), None)
            self._states[state_key] = _state_of(parts, like=like)
            while kept_bytes(self._states.values()) > STATE_MEMORY:
                self._states.popitem(last=False)
        return parts

    def _take_state(self, cached: FineTuneModel, hp, *, key: tuple, seed: int) -> bool:
        """Gives ``cached`` a kept initial state and a new optimizer; False where none is
        kept for this graph, init and seed."""
        state = self._states.get(self._state_key(hp, key=key, seed=seed))
        if state is None:
            return False
        set_seed(seed)
        # Unbuilt: its learning rate is all that differs from a kept fresh build's values.
        optimizer = default_optimizer(self.hypermodel.space, cached, hp=hp)
        config = (key, _optimizer_signature(optimizer))
        fresh = self._fresh_optimizers.get(config)
        if fresh is None:
            optimizer.build(cached.model.trainable_variables)
            fresh = self._fresh_optimizers[config] = FreshOptimizer.of(optimizer).kept()
        if not _assign(cached, values=state.values, shapes=state.shapes,
                       optimizer=fresh.at_learning_rate(optimizer)):
            return False
        random.setstate(state.python_random)
        np.random.set_state(state.numpy_random)
        return True

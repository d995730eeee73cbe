"""The repeats of a trial trained together (``--train-together``): one compiled program,
each repeat as alone.

A trial's repeats train the same graph from different initial weights in different batch
orders. On a small study each step is mostly fixed cost (a call into the compiled step,
the optimizer's loop over variables), so the repeats are trained as the members of one
Keras model with an input and an output per member. Each member is a model of its own
(its own variables), given exactly the initial state a build at its seed gives
(``CompiledModels.initial_state``), fed its own batch order (``stacked_fit_arguments``).
The loss is the sum of the members' losses, so each member's gradient is its own loss's;
the optimizer (Adam and the like) updates each variable from its own gradient at the
trial's learning rate, so a member's weights and per-epoch numbers are those of training
it alone, within float rounding. With frozen blocks the members are the rests of their
models on cached features (``bench.tuning.prefix``).

Where equality cannot be guaranteed the repeats train one at a time: a space with its
own hooks (``fit``, ``compile``, ``build_head``, ``augment``), a model with
regularization losses (the members' summed loss would not be theirs), an optimizer with
``global_clipnorm`` (one norm over all members), TensorBoard logs (one log per
execution). A trial whose loss becomes NaN or infinite in any member is run again one
repeat at a time, so its table is what training alone writes.

Off by default: on the 2-core CPU the steps are bound by their arithmetic, so one step
for all members costs what the members' steps cost alone, and tracing the larger graph
costs more (README, "Speed"). It is for devices where short steps are launch-bound.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import keras

from bench.data.datasets import Split
from bench.models.model import FineTuneModel
from bench.models.optim import optimizer_class, reads_weights
from bench.models.precision import dtype_policy
from bench.space import SearchSpace
from bench.tuning.batches import stacked_fit_arguments
from bench.tuning.evaluation import OneBatch, OneBatchValidation
from bench.tuning.reuse import CompiledModels, structure_key

#: Stacks (members and their compiled model) kept at once.
DEFAULT_SIZE = 4


@dataclass
class Stack:
    """Members of one graph and the compiled models over them."""

    members: list[FineTuneModel]
    rests: list  # each member's rest from the cut (prefix.py), or none at depth 0
    model: keras.Model  # the units as one model: inputs x{i}, outputs m{i}
    whole: keras.Model  # the whole members as one model, for the test split
    depth: int
    initial_optimizer: list


def _stacked(units: list[keras.Model], *, name: str) -> keras.Model:
    inputs, outputs = {}, {}
    with dtype_policy(units[0].dtype_policy.name):  # the members' precision
        for i, unit in enumerate(units):
            spec = unit.inputs[0]
            inputs[f"x{i}"] = keras.Input(tuple(spec.shape[1:]), dtype=spec.dtype,
                                          name=f"x{i}")
            outputs[f"m{i}"] = unit(inputs[f"x{i}"])
        return keras.Model(inputs, outputs, name=name)


def _compile(model: keras.Model, members: int, *, optimizer="rmsprop") -> None:
    # The loss metric is weighted by batch size, as Keras's "loss" of one model is; the
    # per-output losses Keras logs are plain means over batches.
    names = [f"m{i}" for i in range(members)]
    model.compile(optimizer=optimizer,
                  loss={n: "sparse_categorical_crossentropy" for n in names},
                  metrics={n: ["accuracy", keras.metrics.SparseCategoricalCrossentropy(
                      name="ce")] for n in names})


def member_logs(logs: dict, member: int) -> dict:
    """One member's ``loss``, ``accuracy`` and their ``val_`` values from a stack's logs."""
    out = {}
    for prefix in ("", "val_"):
        for name, key in (("loss", "ce"), ("accuracy", "accuracy")):
            value = logs.get(f"{prefix}m{member}_{key}")
            if value is not None:
                out[f"{prefix}{name}"] = value
    return out


class MemberRecorders(keras.callbacks.Callback):
    """Hands each member's recorder its own epoch logs."""

    def __init__(self, recorders: list):
        super().__init__()
        self.recorders = recorders

    def set_model(self, model):
        super().set_model(model)
        for recorder in self.recorders:
            recorder.set_model(model)

    def on_epoch_begin(self, epoch, logs=None):
        for recorder in self.recorders:
            recorder.on_epoch_begin(epoch)

    def on_epoch_end(self, epoch, logs=None):
        for i, recorder in enumerate(self.recorders):
            recorder.on_epoch_end(epoch, member_logs(logs or {}, i))


class ClearGradients(keras.callbacks.Callback):
    """Clears every trainable variable's gradient before each step (torch backend).

    Keras's torch step clears gradients with ``Module.zero_grad``, which reaches the
    parameters a model tracks by variable path; the members' variables share their paths
    (``stem_conv/kernel`` in each), so only one member's were cleared and the others'
    gradients added up over the steps.
    """

    def on_train_batch_begin(self, batch, logs=None):
        for variable in self.model.trainable_variables:
            variable.value.grad = None


class TrainTogether:
    """Trains the repeats of a trial as one model where that changes no number.

    Args:
        hypermodel: The ``FineTuneHyperModel``.
        models: The run's ``CompiledModels`` (initial states come from it).
        prefix: The run's ``PrefixCache``, or None.
        enabled: False trains every repeat alone.
        tensorboard: True (TensorBoard logs per execution) trains every repeat alone.
    """

    def __init__(self, hypermodel, *, models: CompiledModels, prefix=None,
                 enabled: bool = True, tensorboard: bool = False, size: int = DEFAULT_SIZE):
        self.hypermodel = hypermodel
        self.space = hypermodel.space
        self.models = models
        self.prefix = prefix
        self.size = size
        self._stacks: OrderedDict[tuple, Stack] = OrderedDict()
        self._alone: set[tuple] = set()  # graphs whose members have regularization losses
        self.trials = 0  # trials whose results came from training together
        #: Trials run again alone: a member's loss broke, or training together failed.
        self.retried = 0
        self.off_reason = None
        #: Called with each line that says why trials trained alone (the run's notes).
        self.note = lambda line: None
        if not enabled:
            self.off_reason = "not asked for (--train-together)"
        elif tensorboard:
            self.off_reason = "--tensorboard logs each execution's own fit"
        elif not models.keep_states:
            cls = type(self.space)
            hooks = [name for name in ("fit", "compile", "build_head", "augment")
                     if getattr(cls, name) is not getattr(SearchSpace, name)]
            self.off_reason = (f"space {self.space.name} has its own "
                               f"{' and '.join(hooks)}" if hooks else
                               "compiled-model reuse is off (--no-reuse)")

    def usable(self, hp, *, repeats: int) -> bool:
        if self.off_reason is not None or repeats < 2:
            return False
        name, options = self.space.optimizer(hp)
        if options.get("global_clipnorm") is not None:
            self.note("--train-together off for trials with global_clipnorm: one program "
                      "would take the norm over every repeat's gradients at once, so "
                      "their repeats train one at a time")
            return False
        if reads_weights(optimizer_class(name)):
            self.note(f"--train-together off for optimizer {name}: its state holds a copy "
                      "of the weights, so its trials' repeats train one at a time")
            return False
        return True

    def _key(self, hp, seeds: list[int]) -> tuple:
        """What one stack serves: a model structure and its number of members."""
        return structure_key(hp, self.space) + (("members", len(seeds)),)

    def prepare(self, hp, *, seeds: list[int]) -> Stack | None:
        """The stack for ``hp`` with each member at the initial state of its seed and a
        fresh optimizer at ``head_lr``; None where this trial must train alone."""
        key = self._key(hp, seeds)
        if key in self._alone:
            return None
        stack = self._stacks.get(key)
        if stack is None:
            stack = self._build(hp, seeds=seeds)
            if stack is None:
                self._alone.add(key)
                return None
            if len(self._stacks) >= self.size:
                self._stacks.popitem(last=False)
            self._stacks[key] = stack
        else:
            self._stacks.move_to_end(key)
        states = [self.models.initial_state(hp, seed=seed) for seed in seeds]
        for member, state in zip(stack.members, states):
            for variable, value in zip(member.model.variables, state.values):
                variable.assign(value)
        optimizer = stack.model.optimizer
        for variable, value in zip(optimizer.variables, stack.initial_optimizer):
            variable.assign(value)
        optimizer.learning_rate = float(self.space.value(hp, "head_lr"))
        return stack

    def give_up(self, hp, *, seeds: list[int], error: Exception, trial_id: str) -> None:
        """Trains this trial's model one repeat at a time from now on: training its
        repeats together failed (out of memory, say, where a stack needs the memory of
        all its members), which training alone may not."""
        key = self._key(hp, seeds)
        self._stacks.pop(key, None)
        self._alone.add(key)
        self.retried += 1
        said = " ".join(str(error).split())
        said = said if len(said) <= 200 else said[:200] + "..."
        self.note(f"--train-together off for trial {trial_id}'s model: its repeats could not "
                  f"train together ({type(error).__name__}: {said}); that trial and the "
                  "model's later ones train one repeat at a time")

    def _build(self, hp, *, seeds: list[int]) -> Stack | None:
        from bench.models.optim import make_optimizer

        members = [self.models.fresh(hp, seed=seed) for seed in seeds]
        for i, parts in enumerate(members):
            # A model's operation names must be unique, nested ones included.
            parts.model.name = f"member_{i}"
        if any(parts.model.losses for parts in members):
            return None
        depth = self.prefix.depth(members[0], hp) if self.prefix is not None else 0
        rests = [self.prefix.rest(m, hp=hp, k=depth) for m in members] if depth else []
        units = [rest.model for rest in rests] or [m.model for m in members]
        for i, rest in enumerate(rests):
            rest.model.name = f"member_{i}_rest"
        model = _stacked(units, name="together")
        name, options = self.space.optimizer(hp)
        optimizer = make_optimizer(
            name, learning_rate=float(self.space.value(hp, "head_lr")),
            body_variables=[v for m in members for v in m.body_variables],
            body_lr_scale=float(self.space.value(hp, "body_lr_scale")), **options)
        _compile(model, len(members), optimizer=optimizer)
        optimizer.build(model.trainable_variables)
        initial = [keras.ops.convert_to_numpy(v) for v in optimizer.variables]
        whole = model
        if depth:
            whole = _stacked([m.model for m in members], name="together_whole")
            _compile(whole, len(members))
        return Stack(members=members, rests=rests, model=model, whole=whole, depth=depth,
                     initial_optimizer=initial)

    def fit(self, stack: Stack, *, runs: list, weights_keys: list[tuple]) -> None:
        """Trains the stack on each run's data, every epoch into each run's recorder."""
        first = runs[0]
        trains = [run.train for run in runs]
        validations = [run.validation for run in runs]
        if stack.depth:
            trains, validations = [], []
            for rest, run, weights_key in zip(stack.rests, runs, weights_keys):
                train, validation = self.prefix.features(rest, run=run,
                                                         weights_key=weights_key,
                                                         k=stack.depth)
                trains.append(train.split)
                validations.append(validation.split)
        callbacks = [MemberRecorders([run.recorder for run in runs])]
        if keras.backend.backend() == "torch":
            callbacks.insert(0, ClearGradients())
        x = {f"x{i}": split.images for i, split in enumerate(validations)}
        y = {f"m{i}": split.labels for i, split in enumerate(validations)}
        validation = {}
        if len(validations[0]) <= first.evaluation_batch_size:
            callbacks.insert(0, OneBatchValidation(OneBatch(x, y)))
        else:
            validation = {"validation_data": (x, y),
                          "validation_batch_size": first.evaluation_batch_size}
        training = stacked_fit_arguments(trains, seeds=[run.seed for run in runs],
                                         batch_size=first.batch_size, epochs=first.epochs)
        stack.model.fit(epochs=first.epochs, callbacks=callbacks, verbose=0,
                        **training, **validation)

    def test_accuracies(self, stack: Stack, split: Split, *, batch_size: int) -> list[float]:
        """Each member's accuracy on ``split``, as ``evaluate`` of it alone gives it."""
        members = len(stack.members)
        x = {f"x{i}": split.images for i in range(members)}
        y = {f"m{i}": split.labels for i in range(members)}
        if len(split) <= batch_size:
            results = stack.whole.test_on_batch(x, y, return_dict=True)
        else:
            results = stack.whole.evaluate(x, y, batch_size=batch_size, verbose=0,
                                           return_dict=True)
        return [float(results[f"m{i}_accuracy"]) for i in range(members)]

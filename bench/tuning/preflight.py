"""The check before the first trial: one build, one compile and one short fit of the space.

KerasTuner would find a broken hook only inside its constructor or a trial, after the run
directory exists, and a hook that quietly ignores a setting would never be found at all.
So before the run directory is made, the suite builds the space's model once with the
default hyperparameters, on one real batch, and checks what the tables will claim:

- a hook that raises is one line naming the space file, the line and the hook;
- the head returns one output per class, and probabilities where the loss expects them
  (for a loss of the space's own, a warning says which it returns);
- the optimizer applies the recorded ``body_lr_scale`` (for each declared value);
- every declared hyperparameter is read by some code; one that is not is a warning;
- no head layer's bias feeds a BatchNormalization that normalises by the batch, which
  makes that bias train on float round-off; one that does is a warning.

Its model is compiled and traced like the first trial's would be; where compiled models
are reused, the search takes it (``CompiledModels.adopt``) instead of tracing it again.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, field

import numpy as np

from bench.errors import BenchError
from bench.space import SearchSpace, declared_in_a_hook, declared_values, frames_in, undeclared

#: Losses, by name, that take probabilities rather than logits.
PROBABILITY_LOSSES = ("sparse_categorical_crossentropy", "categorical_crossentropy")


class _ReadTracking(dict):
    """``HyperParameters.values`` that remembers which names were read."""

    def __init__(self, values):
        super().__init__(values)
        self.read: set[str] = set()

    def __getitem__(self, name):
        self.read.add(name)
        return super().__getitem__(name)

    def get(self, name, default=None):
        self.read.add(name)
        return super().get(name, default)


def tracking(hp):
    """A copy of ``hp`` whose ``values`` record every read (``hp.get``, ``hp[name]``,
    ``hp.values[name]``, ``SearchSpace.value``) in ``.values.read``."""
    import keras_tuner

    copy = keras_tuner.HyperParameters.from_config(hp.get_config())
    copy.values = _ReadTracking(copy.values)
    return copy


class _Discard:
    def append(self, row) -> None:
        pass


def _hook_error(space: SearchSpace, error: BaseException, stage: str) -> BenchError | None:
    """One line naming file, line and hook, where the error came from the space's file."""
    if isinstance(error, BenchError):
        return error
    frames = frames_in(error, space.path)
    if not frames:
        return None
    frame = frames[-1]
    text = str(error).strip().splitlines()
    reason = f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")
    return BenchError(f"search space file {space.path}, line {frame.lineno}, in "
                      f"{frame.name}() (while {stage}): {reason}; fix the hook and run again")


def _guarded(space: SearchSpace, stage: str, call):
    try:
        return call()
    except Exception as error:
        mapped = _hook_error(space, error, stage)
        if mapped is None:
            raise
        raise mapped from None


def _check_declared(space: SearchSpace, hp, tracked, *, stage: str) -> None:
    """Refuses a hyperparameter declared in a hook (``hp.Choice`` in ``build_head``):
    the oracle knows only what ``declare`` declared, and KerasTuner refuses the trial."""
    new = undeclared(hp, tracked)
    if new:
        raise declared_in_a_hook(new[0], declared=hp, who=f"search space {space.name}: a hook",
                                 when=f"while {stage}")


def _single(loss):
    """The one loss of a list or dict of one entry (a single-output model's loss may be
    given so); anything else as it is."""
    if isinstance(loss, (list, tuple)) and len(loss) == 1:
        return loss[0]
    if isinstance(loss, dict) and len(loss) == 1:
        return next(iter(loss.values()))
    return loss


def _in_keras(thing) -> bool:
    return (getattr(thing, "__module__", None) or "").startswith("keras.")


def _keras_loss(loss) -> tuple[str, bool] | None:
    """A loss Keras defines, as ``(name, from_logits)``: given by name, as a
    ``keras.losses`` object or function (or a ``functools.partial`` of one); None for
    anything else (a loss of the space's own, a subclass of a Keras loss, several)."""
    import keras

    loss = _single(loss)
    if isinstance(loss, str):
        return loss, False
    if isinstance(loss, functools.partial):
        inner = _keras_loss(loss.func)
        return None if inner is None else (
            inner[0], bool(loss.keywords.get("from_logits", inner[1])))
    if inspect.isfunction(loss):
        return (loss.__name__, False) if _in_keras(loss) else None
    fn = getattr(loss, "fn", None)
    # Keras's own class around Keras's own function: a subclass may compute anything.
    if (isinstance(loss, keras.losses.Loss) and _in_keras(type(loss)) and fn is not None
            and _in_keras(fn)):
        return fn.__name__, bool((getattr(loss, "_fn_kwargs", None) or {}).get("from_logits"))
    return None


def _own_loss(loss) -> str | None:
    """The name of a single loss that is not one Keras defines (a function of the space's
    file, a ``Loss`` class or subclass of its own), or None."""
    loss = _single(loss)
    if loss is None or isinstance(loss, (str, list, tuple, dict)) or \
            _keras_loss(loss) is not None:
        return None
    if isinstance(loss, functools.partial):
        loss = loss.func
    if inspect.isfunction(loss):
        return loss.__name__
    fn = getattr(loss, "fn", None)  # Keras's wrapper around a function of the space's
    return fn.__name__ if _in_keras(type(loss)) and inspect.isfunction(fn) else \
        type(loss).__name__


def _expects_probabilities(loss) -> bool:
    known = _keras_loss(loss)
    return known is not None and known[0] in PROBABILITY_LOSSES and not known[1]


def _class_loss(loss) -> str | None:
    """The name of a loss over one output per class (the categorical cross-entropies,
    from logits or not), or None."""
    known = _keras_loss(loss)
    return known[0] if known is not None and known[0] in PROBABILITY_LOSSES else None


def _what_it_returns(outputs: np.ndarray, *, distribution: bool) -> str:
    """The head's outputs in words, for the warning on a loss of the space's own."""
    low, high = outputs.min(), outputs.max()
    if outputs.shape[-1] == 1:
        return f"one output per image ({low:.3g} to {high:.3g})"
    if distribution:
        return "probabilities (outputs summing to 1 over classes)"
    if low >= -1e-6 and high <= 1 + 1e-6:
        return (f"outputs in [0, 1] that do not sum to 1 over classes ({low:.3g} to "
                f"{high:.3g}: not a softmax)")
    return f"logits, not probabilities (outputs {low:.3g} to {high:.3g})"


def check_probabilities(space: SearchSpace, model, images, *, num_classes: int) -> str | None:
    """Refuses a head whose outputs are not one per class for a loss over classes (or, for
    a loss of the space's own, not one per class nor one sigmoid unit for two classes), a
    model whose outputs are not finite, and a head that returns logits to a loss that
    expects probabilities.

    Returns:
        A warning when the loss is the space's own: whether it expects probabilities or
        logits cannot be checked, so the warning says which of them the head returns.
    """
    import keras

    from bench.tuning.probe import untouched

    loss = _class_loss(model.loss)
    own = _own_loss(model.loss)
    shape = tuple(model.outputs[0].shape)
    if loss is not None and shape[1:] != (num_classes,):
        # With too few outputs, JAX's loss takes the labels beyond them without an error
        # and the trial would be scored; other shapes fail deep inside Keras.
        raise BenchError(
            f"the head of space {space.name} returns outputs of shape {shape}, but its loss "
            f"{loss} needs (batch, {num_classes}): one per class for each image; end "
            "build_head with keras.layers.Dense(num_classes, activation='softmax') on "
            "pooled features")
    one_sigmoid = num_classes == 2 and shape[1:] == (1,)
    if own is not None and shape[1:] != (num_classes,) and not one_sigmoid:
        # A loss of the space's own may take any shape; "accuracy" would still be scored
        # (the argmax of the outputs there are), a number no classifier of these classes had.
        raise BenchError(
            f"the head of space {space.name} returns outputs of shape {shape}, but accuracy "
            f"is scored over one output per class: (batch, {num_classes}) (or one sigmoid "
            "output for two classes); end build_head with "
            "keras.layers.Dense(num_classes, ...) on pooled features")
    # Untouched: a layer that draws at inference would otherwise start training from
    # another random state than a build that was not checked.
    with untouched(model):
        outputs = keras.ops.convert_to_numpy(model(images, training=False)).astype("float64")
    if not np.all(np.isfinite(outputs)):
        bad = int(np.sum(~np.isfinite(outputs).all(axis=-1)))
        raise BenchError(
            f"the model of space {space.name} gives NaN or infinite outputs before any "
            f"training (for {bad} of {len(outputs)} images of a validation batch): a hook "
            "computes something undefined (a division by zero, a log of 0, a NaN constant)")
    sums = outputs.sum(axis=-1)
    # A softmax computed in bfloat16 (mixed precision) sums to 1 within a few thousandths.
    tolerance = 1e-3 if model.dtype_policy.compute_dtype == "float32" else 2e-2
    distribution = bool(outputs.min() >= -1e-6 and outputs.max() <= 1 + 1e-6
                        and np.allclose(sums, 1.0, atol=tolerance))
    if own is not None:
        return (f"space {space.name} compiles a loss of its own ({own}): the suite cannot "
                "check that it expects what the head returns, "
                f"{_what_it_returns(outputs, distribution=distribution)}; a loss that "
                "expects other outputs trains on wrong gradients")
    if not _expects_probabilities(model.loss) or distribution:
        return None
    raise BenchError(
        f"the head of space {space.name} returns logits, not probabilities (outputs "
        f"{outputs.min():.3g} to {outputs.max():.3g}, summing to {sums.min():.3g} to "
        f"{sums.max():.3g} over classes), but the loss expects probabilities; end "
        "build_head with a softmax (keras.layers.Dense(num_classes, activation='softmax'))")


class ProbabilityCheck:
    """``check_probabilities`` for every graph a search builds, once per distinct graph.

    The pre-flight check sees the first build only; a hook may give another
    configuration (another init, say) a head without its softmax, whose trials would
    otherwise complete on a loss that treats logits as probabilities."""

    def __init__(self, space: SearchSpace, images, *, num_classes: int):
        self.space, self.images, self.num_classes = space, images, num_classes
        self._checked: set[str] = set()

    def __call__(self, model) -> None:
        from bench.tuning.reuse import graph_signature

        signature = repr(graph_signature(model))
        if signature not in self._checked:
            check_probabilities(self.space, model, self.images,
                                num_classes=self.num_classes)
            self._checked.add(signature)


def _one_batch(split, size: int):
    from bench.data.datasets import Split

    return Split(images=split.images[:size], labels=split.labels[:size])


@dataclass
class Preflight:
    """What the check found, and the model it checked when asked to keep it."""

    warnings: list[str] = field(default_factory=list)
    model: object = None  # FineTuneModel: compiled for hp's defaults, fit on one batch


def _check_recorded(space: SearchSpace, rows: list[dict]) -> None:
    """Refuses a fit that recorded no epoch, or an epoch without accuracy."""
    from bench.tuning.bench_tuner import NO_EPOCH
    from bench.tuning.recording import METRICS

    if not rows:
        raise BenchError(f"search space {space.name}: {NO_EPOCH}")
    missing = [name for name in METRICS if rows[-1][name] == ""]
    if missing:
        raise BenchError(
            f"search space {space.name}: its model reports no {missing[0]} after an "
            "epoch; the tables and the tuner's objective are accuracy: compile with "
            "metrics=['accuracy'] (other metrics may follow it)")


def _unread(space: SearchSpace, hp, *, read) -> list[str]:
    """A warning for each declared hyperparameter that no code ``read`` in the first
    build, compile and fit."""
    warnings = []
    for parameter in hp.space:
        # A conditional one inactive in this first build had nothing to be read for.
        if hp.is_active(parameter) and parameter.name not in read:
            warnings.append(
                f"hyperparameter {parameter.name!r} of space {space.name} was not read by "
                "the builder or any hook in a first build, compile and fit: as written it "
                "changes nothing (read it with self.value(hp, name) or hp.get(name))")
    return warnings


def preflight(space: SearchSpace, *, hypermodel, hp, data, batch_size: int, seed: int,
              keep_model: bool = False, log=print) -> Preflight:
    """Builds, compiles and fits the space once on one batch, before any trial.

    Args:
        space: The search space.
        hypermodel: Its ``FineTuneHyperModel``.
        hp: The declared hyperparameters; their defaults are used, as in the tuner's
            first build.
        data: The ``TransferData``; one batch of its training and validation splits.
        batch_size: The run's batch size (the batch is at most this).
        seed: The global seed for this build.
        keep_model: Return the checked model (its state is whatever the fit left) and
            leave the Keras session as it is, for the search to reuse its compiled steps.
        log: Where the warnings are printed.

    Returns:
        Warnings for ``run.json`` (declared hyperparameters that no code read), and the
        model when ``keep_model``.

    Raises:
        BenchError: a hook that raised (naming file, line and hook), a head that returns
            logits, an optimizer that ignores ``body_lr_scale``.
    """
    import keras

    from bench.tuning.bench_tuner import FitRun
    from bench.tuning.recording import EpochRecorder

    kept = False
    try:
        keras.backend.clear_session()
        keras.utils.set_random_seed(seed)
        tracked = tracking(hp)
        parts = _guarded(space, "building the model",
                         lambda: hypermodel.build_parts(tracked, compile=False))
        _check_declared(space, hp, tracked, stage="building the model")
        _guarded(space, "compiling", lambda: space.compile(parts, hp=tracked))
        _check_declared(space, hp, tracked, stage="compiling")
        from bench.tuning.hypermodel import check_body_lr_scale, check_rates

        # The untracked hp: these checks reading body_lr_scale and head_lr are not the
        # space using them.
        check_rates(space, hp, parts)
        size = min(batch_size, len(data.train), len(data.validation))
        train, validation = _one_batch(data.train, size), _one_batch(data.validation, size)
        loss_warning = check_probabilities(space, parts.model, validation.images,
                                           num_classes=hypermodel.inputs.num_classes)
        recorder = EpochRecorder(_Discard(), fixed={}, parts=parts,
                                 settable=space.epoch_columns)
        run = FitRun(train=train, validation=validation, epochs=max(space.min_epochs, 1),
                     batch_size=size, recorder=recorder, study_batch_size=batch_size)
        _guarded(space, "fitting", lambda: space.fit(parts, hp=tracked, run=run))
        _check_declared(space, hp, tracked, stage="fitting")
        _check_recorded(space, recorder.rows)
        # A fit that compiles again (a second phase) must keep the scale too.
        check_body_lr_scale(space, hp, parts.model.optimizer, parts.body_variables,
                            trainable_variables=parts.model.trainable_variables,
                            stage="fit() (its last compile)")
        _check_other_rates(space, hypermodel=hypermodel, hp=hp)
        kept = keep_model
    finally:
        if not kept:
            keras.backend.clear_session()
    warnings = _unread(space, hp, read=tracked.values.read)
    warnings += [loss_warning] if loss_warning else []
    warnings += [ROUND_OFF_BIAS.format(space=space.name, layer=layer, norm=norm)
                 for layer, norm in biases_into_batchnorm(parts.head_layers)]
    for warning in warnings:
        log(f"warning: {warning}")
    return Preflight(warnings=warnings, model=parts if kept else None)


#: A bias that BatchNormalization removes again in training; the suite measured its effect.
ROUND_OFF_BIAS = (
    "space {space}: layer {layer!r} adds a bias that BatchNormalization {norm!r} subtracts "
    "again with the batch mean, so in training the bias's gradient is float round-off, "
    "which Adam-like optimizers scale up into steps; validation and test (the moving mean) "
    "follow them, so val_loss can differ by about 1e-4 (8e-5 measured) between runs that "
    "round differently (fast path on or off, another backend or machine): build {layer!r} "
    "with use_bias=False")


def biases_into_batchnorm(layers) -> list[tuple[str, str]]:
    """(layer, normalisation) name pairs among ``layers`` (and the layers of models among
    them) where a trainable layer's bias feeds a trainable BatchNormalization directly.

    In training mode BatchNormalization subtracts the batch mean of each channel, so a
    per-channel bias before it changes no output: its exact gradient is zero.
    """
    import keras

    pairs = []
    for layer in layers:
        if isinstance(layer, keras.Model):
            pairs += biases_into_batchnorm(layer.layers)
        if not (isinstance(layer, keras.layers.BatchNormalization) and layer.trainable):
            continue  # a frozen one runs in inference mode: an affine map, no batch mean
        for node in layer._inbound_nodes:  # noqa: SLF001
            pairs += [(parent.operation.name, layer.name) for parent in node.parent_nodes
                      if getattr(parent.operation, "use_bias", False)
                      and parent.operation.trainable]
    return list(dict.fromkeys(pairs))  # a normalisation called twice: one pair


def _check_other_rates(space: SearchSpace, *, hypermodel, hp) -> None:
    """Compiles once per other declared ``body_lr_scale`` and ``head_lr`` value when
    ``compile`` is the space's own (the default one always applies both)."""
    if type(space).compile is SearchSpace.compile:
        return
    for name in ("body_lr_scale", "head_lr"):
        for value in declared_values(hp, name) or []:
            if value == hp.values.get(name):
                continue  # the first build's value, checked already
            other = hp.copy()
            other.values[name] = value
            _guarded(space, f"compiling with {name} {value}",
                     lambda other=other: hypermodel.build_parts(other))

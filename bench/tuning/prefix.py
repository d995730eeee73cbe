"""The frozen-prefix cache: a frozen backbone's output computed once, not every epoch.

When a trial freezes the first k blocks, those blocks compute the same function of the
same images in every epoch: their weights do not change and their BatchNormalization
layers run in inference mode. If nothing random runs before cut point k (no
augmentation, no Dropout or noise layer in the prefix), the output at the cut is computed
once per (prefix weights, k, split) and kept; only the rest of the model (the unfrozen
blocks and the head, the same layer objects as the whole model's) trains on it. Repeats
and trials that share the prefix weights share the features: with pretrained weights,
every execution at depth k does.

The rest model is compiled once per whole model and depth; each execution restores its
optimizer to the state it had when built, so a reused one trains as a new one would.
A space with its own ``fit``, ``compile`` or ``augment`` never takes this path.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from dataclasses import dataclass, replace

import keras
import numpy as np

from bench.data.datasets import Split
from bench.models.model import FineTuneModel
from bench.models.optim import optimizer_class, reads_weights
from bench.models.precision import dtype_policy
from bench.space import SearchSpace
from bench.tuning.evaluation import OneBatch, evaluate_split
from bench.tuning.resident import OnDevice

#: Layers whose output in training depends on a random draw.
RANDOM_LAYERS = ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
                 "GaussianNoise", "GaussianDropout", "AlphaDropout")


def _default_hooks(space: SearchSpace) -> bool:
    cls = type(space)
    return all(getattr(cls, hook) is getattr(SearchSpace, hook)
               for hook in ("fit", "compile", "augment"))


def _random_layers(layers) -> list[str]:
    """The layers that draw random numbers (Keras gives each a seed generator)."""
    return [layer.name for layer in layers
            if type(layer).__name__ in RANDOM_LAYERS
            or getattr(layer, "_seed_generators", None)]


@dataclass
class _Rest:
    """The compiled rest of a model from one cut point on, and its optimizer as built."""

    model: keras.Model
    prefix: keras.Model
    initial_optimizer: list
    owner: weakref.ref  # the whole model it was cut from


class PrefixCache:
    """Features at cut points, kept within ``memory_bytes``, and the models that use them.

    Args:
        space: The search space (its hooks decide whether the cache may be used).
        memory_bytes: The most feature bytes kept at once; the least recently used are
            dropped first, and a split that alone is larger is never cached.
        evaluation_batch_size: Batch size for computing features.
    """

    def __init__(self, space: SearchSpace, *, memory_bytes: int,
                 evaluation_batch_size: int = 512, device_data: bool = False):
        self.space = space
        self.memory_bytes = memory_bytes
        self.batch_size = evaluation_batch_size
        self.device_data = device_data
        self._features: OrderedDict[tuple, _Features] = OrderedDict()
        self._rests: dict[tuple, _Rest] = {}
        self.hits = 0
        self.computed = 0
        self.used = 0
        self.off_reason = None if _default_hooks(space) else (
            f"space {space.name} has its own fit, compile or augment")
        #: Called with each line that says why executions ran whole (the run's notes).
        self.note = lambda line: None

    def depth(self, parts: FineTuneModel, hp) -> int:
        """The cut point to train from, or 0 when this execution must run whole."""
        if self.off_reason is not None:
            return 0
        k = int(self.space.value(hp, "frozen_blocks"))
        if k == 0:
            return 0
        optimizer = self.space.optimizer(hp)[0]
        if reads_weights(optimizer_class(optimizer)):
            # Its state copies the weights: the rest's kept state would not fit.
            self.note(f"frozen-prefix cache off for optimizer {optimizer}: its state holds "
                      "a copy of the weights, so its executions train the whole model")
            return 0
        layers = {layer.name: layer for layer in parts.backbone.layers}
        for first, block in enumerate(parts.blocks[:k], start=1):
            random = _random_layers([layers[name] for name in block.layer_names
                                     if name in layers])
            if random:
                self.note(f"frozen-prefix cache off at frozen_blocks {first} and more: block "
                          f"{first} holds {random[0]}, a layer that draws random numbers in "
                          "training, so the frozen blocks' output is not one fixed feature; "
                          "those executions train the whole model")
                return 0
        return k

    def fit(self, parts: FineTuneModel, *, hp, run, weights_key: tuple, k: int) -> list:
        """Trains the rest of ``parts.model`` from cut ``k`` on cached features; the whole
        model's weights are the ones that change."""
        rest = self._rest(parts, hp=hp, k=k)
        train, validation = self.features(rest, run=run, weights_key=weights_key, k=k)
        on_features = replace(run, train=train.split, validation=validation.split,
                              on_device=train.on_device,
                              one_validation=validation.one_batch)
        return [on_features.fit(rest.model, epochs=run.epochs)]

    def test(self, parts: FineTuneModel, split: Split, *, weights_key: tuple, k: int,
             batch_size: int) -> dict:
        """``parts.model``'s metrics on ``split`` after ``fit``: the rest of the model (the
        same layers, the same weights) on the split's features at cut ``k``, so the frozen
        blocks do not run again for every execution's test pass."""
        rest = self._rests[(id(parts.model), k)]
        features = self._split("test", split, weights_key=weights_key, k=k,
                               prefix=rest.prefix)
        return evaluate_split(rest.model, features.split, batch_size=batch_size,
                              one_batch=features.one_batch)

    def features(self, rest: _Rest, *, run, weights_key: tuple,
                 k: int) -> tuple[_Features, _Features]:
        """The training and validation splits of ``run`` at cut ``k``, from the cache
        where the same prefix weights computed them before."""
        self.used += 1
        return (self._split("train", run.train, weights_key=weights_key, k=k,
                            prefix=rest.prefix),
                self._split("validation", run.validation, weights_key=weights_key, k=k,
                            prefix=rest.prefix))

    def rest(self, parts: FineTuneModel, *, hp, k: int) -> _Rest:
        """A new rest of ``parts.model`` from cut ``k`` (compiled, not kept here)."""
        return self._build_rest(parts, hp=hp, k=k)

    def _rest(self, parts: FineTuneModel, *, hp, k: int) -> _Rest:
        key = (id(parts.model), k)
        rest = self._rests.get(key)
        if rest is not None and rest.owner() is not parts.model:
            # id() of a model that was freed, now another model's: not this model's rest.
            rest = None
        if rest is None:
            if len(self._rests) > 8:  # whole models come and go with reuse's eviction
                self._rests.clear()
            rest = self._build_rest(parts, hp=hp, k=k)
            self._rests[key] = rest
        else:
            for variable, value in zip(rest.model.optimizer.variables, rest.initial_optimizer):
                variable.assign(value)
        rest.model.optimizer.learning_rate = float(self.space.value(hp, "head_lr"))
        return rest

    def _build_rest(self, parts: FineTuneModel, *, hp, k: int) -> _Rest:
        # The new models wrap the model's own layers, in its precision.
        with dtype_policy(parts.model.dtype_policy.name):
            return self._assemble_rest(parts, hp=hp, k=k)

    def _assemble_rest(self, parts: FineTuneModel, *, hp, k: int) -> _Rest:
        model, backbone = parts.model, parts.backbone
        cut = backbone.get_layer(parts.blocks[k - 1].output_layer).output
        to_cut = keras.Model(backbone.inputs, cut)
        images = model.inputs[0]
        prefix = keras.Model(images, to_cut(model.get_layer("preprocess")(images)))
        features = keras.Input(tuple(cut.shape[1:]), dtype=cut.dtype, name="features")
        x = features
        if k < len(parts.blocks):
            x = keras.Model(cut, backbone.output)(x)
        # The backbone is nested: its own .output lives in its inner graph; the tensor the
        # head reads is the output of its call in the whole model (its last node).
        features_in_model = backbone._inbound_nodes[-1].output_tensors[0]  # noqa: SLF001
        head = keras.Model(features_in_model, model.output)
        rest = keras.Model(features, head(x), name=f"{model.name}_from_block_{k}")
        self.space.compile(replace(parts, model=rest), hp=hp)
        rest.optimizer.build(rest.trainable_variables)
        initial = [keras.ops.convert_to_numpy(v) for v in rest.optimizer.variables]
        return _Rest(model=rest, prefix=prefix, initial_optimizer=initial,
                     owner=weakref.ref(model))

    def _split(self, name: str, split: Split, *, weights_key: tuple, k: int,
               prefix: keras.Model) -> _Features:
        key = (weights_key, k, name, len(split))
        features = self._features.get(key)
        if features is None:
            array = np.asarray(prefix.predict(split.images, batch_size=self.batch_size,
                                              verbose=0))
            features = _Features(Split(array, split.labels), nbytes=array.nbytes)
            # One copy: on the device for training (JAX), as one evaluation batch for a
            # validation or test split that fits one; the host's is then dropped.
            if name == "train" and self.device_data:
                features.on_device = OnDevice.of(features.split, keep_host=False)
                features.split = features.on_device.source
            elif name != "train" and len(split) <= self.batch_size:
                features.one_batch = OneBatch.replacing(features.split)
                features.split = features.one_batch.split
            self.computed += 1
            if features.nbytes <= self.memory_bytes:
                self._features[key] = features
                while sum(f.nbytes for f in self._features.values()) > self.memory_bytes:
                    self._features.popitem(last=False)
        else:
            self.hits += 1
            self._features.move_to_end(key)
        return features


@dataclass
class _Features:
    """A split's features at a cut point, where they are kept: on the device (training,
    JAX), as one evaluation batch (validation and test, where they fit), or on the host."""

    split: Split
    nbytes: int
    on_device: OnDevice | None = None
    one_batch: OneBatch | None = None

"""Reusing a compiled model is invisible: every case gives the same epochs.csv both ways.

Each case runs a real study twice, with compiled-model reuse and with ``--no-reuse`` (a
new model built and compiled for every execution, as plain KerasTuner does), and the
per-epoch numbers must agree.
"""

import json
import shutil
import textwrap

import pandas as pd
import pytest
from conftest import IMAGE_SIZE

#: Every kind of state reuse must restore: a Dropout head and a random flip
#: (seed-generator states), head_lr changing between reused executions of one graph, a
#: scaled body rate, and optimizers whose slots do not all start at zero (Adagrad, Ftrl),
#: chosen per trial by the optimizer hook.
OPTIMIZERS = textwrap.dedent('''
    import keras

    from bench.space import SearchSpace, SpaceSettings

    OPTIONS = {"Adam": {}, "SGD": {"momentum": 0.9}, "Adagrad": {}, "Ftrl": {}}


    class Optimizers(SearchSpace):
        description = "dropout head, random flip, four optimizers, two head rates"
        settings = SpaceSettings(init="random", frozen_blocks=2, body_lr_scale=0.1)
        extra_hyperparameters = ("optimizer_name",)

        def declare(self, hp, *, num_blocks):
            hp.Choice("optimizer_name", list(OPTIONS))
            hp.Choice("head_lr", [0.001, 0.01])

        def optimizer(self, hp):
            name = hp.get("optimizer_name")
            return name, OPTIONS[name]

        def augment(self, images, *, hp):
            return keras.layers.RandomFlip("horizontal", name="flip")(images)

        def build_head(self, features, *, num_classes, hp):
            x = keras.layers.GlobalAveragePooling2D()(features)
            x = keras.layers.Dropout(0.5)(x)
            return keras.layers.Dense(num_classes, activation="softmax")(x)
''')

#: Two graphs (body_lr_scale) that alternate in grid order: through a cache of one, each
#: is evicted and built again. SGD with momentum comes from the settings.
EVICTION = textwrap.dedent('''
    import keras

    from bench.space import SearchSpace, SpaceSettings


    class Eviction(SearchSpace):
        description = "body_lr_scale alternating between trials, dropout head"
        settings = SpaceSettings(init="random", frozen_blocks=1, optimizer="SGD",
                                 optimizer_options=(("momentum", 0.9),))

        def declare(self, hp, *, num_blocks):
            hp.Choice("head_lr", [0.001, 0.01])
            hp.Choice("body_lr_scale", [0.1, 1.0])

        def build_head(self, features, *, num_classes, hp):
            x = keras.layers.GlobalAveragePooling2D()(features)
            x = keras.layers.Dropout(0.5)(x)
            return keras.layers.Dense(num_classes, activation="softmax")(x)
''')

#: Kept initial states with optimizers whose slots do not start at zero: the default head
#: (so states are kept), the optimizer chosen per trial, both head rates of each in turn.
STATE_OPTIMIZERS = textwrap.dedent('''
    from bench.space import SearchSpace, SpaceSettings


    class StateOptimizers(SearchSpace):
        description = "kept states under Adagrad and Ftrl, two head rates each"
        settings = SpaceSettings(init="random", frozen_blocks=1)
        extra_hyperparameters = ("optimizer_name",)

        def declare(self, hp, *, num_blocks):
            hp.Choice("optimizer_name", ["Adagrad", "Ftrl"])
            hp.Choice("head_lr", [0.001, 0.01])

        def optimizer(self, hp):
            return hp.get("optimizer_name"), {}
''')

#: A head hook that changes the graph with init and adds no variable: features halved for
#: random init only (a Dropout would add its seed's variable, which a shape check sees). Init is
#: not part of a graph's key (it sets values), so the reused model of the pretrained
#: trials must not serve the random ones.
HALVED_FOR_RANDOM = textwrap.dedent('''
    import keras

    from bench.space import SearchSpace, SpaceSettings


    class HalvedForRandom(SearchSpace):
        description = "features halved in the head for random init only"
        settings = SpaceSettings(frozen_blocks=1, head_lr=3e-3)

        def declare(self, hp, *, num_blocks):
            hp.Choice("init", ["pretrained", "random"])

        def build_head(self, features, *, num_classes, hp):
            x = keras.layers.GlobalAveragePooling2D()(features)
            if self.value(hp, "init") == "random":
                x = keras.layers.Rescaling(0.5)(x)
            return keras.layers.Dense(num_classes, activation="softmax")(x)
''')

#: The frozen depth derived from init in ``value`` (declared nowhere): the two inits build
#: other graphs, though every declared value but init is the same.
DEPTH_FROM_INIT = textwrap.dedent('''
    from bench.space import SearchSpace, SpaceSettings


    class DepthFromInit(SearchSpace):
        description = "pretrained half frozen, random unfrozen, two head rates"

        def declare(self, hp, *, num_blocks):
            hp.Choice("head_lr", [1e-3, 1e-2])
            hp.Choice("init", ["random", "pretrained"])

        def value(self, hp, name):
            if name == "frozen_blocks":
                return 2 if self.value(hp, "init") == "pretrained" else 0
            return super().value(hp, name)
''')

#: Noise from TensorFlow's own random state in the head, for random init only: the
#: pretrained trial's graph is reused, the random one's is built for every execution.
TF_NOISE_FOR_RANDOM = textwrap.dedent('''
    import keras
    import tensorflow as tf

    from bench.space import SearchSpace, SpaceSettings


    class TfNoise(keras.layers.Layer):
        def call(self, x, training=None):
            return x + tf.random.normal(tf.shape(x), stddev=0.5) if training else x


    class TfNoiseForRandom(SearchSpace):
        description = "tf.random noise on the features for random init only"
        settings = SpaceSettings(frozen_blocks=1, head_lr=1e-2)

        def declare(self, hp, *, num_blocks):
            hp.Choice("init", ["pretrained", "random"])

        def build_head(self, features, *, num_classes, hp):
            x = keras.layers.GlobalAveragePooling2D()(features)
            if self.value(hp, "init") == "random":
                x = TfNoise()(x)
            return keras.layers.Dense(num_classes, activation="softmax")(x)
''')

#: The same with keras.random and no seed: Keras's global seed generator, which a traced
#: step keeps after set_random_seed has made a new one.
KERAS_NOISE_FOR_RANDOM = (TF_NOISE_FOR_RANDOM
                          .replace("tf.random.normal(tf.shape(x), stddev=0.5)",
                                   "keras.random.normal(keras.ops.shape(x), stddev=0.5)")
                          .replace("class TfNoiseForRandom", "class KerasNoiseForRandom"))

#: Found by an audit: the head's softmax tempered by a function that closes over the
#: temperature, 1 for pretrained, 4 for random. Keras saves a function activation by its
#: name, so both inits' graphs have the same layers and configurations; the random trial
#: was trained at temperature 1 on the reused model (a gap of +0.242 against +0.010).
TEMPERED_FOR_RANDOM = textwrap.dedent('''
    import keras

    from bench.space import SearchSpace, SpaceSettings


    def softmax_at(temperature):
        def tempered_softmax(x):
            return keras.activations.softmax(x / temperature)
        return tempered_softmax


    class TemperedForRandom(SearchSpace):
        description = "a softmax at temperature 4 for random init, 1 for pretrained"
        settings = SpaceSettings(frozen_blocks=1, head_lr=1e-2)

        def declare(self, hp, *, num_blocks):
            hp.Choice("init", ["pretrained", "random"])

        def build_head(self, features, *, num_classes, hp):
            temperature = 1.0 if self.value(hp, "init") == "pretrained" else 4.0
            x = keras.layers.GlobalAveragePooling2D()(features)
            return keras.layers.Dense(num_classes, activation=softmax_at(temperature))(x)
''')

#: Found by a new user: the gradient stopped below the head's last layer for pretrained
#: only, by a function that closes over the init. The outputs are the same either way, so
#: comparing outputs alone reused pretrained's model for random, which then trained its
#: last layer only.
GATED_FOR_PRETRAINED = textwrap.dedent('''
    import keras

    from bench.space import SearchSpace, SpaceSettings


    class GatedForPretrained(SearchSpace):
        description = "the head's hidden layer trained for random init only"
        settings = SpaceSettings(frozen_blocks=1, head_lr=1e-2)

        def declare(self, hp, *, num_blocks):
            hp.Choice("init", ["pretrained", "random"])

        def build_head(self, features, *, num_classes, hp):
            stop = self.value(hp, "init") == "pretrained"

            def gate(z):
                return keras.ops.stop_gradient(z) if stop else z

            x = keras.layers.GlobalAveragePooling2D()(features)
            x = keras.layers.Dense(16, activation="tanh")(x)
            x = keras.layers.Activation(gate)(x)
            return keras.layers.Dense(num_classes, activation="softmax")(x)
''')

#: NumPy noise drawn in a layer's call: a constant of each trace, so a reused model
#: trains with the noise its own trace drew, not the one a new build's trace would.
NUMPY_NOISE = textwrap.dedent('''
    import keras
    import numpy as np

    from bench.space import SearchSpace, SpaceSettings


    class NumpyNoise(keras.layers.Layer):
        def call(self, x, training=None):
            if training:
                return x + np.random.normal(0.0, 0.5, (1, x.shape[-1])).astype("float32")
            return x


    class NumpyNoiseHead(SearchSpace):
        description = "NumPy-drawn feature noise in the head"
        settings = SpaceSettings(init="pretrained", frozen_blocks=1)

        def declare(self, hp, *, num_blocks):
            hp.Choice("head_lr", [1e-2, 1e-3])

        def build_head(self, features, *, num_classes, hp):
            x = keras.layers.GlobalAveragePooling2D()(features)
            x = NumpyNoise()(x)
            return keras.layers.Dense(num_classes, activation="softmax")(x)
''')

SHIPPED = ("seed", "frozen-depth", "head-lr", "init", "two-phase")

# case: (space, RunSpec overrides, compiled models kept,
#        expected {"compiled", "reused", "states_reused", "from_preflight"})
# Where models are reused, the search takes over the pre-flight check's model, compiled
# for the default values, which are the grid's first trial: that trial's first execution
# restores a fresh build's state into it (one more reused, one fewer compiled).
CASES = {
    # Grid order: both head rates of one optimizer, one after the other, one graph each.
    # Its head and augmentation hooks could read head_lr: every reuse builds afresh.
    "optimizers": ("optimizers", {"repeats": 1}, 4,
                   {"compiled": 3, "reused": 5, "states_reused": 0, "from_preflight": 1}),
    # A, A, B, B, A, A, B, B (repeats of 2) through a cache of one, A checked first: 3
    # builds, 5 reuses.
    "eviction": ("eviction", {"repeats": 2}, 1,
                 {"compiled": 3, "reused": 5, "states_reused": 0, "from_preflight": 1}),
    # The first two trials share a graph, an init and a seed (only head_lr changes): the
    # second takes the first's initial state instead of a build.
    "seed": ("seed", {"max_trials": 2, "repeats": 1}, 4,
             {"compiled": 0, "reused": 2, "states_reused": 1, "from_preflight": 1}),
    # Every depth, both head rates, two seeds: one build per depth 2 and 4 (their first
    # repeat), depth 0 the checked model (seeds 1 and 2 restored from builds); every other
    # execution takes a kept state, across depths too (some through the prefix cache).
    "seed-states": ("seed", {"max_trials": 6, "repeats": 2, "epochs": 2}, 4,
                    {"compiled": 2, "reused": 10, "states_reused": 8, "from_preflight": 1}),
    # Each optimizer's second head rate takes its first's kept state, with a fresh
    # optimizer's accumulators (0.1, not 0) at the new rate; Adagrad is the checked one.
    "state-optimizers": ("state-optimizers", {"repeats": 1}, 4,
                         {"compiled": 1, "reused": 3, "states_reused": 2,
                          "from_preflight": 1}),
    # The pretrained trial's repeats are restored into the checked model; the random
    # trial's first build has another graph (its Rescaling), so it is kept instead, and its
    # second repeat restored into it.
    "halved-for-random": ("halved-for-random", {"repeats": 2}, 4,
                           {"compiled": 1, "reused": 3, "states_reused": 0,
                            "from_preflight": 1}),
    # Grid order: random (depth 0, the checked model), pretrained (depth 2, a graph of its
    # own), then each init again at the second head rate, taking its first's kept state
    # into that init's own graph (not the last one built).
    "depth-from-init": ("depth-from-init", {"repeats": 1}, 4,
                        {"compiled": 1, "reused": 3, "states_reused": 2,
                         "from_preflight": 1}),
    # The pretrained trial's repeats are restored into the checked model; each random
    # execution builds its own (tf.random.normal's state would run on in a reused one),
    # and the kept pretrained model stays.
    "tf-noise-for-random": ("tf-noise-for-random", {"repeats": 2, "epochs": 2}, 4,
                            {"compiled": 2, "reused": 2, "states_reused": 0,
                             "from_preflight": 1}),
    "keras-noise-for-random": ("keras-noise-for-random", {"repeats": 2, "epochs": 2}, 4,
                               {"compiled": 2, "reused": 2, "states_reused": 0,
                                "from_preflight": 1}),
    # Pretrained's repeats are restored into the checked model (temperature 1); random's
    # first build computes other outputs with the same weights, so it trains and is kept,
    # and random's second repeat is restored into it.
    "tempered-for-random": ("tempered-for-random", {"repeats": 2}, 4,
                            {"compiled": 1, "reused": 3, "states_reused": 0,
                             "from_preflight": 1}),
    # As tempered-for-random, the builds differing in their gradients only.
    "gated-for-pretrained": ("gated-for-pretrained", {"repeats": 2, "epochs": 2}, 4,
                             {"compiled": 1, "reused": 3, "states_reused": 0,
                              "from_preflight": 1}),
    # Two builds never compute alike (each call draws other noise): nothing is reused.
    "numpy-noise": ("numpy-noise", {"max_trials": 1, "repeats": 2, "epochs": 2}, 4,
                    {"compiled": 2, "reused": 0, "states_reused": 0, "from_preflight": 1}),
    "init": ("init", {"repeats": 1}, 4,
             {"compiled": 0, "reused": 2, "states_reused": 0, "from_preflight": 1}),
    # One trial, both repeats restored into the checked model.
    "frozen-depth": ("frozen-depth", {"max_trials": 1, "repeats": 2}, 4,
                     {"compiled": 0, "reused": 2, "states_reused": 0, "from_preflight": 1}),
    "head-lr": ("head-lr", {"max_trials": 1, "repeats": 2}, 4,
                {"compiled": 0, "reused": 2, "states_reused": 0, "from_preflight": 1}),
    # Its fit recompiles: never reused (the checked model is not kept), and the run says so.
    "two-phase": ("two-phase", {"max_trials": 1, "repeats": 1, "epochs": 2}, 4,
                  {"compiled": 1, "reused": 0, "states_reused": 0, "from_preflight": 0}),
}


@pytest.fixture(scope="module")
def spaces_dir(tmp_path_factory):
    from bench.space import DEFAULT_SPACES_DIR

    folder = tmp_path_factory.mktemp("reuse-spaces")
    for name in SHIPPED:
        shutil.copy(DEFAULT_SPACES_DIR / f"{name}.py", folder / f"{name}.py")
    (folder / "optimizers.py").write_text(OPTIMIZERS)
    (folder / "eviction.py").write_text(EVICTION)
    (folder / "state-optimizers.py").write_text(STATE_OPTIMIZERS)
    (folder / "halved-for-random.py").write_text(HALVED_FOR_RANDOM)
    (folder / "depth-from-init.py").write_text(DEPTH_FROM_INIT)
    (folder / "tf-noise-for-random.py").write_text(TF_NOISE_FOR_RANDOM)
    (folder / "keras-noise-for-random.py").write_text(KERAS_NOISE_FOR_RANDOM)
    (folder / "tempered-for-random.py").write_text(TEMPERED_FOR_RANDOM)
    (folder / "numpy-noise.py").write_text(NUMPY_NOISE)
    (folder / "gated-for-pretrained.py").write_text(GATED_FOR_PRETRAINED)
    return folder


def _run(space, *, spaces_dir, results, cache_dir, reuse, overrides):
    from bench.plan import RunSpec
    from bench.runner import run_study

    lines = []
    spec = RunSpec(**{"space": space, "spaces_dir": spaces_dir, "image_size": IMAGE_SIZE,
                      "epochs": 1, "train_per_class": 4, "pretrain_epochs": 1,
                      "results_dir": results, "name": "reuse" if reuse else "fresh",
                      "cache_dir": cache_dir, "reuse_models": reuse, **overrides})
    path = run_study(spec, log=lines.append)
    rows = pd.read_csv(path / "epochs.csv").drop(columns=["run_id", "epoch_seconds"])
    record = json.loads((path / "run.json").read_text())
    return rows, record, lines + record["notes"]


@pytest.mark.parametrize("case", list(CASES))
def test_reuse_gives_the_curves_of_fresh_models(case, spaces_dir, tmp_path, cache_dir,
                                                monkeypatch):
    import bench.tuning.reuse

    space, overrides, size, expected = CASES[case]
    monkeypatch.setattr(bench.tuning.reuse, "DEFAULT_SIZE", size)
    kwargs = {"spaces_dir": spaces_dir, "results": tmp_path, "cache_dir": cache_dir,
              "overrides": overrides}
    reused, reused_record, lines = _run(space, reuse=True, **kwargs)
    fresh, fresh_record, _ = _run(space, reuse=False, **kwargs)
    reused_models, fresh_models = reused_record["models"], fresh_record["models"]
    executions = expected["compiled"] + expected["reused"]
    assert len(fresh) == executions * overrides.get("epochs", 1)
    assert fresh_models == {"compiled": executions, "reused": 0, "states_reused": 0,
                            "from_preflight": 0}
    assert reused_models == expected
    if not expected["reused"] and not expected["from_preflight"]:
        # In run.json too, as README says of a fast path that was off (it was only printed).
        assert any(note.startswith(f"compiled-model reuse off: space {space} overrides fit")
                   for note in reused_record["notes"])
    random_state = [line for line in lines if "random state that is not the model's" in line]
    drawn = {"tf-noise-for-random": "RandomStandardNormal in layer tf_noise",
             "keras-noise-for-random": "keras.random without a seed (Keras's global "
                                       "SeedGenerator)"}
    assert random_state == ([] if case not in drawn else [
        f"compiled-model reuse off for a graph of space {case}: it draws from random state "
        f"that is not the model's ({drawn[case]}), which a reused model would carry from "
        "one execution into the next, so each of its executions builds a new model "
        "(keras.random with a SeedGenerator, or Keras's random layers, can be reused)"])
    computed_otherwise = [line for line in lines if "computed other outputs" in line]
    assert len(computed_otherwise) == (
        1 if case in ("tempered-for-random", "numpy-noise", "gated-for-pretrained")
        else 0), computed_otherwise
    pd.testing.assert_frame_equal(reused, fresh, check_exact=False, rtol=0, atol=1e-6)


def test_graph_signatures_agree_across_builds_of_an_applications_backbone():
    # keras.applications names its input automatically ("input_layer", "input_layer_1"):
    # two builds of one graph must still agree, or no model would ever be reused.
    import keras
    import numpy as np

    from bench.models.backbones import backbone_spec
    from bench.models.model import assemble, default_head
    from bench.tuning.reuse import graph_signature

    spec = backbone_spec("mobilenetv2")
    first, second = (assemble(spec, image_size=32, num_classes=3, init="random").model
                     for _ in range(2))
    assert graph_signature(first) == graph_signature(second)

    class Shift(keras.layers.Layer):  # no get_config: Keras cannot serialise its array
        def __init__(self, offset, **kwargs):
            super().__init__(**kwargs)
            self.offset = offset

        def call(self, x):
            return x + self.offset

    def shifted(features, *, num_classes):
        return default_head(Shift(np.zeros(1, "float32"))(features), num_classes=num_classes)

    custom = [assemble(spec, image_size=32, num_classes=3, init="random", head=shifted).model
              for _ in range(2)]
    assert graph_signature(custom[0]) != graph_signature(custom[1])  # built afresh, no error

    # Keras ops are not layers: a head that scales or normalises with them is another
    # graph, another constant too; two builds of one such head agree.
    def scaled(factor, normalise=False):
        def head(features, *, num_classes):
            pooled = keras.layers.GlobalAveragePooling2D()(features)
            pooled = keras.ops.normalize(pooled) if normalise else pooled
            return keras.layers.Dense(num_classes, activation="softmax")(pooled * factor)
        return head

    def signature(head):
        return graph_signature(assemble(spec, image_size=32, num_classes=3, init="random",
                                        head=head).model)

    half = signature(scaled(0.5))
    assert half == signature(scaled(0.5))
    assert half != signature(scaled(0.25)) and half != signature(scaled(0.5, normalise=True))
    # A layer called again in another graph (as the prefix cache's rest model does) leaves
    # this graph's signature as it was.
    model = assemble(spec, image_size=32, num_classes=3, init="random", head=scaled(0.5)).model
    before = graph_signature(model)
    again = keras.Input(model.layers[-1].input.shape[1:])
    keras.Model(again, model.layers[-1](again))
    assert graph_signature(model) == before == half


def test_stateful_random_ops_are_tensorflows_own_not_keras_random_layers():
    import keras
    import tensorflow as tf

    from bench.models.backbones import backbone_spec
    from bench.models.model import assemble
    from bench.tuning.random_ops import stateful_random_ops

    class Drawn(keras.layers.Layer):
        def __init__(self, draw, **kwargs):
            super().__init__(**kwargs)
            self.draw = draw

        def call(self, x, training=None):
            return x + self.draw(tf.shape(x))

    def ops(*layers):
        def head(features, *, num_classes):
            x = features
            for layer in layers:
                x = layer(x)
            x = keras.layers.GlobalAveragePooling2D()(x)
            return keras.layers.Dense(num_classes, activation="softmax")(x)
        model = assemble(backbone_spec("resnet-mini"), image_size=IMAGE_SIZE, num_classes=3,
                         init="random", head=head).model
        return stateful_random_ops(model)

    # Keras's random layers are stateless ops seeded from a variable of the model.
    assert ops(keras.layers.RandomFlip(), keras.layers.RandomRotation(0.1),
               keras.layers.RandomZoom(0.1), keras.layers.RandomContrast(0.1),
               keras.layers.SpatialDropout2D(0.1), keras.layers.GaussianNoise(0.1),
               keras.layers.Dropout(0.5)) == []
    assert ops(Drawn(tf.random.normal, name="normal")) == [
        "RandomStandardNormal in layer normal"]
    assert ops(Drawn(lambda shape: tf.random.uniform(shape, seed=3), name="uniform")) == [
        "RandomUniform in layer uniform"]
    generator = tf.random.Generator.from_seed(1)
    assert ops(Drawn(generator.normal, name="generator")) == [
        "RngReadAndSkip in layer generator"]
    # keras.random: without a seed it draws from Keras's global seed generator; with a
    # SeedGenerator of the layer's own it is the model's state.
    assert ops(Drawn(lambda shape: keras.random.normal(shape), name="unseeded")) == [
        "keras.random without a seed (Keras's global SeedGenerator)"]

    class Seeded(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.seed_generator = keras.random.SeedGenerator(1)

        def call(self, x, training=None):
            return x + keras.random.normal(keras.ops.shape(x), seed=self.seed_generator)

    assert ops(Seeded()) == []


def _state_bytes() -> int:
    """The bytes of one initial state of the seed space's model (resnet-mini, digits' 5
    target classes): every variable, float32."""
    import numpy as np

    from bench.models.backbones import backbone_spec
    from bench.models.model import assemble

    model = assemble(backbone_spec("resnet-mini"), image_size=IMAGE_SIZE, num_classes=5,
                     init="random").model
    return sum(int(np.prod(v.shape)) * 4 for v in model.variables)


@pytest.mark.parametrize("shared", [True, False])
def test_pretrained_states_share_their_backbone_and_all_fit_where_copies_would_not(
        shared, spaces_dir, tmp_path, cache_dir, monkeypatch):
    """Kept states of a pretrained init at 3 seeds differ only in the head: kept once, the
    backbone lets all three fit in 1.5 states' memory, and the second trial takes all
    three (with copies, the least recently used one is always the next one needed, and it
    takes none). The curves are a fresh model's either way."""
    import bench.tuning.reuse

    monkeypatch.setattr(bench.tuning.reuse, "STATE_MEMORY", int(1.5 * _state_bytes()))
    if not shared:
        monkeypatch.setattr(bench.tuning.reuse, "_same_bytes", lambda a, b: False)
    kwargs = {"spaces_dir": spaces_dir, "results": tmp_path, "cache_dir": cache_dir,
              "overrides": {"max_trials": 2, "repeats": 3}}
    reused, record, _ = _run("seed", reuse=True, **kwargs)
    fresh, _, _ = _run("seed", reuse=False, **kwargs)
    # Trial 1's three seeds restored into the checked model (their builds' states kept);
    # trial 2 (the other head rate) takes the kept states instead of building again.
    assert record["models"] == {"compiled": 0, "reused": 6,
                                "states_reused": 3 if shared else 0, "from_preflight": 1}
    pd.testing.assert_frame_equal(reused, fresh, check_exact=False, rtol=0, atol=1e-6)


def test_a_kept_state_holds_another_states_array_only_where_the_bytes_are_equal():
    import numpy as np

    from bench.tuning.reuse import _same_bytes

    zeros = np.zeros(3, np.float32)
    assert _same_bytes(zeros, np.zeros(3, np.float32))
    assert not _same_bytes(zeros, -zeros)  # equal as numbers, not as bits
    assert not _same_bytes(zeros, np.zeros(3, np.float64))
    assert not _same_bytes(zeros, np.zeros((3, 1), np.float32))
    nan = np.full(2, np.nan, np.float32)
    assert _same_bytes(nan, nan.copy())

"""Every fast path changes no number: the same study with and without it, compared."""

import json

import numpy as np
import pandas as pd
import pytest
from conftest import IMAGE_SIZE

from bench.plan import RunSpec
from bench.results import RunDir, read_epochs, read_trials
from bench.runner import run_study

METRICS = ["loss", "accuracy", "val_loss", "val_accuracy"]


@pytest.mark.parametrize("prefix_cache", [True, False])
def test_evaluation_batch_size_changes_no_number(tmp_path, tiny_spaces_dir, cache_dir,
                                                 prefix_cache):
    # Without the prefix cache the whole model (the backbone's convolutions and
    # BatchNormalization in inference) validates and tests at each size (an audit: only
    # the rest on cached features was compared).
    runs = {}
    for size in (32, 512):
        spec = RunSpec(space="tiny", spaces_dir=tiny_spaces_dir, image_size=IMAGE_SIZE,
                       pretrain_epochs=3, results_dir=tmp_path, name=f"eval{size}",
                       cache_dir=cache_dir, evaluation_batch_size=size,
                       prefix_cache=prefix_cache)
        runs[size] = RunDir(run_study(spec, log=lambda *_: None))
        cached = json.loads(runs[size].run_json.read_text()).get("prefix_cache", {})
        cached = cached.get("executions", 0)
        assert cached == (4 if prefix_cache else 0)
    small, large = (read_epochs(runs[s]) for s in (32, 512))
    assert len(small) == len(large) == 2 * 2 * 2
    np.testing.assert_allclose(large[METRICS], small[METRICS], rtol=0, atol=1e-5)
    if not prefix_cache:
        # Training does not see the evaluation batch at all: bit-identical. (The prefix
        # cache computes its features at the evaluation batch size, which training reads.)
        pd.testing.assert_frame_equal(large[["loss", "accuracy"]], small[["loss", "accuracy"]],
                                      check_exact=True)
    np.testing.assert_allclose(read_trials(runs[512])["test_accuracy"],
                               read_trials(runs[32])["test_accuracy"], rtol=0, atol=1e-6)


#: Found by an audit: Monte-Carlo dropout, random at inference too. Each validation batch
#: is a draw from the dropout's seed generator, so batches of 512 left training's next
#: epoch another random state than batches of 32 (a final val_accuracy 0.227 against 0.277).
MC_DROPOUT = '''
import keras

from bench.space import SearchSpace, SpaceSettings


class AlwaysDropout(keras.layers.Dropout):
    def call(self, inputs, training=None):
        return super().call(inputs, training=True)


class McDropout(SearchSpace):
    description = "Monte-Carlo dropout head"
    settings = SpaceSettings(epochs=2, repeats=1, init="pretrained", frozen_blocks=0,
                             head_lr=1e-2)

    def declare(self, hp, *, num_blocks):
        hp.Choice("frozen_blocks", [0, 2])

    def build_head(self, features, *, num_classes, hp):
        x = keras.layers.GlobalAveragePooling2D()(features)
        x = AlwaysDropout(0.5)(x)
        return keras.layers.Dense(num_classes, activation="softmax")(x)
'''


#: Found by a new user: a head layer that subtracts the batch mean, without state or
#: randomness; validation in batches of 512 gave other numbers than in batches of 32 (a
#: val_accuracy 0.552 against 0.588) without a word.
BATCH_CENTERED = MC_DROPOUT.replace('''class AlwaysDropout(keras.layers.Dropout):
    def call(self, inputs, training=None):
        return super().call(inputs, training=True)''', '''class Centered(keras.layers.Layer):
    def call(self, inputs):
        return inputs - keras.ops.mean(inputs, axis=0, keepdims=True)''').replace(
    "AlwaysDropout(0.5)(x)", "Centered()(x)")


@pytest.mark.parametrize("source", [MC_DROPOUT, BATCH_CENTERED], ids=["mc", "centered"])
def test_a_model_that_changes_at_inference_is_evaluated_at_the_training_batch_size(
        tmp_path, cache_dir, source):
    assert source is MC_DROPOUT or "AlwaysDropout" not in source  # the replace took
    spaces = tmp_path / "spaces"
    spaces.mkdir()
    (spaces / "mc.py").write_text(source)
    runs, lines = {}, []
    for size in (32, 512):
        spec = RunSpec(space="mc", spaces_dir=spaces, image_size=IMAGE_SIZE,
                       pretrain_epochs=3, results_dir=tmp_path, name=f"eval{size}",
                       cache_dir=cache_dir, evaluation_batch_size=size)
        runs[size] = RunDir(run_study(spec, log=lines.append))
    small, large = (read_epochs(runs[s]) for s in (32, 512))
    assert len(small) == len(large) == 2 * 2 and len(small) > 0
    # Validation and test are many batches of 32 and one of 512: the batch size matters.
    dataset = json.loads(runs[512].run_json.read_text())["dataset"]
    assert dataset["validation"] == 397 and dataset["test"] == 399
    assert json_notes(runs[32]) == []
    pd.testing.assert_frame_equal(large[METRICS], small[METRICS])
    pd.testing.assert_frame_equal(read_trials(runs[512])[["test_accuracy"]],
                                  read_trials(runs[32])[["test_accuracy"]])
    layer = "'always_dropout' (AlwaysDropout)" if source is MC_DROPOUT \
        else "'centered' (Centered)"
    assert json_notes(runs[512]) == [
        "validation and test at the training batch size (32), not --evaluation-batch-size "
        "512, for executions of space mc whose model changes at inference (a call moves "
        "its random or other state, two calls on the same images differ, or an image's "
        "output depends on the others in its batch): each evaluation batch is a call, so "
        "the batch size would change their numbers"]
    # The layer is named, at either evaluation batch size (found by a new user: a
    # tf.image flip in an augment hook changed the validation and test images, unnamed).
    for size in (32, 512):
        changing = [note for note in json.loads(runs[size].run_json.read_text())["notes"]
                    if "changes at inference from layer" in note]
        assert changing == [
            f"space mc: its model changes at inference from layer {layer} on, so the "
            "validation and test accuracy of trials built with it score what that layer "
            "does outside training (an augmentation there augments the validation and test "
            "images too; Keras's random layers act in training only)"]


def json_notes(run: RunDir) -> list[str]:
    return [note for note in json.loads(run.run_json.read_text())["notes"]
            if "evaluation" in note]


EVERY_DEPTH = '''
import keras

from bench.space import SearchSpace, SpaceSettings


class EveryDepth(SearchSpace):
    description = "every cut point, both inits, a Dropout head"
    version = 1
    settings = SpaceSettings(epochs=2, repeats=2, head_lr=3e-3)

    def declare(self, hp, *, num_blocks):
        hp.Choice("init", ["pretrained", "random"])
        hp.Int("frozen_blocks", 0, num_blocks)

    def build_head(self, features, *, num_classes, hp):
        pooled = keras.layers.GlobalAveragePooling2D()(features)
        dropped = keras.layers.Dropout(0.3)(pooled)
        return keras.layers.Dense(num_classes, activation="softmax")(dropped)
'''


def _run_on_and_off(tmp_path, cache_dir, *, space, source, switched, pretrain_epochs=3,
                    log=lambda *_: None, **fixed):
    """The space run twice on the same data and seeds, the RunSpec fields in ``switched``
    all True, then all False; the two run directories by True and False."""
    spaces = tmp_path / "spaces"
    spaces.mkdir(exist_ok=True)
    (spaces / f"{space}.py").write_text(source)
    runs = {}
    for on in (True, False):
        spec = RunSpec(space=space, spaces_dir=spaces, image_size=IMAGE_SIZE,
                       pretrain_epochs=pretrain_epochs, results_dir=tmp_path,
                       name=f"{space}-{on}", cache_dir=cache_dir, train_per_class=10,
                       **dict.fromkeys(switched, on), **fixed)
        runs[on] = RunDir(run_study(spec, log=log))
    return runs


def test_the_frozen_prefix_cache_changes_no_number_at_any_depth(tmp_path, cache_dir):
    lines = []
    runs = _run_on_and_off(tmp_path, cache_dir, space="every", source=EVERY_DEPTH,
                           switched=("prefix_cache",), log=lines.append, together=True)
    # Asked to train repeats together, but with its own head they train one at a time
    # (together could not guarantee equality for what a head hook might read), and the
    # run says so.
    assert "note: repeats trained one at a time: space every has its own build_head" in lines
    on, off = read_epochs(runs[True]), read_epochs(runs[False])
    assert sorted(on["frozen_blocks"].unique()) == [0, 1, 2, 3, 4]
    assert len(on) == len(off) == 2 * 5 * 2 * 2
    np.testing.assert_allclose(on[METRICS], off[METRICS], rtol=0, atol=1e-5)
    np.testing.assert_allclose(read_trials(runs[True])["test_accuracy"],
                               read_trials(runs[False])["test_accuracy"], rtol=0, atol=1e-5)
    import json

    assert json.loads(runs[True].run_json.read_text())["together"]["trials"] == 0
    # The report says it too, not only the console.
    assert ("- Note: repeats trained one at a time: space every has its own build_head"
            in (runs[True].path / "report.md").read_text())
    used = json.loads(runs[True].run_json.read_text())["prefix_cache"]
    # Every execution with frozen blocks (4 depths x 2 inits x 2 repeats) used the cache;
    # pretrained features are shared by both repeats, random ones are not, and each is
    # computed for the three splits (the test split's for the test pass).
    assert used["executions"] == 16
    assert used["features_computed"] == 3 * (4 + 4 * 2)


BATCHNORM_HEAD = '''
import keras

from bench.space import SearchSpace, SpaceSettings


class BatchNormHead(SearchSpace):
    description = "a hidden layer, BatchNormalization and Dropout in the head"
    version = 1
    settings = SpaceSettings(epochs=2, repeats=2, head_lr=1e-2)

    def declare(self, hp, *, num_blocks):
        hp.Choice("init", ["pretrained", "random"])
        hp.Choice("frozen_blocks", [2, 4])

    def build_head(self, features, *, num_classes, hp):
        x = keras.layers.GlobalAveragePooling2D()(features)
        # No bias: BatchNormalization takes it away again (the run warns where one is).
        x = keras.layers.Dense(16, use_bias=False)(x)
        x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
        x = keras.layers.Dropout(0.5)(x)
        return keras.layers.Dense(num_classes, activation="softmax")(x)
'''


@pytest.mark.slow
def test_the_prefix_cache_changes_no_number_on_jax_with_batchnormalization_in_the_head(
        tmp_path):
    """JAX compiles the rest of the model and the whole model as different programs: a
    head whose BatchNormalization statistics and Dropout draws follow the features still
    trains and validates to the same numbers. (With a bias on the hidden Dense, which
    the normalisation takes away again, val_loss moved by 8.5e-5 here: its gradient is
    round-off that Adam scales up, and the run warns about it.)"""
    import os

    from test_cli import run_bench

    pytest.importorskip("jax")
    spaces = tmp_path / "spaces"
    spaces.mkdir()
    (spaces / "bnhead.py").write_text(BATCHNORM_HEAD)
    env = dict(os.environ, KERAS_BACKEND="jax", FINETUNE_BENCH_CACHE=str(tmp_path / "cache"))
    runs = {}
    for name, extra in (("on", []), ("off", ["--no-prefix-cache"])):
        result = run_bench("run", "--space", "bnhead", "--spaces-dir", str(spaces),
                           "--image-size", str(IMAGE_SIZE), "--pretrain-epochs", "2",
                           "--train-per-class", "10", "--results-dir", str(tmp_path),
                           "--name", name, *extra, env=env)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        runs[name] = RunDir(tmp_path / name)
    record = json.loads(runs["on"].run_json.read_text())
    assert record["backend"] == "jax" and record["warnings"] == []
    assert record["prefix_cache"]["executions"] == 8  # depths 2 and 4 x 2 inits x 2 repeats
    on, off = read_epochs(runs["on"]), read_epochs(runs["off"])
    assert len(on) == len(off) == 2 * 2 * 2 * 2
    np.testing.assert_allclose(on[METRICS], off[METRICS], rtol=0, atol=1e-5)
    np.testing.assert_allclose(read_trials(runs["on"])["test_accuracy"],
                               read_trials(runs["off"])["test_accuracy"], rtol=0, atol=1e-5)


def test_the_prefix_cache_stays_off_where_a_hook_or_randomness_could_differ():
    from bench.space import SearchSpace
    from bench.tuning.prefix import PrefixCache

    class Augmented(SearchSpace):
        name = "augmented"

        def augment(self, images, *, hp):
            return images

    assert "own fit, compile or augment" in PrefixCache(Augmented(), memory_bytes=1).off_reason


def test_random_layers_in_a_prefix_are_found():
    import keras

    from bench.tuning.prefix import _random_layers

    layers = [keras.layers.Dropout(0.1, name="drop"), keras.layers.Dense(2, name="dense"),
              keras.layers.RandomFlip(name="flip"), keras.layers.GaussianNoise(0.1, name="noise"),
              keras.layers.BatchNormalization(name="bn")]
    assert _random_layers(layers) == ["drop", "flip", "noise"]


def test_one_batch_evaluation_equals_evaluate():
    import keras

    from bench.data.datasets import Split
    from bench.tuning.evaluation import OneBatch, evaluate_split

    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(3)
    split = Split(images=rng.integers(0, 256, (37, 8, 8, 3), dtype=np.uint8),
                  labels=rng.integers(0, 4, 37))
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Rescaling(1 / 255),
                              keras.layers.Flatten(), keras.layers.Dense(4, "softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(split.images, split.labels, epochs=1, batch_size=8, verbose=0)
    expected = model.evaluate(split.images, split.labels, batch_size=64, verbose=0,
                              return_dict=True)
    one = evaluate_split(model, split, batch_size=64, one_batch=OneBatch.of(split))
    assert one == expected  # the same compiled step on the same single batch
    # accuracy by hand, from the model's predictions
    by_hand = np.mean(np.argmax(model.predict(split.images, verbose=0), axis=1) == split.labels)
    assert abs(one["accuracy"] - by_hand) < 1e-6
    # A split larger than one batch goes through evaluate, in batches
    batched = evaluate_split(model, split, batch_size=8, one_batch=OneBatch.of(split))
    assert batched.keys() == expected.keys()
    for name in expected:
        np.testing.assert_allclose(batched[name], expected[name], rtol=1e-5)


def _tiny_splits():
    from bench.data.datasets import Split

    rng = np.random.default_rng(5)
    train = Split(images=rng.integers(0, 256, (37, 8, 8, 3), dtype=np.uint8),
                  labels=rng.integers(0, 4, 37))  # batches of 8: 8, 8, 8, 8 and 5
    validation = Split(images=rng.integers(0, 256, (20, 8, 8, 3), dtype=np.uint8),
                       labels=rng.integers(0, 4, 20))
    return train, validation


def _tiny_model():
    import keras

    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Rescaling(1 / 255),
                              keras.layers.Flatten(), keras.layers.Dense(4, "softmax")])
    model.compile(optimizer=keras.optimizers.Adam(0.01),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _fit_run(model, *, seed, epochs, train, validation, table=None):
    from bench.models.model import FineTuneModel
    from bench.tuning.bench_tuner import FitRun
    from bench.tuning.recording import EpochRecorder

    parts = FineTuneModel(model=model, backbone=None, blocks=[], head_layers=[])
    recorder = EpochRecorder(table or _Discard(), fixed={}, parts=parts)
    return FitRun(train=train, validation=validation, epochs=epochs, batch_size=8,
                  recorder=recorder, seed=seed)


def _plain_fit_per_epoch(model, train, rows_of_epoch, epochs):
    """Keras's plain array path, one fit per epoch on the given rows, unshuffled."""
    losses = []
    for epoch in range(epochs):
        rows = rows_of_epoch(epoch)
        history = model.fit(train.images[rows], train.labels[rows], batch_size=8,
                            epochs=epoch + 1, initial_epoch=epoch, shuffle=False, verbose=0)
        losses.append(history.history["loss"][0])
    return losses


def test_training_batches_come_in_the_seeds_order_in_one_pipeline(tmp_path):
    """FitRun's input (one pipeline over all epochs on TensorFlow, Keras's shuffle seeded
    each epoch on JAX) trains exactly as Keras's plain array path fed, one fit per epoch,
    the rows in the order drawn by hand from the seed and the epoch."""
    from bench.tuning.recording import CsvAppender

    train, validation = _tiny_splits()
    seed, epochs = 11, 4
    suite = _tiny_model()
    table = CsvAppender(tmp_path / "epochs.csv", ["epoch", "frozen_layers",
                                                  "trainable_params", *METRICS,
                                                  "epoch_seconds"])
    run = _fit_run(suite, seed=seed, epochs=epochs, train=train,
                   validation=validation, table=table)
    run.fit(suite, epochs=2)
    run.fit(suite, epochs=epochs, initial_epoch=2)  # a second phase counts on
    table.close()

    def by_hand(epoch):
        np.random.seed((seed * 100_003 + epoch) % 2**32)
        return np.random.permutation(len(train))

    plain = _tiny_model()
    losses = _plain_fit_per_epoch(plain, train, by_hand, epochs)
    rows = run.recorder.rows
    assert [row["epoch"] for row in rows] == [1, 2, 3, 4]
    np.testing.assert_allclose([row["loss"] for row in rows], losses, rtol=0, atol=1e-6)
    for mine, theirs in zip(suite.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-6)
    # And the order is the seed's: another seed trains to other weights.
    other = _tiny_model()
    _fit_run(other, seed=seed + 1, epochs=epochs, train=train,
             validation=validation).fit(other, epochs=epochs)
    assert not np.allclose(other.get_weights()[0], suite.get_weights()[0], atol=1e-4)


def test_short_epochs_run_through_the_seeds_passes_whatever_the_random_state(tmp_path):
    """``steps_per_epoch``: epoch e trains on the e-th stretch of 3 batches of the rows
    laid end to end, pass p in the seed's order of epoch p (hand-drawn here), whatever
    NumPy's and the backend's random state; a second phase starts its passes anew."""
    import keras

    train, validation = _tiny_splits()  # 37 rows; 3 batches of 8 = 24 rows an epoch
    seed, steps = 11, 3
    suite = _tiny_model()
    run = _fit_run(suite, seed=seed, epochs=4, train=train, validation=validation)
    np.random.seed(123)
    keras.random.uniform((3,))  # random state a fresh and a reused model do not share
    run.fit(suite, epochs=2, steps_per_epoch=steps)
    np.random.seed(456)
    run.fit(suite, epochs=4, initial_epoch=2, steps_per_epoch=steps)

    def stream(first_epoch):  # two passes cover the 48 rows of a two-epoch phase
        return np.concatenate([
            np.random.RandomState((seed * 100_003 + epoch) % 2**32).permutation(37)
            for epoch in (first_epoch, first_epoch + 1)])

    def by_hand(epoch):
        phase_start = 0 if epoch < 2 else 2
        offset = (epoch - phase_start) * steps * 8
        return stream(phase_start)[offset:offset + steps * 8]

    losses = _plain_fit_per_epoch(_tiny_model(), train, by_hand, 4)
    np.testing.assert_allclose([row["loss"] for row in run.recorder.rows], losses,
                               rtol=0, atol=1e-6)


class _Discard:
    def append(self, row) -> None:
        pass


EVERY_DEPTH_DEFAULT_HEAD = '''
from bench.space import SearchSpace, SpaceSettings


class Stacked(SearchSpace):
    description = "every cut point, both inits, two head rates, the default head"
    version = 1
    # Two members and two epochs: the smallest stack whose batch orders cross epochs.
    settings = SpaceSettings(epochs=2, repeats=2)

    def declare(self, hp, *, num_blocks):
        hp.Choice("init", ["pretrained", "random"])
        hp.Int("frozen_blocks", 0, num_blocks, step=2)
        hp.Choice("head_lr", [3e-3, 1e-2])
'''


def test_repeats_trained_together_change_no_number(tmp_path, cache_dir):
    """Each repeat trained as a member of one model (bench.tuning.together) gives the
    numbers training it alone gives: every depth (whole model and prefix-cache rests),
    both inits, two learning rates on one compiled stack."""
    import json

    runs = _run_on_and_off(tmp_path, cache_dir, space="stacked",
                           source=EVERY_DEPTH_DEFAULT_HEAD, switched=("together",))
    on, off = read_epochs(runs[True]), read_epochs(runs[False])
    assert sorted(on["frozen_blocks"].unique()) == [0, 2, 4]
    assert len(on) == len(off) == 2 * 3 * 2 * 2 * 2
    key = ["trial_id", "repeat", "epoch", "seed", "frozen_layers", "trainable_params"]
    pd.testing.assert_frame_equal(on[key], off[key])
    np.testing.assert_allclose(on[METRICS], off[METRICS], rtol=0, atol=1e-5)
    np.testing.assert_allclose(read_trials(runs[True])["test_accuracy"],
                               read_trials(runs[False])["test_accuracy"], rtol=0, atol=1e-5)
    record = json.loads(runs[True].run_json.read_text())
    assert record["together"] == {"trials": 12, "retried_alone": 0}
    assert json.loads(runs[False].run_json.read_text())["together"]["trials"] == 0


MOMENTUM = '''
from bench.space import SearchSpace, SpaceSettings


class Momentum(SearchSpace):
    description = "SGD with momentum and weight decay, the body at a tenth of the rate"
    version = 1
    settings = SpaceSettings(epochs=2, repeats=2)

    def declare(self, hp, *, num_blocks):
        hp.Choice("init", ["pretrained", "random"])
        hp.Choice("frozen_blocks", [0, 2])
        hp.Fixed("head_lr", 3e-2)
        hp.Fixed("body_lr_scale", 0.1)

    def optimizer(self, hp):
        return "SGD", {"momentum": 0.9, "weight_decay": 1e-3}
'''


def test_the_fast_paths_change_no_number_under_momentum_weight_decay_and_a_body_rate(
        tmp_path, cache_dir):
    """Found by an audit: the comparisons ran Adam with the body at the head's rate only,
    where the fast paths keep optimizer state and per-variable rates of their own."""
    runs = _run_on_and_off(tmp_path, cache_dir, space="momentum", source=MOMENTUM,
                           switched=("prefix_cache", "together"))
    on, off = read_epochs(runs[True]), read_epochs(runs[False])
    assert len(on) == len(off) == 2 * 2 * 2 * 2
    np.testing.assert_allclose(on[METRICS], off[METRICS], rtol=0, atol=1e-5)
    np.testing.assert_allclose(read_trials(runs[True])["test_accuracy"],
                               read_trials(runs[False])["test_accuracy"], rtol=0, atol=1e-5)
    record = json.loads(runs[True].run_json.read_text())
    # Every trial trained its repeats together, those at 2 frozen blocks on cached features.
    assert record["together"] == {"trials": 4, "retried_alone": 0}
    assert record["prefix_cache"]["executions"] == 2 * 2


def test_repeats_that_cannot_train_together_train_alone_and_the_run_says_so(
        tmp_path, cache_dir, monkeypatch):
    """Found by an audit: a stack needs the memory of all its members, and one that ran
    out (or failed otherwise) failed the trial, which alone would have completed. Here the
    stack's first fit fails as an out-of-memory error would; that model's trials then
    train alone, and their rows are training alone's, bit for bit."""
    from bench.tuning import together

    fits = []
    arguments = together.stacked_fit_arguments

    def out_of_memory_once(trains, **kwargs):
        # Where the stack's fit starts, after its members' features were taken.
        fits.append(len(trains))
        if len(fits) == 2:  # the second trial's: half the backbone frozen, on the cache
            raise RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate "
                               "8589934592 bytes.")
        return arguments(trains, **kwargs)

    monkeypatch.setattr(together, "stacked_fit_arguments", out_of_memory_once)
    runs = _run_on_and_off(tmp_path, cache_dir, space="momentum", source=MOMENTUM,
                           switched=("together",))
    # Four trials, two models (frozen_blocks 0 and 2, each for both inits): the second
    # trial's stack failed, so its model's other trial trains alone too, without trying;
    # the other model's two trials trained together.
    assert fits == [2, 2, 2]
    record = json.loads(runs[True].run_json.read_text())
    assert record["together"] == {"trials": 2, "retried_alone": 1}
    # Each execution on the cache's features counted once (the failed stack's were counted
    # as well, found by a review): as many as where nothing trained together.
    executions = record["prefix_cache"]["executions"]
    assert executions == json.loads(runs[False].run_json.read_text())[
        "prefix_cache"]["executions"] == 2 * 2
    first = read_trials(runs[True])["trial_id"].min()
    assert (f"--train-together off for trial {int(first) + 1:04d}'s model: its repeats could "
            "not train together (RuntimeError: RESOURCE_EXHAUSTED: Out of memory while "
            "trying to allocate 8589934592 bytes.); that trial and the model's later ones "
            "train one repeat at a time") in record["notes"]
    assert set(read_trials(runs[True])["status"]) == {"COMPLETED"}
    on, off = read_epochs(runs[True]), read_epochs(runs[False])
    alone = on["frozen_blocks"] == 2
    assert alone.sum() == 2 * 2 * 2  # two trials x two repeats x two epochs
    columns = [c for c in on.columns if c not in ("run_id", "epoch_seconds")]
    pd.testing.assert_frame_equal(on.loc[alone, columns], off.loc[alone, columns],
                                  check_exact=True)
    np.testing.assert_allclose(on[METRICS], off[METRICS], rtol=0, atol=1e-5)


def test_repeats_train_alone_under_a_global_gradient_norm_and_the_run_says_so(
        tmp_path, cache_dir):
    # One norm over all members' gradients would couple them: no stack for this optimizer.
    spaces = tmp_path / "spaces"
    spaces.mkdir()
    (spaces / "clipped.py").write_text('''
from bench.space import SearchSpace, SpaceSettings


class Clipped(SearchSpace):
    description = "Adam with a global gradient norm"
    version = 1
    settings = SpaceSettings(init="random", frozen_blocks=0, epochs=1, repeats=2)

    def declare(self, hp, *, num_blocks):
        hp.Fixed("head_lr", 1e-3)

    def optimizer(self, hp):
        return "Adam", {"global_clipnorm": 1.0}
''')
    spec = RunSpec(space="clipped", spaces_dir=spaces, image_size=IMAGE_SIZE,
                   pretrain_epochs=2, results_dir=tmp_path, name="clipped",
                   cache_dir=cache_dir, train_per_class=10, together=True)
    run = RunDir(run_study(spec, log=lambda *_: None))
    record = json.loads(run.run_json.read_text())
    assert record["together"] == {"trials": 0, "retried_alone": 0}
    assert len(read_epochs(run)) == 2
    # Found by an audit: the run did not say so.
    said = ("--train-together off for trials with global_clipnorm: one program would take "
            "the norm over every repeat's gradients at once, so their repeats train one at "
            "a time")
    assert said in record["notes"]
    assert f"Note: {said}" in (run.path / "report.md").read_text()


def test_the_prefix_cache_says_where_frozen_blocks_hold_random_layers():
    """Found by an audit: EfficientNetB0's blocks hold Dropout layers (drop connect), so
    no depth past the first of them can be cached, and no run said so."""
    import keras
    import keras_tuner

    from bench.models.backbones import BACKBONES
    from bench.models.model import assemble
    from bench.space import load_space
    from bench.tuning.prefix import PrefixCache

    parts = assemble(BACKBONES["efficientnetb0"], image_size=32, num_classes=2, init="random")
    dropout = next(layer.name for layer in parts.backbone.layers
                   if isinstance(layer, keras.layers.Dropout))
    first = next(i for i, block in enumerate(parts.blocks, start=1)
                 if dropout in block.layer_names)
    assert first == 1  # its first block ends with block2b, whose skip is dropped
    said = []
    cache = PrefixCache(load_space("seed"), memory_bytes=1)
    cache.note = said.append
    for k in (0, first, len(parts.blocks)):
        hp = keras_tuner.HyperParameters()
        hp.Fixed("frozen_blocks", k)
        assert cache.depth(parts, hp) == (k if k < first else 0)
    assert said == [f"frozen-prefix cache off at frozen_blocks {first} and more: block "
                    f"{first} holds {dropout}, a layer that draws random numbers in "
                    "training, so the frozen blocks' output is not one fixed feature; those "
                    "executions train the whole model"] * 2


def test_a_cached_rest_is_used_only_for_the_model_it_was_cut_from():
    # The rests are keyed by id(model); a freed model's id can come back as another
    # model's, whose rest must then be built anew (its layers are not the cached ones).
    import keras_tuner

    from bench.models.backbones import backbone_spec
    from bench.models.model import assemble
    from bench.space import SearchSpace, SpaceSettings
    from bench.tuning.prefix import PrefixCache

    class Frozen(SearchSpace):
        name = "frozen"
        settings = SpaceSettings(head_lr=1e-3)

    hp = keras_tuner.HyperParameters()
    hp.Fixed("frozen_blocks", 4)
    spec = backbone_spec("resnet-mini")
    first, second = (assemble(spec, image_size=IMAGE_SIZE, num_classes=3, init="random")
                     for _ in range(2))
    cache = PrefixCache(Frozen(), memory_bytes=1 << 20)
    for parts in (first, second):
        Frozen().compile(parts, hp=hp)
    rest = cache._rest(first, hp=hp, k=4)
    assert cache._rest(first, hp=hp, k=4) is rest  # the same model: the kept rest
    # As if ``first`` had been freed and ``second`` had been given its id.
    cache._rests[(id(second.model), 4)] = cache._rests.pop((id(first.model), 4))
    other = cache._rest(second, hp=hp, k=4)
    assert other is not rest
    head = {id(v) for v in second.model.trainable_variables[-2:]}
    assert head <= {id(v) for v in other.model.trainable_variables}


def test_cached_features_are_kept_once_within_the_memory_given():
    """Each split's features are counted once (one copy is kept), the least recently used
    dropped first, and a split larger than the whole budget is computed but not kept."""
    import keras_tuner

    from bench.data.datasets import Split
    from bench.models.backbones import backbone_spec
    from bench.models.model import assemble
    from bench.space import SearchSpace, SpaceSettings
    from bench.tuning.prefix import PrefixCache

    class Frozen(SearchSpace):
        name = "frozen"
        settings = SpaceSettings(head_lr=1e-3)

    hp = keras_tuner.HyperParameters()
    hp.Fixed("frozen_blocks", 2)
    parts = assemble(backbone_spec("resnet-mini"), image_size=IMAGE_SIZE, num_classes=3,
                     init="random")
    Frozen().compile(parts, hp=hp)
    rng = np.random.default_rng(0)
    splits = [Split(rng.integers(0, 256, (n, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8),
                    rng.integers(0, 3, n)) for n in (6, 7, 8)]
    probe = PrefixCache(Frozen(), memory_bytes=1 << 30)
    prefix = probe._rest(parts, hp=hp, k=2).prefix
    one = probe._split("validation", splits[0], weights_key=("x",), k=2, prefix=prefix)
    per_row = one.nbytes // 6  # float32 features of one image at cut 2
    assert one.nbytes == int(np.prod(prefix.output.shape[1:])) * 4 * 6
    # Room for 13 rows: 6 and 7 fit; 8 more push out both, least recently used first.
    cache = PrefixCache(Frozen(), memory_bytes=per_row * 13)
    for name, split in zip(("train", "validation", "test"), splits):
        cache._split(name, split, weights_key=("x",), k=2, prefix=prefix)
    assert [key[2] for key in cache._features] == ["test"]
    cache._split("validation", splits[1], weights_key=("x",), k=2, prefix=prefix)
    assert cache.computed == 4 and cache.hits == 0
    cache._split("validation", splits[1], weights_key=("x",), k=2, prefix=prefix)
    assert cache.hits == 1
    assert sum(f.nbytes for f in cache._features.values()) <= per_row * 13
    too_big = PrefixCache(Frozen(), memory_bytes=per_row * 5)
    too_big._split("test", splits[0], weights_key=("x",), k=2, prefix=prefix)
    assert not too_big._features and too_big.computed == 1


SCHEDULE_FREE = '''
from bench.space import SearchSpace, SpaceSettings


class ScheduleFree(SearchSpace):
    description = "an optimizer that copies the weights into its state when built"
    version = 1
    settings = SpaceSettings(init="random", epochs=2, repeats=2, optimizer="ScheduleFreeAdamW")

    def declare(self, hp, *, num_blocks):
        hp.Choice("frozen_blocks", [0, 2])
        hp.Fixed("head_lr", 1e-2)
'''


def test_an_optimizer_whose_state_copies_the_weights_gets_the_plain_paths_numbers(
        tmp_path, cache_dir):
    """ScheduleFreeAdamW keeps a copy of the weights in its state, made when it is built:
    reuse, the prefix cache and training together, each of which keeps an optimizer state
    from one build for the next, stand aside for it; the numbers equal a run with all
    three off, which builds every model and optimizer afresh."""
    import json

    from bench.models.optim import optimizer_class, reads_weights

    assert reads_weights(optimizer_class("ScheduleFreeAdamW"))
    assert not any(reads_weights(optimizer_class(name)) for name in ("Adam", "SGD", "AdamW"))
    runs = _run_on_and_off(tmp_path, cache_dir, space="schedule-free", source=SCHEDULE_FREE,
                           switched=("together", "reuse_models", "prefix_cache"),
                           pretrain_epochs=2)
    on, off = read_epochs(runs[True]), read_epochs(runs[False])
    assert len(on) == len(off) == 2 * 2 * 2  # frozen_blocks x repeats x epochs
    np.testing.assert_allclose(on[METRICS], off[METRICS], rtol=0, atol=1e-6)
    record = json.loads(runs[True].run_json.read_text())
    assert record["together"]["trials"] == 0
    assert record["models"] == {"compiled": 4, "reused": 0, "states_reused": 0,
                                "from_preflight": 0}
    assert any("compiled-model reuse off for space schedule-free's ScheduleFreeAdamW: it "
               "copies the weights into its state" in line for line in record["notes"])
    # Found by an audit: the prefix cache and training together stood aside unsaid.
    assert ("frozen-prefix cache off for optimizer ScheduleFreeAdamW: its state holds a copy "
            "of the weights, so its executions train the whole model") in record["notes"]
    assert ("--train-together off for optimizer ScheduleFreeAdamW: its state holds a copy "
            "of the weights, so its trials' repeats train one at a time") in record["notes"]


@pytest.mark.parametrize("space, reuse, said", [
    ("two-phase", True, "space two-phase has its own fit"),
    ("d2l-recipe", True, "space d2l-recipe has its own augment"),
    ("seed", False, "compiled-model reuse is off (--no-reuse)"),
    ("seed", True, None),
])
def test_the_together_note_names_what_kept_the_repeats_apart(space, reuse, said):
    # Found by a new user: the note listed every possible cause ("its own fit, compile,
    # build_head or augment, or compiled-model reuse is off") whichever it was.
    from bench.space import load_space
    from bench.tuning.hypermodel import FineTuneHyperModel
    from bench.tuning.reuse import CompiledModels
    from bench.tuning.together import TrainTogether

    hypermodel = FineTuneHyperModel(load_space(space), inputs=None)
    together = TrainTogether(hypermodel, models=CompiledModels(hypermodel, enabled=reuse))
    assert together.off_reason == said


#: A space whose own fit validates without run.fit: its model.fit records through
#: run.recorder and validates in batches of the training batch size.
OWN_VALIDATION = '''
from bench.space import SearchSpace, SpaceSettings


class OwnValidation(SearchSpace):
    description = "validates in its own model.fit"
    settings = SpaceSettings(epochs=2, repeats=1, init="pretrained", frozen_blocks=0,
                             head_lr=1e-2)

    def declare(self, hp, *, num_blocks):
        hp.Choice("frozen_blocks", [0, 2])

    def fit(self, parts, *, hp, run):
        return [parts.model.fit(
            run.train.images, run.train.labels, batch_size=run.batch_size,
            epochs=run.epochs, validation_data=(run.validation.images, run.validation.labels),
            validation_batch_size=run.batch_size, callbacks=[run.recorder], verbose=0)]
'''


def test_a_space_validating_in_its_own_fit_is_counted_as_tested_only(tmp_path, cache_dir):
    # Found in an audit: the report said such executions "validated and tested in
    # batches of 512", but only their test pass went through the suite's evaluation.
    run = _run_space_at_512(tmp_path, cache_dir, name="own", source=OWN_VALIDATION)
    assert len(read_epochs(run)) == 2 * 2
    assert json.loads(run.run_json.read_text())["evaluation"] == {
        "larger_batches": 0, "larger_tests_only": 2}
    report = (run.path / "report.md").read_text()
    assert "validated and tested in batches" not in report
    assert ("Fast paths that round otherwise than the plain path: 2 executions tested in "
            "batches of 512, not 32 (their space's own fit validated some or all of their "
            "epochs). ") in report


def test_a_second_stage_validating_in_its_own_fit_is_counted_as_tested_only(tmp_path,
                                                                            cache_dir):
    # Its first epoch validated through run.fit (in batches of 512), its second in its
    # own model.fit (in batches of 32): not "validated in batches of 512".
    two_stage = OWN_VALIDATION.replace('''        return [parts.model.fit(
            run.train.images''', '''        first = run.fit(parts.model, epochs=1)
        return [first, parts.model.fit(
            run.train.images''').replace("epochs=run.epochs,", "epochs=2, initial_epoch=1,")
    assert two_stage.count("initial_epoch=1") == 1 and "run.fit(" in two_stage
    run = _run_space_at_512(tmp_path, cache_dir, name="twostage", source=two_stage)
    assert read_epochs(run)["epoch"].tolist() == [1, 2, 1, 2]
    assert json.loads(run.run_json.read_text())["evaluation"] == {
        "larger_batches": 0, "larger_tests_only": 2}


#: Found by a new user: a random op in an augment hook's Lambda (there tf.image's flip)
#: acts at inference too, so validation and test scored augmented images.
NOISY_AUGMENT = '''
import keras

from bench.space import SearchSpace, SpaceSettings


class NoisyAugment(SearchSpace):
    description = "an augmentation that acts at inference too"
    settings = SpaceSettings(epochs=1, repeats=1, init="pretrained", frozen_blocks=0,
                             head_lr=1e-2)
    extra_hyperparameters = ("noise",)

    def declare(self, hp, *, num_blocks):
        hp.Choice("noise", ["none", "uniform"])

    def augment(self, images, *, hp):
        if self.value(hp, "noise") == "none":
            return images
        return keras.layers.Lambda(
            lambda x: x + keras.random.uniform(keras.ops.shape(x), maxval=8.0),
            name="noise_everywhere")(images)
'''


@pytest.mark.parametrize("wrapped", [False, True])
def test_the_layer_from_which_a_model_changes_at_inference_is_named(tmp_path, cache_dir,
                                                                    wrapped):
    source = NOISY_AUGMENT
    if wrapped:  # an augmentation written as a Sequential of layers
        source = source.replace(
            "return keras.layers.Lambda(", "return keras.Sequential([keras.layers.Lambda("
        ).replace('name="noise_everywhere")(images)',
                  'name="noise_everywhere")], name="augmentation")(images)')
        assert "keras.Sequential([" in source and 'name="augmentation"' in source
    run = _run_space_at_512(tmp_path, cache_dir, name="noisy", source=source)
    notes = json.loads(run.run_json.read_text())["notes"]
    named = [note for note in notes if "from layer" in note]
    inside = " inside 'augmentation' (Sequential)" if wrapped else ""
    assert named == [
        f"space noisy: its model changes at inference from layer 'noise_everywhere' (Lambda)"
        f"{inside} on, so the validation and test accuracy of trials built with it score "
        "what that layer does outside training (an augmentation there augments the validation and "
        "test images too; Keras's random layers act in training only)"]
    assert f"- Note: {named[0]}" in (run.path / "report.md").read_text()


def _run_space_at_512(tmp_path, cache_dir, *, name: str, source: str) -> RunDir:
    """The run of the space in ``source`` (saved as NAME.py), evaluating in batches of
    512."""
    spaces = tmp_path / "spaces"
    spaces.mkdir()
    (spaces / f"{name}.py").write_text(source)
    spec = RunSpec(space=name, spaces_dir=spaces, image_size=IMAGE_SIZE, pretrain_epochs=3,
                   results_dir=tmp_path, name=name, cache_dir=cache_dir,
                   evaluation_batch_size=512)
    return RunDir(run_study(spec, log=lambda *_: None))

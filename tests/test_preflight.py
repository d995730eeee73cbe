"""The pre-flight check: a space's mistakes stop the run before its directory exists."""

import json
import os
import textwrap
from pathlib import Path

import pytest
from conftest import IMAGE_SIZE
from test_cli import run_bench

from bench.errors import BenchError

HEADER = textwrap.dedent('''
    import keras

    from bench.models.optim import make_optimizer
    from bench.space import SearchSpace, SpaceSettings

''')

#: A space whose own compile names these metrics.
COMPILED_WITH = '''
class {cls}(SearchSpace):
    description = "a compile with its own metrics"
    settings = SpaceSettings(init="random")

    def declare(self, hp, *, num_blocks):
        hp.Choice("head_lr", [0.01])

    def compile(self, parts, *, hp):
        parts.model.compile(optimizer=keras.optimizers.Adam(self.value(hp, "head_lr")),
                            loss="sparse_categorical_crossentropy", metrics={metrics})
'''

#: A space whose own compile builds SGD with body_lr_scale over the given variables.
SCALED_SGD = '''
class {cls}(SearchSpace):
    description = "{description}"
    settings = SpaceSettings(init="random")

    def declare(self, hp, *, num_blocks):
        hp.Choice("body_lr_scale", {scales})

    def compile(self, parts, *, hp):
        optimizer = make_optimizer("SGD", learning_rate=self.value(hp, "head_lr"), {variables},
                                   body_lr_scale=self.value(hp, "body_lr_scale"))
        parts.model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                            metrics=["accuracy"])
'''

#: A space whose build_head returns ``head`` (``x``: the pooled features).
WITH_HEAD = '''
class {cls}(SearchSpace):
    description = "{description}"
    settings = SpaceSettings(init="random")

    def declare(self, hp, *, num_blocks):
        hp.Choice("head_lr", [0.01])

    def build_head(self, features, *, num_classes, hp):
        x = keras.layers.GlobalAveragePooling2D()(features)
        return {head}
'''

#: The label smoothing a user wrote as a loss function of the space's own.
SMOOTHED = '''
def smoothed(labels, outputs):
    onehot = keras.ops.one_hot(keras.ops.cast(keras.ops.reshape(labels, (-1,)), "int32"),
                               keras.ops.shape(outputs)[-1])
    return keras.losses.categorical_crossentropy(onehot, outputs, label_smoothing=0.1)
'''


def own_loss(cls: str, *, units: str, activation: str, loss: str) -> str:
    """A space that compiles ``loss`` (``smoothed``: ``SMOOTHED``) on a head of ``units``
    outputs."""
    head = f"keras.layers.Dense({units}, activation={activation})(x)"
    return SMOOTHED + WITH_HEAD.format(cls=cls, description="a loss of its own", head=head) + \
        '''
    def compile(self, parts, *, hp):
        parts.model.compile(optimizer=keras.optimizers.Adam(self.value(hp, "head_lr")),
                            loss=''' + loss + ''', metrics=["accuracy"])
'''


#: A space that declares SGD's momentum only for SGD; its ``optimizer`` hook reads it
#: ``reads`` ("for every optimizer", "only for SGD").
MOMENTUM_FOR_SGD = '''
class {cls}(SearchSpace):
    description = "SGD's momentum, declared only for SGD, read {reads}"
    settings = SpaceSettings(init="random", epochs=1, repeats=1)
    extra_hyperparameters = ("optimizer_name", "momentum")

    def declare(self, hp, *, num_blocks):
        hp.Choice("optimizer_name", ["Adam", "SGD"])
        with hp.conditional_scope("optimizer_name", ["SGD"]):
            hp.Choice("momentum", [0.0, 0.9])

    def optimizer(self, hp):{optimizer}
'''

SPACES = {
    "logits": WITH_HEAD.format(
        cls="Logits", description="a head without softmax",
        head='keras.layers.Dense(num_classes)(x)'),
    "nan-head": WITH_HEAD.format(
        cls="NanHead", description="a softmax head scaled by NaN: not logits, not numbers",
        head='keras.layers.Dense(num_classes, activation="softmax")(x) * float("nan")'),
    # Found by a new user: its val_loss moved 8e-5 with the prefix cache on JAX.
    "bias-into-bn": WITH_HEAD.format(
        cls="BiasIntoBn", description="a hidden Dense whose bias BatchNormalization removes",
        head='keras.layers.Dense(num_classes, activation="softmax")('
             'keras.layers.BatchNormalization(name="hidden_bn")('
             'keras.layers.Dense(8, name="hidden")(x)))'),
    "too-deep": '''
class TooDeep(SearchSpace):
    description = "frozen_blocks beyond the backbone"
    settings = SpaceSettings(init="random")

    def declare(self, hp, *, num_blocks):
        hp.Choice("frozen_blocks", [0, 9])
''',
    # Found by a new user: strings were a TypeError's traceback (exit 1), in list too.
    "frozen-words": '''
class FrozenWords(SearchSpace):
    description = "frozen_blocks as words"
    settings = SpaceSettings(init="random")

    def declare(self, hp, *, num_blocks):
        hp.Choice("frozen_blocks", ["0", "all"])
''',
    # Three outputs for five classes: JAX's loss takes labels 3 and 4 without an error.
    "too-few-outputs": WITH_HEAD.format(
        cls="TooFewOutputs", description="a head with fewer outputs than classes",
        head='keras.layers.Dense(num_classes - 2, activation="softmax")(x)'),
    # Not pooled: one softmax per pixel row, which Keras's loss refuses deep inside fit.
    "unpooled": WITH_HEAD.format(
        cls="Unpooled", description="a head on the unpooled feature map",
        head='keras.layers.Dense(num_classes, activation="softmax")(features[:, 0])'),
    # Found by a new user: label smoothing through a loss function of the space's own
    # skipped the shape check, and a head of 6 outputs for 5 classes was scored.
    "own-loss-wide": own_loss("OwnLossWide", units="num_classes + 1", activation='"softmax"',
                              loss="smoothed"),
    # keras.losses' function itself, not its class nor its name: was not recognised.
    "keras-function-logits": own_loss(
        "KerasFunctionLogits", units="num_classes", activation="None",
        loss="keras.losses.sparse_categorical_crossentropy"),
    "own-loss": own_loss("OwnLoss", units="num_classes", activation='"softmax"',
                         loss="smoothed"),
    "own-loss-logits": own_loss("OwnLossLogits", units="num_classes", activation="None",
                                loss="smoothed"),
    "unknown-init": '''
class UnknownInit(SearchSpace):
    description = "an init the builder does not know"

    def declare(self, hp, *, num_blocks):
        hp.Choice("init", ["pretrained", "scratch"])
''',
    # Found by a new user: both completed, scoring what an untrained head scores.
    "zero-lr": '''
class ZeroLr(SearchSpace):
    description = "a learning rate of 0 among the choices"
    settings = SpaceSettings(init="random")

    def declare(self, hp, *, num_blocks):
        hp.Choice("head_lr", [0.001, 0.0])
''',
    "negative-scale": '''
class NegativeScale(SearchSpace):
    description = "a negative body_lr_scale in settings"
    settings = SpaceSettings(init="random", body_lr_scale=-0.1)

    def declare(self, hp, *, num_blocks):
        hp.Choice("head_lr", [0.001])
''',
    # Found by a new user: a hook without return was Keras's AttributeError on None.
    "head-none": '''
class HeadNone(SearchSpace):
    description = "a head that forgets to return"
    settings = SpaceSettings(init="random")

    def declare(self, hp, *, num_blocks):
        hp.Choice("head_lr", [0.001])

    def build_head(self, features, *, num_classes, hp):
        x = keras.layers.GlobalAveragePooling2D()(features)
        x = keras.layers.Dense(num_classes, activation="softmax")(x)
''',
    "augment-none": '''
class AugmentNone(SearchSpace):
    description = "an augment hook that forgets to return"
    settings = SpaceSettings(init="random")

    def declare(self, hp, *, num_blocks):
        hp.Choice("head_lr", [0.001])

    def augment(self, images, *, hp):
        keras.layers.RandomFlip("horizontal")(images)
''',
    "typo": '''
class Typo(SearchSpace):
    description = "a hook reading a hyperparameter that does not exist"
    settings = SpaceSettings(init="random")

    def declare(self, hp, *, num_blocks):
        hp.Choice("head_lr", [0.01])

    def build_head(self, features, *, num_classes, hp):
        width = hp.get("head_width")
        return keras.layers.Dense(num_classes, activation="softmax")(features[:, 0, 0, :width])
''',
    "unscaled": '''
class Unscaled(SearchSpace):
    description = "a compile that ignores body_lr_scale"
    settings = SpaceSettings(init="random", body_lr_scale=0.1)

    def declare(self, hp, *, num_blocks):
        hp.Choice("head_lr", [0.01])

    def compile(self, parts, *, hp):
        parts.model.compile(optimizer=keras.optimizers.Adam(self.value(hp, "head_lr")),
                            loss="sparse_categorical_crossentropy", metrics=["accuracy"])
''',
    # Found by a README audit: a rate written into compile trained every trial at it
    # while the tables recorded head_lr. The first value agrees: the second is refused.
    "fixed-rate": '''
class FixedRate(SearchSpace):
    description = "a compile at a rate of its own"
    settings = SpaceSettings(init="random")

    def declare(self, hp, *, num_blocks):
        hp.Choice("head_lr", [1e-3, 1e-2])

    def compile(self, parts, *, hp):
        parts.model.compile(optimizer=keras.optimizers.Adam(1e-3),
                            loss="sparse_categorical_crossentropy", metrics=["accuracy"])
''',
    "scheduled": '''
class Scheduled(SearchSpace):
    description = "a compile with a learning-rate schedule from head_lr"
    settings = SpaceSettings(init="random", epochs=1, repeats=1)

    def declare(self, hp, *, num_blocks):
        hp.Choice("head_lr", [1e-2])

    def compile(self, parts, *, hp):
        schedule = keras.optimizers.schedules.ExponentialDecay(
            self.value(hp, "head_lr") / 10, decay_steps=10, decay_rate=0.5)
        parts.model.compile(optimizer=keras.optimizers.Adam(schedule),
                            loss="sparse_categorical_crossentropy", metrics=["accuracy"])
''',
    "scaled": SCALED_SGD.format(
        cls="Scaled", description="a compile that applies each declared body_lr_scale",
        scales="[0.1, 1.0]", variables="body_variables=parts.body_variables"),
    "other-metric": COMPILED_WITH.format(cls="OtherMetric",
                                         metrics='["sparse_categorical_accuracy"]'),
    "top-k-too": COMPILED_WITH.format(
        cls="TopKToo",
        metrics='["accuracy", keras.metrics.SparseTopKCategoricalAccuracy(k=2, name="top2")]'),
    "scale-everything": SCALED_SGD.format(
        cls="ScaleEverything",
        description="a compile that gives the whole model as the backbone's variables",
        scales="[0.1]", variables="body_variables=parts.model.trainable_variables"),
    # make_optimizer with the scale but not the variables it applies to.
    "scale-nowhere": SCALED_SGD.format(
        cls="ScaleNowhere",
        description="a compile that names the scale but not the backbone's variables",
        scales="[0.1]", variables="body_variables=()"),
    # A second phase compiled without the scale (the default compile applied it).
    "phase-two-unscaled": '''
class PhaseTwoUnscaled(SearchSpace):
    description = "a fit whose second compile drops body_lr_scale"
    settings = SpaceSettings(init="random")

    def declare(self, hp, *, num_blocks):
        hp.Choice("body_lr_scale", [0.1])

    def fit(self, parts, *, hp, run):
        first = run.fit(parts.model, epochs=1)
        parts.model.compile(optimizer=make_optimizer("SGD", learning_rate=0.001),
                            loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return [first]
''',
    "unread": '''
class Unread(SearchSpace):
    description = "a declared hyperparameter no hook reads"
    settings = SpaceSettings(init="random")
    extra_hyperparameters = ("dropout",)

    def declare(self, hp, *, num_blocks):
        hp.Choice("head_lr", [0.01])
        hp.Choice("dropout", [0.5])
''',
    # Trains, but not through run.fit: no epoch is recorded, and no trial could complete.
    "model-fit": '''
class ModelFit(SearchSpace):
    description = "a fit hook that calls Keras's fit itself"
    settings = SpaceSettings(init="random", epochs=1, repeats=1)

    def declare(self, hp, *, num_blocks):
        hp.Choice("head_lr", [0.01])

    def fit(self, parts, *, hp, run):
        return [parts.model.fit(run.train.images, run.train.labels, epochs=1, verbose=0)]
''',
    # Found by a new user: the batch size a hook set trained; the tables said the study's.
    "batch-in-fit": '''
class BatchInFit(SearchSpace):
    description = "a fit hook that sets its own batch size"
    settings = SpaceSettings(init="random", epochs=1, repeats=1)

    def declare(self, hp, *, num_blocks):
        hp.Choice("head_lr", [0.01])

    def fit(self, parts, *, hp, run):
        run.batch_size = 16
        return [run.fit(parts.model, epochs=run.epochs)]
''',
    # Found by a new user: ordinary KerasTuner style, a traceback at the first trial.
    "hp-in-head": '''
class HpInHead(SearchSpace):
    description = "a hyperparameter declared inside build_head"
    settings = SpaceSettings(init="random", epochs=1, repeats=1)

    def declare(self, hp, *, num_blocks):
        hp.Choice("head_lr", [0.01])

    def build_head(self, features, *, num_classes, hp):
        x = keras.layers.GlobalAveragePooling2D()(features)
        x = keras.layers.Dense(hp.Choice("width", [8, 64]), activation="relu")(x)
        return keras.layers.Dense(num_classes, activation="softmax")(x)
''',
    # Found by a review: the check compared names, the oracle names and conditions.
    "hp-again-outside-scope": '''
class HpAgainOutsideScope(SearchSpace):
    description = "a conditional width the head declares again without its condition"
    settings = SpaceSettings(init="random", epochs=1, repeats=1)
    extra_hyperparameters = ("head", "units")

    def declare(self, hp, *, num_blocks):
        hp.Choice("head_lr", [0.01])
        hp.Choice("head", ["mlp", "linear"])
        with hp.conditional_scope("head", ["mlp"]):
            hp.Int("units", 8, 64, step=8)

    def build_head(self, features, *, num_classes, hp):
        x = keras.layers.GlobalAveragePooling2D()(features)
        if hp.get("head") == "mlp":
            x = keras.layers.Dense(hp.Int("units", 8, 64, step=8), activation="relu")(x)
        return keras.layers.Dense(num_classes, activation="softmax")(x)
''',
    "hp-in-fit": '''
class HpInFit(SearchSpace):
    description = "a hyperparameter declared inside fit"
    settings = SpaceSettings(init="random", epochs=1, repeats=1)

    def declare(self, hp, *, num_blocks):
        hp.Choice("head_lr", [0.01])

    def fit(self, parts, *, hp, run):
        return [run.fit(parts.model, epochs=hp.Int("fit_epochs", 1, 2))]
''',
    # Found by a new user: the check passed and every trial failed.
    "undeclared-column": '''
class UndeclaredColumn(SearchSpace):
    description = "a fit hook filling a column it did not name in epoch_columns"
    settings = SpaceSettings(init="random", epochs=1, repeats=1)

    def declare(self, hp, *, num_blocks):
        hp.Choice("head_lr", [0.01])

    def fit(self, parts, *, hp, run):
        run.recorder.set(stage=3)
        return [run.fit(parts.model, epochs=run.epochs)]
''',
    # Found by a review: it rewrote the trial's head_lr cell in its later rows.
    "sets-head-lr": '''
class SetsHeadLr(SearchSpace):
    description = "a fit hook that records another head_lr for its second phase"
    settings = SpaceSettings(init="random", epochs=2, repeats=1)
    epoch_columns = ("phase",)

    def declare(self, hp, *, num_blocks):
        hp.Choice("head_lr", [0.01])

    def fit(self, parts, *, hp, run):
        run.recorder.set(phase=1)
        first = run.fit(parts.model, epochs=1)
        run.recorder.set(phase=2, head_lr=0.001)
        return [first, run.fit(parts.model, epochs=2, initial_epoch=1)]
''',
    # Found by a new user: test_accuracy was of the best epoch, the rest of the last.
    "restores-best": '''
class RestoresBest(SearchSpace):
    description = "early stopping that restores the best epoch's weights"
    settings = SpaceSettings(init="random", epochs=1, repeats=1)

    def declare(self, hp, *, num_blocks):
        hp.Choice("head_lr", [0.01])

    def fit(self, parts, *, hp, run):
        run.callbacks.append(keras.callbacks.EarlyStopping(
            monitor="val_accuracy", patience=0, restore_best_weights=True))
        return [run.fit(parts.model, epochs=run.epochs)]
''',
    # Found by a new user: "AttributeError: 'SpaceSettings' object has no attribute
    # 'momentum'", for a hyperparameter the space declares, under a condition.
    "inactive-read": MOMENTUM_FOR_SGD.format(cls="InactiveRead", reads="for every optimizer",
                                             optimizer='''
        momentum = float(self.value(hp, "momentum"))
        name = self.value(hp, "optimizer_name")
        return name, ({"momentum": momentum} if name == "SGD" else {})'''),
    "undeclared-read": WITH_HEAD.format(
        cls="UndeclaredRead", description="a head reading a rate nobody declared",
        head='keras.layers.Dense(num_classes, activation="softmax")('
             'keras.layers.Dropout(self.value(hp, "dropout"))(x))'),
    # momentum is read only where it is active, which the first build (Adam) is not.
    "conditional-read": MOMENTUM_FOR_SGD.format(cls="ConditionalRead", reads="only for SGD",
                                                optimizer='''
        name = self.value(hp, "optimizer_name")
        if name == "SGD":
            return name, {"momentum": float(self.value(hp, "momentum"))}
        return name, {}'''),
}


@pytest.fixture(scope="module")
def spaces_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("preflight-spaces")
    for name, body in SPACES.items():
        (folder / f"{name}.py").write_text(HEADER + body)
    return folder


def _run(name, spaces_dir, results, cache_dir):
    from bench.plan import RunSpec
    from bench.runner import run_study

    return run_study(RunSpec(space=name, spaces_dir=spaces_dir, image_size=IMAGE_SIZE,
                             epochs=1, repeats=1, max_trials=1, train_per_class=4,
                             results_dir=results, name="run", cache_dir=cache_dir),
                     log=lambda *_: None)


REFUSED = {
    "logits": "the head of space logits returns logits, not probabilities",
    "nan-head": "the model of space nan-head gives NaN or infinite outputs before any "
                "training (for 20 of 20 images of a validation batch)",
    "too-deep": "declares frozen_blocks 9, but the backbone has 4 blocks: use values from 0 to 4",
    "frozen-words": "declares frozen_blocks '0', but the backbone has 4 blocks: use values "
                    "from 0 to 4",
    "too-few-outputs": "the head of space too-few-outputs returns outputs of shape (None, "
                       "3), but its loss sparse_categorical_crossentropy needs (batch, 5)",
    # The feature map of IMAGE_SIZE (16) px images at resnet-mini's last stage is 2 x 2.
    "own-loss-wide": "the head of space own-loss-wide returns outputs of shape (None, 6), "
                     "but accuracy is scored over one output per class: (batch, 5) (or one "
                     "sigmoid output for two classes)",
    "keras-function-logits": "the head of space keras-function-logits returns logits, not "
                             "probabilities",
    "inactive-read": "HyperparameterNotSet: hyperparameter 'momentum' is not active in this "
                     "trial: it is declared only where optimizer_name is 'SGD', and here "
                     "optimizer_name is 'Adam'; read it only under that condition; fix the "
                     "hook and run again",
    "undeclared-read": "in build_head() (while building the model): HyperparameterNotSet: "
                       "'dropout' is neither a hyperparameter the space declares nor a field "
                       "of its settings (dataset, ",
    "unpooled": "the head of space unpooled returns outputs of shape (None, 2, 5), but its "
                "loss sparse_categorical_crossentropy needs (batch, 5)",
    "unknown-init": "unknown-init.py declares init 'scratch': use 'pretrained', 'random', "
                    "'imagenet'",
    "zero-lr": "zero-lr.py declares head_lr 0.0: it must be a number above 0",
    "negative-scale": "negative-scale.py sets in settings body_lr_scale -0.1: it must be a "
                      "number 0 (the backbone not moved) or more",
    "head-none": "search space head-none: build_head() returned None (no return "
                 "statement?); it returns the symbolic tensor its layers made (return x)",
    "augment-none": "search space augment-none: augment() returned None (no return "
                    "statement?); it returns the symbolic tensor its layers made (return x)",
    "typo": "typo.py, line {typo_line}, in build_head() (while building the model): KeyError",
    "unscaled": "body_lr_scale is 0.1 but its compile() trains the backbone at 1 x head_lr",
    "model-fit": "search space model-fit: its fit() ran no epoch through run.fit: train "
                 "with run.fit(parts.model, epochs=...)",
    "batch-in-fit": "a fit hook set run.batch_size to 16; the study's batch size "
                    "(--batch-size) is what run.json and the report record, so a hook cannot "
                    "change it: to compare batch sizes, run the study once per --batch-size "
                    "and join the runs with 'analyze RUN RUN ...'",
    "hp-in-head": "search space hp-in-head: a hook declared hyperparameter 'width' "
                  "(hp.Choice) while building the model; the tuner searches only what "
                  "declare() declares: move hp.Choice('width', ...) into declare()",
    "hp-again-outside-scope": "search space hp-again-outside-scope: a hook declared "
                              "hyperparameter 'units' (hp.Int) while building the model; the "
                              "tuner searches only what declare() declares: declare() declares "
                              "'units' under a condition (conditional_scope) and the hook "
                              "declares it again outside it",
    "hp-in-fit": "search space hp-in-fit: a hook declared hyperparameter 'fit_epochs' (hp.Int) "
                 "while fitting",
    "undeclared-column": "recorder.set(stage=...): 'stage' is not one of the space's "
                         "epoch_columns (); a fit hook fills only those: name a new column "
                         "there (epoch_columns = ('stage',))",
    "sets-head-lr": "recorder.set(head_lr=...): 'head_lr' is not one of the space's "
                    "epoch_columns ('phase',)",
    "restores-best": "a fit hook's EarlyStopping(restore_best_weights=True) would make "
                     "test_accuracy score each execution's best epoch",
    "other-metric": "search space other-metric: its model reports no accuracy after an "
                    "epoch; the tables and the tuner's objective are accuracy",
    "scale-everything": "its compile() trains 2 head variable(s) (such as "
                        "head_dense/kernel) at body_lr_scale 0.1 x head_lr, while the tables "
                        "record head_lr for the head",
    "scale-nowhere": "body_lr_scale is 0.1 but its compile() trains the backbone at 1 x "
                     "head_lr",
    "phase-two-unscaled": "body_lr_scale is 0.1 but its fit() (its last compile) trains the "
                          "backbone at 1 x head_lr",
    "fixed-rate": "search space fixed-rate: head_lr is 0.01 but its compile() trains at a "
                  "learning rate of 0.001, while the tables record head_lr",
}


def _typo_line() -> int:
    """The line of the typo in the file as written, counted independently of the suite."""
    lines = (HEADER + SPACES["typo"]).splitlines()
    return next(i for i, line in enumerate(lines, start=1) if "head_width" in line)


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_a_space_mistake_is_refused_before_the_run_directory_exists(
        name, spaces_dir, tmp_path, cache_dir):
    with pytest.raises(BenchError) as caught:
        _run(name, spaces_dir, tmp_path / "results", cache_dir)
    assert REFUSED[name].format(typo_line=_typo_line()) in str(caught.value)
    assert len(str(caught.value).splitlines()) == 1
    assert not (tmp_path / "results" / "run").exists()


def test_a_metric_after_accuracy_leaves_test_accuracy_as_accuracy(spaces_dir, tmp_path,
                                                                  cache_dir):
    import pandas as pd

    path = _run("top-k-too", spaces_dir, tmp_path, cache_dir)
    trials = pd.read_csv(path / "trials.csv")
    run = json.loads((path / "run.json").read_text())
    assert list(trials["status"]) == ["COMPLETED"]
    tested = trials["test_accuracy"].iloc[0] * run["dataset"]["test"]
    assert abs(tested - round(tested)) < 1e-4  # a count of test images right, not a top-2 mean


def test_a_compile_that_applies_every_declared_scale_runs(spaces_dir, tmp_path, cache_dir):
    path = _run("scaled", spaces_dir, tmp_path, cache_dir)
    assert json.loads((path / "run.json").read_text())["warnings"] == []


def test_a_compile_with_a_learning_rate_schedule_is_the_spaces_own_and_runs(
        spaces_dir, tmp_path, cache_dir):
    path = _run("scheduled", spaces_dir, tmp_path, cache_dir)
    assert json.loads((path / "run.json").read_text())["status"] == "completed"


def test_an_unread_hyperparameter_is_a_warning_in_run_json(spaces_dir, tmp_path, cache_dir):
    path = _run("unread", spaces_dir, tmp_path, cache_dir)
    run = json.loads((path / "run.json").read_text())
    assert run["status"] == "completed"
    assert len(run["warnings"]) == 1 and "hyperparameter 'dropout'" in run["warnings"][0]


def test_a_conditional_hyperparameter_inactive_in_the_first_build_is_no_warning(
        spaces_dir, tmp_path, cache_dir):
    path = _run("conditional-read", spaces_dir, tmp_path, cache_dir)
    run = json.loads((path / "run.json").read_text())
    assert run["status"] == "completed" and run["warnings"] == []


def test_a_bias_that_batchnormalization_removes_is_a_warning_in_run_json(
        spaces_dir, tmp_path, cache_dir):
    path = _run("bias-into-bn", spaces_dir, tmp_path, cache_dir)
    run = json.loads((path / "run.json").read_text())
    assert run["status"] == "completed" and len(run["warnings"]) == 1
    assert run["warnings"][0].startswith(
        "space bias-into-bn: layer 'hidden' adds a bias that BatchNormalization 'hidden_bn' "
        "subtracts again")
    assert run["warnings"][0].endswith("build 'hidden' with use_bias=False")
    assert f"- Warning: {run['warnings'][0]}" in (path / "report.md").read_text()


@pytest.mark.parametrize("name, gives", [
    ("own-loss", "probabilities"),
    ("own-loss-logits", "logits, not probabilities (outputs ")])
def test_a_loss_of_the_space_s_own_is_a_warning_saying_what_the_head_returns(
        name, gives, spaces_dir, tmp_path, cache_dir):
    """Whether a loss function of the space's own expects logits cannot be checked (the
    logits run trained on a loss that normalised them: 0.57 against 0.81, found by a new
    user); the run says so, and which the head returns, measured on a validation batch."""
    path = _run(name, spaces_dir, tmp_path, cache_dir)
    run = json.loads((path / "run.json").read_text())
    assert run["status"] == "completed" and len(run["warnings"]) == 1, run["warnings"]
    assert run["warnings"][0].startswith(
        f"space {name} compiles a loss of its own (smoothed): the suite cannot check that "
        f"it expects what the head returns, {gives}")
    assert f"- Warning: {run['warnings'][0]}" in (path / "report.md").read_text()


def test_biases_into_batchnorm_are_found_where_the_normalisation_removes_them():
    import keras

    from bench.tuning.preflight import biases_into_batchnorm

    def head(*layers):
        x = inputs = keras.Input((4, 4, 3))
        for layer in layers:
            x = layer(x)
        return keras.Model(inputs, x).layers[1:]

    layers = keras.layers
    assert biases_into_batchnorm(head(layers.Dense(3, name="d"),
                                      layers.BatchNormalization(name="bn"))) == [("d", "bn")]
    conv = keras.Sequential([layers.Conv2D(2, 3, name="c"),
                             layers.BatchNormalization(name="cbn")])
    assert biases_into_batchnorm(head(conv)) == [("c", "cbn")]  # inside a nested model
    frozen = layers.BatchNormalization(name="bn")
    frozen.trainable = False  # inference mode: no batch mean taken away
    for between in ([layers.Dense(3, use_bias=False), layers.BatchNormalization()],
                    [layers.Dense(3), layers.ReLU(), layers.BatchNormalization()],
                    [layers.Dense(3), layers.LayerNormalization()],
                    [layers.Dense(3), frozen]):
        assert biases_into_batchnorm(head(*between)) == []


def test_the_gradient_of_a_bias_before_batchnormalization_is_round_off():
    """What the warning says, from autodiff on TensorFlow: exactly zero by the algebra
    (a per-channel constant before the batch mean is subtracted again), round-off here."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    dense, norm = keras.layers.Dense(8), keras.layers.BatchNormalization()
    out = keras.layers.Dense(3, activation="softmax")
    x = tf.random.normal((32, 5))
    y = tf.random.uniform((32,), 0, 3, dtype=tf.int32)
    with tf.GradientTape() as tape:
        probabilities = out(tf.nn.relu(norm(dense(x), training=True)))
        loss = keras.losses.sparse_categorical_crossentropy(y, probabilities)
        loss = tf.reduce_mean(loss)
    kernel, bias = tape.gradient(loss, [dense.kernel, dense.bias])
    assert float(tf.reduce_max(tf.abs(kernel))) > 1e-3
    assert float(tf.reduce_max(tf.abs(bias))) < 1e-7


@pytest.mark.parametrize("relative", [False, True])
def test_a_hook_error_exits_2_in_one_line_without_a_traceback(spaces_dir, tmp_path, relative):
    # Given relative, the folder is spelt otherwise than the traceback's absolute paths.
    where = spaces_dir.name if relative else str(spaces_dir)
    result = run_bench("run", "--space", "typo", "--spaces-dir", where,
                       "--image-size", str(IMAGE_SIZE), "--train-per-class", "4",
                       "--results-dir", str(tmp_path / "results"), "--name", "run",
                       cwd=spaces_dir.parent)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    shown = Path(where) / "typo.py"
    assert f"{shown}, line {_typo_line()}, in build_head()" in result.stderr
    assert not (tmp_path / "results" / "run").exists()
    # Found by a new user: the run's first line names it, so its end says none was made.
    assert "run run: space typo" in result.stdout
    assert result.stderr.strip().splitlines()[-1].endswith(
        "fix the hook and run again; no run was written (it stopped before the run "
        "directory was made)")


def test_the_output_shape_is_checked_for_the_losses_over_classes_only(digits):
    """One sigmoid unit with binary cross-entropy (a two-class head some spaces use) is
    not a loss over one output per class: it passes; the same head under the default
    loss is refused."""
    import keras

    from bench.models.backbones import BACKBONES
    from bench.models.model import assemble
    from bench.space import SearchSpace
    from bench.tuning.preflight import check_probabilities

    class Binary(SearchSpace):
        name = "binary"

    def sigmoid(features, *, num_classes):
        pooled = keras.layers.GlobalAveragePooling2D()(features)
        return keras.layers.Dense(1, activation="sigmoid")(pooled)

    parts = assemble(BACKBONES["resnet-mini"], image_size=IMAGE_SIZE, num_classes=2,
                     init="random", head=sigmoid)
    images = digits.validation.images[:8]
    parts.model.compile(optimizer="adam", loss="binary_crossentropy")
    check_probabilities(Binary(), parts.model, images, num_classes=2)
    parts.model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    with pytest.raises(BenchError, match=r"returns outputs of shape \(None, 1\), but its "
                                         "loss sparse_categorical_crossentropy needs "
                                         r"\(batch, 2\)"):
        check_probabilities(Binary(), parts.model, images, num_classes=2)


def test_every_way_of_giving_a_loss_is_told_apart_from_a_loss_of_the_space_s_own():
    """From review: a loss in a list, a dict or a functools.partial was taken for the
    space's own, and a user's function in Keras's wrapper, or a subclass of a Keras loss,
    for Keras's. A Keras loss that expects probabilities refuses logits; one from logits
    passes; a loss of the space's own is a warning naming it and what the head returns."""
    import functools

    import keras
    import numpy as np
    from keras.src.losses.losses import LossFunctionWrapper

    from bench.space import SearchSpace
    from bench.tuning.preflight import check_probabilities

    class Space(SearchSpace):
        name = "s"

    def smoothed(labels, outputs):
        return keras.losses.categorical_crossentropy(
            keras.ops.one_hot(keras.ops.cast(keras.ops.reshape(labels, (-1,)), "int32"), 3),
            outputs, label_smoothing=0.1)

    class Focal(keras.losses.SparseCategoricalCrossentropy):
        pass

    images = np.random.default_rng(0).normal(size=(8, 4)).astype("float32")

    def check(loss, *, units=3, activation=None, num_classes=3):
        inputs = keras.Input((4,))
        model = keras.Model(inputs, keras.layers.Dense(units, activation=activation,
                                                       name="out")(inputs))
        model.compile(optimizer="adam", loss=loss)
        return check_probabilities(Space(), model, images, num_classes=num_classes)

    sce = keras.losses.sparse_categorical_crossentropy
    for expects_probabilities in ("sparse_categorical_crossentropy",
                                  ["sparse_categorical_crossentropy"],
                                  {"out": "sparse_categorical_crossentropy"}, sce):
        with pytest.raises(BenchError, match="returns logits, not probabilities"):
            check(expects_probabilities)
    for from_logits in (functools.partial(sce, from_logits=True),
                        keras.losses.SparseCategoricalCrossentropy(from_logits=True)):
        assert check(from_logits) is None
    said = "space s compiles a loss of its own ({}): the suite cannot check that it expects "
    for own, name in ((smoothed, "smoothed"), (LossFunctionWrapper(smoothed), "smoothed"),
                      (functools.partial(smoothed), "smoothed"), (Focal(), "Focal")):
        warning = check(own)
        assert warning.startswith(said.format(name) + "what the head returns, logits, not "
                                  "probabilities (outputs "), warning
    assert "returns, probabilities (outputs summing to 1 over classes);" in check(
        smoothed, activation="softmax")
    assert "returns, outputs in [0, 1] that do not sum to 1 over classes (" in check(
        smoothed, activation="sigmoid")
    assert "returns, one output per image (" in check(smoothed, units=1, activation="sigmoid",
                                                      num_classes=2)
    with pytest.raises(BenchError, match=r"returns outputs of shape \(None, 1\), but "
                                         r"accuracy is scored over one output per class: "
                                         r"\(batch, 3\)"):
        check(smoothed, units=1, activation="sigmoid")


def test_a_head_with_too_few_outputs_is_refused_on_jax_too(spaces_dir, tmp_path):
    """On JAX the loss takes a label beyond the head's outputs without an error: the run
    completed with accuracies no model had (found by a new user). The check is the
    builder's, so both backends refuse it in one line."""
    result = run_bench("run", "--space", "too-few-outputs", "--spaces-dir", str(spaces_dir),
                       "--image-size", str(IMAGE_SIZE), "--train-per-class", "4",
                       "--results-dir", str(tmp_path / "results"), "--name", "run",
                       env=os.environ | {"KERAS_BACKEND": "jax"})
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "the head of space too-few-outputs returns outputs of shape (None, 3)" in \
        result.stderr
    assert not (tmp_path / "results" / "run").exists()


def test_the_readme_hooks_example_runs_without_warnings(tmp_path, cache_dir):
    import re

    import pandas as pd
    from conftest import ROOT

    from bench.plan import RunSpec
    from bench.runner import run_study

    section = (ROOT / "README.md").read_text().split("### Hooks reference", 1)[1]
    (tmp_path / "hooks.py").write_text(re.search(r"```python\n(.*?)```", section, re.S).group(1))
    path = run_study(RunSpec(space="hooks", spaces_dir=tmp_path, image_size=IMAGE_SIZE, epochs=1,
                             repeats=1, max_trials=4, pretrain_epochs=1, train_per_class=4,
                             results_dir=tmp_path / "results", name="hooks",
                             cache_dir=cache_dir), log=lambda *_: None)
    run = json.loads((path / "run.json").read_text())
    assert run["status"] == "completed" and run["warnings"] == []
    rows = pd.read_csv(path / "epochs.csv")
    assert sorted(zip(rows["dropout"], rows["optimizer_name"])) == [
        (0.0, "Adam"), (0.0, "SGD"), (0.5, "Adam"), (0.5, "SGD")]


OPTIMIZER_MISTAKES = [
    ('"sgd", {"momentum": hp.get("momentum")}',
     "unknown optimizer 'sgd'; name a class in keras.optimizers, such as Adam, AdamW, SGD, "
     "RMSprop, Adagrad or Ftrl"),
    ('"SGD"', "search space momentum: optimizer() returned 'SGD'; it returns (name, "
              "options): a class name in keras.optimizers and a dict of its keyword "
              "arguments, such as ('SGD', {'momentum': 0.9})"),
    ("keras.optimizers.SGD(0.01)", "search space momentum: optimizer() returned <keras."),
    ('"SGD", {"momentom": 0.9}', "optimizer SGD refused the options {'momentom': 0.9}: "),
    # Found by a new user: wrong only for a second value, it failed half the trials.
    ('("SGD" if hp.get("momentum") == 0.0 else "SGDD"), {}',
     "unknown optimizer 'SGDD'; name a class in keras.optimizers"),
    ('"SGD", {"nesterovv": True} if hp.get("momentum") == 0.9 else {}',
     "optimizer SGD refused the options {'nesterovv': True}: "),
    ('"SGD", {"learning_rate": 0.5}', "search space momentum: optimizer() sets learning_rate; "
                                      "the suite sets the learning rates from head_lr and "
                                      "body_lr_scale: drop it from the options"),
]


@pytest.mark.parametrize("returns, told", OPTIMIZER_MISTAKES)
def test_an_optimizer_mistake_is_refused_before_data_or_pretraining(tmp_path, returns, told):
    spaces = tmp_path / "spaces"
    spaces.mkdir()
    (spaces / "momentum.py").write_text(textwrap.dedent('''
        import keras

        from bench.space import SearchSpace, SpaceSettings


        class Momentum(SearchSpace):
            description = "SGD momentum, its optimizer hook written wrong"
            version = 1
            extra_hyperparameters = ("momentum",)

            def declare(self, hp, *, num_blocks):
                hp.Choice("momentum", [0.0, 0.9])

            def optimizer(self, hp):
                hp.get("momentum")
                return RETURNS
    ''').replace("RETURNS", returns))
    env = dict(os.environ, FINETUNE_BENCH_CACHE=str(tmp_path / "cache"))
    result = run_bench("run", "--space", "momentum", "--spaces-dir", str(spaces),
                       "--results-dir", str(tmp_path / "results"), env=env)
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {told}"), result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert "data:" not in result.stdout and not (tmp_path / "cache").exists()


def test_the_optimizer_check_gives_a_conditional_hyperparameter_the_values_a_trial_has():
    """Found in review: each value was set alone, so SGD's momentum was missing (a
    misspelt name there passed) and Adam got one (a valid hook was refused)."""
    import keras_tuner

    from bench.plan import _check_optimizer
    from bench.space import SearchSpace

    hp = keras_tuner.HyperParameters()
    hp.Choice("opt", ["Adam", "SGD"])
    with hp.conditional_scope("opt", ["SGD"]):
        hp.Choice("momentum", [0.0, 0.9])

    class Valid(SearchSpace):
        name = "valid"

        def optimizer(self, hp):
            momentum = hp.values.get("momentum")
            return hp.get("opt"), ({} if momentum is None else {"momentum": momentum})

    class Misspelt(SearchSpace):
        name = "misspelt"

        def optimizer(self, hp):
            if hp.get("opt") == "SGD":
                return "SGDD", {"momentum": hp.get("momentum")}
            return "Adam", {}

    _check_optimizer(Valid(), hp)
    with pytest.raises(BenchError, match="unknown optimizer 'SGDD'"):
        _check_optimizer(Misspelt(), hp)

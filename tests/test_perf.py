"""`run_bench.py perf` runs one study as plain KerasTuner and as the suite and says how they
compare. Only the structure and the arithmetic are asserted, never a speed."""

import json
import os
import textwrap
from dataclasses import replace

import pytest
from test_cli import run_bench


@pytest.mark.slow
def test_perf_writes_both_sides_and_the_speedup(tmp_path):
    env = dict(os.environ, FINETUNE_BENCH_CACHE=str(tmp_path / "cache"))
    result = run_bench("perf", "--image-size", "16", "--epochs", "1", "--repeats", "2",
                       "--max-trials", "2", "--pretrain-epochs", "2", "--results-dir",
                       str(tmp_path), "--name", "p", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    perf = json.loads((tmp_path / "p" / "perf.json").read_text())
    plain, suite = perf["plain_kerastuner"], perf["suite"]
    # Unrounded (an audit saw 2.8552 stored as 2.855 and printed as 2.85).
    assert perf["speedup"] == plain["search_seconds"] / suite["search_seconds"]
    assert f"speedup (a)/(b): {perf['speedup']:.2f}x" in result.stdout
    for side in (plain, suite):
        # 2 trials x 2 repeats of 1 epoch over the 100 digits training images.
        assert side["executions"] == 4 and side["train_images_seen"] == 400
        assert 0.0 <= side["best_val_accuracy"] <= 1.0
        assert side["images_per_second"] == pytest.approx(400 / side["search_seconds"], rel=1e-2)
        # The best configuration's two executions: their mean is the score each side's
        # own bookkeeping gave (KerasTuner's trial score; the suite's trials.csv).
        values = side["best_executions"]
        assert len(values) == 2
        assert sum(values) / 2 == pytest.approx(side["best_val_accuracy"], abs=1e-6)
        assert side["best_sd"] == pytest.approx(abs(values[0] - values[1]) / 2 ** 0.5,
                                                abs=1e-4)
    assert perf["floor_seconds"] > 0 and perf["suite_over_floor"] > 1
    # The search took the pre-flight check's traced model over: the check's time counts.
    run = json.loads((tmp_path / "p" / "suite" / "run.json").read_text())
    assert run["models"]["from_preflight"] == 1 and run["preflight_seconds"] > 0
    # Found by a new user: perf.json did not say which options (b) ran with.
    assert perf["suite_arguments"] == run["arguments"]
    assert perf["suite_arguments"]["max_trials"] == 2
    assert suite["search_seconds"] == pytest.approx(
        run["search_seconds"] + run["preflight_seconds"], abs=0.011)
    # Every execution's fit was clocked, by configuration; the intervals cover the search
    # but for the bookkeeping after the last one.
    assert [len(s) for s in plain["execution_seconds"]] == [2, 2]
    covered = sum(map(sum, plain["execution_seconds"]))
    assert 0.8 * plain["search_seconds"] <= covered <= plain["search_seconds"]
    # The suite's wall time holds its search and the data, pretraining and report around it.
    assert perf["suite_wall_seconds"] > suite["search_seconds"]
    assert perf["backend"] == "tensorflow" and perf["study"]["space"] == "seed"
    # Each side names the configuration it found best; the suite's is its trials.csv row.
    import pandas as pd

    trials = pd.read_csv(tmp_path / "p" / "suite" / "trials.csv", dtype={"trial_id": str})
    row = trials.set_index("trial_id").loc[suite["best_trial"]]
    assert suite["best_hyperparameters"] == {
        name: row[name] for name in suite["best_hyperparameters"]}
    assert set(plain["best_hyperparameters"]) == set(suite["best_hyperparameters"])
    assert f"best: (a) trial {plain['best_trial']} (" in result.stdout
    assert "speedup (a)/(b)" in result.stdout
    # `analyze` given the perf folder points at the run inside it.
    told = run_bench("analyze", str(tmp_path / "p"))
    assert told.returncode == 2 and told.stderr.strip() == (
        f"error: {tmp_path / 'p'} holds a 'perf' comparison, not a run; its suite run is "
        f"{tmp_path / 'p' / 'suite'}: pass that")


@pytest.mark.slow
def test_perf_estimates_plain_kerastuner_from_fewer_executions(tmp_path):
    env = dict(os.environ, FINETUNE_BENCH_CACHE=str(tmp_path / "cache"))
    result = run_bench("perf", "--image-size", "16", "--epochs", "1", "--repeats", "3",
                       "--baseline-repeats", "2", "--max-trials", "2", "--pretrain-epochs",
                       "2", "--results-dir", str(tmp_path), "--name", "p", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    perf = json.loads((tmp_path / "p" / "perf.json").read_text())
    plain, suite = perf["plain_kerastuner"], perf["suite"]
    # Plain KerasTuner ran 2 of 3 executions per configuration, the suite all 3.
    assert plain["executions"] == 4 and suite["executions"] == 6
    extrapolation = plain["extrapolation"]
    seconds = plain["execution_seconds"]
    assert [len(s) for s in seconds] == [2, 2]
    estimate = sum(first + second + second for first, second in seconds)
    assert extrapolation["estimated_search_seconds"] == pytest.approx(estimate, abs=0.02)
    assert perf["speedup"] == pytest.approx(estimate / suite["search_seconds"], rel=1e-2)
    assert perf["speedup_basis"].startswith("estimated: plain KerasTuner ran 2 of 3")
    assert "(a) ran 2 of 3 executions per configuration" in result.stdout


def test_extrapolation_prices_later_executions_at_the_second():
    from bench.perf import extrapolate

    # Executions end at 1, 3 (configuration one) and 4, 7 (configuration two).
    estimate = extrapolate(0.0, [1.0, 3.0, 4.0, 7.0], measured_repeats=2, repeats=5)
    assert estimate.execution_seconds == ((1.0, 2.0), (1.0, 3.0))
    assert estimate.estimated_search_seconds == (1 + 2 + 3 * 2) + (1 + 3 + 3 * 3)
    assert extrapolate(0.0, [1.0, 3.0, 4.0], measured_repeats=2, repeats=5) is None


@pytest.mark.parametrize("value", ["1", "6"])
def test_perf_refuses_baseline_repeats_outside_two_to_the_repeats(tmp_path, value):
    result = run_bench("perf", "--baseline-repeats", value, "--results-dir", str(tmp_path))
    assert result.returncode == 2 and "--baseline-repeats must be between 2" in result.stderr
    assert "Traceback" not in result.stderr and not any(tmp_path.iterdir())


@pytest.mark.parametrize("tuner", ["hyperband", "bayesian"])
def test_perf_refuses_tuners_whose_two_sides_would_run_other_trials(tmp_path, tuner):
    # Found by an audit: under Bayesian optimisation the suite ran 4 trials (it skips a
    # configuration proposed again) and plain KerasTuner 6, other ones, under one speedup.
    result = run_bench("perf", "--tuner", tuner, "--results-dir", str(tmp_path))
    assert result.returncode == 2 and "use --tuner grid or random" in result.stderr
    assert not any(tmp_path.iterdir())


def test_perf_stopped_by_a_mistake_in_the_data_leaves_no_folder_behind(tmp_path):
    # Found by an audit: the empty folder made the corrected command's --name refused.
    (tmp_path / "photos").mkdir()
    result = run_bench("perf", "--dataset", "folder", "--data", str(tmp_path / "photos"),
                       "--init", "random", "--results-dir", str(tmp_path / "results"),
                       "--name", "p")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert not (tmp_path / "results" / "p").exists()


def test_plain_kerastuners_ties_are_named_as_the_suites_are():
    # Found by an audit: plain KerasTuner's side always said it had no tie.
    import keras_tuner

    from bench.perf import _tied

    trials = []
    for trial_id, score in (("0", 0.5), ("1", 0.75), ("2", 0.25), ("3", 0.75)):
        trial = keras_tuner.engine.trial.Trial(keras_tuner.HyperParameters(), trial_id)
        trial.score = score
        trials.append(trial)
    assert _tied(trials[1], trials) == ("3",)
    assert _tied(trials[0], trials) == ()


def test_perf_refuses_a_space_with_its_own_fit(tmp_path):
    result = run_bench("perf", "--space", "two-phase", "--results-dir", str(tmp_path))
    assert result.returncode == 2 and "overrides fit()" in result.stderr
    assert not any(tmp_path.iterdir())


def test_forward_macs_counts_convolutions_and_dense_layers_by_hand():
    import keras

    from bench.floor import forward_macs

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)  # taps x 3 x 4
    x = keras.layers.DepthwiseConv2D(3, strides=2, padding="same")(x)  # taps x 4
    x = keras.layers.Conv2D(8, 3, padding="same", groups=2)(x)  # taps x (4/2) x 8
    x = keras.layers.SeparableConv2D(6, 3, padding="same")(x)  # taps x 8 + 4*4 x 8*6
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(2)(x)  # 6 x 2
    model = keras.Model(inputs, outputs)
    # Taps on the "same" padding are not counted: along an axis of 8 outputs, a 3-tap
    # kernel reads 8 * 3 - 2 pixels at stride 1; at stride 2 (4 outputs, padded after
    # only) 4 * 3 - 1; on 4 outputs at stride 1, 4 * 3 - 2.
    assert forward_macs(model) == (22 * 22 * 3 * 4 + 11 * 11 * 4 + 10 * 10 * 2 * 8
                                   + 10 * 10 * 8 + 4 * 4 * 8 * 6 + 6 * 2)


def test_the_floor_counts_each_frozen_prefix_once_per_weights_and_the_rest_per_epoch():
    from bench.floor import Execution, required_macs

    # A model of 100 multiply-adds per image; the first 1 and 2 blocks take 30 and 70.
    prefix = [0, 30, 70]
    executions = [
        Execution(init="pretrained", seed=1, frozen_blocks=2, epochs=2),
        Execution(init="pretrained", seed=2, frozen_blocks=1, epochs=2),  # on the way to 2
        Execution(init="random", seed=1, frozen_blocks=1, epochs=2),
        Execution(init="random", seed=2, frozen_blocks=0, epochs=3),
    ]
    train, validation, test = 10, 5, 4
    # Rest per execution: 3 passes per training image and epoch, validation per epoch, test.
    rests = [30 * (3 * 2 * 10 + 2 * 5 + 4), 70 * (3 * 2 * 10 + 2 * 5 + 4),
             70 * (3 * 2 * 10 + 2 * 5 + 4), 100 * (3 * 3 * 10 + 3 * 5 + 4)]
    # Frozen features once per weights over all 19 images: pretrained to block 2, random
    # seed 1 to block 1; random seed 2 freezes nothing.
    prefixes = (70 + 30 + 0) * 19
    assert required_macs(executions, model_macs=100, prefix=prefix, train=train,
                         validation=validation, test=test) == sum(rests) + prefixes


def test_prefix_macs_of_a_backbone_add_up_to_its_blocks():
    from bench.floor import forward_macs, prefix_macs
    from bench.models.backbones import backbone_spec
    from bench.models.model import assemble

    parts = assemble(backbone_spec("resnet-mini"), image_size=32, num_classes=5, init="random")
    prefix = prefix_macs(parts)
    assert len(prefix) == len(parts.blocks) + 1 and prefix[0] == 0
    assert all(a < b for a, b in zip(prefix, prefix[1:]))
    # Every block frozen is the whole backbone; the head is the dense layer (64 x 5).
    assert prefix[-1] == forward_macs(parts.backbone)
    assert forward_macs(parts.model) - prefix[-1] == parts.model.layers[-1].kernel.shape[0] * 5


def test_the_matrix_multiply_rate_is_a_plausible_number():
    from bench.floor import matmul_rate

    rate = matmul_rate(size=256, tries=2, least_seconds=0.05)
    assert 1e8 < rate < 1e15  # multiply-adds per second: between a slow core and a GPU
    # A mixed-precision study's floor is priced at the bfloat16 rate.
    assert 1e8 < matmul_rate(size=256, tries=2, least_seconds=0.05, dtype="bfloat16") < 1e15


def test_plain_kerastuners_score_is_the_mean_of_each_executions_best_epoch(tmp_path):
    """perf.json names plain KerasTuner's best validation accuracy as the suite's is
    computed: each execution's best epoch, then the mean over executions. KerasTuner's own
    trial score, recomputed here from every execution's epochs."""
    import keras
    import keras_tuner
    import numpy as np

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 4)).astype("float32"), rng.integers(0, 2, 64)
    # Seeded: unseeded, the three executions' curves depended on what ran before in the
    # process, and once made both readings equal (then the test would tell them apart by
    # nothing).
    keras.utils.set_random_seed(0)
    curves = []

    class Curve(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            curves.append([])

        def on_epoch_end(self, epoch, logs=None):
            curves[-1].append(logs["val_accuracy"])

    def build(hp):
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        model.compile(optimizer=keras.optimizers.SGD(0.5), metrics=["accuracy"],
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return model

    tuner = keras_tuner.RandomSearch(build, objective="val_accuracy", max_trials=1,
                                     executions_per_trial=3, directory=str(tmp_path),
                                     overwrite=True)
    tuner.search(x[:48], y[:48], validation_data=(x[48:], y[48:]), epochs=4, verbose=0,
                 callbacks=[Curve()])
    best = np.asarray(curves).max(axis=1)
    assert len(curves) == 3
    assert tuner.oracle.get_best_trials(1)[0].score == pytest.approx(best.mean())
    # The other reading (the best epoch of the mean curve) gives another number here.
    assert np.asarray(curves).mean(axis=0).max() != pytest.approx(best.mean())


def test_plain_kerastuner_draws_a_new_batch_order_every_epoch():
    """perf's plain side trains as unseeded Keras and the suite do, on a new order each
    epoch. Seeded with keras.utils.set_random_seed alone, Keras on TensorFlow trained on
    one order throughout, and its accuracy rose by that, not by anything the suite did."""
    import keras
    import numpy as np

    from bench.perf import seed_plain_kerastuner

    def orders(seed_with) -> list[list[tuple]]:
        seen = []

        class Recording(keras.Model):
            def train_step(self, data):
                seen.append(tuple(np.asarray(data[1]).tolist()))
                return super().train_step(data)

        seed_with(5)
        inputs = keras.Input((1,))
        model = Recording(inputs, keras.layers.Dense(1)(inputs))
        model.compile(optimizer="sgd", loss="mse", run_eagerly=True)
        x = np.arange(12, dtype="float32").reshape(12, 1)
        model.fit(x, x[:, 0], batch_size=4, epochs=3, shuffle=True, verbose=0)
        return [seen[i:i + 3] for i in (0, 3, 6)]

    if keras.backend.backend() == "tensorflow":
        same = orders(keras.utils.set_random_seed)
        assert same[0] == same[1] == same[2]  # what the plain side did before
    drawn = orders(seed_plain_kerastuner)
    assert all(sorted(sum(map(list, epoch), [])) == list(range(12)) for epoch in drawn)
    assert len({tuple(epoch) for epoch in drawn}) == 3


DERIVED_SPACE = textwrap.dedent('''
    from bench.space import SearchSpace, SpaceSettings


    class Derived(SearchSpace):
        description = "frozen depth conditional on init, derived for random"
        settings = SpaceSettings(epochs=1, repeats=1, frozen_blocks=2, head_lr=3e-3)

        def declare(self, hp, *, num_blocks):
            hp.Choice("init", ["pretrained", "random"])
            with hp.conditional_scope("init", ["pretrained"]):
                hp.Choice("frozen_blocks", [3])

        def value(self, hp, name):
            if name == "frozen_blocks" and hp.get("init") == "random":
                return 1  # derived: neither the empty cell nor the setting, 2
            return super().value(hp, name)
''')


def test_the_floor_counts_what_each_trial_built_not_its_table_cells(tmp_path, cache_dir):
    # Found by a new user: perf on a space with frozen_blocks conditional on init crashed
    # after both sides had run (int('') of an inactive cell) and wrote no perf.json. A
    # reviewer then saw that reading an empty cell as the setting misses a space whose
    # value() derives it: the floor must price what the builder used.
    import pandas as pd
    from conftest import IMAGE_SIZE

    from bench.floor import Execution, forward_macs, prefix_macs, required_macs
    from bench.perf import floor_seconds
    from bench.plan import RunSpec, plan_study
    from bench.runner import prepare_inputs, run_study
    from bench.tuning.hypermodel import FineTuneHyperModel

    (tmp_path / "spaces").mkdir()
    (tmp_path / "spaces" / "derived.py").write_text(DERIVED_SPACE)
    spec = RunSpec(space="derived", spaces_dir=tmp_path / "spaces", image_size=IMAGE_SIZE,
                   pretrain_epochs=3, cache_dir=cache_dir, results_dir=tmp_path, name="run")
    run = run_study(spec, log=lambda *_: None)
    epochs = pd.read_csv(run / "epochs.csv", dtype=str, keep_default_na=False)
    assert dict(zip(epochs["init"], epochs["frozen_blocks"])) == {"pretrained": "3",
                                                                  "random": ""}
    plan = plan_study(spec)
    data, weights, _ = prepare_inputs(plan.spec, settings=plan.settings,
                                      backbone=plan.backbone, hp=plan.hp,
                                      image_size=plan.image_size, log=lambda *_: None)
    parts = FineTuneHyperModel(plan.space, plan.model_inputs(data, weights)).build_parts(
        plan.hp.copy(), compile=False)
    seeds = dict(zip(epochs["init"], epochs["seed"].astype(int)))
    built = [Execution(init="pretrained", seed=seeds["pretrained"], frozen_blocks=3, epochs=1),
             Execution(init="random", seed=seeds["random"], frozen_blocks=1, epochs=1)]
    expected = required_macs(built, model_macs=forward_macs(parts.model),
                             prefix=prefix_macs(parts), train=len(data.train),
                             validation=len(data.validation), test=len(data.test))
    as_setting = required_macs([built[0], replace(built[1], frozen_blocks=2)],
                               model_macs=forward_macs(parts.model), prefix=prefix_macs(parts),
                               train=len(data.train), validation=len(data.validation),
                               test=len(data.test))
    assert as_setting != expected
    assert floor_seconds(plan, data=data, weights=weights, suite_dir=run, rate=1.0) == expected


@pytest.mark.slow
def test_a_floor_that_cannot_be_counted_keeps_both_sides(tmp_path, tiny_spaces_dir, cache_dir,
                                                         monkeypatch):
    # The floor is counted after both sides have run: a failure there lost them all.
    from conftest import IMAGE_SIZE

    import bench.perf
    from bench.plan import RunSpec

    def broken(*args, **kwargs):
        raise ZeroDivisionError("on purpose")

    monkeypatch.setattr(bench.perf, "floor_seconds", broken)
    lines = []
    spec = RunSpec(space="tiny", spaces_dir=tiny_spaces_dir, image_size=IMAGE_SIZE, epochs=1,
                   pretrain_epochs=3, cache_dir=cache_dir, results_dir=tmp_path, name="p")
    perf = json.loads(bench.perf.run_perf(spec, log=lines.append).read_text())
    assert perf["floor_seconds"] is None and perf["suite_over_floor"] is None
    assert perf["floor_error"] == "ZeroDivisionError: on purpose"
    assert perf["plain_kerastuner"]["executions"] == perf["suite"]["executions"] == 4
    assert perf["speedup"] > 0
    assert any(line.startswith("perf: the arithmetic floor could not be counted "
                               "(ZeroDivisionError: on purpose)") for line in lines)
    assert "its arithmetic floor not counted" in lines[-2]


def test_the_suites_side_names_the_trials_tied_with_its_best(tiny_run, tmp_path):
    # The report lists tied trials; perf.json took the first and said nothing of the rest.
    import shutil

    import pandas as pd

    from bench.perf import suite_side

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    trials = pd.read_csv(run / "trials.csv", dtype={"trial_id": str})
    first, second = sorted(trials["trial_id"])
    alone = suite_side(run, train_images=100)
    assert alone.tied_with == ()
    # As if both trials had scored the same count of correct images.
    trials["best_val_accuracy"] = trials["best_val_accuracy"].max()
    trials.to_csv(run / "trials.csv", index=False)
    side = suite_side(run, train_images=100)
    assert side.tied_with == (second,)
    assert side.as_dict()["tied_with"] == [second]
    epochs = pd.read_csv(run / "epochs.csv", dtype={"trial_id": str})
    mine = epochs[epochs["trial_id"] == first].groupby("repeat")["val_accuracy"].max()
    assert side.best_executions == pytest.approx(tuple(mine), abs=1e-6)


@pytest.mark.slow
def test_perf_stopped_by_sigterm_says_the_comparison_is_incomplete(tmp_path):
    # Found by an audit: SIGTERM ended perf without a word, its suite run left "running";
    # Ctrl-C advised resuming the suite's run, which finishes one side alone.
    import signal
    import subprocess
    import sys

    from conftest import ROOT

    env = dict(os.environ, FINETUNE_BENCH_CACHE=str(tmp_path / "cache"), PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "run_bench.py"), "perf", "--image-size", "16", "--epochs",
         "1", "--repeats", "2", "--max-trials", "2", "--pretrain-epochs", "2",
         "--results-dir", str(tmp_path), "--name", "p"], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in process.stdout:
            if line.startswith("perf: now plain KerasTuner"):
                process.send_signal(signal.SIGTERM)
                break
        _, err = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err[-2000:]
    assert err.strip().splitlines()[-1] == (
        "interrupted: perf's comparison is incomplete and perf.json was not written; run "
        f"perf again (what ran is kept in {tmp_path / 'p'}: give another --name or remove it)")
    assert not (tmp_path / "p" / "perf.json").exists()
    assert json.loads((tmp_path / "p" / "suite" / "run.json").read_text())["status"] == \
        "completed"


@pytest.mark.parametrize("make", [
    lambda keras: keras.layers.Conv2D(1, 3, padding="same"),
    lambda keras: keras.layers.Conv2D(1, 3, strides=2, padding="same"),
    lambda keras: keras.layers.Conv2D(1, 4, strides=2, padding="same"),
    lambda keras: keras.layers.Conv2D(1, 3, dilation_rate=2, padding="same"),
    lambda keras: keras.layers.Conv2D(1, 3, strides=2, padding="valid"),
    lambda keras: keras.layers.DepthwiseConv2D(5, strides=2, padding="same"),
])
@pytest.mark.parametrize("zero_padding", [None, ((1, 2), (3, 0))])
def test_a_convolution_is_charged_the_taps_that_read_an_input_pixel(make, zero_padding):
    # Found by a new user: taps on padding were charged, 11% of resnet-mini's work at 32 px.
    # Measured by Keras itself: a kernel of ones over an image of ones sums, at each output,
    # the taps that read a pixel (padding is zeros).
    import keras
    import numpy as np

    from bench.floor import layer_macs

    inputs = keras.Input((7, 9, 1))
    x = inputs if zero_padding is None else keras.layers.ZeroPadding2D(zero_padding)(inputs)
    conv = make(keras)
    outputs = conv(x)
    model = keras.Model(inputs, outputs)
    conv.set_weights([np.ones_like(w) if w.ndim > 1 else np.zeros_like(w)
                      for w in conv.get_weights()])
    measured = model.predict(np.ones((1, 7, 9, 1), np.float32), verbose=0).sum()
    assert layer_macs(conv) == round(float(measured))

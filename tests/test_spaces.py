"""Search spaces: every shipped file honours the contract; broken files get clear messages."""

import re
import shutil
import textwrap
from pathlib import Path

import keras_tuner
import numpy as np
import pandas as pd
import pytest
from conftest import IMAGE_SIZE, ROOT
from test_cli import run_bench

from bench.errors import BenchError
from bench.space import DEFAULT_SPACES_DIR, declared_hyperparameters, discover, load_space

# Room for a space's own crop (d2l-recipe crops 224/256 of the input) above resnet-mini's 16.
CONTRACT_SIZE = 20


@pytest.fixture(scope="module")
def contract_digits():
    from bench.data.datasets import DataRequest, load_dataset

    return load_dataset("digits", DataRequest(image_size=CONTRACT_SIZE, seed=1))


SHIPPED = sorted(p.stem for p in DEFAULT_SPACES_DIR.glob("*.py") if not p.name.startswith("_"))


def test_discovery_lists_every_file_but_private_ones():
    assert set(discover()) == set(SHIPPED)
    assert {"seed", "frozen-depth", "head-lr", "init", "two-phase"} <= set(SHIPPED)
    assert "_template" not in discover()


@pytest.mark.parametrize("name", SHIPPED)
def test_space_contract(name, tmp_path, cache_dir, contract_digits):
    """Loads, declares, builds with defaults, and runs one trial of two epochs."""
    from bench.models.backbones import BACKBONES
    from bench.models.pretrain import pretrain
    from bench.plan import RunSpec
    from bench.results import RunDir, read_epochs, read_run
    from bench.runner import run_study
    from bench.tuning.hypermodel import FineTuneHyperModel, ModelInputs

    space = load_space(name)
    assert space.description and isinstance(space.version, int)
    hp = declared_hyperparameters(space, num_blocks=4)
    names = [p.name for p in hp.space]
    assert names and all(re.fullmatch(r"[a-z][a-z0-9_]*", n) for n in names)
    for parameter in hp.space:
        if "lr" in parameter.name and type(parameter).__name__ == "Float":
            assert parameter.sampling == "log", f"{parameter.name} should be log-scaled"

    defaults = keras_tuner.HyperParameters()
    space.declare(defaults, num_blocks=4)
    if "init" in defaults.values and defaults.values["init"] == "imagenet":
        defaults.values["init"] = "random"  # resnet-mini has no ImageNet weights
    weights = pretrain(BACKBONES["resnet-mini"], contract_digits, image_size=CONTRACT_SIZE, seed=1,
                       epochs=1, cache_dir=cache_dir, log=lambda *_: None).weights_path
    model = FineTuneHyperModel(space, ModelInputs(
        backbone=BACKBONES["resnet-mini"], image_size=CONTRACT_SIZE, num_classes=3,
        num_blocks=4, pretrained_weights=weights)).build(defaults)
    images = np.zeros((2, CONTRACT_SIZE, CONTRACT_SIZE, 3))
    assert model.predict(images, verbose=0).shape == (2, 3)

    # Offline and fast: bundled digits on resnet-mini, and random weights where the
    # space would load ImageNet's (no network here; a preset's real run is a GPU job).
    needs_imagenet = "imagenet" in [*_choices(hp, "init"), space.settings.init]
    run_path = run_study(RunSpec(space=name, image_size=CONTRACT_SIZE, epochs=2, repeats=1,
                                 max_trials=1, pretrain_epochs=1, results_dir=tmp_path,
                                 name="contract", cache_dir=cache_dir, dataset="digits",
                                 backbone="resnet-mini",
                                 init="random" if needs_imagenet else None),
                         log=lambda *_: None)
    run = read_run(RunDir(run_path))
    assert run["status"] == "completed"
    assert run["space"] == run["space"] | {"name": name, "version": space.version}
    rows = read_epochs(RunDir(run_path))
    assert len(rows) == 2
    assert set(names) <= set(rows.columns)
    for column in space.epoch_columns:
        assert rows[column].notna().all()


def _choices(hp, name):
    return [v for p in hp.space if p.name == name for v in getattr(p, "values", [])]


def test_two_phase_records_both_phases_and_unfreezes_in_the_second(tmp_path, cache_dir):
    from bench.plan import RunSpec
    from bench.results import RunDir, read_epochs
    from bench.runner import run_study

    run_path = run_study(RunSpec(space="two-phase", image_size=IMAGE_SIZE, epochs=4,
                                 repeats=1, max_trials=1, pretrain_epochs=1,
                                 results_dir=tmp_path, name="tp", cache_dir=cache_dir),
                         log=lambda *_: None)
    rows = read_epochs(RunDir(run_path))
    assert rows["epoch"].tolist() == [1, 2, 3, 4]
    assert rows["phase"].tolist() == [1, 1, 2, 2]
    first, second = rows.iloc[0], rows.iloc[-1]
    assert second["trainable_params"] > first["trainable_params"]
    assert second["frozen_layers"] < first["frozen_layers"]


def test_two_phase_refuses_a_single_epoch(tmp_path):
    from bench.plan import RunSpec
    from bench.runner import run_study

    with pytest.raises(BenchError, match="two-phase needs --epochs 2 or more"):
        run_study(RunSpec(space="two-phase", epochs=1, results_dir=tmp_path))


def _readme_space() -> tuple[str, str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Add a search space", 1)[1]
    name = re.search(r"search_spaces/([a-z0-9-]+)\.py", section).group(1)
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    return name, code


@pytest.mark.slow
def test_the_readme_example_space_works_as_written(tmp_path):
    name, code = _readme_space()
    spaces = tmp_path / "spaces"
    shutil.copytree(DEFAULT_SPACES_DIR, spaces)
    (spaces / f"{name}.py").write_text(code)

    listing = run_bench("list", "--spaces-dir", str(spaces))
    assert f"  {name} (v1): " in listing.stdout
    result = run_bench("run", "--space", name, "--spaces-dir", str(spaces), "--image-size",
                       str(IMAGE_SIZE), "--epochs", "2", "--repeats", "1",
                       "--pretrain-epochs", "1", "--results-dir", str(tmp_path / "results"),
                       "--name", "readme")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = pd.read_csv(tmp_path / "results" / "readme" / "epochs.csv")
    assert len(rows) == 6 * 1 * 2  # 2 x 3 grid, 1 repeat, 2 epochs
    assert sorted(rows["frozen_blocks"].unique()) == [0, 4]
    assert sorted(rows["head_lr"].round(6).unique()) == [0.001, 0.01, 0.1]


def _with_settings(settings: str) -> str:
    """A space that is right but for its ``SpaceSettings(settings)``."""
    return textwrap.dedent(f'''
        from bench.space import SearchSpace, SpaceSettings
        class A(SearchSpace):
            description = "a"
            settings = SpaceSettings({settings})
            def declare(self, hp, *, num_blocks):
                hp.Choice("head_lr", [0.01, 0.001])
    ''')


BROKEN = {
    "syntax": ("def declare(:\n", "failed to import: syntax error at line 1"),
    "no-class": ("x = 1\n", "must define exactly one subclass of bench.space.SearchSpace; "
                            "found none"),
    "two-classes": (textwrap.dedent('''
        from bench.space import SearchSpace
        class A(SearchSpace):
            description = "a"
        class B(SearchSpace):
            description = "b"
    '''), "found A, B"),
    "bad-type": (textwrap.dedent('''
        from bench.space import SearchSpace
        class A(SearchSpace):
            description = "a"
            def declare(self, hp, *, num_blocks):
                hp.Integer("frozen_blocks", 0, num_blocks)
    '''), "declare() failed: line 6: AttributeError"),
    "unknown-name": (textwrap.dedent('''
        from bench.space import SearchSpace
        class A(SearchSpace):
            description = "a"
            def declare(self, hp, *, num_blocks):
                hp.Choice("dropout", [0.1, 0.5])
    '''), "hyperparameter 'dropout' is not used by the model builder"),
    # Found by a new user: KerasTuner kept the Choice; list showed it and no warning.
    "declared-twice": (textwrap.dedent('''
        from bench.space import SearchSpace
        class A(SearchSpace):
            description = "a"
            def declare(self, hp, *, num_blocks):
                hp.Choice("head_lr", [0.1, 0.01])
                hp.Float("head_lr", 0.001, 0.1)
    '''), "declare() declares 'head_lr' twice (hp.Choice, then hp.Float with other "
         "values): KerasTuner keeps the first and ignores the second; declare each name once"),
    "no-declare": (textwrap.dedent('''
        from bench.space import SearchSpace
        class A(SearchSpace):
            description = "a"
    '''), "A has no declare(); a space declares the hyperparameters it varies"),
    "misspelt-hook": (textwrap.dedent('''
        from bench.space import SearchSpace
        class A(SearchSpace):
            description = "a"
            def declare(self, hp, *, num_blocks):
                hp.Choice("head_lr", [0.01, 0.001])
            def build_heads(self, features, *, num_classes, hp):
                return features
    '''), "A.build_heads() is not a hook, so nothing calls it; did you mean build_head()? "
         "(a helper of your own: start its name with _)"),
    **{name: (_with_settings(settings), message) for name, settings, message in [
        ("zero-repeats", "repeats=0", "settings repeats=0 must be an int of 1 or more"),
        ("negative-batch", "batch_size=-3", "settings batch_size=-3 must be an int of 1 or more"),
        ("float-epochs", "epochs=2.5, max_trials=0",
         "settings epochs=2.5 must be an int of 1 or more"),
        ("zero-trials", "max_trials=0",
         "settings max_trials=0 must be an int of 1 or more (or None)"),
    ]},
    "no-description": (textwrap.dedent('''
        from bench.space import SearchSpace
        class A(SearchSpace):
            def declare(self, hp, *, num_blocks):
                hp.Choice("init", ["random"])
    '''), "A needs a one-line description"),
}


@pytest.fixture
def broken_dir(tmp_path):
    folder = tmp_path / "spaces"
    folder.mkdir()
    shutil.copy(DEFAULT_SPACES_DIR / "seed.py", folder / "seed.py")
    for name, (code, _) in BROKEN.items():
        (folder / f"{name}.py").write_text(code)
    return folder


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_broken_space_gets_a_message_naming_the_file_and_the_problem(broken_dir, name):
    expected = BROKEN[name][1]
    with pytest.raises(BenchError) as caught:
        space = load_space(name, broken_dir)
        declared_hyperparameters(space, num_blocks=4)
    message = str(caught.value)
    assert f"{broken_dir / name}.py" in message
    assert expected in message


def test_list_still_shows_the_good_spaces_next_to_broken_ones(broken_dir):
    result = run_bench("list", "--spaces-dir", str(broken_dir))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "seed (v2)" in result.stdout
    for name in BROKEN:
        assert f"  {name}: cannot be loaded: " in result.stdout


def test_running_a_broken_space_is_a_user_error(broken_dir, tmp_path):
    result = run_bench("run", "--space", "unknown-name", "--spaces-dir", str(broken_dir),
                       "--results-dir", str(tmp_path / "r"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "'dropout' is not used" in result.stderr


def test_grid_on_a_continuous_space_suggests_what_to_do(tmp_path):
    folder = tmp_path / "spaces"
    folder.mkdir()
    (folder / "cont.py").write_text(textwrap.dedent('''
        from bench.space import SearchSpace
        class A(SearchSpace):
            description = "continuous"
            def declare(self, hp, *, num_blocks):
                hp.Float("head_lr", 1e-4, 1e-1, sampling="log")
    '''))
    result = run_bench("run", "--space", "cont", "--spaces-dir", str(folder), "--tuner",
                       "grid", "--results-dir", str(tmp_path / "r"))
    assert result.returncode == 2
    assert "grid search needs finite hyperparameters, but head_lr is continuous" in result.stderr
    assert "--tuner random, bayesian or hyperband" in result.stderr


def _space_declaring(tmp_path, name: str, *, epoch_columns=()) -> Path:
    folder = tmp_path / "named"
    folder.mkdir(exist_ok=True)
    (folder / "named.py").write_text(textwrap.dedent(f'''
        from bench.space import SearchSpace
        class Named(SearchSpace):
            description = "a hyperparameter named {name}"
            extra_hyperparameters = ({name!r},)
            epoch_columns = {tuple(epoch_columns)!r}
            def declare(self, hp, *, num_blocks):
                hp.Choice({name!r}, [1, 2])
    '''))
    return folder


def test_a_hyperparameter_named_like_a_column_of_the_tables_is_refused(tmp_path, tiny_run):
    """Found by a new user: 'epoch', 'seed', 'status', 'loss' and others were accepted and
    then overwrote those columns (or crashed the run after training). The names are the
    headers a real run wrote, and names the analysis adds to its tables ('mean', 'metric',
    'n' ended the run in a traceback, 'configuration' passed silently)."""
    headers = [*pd.read_csv(tiny_run / "epochs.csv", nrows=0).columns,
               *pd.read_csv(tiny_run / "trials.csv", nrows=0).columns]
    builder = {"init", "frozen_blocks", "head_lr", "body_lr_scale"}
    # A reviewer's: 'index' broke the Hyperband bookkeeping, 'score' replaced the
    # hyperparameter by the score, an init's name ('random') the pairing of inits.
    names = sorted({*headers, "phase", "mean", "metric", "n", "configuration", "index",
                    "score", "random", "pretrained", "imagenet"} - builder)
    assert {"epoch", "seed", "status", "loss", "run_id", "best_val_accuracy"} <= set(names)
    for name in names:
        with pytest.raises(BenchError, match=rf"hyperparameter '{name}' has the name of a "
                                             r"column of (epochs|trials)\.csv|the analysis"):
            declared_hyperparameters(load_space("named", _space_declaring(tmp_path, name)),
                                     num_blocks=4)
    declared_hyperparameters(load_space("named", _space_declaring(tmp_path, "units")),
                             num_blocks=4)


def test_a_space_epoch_column_named_like_a_table_column_or_its_hyperparameter_is_refused(
        tmp_path):
    folder = _space_declaring(tmp_path, "units", epoch_columns=["phase"])  # what it is for
    declared_hyperparameters(load_space("named", folder), num_blocks=4)
    folder = _space_declaring(tmp_path, "units", epoch_columns=["val_loss"])
    with pytest.raises(BenchError, match="epoch column 'val_loss' has the name of a column "
                                         r"of epochs\.csv; give it another name"):
        declared_hyperparameters(load_space("named", folder), num_blocks=4)
    # A column every run has (the builder's), declared or not, and the space's own.
    for name in ("head_lr", "units"):
        folder = _space_declaring(tmp_path, "units", epoch_columns=[name])
        with pytest.raises(BenchError, match=f"'{name}' is both a hyperparameter column and "
                                             "an epoch column"):
            declared_hyperparameters(load_space("named", folder), num_blocks=4)
    folder = _space_declaring(tmp_path, "units", epoch_columns=["phase", "phase"])
    with pytest.raises(BenchError, match="epoch_columns names 'phase' twice"):
        declared_hyperparameters(load_space("named", folder), num_blocks=4)


TEXT_NUMBERS_SPACE = '''
import keras

from bench.space import SearchSpace, SpaceSettings


class TextNumbers(SearchSpace):
    description = "text values that read as one number: '1' and '01'"
    version = 1
    settings = SpaceSettings(init="random", frozen_blocks=0, epochs=1, repeats=1)
    extra_hyperparameters = ("width",)

    def declare(self, hp, *, num_blocks):
        hp.Choice("width", ["1", "01"])

    def build_head(self, features, *, num_classes, hp):
        pooled = keras.layers.GlobalAveragePooling2D()(features)
        hidden = keras.layers.Dense(8 if hp.get("width") == "1" else 16)(pooled)
        return keras.layers.Dense(num_classes, activation="softmax")(hidden)
'''


def test_text_values_that_read_as_one_number_stay_two_configurations(tmp_path, cache_dir):
    """Found by a new user: Choice("width", ["1", "01"]) read back as the number 1 for
    both, so the report showed one value, took trial 0001 for a longer run of trial 0000
    and left it out of every number."""
    from bench.analysis.report import write_outputs
    from bench.analysis.tables import load_tables
    from bench.plan import RunSpec
    from bench.results import RunDir, read_epochs, read_trials
    from bench.runner import run_study

    spaces = tmp_path / "spaces"
    spaces.mkdir()
    (spaces / "textnumbers.py").write_text(TEXT_NUMBERS_SPACE)
    path = run_study(RunSpec(space="textnumbers", spaces_dir=spaces, image_size=IMAGE_SIZE,
                             train_per_class=10, results_dir=tmp_path / "results",
                             name="text", cache_dir=cache_dir), log=lambda *_: None)
    run = RunDir(path)
    trials = read_trials(run)
    assert list(trials["width"]) == ["1", "01"]  # the grid's order, as declared
    # The two widths are two models (hidden layers of 8 and 16 units):
    params = read_epochs(run).set_index("width")["trainable_params"]
    assert params["01"] > params["1"]
    tables = load_tables([path])
    assert tables.superseded.empty
    assert sorted(tables.complete["width"]) == ["01", "1"]
    write_outputs([path], log=lambda *_: None)
    report = (path / "report.md").read_text()
    assert "one value in every execution" not in report
    assert "counted as trial" not in report
    if (path / "trials.parquet").exists():
        assert list(pd.read_parquet(path / "trials.parquet")["width"]) == ["1", "01"]

    def copied(name: str, *, values: list, cells: dict) -> Path:
        """The run copied, its width declared as ``values`` and its cells rewritten."""
        import json

        copy = shutil.copytree(path, tmp_path / name)
        record = json.loads((copy / "run.json").read_text())
        record["run_id"] = name
        for declared in record["space"]["hyperparameters"]:
            if declared["name"] == "width":
                declared["values"], declared["default"] = values, values[0]
        (copy / "run.json").write_text(json.dumps(record))
        for table in ("epochs", "trials"):
            (copy / f"{table}.parquet").unlink(missing_ok=True)
            rows = pd.read_csv(copy / f"{table}.csv", dtype=str, keep_default_na=False)
            rows["width"] = rows["width"].replace(cells)
            if "run_id" in rows:
                rows["run_id"] = name
            rows.to_csv(copy / f"{table}.csv", index=False)
        return copy

    # Found in review: joined with a run that declared the widths as numbers 1 and 10,
    # its 1 and this run's "1" are one value (one colour in a figure), not two.
    numbers = copied("numbers", values=[1, 10], cells={"01": "10"})
    joined = load_tables([path, numbers]).complete
    assert sorted(set(joined["width"])) == ["01", "1", "10"]
    # A hand edit that makes "01" read "1" in trials.csv only is refused, not passed as
    # the same number.
    edited = copied("edited", values=["1", "01"], cells={})
    trials = pd.read_csv(edited / "trials.csv", dtype=str, keep_default_na=False)
    trials["width"] = "1"
    trials.to_csv(edited / "trials.csv", index=False)
    with pytest.raises(BenchError, match="trial 0001's width is 1 in trials.csv but 01"):
        load_tables([edited])


def test_a_joined_runs_numbers_read_as_its_tables_wrote_them():
    """Found in review: a run that declared Choice("dropout", [0.5, 1.0]) joined with one
    that declared ["0.5", "1.0"] gave 1.0 as "1", a third value."""
    from bench.analysis.tables import _as_text

    def run(values):
        return {"space": {"hyperparameters": [{"name": "width", "values": values}]}}

    table = pd.DataFrame({"width": [1.0, 0.5, float("nan")], "seed": [1, 2, 3]})
    floats = _as_text(table, {"width"}, run([0.5, 1.0]))
    assert floats["width"].tolist()[:2] == ["1.0", "0.5"] and pd.isna(floats["width"][2])
    assert floats["seed"].tolist() == [1, 2, 3]  # only the text columns
    # Ints read back as floats (a column with empty cells) are written as ints.
    assert _as_text(table, {"width"}, run([1, 10]))["width"].tolist()[0] == "1"
    assert _as_text(table, {"width"}, {})["width"].tolist()[:2] == ["1", "0.5"]


def test_the_columns_read_as_text_are_the_hyperparameters_declared_with_text():
    import keras_tuner

    from bench.analysis.validate import text_hyperparameters

    hp = keras_tuner.HyperParameters()
    hp.Choice("init", ["pretrained", "random"])
    hp.Choice("width", ["1", "01"])
    hp.Choice("units", [8, 16])
    hp.Float("head_lr", 1e-3, 1e-1, sampling="log")
    hp.Boolean("bn")
    hp.Fixed("loss", "1.0")
    hp.Fixed("frozen_blocks", 2)
    declared = [p.get_config() | {"type": type(p).__name__} for p in hp.space]
    run = {"space": {"hyperparameters": declared}}
    assert text_hyperparameters(run) == ["init", "width", "loss"]
    assert text_hyperparameters({}) == []  # an older or hand-made run.json: as pandas reads


def test_a_value_with_no_value_in_this_trial_says_which_condition_it_lacks():
    """Found by a new user: "AttributeError: 'SpaceSettings' object has no attribute
    'momentum'"; from review, a name declared under two conditions named the first only."""
    from bench.space import HyperparameterNotSet, SearchSpace

    hp = keras_tuner.HyperParameters()
    hp.Choice("optimizer_name", ["Adam", "SGD", "RMSprop"])
    with hp.conditional_scope("optimizer_name", ["SGD"]):
        hp.Choice("momentum", [0.0, 0.9])
    with hp.conditional_scope("optimizer_name", ["RMSprop"]):
        hp.Choice("momentum", [0.5])
    space = SearchSpace()
    assert hp.values == {"optimizer_name": "Adam"}
    with pytest.raises(HyperparameterNotSet) as caught:
        space.value(hp, "momentum")
    assert str(caught.value) == (
        "hyperparameter 'momentum' is not active in this trial: it is declared only where "
        "optimizer_name is 'SGD' or where optimizer_name is 'RMSprop', and here "
        "optimizer_name is 'Adam'; read it only under that condition")
    hp.values["optimizer_name"] = "SGD"
    with pytest.raises(HyperparameterNotSet, match="'momentum' is declared, but this "
                                                   "trial's hyperparameters hold no value"):
        space.value(hp, "momentum")
    hp.values["momentum"] = 0.9
    assert space.value(hp, "momentum") == 0.9
    assert space.value(hp, "head_lr") == space.settings.head_lr  # a setting: its value
    with pytest.raises(HyperparameterNotSet, match="'moment' is neither a hyperparameter "
                                                   "the space declares nor a field of its "
                                                   r"settings \(dataset, backbone, "):
        space.value(hp, "moment")

"""The Python README shows runs as written on a run's tables."""

import re
from pathlib import Path

import pandas as pd

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_block(after_heading: str) -> str:
    """The first ```python block after the heading ``after_heading``."""
    text = README.read_text()
    section = text[text.index(after_heading):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_epochs_csv_snippet_gives_each_configurations_mean_and_sd_over_seeds(
        tiny_run, tmp_path):
    # The tiny run's trials again at a second head_lr, 0.2 lower: a snippet that pooled
    # the head learning rates would mix the two in one mean and standard deviation.
    epochs = pd.read_csv(tiny_run / "epochs.csv", dtype={"trial_id": str},
                         keep_default_na=False)
    other = epochs.assign(trial_id=epochs["trial_id"] + "b", head_lr=0.1,
                          val_accuracy=epochs["val_accuracy"] - 0.2)
    pd.concat([epochs, other]).to_csv(tmp_path / "epochs.csv", index=False)
    code = readme_block("### Reading `epochs.csv`").replace(
        "results/<run-id>/epochs.csv", str(tmp_path / "epochs.csv"))
    scope: dict = {}
    exec(code, scope)  # noqa: S102 (the README's own code, run as a reader would)
    curves = scope["curves"]
    # A second path: each trial is one configuration, its repeats the seeds.
    both = pd.concat([epochs, other])
    by_trial = both.groupby(["trial_id", "epoch"])["val_accuracy"]
    assert len(curves) == by_trial.ngroups == 4 * 2  # 4 trials x 2 epochs
    assert sorted(curves["mean"].round(9)) == sorted(by_trial.mean().round(9))
    assert sorted(curves["std"].round(9)) == sorted(by_trial.std().round(9))


def test_the_layout_names_every_module_of_the_library():
    # Found in review: bench/tuning/probe.py was missing from README's Layout block.
    readme = README.read_text()
    layout = readme[readme.index("## Layout"):]
    layout = layout[:layout.index("```", layout.index("```") + 3)]
    named = set(re.findall(r"[\w]+\.py", layout))
    modules = {path.name for path in (README.parent / "bench").rglob("*.py")
               if path.name != "__init__.py"}
    assert modules - named == set()

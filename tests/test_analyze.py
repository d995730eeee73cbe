"""`analyze` rebuilds figures and reports from the tables alone, without Keras."""

import json
import re
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT, copy_as_another_run

FIGURES = ["accuracy_vs_epochs", "transfer_gain", "tuner_progress", "overfitting"]


def _analyze_without_keras(*paths, extra=()):
    code = ("import sys\nfrom bench.cli import main\n"
            f"code = main(['analyze', *{[str(p) for p in paths]!r}, *{list(extra)!r}])\n"
            "print('keras' in sys.modules, 'tensorflow' in sys.modules, code)\n")
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def test_analyze_rebuilds_everything_from_the_tables_alone(tiny_run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_run, copy, ignore=shutil.ignore_patterns("plots", "report.*",
                                                                  "tuner"))
    result = _analyze_without_keras(copy)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False False 0"
    for name in FIGURES:
        assert (copy / "plots" / f"{name}.png").stat().st_size > 5_000
        assert (copy / "plots" / f"{name}.svg").read_text().lstrip().startswith("<?xml")
    # Figures that do not apply say why instead of being drawn empty.
    assert "skipped: frozen_blocks was not varied" in result.stdout
    assert not (copy / "plots" / "transferability.png").exists()
    report = (copy / "report.md").read_text()
    assert "pretrained minus random validation accuracy" in report
    assert "Not drawn: frozen_blocks was not varied." in report
    # The tiny space's settings (conftest): half the backbone frozen, head at 3e-3.
    assert ("- Held fixed in every execution: frozen_blocks 2, head_lr 0.003, "
            "body_lr_scale 1\n") in report
    assert report == (tiny_run / "report.md").read_text()
    page = (copy / "report.html").read_text()
    assert page.count("src='data:image/png;base64,") == len(FIGURES)


def test_several_runs_are_reported_together_with_the_run_as_a_variable(tiny_run, tmp_path):
    second = tmp_path / "second"
    shutil.copytree(tiny_run, second)
    data = json.loads((second / "run.json").read_text())
    data["run_id"] = "second"
    (second / "run.json").write_text(json.dumps(data))
    out = tmp_path / "together"
    result = _analyze_without_keras(tiny_run, second, extra=("--out", str(out)))
    assert result.returncode == 0, result.stderr
    report = (out / "report.md").read_text()
    assert report.startswith("# Runs tiny, second")
    assert "What ran: tiny" in report and "What ran: second" in report
    assert (out / "plots" / "tuner_progress.png").exists()
    # Every figure that is not drawn says why, this one too (it was left out unsaid).
    assert not (out / "plots" / "overfitting.png").exists()
    assert "figure 'Overfitting' skipped: a joint report compares runs" in result.stdout
    assert "## Overfitting\n\nNot drawn: a joint report compares runs" in report


def test_parquet_copies_are_written_and_read_when_the_csvs_are_gone(tiny_run, tmp_path):
    pytest.importorskip("pyarrow")
    import pandas as pd

    from bench.results import RunDir, read_epochs, read_trials

    assert (tiny_run / "epochs.parquet").exists() and (tiny_run / "trials.parquet").exists()
    copy = tmp_path / "parquet-only"
    shutil.copytree(tiny_run, copy)
    expected_epochs = read_epochs(RunDir(copy))
    expected_trials = read_trials(RunDir(copy))
    (copy / "epochs.csv").unlink()
    (copy / "trials.csv").unlink()
    pd.testing.assert_frame_equal(read_epochs(RunDir(copy)), expected_epochs)
    pd.testing.assert_frame_equal(read_trials(RunDir(copy)), expected_trials)
    result = _analyze_without_keras(copy)
    assert result.returncode == 0, result.stderr
    assert (copy / "report.md").read_text() == (tiny_run / "report.md").read_text()


@pytest.mark.slow
def test_tensorboard_logs_hold_the_hparams_of_every_execution(tmp_path, tiny_spaces_dir,
                                                              cache_dir):
    from bench.plan import RunSpec
    from bench.runner import run_study

    said = []
    run = run_study(RunSpec(space="tiny", spaces_dir=tiny_spaces_dir, image_size=16,
                            epochs=1, repeats=2, pretrain_epochs=3, results_dir=tmp_path,
                            name="tb", cache_dir=cache_dir, tensorboard=True, together=True),
                    log=said.append)
    logs = run / "tensorboard"
    # KerasTuner numbers the executions from 0: repeat r logs to execution{r - 1}.
    executions = sorted(p.relative_to(logs).as_posix() for p in logs.glob("*/execution*"))
    assert [e.split("/")[1] for e in executions] == ["execution0", "execution1"] * 2
    # Found by a new user: asked for, training together was said "not asked for".
    assert "note: repeats trained one at a time: --tensorboard logs each execution's own " \
        "fit" in said
    events = list(logs.rglob("events.out.tfevents.*"))
    assert events and all(e.stat().st_size > 0 for e in events)


def test_the_analysis_package_imports_with_keras_tensorflow_and_jax_blocked():
    # A meta-path finder that refuses the three frameworks: any import of them, however
    # indirect, fails loudly instead of merely showing up in sys.modules.
    code = (
        "import importlib, pkgutil, sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('keras', 'tensorflow', 'jax'):\n"
        "            raise ImportError(f'blocked: {name}')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import bench.analysis\n"
        "names = [m.name for m in pkgutil.iter_modules(bench.analysis.__path__)]\n"
        "for name in names:\n"
        "    importlib.import_module(f'bench.analysis.{name}')\n"
        "import bench.results\n"
        "print(sorted(names))\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "'numbers'" in result.stdout and "'report'" in result.stdout


def test_two_runs_with_one_name_stay_apart_and_one_run_counts_once(tiny_run, tmp_path):
    import pandas as pd

    from bench.analysis.tables import load_tables
    from bench.errors import BenchError

    # The same --name in two results folders; in the second, the first trial failed.
    first, second = tmp_path / "a" / "tiny", tmp_path / "b" / "tiny"
    for copy in (first, second):
        copy_as_another_run(tiny_run, copy)
    trials = pd.read_csv(second / "trials.csv", dtype={"trial_id": str, "error": object})
    failed = trials["trial_id"].iloc[0]
    trials.loc[0, ["status", "error"]] = ["FAILED", "ValueError: broken"]
    # As the suite writes a failed trial: no scores.
    trials.loc[0, ["best_val_accuracy", "final_val_accuracy", "test_accuracy"]] = None
    trials.to_csv(second / "trials.csv", index=False)
    (second / "trials.parquet").unlink(missing_ok=True)
    epochs = pd.read_csv(tiny_run / "epochs.csv", dtype={"trial_id": str})
    tables = load_tables([first, second])
    assert [run["run_id"] for run in tables.runs] == [str(first), str(second)]
    complete = tables.complete
    assert len(complete[complete["run_id"] == str(first)]) == len(epochs)
    kept = complete[complete["run_id"] == str(second)]
    assert len(kept) == (epochs["trial_id"] != failed).sum() and failed not in set(
        kept["trial_id"])
    with pytest.raises(BenchError, match="again: give each run once"):
        load_tables([first, tmp_path / "a" / ".." / "a" / "tiny"])
    # The joint report names the run on every row that comes from one.
    from bench.analysis.report import build_report

    blocks = build_report(load_tables([first, second]), [])
    best = next(b.content for b in blocks if b.kind == "table")
    assert list(best.columns[:2]) == ["run_id", "trial_id"]
    failures = next(b.content for b in blocks if b.kind == "list" and any(
        "FAILED" in line for line in b.content))
    assert failures == [f"{second}: trial {failed}: FAILED: ValueError: broken"]


def test_a_copy_of_a_run_resumed_or_not_is_the_same_run(tiny_run, tmp_path):
    from bench.analysis.tables import load_tables
    from bench.errors import BenchError

    copy = tmp_path / "copy"
    shutil.copytree(tiny_run, copy)
    run = json.loads((copy / "run.json").read_text())
    refusal = (f"{copy} and {tiny_run} are one run (run_id {run['run_id']}, started "
               f"{run['started']}): one is a copy of the other, perhaps resumed further")
    with pytest.raises(BenchError, match=re.escape(refusal)):
        load_tables([tiny_run, copy])
    # Resumed in its new folder (as continue_run records it; tests/test_resume.py).
    first_process = run["process"]
    run.update(resumed=["2026-12-07T08:00:00+00:00"], earlier_processes=[{
        "search_seconds": run["search_seconds"], "process": first_process}],
        process={**first_process, "pid": first_process["pid"] + 7})
    (copy / "run.json").write_text(json.dumps(run))
    with pytest.raises(BenchError, match=re.escape(refusal)):
        load_tables([tiny_run, copy])
    result = _analyze_without_keras(tiny_run, copy, "--out", tmp_path / "joint")
    assert result.stdout.strip().splitlines()[-1] == "False False 2", result.stderr[-2000:]
    assert refusal in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "joint").exists()
    # Another run of that name, started in that second by another process: two runs.
    first_process["pid"] += 1
    (copy / "run.json").write_text(json.dumps(run))
    assert len(load_tables([tiny_run, copy]).runs) == 2


def test_analyze_writes_nothing_for_a_run_given_twice_or_out_with_one_run(tiny_run, tmp_path):
    copy = tmp_path / "runs" / "copy"
    shutil.copytree(tiny_run, copy)
    before = {p: p.stat().st_mtime_ns for p in copy.rglob("*")}
    for args in ([copy, tmp_path / "runs" / ".." / "runs" / "copy"],
                 [copy, "--out", tmp_path / "elsewhere"]):
        result = _analyze_without_keras(*args)
        assert result.stdout.strip().splitlines()[-1] == "False False 2", result.stderr[-2000:]
    assert "give each run once" in _analyze_without_keras(copy, copy).stderr
    assert {p: p.stat().st_mtime_ns for p in copy.rglob("*")} == before
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["copy"]
    assert not (tmp_path / "elsewhere").exists()


def _copy_with_dropout(tiny_run, folder, *, dropout_of_first_trial):
    """A copy of the tiny run as a run whose space also had a `dropout` hyperparameter:
    0.5 in every trial but the first, which holds ``dropout_of_first_trial``."""
    import pandas as pd

    shutil.copytree(tiny_run, folder)
    run = json.loads((folder / "run.json").read_text())
    run["run_id"] = folder.name
    run["columns"]["hyperparameters"].append("dropout")
    run["columns"]["varied"].append("dropout")
    (folder / "run.json").write_text(json.dumps(run))
    for name in ("epochs", "trials"):
        table = pd.read_csv(folder / f"{name}.csv", dtype={"trial_id": str, "error": object})
        first = table["trial_id"] == table["trial_id"].min()
        table["dropout"] = 0.5
        table.loc[first, "dropout"] = dropout_of_first_trial
        table.to_csv(folder / f"{name}.csv", index=False)
        (folder / f"{name}.parquet").unlink(missing_ok=True)
    return run


def test_a_joint_report_tells_a_hyperparameter_a_run_never_had_from_an_inactive_one(
        tiny_run, tmp_path):
    from bench.analysis.report import build_report
    from bench.analysis.tables import load_tables

    # In the copy, dropout is conditional and inactive in its first trial (empty cell);
    # the tiny run's space has no dropout at all (its run.json does not list it).
    _copy_with_dropout(tiny_run, tmp_path / "extra", dropout_of_first_trial=float("nan"))
    blocks = build_report(load_tables([tiny_run, tmp_path / "extra"]), [])
    trials = [b.content for b in blocks if b.kind == "table"][-1]
    cells = {(row.run_id, row.trial_id): row.dropout for row in trials.itertuples()}
    first, second = sorted({trial for _, trial in cells})
    assert cells == {("tiny", first): "not in space", ("tiny", second): "not in space",
                     ("extra", first): "inactive", ("extra", second): "0.5"}


def test_a_joint_report_says_when_its_runs_read_different_data(tiny_run, tmp_path):
    from bench.analysis.report import different_data_sentence
    from bench.analysis.tables import load_tables

    same = _copy_with_dropout(tiny_run, tmp_path / "same", dropout_of_first_trial=0.5)
    assert different_data_sentence(load_tables([tiny_run, tmp_path / "same"]).runs) is None
    # The same pictures at another image size have other arrays: not told as other data.
    resized = dict(same, run_id="resized", settings=dict(same["settings"], image_size=99),
                   dataset=dict(same["dataset"], sha256="0" * 64))
    assert different_data_sentence([same, resized]) is None
    other = dict(same, run_id="other", dataset=dict(same["dataset"], sha256="f" * 64))
    sentence = different_data_sentence([same, other])
    assert sentence.startswith("**Different data**")
    assert f"sha256 {same['dataset']['sha256'][:12]}" in sentence
    assert "sha256 ffffffffffff" in sentence


def test_a_joint_report_says_when_its_runs_ran_on_other_backends_or_precisions(tiny_run,
                                                                               tmp_path):
    # A TensorFlow and a JAX run, for real: tests/test_end_to_end.py.
    from bench.analysis.report import different_backends_sentence
    from bench.analysis.tables import load_tables

    same = _copy_with_dropout(tiny_run, tmp_path / "same", dropout_of_first_trial=0.5)
    runs = load_tables([tiny_run, tmp_path / "same"]).runs
    assert different_backends_sentence(runs) is None
    backend = runs[0]["backend"]
    mixed = dict(same, run_id="mixed",
                 arguments=dict(same["arguments"], precision="mixed_bfloat16"))
    assert (f"(tiny: `{backend}`; mixed: `{backend}` mixed_bfloat16)"
            in different_backends_sentence([runs[0], mixed]))


def test_a_joint_report_never_replaces_files_it_did_not_write(tiny_run, tmp_path):
    # Found by a new user: --out onto a folder with their own report.md replaced it.
    first, second = tmp_path / "a", tmp_path / "b"
    for copy in (first, second):
        copy_as_another_run(tiny_run, copy)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "report.md").write_text("my precious notes\n")
    result = _analyze_without_keras(first, second, extra=["--out", str(mine)])
    assert result.stdout.strip().splitlines()[-1] == "False False 2", result.stderr[-2000:]
    assert result.stderr.strip() == (
        f"error: --out {mine} holds files or folders that are not a joint report of analyze "
        "(report.md), and its report.md, report.html and plots/ would be replaced: give a "
        f"new or empty folder, such as {tmp_path / 'compare-a-b'}")
    assert (mine / "report.md").read_text() == "my precious notes\n"
    assert sorted(p.name for p in mine.iterdir()) == ["report.md"]
    # A folder of the user's is named as one.
    (mine / "photos").mkdir()
    result = _analyze_without_keras(first, second, extra=["--out", str(mine)])
    assert f"--out {mine} holds files or folders that are not a joint report of analyze " \
           "(photos/, report.md)" in result.stderr
    # An empty folder takes the report, and the report can be rebuilt there.
    joint = tmp_path / "joint"
    joint.mkdir()
    for _ in range(2):
        result = _analyze_without_keras(first, second, extra=["--out", str(joint)])
        assert result.stdout.strip().splitlines()[-1] == "False False 0", result.stderr[-2000:]
    assert sorted(p.name for p in joint.iterdir()) == ["plots", "report.html", "report.md"]
    # A Finder's .DS_Store beside it is no one's work.
    (joint / ".DS_Store").write_bytes(b"\0")
    result = _analyze_without_keras(first, second, extra=["--out", str(joint)])
    assert result.stdout.strip().splitlines()[-1] == "False False 0", result.stderr[-2000:]
    # A file of the user's beside an earlier joint report is not lost either.
    (joint / "notes.txt").write_text("mine\n")
    result = _analyze_without_keras(first, second, extra=["--out", str(joint)])
    assert result.stdout.strip().splitlines()[-1] == "False False 2"
    assert "(notes.txt, plots/, report.html, report.md)" in result.stderr

"""What the report's words and tables claim, on hand-made tables whose answer is known
by construction (an audit of 2026-12-06 recomputed every number of real runs and found
these gaps between the words and the numbers)."""

import numpy as np
import pandas as pd
import pytest

from bench.analysis import numbers, plots
from bench.analysis.figures import figures
from bench.analysis.report import build_report
from bench.analysis.run_facts import what_ran
from bench.analysis.tables import Tables


def _tables(rows: list[dict], scores: dict[tuple[str, str], float], *,
            runs: list[str], varied: list[str]) -> Tables:
    """Tables as ``load_tables`` builds them: complete rows, the longest execution of
    each configuration and seed kept."""
    epochs = pd.DataFrame(rows)
    trials = (epochs.drop(columns=["repeat", "seed", "epoch", "val_accuracy", "accuracy"])
              .drop_duplicates(["run_id", "trial_id"]))
    trials = trials.assign(status="COMPLETED", seconds=1.0,
                           best_val_accuracy=[scores[(r, t)] for r, t in
                                              zip(trials["run_id"], trials["trial_id"])],
                           final_val_accuracy=0.5, test_accuracy=0.5)
    kept, superseded = [], []
    for run in runs:
        part, dropped = numbers.longest_executions(epochs[epochs["run_id"] == run],
                                                   configuration=varied)
        kept.append(part)
        superseded.append(dropped)
    info = [{"run_id": run, "status": "completed", "space": {"name": "s"},
             "settings": {"dataset": "d"},
             "columns": {"hyperparameters": varied, "varied": varied}} for run in runs]
    return Tables(runs=info, epochs=epochs, trials=trials,
                  complete=pd.concat(kept, ignore_index=True),
                  superseded=pd.concat(superseded, ignore_index=True))


def _rows(run: str, trial: str, score: float, *, epochs: int = 2, seeds=(1, 2), **hp):
    return [{"run_id": run, "trial_id": trial, "repeat": seed, "seed": seed, "epoch": epoch,
             **hp, "val_accuracy": score, "accuracy": min(score + 0.05, 1.0)}
            for seed in seeds for epoch in range(1, epochs + 1)]


def _best_table(blocks) -> pd.DataFrame:
    at = next(i for i, b in enumerate(blocks)
              if b.kind == "p" and str(b.content).startswith("Best configuration"))
    return blocks[at + 1].content


def test_the_best_table_lists_every_tied_trial_though_there_are_more_than_ten():
    # Six trials tie at 1.0 for pretrained and six at 0.9 for random: the tie lines said
    # "all are listed" over a table cut at 10 rows (0010 and 0011 were missing).
    rows, scores = [], {}
    for i in range(12):
        init, score = ("pretrained", 1.0) if i < 6 else ("random", 0.9)
        trial = f"{i:04d}"
        rows += _rows("r", trial, score, init=init, head_lr=0.001 * (i + 1))
        scores[("r", trial)] = score
    blocks = build_report(_tables(rows, scores, runs=["r"], varied=["init", "head_lr"]), [])
    table = _best_table(blocks)
    assert list(table["trial_id"]) == [f"{i:04d}" for i in range(12)]
    lines = [str(b.content) for b in blocks if "tie for" in str(b.content)]
    assert lines == [
        "Trials 0000, 0001, 0002, 0003, 0004, 0005 tie for pretrained at best_val_accuracy "
        "1: all are listed, since none scores higher than the others.",
        "Trials 0006, 0007, 0008, 0009, 0010, 0011 tie for random at best_val_accuracy 0.9: "
        "all are listed, since none scores higher than the others."]


def test_a_joint_reports_best_table_has_every_run_in_the_order_given():
    # Six runs of two inits: 12 best trials, of which the table showed the 10 best
    # scores, runs interleaved.
    runs = ["f", "b", "e", "a", "d", "c"]  # not in alphabetical order
    rows, scores = [], {}
    for r, run in enumerate(runs):
        for init, score in (("pretrained", 0.6 + 0.05 * r), ("random", 0.3 + 0.05 * r)):
            trial = "0000" if init == "pretrained" else "0001"
            rows += _rows(run, trial, score, init=init)
            scores[(run, trial)] = score
    blocks = build_report(_tables(rows, scores, runs=runs, varied=["init"]), [])
    table = _best_table(blocks)
    assert list(zip(table["run_id"], table["init"])) == [
        (run, init) for run in runs for init in ("pretrained", "random")]


def _hyperband_tables() -> Tables:
    """Trial 0002 ran configuration A for 2 epochs; Hyperband promoted it and trial 0005
    trained it again, same seeds, for 4; 0007 (B) and 0006 (C) ran 4, 0001 (D) 2."""
    configurations = {"0001": ("D", 0.010, 2, 2, 0.30), "0002": ("A", 0.001, 0, 2, 0.75),
                      "0005": ("A", 0.001, 0, 4, 0.86), "0006": ("C", 0.010, 0, 4, 0.60),
                      "0007": ("B", 0.001, 2, 4, 0.90)}
    rows, scores = [], {}
    for trial, (_, head_lr, frozen, epochs, score) in configurations.items():
        rows += _rows("r", trial, score, epochs=epochs, head_lr=head_lr,
                      frozen_blocks=frozen)
        scores[("r", trial)] = score
    return _tables(rows, scores, runs=["r"], varied=["head_lr", "frozen_blocks"])


def test_the_overfitting_figure_draws_three_trials_when_a_shorter_run_ranks_among_them(
        tmp_path, monkeypatch):
    # Found by an audit of a Hyperband run: the top 3 by trials.csv included 0002, whose
    # rows count as 0005's, so 2 lines were drawn under "the best 3 trials".
    tables = _hyperband_tables()
    assert list(tables.superseded["trial_id"].unique()) == ["0002"]
    drawn = {}
    monkeypatch.setattr(plots, "save", lambda fig, stem: drawn.setdefault(stem.name, fig))
    blocks = figures(tables, tmp_path, log=lambda *_: None)
    caption = {b.content.stem: b.caption for b in blocks if b.kind == "figure"}["overfitting"]
    legend = sorted(t.get_text() for legend in drawn["overfitting"].legends
                    for t in legend.get_texts())
    # 0007 (B), 0005 (A) and 0006 (C): head_lr, frozen_blocks of each.
    assert len(legend) == 3, legend
    assert caption.endswith(" Not drawn: trial 0002, whose executions ran again for more "
                            "epochs in a later trial and count as that one (see 'Executions "
                            "counted at their longest run').")


def test_captions_of_final_accuracy_say_when_executions_ran_different_epochs(tmp_path,
                                                                             monkeypatch):
    monkeypatch.setattr(plots, "save", lambda fig, stem: None)
    said = " The executions ran 2 to 4 epochs: each one's final accuracy is at its own last "
    blocks = figures(_hyperband_tables(), tmp_path, log=lambda *_: None)
    captions = {b.content.stem: b.caption for b in blocks if b.kind == "figure"}
    for stem in ("head_lr_x_frozen_blocks", "transferability", "objective_vs_head_lr"):
        assert said in captions[stem], (stem, captions[stem])
    # Each line of the accuracy figure drawn alone: it picks no configuration.
    assert "epochs: each one's" not in captions["accuracy_vs_epochs"]
    # Found by a new user: where a line is the best of several head_lr values (here 5,
    # more than line styles), picked by final accuracy, its caption says so too.
    picked, scores = [], {}
    for index, head_lr in enumerate((1e-4, 3e-4, 1e-3, 3e-3, 1e-2)):
        for depth in (0, 2):
            for init in ("pretrained", "random"):
                trial = f"{init[0]}{depth}{index}"
                scores[("r", trial)] = 0.3 + 0.1 * index
                picked += _rows("r", trial, 0.3 + 0.1 * index, epochs=1 + index % 2,
                                init=init, frozen_blocks=depth, head_lr=head_lr)
    blocks = figures(_tables(picked, scores, runs=["r"],
                             varied=["init", "frozen_blocks", "head_lr"]),
                     tmp_path, log=lambda *_: None)
    caption = {b.content.stem: b.caption for b in blocks
               if b.kind == "figure"}["accuracy_vs_epochs"]
    assert " Where head_lr also varied, each line or point is the value(s) with the best " \
        "final validation accuracy" in caption, caption
    assert " The executions ran 1 to 2 epochs: each one's final accuracy is at its own last " \
        in caption, caption
    # Executions of one length: nothing to say.
    even = []
    for trial, (head_lr, frozen, score) in {"0000": (0.001, 0, 0.5), "0001": (0.01, 2, 0.6),
                                            "0002": (0.001, 2, 0.7),
                                            "0003": (0.01, 0, 0.4)}.items():
        even += _rows("r", trial, score, epochs=3, head_lr=head_lr, frozen_blocks=frozen)
    scores = {("r", t): 0.5 for t in ("0000", "0001", "0002", "0003")}
    blocks = figures(_tables(even, scores, runs=["r"], varied=["head_lr", "frozen_blocks"]),
                     tmp_path, log=lambda *_: None)
    assert not [b for b in blocks if b.kind == "figure" and "epochs: each one's" in b.caption]


def test_a_transfer_gain_skipped_for_two_reasons_reads_as_one_sentence(tmp_path):
    rows = _rows("a", "0000", 0.8, init="pretrained") + _rows("b", "0000", 0.5, init="random")
    tables = _tables(rows, {("a", "0000"): 0.8, ("b", "0000"): 0.5}, runs=["a", "b"],
                     varied=["init"])
    blocks = figures(tables, tmp_path, log=lambda *_: None)
    at = next(i for i, b in enumerate(blocks) if b.content == "Transfer gain")
    assert blocks[at + 1].content == (
        "Not drawn: every complete execution used init pretrained, so there is no gap "
        "between initialisations; every complete execution used init random, so there is "
        "no gap between initialisations.")


@pytest.mark.parametrize("random_seeds, told", [
    ((4, 5), "init took the values pretrained, random, and configurations ran with both "
             "random and another init, but at other seeds (seeds pretrained 1, 2; random 4, 5), so "
             "nothing can be paired; run every init with the same --seed and --repeats."),
    ((1, 2), None),  # the same seeds: paired, a gap
])
def test_inits_run_at_other_seeds_are_told_to_use_the_same_seeds(random_seeds, told):
    # The advice was "run a grid over init (--tuner grid)" though the grid had run.
    rows = pd.DataFrame(_rows("r", "0000", 0.8, init="pretrained", head_lr=0.01)
                        + _rows("r", "0001", 0.5, seeds=random_seeds, init="random",
                                head_lr=0.01))
    gaps = numbers.init_gaps(rows, pair_on=["head_lr"])
    if told is None:
        assert len(gaps) == 1 and gaps[0].mean == pytest.approx(0.3)
    else:
        assert gaps == [] and numbers.why_no_gap(rows, pair_on=["head_lr"]) == told


def test_what_ran_names_the_speed_options_a_run_was_given():
    # Found by a new user: only run.json's arguments said that --no-reuse or a smaller
    # evaluation batch had been given.
    from bench.analysis.run_facts import what_ran
    from bench.plan import RunSpec

    given = RunSpec(reuse_models=False, evaluation_batch_size=32, together=True)
    lines = what_ran({"arguments": vars(given)})
    assert ("Speed options given: --no-reuse, --train-together, --evaluation-batch-size 32 "
            "(each changes the time, and the numbers only by float rounding, which training "
            "can grow: README, \"Speed\")") in lines
    assert not [line for line in what_ran({"arguments": vars(RunSpec())})
                if line.startswith("Speed options")]


def test_the_report_names_the_fast_paths_that_round_otherwise_and_how_to_turn_them_off(
        tiny_run):
    """Found by an audit: on by default, the frozen-prefix cache once moved a validation
    accuracy by an image (README, "Speed"), and a default run's report said nothing of
    it."""
    import json

    import pandas as pd

    from bench.analysis.run_facts import rounding_paths_line

    # The tiny space freezes 2 blocks of resnet-mini (no random layer): every execution
    # (2 inits x 2 repeats, counted from its table) trains on cached features.
    epochs = pd.read_csv(tiny_run / "epochs.csv")
    executions = len(epochs[epochs["frozen_blocks"] > 0].groupby(["trial_id", "repeat"]))
    assert executions == 4
    line = ("Fast paths that round otherwise than the plain path: 4 executions trained on the "
            "frozen-prefix cache's features; 4 executions validated and tested in batches of "
            "512, not 32. The tests find them equal within 1e-5, but training can grow a "
            "rounding difference (once by one validation image: README, \"Speed\"); for "
            "the plain path's numbers, run with --no-prefix-cache and --evaluation-batch-size "
            "32")
    assert f"- {line}" in (tiny_run / "report.md").read_text()
    run = json.loads((tiny_run / "run.json").read_text())
    assert run["settings"]["batch_size"] == 32 and len(epochs) == 4 * 2  # 2 epochs each
    plain = dict(run, prefix_cache={"executions": 0}, evaluation={"larger_batches": 0})
    assert rounding_paths_line(plain) is None
    # A run from before the evaluation count: the options it was given.
    older = {k: v for k, v in plain.items() if k != "evaluation"}
    assert rounding_paths_line(older).startswith(
        "Fast paths that round otherwise than the plain path: validation and test in "
        "batches of 512, not 32. ")
    mixed = dict(older, arguments=dict(run["arguments"], precision="mixed_bfloat16"))
    assert rounding_paths_line(mixed) is None  # it evaluates at the training batch size
    # A space that validates in its own fit has only its test pass in larger batches.
    both = dict(plain, evaluation={"larger_batches": 3, "larger_tests_only": 2})
    assert rounding_paths_line(both).startswith(
        "Fast paths that round otherwise than the plain path: 3 executions validated and "
        "tested in batches of 512, not 32; 2 executions tested in batches of 512, not 32 "
        "(their space's own fit validated some or all of their epochs). ")
    together = dict(plain, together={"trials": 3, "retried_alone": 0})
    assert rounding_paths_line(together).endswith(
        "3 trials trained their repeats together. The tests find them equal within 1e-5, "
        "but training can grow a rounding difference (once by one validation image: README, "
        "\"Speed\"); for the plain path's numbers, run without --train-together")
    # Found in review: a resumed run's counts were its last process's alone. A process
    # killed before it recorded its counts makes them a floor.
    resumed = dict(run, earlier_processes=[
        {"models": {"compiled": 2}, "prefix_cache": {"executions": 40},
         "together": {"trials": 10}, "evaluation": {"larger_batches": 6}},
        {"models": None, "prefix_cache": None}])
    assert rounding_paths_line(resumed).startswith(
        "Fast paths that round otherwise than the plain path: at least 44 executions trained "
        "on the frozen-prefix cache's features; at least 10 trials trained their repeats "
        "together; at least 10 executions validated and tested in batches of 512, not 32. ")
    assert rounding_paths_line(resumed).endswith(
        "run with --no-prefix-cache and --evaluation-batch-size 32, without --train-together")
    resumed["earlier_processes"].pop()
    assert rounding_paths_line(resumed).startswith(
        "Fast paths that round otherwise than the plain path: 44 executions trained ")


def test_how_trials_were_spread_is_said_for_each_process_of_a_resumed_run():
    from bench.analysis.run_facts import spread_lines

    # As run.json records it: each process's chief took a free port of its own.
    two = {"workers": 2, "remote": False, "chief": "127.0.0.1:41000", "restarts": {"tuner0": 1}}
    again = {"workers": 2, "remote": False, "chief": "127.0.0.1:42000", "restarts": {"tuner0": 1}}
    assert spread_lines({"distributed": None}) == []
    # Found by a new user: a chief and workers started by hand on one machine read "in
    # workers on other machines"; the chief cannot tell where its workers run.
    by_hand = {"remote": True, "chief": "127.0.0.1:8470"}
    assert spread_lines({"distributed": by_hand}) == [
        "Trials ran in workers started with 'worker' under KerasTuner's chief (merged "
        "tables)"]
    # Resumed on another port, it ran the same way: one line.
    other_port = {"remote": True, "chief": "0.0.0.0:8471"}
    assert spread_lines({"earlier_processes": [{"distributed": by_hand}],
                         "distributed": other_port}) == [
        "Trials ran in workers started with 'worker' under KerasTuner's chief (merged "
        "tables)"]
    assert spread_lines({"distributed": two}) == [
        "Trials ran in 2 worker processes under KerasTuner's chief (merged tables); "
        "restarted: tuner0 1x"]
    # The same way in both processes (another port): one line, the restarts added up.
    assert spread_lines({"earlier_processes": [{"distributed": two}], "distributed": again}) \
        == ["Trials ran in 2 worker processes under KerasTuner's chief (merged tables); "
            "restarted: tuner0 2x"]
    # Killed in one process, resumed with --workers 2: not "every trial in 2 workers".
    assert spread_lines({"earlier_processes": [{"distributed": None}], "distributed": two}) \
        == ["Trials ran, by process (the run was resumed): process 1 in one process; process "
            "2 in 2 worker processes, restarted: tuner0 1x; worker processes under "
            "KerasTuner's chief (merged tables)"]
    assert "process 2 in 1 worker process;" in spread_lines(
        {"earlier_processes": [{"distributed": None}], "distributed": {"workers": 1}})[0]
    # A run recorded before each process's way was kept: said, not guessed.
    assert spread_lines({"earlier_processes": [{}], "distributed": two})[0].startswith(
        "Trials ran, by process (the run was resumed): process 1: not recorded; process 2 "
        "in 2 worker processes, restarted: tuner0 1x;")
    assert spread_lines({"earlier_processes": [{}], "distributed": None}) == []


def test_which_trials_ran_again_is_said_only_for_the_resumes_that_recorded_it():
    from bench.analysis.run_facts import resumed_lines

    assert resumed_lines({}) == []
    assert resumed_lines({"resumed": ["t1"]}) == ["Resumed 1 time"]  # before run_again
    assert resumed_lines({"resumed": ["t1"], "run_again": [["0002"]]}) == [
        "Resumed 1 time; trial 0002 had started and not ended when a process stopped, and "
        "ran again from the first epoch"]
    assert resumed_lines({"resumed": ["t1", "t2"], "run_again": [[], ["0003", "0001"]]}) == [
        "Resumed 2 times; trials 0001, 0003 had started and not ended when a process "
        "stopped, and ran again from the first epoch"]
    # Resumed once before run_again existed and once after: the first is not claimed.
    assert resumed_lines({"resumed": ["t1", "t2"], "run_again": [[]]}) == [
        "Resumed 2 times (1 of them, the earliest, did not record which trials ran again; "
        "in the other 1, every trial that had started had ended, and was kept)"]


def test_captions_say_where_a_line_averages_only_the_executions_that_trained_on(
        tmp_path, monkeypatch):
    # Found by a new user: with a space's early stopping, pretrained head_lr=0.03's line at
    # epoch 4 was one seed's value, under "mean over the repeats (seeds)".
    import matplotlib.pyplot as plt

    monkeypatch.setattr(plots, "save", lambda fig, stem: plt.close(fig))
    rows, scores = [], {}
    for trial, (init, head_lr, score) in enumerate((("pretrained", 0.03, 0.8),
                                                    ("pretrained", 0.001, 0.7),
                                                    ("random", 0.03, 0.5),
                                                    ("random", 0.001, 0.4))):
        trial = f"{trial:04d}"
        scores[("r", trial)] = score
        rows += [row for row in _rows("r", trial, score, epochs=4, init=init, head_lr=head_lr)
                 # seed 2 of trial 0000 stopped after epoch 2
                 if not (trial == "0000" and row["seed"] == 2 and row["epoch"] > 2)]
    tables = _tables(rows, scores, runs=["r"], varied=["init", "head_lr"])
    blocks = figures(tables, tmp_path, log=lambda *_: None)
    captions = {b.content.stem: b.caption for b in blocks if b.kind == "figure"}
    assert captions["accuracy_vs_epochs"].endswith(
        " Some executions stopped sooner than others of their configuration (a space's "
        "early stopping): the later points of init=pretrained head_lr=0.03 from epoch 3 (1 "
        "of 2 at epoch 4) are means over the executions that trained on, not over every "
        "seed."), captions["accuracy_vs_epochs"]
    # As the figure's legend names the line.
    assert "the later points of initialisation=pretrained, head learning rate=0.03 from " \
        "epoch 3 (1 of 2 at epoch 4)" in captions["overfitting"], captions["overfitting"]
    # Every execution to the end: nothing to say.
    rows = (_rows("r", "0000", 0.8, epochs=4, init="pretrained", head_lr=0.03)
            + [r for r in rows if r["trial_id"] != "0000"])
    blocks = figures(_tables(rows, scores, runs=["r"], varied=["init", "head_lr"]), tmp_path,
                     log=lambda *_: None)
    assert not [b for b in blocks if b.kind == "figure" and "stopped sooner" in b.caption]


def test_the_class_line_gives_each_class_and_the_score_of_one_answer_for_every_image():
    # Found by a new user: random init scored exactly 0.750 on 8 validation images, which
    # is 6 of 8 in one class: what answering that class always gives; nothing said so.
    from bench.analysis.run_facts import class_balance_line, what_ran

    data = {"classes": ["cat s", "dog", "bird"],
            "class_counts": {"train": [26, 4, 1], "validation": [6, 1, 1],
                             "test": [6, 1, 1]}}
    assert class_balance_line(data) == (
        "Images per class (train/validation/test): cat s: 26/6/6, dog: 4/1/1, bird: 1/1/1. "
        "Answering one class for every image scores at most 0.750 on validation and 0.750 "
        "on test (the largest class's share)")
    many = {"classes": [f"c{i}" for i in range(12)],
            "class_counts": {"train": [3] * 12, "validation": [1] * 12, "test": [2] * 11 + [8]}}
    line = class_balance_line(many)
    assert "c9: 3/1/2 and 2 more." in line  # 8 of 30 test images: 0.267
    assert line.endswith("at most 0.083 on validation and 0.267 on test (the largest "
                         "class's share)")
    # A run from before the counts were recorded: no line.
    assert class_balance_line({"classes": ["a", "b"]}) is None
    assert not [line for line in what_ran({"dataset": {"classes": ["a"]}})
                if line.startswith("Images per class")]


def test_fewer_executions_names_each_thinning_line_and_a_lone_line_unnamed():
    from bench.analysis.captions import fewer_executions_note

    # Hand-made curve: line a keeps 3 executions; line b has 3, then 2 from epoch 3, 1 at 4.
    curve = pd.DataFrame({"head_lr": [0.1] * 4 + [0.01] * 4, "epoch": [1, 2, 3, 4] * 2,
                          "n": [3, 3, 3, 3, 3, 3, 2, 1]})
    found = numbers.fewer_executions(curve, by=["head_lr"])
    assert found.to_dict("records") == [{"head_lr": 0.01, "from_epoch": 3, "left": 1,
                                         "of": 3, "last_epoch": 4}]
    # Found by a reviewer: with nothing varied the caption named an empty line.
    lone = curve[curve["head_lr"] == 0.01].drop(columns="head_lr")
    assert fewer_executions_note(lone, []) == (
        " Some executions stopped sooner than others of their configuration (a space's "
        "early stopping): the line's later points, from epoch 3 (1 of 3 at epoch 4), are "
        "means over the executions that trained on, not over every seed.")


def test_captions_say_how_many_accuracy_intervals_were_cut_at_0_or_1(tmp_path, monkeypatch):
    # Two seeds make t = 12.7: head_lr 0.01's interval spans more than [0, 1] and is drawn
    # cut; so is 0.1's, cut at both ends alike (its mean is 0.5); head_lr 0.001's seeds
    # agree (an interval of width 0, nothing to cut).
    from scipy import stats

    monkeypatch.setattr(plots, "save", lambda fig, stem: None)
    seeds = {0.01: (0.95, 0.75), 0.001: (0.5, 0.5), 0.1: (0.45, 0.55)}
    rows = [{"run_id": "r", "trial_id": f"{i:04d}", "repeat": seed, "seed": seed,
             "epoch": epoch, "head_lr": head_lr, "val_accuracy": value,
             "accuracy": min(value + 0.05, 1.0)}
            for i, (head_lr, values) in enumerate(seeds.items())
            for seed, value in enumerate(values, start=1) for epoch in (1, 2, 3)]
    scores = {("r", "0000"): 0.85, ("r", "0001"): 0.5, ("r", "0002"): 0.5}
    blocks = figures(_tables(rows, scores, runs=["r"], varied=["head_lr"]), tmp_path,
                     log=lambda *_: None)
    captions = {b.content.stem: b.caption for b in blocks if b.kind == "figure"}

    def past(values) -> bool:  # scipy's interval, unclipped, reaches out of [0, 1]
        values = np.asarray(values, dtype=float)
        low, high = stats.t.interval(0.95, len(values) - 1, loc=values.mean(),
                                     scale=stats.sem(values)) if values.std() else (0, 0)
        return low < 0 or high > 1

    frame = pd.DataFrame(rows)
    per_point = [past(group[metric]) for metric in ("val_accuracy", "accuracy")
                 for _, group in frame.groupby(["head_lr", "epoch"])]
    assert sum(per_point) == 12 and len(per_point) == 18  # 0.01's and 0.1's, both metrics
    assert (f" {sum(per_point)} of the {len(per_point)} intervals (one per point) reach past "
            "0 or 1, beyond what accuracy can be, and are drawn cut there."
            in captions["accuracy_vs_epochs"]), captions["accuracy_vs_epochs"]
    finals = [past(group["val_accuracy"]) for _, group in
              frame[frame["epoch"] == 3].groupby("head_lr")]
    assert (f" {sum(finals)} of the {len(finals)} intervals (one per point) reach past"
            in captions["objective_vs_head_lr"]), captions["objective_vs_head_lr"]
    # Seeds that agree leave every interval whole: no such sentence.
    agreeing = [row | {"val_accuracy": 0.5, "accuracy": 0.55} for row in rows]
    blocks = figures(_tables(agreeing, scores, runs=["r"], varied=["head_lr"]), tmp_path,
                     log=lambda *_: None)
    assert not [b for b in blocks if b.kind == "figure" and "cut there" in b.caption]


def test_a_joint_report_says_where_its_runs_trained_otherwise_than_their_columns_show(
        tmp_path, cache_dir):
    """Found by a new user: two runs of one space name and version, one file edited to SGD
    and another fixed frozen_blocks, read as the same study: no report named the
    optimizer, no notice said the files differ, and the joint tables had no frozen_blocks
    column, so two runs' rows read as one configuration."""
    import hashlib
    import json

    from conftest import IMAGE_SIZE, TINY_SPACE

    from bench.analysis.report import write_report
    from bench.analysis.tables import load_tables
    from bench.plan import RunSpec
    from bench.runner import run_study

    sgd = TINY_SPACE.replace("frozen_blocks=2, head_lr=3e-3)", "frozen_blocks=0, head_lr=3e-3,"
                             " optimizer='SGD', optimizer_options=(('momentum', 0.9),))")
    assert sgd != TINY_SPACE
    runs = {}
    for name, source in (("adam", TINY_SPACE), ("sgd", sgd)):
        spaces = tmp_path / f"spaces-{name}"
        spaces.mkdir()
        (spaces / "tiny.py").write_text(source)
        runs[name] = run_study(RunSpec(space="tiny", spaces_dir=spaces, image_size=IMAGE_SIZE,
                                       pretrain_epochs=3, results_dir=tmp_path, name=name,
                                       cache_dir=cache_dir), log=lambda *_: None)
    digests = {name: hashlib.sha256((tmp_path / f"spaces-{name}" / "tiny.py").read_bytes())
               .hexdigest()[:12] for name in runs}
    for run in runs.values():
        assert json.loads((run / "run.json").read_text())["space"]["hooks"] == ["declare"]
    own = {name: (runs[name] / "report.md").read_text() for name in runs}
    assert ("- Optimizer `Adam` at head_lr, the unfrozen backbone at head_lr x body_lr_scale"
            in own["adam"])
    assert ("- Optimizer `SGD` (momentum 0.9) at head_lr, the unfrozen backbone at head_lr x "
            "body_lr_scale") in own["sgd"]
    assert "**Different" not in own["adam"] + own["sgd"]

    (tmp_path / "joint").mkdir()
    joint = write_report(load_tables([runs["adam"], runs["sgd"]]), tmp_path / "joint",
                         log=lambda *_: None).read_text()
    assert ("**Different settings**: these runs did not train with the same settings "
            "(optimizer: adam `Adam`, sgd `SGD` (momentum 0.9)), so a difference between "
            "runs is not the hyperparameters' doing alone.") in joint
    assert ("**Different space files**: these runs name the same space and version, but "
            f"their files differ (SHA-256 space `tiny` version 3: adam {digests['adam']}, "
            f"sgd {digests['sgd']}): the space was edited") in joint
    # The best table has the column that tells the runs' rows apart.
    best = joint[joint.index("Best configuration"):]
    header = next(line for line in best.splitlines() if line.startswith("| run_id"))
    assert "frozen_blocks" in header.split(" | ")
    cells = [line.split(" | ") for line in best.splitlines()
             if line.startswith("| adam") or line.startswith("| sgd")]
    at = header.split(" | ").index("frozen_blocks")
    assert {(row[0], row[at]) for row in cells} == {("| adam", "2"), ("| sgd", "0")}


def test_a_run_where_nothing_completed_is_not_said_to_leave_init_unvaried():
    """Found by a new user: every trial failed, with both inits, and the console said
    "Init was not varied"."""
    empty = pd.DataFrame(columns=["run_id", "trial_id", "repeat", "seed", "epoch", "init",
                                  "val_accuracy"])
    assert numbers.why_no_gap(empty) == ("no execution completed, so there is no gap between "
                                         "initialisations.")


def test_the_optimizer_line_names_the_hook_that_chooses_it():
    from bench.analysis.run_facts import optimizer_lines

    settings = {"optimizer": "SGD", "optimizer_options": [["momentum", 0.9],
                                                          ["nesterov", True]]}
    assert optimizer_lines({"settings": settings, "space": {"hooks": ["declare"]}}) == [
        "Optimizer `SGD` (momentum 0.9, nesterov True) at head_lr, the unfrozen backbone at "
        "head_lr x body_lr_scale"]
    assert optimizer_lines({"settings": settings, "space": {
        "hooks": ["declare", "optimizer"]}})[0].startswith(
        "Optimizer: chosen for each trial by the space's `optimizer` hook (its default `SGD` "
        "(momentum 0.9, nesterov True))")
    assert optimizer_lines({"settings": settings, "space": {
        "hooks": ["declare", "optimizer", "compile"]}})[0].startswith(
        "Optimizer: the space's own `compile` hook compiles every model")
    assert optimizer_lines({"settings": {"dataset": "digits"}}) == []  # an older run.json
    # Found in review: a run.json from before space.hooks could not say the hook chose.
    assert optimizer_lines({"settings": settings, "space": {"name": "s"}}) == [
        "Optimizer `SGD` (momentum 0.9, nesterov True) as the settings name it (this "
        "run.json does not record whether the space's own `optimizer` or `compile` hook "
        "chose another)"]


def test_settings_a_run_json_does_not_record_or_that_train_alike_are_no_difference():
    from bench.analysis.report import different_settings_sentence

    def run(run_id, **settings):
        return {"run_id": run_id, "settings": settings, "dataset": {"train": 100}}

    assert different_settings_sentence([run("old"), run("new", optimizer="Adam")]) is None
    # Batches of 1000 and 5000 on 100 training images both train as one batch of 100.
    assert different_settings_sentence([run("a", batch_size=1000),
                                        run("b", batch_size=5000)]) is None
    assert different_settings_sentence([run("a", batch_size=32), run("b", batch_size=5000)]
                                       ) == (
        "**Different settings**: these runs did not train with the same settings (batch "
        "size: a 32, b 5000), so a difference between runs is not the hyperparameters' "
        "doing alone.")
    # Found by a new user: a run whose optimizer hook chose SGD in half its trials was
    # said to have trained with Adam, the settings' default.
    def hooked(run_id, *hooks, **settings):
        return {**run(run_id, **settings), "space": {"hooks": ["declare", *hooks]}}

    # A run.json from before the record of hooks: which optimizer ran is not known.
    assert different_settings_sentence([run("old", optimizer="SGD"),
                                        hooked("new", optimizer="Adam")]) is None
    assert different_settings_sentence([hooked("hooked", "optimizer", optimizer="Adam"),
                                        hooked("adam", optimizer="Adam"),
                                        hooked("sgd", optimizer="SGD")]) == (
        "**Different settings**: these runs did not train with the same settings (optimizer: "
        "hooked its `optimizer` hook's for each trial (default `Adam`), adam `Adam`, sgd "
        "`SGD`), so a difference between runs is not the hyperparameters' doing alone.")
    assert "compiled its own `compile` hook's (settings `Adam`), adam `Adam`" in \
        different_settings_sentence([hooked("compiled", "compile", optimizer="Adam"),
                                     hooked("adam", optimizer="Adam")])


def test_a_batch_size_above_the_training_images_is_said_to_be_one_full_batch(
        tmp_path, tiny_spaces_dir, cache_dir):
    """Found by a new user: --batch-size 100000 on 100 training images ran one step of all
    of them per epoch while the report said "batch 100000", without a word."""
    import json

    from conftest import IMAGE_SIZE

    from bench.plan import RunSpec
    from bench.runner import run_study

    run = run_study(RunSpec(space="tiny", spaces_dir=tiny_spaces_dir, image_size=IMAGE_SIZE,
                            pretrain_epochs=3, results_dir=tmp_path, name="whole",
                            cache_dir=cache_dir, batch_size=100_000, repeats=1),
                    log=lambda *_: None)
    record = json.loads((run / "run.json").read_text())
    assert record["dataset"]["train"] == 5 * 20  # digits: 5 target classes of 20
    assert ("seeds [1]), batch 100000 (more than the 100 training images: every epoch is "
            "one step on all of them, as at batch 100)") in (run / "report.md").read_text()
    # At or below the training split's size, the batch size alone.
    for batch, said in ((100, ", batch 100\n"), (32, ", batch 32\n")):
        lines = what_ran(dict(record, settings=dict(record["settings"], batch_size=batch)))
        assert said in "\n".join(lines) + "\n"

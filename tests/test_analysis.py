"""The numbers behind the figures, checked on hand-made tables with known answers."""

import math

import numpy as np
import pandas as pd
import pytest

from bench.analysis import numbers as analysis


def epochs_table(gains=(0.10, 0.20, 0.30), epochs=2):
    """Two inits, two depths, three seeds; pretrained = random + gain[seed]."""
    rows = []
    for s, gain in enumerate(gains, start=1):
        for depth in (0, 2):
            for epoch in range(1, epochs + 1):
                base = 0.5 + 0.1 * epoch + 0.01 * depth
                for init, value in (("random", base), ("pretrained", base + gain)):
                    rows.append({"run_id": "r", "trial_id": f"{init}{depth}", "repeat": s,
                                 "seed": s, "epoch": epoch, "init": init,
                                 "frozen_blocks": depth, "head_lr": 0.001,
                                 "val_accuracy": value, "accuracy": value + 0.05})
    return pd.DataFrame(rows)


def test_t_interval_matches_the_textbook_value():
    mean, low, high = analysis.t_interval([1.0, 2.0, 3.0])
    # mean 2, sd 1, n 3, t(0.975, 2) = 4.302653: half width 4.302653 / sqrt(3).
    assert mean == 2.0
    assert high - mean == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    assert mean - low == pytest.approx(high - mean)
    mean, low, high = analysis.t_interval([0.7])  # no degrees of freedom: no interval
    assert mean == 0.7 and math.isnan(low) and math.isnan(high)
    assert all(math.isnan(v) for v in analysis.t_interval([]))


def test_init_gap_is_paired_by_seed_and_averaged_over_other_hyperparameters():
    gap = analysis.init_gap(epochs_table())
    assert gap.epoch == 2 and gap.pairs == 3
    assert gap.mean == pytest.approx(0.2)
    assert gap.spread == pytest.approx(0.1)
    assert (gap.low, gap.high) == pytest.approx(
        (0.2 - 4.302653 * 0.1 / math.sqrt(3), 0.2 + 4.302653 * 0.1 / math.sqrt(3)), rel=1e-6)
    assert gap.init_accuracy - gap.baseline_accuracy == pytest.approx(0.2)
    assert (gap.init, gap.baseline, gap.configurations) == ("pretrained", "random", 2)
    assert 0 < gap.p_value < 0.1


def test_a_constant_gap_has_a_zero_width_interval_and_no_p_value():
    gap = analysis.init_gap(epochs_table(gains=(0.05, 0.05, 0.05)))
    assert gap.mean == pytest.approx(0.05) and gap.low == pytest.approx(gap.high)
    assert math.isnan(gap.p_value)


def test_no_gap_without_both_inits():
    table = epochs_table()
    assert analysis.init_gap(table[table["init"] == "random"]) is None
    assert analysis.transfer_gain(table[table["init"] == "random"]).empty


def test_transfer_gain_per_epoch():
    gain = analysis.transfer_gain(epochs_table(gains=(0.1, 0.1, 0.4)))
    assert gain["epoch"].tolist() == [1, 2]
    np.testing.assert_allclose(gain["mean"], [0.2, 0.2])
    assert (gain["n"] == 3).all()


def test_mean_curves_average_repeats_per_group_and_epoch():
    curves = analysis.mean_curves(epochs_table(), by=["init", "frozen_blocks"])
    assert len(curves) == 2 * 2 * 2
    row = curves[(curves["init"] == "pretrained") & (curves["frozen_blocks"] == 2)
                 & (curves["epoch"] == 1)].iloc[0]
    assert row["mean"] == pytest.approx(0.5 + 0.1 + 0.02 + 0.2)
    assert row["n"] == 3 and row["low"] < row["mean"] < row["high"]


def test_varied_names_only_columns_with_several_values():
    assert analysis.varied(epochs_table(), ["init", "frozen_blocks", "head_lr", "nope"]) == [
        "init", "frozen_blocks"]


def test_best_so_far_is_the_running_maximum_over_completed_trials():
    trials = pd.DataFrame({
        "trial_id": ["00", "01", "02", "03", "04"],
        "status": ["COMPLETED", "COMPLETED", "FAILED", "COMPLETED", "COMPLETED"],
        "best_val_accuracy": [0.5, 0.4, 0.99, 0.7, 0.6],
        "seconds": [1.0, 2.0, 3.0, 4.0, 5.0],
    })
    progress = analysis.best_so_far(trials)
    assert progress["best"].tolist() == [0.5, 0.5, 0.5, 0.7, 0.7]
    assert progress["elapsed_seconds"].tolist() == [1.0, 3.0, 6.0, 10.0, 15.0]


def test_best_trials_per_init():
    trials = pd.DataFrame({"trial_id": ["0", "1", "2", "3"], "status": ["COMPLETED"] * 4,
                           "init": ["random", "random", "pretrained", "pretrained"],
                           "best_val_accuracy": [0.6, 0.7, 0.9, 0.8]})
    best = analysis.best_trials(trials, by="init")
    assert best["trial_id"].tolist() == ["2", "1"]


def test_trials_tied_at_the_best_score_are_all_best():
    # Seen in the default study on 2026-12-05: pretrained depth 0 and depth 2 both scored
    # 1877/1985 (five repeats' best epochs over 397 validation images each), and the
    # report named depth 0 alone as best, by trial order. The means are summed in
    # different orders, as pandas would from each trial's repeats.
    from bench.analysis.report import tie_lines

    tied = [a / 397 for a in (380, 371, 376, 374, 376)]
    other = [a / 397 for a in (376, 376, 374, 380, 371)]
    trials = pd.DataFrame({"trial_id": ["0000", "0001", "0002", "0003"],
                           "status": ["COMPLETED"] * 4,
                           "init": ["pretrained", "pretrained", "pretrained", "random"],
                           "best_val_accuracy": [np.mean(tied), 0.9, np.mean(other), 0.85]})
    best = analysis.best_trials(trials, by="init")
    assert best["trial_id"].tolist() == ["0000", "0002", "0003"]
    assert tie_lines(best) == [
        f"Trials 0000, 0002 tie for pretrained at best_val_accuracy {1877 / 1985:.6g}: all "
        "are listed, since none scores higher than the others."]
    assert analysis.best_trials(trials)["trial_id"].tolist() == ["0000", "0002"]
    # In a joint report trial ids repeat across runs: the line says whose they are.
    joint = pd.concat([trials.assign(run_id="a"),
                       trials.assign(run_id="b", best_val_accuracy=[0.5, 0.9, 0.6, 0.85])],
                      ignore_index=True)
    assert tie_lines(analysis.best_trials(joint, by="init")) == [
        f"a: Trials 0000, 0002 tie for pretrained at best_val_accuracy {1877 / 1985:.6g}: "
        "all are listed, since none scores higher than the others."]
    # As epochs.csv keeps them: float32 accuracies, 1877 of 1985 split otherwise over the
    # repeats, so the means differ in the eighth digit (found in review: missed by 1e-9).
    split = [np.float32(a / 397) for a in (387, 372, 384, 388, 346)]
    other = [np.float32(a / 397) for a in (373, 361, 368, 390, 385)]
    assert np.mean(split, dtype=float) != np.mean(other, dtype=float)
    trials["best_val_accuracy"] = [np.mean(split, dtype=float), 0.9,
                                   np.mean(other, dtype=float), 0.85]
    assert analysis.best_trials(trials, by="init")["trial_id"].tolist() == [
        "0000", "0002", "0003"]
    trials.loc[2, "best_val_accuracy"] = 1876 / 1985  # one image fewer: no tie
    assert analysis.best_trials(trials, by="init")["trial_id"].tolist() == ["0000", "0003"]


def test_scores_one_image_apart_never_read_alike_and_ties_do():
    # Found by a reviewer: 1877/1985 and 1878/1985 both read 0.946 in the trials table,
    # where only one of them is best and no tie line is written. 1877/1985 split otherwise
    # over float32 repeats (a tie, differing in the eighth digit) reads as 1877/1985 does.
    from bench.analysis.render import markdown_table
    from bench.analysis.report import summary_table

    tie = np.mean([np.float32(a / 397) for a in (387, 372, 384, 388, 346)], dtype=float)
    trials = pd.DataFrame({"trial_id": ["0000", "0001", "0002", "0003", "0004"],
                           "status": ["COMPLETED"] * 4 + ["FAILED"],
                           "init": ["pretrained"] * 5,
                           "best_val_accuracy": [1877 / 1985, 1878 / 1985, tie, 0.5, np.nan],
                           "final_val_accuracy": [0.5, 0.5, 0.5, 0.25, np.nan],
                           "test_accuracy": [0.906, 0.935, 0.9, 0.1, np.nan],
                           "seconds": 1.0})
    table = summary_table(trials, ["init"])
    assert dict(zip(table["trial_id"], table["best_val_accuracy"].fillna("-"))) == {
        "0001": "0.9461", "0000": "0.9456", "0002": "0.9456", "0003": "0.5000", "0004": "-"}
    assert table["final_val_accuracy"].tolist()[:4] == ["0.500", "0.500", "0.500", "0.250"]
    assert "| 0004 | pretrained | - | - | - | 1.000 | FAILED |" in markdown_table(table)
    # The best trial's line reads as it does among all of them.
    best = summary_table(analysis.best_trials(trials, by="init"), ["init"], among=trials)
    assert best["best_val_accuracy"].tolist() == ["0.9461"]
    # Found in review: 1,601 of 2,000 split 700 + 901 or 701 + 900 over two float32
    # repeats is 0.80049998 or 0.80050001, either side of the midpoint: one tie, one text.
    ways = [np.mean([np.float32(a / 1000), np.float32(b / 1000)], dtype=float)
            for a, b in ((700, 901), (701, 900))]
    assert ways[0] != ways[1] and np.isclose(ways[0], ways[1], rtol=analysis.TIE_RTOL, atol=0)
    assert f"{ways[0]:.3f}" != f"{ways[1]:.3f}"
    midpoint = trials.assign(best_val_accuracy=[ways[0], ways[1], 0.7, 0.5, np.nan])
    texts = summary_table(midpoint, ["init"])["best_val_accuracy"].tolist()
    assert texts[:2] == [f"{max(ways):.3f}"] * 2 and texts[2:4] == ["0.700", "0.500"]


def test_configuration_scores_take_each_executions_last_epoch():
    scores = analysis.configuration_scores(epochs_table(), configuration=["init",
                                                                          "frozen_blocks"])
    random = scores[(scores["init"] == "random") & (scores["frozen_blocks"] == 2)].iloc[0]
    assert random["score"] == pytest.approx(0.5 + 0.2 + 0.02)


def test_report_lines_and_tables_write_values_as_declared():
    # Found by a new user: the table under the accuracy figure wrote 0.0118 and 0.0123
    # both as 0.012 (two identical rows), and a fixed head_lr 0.0125 read 0.013.
    from bench.analysis.figures import chosen_configurations
    from bench.analysis.report import held_fixed

    rows = pd.DataFrame({"run_id": "r", "init": ["pretrained", "random"] * 2,
                         "head_lr": [0.0118, 0.0118, 0.0123, 0.0123],
                         "dropout": [0.0, 0.5, 0.0, 0.5]})
    chosen = chosen_configurations(rows, ["run_id", "init", "head_lr", "dropout"])
    assert chosen.values.tolist() == [["r", "pretrained", "0.0118", "0"],
                                      ["r", "pretrained", "0.0123", "0"],
                                      ["r", "random", "0.0118", "0.5"],
                                      ["r", "random", "0.0123", "0.5"]]
    run = {"columns": {"hyperparameters": ["head_lr"], "varied": []}}
    assert held_fixed(run, pd.DataFrame({"head_lr": [0.0125] * 3})) == [
        "Held fixed in every execution: head_lr 0.0125"]
    # Found by a new user: head_lr 1e30, 2e30, 3e30 (whole numbers to a float) read
    # 1000000000000000019884624838656 and on; integers read from a table stay integers.
    from bench.analysis.formatting import as_declared

    huge = pd.Series([1e30, 2e30, 3e30])
    assert as_declared(huge, huge).tolist() == ["1e+30", "2e+30", "3e+30"]
    counts = pd.Series([4.0, 2.0 ** 52])
    assert as_declared(counts, counts).tolist() == [4, 2 ** 52]


def test_what_ran_says_what_is_unknown_and_what_was_varied_without_rows():
    from bench.analysis.report import held_fixed
    from bench.analysis.run_facts import what_ran

    run = {"run_id": "r", "status": "interrupted", "started": "t0", "tuner": "grid",
           "settings": {"epochs": 2, "repeats": 2},
           "columns": {"hyperparameters": ["init", "frozen_blocks", "head_lr"],
                       "varied": ["init", "head_lr"]},
           "space": {"hyperparameters": [
               {"name": "init", "type": "Choice", "values": ["pretrained", "random"]},
               {"name": "head_lr", "type": "Choice", "values": [0.01]}]}}
    # Killed before random ran: init is the space's to vary, not held fixed.
    rows = pd.DataFrame({"init": ["pretrained"] * 2, "frozen_blocks": [2, 2],
                         "head_lr": [0.01, 0.01]})
    assert held_fixed(run, rows) == [
        "Held fixed in every execution: frozen_blocks 2, head_lr 0.01",
        "Varied by the space, but one value in every execution with rows: init pretrained"]
    status = next(line for line in what_ran(run) if line.startswith("Status"))
    assert status == ("Status interrupted; started t0, ended not recorded (the process "
                      "stopped first); search time not recorded (the process stopped first)")


def test_no_gap_from_a_hyperparameter_that_exists_for_one_init_says_so():
    # frozen_blocks declared in a conditional scope of init == pretrained: random's rows
    # have it empty, so no configuration holds both inits.
    table = epochs_table()
    table["frozen_blocks"] = table["frozen_blocks"].astype(object).where(
        table["init"] == "pretrained", None)
    assert analysis.init_gaps(table, pair_on=["frozen_blocks", "head_lr"]) == []
    why = analysis.why_no_gap(table, pair_on=["frozen_blocks", "head_lr"])
    assert why == ("init took the values pretrained, random, but no configuration ran with "
                   "both random and another init: frozen_blocks took 0, 2 with pretrained and "
                   "none (inactive) with random, so nothing can be paired; declare that "
                   "hyperparameter for every init (not in a conditional scope of init) to "
                   "compare them.")
    # Without the columns to compare, the general advice.
    assert "run a grid over init" in analysis.why_no_gap(table)


def test_no_gap_from_a_hyperparameter_drawn_apart_for_each_init_says_to_run_a_grid():
    """Found by a new user: a random search over a continuous head_lr (declared for every
    init) was told to move head_lr out of a conditional scope it was never in."""
    table = epochs_table()
    table["head_lr"] = table["init"].map({"pretrained": 0.00035, "random": 0.0137})
    assert analysis.init_gaps(table, pair_on=["frozen_blocks", "head_lr"]) == []
    why = analysis.why_no_gap(table, pair_on=["frozen_blocks", "head_lr"])
    assert why == ("init took the values pretrained, random, but no configuration ran with "
                   "both random and another init: head_lr took 0.00035 with pretrained and 0.0137 "
                   "with random, so nothing can be paired; a random or Bayesian search seldom "
                   "draws a value twice (from a range without a step, never): declare it as a "
                   "Choice or a range with a step and run a grid (--tuner grid), or vary "
                   "init alone (--space init).")
    # Values apart in the fourth digit are written so (a reviewer's: both read 0.0123).
    table["head_lr"] = table["init"].map({"pretrained": 0.01231, "random": 0.01234})
    assert "head_lr took 0.01231 with pretrained and 0.01234 with random" in \
        analysis.why_no_gap(table, pair_on=["frozen_blocks", "head_lr"])


def test_a_headline_says_which_values_of_a_varied_hyperparameter_its_gap_leaves_out():
    # Found by a new user: init x head_lr {0.01, 1e30}, both 1e30 trials failed (nan),
    # and the headline read as for a space of init alone.
    from bench.analysis.report import _headline_blocks
    from bench.analysis.tables import Tables

    gains = {1: 0.1, 2: 0.3}
    rows = [{"run_id": "r", "trial_id": trial, "repeat": seed, "seed": seed, "epoch": 1,
             "init": init, "head_lr": 0.01,
             "val_accuracy": 0.5 + (gains[seed] if init == "pretrained" else 0.0),
             "accuracy": 0.9}
            for trial, init in (("0", "pretrained"), ("1", "random")) for seed in (1, 2)]
    complete = pd.DataFrame(rows)
    trials = pd.DataFrame({"run_id": "r", "trial_id": ["0", "1", "2", "3"],
                           "init": ["pretrained", "random"] * 2,
                           "head_lr": [0.01, 0.01, 1e30, 1e30],
                           "status": ["COMPLETED", "COMPLETED", "FAILED", "FAILED"]})
    run = {"run_id": "r", "status": "completed",
           "columns": {"hyperparameters": ["init", "head_lr"], "varied": ["init", "head_lr"]}}
    blocks = _headline_blocks(Tables(runs=[run], epochs=complete, trials=trials,
                                     complete=complete))
    texts = [block.content for block in blocks if block.kind == "p"]
    assert texts[0].startswith("At epoch 1, pretrained minus random validation accuracy, "
                               "paired by seed, is **+0.200**")
    assert texts[1] == ("The gap leaves out head_lr=1e+30: no execution with it completed "
                        "(those trials failed).")
    # In a joint report, where another run is still going, this one's trials cut off by
    # its stop did not finish; they are not "still going".
    stopped = trials.assign(status=["COMPLETED", "COMPLETED", "RUNNING", "RUNNING"])
    other = {"run_id": "s", "status": "running", "columns": run["columns"]}
    joint = Tables(runs=[{**run, "status": "interrupted"}, other], epochs=complete,
                   trials=stopped, complete=complete)
    said = [block.content for block in _headline_blocks(joint) if "leaves out" in
            str(block.content)]
    assert said == ["r: The gap leaves out head_lr=1e+30: no execution with it completed "
                    "(those trials did not finish: the run stopped before they completed)."]
    # Where every value completed, nothing is said.
    done = Tables(runs=[run], epochs=complete, trials=trials.iloc[:2], complete=complete)
    assert not any("leaves out" in block.content for block in _headline_blocks(done)
                   if block.kind == "p")

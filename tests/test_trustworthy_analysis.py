"""Issue 8 on hand-made tables: pairing every init, intervals over one configuration's
repeats, complete executions only, conditional values. Expected values are computed by
hand or with scipy, never by the code under test."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bench.analysis import numbers as analysis
from bench.analysis.figures import curve_facets, curve_rows
from bench.analysis.render import markdown_table
from bench.analysis.report import summary_table


def _row(init, seed, epoch, value, **hp):
    return {"run_id": "r", "trial_id": f"{init}-" + "-".join(f"{v}" for v in hp.values()),
            "repeat": seed, "seed": seed, "epoch": epoch, "init": init, **hp,
            "val_accuracy": value, "accuracy": value}


def scipy_interval(values):
    values = np.asarray(values, dtype=float)
    low, high = stats.t.interval(0.95, len(values) - 1, loc=values.mean(),
                                 scale=stats.sem(values))
    return values.mean(), low, high


def test_every_init_is_paired_with_random():
    # imagenet = random + 0.3, pretrained = random + 0.1 + 0.01 * seed.
    rows = []
    for seed in (1, 2, 3):
        rows += [_row("random", seed, 1, 0.5, head_lr=0.01),
                 _row("pretrained", seed, 1, 0.6 + 0.01 * seed, head_lr=0.01),
                 _row("imagenet", seed, 1, 0.8, head_lr=0.01)]
    gaps = {gap.init: gap for gap in analysis.init_gaps(pd.DataFrame(rows))}
    assert set(gaps) == {"pretrained", "imagenet"}
    assert gaps["imagenet"].mean == pytest.approx(0.3)
    mean, low, high = scipy_interval([0.11, 0.12, 0.13])
    assert gaps["pretrained"].mean == pytest.approx(mean)
    assert (gaps["pretrained"].low, gaps["pretrained"].high) == pytest.approx((low, high))
    gain = analysis.transfer_gain(pd.DataFrame(rows))
    assert sorted(gain["comparison"]) == ["imagenet - random", "pretrained - random"]


def test_imagenet_against_random_is_paired_like_the_presets_need():
    rows = [_row(init, seed, 1, 0.5 + (0.2 if init == "imagenet" else 0), frozen_blocks=fb)
            for seed in (1, 2) for init in ("imagenet", "random") for fb in (0, 16)]
    (gap,) = analysis.init_gaps(pd.DataFrame(rows))
    assert (gap.init, gap.mean, gap.configurations) == ("imagenet", pytest.approx(0.2), 2)


def test_a_value_the_space_derives_from_init_is_compared_not_paired_on():
    # The d2l preset declares only init and derives body_lr_scale from it (0.1 for the
    # fine-tuned model, 1.0 from scratch): the chapter's comparison is imagenet at 0.1
    # against random at 1.0. Hand-computed: differences 0.22, 0.23, 0.24.
    from bench.analysis.report import build_report
    from bench.analysis.tables import Tables

    rows = [_row(init, seed, 1, 0.79 + 0.01 * seed if init == "imagenet" else 0.58,
                 body_lr_scale=0.1 if init == "imagenet" else 1.0)
            for seed in (1, 2, 3) for init in ("imagenet", "random")]
    table = pd.DataFrame(rows)
    # Without knowing what was declared, body_lr_scale is a configuration: nothing pairs.
    assert analysis.init_gaps(table) == []
    (gap,) = analysis.init_gaps(table, pair_on=[])
    mean, low, high = scipy_interval([0.22, 0.23, 0.24])
    assert (gap.mean, gap.low, gap.high) == pytest.approx((mean, low, high))
    assert gap.with_init == {"body_lr_scale": {"imagenet": 0.1, "random": 1.0}}
    tables = Tables(runs=[{"run_id": "r", "status": "completed",
                           "columns": {"hyperparameters": ["init", "body_lr_scale"],
                                       "varied": ["init"]}}],
                    epochs=table, trials=pd.DataFrame(columns=["run_id", "trial_id", "status"]),
                    complete=table)
    assert tables.pair_on("r") == []
    text = " ".join(block.content for block in build_report(tables, [])
                    if isinstance(block.content, str))
    assert "imagenet minus random validation accuracy, paired by seed, is **+0.230**" in text
    assert text.endswith("imagenet 0.810, random 0.580. body_lr_scale went with init "
                         "(imagenet 0.100, random 1.000) and is part of the comparison.")
    # A declared hyperparameter that happens to differ between inits still pairs.
    assert analysis.init_gaps(table, pair_on=["body_lr_scale"]) == []


def test_nothing_paired_says_why_and_what_to_run():
    # A random tuner's study: each configuration ran with one init only.
    rows = [_row("pretrained", s, 1, 0.7, head_lr=0.001) for s in (1, 2)]
    rows += [_row("random", s, 1, 0.5, head_lr=0.01) for s in (1, 2)]
    table = pd.DataFrame(rows)
    assert analysis.init_gaps(table) == []
    reason = analysis.why_no_gap(table)
    assert "no configuration" in reason and "--tuner grid" in reason
    assert "every complete execution used init random" in analysis.why_no_gap(
        table[table["init"] == "random"])
    assert "not varied" in analysis.why_no_gap(table.drop(columns="init"))


def test_configurations_without_every_seed_are_not_paired():
    # head_lr 0.01 ran with both inits at seeds 1..3 (gap 0.1); head_lr 0.1 ran with both
    # only at seed 1 (gap 0.5). Averaging it into seed 1 alone would compare seeds on
    # different configurations.
    rows = []
    for seed in (1, 2, 3):
        rows += [_row("random", seed, 1, 0.5, head_lr=0.01),
                 _row("pretrained", seed, 1, 0.6, head_lr=0.01)]
    rows += [_row("random", 1, 1, 0.2, head_lr=0.1), _row("pretrained", 1, 1, 0.7, head_lr=0.1)]
    rows += [_row("random", 2, 1, 0.2, head_lr=0.1)]
    gap = analysis.init_gap(pd.DataFrame(rows))
    assert gap.mean == pytest.approx(0.1) and gap.configurations == 1 and gap.pairs == 3
    # Found by a new user: the headline did not say it was one configuration's of two.
    from bench.analysis.report import gap_sentence

    assert gap.configurations_run == 2 and gap.paired == ({"head_lr": 0.01},)
    assert ("validation accuracy, for the only one of 2 configurations of the other "
            "hyperparameters that ran with both inits at every seed (head_lr=0.01), paired "
            "by seed, is **+0.100**") in gap_sentence(gap)


def test_an_execution_that_stopped_sooner_does_not_drop_its_seed_from_later_epochs():
    # Found by a reviewer: a space's early stopping ended pretrained seed 3 after epoch 1.
    # Pairing "every seed" among those left at epoch 2 compared seeds 1 and 2 only there
    # (+0.250 over 2 seeds, announced as all of them): the seed that stopped was dropped.
    from bench.analysis.report import gap_sentence

    rows = []
    for seed, pretrained in ((1, (0.7, 0.8)), (2, (0.7, 0.9)), (3, (0.3,))):
        rows += [_row("random", seed, 1, 0.5, head_lr=0.01),
                 _row("random", seed, 2, 0.6, head_lr=0.01)]
        rows += [_row("pretrained", seed, epoch, value, head_lr=0.01)
                 for epoch, value in enumerate(pretrained, start=1)]
    gap = analysis.init_gap(pd.DataFrame(rows))
    # Epoch 1, the last with every seed: differences 0.2, 0.2 and -0.2.
    assert (gap.epoch, gap.last_epoch, gap.pairs) == (1, 2, 3)
    assert gap.mean == pytest.approx(0.2 / 3)
    assert gap.spread == pytest.approx(math.sqrt(((0.2 - 0.2 / 3) ** 2 * 2
                                                  + (0.2 + 0.2 / 3) ** 2) / 2))
    assert gap_sentence(gap).startswith(
        "At epoch 1 (not at epoch 2, the last run: some executions stopped sooner, and "
        "after epoch 1 no configuration has both inits at every seed), pretrained minus "
        "random validation accuracy, paired by seed, is **+0.067**")
    gain = analysis.transfer_gain(pd.DataFrame(rows))
    assert gain["epoch"].tolist() == [1] and gain["n"].tolist() == [3]
    # With a second configuration that ran every seed to the end, epoch 2 is its alone.
    for seed in (1, 2, 3):
        rows += [_row(init, seed, epoch, value, head_lr=0.1) for init, values in
                 (("random", (0.4, 0.5)), ("pretrained", (0.5, 0.5 + 0.1 * seed)))
                 for epoch, value in enumerate(values, start=1)]
    gap = analysis.init_gap(pd.DataFrame(rows))
    assert (gap.epoch, gap.pairs, gap.configurations, gap.configurations_run) == (2, 3, 1, 2)
    assert gap.mean == pytest.approx(0.2) and gap.paired == ({"head_lr": 0.1},)
    assert gap_sentence(gap).startswith("At epoch 2, pretrained minus random validation "
                                        "accuracy, for the only one of 2 configurations")


def test_a_gap_counts_configurations_among_those_that_reached_its_epoch():
    # Found by a new user on a Hyperband run: "the 2 of 3 configurations ... that ran with
    # both inits at every seed", where 5 had, but only 3 reached the headline's epoch.
    from bench.analysis.report import gap_sentence

    def ran(rows, head_lr, epochs, gaps, *, inits=("random", "pretrained")):
        for seed in (1, 2):
            for epoch in range(1, epochs + 1):
                rows += [_row(init, seed, epoch, 0.5 + (gaps if init != "random" else 0)
                              + 0.01 * seed * (init != "random"), head_lr=head_lr)
                         for init in inits]

    rows = []
    ran(rows, 0.1, 1, 0.4)  # stopped after one epoch
    ran(rows, 0.03, 1, 0.4)
    ran(rows, 0.01, 3, 0.2)
    ran(rows, 0.001, 3, 0.1)
    gap = analysis.init_gap(pd.DataFrame(rows))
    assert (gap.epoch, gap.configurations, gap.configurations_run,
            gap.configurations_any_epoch) == (3, 2, 2, 4)
    assert gap.mean == pytest.approx(0.15 + 0.015)
    assert ("validation accuracy, averaged over the 2 of 4 configurations of the other "
            "hyperparameters that reached epoch 3 in every execution (left out: "
            "head_lr=0.1; head_lr=0.03) and paired by seed, is **+0.165**") in gap_sentence(gap)
    # One of those that reached epoch 3 ran one init only.
    ran(rows, 0.3, 3, 0.0, inits=("pretrained",))
    gap = analysis.init_gap(pd.DataFrame(rows))
    assert (gap.configurations, gap.configurations_run, gap.configurations_any_epoch) == (2, 3, 5)
    assert ("averaged over the 2 of 5 configurations of the other hyperparameters that ran "
            "with both inits at every seed and reached epoch 3 in every execution (left out: "
            "head_lr=0.1; head_lr=0.03; head_lr=0.3) and paired by seed, is **+0.165**"
            ) in gap_sentence(gap)
    only = analysis.init_gap(pd.DataFrame([r for r in rows if r["head_lr"] != 0.01]))
    assert ("for the only one of 4 configurations of the other hyperparameters that ran "
            "with both inits at every seed and reached epoch 3 in every execution "
            "(head_lr=0.001), paired by seed, is **+0.115**") in gap_sentence(only)
    alone = analysis.init_gap(pd.DataFrame([r for r in rows if r["head_lr"] not in
                                            (0.01, 0.3)]))
    assert ("for the only one of 3 configurations of the other hyperparameters that "
            "reached epoch 3 in every execution (head_lr=0.001), paired by seed, is "
            "**+0.115**") in gap_sentence(alone)


def test_a_gap_says_early_stopping_not_one_init_left_configurations_out():
    # Found by a new user: every configuration ran with both inits at every seed, and an
    # execution of two of them stopped early (a space's EarlyStopping); the headline said
    # "the 2 of 4 configurations ... that ran with both inits at every seed".
    from bench.analysis.report import gap_sentence

    rows = []
    for head_lr, stops, gap in ((0.1, {}, 0.1), (0.01, {}, 0.3),
                                (0.03, {("random", 1): 2}, 0.2),
                                (0.001, {("random", 2): 2, ("pretrained", 1): 3}, 0.2)):
        for seed in (1, 2):
            for init in ("random", "pretrained"):
                last = stops.get((init, seed), 4)
                rows += [_row(init, seed, epoch, 0.4 + gap * (init == "pretrained")
                              + 0.01 * seed, head_lr=head_lr) for epoch in range(1, last + 1)]
    gap = analysis.init_gap(pd.DataFrame(rows))
    assert (gap.epoch, gap.configurations, gap.configurations_both,
            gap.configurations_any_epoch) == (4, 2, 4, 4)
    assert gap.mean == pytest.approx(0.2)  # (0.1 + 0.3) / 2 at both seeds
    assert ("averaged over the 2 of 4 configurations of the other hyperparameters that "
            "reached epoch 4 in every execution (left out: head_lr=0.03; head_lr=0.001) and "
            "paired by seed, is **+0.200**") in gap_sentence(gap)


def test_the_p_value_is_the_paired_t_test_on_the_seeds_differences():
    # Differences 0.1, 0.2, 0.3: t = 0.2 / (0.1 / sqrt 3) = 2 sqrt 3 on 2 degrees of
    # freedom, whose CDF is 1/2 + t / (2 sqrt(2 + t^2)). Unpaired (Welch) would give 0.398,
    # n degrees of freedom 0.0405.
    from bench.analysis.report import gap_sentence

    rows = []
    for seed, (random, pretrained) in enumerate(((0.3, 0.4), (0.5, 0.7), (0.7, 1.0)), 1):
        rows += [_row("random", seed, 1, random, head_lr=0.01),
                 _row("pretrained", seed, 1, pretrained, head_lr=0.01)]
    gap = analysis.init_gap(pd.DataFrame(rows))
    t = 2 * math.sqrt(3)
    assert gap.p_value == pytest.approx(2 * (0.5 - t / (2 * math.sqrt(2 + t * t))), rel=1e-9)
    assert gap.p_value == pytest.approx(0.0742, abs=1e-4)
    assert "standard deviation over 3 seeds 0.100, paired t-test p = 0.074)" in \
        gap_sentence(gap)
    # Differences 0.2 and 0: t = 0.1 / (0.1414 / sqrt 2) = 1 on 1 degree of freedom, whose
    # two-sided p is 1 - (2 / pi) atan(1) = 0.5: written "0.50", two significant digits as
    # every other p (a new user saw "p = 0.5" beside "p = 0.47").
    rows = [_row(init, seed, 1, value, head_lr=0.01)
            for seed, pair in enumerate(((0.3, 0.5), (0.4, 0.4)), 1)
            for init, value in zip(("random", "pretrained"), pair)]
    gap = analysis.init_gap(pd.DataFrame(rows))
    assert gap.p_value == pytest.approx(0.5, abs=1e-9)
    assert "paired t-test p = 0.50)" in gap_sentence(gap)


def test_one_difference_at_every_seed_has_no_t_test_whatever_float32_rounding_says():
    # Found by a new user on an 18-image validation split: both seeds 3 images apart
    # (1/6), yet "standard deviation 1.1e-08, paired t-test p = 2.8e-08" from rounding.
    # Keras's accuracy is a float32 mean; here the same counts in another float32 order.
    from bench.analysis.report import gap_sentence

    def float32_accuracy(correct, total, *, order):
        ones = np.zeros(total, dtype=np.float32)
        ones[:correct] = 1
        return float(np.float32(np.sum(ones[order(total)], dtype=np.float32)) /
                     np.float32(total))

    forward, backward = (lambda n: np.arange(n)), (lambda n: np.arange(n)[::-1])
    rows = []
    for seed, (random, pretrained, order) in enumerate(((9, 12, forward),
                                                        (11, 14, backward)), 1):
        for value, init in ((random, "random"), (pretrained, "pretrained")):
            rows += [_row(init, seed, 1, float32_accuracy(value, 18, order=order) +
                          (1e-7 if seed == 2 and init == "pretrained" else 0.0),
                          head_lr=0.01)]
    gap = analysis.init_gap(pd.DataFrame(rows))
    assert gap.pairs == 2 and gap.mean == pytest.approx(3 / 18, abs=1e-6)
    assert gap.spread == 0.0 and math.isnan(gap.p_value)
    assert (gap.low, gap.high) == (gap.mean, gap.mean)
    sentence = gap_sentence(gap)
    assert "**+0.167** (95% CI [+0.167, +0.167]; the same difference at all 2 seeds, so no " \
        "t-test)" in sentence, sentence
    # One image apart at one seed (1/18 = 0.056) is a spread: the t-test is back.
    rows[-1]["val_accuracy"] = 15 / 18
    apart = analysis.init_gap(pd.DataFrame(rows))
    assert apart.spread == pytest.approx(np.std([3 / 18, 4 / 18], ddof=1))
    assert apart.p_value == pytest.approx(stats.ttest_1samp([3 / 18, 4 / 18], 0).pvalue)


def test_a_gap_over_some_of_the_configurations_says_how_many_of_how_many():
    # frozen_blocks 0 and 2 ran with both inits (gaps 0.2 and 0.4), 4 only pretrained.
    rows = []
    for seed in (1, 2):
        for depth, gap in ((0, 0.2), (2, 0.4)):
            rows += [_row("random", seed, 1, 0.3, frozen_blocks=depth),
                     _row("pretrained", seed, 1, 0.3 + gap, frozen_blocks=depth)]
        rows.append(_row("pretrained", seed, 1, 0.9, frozen_blocks=4))
    gap = analysis.init_gap(pd.DataFrame(rows))
    from bench.analysis.report import gap_sentence

    assert (gap.configurations, gap.configurations_run) == (2, 3)
    assert gap.mean == pytest.approx(0.3)
    # Found by a new user: the configuration left out was named nowhere but the trials.
    assert ("averaged over the 2 of 3 configurations of the other hyperparameters that ran "
            "with both inits at every seed (left out: frozen_blocks=4) and paired by seed, "
            "is **+0.300**") in gap_sentence(gap)
    # More left out than a sentence lists; an inactive conditional value is not written.
    more = rows + [_row("pretrained", seed, 1, 0.9, frozen_blocks=depth, dropout=dropout)
                   for seed in (1, 2) for depth, dropout in ((6, 0.1), (8, 0.2), (10, None))]
    assert ("that ran with both inits at every seed (left out: frozen_blocks=4; "
            "frozen_blocks=6 dropout=0.1; frozen_blocks=8 dropout=0.2; and 1 more) and paired "
            "by seed") in gap_sentence(analysis.init_gap(pd.DataFrame(more)))
    alone = [r for r in more if r["frozen_blocks"] in (0, 4, 10)]
    assert "(frozen_blocks=0)" in gap_sentence(analysis.init_gap(pd.DataFrame(alone)))
    every = analysis.init_gap(pd.DataFrame([r for r in rows if r["frozen_blocks"] != 4]))
    assert ("averaged over 2 configurations of the other hyperparameters and paired by "
            "seed") in gap_sentence(every)


def conditional_table():
    """frozen_blocks x head_lr; dropout only when frozen_blocks == 0 (else inactive)."""
    rows = []
    values = {(0, 0.001, 0.2): [0.80, 0.82, 0.84], (0, 0.001, 0.5): [0.60, 0.70, 0.95],
              (0, 0.01, 0.2): [0.30, 0.35, 0.40], (0, 0.01, 0.5): [0.50, 0.52, 0.54],
              (4, 0.001, None): [0.40, 0.45, 0.50], (4, 0.01, None): [0.90, 0.99, 0.97]}
    for (fb, lr, dropout), finals in values.items():
        for seed, final in enumerate(finals, start=1):
            for epoch, value in ((1, final - 0.1), (2, final)):
                rows.append({"run_id": "r", "trial_id": f"{fb}/{lr}/{dropout}", "repeat": seed,
                             "seed": seed, "epoch": epoch, "init": "pretrained",
                             "frozen_blocks": fb, "head_lr": lr,
                             "dropout": np.nan if dropout is None else dropout,
                             "val_accuracy": value, "accuracy": min(1.0, value + 0.05)})
    return pd.DataFrame(rows)


def test_a_line_that_hides_hyperparameters_is_one_configuration_with_its_own_interval():
    table = conditional_table()
    facets = curve_facets(table, ["init", "frozen_blocks", "head_lr", "dropout"])
    assert facets["hue"] == "frozen_blocks" and facets["style"] == "head_lr"
    assert facets["best_of"] == ["dropout"]
    rows = curve_rows(table, facets)
    # frozen 0 at head_lr 0.001: dropout 0.2 (mean 0.82) beats 0.5 (mean 0.75).
    chosen = rows[(rows["frozen_blocks"] == 0) & (rows["head_lr"] == 0.001)]
    assert set(chosen["dropout"]) == {0.2}
    curves = analysis.mean_curves(rows, by=["frozen_blocks", "head_lr"])
    at = curves[(curves["frozen_blocks"] == 0) & (curves["head_lr"] == 0.001)
                & (curves["epoch"] == 2)].iloc[0]
    mean, low, high = scipy_interval([0.80, 0.82, 0.84])
    assert (at["mean"], at["low"], at["high"], at["n"]) == (
        pytest.approx(mean), pytest.approx(low), pytest.approx(high), 3)
    # Inactive dropout rows (frozen 4) are kept as their own configuration.
    assert len(rows[rows["frozen_blocks"] == 4]) == 2 * 3 * 2


def test_transferability_points_are_the_best_configuration_per_depth():
    table = conditional_table()
    rows = analysis.best_configurations(table, keep=["frozen_blocks"],
                                        over=["head_lr", "dropout"])
    summary = analysis.execution_summary(rows, by=["frozen_blocks"])
    final = summary[summary["measure"] == "final"].set_index("frozen_blocks")
    # Depth 4: head_lr 0.01 (0.953) beats 0.001; depth 0: 0.001 with dropout 0.2 (0.82).
    for depth, values in ((4, [0.90, 0.99, 0.97]), (0, [0.80, 0.82, 0.84])):
        mean, low, high = scipy_interval(values)
        assert final.loc[depth, "mean"] == pytest.approx(mean)
        assert final.loc[depth, "low"] == pytest.approx(low)
        assert final.loc[depth, "high"] == pytest.approx(min(high, 1.0))
        assert final.loc[depth, "n"] == 3
    # The unclipped interval of depth 4 goes past 1; accuracy cannot.
    assert scipy_interval([0.90, 0.99, 0.97])[2] > 1.0
    assert final.loc[4, "high"] == 1.0


def test_accuracy_bands_stay_within_zero_and_one():
    mean, low, high = analysis.t_interval([0.0, 0.02, 0.9], bounds=(0.0, 1.0))
    assert low == 0.0 and high == 1.0 and mean == pytest.approx(0.3066666)


def test_only_completed_trials_feed_the_numbers():
    epochs = pd.DataFrame([_row(init, s, e, 0.5 if init == "random" else 0.9)
                           for init in ("random", "pretrained") for s in (1, 2)
                           for e in (1, 2)])
    epochs.loc[(epochs["init"] == "pretrained") & (epochs["seed"] == 2), "val_accuracy"] = 0.1
    trials = pd.DataFrame({"run_id": "r", "trial_id": ["random-", "pretrained-"],
                           "status": ["COMPLETED", "FAILED"]})
    complete = analysis.complete_rows(epochs, trials)
    assert set(complete["trial_id"]) == {"random-"}
    assert analysis.init_gaps(complete) == []


def test_the_best_table_names_every_varied_hyperparameter_and_puts_failures_last():
    trials = pd.DataFrame({"trial_id": ["0", "1", "2"], "status": ["FAILED", "COMPLETED",
                                                                    "COMPLETED"],
                           "init": "pretrained", "head_lr": [1e38, 0.01, 0.001],
                           "best_val_accuracy": [np.nan, 0.7, 0.8],
                           "final_val_accuracy": [np.nan, 0.6, 0.75],
                           "test_accuracy": [np.nan, 0.6, 0.7], "seconds": 1.0})
    best = analysis.best_trials(trials, by="init")
    table = summary_table(best, ["init", "head_lr"])
    assert list(table["head_lr"]) == ["0.001"]  # one row, and it still says which value won
    everything = summary_table(trials, ["init", "head_lr"], limit=3)
    assert list(everything["trial_id"]) == ["2", "1", "0"]


def test_the_trials_table_writes_values_with_the_digits_that_tell_them_apart():
    """Found by a new user: momentum 0.9995 read 1.000 and head_lr 0.0118 and 0.0123 both
    read 0.012 in report.md."""
    trials = pd.DataFrame({"trial_id": ["0", "1", "2", "3"], "status": "COMPLETED",
                           "head_lr": [0.0118, 0.0123, 0.0118, 0.001],
                           "momentum": [0.9995, 0.999, 0.9, 0.9],
                           "frozen_blocks": [2.0, 4.0, 0.0, 2.0],
                           "best_val_accuracy": [0.9, 0.8, 0.7, 0.6],
                           "final_val_accuracy": 0.5, "test_accuracy": 0.5, "seconds": 1.0})
    table = summary_table(trials, ["head_lr", "momentum", "frozen_blocks"])
    assert list(table["head_lr"]) == ["0.0118", "0.0123", "0.0118", "0.001"]
    assert list(table["momentum"]) == ["0.9995", "0.999", "0.9", "0.9"]
    assert list(table["frozen_blocks"]) == [2, 4, 0, 2]
    assert "| 0 | 0.0118 | 0.9995 | 2 | 0.900 |" in markdown_table(table)
    # A reviewer's: a Choice of [1.0, inf] raised OverflowError making inf an integer.
    endless = summary_table(trials.assign(cap=[1.0, np.inf, 1.0, 1.0]), ["cap"])
    assert list(endless["cap"]) == ["1", "inf", "1", "1"]


def test_the_running_best_never_takes_a_failed_score():
    trials = pd.DataFrame({"trial_id": ["0", "1"], "status": ["FAILED", "COMPLETED"],
                           "best_val_accuracy": [0.99, 0.4], "seconds": [1.0, 1.0]})
    progress = analysis.best_so_far(trials)
    assert math.isnan(progress["best"][0]) and progress["best"][1] == 0.4


def test_a_continuous_hyperparameter_is_drawn_as_its_best_value_not_fifty_line_styles(tmp_path):
    # A random search over a continuous head_lr: 30 values, one repeat each, two depths.
    # The best final accuracy is at head_lr index 7 for depth 0 and index 21 for depth 4.
    from bench.analysis import plots
    from bench.analysis.figures import accuracy_curves

    rows = []
    for i, lr in enumerate(np.geomspace(1e-4, 1e-1, 30)):
        for depth, peak in ((0, 7), (4, 21)):
            final = 0.9 - 0.01 * abs(i - peak)
            for epoch, value in ((1, final - 0.2), (2, final)):
                rows.append({"run_id": "r", "trial_id": f"{i}/{depth}", "repeat": 1,
                             "seed": 1, "epoch": epoch, "init": "random",
                             "frozen_blocks": depth, "head_lr": lr,
                             "val_accuracy": value, "accuracy": value})
    table = pd.DataFrame(rows)
    facets = curve_facets(table, ["init", "frozen_blocks", "head_lr"])
    assert facets == {"col": None, "hue": "frozen_blocks", "style": None,
                      "best_of": ["head_lr"]}
    chosen = curve_rows(table, facets).groupby("frozen_blocks")["head_lr"].unique()
    lrs = np.geomspace(1e-4, 1e-1, 30)
    assert list(chosen[0]) == [lrs[7]] and list(chosen[4]) == [lrs[21]]
    curves = accuracy_curves(table, facets)
    figure = plots.accuracy_vs_epochs(curves, col=None, hue="frozen_blocks", style=None,
                                      title="t")
    assert len(figure.axes[0].get_lines()) == 2


def test_an_execution_trained_again_for_longer_counts_once():
    # Hyperband's promotion by hand: trial "a" ran config lr=0.01 for 1 epoch at seeds 1
    # and 2, trial "b" the same config and seeds for 3; trial "c" another config.
    rows = []
    for seed in (1, 2):
        rows += [_row("random", seed, 1, 0.50, head_lr=0.01) | {"trial_id": "a"}]
        rows += [_row("random", seed, e, 0.50 + 0.1 * (e - 1), head_lr=0.01)
                 | {"trial_id": "b"} for e in (1, 2, 3)]
        rows += [_row("random", seed, 1, 0.40 + 0.02 * seed, head_lr=0.1) | {"trial_id": "c"}]
    table = pd.DataFrame(rows)
    kept, superseded = analysis.longest_executions(table, configuration=["init", "head_lr"])
    assert sorted(kept["trial_id"].unique()) == ["b", "c"] and len(kept) == 8
    assert superseded.to_dict("records") == [
        {"run_id": "r", "trial_id": "a", "epochs": 1, "by_trial_id": "b", "by_epochs": 3,
         "seed": 1},
        {"run_id": "r", "trial_id": "a", "epochs": 1, "by_trial_id": "b", "by_epochs": 3,
         "seed": 2}]
    curves = analysis.mean_curves(kept, by=["head_lr"])
    first = curves[(curves["head_lr"] == 0.01) & (curves["epoch"] == 1)].iloc[0]
    assert (first["n"], first["mean"]) == (2, pytest.approx(0.50))  # not 4 rows
    # Nothing to drop: the table comes back as it was.
    same, none = analysis.longest_executions(table[table["trial_id"] != "a"],
                                             configuration=["init", "head_lr"])
    assert len(same) == 8 and none.empty


@pytest.mark.parametrize("statuses, run_status, ended", [
    (["FAILED", "FAILED"], "completed", "failed"),
    # Found by a new user: a run stopped mid-grid was said to have failed trials.
    (["RUNNING", "RUNNING"], "interrupted",
     "did not finish: the run stopped before they completed"),
    (["RUNNING", "RUNNING"], "running", "have not finished: the run is still going"),
    (["FAILED", "RUNNING"], "interrupted", "failed or did not finish"),
], ids=["failed", "stopped", "running", "both"])
def test_a_figure_lost_to_failed_trials_is_skipped_with_the_reason_for_each_name(
        tmp_path, statuses, run_status, ended):
    # head_lr took three values, but only 0.01 completed; frozen_blocks never varied.
    from bench.analysis.figures import Study, _heatmap_figure, _objective_figures
    from bench.analysis.tables import Tables

    rows = pd.DataFrame([_row("pretrained", seed, e, 0.5, frozen_blocks=0, head_lr=0.01)
                         for seed in (1, 2) for e in (1, 2)])
    trials = pd.DataFrame({"run_id": "r", "trial_id": ["0", "1", "2"],
                           "status": ["COMPLETED", *statuses],
                           "head_lr": [0.01, 1e30, 1e34], "frozen_blocks": 0})
    run = {"run_id": "r", "status": run_status,
           "columns": {"hyperparameters": ["init", "frozen_blocks", "head_lr"],
                       "varied": ["head_lr"]}}
    study = Study(Tables(runs=[run], epochs=rows, trials=trials, complete=rows), tmp_path,
                  log=lambda *_: None)
    _heatmap_figure(study)
    _objective_figures(study)
    lost = ("head_lr was varied, but only one of its values has complete executions (the "
            f"trials with the others {ended})")
    said = [b.content for b in study.blocks if b.kind == "p"]
    assert said == [f"Not drawn: frozen_blocks was not varied; {lost}.",
                    f"Not drawn: {lost}."]
    assert [b.content for b in study.blocks if b.kind == "h2"][1].startswith(
        "Validation accuracy against")


def test_report_numbers_are_written_readably_at_every_scale():
    from bench.analysis.render import fmt

    assert [fmt(v) for v in (0.0, 0.001, 0.5, 123.456, 1e30, float("nan"), "Adam")] == [
        "0.000", "0.001", "0.500", "123.456", "1e+30", "-", "Adam"]


def test_one_seed_has_no_interval_rather_than_one_of_zero_width(tmp_path):
    # One repeat: pretrained 0.8 and 0.7, random 0.5 and 0.6 over two depths at epoch 2,
    # so the gap is ((0.8 - 0.5) + (0.7 - 0.6)) / 2 = 0.2, and with one seed Student's t
    # has no degrees of freedom: no interval, not [+0.200, +0.200].
    from bench.analysis.figures import Study, _gain_figure
    from bench.analysis.report import gap_sentence
    from bench.analysis.tables import Tables

    values = {("pretrained", 0): 0.8, ("pretrained", 2): 0.7, ("random", 0): 0.5,
              ("random", 2): 0.6}
    rows = pd.DataFrame([_row(init, 1, epoch, value - 0.1 * (2 - epoch), frozen_blocks=depth)
                         for (init, depth), value in values.items() for epoch in (1, 2)])
    gap = analysis.init_gap(rows)
    assert (gap.pairs, gap.mean) == (1, pytest.approx(0.2))
    assert math.isnan(gap.low) and math.isnan(gap.high)
    sentence = gap_sentence(gap)
    assert ("**+0.200** (one seed, so no 95% CI; run with --repeats 2 or more for one)"
            in sentence)
    trials = rows[["run_id", "trial_id"]].drop_duplicates().assign(status="COMPLETED")
    run = {"run_id": "r", "columns": {"hyperparameters": ["init", "frozen_blocks"],
                                      "varied": ["init", "frozen_blocks"]}}
    study = Study(Tables(runs=[run], epochs=rows, trials=trials, complete=rows), tmp_path,
                  log=lambda *_: None)
    _gain_figure(study)
    caption = [b.caption for b in study.blocks if b.kind == "figure"]
    assert caption[0].endswith("With one seed there is no interval: none is drawn.")
    # A figure that never draws intervals does not say so (found by a new user).
    from bench.analysis.figures import _trial_figures

    study.tables.trials = trials.assign(best_val_accuracy=[0.8, 0.7, 0.5, 0.6], seconds=1.0,
                                        trial_number=range(1, 5))
    _trial_figures(study)
    progress = next(b.caption for b in study.blocks if "tuner_progress" in str(b.content))
    assert progress.endswith("failed trials add time but no score.")


@pytest.mark.parametrize("validation", [4, 397])
def test_a_small_validation_split_says_how_coarse_its_accuracy_is(validation):
    """Found by a new user: 4 validation images, both seeds 3 of 4 right pretrained and
    2 of 4 random, read "+0.250 (95% CI [+0.250, +0.250])", as if certain."""
    from bench.analysis.report import build_report
    from bench.analysis.tables import Tables

    rows = pd.DataFrame([_row(init, seed, 1, value, head_lr=0.01)
                         for seed in (1, 2) for init, value in (("pretrained", 0.75),
                                                                ("random", 0.5))])
    trials = rows[["run_id", "trial_id"]].drop_duplicates().assign(
        status="COMPLETED", best_val_accuracy=0.0, final_val_accuracy=0.0)
    run = {"run_id": "r", "status": "completed", "dataset": {"validation": validation},
           "columns": {"hyperparameters": ["init", "head_lr"], "varied": ["init", "head_lr"]}}
    blocks = build_report(Tables(runs=[run], epochs=rows, trials=trials, complete=rows), [])
    text = " ".join(str(b.content) for b in blocks)
    assert "**+0.250** (95% CI [+0.250, +0.250]" in text
    said = ("The validation split has 4 images, so an execution's validation accuracy moves "
            "in steps of 1/4 = 0.250: a gap smaller than that is less than one image per "
            "execution")
    assert (said in text) == (validation == 4)


def test_the_gap_interval_is_scipys_even_past_one():
    # Differences 0.9, 0.1, 0.8 over three seeds: the t-interval reaches past +1, and the
    # report gives it as scipy does, not cut at +1.000 without saying so.
    from bench.analysis.report import gap_sentence

    rows = []
    for seed, gain in zip((1, 2, 3), (0.9, 0.1, 0.8)):
        rows += [_row("random", seed, 1, 0.05, head_lr=0.01),
                 _row("pretrained", seed, 1, 0.05 + gain, head_lr=0.01)]
    gap = analysis.init_gap(pd.DataFrame(rows))
    mean, low, high = scipy_interval([0.9, 0.1, 0.8])
    assert high > 1 and (gap.mean, gap.low, gap.high) == pytest.approx((mean, low, high))
    assert f"95% CI [{low:+.3f}, {high:+.3f}]" in gap_sentence(gap)


def test_a_hyperparameter_value_none_or_nan_is_read_as_written(tmp_path):
    # Choice("aug", ["None", "nan", "flip"]) is three values; pandas' default reading makes
    # the first two missing, so their configurations would drop out of every group.
    from bench.results import RunDir, read_epochs
    from bench.tuning.recording import CsvAppender

    columns = ["run_id", "trial_id", "repeat", "seed", "epoch", "aug", "width", "loss",
               "accuracy", "val_loss", "val_accuracy"]
    table = CsvAppender(tmp_path / "epochs.csv", columns)
    for trial, aug, width, loss in (("0", "None", "", float("nan")), ("1", "nan", 8, 1.0),
                                    ("2", "flip", 8, 1.0)):
        table.append(dict(zip(columns, ["r", trial, 1, 1, 1, aug, width, loss, 0.5, 1.0,
                                        0.5])))
    table.close()
    lines = (tmp_path / "epochs.csv").read_text().splitlines()
    assert lines[1] == "r,0,1,1,1,None,,,0.5,1.0,0.5"  # NaN written as an empty cell
    epochs = read_epochs(RunDir(tmp_path))
    assert list(epochs["aug"]) == ["None", "nan", "flip"]
    assert math.isnan(epochs["width"][0]) and list(epochs["width"][1:]) == [8, 8]
    assert math.isnan(epochs["loss"][0])
    # An older table wrote a NaN loss as "nan": still a number.
    (tmp_path / "epochs.csv").write_text("\n".join([lines[0], lines[1].replace(",,,", ",,nan,"),
                                                    *lines[2:]]) + "\n")
    assert math.isnan(read_epochs(RunDir(tmp_path))["loss"][0])


def test_the_best_configuration_is_per_run_when_runs_are_joined():
    # Two runs (other spaces, other epochs): each keeps its own best per init, not the
    # best of both, which would hide one run entirely.
    trials = pd.DataFrame({
        "run_id": ["a", "a", "a", "b", "b"], "trial_id": ["0", "1", "2", "0", "1"],
        "status": "COMPLETED", "init": ["pretrained", "pretrained", "random", "pretrained",
                                        "random"],
        "best_val_accuracy": [0.9, 0.95, 0.5, 0.7, 0.4]})
    best = analysis.best_trials(trials, by="init")
    assert best[["run_id", "trial_id"]].values.tolist() == [["a", "1"], ["a", "2"],
                                                            ["b", "0"], ["b", "1"]]
    assert analysis.best_trials(trials[trials["run_id"] == "a"], by="init")[
        "trial_id"].tolist() == ["1", "2"]


def test_a_conditional_integer_is_written_and_shown_as_declared(tmp_path):
    from bench.results import summarise_trials, write_csv

    epochs = pd.DataFrame({"trial_id": ["0", "1"], "repeat": 1, "epoch": 1,
                           "val_accuracy": [0.5, 0.7]})
    trials = [{"trial_id": "0", "status": "COMPLETED", "init": "pretrained", "frozen_blocks": 4},
              {"trial_id": "1", "status": "COMPLETED", "init": "random", "frozen_blocks": None}]
    path = tmp_path / "trials.csv"
    write_csv(path, summarise_trials(epochs, trials, ["init", "frozen_blocks"]))
    lines = path.read_text().splitlines()
    assert lines[1].startswith("0,COMPLETED,pretrained,4,0.5,")
    assert lines[2].startswith("1,COMPLETED,random,,0.7,")
    read = pd.read_csv(path, dtype={"trial_id": str})  # 4.0 and NaN, as pandas reads it
    table = summary_table(read, ["init", "frozen_blocks"])
    assert list(table["frozen_blocks"]) == ["inactive", 4]  # best first
    assert "| 1 | random | inactive |" in markdown_table(table)


def test_a_trial_with_rows_but_no_trials_line_is_running_in_a_live_run():
    """Found by a new user: analyze on a run still going said its running trial was "cut
    off when its process stopped"."""
    from bench.analysis.report import partial_sentence
    from bench.results import process_identity

    trials = pd.DataFrame({"trial_id": ["0"], "status": ["COMPLETED"]})
    epochs = pd.DataFrame({"trial_id": ["0", "1"], "repeat": 1, "epoch": 1})
    live = {"status": "running", "process": process_identity()}
    assert "(1 completed, 1 running, with rows so far (trials.csv lists a trial when it " \
        "ends))" in partial_sentence(live, trials, epochs, epochs.iloc[:1])
    remote = {"status": "running", "process": {"pid": 1, "host": "node7"}}
    assert "1 running, or cut off if its process on node7 stopped, with rows but no " \
        "trials.csv line" in partial_sentence(remote, trials, epochs, epochs.iloc[:1])
    stopped = {"status": "interrupted", "process": process_identity()}
    assert "1 cut off when its process stopped, with rows but no trials.csv line" in \
        partial_sentence(stopped, trials, epochs, epochs.iloc[:1])


def test_a_boolean_hyperparameter_is_not_drawn_on_a_numeric_axis(tmp_path):
    """Found by a new user: a Boolean was plotted on an axis from 0.0 to 1.0."""
    from bench.analysis.figures import Study, _objective_figures
    from bench.analysis.tables import Tables

    rows = pd.DataFrame([_row("pretrained", seed, 2, 0.5 + 0.1 * seed + 0.01 * lr,
                              flag=flag, head_lr=lr)
                         for seed in (1, 2) for flag in (True, False) for lr in (1, 2)])
    trials = rows[["run_id", "trial_id"]].drop_duplicates().assign(status="COMPLETED")
    run = {"run_id": "r", "columns": {"hyperparameters": ["init", "flag", "head_lr"],
                                      "varied": ["flag", "head_lr"]}}
    study = Study(Tables(runs=[run], epochs=rows, trials=trials, complete=rows), tmp_path,
                  log=lambda *_: None)
    _objective_figures(study)
    drawn = [Path(b.content).stem for b in study.blocks if b.kind == "figure"]
    assert drawn == ["objective_vs_head_lr"]


def test_a_best_of_figure_says_which_configurations_tied_and_which_it_drew():
    # Found by a reviewer: head_lr 0.001 (finals 0.7, 0.8) and 0.01 (0.75, 0.75) tie at
    # 0.75 for depth 0, and the figure drew 0.001 by sort order, saying nothing.
    from bench.analysis.captions import best_note

    rows = []
    for head_lr, finals in ((0.001, (0.7, 0.8)), (0.01, (0.75, 0.75)), (0.1, (0.6, 0.6))):
        rows += [_row("random", seed, 1, final, frozen_blocks=0, head_lr=head_lr)
                 for seed, final in zip((1, 2), finals)]
    rows += [_row("random", seed, 1, final, frozen_blocks=2, head_lr=head_lr)
             for head_lr, finals in ((0.001, (0.5, 0.6)), (0.01, (0.5, 0.6 + 1 / 397)))
             for seed, final in zip((1, 2), finals)]
    drawn = analysis.best_configurations(pd.DataFrame(rows), keep=["frozen_blocks"],
                                         over=["head_lr"])
    assert sorted(set(zip(drawn["frozen_blocks"], drawn["head_lr"]))) == [(0, 0.001),
                                                                         (2, 0.01)]
    assert drawn.attrs["ties"] == [{"keep": {"frozen_blocks": 0},
                                    "over": [{"head_lr": 0.001}, {"head_lr": 0.01}],
                                    "score": pytest.approx(0.75)}]
    assert best_note(["head_lr"], drawn).endswith(
        " Tied for frozen_blocks=0: head_lr=0.001 and head_lr=0.01 share the best (0.7500); "
        "the first is drawn.")


def test_a_tie_in_a_joint_report_names_only_what_its_run_s_space_has():
    # Found in review: run B's space has no optimizer_name, and its tie read
    # "head_lr=0.001 optimizer_name=inactive and ..." (its tables say "not in space").
    from bench.analysis.captions import best_note
    from bench.analysis.tables import Tables

    rows = []
    for run_id, head_lr, name, finals in (
            ("A", 0.001, "SGD", (0.7, 0.8)), ("A", 0.01, "Adam", (0.6, 0.6)),
            ("A", 0.1, "SGD", (0.75, 0.75)),
            ("B", 0.001, None, (0.75, 0.75)), ("B", 0.01, None, (0.7, 0.8))):
        for seed, final in zip((1, 2), finals):
            row = _row("random", seed, 1, final, head_lr=head_lr, optimizer_name=name)
            rows.append(row | {"run_id": run_id, "trial_id": f"{run_id}{head_lr}"})
    epochs = pd.DataFrame(rows)
    drawn = analysis.best_configurations(epochs, keep=["run_id"],
                                         over=["head_lr", "optimizer_name"])
    trials = epochs.drop_duplicates("trial_id")[["run_id", "trial_id"]].assign(
        status="COMPLETED")
    names = {"A": ["head_lr", "optimizer_name"], "B": ["head_lr"]}
    runs = [{"run_id": r, "columns": {"hyperparameters": names[r], "varied": names[r]}}
            for r in "AB"]
    tables = Tables(runs=runs, epochs=epochs, trials=trials, complete=epochs)
    assert best_note(["head_lr", "optimizer_name"], drawn, tables=tables).endswith(
        " Tied for run_id=A: head_lr=0.001 optimizer_name=SGD and head_lr=0.1 "
        "optimizer_name=SGD share the best (0.7500); the first is drawn."
        " Tied for run_id=B: head_lr=0.001 and head_lr=0.01 share the best (0.7500); the "
        "first is drawn.")
    # Without the runs' spaces (as in one run), an empty cell is a conditional's, inactive.
    assert " head_lr=0.01 optimizer_name=inactive share" in best_note(
        ["head_lr", "optimizer_name"], drawn)

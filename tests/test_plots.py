"""Drawing functions: what each figure shows (lines, labels, scales, titles)."""

import matplotlib
import matplotlib.pyplot
import numpy as np
import pandas as pd
import pytest
from test_analysis import epochs_table

from bench.analysis import numbers as analysis
from bench.analysis import plots

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def _close_figures():
    # plots.save closes what it saves; tests that keep a figure to read it do not.
    yield
    matplotlib.pyplot.close("all")


def _lines(ax):
    return [line for line in ax.get_lines() if line.get_label() and
            not line.get_label().startswith("_")]


def test_accuracy_vs_epochs_has_a_row_per_metric_a_column_per_init_and_a_line_per_depth():
    from bench.analysis.figures import accuracy_curves, curve_facets

    table = epochs_table()
    facets = curve_facets(table, ["init", "frozen_blocks", "head_lr"])
    assert facets == {"col": "init", "hue": "frozen_blocks", "style": None, "best_of": []}
    fig = plots.accuracy_vs_epochs(accuracy_curves(table, facets), col="init",
                                   hue="frozen_blocks", style=None, title="t",
                                   boundaries=(1.5,))
    axes = fig.axes
    assert len(axes) == 4
    titles = [ax.get_title() for ax in axes]
    assert titles[:2] == ["initialisation = pretrained", "initialisation = random"]
    assert axes[0].get_ylabel() == "validation accuracy"
    assert axes[2].get_ylabel() == "training accuracy"
    assert axes[2].get_xlabel() == "epoch"
    for ax in axes:
        assert len(_lines(ax)) == 2  # frozen_blocks 0 and 2
        assert len(ax.collections) == 2  # one confidence band per line
        # The phase boundary is a vertical line at x = 1.5.
        assert any(list(line.get_xdata()) == [1.5, 1.5] for line in ax.get_lines())
    legend = fig.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == ["frozen blocks=0", "frozen blocks=2"]
    assert fig._suptitle.get_text() == "t"


def test_transfer_gain_draws_the_gain_and_a_zero_line():
    gain = analysis.transfer_gain(epochs_table())
    fig = plots.transfer_gain(gain, hue=None, title="gain")
    ax = fig.axes[0]
    drawn = [line for line in ax.get_lines() if list(line.get_xdata()) == [1, 2]]
    assert len(drawn) == 1
    assert list(drawn[0].get_ydata()) == gain["mean"].tolist()
    assert any(list(line.get_ydata()) == [0, 0] for line in ax.get_lines())
    assert ax.get_ylabel() == "pretrained - random\nvalidation accuracy"
    # Found by a new user: on one line the label ran into the title and off the figure.
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    label = ax.yaxis.label.get_window_extent(renderer)
    heading = fig._suptitle.get_window_extent(renderer)
    assert not label.overlaps(heading)
    assert 0 <= label.y0 and label.y1 <= fig.bbox.height


def _heatmap(head_lrs):
    """The heatmap of depths 0 and 2 at the two ``head_lrs`` (0.9, 0.8, 0.7, 0.6)."""
    table = pd.DataFrame({"frozen_blocks": [0, 0, 2, 2], "head_lr": list(head_lrs) * 2,
                          "val_accuracy": [0.9, 0.8, 0.7, 0.6], "epoch": 1, "run_id": "r",
                          "trial_id": ["a", "b", "c", "d"], "repeat": 1})
    pivot = analysis.heatmap_table(table, rows="frozen_blocks", cols="head_lr")
    return plots.heatmaps({"all": pivot}, rows="frozen_blocks", cols="head_lr", title="h")


def test_heatmap_is_annotated_with_the_values():
    fig = _heatmap([0.001, 0.01])
    texts = sorted(t.get_text() for t in fig.axes[0].texts)
    assert texts == ["0.60", "0.70", "0.80", "0.90"]
    assert fig.axes[0].get_xlabel() == "head learning rate (log-spaced)"


def test_labels_of_one_figure_never_write_two_values_alike():
    # A random search draws values three digits cannot tell apart: 0.01181 and 0.01184
    # were both "0.0118" in the legend, the heatmap and the panel titles.
    fig = _heatmap([0.01181, 0.01184])
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["0.01181", "0.01184"]
    rows = [{"epoch": e, "mean": 0.5, "low": 0.4, "high": 0.6, "head_lr": lr, "rate": r}
            for lr in (0.01181, 0.01184, 0.1) for r in (0.25, 0.25001) for e in (1, 2)]
    fig = plots.facet_lines(pd.DataFrame(rows), hue="head_lr", col="rate", title="t")
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [
        "head learning rate=0.01181", "head learning rate=0.01184", "head learning rate=0.1"]
    assert [ax.get_title() for ax in fig.axes] == ["rate = 0.25", "rate = 0.25001"]


def test_tuner_progress_has_trial_number_and_seconds_axes():
    trials = pd.DataFrame({"trial_id": ["0", "1", "2"], "status": ["COMPLETED"] * 3,
                           "best_val_accuracy": [0.5, 0.7, 0.6], "seconds": [2.0, 3.0, 4.0]})
    fig = plots.tuner_progress(analysis.best_so_far(trials), hue=None, title="p")
    by_trial, by_time = fig.axes[:2]
    assert by_trial.get_xlabel() == "trial number"
    assert by_time.get_xlabel().startswith("search seconds")
    assert [list(line.get_ydata()) for line in by_trial.get_lines()] == [[0.5, 0.7, 0.7]]
    assert [list(line.get_xdata()) for line in by_time.get_lines()] == [[2.0, 5.0, 9.0]]


def test_legends_are_in_numeric_order_with_inactive_last():
    rows = [{"epoch": e, "mean": 0.5, "low": 0.4, "high": 0.6, "dropout": d}
            for d in (10.0, 2.0, float("nan"), 1.0) for e in (1, 2)]
    fig = plots.facet_lines(pd.DataFrame(rows), hue="dropout", title="t")
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [
        "dropout=1", "dropout=2", "dropout=10", "dropout=inactive"]


def test_objective_against_a_log_sampled_hyperparameter_has_a_log_axis():
    summary = pd.DataFrame({"head_lr": [1e-4, 1e-3, 1e-2], "mean": [0.5, 0.7, 0.6],
                            "low": [0.4, 0.6, 0.5], "high": [0.6, 0.8, 0.7]})
    fig = plots.objective_vs(summary, x="head_lr", col=None, hue=None, log=True, title="o")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "head learning rate"
    assert list(_lines(ax) or ax.get_lines())[0].get_ydata().tolist() == [0.5, 0.7, 0.6]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.0001", "0.001", "0.01"]


def test_a_log_axis_within_a_decade_is_ticked_at_the_values_drawn():
    # Found by a new user: 2e-3 to 6e-3 had matplotlib's minor labels over one another.
    values = [0.00216, 0.00223, 0.0031, 0.0047, 0.0062]
    summary = pd.DataFrame({"head_lr": values, "mean": 0.5, "low": 0.4, "high": 0.6})
    fig = plots.objective_vs(summary, x="head_lr", col=None, hue=None, log=True, title="o")
    ax = fig.axes[0]
    fig.canvas.draw()
    # The span is log10(0.0062 / 0.00216) = 0.458 decades: ticks at least 0.458 / 5 =
    # 0.092 apart, so 0.00223 (0.014 past 0.00216) is drawn and not ticked.
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        "0.00216", "0.0031", "0.0047", "0.0062"]
    assert not [t.get_text() for t in ax.get_xticklabels(minor=True) if t.get_text()]
    # Two decades, ticks 0.4 decades apart at least: the largest is always ticked, the
    # one before it (0.3 decades short) gives way.
    assert plots.log_ticks([1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2]) == [
        1e-4, 5e-4, 2e-3, 1e-2]
    assert plots.MOST_LOG_TICKS == 6
    assert plots.log_ticks([10.0 ** k for k in range(-5, 1)]) == [10.0 ** k for k in range(-5, 1)]
    assert plots.log_ticks([10.0 ** k for k in range(-8, 1)]) == [1e-8, 1e-6, 1e-4, 1e-2, 1.0]


def test_trial_numbers_get_integer_ticks_and_overfitting_names_configurations():
    from matplotlib.ticker import MaxNLocator

    trials = pd.DataFrame({"trial_id": ["0", "1"], "status": ["COMPLETED"] * 2,
                           "best_val_accuracy": [0.5, 0.7], "seconds": [2.0, 3.0]})
    fig = plots.tuner_progress(analysis.best_so_far(trials), hue=None, title="p")
    locator = fig.axes[0].xaxis.get_major_locator()
    assert isinstance(locator, MaxNLocator) and locator._integer
    gap = pd.DataFrame({"trial_id": ["3", "3"], "epoch": [1, 2], "mean": [0.1, 0.2],
                        "low": [0.0, 0.1], "high": [0.2, 0.3],
                        "configuration": ["init=pretrained, head learning rate=0.01"] * 2})
    fig = plots.overfitting(gap, title="o")
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [
        "init=pretrained, head learning rate=0.01"]


def test_a_figure_of_one_point_is_skipped_with_a_reason(tmp_path):
    from bench.analysis.figures import figures
    from bench.analysis.tables import Tables

    epochs = pd.DataFrame({"run_id": "r", "trial_id": "0", "repeat": [1, 2], "seed": [1, 2],
                           "epoch": 1, "init": "pretrained", "head_lr": 0.01,
                           "val_accuracy": [0.5, 0.6], "accuracy": [0.6, 0.7]})
    trials = pd.DataFrame({"run_id": "r", "trial_id": ["0"], "status": ["COMPLETED"],
                           "best_val_accuracy": [0.55], "seconds": [1.0]})
    run = {"run_id": "r", "space": {"name": "s"}, "settings": {"dataset": "d"},
           "columns": {"hyperparameters": ["init", "head_lr"], "varied": ["head_lr"]}}
    said = []
    blocks = figures(Tables(runs=[run], epochs=epochs, trials=trials, complete=epochs),
                     tmp_path, log=said.append)
    assert any("Accuracy against epochs' skipped" in s and "single point" in s for s in said)
    assert not (tmp_path / "accuracy_vs_epochs.png").exists()
    assert any(b.kind == "p" and "single point" in b.content for b in blocks)


def test_the_objective_figure_of_two_runs_draws_a_line_per_run(tmp_path, monkeypatch):
    from bench.analysis.figures import figures
    from bench.analysis.tables import Tables

    # Two runs of one head-rate study, the second 0.2 lower: final accuracies by hand.
    rows = []
    for run, shift in (("a", 0.0), ("b", -0.2)):
        for lr, base in ((0.001, 0.6), (0.01, 0.8)):
            for seed in (1, 2, 3):
                for epoch in (1, 2):
                    rows.append({"run_id": run, "trial_id": f"{lr}", "repeat": seed,
                                 "seed": seed, "epoch": epoch, "head_lr": lr,
                                 "val_accuracy": base + shift + 0.01 * seed * epoch,
                                 "accuracy": 0.9})
    epochs = pd.DataFrame(rows)
    trials = pd.DataFrame({"run_id": ["a", "a", "b", "b"], "trial_id": ["0.001", "0.01"] * 2,
                           "status": "COMPLETED", "best_val_accuracy": 0.7, "seconds": 1.0})
    runs = [{"run_id": run, "space": {"name": "s"}, "settings": {"dataset": "d"},
             "columns": {"hyperparameters": ["head_lr"], "varied": ["head_lr"]}}
            for run in ("a", "b")]
    drawn = {}
    monkeypatch.setattr(plots, "save", lambda fig, stem: drawn.setdefault(stem.name, fig))
    figures(Tables(runs=runs, epochs=epochs, trials=trials, complete=epochs), tmp_path,
            log=lambda *_: None)
    lines = {line.get_label(): list(line.get_ydata())
             for line in _lines(drawn["objective_vs_head_lr"].axes[0])}
    # Final epoch 2: base + shift + 0.02 * seed, mean over seeds 1-3 = base + shift + 0.04.
    expected = {"a": [0.64, 0.84], "b": [0.44, 0.64]}
    assert len(lines) == 2
    for run, values in expected.items():
        label = next(name for name in lines if name.startswith(run) or f"={run}" in name)
        assert lines[label] == pytest.approx(values)


def test_the_objective_figure_leaves_out_configurations_where_its_parameter_is_inactive(
        tmp_path, monkeypatch):
    from bench.analysis.figures import figures
    from bench.analysis.tables import Tables

    # momentum is declared only for SGD: Adam's rows have it empty, and no x to draw at.
    rows = []
    for trial, (name, momentum, base) in enumerate(
            (("Adam", float("nan"), 0.7), ("SGD", 0.0, 0.5), ("SGD", 0.9, 0.6))):
        for seed in (1, 2):
            for epoch in (1, 2):
                rows.append({"run_id": "r", "trial_id": f"{trial}", "repeat": seed,
                             "seed": seed, "epoch": epoch, "optimizer_name": name,
                             "momentum": momentum, "val_accuracy": base + 0.01 * seed,
                             "accuracy": 0.9})
    epochs = pd.DataFrame(rows)
    trials = pd.DataFrame({"run_id": "r", "trial_id": ["0", "1", "2"],
                           "status": "COMPLETED", "best_val_accuracy": 0.6, "seconds": 1.0})
    run = {"run_id": "r", "space": {"name": "s"}, "settings": {"dataset": "d"},
           "columns": {"hyperparameters": ["optimizer_name", "momentum"],
                       "varied": ["optimizer_name", "momentum"]}}
    drawn = {}
    monkeypatch.setattr(plots, "save", lambda fig, stem: drawn.setdefault(stem.name, fig))
    blocks = figures(Tables(runs=[run], epochs=epochs, trials=trials, complete=epochs),
                     tmp_path, log=lambda *_: None)
    fig = drawn["objective_vs_momentum"]
    legend = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert not any("Adam" in text for text in legend), legend
    # Found by a new user: the caption did not say that Adam's configuration is left out.
    (caption,) = [b.caption for b in blocks if b.kind == "figure"
                  and b.content.stem == "objective_vs_momentum"]
    assert ("Left out: optimizer_name=Adam momentum=inactive (momentum inactive: nowhere to "
            "draw it).") in caption
    # SGD's line: the mean over seeds 1 and 2 of base + 0.01 * seed, at momentum 0 and 0.9.
    (line,) = [line for line in fig.axes[0].get_lines() if len(line.get_xdata()) == 2]
    assert list(line.get_xdata()) == [0.0, 0.9]
    assert list(line.get_ydata()) == pytest.approx([0.515, 0.615])


def _figures_of_configurations(configurations, tmp_path, monkeypatch):
    """The figures of (init, frozen_blocks, head_lr, base) configurations, each run at
    seeds 1 and 2 for 2 epochs with validation accuracy base + 0.02 x seed: the figures
    drawn by name, and the captions by name."""
    rows = [{"run_id": "r", "trial_id": f"{trial}", "repeat": seed, "seed": seed,
             "epoch": epoch, "init": init, "frozen_blocks": depth, "head_lr": lr,
             "val_accuracy": base + 0.02 * seed, "accuracy": 0.9}
            for trial, (init, depth, lr, base) in enumerate(configurations)
            for seed in (1, 2) for epoch in (1, 2)]
    return _drawn(_tables_of(pd.DataFrame(rows), ["init", "frozen_blocks", "head_lr"]),
                  tmp_path, monkeypatch)


def _tables_of(epochs: pd.DataFrame, names: list[str]):
    """Tables of the runs in ``epochs`` (each a space varying ``names``), every trial
    completed."""
    from bench.analysis.tables import Tables

    trials = epochs[["run_id", "trial_id"]].drop_duplicates().assign(
        status="COMPLETED", best_val_accuracy=0.6, seconds=1.0).reset_index(drop=True)
    runs = [{"run_id": run_id, "space": {"name": "s"}, "settings": {"dataset": "d"},
             "columns": {"hyperparameters": names, "varied": names}}
            for run_id in epochs["run_id"].unique()]
    return Tables(runs=runs, epochs=epochs, trials=trials, complete=epochs)


def _drawn(tables, tmp_path, monkeypatch):
    """The figures of ``tables`` drawn, by name, and their captions by name."""
    from bench.analysis.figures import figures

    drawn = {}
    monkeypatch.setattr(plots, "save", lambda fig, stem: drawn.setdefault(stem.name, fig))
    blocks = figures(tables, tmp_path, log=lambda *_: None)
    return drawn, {b.content.stem: b.caption for b in blocks if b.kind == "figure"}


def test_figures_of_frozen_depth_leave_out_inits_where_it_is_inactive_and_say_so(
        tmp_path, monkeypatch):
    # Found by a new user: frozen_blocks declared for pretrained only drew an empty
    # random heatmap panel and a random legend entry with no point, unexplained.
    configurations = [("pretrained", 0, 0.001, 0.6), ("pretrained", 0, 0.01, 0.7),
                      ("pretrained", 2, 0.001, 0.8), ("pretrained", 2, 0.01, 0.5),
                      ("random", float("nan"), 0.001, 0.3), ("random", float("nan"), 0.01, 0.4)]
    drawn, captions = _figures_of_configurations(configurations, tmp_path, monkeypatch)
    missing = (" Not drawn: random (frozen_blocks{} is inactive in all its executions: a "
               "conditional hyperparameter whose condition is not met).")
    assert captions["transferability"].endswith(missing.format(""))
    assert captions["head_lr_x_frozen_blocks"].endswith(missing.format(" or head_lr"))
    # One panel, pretrained's: the means over seeds 1 and 2 of base + 0.02 * seed.
    heatmap = drawn["head_lr_x_frozen_blocks"]
    assert [ax.get_title() for ax in heatmap.axes if ax.get_title()] == ["pretrained"]
    assert sorted(t.get_text() for t in heatmap.axes[0].texts) == [
        "0.53", "0.63", "0.73", "0.83"]
    # One line per measure, pretrained's: the best head_lr per depth, 0.73 and 0.83.
    lines = [line for line in drawn["transferability"].axes[0].get_lines()
             if len(line.get_xdata()) == 2]
    assert len(lines) == 1 and list(lines[0].get_xdata()) == [0, 2]
    assert list(lines[0].get_ydata()) == pytest.approx([0.73, 0.83])
    legend = [t.get_text() for legend in drawn["transferability"].legends
              for t in legend.get_texts()]
    assert not any("random" in text for text in legend), legend


def test_figures_of_frozen_depth_name_configurations_left_out_within_a_drawn_line(
        tmp_path, monkeypatch):
    # A line or panel that is drawn can still lose configurations where frozen_blocks or
    # head_lr is inactive; they were dropped without a word.
    nan = float("nan")
    configurations = [("pretrained", 0, 0.001, 0.6), ("pretrained", 0, 0.01, 0.7),
                      ("pretrained", 2, 0.001, 0.8), ("pretrained", 2, nan, 0.5),
                      ("pretrained", nan, 0.001, 0.4),
                      ("random", 0, 0.001, 0.3), ("random", 2, 0.01, 0.35)]
    drawn, captions = _figures_of_configurations(configurations, tmp_path, monkeypatch)
    # Transferability draws the best head_lr per depth: (pretrained, inactive depth) has
    # no x; (pretrained, 2) keeps head_lr=0.001 over its inactive head_lr, so is drawn.
    assert captions["transferability"].endswith(
        " Left out of pretrained: frozen_blocks=inactive (frozen_blocks inactive: nowhere "
        "to draw it).")
    assert "random" not in captions["transferability"].split("Left out")[1]
    assert captions["head_lr_x_frozen_blocks"].endswith(
        " Left out of pretrained: frozen_blocks=2 head_lr=inactive, frozen_blocks=inactive "
        "head_lr=0.001 (frozen_blocks or head_lr inactive: nowhere to draw it).")
    # Pretrained's panel: the 3 active cells, means over seeds 1 and 2 of base + 0.02 * seed.
    heatmap = drawn["head_lr_x_frozen_blocks"]
    panels = {ax.get_title(): sorted(t.get_text() for t in ax.texts)
              for ax in heatmap.axes if ax.get_title()}
    assert panels == {"pretrained": ["0.63", "0.73", "0.83"], "random": ["0.33", "0.38"]}
    line = [line for line in drawn["transferability"].axes[0].get_lines()
            if len(line.get_xdata()) == 2 and line.get_ydata()[1] > 0.8]
    assert len(line) == 1 and list(line[0].get_ydata()) == pytest.approx([0.73, 0.83])


def test_overfitting_breaks_a_tie_at_third_place_by_trial_id_and_says_so(
        tmp_path, monkeypatch):
    # Three trials tied for third place: which one was drawn followed the table's row
    # order, and the caption did not say a tie was broken.
    from bench.analysis.figures import figures
    from bench.analysis.tables import Tables

    scores = {"0005": 0.7, "0001": 0.9, "0004": 0.7, "0000": 0.8, "0003": 0.7,
              "0002": 0.5}
    rows = [{"run_id": "r", "trial_id": trial, "repeat": seed, "seed": seed,
             "epoch": epoch, "head_lr": 0.001 * (1 + int(trial)), "val_accuracy": score,
             "accuracy": score + 0.01 * int(trial)}
            for trial, score in scores.items() for seed in (1, 2) for epoch in (1, 2)]
    epochs = pd.DataFrame(rows)
    trials = pd.DataFrame({"run_id": "r", "trial_id": list(scores), "status": "COMPLETED",
                           "best_val_accuracy": list(scores.values()), "seconds": 1.0,
                           "head_lr": [0.001 * (1 + int(t)) for t in scores]})
    run = {"run_id": "r", "space": {"name": "s"}, "settings": {"dataset": "d"},
           "columns": {"hyperparameters": ["head_lr"], "varied": ["head_lr"]}}
    drawn = {}
    monkeypatch.setattr(plots, "save", lambda fig, stem: drawn.setdefault(stem.name, fig))
    blocks = figures(Tables(runs=[run], epochs=epochs, trials=trials, complete=epochs),
                     tmp_path, log=lambda *_: None)
    caption = {b.content.stem: b.caption for b in blocks if b.kind == "figure"}["overfitting"]
    # Found by a new user: curves starting below zero, with no word that Keras's training
    # accuracy is the mean over an epoch's batches, not a pass after it.
    assert ("Training accuracy is Keras's mean over the epoch's batches, in training mode"
            in caption)
    assert caption.endswith(" Not drawn: trials 0004 and 0005, tied at 0.7000 with trial "
                            "0003, the last drawn (of trials with one score, the lowest ids "
                            "are drawn).")
    # Drawn: trials 0001, 0000 and 0003, named by head_lr = 0.001 x (1 + trial number).
    legend = [t.get_text() for legend in drawn["overfitting"].legends
              for t in legend.get_texts()]
    assert sorted(legend) == [f"head learning rate={v}" for v in ("0.001", "0.002", "0.004")]


def test_no_overfitting_figure_without_a_completed_trial_and_a_line_saying_why(
        tmp_path, monkeypatch):
    # From review: executions complete in trials that all failed later left the figure
    # out without the line every skipped figure gets.
    from bench.analysis.figures import figures
    from bench.analysis.tables import Tables

    rows = [{"run_id": "r", "trial_id": trial, "repeat": 1, "seed": 1, "epoch": epoch,
             "head_lr": lr, "val_accuracy": 0.5, "accuracy": 0.6}
            for trial, lr in (("0", 0.001), ("1", 0.01)) for epoch in (1, 2)]
    epochs = pd.DataFrame(rows)
    trials = pd.DataFrame({"run_id": "r", "trial_id": ["0", "1"], "status": "FAILED",
                           "best_val_accuracy": float("nan"), "seconds": 1.0,
                           "head_lr": [0.001, 0.01]})
    run = {"run_id": "r", "space": {"name": "s"}, "settings": {"dataset": "d"},
           "columns": {"hyperparameters": ["head_lr"], "varied": ["head_lr"]}}
    drawn, said = {}, []
    monkeypatch.setattr(plots, "save", lambda fig, stem: drawn.setdefault(stem.name, fig))
    blocks = figures(Tables(runs=[run], epochs=epochs, trials=trials, complete=epochs),
                     tmp_path, log=said.append)
    assert "overfitting" not in drawn and "accuracy_vs_epochs" in drawn
    assert ("figure 'Overfitting' skipped: no trial completed (some executions did, in "
            "trials that failed later), so there are no best trials to draw") in said
    assert any(b.kind == "h2" and b.content == "Overfitting" for b in blocks)


def _t_interval(values):
    """The mean of ``values`` and the ends of its 95% Student-t interval, by hand."""
    import statistics

    from scipy.stats import t

    mean = statistics.mean(values)
    half = t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / len(values) ** 0.5
    return mean, mean - half, mean + half


def _error_bars(ax):
    """Each error bar drawn on ``ax``: (x, low, high, colour), by x."""
    bars = []
    for container in ax.containers:
        for collection in container.lines[2]:  # (data line, caps, bars)
            colour = tuple(collection.get_colors()[0][:3])  # one colour per call
            bars += [(x, low, high, colour)
                     for (x, low), (_, high) in collection.get_segments()]
    return sorted(bars)


def _error_bars_anywhere(fig) -> bool:
    return any(_error_bars(ax) for ax in fig.axes)


def test_a_transfer_gain_of_one_epoch_draws_its_interval_on_integer_ticks():
    # Found by a new user: a study of one epoch drew the gain as a bare dot (a band has
    # no width at one x) on an axis ticked 0.945 ... 1.050, its caption promising a band.
    fig = plots.transfer_gain(analysis.transfer_gain(epochs_table(epochs=1)), hue=None,
                              title="gain")
    ax = fig.axes[0]
    # Pretrained minus random is the seed's gain, 0.1, 0.2 and 0.3, at either depth.
    mean, low, high = _t_interval([0.10, 0.20, 0.30])
    (dot,) = [line for line in ax.get_lines() if line.get_marker() == "o"]
    assert list(dot.get_ydata()) == pytest.approx([mean])
    ((x, bar_low, bar_high, colour),) = _error_bars(ax)
    assert x == 1 and (bar_low, bar_high) == pytest.approx((low, high))
    assert colour == pytest.approx(matplotlib.colors.to_rgb(dot.get_color()))
    left, right = ax.get_xlim()
    assert [x for x in ax.get_xticks() if left <= x <= right] == [1]
    # One seed has no interval: nothing to draw, and nothing is.
    fig = plots.transfer_gain(analysis.transfer_gain(epochs_table(gains=(0.1,), epochs=1)),
                              hue=None, title="gain")
    assert _error_bars(fig.axes[0]) == []


def test_lines_of_one_point_draw_their_interval_and_longer_lines_keep_their_band(
        tmp_path, monkeypatch):
    # Found by a new user: a random search over head_lr and a hook's width drew each
    # point of objective_vs_width on a line of its own (coloured by head_lr), so no
    # interval at all; Hyperband's configurations of one epoch were bare dots.
    from bench.analysis.figures import figures
    from bench.analysis.tables import Tables

    # (head_lr, width, epochs, base): validation accuracy base + 0.01 x seed x epoch.
    configurations = [(0.001, 8, 1, 0.5), (0.003, 16, 3, 0.6), (0.01, 32, 1, 0.7)]
    rows = [{"run_id": "r", "trial_id": f"{trial}", "repeat": seed, "seed": seed,
             "epoch": epoch, "head_lr": lr, "width": width,
             "val_accuracy": base + 0.01 * seed * epoch, "accuracy": 0.9}
            for trial, (lr, width, epochs, base) in enumerate(configurations)
            for seed in (1, 2) for epoch in range(1, epochs + 1)]
    epochs = pd.DataFrame(rows)
    trials = pd.DataFrame({"run_id": "r", "trial_id": ["0", "1", "2"],
                           "status": "COMPLETED", "best_val_accuracy": 0.6, "seconds": 1.0})
    run = {"run_id": "r", "space": {"name": "s"}, "settings": {"dataset": "d"},
           "columns": {"hyperparameters": ["head_lr", "width"],
                       "varied": ["head_lr", "width"]}}
    drawn = {}
    monkeypatch.setattr(plots, "save", lambda fig, stem: drawn.setdefault(stem.name, fig))
    blocks = figures(Tables(runs=[run], epochs=epochs, trials=trials, complete=epochs),
                     tmp_path, log=lambda *_: None)
    # Every caption of a figure with an error bar says what the bar is; the others
    # (tuner progress draws no interval) do not.
    captions = {block.content.stem: block.caption for block in blocks
                if block.kind == "figure"}
    said = "has no band to draw: its interval is the error bar on that point"
    assert {stem for stem, caption in captions.items() if said in caption} == {
        stem for stem, fig in drawn.items() if _error_bars_anywhere(fig)}
    assert {"accuracy_vs_epochs", "objective_vs_width", "objective_vs_head_lr"} <= {
        stem for stem, caption in captions.items() if said in caption}
    # "Side by side" only where two bars share an x value (the two one-epoch lines of the
    # figures against epochs), not where every point has an x of its own.
    beside = "and several such at one x are drawn side by side"
    sharing = {stem for stem, fig in drawn.items() if any(
        len(xs) != len(set(xs)) for xs in ([bar[0] for bar in _error_bars(ax)]
                                           for ax in fig.axes))}
    assert sharing == {"accuracy_vs_epochs", "overfitting"}
    assert {stem for stem, caption in captions.items() if beside in caption} == sharing
    # Each configuration's final accuracy at seeds 1 and 2 (its last epoch).
    final = {width: [base + 0.01 * seed * epochs for seed in (1, 2)]
             for _, width, epochs, base in configurations}
    for stem, x in (("objective_vs_width", lambda lr, width: width),
                    ("objective_vs_head_lr", lambda lr, width: lr)):
        ax = drawn[stem].axes[0]
        expected = sorted((x(lr, width), *_t_interval(final[width])[1:])
                          for lr, width, _, _ in configurations)
        bars = _error_bars(ax)
        assert np.array([bar[:3] for bar in bars]) == pytest.approx(np.array(expected)), stem
        # Each bar in its point's colour.
        colours = {line.get_xdata()[0]: matplotlib.colors.to_rgb(line.get_color())
                   for line in _lines(ax)}
        assert np.array([bar[3] for bar in bars]) == pytest.approx(
            np.array([colours[bar[0]] for bar in bars]))
    # Accuracy against epochs: the 3-epoch configuration keeps its band and gets no bar;
    # the two of one epoch get a bar each, over their seeds' accuracy at epoch 1.
    accuracy = drawn["accuracy_vs_epochs"].axes[0]
    assert accuracy.get_ylabel() == "validation accuracy"
    bands = [c for c in accuracy.collections
             if isinstance(c, matplotlib.collections.PolyCollection)]
    assert len(bands) == 1
    expected = [(1, *_t_interval([base + 0.01 * seed for seed in (1, 2)])[1:])
                for _, _, epochs, base in configurations if epochs == 1]
    assert np.array([bar[:3] for bar in _error_bars(accuracy)]) == pytest.approx(
        np.array(sorted(expected)))


def test_a_numeric_hue_of_many_values_is_a_colour_bar_not_a_legend_of_every_value():
    # Found by a new user: a random search over head_lr and dropout coloured
    # objective_vs_head_lr by dropout, one point and one legend entry per trial.
    lrs = [10 ** (-4 + 3 * i / 11) for i in range(12)]  # 1e-4 to 1e-1, log-sampled
    summary = pd.DataFrame({"dropout": [i / 20 for i in range(12)], "head_lr": lrs,
                            "mean": 0.6, "low": 0.55, "high": 0.65})
    fig = plots.objective_vs(summary, x="dropout", col=None, hue="head_lr", log=False,
                             title="t")
    ax = fig.axes[0]
    points = [line for line in ax.get_lines() if line.get_marker() == "o"]
    assert len(points) == 12
    # Each point in viridis at its value's place between the smallest and the largest
    # on a log scale (three decades), worked out here from the colour map alone.
    viridis = matplotlib.colormaps["viridis"]
    for line in points:
        lr = lrs[round(line.get_xdata()[0] * 20)]
        place = (np.log10(lr) + 4) / 3
        assert matplotlib.colors.to_rgba(line.get_color()) == pytest.approx(viridis(place))
    assert not fig.legends  # no legend of twelve values
    (bar,) = [a for a in fig.axes if a.get_ylabel() == "head learning rate"]
    assert bar is not ax and bar.get_yscale() == "log"
    # With a line style too (a joint report's runs), the legend names each style once,
    # in grey: the colours are the bar's.
    runs = pd.concat([summary.assign(run_id="A"), summary.assign(run_id="B")])
    styled = plots.objective_vs(runs, x="dropout", col=None, hue="head_lr", log=False,
                                title="t", style="run_id")
    (legend,) = styled.legends
    assert [t.get_text() for t in legend.get_texts()] == ["run id=A", "run id=B"]
    assert {matplotlib.colors.to_rgb(h.get_color()) for h in legend.legend_handles} == {
        matplotlib.colors.to_rgb("0.35")}
    assert [h.get_linestyle() for h in legend.legend_handles] == ["-", "--"]
    # Eight values or fewer keep their legend, each named.
    few = plots.objective_vs(summary.head(8), x="dropout", col=None, hue="head_lr",
                             log=False, title="t")
    (legend,) = few.legends
    assert len(legend.get_texts()) == 8
    assert [a.get_ylabel() for a in few.axes] == ["final validation accuracy"]


def test_lines_of_one_point_at_one_x_are_drawn_side_by_side_at_their_values():
    # Hyperband's many one-epoch configurations drew their error bars over one another.
    rows = []
    for name, epochs, base in (("long", 3, 0.5), ("a", 1, 0.6), ("b", 1, 0.7), ("c", 1, 0.8)):
        rows += [{"epoch": epoch, "configuration": name, "mean": base + 0.01 * epoch,
                  "low": base + 0.01 * epoch - 0.05, "high": base + 0.01 * epoch + 0.05}
                 for epoch in range(1, epochs + 1)]
    fig = plots.facet_lines(pd.DataFrame(rows), hue="configuration", title="t")
    ax = fig.axes[0]
    fig.canvas.draw()

    def drawn_x(artist, points):
        """Where ``artist`` draws ``points``, read back in the axes' data units."""
        shown = artist.get_transform().transform(np.asarray(points, dtype=float))
        return ax.transData.inverted().transform(shown)[:, 0]

    dots = {line.get_label(): line for line in _lines(ax)}
    # Every value is where it was: only the drawing moves, by a tenth of the least
    # distance between two epochs drawn (1), so no point reads as at another epoch.
    drawn_at = {}
    for name, dot in dots.items():
        assert list(dot.get_xdata())[0] == 1
        drawn_at[name] = drawn_x(dot, [[1, dot.get_ydata()[0]]])[0]
    assert drawn_at == pytest.approx({"long": 1.0, "a": 0.9, "b": 1.0, "c": 1.1})
    left, right = ax.get_xlim()
    assert left < 0.9 and right > 3  # every point inside the axes
    # Each bar is drawn at its own dot.
    for container in ax.containers:
        (bar,) = container.lines[2]
        (segment,) = bar.get_segments()
        assert segment[0][0] == 1  # its value
        (name,) = [n for n in "abc" if dots[n].get_ydata()[0] == pytest.approx(
            segment.mean(axis=0)[1])]
        assert drawn_x(bar, segment) == pytest.approx([drawn_at[name]] * 2)
    low, high = ax.get_ylim()
    assert low <= 0.5 and high >= 0.81 + 0.05  # and every bar inside
    # A line of one point alone at its x stays where it is.
    alone = plots.facet_lines(pd.DataFrame(rows[:4]), hue="configuration", title="t")
    (dot,) = [line for line in _lines(alone.axes[0]) if line.get_label() == "a"]
    assert dot.get_transform() == alone.axes[0].transData
    # On a log axis (head learning rates 1e-3 and 1e-2, a decade apart) they move by a
    # tenth of a decade: 1e-3 drawn at 10 ** (-3 -+ 0.05).
    summary = pd.DataFrame({"head_lr": [1e-3, 1e-3, 1e-2], "width": ["8", "16", "32"],
                            "mean": [0.5, 0.6, 0.7], "low": [0.4, 0.5, 0.6],
                            "high": [0.6, 0.7, 0.8]})
    fig = plots.objective_vs(summary, x="head_lr", col=None, hue="width", log=True,
                             title="t")
    ax = fig.axes[0]
    fig.canvas.draw()
    at_least = sorted(drawn_x(line, [[1e-3, line.get_ydata()[0]]])[0]
                      for line in _lines(ax) if line.get_xdata()[0] == 1e-3)
    assert np.log10(at_least) == pytest.approx([-3.05, -2.95])


def test_the_objective_caption_tells_a_run_without_the_parameter_from_an_inactive_one(
        tmp_path, monkeypatch):
    # Found in review: in a joint report, a run whose space has no momentum was listed
    # configuration by configuration as "momentum=inactive"; a random search's many
    # inactive configurations made a caption of hundreds of characters.
    from bench.analysis.figures import figures
    from bench.analysis.tables import Tables

    rows = []
    configurations = ([("A", "SGD", 0.0, 1e-3), ("A", "SGD", 0.9, 1e-3)]
                      + [("A", "Adam", float("nan"), 10 ** (-4 + i / 4)) for i in range(5)]
                      + [("B", None, float("nan"), lr) for lr in (1e-3, 1e-2)])
    for trial, (run_id, name, momentum, lr) in enumerate(configurations):
        for seed in (1, 2):
            rows.append({"run_id": run_id, "trial_id": f"{trial}", "repeat": seed,
                         "seed": seed, "epoch": 1, "optimizer_name": name,
                         "momentum": momentum, "head_lr": lr,
                         "val_accuracy": 0.5 + 0.01 * seed, "accuracy": 0.9})
    epochs = pd.DataFrame(rows)
    trials = epochs.drop_duplicates("trial_id")[["run_id", "trial_id"]].assign(
        status="COMPLETED", best_val_accuracy=0.6, seconds=1.0)
    # head_lr first: the hue, so each Adam configuration is a line of its own.
    names = {"A": ["head_lr", "optimizer_name", "momentum"], "B": ["head_lr"]}
    runs = [{"run_id": r, "space": {"name": "s"}, "settings": {"dataset": "d"},
             "columns": {"hyperparameters": names[r], "varied": names[r]}} for r in "AB"]
    monkeypatch.setattr(plots, "save", lambda fig, stem: None)
    blocks = figures(Tables(runs=runs, epochs=epochs, trials=trials, complete=epochs),
                     tmp_path, log=lambda *_: None)
    (caption,) = [b.caption for b in blocks if b.kind == "figure"
                  and b.content.stem == "objective_vs_momentum"]
    assert "Not drawn: B, whose space has no momentum." in caption
    # Five Adam configurations of A, each written once: the first three, and a count.
    (left,) = [part for part in caption.split(" Left out")[1:]]
    assert "run_id=B" not in left.split("Not drawn")[0]
    assert left.count("momentum=inactive") == 3 and "and 2 more" in left


def test_a_run_left_out_of_an_objective_figure_has_no_tie_or_line_style_in_its_caption(
        tmp_path, monkeypatch):
    # Found by a new user: "Tied for run_id=B ...: the first is drawn" and "Not drawn: B,
    # whose space has no momentum" in one caption, and "One line style per run" with one
    # run drawn.
    from bench.analysis.figures import figures
    from bench.analysis.tables import Tables

    rows = []
    configurations = ([("A", 0.0, 1e-3, 8, 0.5), ("A", 0.9, 1e-3, 8, 0.6),
                       ("A", 0.0, 1e-2, 16, 0.7), ("A", 0.9, 1e-2, 16, 0.8)]
                      + [("B", float("nan"), lr, width, 0.4)  # widths tie in B
                         for lr in (1e-3, 1e-2) for width in (8, 16)])
    for trial, (run_id, momentum, lr, width, base) in enumerate(configurations):
        for seed in (1, 2):
            rows.append({"run_id": run_id, "trial_id": f"{trial}", "repeat": seed,
                         "seed": seed, "epoch": 1, "momentum": momentum, "head_lr": lr,
                         "width": width, "val_accuracy": base + 0.01 * seed,
                         "accuracy": 0.9})
    epochs = pd.DataFrame(rows)
    trials = epochs.drop_duplicates("trial_id")[["run_id", "trial_id"]].assign(
        status="COMPLETED", best_val_accuracy=0.6, seconds=1.0)
    names = {"A": ["head_lr", "momentum", "width"], "B": ["head_lr", "width"]}
    runs = [{"run_id": r, "space": {"name": "s"}, "settings": {"dataset": "d"},
             "columns": {"hyperparameters": names[r], "varied": names[r]}} for r in "AB"]
    drawn = {}
    monkeypatch.setattr(plots, "save", lambda fig, stem: drawn.setdefault(stem.name, fig))
    blocks = figures(Tables(runs=runs, epochs=epochs, trials=trials, complete=epochs),
                     tmp_path, log=lambda *_: None)
    (caption,) = [b.caption for b in blocks if b.kind == "figure"
                  and b.content.stem == "objective_vs_momentum"]
    assert "Not drawn: B, whose space has no momentum." in caption
    assert "run_id=B" not in caption and "One line style per run" not in caption, caption
    # A's lines only: head_lr 1e-3 and 1e-2, two momenta each.
    lines = _lines(drawn["objective_vs_momentum"].axes[0])
    assert sorted(tuple(line.get_xdata()) for line in lines) == [(0.0, 0.9), (0.0, 0.9)]


def test_a_joint_report_draws_transferability_only_where_a_run_varied_its_depth(
        tmp_path, monkeypatch):
    # Found by a new user: two runs of one frozen depth each (2 and 4) drew a
    # transferability figure that their own reports skip, its caption "one line per
    # initialisation".
    from bench.analysis.figures import figures
    from bench.analysis.tables import Tables

    def tables(depths):
        rows = [{"run_id": run_id, "trial_id": f"{run_id}{depth}{init}", "repeat": seed,
                 "seed": seed, "epoch": 1, "init": init, "frozen_blocks": depth,
                 "val_accuracy": 0.5 + 0.01 * seed + 0.1 * (init == "pretrained"),
                 "accuracy": 0.9}
                for run_id, run_depths in depths.items() for depth in run_depths
                for init in ("pretrained", "random") for seed in (1, 2)]
        epochs = pd.DataFrame(rows)
        trials = epochs.drop_duplicates("trial_id")[["run_id", "trial_id"]].assign(
            status="COMPLETED", best_val_accuracy=0.6, seconds=1.0)
        names = ["init", "frozen_blocks"]
        runs = [{"run_id": r, "space": {"name": r}, "settings": {"dataset": "d"},
                 "columns": {"hyperparameters": names, "varied": names}} for r in depths]
        return Tables(runs=runs, epochs=epochs, trials=trials, complete=epochs)

    monkeypatch.setattr(plots, "save", lambda fig, stem: None)
    blocks = figures(tables({"A": [2], "B": [4]}), tmp_path, log=lambda *_: None)
    at = [b.content for b in blocks].index("Transferability")
    assert blocks[at + 1].content == ("Not drawn: frozen_blocks took one value in each run: "
                                      "A 2, B 4.")
    blocks = figures(tables({"A": [0, 2], "B": [4]}), tmp_path, log=lambda *_: None)
    (caption,) = [b.caption for b in blocks if b.kind == "figure"
                  and b.content.stem == "transferability"]
    assert "one line per run and initialisation" in caption


def _best_dropout_changes_with_head_lr(run_ids=("r",)):
    """Tables of runs where the best dropout is 0.0 at head_lr 0.001 and 0.5 at 0.01, for
    either width; along width (at one head_lr) it stays."""
    rows = []
    configurations = [(lr, width, dropout) for lr in (0.001, 0.01) for width in (16, 32)
                      for dropout in (0.0, 0.5)]
    for run_id in run_ids:
        for trial, (lr, width, dropout) in enumerate(configurations):
            base = 0.5 + (0.1 if (lr == 0.001) == (dropout == 0.0) else 0.0) + 0.01 * width / 16
            for seed in (1, 2):
                for epoch in (1, 2):
                    rows.append({"run_id": run_id, "trial_id": f"{trial:04d}", "repeat": seed,
                                 "seed": seed, "epoch": epoch, "head_lr": lr, "width": width,
                                 "dropout": dropout, "val_accuracy": base + 0.01 * seed,
                                 "accuracy": 0.9})
    return _tables_of(pd.DataFrame(rows), ["head_lr", "width", "dropout"])


def test_objective_points_are_joined_only_where_the_other_values_stay_the_same(
        tmp_path, monkeypatch):
    """Found by a new user: a line over head_lr joined three configurations of other
    widths and dropouts, read as a head_lr curve holding the rest fixed."""
    drawn, captions = _drawn(_best_dropout_changes_with_head_lr(), tmp_path, monkeypatch)
    assert ("The points are not joined: dropout changes from one head learning rate to the "
            "next, so they are no curve of head learning rate alone.") in captions[
        "objective_vs_head_lr"]
    assert "not joined" not in captions["objective_vs_width"]
    unjoined = _lines(drawn["objective_vs_head_lr"].axes[0])
    joined = _lines(drawn["objective_vs_width"].axes[0])
    assert len(unjoined) == len(joined) == 2
    assert {line.get_linestyle() for line in unjoined} == {"None"}
    assert {line.get_linestyle() for line in joined} == {"-"}
    # Each point is still its best configuration's mean: width 16 at head_lr 0.001 is
    # dropout 0.0's 0.5 + 0.1 + 0.01 + 0.015 (the mean over seeds 1 and 2).
    width16 = next(line for line in unjoined if "16" in line.get_label())
    assert list(width16.get_ydata()) == pytest.approx([0.625, 0.625])
    # Found in an audit: the two widths' points and error bars at one head_lr were drawn
    # over one another. They are drawn side by side now, at their values, and said so.
    ax = drawn["objective_vs_head_lr"].axes[0]
    ax.figure.canvas.draw()
    assert ax.get_xscale() == "linear"  # these tables say of no log-sampled parameter
    for line in unjoined:
        assert list(line.get_xdata()) == [0.001, 0.01]
    at = sorted(tuple(_drawn_x(ax, line, line.get_xydata())) for line in unjoined)
    # 0.009 between the two head_lr values: a tenth of it between the widths.
    assert at == [pytest.approx([0.001 - 0.00045, 0.01 - 0.00045]),
                  pytest.approx([0.001 + 0.00045, 0.01 + 0.00045])]
    for container in ax.containers:  # every error bar at its own point
        (bar,) = container.lines[2]
        (line,) = [line for line in unjoined if matplotlib.colors.to_rgb(line.get_color())
                   == tuple(bar.get_colors()[0][:3])]
        for segment in bar.get_segments():
            drawn_at = _drawn_x(ax, bar, segment)
            assert drawn_at[0] == pytest.approx(drawn_at[1])
            assert drawn_at[0] == pytest.approx(_drawn_x(ax, line, [segment[0]])[0])
    assert captions["objective_vs_head_lr"].endswith(
        " Each point's interval is its error bar, and the points of several lines at one x "
        "are drawn side by side.")
    assert "a line of one point" not in captions["objective_vs_head_lr"]
    joined_ax = drawn["objective_vs_width"].axes[0]
    assert all(line.get_transform() == joined_ax.transData for line in joined)
    assert "side by side" not in captions["objective_vs_width"]


def _drawn_x(ax, artist, points) -> np.ndarray:
    """Where ``artist`` draws ``points``, read back in ``ax``'s data units."""
    shown = artist.get_transform().transform(np.asarray(points, dtype=float))
    return ax.transData.inverted().transform(shown)[:, 0]


def test_unjoined_points_of_two_runs_have_a_marker_each(tmp_path, monkeypatch):
    """Found in review: unjoined, the runs' points had one marker and no line style, and
    the caption said 'One line style per run'."""
    drawn, captions = _drawn(_best_dropout_changes_with_head_lr(("A", "B")), tmp_path,
                             monkeypatch)
    assert "not joined" in captions["objective_vs_head_lr"]
    assert "One marker per run." in captions["objective_vs_head_lr"]
    assert "One line style per run." in captions["objective_vs_width"]
    unjoined = _lines(drawn["objective_vs_head_lr"].axes[0])
    markers = {line.get_label(): line.get_marker() for line in unjoined}
    assert len(markers) == 4  # two widths x two runs
    for width in ("16", "32"):
        assert {m for name, m in markers.items() if width in name} == {"o", "s"}
    legend = {text.get_text(): handle.get_marker() for legend in
              drawn["objective_vs_head_lr"].legends for handle, text in
              zip(legend.legend_handles, legend.get_texts())}
    assert {legend[name] for name in legend if "A" in name} == {"o"}
    assert {legend[name] for name in legend if "B" in name} == {"s"}


def test_configurations_where_the_x_is_inactive_do_not_unjoin_its_points(
        tmp_path, monkeypatch):
    """Found in review: Adam's trials (no momentum) are no point of the momentum figure,
    yet their optimizer counted as one changing along the line."""
    configurations = [("adam", None, width) for width in (16, 32)] + [
        ("sgd", momentum, width) for momentum in (0.0, 0.9) for width in (16, 32)]
    rows = [{"run_id": "r", "trial_id": f"{trial:04d}", "repeat": seed, "seed": seed,
             "epoch": 1, "optimizer": optimizer, "momentum": momentum, "width": width,
             "val_accuracy": 0.5 + 0.01 * seed + (0.1 if optimizer == "adam" else 0.0),
             "accuracy": 0.9}
            for trial, (optimizer, momentum, width) in enumerate(configurations)
            for seed in (1, 2)]
    # Width the hue, optimizer over the line.
    tables = _tables_of(pd.DataFrame(rows), ["width", "optimizer", "momentum"])
    drawn, captions = _drawn(tables, tmp_path, monkeypatch)
    caption = captions["objective_vs_momentum"]
    assert "not joined" not in caption and "Left out: width=16 momentum=inactive" in caption
    lines = _lines(drawn["objective_vs_momentum"].axes[0])
    assert len(lines) == 2 and {line.get_linestyle() for line in lines} == {"-"}


def test_a_legend_lists_numeric_values_in_order_whichever_facet_holds_them():
    """Found by a new user: 0.000184, 0.00259, 0.00476, 0.00019 (the pretrained panel's
    values first, then the random panel's)."""
    rows = [{"init": init, "head_lr": lr, "units": units, "mean": 0.5, "low": 0.4,
             "high": 0.6}
            for init, lr, units in (("pretrained", 0.000184, 32), ("pretrained", 0.004757, 16),
                                    ("pretrained", 0.002587, 48), ("random", 0.00019, 48))]
    fig = plots.facet_lines(pd.DataFrame(rows), x="units", col="init", hue="head_lr")
    legend = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert legend == [f"head learning rate={v}" for v in
                      ("0.000184", "0.00019", "0.00259", "0.00476")]

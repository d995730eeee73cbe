"""Drawing: each function takes the DataFrame an analysis function made and returns a Figure.

Nothing is computed here beyond layout. Lines are means, bands are 95% confidence
intervals over repeats (an error bar where a point has no neighbour to make a band with:
a line of one point), and every axis says what it shows.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")  # Files only; no display is ever needed.

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.ticker import MaxNLocator, NullFormatter  # noqa: E402

from bench.analysis.formatting import value_labels  # noqa: E402

LABELS = {
    "val_accuracy": "validation accuracy",
    "accuracy": "training accuracy",
    "frozen_blocks": "frozen blocks",
    "head_lr": "head learning rate",
    "init": "initialisation",
    "body_lr_scale": "body learning-rate scale",
}


#: The most ticks a log axis gets at the values drawn.
MOST_LOG_TICKS = 6

#: The most values of a numeric hue named one by one in the legend; past it, a colour bar.
MOST_LEGEND_HUES = 8

#: Unjoined points' markers, one per line style (a run of a joint report): the points
#: have no line whose style would tell the runs apart.
UNJOINED_MARKERS = ("o", "s", "^", "D", "v", "P", "X")

#: Columns whose values are already full labels.
VERBATIM = ("configuration", "comparison", "run / comparison")


def label(name: str) -> str:
    return LABELS.get(name, name.replace("_", " "))


def ordered(values) -> list:
    """Distinct values in reading order: numbers by value, then text, inactive last."""
    distinct = list(pd.unique(pd.Series(list(values), dtype=object)))

    def key(value):
        if value is None or (isinstance(value, float) and value != value) or value == "":
            return (2, 0, "")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return (0, float(value), "")
        return (1, 0, str(value))

    return sorted(distinct, key=key)


def log_ticks(values: list[float]) -> list[float]:
    """Of the positive ``values`` (sorted), those a log axis is ticked at: the smallest
    and the largest, and between them each at least 1 / (MOST_LOG_TICKS - 1) of the axis's
    span past the last one ticked, so that no two labels overlap (MOST_LOG_TICKS at most).
    Empty for fewer than two values or any not positive."""
    if len(values) < 2 or values[0] <= 0:
        return []
    gap = math.log10(values[-1] / values[0]) / (MOST_LOG_TICKS - 1)
    kept = [values[0]]
    for value in values[1:-1]:
        if math.log10(value / kept[-1]) >= gap:
            kept.append(value)
    if len(kept) > 1 and math.log10(values[-1] / kept[-1]) < gap:
        kept.pop()  # too close to the largest, which is always ticked
    return [*kept, values[-1]]


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _select(frame: pd.DataFrame, column: str, value) -> pd.DataFrame:
    if _missing(value):
        return frame[frame[column].isna()]
    return frame[frame[column] == value]


@dataclass(frozen=True)
class _Lines:
    """How ``facet_lines`` draws one facet's lines: the hue and style values, their colours
    and dashes, and each column's value labels."""

    x: str
    hue: str | None
    style: str | None
    hues: list
    styles: list
    palette: dict
    dashes: dict
    #: Unjoined, each style's marker: there is no line whose style tells them apart.
    markers: dict
    written: dict
    bands: bool
    hue_in_legend: bool = True
    #: The least distance between two x values drawn, on the axis's scale (decades on a
    #: log axis): lines of one point at one x are spread over a fraction of it.
    x_gap: float = 1.0
    logx: bool = False
    #: False draws each line's points unjoined, with an error bar each: they are not one
    #: curve (the configurations change from one x to the next).
    joined: bool = True

    def draw(self, ax, part: pd.DataFrame) -> None:
        drawn = []
        for h in self.hues:
            for s in self.styles:
                line = part
                if self.hue:
                    line = _select(line, self.hue, h)
                if self.style:
                    line = _select(line, self.style, s)
                if not line.empty:
                    drawn.append((h, s, line.sort_values(self.x)))
        # Only where error bars would cover one another (no bars, nothing to spread):
        # a line of one point, or unjoined points, each with its bar.
        shifts = _dodged(ax, [frozenset(line[self.x]) if self.bands and (
            len(line) == 1 or not self.joined) else None for _, _, line in drawn],
            gap=self.x_gap, logx=self.logx)
        for (h, s, line), (shift, reach) in zip(drawn, shifts):
            name = self.name(h, s)
            artists = ax.plot(line[self.x], line["mean"],
                              linestyle=self.dashes[repr(s)] if self.joined else "none",
                              color=self.palette[repr(h)],
                              marker="o" if self.joined else self.markers[repr(s)],
                              markersize=3 if self.joined else 5, label=name or None)
            if self.bands:
                artists += self._band(ax, line, color=self.palette[repr(h)])
            if shift is not None:
                for artist in artists:
                    # After drawing: the axes' limits come from the values themselves, and
                    # the drawn places are added to them below. (A later ax.relim() would
                    # leave shifted artists out; nothing here calls it.)
                    artist.set_transform(shift)
                    artist.set_gid(DODGED)
                ax.update_datalim([(reach(x), y) for x, *ys in zip(
                    line[self.x], line["low"], line["high"], line["mean"])
                    for y in ys if y == y])

    def name(self, h, s) -> str:
        """The legend's name of the line of hue ``h`` and style ``s``."""
        named = ((self.hue, h), (self.style, s)) if self.hue_in_legend or _missing(h) \
            else ((self.style, s),)
        return ", ".join(self.written[k](v) if k in VERBATIM
                         else f"{label(k)}={self.written[k](v)}" for k, v in named if k)

    def _band(self, ax, line: pd.DataFrame, *, color) -> list:
        """The 95% interval of a line: a band along it, and an error bar of the band's
        colour at each point with an interval whose neighbours have none (a line of one
        x, for one), where a band has no width to draw. Returns the error bars' parts."""
        if len(line) > 1 and self.joined:
            ax.fill_between(line[self.x], line["low"], line["high"], color=color,
                            alpha=0.15, linewidth=0)
        known = line["low"].notna() & line["high"].notna()
        alone = line[known] if not self.joined else line[
            known & ~known.shift(1, fill_value=False) & ~known.shift(-1, fill_value=False)]
        if alone.empty:
            return []
        bars = ax.errorbar(alone[self.x], alone["mean"],
                           yerr=[alone["mean"] - alone["low"], alone["high"] - alone["mean"]],
                           fmt="none", ecolor=color, alpha=0.5, elinewidth=2, capsize=4)
        _, caps, lines = bars.lines
        return [*caps, *lines]


#: Lines of one point at one x (Hyperband's one-epoch configurations), or unjoined points
#: of several lines at one x, are drawn side by side, their error bars would cover one
#: another: at most this fraction of the least distance between two x values apart, and
#: over at most DODGE_SPREAD of it in all, so that no point reads as at another x.
DODGE_STEP = 0.1
DODGE_SPREAD = 0.4


def _least_gap(values: pd.Series, *, logx: bool) -> float:
    """The least distance between two of ``values`` on the axis's scale; 1 for one."""
    distinct = np.unique(values.dropna().to_numpy(dtype=float))
    if logx:
        distinct = np.log10(distinct[distinct > 0])
    return float(np.diff(distinct).min()) if len(distinct) > 1 else 1.0


def _dodged(ax, xs_of: list, *, gap: float, logx: bool) -> list[tuple]:
    """For each line, the transform to draw it with and where it then draws an x (a
    function), or (None, None) where it stays. A line whose bars may cover others' (its
    x values in ``xs_of``; None for a line with a band) and that shares an x with such
    another moves sideways on the axis's scale (epochs, or decades on a log axis), as
    far as the lines sharing x values with it need. Only the drawing moves: the values
    stay."""
    from matplotlib.transforms import Affine2D

    groups = _sharing_groups(xs_of)
    placed: dict[int, int] = {}
    shifts = []
    for group in groups:
        if group is None:
            shifts.append((None, None))
            continue
        size = groups.count(group)
        step = min(DODGE_STEP, DODGE_SPREAD / (size - 1)) * gap
        offset = (placed.get(group, 0) - (size - 1) / 2) * step
        placed[group] = placed.get(group, 0) + 1
        # Moved on the scaled axis (transScale then the shift), so a log axis moves by a
        # fraction of a decade, and the scale may still be set after drawing.
        shift = ax.transScale + Affine2D().translate(offset, 0) + ax.transLimits \
            + ax.transAxes
        shifts.append((shift, (lambda x, o=offset: x * 10 ** o) if logx
                       else (lambda x, o=offset: x + o)))
    return shifts


def _sharing_groups(xs_of: list) -> list[int | None]:
    """For each of ``xs_of`` (a set of x values, or None), the group of those that share
    an x with it, directly or through others (the group's first member's index); None
    for None and for a set that shares with none."""
    groups: list[int | None] = list(range(len(xs_of)))

    def root(i: int) -> int:
        while groups[i] != i:
            i = groups[i]
        return i

    for i, xs in enumerate(xs_of):
        for j in range(i):
            if xs and xs_of[j] and xs & xs_of[j]:
                groups[max(root(i), root(j))] = min(root(i), root(j))
    roots = [root(i) if xs else None for i, xs in enumerate(xs_of)]
    return [r if r is not None and roots.count(r) > 1 else None for r in roots]


def _x_axis(ax, *, logx: bool, ticks: list, written_x, integer_x: bool,
            several_x: bool = True) -> None:
    if logx:
        ax.set_xscale("log")
        if ticks:
            # Within a decade matplotlib labels minor ticks (2e-3, 3e-3, ...) over
            # one another; values drawn, far enough apart to read, read better.
            ax.set_xticks(ticks, labels=[written_x(v) for v in ticks])
            ax.xaxis.set_minor_formatter(NullFormatter())
    elif integer_x:
        # Of one value drawn (one epoch), matplotlib finds no two integers in view
        # and ticks 0.95, 1.0, 1.05 instead: one integer tick will do.
        ax.xaxis.set_major_locator(MaxNLocator(integer=True,
                                               min_n_ticks=2 if several_x else 1))


def _figure_legend(fig, axes, *, title: str, neutral: bool = False,
                   order: list[str] | None = None) -> None:
    """One legend for the figure: every facet's lines, each name once, in ``order``
    (the hues' and styles' order; not the facets', which may hold a later hue first).
    ``neutral``: the lines' colours are a colour bar's, so a name (a line style) is drawn
    in grey, not in the colour of whichever line happened to carry it first."""
    from matplotlib.lines import Line2D

    handles, names = [], []
    for ax in axes.flat:
        for handle, name in zip(*ax.get_legend_handles_labels()):
            if name not in names:
                handles.append(Line2D([], [], color="0.35", linestyle=handle.get_linestyle(),
                                      marker=handle.get_marker(), markersize=3)
                               if neutral else handle)
                names.append(name)
    if order:
        place = {name: i for i, name in enumerate(order)}
        pairs = sorted(zip(handles, names), key=lambda pair: place.get(pair[1], len(place)))
        handles, names = [h for h, _ in pairs], [n for _, n in pairs]
    if handles:
        fig.legend(handles, names, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False,
                   title=title)


def facet_lines(data: pd.DataFrame, *, x: str = "epoch", row: str | None = None,
                col: str | None = None, hue: str | None = None, style: str | None = None,
                ylabel: str = "accuracy", title: str = "", xlabel: str | None = None,
                height: float = 3.2, reference: float | None = None,
                vlines: tuple[float, ...] = (), logx: bool = False, bands: bool = True,
                sharex: bool = True, joined: bool = True):
    """Mean lines with interval bands, faceted by ``row`` and ``col``.

    Args:
        data: Columns ``x, mean, low, high`` and the facet/hue/style columns.
        reference: A horizontal line to draw (for example 0 for a gain).
        joined: False draws points with error bars, not lines with bands.
    """
    sns.set_theme(style="whitegrid", context="notebook")
    rows = list(pd.unique(data[row])) if row else [None]
    cols = [None]
    if col:
        numeric = pd.api.types.is_numeric_dtype(data[col])
        cols = ordered(data[col]) if numeric else list(pd.unique(data[col]))
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(4.2 * len(cols) + 1.4,
                                                            height * len(rows)),
                             squeeze=False, sharex=sharex, sharey="row")
    integer_x = pd.api.types.is_integer_dtype(data[x]) or (
        pd.api.types.is_float_dtype(data[x]) and (data[x].dropna() % 1 == 0).all())
    hues = ordered(data[hue]) if hue else [None]
    styles = ordered(data[style]) if style else [None]
    written = {k: value_labels(data[k].unique()) for k in (row, col, hue, style) if k}
    scale = _colour_scale(hues) if hue else None
    if scale is not None:
        palette = {repr(h): "0.5" if _missing(h) else scale.to_rgba(h) for h in hues}
    else:
        palette = dict(zip(map(repr, hues), sns.color_palette("viridis", len(hues)) if hue
                           else ["C0"]))
    lines = _Lines(
        x=x, hue=hue, style=style, hues=hues, styles=styles, palette=palette,
        dashes={repr(s): ["-", "--", ":", "-."][i % 4] for i, s in enumerate(styles)},
        markers={repr(s): UNJOINED_MARKERS[i % len(UNJOINED_MARKERS)]
                 for i, s in enumerate(styles)},
        written=written, bands=bands, hue_in_legend=scale is None,
        x_gap=_least_gap(data[x], logx=logx), logx=logx, joined=joined)
    drawn = sorted(set(data[x].dropna())) if logx else []
    written_x = value_labels(drawn)
    ticks = log_ticks(drawn)
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            ax = axes[i][j]
            part = data
            if row:
                part = _select(part, row, r)
            if col:
                part = _select(part, col, c)
            lines.draw(ax, part)
            if reference is not None:
                ax.axhline(reference, color="black", linewidth=1)
            for position in vlines:
                ax.axvline(position, color="grey", linestyle="--", linewidth=1)
            _x_axis(ax, logx=logx, ticks=ticks, written_x=written_x, integer_x=integer_x,
                    several_x=data[x].nunique() > 1)
            heading = " | ".join(f"{label(k)} = {written[k](v)}" for k, v in ((row, r), (col, c))
                                 if k and k != "metric")
            if row == "metric":
                ax.set_ylabel(label(r))
            else:
                # Wrapped: a long label on a one-row figure runs into the title.
                ax.set_ylabel(textwrap.fill(ylabel, 28) if j == 0 else "")
            ax.set_title(heading, fontsize=10)
            if i == len(rows) - 1:
                ax.set_xlabel(xlabel or label(x))
    _figure_legend(fig, axes, title=" / ".join(label(k) for k in (hue, style)
                                               if k and (k != hue or scale is None)),
                   neutral=scale is not None,
                   order=[lines.name(h, s) for h in hues for s in styles])
    fig.suptitle(title)
    fig.tight_layout()
    if scale is not None:
        fig.colorbar(scale, ax=axes.ravel().tolist(), label=label(hue), pad=0.02)
    return fig


def _colour_scale(hues: list):
    """A colour bar for a numeric hue of more values than a legend can name one by one
    (a random search's continuous hyperparameter: one point each); None otherwise."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import LogNorm, Normalize

    values = [h for h in hues if not _missing(h)]
    if len(values) <= MOST_LEGEND_HUES or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return None
    low, high = min(values), max(values)
    norm = LogNorm(low, high) if low > 0 and high / low >= 100 else Normalize(low, high)
    return ScalarMappable(norm=norm, cmap="viridis")


def accuracy_vs_epochs(curves: pd.DataFrame, *, col: str | None, hue: str | None,
                       style: str | None, title: str, boundaries: tuple[float, ...] = ()):
    """Figure 1: accuracy (rows: validation, training) against epoch, 95% bands; dashed
    vertical lines mark phase boundaries."""
    return facet_lines(curves, row="metric", col=col, hue=hue, style=style, title=title,
                       vlines=boundaries)


def transferability(summary: pd.DataFrame, *, hue: str | None, title: str):
    """Figure 2: final and best validation accuracy against frozen blocks, per init."""
    data = summary.assign(measure=summary["measure"].map(
        {"final": "final epoch", "best": "best epoch"}))
    return facet_lines(data, x="frozen_blocks", col="measure", hue=hue,
                       ylabel="validation accuracy", title=title)


def heatmaps(tables: dict, *, title: str, rows: str, cols: str):
    """Figure 3: one annotated heatmap of final validation accuracy per panel."""
    sns.set_theme(style="white", context="notebook")
    fig, axes = plt.subplots(1, len(tables), figsize=(4.6 * len(tables) + 1, 3.6),
                             squeeze=False)
    for ax, (name, table) in zip(axes[0], tables.items()):
        shown = table.copy()
        shown.columns = list(map(value_labels(shown.columns), shown.columns))
        shown.index = list(map(value_labels(shown.index), shown.index))
        sns.heatmap(shown, annot=True, fmt=".2f", vmin=0, vmax=1, cmap="viridis", ax=ax,
                    cbar_kws={"label": "final validation accuracy"})
        ax.set_xlabel(label(cols) + (" (log-spaced)" if cols.endswith("lr") else ""))
        ax.set_ylabel(label(rows))
        ax.set_title(name, fontsize=10)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def objective_vs(summary: pd.DataFrame, *, x: str, col: str | None, hue: str | None,
                 log: bool, title: str, style: str | None = None, joined: bool = True):
    """Final validation accuracy against one numeric hyperparameter, 95% interval over
    repeats; a log axis for a log-sampled one. ``joined=False``: points, not lines."""
    return facet_lines(summary, x=x, col=col, hue=hue, style=style,
                       ylabel="final validation accuracy",
                       title=title, logx=log, joined=joined)


def transfer_gain(gain: pd.DataFrame, *, hue: str | None, title: str):
    """Figure 4: each init minus random validation accuracy against epoch, 95% band."""
    comparisons = gain["comparison"].unique() if "comparison" in gain else []
    what = comparisons[0] if len(comparisons) == 1 else "init - random"
    return facet_lines(gain, hue=hue if len(comparisons) > 1 or hue != "comparison" else None,
                       ylabel=f"{what} validation accuracy", title=title, reference=0.0)


def tuner_progress(progress: pd.DataFrame, *, hue: str | None, title: str):
    """Figure 5: best objective so far against trial number and against seconds."""
    long = pd.concat([
        progress.assign(axis="trial number", x=progress["trial_number"]),
        progress.assign(axis="search seconds", x=progress["elapsed_seconds"]),
    ], ignore_index=True).assign(mean=lambda d: d["best"], low=lambda d: d["best"],
                                 high=lambda d: d["best"])
    fig = facet_lines(long, x="x", col="axis", hue=hue, ylabel="best validation accuracy",
                      title=title, xlabel="", bands=False, sharex=False)
    for ax, name in zip(fig.axes, ["trial number", "search seconds (sum of trial times)"]):
        ax.set_xlabel(name)
        ax.set_title("")
    fig.axes[0].xaxis.set_major_locator(MaxNLocator(integer=True))
    return fig


def overfitting(gap: pd.DataFrame, *, title: str):
    """Figure 6: training minus validation accuracy against epoch, best trials, one line
    per configuration (named by its hyperparameters)."""
    hue = "configuration" if "configuration" in gap else "trial_id"
    return facet_lines(gap, hue=hue, ylabel="training - validation accuracy",
                       title=title, reference=0.0)


#: The gid of an artist drawn beside its x (``_dodged``), for the caption to say so.
DODGED = "drawn-beside-its-x"


def draws_side_by_side(fig) -> bool:
    """Whether ``fig`` drew lines of one point sharing an x side by side (``_dodged``)."""
    return any(artist.get_gid() == DODGED for ax in fig.axes for artist in ax.lines)


def draws_unjoined_points(fig) -> bool:
    """Whether ``fig`` draws a line's several points unjoined (``joined=False``)."""
    return any(line.get_linestyle() == "None" and len(line.get_xdata()) > 1
               and not line.get_label().startswith("_")
               for ax in fig.axes for line in ax.lines)


def draws_error_bars(fig) -> bool:
    """Whether ``fig`` shows an interval as an error bar (a line of one point)."""
    from matplotlib.container import ErrorbarContainer

    return any(isinstance(c, ErrorbarContainer) for ax in fig.axes for c in ax.containers)


def save(fig, path_stem, formats=("png", "svg")) -> list:
    """Writes the figure once per format and closes it; returns the paths."""
    paths = []
    for fmt in formats:
        path = path_stem.with_suffix(f".{fmt}")
        fig.savefig(path, dpi=120, bbox_inches="tight")
        paths.append(path)
    plt.close(fig)
    return paths

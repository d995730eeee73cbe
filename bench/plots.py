"""Drawing: each function takes the DataFrame an analysis function made and returns a Figure.

Nothing is computed here beyond layout. Lines are means, bands are 95% confidence
intervals over repeats, and every axis says what it shows.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # Files only; no display is ever needed.

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from bench.progress import format_values  # noqa: E402

LABELS = {
    "val_accuracy": "validation accuracy",
    "accuracy": "training accuracy",
    "frozen_blocks": "frozen blocks",
    "head_lr": "head learning rate",
    "init": "initialisation",
    "body_lr_scale": "body learning-rate scale",
}


def label(name: str) -> str:
    return LABELS.get(name, name.replace("_", " "))


def _shown(value) -> str:
    return format_values({"": value})[1:] if isinstance(value, float) else str(value)


def facet_lines(data: pd.DataFrame, *, x: str = "epoch", row: str | None = None,
                col: str | None = None, hue: str | None = None, style: str | None = None,
                ylabel: str = "accuracy", title: str = "", xlabel: str | None = None,
                height: float = 3.2, reference: float | None = None):
    """Mean lines with interval bands, faceted by ``row`` and ``col``.

    Args:
        data: Columns ``x, mean, low, high`` and the facet/hue/style columns.
        reference: A horizontal line to draw (for example 0 for a gain).
    """
    sns.set_theme(style="whitegrid", context="notebook")
    rows = list(pd.unique(data[row])) if row else [None]
    cols = list(pd.unique(data[col])) if col else [None]
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(4.2 * len(cols) + 1.4,
                                                            height * len(rows)),
                             squeeze=False, sharex=True, sharey="row")
    hues = sorted(pd.unique(data[hue])) if hue else [None]
    styles = sorted(pd.unique(data[style])) if style else [None]
    palette = dict(zip(hues, sns.color_palette("viridis", len(hues)) if hue else ["C0"]))
    dashes = dict(zip(styles, ["-", "--", ":", "-."] * 4))
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            ax = axes[i][j]
            part = data
            if row:
                part = part[part[row] == r]
            if col:
                part = part[part[col] == c]
            for h in hues:
                for s in styles:
                    line = part
                    if hue:
                        line = line[line[hue] == h]
                    if style:
                        line = line[line[style] == s]
                    if line.empty:
                        continue
                    line = line.sort_values(x)
                    name = ", ".join(f"{label(k)}={_shown(v)}" for k, v in
                                     ((hue, h), (style, s)) if k)
                    ax.plot(line[x], line["mean"], linestyle=dashes[s], color=palette[h],
                            marker="o", markersize=3, label=name or None)
                    ax.fill_between(line[x], line["low"], line["high"], color=palette[h],
                                    alpha=0.15, linewidth=0)
            if reference is not None:
                ax.axhline(reference, color="black", linewidth=1)
            heading = " | ".join(f"{label(k)} = {_shown(v)}" for k, v in ((row, r), (col, c))
                                 if k and k != "metric")
            if row == "metric":
                ax.set_ylabel(label(r))
            else:
                ax.set_ylabel(ylabel if j == 0 else "")
            ax.set_title(heading, fontsize=10)
            if i == len(rows) - 1:
                ax.set_xlabel(xlabel or label(x))
    handles, names = axes[0][0].get_legend_handles_labels()
    for ax in axes.flat[1:]:
        more_handles, more_names = ax.get_legend_handles_labels()
        for handle, name in zip(more_handles, more_names):
            if name not in names:
                handles.append(handle)
                names.append(name)
    if handles:
        fig.legend(handles, names, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False,
                   title=" / ".join(label(k) for k in (hue, style) if k))
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def accuracy_vs_epochs(curves: pd.DataFrame, *, col: str | None, hue: str | None,
                       style: str | None, title: str):
    """Figure 1: accuracy (rows: validation, training) against epoch, 95% bands."""
    return facet_lines(curves, row="metric", col=col, hue=hue, style=style, title=title)


def save(fig, path_stem, formats=("png", "svg")) -> list:
    """Writes the figure once per format and closes it; returns the paths."""
    paths = []
    for fmt in formats:
        path = path_stem.with_suffix(f".{fmt}")
        fig.savefig(path, dpi=120, bbox_inches="tight")
        paths.append(path)
    plt.close(fig)
    return paths

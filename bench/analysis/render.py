"""A report as a list of blocks (headings, paragraphs, tables, figures), rendered twice: as
Markdown next to the PNGs, and as one self-contained HTML page with the images inside."""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd


@dataclass(frozen=True)
class Block:
    kind: str  # "h1", "h2", "p", "table", "figure", "list"
    content: object
    caption: str = ""


def fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "-"
    if isinstance(value, float):
        if value == 0 or 0.01 <= abs(value) < 1e6:
            return f"{value:.{digits}f}"
        return f"{value:.2g}"  # 0.001, 1e+30: not a row of zeros or of digits
    return str(value)


def interval(low: float, high: float) -> str:
    """"95% CI [+0.070, +0.196]" for a difference; "no 95% CI" where there is none (one
    seed)."""
    if pd.isna(low) or pd.isna(high):
        return "no 95% CI"
    return f"95% CI [{low:+.3f}, {high:+.3f}]"


def markdown_table(table: pd.DataFrame) -> str:
    """A DataFrame as a Markdown table (no extra dependency)."""
    head = "| " + " | ".join(str(c) for c in table.columns) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    body = ["| " + " | ".join(fmt(v) for v in row) + " |"
            for row in table.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def to_markdown(blocks: list[Block], base: Path) -> str:
    out = []
    for block in blocks:
        if block.kind == "h1":
            out.append(f"# {block.content}")
        elif block.kind == "h2":
            out.append(f"## {block.content}")
        elif block.kind == "p":
            out.append(str(block.content))
        elif block.kind == "list":
            out.append("\n".join(f"- {item}" for item in block.content))
        elif block.kind == "table":
            out.append(markdown_table(block.content))
        elif block.kind == "figure":
            rel = Path(block.content).relative_to(base)
            out.append(f"{block.caption}\n\n![{Path(block.content).stem}]({rel.as_posix()})")
        out.append("")
    return "\n".join(out)


def _inline(text: str) -> str:
    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def to_html(blocks: list[Block]) -> str:
    body = []
    for block in blocks:
        if block.kind in ("h1", "h2"):
            body.append(f"<{block.kind}>{_inline(str(block.content))}</{block.kind}>")
        elif block.kind == "p":
            body.append(f"<p>{_inline(str(block.content))}</p>")
        elif block.kind == "list":
            body.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in block.content)
                        + "</ul>")
        elif block.kind == "table":
            table = block.content
            head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
            rows = "".join("<tr>" + "".join(f"<td>{html.escape(fmt(v))}</td>" for v in row)
                           + "</tr>" for row in table.itertuples(index=False))
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif block.kind == "figure":
            data = base64.b64encode(Path(block.content).read_bytes()).decode("ascii")
            body.append(f"<figure><img alt='{html.escape(Path(block.content).stem)}' "
                        f"src='data:image/png;base64,{data}'><figcaption>"
                        f"{_inline(block.caption)}</figcaption></figure>")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.4}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}"
             "img{max-width:100%}")
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>finetune-bench report"
            f"</title><style>{style}</style></head><body>{''.join(body)}</body></html>\n")



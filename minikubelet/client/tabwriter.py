"""Go's ``text/tabwriter``, which kubectl prints every table and description through.

Cells end at tabs; the text after a line's last tab is not aligned. A column
is aligned over the run of consecutive lines that have a cell in it, so a line
with fewer cells (``Containers:``) starts new alignment below it, exactly as
in Go. Widths count characters (Go counts runes).
"""

from __future__ import annotations

from collections.abc import Iterable


def _format(
    lines: list[list[str]],
    out: list[str],
    widths: list[int],
    line0: int,
    line1: int,
    *,
    minwidth: int,
    padding: int,
) -> None:
    column = len(widths)
    this = line0
    while this < line1:
        if column >= len(lines[this]) - 1:
            this += 1
            continue
        # A cell in this column: lines before it are done, and a block starts here.
        _write(lines, out, widths, line0, this)
        line0 = this
        width = minwidth
        while this < line1 and column < len(lines[this]) - 1:
            width = max(width, len(lines[this][column]) + padding)
            this += 1
        widths.append(width)
        _format(lines, out, widths, line0, this, minwidth=minwidth, padding=padding)
        widths.pop()
        line0 = this
    _write(lines, out, widths, line0, line1)


def _write(
    lines: list[list[str]], out: list[str], widths: list[int], line0: int, line1: int
) -> None:
    for cells in lines[line0:line1]:
        parts = []
        for j, cell in enumerate(cells):
            parts.append(cell)
            if j < len(widths):
                parts.append(" " * (widths[j] - len(cell)))
        out.append("".join(parts))


def tabulate(text: str, *, minwidth: int, padding: int) -> str:
    """``text`` (tab-separated cells, newline-ended lines) aligned as Go's tabwriter
    aligns it with a space pad character and no flags."""
    body, newline, rest = text.rpartition("\n")
    if not newline:
        body, rest = "", text
    lines = [line.split("\t") for line in body.split("\n")] if newline else []
    out: list[str] = []
    _format(lines, out, [], 0, len(lines), minwidth=minwidth, padding=padding)
    result = "".join(line + "\n" for line in out)
    return result + rest


def table_text(rows: Iterable[Iterable[str]]) -> str:
    """Rows of cells as ``kubectl get`` prints them (minimum width 6, padding 3)."""
    text = "".join("\t".join(row) + "\n" for row in rows)
    return tabulate(text, minwidth=6, padding=3)

"""Output modes, as in sqlite3's `.mode`: pure functions from (columns, rows) to lines.

`render` yields records without their final newline; a csv record may itself hold
newlines inside quotes. Nothing here writes or knows about terminals: the caller passes
the width to fit (None: no limit, as when output goes to a pipe or a file).

Invariants:
- Grid modes (table, box, column, markdown) never print a line wider than `width` when
  `width` allows `COLUMN_WIDTH_MIN` cells per column; a cut value ends with `ELLIPSIS`.
- Machine modes (list, csv, json) never cut or escape a value.
- A column whose non-NULL values are all numbers is right-aligned in grid modes.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

_wcswidth: Callable[[str], int] | None
try:
    from wcwidth import wcswidth as _wcswidth  # type: ignore[import-untyped, unused-ignore]
except ImportError:  # pragma: no cover - wcwidth comes with prompt_toolkit.
    _wcswidth = None

__all__ = ["MODES", "RenderOptions", "cell_text", "display_width", "fit_widths", "render"]

MODES = ("table", "box", "column", "list", "csv", "json", "line", "markdown")
GRID_MODES = frozenset({"table", "box", "column", "markdown"})
HUMAN_NULL = "NULL"  # NULL in human modes unless `.nullvalue` says otherwise
COLUMN_WIDTH_MIN = 5  # a column is never cut narrower than this (4 characters + ellipsis)
ELLIPSIS = "…"
LIST_SEPARATOR = "|"

Row = Sequence[Any]


@dataclass(frozen=True, slots=True)
class RenderOptions:
    """How to print: `nullvalue` None means the mode's default ('' or 'NULL')."""

    mode: str = "list"
    headers: bool = False
    nullvalue: str | None = None
    width: int | None = None

    def null_text(self) -> str:
        if self.nullvalue is not None:
            return self.nullvalue
        return "" if self.mode in ("list", "csv") else HUMAN_NULL


def cell_text(value: Any, null: str) -> str:
    """`value` as text: blobs as `X'hex'`, floats with `repr` so 1.0 stays `1.0`."""
    if value is None:
        return null
    if isinstance(value, bytes | bytearray | memoryview):
        return "X'" + bytes(value).hex().upper() + "'"
    if isinstance(value, float):
        return repr(value)
    return str(value)


_CONTROL_ESCAPES = {code: f"\\x{code:02x}" for code in range(32)} | {
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    ord("\t"): "\\t",
    127: "\\x7f",
}


def _visible(text: str) -> str:
    """Control characters escaped, so a grid cell is always one line."""
    return text.translate(_CONTROL_ESCAPES)


def display_width(text: str) -> int:
    """Terminal cells `text` takes (East Asian wide characters count two)."""
    if _wcswidth is not None:
        width = _wcswidth(text)
        if width >= 0:
            return int(width)
    return len(text)


def _char_width(char: str) -> int:
    return max(display_width(char), 0)


def truncate(text: str, width: int) -> str:
    """`text` cut to at most `width` cells, ending with `ELLIPSIS` when it was cut."""
    if display_width(text) <= width:
        return text
    kept: list[str] = []
    used = 0
    for char in text:
        cells = _char_width(char)
        if used + cells > width - 1:
            break
        kept.append(char)
        used += cells
    return "".join(kept) + ELLIPSIS


def _pad(text: str, width: int, right: bool) -> str:
    spaces = " " * max(width - display_width(text), 0)
    return spaces + text if right else text + spaces


def fit_widths(natural: Sequence[int], available: int | None) -> list[int]:
    """Column widths that fit `available` cells, cutting the widest columns first.

    Water-filling: find the largest cap such that the columns clipped to it fit, then
    hand any cells left over to the clipped columns. No column drops below
    `COLUMN_WIDTH_MIN` (or its natural width when smaller), even if the total then
    overflows a very narrow terminal.
    """
    widths = list(natural)
    if available is None or sum(widths) <= available:
        return widths
    low, high = COLUMN_WIDTH_MIN, max(widths)
    cap = COLUMN_WIDTH_MIN
    while low <= high:
        middle = (low + high) // 2
        if sum(min(w, middle) for w in widths) <= available:
            cap, low = middle, middle + 1
        else:
            high = middle - 1
    fitted = [min(w, cap) for w in widths]
    spare = available - sum(fitted)
    for index, wanted in enumerate(widths):
        if spare <= 0:
            break
        if wanted > fitted[index]:
            fitted[index] += 1
            spare -= 1
    return fitted


@dataclass(frozen=True, slots=True)
class _Grid:
    headers: list[str]
    body: list[list[str]]
    widths: list[int]
    numeric: list[bool]


def _is_numeric_column(rows: Sequence[Row], index: int) -> bool:
    values = [row[index] for row in rows if row[index] is not None]
    return bool(values) and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in values
    )


def _grid(columns: Sequence[str], rows: Sequence[Row], options: RenderOptions, frame: int) -> _Grid:
    """Cells as visible text, cut to widths that fit `options.width` minus `frame` cells."""
    null = options.null_text()
    headers = [_visible(c) for c in columns]
    body = [[_visible(cell_text(v, null)) for v in row] for row in rows]
    shown = options.headers or options.mode == "markdown"
    natural = [
        max([display_width(headers[i]) if shown else 1, *(display_width(r[i]) for r in body)])
        for i in range(len(columns))
    ]
    available = None if options.width is None else options.width - frame
    widths = fit_widths(natural, available)
    headers = [truncate(h, w) for h, w in zip(headers, widths, strict=True)]
    body = [[truncate(c, w) for c, w in zip(r, widths, strict=True)] for r in body]
    numeric = [_is_numeric_column(rows, i) for i in range(len(columns))]
    return _Grid(headers, body, widths, numeric)


def _cells(grid: _Grid, cells: Sequence[str], align: bool) -> list[str]:
    return [
        _pad(c, w, align and n) for c, w, n in zip(cells, grid.widths, grid.numeric, strict=True)
    ]


_BORDERS = {
    # top, header separator, bottom: (left, middle, right, fill); then the vertical bar.
    "table": (("+", "+", "+", "-"), ("+", "+", "+", "-"), ("+", "+", "+", "-"), "|"),
    "box": (("┌", "┬", "┐", "─"), ("├", "┼", "┤", "─"), ("└", "┴", "┘", "─"), "│"),
}


def _render_boxed(
    columns: Sequence[str], rows: Sequence[Row], options: RenderOptions
) -> Iterator[str]:
    top, middle, bottom, bar = _BORDERS[options.mode]
    grid = _grid(columns, rows, options, frame=3 * len(columns) + 1)

    def rule(parts: tuple[str, str, str, str]) -> str:
        left, joint, right, fill = parts
        return left + joint.join(fill * (w + 2) for w in grid.widths) + right

    def line(cells: list[str]) -> str:
        return f"{bar} " + f" {bar} ".join(cells) + f" {bar}"

    yield rule(top)
    if options.headers:
        yield line(_cells(grid, grid.headers, align=False))
        yield rule(middle)
    for row in grid.body:
        yield line(_cells(grid, row, align=True))
    yield rule(bottom)


def _render_column(
    columns: Sequence[str], rows: Sequence[Row], options: RenderOptions
) -> Iterator[str]:
    grid = _grid(columns, rows, options, frame=2 * (len(columns) - 1))
    if options.headers:
        yield "  ".join(_cells(grid, grid.headers, align=False)).rstrip()
        yield "  ".join("-" * w for w in grid.widths)
    for row in grid.body:
        yield "  ".join(_cells(grid, row, align=True)).rstrip()


def _render_markdown(
    columns: Sequence[str], rows: Sequence[Row], options: RenderOptions
) -> Iterator[str]:
    grid = _grid(columns, rows, options, frame=3 * len(columns) + 1)
    escaped = [[c.replace("|", "\\|") for c in row] for row in grid.body]
    yield "| " + " | ".join(_cells(grid, grid.headers, align=False)) + " |"
    yield (
        "|"
        + "|".join(
            "-" * (w + 1) + ":" if n else "-" * (w + 2)
            for w, n in zip(grid.widths, grid.numeric, strict=True)
        )
        + "|"
    )
    for row in escaped:
        yield "| " + " | ".join(_cells(grid, row, align=True)) + " |"


def _render_list(
    columns: Sequence[str], rows: Sequence[Row], options: RenderOptions
) -> Iterator[str]:
    null = options.null_text()
    if options.headers:
        yield LIST_SEPARATOR.join(columns)
    for row in rows:
        yield LIST_SEPARATOR.join(cell_text(v, null) for v in row)


def _render_csv(
    columns: Sequence[str], rows: Sequence[Row], options: RenderOptions
) -> Iterator[str]:
    null = options.null_text()
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")

    def record(values: Sequence[str]) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(values)
        return buffer.getvalue()[:-1]

    if options.headers:
        yield record(columns)
    for row in rows:
        yield record([cell_text(v, null) for v in row])


def _json_value(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return cell_text(value, "")
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _render_json(
    columns: Sequence[str], rows: Sequence[Row], options: RenderOptions
) -> Iterator[str]:
    """sqlite3's layout: one object per line, `[` before the first and `]` after the last."""
    if not rows:
        yield "[]"
        return
    last = len(rows) - 1
    for index, row in enumerate(rows):
        item = {c: _json_value(v) for c, v in zip(columns, row, strict=True)}
        text = json.dumps(item, ensure_ascii=False, separators=(",", ":"))
        yield ("[" if index == 0 else "") + text + ("]" if index == last else ",")


def _render_line(
    columns: Sequence[str], rows: Sequence[Row], options: RenderOptions
) -> Iterator[str]:
    null = options.null_text()
    name_width = max(display_width(c) for c in columns)
    for index, row in enumerate(rows):
        if index:
            yield ""
        for name, value in zip(columns, row, strict=True):
            yield f"{_pad(name, name_width, right=True)} = {cell_text(value, null)}"


_RENDERERS: dict[str, Callable[[Sequence[str], Sequence[Row], RenderOptions], Iterator[str]]] = {
    "table": _render_boxed,
    "box": _render_boxed,
    "column": _render_column,
    "list": _render_list,
    "csv": _render_csv,
    "json": _render_json,
    "line": _render_line,
    "markdown": _render_markdown,
}
assert set(_RENDERERS) == set(MODES)


def render(columns: Sequence[str], rows: Sequence[Row], options: RenderOptions) -> Iterator[str]:
    """Yield the records that print `rows` in `options.mode`.

    Nothing is printed for an empty result, as sqlite3 does, except `[]` in json mode so
    that a pipe always receives valid JSON.
    """
    assert options.mode in _RENDERERS, options.mode
    if not columns or (not rows and options.mode != "json"):
        return iter(())
    return _RENDERERS[options.mode](columns, rows, options)

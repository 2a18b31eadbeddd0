"""The results pages: one self-contained HTML file per table (`results/<key>.html`) and
`results/index.html` linking them, written by `bench.report` beside the Markdown.

A page opens offline from disk or any static host: no CDN, no server, no file beside it.  Its
figures are matplotlib's SVG, inline; its data is in the page; a few lines of plain JavaScript
sort the table by any column (numerically on the mean of an accuracy column).

A page is data, rendered by one Jinja2 template (bench/templates/page.html.j2) that knows
nothing of comparisons: a `Page` holds `Table`s, a table is a caption, `Column`s, `Row`s of
`Cell`s, `Figure`s and `Section`s (lists such as the missing runs), and a row's detail is a
list of `Block`s (a small table, an SVG, a paragraph), opened in place under the row.  The
comparison table (bench/comparison_page.py) is one such table; another kind of table (the
sequential protocol's) is rendered by building its own `Table`.

The figures are drawn in the report's drawing processes (bench/report_plots.py); the page is
rendered meanwhile, with a `slot` for each figure (and for each row's marker), and
`finish_page` puts their SVG into the slots once they are drawn.
"""
from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any



@dataclasses.dataclass
class Cell:
    text: str
    sort: float | str | None = None   # the value the column sorts by (None: last)
    best: bool = False


@dataclasses.dataclass
class Column:
    name: str
    numeric: bool = False
    best: str | None = None           # "max", "min", "min>0" (the least positive) or None: no best marked


@dataclasses.dataclass
class Block:
    """A piece of a row's detail: kind "table" (headers, rows), "svg" (svg, alt) or "text"."""

    title: str
    kind: str
    headers: list[str] = dataclasses.field(default_factory=list)
    rows: list[list[str]] = dataclasses.field(default_factory=list)
    svg: str = ""
    alt: str = ""
    text: str = ""
    collapsed: bool = False           # shown behind its own <details>


@dataclasses.dataclass
class Row:
    cells: list[Cell]
    label: str
    swatch: str = ""                  # the row's marker and line in the figures (SVG, or its `slot`)
    detail: list[Block] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Figure:
    name: str
    title: str
    alt: str

    @property
    def slot(self) -> str:
        return slot(self.name)


def slot(name: str, index: int | None = None) -> str:
    """Where a drawing goes into a rendered page (`finish_page`): a figure, or one of a list."""
    return f"<!--drawn:{name}-->" if index is None else f"<!--drawn:{name}:{index}-->"


@dataclasses.dataclass
class Section:
    title: str
    items: list[str]


@dataclasses.dataclass
class Table:
    id: str
    title: str
    caption: str
    columns: list[Column]
    rows: list[Row]
    figures: list[Figure] = dataclasses.field(default_factory=list)
    sections: list[Section] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Page:
    title: str
    tables: list[Table] = dataclasses.field(default_factory=list)
    links: list[tuple[str, str]] = dataclasses.field(default_factory=list)   # (href, text)
    intro: str = ""


def render(page: Page) -> str:
    """The page's HTML (bench/templates/page.html.j2)."""
    return template().render(page=page)


@functools.cache
def template():
    import jinja2  # imported by a report that writes a page, once its figures are being drawn
    import markupsafe
    environment = jinja2.Environment(loader=jinja2.PackageLoader("bench", "templates"),
                                     autoescape=True, trim_blocks=True, lstrip_blocks=True,
                                     undefined=jinja2.StrictUndefined)
    environment.filters["markup"] = markupsafe.Markup  # the SVG that matplotlib wrote, as it is
    return environment.get_template("page.html.j2")


def finish_page(path: Path, html: str, drawn: dict[str, Any]) -> None:
    """Write the rendered page to `path` with each drawing in its `slot`: `drawn` maps a name to
    its `Drawn` (bench/report_plots.py), an SVG text or a list of them."""
    for name, drawing in drawn.items():
        result = drawing.result()
        for index, svg in ([(None, result)] if isinstance(result, str) else enumerate(result)):
            html = html.replace(slot(name, index), svg)
    Path(path).write_text(html)


def render_index(pages: list[tuple[str, str]]) -> str:
    """results/index.html: a link to every page, (file name, title) each."""
    return render(Page("Results", links=pages, intro=(
        "One page per table: its comparison (sortable by any column), its figures and, under each "
        "row, its runs and settings. Each page is a single file that opens offline.")))


def mark_best(columns: list[Column], rows: list[Row]) -> None:
    """Mark each column's best cell by its sort value (`Column.best`)."""
    for i, column in enumerate(columns):
        values = [row.cells[i].sort for row in rows if isinstance(row.cells[i].sort, float)]
        if column.best == "min>0":  # a row that trains nothing, or took no time, is no contender
            values = [v for v in values if v > 0]
        if not column.best or not values:
            continue
        best = max(values) if column.best == "max" else min(values)  # "min", "min>0"
        for row in rows:
            row.cells[i].best = row.cells[i].sort == best

"""Tables that stay whole at any terminal width.

Piped output and CI logs are often 80 columns or fewer, and rich then shrinks columns and cuts cells with "…": a
candidate name becomes ``cnn-w16-d2-lr…`` and the p50 column disappears. :class:`Fit` never cuts a cell. Columns
declared ``overflow="fold"`` (free text, such as a list of class counts) may wrap; every other cell keeps its full
width. When that does not fit, each row becomes a block of ``header  value`` lines instead.
"""

from __future__ import annotations

from collections.abc import Iterator

from rich.console import Console, ConsoleOptions, RenderableType
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text


def _text(console: Console, cell: RenderableType) -> Text:
    if isinstance(cell, Text):
        return cell
    return console.render_str(cell) if isinstance(cell, str) else Text(str(cell))


class Fit:
    """A table printed across when it fits the width it is given, and one row per block when it does not."""

    def __init__(self, table: Table, name_columns: int = 1) -> None:
        self.table = table
        self.name_columns = name_columns  # leading columns that name a row (a ★ mark and a variant, say)

    def _pin_rigid_columns(self, console: Console) -> None:
        # A rigid column is never narrower than its widest cell or its header: rich may then only shrink the
        # folding columns, and the measured minimum tells whether the table fits across.
        for col in self.table.columns:
            if col.overflow == "fold":
                continue
            cells = [col.header, *col.cells] if self.table.show_header else list(col.cells)
            col.no_wrap = True
            col.min_width = max((_text(console, c).cell_len for c in cells), default=0)

    def fits(self, console: Console, width: int) -> bool:
        self._pin_rigid_columns(console)
        needed = Measurement.get(console, console.options.update_width(1_000_000), self.table).minimum
        return needed <= width

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[RenderableType]:
        if self.fits(console, options.max_width):
            yield self.table
        else:
            yield from self.rows(console)

    def rows(self, console: Console) -> Iterator[Text]:
        """The vertical form: the row's name (its leading columns) on one line, then one ``header  value`` each."""
        t = self.table
        columns = [[_text(console, c) for c in col.cells] for col in t.columns]
        headers = [str(col.header) if t.show_header else "" for col in t.columns]
        lead = min(self.name_columns, len(columns))
        pad = max((len(h) for h in headers[lead:]), default=0)
        if t.title:
            yield _text(console, t.title)
        for r in range(t.row_count):
            # e.g. "variant int8", "candidate ★ cnn-w16-d2-lr0.003-do0.1": the headers keep their meaning in blocks
            name = [Text(h) for h in headers[:lead] if h] + [columns[i][r] for i in range(lead) if columns[i][r].plain]
            yield Text(" ").join(name) if name else Text("·")
            for i in range(lead, len(columns)):
                yield Text.assemble("  ", (headers[i].ljust(pad) + "  ") if pad else "", columns[i][r])
        if t.caption:
            yield _text(console, t.caption)

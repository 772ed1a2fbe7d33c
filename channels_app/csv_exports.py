"""CSV exports that a spreadsheet opens safely (API.md, "Safe by default").

A spreadsheet runs a cell that begins with `=`, `+`, `-` or `@` as a formula
(`=HYPERLINK(...)`, `+cmd|...`, `@SUM(...)`), and some also after a leading
tab or carriage return. A client id, a contact field or a receipt reason comes
from outside, so every text cell of every export goes through
`spreadsheet_safe`: such a cell is written with a leading `'`, which
spreadsheets show as text. Numbers the server writes itself are left as they
are."""

import csv

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value):
    """`value` as a CSV cell a spreadsheet does not run: a text starting like a formula gets a leading `'`."""
    if isinstance(value, bool | int | float) or value is None:
        return value
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


class SafeCSVWriter:
    """csv.writer whose every cell goes through spreadsheet_safe: the one way the server writes CSV."""

    def __init__(self, out, **options):
        self._writer = csv.writer(out, **options)

    def writerow(self, row):
        return self._writer.writerow([spreadsheet_safe(cell) for cell in row])

    def writerows(self, rows):
        for row in rows:
            self.writerow(row)

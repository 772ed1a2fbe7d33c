"""CSV exports that a spreadsheet opens safely (API.md, "Safe by default").

A spreadsheet runs a cell that begins with `=`, `+`, `-` or `@` as a formula
(`=HYPERLINK(...)`, `+cmd|...`, `@SUM(...)`), and some also after a leading
tab or carriage return. A client id, a contact field or a receipt reason comes
from outside, so every text cell of every export goes through
`spreadsheet_safe`: such a cell is written with a leading `'`, which
spreadsheets show as text. Numbers are left as they are, the server's own and
a text that is nothing but a number (`-12.5`) or an E.164 phone number
(`+14155550101`): a spreadsheet reads such a cell as data, never as a formula,
and a leading `'` would only mangle it."""

import csv
import re

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# A sign, ASCII digits, at most one decimal point: a number (an E.164 phone number is one), nothing else.
PLAIN_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


def spreadsheet_safe(value):
    """`value` as a CSV cell a spreadsheet does not run: a text starting like a formula gets a leading `'`,
    unless it is a plain number (`-12.5`, `+14155550101`)."""
    if isinstance(value, bool | int | float) or value is None:
        return value
    text = str(value)
    if text.startswith(FORMULA_STARTS) and PLAIN_NUMBER.fullmatch(text) is None:
        return "'" + text
    return text


class SafeCSVWriter:
    """csv.writer whose every cell goes through spreadsheet_safe: the one way the server writes CSV."""

    def __init__(self, out, **options):
        self._writer = csv.writer(out, **options)

    def writerow(self, row):
        return self._writer.writerow([spreadsheet_safe(cell) for cell in row])

    def writerows(self, rows):
        for row in rows:
            self.writerow(row)

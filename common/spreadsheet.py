"""Cells of exported CSV files that a spreadsheet would run as a formula (OWASP's CSV injection):
`=`, `+`, `-`, `@`, tab or CR at the start. Such a cell gets a leading `'`, which spreadsheets
show as text; plain numbers (`-5.00`, a refund) stay numbers. Every export goes through
`common.admin_tools.csv_response`, which applies this to every cell."""

import re
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")


def safe_cell(value: Any) -> Any:
    if not isinstance(value, str) or not value.startswith(FORMULA_STARTS):
        return value
    if PLAIN_NUMBER.fullmatch(value):
        return value
    return "'" + value

"""The demo's home may import every app; the apps do not import the doors for it."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(package: str) -> dict[str, set[str]]:
    found = {}
    for path in (ROOT / package).rglob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
        found[str(path.relative_to(ROOT))] = names
    return found


@pytest.mark.parametrize("door", ["digipay_api", "billmgr_api"])
def test_promotions_imports_no_door(door):
    offenders = {
        path: sorted(n for n in names if n.split(".")[0] == door)
        for path, names in imported_modules("promotions").items()
        if any(n.split(".")[0] == door for n in names)
    }
    assert offenders == {}

"""Request bodies every door reads the same way: JSON that cannot break what comes after it.

`json.loads` accepts what later steps cannot carry: a lone surrogate (`"\\ud800"`) cannot be
written as UTF-8 to the database or the answer, and nesting deep enough to exhaust the stack
raises RecursionError instead of ValueError. Both are refused here as bad JSON.
"""

import json
from typing import Any

# Deeper than any body our doors take (an order is 3 levels); deep enough for any honest client.
MAX_DEPTH = 32


class BadJson(ValueError):
    pass


def _check(value: Any) -> None:
    """Walk the parsed value without recursion: depth and lone surrogates."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if not _encodable(item):
                raise BadJson("The JSON text holds a lone surrogate (an invalid \\u escape)")
            continue
        if isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise BadJson(f"The JSON is nested deeper than {MAX_DEPTH} levels")
            children = item.items() if isinstance(item, dict) else ((None, v) for v in item)
            for key, child in children:
                if key is not None:
                    stack.append((key, depth + 1))
                stack.append((child, depth + 1))


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def json_loads(body: bytes | str) -> Any:
    """Parse a JSON body; BadJson (a ValueError) for anything a door must refuse."""
    try:
        value = json.loads(body)
    except RecursionError:
        raise BadJson(f"The JSON is nested deeper than {MAX_DEPTH} levels") from None
    except UnicodeDecodeError:
        raise BadJson("The body is not UTF-8") from None
    _check(value)
    return value

"""Untrusted JSON text to Python values, within bounds that keep the decoder total.

Python's `json` accepts things a contract event never needs and that break code
further on: nesting deep enough to raise `RecursionError`, integers too long for
`int()` (Python refuses more than 4,300 digits with a `ValueError`), `NaN` and
`Infinity`, a `1e999` that becomes `inf`, lone UTF-16 surrogates that cannot be
encoded again, and the same key twice (two readers may take different copies).
`parse_untrusted` refuses each of them with a sentence instead.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_DEPTH = 32  # a contract event nests two levels; 32 leaves room for any extension
MAX_NUMBER_CHARS = 40  # a 64-bit integer or a double in full precision fits easily

# Brackets outside strings: a string is skipped whole, escapes included.
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)
_SURROGATE = re.compile("[\ud800-\udfff]")


class JsonRefused(ValueError):
    """JSON text callvault will not take, with the sentence that says why."""


def nesting_depth(text: str, stop_past: int = MAX_DEPTH) -> int:
    """How deep arrays and objects nest in `text`, found without parsing it.

    Counting stops once the depth passes `stop_past`: a hostile event 1,000
    levels deep is refused as soon as it is known to be too deep, not after all
    of it was scanned.
    """
    depth = deepest = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > stop_past:
                    break
        elif token in "]}":
            depth -= 1
    return deepest


def _number_text(text: str) -> None:
    if len(text) > MAX_NUMBER_CHARS:
        raise JsonRefused(f"a number has {len(text)} characters; at most {MAX_NUMBER_CHARS} are accepted")


def _parse_int(text: str) -> int:
    _number_text(text)
    return int(text)


def _parse_float(text: str) -> float:
    _number_text(text)
    value = float(text)
    if not math.isfinite(value):
        raise JsonRefused("a number is too large to be represented")
    return value


def _parse_constant(name: str) -> Any:
    raise JsonRefused(f"{name} is not a JSON number; callvault takes finite numbers only")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for name, value in pairs:
        if name in obj:
            raise JsonRefused(f"field {name[:40]!r} appears more than once in one object")
        obj[name] = value
    return obj


def _check_strings(value: Any) -> None:
    """Refuse lone surrogates anywhere: such text cannot be written as UTF-8 again."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                raise JsonRefused("a string holds a lone UTF-16 surrogate (an escape such as \\ud800)")
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def parse_untrusted(text: str, max_depth: int = MAX_DEPTH) -> Any:
    """`json.loads` within bounds; raises `JsonRefused` or `json.JSONDecodeError`, nothing else."""
    if nesting_depth(text, stop_past=max_depth) > max_depth:
        raise JsonRefused(f"it nests more than {max_depth} levels deep; at most {max_depth} are accepted")
    value = json.loads(
        text,
        parse_int=_parse_int,
        parse_float=_parse_float,
        parse_constant=_parse_constant,
        object_pairs_hook=_object,
    )
    _check_strings(value)
    return value

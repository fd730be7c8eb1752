"""Readers of stored records and control replies, shared by the observation types.

The data comes from files and peers we do not control, so a field of the wrong type becomes the
default instead of an exception. `read_int` and `read_float` test first for the exact type our
own records hold (`type(x) is int` also keeps bool out): the analysis reads every record it is
given back, 7 fields per network event.
"""

from __future__ import annotations

from typing import Any

INF = float("inf")


def read_int(value: Any, default: int = 0) -> int:
    if type(value) is int:
        return value
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return default


def read_int_or_none(value: Any) -> int | None:
    return None if value is None else read_int(value, default=None)  # type: ignore[arg-type]


def read_float(value: Any, default: float = 0.0) -> float:
    if type(value) is float and -INF < value < INF:  # finite (NaN fails both comparisons)
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    number = float(value)
    return number if number == number and abs(number) != float("inf") else default


def read_float_or_none(value: Any) -> float | None:
    return None if value is None else read_float(value, default=None)  # type: ignore[arg-type]


def read_str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def read_str(value: Any, default: str = "") -> str:
    return value if isinstance(value, str) else default


def read_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def read_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []

"""Human durations in config ("90s", "5m", "2h", "30d") as timedelta, within bounds.

Each field declares its own bounds with `between(low, high)`: a zero interval
divides by zero in the scheduler, and an infinite one overflows `timedelta`.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta

from pydantic import BeforeValidator

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_EXPECTED = "expected a duration such as 30s, 5m or 2h"


def _seconds(value: object) -> float:
    if isinstance(value, bool):  # bool is an int; `timeout: yes` is a mistake
        raise ValueError(_EXPECTED)
    if isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:  # an int with hundreds of digits
            seconds = math.inf
    elif isinstance(value, str) and (match := _PATTERN.fullmatch(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    else:
        raise ValueError(f"{_EXPECTED}, got {value!r}")
    if math.isnan(seconds):  # YAML `.nan`
        raise ValueError(f"{_EXPECTED}, got {value!r}")
    return seconds


def format_duration(value: timedelta) -> str:
    """The shortest exact spelling in config units: 100ms, 1s, 30d."""
    micros = value // timedelta(microseconds=1)
    for unit, size in (("d", 86_400_000_000), ("h", 3_600_000_000), ("m", 60_000_000),
                       ("s", 1_000_000), ("ms", 1000)):
        if micros % size == 0:
            return f"{micros // size}{unit}"
    return f"{value.total_seconds()}s"


def parse_duration(value: object, low: timedelta, high: timedelta) -> timedelta:
    """A number of seconds or a string with a unit, from `low` to `high` inclusive."""
    if isinstance(value, timedelta):
        result = value
    else:
        seconds = _seconds(value)
        # Compared as floats first: timedelta() overflows on 99999999999d or .inf.
        if seconds > high.total_seconds():
            raise ValueError(f"must be at most {format_duration(high)}")
        if seconds < low.total_seconds():
            raise ValueError(f"must be at least {format_duration(low)}")
        result = timedelta(seconds=seconds)
    # Again after rounding to microseconds, which turns 0.0000001 into 0.
    if result < low:
        raise ValueError(f"must be at least {format_duration(low)}")
    if result > high:
        raise ValueError(f"must be at most {format_duration(high)}")
    return result


def between(low: timedelta, high: timedelta) -> BeforeValidator:
    """Annotated metadata for a duration field: `Annotated[timedelta, between(a, b)]`."""
    return BeforeValidator(lambda value: parse_duration(value, low, high))


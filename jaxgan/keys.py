"""What a config key is: its default, its meaning and which values it allows (pure Python, no JAX).

The constructors below (`integer`, `number`, `choice`, `boolean`, `text`) declare one key each;
jaxgan.config holds the keys every run has and jaxgan.families each model family's own.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

# Channels and vector sizes above this cannot fit any device: one 3x3 convolution between two
# layers this wide is 2^16 * 2^16 * 9 * 4 bytes = 144 GiB of float32 (before Adam's two moments).
MAX_WIDTH = 2**16


@dataclasses.dataclass(frozen=True)
class Key:
    default: Any
    help: str
    allowed: str                       # what the error message says is allowed
    ok: Callable[[Any], bool]          # whether a value (of the right type) is allowed
    bad: Any = None                    # a value `ok` refuses, for the test that every key is checked


def is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def power_of_two(v) -> bool:
    """A side or a feature-map size jaxgan takes: a power of two from 8 to 1024."""
    return is_int(v) and 8 <= v <= 1024 and v & (v - 1) == 0


def integer(default, help, low=0, high=None) -> Key:
    allowed = f"an integer >= {low}" + (f" and <= {high}" if high is not None else "")
    return Key(default, help, allowed,
               lambda v: is_int(v) and v >= low and (high is None or v <= high), low - 1)


def number(default, help, low=0.0, high=None, low_open=False, high_open=False) -> Key:
    lo = f"> {low}" if low_open else f">= {low}"
    hi = "" if high is None else (f" and < {high}" if high_open else f" and <= {high}")

    def ok(v):
        if not is_number(v) or (v <= low if low_open else v < low):
            return False
        return high is None or (v < high if high_open else v <= high)
    return Key(default, help, f"a number {lo}{hi}", ok, low - 1.0)


def choice(default, help, *values, bad="nonsense") -> Key:
    return Key(default, help, "one of " + ", ".join(repr(v) for v in values),
               lambda v: v in values, bad)


def boolean(default, help) -> Key:
    return Key(default, help, "True or False", lambda v: isinstance(v, bool), "maybe")


def text(default, help, allowed="a string", ok=lambda v: True, bad=None) -> Key:
    return Key(default, help, allowed, lambda v: isinstance(v, str) and ok(v), bad)

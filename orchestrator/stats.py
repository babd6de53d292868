"""Percentiles, one definition for the benchmark and the operator console."""

from __future__ import annotations

from collections.abc import Sequence


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """The value at rank ``fraction`` of the way through ``ordered`` (sorted, not
    empty), rounded to the nearest rank: no interpolation, so every answer is a value
    that was measured."""
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]

"""The one error body every service and the gateway answer with."""

from __future__ import annotations

import attrs

from contracts.converter import Problem


@attrs.frozen
class ErrorBody:
    """``code`` is stable and machine-readable; ``title`` and ``description`` are for people.

    ``step``, ``reason`` and ``order_id`` are set when the order flow stops at a step.
    """

    code: str
    title: str
    description: str | None = None
    errors: list[Problem] | None = None
    step: int | None = None
    step_name: str | None = None
    reason: str | None = None
    order_id: str | None = None
    service: str | None = None

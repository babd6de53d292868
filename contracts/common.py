"""Bodies shared by every service: health and readiness."""

from __future__ import annotations

import attrs


@attrs.frozen
class Health:
    status: str
    service: str


@attrs.frozen
class Readiness:
    status: str
    service: str
    checks: dict[str, str]

"""Routes as the contracts write them."""

from __future__ import annotations

import functools
import re

_CONVERTER = re.compile(r"\{(\w+):[^}]*\}")


# Templates are the app's own routes: a small, fixed set.
@functools.lru_cache(maxsize=256)
def plain_template(template: str | None) -> str:
    """A route as the contract writes it: "/orders/{order_id:uuid}" is "/orders/{order_id}"."""
    return _CONVERTER.sub(r"{\1}", template or "")

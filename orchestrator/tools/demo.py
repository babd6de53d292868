"""The guided demo: the user's scenario, step by step, against a running gateway."""

from __future__ import annotations

import json
import secrets
import sys
from typing import Any

import requests

TIMEOUT = 10


def _show(title: str, resp: requests.Response, keys: tuple[str, ...] = ()) -> Any:
    body = resp.json() if resp.content else None
    shown = {k: body[k] for k in keys if isinstance(body, dict) and k in body} if keys else body
    print(f"\n== {title}\n   -> {resp.status_code}  {json.dumps(shown, ensure_ascii=False)[:600]}")
    timing = resp.headers.get("Server-Timing")
    if timing and "s3;" in timing:
        print(f"   Server-Timing: {timing}")
    return body


def run_demo(gateway: str) -> int:
    base = gateway.rstrip("/")
    http = requests.Session()
    http.trust_env = False
    login = f"demo-{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(12)
    print(f"Walking the order scenario against {base} as {login}")
    try:
        user = _show(
            "1. Register: Auth creates the user, then the profile (Profiles) and the wallet (Billing)",
            http.post(
                f"{base}/auth/register",
                timeout=TIMEOUT,
                json={
                    "login": login,
                    "password": password,
                    "email": f"{login}@example.com",
                    "first_name": "Demo",
                    "last_name": "Customer",
                },
            ),
        )
        token = _show(
            "2. Log in: a signed JWT",
            http.post(f"{base}/auth/login", timeout=TIMEOUT, json={"login": login, "password": password}),
            ("token_type", "expires_in"),
        )
        http.headers["Authorization"] = f"Bearer {token['access_token']}"
        _show(
            "3. Top up the wallet by 150.00",
            http.post(f"{base}/wallet/deposits", json={"amount": 15000}, timeout=TIMEOUT),
        )
        paid = _show(
            "4. An order the wallet covers (2 x 49.90): the eleven steps end 'paid', happy letter",
            http.post(
                f"{base}/orders",
                timeout=TIMEOUT,
                json={
                    "user_id": user["id"],
                    "currency": "RUB",
                    "items": [{"name": "Tea", "quantity": 2, "price": 4990}],
                },
            ),
        )
        cancelled = _show(
            "5. An order it cannot cover (1000.00): Billing says 406, the order ends 'cancelled', sad letter",
            http.post(
                f"{base}/orders",
                timeout=TIMEOUT,
                json={
                    "user_id": user["id"],
                    "currency": "RUB",
                    "items": [{"name": "Samovar", "quantity": 1, "price": 100000}],
                },
            ),
        )
        _show("6. The wallet: untouched by the cancelled order", http.get(f"{base}/wallet", timeout=TIMEOUT))
        orders = _show("7. My orders", http.get(f"{base}/orders", timeout=TIMEOUT))
        letters = _show("8. My letters", http.get(f"{base}/letters", timeout=TIMEOUT))
        stranger = _show(
            "9. Someone else's order reads as 404",
            http.get(f"{base}/orders/00000000-0000-4000-8000-000000000000", timeout=TIMEOUT),
        )
    except (requests.RequestException, KeyError, TypeError) as exc:
        print(f"\ndemo stopped: {exc}", file=sys.stderr)
        return 1
    ok = (
        paid["order"]["status"] == "paid"
        and cancelled["order"]["status"] == "cancelled"
        and len(orders["items"]) == 2
        and sorted(letter["kind"] for letter in letters["items"]) == ["happy", "sad"]
        and stranger["code"] == "not_found"
    )
    print("\nThe scenario went as designed." if ok else "\nThe scenario did NOT go as designed.")
    return 0 if ok else 1

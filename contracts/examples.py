"""Examples of every wire class, as real instances: one customer's story told once.

Anna registers, tops up 100.00 RUB, buys two packs of tea (paid, happy letter) and then
a samovar her wallet cannot cover (cancelled, sad letter). The OpenAPI documents show
these bodies, and the consumer tests serve them from WireMock stubs, so an example that
stops matching its class fails to build here, not somewhere downstream.
"""

from __future__ import annotations

from typing import Any

from contracts import auth, billing, gateway, notifications, orders, profiles
from contracts.converter import Problem, unstructure
from contracts.errors import ErrorBody

USER_ID = "3f2c8a4e-5b1d-4c6e-9a7f-2d8e1b0c4a51"
PAID_ORDER_ID = "7b9e2f14-8c3a-4d5b-a1e6-0f4c2d9b8a73"
CANCELLED_ORDER_ID = "c41d7a0e-2b6f-4e19-8d53-9a1f6e2c7b08"
DEPOSIT_ID = "5e8a1c3d-7f2b-4a69-b0d4-3c9e8f1a2b76"
PAYMENT_OPERATION_ID = "9d4f2a6b-1e8c-4b37-a5f0-6c2d9e3b7a14"
PAYMENT_ID = "e2b7c9a1-4d6f-4803-9b2e-7a5c1f8d3e60"
DECLINED_PAYMENT_ID = "1a6e9c2f-8b4d-4f07-a3c5-d9e2b7f0c148"
HAPPY_LETTER_ID = "b8f3d1e7-6a2c-4c95-8e0b-4f7a2d9c1e35"
SAD_LETTER_ID = "f0c5a9d2-3e7b-4a18-b6d4-8c1e5f2a9b73"
KID = "kTq1yV9c3hV5o0X8mJ2pWcF4dRzL6nB7sA0eG1uI2hY"

REGISTERED = "2025-03-14T09:12:05.118204Z"
DEPOSITED = "2025-03-14T09:14:40.502311Z"
PAID_CREATED = "2025-03-14T09:20:11.030466Z"
PAID_UPDATED = "2025-03-14T09:20:11.061873Z"
CANCELLED_CREATED = "2025-03-14T09:31:52.774120Z"
CANCELLED_UPDATED = "2025-03-14T09:31:52.801657Z"

TEA = orders.Item(name="Tea", quantity=2, price=2500)
SAMOVAR = orders.Item(name="Samovar", quantity=1, price=900000)
INSUFFICIENT_FUNDS = "Insufficient funds"

# Auth
REGISTRATION = auth.Registration(
    login="anna", password="correct horse battery", email="anna@example.com", first_name="Anna", last_name="Karenina"
)
USER = auth.User(
    id=USER_ID,
    login="anna",
    email="anna@example.com",
    first_name="Anna",
    last_name="Karenina",
    created_at=REGISTERED,
)
CREDENTIALS = auth.Credentials(login="anna", password="correct horse battery")
ACCESS_TOKEN = auth.AccessToken(
    access_token=(
        "eyJhbGciOiJFZERTQSIsImtpZCI6ImtUcTF5VjljM2hWNW8wWDhtSjJwV2NGNGRSekw2bkI3c0EwZUcxdUkyaFkiLCJ0eXAiOiJKV1QifQ"
        ".eyJpc3MiOiJzeW5jb3JkZXJzLWF1dGgiLCJhdWQiOiJzeW5jb3JkZXJzIiwic3ViIjoiM2YyYzhhNGUtNWIxZC00YzZlLTlhN2YtMmQ4"
        "ZTFiMGM0YTUxIiwibG9naW4iOiJhbm5hIiwiaWF0IjoxNzQxOTQzNTAwLCJuYmYiOjE3NDE5NDM1MDAsImV4cCI6MTc0MTk0NDQwMH0"
        ".Zq3mY8dW0vJ2bC6xK9pN1rT4uE7sA5gH3fL0iO8yV2cB6nM9qX1wR4tD7zS0aF3jG5kP8hU2eI6oL9vC1xY4Dg"
    ),
    token_type="Bearer",
    expires_in=900,
)
JWKS = auth.Jwks(
    keys=[
        auth.Jwk(
            kty="OKP", crv="Ed25519", x="11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", kid=KID, alg="EdDSA", use="sig"
        )
    ]
)

# Profiles
PROFILE_DATA = profiles.ProfileData(email="anna@example.com", first_name="Anna", last_name="Karenina")
PROFILE = profiles.Profile(
    user_id=USER_ID,
    email="anna@example.com",
    first_name="Anna",
    last_name="Karenina",
    created_at=REGISTERED,
    updated_at=REGISTERED,
)

# Orders
NEW_ORDER = orders.NewOrder(
    user_id=USER_ID, items=[TEA], currency="RUB", idempotency_key="order-1", run_id="8c1f0e4b9a2d4e7f-3b6a1c9d"
)
PENDING_ORDER = orders.Order(
    id=PAID_ORDER_ID,
    user_id=USER_ID,
    items=[TEA],
    total=5000,
    currency="RUB",
    status="pending",
    reason=None,
    payment_id=None,
    created_at=PAID_CREATED,
    updated_at=PAID_CREATED,
)
PENDING_SAMOVAR = orders.Order(
    id=CANCELLED_ORDER_ID,
    user_id=USER_ID,
    items=[SAMOVAR],
    total=900000,
    currency="RUB",
    status="pending",
    reason=None,
    payment_id=None,
    created_at=CANCELLED_CREATED,
    updated_at=CANCELLED_CREATED,
)
PAID_ORDER = orders.Order(
    id=PAID_ORDER_ID,
    user_id=USER_ID,
    items=[TEA],
    total=5000,
    currency="RUB",
    status="paid",
    reason=None,
    payment_id=PAYMENT_ID,
    created_at=PAID_CREATED,
    updated_at=PAID_UPDATED,
)
CANCELLED_ORDER = orders.Order(
    id=CANCELLED_ORDER_ID,
    user_id=USER_ID,
    items=[SAMOVAR],
    total=900000,
    currency="RUB",
    status="cancelled",
    reason=INSUFFICIENT_FUNDS,
    payment_id=None,
    created_at=CANCELLED_CREATED,
    updated_at=CANCELLED_UPDATED,
)
PAID = orders.StatusChange(status="paid", payment_id=PAYMENT_ID)
CANCELLED = orders.StatusChange(status="cancelled", reason=INSUFFICIENT_FUNDS)

# Billing
NEW_WALLET = billing.NewWallet(currency="RUB")
EMPTY_WALLET = billing.Wallet(user_id=USER_ID, balance=0, currency="RUB", created_at=REGISTERED)
WALLET = billing.Wallet(user_id=USER_ID, balance=5000, currency="RUB", created_at=REGISTERED)
DEPOSIT = billing.Deposit(amount=10000, idempotency_key="topup-1")
DEPOSIT_OPERATION = billing.WalletOperation(
    id=DEPOSIT_ID,
    user_id=USER_ID,
    kind="deposit",
    amount=10000,
    currency="RUB",
    balance_after=10000,
    order_id=None,
    created_at=DEPOSITED,
)
PAYMENT_OPERATION = billing.WalletOperation(
    id=PAYMENT_OPERATION_ID,
    user_id=USER_ID,
    kind="payment",
    amount=5000,
    currency="RUB",
    balance_after=5000,
    order_id=PAID_ORDER_ID,
    created_at=PAID_UPDATED,
)
DEPOSIT_RESULT = billing.DepositResult(
    operation=DEPOSIT_OPERATION,
    wallet=billing.Wallet(user_id=USER_ID, balance=10000, currency="RUB", created_at=REGISTERED),
)
PAYMENT_REQUEST = billing.PaymentRequest(order_id=PAID_ORDER_ID, user_id=USER_ID, amount=5000, currency="RUB")
PAYMENT = billing.Payment(
    id=PAYMENT_ID,
    order_id=PAID_ORDER_ID,
    user_id=USER_ID,
    amount=5000,
    currency="RUB",
    outcome="debited",
    reason=None,
    operation=PAYMENT_OPERATION,
    created_at=PAID_UPDATED,
)
DECLINED_PAYMENT = billing.Payment(
    id=DECLINED_PAYMENT_ID,
    order_id=CANCELLED_ORDER_ID,
    user_id=USER_ID,
    amount=900000,
    currency="RUB",
    outcome="declined",
    reason=INSUFFICIENT_FUNDS,
    operation=None,
    created_at=CANCELLED_UPDATED,
    reason_code="insufficient_funds",
)

# Notifications
PAID_LETTER_REQUEST = notifications.LetterRequest(
    order_id=PAID_ORDER_ID, user_id=USER_ID, status="paid", total=5000, currency="RUB"
)
CANCELLED_LETTER_REQUEST = notifications.LetterRequest(
    order_id=CANCELLED_ORDER_ID,
    user_id=USER_ID,
    status="cancelled",
    total=900000,
    currency="RUB",
    reason=INSUFFICIENT_FUNDS,
)
HAPPY_LETTER = notifications.Letter(
    id=HAPPY_LETTER_ID,
    order_id=PAID_ORDER_ID,
    user_id=USER_ID,
    kind="happy",
    recipient="anna@example.com",
    subject=f"Your order {PAID_ORDER_ID} is paid",
    body=f"Hello Anna,\n\nyour order {PAID_ORDER_ID} for 50.00 RUB is paid. Thank you!\n",
    delivery="sent",
    created_at=PAID_UPDATED,
)
SAD_LETTER = notifications.Letter(
    id=SAD_LETTER_ID,
    order_id=CANCELLED_ORDER_ID,
    user_id=USER_ID,
    kind="sad",
    recipient="anna@example.com",
    subject=f"Your order {CANCELLED_ORDER_ID} was cancelled",
    body=(
        f"Hello Anna,\n\nwe are sorry: your order {CANCELLED_ORDER_ID} for 9000.00 RUB was cancelled "
        "(Insufficient funds). No money was taken.\n"
    ),
    delivery="sent",
    created_at=CANCELLED_UPDATED,
)

# Gateway
PAID_ORDER_REQUEST = gateway.OrderRequest(user_id=USER_ID, items=[TEA], currency="RUB")
CANCELLED_ORDER_REQUEST = gateway.OrderRequest(user_id=USER_ID, items=[SAMOVAR], currency="RUB")
PAID_RESULT = gateway.OrderResult(order=PAID_ORDER, payment=PAYMENT_OPERATION, letter_id=HAPPY_LETTER_ID)
DEPOSIT_REQUEST = gateway.DepositRequest(amount=10000)
CANCELLED_RESULT = gateway.OrderResult(order=CANCELLED_ORDER, payment=None, letter_id=SAD_LETTER_ID)

# Named examples of each class; the first is the one a stub serves by default.
EXAMPLES: dict[type, dict[str, Any]] = {
    auth.Registration: {"anna": REGISTRATION},
    auth.User: {"anna": USER},
    auth.Credentials: {"anna": CREDENTIALS},
    auth.AccessToken: {"bearer": ACCESS_TOKEN},
    auth.Jwks: {"one_key": JWKS},
    profiles.ProfileData: {"anna": PROFILE_DATA},
    profiles.Profile: {"anna": PROFILE},
    orders.NewOrder: {"tea": NEW_ORDER},
    orders.StatusChange: {"paid": PAID, "cancelled": CANCELLED},
    orders.Order: {
        "pending": PENDING_ORDER,
        "paid": PAID_ORDER,
        "pending_samovar": PENDING_SAMOVAR,
        "cancelled": CANCELLED_ORDER,
    },
    orders.OrderPage: {
        "newest_first": orders.OrderPage(items=[CANCELLED_ORDER, PAID_ORDER], limit=20, offset=0),
        "more_to_come": orders.OrderPage(items=[CANCELLED_ORDER], limit=1, offset=0, next_before=CANCELLED_ORDER.id),
    },
    billing.NewWallet: {"rub": NEW_WALLET},
    billing.Wallet: {"after_payment": WALLET, "new": EMPTY_WALLET},
    billing.OperationPage: {
        "newest_first": billing.OperationPage(items=[PAYMENT_OPERATION, DEPOSIT_OPERATION], limit=20, offset=0),
        "more_to_come": billing.OperationPage(
            items=[PAYMENT_OPERATION], limit=1, offset=0, next_before=PAYMENT_OPERATION.id
        ),
    },
    billing.Deposit: {"with_key": DEPOSIT, "without_key": billing.Deposit(amount=10000)},
    billing.DepositResult: {"topped_up": DEPOSIT_RESULT},
    billing.PaymentRequest: {"tea": PAYMENT_REQUEST},
    billing.Abandonment: {
        "tea": billing.Abandonment(user_id=USER_ID, amount=PAYMENT_REQUEST.amount, currency=PAYMENT_REQUEST.currency)
    },
    billing.Payment: {"debited": PAYMENT, "declined": DECLINED_PAYMENT},
    notifications.LetterRequest: {"paid": PAID_LETTER_REQUEST, "cancelled": CANCELLED_LETTER_REQUEST},
    notifications.Letter: {"happy": HAPPY_LETTER, "sad": SAD_LETTER},
    notifications.LetterPage: {
        "newest_first": notifications.LetterPage(items=[SAD_LETTER, HAPPY_LETTER], limit=20, offset=0),
        "more_to_come": notifications.LetterPage(items=[SAD_LETTER], limit=1, offset=0, next_before=SAD_LETTER.id),
    },
    gateway.OrderRequest: {"tea": PAID_ORDER_REQUEST, "samovar": CANCELLED_ORDER_REQUEST},
    gateway.DepositRequest: {"hundred_rub": DEPOSIT_REQUEST},
    gateway.OrderResult: {"paid": PAID_RESULT, "cancelled": CANCELLED_RESULT},
}


def _error(code: str, title: str, description: str | None = None, **extra: Any) -> ErrorBody:
    return ErrorBody(code=code, title=title, description=description, **extra)


# Errors any operation answering the status may give; an operation's own list below
# replaces the entry for its status.
ERRORS: dict[int, dict[str, ErrorBody]] = {
    400: {"malformed_json": _error("malformed_json", "Invalid JSON", "Could not parse JSON body")},
    401: {"unauthorized": _error("unauthorized", "Service credential required")},
    403: {"forbidden": _error("forbidden", "Not an allowed call", "auth may not call GET /orders/{order_id}.")},
    404: {"not_found": _error("not_found", "Not found", "No such order.")},
    409: {"conflict": _error("status_conflict", "Order already final", "The order is already paid.")},
    413: {
        "payload_too_large": _error("payload_too_large", "Request body too large", "At most 65536 bytes are accepted.")
    },
    415: {"not_json": _error("unsupported_media_type", "Send JSON", "Content-Type must be application/json.")},
    422: {
        "validation_failed": _error(
            "validation_failed",
            "Invalid request body",
            "One or more fields are missing or invalid.",
            errors=[Problem("$.items[0].price", "must be a positive integer of minor units, at most 1000000000000")],
        )
    },
    429: {
        "throttled": _error(
            "too_many_attempts", "Too many failed logins", "Too many failed logins; try again in 240 s."
        )
    },
    500: {"internal": _error("internal_error", "Internal error", "The service failed; the request ID is in the logs.")},
    502: {
        "bad_response": _error(
            "profiles_bad_response",
            "Profiles did not answer as expected",
            "not JSON (text/html)",
            service="profiles",
        )
    },
    503: {
        "database_busy": _error("database_busy", "Database busy", "Try again shortly."),
        "database_unavailable": _error(
            "database_unavailable",
            "Database unavailable",
            "The service cannot reach its database; try again shortly.",
        ),
    },
    504: {
        "timeout": _error(
            "profiles_timeout", "Profiles did not answer as expected", "read timed out", service="profiles"
        )
    },
}


def _flow_stopped(number: int, name: str, reason: str, target: str, order_id: str | None) -> ErrorBody:
    kept = (
        "; no order was created. Send the same request again."
        if order_id is None
        else f". Order {order_id} is kept; send the same request with the same Idempotency-Key again to finish it, "
        "or an operator's recovery will."
    )
    return _error(
        f"{name}_failed",
        f"Order flow stopped at step {number} ({name})",
        f"{target} {reason.replace('_', ' ')}{kept}",
        step=number,
        step_name=name,
        reason=reason,
        order_id=order_id,
        service=target,
    )


_BAD_TOKEN = _error("invalid_token", "Invalid access token", "Signature has expired")
_DOWNSTREAM = {
    502: {"billing_bad_response": ERRORS[502]["bad_response"]},
    503: {
        "billing_unavailable": _error(
            "billing_unavailable", "Billing did not answer as expected", "connection refused", service="billing"
        )
    },
    504: {"billing_timeout": ERRORS[504]["timeout"]},
}

# (service, operation name) -> status -> named error bodies.
OPERATION_ERRORS: dict[tuple[str, str], dict[int, dict[str, ErrorBody]]] = {
    ("billing", "pay"): {
        406: {
            "insufficient_funds": _error(
                "insufficient_funds", INSUFFICIENT_FUNDS, f"Payment for order {CANCELLED_ORDER_ID} was declined."
            ),
            "currency_mismatch": _error(
                "currency_mismatch",
                "Currency mismatch: the wallet holds RUB",
                f"Payment for order {CANCELLED_ORDER_ID} was declined.",
            ),
        },
        404: {"no_wallet": _error("no_wallet", "No wallet for this customer", "No wallet for this user.")},
        409: {
            "other_terms": _error(
                "payment_conflict",
                "Another payment exists for this order",
                "A payment with other terms exists for this order.",
            )
        },
    },
    ("auth", "register"): {409: {"login_taken": _error("login_taken", "Login taken", "This login is taken.")}},
    ("gateway", "register"): {409: {"login_taken": _error("login_taken", "Login taken", "This login is taken.")}},
    ("auth", "login"): {
        401: {"invalid_credentials": _error("invalid_credentials", "Invalid credentials", "Wrong login or password.")},
        409: {
            "registration_incomplete": _error(
                "registration_incomplete",
                "Registration incomplete",
                "Registration is not finished: send the same registration again.",
            )
        },
    },
    ("gateway", "login"): {
        401: {"invalid_credentials": _error("invalid_credentials", "Invalid credentials", "Wrong login or password.")},
        409: {
            "registration_incomplete": _error(
                "registration_incomplete",
                "Registration incomplete",
                "Registration is not finished: send the same registration again.",
            )
        },
    },
    ("orders", "create_order"): {
        409: {
            "in_progress": _error(
                "in_progress",
                "Order creation in progress",
                "This order is being created by another request; retry shortly.",
            )
        }
    },
    ("notifications", "send_letter"): {
        404: {
            "no_profile": _error(
                "profile_not_found",
                "No contact data for the customer",
                "Profiles has no contact data for this customer.",
            )
        }
    },
    ("gateway", "create_order"): {
        401: {"invalid_token": _BAD_TOKEN},
        403: {
            "not_the_owner": _error(
                "forbidden", "Not your order to create", "Orders can only be created in the name of the token's owner."
            )
        },
        409: {
            "in_progress": _error(
                "in_progress",
                "This order is being created by another request; retry shortly.",
                order_id=None,
            )
        },
        502: {"pay_refused": _flow_stopped(5, "pay", "server_error", "billing", PAID_ORDER_ID)},
        503: {"orders_unavailable": _flow_stopped(3, "create_order", "unavailable", "orders", None)},
        504: {"status_timeout": _flow_stopped(7, "update_status", "timeout", "orders", PAID_ORDER_ID)},
    },
}
for _name in ("get_profile", "get_wallet", "list_operations", "deposit", "list_orders", "get_order"):
    OPERATION_ERRORS[("gateway", _name)] = {401: {"invalid_token": _BAD_TOKEN}, **_DOWNSTREAM}
for _name in ("list_letters", "get_letter"):
    OPERATION_ERRORS[("gateway", _name)] = {401: {"invalid_token": _BAD_TOKEN}}


def bodies(cls: type) -> dict[str, Any]:
    """The named examples of a wire class."""
    return EXAMPLES[cls]


def errors(service: str, operation: str, status: int) -> dict[str, ErrorBody]:
    """The named error bodies an operation answers with ``status``."""
    return OPERATION_ERRORS.get((service, operation), {}).get(status) or ERRORS[status]


def response_examples(service: str, operation: str, status: int, cls: Any) -> dict[str, Any]:
    if cls is ErrorBody:
        return errors(service, operation, status)
    return EXAMPLES[cls]


def wire(obj: Any) -> Any:
    """An example as it travels: unstructured by the converter; an error body without
    its unset fields, as the services' error serializer sends it."""
    data = unstructure(obj)
    if isinstance(obj, ErrorBody):
        data = {key: value for key, value in data.items() if value is not None}
    return data

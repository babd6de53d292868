"""In-memory stand-ins for the services' typed clients, for running the gateway's flow
and app in-process: no ports, no processes, no Java.

Each fake keeps its service's rules (one order per user and key, one payment decision per
order, one letter per order and status) and answers with the statuses and bodies its
contract documents: every answer is checked against the operation table and passed
through the one converter, as a real client would structure it. A test breaks a call
with :meth:`Fake.fail`: the next calls of that operation raise the
:class:`DownstreamError` a real client raises for that reason, before or after the
service did the work, or answer a documented refusal.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
import uuid
from typing import Any

import attrs
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contracts import auth, billing, notifications, orders, profiles
from contracts import vocabulary as words
from contracts.converter import structure, unstructure
from contracts.errors import ErrorBody
from contracts.operations import Operation
from services.auth.keys import _b64url, _public_bytes, thumbprint
from services.common.clock import iso, utcnow
from services.common.http import DownstreamError, Reply
from services.common.logs import request_id_var

# How long a fake callee says it took (Server-Timing), so step times can be checked.
SERVER_MS = 0.5
# The claims the gateway's default settings expect of an access token.
ISSUER, AUDIENCE = "syncorders-auth", "syncorders"


@attrs.define
class Fault:
    """How the next ``times`` calls of an operation fail: ``reason`` raises the client's
    error (``after``: once the service did the work, as a lost answer does), ``status``
    answers that documented refusal instead."""

    reason: str | None = None
    after: bool = False
    status: int | None = None
    code: str = "refused"
    times: int = 1


class Fake:
    """The common part: the operation table, the faults, the calls heard."""

    SERVICE = ""
    OPERATIONS: tuple[Operation, ...] = ()

    def __init__(self) -> None:
        self.faults: dict[str, Fault] = {}
        self.calls: list[tuple[str, Any]] = []
        # The request ID each call carried, as a real client sends it.
        self.request_ids: list[str] = []
        self.lock = threading.Lock()

    def fail(self, operation: str, reason: str | None = None, **how: Any) -> None:
        assert any(op.name == operation for op in self.OPERATIONS), operation
        self.faults[operation] = Fault(reason, **how)

    def _before(self, operation: str, argument: Any) -> Fault | None:
        self.calls.append((operation, argument))
        self.request_ids.append(request_id_var.get())
        fault = self.faults.get(operation)
        if fault is None:
            return None
        fault.times -= 1
        if fault.times <= 0:
            del self.faults[operation]
        if fault.reason is not None and not fault.after:
            raise DownstreamError(self.SERVICE, fault.reason, f"{operation}: {fault.reason} (fake)")
        return fault

    def _answer(self, operation: str, status: int, body: Any, fault: Fault | None = None) -> Reply:
        """The answer as the real client would give it: a documented status, the body
        structured by the contract, a refusal as its error body."""
        if fault is not None and fault.reason is not None:
            raise DownstreamError(self.SERVICE, fault.reason, f"{operation}: answer lost, {fault.reason} (fake)")
        if fault is not None and fault.status is not None:
            status, body = fault.status, ErrorBody(code=fault.code, title=f"{operation} refused (fake)")
        op = next(op for op in self.OPERATIONS if op.name == operation)
        assert status in op.responses, f"{self.SERVICE} does not document {status} for {operation}"
        expected = op.responses[status]
        data = None if expected is None else structure(unstructure(body), expected)
        error = data if isinstance(data, ErrorBody) else None
        return Reply(status, None if error else data, error, server_ms=SERVER_MS)

    def _refusal(self, operation: str, status: int, code: str, title: str, fault: Fault | None) -> Reply:
        return self._answer(operation, status, ErrorBody(code=code, title=title), fault)


def _page(items: list[Any], limit: int, offset: int, before: str | None = None) -> tuple[list[Any], str | None]:
    """A page of ``items`` (oldest first) newest first, as the services page them, and
    the next page's ``before``."""
    newest_first = list(reversed(items))
    if before is not None:
        ids = [item.id for item in newest_first]
        newest_first = newest_first[ids.index(before) + 1 :] if before in ids else []
    page = newest_first[offset : offset + limit + 1]
    return page[:limit], page[limit - 1].id if len(page) > limit else None


class FakeOrders(Fake):
    SERVICE = "orders"
    OPERATIONS = orders.OPERATIONS

    def __init__(self) -> None:
        super().__init__()
        self.orders: dict[str, orders.Order] = {}
        self.keys: dict[tuple[str, str], tuple[str, str]] = {}
        self.claims: dict[str, str] = {}

    def create_order(self, data: orders.NewOrder) -> Reply:
        fault = self._before("create_order", data)
        with self.lock:
            items = unstructure(data.items)
            fingerprint = hashlib.sha256(json.dumps([items, data.currency], sort_keys=True).encode()).hexdigest()
            known = self.keys.get((data.user_id, data.idempotency_key))
            if known is not None:
                order_id, printed = known
                if printed != fingerprint:
                    return self._refusal("create_order", 422, "idempotency_key_reused", "Key reused", fault)
                order = self.orders[order_id]
                if order.status == words.PENDING:
                    holder = self.claims.get(order_id)
                    if holder not in (None, data.run_id):
                        return self._refusal("create_order", 409, "in_progress", "In progress", fault)
                    self.claims[order_id] = data.run_id
                return self._answer("create_order", 200, order, fault)
            now = iso(utcnow())
            order = orders.Order(
                id=str(uuid.uuid4()),
                user_id=data.user_id,
                items=data.items,
                total=sum(item.quantity * item.price for item in data.items),
                currency=data.currency,
                status=words.PENDING,
                reason=None,
                payment_id=None,
                created_at=now,
                updated_at=now,
            )
            self.orders[order.id] = order
            self.keys[(data.user_id, data.idempotency_key)] = (order.id, fingerprint)
            self.claims[order.id] = data.run_id
            return self._answer("create_order", 201, order, fault)

    def set_status(self, order_id: str, change: orders.StatusChange) -> Reply:
        fault = self._before("set_status", (order_id, change))
        with self.lock:
            order = self.orders.get(order_id)
            if order is None:
                return self._refusal("set_status", 404, "not_found", "Not found", fault)
            if order.status == words.PENDING:
                order = attrs.evolve(
                    order,
                    status=change.status,
                    reason=change.reason,
                    payment_id=change.payment_id,
                    updated_at=iso(utcnow()),
                )
                self.orders[order_id] = order
                self.claims.pop(order_id, None)
            elif order.status != change.status:
                return self._refusal("set_status", 409, "status_conflict", "Order already final", fault)
            return self._answer("set_status", 200, order, fault)

    def release_order(self, order_id: str, run_id: str) -> Reply:
        fault = self._before("release_order", (order_id, run_id))
        with self.lock:
            if order_id not in self.orders:
                return self._refusal("release_order", 404, "not_found", "Not found", fault)
            if self.claims.get(order_id) == run_id:
                del self.claims[order_id]
            return self._answer("release_order", 204, None, fault)

    def get_order(self, order_id: str) -> Reply:
        fault = self._before("get_order", order_id)
        order = self.orders.get(order_id)
        if order is None:
            return self._refusal("get_order", 404, "not_found", "Not found", fault)
        return self._answer("get_order", 200, order, fault)

    def list_orders(self, limit: int = 20, offset: int = 0, before: str | None = None, **query: Any) -> Reply:
        fault = self._before("list_orders", query)
        found = [
            order
            for order in self.orders.values()
            if query.get("user_id") in (None, order.user_id) and query.get("status") in (None, order.status)
        ]
        items, following = _page(found, limit, offset, before)
        page = orders.OrderPage(items=items, limit=limit, offset=offset, next_before=following)
        return self._answer("list_orders", 200, page, fault)


class FakeBilling(Fake):
    SERVICE = "billing"
    OPERATIONS = billing.OPERATIONS

    def __init__(self) -> None:
        super().__init__()
        self.wallets: dict[str, billing.Wallet] = {}
        self.operations: list[billing.WalletOperation] = []
        self.payments: dict[str, billing.Payment] = {}

    def give_wallet(self, user_id: str, currency: str, balance: int = 0) -> billing.Wallet:
        """A customer's wallet as registration leaves it, with a balance."""
        wallet = billing.Wallet(user_id=user_id, balance=balance, currency=currency, created_at=iso(utcnow()))
        self.wallets[user_id] = wallet
        return wallet

    def open_wallet(self, user_id: str, currency: str) -> Reply:
        fault = self._before("open_wallet", (user_id, currency))
        with self.lock:
            known = self.wallets.get(user_id)
            if known is not None:
                if known.currency != currency:
                    return self._refusal("open_wallet", 409, words.CURRENCY_MISMATCH, "Other currency", fault)
                return self._answer("open_wallet", 200, known, fault)
            return self._answer("open_wallet", 201, self.give_wallet(user_id, currency), fault)

    def get_wallet(self, user_id: str) -> Reply:
        fault = self._before("get_wallet", user_id)
        wallet = self.wallets.get(user_id)
        if wallet is None:
            return self._refusal("get_wallet", 404, words.NO_WALLET, "No wallet for this customer", fault)
        return self._answer("get_wallet", 200, wallet, fault)

    def debits(self, order_id: str) -> list[billing.WalletOperation]:
        return [op for op in self.operations if op.order_id == order_id and op.kind == words.PAYMENT]

    def pay(self, data: billing.PaymentRequest) -> Reply:
        fault = self._before("pay", data)
        with self.lock:
            earlier = self.payments.get(data.order_id)
            if earlier is not None:
                if (earlier.user_id, earlier.amount, earlier.currency) != (data.user_id, data.amount, data.currency):
                    return self._refusal("pay", 409, "payment_conflict", "Another payment exists", fault)
                return self._decided("pay", earlier, 200, fault)
            wallet = self.wallets.get(data.user_id)
            if wallet is None:
                return self._refusal("pay", 404, words.NO_WALLET, "No wallet for this customer", fault)
            if wallet.currency != data.currency:
                refusal = (words.CURRENCY_MISMATCH, f"Currency mismatch: the wallet holds {wallet.currency}")
            elif wallet.balance < data.amount:
                refusal = (words.INSUFFICIENT_FUNDS, "Insufficient funds")
            else:
                refusal = None
            return self._decided("pay", self._decide(data, refusal), 201, fault)

    def abandon_payment(self, data: billing.PaymentRequest) -> Reply:
        fault = self._before("abandon_payment", data)
        with self.lock:
            earlier = self.payments.get(data.order_id)
            if earlier is not None:
                return self._answer("abandon_payment", 200, earlier, fault)
            refusal = (words.PAYMENT_ABANDONED, "Abandoned: the order never reached payment")
            return self._answer("abandon_payment", 201, self._decide(data, refusal), fault)

    def _decide(self, data: billing.PaymentRequest, refusal: tuple[str, str] | None) -> billing.Payment:
        now = iso(utcnow())
        operation = None
        if refusal is None:
            wallet = self.wallets[data.user_id]
            wallet = self.wallets[data.user_id] = attrs.evolve(wallet, balance=wallet.balance - data.amount)
            operation = billing.WalletOperation(
                id=str(uuid.uuid4()),
                user_id=data.user_id,
                kind=words.PAYMENT,
                amount=data.amount,
                currency=data.currency,
                balance_after=wallet.balance,
                order_id=data.order_id,
                created_at=now,
            )
            self.operations.append(operation)
        payment = billing.Payment(
            id=str(uuid.uuid4()),
            order_id=data.order_id,
            user_id=data.user_id,
            amount=data.amount,
            currency=data.currency,
            outcome=words.DECLINED if refusal else words.DEBITED,
            reason_code=refusal[0] if refusal else None,
            reason=refusal[1] if refusal else None,
            operation=operation,
            created_at=now,
        )
        self.payments[data.order_id] = payment
        return payment

    def _decided(self, operation: str, payment: billing.Payment, status: int, fault: Fault | None) -> Reply:
        """A decline is the 406 refusal, on the first request and every retry."""
        if payment.outcome == words.DECLINED:
            assert payment.reason_code is not None and payment.reason is not None
            return self._refusal(operation, 406, payment.reason_code, payment.reason, fault)
        return self._answer(operation, status, payment, fault)


class FakeNotifications(Fake):
    SERVICE = "notifications"
    OPERATIONS = notifications.OPERATIONS

    def __init__(self) -> None:
        super().__init__()
        self.letters: dict[tuple[str, str], notifications.Letter] = {}
        self.emails: dict[str, str] = {}

    def send_letter(self, data: notifications.LetterRequest) -> Reply:
        fault = self._before("send_letter", data)
        with self.lock:
            known = self.letters.get((data.order_id, data.status))
            if known is not None:
                return self._answer("send_letter", 200, known, fault)
            email = self.emails.get(data.user_id)
            if email is None:
                return self._refusal("send_letter", 404, "profile_not_found", "No contact data", fault)
            kind = words.HAPPY if data.status == words.PAID else words.SAD
            letter = notifications.Letter(
                id=str(uuid.uuid4()),
                order_id=data.order_id,
                user_id=data.user_id,
                kind=kind,
                recipient=email,
                subject=f"Your order {data.order_id} is {data.status}",
                body="(fake)",
                delivery=words.STORED,
                created_at=iso(utcnow()),
            )
            self.letters[(data.order_id, data.status)] = letter
            return self._answer("send_letter", 201, letter, fault)

    def list_letters(self, limit: int = 20, offset: int = 0, before: str | None = None, **query: Any) -> Reply:
        fault = self._before("list_letters", query)
        found = [letter for letter in self.letters.values() if query.get("user_id") in (None, letter.user_id)]
        items, following = _page(found, limit, offset, before)
        page = notifications.LetterPage(items=items, limit=limit, offset=offset, next_before=following)
        return self._answer("list_letters", 200, page, fault)


class FakeProfiles(Fake):
    SERVICE = "profiles"
    OPERATIONS = profiles.OPERATIONS

    def __init__(self) -> None:
        super().__init__()
        self.profiles: dict[str, profiles.Profile] = {}

    def put_profile(self, user_id: str, data: profiles.ProfileData) -> Reply:
        fault = self._before("put_profile", (user_id, data))
        with self.lock:
            now = iso(utcnow())
            known = self.profiles.get(user_id)
            profile = profiles.Profile(
                user_id=user_id,
                email=data.email,
                first_name=data.first_name,
                last_name=data.last_name,
                created_at=known.created_at if known else now,
                updated_at=now,
            )
            self.profiles[user_id] = profile
            return self._answer("put_profile", 200 if known else 201, profile, fault)

    def get_profile(self, user_id: str) -> Reply:
        fault = self._before("get_profile", user_id)
        profile = self.profiles.get(user_id)
        if profile is None:
            return self._refusal("get_profile", 404, "not_found", "Not found", fault)
        return self._answer("get_profile", 200, profile, fault)


class FakeAuth(Fake):
    """Publishes whichever keys the test puts in ``keys``; counts the fetches."""

    SERVICE = "auth"
    OPERATIONS = auth.OPERATIONS

    def __init__(self, *keys: Ed25519PrivateKey) -> None:
        super().__init__()
        self.keys = list(keys)
        self.down = False
        self.fetches = 0
        # Set by a test that needs a fetch to be in flight: jwks() waits for ``gate``.
        self.fetching = threading.Event()
        self.gate: threading.Event | None = None

    def jwks(self) -> Reply:
        self.fetches += 1
        self.fetching.set()
        if self.gate is not None:
            self.gate.wait(10)
        if self.down:
            raise DownstreamError("auth", words.UNAVAILABLE, "connection refused")
        published = [
            auth.Jwk(
                kty="OKP", crv="Ed25519", x=_b64url(_public_bytes(k.public_key())), kid=kid(k), alg="EdDSA", use="sig"
            )
            for k in self.keys
        ]
        return self._answer("jwks", 200, auth.Jwks(keys=published))

    def health(self) -> Reply:
        return Reply(200, None, None, server_ms=SERVER_MS)

    def token(self, user_id: str, ttl: int = 300) -> str:
        """An access token for ``user_id``, signed by the first published key."""
        key = self.keys[0]
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": user_id,
            "iat": now,
            "nbf": now,
            "exp": now + ttl,
        }
        return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kid(key)})


def kid(key: Ed25519PrivateKey) -> str:
    return thumbprint(key.public_key())


def scrypt_hash(password: str, log2_n: int = 10) -> str:
    """A password hash as Auth wrote it before Argon2id: ``scrypt$<log2 N>$8$1$salt$digest``."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**log2_n, r=8, p=1, dklen=32)
    return f"scrypt${log2_n}$8$1${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"

"""What Billing does, apart from HTTP: wallets, deposits and the one payment decision
per order."""

from __future__ import annotations

import datetime

import attrs
import peewee

from contracts import billing as wire
from contracts import vocabulary as words
from contracts.types import new_id
from services.billing.models import Operation, Payment, Wallet
from services.billing.store import BillingStore
from services.common.db import Page, iso, utcnow
from services.common.errors import NotFound


@attrs.frozen
class Refusal:
    """Why a payment was declined: the code programs decide on, the text people read."""

    code: str
    text: str


INSUFFICIENT_FUNDS = Refusal(words.INSUFFICIENT_FUNDS, "Insufficient funds")
ABANDONED = Refusal(words.PAYMENT_ABANDONED, "Abandoned: the order never reached payment")


def currency_mismatch(wallet_currency: str) -> Refusal:
    return Refusal(words.CURRENCY_MISMATCH, f"Currency mismatch: the wallet holds {wallet_currency}")


class CurrencyMismatch(Exception):
    """A wallet exists in another currency."""


class KeyReused(Exception):
    """An idempotency key came back with a different request."""


class PaymentConflict(Exception):
    """A payment for this order exists with other terms."""


class NoWallet(Exception):
    """The customer has no wallet, so no payment can be decided."""


class Declined(Exception):
    """The payment was refused; the decision is recorded and final for the order."""

    def __init__(self, payment: wire.Payment) -> None:
        super().__init__(payment.reason)
        self.payment = payment


def wallet_to_wire(row: Wallet) -> wire.Wallet:
    return wire.Wallet(user_id=row.user_id, balance=row.balance, currency=row.currency, created_at=iso(row.created_at))


def operation_to_wire(row: Operation) -> wire.WalletOperation:
    return wire.WalletOperation(
        id=row.id,
        user_id=row.user_id,
        kind=row.kind,
        amount=row.amount,
        currency=row.currency,
        balance_after=row.balance_after,
        order_id=row.order_id,
        created_at=iso(row.created_at),
    )


def payment_to_wire(row: Payment, operation: Operation | None) -> wire.Payment:
    return wire.Payment(
        id=row.id,
        order_id=row.order_id,
        user_id=row.user_id,
        amount=row.amount,
        currency=row.currency,
        outcome=row.outcome,
        reason_code=row.reason_code,
        reason=row.reason,
        operation=operation_to_wire(operation) if operation else None,
        created_at=iso(row.created_at),
    )


def open_wallet(store: BillingStore, user_id: str, currency: str) -> tuple[wire.Wallet, bool]:
    """Opening a wallet twice returns the first one: a user never has two."""
    try:
        row = Wallet(user_id=user_id, currency=currency, balance=0, created_at=utcnow())
        with store.transaction():
            store.add(row)
        return wallet_to_wire(row), True
    except peewee.IntegrityError:
        row = _wallet(store, user_id)
    if row.currency != currency:
        raise CurrencyMismatch(f"The wallet exists in {row.currency}.")
    return wallet_to_wire(row), False


def _wallet(store: BillingStore, user_id: str) -> Wallet:
    row = store.wallet(user_id)
    if row is None:
        raise NoWallet("No wallet for this user.")
    return row


def get_wallet(store: BillingStore, user_id: str) -> wire.Wallet:
    return wallet_to_wire(_wallet(store, user_id))


def list_operations(store: BillingStore, user_id: str, page: Page) -> wire.OperationPage:
    _wallet(store, user_id)
    rows, following = store.operations(user_id, page)
    items = [operation_to_wire(row) for row in rows]
    return wire.OperationPage(items=items, limit=page.limit, offset=page.offset, next_before=following)


def deposit(store: BillingStore, user_id: str, request: wire.Deposit) -> tuple[wire.DepositResult, bool]:
    key = request.idempotency_key
    for _attempt in range(2):
        try:
            with store.write_transaction():
                wallet = _wallet(store, user_id)
                if key is not None:
                    earlier = store.keyed_operation(user_id, key)
                    if earlier is not None:
                        if earlier.amount != request.amount or earlier.kind != words.DEPOSIT:
                            raise KeyReused("This Idempotency-Key was used for a different deposit.")
                        return wire.DepositResult(operation_to_wire(earlier), wallet_to_wire(wallet)), False
                operation = store.credit(user_id, request.amount, wallet.currency, key, utcnow())
                if operation is None:
                    raise NoWallet("No wallet for this user.")
                wallet.balance = operation.balance_after
                return wire.DepositResult(operation_to_wire(operation), wallet_to_wire(wallet)), True
        except peewee.IntegrityError:
            # A parallel deposit with the same key won; the next pass returns it.
            continue
    raise KeyReused("This Idempotency-Key is being used by a parallel deposit.")


def pay(store: BillingStore, request: wire.PaymentRequest) -> tuple[wire.Payment, bool]:
    """Step 6. Check the balance and debit it in one conditional update; a second
    request for the same order returns the first decision, never a second debit."""
    for _attempt in range(2):
        try:
            with store.write_transaction():
                earlier = store.decision(request.order_id)
                if earlier is not None:
                    return _same_payment(*earlier, request), False
                now = utcnow()
                operation = store.debit(request.user_id, request.amount, request.currency, request.order_id, now)
                if operation is not None:
                    payment = _record(store, request, None, operation, now)
                else:
                    wallet = _wallet(store, request.user_id)
                    refusal = (
                        INSUFFICIENT_FUNDS
                        if wallet.currency == request.currency
                        else currency_mismatch(wallet.currency)
                    )
                    payment = _record(store, request, refusal, None, now)
            if payment.outcome == words.DECLINED:
                raise Declined(payment)
            return payment, True
        except peewee.IntegrityError:
            # A parallel request for the same order committed first; return its decision.
            continue
    return _same_payment(*_decision(store, request.order_id), request), False


def _record(
    store: BillingStore,
    request: wire.PaymentRequest,
    refusal: Refusal | None,
    operation: Operation | None,
    now: datetime.datetime,
) -> wire.Payment:
    """The decision: debited with its operation, or declined (``refusal``)."""
    row = Payment(
        id=new_id(),
        order_id=request.order_id,
        user_id=request.user_id,
        amount=request.amount,
        currency=request.currency,
        outcome=words.DEBITED if refusal is None else words.DECLINED,
        reason_code=refusal.code if refusal else None,
        reason=refusal.text if refusal else None,
        operation=operation.id if operation else None,
        created_at=now,
    )
    store.decide(row)
    return payment_to_wire(row, operation)


def _same_payment(row: Payment, operation: Operation | None, request: wire.PaymentRequest) -> wire.Payment:
    if (row.user_id, row.amount, row.currency) != (request.user_id, request.amount, request.currency):
        raise PaymentConflict("A payment with other terms exists for this order.")
    payment = payment_to_wire(row, operation)
    if payment.outcome == words.DECLINED:
        raise Declined(payment)
    return payment


def _decision(store: BillingStore, order_id: str) -> tuple[Payment, Operation | None]:
    decided = store.decision(order_id)
    if decided is None:
        raise NotFound("No payment decision for this order.")
    return decided


def get_payment(store: BillingStore, order_id: str) -> wire.Payment:
    return payment_to_wire(*_decision(store, order_id))


def abandon(store: BillingStore, request: wire.PaymentRequest) -> tuple[wire.Payment, bool]:
    """For recovery: close an order's payment without moving money. If a decision
    exists it stands; otherwise a decline is recorded, so a late payment request for the
    same order can no longer debit."""
    try:
        with store.write_transaction():
            earlier = store.decision(request.order_id)
            if earlier is not None:
                return payment_to_wire(*earlier), False
            return _record(store, request, ABANDONED, None, utcnow()), True
    except peewee.IntegrityError:
        return payment_to_wire(*_decision(store, request.order_id)), False

"""What Billing does, apart from HTTP: wallets, deposits and the one payment decision
per order."""

from __future__ import annotations

import datetime

import attrs
import peewee

from contracts import billing as wire
from contracts import vocabulary as words
from contracts.types import new_id
from services.billing import models
from services.billing.models import Operation, Payment, Wallet
from services.common.db import iso, utcnow, write_transaction
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


def payment_to_wire(row: Payment, operation: Operation | None = None) -> wire.Payment:
    if operation is None and row.operation_id:
        operation = Operation.get(Operation.id == row.operation_id)
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


def open_wallet(db: peewee.Database, user_id: str, currency: str) -> tuple[wire.Wallet, bool]:
    """Opening a wallet twice returns the first one: a user never has two."""
    try:
        with db.atomic():
            row = Wallet.create(user_id=user_id, currency=currency, balance=0, created_at=utcnow())
        return wallet_to_wire(row), True
    except peewee.IntegrityError:
        row = Wallet.get(Wallet.user_id == user_id)
    if row.currency != currency:
        raise CurrencyMismatch(f"The wallet exists in {row.currency}.")
    return wallet_to_wire(row), False


def _wallet(user_id: str) -> Wallet:
    row = Wallet.get_or_none(Wallet.user_id == user_id)
    if row is None:
        raise NoWallet("No wallet for this user.")
    return row


def get_wallet(user_id: str) -> wire.Wallet:
    return wallet_to_wire(_wallet(user_id))


def list_operations(user_id: str, limit: int, offset: int) -> wire.OperationPage:
    _wallet(user_id)
    rows = (
        Operation.select()
        .where(Operation.user_id == user_id)
        .order_by(Operation.seq.desc())
        .limit(limit)
        .offset(offset)
    )
    return wire.OperationPage(items=[operation_to_wire(row) for row in rows], limit=limit, offset=offset)


def _move(user_id: str, delta: int, kind: str, currency: str, order_id: str | None, key: str | None) -> Operation:
    """Change the balance by ``delta`` and record it; the caller holds the transaction."""
    Wallet.update(balance=Wallet.balance + delta).where(Wallet.user_id == user_id).execute()
    balance = Wallet.select(Wallet.balance).where(Wallet.user_id == user_id).scalar()
    return Operation.create(
        id=new_id(),
        user_id=user_id,
        kind=kind,
        amount=abs(delta),
        currency=currency,
        balance_after=balance,
        order_id=order_id,
        idempotency_key=key,
        created_at=utcnow(),
    )


def deposit(db: peewee.Database, user_id: str, request: wire.Deposit) -> tuple[wire.DepositResult, bool]:
    key = request.idempotency_key
    for _attempt in range(2):
        try:
            with write_transaction(db):
                wallet = _wallet(user_id)
                if key is not None:
                    earlier = Operation.get_or_none((Operation.user_id == user_id) & (Operation.idempotency_key == key))
                    if earlier is not None:
                        if earlier.amount != request.amount or earlier.kind != words.DEPOSIT:
                            raise KeyReused("This Idempotency-Key was used for a different deposit.")
                        return wire.DepositResult(operation_to_wire(earlier), get_wallet(user_id)), False
                operation = _move(user_id, request.amount, words.DEPOSIT, wallet.currency, None, key)
                return wire.DepositResult(operation_to_wire(operation), get_wallet(user_id)), True
        except peewee.IntegrityError:
            # A parallel deposit with the same key won; the next pass returns it.
            continue
    raise KeyReused("This Idempotency-Key is being used by a parallel deposit.")


def pay(db: peewee.Database, request: wire.PaymentRequest) -> tuple[wire.Payment, bool]:
    """Step 6. Check the balance and debit it in one conditional update; a second
    request for the same order returns the first decision, never a second debit."""
    for _attempt in range(2):
        try:
            with write_transaction(db):
                if models.FIND_PAYMENT.first(db, request.order_id) is not None:
                    earlier = Payment.get(Payment.order_id == request.order_id)
                    return _same_payment(earlier, request), False
                now = utcnow()
                operation = None
                if models.DEBIT.execute(db, request.amount, request.user_id, request.currency, request.amount).rowcount:
                    balance = models.BALANCE.scalar(db, request.user_id)
                    operation = _record_debit(db, request, balance, now)
                    payment = _record(db, request, None, operation, now)
                else:
                    wallet = _wallet(request.user_id)
                    refusal = (
                        INSUFFICIENT_FUNDS
                        if wallet.currency == request.currency
                        else currency_mismatch(wallet.currency)
                    )
                    payment = _record(db, request, refusal, None, now)
            if payment.outcome == words.DECLINED:
                raise Declined(payment)
            return payment, True
        except peewee.IntegrityError:
            # A parallel request for the same order committed first; return its decision.
            continue
    return _same_payment(Payment.get(Payment.order_id == request.order_id), request), False


def _record_debit(
    db: peewee.Database, request: wire.PaymentRequest, balance: int, now: datetime.datetime
) -> wire.WalletOperation:
    values = {
        "id": new_id(),
        "user_id": request.user_id,
        "kind": words.PAYMENT,
        "amount": request.amount,
        "currency": request.currency,
        "balance_after": balance,
        "order_id": request.order_id,
    }
    models.INSERT_OPERATION.row(db, **values, created_at=now)
    return wire.WalletOperation(**values, created_at=iso(now))


def _record(
    db: peewee.Database,
    request: wire.PaymentRequest,
    refusal: Refusal | None,
    operation: wire.WalletOperation | None,
    now: datetime.datetime,
) -> wire.Payment:
    """The decision: debited with its operation, or declined (``refusal``)."""
    values = {
        "id": new_id(),
        "order_id": request.order_id,
        "user_id": request.user_id,
        "amount": request.amount,
        "currency": request.currency,
        "outcome": words.DEBITED if refusal is None else words.DECLINED,
        "reason_code": refusal.code if refusal else None,
        "reason": refusal.text if refusal else None,
    }
    models.INSERT_PAYMENT.row(db, **values, operation=operation.id if operation else None, created_at=now)
    return wire.Payment(**values, operation=operation, created_at=iso(now))


def _same_payment(row: Payment, request: wire.PaymentRequest) -> wire.Payment:
    if (row.user_id, row.amount, row.currency) != (request.user_id, request.amount, request.currency):
        raise PaymentConflict("A payment with other terms exists for this order.")
    return _decided(row)


def _decided(row: Payment) -> wire.Payment:
    payment = payment_to_wire(row)
    if payment.outcome == words.DECLINED:
        raise Declined(payment)
    return payment


def get_payment(order_id: str) -> wire.Payment:
    row = Payment.get_or_none(Payment.order_id == order_id)
    if row is None:
        raise NotFound("No payment decision for this order.")
    return payment_to_wire(row)


def abandon(db: peewee.Database, request: wire.PaymentRequest) -> tuple[wire.Payment, bool]:
    """For recovery: close an order's payment without moving money. If a decision
    exists it stands; otherwise a decline is recorded, so a late payment request for the
    same order can no longer debit."""
    try:
        with write_transaction(db):
            earlier = Payment.get_or_none(Payment.order_id == request.order_id)
            if earlier is not None:
                return payment_to_wire(earlier), False
            return _record(db, request, ABANDONED, None, utcnow()), True
    except peewee.IntegrityError:
        return payment_to_wire(Payment.get(Payment.order_id == request.order_id)), False

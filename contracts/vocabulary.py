"""The words the system answers with, each defined once: the statuses of orders,
payments and letters, the codes of a payment's refusal, and the closed set of reasons an
internal call fails for, with the status a caller reports each as.

Imports nothing: the contracts, every service, the gateway and the operator's tools
all read these names from here.
"""

from __future__ import annotations

# An order: pending until its payment is decided, then final.
PENDING = "pending"
PAID = "paid"
CANCELLED = "cancelled"
ORDER_STATUSES = (PENDING, PAID, CANCELLED)
FINAL_STATUSES = (PAID, CANCELLED)

# Billing's one decision per order.
DEBITED = "debited"
DECLINED = "declined"
PAYMENT_OUTCOMES = (DEBITED, DECLINED)

# Why a payment was refused (a declined payment's ``reason_code``, or the code of
# Billing's refusal). The flow decides on these; the text beside them is for people.
INSUFFICIENT_FUNDS = "insufficient_funds"
CURRENCY_MISMATCH = "currency_mismatch"
PAYMENT_ABANDONED = "payment_abandoned"
NO_WALLET = "no_wallet"
DECLINE_CODES = (INSUFFICIENT_FUNDS, CURRENCY_MISMATCH, PAYMENT_ABANDONED)

# A letter: happy for a paid order, sad for a cancelled one; stored without SMTP, sent
# or failed with it.
HAPPY = "happy"
SAD = "sad"
LETTER_KINDS = (HAPPY, SAD)
SENT = "sent"
STORED = "stored"
FAILED = "failed"
DELIVERIES = (SENT, STORED, FAILED)

# Wallet operations.
DEPOSIT = "deposit"
PAYMENT = "payment"
OPERATION_KINDS = (DEPOSIT, PAYMENT)

# The closed set of reasons a call to another service fails for.
UNAVAILABLE = "unavailable"  # refused, dropped, or the callee said 503
TIMEOUT = "timeout"  # no answer within the read timeout
SERVER_ERROR = "server_error"  # a 5xx the callee does not document as its answer
BAD_RESPONSE = "bad_response"  # an answer that is not the documented one
REFUSED = "refused"  # a documented refusal the caller cannot fix for its client
CALL_FAILURES = (UNAVAILABLE, TIMEOUT, SERVER_ERROR, BAD_RESPONSE, REFUSED)

# How a caller answers its own client when a call failed for each reason.
STATUS_OF_FAILURE = {UNAVAILABLE: 503, TIMEOUT: 504, SERVER_ERROR: 502, BAD_RESPONSE: 502, REFUSED: 502}

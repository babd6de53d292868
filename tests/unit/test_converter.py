"""The one converter is strict: no coercion of money, no unknown fields, precise paths."""

from __future__ import annotations

import pytest
from cattrs.errors import ClassValidationError

from contracts.converter import problems, structure
from contracts.gateway import OrderRequest
from contracts.profiles import ProfileData

USER = "3f1c8a44-9b1e-4c55-8f2a-1d2e3f405060"


def order(**changes: object) -> dict:
    return {"user_id": USER, "currency": "RUB", "items": [{"name": "Tea", "quantity": 1, "price": 100}], **changes}


def failure(data: object) -> list[tuple[str, str]]:
    with pytest.raises(ClassValidationError) as caught:
        structure(data, OrderRequest)
    return [(p.path, p.message) for p in problems(caught.value)]


def test_a_valid_order_structures() -> None:
    request = structure(order(), OrderRequest)
    assert request.items[0].price == 100 and request.currency == "RUB"


@pytest.mark.parametrize("price", [1.0, "100", True, None])
def test_price_must_be_a_json_integer(price: object) -> None:
    assert failure(order(items=[{"name": "Tea", "quantity": 1, "price": price}])) == [
        ("$.items[0].price", "expected an integer")
    ]


def test_validator_failures_name_their_field() -> None:
    [(path, message)] = failure(order(items=[{"name": "Tea", "quantity": 1, "price": 0}]))
    assert path == "$.items[0].price" and "positive" in message


def test_unknown_fields_are_refused_not_dropped() -> None:
    assert failure(order(status="paid")) == [("$.status", "unknown field")]


def test_missing_fields_are_named() -> None:
    assert ("$.currency", "required field missing") in failure({"user_id": USER, "items": []})


@pytest.mark.parametrize("data", [[], "x", None, 3])
def test_a_body_that_is_not_an_object_is_a_validation_problem(data: object) -> None:
    assert failure(data) == [("$", "expected an object")]


def test_an_object_where_a_list_belongs_is_refused() -> None:
    assert failure(order(items={"0": {"name": "Tea"}})) == [("$.items", "expected an array")]


@pytest.mark.parametrize("currency", ["rub", "RUBL", "R1B", ""])
def test_currency_is_three_capital_letters(currency: str) -> None:
    assert [path for path, _ in failure(order(currency=currency))] == ["$.currency"]


def test_user_id_must_be_a_uuid() -> None:
    assert [path for path, _ in failure(order(user_id="1"))] == ["$.user_id"]


@pytest.mark.parametrize("unsafe", ["\ud800", "\udfff", "\u202e", "\u2066", "\x85", "\u2028"])
def test_an_email_refuses_what_text_refuses(unsafe: str) -> None:
    # A lone surrogate cannot be stored or sent back; a bidi override disguises the address.
    data = {"email": f"a{unsafe}b@example.com", "first_name": "Anna", "last_name": "K"}
    with pytest.raises(ClassValidationError) as caught:
        structure(data, ProfileData)
    assert [p.path for p in problems(caught.value)] == ["$.email"]


@pytest.mark.parametrize("unsafe", ["\x00", "\x7f", "\x9f", "\u2029", "\u202a", "\u2069", "\ud800"])
def test_names_refuse_every_unsafe_character(unsafe: str) -> None:
    data = {"email": "anna@example.com", "first_name": f"An{unsafe}na", "last_name": "K"}
    with pytest.raises(ClassValidationError) as caught:
        structure(data, ProfileData)
    assert [p.path for p in problems(caught.value)] == ["$.first_name"]


def test_names_take_any_other_character() -> None:
    data = {"email": "anna@example.com", "first_name": "Анна 😀\u200d\u00a0\ue000", "last_name": "K"}
    assert structure(data, ProfileData).first_name == data["first_name"]

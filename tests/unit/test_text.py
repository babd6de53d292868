"""Text every contract takes: valid Unicode only (the converter's string hook), and in
free-text fields nothing that hides or reorders what a reader sees (``types.text``)."""

from __future__ import annotations

import json
import re

import attrs
import pytest
from cattrs.errors import ClassValidationError

from contracts import auth, billing, notifications, orders, profiles, types
from contracts.common import Readiness
from contracts.converter import FieldInvalid, Problem, printable, problems, structure, unstructure
from contracts.errors import ErrorBody
from contracts.gateway import OrderRequest
from services.notifications.logic import compose

USER = "3f1c8a44-9b1e-4c55-8f2a-1d2e3f405060"
ORDER = "9a7b3c2d-1e0f-4a5b-8c7d-6e5f4a3b2c1d"
STAMP = "2026-01-01T00:00:00.000000Z"

REFUSED = [
    *range(0x00, 0x20),
    *range(0x7F, 0xA0),
    0x2028,
    0x2029,
    *range(0x202A, 0x202F),
    *range(0x2066, 0x206A),
]
SURROGATES = [0xD800, 0xDBFF, 0xDC00, 0xDFFF]
# Text people write, in scripts and forms the rule must leave alone.
ACCEPTED = [
    "Tea",
    "Анна-Мария",
    "Łódź",
    "李小龍",
    "مريم",
    "שרה",
    "e\u0301",  # a combining accent
    "👩\u200d👩\u200d👧",  # an emoji sequence joined by ZWJ
    "Tea\u00a0Pot",  # no-break space
    "Tea\u200fPot",  # a right-to-left mark: it marks, it does not override
]


def failure(data: object, cls: type = OrderRequest) -> list[tuple[str, str]]:
    with pytest.raises(ClassValidationError) as caught:
        structure(data, cls)
    return [(p.path, p.message) for p in problems(caught.value)]


def order(name: str) -> dict[str, object]:
    return {"user_id": USER, "currency": "RUB", "items": [{"name": name, "quantity": 1, "price": 100}]}


def test_the_refused_characters_are_named_once_as_one_character_class() -> None:
    assert types.UNSAFE_TEXT_CHARS == "\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff"
    pattern = re.compile(f"[{types.UNSAFE_TEXT_CHARS}]")
    assert [code for code in range(0x10000) if pattern.match(chr(code))] == sorted([*REFUSED, *range(0xD800, 0xE000)])


@pytest.mark.parametrize("code", REFUSED, ids=[f"U+{code:04X}" for code in REFUSED])
def test_text_fields_refuse_controls_separators_and_bidirectional_formatting(code: int) -> None:
    [(path, message)] = failure(order(f"Tea{chr(code)}"))
    assert path == "$.items[0].name"
    assert f"U+{code:04X} at position 3" in message


@pytest.mark.parametrize("name", ACCEPTED)
def test_text_fields_take_every_script_and_ordinary_marks(name: str) -> None:
    assert structure(order(name), OrderRequest).items[0].name == name


@pytest.mark.parametrize("code", SURROGATES, ids=[f"U+{code:04X}" for code in SURROGATES])
def test_a_lone_surrogate_from_a_json_escape_is_refused_naming_the_field(code: int) -> None:
    data = json.loads(json.dumps(order(f"T{chr(code)}")))
    assert failure(data) == [("$.items[0].name", f"must be valid Unicode: a lone surrogate U+{code:04X} at position 1")]


def test_the_string_hook_refuses_surrogates_in_every_field_whatever_its_validator() -> None:
    # An optional field, a field with no validator at all, a dict's values and its keys.
    assert [path for path, _ in failure({"status": "cancelled", "reason": "x\udfff"}, orders.StatusChange)] == [
        "$.reason"
    ]
    answer = {
        "id": ORDER,
        "user_id": USER,
        "items": [{"name": "Tea", "quantity": 1, "price": 1}],
        "total": 1,
        "currency": "RUB",
        "status": "paid",
        "reason": None,
        "payment_id": None,
        "created_at": STAMP,
        "updated_at": "\ud800",
    }
    assert [path for path, _ in failure(answer, orders.Order)] == ["$.updated_at"]
    with pytest.raises(ClassValidationError):
        structure({"status": "ok", "service": "x", "checks": {"db": "\udc80"}}, Readiness)
    with pytest.raises(ClassValidationError):
        structure({"status": "ok", "service": "x", "checks": {"\udc80": "ok"}}, Readiness)


def test_a_surrogate_pair_is_text_but_a_reversed_one_is_not() -> None:
    paired = json.loads('"T\\ud83d\\ude00"')
    assert structure(order(paired), OrderRequest).items[0].name == "T😀"
    assert [path for path, _ in failure(order(json.loads('"T\\ude00\\ud83d"')))] == ["$.items[0].name"]


def test_a_non_string_is_still_a_type_error() -> None:
    assert failure(order(5)) == [("$.items[0].name", "expected a string")]  # type: ignore[arg-type]


def every_text_field() -> list[tuple[type, str]]:
    """Each request field whose validator is ``types.text`` (alone or optional)."""
    found = []
    for module in (auth, billing, notifications, orders, profiles):
        for cls in vars(module).values():
            if not (isinstance(cls, type) and attrs.has(cls)):
                continue
            for field in attrs.fields(cls):
                check = getattr(field.validator, "validator", field.validator)
                if getattr(check, "__qualname__", "") == "text.<locals>.check":
                    found.append((cls, field.name))
    return found


@pytest.mark.parametrize(("cls", "name"), every_text_field(), ids=lambda v: getattr(v, "__name__", v))
def test_every_free_text_field_of_every_contract_refuses_unsafe_text(cls: type, name: str) -> None:
    field = attrs.fields_dict(cls)[name]
    check = field.validator
    for char in ("\u202e", "\u2028", "\u0085"):
        with pytest.raises(FieldInvalid) as caught:
            check(None, field, f"abcdefgh{char}")
        assert caught.value.field == name


def test_the_free_text_fields_include_names_reasons_and_keys() -> None:
    named = {(cls.__name__, name) for cls, name in every_text_field()}
    assert {
        ("Item", "name"),
        ("Registration", "first_name"),
        ("Registration", "last_name"),
        ("ProfileData", "first_name"),
        ("StatusChange", "reason"),
        ("LetterRequest", "reason"),
        ("NewOrder", "idempotency_key"),
        ("Deposit", "idempotency_key"),
    } <= named


@pytest.mark.parametrize("char", ["\u202e", "\u2066", "\u0085", "\u2028", "\x9b"])
def test_an_email_refuses_the_same_characters(char: str) -> None:
    data = {"email": f"anna{char}@example.com", "first_name": "Anna", "last_name": "P"}
    assert [path for path, _ in failure(data, profiles.ProfileData)] == ["$.email"]


def test_an_unknown_key_is_named_in_printable_form_so_the_error_can_be_sent() -> None:
    data = {**order("Tea"), "x\ud800\n\u202e": 1}
    [(path, message)] = failure(data)
    assert (path, message) == ("$.x\\ud800\\u000a\\u202e", "unknown field")
    # The 422 that names it is JSON UTF-8 can carry.
    body = ErrorBody(code="validation_failed", title="Invalid request body", errors=[Problem(path, message)])
    assert json.dumps(unstructure(body), ensure_ascii=False).encode("utf-8")


def test_scrub_keeps_the_text_and_its_length_and_marks_what_is_refused() -> None:
    assert types.scrub("T\ud800ea\u202e!") == "T\ufffdea\ufffd!"
    for text in ACCEPTED:
        assert types.scrub(text) == text


def test_printable_escapes_what_would_break_a_line_or_an_encoder() -> None:
    assert printable("/orders\n2026 ERROR") == "/orders\\u000a2026 ERROR"
    assert printable("a\u2028b\u202ec\ud800") == "a\\u2028b\\u202ec\\ud800"
    assert printable("/заказы/李") == "/заказы/李"


def test_a_first_name_stored_before_names_were_checked_reaches_a_letter_with_replacement_characters() -> None:
    request = notifications.LetterRequest(order_id=ORDER, user_id=USER, status="paid", total=100, currency="RUB")
    stored = profiles.Profile(USER, "anna@example.com", "Anna\u202e\u2028", "P", STAMP, STAMP)

    _kind, subject, body = compose(request, stored)

    assert body.startswith("Hello Anna\ufffd\ufffd,\n") and not types.UNSAFE_TEXT_RE.search(
        subject + body.replace("\n", "")
    )

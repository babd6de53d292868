"""The one cattrs converter that both sides of every boundary use.

cattrs coerces by default ("12" -> 12, 2.9 -> 2, True -> 1). Money and counters must
never be guessed, so the hooks below accept only the JSON type itself. Every string,
of every field of every contract, must also be text UTF-8 can carry: JSON's ``\\ud800``
escape decodes to a lone surrogate that no service could store or send back.
"""

from __future__ import annotations

from typing import Any, get_args, get_origin

import attrs
import cattrs
from cattrs.errors import (
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
    IterableValidationNote,
)
from cattrs.gen import make_dict_structure_fn

converter = cattrs.Converter(forbid_extra_keys=True)


def _strict(kind: type, label: str) -> Any:
    def hook(value: Any, _type: Any) -> Any:
        # bool is a subclass of int: reject it explicitly.
        if type(value) is not kind:
            raise TypeError(f"expected {label}")
        return value

    return hook


class NotUnicode(ValueError):
    """A string holding a lone surrogate (U+D800 to U+DFFF)."""


def _text(value: Any, _type: Any) -> str:
    if type(value) is not str:
        raise TypeError("expected a string")
    # ASCII, by far the most common, is checked without a copy.
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            code = ord(value[exc.start])
            raise NotUnicode(f"must be valid Unicode: a lone surrogate U+{code:04X} at position {exc.start}") from None
    return value


converter.register_structure_hook(int, _strict(int, "an integer"))
converter.register_structure_hook(str, _text)
converter.register_structure_hook(bool, _strict(bool, "a boolean"))


def _is_list(tp: Any) -> bool:
    return get_origin(tp) is list


@converter.register_structure_hook_factory(_is_list)
def _strict_list(tp: Any) -> Any:
    (item_type,) = get_args(tp) or (Any,)
    structure_item = converter.get_structure_hook(item_type)

    def hook(value: Any, _type: Any) -> list[Any]:
        # cattrs would take any iterable (a string, an object's keys) for a list.
        if type(value) is not list:
            raise TypeError("expected an array")
        out, errors = [], []
        for index, item in enumerate(value):
            try:
                out.append(structure_item(item, item_type))
            except Exception as exc:
                exc.__notes__ = [
                    *getattr(exc, "__notes__", []),
                    IterableValidationNote(f"@ index {index}", index, item_type),
                ]
                errors.append(exc)
        if errors:
            raise IterableValidationError("While structuring a list", errors, tp)
        return out

    return hook


@converter.register_structure_hook_factory(attrs.has)
def _strict_object(cls: type) -> Any:
    structure_fields = make_dict_structure_fn(cls, converter, _cattrs_forbid_extra_keys=True)

    def hook(value: Any, _type: Any) -> Any:
        if type(value) is not dict:
            raise TypeError("expected an object")
        return structure_fields(value, cls)

    return hook


class FieldInvalid(ValueError):
    """Raised by a contract validator; carries the field so the path stays precise."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@attrs.frozen
class Problem:
    path: str
    message: str


def printable(text: str) -> str:
    """``text`` safe to echo in a message or a log line: whatever does not print
    (controls, separators, format characters, surrogates) as a ``\\u`` escape."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else f"\\u{ord(char):04x}" for char in text)


def problems(exc: BaseException, path: str = "$") -> list[Problem]:
    """Flatten a cattrs validation error into ``{path, message}`` pairs."""
    if isinstance(exc, ForbiddenExtraKeysError):
        # The keys are the sender's: echoed only as printable text.
        return [Problem(f"{path}.{printable(key)}", "unknown field") for key in sorted(exc.extra_fields)]
    if isinstance(exc, (ClassValidationError, IterableValidationError)):
        found: list[Problem] = []
        with_notes, without_notes = exc.group_exceptions()
        for inner, note in with_notes:
            if isinstance(exc, ClassValidationError):
                found.extend(problems(inner, f"{path}.{note.name}"))
            else:
                found.extend(problems(inner, f"{path}[{note.index}]"))
        for inner in without_notes:
            # Errors raised by attrs validators in __init__ carry no note.
            found.extend(problems(inner, path))
        return found
    if isinstance(exc, FieldInvalid):
        return [Problem(f"{path}.{exc.field}", exc.message)]
    if isinstance(exc, KeyError):
        return [Problem(path, "required field missing")]
    if isinstance(exc, TypeError) and str(exc).startswith("expected "):
        return [Problem(path, str(exc))]
    if isinstance(exc, (TypeError, AttributeError)):
        return [Problem(path, "wrong type")]
    return [Problem(path, str(exc) or "invalid value")]


def structure(data: Any, cls: type[Any]) -> Any:
    """Structure ``data`` into ``cls``; every failure is a ``ClassValidationError``
    (a non-object at the top included), so callers handle one exception type."""
    try:
        return converter.structure(data, cls)
    except (ClassValidationError, IterableValidationError):
        raise
    except Exception as exc:
        raise ClassValidationError("While structuring", [exc], cls) from exc


def unstructure(obj: Any) -> Any:
    return converter.unstructure(obj)

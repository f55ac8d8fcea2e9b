"""Checks of the trainer's frozen config dataclasses (trainers/config.py): every value of its field's annotated
type, every number in its range, each refused in one line naming the field (the command line's exit 2).

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Opt:
    ...     lr: float = 1e-4
    ...     betas: tuple[float, float] = (0.9, 0.999)
    ...     name: str | None = None
    >>> for bad in ({"lr": "abc"}, {"lr": -1.0}, {"betas": (0.9, 1.5)}, {"name": 3}):
    ...     try:
    ...         check_fields(Opt(**bad), Opt, "train", {"train.lr": "> 0", "train.betas": "[0, 1)"})
    ...     except ValueError as e:
    ...         print(e)
    train.lr='abc': expected a number, got a str
    train.lr=-1.0: must be > 0
    train.betas=(0.9, 1.5): must each lie in [0, 1)
    train.name=3: expected a string or null, got an int
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any

_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _got(value: Any) -> str:
    name = type(value).__name__
    return "null" if value is None else f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def _expected(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _expected(a) for a in typing.get_args(hint))
    if hint in _WORDS:
        return _WORDS[hint]
    if origin is tuple:
        return "a list"
    if isinstance(origin, type) and issubclass(origin, Mapping):
        return "a mapping"
    return f"a {getattr(hint, '__name__', hint)}"


def _type_problem(hint: Any, value: Any) -> str | None:
    """Why ``value`` is not of the annotated type ``hint``, or None (ints count as numbers; bools only as bools)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return None
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        problems = [_type_problem(a, value) for a in args if a is not type(None)]
        return None if None in problems else f"expected {_expected(hint)}, got {_got(value)}"
    if hint in _WORDS:
        ok = isinstance(value, bool) if hint is bool else not isinstance(value, bool) and \
            isinstance(value, (int, float) if hint is float else hint)
        return None if ok else f"expected {_WORDS[hint]}, got {_got(value)}"
    if origin is tuple:
        if not isinstance(value, (tuple, list)):
            return f"expected a list, got {_got(value)}"
        items = args[:1] * len(value) if len(args) == 2 and args[1] is Ellipsis else args
        if len(items) != len(value):
            return f"expected {len(items)} items, got {len(value)}"
        for item_hint, item in zip(items, value):
            if (p := _type_problem(item_hint, item)) is not None:
                return f"an item {item!r}: {p}"
        return None
    if isinstance(origin, type) and issubclass(origin, Mapping):
        return None if isinstance(value, Mapping) else f"expected a mapping, got {_got(value)}"
    if isinstance(hint, type):
        return None if isinstance(value, hint) else f"expected {_expected(hint)}, got {_got(value)}"
    return None


def _out_of_range(rule: str, value: Any) -> bool:
    if rule.startswith("["):  # "[a, b)": each item
        lo, hi = (float(x) for x in rule.strip("[)").split(","))
        return any(not lo <= v < hi for v in value)
    op, bound = rule.split()
    return value < float(bound) if op == ">=" else value <= float(bound)


def check_fields(obj: Any, cls: type, where: str, ranges: Mapping[str, str], key: str | None = None) -> None:
    """`ValueError`, one line naming the field, for a value of ``obj`` (a ``cls`` dataclass) that is not of its
    field's annotated type or lies outside its entry in ``ranges`` (``"<key>.<field>"``: ``">= n"``, ``"> n"``, or
    ``"[a, b)"`` for each item of a tuple; ``key`` defaults to ``where``)."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        value = getattr(obj, f.name)
        problem = _type_problem(hints[f.name], value)
        if problem is None and value is not None and (rule := ranges.get(f"{key or where}.{f.name}")):
            problem = f"must {'each lie in' if rule.startswith('[') else 'be'} {rule}" \
                if _out_of_range(rule, value) else None
        if problem is not None:
            raise ValueError(f"{where}.{f.name}={value!r}: {problem}")

"""Type checks of config values, derived from a dataclass's field annotations.

EvalConfig and TrainConfig call `check_field_types(self)` before their range checks, so a value of the
wrong type is refused with the key named, whether it came from a flag, `--set KEY=VALUE` or a config
file, and before any model loads. New fields are covered by their annotation alone. Handled: None in
a union (Optional), bool, int (a bool is not an int), float (an int is accepted and converted), str,
Literal, Any, list[T], dict[str, T], tuple[T, T] (a list of the right length is accepted: TOML and
JSON have no tuples).

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class C:
    ...     batch_size: int = 8
    >>> check_field_types(C(batch_size=2.5))
    Traceback (most recent call last):
    core.errors.ConfigError: batch_size must be an integer, got 2.5
"""

from __future__ import annotations

import types
import typing
from dataclasses import fields
from functools import cache
from typing import Any, Literal, Union

from core.errors import ConfigError


@cache
def _field_types(cls: type) -> dict[str, Any]:
    # The configs use `from __future__ import annotations`: the annotations are strings until resolved.
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in fields(cls)}


def check_field_types(config: Any) -> None:
    """Check every field of a dataclass instance against its annotation, in place: lists given for
    tuples become tuples and ints given for floats become floats. Raises ConfigError naming the key."""
    for name, annotation in _field_types(type(config)).items():
        setattr(config, name, checked(name, getattr(config, name), annotation))


def checked(name: str, value: Any, annotation: Any) -> Any:
    """`value` converted to `annotation`'s type where that loses nothing, else a ConfigError."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        for option in options:
            try:
                return checked(name, value, option)
            except ConfigError:
                if len(options) == 1:
                    raise
        raise _wrong(name, value, annotation)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{name} must be one of {', '.join(map(_show, args))}, got {_show(value)}")
        return value
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise _wrong(name, value, annotation)
        return [checked(f"{name}[{i}]", v, args[0]) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise _wrong(name, value, annotation)
        key_type, value_type = args
        return {checked(f"{name} key {k!r}", k, key_type): checked(f"{name}.{k}", v, value_type)
                for k, v in value.items()}
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise _wrong(name, value, annotation)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(checked(f"{name}[{i}]", v, args[0]) for i, v in enumerate(value))
        if len(value) != len(args):
            raise _wrong(name, value, annotation)
        return tuple(checked(f"{name}[{i}]", v, a) for i, (v, a) in enumerate(zip(value, args, strict=True)))
    if annotation is bool:
        if not isinstance(value, bool):
            raise _wrong(name, value, annotation)
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _wrong(name, value, annotation)
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _wrong(name, value, annotation)
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise _wrong(name, value, annotation)
        return value
    raise TypeError(f"config field {name}: annotation {annotation!r} has no type check; add one here")


def describe(annotation: Any, plural: bool = False) -> str:
    """The type in words, as the error messages use it: 'an integer', 'a list of strings'."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (Union, types.UnionType):
        options = [describe(a, plural) for a in args if a is not type(None)]
        return " or ".join(options)
    if origin is Literal:
        return "one of " + ", ".join(map(_show, args))
    if origin is list:
        return ("lists of " if plural else "a list of ") + describe(args[0], plural=True)
    if origin is dict:
        return ("tables of " if plural else "a table of ") + describe(args[1], plural=True)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return ("lists of " if plural else "a list of ") + describe(args[0], plural=True)
        if len(set(args)) == 1:
            return f"{_COUNTS.get(len(args), len(args))} {describe(args[0], plural=True)}"
        return "a list of " + ", ".join(describe(a) for a in args)
    words = _WORDS.get(annotation)
    if words is None:
        return "values" if plural else "a value"
    return words[1] if plural else words[0]


_WORDS = {bool: ("true or false", "true/false values"), int: ("an integer", "integers"),
          float: ("a number", "numbers"), str: ("a string", "strings"), Any: ("a value", "values")}
_COUNTS = {2: "two", 3: "three", 4: "four"}


def _wrong(name: str, value: Any, annotation: Any) -> ConfigError:
    message = f"{name} must be {describe(annotation)}, got {_show(value)}"
    sequence = next((a for a in (annotation, *typing.get_args(annotation))
                     if typing.get_origin(a) in (list, tuple)), None)
    if isinstance(value, str) and sequence is not None:
        # A string is a sequence too: never split it into characters; say how to write the list.
        message = f"{name} must be {describe(annotation)}, got the string {value!r}; write a list"
        if typing.get_args(sequence)[0] is str:
            message += f', e.g. ["{value}"]'
    elif isinstance(value, str) and typing.get_origin(annotation) is dict:
        message = f"{name} must be {describe(annotation)} (key -> value), got the string {value!r}"
    return ConfigError(message)


def _show(value: Any) -> str:
    """A value as the user wrote it (TOML and JSON spell booleans in lower case)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."

"""Strict conversion of nested plain values (parsed YAML) into typed dataclasses, and back.

Supported annotations: ``bool`` (only real booleans), ``int`` (not bools), ``float`` (ints, floats, and
strings Python reads as a float), ``str``, ``X | None``, ``tuple[T, ...]`` / ``tuple[T1, T2]`` (from
lists; length checked), ``list[T]``, ``dict[K, V]`` and nested dataclasses. Every error names the value's
dotted path (``data.world.size``), so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

Builders = Mapping[type, Callable[[Mapping[str, Any], str], Any]]


def plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


def build_dataclass(cls: type, values: Any, path: str = "", special: Builders | None = None) -> Any:
    """An instance of dataclass ``cls`` from the mapping ``values`` found at dotted ``path``.

    Fields are checked against ``typing.get_type_hints(cls)`` (see the module docstring). ``special`` maps
    dataclasses that build themselves (e.g. a config with presets) to ``builder(values, path)``.

    Raises:
        ValueError: for an unknown key, a wrong type, or an invalid value (the dataclass's own
            ``__post_init__`` error, prefixed with ``path``).
    """
    special = special or {}
    if values is None:
        values = {}
    if not isinstance(values, Mapping):
        where = path or "the config"
        raise ValueError(
            f"{where} must be a mapping of {cls.__name__} keys, got {type(values).__name__} {values!r}"
        )
    if cls in special:
        return special[cls](values, path)
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    check_known(values, names, path)
    kwargs = {key: coerce(hints[key], value, join_path(path, key), special) for key, value in values.items()}
    try:
        return cls(**kwargs)
    except ValueError as error:
        raise ValueError(f"{path}: {error}" if path else str(error)) from error


def check_known(values: Mapping[str, Any], known: Sequence[str], path: str) -> None:
    for key in values:
        if key not in known:
            where = f"in {path}" if path else "at the top level"
            raise ValueError(
                f"unknown config key {join_path(path, str(key))!r}; known keys {where}: {', '.join(known)}"
            )


def join_path(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def coerce(annotation: Any, value: Any, path: str, special: Builders | None = None) -> Any:
    """``value`` checked (and where lossless, converted) against ``annotation``; errors name ``path``.

    Raises:
        ValueError: for a value of the wrong type or length, or a non-finite float.
        TypeError: for an annotation this module does not support.
    """
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [arg for arg in args if arg is not type(None)]
        if len(options) != 1:
            raise TypeError(f"{path}: unsupported config annotation {annotation}")
        if value is None:
            _wrong_type(annotation, value, path)
        return coerce(options[0], value, path, special)
    if dataclasses.is_dataclass(annotation):
        return build_dataclass(annotation, value, path, special)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            _wrong_type(annotation, value, path)
        if len(args) == 2 and args[1] is Ellipsis:
            args = (args[0],) * len(value)
        elif len(value) != len(args):
            raise ValueError(
                f"{path} must have {len(args)} elements ({_type_name(annotation)}), "
                f"got {len(value)}: {value!r}"
            )
        return tuple(
            coerce(arg, item, f"{path}[{i}]", special)
            for i, (arg, item) in enumerate(zip(args, value, strict=True))
        )
    if origin is list:
        if not isinstance(value, (list, tuple)):
            _wrong_type(annotation, value, path)
        return [coerce(args[0], item, f"{path}[{i}]", special) for i, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            _wrong_type(annotation, value, path)
        return {
            coerce(args[0], key, path): coerce(args[1], item, f"{path}.{key}", special)
            for key, item in value.items()
        }
    if annotation is bool:
        if not isinstance(value, bool):
            _wrong_type(annotation, value, path)
        return value
    if annotation is int:
        if not isinstance(value, int) or isinstance(value, bool):
            _wrong_type(annotation, value, path)
        return value
    if annotation is float:
        return _coerce_float(value, path)
    if annotation is str:
        if not isinstance(value, str):
            _wrong_type(annotation, value, path)
        return value
    raise TypeError(f"{path}: unsupported config annotation {annotation}")


def _coerce_float(value: Any, path: str) -> float:
    if isinstance(value, str):
        # PyYAML implements YAML 1.1, whose float pattern needs a dot: `3e-4` loads as the *string*
        # "3e-4" (while `3.0e-4` is a float). Accept what Python reads as a number so `lr: 3e-4` works.
        try:
            number = float(value)
        except ValueError:
            _wrong_type(float, value, path)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    else:
        _wrong_type(float, value, path)
    if not math.isfinite(number):
        raise ValueError(f"{path} must be a finite float, got {value!r}")
    return number


def _wrong_type(annotation: Any, value: Any, path: str) -> typing.NoReturn:
    raise ValueError(f"{path} must be {_type_name(annotation)}, got {type(value).__name__} {value!r}")

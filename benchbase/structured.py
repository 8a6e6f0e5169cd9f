"""Plain data (parsed YAML, stored JSON) into typed dataclasses, with every problem
located by its key path: unknown keys with close matches, wrong types, missing
required keys. Used for suites, for each plugin's ``Config`` and for the dynamics
settings, so they all fail alike.
"""
from __future__ import annotations

import dataclasses
import json
import typing
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from benchbase.errors import ConfigError, list_choices, suggest
from benchbase.specs import json_default


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path and key else (path or key)


def _field_types(schema: type) -> dict[str, Any]:
    """Field name -> type, with string annotations resolved where possible."""
    try:
        hints = typing.get_type_hints(schema)
    except Exception:  # an annotation that cannot be resolved: keep what is declared
        hints = {}
    return {f.name: hints.get(f.name, f.type) for f in dataclasses.fields(schema)}


def _nested(tp: Any) -> tuple[type | None, type | None]:
    """(dataclass of a nested mapping, dataclass of a list's items) for a field type."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    origin = typing.get_origin(tp)
    if origin is typing.Union and len(args) == 1:
        return _nested(args[0])
    if origin in (list, typing.List) and args and dataclasses.is_dataclass(args[0]):
        return None, args[0]
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return tp, None
    return None, None


def _shape_problem(tp: Any, value: Any) -> str | None:
    """What is wrong with ``value`` for a field of type ``tp``, in the user's words, where the
    converter's own message would name its internals (a list given a word, 10.5 for a count,
    null for a name, a list for an entry)."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    origin = typing.get_origin(tp)
    if value is None:
        optional = tp is Any or (origin is typing.Union and type(None) in typing.get_args(tp))
        return None if optional else f"expected {expected(tp)}, got null"
    if origin is typing.Union and len(args) == 1:
        return _shape_problem(args[0], value)
    if origin in (list, typing.List) and not isinstance(value, list):
        return f"expected a list, e.g. [0, 1], got {type(value).__name__} {value!r}"
    if origin in (dict, typing.Dict) and not isinstance(value, dict):
        return f"expected a mapping of keys, got {type(value).__name__} {value!r}"
    if isinstance(tp, type) and dataclasses.is_dataclass(tp) and not isinstance(value, dict):
        return f"expected {expected(tp)}, got {_got(value)}"
    if tp is int and not _reads_as(int, value):
        return f"expected a whole number, got {_got(value)}"
    if tp is float and not _reads_as(float, value):
        return f"expected a number, got {_got(value)}"
    if tp is bool and not (isinstance(value, bool) or str(value).lower() in _BOOLEAN_WORDS):
        return f"expected true or false, got {_got(value)}"
    if tp is str and isinstance(value, (list, dict)):
        return f"expected {expected(tp)}, got {_got(value)}"
    return None


_BOOLEAN_WORDS = {"true", "false", "yes", "no", "on", "off", "y", "n", "1", "0"}  # what OmegaConf reads as a bool


def _reads_as(kind: type, value: Any) -> bool:
    """Whether the converter reads ``value`` as an int (a whole number, or text of one) or a float."""
    if isinstance(value, bool) or isinstance(value, (list, dict)):
        return kind is float and isinstance(value, bool)
    if isinstance(value, float) and kind is int:
        return value.is_integer()
    try:
        kind(value)
    except (TypeError, ValueError):
        return False
    return True


def expected(tp: Any) -> str:
    """The form a value of type ``tp`` takes, in words (an entry's dataclass says its own in
    ``form``: "a model name or a mapping {name: ..., config: ...}")."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    origin = typing.get_origin(tp)
    if origin is typing.Union and len(args) == 1:
        return expected(args[0])
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return getattr(tp, "form", None) or f"a mapping of keys ({', '.join(f.name for f in dataclasses.fields(tp))})"
    if origin in (list, typing.List, tuple, typing.Tuple):
        return "a list"
    if origin in (dict, typing.Dict):
        return "a mapping of keys"
    return {int: "a whole number", float: "a number", bool: "true or false", str: "a string"}.get(tp, "a value")


def _got(value: Any) -> str:
    if isinstance(value, list):
        return f"a list {value!r}"
    if isinstance(value, dict):
        return f"a mapping {value!r}"
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value)


def _item_type(tp: Any) -> Any:
    """The item type of a ``List[X]`` or ``Tuple[X, ...]`` field (None for anything else)."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    origin = typing.get_origin(tp)
    if origin is typing.Union and len(args) == 1:
        return _item_type(args[0])
    if origin in (list, typing.List) and args:
        return args[0]
    if origin in (tuple, typing.Tuple) and len(args) == 2 and args[1] is Ellipsis:
        return args[0]
    return None


def _value_type(tp: Any) -> Any:
    """The value type of a ``Dict[str, X]`` field (None for anything else, and for ``Any``)."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    origin = typing.get_origin(tp)
    if origin is typing.Union and len(args) == 1:
        return _value_type(args[0])
    if origin in (dict, typing.Dict) and len(args) == 2 and args[1] is not Any:
        return args[1]
    return None


def as_declared(tp: Any, value: Any) -> Any:
    """``value`` with every whole-valued float in an integer field made that integer: YAML
    reads ``1e4`` and ``64.0`` as floats, and a count written so means the count (as
    ``budget.examples`` does); 10.5 stays, for :func:`_shape_problem` to refuse."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) is typing.Union and len(args) == 1:
        return as_declared(args[0], value)
    if tp is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp) and isinstance(value, dict):
        types = _field_types(tp)
        return {k: as_declared(types[k], v) if k in types else v for k, v in value.items()}
    item = _item_type(tp)
    if item is not None and isinstance(value, list):
        return [as_declared(item, v) for v in value]
    return value


def check_keys(node: Any, schema: type, path: str, problems: list) -> None:
    """Unknown keys anywhere in ``node`` against dataclass ``schema``, with suggestions, and
    values of the wrong shape (a word for a list, a fraction for a whole number)."""
    if not isinstance(node, dict):
        return
    types = _field_types(schema)
    for key, value in node.items():
        here = join(path, str(key))
        if key not in types:
            problems.append((here, f"unknown key '{key}'.{suggest(key, types)} Valid keys: {list_choices(types)}"))
            continue
        shape = _shape_problem(types[key], value)
        if shape:
            problems.append((here, shape))
            continue
        sub, item = _nested(types[key])
        if sub is not None and isinstance(value, dict):
            check_keys(value, sub, here, problems)
        if item is not None and isinstance(value, list):
            for i, v in enumerate(value):
                shape = _shape_problem(item, v)
                if shape:
                    problems.append((f"{here}[{i}]", shape))
                else:
                    check_keys(v, item, f"{here}[{i}]", problems)
        elif _item_type(types[key]) is not None and isinstance(value, list):
            bad = [(f"{here}[{i}]", shape) for i, v in enumerate(value)
                   if (shape := _shape_problem(_item_type(types[key]), v))]
            if bad:  # one line for a list of plain values, however many are wrong
                more = f" (and {len(bad) - 1} more item(s) of {here})" if len(bad) > 1 else ""
                problems.append((bad[0][0], bad[0][1] + more))
        elif _value_type(types[key]) is not None and isinstance(value, dict):
            problems += [(join(here, str(k)), shape) for k, v in value.items()
                         if (shape := _shape_problem(_value_type(types[key]), v))]


def typed(data: dict, schema: type, source: str, path: str = "") -> Any:
    """Merge ``data`` into the structured schema: unknown keys, wrong types and missing
    required keys become one ConfigError."""
    problems: list = []
    data = as_declared(schema, data)
    check_keys(data, schema, path, problems)
    if problems:
        raise ConfigError(source, problems)
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), data)
        missing = sorted(OmegaConf.missing_keys(merged))
        if missing:
            raise ConfigError(source, [(join(path, m), "required key is missing") for m in missing])
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        key = join(path, getattr(exc, "full_key", "") or "")
        raise ConfigError(source, [(key, str(exc).splitlines()[0])]) from None
    except ValueError as exc:  # a Config's own check (__post_init__) refused a value
        raise ConfigError(source, [located(path, str(exc), schema)]) from None


def located(path: str, message: str, schema: type) -> tuple[str, str]:
    """(key path, message) of a Config's own ValueError: a message that starts with one of
    the fields of ``schema`` ("workers must be >= 1") names that key under ``path``, and
    loses that word, which the path now says ("executor.workers: must be >= 1")."""
    first, _, rest = message.partition(" ")
    if first in {f.name for f in dataclasses.fields(schema)} and rest:
        return join(path, first), rest
    return path, message


def plugin_config(registered, user_config: dict, source: str, path: str) -> tuple[Any, dict]:
    """Validate a plugin's config against its Config dataclass: (instance, plain dict)."""
    obj = typed(user_config or {}, registered.cls.Config, source, path)
    plain = json.loads(json.dumps(dataclasses.asdict(obj), default=json_default))
    return obj, plain

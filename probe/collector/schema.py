"""The record schema as a compiled check: docs/record.schema.json (shipped in the package as
`probe/data/record.schema.json`) turned into plain Python closures, so that the collector
validates every record without a JSON Schema library at run time (jsonschema stays a test
dependency; tests/test_collector_schema.py checks this compiler against it).

Only the keywords the schema uses are supported: `type`, `const`, `enum`, `pattern`,
`minLength`, `minimum`, `maximum`, `required`, `properties`, `additionalProperties`, `items`
(one schema), `allOf` and local `$ref`s (`#/$defs/...`); annotations (`$schema`, `$id`,
`title`, `description`, `$comment`) are ignored. A schema with any other keyword is refused
when it is compiled (`SchemaError`), never silently half-checked. Semantics are JSON Schema
2020-12's: `true` is not an integer, `1.0` is; a pattern is searched, and `$` ends the string
(ECMA-262: `"AS1\\n"` does not match `^AS[0-9]+$`, which Python's `$` alone would allow).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from importlib import resources
from typing import Any


class Problem:
    """What is wrong, and where: the path is collected on the way out (keys and indexes,
    innermost first), so the success path never formats one."""

    __slots__ = ("message", "path")

    def __init__(self, message: str) -> None:
        self.message = message
        self.path: list[str] = []

    def at(self, step: str) -> Problem:
        self.path.append(step)
        return self

    def __str__(self) -> str:
        where = "".join(reversed(self.path)).lstrip(".")
        return f"{where or 'record'}: {self.message}"


#: A compiled check: the problem with `value`, or None.
Check = Callable[[Any], "Problem | None"]

_ANNOTATIONS = frozenset({"$schema", "$id", "title", "description", "$comment", "$defs"})
_KEYWORDS = frozenset(
    {
        "type",
        "const",
        "enum",
        "pattern",
        "minLength",
        "minimum",
        "maximum",
        "required",
        "properties",
        "additionalProperties",
        "items",
        "allOf",
        "$ref",
    }
)


#: A key shown as is in a problem's path; any other is shown quoted and clipped.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,59}")


class SchemaError(ValueError):
    """The schema uses something this compiler does not check."""


def _clip(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


#: The Python types of each JSON type, as `json.loads` makes them (exact types: a bool is not
#: an int here); a float with no fraction is an integer too (`_type`).
_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "boolean": (bool,),
    "null": (type(None),),
    "number": (int, float),
    "integer": (int,),
}


def _json_equal(a: Any, b: Any) -> bool:
    """Equality as JSON sees it: true is not 1, 1 is 1.0, objects and arrays deep."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and bool(a == b)


def _ecma_pattern(pattern: str) -> re.Pattern[str]:
    """A Python regex with ECMA-262's end anchor: a final unescaped `$` becomes `\\Z`."""
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


class _Compiler:
    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root
        self.refs: dict[str, Check] = {}

    def ref(self, pointer: str) -> Check:
        if pointer in self.refs:
            return self.refs[pointer]
        if not pointer.startswith("#/"):
            raise SchemaError(f"only local references are supported: {pointer!r}")
        target: Any = self.root
        for part in pointer[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, dict) or part not in target:
                raise SchemaError(f"unresolvable reference {pointer!r}")
            target = target[part]
        slot: list[Check] = []
        self.refs[pointer] = lambda value: slot[0](value)  # a reference may recurse
        slot.append(self.compile(target))
        return self.refs[pointer]

    def compile(self, schema: Any) -> Check:
        if schema is True or schema == {}:
            return lambda value: None
        if schema is False:
            return lambda value: Problem("not allowed")
        if not isinstance(schema, dict):
            raise SchemaError(f"a schema must be an object, not {_clip(schema)}")
        unknown = set(schema) - _KEYWORDS - _ANNOTATIONS
        if unknown:
            raise SchemaError(f"unsupported keyword(s): {', '.join(sorted(unknown))}")
        checks = [check for check in self._keywords(schema) if check is not None]
        if len(checks) == 1:
            return checks[0]

        def all_of(value: Any) -> Problem | None:
            for check in checks:
                problem = check(value)
                if problem is not None:
                    return problem
            return None

        return all_of

    def _keywords(self, schema: dict[str, Any]) -> list[Check | None]:
        found: list[Check | None] = []
        if "$ref" in schema:
            found.append(self.ref(schema["$ref"]))
        found += [self.compile(sub) for sub in schema.get("allOf", [])]
        found += [
            _type(schema.get("type")),
            _const(schema),
            _enum(schema.get("enum")),
            _string(schema.get("pattern"), schema.get("minLength")),
            _number(schema.get("minimum"), schema.get("maximum")),
            self._object(schema),
            self._array(schema.get("items")),
        ]
        return found

    def _object(self, schema: dict[str, Any]) -> Check | None:
        required: list[str] = list(schema.get("required", []))
        properties = {k: self.compile(v) for k, v in schema.get("properties", {}).items()}
        extra_schema = schema.get("additionalProperties")
        extra = None if extra_schema is None else self.compile(extra_schema)
        if not required and not properties and extra is None:
            return None

        def check(value: Any) -> Problem | None:
            if type(value) is not dict:
                return None
            for key in required:
                if key not in value:
                    return Problem(f"{key!r} is required")
            for key, item in value.items():
                sub = properties.get(key, extra)
                if sub is not None:
                    problem = sub(item)
                    if problem is not None:
                        name = key if _NAME.fullmatch(key) else _clip(key, 60)
                        return problem.at("." + name)
            return None

        return check

    def _array(self, items: Any) -> Check | None:
        if items is None:
            return None
        sub = self.compile(items)

        def check(value: Any) -> Problem | None:
            if type(value) is not list:
                return None
            for index, item in enumerate(value):
                problem = sub(item)
                if problem is not None:
                    return problem.at(f"[{index}]")
            return None

        return check


def _type(spec: Any) -> Check | None:
    if spec is None:
        return None
    names = [spec] if isinstance(spec, str) else list(spec)
    unknown = [name for name in names if name not in _TYPES]
    if unknown:
        raise SchemaError(f"unknown type {unknown[0]!r}")
    allowed = frozenset(t for name in names for t in _TYPES[name])
    integral_floats = "integer" in names and "number" not in names
    shown = " or ".join(names)

    def check(value: Any) -> Problem | None:
        kind = type(value)
        if kind in allowed or (integral_floats and kind is float and value.is_integer()):
            return None
        return Problem(f"{_clip(value)} is not of type {shown}")

    return check


def _const(schema: dict[str, Any]) -> Check | None:
    if "const" not in schema:
        return None
    wanted = schema["const"]

    def check(value: Any) -> Problem | None:
        if _json_equal(value, wanted):
            return None
        return Problem(f"{_clip(value)} is not {wanted!r}")

    return check


def _enum(options: Any) -> Check | None:
    if options is None:
        return None
    choices = list(options)

    def check(value: Any) -> Problem | None:
        if any(_json_equal(value, choice) for choice in choices):
            return None
        return Problem(f"{_clip(value)} is not one of {choices!r}")

    return check


def _string(pattern: Any, min_length: Any) -> Check | None:
    if pattern is None and min_length is None:
        return None
    regex = None if pattern is None else _ecma_pattern(str(pattern))
    shortest = 0 if min_length is None else int(min_length)

    def check(value: Any) -> Problem | None:
        if type(value) is not str:
            return None
        if len(value) < shortest:
            return Problem(f"{_clip(value)} is shorter than {shortest}")
        if regex is not None and regex.search(value) is None:
            return Problem(f"{_clip(value)} does not match {pattern!r}")
        return None

    return check


def _number(minimum: Any, maximum: Any) -> Check | None:
    if minimum is None and maximum is None:
        return None

    def check(value: Any) -> Problem | None:
        if type(value) is not int and type(value) is not float:
            return None
        if minimum is not None and value < minimum:
            return Problem(f"{_clip(value)} is less than {minimum}")
        if maximum is not None and value > maximum:
            return Problem(f"{_clip(value)} is more than {maximum}")
        return None

    return check


def compile_schema(schema: dict[str, Any]) -> Callable[[Any], str | None]:
    """The check of a whole document: its first problem as one line (`path: what`), or
    None."""
    check = _Compiler(schema).compile(schema)

    def whole(value: Any) -> str | None:
        problem = check(value)
        return None if problem is None else str(problem)

    return whole


def bundled_schema() -> dict[str, Any]:
    """The record schema shipped in the package (a copy of docs/record.schema.json)."""
    text = resources.files("probe.data").joinpath("record.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def record_check() -> Callable[[Any], str | None]:
    """The compiled check of the bundled record schema."""
    return compile_schema(bundled_schema())

"""JSON Schema (the OpenAPI 3.1 dialect) from the typed document definitions. Pure.

Invariants:
- a TypedDict becomes an object whose `required` are its required keys (in declaration order;
  `NotRequired` is honoured even in a module with postponed annotations) and whose extra keys
  stay allowed; a TypedDict named in `refs` becomes a `$ref` to that component wherever it is
  used (except as the component being built);
- `X | None` is `{"type": [t, "null"]}` for a plain type, `{"enum": [..., null]}` for a
  `Literal`, else `anyOf [X, null]`; `Literal` is an `enum`; `list[X]` an array of X;
  `dict[str, X]` an object of X; `Any` (or a bare list/dict) leaves the value open;
  `Annotated[X, "text"]` adds "text" as the description.
"""
from __future__ import annotations

import types
import typing
from typing import Any, Mapping

_PRIMITIVE = {bool: "boolean", int: "integer", float: "number", str: "string"}
_WRAPPERS = (typing.Required, typing.NotRequired)


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def schema_of(tp: Any, refs: Mapping[type, str] | None = None) -> dict:
    """The schema of one annotation; `refs` maps TypedDicts to component names."""
    refs = refs or {}
    if tp in refs:
        return ref(refs[tp])
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in _WRAPPERS:
        return schema_of(args[0], refs)
    if origin is typing.Annotated:
        out = dict(schema_of(args[0], refs))
        texts = [m for m in tp.__metadata__ if isinstance(m, str)]
        if texts:
            out["description"] = texts[0]
        return out
    if origin in (typing.Union, types.UnionType):
        kinds = [a for a in args if a is not type(None)]
        inner = [schema_of(a, refs) for a in kinds]
        if len(kinds) == len(args):
            return {"anyOf": inner}
        if len(inner) == 1 and set(inner[0]) == {"type"} and isinstance(inner[0]["type"], str):
            return {"type": [inner[0]["type"], "null"]}
        if len(inner) == 1 and set(inner[0]) == {"enum"}:
            return {"enum": [*inner[0]["enum"], None]}
        return {"anyOf": [*inner, {"type": "null"}]}
    if origin is typing.Literal:
        return {"enum": list(args)}
    if tp is Any:
        return {}
    if tp in (list, tuple) or origin in (list, tuple):
        out = {"type": "array"}
        if args and args[0] is not Any:
            out["items"] = schema_of(args[0], refs)
        return out
    if tp is dict or origin is dict:
        out = {"type": "object"}
        if args and args[1] is not Any:
            out["additionalProperties"] = schema_of(args[1], refs)
        return out
    if typing.is_typeddict(tp):
        return object_schema(tp, refs)
    if tp in _PRIMITIVE:
        return {"type": _PRIMITIVE[tp]}
    raise TypeError(f"no JSON schema for {tp!r}")


def object_schema(td: type, refs: Mapping[type, str] | None = None) -> dict:
    """A TypedDict expanded (never a $ref to itself), its fields through `schema_of`."""
    inner = {k: v for k, v in (refs or {}).items() if k is not td}
    hints = typing.get_type_hints(td, include_extras=True)
    out: dict[str, Any] = {"type": "object",
                           "properties": {k: schema_of(v, inner) for k, v in hints.items()}}
    # from the hints too: under `from __future__ import annotations` a 3.11 TypedDict counts a
    # NotRequired key as required, while the resolved hint still says NotRequired
    required = [k for k, v in hints.items()
                if typing.get_origin(v) is typing.Required
                or (k in td.__required_keys__ and typing.get_origin(v) is not typing.NotRequired)]
    if required:
        out["required"] = required
    if td.__doc__ and td.__doc__ != dict.__doc__ and not td.__doc__.startswith(td.__name__ + "("):
        out["description"] = " ".join(td.__doc__.split())
    return out

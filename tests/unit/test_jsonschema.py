"""The JSON Schema generator (actors/obs/jsonschema.py) on exact inputs, and on the typed documents
compute writes (actors/decide/docs.py, actors/features/docs.py) whatever shape they have: every
one builds, compiles, and the edge document's contract is pinned where clients rely on it."""
from __future__ import annotations      # (postponed annotations: NotRequired must still count)

from typing import Annotated, Any, Literal, NotRequired, TypedDict

import pytest

from actors.obs.jsonschema import object_schema, ref, schema_of


class Inner(TypedDict):
    x: int


class Outer(TypedDict):
    """An outer document."""
    a: float | None
    b: Literal["p", "q"] | None
    c: list[Inner]
    d: dict[str, Inner | None]
    e: NotRequired[Annotated[int, "epoch ns"]]
    f: Any


def test_exact_schemas():
    assert schema_of(float | None) == {"type": ["number", "null"]}
    assert schema_of(Literal["p", "q"] | None) == {"enum": ["p", "q", None]}
    assert schema_of(Literal["p"]) == {"enum": ["p"]}
    assert schema_of(list[int]) == {"type": "array", "items": {"type": "integer"}}
    assert schema_of(dict[str, Any]) == {"type": "object"}
    assert schema_of(Inner | int) == {"anyOf": [{"type": "object", "properties": {"x": {"type": "integer"}},
                                                 "required": ["x"]}, {"type": "integer"}]}
    assert object_schema(Outer, {Inner: "Inner"}) == {
        "type": "object", "description": "An outer document.",
        "properties": {"a": {"type": ["number", "null"]}, "b": {"enum": ["p", "q", None]},
                       "c": {"type": "array", "items": ref("Inner")},
                       "d": {"type": "object", "additionalProperties": {"anyOf": [ref("Inner"), {"type": "null"}]}},
                       "e": {"type": "integer", "description": "epoch ns"}, "f": {}},
        "required": ["a", "b", "c", "d", "f"]}
    with pytest.raises(TypeError):
        schema_of(set[int])


def test_every_typed_document_builds_and_compiles():
    import jsonschema_rs
    import actors.decide.docs as ddocs
    import actors.features.docs as fdocs
    from actors.obs.openapi import COMPONENTS, build_openapi
    comps = build_openapi(4096)["components"]
    built = []
    for mod in (ddocs, fdocs):
        for name in dir(mod):
            td = getattr(mod, name)
            if isinstance(td, type) and hasattr(td, "__required_keys__") and td.__module__ == mod.__name__:
                jsonschema_rs.Draft202012Validator({**object_schema(td, COMPONENTS), "components": comps})
                built.append(name)
    # the documents the API serves are among them (a module that exported none would pass silently)
    assert {"EdgeDoc", "EdgeBlockDoc", "PriceToBeatDoc", "RuleDoc", "FeaturesDoc", "QualityDoc"} <= set(built)


def test_the_edge_documents_contract():
    import jsonschema_rs
    from actors.obs.openapi import build_openapi
    comps = build_openapi(4096)["components"]
    v = lambda name: jsonschema_rs.Draft202012Validator({"$ref": f"#/components/schemas/{name}",  # noqa: E731
                                                         "components": comps})
    ptb = {"price": 65000.0, "source": "estimate", "method": "twap", "status": "ok"}
    assert v("PriceToBeat").is_valid(ptb) and v("PriceToBeat").is_valid({**ptb, "price": None, "source": None})
    assert not v("PriceToBeat").is_valid({**ptb, "source": "gamma"})
    rule = {"source": "binance", "stream": "BTCUSDT", "method": "candle", "twap_lookback_sec": 0,
            "candle_tf": "1h", "assumed": False}
    assert v("Rule").is_valid(rule) and not v("Rule").is_valid({k: x for k, x in rule.items() if k != "stream"})
    assert comps["schemas"]["EdgeBlock"]["properties"]["series"] == {"type": "object",
                                                                     "additionalProperties": ref("Edge")}

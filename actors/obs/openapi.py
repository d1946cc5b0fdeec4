"""The OpenAPI 3.1 document of the REST API, served at `GET /openapi.json`.

Invariants:
- every route `actors.api.create_app` adds is described, with its parameters, request body, every
  status it can answer and a schema for each body; tests/unit/test_api_fuzz.py checks the route
  set against the app and fuzzes the app against this document (schemathesis), and the end-to-end
  test validates the live documents of a running system against these schemas;
- schemas pin what clients rely on (required keys, types, enums, nullability) but leave extra keys
  allowed: documents grow fields without breaking a client (request bodies excepted: unknown keys
  are rejected there, so the schema says `additionalProperties: false`);
- every error is the same JSON body (`Error`), whatever the route or the client's Accept header;
- the schemas of the documents compute writes (features, bars, quality, edge) are built from their
  typed definitions (actors/features/docs.py, actors/decide/docs.py), so the document and its
  schema cannot drift apart; venue and timeframe enums come from ipc.names.
"""
from __future__ import annotations

from typing import Any

from ipc import names

from actors.decide.docs import EdgeDoc
from actors.features.docs import BarDoc, BarsDoc, FeaturesDoc, QualityDoc, TopOfBookDoc, VenueFeaturesDoc
from actors.obs.jsonschema import object_schema, ref as _ref

INT64_MAX = 2 ** 63 - 1


# typed document -> component name (a use of one inside another is a $ref)
COMPONENTS: dict[type, str] = {QualityDoc: "Quality", TopOfBookDoc: "TopOfBook", BarDoc: "Bar",
                               BarsDoc: "Bars", VenueFeaturesDoc: "VenueFeatures",
                               FeaturesDoc: "Features", EdgeDoc: "Edge"}


def _nullable(schema: dict) -> dict:
    return {"anyOf": [schema, {"type": "null"}]}


NUM = {"type": "number"}
INT = {"type": "integer"}
NS = {"type": "integer", "description": "epoch time, ns"}
NUM_OR_NULL = {"type": ["number", "null"]}
STR_LIST = {"type": "array", "items": {"type": "string"}}


def _obj(props: dict, required: tuple[str, ...] = (), **extra) -> dict:
    out: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        out["required"] = list(required)
    out.update(extra)
    return out


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict:
    return _json(_ref("Error"), description)


SCHEMAS: dict[str, dict] = {
    "Error": _obj({"title": {"type": "string"}, "description": {"type": "string"}},
                  ("title",), description="Every 4xx and 5xx answer; never a stack trace."),
    "Histogram": _obj({"le_ms": {"type": "array", "items": NUM},
                       "counts": {"type": "array", "items": {"type": "integer", "minimum": 0},
                                  "description": "per bucket, not cumulative; the last is +Inf"},
                       "sum_ms": NUM, "negative": {"type": "integer", "minimum": 0}},
                      ("le_ms", "counts", "sum_ms")),
    "Stream": _obj({"written": INT, "duplicates": INT, "id_gaps": INT, "ids_missing": INT,
                    "gap_markers": INT, "last_recv_ns": INT, "last_event_ns": INT, "ring_count": INT,
                    "age_ms": NUM_OR_NULL, "max_silence_s": NUM_OR_NULL, "fresh": {"type": "boolean"},
                    "data_age": _ref("Histogram")}, ("written", "age_ms", "fresh")),
    "Connection": _obj({"connected": {"type": "boolean"}, "frames": INT, "bytes": INT,
                        "reconnects": INT, "rotations": INT, "stale_rotations": INT,
                        "age_s": NUM_OR_NULL, "last_error": {"type": "string"},
                        "silent_streams": STR_LIST}, ("connected", "frames", "reconnects")),
    "Actor": _obj({"pid": INT, "running": {"type": "boolean"}, "alive": {"type": "boolean"},
                   "heartbeat_age_ms": NUM, "uptime_s": NUM,
                   "counters": {"type": "object", "description": "the actor's own counters, by name"},
                   "streams": {"type": "object", "additionalProperties": _ref("Stream")},
                   "connections": {"type": "object", "additionalProperties": _ref("Connection")},
                   "last_venue_error": {"type": "string"}, "data_fresh": {"type": "boolean"},
                   "hist": {"type": "object", "additionalProperties": _ref("Histogram")},
                   "rings": {"type": "object", "additionalProperties": INT,
                             "description": "records lost to overrun, by ring"}},
                  ("pid", "running", "alive", "heartbeat_age_ms", "uptime_s", "counters")),
    "Health": _obj({"status": {"enum": ["ok", "unhealthy"]}, "problems": STR_LIST, "required": STR_LIST,
                    "actors": {"type": "object", "additionalProperties": _ref("Actor")}, "ts_ns": NS},
                   ("status", "problems", "required", "actors", "ts_ns")),
    "State": _obj({"ts_ns": NS, "quality": _nullable(_ref("Quality")),
                   "actors": {"type": "object", "additionalProperties": _ref("Actor")},
                   "alerts": {"type": "array", "items": {"type": "object"},
                              "description": "actors reporting an alert (the recorder's disk)"}},
                  ("ts_ns", "quality", "actors")),
    "Book": _obj({"venue": {"enum": list(names.BINANCE_VENUES)}, "ts_ns": NS, "book": _ref("TopOfBook"),
                  "quote_age_ms": NUM}, ("venue", "ts_ns", "book", "quote_age_ms")),
    "PolyBook": _obj({"valid": {"type": "boolean"}, "stale": {"type": "boolean"},
                      "best_bid": NUM_OR_NULL, "best_ask": NUM_OR_NULL, "mid": NUM_OR_NULL,
                      "age_s": NUM_OR_NULL, "update_id": INT,
                      "bids": {"type": "array", "items": {"type": "array", "items": NUM,
                                                          "minItems": 2, "maxItems": 2}},
                      "asks": {"type": "array", "items": {"type": "array", "items": NUM,
                                                          "minItems": 2, "maxItems": 2}}},
                     ("valid",)),
    "Polymarket": _obj({"ts_ns": NS,
                        "window": _nullable(_obj({"slug": {"type": "string"}, "window_start_ns": NS,
                                                  "window_end_ns": NS, "up_token": {"type": "string"},
                                                  "down_token": {"type": "string"},
                                                  "price_to_beat": NUM_OR_NULL,
                                                  "price_to_beat_source": {"type": "string"}},
                                                 ("slug", "window_start_ns", "window_end_ns"))),
                        "books": {"type": "object", "additionalProperties": _ref("PolyBook")},
                        "counters": {"type": "object"}, "lookup_errors": {"type": "object"}},
                       ("ts_ns", "window", "books")),
    "AnchorResetRequest": _obj({"anchor_ns": {"type": ["integer", "null"], "minimum": 0, "maximum": INT64_MAX,
                                              "description": "the new anchor, epoch ns (null or absent: now)"}},
                               additionalProperties=False),
    "AnchorResetReply": _obj({"ok": {"const": True}, "anchor_ns": {"type": "integer", "minimum": 0}},
                             ("ok", "anchor_ns")),
}
# the documents compute writes: derived from their typed definitions, never restated here
SCHEMAS.update({name: object_schema(td, COMPONENTS) for td, name in COMPONENTS.items()})


def _get(summary: str, schema: str, *, ok: str = "the document", unavailable: str | None = None,
         params: list | None = None, bad_request: bool = False, also_503: bool = False) -> dict:
    responses: dict[str, dict] = {"200": _json(_ref(schema), ok)}
    if bad_request:
        responses["400"] = _error("a missing or bad query parameter")
    if also_503:
        responses["503"] = _json(_ref(schema), unavailable or "unhealthy")
    elif unavailable:
        responses["503"] = _error(unavailable)
    op = {"summary": summary, "responses": responses}
    if params:
        op["parameters"] = params
    return {"get": op}


def _latest(what: str, schema: str) -> dict:
    return _get(f"The latest {what}, as compute wrote it", schema,
                unavailable="compute has not written it yet")


def build_openapi(max_body_bytes: int) -> dict:
    """The document (a plain dict, ready for JSON)."""
    paths = {
        "/health": _get("Liveness of every required actor and freshness of its data", "Health",
                        ok="every required actor is alive and its data fresh", also_503=True,
                        unavailable="some required actor is down or stale (see `problems`)"),
        "/state": _get("Data quality and every actor's heartbeat", "State"),
        "/latest/features": _latest("features", "Features"),
        "/latest/bars": _latest("bars (current and recently closed)", "Bars"),
        "/latest/polymarket": _latest("Polymarket window and books", "Polymarket"),
        "/latest/edge": _latest("fair value, edge and decision", "Edge"),
        "/latest/book": _get("Top of book of one venue", "Book", bad_request=True,
                             unavailable="no quote of this venue yet",
                             params=[{"name": "venue", "in": "query", "required": True,
                                      "schema": {"enum": list(names.BINANCE_VENUES)}}]),
        "/metrics": {"get": {"summary": "Prometheus exposition of every actor and of the API",
                             "responses": {"200": {"description": "text exposition format 0.0.4",
                                                   "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "/openapi.json": {"get": {"summary": "This document",
                                  "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1")}}},
        "/control/anchor/reset": {"post": {
            "summary": "Reset the CVD / VWAP anchor (to now, or to `anchor_ns`)",
            "security": [{"bearer": []}],
            "requestBody": {"required": False, "content": {"application/json": {
                "schema": _ref("AnchorResetRequest")}}},
            "responses": {
                "200": _json(_ref("AnchorResetReply"), "compute applied it"),
                "400": _error("bad JSON, unknown keys, a bad anchor_ns, or compute rejected it"),
                "401": _error("missing or wrong bearer token"),
                "403": _error("control is disabled (API_TOKEN unset)"),
                "411": _error("a chunked body: send it with a Content-Length"),
                "413": _error(f"body over {max_body_bytes} bytes"),
                "415": _error("a body that is not application/json"),
                "503": _error("compute did not answer in time"),
            }}},
    }
    for item in paths.values():         # every route: any other method, and the JSON 500
        for op in item.values():
            op["responses"].setdefault("500", _error("an unexpected fault (logged, no trace)"))
    return {
        "openapi": "3.1.0",
        "info": {"title": "Binance × Polymarket real-time collector", "version": "1",
                 "description": "Reads shared memory only; JSON everywhere; bad input is a 4xx with a "
                                "JSON error. Unknown routes answer 404 and unknown methods 405, both "
                                f"JSON. Request bodies are limited to {max_body_bytes} bytes."},
        "paths": paths,
        "components": {"schemas": SCHEMAS,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                                      "description": "Authorization: Bearer $API_TOKEN"}}},
    }

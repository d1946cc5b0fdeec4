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

from actors.decide.docs import EdgeBlockDoc, EdgeDoc, PriceToBeatDoc, RuleDoc
from actors.features.docs import BarDoc, BarsDoc, FeaturesDoc, QualityDoc, TopOfBookDoc, VenueFeaturesDoc
from actors.obs.jsonschema import object_schema, ref as _ref

INT64_MAX = 2 ** 63 - 1


# typed document -> component name (a use of one inside another is a $ref)
COMPONENTS: dict[type, str] = {QualityDoc: "Quality", TopOfBookDoc: "TopOfBook", BarDoc: "Bar",
                               BarsDoc: "Bars", VenueFeaturesDoc: "VenueFeatures",
                               FeaturesDoc: "Features", EdgeDoc: "Edge", EdgeBlockDoc: "EdgeBlock",
                               RuleDoc: "Rule", PriceToBeatDoc: "PriceToBeat"}


def _nullable(schema: dict) -> dict:
    return {"anyOf": [schema, {"type": "null"}]}


NUM = {"type": "number"}
INT = {"type": "integer"}
NS = {"type": "integer", "description": "epoch time, ns"}
NUM_OR_NULL = {"type": ["number", "null"]}
STR_LIST = {"type": "array", "items": {"type": "string"}}
SERIES = {"enum": list(names.POLY_SERIES), "description": "an up/down series (ipc.names.POLY_SERIES)"}


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
    "PolyWindow": _obj({"series": SERIES, "asset": {"type": "string"}, "slug": {"type": "string"},
                        "window_start_ns": NS, "window_end_ns": NS,
                        "up_token": {"type": "string"}, "down_token": {"type": "string"},
                        "rule": _ref("Rule"), "price_to_beat": NUM_OR_NULL,
                        "price_to_beat_source": {"enum": ["venue", None],
                                                 "description": "venue: Gamma's number; null: compute estimates it"},
                        "final_price": NUM_OR_NULL,
                        "resolution": _nullable(_obj({"winner": {"enum": list(names.POLY_TOKENS)},
                                                      "source": {"type": "string"}, "ts_ns": NS},
                                                     ("winner",)))},
                       ("series", "slug", "window_start_ns", "window_end_ns"),
                       description="One up/down window as feed_poly resolved it (the tick.poly.market.<series> payload)"),
    "PolySeries": _obj({"window": _nullable(_ref("PolyWindow")), "next": _nullable(_ref("PolyWindow")),
                        "books": {"type": "object", "additionalProperties": _ref("PolyBook")},
                        "resolved": {"type": "array", "items": _ref("PolyWindow")}},
                       ("window", "books")),
    "Polymarket": _obj({"ts_ns": NS, "disabled": {"type": ["string", "null"]},
                        "series": {"type": "object", "additionalProperties": _ref("PolySeries"),
                                   "description": "every followed series, by name (5m, 15m, 1h, ...)"},
                        "counters": {"type": "object"}, "lookup_errors": {"type": "object"}},
                       ("ts_ns", "series"), description="feed_poly's block: every followed series"),
    "PolymarketSeries": {"allOf": [_ref("PolySeries"), _obj(
        {"ts_ns": NS, "series": SERIES, "disabled": {"type": ["string", "null"]}}, ("ts_ns", "series"))],
        "description": "/latest/polymarket?series=: one series, with the block's time"},
    "AnchorResetRequest": _obj({"anchor_ns": {"type": ["integer", "null"], "minimum": 0, "maximum": INT64_MAX,
                                              "description": "the new anchor, epoch ns (null or absent: now)"}},
                               additionalProperties=False),
    "AnchorResetReply": _obj({"ok": {"const": True}, "anchor_ns": {"type": "integer", "minimum": 0}},
                             ("ok", "anchor_ns")),
    # the dashboard's history (actors/web/history.py): columns of equal length, NaN as null
    "HistoryWindow": _obj({
        "series": SERIES, "window": {"type": ["string", "null"]},
        "window_start_ns": {"type": ["integer", "null"]}, "window_end_ns": {"type": ["integer", "null"]},
        "ts_ns": NS, "complete": {"type": "boolean", "description": "false: the samples do not reach "
                                  "back to the window's start (ring lapped, or compute started later)"},
        "events_dropped": {"type": "integer", "minimum": 0,
                           "description": "older events left out (the newest 2000 are answered)"},
        "n": {"type": "integer", "minimum": 0, "maximum": 2000},
        "columns": _obj({k: {"type": "array", "items": INT if k == "ts_ns" else NUM_OR_NULL}
                         for k in ("ts_ns", "binance", "chainlink", "settlement", "price_to_beat", "fair_up", "up_bid",
                                   "up_ask", "up_mid", "down_bid", "down_ask", "down_mid", "edge_up",
                                   "edge_down", "roc_up", "roc_down", "buffer", "time_left_s")},
                        ("ts_ns", "binance", "chainlink", "settlement", "price_to_beat", "fair_up", "edge_up",
                         "edge_down")),
        "events": {"type": "array", "items": _obj({
            "ts_ns": NS, "decision": {"enum": ["NONE", "BUY_UP", "BUY_DOWN", None]},
            "action": {"enum": ["HOLD", "SLICE", None]}, "side": {"enum": [*names.POLY_TOKENS, None]},
            "slice_usd": NUM_OR_NULL, "acc_usd": NUM_OR_NULL, "slices": INT, "vetoes": STR_LIST},
            ("ts_ns", "decision", "action", "vetoes"))},
        "slices": {"type": "array", "items": _obj({"ts_ns": NS, "side": {"enum": [*names.POLY_TOKENS, None]},
                                                   "usd": NUM_OR_NULL}, ("ts_ns", "side", "usd"))}},
        ("series", "window", "window_start_ns", "window_end_ns", "ts_ns", "complete", "n", "columns",
         "events", "events_dropped", "slices"), description="/history/window: the latest window's samples of one series"),
    "HistoryMarket": _obj({
        "ts_ns": NS, "n": {"type": "integer", "minimum": 0, "maximum": 2000},
        "columns": _obj({**{k: {"type": "array", "items": NUM_OR_NULL}
                            for k in ("futures", "spot", "futures_mid", "spot_mid", "cvd_futures", "cvd_spot",
                                      "basis_bps", "mark", "liq_long_usd", "liq_short_usd")},
                         "ts_ns": {"type": "array", "items": INT},
                         "quality": {"type": "array", "items": {"enum": ["OK", "DEGRADED", "BAD", None]}}},
                        ("ts_ns", "futures", "spot", "quality"))},
        ("ts_ns", "n", "columns"), description="/history/market: 1 s market samples"),
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


def _by_series(what: str, block: str, one: str) -> dict:
    """A block holding every followed series: the whole block, or `?series=` one series' document."""
    op = _get(f"The latest {what}: every followed series, or one with `?series=`", block,
              unavailable="not written yet (or nothing yet for that series)", bad_request=True,
              params=[{"name": "series", "in": "query", "required": False, "schema": SERIES,
                       "description": "one series' document instead of the whole block"}])
    get = op["get"]
    get["responses"]["200"] = _json({"anyOf": [_ref(block), _ref(one)]},
                                    f"without `series`: {block}; with it: {one}")
    get["responses"]["400"] = _error("`series` is not one series name")
    get["responses"]["404"] = _error("a series this system does not follow (POLYMARKET_WINDOWS)")
    return op


def _history_window() -> dict:
    op = _get("The latest window's samples of one series (columns at most 2000 points; events and "
              "slices whole)", "HistoryWindow", bad_request=True,
              unavailable="compute has no sample of that series yet",
              params=[{"name": "series", "in": "query", "required": True, "schema": SERIES,
                       "description": "may be left out only when exactly one series is followed"}])
    op["get"]["responses"]["400"] = _error("`series` is not one series name, or missing with several followed")
    op["get"]["responses"]["404"] = _error("a series this system does not follow (or none is followed)")
    return op


def build_openapi(max_body_bytes: int) -> dict:
    """The document (a plain dict, ready for JSON)."""
    paths = {
        "/health": _get("Liveness of every required actor and freshness of its data", "Health",
                        ok="every required actor is alive and its data fresh", also_503=True,
                        unavailable="some required actor is down or stale (see `problems`)"),
        "/state": _get("Data quality and every actor's heartbeat", "State"),
        "/latest/features": _latest("features", "Features"),
        "/latest/bars": _latest("bars (current and recently closed)", "Bars"),
        "/latest/polymarket": _by_series("Polymarket windows and books", "Polymarket", "PolymarketSeries"),
        "/latest/edge": _by_series("fair value, edge and decision", "EdgeBlock", "Edge"),
        "/latest/book": _get("Top of book of one venue", "Book", bad_request=True,
                             unavailable="no quote of this venue yet",
                             params=[{"name": "venue", "in": "query", "required": True,
                                      "schema": {"enum": list(names.BINANCE_VENUES)}}]),
        "/history/window": _history_window(),
        "/history/market": _get("The market's 1 s samples over the last `minutes` (at most 2000 points)",
                                "HistoryMarket", bad_request=True, unavailable="compute has no market sample yet",
                                params=[{"name": "minutes", "in": "query", "required": False,
                                         "schema": {"type": "integer", "minimum": 1, "maximum": 240,
                                                    "default": 15}}]),
        "/metrics": {"get": {"summary": "Prometheus exposition of every actor and of the API",
                             "responses": {"200": {"description": "text exposition format 0.0.4",
                                                   "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "/stream": {"get": {
            "summary": "Server-Sent Events for the dashboard: hello, edge, features, bar, health (docs/api.md)",
            "responses": {
                "200": {"description": "an endless text/event-stream; each `data:` one JSON line",
                        "content": {"text/event-stream": {"schema": _obj(
                            {"event": {"enum": ["hello", "edge", "features", "bar", "health"]},
                             "data": {"type": "string", "description": "one JSON document"},
                             "retry": {"type": "integer"}},
                            description="one event (a `: ping` comment every 15 s)")}}},
                "503": _error("this worker already serves MAX_STREAM_CLIENTS streams (Retry-After)")}}},
        "/": {"get": {"summary": "Redirect to the dashboard",
                      "responses": {"308": {"description": "Location: /dashboard"}}}},
        "/dashboard": {"get": {"summary": "The dashboard page (read-only; it calls only GETs)",
                               "responses": {"200": {"description": "the page",
                                                     "content": {"text/html": {"schema": {"type": "string"}}}},
                                             "304": {"description": "If-None-Match matched its ETag"},
                                             "404": _error("the page is not installed")}}},
        "/static/{name}": {"get": {
            "summary": "One of the page's files (read at start; ETag, Cache-Control: no-cache)",
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"},
                            "description": "its path under the package's static directory, e.g. "
                                           "vendor/uplot/uPlot.iife.min.js"}],
            "responses": {"200": {"description": "the file, with its content type",
                                  "content": {"*/*": {"schema": {"type": "string"}}}},
                          "304": {"description": "If-None-Match matched its ETag"},
                          "404": _error("no such file")}}},
        "/openapi.json": {"get": {"summary": "This document",
                                  "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1")}}},
        "/control/anchor/reset": {"post": {
            "summary": "Reset the CVD / VWAP anchor (to now, or to `anchor_ns`)",
            "security": [{"bearer": []}],
            "requestBody": {"required": False, "content": {"application/json": {
                "schema": _ref("AnchorResetRequest")}}},
            "responses": {
                "200": _json(_ref("AnchorResetReply"), "compute applied it"),
                "400": _error("bad JSON, unknown keys or a bad anchor_ns"),
                "401": _error("missing or wrong bearer token"),
                "403": _error("control is disabled (API_TOKEN unset)"),
                "411": _error("a chunked body: send it with a Content-Length"),
                "413": _error(f"body over {max_body_bytes} bytes"),
                "415": _error("a body that is not application/json"),
                "502": _error("compute refused the request (its API_TOKEN differs from the API's, "
                              "or its handler failed): nothing was done"),
                "503": _error("compute did not answer in time (nothing was done)"),
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

"""/latest/edge and /latest/polymarket keyed by series: the whole block without a query, one series
with `?series=`; 400 for a name that is not a series, 404 for a series this system does not follow,
503 while there is nothing to serve; always a JSON error, never a 500."""
from __future__ import annotations

import orjson
import pytest
from falcon import testing

from actors.api import ShmView, create_app
from config.settings import load_settings
from ipc import names
from ipc.state import StateBlock
from tests.support.api import edge_doc, market_doc, poly_entry

T0 = 1_800_000_000 * 1_000_000_000
M15 = market_doc("15m", 1_799_999_100, 900)
M1H = market_doc("1h", 1_799_996_400, 3600, 65001.5)
EDGE = {"ts_ns": T0, "symbol": "BTCUSDT", "disabled": None,
        "series": {"15m": edge_doc("15m", T0, M15, fair_up=0.61), "1h": edge_doc("1h", T0, M1H, ptb_source="venue")}}
POLY = {"ts_ns": T0, "disabled": None, "series": {"15m": poly_entry(M15), "1h": poly_entry(M1H)},
        "counters": {"frames": 3}, "lookup_errors": {}}


def app(prefix, write=True, **kw):
    s = load_settings(shm_prefix=prefix, **{"polymarket_windows": "15m,1h", **kw})
    if write:
        for name, doc in ((names.EDGE_BLOCK, EDGE), (names.POLYMARKET_BLOCK, POLY)):
            StateBlock(s.ipc.shm_dir, s.ipc.shm_prefix, name, writer=True).write(doc)
    return testing.TestClient(create_app(ShmView(s), s))


def _error(r, status, title):
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"] == "application/json"
    assert r.json["title"] == title
    return r.json["description"]


def test_without_a_query_the_whole_block_as_stored(env):
    c = app(env[1])
    r = c.simulate_get("/latest/edge")
    assert r.status_code == 200 and r.json == orjson.loads(orjson.dumps(EDGE))
    assert set(r.json["series"]) == {"15m", "1h"}
    r = c.simulate_get("/latest/polymarket")
    assert r.status_code == 200 and r.json == orjson.loads(orjson.dumps(POLY))


def test_one_series(env):
    c = app(env[1])
    r = c.simulate_get("/latest/edge", params={"series": "1h"})
    assert r.status_code == 200 and r.json == orjson.loads(orjson.dumps(EDGE["series"]["1h"]))
    assert r.json["series"] == "1h" and r.json["price_to_beat"]["source"] == "venue"
    r = c.simulate_get("/latest/edge", params={"series": "15m"})
    assert r.json["fair"]["fast"] == 0.61 and r.json["window"] == "btc-updown-15m-1799999100"
    r = c.simulate_get("/latest/polymarket", params={"series": "1h"})
    assert r.status_code == 200
    assert r.json == {"ts_ns": T0, "series": "1h", "disabled": None,
                      **orjson.loads(orjson.dumps(POLY["series"]["1h"]))}
    assert r.json["window"]["rule"]["method"] == "candle" and r.json["window"]["price_to_beat"] == 65001.5


@pytest.mark.parametrize("query", ["series=2m", "series=", "series=15M", "series=15m&series=1h",
                                   "series=15m,1h", "series=%00", "series=1h%20"])
@pytest.mark.parametrize("path", ["/latest/edge", "/latest/polymarket"])
def test_not_a_series_name_is_400(env, path, query):
    desc = _error(app(env[1]).simulate_get(path, query_string=query), 400, "bad series")
    assert desc == "series must be one of 5m, 15m, 1h, 4h, 1d"


@pytest.mark.parametrize("path", ["/latest/edge", "/latest/polymarket"])
def test_a_series_not_followed_is_404(env, path):
    c = app(env[1])
    for series in ("5m", "4h", "1d"):
        desc = _error(c.simulate_get(path, params={"series": series}), 404, "series not followed")
        assert desc == f"{series} is not followed; followed: 15m, 1h (POLYMARKET_WINDOWS)"


def test_polymarket_off_every_series_is_404_with_the_reason(env):
    c = app(env[1], write=False, polymarket_enabled=False)
    desc = _error(c.simulate_get("/latest/edge", params={"series": "15m"}), 404, "series not followed")
    assert desc.startswith("15m is not followed; the Polymarket side is off: ")


def test_nothing_written_yet_is_503(env):
    c = app(env[1], write=False)
    _error(c.simulate_get("/latest/edge"), 503, "no data yet")
    _error(c.simulate_get("/latest/polymarket", params={"series": "15m"}), 503, "no data yet")
    # the block is there but not (yet) this followed series
    s = load_settings(shm_prefix=env[1], polymarket_windows="15m,1h")
    StateBlock(s.ipc.shm_dir, s.ipc.shm_prefix, names.EDGE_BLOCK, writer=True).write(
        {"ts_ns": T0, "symbol": "BTCUSDT", "disabled": None, "series": {"15m": EDGE["series"]["15m"]}})
    desc = _error(c.simulate_get("/latest/edge", params={"series": "1h"}), 503, "no data yet")
    assert desc == "edge has nothing for 1h yet"
    assert c.simulate_get("/latest/edge", params={"series": "15m"}).status_code == 200


def test_openapi_documents_the_series_parameter_and_its_errors(env):
    doc = app(env[1], write=False).simulate_get("/openapi.json").json
    for path, block, one in (("/latest/edge", "EdgeBlock", "Edge"),
                             ("/latest/polymarket", "Polymarket", "PolymarketSeries")):
        op = doc["paths"][path]["get"]
        assert op["parameters"] == [{"name": "series", "in": "query", "required": False,
                                     "schema": {"enum": list(names.POLY_SERIES),
                                                "description": "an up/down series (ipc.names.POLY_SERIES)"},
                                     "description": "one series' document instead of the whole block"}]
        assert set(op["responses"]) == {"200", "400", "404", "500", "503"}
        assert op["responses"]["200"]["content"]["application/json"]["schema"] == {
            "anyOf": [{"$ref": f"#/components/schemas/{block}"}, {"$ref": f"#/components/schemas/{one}"}]}


def test_served_documents_match_their_schemas(env):
    import jsonschema_rs
    c = app(env[1])
    comps = c.simulate_get("/openapi.json").json["components"]

    def errors(schema, inst):
        v = jsonschema_rs.Draft202012Validator({"$ref": f"#/components/schemas/{schema}", "components": comps})
        return [f"{e.instance_path}: {e.message}" for e in v.iter_errors(inst)]

    assert errors("EdgeBlock", c.simulate_get("/latest/edge").json) == []
    assert errors("Edge", c.simulate_get("/latest/edge", params={"series": "15m"}).json) == []
    assert errors("Polymarket", c.simulate_get("/latest/polymarket").json) == []
    assert errors("PolymarketSeries", c.simulate_get("/latest/polymarket", params={"series": "1h"}).json) == []
    # the schemas do pin something: a series document without its window is refused
    assert errors("PolymarketSeries", {"ts_ns": T0, "series": "1h", "books": {}}) != []
    assert errors("PolyWindow", {**M15, "price_to_beat_source": "gamma"}) != []

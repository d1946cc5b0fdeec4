"""A bench-only sender: serves pre-encoded aggTrade frames as fast as the client drains them.

The frames are real sim output (the sim's Market and codecs, the live field set of each venue:
USD-M futures, or spot with its `M` field and no `nq`). They are framed once as unmasked server
WebSocket frames and written to the transport in large blocks, so the sender costs little CPU and
the receiver is what is measured. Every connection on a data route (`/market…` for futures,
`/stream…` for spot, `/ws…`) gets the same stream: aggTrade ids run 1..N; other routes (the
futures `/public` route) are acked and silent, as on the venue. The market is generated for at
most GENERATED trades and cycled with ids continuing (the generator, not the encoding, is what
costs time to start). Run: python -m actors.bench.firehose PORT N_FRAMES [futures|spot]

The same port answers the USD-M REST metadata that peer clients (actors/bench/peers.py) fetch
before they subscribe: exchangeInfo for the sim's instrument (the live field set, values from the
instrument's grid), a fee-tier-0 account without balances and no open positions, time and ping.
Any other `/fapi` or `/api` path gets a Binance-style 404 error body, so a peer asking for more
fails loudly instead of hanging. Every REST answer closes its connection (no keep-alive).
"""
from __future__ import annotations

import asyncio
import struct
import sys
import time

GENERATED = 20_000


def make_frames(n: int, venue: str = "futures") -> list[bytes]:
    from actors.sim.binance.codec import FuturesCodec, combined
    from actors.sim.market import AggTrade, Market
    from actors.sim.binance.spot_market import SpotCodec
    m = Market(seed=7, trade_rate=5000, start_price=65000.0, start_ns=time.time_ns())
    codec = (FuturesCodec if venue == "futures" else SpotCodec)(m.instrument)
    events: list[AggTrade] = []
    now = m.next_emit_ns()
    while len(events) < min(n, GENERATED):
        now += 50_000_000
        events.extend(ev for ev in m.advance(now) if isinstance(ev, AggTrade))
    return [combined(codec.agg_stream, codec.agg_trade(events[i % len(events)]._replace(a=i + 1))).encode()
            for i in range(n)]


def _assets(symbol: str) -> tuple[str, str]:
    for quote in ("USDT", "USDC", "BUSD"):
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[:-len(quote)], quote
    raise ValueError(f"no quote asset in {symbol!r}")


def futures_exchange_info(instrument, server_time_ms: int) -> dict:
    """GET /fapi/v1/exchangeInfo for one perpetual: the live field set of a USD-M symbol entry,
    tick and step from the instrument's grid (the limits are the venue's BTCUSDT ones)."""
    from actors.sim.binance.codec import fmt_units
    base, quote = _assets(instrument.symbol)
    tick = fmt_units(instrument.tick_units, instrument.price_precision)
    step = fmt_units(instrument.lot_units, instrument.qty_precision)
    sym = {
        "symbol": instrument.symbol, "pair": instrument.symbol, "contractType": "PERPETUAL",
        "deliveryDate": 4133404802000, "onboardDate": 1569398400000, "status": "TRADING",
        "maintMarginPercent": "2.5000", "requiredMarginPercent": "5.0000", "baseAsset": base,
        "quoteAsset": quote, "marginAsset": quote, "pricePrecision": instrument.price_precision,
        "quantityPrecision": instrument.qty_precision, "baseAssetPrecision": 8, "quotePrecision": 8,
        "underlyingType": "COIN", "underlyingSubType": [], "settlePlan": 0, "triggerProtect": "0.0500",
        "liquidationFee": "0.012000", "marketTakeBound": "0.30",
        "filters": [
            {"minPrice": tick, "maxPrice": "1246396.60", "filterType": "PRICE_FILTER", "tickSize": tick},
            {"stepSize": step, "filterType": "LOT_SIZE", "maxQty": "1000", "minQty": step},
            {"stepSize": step, "filterType": "MARKET_LOT_SIZE", "maxQty": "1000", "minQty": step},
            {"limit": 200, "filterType": "MAX_NUM_ORDERS"},
            {"limit": 10, "filterType": "MAX_NUM_ALGO_ORDERS"},
            {"notional": "10", "filterType": "MIN_NOTIONAL"},
            {"multiplierDown": "0.5454", "multiplierUp": "1.1000", "multiplierDecimal": "4",
             "filterType": "PERCENT_PRICE"},
        ],
        "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET",
                       "TRAILING_STOP_MARKET"],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
    }
    return {"timezone": "UTC", "serverTime": server_time_ms, "futuresType": "U_MARGINED",
            "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
                           {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
                           {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300}],
            "exchangeFilters": [],
            "assets": [{"asset": quote, "marginAvailable": True, "autoAssetExchange": "-100"}],
            "symbols": [sym]}


def rest_answer(path: str, instrument, now_ms: int) -> tuple[int, bytes] | None:
    """(status, JSON body) of a REST path (query string ignored); None: not a REST path."""
    import orjson
    route = path.split("?", 1)[0]
    if not route.startswith(("/fapi/", "/api/")):
        return None
    if route == "/fapi/v1/exchangeInfo":
        body: object = futures_exchange_info(instrument, now_ms)
    elif route in ("/fapi/v2/account", "/fapi/v3/account"):
        body = {"feeTier": 0, "canTrade": True, "canDeposit": True, "canWithdraw": True,
                "updateTime": 0, "assets": [], "positions": []}
    elif route in ("/fapi/v2/positionRisk", "/fapi/v3/positionRisk"):
        body = []
    elif route == "/fapi/v1/time":
        body = {"serverTime": now_ms}
    elif route == "/fapi/v1/ping":
        body = {}
    else:
        return 404, orjson.dumps({"code": -5000, "msg": f"Path {route}, Method GET is invalid"})
    return 200, orjson.dumps(body)


def ws_frame(payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return bytes((0x81, 126)) + struct.pack("!H", n) + payload
    return bytes((0x81, 127)) + struct.pack("!Q", n) + payload


async def serve(port: int, n: int, venue: str = "futures", ready: asyncio.Future | None = None) -> None:
    from websockets.asyncio.server import serve as ws_serve
    blob_frames = [ws_frame(f) for f in make_frames(n, venue)]
    blocks = [b"".join(blob_frames[i:i + 512]) for i in range(0, n, 512)]

    async def handler(conn):
        if not conn.request.path.startswith(("/market", "/ws", "/stream")):
            await conn.wait_closed()       # other routes: acked and silent, as on the venue
            return
        tr = conn.transport
        # flow control by the transport's pause/resume (the connection's drain), not by polling the
        # buffer: a short sleep under uvloop spins, and took half a core from the receiver measured
        tr.set_write_buffer_limits(high=4 << 20)
        for block in blocks:
            tr.write(block)
            await conn.drain()
        await conn.wait_closed()

    from actors.sim.market import FUTURES_BTCUSDT
    from websockets.datastructures import Headers
    from websockets.http11 import Response

    def process_request(conn, request):
        answer = rest_answer(request.path, FUTURES_BTCUSDT, time.time_ns() // 1_000_000)
        if answer is None:
            return None                    # a WebSocket route
        status, body = answer
        return Response(status, "OK" if status == 200 else "Not Found",
                        Headers([("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                                 ("Connection", "close")]), body)

    async with ws_serve(handler, "127.0.0.1", port, compression=None, ping_interval=None,
                        process_request=process_request) as server:
        if ready is not None:
            ready.set_result(server.sockets[0].getsockname()[1])
        await asyncio.Future()


if __name__ == "__main__":
    import uvloop
    uvloop.run(serve(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "futures"))

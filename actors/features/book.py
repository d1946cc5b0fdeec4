"""Top-of-book features from a bookTicker record. Pure.

mid = (bid + ask) / 2; spread_bps = (ask − bid) / mid · 1e4;
microprice = (bid·ask_qty + ask·bid_qty) / (bid_qty + ask_qty), the size-weighted mid that leans
toward the side with less resting size; imbalance = (bid_qty − ask_qty) / (bid_qty + ask_qty).
A crossed or empty quote yields nulls with a reason.
"""
from __future__ import annotations


def top_of_book(bid: float, bid_qty: float, ask: float, ask_qty: float) -> dict:
    if not (bid > 0 and ask > 0):
        return {"mid": None, "microprice": None, "spread_bps": None, "imbalance": None,
                "reason": "empty quote"}
    if ask < bid:
        return {"mid": None, "microprice": None, "spread_bps": None, "imbalance": None,
                "reason": "crossed quote"}
    mid = (bid + ask) / 2
    depth = bid_qty + ask_qty
    out = {"mid": mid, "spread_bps": (ask - bid) / mid * 1e4, "bid": bid, "ask": ask,
           "bid_qty": bid_qty, "ask_qty": ask_qty}
    if depth > 0:
        out["microprice"] = (bid * ask_qty + ask * bid_qty) / depth
        out["imbalance"] = (bid_qty - ask_qty) / depth
    else:
        out.update(microprice=None, imbalance=None, reason="zero size at the top")
    return out

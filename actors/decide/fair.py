"""Fair value: the probability that the current window resolves Up. Pure functions plus two small
incremental estimators. No scipy: Φ(z) = erfc(−z/√2)/2 (math.erfc, accurate in both tails).

Model. x_u = ln S_u, the log of the settlement-source (Chainlink) price, is a Brownian motion with
volatility σ per √second (the Volatility features' unit) and an optional drift rate μ (log per
second): x_u = x_t + μ·(u − t) + σ·W_{u−t}. The convexity term −σ²/2 of a price martingale is
left out (its effect on the z-score is σ·√τ/2, ~1e−3 at σ = 1e−4/√s, τ = 900 s). The window
resolves Up on X ≥ ln S0, S0 the price to beat, X the log of the settlement value. With the mean
m and variance v of X seen from now:
    P(Up) = Φ((m − ln S0) / √v),
and as limits: v = 0 → 1 if m ≥ ln S0 else 0 (the tie S_T = S0 is Up).

Point settlement (the price at the window end T, τ = T − t seconds left):
    m = ln S + μ·τ,  v = σ²·τ          → prob_up(s, s0, σ, τ, drift = μ·τ)
i.e. DESIGN.md's Φ((ln(S/S0) + drift) / (σ·√τ)).

TWAP settlement (twapEnabled: the settlement value is the mean of the Chainlink observations in
the last L = twap_lookback_sec seconds, (T − L, T], one a second: settlement.twap_mean). The model
takes that mean as the time average of the price over the span, and the arithmetic average of
prices as the average of log prices, X = (1/L)·∫_{T−L}^{T} x_u du (geometric ≈ arithmetic: they
differ by O(σ²·L), ~1e−6 relative at σ = 1e−4/√s, L = 60 s, far below the resolution of S0). With
∫_0^a W_v dv ~ N(0, a³/3) and W's independent increments:
- τ ≥ L (averaging not started; d = τ − L until it starts):
      X = x_t + μ·(d + L/2) + σ·W_d + (σ/L)·∫_0^L W'_v dv
      m = ln S + μ·(τ − L/2),   v = σ²·(τ − L + L/3) = σ²·(τ − 2L/3);
- 0 < τ < L (inside it; e = L − τ seconds already averaged, A the running average: the mean of
  the Chainlink observations in (T − L, t], by the settlement's own definition (about e of them),
  ln A standing for their log-average):
      X = (e·ln A + τ·x_t)/L + (μ/L)·τ²/2 + (σ/L)·∫_0^τ W_v dv
      m = (e·ln A + τ·ln S)/L + μ·τ²/(2L),   v = σ²·τ³/(3·L²).
Both branches meet at τ = L (m = ln S + μ·L/2, v = σ²·L/3), and v → 0 as τ → 0: the average
is then known. `twap_moments` returns (m − ln S, v) ("shift" and variance);
`twap_prob_up` the probability. τ_eff = v/σ² is the point-settlement τ with the same variance.

Drift from the bias: μ = drift_k · bias_score · σ (per second; σ·1/√(1 s)), so that over τ the
mean moves by drift_k·bias·σ·τ — a shift of drift_k·bias·√τ in z for point settlement. None or
drift_k = 0 → μ = 0.

SettlementPrice (the Chainlink price now, estimated). Paired samples: each Chainlink observation
(t_i, CL_i) with the Binance price at the same time B(t_i) (the caller's lookup) gives a log-basis
x_i = ln(CL_i / B(t_i)). Its EWMA on observation time, half-life H seconds, normalised as in
volatility.Ewma (no seed invented): with λ_i = 2^(−(t_i − t_{i−1})/H),
    S_i = λ_i·S_{i−1} + x_i,  W_i = λ_i·W_{i−1} + 1,  b = S_n / W_n.
The estimate, from the last Chainlink value CL (at t_c) carried by the Binance move since:
    S = CL · (B_now / B(t_c)) · exp(−k·(x_c − b)),   x_c = ln(CL / B(t_c)),
k = basis_shrink ∈ [0, 1]: k = 1 replaces the last observation's own (noisy) basis by its EWMA
(S = B_now·exp(b)); k = 0 is the plain carry-forward. B_now is the microprice in fast mode and an
EWMA-smoothed Binance price (PriceSmoother) in smooth mode; the lookup should serve the same
series as B_now's raw input. A Chainlink observation without a Binance price at its time keeps
the previous pair (counted in `unpaired`). None with a reason before the first paired
observation, or when the last one is older than `max_age_sec` (if set).

PriceSmoother: the EWMA of ln B on time, half-life H seconds: y ← y + (1 − 2^(−Δt/H))·(ln B − y),
first sample taken as is; value exp(y).

TwapTracker: A, the mean of the Chainlink observations in (T − L, now] (settlement.twap_mean,
the same function the settlement uses, so at now = T the running average is the settlement
value); a window's tracker starts from every observation already seen in its span (a restart
inside the span loses nothing the history holds). Before the span's first observation has
arrived (its first ~2 s, e/L of the weight) there is no A and the averaged part is taken at S
itself (`twap_avg` None; the shift (e/L)·ln(A/S) is then 0).

Settlement: the averaging span (T − L, T] and the tie (S_T = S0 is Up) are
actors/decide/settlement.py's one rule, the same the strategy, the backtest and calibrate use.
Once the window has ended the snapshot prices nothing ("window ended"); the caller settles it
by that rule (settlement.settle, from the observations in `history`).

The settlement source. A window's `rule` (settlement.Rule) says what it settles on. Chainlink
(point or TWAP): S is the Chainlink estimate above. A Binance candle (hourly "candle": close ≥
open of the candle the window spans; daily "candle_close": the close of the 1m candle opening at
the end): the settlement source is the candle's own market, so S is that market's price, given
by the caller (`source_price`, fast and smooth), with no Chainlink basis; point settlement at T
(the end; for "candle_close" the end of that last 1m candle, T = end + 60 s). A window without a
rule (tests) settles as its `twap_enabled` / `twap_lookback_sec` say, on Chainlink.

Parameters (settings): FAIR_BASIS_HALFLIFE_SEC, FAIR_SMOOTH_HALFLIFE_SEC, FAIR_DRIFT_K; the basis
shrink k is BASIS_SHRINK (proposed FAIR_BASIS_SHRINK). FAIR_CHAINLINK_MAX_AGE_SEC is not a fair
value input: a Chainlink value older than it (receive time) vetoes the decision
(actors/decide/edge.py "chainlink_stale"), so the fair value is still shown.
"""
from __future__ import annotations

import math
from collections import deque
from typing import Callable, Iterable

from actors.decide import settlement

SEC_NS = settlement.SEC_NS
BASIS_SHRINK = 1.0            # k = 1: the basis EWMA replaces the last observation's own basis
SETTLE_HISTORY = 1_800        # Chainlink observations kept to settle the last window (~1 per s)
_SQRT2 = math.sqrt(2.0)


def phi(z: float) -> float:
    """Standard normal CDF, Φ(z) = erfc(−z/√2)/2."""
    return 0.5 * math.erfc(-z / _SQRT2)


def _prob(shift: float, var: float) -> float:
    """P(N(shift, var) ≥ 0); var = 0 → step with the tie counted as Up."""
    if not var > 0.0:
        return 1.0 if shift >= 0.0 else 0.0
    return phi(shift / math.sqrt(var))


def prob_up(s: float, s0: float, sigma_per_sqrt_s: float, tau_s: float,
            drift: float = 0.0) -> float:
    """Φ((ln(S/S0) + drift) / (σ·√τ)); τ ≤ 0 or σ = 0 → 1.0 if ln(S/S0) + drift ≥ 0 else 0.0
    (at τ ≤ 0 the drift is ignored: the outcome is S ≥ S0)."""
    if not (s > 0 and s0 > 0):
        raise ValueError(f"prices must be > 0, got s={s}, s0={s0}")
    if sigma_per_sqrt_s < 0:
        raise ValueError(f"sigma must be ≥ 0, got {sigma_per_sqrt_s}")
    if tau_s <= 0:
        return 1.0 if settlement.up_wins(s, s0) else 0.0
    return _prob(math.log(s / s0) + drift, sigma_per_sqrt_s * sigma_per_sqrt_s * tau_s)


def twap_moments(tau_s: float, lookback_s: float, sigma_per_sqrt_s: float,
                 drift_rate: float = 0.0, s: float | None = None,
                 running_avg: float | None = None) -> tuple[float, float]:
    """(m − ln S, v) of the log-TWAP settlement (module docstring). For τ < L the fixed part needs
    `s` and `running_avg` (A); for τ ≥ L they are unused. τ ≤ 0 → (ln A − ln S, 0)."""
    L = float(lookback_s)
    if not L > 0:
        raise ValueError(f"lookback must be > 0, got {lookback_s}")
    sig2 = sigma_per_sqrt_s * sigma_per_sqrt_s
    if tau_s >= L:
        return drift_rate * (tau_s - L / 2.0), sig2 * (tau_s - L + L / 3.0)
    if s is None or running_avg is None or not (s > 0 and running_avg > 0):
        raise ValueError("inside the averaging window s and running_avg (> 0) are needed")
    tau = max(tau_s, 0.0)
    e = L - tau
    # m − ln S = (e·ln A + τ·ln S)/L − ln S + μτ²/(2L) = (e/L)·ln(A/S) + μτ²/(2L)
    shift = (e / L) * math.log(running_avg / s) + drift_rate * tau * tau / (2.0 * L)
    return shift, sig2 * tau ** 3 / (3.0 * L * L)


def twap_prob_up(s: float, s0: float, sigma_per_sqrt_s: float, tau_s: float, lookback_s: float,
                 running_avg: float | None = None, drift_rate: float = 0.0) -> float:
    """P(log-TWAP over the last `lookback_s` seconds ≥ ln S0), `running_avg` = A, the mean of the
    Chainlink observations in (T − L, t] (needed once τ < L)."""
    if not (s > 0 and s0 > 0):
        raise ValueError(f"prices must be > 0, got s={s}, s0={s0}")
    shift, var = twap_moments(tau_s, lookback_s, sigma_per_sqrt_s, drift_rate, s, running_avg)
    return _prob(math.log(s / s0) + shift, var)


def _twap(window) -> tuple[bool, int]:
    """(TWAP settlement?, lookback s) of a window: its rule's, else its own flags."""
    rule = getattr(window, "rule", None)
    if rule is not None:
        twap = rule.source == "chainlink" and rule.method == "twap" and rule.twap_lookback_sec > 0
        return twap, int(rule.twap_lookback_sec) if twap else 0
    twap = bool(window.twap_enabled) and window.twap_lookback_sec > 0
    return twap, int(window.twap_lookback_sec) if twap else 0


# ------------------------------------------------------------------------------------------------
# incremental estimators
# ------------------------------------------------------------------------------------------------

class PriceSmoother:
    """EWMA of ln(price) on time (module docstring)."""

    def __init__(self, halflife_sec: float):
        if not halflife_sec > 0:
            raise ValueError(f"half-life must be > 0, got {halflife_sec}")
        self.halflife_sec = float(halflife_sec)
        self.y: float | None = None
        self.ts_ns: int | None = None

    def update(self, ts_ns: int, price: float) -> float | None:
        if not price > 0:
            return self.value
        x = math.log(price)
        if self.y is None:
            self.y = x
        elif ts_ns > self.ts_ns:
            a = 1.0 - 2.0 ** (-(ts_ns - self.ts_ns) / SEC_NS / self.halflife_sec)
            self.y += a * (x - self.y)
        else:                    # same or older timestamp: no time has passed, nothing moves
            return self.value
        self.ts_ns = ts_ns
        return self.value

    @property
    def value(self) -> float | None:
        return None if self.y is None else math.exp(self.y)


class SettlementPrice:
    """The Chainlink price now: last value × Binance move since, basis EWMA (module docstring)."""

    def __init__(self, basis_halflife_sec: float = 300.0, basis_shrink: float = 1.0,
                 binance_at: Callable[[int], float | None] | None = None,
                 max_age_sec: float | None = None):
        if not basis_halflife_sec > 0:
            raise ValueError(f"half-life must be > 0, got {basis_halflife_sec}")
        if not 0.0 <= basis_shrink <= 1.0:
            raise ValueError(f"basis_shrink must be in [0, 1], got {basis_shrink}")
        self.halflife_sec = float(basis_halflife_sec)
        self.shrink = float(basis_shrink)
        self.binance_at = binance_at
        self.max_age_sec = max_age_sec
        self.reset()

    def reset(self) -> None:
        self.s = self.w = 0.0
        self.cl: float | None = None          # last paired Chainlink value
        self.cl_ts_ns: int | None = None
        self.b_at_cl: float | None = None     # Binance price at cl_ts_ns
        self.last_ts_ns: int | None = None    # newest Chainlink observation seen (paired or not)
        self.pairs = 0
        self.unpaired = 0
        self.late = 0

    def on_chainlink(self, ts_ns: int, price: float, binance_price: float | None = None) -> bool:
        """One Chainlink observation; `binance_price` = B(ts_ns), else looked up. True if paired.
        An observation not newer than the last one is ignored (a repeat or late: counted)."""
        if self.last_ts_ns is not None and ts_ns <= self.last_ts_ns:
            if ts_ns < self.last_ts_ns:
                self.late += 1
            return False
        self.last_ts_ns = ts_ns
        if binance_price is None and self.binance_at is not None:
            binance_price = self.binance_at(ts_ns)
        if not (price > 0 and binance_price is not None and binance_price > 0):
            self.unpaired += 1
            return False
        x = math.log(price / binance_price)
        lam = (1.0 if self.cl_ts_ns is None
               else 2.0 ** (-(ts_ns - self.cl_ts_ns) / SEC_NS / self.halflife_sec))
        self.s = lam * self.s + x
        self.w = lam * self.w + 1.0
        self.cl, self.cl_ts_ns, self.b_at_cl = float(price), ts_ns, float(binance_price)
        self.pairs += 1
        return True

    @property
    def basis(self) -> float | None:
        """b, the EWMA of ln(CL/B)."""
        return self.s / self.w if self.w > 0 else None

    def estimate(self, now_ns: int, b_now: float | None) -> tuple[float | None, str | None]:
        """(S, None) or (None, reason)."""
        if self.cl is None:
            return None, "no Chainlink observation paired with a Binance price yet"
        if (self.max_age_sec is not None
                and (now_ns - self.cl_ts_ns) / SEC_NS > self.max_age_sec):
            return None, (f"Chainlink stale: {(now_ns - self.cl_ts_ns) / SEC_NS:.1f} s "
                          f"> {self.max_age_sec} s")
        if b_now is None or not b_now > 0:
            return None, "no Binance price"
        x_c = math.log(self.cl / self.b_at_cl)
        return self.cl * (b_now / self.b_at_cl) * math.exp(-self.shrink * (x_c - self.basis)), None

    def snapshot(self, now_ns: int | None = None) -> dict:
        return {"chainlink": self.cl, "chainlink_ts_ns": self.cl_ts_ns,
                "binance_at_chainlink": self.b_at_cl, "basis": self.basis,
                "basis_bps": None if self.basis is None else self.basis * 1e4,
                "pairs": self.pairs, "unpaired": self.unpaired, "late": self.late,
                "chainlink_age_ms": (None if now_ns is None or self.cl_ts_ns is None
                                     else (now_ns - self.cl_ts_ns) / 1e6)}


class TwapTracker:
    """The running TWAP of one window: the mean of the Chainlink observations in (T − L, now],
    settlement.twap_mean (module docstring). Keeps the observations of its span only."""

    def __init__(self):
        self.reset_window(None)

    def reset_window(self, start_ns: int | None, end_ns: int | None = None,
                     history: Iterable[tuple[int, float]] = ()) -> None:
        """The span (start_ns, end_ns] (start_ns = T − L; None: no TWAP window), seeded with the
        observations already seen in it (`history`, in time order)."""
        self.start_ns, self.end_ns = start_ns, end_ns
        self.obs: list[tuple[int, float]] = []
        for ts_ns, price in history:
            self.on_value(ts_ns, price)

    def on_value(self, ts_ns: int, price: float) -> None:
        """One observation; kept if it is in the span and newer than the last one kept."""
        if self.start_ns is None or ts_ns <= self.start_ns or \
                (self.end_ns is not None and ts_ns > self.end_ns):
            return
        if not self.obs or ts_ns > self.obs[-1][0]:
            self.obs.append((ts_ns, price))

    def average(self, now_ns: int) -> float | None:
        """A at now: the mean of the observations in (T − L, min(now, T)]; None before the first."""
        if self.start_ns is None:
            return None
        hi = now_ns if self.end_ns is None else min(now_ns, self.end_ns)
        return settlement.twap_mean(self.obs, self.start_ns, hi)


class FairValue:
    """P(Up) in fast and smooth modes for the current window (module docstring)."""

    def __init__(self, basis_halflife_sec: float = 300.0, basis_shrink: float = BASIS_SHRINK,
                 binance_at: Callable[[int], float | None] | None = None,
                 chainlink_max_age_sec: float | None = None):
        self.settle = SettlementPrice(basis_halflife_sec, basis_shrink, binance_at,
                                      chainlink_max_age_sec)
        self.twap = TwapTracker()
        self.history: deque[tuple[int, float]] = deque(maxlen=SETTLE_HISTORY)
        self._window_key: tuple | None = None

    @classmethod
    def from_settings(cls, s, binance_at: Callable[[int], float | None] | None = None) -> "FairValue":
        return cls(basis_halflife_sec=s.decisions.fair_basis_halflife_sec, basis_shrink=BASIS_SHRINK,
                   binance_at=binance_at)

    def on_chainlink(self, ts_ns: int, price: float, binance_price: float | None = None) -> None:
        self.settle.on_chainlink(ts_ns, price, binance_price)
        self.twap.on_value(ts_ns, price)
        if not self.history or ts_ns > self.history[-1][0]:
            self.history.append((ts_ns, price))

    def _sync_window(self, window) -> None:
        twap, L = _twap(window)
        key = (window.start_s, window.end_s, twap, L)
        if key != self._window_key:
            self._window_key = key
            end = window.end_s * SEC_NS
            if twap:
                self.twap.reset_window(settlement.twap_start_ns(end, L), end, self.history)
            else:
                self.twap.reset_window(None)

    def snapshot(self, now_ns: int, window, price_to_beat: float | None,
                 chainlink: tuple[int, float] | None = None,
                 binance_price_fast: float | None = None,
                 binance_price_smooth: float | None = None, sigma_fast: float | None = None,
                 sigma_blend: float | None = None, bias_score: float | None = None,
                 drift_k: float = 0.0, source_price: dict | None = None) -> dict:
        """`chainlink` = the newest (ts_ns, price) observation (fed once; repeats ignored), for
        callers that do not feed `on_chainlink` themselves (the engine does). `source_price`
        ({"fast", "smooth"}) is the settlement source's own price for a window that does not
        settle on Chainlink (module docstring); it replaces the Chainlink estimate."""
        out = {"fast": None, "smooth": None, "tau_s": None, "tau_eff_s": None,
               "s": {"fast": None, "smooth": None}, "s0": price_to_beat,
               "sigma": {"fast": sigma_fast, "smooth": sigma_blend}, "twap": False,
               "twap_lookback_sec": None, "twap_avg": None,
               "drift_rate": {"fast": None, "smooth": None},
               "settlement": None, "reason": None}
        if window is None:
            out["reason"] = "no window"
            return out
        self._sync_window(window)
        if chainlink is not None:
            self.on_chainlink(int(chainlink[0]), float(chainlink[1]))
        out.update(self.settle.snapshot(now_ns))
        twap, L = _twap(window)
        L = float(L) if twap else None
        out["twap"], out["twap_lookback_sec"] = twap, L
        direct = source_price is not None
        out["source"] = "chainlink" if not direct else getattr(window.rule, "source", "direct")
        start_ns, end_ns = window.start_s * SEC_NS, window.end_s * SEC_NS
        if now_ns < start_ns:
            out["reason"] = "window not started"
            return out
        if now_ns >= end_ns:
            out["reason"] = "window ended"      # settled by the caller (settlement.settle)
            return out
        rule = getattr(window, "rule", None)
        tau = ((settlement.settles_at_ns(rule, end_ns) if rule is not None else end_ns) - now_ns) / SEC_NS
        out["tau_s"] = tau
        if price_to_beat is None or not price_to_beat > 0:
            out["reason"] = "no price to beat"
            return out
        # the point-settlement horizon with the same variance: v = σ²·τ_eff
        out["tau_eff_s"] = (tau if not twap else tau - 2.0 * L / 3.0 if tau >= L
                            else tau ** 3 / (3.0 * L * L))
        avg = None
        if twap and tau < L:
            avg = self.twap.average(now_ns)
            out["twap_avg"] = avg
        reasons = []
        for mode, b_now, sigma in (("fast", binance_price_fast, sigma_fast),
                                   ("smooth", binance_price_smooth, sigma_blend)):
            if direct:
                s = source_price.get(mode)
                s, why = (s, None) if s is not None and s > 0 else (None, "no settlement-source price")
            else:
                s, why = self.settle.estimate(now_ns, b_now)
            out["s"][mode] = s
            if s is None:
                reasons.append(f"{mode}: {why}")
                continue
            if sigma is None or not sigma >= 0:
                reasons.append(f"{mode}: no sigma")
                continue
            mu = drift_k * bias_score * sigma if (bias_score is not None and drift_k) else 0.0
            out["drift_rate"][mode] = mu
            if twap:
                # no observation in the span yet: its first ~2 s are taken at S (module docstring)
                out[mode] = twap_prob_up(s, price_to_beat, sigma, tau, L, s if avg is None else avg, mu)
            else:
                out[mode] = prob_up(s, price_to_beat, sigma, tau, mu * tau)
        if reasons:
            out["reason"] = "; ".join(reasons)
        return out

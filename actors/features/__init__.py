"""Pure feature math (arrays in, numbers out). See each module's docstring for its definitions."""
from __future__ import annotations

import numpy as np


def seq_sum(start: float, x: np.ndarray) -> float:
    """`start + x[0] + x[1] + …` added strictly left to right.

    numpy's `sum` adds pairwise, so a running total fed in chunks would depend on where the chunks
    were cut (which records one tick happened to read); a sequential accumulate gives the same
    float however the stream is split, so a replay reproduces live values bit for bit.
    """
    if len(x) == 0:
        return start
    return float(np.add.accumulate(np.concatenate(((start,), x)))[-1])

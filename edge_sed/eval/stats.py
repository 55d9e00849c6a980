"""Mean ± sd over seeds, runs or levels: the one helper every table uses."""

import math

import numpy as np


def mean_sd(values) -> dict:
    """``{"mean", "sd", "n", "values"}`` over the values that are numbers (None and NaN are left
    out but kept in ``values``). sd is the sample standard deviation (ddof=1); it is None when
    fewer than two values remain, because one value says nothing about the spread."""
    values = list(values)
    v = [x for x in values if x is not None and not (isinstance(x, float) and math.isnan(x))]
    if not v:
        return {"mean": None, "sd": None, "n": 0, "values": values}
    a = np.asarray(v, np.float64)
    sd = float(a.std(ddof=1)) if len(a) > 1 else None
    return {"mean": float(a.mean()), "sd": sd, "n": len(a), "values": values}


def fmt_stat(s: dict | None, digits: int = 3, pct: bool = False, missing: str = "n/a") -> str:
    """How a mean ± sd cell is printed: "0.412 ± 0.031", just the mean when there is no sd."""
    if not s or s.get("mean") is None:
        return missing
    k = 100 if pct else 1
    text = f"{s['mean'] * k:.{digits}f}"
    if s.get("sd") is not None:
        text += f" ± {s['sd'] * k:.{digits}f}"
    return text + ("%" if pct else "")

"""Pipeline faults at a feature (the ``data_quality`` cause): what an upstream bug does to a column.

Each check compares one feature of the current rows with the same feature of the reference and
names what changed; each finding has an ``effect`` (a share of current rows, in [0, 1]) and a
``p_value`` where a test applies:

* ``null_spike``: the null rate rose. One-sided two-proportion z-test (pooled variance), effect =
  ``rate_cur - rate_ref``.
* ``scale_change``: values moved by a power of ten (a unit bug: grams for kilograms, cents for
  euros). For each ``k`` in ``SCALE_POWERS``, the rows that lie outside the reference's central
  range ``[q_0.001, q_0.999]`` but fall inside it once divided by ``10^k``; effect = their share
  minus the reference's own share of such rows, for the ``k`` maximising share x (1 - KS) where
  KS is the distance of those rows, scaled back, to the reference (at most 0.25). A whole-column bug has
  effect ~1, a bug in one upstream source the share of rows it feeds.
* ``unseen_categories``: a categorical feature takes values the reference never had; effect = the
  share of current rows holding them (the values are listed, most frequent first).
* ``constant``: a feature that varied in the reference is stuck on one value now (90% of the
  non-null rows or more), or a value it had is filled in for many more rows (a default put in by
  a failing lookup: a rise of 25 points or more, the other values' mix unchanged, chi-square
  p >= 0.001; a whole mix that moves is ``covariate_shift``); effect = the share of rows holding
  the current mode minus the reference share of that value.
* ``type_change``: a numeric feature arrives as text (``"12.5"``, ``"n/a"``) or a categorical one
  as numbers; effect = the share of non-null rows of the other type.

Significance: a finding needs ``effect >= min_effect`` and at least ``min_rows`` affected rows;
the z-test guards the null spike (p < ``alpha``). These are gross faults, visible in a few
hundred rows; drift of the values themselves is ``covariate_shift``, not a pipeline fault.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from detectors.result import as_float

__all__ = ["QualityFinding", "SCALE_POWERS", "affected_rows", "data_quality"]

SCALE_POWERS = (1, 2, 3, 6, 9, -1, -2, -3, -6, -9)


@dataclass(frozen=True, slots=True)
class QualityFinding:
    """One pipeline fault at one feature.

    >>> f = QualityFinding("price", "scale_change", 0.98, 0.0, {"factor": 1000.0})
    >>> QualityFinding.from_dict(f.to_dict()) == f
    True
    """

    feature: str
    check: str
    effect: float
    p_value: float
    detail: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"feature": self.feature, "check": self.check, "effect": float(self.effect),
                "p_value": float(self.p_value), "detail": dict(self.detail)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> QualityFinding:
        return cls(str(d["feature"]), str(d["check"]), as_float(d["effect"]), as_float(d["p_value"]),
                   dict(d.get("detail", {})))


def _is_numeric(s: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype))


def _null_spike(name: str, ref: pd.Series, cur: pd.Series, alpha: float) -> QualityFinding | None:
    from scipy import stats

    n_r, n_c = len(ref), len(cur)
    k_r, k_c = int(ref.isna().sum()), int(cur.isna().sum())
    p_r, p_c = k_r / n_r, k_c / n_c
    pooled = (k_r + k_c) / (n_r + n_c)
    se = np.sqrt(pooled * (1 - pooled) * (1 / n_r + 1 / n_c))
    p = float(stats.norm.sf((p_c - p_r) / se)) if se > 0 else (0.0 if p_c > p_r else 1.0)
    if p >= alpha:
        return None
    return QualityFinding(name, "null_spike", p_c - p_r, p, {"null_rate_reference": p_r, "null_rate_current": p_c,
                                                             "rows": k_c})


def _numbers(s: pd.Series) -> np.ndarray:
    return pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _scale_change(name: str, ref: np.ndarray, cur: np.ndarray) -> QualityFinding | None:
    ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    if len(ref) < 20 or len(cur) < 20:
        return None
    lo, hi = np.quantile(ref, [0.001, 0.999])
    if not hi > lo:
        return None

    from scipy import stats

    def moved(x: np.ndarray, k: int) -> np.ndarray:
        back = x / 10.0**k
        return ((x < lo) | (x > hi)) & (back >= lo) & (back <= hi)

    def fit(k: int) -> tuple[float, float]:
        """(share of rows moved by 10^k, KS distance of those rows scaled back to the reference)"""
        m = moved(cur, k)
        if m.sum() < 5:
            return 0.0, 1.0
        return float(m.mean()), float(stats.ks_2samp(cur[m] / 10.0**k, ref).statistic)

    # the power whose rows, scaled back, look like the reference (x1000 values divided by 10^6
    # also land in range, near 0, but do not look like it)
    fits = {k: fit(k) for k in SCALE_POWERS}
    best = max(SCALE_POWERS, key=lambda k: fits[k][0] * (1 - fits[k][1]))
    share_cur, ks = fits[best]
    share = share_cur - float(moved(ref, best).mean())
    if share <= 0 or ks > 0.25:
        return None
    return QualityFinding(name, "scale_change", share, float("nan"),
                          {"factor": 10.0**best, "power": best, "rows_share": share_cur, "ks_scaled_back": ks,
                           "reference_range": [float(lo), float(hi)]})


def _categories(s: pd.Series) -> pd.Series:
    return s.dropna().astype(str)


def _unseen(name: str, ref: pd.Series, cur: pd.Series) -> QualityFinding | None:
    seen = set(_categories(ref).unique())
    values = _categories(cur)
    if len(values) == 0:
        return None
    new = values[~values.isin(seen)]
    if len(new) == 0:
        return None
    top = new.value_counts().head(5)
    return QualityFinding(name, "unseen_categories", len(new) / len(cur), float("nan"),
                          {"values": [str(v) for v in top.index], "rows": int(len(new))})


def _others_unmoved(ref: pd.Series, cur: pd.Series, value: Any, alpha: float = 1e-3, top: int = 50) -> bool:
    """A default filled in for some rows leaves the other values' mix as it was: the rows it
    replaced are taken from every value alike. When the other values moved too (chi-square on
    their counts, the ``top`` most frequent reference values and the rest pooled, p < ``alpha``),
    the value's rise is a shift of the whole mix (``covariate_shift``), not a pipeline default."""
    from scipy.stats import chi2_contingency

    r, c = ref[ref != value], cur[cur != value]
    if len(r) < 20 or len(c) < 20:
        return True
    levels = r.value_counts().index[:top]
    r_counts = r.where(r.isin(levels), other="__rest__").value_counts()
    c_counts = c.where(c.isin(levels), other="__rest__").value_counts()
    table = pd.concat([r_counts, c_counts], axis=1).fillna(0).to_numpy()
    table = table[table.sum(axis=1) > 0]
    if table.shape[0] < 2:
        return True
    return bool(chi2_contingency(table)[1] >= alpha)


def _constant(name: str, ref: pd.Series, cur: pd.Series) -> QualityFinding | None:
    r, c = ref.dropna(), cur.dropna()
    if len(r) < 2 or len(c) < 2:
        return None
    r_counts = r.astype(str).value_counts() if r.dtype == object else r.value_counts()
    if len(r_counts) < 2:
        return None
    c_counts = c.astype(str).value_counts() if c.dtype == object else c.value_counts()
    mode = c_counts.index[0]
    key = str(mode)
    ref_by_text = {str(k): int(v) for k, v in r_counts.head(1000).items()}
    ref_mode = ref_by_text.get(key, 0)
    if ref_mode / len(r) > 0.5:  # the reference already mostly holds it
        return None
    share_cur = int(c_counts.iloc[0]) / len(cur)
    share_ref = ref_mode / len(ref)
    stuck = int(c_counts.iloc[0]) / len(c) >= 0.9  # (nearly) every row holds it
    defaulted = (share_ref > 0 and share_cur - share_ref >= 0.25  # a known value filled in for many rows
                 and _others_unmoved(r.astype(str) if r.dtype == object else r,
                                     c.astype(str) if c.dtype == object else c, mode))
    if not (stuck or defaulted):
        return None
    return QualityFinding(name, "constant", share_cur - share_ref, float("nan"),
                          {"value": key, "share_current": share_cur, "share_reference": share_ref,
                           "distinct_current": int(len(c_counts)), "distinct_reference": int(len(r_counts))})


def _type_change(name: str, ref: pd.Series, cur: pd.Series) -> QualityFinding | None:
    c = cur.dropna()
    if len(c) == 0:
        return None
    if _is_numeric(ref):
        if _is_numeric(cur):
            return None
        texts = c.map(lambda v: isinstance(v, (str, bytes)))
        share = float(texts.mean())
        if share == 0:
            return None
        examples = [str(v)[:40] for v in c[texts].head(3)]
        return QualityFinding(name, "type_change", share, float("nan"),
                              {"expected": "number", "got": "text", "examples": examples})
    if not _is_numeric(cur):
        return None
    ref_numbers = pd.to_numeric(ref.dropna(), errors="coerce").notna().mean() if len(ref.dropna()) else 0.0
    if ref_numbers > 0.5:  # numeric-looking categories (codes as strings): numbers are the same values
        return None
    return QualityFinding(name, "type_change", 1.0, float("nan"), {"expected": "category", "got": "number"})


def data_quality(reference: pd.DataFrame, current: pd.DataFrame, features: Sequence[str], *,
                 categorical: Sequence[str] = (), min_effect: float = 0.02, min_rows: int = 10,
                 alpha: float = 1e-3) -> list[QualityFinding]:
    """Every pipeline fault found in ``features``, largest effect first (see the module doc).

    A feature is categorical when listed in ``categorical`` or not numeric in the reference.

    >>> rng = np.random.default_rng(0)
    >>> ref = pd.DataFrame({"price": rng.lognormal(3, 0.3, 2000), "city": rng.choice(["a", "b"], 2000)})
    >>> cur = ref.assign(price=ref.price * 1000).iloc[:500]
    >>> [(f.feature, f.check, f.detail["factor"]) for f in data_quality(ref, cur, ["price", "city"])]
    [('price', 'scale_change', 1000.0)]
    """
    if len(reference) == 0 or len(current) == 0:
        raise ValueError("reference and current need rows")
    missing = [f for f in features if f not in reference.columns or f not in current.columns]
    if missing:
        raise ValueError(f"features not in both frames: {missing}")
    cats = set(categorical)
    found: list[QualityFinding] = []
    n = len(current)
    for name in features:
        ref, cur = reference[name], current[name]
        checks: list[QualityFinding | None] = [_null_spike(name, ref, cur, alpha), _type_change(name, ref, cur)]
        if _is_numeric(ref) and name not in cats:
            checks.append(_scale_change(name, ref.to_numpy(dtype=np.float64, na_value=np.nan), _numbers(cur)))
        else:
            checks.append(_unseen(name, ref, cur))
        checks.append(_constant(name, ref, cur))
        found += [f for f in checks if f is not None and f.effect >= min_effect and f.effect * n >= min_rows]
    return sorted(found, key=lambda f: -f.effect)


def affected_rows(findings: Sequence[QualityFinding], reference: pd.DataFrame, current: pd.DataFrame) -> np.ndarray:
    """Boolean mask of the ``current`` rows that a finding's fault touches (null where the
    reference had values, unseen values, values out of range that a power of ten brings back,
    text in a numeric column, the stuck value). The rest is what the model saw intact: the
    evaluate step measures ``P(y|x)`` there, since a broken input is not a change of concept.

    >>> ref = pd.DataFrame({"x": [1.0, 2.0, 3.0] * 20})
    >>> cur = pd.DataFrame({"x": [1.0, 2000.0, None]})
    >>> f = QualityFinding("x", "scale_change", 0.3, float("nan"), {"power": 3, "reference_range": [1.0, 3.0]})
    >>> affected_rows([f, QualityFinding("x", "null_spike", 0.3, 0.0)], ref, cur).tolist()
    [False, True, True]
    """
    hit = np.zeros(len(current), dtype=bool)
    for f in findings:
        if f.feature not in current.columns:
            continue
        col = current[f.feature]
        if f.check == "null_spike":
            hit |= col.isna().to_numpy()
        elif f.check == "unseen_categories":
            seen = set(_categories(reference[f.feature]).unique()) if f.feature in reference.columns else set()
            hit |= (col.notna() & ~col.astype(str).isin(seen)).to_numpy()
        elif f.check == "scale_change":
            lo, hi = f.detail.get("reference_range", [-np.inf, np.inf])
            x = _numbers(col)
            back = x / 10.0 ** float(f.detail.get("power", 0))
            hit |= ((x < lo) | (x > hi)) & (back >= lo) & (back <= hi)
        elif f.check == "type_change":
            hit |= col.map(lambda v: isinstance(v, (str, bytes))).to_numpy(dtype=bool)
        elif f.check == "constant":
            hit |= (col.astype(str) == str(f.detail.get("value"))).to_numpy()
    return hit

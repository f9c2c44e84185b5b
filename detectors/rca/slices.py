"""Slice discovery for root-cause analysis (the "narrow" step): which single columns and pairs
of columns hold the window's excess error.

A *slice* is a predicate ``col=value`` or a pair ``col1=v1 & col2=v2`` over reference-fixed
levels (:mod:`detectors.rca._encode`). For each candidate slice with support ``s`` (window rows),
error ``e_s`` (0/1 error rate or mean loss) and rest-of-window error ``e_r``:

* ``degradation = e_s - e_r`` and ``score = s * degradation``: the slice's errors in excess of
  what the rest's rate predicts (for 0/1 errors, a number of rows);
* a one-sided test that the slice is worse than the rest: for 0/1 errors the exact binomial
  test of the slice's error count against the rest's rate, ``P(X >= k)``,
  ``X ~ Binomial(s, e_r)`` (:func:`scipy.stats.binomtest` with ``alternative="greater"``); for
  numeric losses Welch's t-test of slice vs rest (:func:`scipy.stats.ttest_ind`,
  ``equal_var=False, alternative="greater"``);
* Benjamini-Hochberg across every candidate tested (:func:`scipy.stats.false_discovery_control`):
  ``significant`` is ``p_adjusted <= alpha``.

Assumptions and when it misleads: rows are independent given the slice. The binomial test
treats the rest's rate as known: accurate when the rest is much larger than the slice; for a
slice holding a large share ``f`` of the window it overstates the evidence (the z-statistic by
about ``sqrt(1 / (1 - f))``). Welch's test relies on the central limit theorem for the slice
mean (heavy-tailed losses need a larger ``min_support``). BH controls the false discovery rate
under independence or positive dependence (overlapping slices are positively dependent). A slice
is an association, not a cause: a slice can look worse because it is where the input shift is.

Search, bounded in memory and time: each column is encoded once to ``int8``/``int16`` codes;
single columns are ``np.bincount`` calls, pairs ``np.bincount(code_a * k_b + code_b)`` one column
pair at a time (memory ``O(rows)`` per pair, never the lattice of row masks); what is kept per
candidate is its counts and sums, ``O(levels^2)`` per column pair whatever the number of rows.

Pruning (safe for the top ``top_k``): a column pair is skipped only when, for every one of its
cells, (a) neither parent level is significant at ``alpha`` unadjusted, and (b) an upper bound of
the cell's score is below the current ``top_k``-th best score (0 while fewer than ``top_k``
positive scores are known). The bound uses only that a pair's support is at most each
parent's support and its errors at most each parent's errors: for 0/1 errors, with
``E`` errors in ``n`` rows, ``score = (k n - s E) / (n - s)`` grows with the error count ``k``
and, for ``k`` fixed, shrinks with ``s``, so ``score <= (k* n - s* E) / (n - s*)`` with
``k* = min(k_a, k_b)`` and ``s* = max(m, k*)`` (``m`` the effective minimum support); for losses
centred on the window mean,
``score = S n / (n - s)`` with ``S`` the slice's centred sum, so
``score <= min(P_a, P_b) n / (n - min(s_a, s_b))`` with ``P`` a parent's sum of positive centred
losses. A skipped pair can therefore never hold a slice that would have entered the top
``top_k`` by score. Its potentially eligible cells still count in ``tested`` (with p = 1 for BH,
which can only make BH more conservative).

Ranking: by score, best first, with one rule for specificity: a single-column slice P is listed
right after a pair C inside it that *explains* it, i.e. C is significant, carries at least half
of P's score, and P's remainder (P without C) is not worse than the window outside P at level
``alpha / tested`` (the same one-sided test). Without it the planted pair and its parents tie on
score (the parents' excess errors are exactly the pair's).

References: S. Sagadeeva & M. Boehm (2021), SliceLine: Fast, Linear-Algebra-based Slice Finding
for ML Model Debugging, SIGMOD; Y. Chung, T. Kraska, N. Polyzotis, K. H. Tae & S. E. Whang
(2019), Slice Finder: Automated Data Slicing for Model Validation, ICDE; Y. Benjamini &
Y. Hochberg (1995), JRSS B 57.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from detectors._checks import check_frame, check_int, check_real
from detectors.rca._encode import ColumnBins, fit_column
from detectors.rca._search import Column, Pool, level_stats, rank, search_pairs
from detectors.rca._stats import Totals, evaluate, interval
from detectors.result import as_float

__all__ = ["ColumnBins", "Slice", "SliceReport", "find_slices"]

Test = Literal["binomial", "welch"]


@dataclass(frozen=True, slots=True)
class Slice:
    """One slice of the window and how much worse it does than the rest.

    ``predicates`` are ``(column, level)`` pairs (in the order of ``columns`` given to
    :func:`find_slices`); ``error`` / ``rest_error`` are the slice's and the rest of the
    window's error rate (0/1 errors) or mean loss; ``score = support * degradation``;
    ``explained`` is the share of the window's drop against the reference that the slice accounts
    for, ``score / (n * (window error - reference error))`` (NaN without reference errors or when
    the window is not worse); ``ci`` is the Wilson interval of the slice's error rate (0/1) or the
    Student t interval of its mean loss; ``reference_support`` / ``reference_error`` are the same
    predicate's rows and error in the reference (NaN error without reference errors).

    >>> s = Slice((("region", "south"),), 120, 0.4, 0.1, 0.3, 36.0, 0.5, 1e-9, 2e-8, True, (0.32, 0.49), 100, 0.12)
    >>> s.label
    'region=south'
    >>> Slice.from_dict(s.to_dict()) == s
    True
    """

    predicates: tuple[tuple[str, str], ...]
    support: int
    error: float
    rest_error: float
    degradation: float
    score: float
    explained: float
    p_value: float
    p_adjusted: float
    significant: bool
    ci: tuple[float, float]
    reference_support: int
    reference_error: float

    @property
    def label(self) -> str:
        """``col=value`` predicates joined by `` & ``."""
        return " & ".join(f"{c}={v}" for c, v in self.predicates)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping of every field (``predicates`` and ``ci`` as lists)."""
        return {"predicates": [[c, v] for c, v in self.predicates], "support": int(self.support),
                "error": float(self.error), "rest_error": float(self.rest_error),
                "degradation": float(self.degradation), "score": float(self.score),
                "explained": float(self.explained), "p_value": float(self.p_value),
                "p_adjusted": float(self.p_adjusted), "significant": bool(self.significant),
                "ci": [float(self.ci[0]), float(self.ci[1])], "reference_support": int(self.reference_support),
                "reference_error": float(self.reference_error)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Slice:
        """Inverse of :meth:`to_dict` (``null`` floats read back as NaN)."""
        return cls(tuple((str(c), str(v)) for c, v in d["predicates"]), int(d["support"]), as_float(d["error"]),
                   as_float(d["rest_error"]), as_float(d["degradation"]), as_float(d["score"]),
                   as_float(d["explained"]), as_float(d["p_value"]), as_float(d["p_adjusted"]),
                   bool(d["significant"]), (as_float(d["ci"][0]), as_float(d["ci"][1])),
                   int(d["reference_support"]), as_float(d["reference_error"]))


@dataclass(frozen=True, slots=True)
class SliceReport:
    """The best slices of one window, best first, and how the search was run.

    ``n`` window rows with error ``error`` (rate or mean loss; ``reference_error`` the
    reference's, NaN without reference errors); ``tested`` candidates entered the BH correction
    (those pruned unevaluated included), ``pruned`` column pairs were skipped by the bound;
    ``min_support`` is the effective minimum rows per slice (and per rest); ``bins`` are the
    levels every column was cut into (:meth:`mask` selects a slice's rows in any frame).

    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> frame = pd.DataFrame({"region": rng.choice(["north", "south"], 2000)})
    >>> errors = (rng.random(2000) < np.where(frame.region == "south", 0.4, 0.1)).astype(float)
    >>> report = find_slices(frame, errors, frame, ["region"])
    >>> report.slices[0].label, report.significant[0] is report.slices[0]
    ('region=south', True)
    >>> SliceReport.from_dict(report.to_dict()) == report
    True
    """

    slices: tuple[Slice, ...]
    n: int
    error: float
    reference_error: float
    tested: int
    pruned: int
    test: Test
    min_support: int
    bins: tuple[ColumnBins, ...]

    @property
    def significant(self) -> tuple[Slice, ...]:
        """The reported slices that are significant after BH."""
        return tuple(s for s in self.slices if s.significant)

    def mask(self, frame: pd.DataFrame, slice_: Slice) -> np.ndarray:
        """Boolean row mask of ``slice_`` in ``frame`` (window, reference or any later frame),
        using the levels fixed by this report."""
        by_column = {b.column: b for b in self.bins}
        out = np.ones(len(frame), dtype=bool)
        for column, level in slice_.predicates:
            bins = by_column[column]
            out &= bins.codes(frame[column]) == bins.levels.index(level)
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping of every field."""
        return {"slices": [s.to_dict() for s in self.slices], "n": int(self.n), "error": float(self.error),
                "reference_error": float(self.reference_error), "tested": int(self.tested),
                "pruned": int(self.pruned), "test": self.test, "min_support": int(self.min_support),
                "bins": [b.to_dict() for b in self.bins]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SliceReport:
        """Inverse of :meth:`to_dict`."""
        test = str(d["test"])
        if test not in ("binomial", "welch"):
            raise ValueError(f"test must be 'binomial' or 'welch', got {test!r}")
        return cls(tuple(Slice.from_dict(s) for s in d["slices"]), int(d["n"]), as_float(d["error"]),
                   as_float(d["reference_error"]), int(d["tested"]), int(d["pruned"]), test,  # type: ignore[arg-type]
                   int(d["min_support"]), tuple(ColumnBins.from_dict(b) for b in d["bins"]))


# ----------------------------------------------------------------------------- inputs


def _check_errors(name: str, errors: object, n: int, test: str) -> tuple[np.ndarray, Test]:
    e = np.asarray(errors)
    if e.ndim != 1 or len(e) != n:
        raise ValueError(f"{name} must be a 1-d array with one value per row ({n}), got shape {e.shape}")
    if e.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric or boolean, got dtype {e.dtype}")
    e = e.astype(np.float64)
    if not np.isfinite(e).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    binary = bool(np.isin(e, (0.0, 1.0)).all())
    if test == "binomial" and not binary:
        raise ValueError(f"{name} must hold only 0/1 values for test='binomial'")
    return e, ("binomial" if (test == "binomial" or (test == "auto" and binary)) else "welch")


def _check_columns(columns: object, window: pd.DataFrame, reference: pd.DataFrame) -> tuple[str, ...]:
    if isinstance(columns, str) or not isinstance(columns, Sequence) or len(columns) == 0:
        raise ValueError(f"columns must be a non-empty sequence of column names, got {columns!r}")
    cols = tuple(columns)
    if len(set(cols)) != len(cols):
        raise ValueError(f"columns must be distinct, got {cols!r}")
    for name, frame in (("window", window), ("reference", reference)):
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise ValueError(f"columns {missing!r} are not in {name}")
    return cols


def _threshold(min_support: int, min_fraction: float, n: int) -> int:
    return max(min_support, math.ceil(min_fraction * n))


# ----------------------------------------------------------------------------- search


def find_slices(window: pd.DataFrame, errors: np.ndarray, reference: pd.DataFrame, columns: Sequence[str], *,
                reference_errors: np.ndarray | None = None, max_order: int = 2, min_support: int = 30,
                min_fraction: float = 0.01, alpha: float = 0.05, top_k: int = 10, n_bins: int = 10,
                max_levels: int = 50, categorical: Sequence[str] = (),
                test: Literal["auto", "binomial", "welch"] = "auto", confidence: float = 0.95,
                prune: bool = True) -> SliceReport:
    """The slices (single columns and pairs) of ``window`` that hold most of its excess error.

    ``errors`` has one value per window row: 0/1 (the prediction was wrong) or a numeric loss;
    ``test="auto"`` picks the binomial test for 0/1 values and Welch's t-test otherwise.
    ``reference`` fixes the levels (numeric columns: ``n_bins`` reference quantile bins;
    categorical ones: values with at least the minimum support in the reference or the window,
    at most ``max_levels``, the rest pooled in ``__other__``; nulls ``__null__``) and, with
    ``reference_errors``, the reference error level that ``explained`` is measured against.
    Columns whose reference dtype is numeric are binned unless named in ``categorical``.
    ``prune=False`` evaluates every column pair (the bound never changes the top ``top_k`` by
    score; the specificity rule only sees evaluated pairs).

    A slice is a candidate when both it and the rest of the window have at least
    ``max(min_support, ceil(min_fraction * n))`` rows; ``max_order`` is 1 (single columns) or 2
    (and pairs). Returns the ``top_k`` best slices with a positive score, ranked as described in
    :mod:`detectors.rca.slices` (statistic, test, assumptions, pruning rule, references).

    >>> rng = np.random.default_rng(0)
    >>> def frame(n):
    ...     return pd.DataFrame({"region": rng.choice(["north", "south", "east"], n), "age": rng.normal(40, 10, n)})
    >>> reference, window = frame(3000), frame(3000)
    >>> errors = rng.random(3000) < np.where((window.region == "south") & (window.age > 45), 0.5, 0.1)
    >>> report = find_slices(window, errors, reference, ["region", "age"], n_bins=4)
    >>> top = report.slices[0]
    >>> top.label, top.significant, top.support > 250
    ('region=south & age=[46.8067, inf)', True, True)
    """
    window = check_frame("window", window)
    reference = check_frame("reference", reference)
    cols = _check_columns(columns, window, reference)
    if test not in ("auto", "binomial", "welch"):
        raise ValueError(f"test must be 'auto', 'binomial' or 'welch', got {test!r}")
    e, kind = _check_errors("errors", errors, len(window), test)
    ref_e = None
    if reference_errors is not None:
        ref_e, _ = _check_errors("reference_errors", reference_errors, len(reference), kind)
    max_order = check_int("max_order", max_order, 1, 2)
    min_support = check_int("min_support", min_support, 2)
    min_fraction = check_real("min_fraction", min_fraction, 0.0, 1.0, high_open=True)
    alpha = check_real("alpha", alpha, 0.0, 1.0, low_open=True, high_open=True)
    top_k = check_int("top_k", top_k, 1)
    n_bins = check_int("n_bins", n_bins, 2, 1000)
    max_levels = check_int("max_levels", max_levels, 1, 1000)
    confidence = check_real("confidence", confidence, 0.0, 1.0, low_open=True, high_open=True)
    if not isinstance(prune, bool):
        raise ValueError(f"prune must be a bool, got {prune!r}")
    if isinstance(categorical, str) or not set(categorical) <= set(cols):
        raise ValueError(f"categorical must name some of columns, got {categorical!r}")

    n = len(window)
    support = _threshold(min_support, min_fraction, n)
    ref_support = _threshold(min_support, min_fraction, len(reference))
    binary = kind == "binomial"
    if binary:
        totals = Totals(n, float(e.sum()), 0.0, 0.0, True)
        c = c2 = None
        err_rows = np.flatnonzero(e)
    else:
        shift = float(e.mean())
        c = e - shift
        c2 = c * c
        totals = Totals(n, float(c.sum()), float(c2.sum()), shift, False)
        err_rows = np.empty(0, np.intp)

    bins: list[ColumnBins] = []
    ref_codes: list[np.ndarray] = []
    columns_: list[Column] = []
    pool = Pool()
    for j, name in enumerate(cols):
        r = reference[name]
        numeric = (pd.api.types.is_numeric_dtype(r.dtype) and not pd.api.types.is_bool_dtype(r.dtype)
                   and name not in categorical)
        b, w_codes, r_codes = fit_column(name, r, window[name], numeric=numeric, n_bins=n_bins,
                                         ref_support=ref_support, win_support=support, max_levels=max_levels)
        bins.append(b)
        ref_codes.append(r_codes)
        k = len(b.levels)
        err_codes = w_codes[err_rows] if binary else w_codes[:0]
        count, sums, sq = level_stats(w_codes, err_codes, k, c, c2)
        positive = sums if binary else np.bincount(w_codes, weights=np.maximum(c, 0.0), minlength=k)
        eligible = np.flatnonzero((count >= support) & (n - count >= support))
        st = evaluate(count[eligible], sums[eligible], None if sq is None else sq[eligible], totals)
        pool.add(j, eligible, -1, np.full(eligible.size, -1), count[eligible], sums[eligible],
                 None if sq is None else sq[eligible], st.score, st.p_value, top_k)
        sig = np.zeros(k, dtype=bool)
        sig[eligible] = st.p_value <= alpha
        columns_.append(Column(w_codes, err_codes, k, count, sums, sq, positive, sig))

    pruned = pruned_cells = 0
    if max_order == 2:
        pruned, pruned_cells = search_pairs(columns_, totals, support, top_k, pool, c, c2, prune)
    ca, la, cb, lb, s, sums, sq, score, p = pool.arrays()
    tested = len(p) + pruned_cells
    p_adj = np.asarray(stats.false_discovery_control(np.concatenate([p, np.ones(pruned_cells)]))[: len(p)]
                       if tested else np.empty(0))
    significant = p_adj <= alpha
    chosen = rank(ca, la, cb, lb, s, sums, sq, score, significant, totals, alpha / max(tested, 1), top_k, binary)

    ref_error = float(ref_e.mean()) if ref_e is not None else math.nan
    error = float(e.mean())
    drop = error - ref_error if ref_e is not None else math.nan
    out = []
    for i in chosen:
        st = evaluate(s[i: i + 1], sums[i: i + 1], None if binary else sq[i: i + 1], totals)
        preds = [(int(ca[i]), int(la[i]))] + ([(int(cb[i]), int(lb[i]))] if cb[i] >= 0 else [])
        ref_mask = np.ones(len(reference), dtype=bool)
        for j, level in preds:
            ref_mask &= ref_codes[j] == level
        ref_n = int(ref_mask.sum())
        ref_err = float(ref_e[ref_mask].mean()) if ref_e is not None and ref_n else math.nan
        sc = float(st.score[0])
        out.append(Slice(
            predicates=tuple((cols[j], bins[j].levels[level]) for j, level in preds),
            support=int(s[i]), error=float(st.error[0]), rest_error=float(st.rest_error[0]),
            degradation=float(st.degradation[0]), score=sc,
            explained=sc / (n * drop) if drop > 0 else math.nan,
            p_value=float(p[i]), p_adjusted=float(p_adj[i]), significant=bool(significant[i]),
            ci=interval(int(s[i]), float(sums[i]), float(sq[i]), totals, confidence),
            reference_support=ref_n, reference_error=ref_err))
    return SliceReport(tuple(out), n, error, ref_error, tested, pruned, kind, support, tuple(bins))

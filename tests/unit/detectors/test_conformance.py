"""Every public name of ``detectors`` through the same checks (river's ``check_estimator`` idea).

The checks walk ``detectors.__all__``:

* every class and function has a docstring and a doctest example: a ``>>>`` example in its own
  docstring, or one in its module's docstring whose source names it (``cbpe``'s module example
  is ``CBPE``'s);
* every configurable class (stream detectors, window tests, estimators, the verdict policy)
  raises ``ValueError`` naming the parameter when built with an obviously bad value of a
  numeric parameter (NaN and -1 for floats; -1, 2.5 and NaN for integers; a parameter is
  numeric when its default is a number or its annotation says ``int``/``float``), and with an
  unknown string for a parameter whose default is a string or whose annotation is a
  ``Literal``. Other parameters (arrays, mappings, sequences, free-form names such as
  ``feature`` or ``columns``, policies) are skipped: there is no obviously bad value to derive
  for them; :data:`SKIPPED` lists them so the list is visible and reviewed;
* ``fit`` is an instance method returning ``self`` (never a classmethod);
* a class with ``state()`` has ``from_state()`` and back; the round trip goes through strict
  JSON and the clone gives the same next results as the original on the same data;
* every result type has ``to_dict()``, plain JSON values only (json and orjson both write it),
  and ``from_dict(to_dict(x))`` is ``x`` (or ``from_state(state(x))`` where ``to_dict`` is a view);
* window tests and stream detectors satisfy :class:`~detectors.WindowTest` /
  :class:`~detectors.StreamDetector`, and window-test summaries merge:
  ``compare(summarise(a) += summarise(b)) == compare(summarise(a ++ b))``.

Each check is a function returning the problems it found; the negative controls at the end run
the same functions on deliberately broken classes and require them to find the fault.
"""

from __future__ import annotations

import dataclasses
import doctest
import inspect
import json
import math
import re
import sys
import typing
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest

import detectors
from detectors import (  # noqa: I001
    find_slices,
    Action,
    Cause,
    FeatureShift,
    data_quality,
    evaluate_drop,
    ADWIN,
    CBPE,
    DDM,
    EDDM,
    KSWIN,
    BatchViolations,
    BinCounts,
    CategoricalBins,
    CBPESummary,
    ColumnSchema,
    ConditionalVerdict,
    ConfusionSummary,
    DatasetDrift,
    DatasetDriftReport,
    DomainClassifierDrift,
    DriftResult,
    FeatureDrift,
    IsotonicCalibrator,
    MMDDrift,
    NumericBins,
    PageHinkley,
    PerformanceResult,
    Schema,
    SegmentPerformance,
    SegmentSpec,
    SkewReport,
    SortedReference,
    StreamDetector,
    StreamVerdict,
    WindowTest,
    classification_performance,
    concept_vs_covariate,
    segment_performance,
    value_skew,
)

PUBLIC = {name: getattr(detectors, name) for name in detectors.__all__}
CLASSES = {n: o for n, o in PUBLIC.items() if inspect.isclass(o)}
FUNCTIONS = {n: o for n, o in PUBLIC.items() if not inspect.isclass(o)}

# Every public class is in exactly one group (a new export must be placed, see the first test).
PROTOCOLS = {"WindowTest", "StreamDetector"}
STREAM_DETECTORS = {"ADWIN", "DDM", "EDDM", "KSWIN", "PageHinkley"}
WINDOW_TESTS = {"FeatureDrift", "DatasetDrift", "MMDDrift", "DomainClassifierDrift"}
ESTIMATORS = {"CBPE", "NumericBins", "CategoricalBins", "IsotonicCalibrator", "SegmentSpec", "SortedReference"}
POLICIES = {"VerdictPolicy"}
RESULTS = {"DriftResult", "StreamVerdict", "DatasetDriftReport", "PerformanceResult", "SkewReport",
           "ConditionalVerdict", "SegmentPerformance", "BatchViolations", "Slice", "SliceReport",
           "Cause", "Action", "Estimate", "Evaluation", "FeatureShift", "QualityFinding"}
SUMMARIES = {"BinCounts", "FeatureSummary", "DatasetSummary", "CBPESummary", "ConfusionSummary", "RowSample"}
VALUES = {"ColumnSchema", "Schema"}  # inferred, pinned as YAML/JSON: to_dict / from_dict
GROUPS = (PROTOCOLS, STREAM_DETECTORS, WINDOW_TESTS, ESTIMATORS, POLICIES, RESULTS, SUMMARIES, VALUES)
CONFIGURABLE = STREAM_DETECTORS | WINDOW_TESTS | ESTIMATORS | POLICIES

# Required arguments of configurable classes, so that one parameter at a time can be made bad.
BASE_KWARGS: dict[str, dict[str, Any]] = {
    "FeatureDrift": {"feature": "x", "kind": "numeric"},
    "SegmentSpec": {"columns": ("a",)},
}

# Parameters the bad-value check cannot derive a bad value for (non-numeric, not an enum).
SKIPPED = {
    "FeatureDrift": {"feature", "method"},  # any name is a name; method None = by kind (checked in test_drift)
    "DatasetDrift": {"policy", "methods"},
    "CBPE": {"metrics"},
    "NumericBins": {"edges"},  # learnt by fit (a constructor argument so a binner can be rebuilt)
    "CategoricalBins": {"categories"},
    "SegmentSpec": {"columns", "edges", "categories"},
    "SortedReference": {"values", "prefix", "first", "end"},
    "IsotonicCalibrator": {"x", "y"},
}


# ----------------------------------------------------------------------------- check functions


def _own_doc(obj: Any) -> str:
    """The object's own docstring (a class does not inherit one here, unlike inspect.getdoc)."""
    doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else obj.__doc__
    return inspect.cleandoc(doc) if isinstance(doc, str) else ""


def doc_problems(obj: Any, name: str | None = None) -> list[str]:
    """Docstring present, and an example: in its own docstring, or in its module's naming it."""
    name = name or obj.__name__
    doc = _own_doc(obj)
    if len(doc.split()) < 3:
        return [f"{name}: no docstring"]
    parser = doctest.DocTestParser()
    if parser.get_examples(doc):
        return []
    module_doc = getattr(sys.modules.get(obj.__module__), "__doc__", None) or ""
    if any(re.search(rf"\b{re.escape(name)}\b", e.source) for e in parser.get_examples(module_doc)):
        return []
    return [f"{name}: no doctest example in its docstring or its module's"]


def _kind(param: inspect.Parameter) -> str | None:
    """'int', 'float' or 'enum' for a parameter the bad-value check covers, else None.

    Numeric: the default is a number, or the annotation is ``int`` / ``float`` (``| None``
    allowed). Enum: the default is a string, or the annotation is a ``Literal``."""
    default, ann = param.default, param.annotation
    ann = ann if isinstance(ann, str) else getattr(ann, "__name__", str(ann))
    scalar = {t.strip() for t in ann.split("|")} - {"None"}
    if isinstance(default, (bool, np.bool_)) or scalar == {"bool"}:
        return None
    if isinstance(default, (int, np.integer)) or scalar == {"int"}:
        return "int"
    if isinstance(default, (float, np.floating)) or (scalar and scalar <= {"float", "int"}):
        return "float"
    if isinstance(default, str) or ann.startswith(("Literal[", "typing.Literal[")):
        return "enum"
    return None


BAD_VALUES = {"int": (-1, 2.5, math.nan), "float": (math.nan, -1.0), "enum": ("__no_such_value__",)}


def parameter_problems(cls: type, base: Mapping[str, Any] | None = None,
                       skipped: Iterable[str] = ()) -> list[str]:
    """Each numeric / enum parameter, made bad alone, must raise ValueError naming it at construction."""
    base = dict(base or {})
    try:
        cls(**base)
    except Exception as e:  # noqa: BLE001 - reported, not raised
        return [f"{cls.__name__}(**{base}) fails with valid arguments: {e!r}"]
    problems = []
    skipped = set(skipped)
    for p in inspect.signature(cls).parameters.values():
        if p.name.startswith("_") or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        kind = _kind(p)
        if kind is None:
            if p.name not in skipped:
                problems.append(f"{cls.__name__}.{p.name}: no bad value derivable and not listed in SKIPPED")
            continue
        for bad in BAD_VALUES[kind]:
            try:
                cls(**{**base, p.name: bad})
            except ValueError as e:
                if not re.search(rf"\b{re.escape(p.name)}\b", str(e)):
                    problems.append(f"{cls.__name__}({p.name}={bad!r}): ValueError does not name it: {e}")
            except Exception as e:  # noqa: BLE001
                problems.append(f"{cls.__name__}({p.name}={bad!r}) raised {type(e).__name__}, not ValueError: {e}")
            else:
                problems.append(f"{cls.__name__}({p.name}={bad!r}) was accepted")
    return problems


def fit_problems(cls: type, instance: Any, *data: Any) -> list[str]:
    """``fit`` is an instance method (not a class or static method) and returns ``self``."""
    raw = inspect.getattr_static(cls, "fit")
    if isinstance(raw, (classmethod, staticmethod)):
        return [f"{cls.__name__}.fit is a {type(raw).__name__}, not an instance method"]
    bound = getattr(instance, "fit")
    if getattr(bound, "__self__", None) is not instance:
        return [f"{cls.__name__}().fit is not bound to the instance"]
    out = bound(*data)
    return [] if out is instance else [f"{cls.__name__}.fit returned {type(out).__name__}, not self"]


def _same(a: Any, b: Any, nonfinite_equal: bool = False) -> bool:
    """Deep equality with NaN equal to NaN (and, if asked, any non-finite float to any other)."""
    if isinstance(a, (float, np.floating)) and isinstance(b, (float, np.floating)):
        if math.isnan(a) and math.isnan(b):
            return True
        if nonfinite_equal and not math.isfinite(a) and not math.isfinite(b):
            return True
        return bool(a == b)
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(np.asarray(a), np.asarray(b), equal_nan=np.asarray(a).dtype.kind == "f")
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        return type(a) is type(b) and all(_same(getattr(a, f.name), getattr(b, f.name), nonfinite_equal)
                                          for f in dataclasses.fields(a))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_same(a[k], b[k], nonfinite_equal) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y, nonfinite_equal) for x, y in zip(a, b))
    return bool(a == b)


def _orjson_nonfinite(x: Any) -> Any:
    """What orjson makes of non-finite floats (null), to compare with what came back."""
    if isinstance(x, float) and not math.isfinite(x):
        return math.nan
    if isinstance(x, Mapping):
        return {k: _orjson_nonfinite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_orjson_nonfinite(v) for v in x]
    return x


def _plain(x: Any, where: str = "") -> list[str]:
    """Problems making ``x`` not plain JSON data (str keys; str, int, float, bool, None, list, dict)."""
    if x is None or type(x) in (str, int, float, bool):
        return []
    if type(x) is list:
        return [p for i, v in enumerate(x) for p in _plain(v, f"{where}[{i}]")]
    if type(x) is dict:
        bad = [f"{where}: key {k!r} is not a str" for k in x if type(k) is not str]
        return bad + [p for k, v in x.items() for p in _plain(v, f"{where}.{k}")]
    return [f"{where}: {type(x).__name__} is not plain JSON data"]


def result_problems(result: Any) -> list[str]:
    """``to_dict`` is plain JSON that json and orjson write, and its inverse gives the result back."""
    cls = type(result)
    name = cls.__name__
    if not callable(getattr(result, "to_dict", None)):
        return [f"{name} has no to_dict"]
    d = result.to_dict()
    problems = _plain(d, name)
    if problems:
        return problems
    try:
        via_orjson = orjson.loads(orjson.dumps(d))
        via_json = json.loads(json.dumps(d))
    except (TypeError, ValueError) as e:
        return [f"{name}.to_dict() is not serialisable: {e}"]
    if not _same(via_json, d):
        problems.append(f"{name}: json changes to_dict()")
    if hasattr(cls, "from_dict"):
        back = cls.from_dict(via_json)
        if not _same(back, result):
            problems.append(f"{name}.from_dict(to_dict(x)) != x: {back!r} vs {result!r}")
        elif not _same(cls.from_dict(via_orjson).to_dict(), _orjson_nonfinite(d), nonfinite_equal=True):
            problems.append(f"{name}.from_dict does not read orjson's output back")
    elif hasattr(cls, "from_state"):
        back = cls.from_state(json.loads(json.dumps(result.state())))
        if not _same(back, result):
            problems.append(f"{name}.from_state(state(x)) != x")
    else:
        problems.append(f"{name} has neither from_dict nor from_state: it cannot be read back")
    return problems


def state_problems(original: Any, rebuild: Callable[[dict[str, Any]], Any],
                   probe: Callable[[Any], Any]) -> list[str]:
    """``state()`` is strict JSON; ``rebuild(state)`` gives an object whose next ``probe`` results
    (and state afterwards) equal the original's."""
    name = type(original).__name__
    try:
        text = json.dumps(original.state(), allow_nan=False)
    except (TypeError, ValueError) as e:
        return [f"{name}.state() is not strict JSON: {e}"]
    clone = rebuild(json.loads(text))
    problems = []
    if not _same(probe(clone), probe(original)):
        problems.append(f"{name}: the state() round trip changes the next results")
    elif not _same(clone.state(), original.state()):
        problems.append(f"{name}: the state() round trip changes the state after the next results")
    return problems


def merge_problems(test: Any, a: Any, b: Any, joined: Any, approx: bool = False) -> list[str]:
    """compare(summarise(a) += summarise(b)) == compare(summarise(a ++ b)), and compare is repeatable."""
    name = type(test).__name__
    merged = test.summarise(a)
    merged += test.summarise(b)
    whole = test.summarise(joined)
    got, want = test.compare(merged), test.compare(whole)
    problems = []
    if approx:
        if got.keys() != want.keys() or not all(math.isclose(got[k], want[k], rel_tol=1e-9, abs_tol=1e-12)
                                                for k in got):
            problems.append(f"{name}: merged summaries compare differently: {got} vs {want}")
    elif not _same(got, want):
        problems.append(f"{name}: merged summaries compare differently: {got} vs {want}")
    if not _same(test.compare(test.summarise(joined)), want):
        problems.append(f"{name}: compare is not repeatable on the same summary")
    return problems


# ----------------------------------------------------------------------------- data


RNG = np.random.default_rng(20240601)
REF_FRAME = pd.DataFrame({"x": RNG.normal(size=600), "c": RNG.choice(list("abc"), 600)})
WIN_FRAME = pd.DataFrame({"x": RNG.normal(0.4, size=300), "c": RNG.choice(list("abcd"), 300)})
REF_ROWS = RNG.normal(size=(120, 3))
WIN_ROWS = RNG.normal(size=(80, 3)) + [0.8, 0.0, 0.0]


def _error_stream(seed: int) -> np.ndarray:
    r = np.random.default_rng(seed)
    return np.r_[r.random(1500) < 0.1, r.random(1500) < 0.45].astype(float)


def _fitted_window_tests() -> dict[str, Any]:
    return {
        "FeatureDrift": FeatureDrift("x", "numeric").fit(REF_FRAME["x"].to_numpy()),
        "DatasetDrift": DatasetDrift().fit(REF_FRAME),
        "MMDDrift": MMDDrift(n_permutations=30, device="cpu").fit(REF_ROWS),
        "DomainClassifierDrift": DomainClassifierDrift(max_iter=5, n_folds=3).fit(REF_ROWS),
    }


def _window_data(name: str) -> tuple[Any, Any, Any]:
    """(a, b, a ++ b) in the form each window test summarises."""
    if name == "FeatureDrift":
        x = WIN_FRAME["x"].to_numpy()
        return x[:100], x[100:], x
    if name == "DatasetDrift":
        return WIN_FRAME.iloc[:100], WIN_FRAME.iloc[100:], WIN_FRAME
    return WIN_ROWS[:30], WIN_ROWS[30:], WIN_ROWS


def _results() -> list[Any]:
    """One real instance of every result type (made by the detectors, not by hand)."""
    dd = DatasetDrift().fit(REF_FRAME)
    report = dd.compare(dd.summarise(WIN_FRAME))
    y = RNG.integers(0, 2, 200)
    score = np.clip(y * 0.6 + RNG.uniform(0, 0.5, 200), 0, 1)
    perf = classification_performance(y, (score > 0.5).astype(int), score, n_boot=0)
    frame = pd.DataFrame({"city": RNG.choice(["a", "b"], 200)})
    segs = segment_performance(frame, y, (score > 0.5).astype(int), score, spec=SegmentSpec(("city",)).fit(frame))
    schema = Schema.infer(REF_FRAME)
    n = len(WIN_FRAME)
    violations = schema.check_batch({"x": WIN_FRAME["x"].to_numpy() * 10, "c": WIN_FRAME["c"].to_numpy(dtype=object)},
                                    {"x": np.zeros(n, bool), "c": np.zeros(n, bool)},
                                    {"x": np.zeros(n, bool), "c": np.zeros(n, bool)}, {"extra": 3})
    q = RNG.uniform(0, 0.3, 2000)
    return [
        *report.features, *report.scores, report,
        DDM().update(_error_stream(1)), PageHinkley().update(np.zeros(50)),
        *perf.values(), *segs,
        value_skew(schema["x"], WIN_FRAME["x"].to_numpy() * 100), value_skew(schema["c"], WIN_FRAME["c"].to_numpy()),
        concept_vs_covariate(q, q, (RNG.uniform(size=q.size) < q + 0.1).astype(int)),
        concept_vs_covariate(np.full(50, 0.2), np.full(50, 0.3), np.ones(50)),  # zero variance: infinite statistic
        violations,
        slices := find_slices(REF_FRAME, (RNG.random(len(REF_FRAME)) < np.where(REF_FRAME.c == "a", 0.5, 0.1)).astype(float),
                              REF_FRAME, ["c", "x"], min_support=10),
        *slices.slices,
        *_rca_results(),
    ]


def _rca_results() -> list[Any]:
    ref = pd.DataFrame({"x": RNG.normal(size=600), "y": RNG.integers(0, 2, 600)}).assign(p=lambda f: (f.x > 0).astype(int))
    cur = ref.assign(x=ref.x * 1000)
    ev = evaluate_drop(ref, ref.iloc[:300], target="y", features=["x"], metric="accuracy", prediction="p", n_boot=20,
                       window_column=None)
    quality = data_quality(ref, cur, ["x"])
    return [ev, ev.drop, *quality, FeatureShift("x", "ks", 0.3, 1e-9),
            Cause("data_quality", 0.9, "x scaled", {"check": "scale_change"}, feature="x"),
            Action("relabel", "noisy", {"ids": ["a"]})]


# ----------------------------------------------------------------------------- tests


def test_every_public_class_is_in_exactly_one_group() -> None:
    placed = [n for g in GROUPS for n in g]
    assert sorted(placed) == sorted(set(placed)), "a class is in two groups"
    assert set(placed) == set(CLASSES), (f"unplaced: {sorted(set(CLASSES) - set(placed))}, "
                                         f"not public: {sorted(set(placed) - set(CLASSES))}")


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_docstring_and_doctest_example(name: str) -> None:
    assert doc_problems(PUBLIC[name], name) == []


@pytest.mark.parametrize("name", sorted(CONFIGURABLE))
def test_bad_parameters_raise_value_error_naming_them(name: str) -> None:
    assert parameter_problems(CLASSES[name], BASE_KWARGS.get(name), SKIPPED.get(name, ())) == []


FIT_CASES: dict[str, tuple[Callable[[], Any], tuple[Any, ...]]] = {
    "FeatureDrift": (lambda: FeatureDrift("x", "numeric"), (REF_FRAME["x"].to_numpy(),)),
    "DatasetDrift": (DatasetDrift, (REF_FRAME,)),
    "MMDDrift": (lambda: MMDDrift(device="cpu"), (REF_ROWS,)),
    "DomainClassifierDrift": (DomainClassifierDrift, (REF_ROWS,)),
    "CBPE": (CBPE, (np.linspace(0.01, 0.99, 100), np.arange(100) % 2)),
    "NumericBins": (NumericBins, (REF_FRAME["x"].to_numpy(),)),
    "CategoricalBins": (CategoricalBins, (REF_FRAME["c"].to_numpy(),)),
    "IsotonicCalibrator": (IsotonicCalibrator, (np.linspace(0, 1, 50), np.arange(50) % 2)),
    "SegmentSpec": (lambda: SegmentSpec(("c",)), (REF_FRAME,)),
    "SortedReference": (SortedReference, (REF_FRAME["x"].to_numpy(),)),
}


def test_every_class_with_fit_has_a_fit_case() -> None:
    assert {n for n, c in CLASSES.items() if n not in PROTOCOLS and hasattr(c, "fit")} == set(FIT_CASES)


@pytest.mark.parametrize("name", sorted(FIT_CASES))
def test_fit_is_an_instance_method_returning_self(name: str) -> None:
    make, data = FIT_CASES[name]
    assert fit_problems(CLASSES[name], make(), *data) == []


@pytest.mark.parametrize("cls, args, kwargs", [
    (SortedReference, (np.array([2.0, 1.0]),), {}),
    (IsotonicCalibrator, (np.array([0.1, 0.9]), np.array([0, 1])), {}),
    (SegmentSpec, (REF_FRAME, ["c"]), {"n_bins": 3}),
])
def test_the_old_classmethod_fit_still_works_with_a_deprecation_warning(cls: type, args: tuple, kwargs: dict) -> None:
    with pytest.warns(DeprecationWarning, match=rf"{cls.__name__}\(\.\.\.\)\.fit"):
        old = cls.fit(*args, **kwargs)
    assert isinstance(old, cls)


def test_state_and_from_state_come_in_pairs() -> None:
    lopsided = [n for n, c in CLASSES.items() if n not in PROTOCOLS and hasattr(c, "state") != hasattr(c, "from_state")]
    assert lopsided == []
    # the results whose to_dict is the whole value read it back with from_dict
    assert [n for n in RESULTS if not (hasattr(CLASSES[n], "from_dict") or hasattr(CLASSES[n], "from_state"))] == []


@pytest.mark.parametrize("name", sorted(STREAM_DETECTORS))
@pytest.mark.parametrize("seed", [1, 2])
def test_stream_detector_state_round_trip(name: str, seed: int) -> None:
    stream = _error_stream(seed)
    det = CLASSES[name]()
    det.update(stream[:1400])  # mid-concept, with running state
    cls = type(det)
    assert state_problems(det, cls.from_state, lambda d: d.update(stream[1400:])) == []


def _fitted_cbpe() -> CBPE:
    p = RNG.uniform(size=1000)
    return CBPE(metrics=("roc_auc", "accuracy")).fit(p, (RNG.uniform(size=p.size) < p).astype(int))


STATE_CASES: dict[str, Callable[[], tuple[Any, Callable[[dict], Any], Callable[[Any], Any]]]] = {
    "CBPE": lambda: (_fitted_cbpe(), CBPE.from_state, lambda e: e.estimate(np.linspace(0, 1, 300))),
    "CBPESummary": lambda: (_fitted_cbpe().summarise(np.linspace(0, 1, 300)), CBPESummary.from_state,
                            lambda s: s.estimate()),
    "ConfusionSummary": lambda: (ConfusionSummary.from_arrays([0, 1, 1, 0], [0, 1, 0, 0], score=[0.2, 0.7, 0.4, 0.1],
                                                              labels=[0, 1]), ConfusionSummary.from_state,
                                 lambda s: {m: r.to_dict() for m, r in s.results().items()}),
    "BinCounts": lambda: ((b := NumericBins(5).fit(REF_FRAME["x"].to_numpy())).summarise(WIN_FRAME["x"].to_numpy()),
                          lambda st, edges=b.edges: BinCounts.from_state(st, edges),
                          lambda s: (s.total, s.counts.tolist(), s.nulls)),
    "IsotonicCalibrator": lambda: (IsotonicCalibrator().fit(np.linspace(0, 1, 50), np.arange(50) % 2),
                                   IsotonicCalibrator.from_state, lambda c: c(np.linspace(-0.5, 1.5, 41))),
    "DatasetDriftReport": lambda: ((dd := DatasetDrift().fit(REF_FRAME)).compare(dd.summarise(WIN_FRAME)),
                                   DatasetDriftReport.from_state, lambda r: r.to_dict()),
}


def test_every_class_with_state_has_a_state_case() -> None:
    with_state = {n for n, c in CLASSES.items() if n not in PROTOCOLS and hasattr(c, "state")}
    assert with_state == set(STATE_CASES) | STREAM_DETECTORS


@pytest.mark.parametrize("name", sorted(STATE_CASES))
def test_state_round_trip(name: str) -> None:
    assert state_problems(*STATE_CASES[name]()) == []


def test_results_serialise_and_read_back() -> None:
    results = _results()
    assert {type(r).__name__ for r in results} == RESULTS  # one of each, at least
    problems = [p for r in results for p in result_problems(r)]
    assert problems == []


def test_values_read_back() -> None:
    schema = Schema.infer(REF_FRAME)
    assert Schema.from_dict(json.loads(json.dumps(schema.to_dict()))) == schema
    assert all(ColumnSchema.from_dict(c.to_dict()) == c for c in schema.columns)


def test_dataset_report_to_dict_is_the_check_document_built_from_drift_result_to_dict() -> None:
    dd = DatasetDrift().fit(REF_FRAME)
    report = dd.compare(dd.summarise(WIN_FRAME))
    d = report.to_dict()
    assert list(d)[:3] == ["drifted", "dataset_drift_share", "features"]
    assert type(d["drifted"]) is bool and type(d["dataset_drift_share"]) is float
    for r in report.features:
        entry = d["features"][r.feature]
        assert list(entry) == ["drifted", "method", "statistic", "p_value", "effect_size"]
        assert {"feature": r.feature, **entry} == r.to_dict()


@pytest.mark.parametrize("name", sorted(WINDOW_TESTS))
def test_window_tests_satisfy_the_protocol_and_merge(name: str) -> None:
    test = _fitted_window_tests()[name]
    assert isinstance(test, WindowTest) and not isinstance(test, StreamDetector)
    assert merge_problems(test, *_window_data(name)) == []


@pytest.mark.parametrize("name", sorted(STREAM_DETECTORS))
def test_stream_detectors_satisfy_the_protocol(name: str) -> None:
    det = CLASSES[name]()
    assert isinstance(det, StreamDetector) and not isinstance(det, WindowTest)
    assert isinstance(det.update(np.zeros(10)), StreamVerdict)


def test_only_the_window_tests_and_stream_detectors_have_their_shape() -> None:
    window_shaped = {n for n, c in CLASSES.items() if n not in PROTOCOLS
                     and all(callable(getattr(c, m, None)) for m in ("fit", "summarise", "compare"))}
    stream_shaped = {n for n, c in CLASSES.items() if n not in PROTOCOLS
                     and all(callable(getattr(c, m, None)) for m in ("update", "reset", "state", "from_state"))}
    assert window_shaped == WINDOW_TESTS and stream_shaped == STREAM_DETECTORS


@pytest.mark.parametrize("binner, col", [(NumericBins(8), "x"), (CategoricalBins(), "c")])
def test_binner_summaries_merge(binner: Any, col: str) -> None:
    binner.fit(REF_FRAME[col].to_numpy())
    v = WIN_FRAME[col].to_numpy()
    merged = binner.summarise(v[:77])
    merged += binner.summarise(v[77:])
    whole = binner.summarise(v)
    assert merged.counts.tolist() == whole.counts.tolist() and merged.nulls == whole.nulls


def test_cbpe_summaries_merge() -> None:
    est = _fitted_cbpe()
    s = np.linspace(0, 1, 500)

    class _Estimate:  # CBPE's summary is compared by estimating from it
        def summarise(self, x: np.ndarray) -> CBPESummary:
            return est.summarise(x)

        def compare(self, summary: CBPESummary) -> dict[str, float]:
            return summary.estimate(est.metrics)

    assert merge_problems(_Estimate(), s[:123], s[123:], s, approx=True) == []


# ----------------------------------------------------------------------------- negative controls


class _NoExample:
    """A docstring of several words but no example."""


class _Lax:
    """Accepts anything.

    >>> _Lax().alpha
    0.05
    """

    def __init__(self, alpha: float = 0.05, n: int = 10, mode: str = "up") -> None:
        if mode not in ("up", "down"):
            raise ValueError("unknown setting")  # does not name the parameter
        if n < 0:
            raise TypeError(f"n must be >= 0, got {n}")  # the wrong exception
        self.alpha, self.n, self.mode = alpha, n, mode  # alpha is never checked


class _ClassFit:
    """Builds itself in a classmethod fit."""

    @classmethod
    def fit(cls, data: Any) -> _ClassFit:
        return cls()


class _CopyFit:
    """Returns a fresh object from fit."""

    def fit(self, data: Any) -> _CopyFit:
        return _CopyFit()


class _LossyState:
    """Forgets its count in from_state."""

    def __init__(self) -> None:
        self.n = 0

    def update(self, x: np.ndarray) -> int:
        self.n += len(x)
        return self.n

    def state(self) -> dict[str, Any]:
        return {"n": self.n}

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> _LossyState:
        return cls()


@dataclasses.dataclass(frozen=True)
class _NumpyResult:
    """Leaks numpy scalars and a tuple into its dict; from_dict drops a field."""

    value: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        return {"value": np.float64(self.value), "n": self.n}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> _NumpyResult:
        return cls(float(d["value"]), 0)


@dataclasses.dataclass(frozen=True)
class _LossyResult:
    """Plain data, but from_dict drops a field."""

    value: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "n": self.n}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> _LossyResult:
        return cls(d["value"], 0)


class _DroppingSummary:
    """A summary whose += keeps only the first part."""

    def __init__(self, values: np.ndarray) -> None:
        self.values = values

    def __iadd__(self, other: _DroppingSummary) -> _DroppingSummary:
        return self


class _MeanTest:
    """A window test on a summary that does not merge."""

    method = "mean"

    def fit(self, reference: np.ndarray) -> _MeanTest:
        return self

    def summarise(self, values: np.ndarray) -> _DroppingSummary:
        return _DroppingSummary(values)

    def compare(self, window: _DroppingSummary) -> float:
        return float(np.mean(window.values))


class _NoReset:
    """Updates, but cannot reset."""

    def update(self, values: np.ndarray) -> StreamVerdict:
        return StreamVerdict(None, None)

    def state(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_state(cls, d: Mapping[str, Any]) -> _NoReset:
        return cls()


def test_negative_control_docstrings() -> None:
    assert doc_problems(_NoExample) == ["_NoExample: no doctest example in its docstring or its module's"]
    assert doc_problems(_ClassFit)  # a one-line docstring without an example
    assert doc_problems(lambda: None, "anonymous") == ["anonymous: no docstring"]


def test_negative_control_parameters() -> None:
    problems = parameter_problems(_Lax)
    assert any(p.startswith("_Lax(alpha=nan) was accepted") for p in problems)
    assert any(p.startswith("_Lax(alpha=-1.0) was accepted") for p in problems)
    assert any("_Lax(n=-1) raised TypeError" in p for p in problems)
    assert any(p.startswith("_Lax(n=2.5) was accepted") for p in problems)
    assert any("_Lax(mode='__no_such_value__'): ValueError does not name it" in p for p in problems)


def test_negative_control_unlisted_parameter() -> None:
    class _Opaque:
        """Takes a mapping.

        >>> _Opaque({})
        """

        def __init__(self, table: dict[str, str] | None = None) -> None:
            self.table = table

    assert parameter_problems(_Opaque) == ["_Opaque.table: no bad value derivable and not listed in SKIPPED"]
    assert parameter_problems(_Opaque, skipped={"table"}) == []


def test_negative_control_fit() -> None:
    assert fit_problems(_ClassFit, _ClassFit(), None) == ["_ClassFit.fit is a classmethod, not an instance method"]
    assert fit_problems(_CopyFit, _CopyFit(), None) == ["_CopyFit.fit returned _CopyFit, not self"]


def test_negative_control_state() -> None:
    det = _LossyState()
    det.update(np.zeros(5))
    assert state_problems(det, _LossyState.from_state, lambda d: d.update(np.zeros(3))) == [
        "_LossyState: the state() round trip changes the next results"]


def test_negative_control_results() -> None:
    assert result_problems(_NumpyResult(1.5, 3)) == ["_NumpyResult.value: float64 is not plain JSON data"]
    assert result_problems(_LossyResult(1.5, 3))[0].startswith("_LossyResult.from_dict(to_dict(x)) != x")


def test_negative_control_merge() -> None:
    v = np.arange(10.0)
    assert merge_problems(_MeanTest(), v[:3], v[3:], v) == [
        "_MeanTest: merged summaries compare differently: 1.0 vs 4.5"]


def test_negative_control_protocols() -> None:
    assert isinstance(_MeanTest(), WindowTest)  # the shape alone is what the protocol checks...
    assert not isinstance(_NoReset(), StreamDetector)  # ...and a missing method fails it
    assert not isinstance(_CopyFit(), WindowTest)


def test_nan_is_the_same_as_nan_and_nothing_else() -> None:
    assert _same(PerformanceResult("f1", math.nan, math.nan, math.nan, 0, False),
                 PerformanceResult("f1", float("nan"), math.nan, math.nan, 0, False))
    assert not _same(PerformanceResult("f1", math.nan, 0.0, 1.0, 0, False),
                     PerformanceResult("f1", 0.5, 0.0, 1.0, 0, False))
    assert not _same(math.inf, -math.inf) and _same(math.inf, -math.inf, nonfinite_equal=True)


def test_results_keep_their_documented_shapes() -> None:
    """Shapes callers depend on (the agent's JSON, checkpoints): keys in order."""
    r = DriftResult("x", "ks", 0.1, 0.5, 0.2, False)
    assert list(r.to_dict()) == ["feature", "method", "statistic", "p_value", "effect_size", "drifted"]
    assert DriftResult.from_dict(["x", "ks", 0.1, 0.5, 0.2, False]) == r  # pre-to_dict checkpoints
    old_verdict = {"features": [["x", "ks", 0.1, 0.5, 0.2, False]], "scores": [["x", "ks", 0.1, 0.5, 0.2, False]],
                   "n_reference": 10, "n_current": 5, "prediction": None}  # what agent checkpoints held
    assert DatasetDriftReport.from_state(old_verdict) == DatasetDriftReport((r,), (r,), 10, 5)
    with pytest.raises(ValueError):
        DriftResult.from_dict("abcdef")  # a str is a sequence of 6, not a result
    assert list(StreamVerdict(1, None, (1,)).to_dict()) == ["drift_at", "warning_at", "drifts"]
    cv = concept_vs_covariate(np.full(10, 0.1), np.full(10, 0.1), np.zeros(10))
    assert cv.to_dict() == dataclasses.asdict(cv)  # what checkpoints stored for it
    assert ConditionalVerdict.from_dict(dataclasses.asdict(cv)) == cv
    assert list(PerformanceResult("a", 1.0, 0.9, 1.0, 3, True).to_dict()) == [
        f.name for f in dataclasses.fields(PerformanceResult)]
    assert list(SkewReport("x", 1, 0, 0, 0, 0, None, None, None).to_dict()) == [
        f.name for f in dataclasses.fields(SkewReport)]
    assert BatchViolations({}, {}).to_dict() == {"schema": {}, "skew": {}}
    assert list(SegmentPerformance("all", (), 0, False, {}).to_dict()) == [
        "segment", "columns", "n", "support_ok", "metrics"]


def test_type_hints_resolve() -> None:
    """Annotations are real types (not comments): every public class's and function's hints evaluate."""
    bad = []
    for name, obj in PUBLIC.items():
        targets = [obj] if not inspect.isclass(obj) else [obj, *(v for k, v in vars(obj).items()
                                                               if inspect.isfunction(v) and not k.startswith("_"))]
        for t in targets:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    typing.get_type_hints(t)
            except Exception as e:  # noqa: BLE001
                bad.append(f"{name}.{getattr(t, '__name__', t)}: {e!r}")
    assert bad == []

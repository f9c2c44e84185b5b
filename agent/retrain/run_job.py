"""The entry point of a local (or in-cluster) training job: ``python -m agent.retrain.run_job --job DIR``.

Reads ``DIR/spec.json`` (written by :meth:`JobSpec.prepare`): the snapshot folder, the output folder,
``timeout_s`` and ``train`` (``schema``: :class:`TabularSchema` fields; ``config``:
:class:`TrainConfig` fields; ``segment_columns``; ``device``). The snapshot holds ``train.parquet``
(with a ``__weight__`` column), ``holdout.parquet`` and ``manifest.json``. A snapshot written by
:func:`agent.retrain.dataset.build_dataset` is read with ``load_dataset(verify=True)`` (each file's
sha256 checked against the manifest); its manifest gives the schema when the spec has none, and the
RCA's segments it names become the champion comparison's segments. Otherwise a schema missing
from the spec is taken from the manifest's ``schema``, and the weight column defaults to
``__weight__`` when train has one.

Writes into the output folder: ``model/`` (what :meth:`TrainedModel.save` writes, when training got
that far), ``report.json`` (the report), ``summary.txt`` (its readable summary) and last
``result.json`` (status, verdict, promote, failed gate, metrics, gates, the manifest's sha256, exit
code), each file replaced atomically. Progress goes to stdout, one line per epoch (the job's log).

Exit status: 0 when the report is healthy (promote or reject), 2 when a gate failed, 1 when the job
could not run (its reason is in ``result.json``). A backstop alarm ends the process shortly after
its ``timeout_s`` even when no launcher is watching.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

__all__ = ["main", "run", "WEIGHT_COLUMN"]

WEIGHT_COLUMN = "__weight__"
_ALARM_GRACE_S = 30


def _write_json(path: Path, value: Any) -> None:
    from agent.retrain.registry import atomic_write_json

    atomic_write_json(path, value)


def _say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run(job_dir: Path) -> tuple[int, dict[str, Any]]:
    """Run the job in ``job_dir``; returns (exit status, result)."""
    spec = json.loads((job_dir / "spec.json").read_text())
    out = Path(spec.get("output") or job_dir / "output")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    result: dict[str, Any] = {"job": spec.get("id"), "model": spec.get("model"), "status": "failed", "reason": None,
                              "verdict": None, "promote": False, "healthy": False, "failed_gate": None,
                              "metrics": {}, "gates": [], "manifest_sha256": None, "model_dir": None,
                              "report": None, "summary": None}
    try:
        import pandas as pd

        snapshot = Path(spec["snapshot"])
        manifest_path = Path(spec.get("manifest") or snapshot / "manifest.json")
        raw = manifest_path.read_bytes()
        result["manifest_sha256"] = hashlib.sha256(raw).hexdigest()
        manifest = json.loads(raw)
        train_spec = dict(spec.get("train") or {})
        _say(f"job {spec.get('id')} for model {spec.get('model')}: snapshot {snapshot} "
             f"(manifest sha256 {result['manifest_sha256'][:12]})")
        segments: dict[str, Any] = {}
        if not isinstance(manifest, dict):
            raise ValueError(f"{manifest_path} holds {type(manifest).__name__}, not an object")
        fields = dict(train_spec.get("schema") or manifest.get("schema") or {})
        if "spec" in manifest and "files" in manifest:
            # the dataset builder's snapshot: every file checked against the manifest's sha256
            from agent.retrain.dataset import load_dataset, segment_mask

            snap = load_dataset(snapshot, verify=True)
            train_frame, holdout = snap.train, snap.holdout
            if not fields:
                s = snap.manifest.schema()
                fields = {"task": s.task, "target": s.target, "numeric": s.numeric, "categorical": s.categorical,
                          "id_column": s.id_column, "time_column": s.time_column, "weight_column": s.weight_column,
                          "served_column": s.served_column}
            for seg in snap.manifest.spec.segments:   # the RCA's segments: none may get worse
                try:
                    segments[seg] = segment_mask(holdout, seg)
                except ValueError as e:
                    _say(f"segment {seg!r} left out of the champion comparison: {e}")
        else:
            train_frame = pd.read_parquet(snapshot / "train.parquet")
            holdout = pd.read_parquet(snapshot / "holdout.parquet")
        _say(f"read {len(train_frame)} train rows, {len(holdout)} holdout rows")

        from agent.retrain.tabular import TabularSchema
        from agent.retrain.trainer import TrainConfig, train

        if not fields:
            raise ValueError("no schema: give train.schema in the job spec (or schema in the manifest)")
        if "weight_column" not in fields and WEIGHT_COLUMN in train_frame.columns:
            fields["weight_column"] = WEIGHT_COLUMN
        if fields.get("weight_column") and fields["weight_column"] not in holdout.columns:
            holdout = holdout.assign(**{fields["weight_column"]: 1.0})   # the holdout is unweighted anyway
        schema = TabularSchema(**fields)
        config = TrainConfig(**dict(train_spec.get("config") or {}))

        def progress(epoch: int, total: int, metrics: Any) -> None:
            figures = " ".join(f"{k} {v:.4f}" for k, v in metrics.items())
            bar = "#" * int(20 * epoch / total)
            _say(f"epoch {epoch}/{total} [{bar:<20}] {figures}")

        res = train(train_frame, holdout, schema, config, segments=segments or None,
                    segment_columns=tuple(train_spec.get("segment_columns", ())), progress=progress,
                    device=train_spec.get("device"))
        report = res.report
        summary = report.summary()
        print(summary, flush=True)
        rep = report.to_dict()
        _write_json(out / "report.json", rep)
        (out / "summary.txt").write_text(summary + "\n")
        if res.model is not None:
            res.model.extra = {**res.model.extra, "job": spec.get("id"), "manifest_sha256": result["manifest_sha256"]}
            res.model.save(out / "model")
            result["model_dir"] = "model"
        result.update(status="succeeded" if report.healthy else "failed", verdict=report.verdict,
                      promote=report.promote, healthy=report.healthy, failed_gate=report.failed_gate,
                      metrics=rep["metrics"], gates=rep["gates"], report="report.json", summary="summary.txt")
        if not report.healthy:
            gate = next((g for g in report.gates if not g.passed), None)
            result["reason"] = f"gate {report.failed_gate} failed" + (f": {gate.detail}" if gate else "")
        code = 0 if report.healthy else 2
    except Exception as e:   # the job's own failure: reported, never a bare traceback only
        traceback.print_exc()
        result["reason"] = f"{type(e).__name__}: {e}"
        code = 1
    result["exit_code"] = code
    result["seconds"] = round(time.perf_counter() - t0, 3)
    _write_json(out / "result.json", result)
    _say(f"done: {result['status']} ({result['verdict'] or result['reason']}), exit {code}")
    return code, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent.retrain.run_job", description=__doc__.split("\n")[0])
    parser.add_argument("--job", required=True, type=Path, help="the job folder (holds spec.json)")
    args = parser.parse_args(argv)
    try:
        timeout = float(json.loads((args.job / "spec.json").read_text()).get("timeout_s") or 0)
    except (OSError, ValueError) as e:
        print(f"cannot read {args.job / 'spec.json'}: {e}", file=sys.stderr)
        return 1
    if timeout > 0 and hasattr(signal, "alarm"):
        signal.alarm(int(math.ceil(timeout)) + _ALARM_GRACE_S)   # default action: the process ends
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    code, _ = run(args.job)
    return code


if __name__ == "__main__":
    sys.exit(main())

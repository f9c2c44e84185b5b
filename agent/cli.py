"""``driftwarden`` command line: run, demo, profile, check, rca, retrain, replay."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any, Sequence

__all__ = ["main"]

EXIT_OK, EXIT_DRIFT, EXIT_USAGE = 0, 1, 2


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.CRITICAL)  # it logs every reconnect attempt at ERROR


def cmd_run(args: argparse.Namespace) -> int:
    from agent.config import ConfigError, load_config
    from agent.service import Agent

    try:
        cfg = load_config(args.config)
    except ConfigError as e:
        print(f"driftwarden: invalid configuration {args.config}:\n{e}", file=sys.stderr)
        return EXIT_USAGE
    agent = Agent(cfg)
    agent.install_signal_handlers()
    try:
        agent.start()
    except (FileNotFoundError, ValueError, OSError) as e:
        print(f"driftwarden: cannot start: {e}", file=sys.stderr)
        agent.stop()
        return EXIT_USAGE
    agent.run()
    return EXIT_OK


def cmd_profile(args: argparse.Namespace) -> int:
    import yaml

    from agent.monitor.reference import read_table
    from detectors.schema import Schema

    try:
        frame = read_table(args.data)
        schema = Schema.infer(frame, args.columns.split(",") if args.columns else None, args.max_categories)
    except (FileNotFoundError, ValueError) as e:
        print(f"driftwarden profile: {e}", file=sys.stderr)
        return EXIT_USAGE
    d = schema.to_dict()
    if args.format == "json":
        print(json.dumps(d, indent=2))
    else:
        print(yaml.safe_dump(d, sort_keys=False, allow_unicode=True), end="")
    return EXIT_OK


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.4g}"


def _check_columns(args: argparse.Namespace, ref_cols: list[str], cur_cols: list[str]) -> tuple[list[str], list[str], list[str]]:
    """``(compared, missing, unexpected)``: the reference features found in the current data,
    those it lacks, and current columns the reference does not have (``--exclude`` aside)."""
    exclude = set(args.exclude)
    if args.features:
        features = [c.strip() for c in args.features.split(",") if c.strip()]
        unknown = [c for c in features if c not in ref_cols]
        if unknown:
            raise ValueError(f"--features not in the reference {args.reference}: {unknown}; its columns: {ref_cols}")
    else:
        features = [c for c in ref_cols if c not in exclude]
    in_current, in_reference = set(cur_cols), set(ref_cols)
    compared = [c for c in features if c in in_current]
    missing = [c for c in features if c not in in_current]
    unexpected = [c for c in cur_cols if c not in in_reference and c not in exclude]
    if not compared:
        raise ValueError(f"no common columns to compare: reference features {features}, current columns {cur_cols}")
    return compared, missing, unexpected


def cmd_check(args: argparse.Namespace) -> int:
    # A check is a whole process, often in CI, where imports were most of its time: only what it
    # needs is imported (no agent config, no concept detectors), and the files are read by
    # pyarrow in a thread (it releases the GIL) while the detectors' imports run.
    from concurrent.futures import ThreadPoolExecutor

    from agent import tables

    try:
        compared, missing, unexpected = _check_columns(args, tables.column_names(args.reference),
                                                       tables.column_names(args.current))
        tables.import_readers(args.reference, args.current)
        with ThreadPoolExecutor(1, thread_name_prefix="check-read") as pool:
            ref_table = pool.submit(tables.read_arrow, args.reference, compared)
            # a Parquet current is read batch by batch below (memory follows the batch, not the file)
            cur_table = None if tables.is_parquet(args.current) else pool.submit(tables.read_arrow, args.current, compared)
            from detectors.drift import DatasetDrift, FeatureSummary
            from detectors.verdict import VerdictPolicy

            ref = tables.read_frame(args.reference, compared, ref_table.result())
            empty = [c for c in compared if not ref[c].notna().any()]
            if empty:
                raise ValueError(f"{args.reference}: reference columns without a value: {empty}")
            policy = VerdictPolicy(alpha=args.alpha, correction=args.correction, effect_floor=args.effect_floor)
            dd = DatasetDrift(policy=policy, n_bins=args.bins).fit(ref)
            n_ref, n_cur = len(ref), 0
            del ref
            frames = (tables.iter_frames(args.current, compared) if cur_table is None
                      else [tables.read_frame(args.current, compared, cur_table.result())])
        numeric = [n for n, fd in dd.features.items() if fd.kind == "numeric"]
        summaries: dict[str, FeatureSummary] = {n: fd.empty() for n, fd in dd.features.items()}
        for frame in frames:
            wrong = [f"{n} ({frame[n].dtype})" for n in numeric if not _is_numeric(frame[n])]
            if wrong:
                raise ValueError(f"{args.current}: columns numeric in the reference hold non-numbers here: {wrong}")
            for n, s in dd.summarise(frame).items():
                summaries[n] += s
            n_cur += len(frame)
        report = dd.compare(summaries)
    except (FileNotFoundError, ValueError, KeyError, OSError) as e:
        print(f"driftwarden check: {e}", file=sys.stderr)
        return EXIT_USAGE
    failed = report.drifted or bool(missing)
    if args.format == "json":
        out = report.to_dict()
        out["missing_columns"] = missing
        out["unexpected_columns"] = unexpected
        print(json.dumps(out, indent=2))
        return EXIT_DRIFT if failed else EXIT_OK
    print(f"reference: {args.reference} ({n_ref} rows)   current: {args.current} ({n_cur} rows)")
    print(f"{'feature':<28} {'method':<7} {'statistic':>10} {'p (adj)':>10} {'effect':>8}  drift")
    judged = {r.feature for r in report.features}
    for r in report.features:
        print(f"{r.feature[:28]:<28} {r.method:<7} {_fmt(r.statistic):>10} {_fmt(r.p_value):>10} {_fmt(r.effect_size):>8}  "
              f"{'DRIFT' if r.drifted else 'ok'}")
    for name in compared:
        if name not in judged:
            print(f"{name[:28]:<28} {'-':<7} {'-':>10} {'-':>10} {'-':>8}  no values in current (all null)")
    for name in missing:
        print(f"{name[:28]:<28} {'-':<7} {'-':>10} {'-':>10} {'-':>8}  MISSING from current")
    for name in unexpected:
        print(f"{name[:28]:<28} {'-':<7} {'-':>10} {'-':>10} {'-':>8}  unexpected (not in reference)")
    n = sum(r.drifted for r in report.features)
    print(f"{n} of {len(report.features)} features drifted (share {report.drift_share:.2f}; "
          f"alpha {args.alpha}, {args.correction}, effect floor {args.effect_floor})")
    if missing:
        print(f"{len(missing)} reference feature{'s' if len(missing) > 1 else ''} missing from the current data: "
              f"{', '.join(missing)}")
    if unexpected:
        print(f"{len(unexpected)} unexpected column{'s' if len(unexpected) > 1 else ''} in the current data "
              f"(not in the reference): {', '.join(unexpected)}")
    return EXIT_DRIFT if failed else EXIT_OK


def _is_numeric(values: Any) -> bool:
    from pandas.api.types import is_numeric_dtype

    return bool(is_numeric_dtype(values.dtype))


def cmd_replay(args: argparse.Namespace) -> int:
    from agent.ingest.kafka_python import KafkaProducerSink
    from agent.monitor.reference import read_table
    from agent.ingest.replay import ReplaySpec, label_records, prediction_records, replay

    try:
        frame = read_table(args.file)
        spec = ReplaySpec(model=args.model, id_column=args.id_column, timestamp_column=args.timestamp_column or None,
                          prediction_column=args.prediction_column, score_column=args.score_column or None,
                          label_column=args.label_column,
                          features=tuple(args.features.split(",")) if args.features else None)
        preds = prediction_records(frame, spec)
        labels: list = []
        if args.labels:
            labels = label_records(read_table(args.labels), spec, args.label_column or "label")
        elif args.label_column:
            labels = label_records(frame, spec, args.label_column)
    except (FileNotFoundError, ValueError) as e:
        print(f"driftwarden replay: {e}", file=sys.stderr)
        return EXIT_USAGE
    with KafkaProducerSink(args.bootstrap) as sink:
        n_p, n_l = replay(sink, preds, args.topic, labels, args.labels_topic, args.model, args.label_delay,
                          args.label_delay_s, args.rate, progress=not args.quiet)
    print(f"sent {n_p} predictions to {args.topic} and {n_l} labels to {args.labels_topic}")
    return EXIT_OK


def cmd_rca(args: argparse.Namespace) -> int:
    """The incident analysis of the agent, on two files: exit 0 when no cause is named, 1 when
    one is, 2 on a usage or data error."""
    from agent.monitor.reference import read_table
    from detectors.rca import analyse

    try:
        ref, cur = read_table(args.reference), read_table(args.current)
        for flag, col in (("--target", args.target), ("--prediction", args.prediction), ("--score", args.score)):
            if col is not None and col not in ref.columns:
                raise ValueError(f"{flag} {col!r} is not a column of {args.reference}: {list(ref.columns)}")
        reserved = {args.target, args.prediction, args.score, args.id_column, *args.exclude}
        features = (args.features.split(",") if args.features else
                    [c for c in ref.columns if c in cur.columns and c not in reserved])
        task = args.task or ("regression" if args.score is None and args.prediction
                             and ref[args.target].nunique() > 20 else
                             "multiclass_classification" if ref[args.target].nunique() > 2 else "binary_classification")
        report = analyse(ref, cur, target=args.target, features=features, prediction=args.prediction, score=args.score,
                         task=task, metric=args.metric, segments=args.segments or (),
                         categorical=args.categorical.split(",") if args.categorical else (),
                         id_column=args.id_column if args.id_column in cur.columns else None, seed=args.seed,
                         n_boot=args.n_boot)
    except (FileNotFoundError, ValueError, KeyError) as e:
        print(f"driftwarden rca: {e}", file=sys.stderr)
        return EXIT_USAGE
    body = {"id": "cli", "model": Path(args.current).stem, "kind": "manual", "status": "open",
            "summary": f"{args.current} against {args.reference}", "rca": {"status": "done", **report.to_dict()}}
    if args.format == "html":
        from agent.rca.report import render_report

        text = render_report(body)
    else:
        import orjson

        text = orjson.dumps(body["rca"], option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY, default=str).decode()
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        print(text)
    top = report.top
    print(f"driftwarden rca: {top.cause} ({top.confidence:.2f}): {top.summary}" if top else
          "driftwarden rca: no cause named", file=sys.stderr)
    return EXIT_DRIFT if top else EXIT_OK


def cmd_retrain(args: argparse.Namespace) -> int:
    """The agent's retraining path by hand, for one incident of a stopped agent's state: the
    dataset from its stored traffic, the job with every gate, the version in the registry."""
    import re
    import time

    from tqdm import tqdm

    from agent.config import ConfigError, load_config
    from agent.incidents.store import IncidentStore
    from agent.monitor.model import ModelMonitor
    from agent.monitor.reference import ModelReference
    from agent.retrain.controller import RetrainController, launchers_for
    from agent.retrain.jobs import JobManager
    from agent.retrain.registry import ModelRegistry
    from agent.state.checkpoint import CheckpointStore
    from agent.state.counters import Counters

    try:
        cfg = load_config(args.config)
    except ConfigError as e:
        print(f"driftwarden retrain: invalid configuration {args.config}:\n{e}", file=sys.stderr)
        return EXIT_USAGE
    state = Path(cfg.state_dir)
    cp = CheckpointStore(state).load()
    store = IncidentStore.from_state(cp.extra if cp is not None else {}, Counters())
    status, inc = store.get(args.incident)
    if status != 200:
        print(f"driftwarden retrain: no incident {args.incident!r} in {state}", file=sys.stderr)
        return EXIT_USAGE
    model = str(inc["model"])
    if model not in cfg.models:
        print(f"driftwarden retrain: incident {args.incident} is about {model!r}, not a configured model", file=sys.stderr)
        return EXIT_USAGE
    mon = ModelMonitor(ModelReference.load(model, cfg.models[model]), Counters())
    jobs = JobManager(state, launchers_for({model: cfg.models[model]}, state), ModelRegistry(state), default_launcher="local",
                      cooldown_s=cfg.models[model].retrain.cooldown_s)
    ctl = RetrainController(state, {model: cfg.models[model]}, {model: mon}, store, jobs)
    actions = [a for a in (inc.get("rca") or {}).get("actions", []) if a.get("action") == "retrain"]
    out = ctl.launch(args.incident, model, actions[0] if actions else {"action": "retrain"}, force=args.force)
    if out["status"] != "submitted":
        print(f"driftwarden retrain: {out['status']}: {out.get('reason')}", file=sys.stderr)
        return EXIT_DRIFT
    job = out["job"]
    log = Path(jobs.record(job).directory) / "job.log"
    bar = tqdm(total=None, unit="epoch", desc=f"{job} ({model})")
    seen = 0
    while True:
        jobs.update()
        rec = jobs.record(job)
        epochs = re.findall(r"epoch (\d+)/(\d+)", log.read_text(errors="replace")) if log.exists() else []
        if epochs:
            done, total = int(epochs[-1][0]), int(epochs[-1][1])
            bar.total = total
            bar.update(done - seen)
            seen = done
        if rec.status in ("succeeded", "failed"):
            break
        time.sleep(0.5)
    bar.close()
    _, body = jobs.get(job)
    print(f"{job}: {rec.status}" + (f" ({rec.reason})" if rec.reason else ""))
    for g in body.get("gates", []):
        print(f"  {'PASS' if g.get('passed') else 'FAIL'} {g.get('name')}: {g.get('figure')}")
    print(f"promoted version: {jobs.registry.promoted(model) if jobs.registry else None}")
    return EXIT_OK if rec.status == "succeeded" else EXIT_DRIFT


def cmd_demo(args: argparse.Namespace) -> int:
    from agent.demo.run import run_demo

    return run_demo(duration_s=args.duration, port=args.port, rate=args.rate, state_dir=Path(args.state_dir),
                    retrain=not args.no_retrain, with_prometheus=args.with_prometheus)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="driftwarden", description="Drift and performance monitoring agent for ML models.")
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run the agent")
    r.add_argument("--config", required=True, help="YAML configuration file")
    r.set_defaults(func=cmd_run)

    d = sub.add_parser("demo", help="embedded broker + simulated serving stack + agent, on this machine")
    d.add_argument("--duration", type=float, default=None, help="seconds to run (default: until Ctrl-C)")
    d.add_argument("--port", type=int, default=9108, help="HTTP port for /metrics")
    d.add_argument("--rate", type=float, default=1000.0, help="simulated predictions per second")
    d.add_argument("--state-dir", default="./demo-state")
    d.add_argument("--with-prometheus", action="store_true",
                   help="also run Prometheus and Alertmanager on loopback (scripts/setup.sh installs them): "
                        "the shipped rules fire and Alertmanager's webhook reaches the agent")
    d.add_argument("--no-retrain", action="store_true", help="watch and analyse only; launch no retraining job")
    d.set_defaults(func=cmd_demo)

    pr = sub.add_parser("profile", help="infer and print the schema of a reference data set")
    pr.add_argument("data")
    pr.add_argument("--columns", help="comma-separated subset")
    pr.add_argument("--max-categories", type=int, default=200)
    pr.add_argument("--format", choices=["yaml", "json"], default="yaml")
    pr.set_defaults(func=cmd_profile)

    c = sub.add_parser("check", help="one-shot drift report (exit 0: no drift, 1: drift, 2: usage or data error)")
    c.add_argument("--reference", required=True)
    c.add_argument("--current", required=True)
    c.add_argument("--features", help="comma-separated (default: all common columns)")
    c.add_argument("--exclude", nargs="*", default=["id", "timestamp", "prediction_id"])
    c.add_argument("--alpha", type=float, default=0.05)
    c.add_argument("--correction", choices=["bh", "bonferroni", "none"], default="bh")
    c.add_argument("--effect-floor", type=float, default=0.1)
    c.add_argument("--bins", type=int, default=20)
    c.add_argument("--format", choices=["table", "json"], default="table")
    c.set_defaults(func=cmd_check)

    a = sub.add_parser("rca", help="root-cause analysis of CURRENT against REFERENCE (exit 0: no cause, 1: a cause "
                                   "named, 2: usage or data error)")
    a.add_argument("--reference", required=True, help="CSV/Parquet/JSONL with features, target and the model's output")
    a.add_argument("--current", required=True, help="the same columns for the traffic to explain (target may be empty)")
    a.add_argument("--target", required=True)
    a.add_argument("--prediction", help="predicted class (classification) or value (regression)")
    a.add_argument("--score", help="positive-class probability (binary classifiers)")
    a.add_argument("--features", help="comma-separated (default: every common column that is not named otherwise)")
    a.add_argument("--categorical", help="comma-separated numeric columns to treat as categories")
    a.add_argument("--segments", nargs="*", help="columns to slice on first")
    a.add_argument("--id-column", default="id")
    a.add_argument("--exclude", nargs="*", default=["timestamp", "prediction_id"])
    a.add_argument("--task", choices=["binary_classification", "multiclass_classification", "regression"])
    a.add_argument("--metric", help="default: roc_auc with a score, accuracy, or mae")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--n-boot", type=int, default=200)
    a.add_argument("--format", choices=["json", "html"], default="json")
    a.add_argument("--output", help="write here instead of stdout")
    a.set_defaults(func=cmd_rca)

    t = sub.add_parser("retrain", help="build the dataset and run the retraining job of an incident by hand "
                                       "(the agent stopped; exit 0: the job succeeded, 1: refused or failed)")
    t.add_argument("--config", required=True, help="the agent's YAML configuration (its state_dir holds the incident)")
    t.add_argument("--incident", required=True, help="incident id, e.g. inc-3")
    t.add_argument("--force", action="store_true", help="ignore the cool-down")
    t.set_defaults(func=cmd_retrain)

    rp = sub.add_parser("replay", help="send a CSV/Parquet/JSONL file to Kafka as prediction (and label) records")
    rp.add_argument("file")
    rp.add_argument("--topic", default="predictions")
    rp.add_argument("--bootstrap", default="localhost:9092")
    rp.add_argument("--model", required=True)
    rp.add_argument("--id-column", default="id")
    rp.add_argument("--timestamp-column", default="timestamp")
    rp.add_argument("--prediction-column", default="y_pred")
    rp.add_argument("--score-column", default="y_pred_proba")
    rp.add_argument("--features", help="comma-separated feature columns (default: all others)")
    rp.add_argument("--labels", help="file with labels joined by the id column")
    rp.add_argument("--label-column", help="label column (in --labels, or in FILE itself)")
    rp.add_argument("--labels-topic", default="labels")
    rp.add_argument("--label-delay", type=int, default=0, help="send each label this many records after its prediction")
    rp.add_argument("--label-delay-s", type=float, default=0.0, help="... or this many seconds after")
    rp.add_argument("--rate", type=float, default=None, help="predictions per second (default: as fast as possible)")
    rp.add_argument("--quiet", action="store_true")
    rp.set_defaults(func=cmd_replay)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in ("run", "demo"):
        _setup_logging(args.verbose)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())

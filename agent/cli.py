"""``driftwarden`` command line: run, demo, profile, check, replay."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Sequence

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

    from agent.reference import read_table
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


def cmd_check(args: argparse.Namespace) -> int:
    from agent.reference import read_table
    from detectors.drift import DatasetDrift
    from detectors.verdict import VerdictPolicy

    try:
        ref = read_table(args.reference)
        cur = read_table(args.current)
        cols = args.features.split(",") if args.features else [c for c in ref.columns if c in cur.columns and c not in args.exclude]
        missing = [c for c in cols if c not in ref.columns or c not in cur.columns]
        if missing:
            raise ValueError(f"features missing from the reference or current data: {missing}")
        if not cols:
            raise ValueError("no common columns to compare")
        policy = VerdictPolicy(alpha=args.alpha, correction=args.correction, effect_floor=args.effect_floor)
        dd = DatasetDrift(policy=policy, n_bins=args.bins).fit(ref[cols])
        report = dd.compare(dd.summarise(cur[cols]))
    except (FileNotFoundError, ValueError, KeyError) as e:
        print(f"driftwarden check: {e}", file=sys.stderr)
        return EXIT_USAGE
    if args.format == "json":
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(f"reference: {args.reference} ({len(ref)} rows)   current: {args.current} ({len(cur)} rows)")
        print(f"{'feature':<28} {'method':<7} {'statistic':>10} {'p (adj)':>10} {'effect':>8}  drift")
        for r in report.features:
            print(f"{r.feature[:28]:<28} {r.method:<7} {_fmt(r.statistic):>10} {_fmt(r.p_value):>10} {_fmt(r.effect_size):>8}  "
                  f"{'DRIFT' if r.drifted else 'ok'}")
        n = sum(r.drifted for r in report.features)
        print(f"{n} of {len(report.features)} features drifted (share {report.drift_share:.2f}; "
              f"alpha {args.alpha}, {args.correction}, effect floor {args.effect_floor})")
    return EXIT_DRIFT if report.drifted else EXIT_OK


def cmd_replay(args: argparse.Namespace) -> int:
    from agent.broker import KafkaProducerSink
    from agent.reference import read_table
    from agent.replay import ReplaySpec, label_records, prediction_records, replay

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


def cmd_demo(args: argparse.Namespace) -> int:
    from agent.demo import run_demo

    return run_demo(duration_s=args.duration, port=args.port, rate=args.rate, state_dir=Path(args.state_dir))


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

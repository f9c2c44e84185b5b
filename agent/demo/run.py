"""``driftwarden demo``: everything on one machine, nothing else running.

An embedded Kafka-compatible broker (tansu), a simulated serving stack (a small torch model
trained at start on generated loan data, serving predictions into Kafka, labels following a few
seconds later, drift ramping in part-way) and the real agent consuming both topics, with a live
summary on the terminal and ``/metrics`` for Prometheus. Ctrl-C (or ``--duration``) stops it
cleanly: simulator, agent (checkpoint, commit), broker, in that order.
"""

from __future__ import annotations

import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TextIO

__all__ = ["run_demo"]

MODEL = "car-loan"


def _summary(agent, sim, started: float) -> str:  # noqa: ANN001 - Agent, ServingSimulator
    snap = agent.snapshot
    ev = snap.counters.events
    ok_p, ok_l = ev[(MODEL, "predictions", "ok")], ev[(MODEL, "labels", "ok")]
    line = (f"[{time.monotonic() - started:6.0f}s] sent {sim.sent_predictions:>7} preds (drift {sim.current_drift:4.2f})"
            f" | agent: {ok_p:>7} preds, {ok_l:>7} labels, {snap.counters.windows[MODEL]:>3} windows")
    res = snap.latest.get(MODEL)
    if res is not None:
        drifted = [r.feature for r in res.drift.features if r.drifted]
        line += f" | window {res.window_id}: drift {res.drift.drift_share:.0%} {drifted or ''}"
    perf = snap.latest_performance.get(MODEL)
    if perf is not None and "all" in perf.performance:
        line += f" | ROC AUC {perf.performance['all'].get('roc_auc', float('nan')):.3f}"
        line += f" (labels {perf.label_coverage:.0%})"
    est = snap.estimated.get(MODEL, {}).get("roc_auc")
    if est is not None:
        line += f" est {est:.3f}"
    return line


def run_demo(duration_s: float | None = None, port: int = 9108, rate: float = 1000.0, state_dir: Path = Path("./demo-state"),
             window: int = 5000, drift_after_s: float = 60.0, out: TextIO = sys.stdout) -> int:
    from agent.ingest.kafka_python import KafkaProducerSink
    from agent.config import build_config
    from agent.ingest.embedded import EmbeddedBroker
    from agent.service import Agent
    from agent.demo.serving import ServingSimulator, build_reference, make_dataset, train_model

    def say(msg: str) -> None:
        print(msg, file=out, flush=True)

    if state_dir.exists():
        shutil.rmtree(state_dir)  # a demo starts from nothing: no checkpoint from an earlier run
    state_dir.mkdir(parents=True)
    say("driftwarden demo: training the serving model on generated loan data ...")
    train = make_dataset(20_000, seed=1)
    model = train_model(train, seed=1)
    reference_path = state_dir / "reference.parquet"
    build_reference(model, make_dataset(20_000, seed=2)).to_parquet(reference_path)
    say(f"  reference set ({reference_path}) scored by the model")

    broker = EmbeddedBroker(log_path=state_dir / "tansu.log").start()
    say(f"  embedded Kafka-compatible broker (tansu) at {broker.bootstrap}")
    cfg = build_config({
        "kafka": {"bootstrap_servers": broker.bootstrap, "group_id": "driftwarden-demo"},
        "http": {"host": "127.0.0.1", "port": port},
        "state_dir": str(state_dir / "agent"),
        "models": {MODEL: {
            "task": "binary_classification", "reference": str(reference_path), "target": "repaid",
            "prediction": "y_pred", "score": "y_pred_proba", "window": {"size": window},
            "segments": ["employment", "region"]}},
    })
    agent = Agent(cfg)
    stop = threading.Event()
    sim_thread: threading.Thread | None = None
    sink = None
    try:
        agent.start()
        say(f"  agent serving http://127.0.0.1:{agent.http.port}/metrics (also /healthz, /readyz, /windows)")
        sink = KafkaProducerSink(broker.bootstrap)
        sim = ServingSimulator(model, sink, cfg.kafka.predictions_topic, cfg.kafka.labels_topic, model_name=MODEL,
                               rate=rate, label_delay_s=3.0, label_share=0.9, drift_after=int(rate * drift_after_s),
                               drift_ramp=int(rate * 30), seed=3)
        sim_thread = threading.Thread(target=sim.run, kwargs={"stop": stop}, name="simulator", daemon=True)
        sim_thread.start()
        say(f"  simulated serving stack: {rate:.0f} predictions/s, labels 3 s later (90%), drift from {drift_after_s:.0f} s")
        say("  Ctrl-C to stop" + (f"; stopping by itself after {duration_s:.0f} s" if duration_s else ""))
        started = time.monotonic()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        last = 0.0
        told: dict[str, str] = {}
        base = f"http://127.0.0.1:{agent.http.port}"

        def tell_incidents() -> None:
            """Each incident once when it opens, and its analysis' top cause when that is done."""
            for inc in agent.incidents.get("")[1]:
                rca = inc.get("rca") or {}
                state = rca.get("status", "")
                if told.get(inc["id"]) == state or (inc["id"] in told and state not in ("done", "failed")):
                    continue
                if inc["id"] not in told:
                    say(f"  ! incident {inc['id']} opened: {inc['kind']} ({inc.get('severity', '-')}): "
                        f"{inc.get('summary', inc.get('alertname', ''))}")
                if state == "done":
                    top = (rca.get("causes") or [None])[0]
                    act = (rca.get("actions") or [{}])[0].get("action", "none")
                    say(f"  ! root cause of {inc['id']}: " + (f"{top['cause']} ({top['confidence']:.2f}): {top['summary']}"
                                                          if top else "no cause named")
                        + f"; action: {act}; report: {base}/incidents/{inc['id']}/report")
                elif state == "failed":
                    say(f"  ! analysis of {inc['id']} failed: {rca.get('reason')}")
                told[inc["id"]] = state

        def until() -> bool:
            nonlocal last
            now = time.monotonic()
            if now - last >= 5.0:
                last = now
                say(_summary(agent, sim, started))
                tell_incidents()
            if duration_s is not None and now - started >= duration_s:
                stop.set()
            return stop.is_set()

        agent.loop(until=until)
        say(_summary(agent, sim, started))
    finally:
        stop.set()
        if sim_thread is not None:
            sim_thread.join(timeout=10)
        if sink is not None:
            sink.close()
        agent.stop()
        broker.stop()
    say(f"stopped cleanly; window verdicts in {state_dir / 'agent' / 'windows'}")
    return 0

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


def _lift(metrics: dict) -> str:  # noqa: ANN001 - a job's metrics
    """'holdout roc_auc 0.681 (served) -> 0.742, +0.061 [+0.048, +0.075]' from the trainer's metrics."""
    served = next((k for k in metrics if k.startswith("holdout_champion_")), None)
    if served is None or "improvement" not in metrics:
        return ""
    name = served.removeprefix("holdout_champion_")
    return (f"holdout {name} {metrics[served]:.3f} (served) -> {metrics.get('holdout_' + name, float('nan')):.3f}, "
            f"{metrics['improvement']:+.3f} [{metrics['improvement_low']:+.3f}, {metrics['improvement_high']:+.3f}]")


def _alert_path(agent_port: int, state_dir: Path, say) -> list:  # noqa: ANN001 - say: Callable[[str], None]
    """Alertmanager and Prometheus on loopback, with the shipped rules and route: the alert path a
    deployment has, Prometheus -> Alertmanager -> POST /alerts."""
    from agent.demo.monitoring import Alertmanager, Prometheus, alertmanager_config, fast_rules

    hook = f"http://127.0.0.1:{agent_port}/alerts"
    am = Alertmanager(hook, config=alertmanager_config(hook, None)).start()   # the demo's agent has no token
    try:
        prom = Prometheus([f"127.0.0.1:{agent_port}"], rule_files=[fast_rules(state_dir / "rules.yml")],
                          alertmanager=am.address, scrape_interval="2s", evaluation_interval="2s").start()
    except BaseException:
        am.stop()
        raise
    say(f"  Prometheus {prom.url} (deploy/prometheus/rules.yml, every 'for' at 0 s) -> Alertmanager {am.url}"
        f" (deploy/alertmanager/alertmanager.yml) -> {hook}")
    return [am, prom]


def run_demo(duration_s: float | None = None, port: int = 9108, rate: float = 1000.0, state_dir: Path = Path("./demo-state"),
             window: int = 5000, drift_after_s: float = 60.0, out: TextIO = sys.stdout, retrain: bool = True,
             with_prometheus: bool = False, linger_after_job_s: float | None = None) -> int:
    from agent.ingest.kafka_python import KafkaProducerSink
    from agent.config import build_config
    from agent.ingest.embedded import EmbeddedBroker
    from agent.service import Agent
    from agent.demo.serving import PromotedModel, ServingSimulator, build_reference, make_dataset, train_model
    from agent.retrain.registry import ModelRegistry

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
            "prediction": "y_pred", "score": "y_pred_proba",
            # labels come 3 s late: a window is final (and stored for retraining) 4 windows on
            "window": {"size": window, "label_retention": 4},
            "segments": ["employment", "region"],
            # One job per run: min_rows of labelled traffic, a short epoch budget on the CPU.
            "retrain": {"enabled": retrain, "min_rows": 5 * window, "epochs": 20, "cooldown_s": 3600, "timeout_s": 600}}},
    })
    agent = Agent(cfg)
    stop = threading.Event()
    sim_thread: threading.Thread | None = None
    sink = None
    services: list = []  # Prometheus, Alertmanager: stopped in reverse
    previous: dict = {}  # signal handlers to put back
    try:
        agent.start()
        say(f"  agent serving http://127.0.0.1:{agent.http.port}/metrics (also /healthz, /readyz, /windows)")
        if with_prometheus:
            services = _alert_path(agent.http.port, state_dir, say)
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
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
        last = 0.0
        told: dict[str, str] = {}
        retrain_told: dict[str, str] = {}
        alerts_told: dict[str, list[str]] = {}
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
            for inc in agent.incidents.get("")[1]:
                names = sorted({a["alertname"] for a in inc.get("alerts", []) if a.get("alertname")})
                if inc.get("kind") != "alertmanager" and names and alerts_told.get(inc["id"]) != names:
                    alerts_told[inc["id"]] = names
                    say(f"  ! alert {', '.join(names)} (Prometheus -> Alertmanager -> /alerts) joined {inc['id']}")
                r = inc.get("retrain") or {}
                if r.get("status") in ("waiting", "refused", "failed") and retrain_told.get(inc["id"]) != r["status"]:
                    retrain_told[inc["id"]] = r["status"]
                    say(f"  ~ retraining for {inc['id']} {r['status']}: {r.get('reason')}")

        registry = ModelRegistry(cfg.state_dir)
        jobs_told: dict[str, str] = {}
        job_ended: list[float | None] = [None]

        def tell_jobs() -> None:
            """Each retraining job when it starts and when it ends; a promoted version is loaded
            by the serving stack, as a real one watching the registry's pointer would."""
            for job in reversed(agent.retrain.jobs.list()[1]):
                status = job["status"]
                if jobs_told.get(job["id"]) == status:
                    continue
                jobs_told[job["id"]] = status
                if status in ("pending", "running"):
                    say(f"  ~ retraining job {job['id']} for {job['incident']} is {status}: {base}/jobs/{job['id']}")
                    continue
                job_ended[0] = job_ended[0] or time.monotonic()
                _, rec = agent.retrain.jobs.get(job["id"])
                gates = rec.get("gates") or []
                passed = sum(1 for g in gates if g.get("passed"))
                lift = _lift(rec.get("metrics") or {})
                say(f"  ~ job {job['id']} {status}: {passed}/{len(gates)} gates passed, verdict {rec.get('verdict')}"
                    + (f", failed gate {rec['failed_gate']}" if rec.get("failed_gate") else "")
                    + (f"; {lift}" if lift else "")
                    + (f"; version {rec['version']} promoted" if rec.get("promoted") else
                       f"; reason: {rec.get('reason')}" if rec.get("reason") else ""))
            promoted = registry.promoted(MODEL)
            if promoted is not None and promoted != sim.model_version:
                sim.swap(PromotedModel(registry.load(MODEL, promoted), promoted))
                say(f"  ~ serving stack reloaded {MODEL} version {promoted} from {registry.path(MODEL, promoted)}")

        def until() -> bool:
            nonlocal last
            now = time.monotonic()
            if now - last >= 5.0:
                last = now
                say(_summary(agent, sim, started))
                tell_incidents()
                tell_jobs()
            if duration_s is not None and now - started >= duration_s:
                stop.set()
            if linger_after_job_s is not None and job_ended[0] is not None and now - job_ended[0] >= linger_after_job_s:
                stop.set()   # the loop was shown: the job ended and the summaries after it printed
            return stop.is_set()

        agent.loop(until=until)
        say(_summary(agent, sim, started))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        stop.set()
        if sim_thread is not None:
            sim_thread.join(timeout=10)
        if sink is not None:
            sink.close()
        for svc in reversed(services):
            svc.stop()
        agent.stop()
        broker.stop()
    say(f"stopped cleanly; window verdicts in {state_dir / 'agent' / 'windows'}")
    return 0

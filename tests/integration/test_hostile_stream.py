"""No record stops the agent: good traffic mixed with hostile records through a real tansu broker
into a real agent process.

The same good traffic (plus the hostile records that are valid JSON within the contract, such as
booleans as classes) is replayed on a second pair of topics without the invalid ones, into a
second agent. Asserted: the first agent is alive, every record is counted exactly once (ok or
invalid), every invalid one is in the DLQ with its reason and offset, and the windows of both
agents are the same.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pandas as pd
import pytest
import yaml

from agent.ingest.kafka_python import KafkaProducerSink
from agent.ingest.replay import ReplaySpec, label_records, prediction_records
from tests.support.data import data_file
from tests.support.kafka import end_offsets, read_to_end
from tests.support.metrics import event_counts, taken_in, wait_taken_in
from agent.ingest.embedded import free_port

MODEL = "car-loan"
ROWS = 6_000
WINDOW = 2_000
BIG = "1" + "0" * 309
TS0 = "2018-01-01T00:00:00Z"  # before the replayed traffic: hostile records move no event clock


def _pred(i: int, **fields: object) -> dict:
    return {"prediction_id": f"hostile-{i}", "model": MODEL, "timestamp": TS0,
            "features": {"car_value": 20_000.0, "salary_range": "40K - 60K €", "debt_to_income_ratio": 0.3,
                         "loan_length": 12, "repaid_loan_on_prev_car": "repaid previous loan",
                         "size_of_downpayment": "20%", "driver_tenure": 4.0},
            "prediction": 1, "score": 0.5, **fields}


def _splice(rec: dict, field: str, token: str) -> bytes:
    """``rec`` as JSON with the raw number ``token`` in ``field`` (``features.x`` for a feature)."""
    marker = 424242.125
    if field.startswith("features."):
        rec["features"][field.split(".", 1)[1]] = marker
    else:
        rec[field] = marker
    return orjson.dumps(rec).replace(b"424242.125", token.encode())


def hostile_predictions() -> list[tuple[bytes, bool]]:
    """(record, valid?) pairs: invalid ones must be dead-lettered, valid ones counted ok."""
    out: list[tuple[bytes, bool]] = []
    i = 0
    tokens = {"oversized int": BIG, "negative oversized": "-" + "9" * 400, "1e400": "1e400",
              "thousands of digits": "7" * 5000, "leading zeros": "0." + "0" * 99_999 + "1e1000000"}
    for field in ("features.car_value", "features.loan_length", "prediction", "score", "timestamp"):
        for token in tokens.values():
            out.append((_splice(_pred(i), field, token), False))
            i += 1
    for token in ("NaN", "Infinity", "-Infinity"):
        out.append((_splice(_pred(i), "features.car_value", token), False))
        i += 1
    out.append((orjson.dumps(_pred(i)).replace(b'"hostile-', b'"\\ud800hostile-'), False))  # lone surrogate
    i += 1
    deep = b"[" * 50_000 + b"]" * 50_000
    out.append((orjson.dumps(_pred(i)).replace(b'"loan_length":12', b'"loan_length":' + deep), False))
    i += 1
    # valid within the contract: counted ok, and replayed to the control agent too
    out.append((_splice(_pred(i), "features.car_value", "-1e-400"), True))
    i += 1
    for cls in (True, False, "1", "0", "maybe"):
        out.append((orjson.dumps(_pred(i, prediction=cls)), True))
        i += 1
    return out


def hostile_labels() -> list[tuple[bytes, bool]]:
    def lab(i: int, value: str) -> bytes:
        return f'{{"prediction_id": "hostile-{i}", "model": "{MODEL}", "label": {value}, "timestamp": "{TS0}"}}'.encode()

    return [(lab(0, BIG), False), (lab(1, "1e400"), False), (lab(2, "NaN"), False),
            (lab(30, "true"), True), (lab(31, '"1"'), True), (lab(32, '"maybe"'), True)]


def _config(tmp: Path, bootstrap: str, topics: tuple[str, str], group: str) -> Path:
    cfg = {
        "kafka": {"bootstrap_servers": bootstrap, "predictions_topic": topics[0], "labels_topic": topics[1],
                  "group_id": group, "max_poll_records": 500},
        "http": {"host": "127.0.0.1", "port": free_port()},
        "state_dir": str(tmp / "state"),
        "join": {"ttl": "3650d"},  # no label expires: which ones would depends on poll interleaving
        "models": {MODEL: {
            "task": "binary_classification", "reference": str(data_file("synthetic_car_loan_reference.csv")),
            "target": "repaid", "prediction": "y_pred", "score": "y_pred_proba",
            "window": {"size": WINDOW, "label_retention": 20, "label_lateness": "30d"}, "segments": ["salary_range"]}},
    }
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / "agent.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _windows(state: Path) -> dict[int, dict]:
    out: dict[int, dict] = {}
    for line in (state / "windows" / f"{MODEL}.jsonl").read_text().splitlines():
        rec = json.loads(line)
        out[rec["window"]] = rec  # the last judgement of each window
    return out


@pytest.mark.timeout(300)
def test_hostile_records_never_stop_the_agent_and_lose_nothing(broker, unique_topic, tmp_path: Path) -> None:  # noqa: ANN001
    analysis = pd.read_csv(data_file("synthetic_car_loan_analysis.csv")).iloc[:ROWS]
    target = pd.read_csv(data_file("synthetic_car_loan_analysis_target.csv")).iloc[:ROWS]
    spec = ReplaySpec(model=MODEL)
    preds = [v for _, v in prediction_records(analysis, spec)]
    # labels carry their prediction's event time (label lateness is event time: a label stamped
    # far ahead of its window would close the join early, in either run)
    ts = {r["prediction_id"]: r.get("timestamp") for r in map(orjson.loads, preds)}
    labels = [orjson.dumps({"prediction_id": pid, "model": MODEL, "label": y, "timestamp": ts[pid]})
              for pid, _, y in label_records(target, spec, "repaid")]
    bad_preds, bad_labels = hostile_predictions(), hostile_labels()
    # hostile records spread through the stream, inside windows, not only at the edges
    mixed = list(preds)
    for j, (rec, _) in enumerate(bad_preds):
        mixed.insert(1 + j * (len(preds) // len(bad_preds)), rec)
    mixed_labels = list(labels)
    for j, (rec, _) in enumerate(bad_labels):
        mixed_labels.insert(1 + j * (len(labels) // len(bad_labels)), rec)
    invalid = {rec for rec, ok in bad_preds + bad_labels if not ok}
    control = [r for r in mixed if r not in invalid], [r for r in mixed_labels if r not in invalid]

    runs = {}
    for name, (p, lab) in {"hostile": (mixed, mixed_labels), "control": control}.items():
        topics = (unique_topic(f"{name}-predictions"), unique_topic(f"{name}-labels"))
        broker.create_topics(list(topics), partitions=1)
        with KafkaProducerSink(broker.bootstrap) as sink:
            for v in p:
                sink.send(topics[0], None, v)
            for v in lab:
                sink.send(topics[1], None, v)
        end = end_offsets(broker.bootstrap, {topics[0]: len(p), topics[1]: len(lab)})  # counted by reading
        tmp = tmp_path / name
        config = _config(tmp, broker.bootstrap, topics, unique_topic(f"{name}-group"))
        port = yaml.safe_load(config.read_text())["http"]["port"]
        log = tmp / "agent.log"
        env = {k: v for k, v in os.environ.items() if k != "DRIFTWARDEN_CRASH_AT"}
        proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "run", "--config", str(config)], env=env,
                                stdout=open(log, "ab"), stderr=subprocess.STDOUT)  # noqa: SIM115
        try:
            taken = wait_taken_in(port, {"predictions": end[(topics[0], 0)], "labels": end[(topics[1], 0)]}, timeout_s=150,
                          alive=lambda: proc.poll() is None, context=lambda: log.read_text()[-4000:])
            # every label joined or settled (none waiting for its prediction), and the agent alive
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, log.read_text()[-4000:]
                counts = event_counts(port)
                if counts is not None and sum(v for (_, s, _), v in counts.items() if s == "labels") == len(lab):
                    break
                assert time.monotonic() < deadline, f"labels still waiting: {counts}\n{log.read_text()[-4000:]}"
                time.sleep(0.2)
            assert taken_in(port) == taken  # nothing more came in
        finally:
            proc.terminate()
            rc = proc.wait(timeout=30)
        assert rc == 0, log.read_text()[-4000:]
        runs[name] = {"counts": counts, "topics": topics, "windows": _windows(tmp / "state"), "sent": (p, lab),
                      "taken": taken}

    hostile, ctrl = runs["hostile"], runs["control"]
    c = hostile["counts"]
    n_bad_p = sum(not ok for _, ok in bad_preds)
    n_bad_l = sum(not ok for _, ok in bad_labels)
    invalid_p = sum(v for (_, s, o), v in c.items() if s == "predictions" and o == "invalid")
    invalid_l = sum(v for (_, s, o), v in c.items() if s == "labels" and o == "invalid")
    assert (invalid_p, invalid_l) == (n_bad_p, n_bad_l)
    for stream, sent in (("predictions", hostile["sent"][0]), ("labels", hostile["sent"][1])):
        # every record exactly once: counted by outcome, or (labels) waiting in the join
        assert hostile["taken"][stream] == len(sent), (stream, hostile["taken"], len(sent))
    for (m, s, o), v in ctrl["counts"].items():
        if o != "invalid":
            assert c[(m, s, o)] == v, f"{(m, s, o)} {ctrl['counts']} {ctrl['taken']}"  # the same ok / duplicate / expired counts as the control

    # every invalid record is in the DLQ, once, with its reason and its source offset
    for topic, sent in zip(hostile["topics"], hostile["sent"]):
        dlq = read_to_end(broker.bootstrap, topic + ".dlq")
        dead = [r for r in dlq if r.headers and dict(r.headers).get("dlq.source.topic") == topic.encode()]
        offsets = sorted(int(dict(r.headers)["dlq.source.offset"]) for r in dead)
        assert offsets == sorted(i for i, v in enumerate(sent) if v in invalid)
        for r in dead:
            h = dict(r.headers)
            reason = h["dlq.reason"].decode()
            assert f"offset {int(h['dlq.source.offset'])}" in reason
            assert r.value == sent[int(h["dlq.source.offset"])][:1 << 20]
            if b"0" * 300 in r.value or b"1e400" in r.value:
                assert "field '" in reason, reason  # numbers beyond a double: the field is named

    # the good records' windows are unchanged by the hostile ones
    assert sorted(hostile["windows"]) == sorted(ctrl["windows"]) and len(ctrl["windows"]) >= ROWS // WINDOW
    for wid, want in ctrl["windows"].items():
        got = hostile["windows"][wid]
        for key in ("n", "drift", "performance", "support", "prediction_drift"):
            assert got[key] == want[key], (wid, key)

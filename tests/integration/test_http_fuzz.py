"""Fuzzing the agent's two inputs on the real thing: its HTTP port and its Kafka topics.

One real agent (in-process `Agent`, a tiny reference, the session's real tansu broker, a bearer
token) serves every test of this module while its ingest loop runs in a thread.

HTTP: hypothesis POSTs arbitrary bytes, arbitrary JSON and near-valid Alertmanager v4 payloads
(one field mutated) to /alerts: never a 5xx or a dropped connection; 400 with a JSON reason for
an invalid body, 202 for a valid one; 413 over the size limit; 401 on a wrong token; other
paths and methods get a 4xx; the server thread survives all of it.

Kafka: hypothesis generates traffic (garbage bytes, tombstones, JSON of random shapes,
near-valid predictions and labels with one field mutated, duplicates, oversized records, valid
ones with odd feature values), sends it through the broker, and checks every record is counted
exactly once under the outcome an independent reading of the message contract (DESIGN.md)
gives it, and that each invalid one lands in `<topic>.dlq` with a reason header.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from kafka import KafkaConsumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from agent.ingest.kafka_python import KafkaProducerSink
from agent.config import build_config
from agent.service import Agent
from tests.support.kafka import end_offsets
from tests.support.metrics import wait_taken_in

TOKEN = "fuzz-" + uuid.uuid4().hex
TOKEN_ENV = "DRIFTWARDEN_FUZZ_TOKEN"
MODEL = "loans"
MAX_BODY = 4096
MAX_RECORD = 2048
NUMERIC = ["amount", "age"]
CATEGORICAL = ["city", "plan"]
HTTP_SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                         database=None)


# -- the agent under test -----------------------------------------------------------------------

def _reference(path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 300
    score = rng.random(n).round(3)
    pd.DataFrame({
        "amount": rng.normal(1000, 200, n).round(2), "age": rng.integers(18, 80, n),
        "city": rng.choice(["paris", "lyon", "nantes"], n), "plan": rng.choice(["a", "b"], n),
        "y": (rng.random(n) < score).astype(int), "y_pred": (score > 0.5).astype(int), "y_proba": score,
    }).to_csv(path, index=False)


@dataclass
class Running:
    agent: Agent
    thread: threading.Thread
    errors: list[BaseException] = field(default_factory=list)
    sent: Counter = field(default_factory=Counter)  # records produced to each topic so far

    @property
    def port(self) -> int:
        assert self.agent.http is not None
        return self.agent.http.port


@pytest.fixture(scope="module")
def agent(broker, tmp_path_factory) -> Iterator[Running]:  # noqa: ANN001
    tmp = tmp_path_factory.mktemp("fuzz")
    _reference(tmp / "ref.csv")
    tag = f"fuzz-{uuid.uuid4().hex[:8]}"
    cfg = build_config({
        "kafka": {"bootstrap_servers": broker.bootstrap, "predictions_topic": f"{tag}.predictions",
                  "labels_topic": f"{tag}.labels", "group_id": tag, "max_record_bytes": MAX_RECORD,
                  "max_poll_records": 500},
        "http": {"host": "127.0.0.1", "port": 0, "token_env": TOKEN_ENV, "max_body_bytes": MAX_BODY},
        "state_dir": str(tmp / "state"),
        "checkpoint": {"interval_s": 1},
        "models": {MODEL: {"task": "binary_classification", "reference": str(tmp / "ref.csv"), "target": "y",
                           "prediction": "y_pred", "score": "y_proba", "window": {"size": 40, "label_retention": 8},
                           "segments": ["city"]}},
    })
    broker.create_topics([cfg.kafka.predictions_topic, cfg.kafka.labels_topic], partitions=1)
    os.environ[TOKEN_ENV] = TOKEN
    a = Agent(cfg, evaluate_interval_s=0.2)
    try:
        a.start()
    finally:
        os.environ.pop(TOKEN_ENV, None)
    run = Running(a, threading.Thread(name="fuzz-ingest", daemon=True))

    def ingest() -> None:
        try:
            a.loop(poll_timeout_s=0.2)
        except BaseException as e:  # noqa: BLE001 - reported by the tests
            run.errors.append(e)

    run.thread = threading.Thread(target=ingest, name="fuzz-ingest", daemon=True)
    run.thread.start()
    yield run
    a.request_stop()
    run.thread.join(timeout=30)
    a.stop()


def _request(agent: Running, method: str, path: str, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", agent.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _post_alerts(agent: Running, body: bytes, token: str | None = TOKEN) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    status, raw = _request(agent, "POST", "/alerts", body, headers)
    return status, json.loads(raw)  # every answer is JSON, errors included


def _assert_alive(agent: Running) -> None:
    http_thread = agent.agent.http._thread  # type: ignore[union-attr]
    assert http_thread is not None and http_thread.is_alive()
    assert _request(agent, "GET", "/healthz")[0] == 200


# -- HTTP: /alerts ------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=25)
label_sets = st.dictionaries(st.text(min_size=1, max_size=12), st.text(max_size=12), max_size=4)


@st.composite
def alertmanager_payloads(draw: st.DrawFn) -> dict[str, Any]:
    """A valid Alertmanager webhook body, version 4 (as Alertmanager 0.2x sends it)."""
    alerts = []
    for _ in range(draw(st.integers(0, 3))):
        labels = {"alertname": draw(st.sampled_from(["DriftDetected", "PerformanceDrop"])),
                  "model": draw(st.sampled_from([MODEL, "other"])), **draw(label_sets)}
        alerts.append({"status": draw(st.sampled_from(["firing", "resolved"])), "labels": labels,
                       "annotations": draw(label_sets), "startsAt": "2026-11-22T10:00:00Z",
                       "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prometheus:9090/graph",
                       "fingerprint": draw(st.text("0123456789abcdef", min_size=16, max_size=16))})
    return {"receiver": "driftwarden", "status": "firing", "alerts": alerts, "groupLabels": {}, "commonLabels": {},
            "commonAnnotations": {}, "externalURL": "http://alertmanager:9093", "version": "4",
            "groupKey": "{}:{}", "truncatedAlerts": 0}


_DELETE = object()
# One-field mutations that break the v4 contract, each with a word the 400 reason must contain.
TOP_MUTATIONS = [("version", v, "version") for v in (_DELETE, "3", 3, None, [4], "four")] + [
    ("alerts", v, "alerts") for v in (_DELETE, None, {}, "x", 5, True)]
ALERT_MUTATIONS = [("status", v, "status") for v in (_DELETE, "pending", None, 1, ["firing"])] + [
    ("labels", v, "labels") for v in (_DELETE, None, [], "x", {"k": 1}, {"k": None}, {"k": ["v"]}, {"k": {}})] + [
    ("annotations", v, "annotations") for v in (None, [], "x", 5)] + [
    (None, v, "alerts[") for v in (None, "x", [], 5)]  # the alert itself


@st.composite
def mutated_payloads(draw: st.DrawFn) -> tuple[dict[str, Any] | list, str]:
    payload = draw(alertmanager_payloads())
    alerts = payload["alerts"]
    if alerts and draw(st.booleans()):
        i = draw(st.integers(0, len(alerts) - 1))
        key, value, word = draw(st.sampled_from(ALERT_MUTATIONS))
        if key is None:
            alerts[i] = value
        elif value is _DELETE:
            del alerts[i][key]
        else:
            alerts[i][key] = value
        return payload, word
    if draw(st.integers(0, 9)) == 0:
        return [payload], "object"
    key, value, word = draw(st.sampled_from(TOP_MUTATIONS))
    if value is _DELETE:
        del payload[key]
    else:
        payload[key] = value
    return payload, word


def _check_any_body(agent: Running, body: bytes) -> None:
    status, answer = _post_alerts(agent, body)
    if len(body) > MAX_BODY:
        assert status == 413, (status, answer)
        return
    assert status in (202, 400), (status, answer, body[:200])
    if status == 400:
        assert isinstance(answer, dict) and isinstance(answer.get("error"), str) and answer["error"]
    else:
        assert isinstance(answer, dict) and "accepted" in answer


@HTTP_SETTINGS
@given(body=st.binary(max_size=MAX_BODY + 64))
def test_alerts_arbitrary_bytes_never_5xx(agent: Running, body: bytes) -> None:
    _check_any_body(agent, body)


@HTTP_SETTINGS
@given(value=json_values)
def test_alerts_arbitrary_json_is_400_with_reason(agent: Running, value: Any) -> None:
    body = json.dumps(value).encode()
    status, answer = _post_alerts(agent, body)
    if len(body) > MAX_BODY:
        assert status == 413
        return
    # No shape hypothesis draws here is a v4 payload (that needs version "4" and a list of alerts).
    assert status == 400, (status, answer, body[:200])
    assert isinstance(answer.get("error"), str) and answer["error"]


@HTTP_SETTINGS
@given(payload=alertmanager_payloads())
def test_alerts_valid_v4_payload_is_202_and_opens_incidents(agent: Running, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    status, answer = _post_alerts(agent, body)
    if len(body) > MAX_BODY:
        assert status == 413
        return
    assert status == 202, (status, answer)
    assert answer["accepted"] == len(payload["alerts"])
    # a firing alert opens an incident, or names the one its fingerprint already has open
    firing = sum(a["status"] == "firing" for a in payload["alerts"])
    assert len(answer["incidents"]) + len(answer.get("already_open", [])) == firing
    for inc_id in answer["incidents"][:1]:
        status, raw = _request(agent, "GET", f"/incidents/{inc_id}", headers={"Authorization": f"Bearer {TOKEN}"})
        assert status == 200 and json.loads(raw)["id"] == inc_id


@HTTP_SETTINGS
@given(mutated=mutated_payloads())
def test_alerts_near_valid_payload_is_400_naming_the_field(agent: Running, mutated: tuple[Any, str]) -> None:
    payload, word = mutated
    body = json.dumps(payload).encode()
    status, answer = _post_alerts(agent, body)
    if len(body) > MAX_BODY:
        assert status == 413
        return
    assert status == 400, (status, answer, payload)
    assert word in answer["error"], (answer, payload)


def test_alerts_limits_and_auth(agent: Running) -> None:
    ok = json.dumps({"version": "4", "status": "firing", "alerts": []}).encode()
    assert _post_alerts(agent, ok)[0] == 202
    # over the size limit: refused from the header alone, even when the body never comes
    assert _post_alerts(agent, b"[" + b" " * MAX_BODY + b"]")[0] == 413
    status, _ = _request(agent, "POST", "/alerts", None,
                         {"Authorization": f"Bearer {TOKEN}", "Content-Length": str(10**12)})
    assert status == 413
    # no usable Content-Length
    status, _ = _request(agent, "POST", "/alerts", None, {"Authorization": f"Bearer {TOKEN}"})
    assert 400 <= status < 500
    status, _ = _request(agent, "POST", "/alerts", None,
                         {"Authorization": f"Bearer {TOKEN}", "Content-Length": "ten"})
    assert 400 <= status < 500
    # tokens
    for token in (None, "", "wrong", TOKEN[:-1], TOKEN + "x", TOKEN.upper()):
        assert _post_alerts(agent, ok, token=token)[0] == 401
    for auth in (f"bearer {TOKEN}", f"Basic {TOKEN}", TOKEN, f"Bearer  {TOKEN}"):
        status, _ = _request(agent, "POST", "/alerts", ok, {"Authorization": auth})
        assert status == 401, auth
    for path in ("/incidents", "/incidents/inc-1", "/windows"):
        assert _request(agent, "GET", path)[0] == 401
        assert _request(agent, "GET", path, headers={"Authorization": "Bearer nope"})[0] == 401
    # public endpoints need no token
    for path in ("/metrics", "/healthz", "/readyz"):
        assert _request(agent, "GET", path)[0] == 200, path
    _assert_alive(agent)


@HTTP_SETTINGS
@given(auth=st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=80))
def test_any_other_authorization_header_is_401(agent: Running, auth: str) -> None:
    if auth.strip() != auth or auth == f"Bearer {TOKEN}":  # http.client strips header padding
        return
    status, _ = _request(agent, "POST", "/alerts", b'{"version": "4", "alerts": []}', {"Authorization": auth})
    assert status == 401


_PATH_CHARS = st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="#?%")


@HTTP_SETTINGS
@given(path=st.text(_PATH_CHARS, max_size=40), method=st.sampled_from(["GET", "POST"]), authed=st.booleans())
def test_arbitrary_paths_get_a_4xx(agent: Running, path: str, method: str, authed: bool) -> None:
    path = "/" + path
    headers = {"Authorization": f"Bearer {TOKEN}"} if authed else {}
    status, raw = _request(agent, method, path, b"{}" if method == "POST" else None, headers)
    norm = path.rstrip("/") or "/"
    if method == "GET" and norm in ("/metrics", "/healthz", "/readyz"):
        assert status == 200
    elif method == "GET" and authed and (norm in ("/incidents", "/windows") or norm.startswith("/incidents/")
                                         or norm.startswith("/windows/")):
        assert status in (200, 404), (path, status)
    elif method == "POST" and norm == "/alerts":
        assert status in (400, 401)
    else:
        assert 400 <= status < 500, (method, path, status)
    json.loads(raw) if status != 200 or norm != "/metrics" else None


@pytest.mark.parametrize("raw, statuses", [
    (b"\x00\x01\x02\r\n\r\n", {400}),
    (b"GET\r\n\r\n", {400}),
    (b"GET / HTTP/9.9\r\n\r\n", {505}),  # http.server's answer to an unknown HTTP version
    (b"G" * 70000 + b"\r\n\r\n", {414}),
    (b"POST /alerts HTTP/1.1\r\nContent-Length: 5\r\n" + b"X-A: b\r\n" * 200 + b"\r\nabcde", {431}),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-B: " + b"\xff" * 100 + b"\r\n\r\n", {200}),
    (b"POST /alerts HTTP/1.1\r\nContent-Length: 100\r\nAuthorization: Bearer " + TOKEN.encode() + b"\r\n\r\n{",
     {400}),  # the body ends early: the client closed its side
], ids=["binary", "no-path", "http-9.9", "long-line", "many-headers", "latin1-header", "short-body"])
def test_malformed_requests_are_answered_and_the_server_stays_up(agent: Running, raw: bytes, statuses: set[int]) -> None:
    with socket.create_connection(("127.0.0.1", agent.port), timeout=10) as s:
        s.sendall(raw)
        s.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    # a request line it cannot read gets an HTTP/0.9-style answer: no status line, just the page
    m = re.match(rb"HTTP/1\.[01] (\d{3})", reply) or re.search(rb"Error code: (\d{3})", reply)
    assert m is not None, reply[:200]
    assert int(m.group(1)) in statuses, reply[:300]
    _assert_alive(agent)


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS"])
@pytest.mark.parametrize("path", ["/alerts", "/metrics", "/incidents", "/nowhere"])
def test_other_methods_get_405(agent: Running, method: str, path: str) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", agent.port, timeout=10)
    try:
        conn.request(method, path, body=b"{}", headers={"Authorization": f"Bearer {TOKEN}"})
        resp = conn.getresponse()
        assert resp.status == 405, (method, path, resp.status)
        assert resp.getheader("Allow")
        assert json.loads(resp.read())["error"]
    finally:
        conn.close()


def test_head_answers_like_get_without_a_body(agent: Running) -> None:
    for path, status in (("/healthz", 200), ("/metrics", 200), ("/incidents", 401)):
        conn = http.client.HTTPConnection("127.0.0.1", agent.port, timeout=10)
        try:
            conn.request("HEAD", path)
            resp = conn.getresponse()
            assert resp.status == status, path
            assert resp.read() == b""
        finally:
            conn.close()


def test_deeply_nested_json_is_a_400(agent: Running) -> None:
    for body in (b"[" * 4000, b'{"a":[' * 600, b"[" * 2000 + b"]" * 2000):  # all under MAX_BODY
        status, answer = _post_alerts(agent, body)
        assert status == 400 and answer["error"], body[:20]
    _assert_alive(agent)


def test_server_survived_the_fuzzing(agent: Running) -> None:
    _assert_alive(agent)
    assert not agent.errors, agent.errors


# -- Kafka: every record counted exactly once ---------------------------------------------------

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
NOW = time.time()
_UTC_NOW = datetime.fromtimestamp(NOW, timezone.utc)
GOOD_TIMESTAMPS = [NOW, NOW * 1000, int(NOW), _UTC_NOW.strftime("%Y-%m-%dT%H:%M:%SZ"),
                   _UTC_NOW.strftime("%Y-%m-%dT%H:%M:%S.%f+02:00"), _UTC_NOW.strftime("%Y-%m-%dt%H:%M:%Sz")]
BAD_TIMESTAMPS = ["yesterday", "", "2026-13-45T00:00:00Z", True, [1], {"t": 1}, -5, 1e20, 10**19]
feature_values = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1),
                           st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30),
                           st.lists(st.integers(), max_size=3),
                           st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


def _timestamp_ok(v: Any) -> bool:
    """The contract: RFC 3339 string or epoch seconds/milliseconds number; missing = broker time."""
    if v is None:
        return True
    if type(v) in (int, float):
        secs = v / 1000 if v > 1e11 else v
        return 0 <= secs < 253402300800
    if type(v) is str and _RFC3339.match(v):
        try:
            datetime.fromisoformat(v.upper().replace("Z", "+00:00"))
            return True
        except ValueError:
            return False
    return False


def _expected(stream: str, value: bytes | None) -> tuple[str, str, str | None]:
    """(model the record counts under, "valid"/"invalid", prediction_id) per DESIGN.md."""
    if value is None or len(value) > MAX_RECORD:
        return "unknown", "invalid", None
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError:
        return "unknown", "invalid", None
    if not isinstance(obj, dict):
        return "unknown", "invalid", None
    model = MODEL if obj.get("model") == MODEL else "unknown"
    required = ("prediction_id", "model", "features", "prediction") if stream == "predictions" else (
        "prediction_id", "model", "label")
    if any(k not in obj for k in required) or model != MODEL:
        return model, "invalid", None
    pid = obj["prediction_id"]
    if type(pid) is not str or not pid or not _timestamp_ok(obj.get("timestamp")):
        return model, "invalid", None
    if stream == "predictions":
        score = obj.get("score")
        if (type(obj["features"]) is not dict or type(obj["prediction"]) not in (int, float, str, bool)
                or (score is not None and (type(score) not in (int, float) or not 0 <= score <= 1))):
            return model, "invalid", None
    elif type(obj["label"]) not in (int, float, str, bool):
        return model, "invalid", None
    return model, "valid", pid


PRED_MUTATIONS = ([("prediction_id", v) for v in (_DELETE, 7, "", None, ["p"], True)]
                  + [("model", v) for v in (_DELETE, 3, None, ["m"], "no-such-model", "")]
                  + [("features", v) for v in (_DELETE, [1, 2], "f", 5, None, True)]
                  + [("prediction", v) for v in (_DELETE, None, [1], {"a": 1})]
                  + [("score", v) for v in (-0.1, 1.5, 1e300, "high", True, [0.5], 10**30)]
                  + [("timestamp", v) for v in BAD_TIMESTAMPS])
LABEL_MUTATIONS = ([("prediction_id", v) for v in (_DELETE, 7, "", None, {"p": 1})]
                   + [("model", v) for v in (_DELETE, 3, None, "no-such-model")]
                   + [("label", v) for v in (_DELETE, None, [1], {"a": 1})]
                   + [("timestamp", v) for v in BAD_TIMESTAMPS])


@st.composite
def kafka_traffic(draw: st.DrawFn) -> list[tuple[str, Any]]:
    """A shuffled mix of records: ("predictions"|"labels", dict or bytes or None)."""
    out: list[tuple[str, Any]] = []
    n_valid = draw(st.integers(0, 40))
    for i in range(n_valid):
        feats = draw(st.dictionaries(st.sampled_from(NUMERIC + CATEGORICAL + ["extra", "user_id"]),
                                     feature_values, max_size=7))
        if draw(st.integers(0, 3)) == 0:  # mostly well-typed values, sometimes anything
            feats = {"amount": draw(st.floats(0, 5000)), "age": draw(st.integers(18, 90)),
                     "city": draw(st.sampled_from(["paris", "lyon", "nantes", "oslo"])), "plan": "a",
                     "user_id": f"u{draw(st.integers(0, 10**9))}"}
        pred: dict[str, Any] = {"prediction_id": f"p{i}", "model": MODEL, "features": feats,
                                "prediction": draw(st.one_of(st.sampled_from([0, 1]), st.booleans(),
                                                             st.text(max_size=4), st.floats(allow_nan=False,
                                                                                            allow_infinity=False)))}
        if draw(st.booleans()):
            pred["score"] = draw(st.floats(0, 1))
        if draw(st.booleans()):
            pred["timestamp"] = draw(st.sampled_from(GOOD_TIMESTAMPS))
        kind = draw(st.sampled_from(["ok", "ok", "mutated", "duplicate", "huge"]))
        if kind == "mutated":
            key, value = draw(st.sampled_from(PRED_MUTATIONS))
            if value is _DELETE:
                del pred[key]
            else:
                pred[key] = value
        elif kind == "huge":
            pred["features"]["blob"] = "x" * draw(st.integers(MAX_RECORD // 2, 50 * MAX_RECORD))
        out.append(("predictions", pred))
        if kind == "duplicate":
            out.append(("predictions", dict(pred, prediction=1)))
        if draw(st.integers(0, 9)) < 8:  # ~20% of labels never arrive
            label: dict[str, Any] = {"prediction_id": f"p{i}", "model": MODEL,
                                     "label": draw(st.one_of(st.sampled_from([0, 1]), st.booleans(), st.text(max_size=3)))}
            if draw(st.booleans()):
                label["timestamp"] = draw(st.sampled_from(GOOD_TIMESTAMPS))
            if draw(st.integers(0, 5)) == 0:
                key, value = draw(st.sampled_from(LABEL_MUTATIONS))
                if value is _DELETE:
                    del label[key]
                else:
                    label[key] = value
            out.append(("labels", label))
            if draw(st.integers(0, 7)) == 0:
                out.append(("labels", dict(label)))  # the same label twice
    for _ in range(draw(st.integers(0, 15))):
        stream = draw(st.sampled_from(["predictions", "labels"]))
        out.append((stream, draw(st.one_of(st.binary(max_size=300), st.none(), json_values))))
    return draw(st.permutations(out))


def _encode(item: Any, nonce: str) -> bytes | None:
    if item is None or isinstance(item, bytes):
        return item
    if isinstance(item, dict) and isinstance(item.get("prediction_id"), str) and item["prediction_id"]:
        item = dict(item, prediction_id=f"{nonce}-{item['prediction_id']}")  # fresh ids per run
    return json.dumps(item).encode()  # not orjson: integers beyond 64 bits must reach the decoder too


def _scrape(agent: Running) -> tuple[Counter, Counter]:
    """(events by (model, stream, outcome), pending labels by model) from the real /metrics."""
    status, body = _request(agent, "GET", "/metrics")
    assert status == 200
    events: Counter = Counter()
    pending: Counter = Counter()
    for fam in text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            if s.name == "driftwarden_events_total":
                events[(s.labels["model"], s.labels["stream"], s.labels["outcome"])] = s.value
            elif s.name == "driftwarden_join_pending_labels":
                pending[s.labels["model"]] = s.value
    return events, pending


def _taken_in(events: Counter, pending: Counter, stream: str) -> float:
    return sum(v for (_, s, _), v in events.items() if s == stream) + (pending[MODEL] if stream == "labels" else 0)


@pytest.fixture(scope="module")
def dlq_reader(agent: Running) -> Iterator[KafkaConsumer]:
    """Reads both dead-letter topics from their beginning, as the test goes."""
    k = agent.agent.config.kafka
    consumer = KafkaConsumer(bootstrap_servers=k.bootstrap_servers, enable_auto_commit=False)
    tps = [TopicPartition(t + ".dlq", 0) for t in (k.predictions_topic, k.labels_topic)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    yield consumer
    consumer.close()


def _read_dlq(reader: KafkaConsumer, want: int, timeout: float = 30.0) -> list:
    got: list = []
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        got.extend(r for recs in reader.poll(timeout_ms=300).values() for r in recs)
    got.extend(r for recs in reader.poll(timeout_ms=300).values() for r in recs)  # and nothing more
    return got


# No shrinking: each example is a round trip through the broker, and shrinking one can take minutes;
# a failure prints the whole (unshrunk) traffic instead. DRIFTWARDEN_FUZZ_KAFKA_EXAMPLES=100 digs deeper.
KAFKA_SETTINGS = settings(max_examples=int(os.environ.get("DRIFTWARDEN_FUZZ_KAFKA_EXAMPLES", "12")), deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], database=None,
                          phases=[Phase.explicit, Phase.generate])


@KAFKA_SETTINGS
@given(traffic=kafka_traffic())
def test_every_record_counted_once_and_invalid_ones_dead_lettered(agent: Running, dlq_reader: KafkaConsumer,
                                                                   traffic: list[tuple[str, Any]]) -> None:
    k = agent.agent.config.kafka
    topic = {"predictions": k.predictions_topic, "labels": k.labels_topic}
    nonce = uuid.uuid4().hex[:10]
    records = [(stream, _encode(item, nonce)) for stream, item in traffic]

    # What the contract says each record is.
    expected: Counter = Counter()
    dead: Counter = Counter()
    valid_preds = {pid for s, v in records if s == "predictions"
                   for m, verdict, pid in [_expected(s, v)] if verdict == "valid"}
    seen: dict[str, set[str]] = {"predictions": set(), "labels": set()}
    pending = 0
    for stream, value in records:
        model, verdict, pid = _expected(stream, value)
        if verdict == "invalid":
            expected[(model, stream, "invalid")] += 1
            dead[(topic[stream], value)] += 1
        elif pid in seen[stream]:
            expected[(model, stream, "duplicate")] += 1
        else:
            seen[stream].add(pid)
            if stream == "labels" and pid not in valid_preds:
                pending += 1  # its prediction never comes: it waits in the join (bounded, TTL)
            else:
                expected[(model, stream, "ok")] += 1

    before, pending_before = _scrape(agent)
    with KafkaProducerSink(k.bootstrap_servers) as sink:
        for stream, value in records:
            sink.send(topic[stream], b"k", value)
    sent = Counter(stream for stream, _ in records)
    agent.sent.update(topic[stream] for stream, _ in records)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        after, pending_after = _scrape(agent)
        taken = {s: _taken_in(after, pending_after, s) - _taken_in(before, pending_before, s) for s in topic}
        if all(taken[s] >= sent[s] for s in topic):
            break
        assert agent.thread.is_alive(), agent.errors
        time.sleep(0.1)
    # ... and its position reaches both topics' ends (counted by reading them): nothing more is there to count.
    end = end_offsets(k.bootstrap_servers, dict(agent.sent))
    wait_taken_in(agent.port, {s: end.get((topic[s], 0), 0) for s in topic}, timeout_s=60,
                  alive=agent.thread.is_alive, context=lambda: repr(agent.errors))
    after, pending_after = _scrape(agent)
    assert not agent.errors, agent.errors
    delta = Counter({key: after[key] - before.get(key, 0) for key in after if after[key] != before.get(key, 0)})
    assert delta == expected, (dict(delta), dict(expected))
    assert pending_after[MODEL] - pending_before[MODEL] == pending

    got = _read_dlq(dlq_reader, sum(dead.values()))
    assert Counter((r.topic.removesuffix(".dlq"), r.value) for r in got) == dead
    for r in got:
        h = dict(r.headers)
        assert h["dlq.source.topic"].decode() == r.topic.removesuffix(".dlq")
        assert "offset" in h["dlq.reason"].decode() and len(h["dlq.reason"]) > 30

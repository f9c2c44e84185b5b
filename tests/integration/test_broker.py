"""The embedded broker's storage engines, and the Prometheus/Alertmanager harness against real
binaries. The Broker seam itself (both Kafka clients) is in test_broker_clients.py."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from kafka import KafkaConsumer

from agent.ingest.embedded import EmbeddedBroker
from tests.support.kafka import produce


def test_memory_storage_topic_data_after_restart_is_gone(tmp_path) -> None:
    """Documents the difference with S3: memory:// keeps nothing across a restart."""
    with EmbeddedBroker(log_path=tmp_path / "tansu.log") as tansu:
        tansu.create_topics(["m"])
        produce(tansu.bootstrap, "m", 10)
        tansu.restart(kill=True)
        consumer = KafkaConsumer(bootstrap_servers=tansu.bootstrap)
        try:
            assert "m" not in consumer.topics()
        finally:
            consumer.close()


def test_prometheus_scrapes_a_real_exporter(prometheus_factory) -> None:
    from prometheus_client import CollectorRegistry, Gauge, start_http_server

    from tests.support.services import free_port

    registry = CollectorRegistry()
    Gauge("driftwarden_harness_check", "Harness self-test.", registry=registry).set(42)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        prom = prometheus_factory([f"127.0.0.1:{port}"])
        result = prom.wait_for("driftwarden_harness_check", lambda r: len(r) == 1, timeout=30)
        assert float(result[0]["value"][1]) == 42.0
        assert result[0]["metric"]["job"] == "driftwarden"
        with pytest.raises(ValueError, match="bad PromQL"):
            prom.query("sum(")
    finally:
        server.shutdown()
        thread.join(timeout=5)


def test_alertmanager_delivers_to_webhook(alertmanager_factory) -> None:
    from tests.support.services import free_port

    received: list[dict] = []
    arrived = threading.Event()

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server API
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            arrived.set()
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    port = free_port()
    hook = ThreadingHTTPServer(("127.0.0.1", port), Hook)
    thread = threading.Thread(target=hook.serve_forever, daemon=True)
    thread.start()
    try:
        am = alertmanager_factory(f"http://127.0.0.1:{port}/alerts")
        am.post_alerts({"labels": {"alertname": "DriftwardenDataDrift", "model": "car-loan"},
                        "annotations": {"summary": "test"}})
        assert arrived.wait(timeout=20), f"no webhook call; log:\n{am.log_tail()}"
        alert = received[0]["alerts"][0]
        assert alert["labels"]["alertname"] == "DriftwardenDataDrift"
        assert alert["status"] == "firing"
        assert [a["labels"]["model"] for a in am.alerts()] == ["car-loan"]
    finally:
        hook.shutdown()
        thread.join(timeout=5)

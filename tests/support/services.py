"""Real Prometheus and Alertmanager processes for integration tests (no mocks): the classes the
demo uses (agent/demo/monitoring.py), and the local S3 server tansu's durable engine needs.
A missing binary raises `ServiceMissing` with the install command (tests fail, never skip).
"""

from __future__ import annotations

from agent.demo.monitoring import Alertmanager, Prometheus, ServiceMissing, find_binary
from agent.ingest.embedded import free_port
from tests.support.s3 import S3Storage

__all__ = ["Alertmanager", "Prometheus", "S3Storage", "ServiceMissing", "find_binary", "free_port"]

"""Fixtures for integration tests: a real tansu broker, real Prometheus and Alertmanager.

A missing binary fails the test with the install command; nothing is skipped.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parents[2]
if str(_ROOT) not in sys.path:  # `pytest` run without installing the package
    sys.path.insert(0, str(_ROOT))

from agent.ingest.embedded import EmbeddedBroker  # noqa: E402
from tests.support.s3 import S3Storage  # noqa: E402
from tests.support.services import Alertmanager, Prometheus  # noqa: E402


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """One in-memory tansu broker for the whole session; use unique topic names per test."""
    try:
        b = EmbeddedBroker(log_path=tmp_path_factory.mktemp("tansu") / "tansu.log").start()
    except RuntimeError as exc:
        pytest.fail(f"cannot start the embedded tansu broker: {exc}", pytrace=False)
    yield b
    b.stop()


@pytest.fixture
def topic_prefix(request: pytest.FixtureRequest) -> str:
    """A prefix unique to this test, so tests sharing the session broker never collide."""
    name = "".join(c if c.isalnum() else "-" for c in request.node.name)[:40]
    return f"{name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def unique_topic(topic_prefix: str) -> Callable[[str], str]:
    """`unique_topic("predictions")` -> a topic name unique to this test."""
    return lambda base: f"{topic_prefix}.{base}"


@pytest.fixture
def s3_storage(tmp_path: Path) -> Iterator[S3Storage]:
    """A moto S3 server with a fresh bucket, for tansu's durable `s3://` engine."""
    try:
        s3 = S3Storage(log_path=tmp_path / "moto.log").start()
    except RuntimeError as exc:
        pytest.fail(f"cannot start moto_server: {exc}", pytrace=False)
    yield s3
    s3.stop()


@pytest.fixture
def prometheus_factory() -> Iterator[Callable[..., Prometheus]]:
    """`prometheus_factory(targets, rule_files=None, alertmanager=None)` -> a started Prometheus."""
    started: list[Prometheus] = []

    def make(*args: object, **kwargs: object) -> Prometheus:
        prom = Prometheus(*args, **kwargs).start()  # type: ignore[arg-type]
        started.append(prom)
        return prom

    yield make
    for prom in reversed(started):
        prom.stop()


@pytest.fixture
def alertmanager_factory() -> Iterator[Callable[..., Alertmanager]]:
    """`alertmanager_factory(webhook_url)` -> a started Alertmanager."""
    started: list[Alertmanager] = []

    def make(*args: object, **kwargs: object) -> Alertmanager:
        am = Alertmanager(*args, **kwargs).start()  # type: ignore[arg-type]
        started.append(am)
        return am

    yield make
    for am in reversed(started):
        am.stop()

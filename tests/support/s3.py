"""A local in-memory S3 server (moto_server) for tansu's durable ``s3://`` storage engine.

Test-only: the broker-outage and kill/restart tests need topic data that outlives a tansu
process. It lives here, not in the product (agent.ingest.embedded starts tansu only).
"""

from __future__ import annotations

import atexit
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import IO, Self

from agent.ingest.embedded import _wait_port, free_port, stop_process

def moto_server_binary() -> str:
    found = shutil.which("moto_server")
    if found:
        return found
    candidate = Path(sys.executable).with_name("moto_server")
    if candidate.is_file():
        return str(candidate)
    raise RuntimeError("moto_server not found: pip install 'moto[server]>=5'")


class S3Storage:
    """A local in-memory S3 server (moto_server) with one bucket, for tansu's `s3://` engine.

    Survives tansu restarts, not its own. `env` goes to `EmbeddedBroker(env=...)`, `url` to
    `EmbeddedBroker(storage=...)`.
    """

    ACCESS_KEY = "driftwarden"
    SECRET_KEY = "driftwarden-secret"
    REGION = "us-east-1"

    def __init__(self, bucket: str | None = None, port: int | None = None,
                 log_path: Path | None = None) -> None:
        self.bucket = bucket or f"tansu-{uuid.uuid4().hex[:12]}"
        self.port = port if port is not None else free_port()
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/"

    @property
    def env(self) -> dict[str, str]:
        return {"AWS_ENDPOINT": self.endpoint, "AWS_ALLOW_HTTP": "true",
                "AWS_ACCESS_KEY_ID": self.ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": self.SECRET_KEY,
                "AWS_DEFAULT_REGION": self.REGION, "AWS_REGION": self.REGION}

    def start(self, timeout_s: float = 30) -> Self:
        if self._proc is not None and self._proc.poll() is None:
            return self
        if self.log_path is not None:
            self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._proc = subprocess.Popen(
            [moto_server_binary(), "-H", "127.0.0.1", "-p", str(self.port)],
            stdin=subprocess.DEVNULL, stdout=self._log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT if self._log else subprocess.DEVNULL, start_new_session=True)
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout_s
        try:
            _wait_port("127.0.0.1", self.port, deadline, self._proc, "moto_server")
            self._create_bucket(deadline)
        except BaseException:
            self.stop()
            raise
        return self

    def _create_bucket(self, deadline: float) -> None:
        # moto accepts unsigned requests; a plain PUT creates the bucket in us-east-1.
        req = urllib.request.Request(f"{self.endpoint}/{self.bucket}", method="PUT", data=b"")
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(req, timeout=5) as resp:
                    if resp.status in (200, 204):
                        return
            except urllib.error.HTTPError as exc:
                if exc.code == 409:  # BucketAlreadyOwnedByYou
                    return
                last = exc
            except OSError as exc:
                last = exc
            time.sleep(0.1)
        raise TimeoutError(f"could not create bucket {self.bucket} on {self.endpoint}: {last!r}")

    def stop(self, timeout_s: float = 10) -> None:
        atexit.unregister(self.stop)
        (proc, self._proc), (log, self._log) = (self._proc, None), (self._log, None)
        stop_process(proc, log, timeout_s=timeout_s)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

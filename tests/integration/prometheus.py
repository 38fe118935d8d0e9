"""A real Prometheus for tests: `PrometheusServer` runs Debian's `prometheus` binary on loopback.

`start()` writes a scrape configuration (the given targets, and any `more_targets` with labels
of their own, every second, with `honor_labels` as Stepline's ServiceMonitor sets it), loads
the given rule files, starts Prometheus on a free 127.0.0.1 port with a temporary data folder
and waits for `/-/ready`; `query`, `query_range`, `alerts`, `exemplars` and `format_query` talk
to its HTTP API; `stop()` ends it. A missing binary fails the test, saying how to install it:
nothing is skipped.

Below the class, what the checks need from the committed monitoring files: every dashboard
query with its Grafana variables filled in, and the rules with their `for` holds removed (the
holds are time-scale policy, checked by promtool's unit tests; the expressions stay verbatim).
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from tests.integration.processes import terminate

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "alerts" / "stepline-rules.yaml"
DASHBOARDS = REPO / "dashboards"
STARTUP_TIMEOUT = 30.0
_T = TypeVar("_T")


@dataclass(frozen=True)
class TargetGroup:
    """Targets scraped with labels of their own, as service discovery gives each pod its
    namespace: several installations of the operator under one job."""

    targets: Sequence[str]
    labels: Mapping[str, str]


class PrometheusError(RuntimeError):
    """Prometheus refused a request (a query that does not parse, say) or did not answer."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class PrometheusServer:
    targets: Sequence[str]
    workdir: Path
    rule_files: Sequence[Path] = (RULES,)
    target_labels: Mapping[str, str] = field(default_factory=dict)
    more_targets: Sequence[TargetGroup] = ()
    scrape_interval: str = "1s"
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "prometheus.log"

    def start(self) -> PrometheusServer:
        binary = shutil.which("prometheus")
        if binary is None:
            raise RuntimeError(
                "prometheus not found on PATH: run hack/install-apt.sh "
                "(installs Debian's prometheus package, which brings prometheus and promtool)"
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "prometheus.yml"
        config.write_text(yaml.safe_dump(self._config()))
        args = [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--enable-feature=exemplar-storage",
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        self._wait_until_ready()
        return self

    def stop(self) -> None:
        terminate(self.process, timeout=15)

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # The HTTP API

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query at now: the result's series (`metric`, `value`)."""
        data = self._api("query", {"query": expr})
        return _series(data, expr)

    def query_range(
        self, expr: str, *, start: float, end: float, step: float = 1.0
    ) -> list[dict[str, Any]]:
        """Range query, as Grafana's time-series panels run: the series (`metric`, `values`)."""
        params = {"query": expr, "start": str(start), "end": str(end), "step": str(step)}
        return _series(self._api("query_range", params), expr)

    def format_query(self, expr: str) -> str:
        """Prometheus' canonical form of `expr`; raises PrometheusError if it does not parse.

        (Prometheus 2.42, Debian's, has format_query but not the later parse_query.)
        """
        formatted: str = self._api("format_query", {"query": expr})
        return formatted

    def alerts(self) -> list[dict[str, Any]]:
        """Pending and firing alerts (`labels`, `state`, `annotations`, `value`)."""
        alerts: list[dict[str, Any]] = self._api("alerts", {}, method="GET")["alerts"]
        return alerts

    def rule_groups(self) -> list[dict[str, Any]]:
        groups: list[dict[str, Any]] = self._api("rules", {}, method="GET")["groups"]
        return groups

    def exemplars(self, expr: str, *, start: float, end: float) -> list[dict[str, Any]]:
        params = {"query": expr, "start": str(start), "end": str(end)}
        found: list[dict[str, Any]] = self._api("query_exemplars", params)
        return found

    def active_targets(self) -> list[dict[str, Any]]:
        targets: list[dict[str, Any]] = self._api("targets", {}, method="GET")["activeTargets"]
        return targets

    def wait_for(self, what: str, probe: Callable[[], _T | None], *, timeout: float = 60.0) -> _T:
        """Polls `probe` until it returns something truthy; fails saying `what` never came."""
        deadline = time.monotonic() + timeout
        while True:
            result = probe()
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"within {timeout}s: {what}\n{self.log_tail()}")
            time.sleep(0.5)

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return "(no prometheus log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def _config(self) -> dict[str, Any]:
        static: dict[str, Any] = {"targets": list(self.targets)}
        if self.target_labels:
            static["labels"] = dict(self.target_labels)
        more = [{"targets": list(g.targets), "labels": dict(g.labels)} for g in self.more_targets]
        return {
            "global": {
                "scrape_interval": self.scrape_interval,
                "scrape_timeout": self.scrape_interval,
                "evaluation_interval": self.scrape_interval,
            },
            "rule_files": [str(path) for path in self.rule_files],
            "scrape_configs": [
                {"job_name": "stepline", "honor_labels": True, "static_configs": [static, *more]}
            ],
        }

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited at start-up:\n{self.log_tail()}")
            try:
                ready = f"http://127.0.0.1:{self.port}/-/ready"
                with urllib.request.urlopen(ready, timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"prometheus was not ready in {STARTUP_TIMEOUT}s:\n{self.log_tail()}")

    def _api(self, endpoint: str, params: Mapping[str, str], *, method: str = "POST") -> Any:
        query = urllib.parse.urlencode(params)
        # POST puts long queries in the body rather than in the URL.
        path, data = (
            (endpoint, query.encode()) if method == "POST" else (f"{endpoint}?{query}", None)
        )
        try:
            url = f"http://127.0.0.1:{self.port}/api/v1/{path}"
            with urllib.request.urlopen(url, data=data, timeout=30) as response:
                answer = json.load(response)
        except urllib.error.HTTPError as error:
            answer = json.loads(error.read() or b"{}")
            raise PrometheusError(
                f"{endpoint} {dict(params)}: HTTP {error.code}: {answer.get('error', answer)}"
            ) from error
        except OSError as error:
            raise PrometheusError(f"{endpoint}: Prometheus did not answer: {error}") from error
        if answer.get("status") != "success":
            raise PrometheusError(f"{endpoint} {dict(params)}: {answer}")
        return answer["data"]


def _series(data: dict[str, Any], expr: str) -> list[dict[str, Any]]:
    if data["resultType"] not in ("vector", "matrix"):
        raise PrometheusError(f"{expr}: a {data['resultType']}, not series")
    series: list[dict[str, Any]] = data["result"]
    return series


# The monitoring files, as the checks evaluate them


@dataclass(frozen=True)
class DashboardQuery:
    dashboard: str
    panel: str
    expr: str


_LABEL_VALUES = re.compile(r"label_values\((?P<selector>.+),\s*(?P<label>\w+)\)")


def dashboard_queries(folder: Path = DASHBOARDS) -> Iterator[DashboardQuery]:
    """Every query of every panel of every committed dashboard, as written (with variables)."""
    for path in sorted(folder.glob("*.json")):
        for panel in _panels(json.loads(path.read_text())["panels"]):
            for target in panel.get("targets", []):
                yield DashboardQuery(path.name, panel["title"], target["expr"])


def dashboard_variables(folder: Path = DASHBOARDS) -> Iterator[tuple[str, str, str]]:
    """(dashboard, variable, its label_values query) for every query variable."""
    for path in sorted(folder.glob("*.json")):
        for variable in json.loads(path.read_text())["templating"]["list"]:
            if variable["type"] == "query":
                yield path.name, variable["name"], variable["query"]


def fill_variables(expr: str, values: Mapping[str, str], *, rate_interval: str = "1m") -> str:
    """A Grafana query as Grafana sends it: variables replaced by the values chosen."""
    filled = expr.replace("$__rate_interval", rate_interval)
    for name, value in values.items():
        filled = filled.replace(f"${{{name}}}", value).replace(f"${name}", value)
    if "$" in filled:
        raise ValueError(f"a variable is left unfilled in {filled!r}")
    return filled


def label_values_as_promql(query: str, values: Mapping[str, str]) -> tuple[str, str]:
    """Grafana's `label_values(selector, label)` as PromQL listing that label's values."""
    match = _LABEL_VALUES.fullmatch(query.strip())
    if match is None:
        raise ValueError(f"not a label_values() query: {query!r}")
    selector = fill_variables(match["selector"], values)
    return f"group by ({match['label']}) ({selector})", match["label"]


def rules_without_holds(source: Path, target: Path) -> Path:
    """A copy of a rules file whose alerts fire as soon as their expression holds."""
    document = yaml.safe_load(source.read_text())
    for group in document["groups"]:
        for rule in group["rules"]:
            rule.pop("for", None)
    target.write_text(yaml.safe_dump(document, sort_keys=False))
    return target


def alert_expressions(source: Path = RULES) -> dict[str, str]:
    document = yaml.safe_load(source.read_text())
    return {
        rule["alert"]: rule["expr"]
        for group in document["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }


def recording_rules(source: Path = RULES) -> list[str]:
    document = yaml.safe_load(source.read_text())
    rules = [rule for group in document["groups"] for rule in group["rules"]]
    return [rule["record"] for rule in rules if "record" in rule]


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))

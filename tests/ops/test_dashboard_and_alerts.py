"""The Grafana dashboard and the Prometheus alert rules read only what the daemon exports.

The dashboard is validated against a JSON Schema of Grafana's dashboard model that refuses
unknown fields, then checked for what a schema cannot say (unique ids, no overlapping
panels, variables defined before use). Every PromQL expression in it and in alerts.yml must
name only metrics a daemon exports after handling a call. With promtool installed (Debian's
``prometheus`` package), the rules are also checked and unit-tested by Prometheus itself.
"""

import itertools
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.ops.conftest import Node, call, open_agent_tab
from tests.ops.scrape import (
    PROMTOOL,
    exported_names,
    promql_metric_names,
    promtool,
    scrape,
    unknown_names,
)

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "switchboard-dashboard.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
SCHEMA = Path(__file__).with_name("grafana-dashboard.schema.json")
ALERT_TESTS = Path(__file__).with_name("alerts_test.yml")

#: What an on-call engineer must find on the dashboard.
DASHBOARD_MUST_SHOW = {
    "switchboard_connections",
    "switchboard_tabs",
    "switchboard_contacts",
    "switchboard_event_duration_seconds_count",
    "switchboard_event_duration_seconds_bucket",
    "switchboard_elections_total",
    "switchboard_failovers_total",
    "switchboard_store_up",
    "switchboard_store_operation_duration_seconds_bucket",
    "switchboard_zendesk_requests_total",
    "switchboard_zendesk_request_duration_seconds_bucket",
    "switchboard_zendesk_waits_total",
    "switchboard_zendesk_wait_seconds_total",
    "switchboard_workflow_steps_total",
    "switchboard_workflow_step_failures_total",
    "switchboard_workflow_runs_total",
    "switchboard_connect_requests_total",
    "switchboard_connect_request_duration_seconds_bucket",
    "switchboard_connect_confirmations_total",
    "process_open_fds",
    "process_max_fds",
    "process_resident_memory_bytes",
    "process_cpu_seconds_total",
}
ALERTS_REQUIRED = {
    "SwitchboardStoreDown",
    "SwitchboardZendeskFailing",
    "SwitchboardWorkflowsStuck",
    "SwitchboardWorkflowStepsFailing",
    "SwitchboardFileDescriptorsNearLimit",
}


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels(d: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, rows' nested panels included."""
    out: list[dict[str, Any]] = []
    for p in d["panels"]:
        out.append(p)
        out.extend(p.get("panels") or [])
    return out


def dashboard_exprs(d: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in panels(d) for t in p.get("targets", [])]
    for var in d["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            # label_values(<series selector>, <label>): only the selector is PromQL.
            match = re.fullmatch(r"label_values\((.*),\s*\w+\)", query)
            exprs.append(match.group(1) if match else query)
    return exprs


def alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


# -- the dashboard's shape ----------------------------------------------------------------------


def test_the_dashboard_is_a_valid_grafana_dashboard() -> None:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(dashboard(), schema, cls=jsonschema.Draft202012Validator)


def test_the_schema_refuses_what_grafana_would_misread() -> None:
    """The schema is strict enough to catch the usual slips (so the test above can fail)."""
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    good = dashboard()
    panel = next(i for i, p in enumerate(good["panels"]) if p["type"] != "row")

    def broken(change: Any) -> dict[str, Any]:
        d: dict[str, Any] = json.loads(json.dumps(good))
        change(d, d["panels"][panel])
        return d

    slips = [
        broken(lambda d, p: p.update(gridpos=p.pop("gridPos"))),  # misspelt field
        broken(lambda d, p: p["targets"][0].update(legendformat="x")),
        broken(lambda d, p: p["gridPos"].update(w=25)),  # wider than the grid
        broken(lambda d, p: p.update(targets=[])),  # a panel that shows nothing
        broken(lambda d, p: d.pop("schemaVersion")),
        broken(lambda d, p: d["templating"]["list"][0].update(type="dropdown")),
    ]
    for slip in slips:
        assert not validator.is_valid(slip)


def test_panels_have_unique_ids_and_do_not_overlap() -> None:
    d = dashboard()
    ids = [p["id"] for p in panels(d)]
    assert len(ids) == len(set(ids))
    cells: dict[tuple[int, int], str] = {}
    for p in panels(d):
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        for x, y in itertools.product(
            range(g["x"], g["x"] + g["w"]), range(g["y"], g["y"] + g["h"])
        ):
            assert (x, y) not in cells, f"{p['title']!r} overlaps {cells[(x, y)]!r}"
            cells[(x, y)] = p["title"]
    for p in panels(d):
        refs = [t["refId"] for t in p.get("targets", [])]
        assert len(refs) == len(set(refs)), p["title"]


def test_variables_used_are_defined() -> None:
    d = dashboard()
    defined = {v["name"] for v in d["templating"]["list"]} | {"__rate_interval", "__interval"}
    text = DASHBOARD.read_text()
    used = set(re.findall(r"\$\{?(\w+)", text))
    assert used <= defined, used - defined
    ds = {"type": "prometheus", "uid": "${datasource}"}
    for p in panels(d):
        if p["type"] != "row":
            assert p["datasource"] == ds and all(t["datasource"] == ds for t in p["targets"])


# -- the metric names -------------------------------------------------------------------------


def test_metric_names_are_found_in_promql() -> None:
    """The extractor the checks below rely on: names in, labels, functions, keywords out."""
    assert promql_metric_names(
        'histogram_quantile(0.99, sum by (le, operation) (rate(x_bucket{a="b(c)", d=~"$e"}'
        "[$__rate_interval]))) > 0.25"
    ) == {"x_bucket"}
    assert promql_metric_names(
        "(a_total / on (job) group_left b) > 0.8 and on (job, instance) c unless d offset 5m"
    ) == {"a_total", "b", "c", "d"}
    assert promql_metric_names('sum without (status) (rate(r{status=~"5..|429"}[1h:5m]))') == {"r"}
    assert unknown_names(["rate(switchbaord_typo_total[5m])"], {"switchboard_typo_total"}) == {
        "rate(switchbaord_typo_total[5m])": {"switchbaord_typo_total"}
    }


async def test_dashboard_and_alerts_name_only_exported_metrics(node: Node) -> None:
    tab = await open_agent_tab(node)
    await call(node, tab, "c-1")
    scraped = {name for name, _ in await scrape(node.daemon)}
    exported = exported_names(node.daemon.metrics.registry) | scraped
    await tab.close()

    exprs = dashboard_exprs(dashboard())
    rules = alert_rules()
    assert all(promql_metric_names(e) for e in exprs), "an expression with no metric"
    assert unknown_names(exprs, exported) == {}
    assert unknown_names([r["expr"] for r in rules], exported) == {}

    shown = set().union(*(promql_metric_names(e) for e in exprs))
    assert shown >= DASHBOARD_MUST_SHOW, DASHBOARD_MUST_SHOW - shown
    assert {r["alert"] for r in rules} >= ALERTS_REQUIRED
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


# -- Prometheus' own checks -------------------------------------------------------------------

needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool (Debian package prometheus) not installed"
)


@needs_promtool
async def test_promtool_accepts_the_rules_and_the_example_config() -> None:
    code, out = await promtool("check", "rules", str(ALERTS))
    assert code == 0, out
    assert f"SUCCESS: {len(alert_rules())} rules found" in out
    code, out = await promtool("check", "config", str(PROMETHEUS_CONFIG))
    assert code == 0, out
    assert "SUCCESS: 1 rule files found" in out  # it loads alerts.yml


@needs_promtool
async def test_alerts_fire_for_the_node_in_trouble_and_only_after_their_delay() -> None:
    """tests/ops/alerts_test.yml: synthetic series, each alert's firing and non-firing cases."""
    code, out = await promtool("test", "rules", str(ALERT_TESTS))
    assert code == 0, out
    tested = set(re.findall(r"alertname: (\w+)", ALERT_TESTS.read_text()))
    assert tested == {r["alert"] for r in alert_rules()}  # every alert has a case

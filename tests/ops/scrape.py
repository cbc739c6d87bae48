"""Reading a daemon's metrics as Prometheus would, and the metric names a PromQL expression uses."""

import asyncio
import re
import shutil
from collections.abc import Iterable

import aiohttp
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from daemon.app import Daemon

#: (sample name, its labels) -> value, for one scrape.
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

#: The suffixes each metric type's samples carry in the text exposition format.
_SUFFIXES: dict[str, tuple[str, ...]] = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "unknown": ("",),
}


async def scrape_text(daemon: Daemon) -> str:
    """GET /metrics over HTTP, checking it answers as a Prometheus target must."""
    url = f"http://127.0.0.1:{daemon.http_port}/metrics"
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        return await resp.text()


def parse(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def scrape(daemon: Daemon) -> Samples:
    return parse(await scrape_text(daemon))


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples named `name` whose labels include `labels` (0 if none)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def label_values(samples: Samples, name: str, label: str) -> set[str]:
    return {dict(ls)[label] for (n, ls), _ in samples.items() if n == name and label in dict(ls)}


def exported_names(registry: CollectorRegistry) -> set[str]:
    """Every sample name the registry can expose, including series that have not moved yet.

    A labelled metric that was never touched exposes no sample, so its names are derived from
    the family's type, as the exposition format spells them.
    """
    names: set[str] = set()
    for family in registry.collect():
        names.update(s.name for s in family.samples)
        names.update(family.name + suffix for suffix in _SUFFIXES[family.type])
    return names


# PromQL words that look like metric names but are not.
_KEYWORDS = frozenset(
    {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
     "bool", "offset", "inf", "nan"}
)  # fmt: skip
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGES = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_NAME = re.compile(r"(?<![\w:.$])([A-Za-z_:][\w:]*)\b(?!\s*\()")
_NUMBER = re.compile(r"\b\d+(?:\.\d+)?(?:e[+-]?\d+)?[smhdwy]?\b")


def promql_metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (label names, functions and keywords removed).

    Good for the expressions we write: strings, label matchers, range and subquery brackets
    and grouping clauses are cut out first; what is left that is not a function call, a
    keyword or a number is a metric name.
    """
    text = _STRINGS.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGES.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    text = _NUMBER.sub(" ", text)
    return {m for m in _NAME.findall(text) if m.lower() not in _KEYWORDS}


def unknown_names(exprs: Iterable[str], exported: set[str]) -> dict[str, set[str]]:
    """For each expression naming a metric the daemon does not export: those names."""
    found = {e: promql_metric_names(e) - exported for e in exprs}
    return {e: names for e, names in found.items() if names}


PROMTOOL = shutil.which("promtool")


async def promtool(*args: str, stdin: str | None = None) -> tuple[int, str]:
    """Run Prometheus' own checker; (exit code, its output)."""
    assert PROMTOOL is not None
    proc = await asyncio.create_subprocess_exec(
        PROMTOOL,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate(stdin.encode() if stdin is not None else None)
    return proc.returncode or 0, out.decode()

"""The reconciliation report of a run: counts and gates, every problem, a spot check, charts.

The counts follow :mod:`projections.counting`; a delta run's also say what became of its
deleted source records (:data:`~projections.counting.DELETION_NAMES`). Everything but the
spot check comes from the projections (``reconciliation_counts``,
``phase_gates``, ``record_state``, ``event_throughput``); the spot check reads the sampled
records' source values and decisions from the log and what Dataverse holds now through the
Dataverse client. :func:`build_report` gathers it, :func:`report_json`, :func:`write_csv` and
:func:`render_html` give it its forms (the HTML with inline SVG charts, no scripts).
"""

from __future__ import annotations

import csv
import html
import json
import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, select

from consumers.dataverse.client import DataverseClient
from consumers.dataverse.errors import DataverseClientError, DataverseError
from consumers.writing.rows import read_columns
from ledger.event_types import SourceRecordExtracted, TransformDecided
from ledger.events import Topic
from ledger.log import EventLog
from producers.mapping.rules import entity_set
from projections.counting import COUNT_NAMES, DELETION_NAMES
from projections.tables import event_throughput, phase_gates, reconciliation_counts, record_state

__all__ = [
    "PhaseReport",
    "Problem",
    "Report",
    "SpotRecord",
    "build_report",
    "default_run",
    "is_delta",
    "read_dataverse",
    "render_html",
    "report_json",
    "runs",
    "spot_sample",
    "write_csv",
]

_WARNINGS_KEY = "_warnings"
THROUGHPUT_TYPES = (
    "SourceRecordExtracted",
    "TransformDecided",
    "DestinationWritten",
    "RecordVerified",
)
"""The event types whose rate the throughput chart shows: one per stage."""


@dataclass
class PhaseReport:
    """One phase: its counts per work4all table and its gate's latest verdict."""

    phase: int
    objects: dict[str, dict[str, int]]
    verdict: str | None
    """``passed`` | ``failed`` from the latest ``PhaseReconciled``; None: never reconciled."""
    reasons: list[str] = field(default_factory=list)
    override_reason: str | None = None
    reconciled_at: str | None = None


@dataclass
class Problem:
    """A record that did not arrive as decided: rejected, failed or mismatched."""

    kind: str
    """``rejected`` | ``excluded`` | ``failed`` | ``mismatched``."""
    source_key: str
    source_table: str
    phase: int | None
    code: str
    """What groups it in a summary: the rejection's reason code, the Dataverse error code."""
    reason: str
    target_table: str | None = None
    target_id: str | None = None


@dataclass
class SpotRecord:
    """One sampled record, side by side: source values, decision, what Dataverse holds now."""

    source_key: str
    target_table: str
    target_id: str
    source: dict[str, Any] = field(default_factory=dict)
    decided: dict[str, Any] = field(default_factory=dict)
    binds: dict[str, str] = field(default_factory=dict)
    dataverse: dict[str, Any] | None = None
    """the row as read now (the decided columns); None when it was not read or not found."""
    note: str = ""


@dataclass
class Report:
    """Everything ``crmledger reconcile`` shows for one run."""

    run_id: str
    phases: list[PhaseReport]
    problems: list[Problem]
    throughput: dict[str, list[tuple[str, int]]]
    """per event type, (second, events) in time order."""
    spot_check: list[SpotRecord] = field(default_factory=list)
    dataverse: str = "not read"
    """``read``, or why Dataverse was not read (not configured, not reachable …)."""
    delta: bool = False
    """a delta run (changed, new or deleted source records): its counts include deletions."""

    @property
    def count_names(self) -> tuple[str, ...]:
        """The counts every table row holds: a delta run's deletion counts too."""
        return COUNT_NAMES + DELETION_NAMES if self.delta else COUNT_NAMES

    def totals(self) -> dict[str, int]:
        """The counts summed over every phase and table."""
        rows = (row for phase in self.phases for row in phase.objects.values())
        return _sum(rows, self.count_names)

    def of_kind(self, *kinds: str) -> list[Problem]:
        """The problems of the given kinds."""
        return [problem for problem in self.problems if problem.kind in kinds]


# --- gathering ---------------------------------------------------------------------------------


def runs(connection: Connection) -> list[str]:
    """Every run the projections know, by name."""
    query = select(record_state.c.run_id).distinct().order_by(record_state.c.run_id)
    return [str(run) for (run,) in connection.execute(query)]


def default_run(connection: Connection) -> str | None:
    """The run with the latest event, or None when there is none."""
    query = (
        select(record_state.c.run_id, func.max(record_state.c.last_event_at).label("last"))
        .group_by(record_state.c.run_id)
        .order_by(func.max(record_state.c.last_event_at).desc(), record_state.c.run_id)
    )
    found = connection.execute(query).first()
    return str(found[0]) if found is not None else None


def build_report(connection: Connection, run_id: str) -> Report:
    """The report of ``run_id`` from the projections (without the spot check)."""
    delta = is_delta(connection, run_id)
    names = COUNT_NAMES + DELETION_NAMES if delta else COUNT_NAMES
    return Report(
        run_id=run_id,
        phases=_phases(connection, run_id, names),
        problems=_problems(connection, run_id),
        throughput=_throughput(connection, run_id),
        delta=delta,
    )


def is_delta(connection: Connection, run_id: str) -> bool:
    """Whether ``run_id`` is a delta run: it has changed, new or deleted source records."""
    rs = record_state.c
    query = select(rs.source_key).where(
        rs.run_id == run_id, rs.changed_at.is_not(None) | rs.source_deleted
    )
    return connection.execute(query.limit(1)).first() is not None


def _phases(connection: Connection, run_id: str, names: Sequence[str]) -> list[PhaseReport]:
    counts: dict[int, dict[str, dict[str, int]]] = {}
    rc = reconciliation_counts.c
    query = select(reconciliation_counts).where(rc.run_id == run_id)
    for row in connection.execute(query.order_by(rc.phase, rc.source_table)).mappings():
        objects = counts.setdefault(int(row["phase"]), {})
        objects[str(row["source_table"])] = {name: int(row[name]) for name in names}
    gates = {
        int(row["phase"]): row
        for row in connection.execute(
            select(phase_gates).where(phase_gates.c.run_id == run_id)
        ).mappings()
    }
    reports: list[PhaseReport] = []
    for phase in sorted(counts.keys() | gates.keys()):
        gate = gates.get(phase)
        reports.append(
            PhaseReport(
                phase=phase,
                objects=counts.get(phase, {}),
                verdict=gate["verdict"] if gate is not None else None,
                reasons=json.loads(gate["reasons_json"] or "[]") if gate is not None else [],
                override_reason=gate["override_reason"] if gate is not None else None,
                reconciled_at=gate["reconciled_at"] if gate is not None else None,
            )
        )
    return reports


def _problems(connection: Connection, run_id: str) -> list[Problem]:
    rs = record_state.c
    query = (
        select(record_state)
        .where(
            rs.run_id == run_id,
            (rs.decision == "rejected")
            | (rs.write_status == "failed")
            | (rs.check_status == "mismatched"),
        )
        .order_by(rs.source_key)
    )
    problems: list[Problem] = []
    for row in connection.execute(query).mappings():
        key, table = str(row["source_key"]), str(row["source_table"])
        if row["decision"] == "rejected":
            reasons: dict[str, list[str]] = json.loads(row["reasons_json"] or "{}")
            kind = "excluded" if row["excluded"] else "rejected"
            for column, texts in sorted(reasons.items()):
                if column == _WARNINGS_KEY:
                    continue
                for text in texts:
                    problems.append(
                        Problem(kind, key, table, row["decision_phase"],
                                text.split(":", 1)[0].strip(), f"{column}: {text}")
                    )  # fmt: skip
        if row["write_status"] == "failed":
            code = str(row["error_code"] or row["error_status"] or "error")
            reason = f"HTTP {row['error_status']} {row['error_code'] or ''}: {row['error_message']}"
            problems.append(
                Problem("failed", key, table, row["write_phase"], code, reason,
                        row["target_table"], row["target_id"])
            )  # fmt: skip
        if row["check_status"] == "mismatched":
            columns = json.loads(row["mismatched_columns_json"] or "[]")
            problems.append(
                Problem("mismatched", key, table, row["write_phase"], "field_mismatch",
                        "differs in Dataverse: " + ", ".join(columns),
                        row["target_table"], row["target_id"])
            )  # fmt: skip
    return problems


def _throughput(connection: Connection, run_id: str) -> dict[str, list[tuple[str, int]]]:
    et = event_throughput.c
    query = (
        select(et.type, et.second, et.count)
        .where(et.run_id == run_id, et.type.in_(THROUGHPUT_TYPES))
        .order_by(et.type, et.second)
    )
    series: dict[str, list[tuple[str, int]]] = {}
    for type_, second, count in connection.execute(query):
        series.setdefault(str(type_), []).append((str(second), int(count)))
    return series


def spot_sample(connection: Connection, run_id: str, size: int, seed: int) -> list[SpotRecord]:
    """``size`` decided records of ``run_id`` drawn with ``seed``: the same seed, the same ones."""
    rs = record_state.c
    query = (
        select(rs.source_key, rs.target_table, rs.target_id)
        .where(rs.run_id == run_id, rs.decision == "decided")
        .order_by(rs.source_key)
    )
    candidates = [(str(k), str(t), str(i)) for k, t, i in connection.execute(query)]
    chosen = random.Random(seed).sample(candidates, min(size, len(candidates)))
    return [SpotRecord(key, table, target) for key, table, target in sorted(chosen)]


def fill_from_log(log: EventLog, run_id: str, records: Sequence[SpotRecord]) -> None:
    """Set each sampled record's source values and decided payload from the log."""
    by_key = {record.source_key: record for record in records}
    if not by_key:
        return
    for stored in log.read([Topic.SOURCE, Topic.DECISIONS]):
        event = stored.event
        record = by_key.get(event.key)
        if record is None or event.run_id != run_id:
            continue
        if event.type == SourceRecordExtracted.event_type:
            record.source = dict(event.payload.get("normalised") or {})
        elif event.type == TransformDecided.event_type:
            record.decided = dict(event.payload.get("payload") or {})
            record.binds = {str(k): str(v) for k, v in (event.payload.get("binds") or {}).items()}


def read_dataverse(client: DataverseClient, records: Sequence[SpotRecord]) -> str:
    """Read each sampled record's row from Dataverse now; ``read`` or why it could not be.

    A record Dataverse does not have gets a note; an unreachable service stops the reading.
    """
    for record in records:
        body = {**record.decided, **{f"{nav}@odata.bind": v for nav, v in record.binds.items()}}
        columns = read_columns(body)
        path = f"{entity_set(record.target_table)}({record.target_id})"
        try:
            try:
                row = client.get(path, {"$select": ",".join(columns)} if columns else None)
            except DataverseError as error:
                if error.status != 400:
                    raise
                row = client.get(path)  # a column Dataverse does not know: read the whole row
        except DataverseError as error:
            record.note = (
                "not in Dataverse" if error.status == 404 else f"HTTP {error.status}: {error}"
            )
            continue
        except DataverseClientError as error:
            return f"not reachable: {error}"
        record.dataverse = {
            name: row.get(name) for name in columns or sorted(row) if not name.startswith("@")
        }
    return "read"


# --- forms -------------------------------------------------------------------------------------


def report_json(report: Report) -> dict[str, Any]:
    """The whole report as JSON-ready data (every problem, every sampled record)."""
    return {
        "run_id": report.run_id,
        "delta": report.delta,
        "columns": list(report.count_names),
        "totals": report.totals(),
        "phases": [asdict(phase) for phase in report.phases],
        "rejections": [asdict(p) for p in report.of_kind("rejected", "excluded")],
        "failures": [asdict(p) for p in report.of_kind("failed")],
        "mismatches": [asdict(p) for p in report.of_kind("mismatched")],
        "spot_check": {
            "dataverse": report.dataverse,
            "records": [asdict(record) for record in report.spot_check],
        },
        "throughput": {
            type_: [{"second": s, "events": n} for s, n in points]
            for type_, points in report.throughput.items()
        },
    }


def write_csv(report: Report, folder: Path) -> list[Path]:
    """Write ``phases.csv``, ``rejections.csv``, ``failures.csv``, ``mismatches.csv`` and
    ``spot_check.csv`` into ``folder``; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    phase_rows = [
        {"run_id": report.run_id, "phase": phase.phase, "source_table": table, **counts,
         "verdict": phase.verdict or "", "override_reason": phase.override_reason or ""}
        for phase in report.phases
        for table, counts in sorted(phase.objects.items())
    ]  # fmt: skip
    problem_fields = list(Problem.__dataclass_fields__)
    spot_rows = [
        {"source_key": r.source_key, "target_table": r.target_table, "target_id": r.target_id,
         "column": column, "decided": _cell(r.decided.get(column, r.binds.get(column))),
         "dataverse": _cell((r.dataverse or {}).get(_read_name(column, r.binds))),
         "note": r.note}
        for r in report.spot_check
        for column in [*sorted(r.decided), *sorted(r.binds)]
    ]  # fmt: skip
    files = {
        "phases.csv": (
            ["run_id", "phase", "source_table", *report.count_names, "verdict", "override_reason"],
            phase_rows,
        ),
        "rejections.csv": (
            problem_fields,
            [asdict(p) for p in report.of_kind("rejected", "excluded")],
        ),
        "failures.csv": (problem_fields, [asdict(p) for p in report.of_kind("failed")]),
        "mismatches.csv": (problem_fields, [asdict(p) for p in report.of_kind("mismatched")]),
        "spot_check.csv": (
            ["source_key", "target_table", "target_id", "column", "decided", "dataverse", "note"],
            spot_rows,
        ),
    }
    written: list[Path] = []
    for name, (fields, rows) in files.items():
        path = folder / name
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
        written.append(path)
    return written


def _read_name(column: str, binds: Mapping[str, str]) -> str:
    """The name a decided column (or bound lookup) is read back under."""
    return read_columns({f"{column}@odata.bind": ""})[0] if column in binds else column


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def reason_summary(problems: Iterable[Problem]) -> list[tuple[str, int]]:
    """``(kind: code, records)`` by frequency, most frequent first."""
    counted = Counter(f"{p.kind}: {p.code}" for p in problems)
    return sorted(counted.items(), key=lambda item: (-item[1], item[0]))


# --- HTML --------------------------------------------------------------------------------------

_COLOURS = {
    "extracted": "#4e79a7",
    "decided": "#76b7b2",
    "rejected": "#f28e2b",
    "written": "#59a14f",
    "failed": "#e15759",
    "verified": "#2f7d32",
    "mismatched": "#b07aa1",
    "SourceRecordExtracted": "#4e79a7",
    "TransformDecided": "#76b7b2",
    "DestinationWritten": "#59a14f",
    "RecordVerified": "#2f7d32",
}
_CHART_COUNTS = ("extracted", "decided", "rejected", "written", "failed", "verified", "mismatched")


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value))


def _legend(names: Sequence[str], x: int, y: int) -> str:
    parts = []
    for index, name in enumerate(names):
        left = x + index * 130
        parts.append(
            f'<rect x="{left}" y="{y}" width="12" height="12" fill="{_COLOURS.get(name, "#999")}"/>'
            f'<text x="{left + 16}" y="{y + 11}">{_e(name)}</text>'
        )
    return "".join(parts)


def phase_chart(report: Report) -> str:
    """Grouped bars: per phase, the records extracted … mismatched (summed over its tables)."""
    phases = [(p.phase, _sum(p.objects.values(), COUNT_NAMES)) for p in report.phases]
    width, height, bottom, left = 900, 320, 260, 50
    peak = max([1, *(row[name] for _, row in phases for name in _CHART_COUNTS)])
    group = (width - left - 20) / max(1, len(phases))
    bar = max(2.0, group / (len(_CHART_COUNTS) + 1))
    parts = [f'<svg class="chart" id="chart-phases" viewBox="0 0 {width} {height}"'
             f' role="img" aria-label="records per phase">']  # fmt: skip
    parts.append(f'<line x1="{left}" y1="{bottom}" x2="{width - 10}" y2="{bottom}" stroke="#333"/>')
    parts.append(f'<text x="{left - 6}" y="20" text-anchor="end">{peak:,}</text>')
    for index, (phase, row) in enumerate(phases):
        x0 = left + index * group
        for offset, name in enumerate(_CHART_COUNTS):
            value = row[name]
            h = (bottom - 20) * value / peak
            parts.append(
                f'<rect x="{x0 + offset * bar:.1f}" y="{bottom - h:.1f}" width="{bar * 0.9:.1f}"'
                f' height="{h:.1f}" fill="{_COLOURS[name]}"><title>phase {phase} {name}:'
                f" {value:,}</title></rect>"
            )
        parts.append(
            f'<text x="{x0 + group / 2 - bar / 2:.1f}" y="{bottom + 18}" text-anchor="middle">'
            f"phase {phase}</text>"
        )
    parts.append(_legend(_CHART_COUNTS, left, height - 24))
    parts.append("</svg>")
    return "".join(parts)


def reasons_chart(report: Report) -> str:
    """Horizontal bars: records per rejection reason and per Dataverse error."""
    items = reason_summary(report.problems)[:15]
    row_height, left, width = 24, 320, 900
    height = max(1, len(items)) * row_height + 20
    peak = max([1, *(n for _, n in items)])
    parts = [f'<svg class="chart" id="chart-reasons" viewBox="0 0 {width} {height}"'
             f' role="img" aria-label="failure and rejection reasons">']  # fmt: skip
    if not items:
        parts.append('<text x="10" y="20">no rejections, failures or mismatches</text>')
    for index, (label, count) in enumerate(items):
        y = 10 + index * row_height
        w = (width - left - 80) * count / peak
        colour = _COLOURS["failed" if label.startswith(("failed", "mismatched")) else "rejected"]
        parts.append(
            f'<text x="{left - 8}" y="{y + 15}" text-anchor="end">{_e(label)}</text>'
            f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{row_height - 6}" fill="{colour}">'
            f"<title>{_e(label)}: {count:,}</title></rect>"
            f'<text x="{left + w + 6:.1f}" y="{y + 15}">{count:,}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def throughput_chart(report: Report) -> str:
    """Lines: events per second of each stage over the run's time, from the events' times."""
    series = {t: pts for t, pts in report.throughput.items() if pts}
    seconds = sorted({second for pts in series.values() for second, _ in pts})
    width, height, left, bottom = 900, 300, 60, 240
    parts = [f'<svg class="chart" id="chart-throughput" viewBox="0 0 {width} {height}"'
             f' role="img" aria-label="throughput over time">']  # fmt: skip
    if not seconds:
        parts.append('<text x="10" y="20">no events</text></svg>')
        return "".join(parts)
    index = {second: position for position, second in enumerate(seconds)}
    peak = max(n for pts in series.values() for _, n in pts)
    span = max(1, len(seconds) - 1)
    parts.append(f'<line x1="{left}" y1="{bottom}" x2="{width - 10}" y2="{bottom}" stroke="#333"/>')
    parts.append(f'<text x="{left - 6}" y="20" text-anchor="end">{peak:,}/s</text>')
    parts.append(f'<text x="{left}" y="{bottom + 18}">{_e(seconds[0])}Z</text>')
    parts.append(
        f'<text x="{width - 10}" y="{bottom + 18}" text-anchor="end">{_e(seconds[-1])}Z</text>'
    )
    for type_, points in sorted(series.items()):
        counts = dict(points)
        coordinates = " ".join(
            f"{left + (width - left - 10) * index[s] / span:.1f},"
            f"{bottom - (bottom - 20) * counts.get(s, 0) / peak:.1f}"
            for s in seconds
        )
        parts.append(
            f'<polyline fill="none" stroke="{_COLOURS.get(type_, "#999")}" stroke-width="2"'
            f' points="{coordinates}"><title>{_e(type_)}</title></polyline>'
        )
    parts.append(_legend(sorted(series), left, height - 24))
    parts.append("</svg>")
    return "".join(parts)


def _sum(rows: Iterable[Mapping[str, int]], names: Sequence[str]) -> dict[str, int]:
    total = dict.fromkeys(names, 0)
    for row in rows:
        for name in names:
            total[name] += row[name]
    return total


def render_html(report: Report) -> str:
    """A self-contained HTML page: tables, the three charts, every problem, the spot check."""
    rows = []
    for phase in report.phases:
        for index, (table, counts) in enumerate(sorted(phase.objects.items())):
            verdict = (phase.verdict or "not reconciled") if index == 0 else ""
            cells = "".join(f'<td class="n">{counts[name]:,}</td>' for name in report.count_names)
            rows.append(
                f"<tr><td>{phase.phase if index == 0 else ''}</td><td>{_e(table)}</td>{cells}"
                f'<td class="{_e(phase.verdict or "none")}">{_e(verdict)}</td></tr>'
            )
    gate_notes = "".join(
        f"<li>phase {p.phase}: {_e(reason)}</li>" for p in report.phases for reason in p.reasons
    ) + "".join(
        f"<li>phase {p.phase} started despite its gate: {_e(p.override_reason)}</li>"
        for p in report.phases
        if p.override_reason
    )
    problems = "".join(
        f"<tr><td>{_e(p.kind)}</td><td>{_e(p.source_key)}</td><td>{_e(p.phase)}</td>"
        f"<td>{_e(p.target_table)}</td><td>{_e(p.reason)}</td></tr>"
        for p in report.problems
    )
    spots = "".join(_spot_html(record) for record in report.spot_check)
    head = "".join(f'<th class="n">{name}</th>' for name in report.count_names)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>crmledger reconciliation: run {_e(report.run_id)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
td, th {{ border: 1px solid #ccc; padding: 3px 8px; vertical-align: top; text-align: left; }}
td.n, th.n {{ text-align: right; }} td.passed {{ color: #2f7d32; }} td.failed {{ color: #c62828; }}
svg.chart {{ width: 100%; max-width: 900px; font-size: 12px; display: block; margin: 1em 0; }}
.spot {{ display: grid; grid-template-columns: 1fr 1fr 1fr; gap: 1em; margin-bottom: 2em; }}
.spot pre {{ background: #f6f6f6; padding: .5em; white-space: pre-wrap; font-size: 12px; }}
</style></head><body>
<h1>Reconciliation of run {_e(report.run_id)}</h1>
<h2>Records per phase and work4all table</h2>
<table><tr><th>phase</th><th>table</th>{head}<th>gate</th></tr>{"".join(rows)}</table>
<ul>{gate_notes}</ul>
<h2>Counts per phase</h2>{phase_chart(report)}
<h2>Rejection and failure reasons</h2>{reasons_chart(report)}
<h2>Throughput over time</h2>{throughput_chart(report)}
<h2>Every rejection, failure and mismatch ({len(report.problems):,})</h2>
<table><tr><th>kind</th><th>record</th><th>phase</th><th>target</th><th>reason</th></tr>
{problems}</table>
<h2>Spot check of {len(report.spot_check)} records (Dataverse: {_e(report.dataverse)})</h2>
{spots}
</body></html>
"""


def _spot_html(record: SpotRecord) -> str:
    def block(title: str, values: Mapping[str, Any] | None) -> str:
        text = json.dumps(values, indent=1, ensure_ascii=False, sort_keys=True, default=str)
        return f"<div><h4>{title}</h4><pre>{_e(text if values is not None else '—')}</pre></div>"

    note = f" — {_e(record.note)}" if record.note else ""
    return (
        f"<h3>{_e(record.source_key)} → {_e(record.target_table)} {_e(record.target_id)}{note}</h3>"
        f'<div class="spot">{block("work4all source", record.source)}'
        f"{block('decided payload', {**record.decided, **record.binds})}"
        f"{block('Dataverse now', record.dataverse)}</div>"
    )

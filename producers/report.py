"""Rendering a :class:`~producers.discover.DiscoveryReport` as Markdown, HTML or JSON.

The HTML is one self-contained page: inline CSS bar charts, no scripts, no external files.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

from producers.discover import DiscoveryReport, Issue

FORMATS = {".md": "markdown", ".html": "html", ".json": "json"}
"""Output suffixes and the format each one gets."""


def to_json(report: DiscoveryReport) -> str:
    """The report as indented JSON."""
    return json.dumps(report.to_dict(), ensure_ascii=False, indent=1, default=str)


def _issue_rows(issues: dict[str, Issue]) -> list[tuple[str, Issue]]:
    return sorted(((name, issue) for name, issue in issues.items()), key=lambda x: -x[1].count)


def to_markdown(report: DiscoveryReport) -> str:
    """The report as Markdown, for a consultant to hand over as it is."""
    data = report.to_dict()
    lines = [
        f"# Migration scope: {report.export}",
        "",
        f"Form: **{report.form}** · records: **{report.total_records:,}**",
        "",
        "## Records per table",
        "",
        "| Table | Source | Records |",
        "|---|---|---:|",
    ]
    lines += [f"| {t.name} | {t.source} | {t.records:,} |" for t in report.tables]
    lines += ["", "## Data-quality findings", "", "| Class | Count | Examples |", "|---|---:|---|"]
    for name, issue in _issue_rows({**report.issues, **report.other_findings}):
        examples = "; ".join(
            f"{e.file} row {e.row} key {e.key} {e.column or ''}".strip() for e in issue.examples
        )
        lines.append(f"| {name} | {issue.count:,} | {examples} |")
    owners = data["owners"]
    lines += [
        "",
        "## Owners that cannot be matched",
        "",
        f"- no owner: {owners['missing']:,}",
        f"- owner as free text only: {owners['free_text']:,}",
        f"- owned by users who have left: {owners['departed']:,}",
        f"- owner code without a Mitarbeiter: {owners['unknown']:,}",
    ]
    recon = data["reconciliation"]
    lines += [
        "",
        "## Open items",
        "",
        f"- open items: {recon['open_items']:,}, gross {recon['gross']} EUR",
        f"- paid per header (BezSumme): {recon['recorded_paid']} EUR",
        f"- payments: {recon['payments']:,}, total {recon['payments_total']} EUR",
        f"- outstanding (gross minus payments): {recon['outstanding']} EUR",
        f"- headers disagreeing with payments: {recon['disagreements']:,}, "
        f"total difference {recon['disagreement_total']} EUR",
        f"- payments without an open item: {recon['payments_without_open_item']:,}",
        "",
        "## Custom fields",
        "",
        "| Table | Column | Label | Control | Options | Filled |",
        "|---|---|---|---|---|---:|",
    ]
    for custom in report.custom_fields:
        options = ", ".join(f"{k}={v}" for k, v in custom.options.items())
        lines.append(
            f"| {custom.table} | {custom.column} | {custom.label} | {custom.control} | "
            f"{options} | {custom.filled:,} |"
        )
    lines += ["", "## Date ranges", "", "| Table | Column | From | To |", "|---|---|---|---|"]
    for table in data["tables"]:
        for column, (low, high) in table["date_ranges"].items():
            lines.append(f"| {table['name']} | {column} | {low} | {high} |")
    lines += ["", "## Field coverage", ""]
    for table in data["tables"]:
        if table["coverage"]:
            cells = ", ".join(f"{c} {v:.0%}" for c, v in table["coverage"].items())
            lines.append(f"- **{table['name']}**: {cells}")
    if report.edition is not None:
        edition = report.edition
        lines += [
            "",
            "## Dynamics 365 edition",
            "",
            f"**{edition.edition}**: {len(edition.custom_tables)} custom tables "
            f"({', '.join(edition.custom_tables) or 'none'}) against a cap of {edition.cap}.",
            "",
            f"Rule: {edition.rule}.",
        ]
    if report.structure:
        lines += ["", "## Structure", ""]
        lines += [f"- {finding}" for finding in report.structure]
    return "\n".join(lines) + "\n"


def _bar(label: str, value: float, maximum: float, text: str) -> str:
    width = 0.0 if maximum <= 0 else 100 * value / maximum
    return (
        f'<div class="row"><span class="label">{escape(label)}</span>'
        f'<span class="track"><span class="bar" style="width:{width:.1f}%"></span></span>'
        f'<span class="value">{escape(text)}</span></div>'
    )


_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem;color:#222}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.2rem .5rem}
th{background:#f3f3f3}.row{display:flex;align-items:center;gap:.5rem;margin:.15rem 0}
.label{width:14rem;text-align:right}.track{flex:1;background:#eee;height:.9rem}
.bar{display:block;height:100%;background:#3b6ea8}.value{width:8rem}
"""


def to_html(report: DiscoveryReport) -> str:
    """The report as one HTML page with CSS bar charts (no scripts)."""
    data = report.to_dict()
    most = max((t.records for t in report.tables), default=0)
    issues = _issue_rows({**report.issues, **report.other_findings})
    worst = max((issue.count for _, issue in issues), default=0)
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Migration scope: {escape(report.export)}</title><style>{_CSS}</style></head>",
        f"<body><h1>Migration scope: {escape(report.export)}</h1>",
        f"<p>Form: <b>{escape(report.form)}</b> · records: <b>{report.total_records:,}</b></p>",
        "<h2>Records per table</h2>",
        *(_bar(t.name, t.records, most, f"{t.records:,}") for t in report.tables),
        "<h2>Data-quality findings</h2>",
        *(_bar(name, issue.count, worst, f"{issue.count:,}") for name, issue in issues),
        "<table><tr><th>Class</th><th>File</th><th>Row</th><th>Key</th><th>Column</th>"
        "<th>Detail</th></tr>",
    ]
    for name, issue in issues:
        for e in issue.examples:
            parts.append(
                f"<tr><td>{escape(name)}</td><td>{escape(e.file)}</td><td>{e.row}</td>"
                f"<td>{e.key}</td><td>{escape(e.column or '')}</td><td>{escape(e.detail)}</td></tr>"
            )
    parts.append("</table>")
    owners = data["owners"]
    owner_rows = [
        ("no owner", owners["missing"]),
        ("free text only", owners["free_text"]),
        ("user has left", owners["departed"]),
        ("no such Mitarbeiter", owners["unknown"]),
    ]
    top = max((count for _, count in owner_rows), default=0)
    parts.append("<h2>Owners that cannot be matched</h2>")
    parts += [_bar(label, count, top, f"{count:,}") for label, count in owner_rows]
    recon = data["reconciliation"]
    parts.append("<h2>Open items</h2><table>")
    for label, key in (
        ("Open items", "open_items"),
        ("Gross (EUR)", "gross"),
        ("Paid per header (EUR)", "recorded_paid"),
        ("Payments", "payments"),
        ("Payments total (EUR)", "payments_total"),
        ("Outstanding (EUR)", "outstanding"),
        ("Headers disagreeing with payments", "disagreements"),
        ("Total difference (EUR)", "disagreement_total"),
        ("Payments without an open item", "payments_without_open_item"),
    ):
        parts.append(f"<tr><th>{label}</th><td>{escape(str(recon[key]))}</td></tr>")
    parts.append("</table><h2>Custom fields</h2><table><tr><th>Table</th><th>Column</th>")
    parts.append("<th>Label</th><th>Control</th><th>Options</th><th>Filled</th></tr>")
    for custom in report.custom_fields:
        options = ", ".join(f"{k}={v}" for k, v in custom.options.items())
        parts.append(
            f"<tr><td>{escape(custom.table)}</td><td>{escape(custom.column)}</td>"
            f"<td>{escape(custom.label)}</td><td>{escape(custom.control)}</td>"
            f"<td>{escape(options)}</td><td>{custom.filled:,}</td></tr>"
        )
    parts.append("</table><h2>Date ranges</h2><table><tr><th>Table</th><th>Column</th>")
    parts.append("<th>From</th><th>To</th></tr>")
    for table in data["tables"]:
        for column, (low, high) in table["date_ranges"].items():
            parts.append(
                f"<tr><td>{escape(table['name'])}</td><td>{escape(column)}</td>"
                f"<td>{low}</td><td>{high}</td></tr>"
            )
    parts.append("</table><h2>Field coverage</h2>")
    for table in data["tables"]:
        if table["coverage"]:
            parts.append(f"<h3>{escape(table['name'])}</h3>")
            parts += [
                _bar(column, share, 1.0, f"{share:.0%}")
                for column, share in table["coverage"].items()
            ]
    if report.edition is not None:
        edition = report.edition
        parts.append(
            f"<h2>Dynamics 365 edition</h2><p><b>{escape(edition.edition)}</b>: "
            f"{len(edition.custom_tables)} custom tables "
            f"({escape(', '.join(edition.custom_tables) or 'none')}) against a cap of "
            f"{edition.cap}.</p><p>Rule: {escape(edition.rule)}.</p>"
        )
    parts.append("</body></html>\n")
    return "\n".join(parts)


def render(report: DiscoveryReport, fmt: str) -> str:
    """The report in ``fmt``: ``markdown``, ``html`` or ``json``."""
    renderers = {"markdown": to_markdown, "html": to_html, "json": to_json}
    return renderers[fmt](report)


def write(report: DiscoveryReport, out: Path) -> list[Path]:
    """Write the report to ``out``: a ``.md``/``.html``/``.json`` file, or a directory that gets
    ``report.md``, ``report.html`` and ``report.json``. Returns the files written.

    Raises ``ValueError`` for a file name with another suffix.
    """
    if out.suffix.casefold() in FORMATS:
        targets = [(out, FORMATS[out.suffix.casefold()])]
    elif out.suffix:
        raise ValueError(f"{out}: expected .md, .html, .json or a directory")
    else:
        targets = [(out / f"report{suffix}", fmt) for suffix, fmt in FORMATS.items()]
    for path, fmt in targets:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(report, fmt), encoding="utf-8")
    return [path for path, _ in targets]

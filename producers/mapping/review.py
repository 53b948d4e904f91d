"""The review of a proposed map: what the proposer suggests, for a person to check.

Markdown for a ticket or a pull request, HTML for a browser; both list, per proposal, the source
column, sample values, the proposed target, the confidence, the rationale and what may be lost.
They are written next to the map (``map.yaml`` → ``map.review.md``, ``map.review.html``).
"""

from __future__ import annotations

import html
from pathlib import Path

from producers.mapping.model import MigrationMap
from producers.mapping.propose import Proposal, ProposalKind

_SECTIONS: tuple[tuple[ProposalKind, str, str], ...] = (
    ("missing", "Columns the map reads that the export lacks",
     "No column of the export matched; these target columns stay empty until the map is fixed."),
    ("renamed", "Renamed standard columns",
     "The default map's source name is replaced by the export's column name."),
    ("custom_field", "Custom fields (IndividualFields)",
     "Labelled by IndividualFields; mapped to a standard column or a new w4a_ column."),
    ("unexpected", "Unexpected columns",
     "Columns neither the default map nor the work4all schema knows."),
    ("not_migrated", "Renamed columns the default map does not migrate",
     "Recognised as standard work4all columns under another name; left out like the original."),
    ("parameter", "Parameters read from the installation",
     "Transform parameters that differ per Mandant, filled from the export's own tables."),
)  # fmt: skip


def review_paths(map_path: Path) -> tuple[Path, Path]:
    """Where the Markdown and HTML reviews of the map at ``map_path`` go."""
    stem = map_path.with_suffix("")
    return stem.with_name(f"{stem.name}.review.md"), stem.with_name(f"{stem.name}.review.html")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _samples(proposal: Proposal) -> str:
    return ", ".join(proposal.samples[:3]) or "(no values sampled)"


def _source(proposal: Proposal) -> str:
    text = f"{proposal.table}.{proposal.column}"
    if proposal.label:
        text += f" “{proposal.label}”"
    if proposal.replaces and proposal.replaces != proposal.column:
        text += f" (was {proposal.replaces})"
    return text


def _target(proposal: Proposal) -> str:
    text = proposal.target_text
    if proposal.options:
        text += f" options: {', '.join(proposal.options)}"
    return text


def to_markdown(migration_map: MigrationMap, proposals: list[Proposal], export: str) -> str:
    """The review as Markdown."""
    lines = [
        f"# Map review: {migration_map.name or 'work4all → Dataverse'}",
        "",
        f"- export: `{export}`",
        f"- map version {migration_map.map_version}, hash `{migration_map.content_hash}`",
        f"- {len(proposals)} proposals; confirm with "
        "`crmledger map confirm MAP --by NAME` after checking them",
        "",
    ]
    for kind, title, explanation in _SECTIONS:
        chosen = [p for p in proposals if p.kind == kind]
        if not chosen:
            continue
        lines += [f"## {title} ({len(chosen)})", "", explanation, ""]
        lines += [
            "| Source column | Sample values | Proposed target | Confidence | Rationale | Lossy |",
            "|---|---|---|---:|---|---|",
        ]
        for p in chosen:
            lossy = _cell("; ".join(p.lossy)) or "—"
            lines.append(
                f"| {_cell(_source(p))} | {_cell(_samples(p))} | {_cell(_target(p))} "
                f"| {p.confidence:.2f} | {_cell(p.rationale)} | {lossy} |"
            )
        lines.append("")
    if not proposals:
        lines += ["Every column of the export is known to the default map: nothing to propose.", ""]
    return "\n".join(lines)


def _colour(confidence: float) -> str:
    if confidence >= 0.8:
        return "#2e7d32"
    if confidence >= 0.5:
        return "#f9a825"
    return "#c62828"


def to_html(migration_map: MigrationMap, proposals: list[Proposal], export: str) -> str:
    """The review as a self-contained HTML page."""
    e = html.escape
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Map review: {e(migration_map.name or 'work4all → Dataverse')}</title>",
        "<style>body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
        "table{border-collapse:collapse;width:100%;margin-bottom:2em}"
        "th,td{border:1px solid #ccc;padding:.3em .5em;vertical-align:top;text-align:left}"
        "th{background:#f0f0f0}td.c{text-align:right;white-space:nowrap}"
        ".bar{display:inline-block;height:.6em;margin-right:.4em}code{font-size:.9em}</style>",
        "</head><body>",
        f"<h1>Map review: {e(migration_map.name or 'work4all → Dataverse')}</h1>",
        f"<p>Export <code>{e(export)}</code>; map version {e(migration_map.map_version)}, "
        f"hash <code>{e(migration_map.content_hash)}</code>; {len(proposals)} proposals. "
        "Confirm with <code>crmledger map confirm MAP --by NAME</code> after checking them.</p>",
    ]
    for kind, title, explanation in _SECTIONS:
        chosen = [p for p in proposals if p.kind == kind]
        if not chosen:
            continue
        parts += [
            f"<h2>{e(title)} ({len(chosen)})</h2><p>{e(explanation)}</p>",
            "<table><tr><th>Source column</th><th>Sample values</th><th>Proposed target</th>"
            "<th>Confidence</th><th>Rationale</th><th>Lossy</th></tr>",
        ]
        for p in chosen:
            bar = (
                f"<span class='bar' style='width:{p.confidence * 4:.1f}em;"
                f"background:{_colour(p.confidence)}'></span>"
            )
            parts.append(
                f"<tr><td><code>{e(_source(p))}</code></td><td>{e(_samples(p))}</td>"
                f"<td><code>{e(_target(p))}</code></td><td class='c'>{bar}{p.confidence:.2f}</td>"
                f"<td>{e(p.rationale)}</td><td>{e('; '.join(p.lossy)) or '—'}</td></tr>"
            )
        parts.append("</table>")
    if not proposals:
        parts.append("<p>Every column of the export is known to the default map.</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_review(
    map_path: Path, migration_map: MigrationMap, proposals: list[Proposal], export: str
) -> tuple[Path, Path]:
    """Write the Markdown and HTML reviews next to ``map_path``; their paths."""
    markdown, page = review_paths(map_path)
    markdown.write_text(to_markdown(migration_map, proposals, export), encoding="utf-8")
    page.write_text(to_html(migration_map, proposals, export), encoding="utf-8")
    return markdown, page

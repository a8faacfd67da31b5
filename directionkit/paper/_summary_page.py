"""``SUMMARY.md`` and the self-contained ``report.html`` of a ``reproduce`` run."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path

from directionkit._version import __version__
from directionkit.paper._results import ExperimentResult, write_text
from directionkit.paper._workspace import Workspace

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
td, th { border: 1px solid #ccc; padding: 4px 8px; vertical-align: top; text-align: left; }
img { max-width: 100%; }
.reproduced { color: #11692f; font-weight: bold; }
.partly { color: #a15c00; font-weight: bold; }
.not-reproduced { color: #a31515; font-weight: bold; }
.inconclusive { color: #555; font-weight: bold; font-style: italic; }
section { border-top: 1px solid #ddd; margin-top: 2em; }
"""


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def summary_markdown(results: Sequence[ExperimentResult], ws: Workspace) -> str:
    """The ``SUMMARY.md`` text: a table of every experiment, then each one's details."""
    lines = [
        "# directionkit reproduce: summary",
        "",
        f"Scale `{ws.scale.name}` on `{ws.dataset}`, device `{ws.device_used}`, directionkit "
        f"{__version__}. Verdicts are computed by each experiment's stated rule from the "
        "numbers stored in its folder; every statistic has a 95% bootstrap interval and a "
        "rule decides on the whole interval (*inconclusive* when it is too wide or the "
        "population too small). Deviations from the paper's protocol are listed per "
        "experiment, generated from the scale.",
        "",
        "| experiment | paper | ours | verdict | wall time (s) |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        seconds = f"{r.seconds:.0f}" + (" (reused)" if r.reused else "")
        lines.append(
            f"| {r.name} ({_md(r.title)}) | {_md(r.paper)} | {_md(r.summary)} | "
            f"**{r.verdict}** | {seconds} |"
        )
    for r in results:
        lines += [
            "",
            f"## {r.name}: {r.title}",
            "",
            f"- **Claim:** {r.claim}",
            f"- **Paper:** {r.paper}",
            f"- **Ours:** {r.summary}",
            *[f"- **Statistic:** {line}" for line in r.claims],
            f"- **Interval:** {r.statistics.get('interval', 'n/a')}",
            f"- **Rule (stated before the run):** {r.rule}",
            f"- **Verdict:** {r.verdict}",
            *(["", *r.statistics["table"], ""] if r.statistics.get("table") else []),
            f"- **Population:** {r.population}",
            "- **Deviations from the paper's protocol:**"
            + ("" if r.deviations else " none stated"),
            *[f"  - {d}" for d in r.deviations],
            "",
            *[f"![{name}]({r.name}/{name})" for name in r.figures],
        ]
    return "\n".join(lines) + "\n"


def report_html(results: Sequence[ExperimentResult], ws: Workspace) -> str:
    """The ``report.html`` text, every figure embedded as a base64 PNG."""
    rows = "\n".join(
        f"<tr><td><a href='#{html.escape(r.name)}'>{html.escape(r.name)}</a></td>"
        f"<td>{html.escape(r.paper)}</td><td>{html.escape(r.summary)}</td>"
        f"<td class='{r.verdict.replace(' ', '-')}'>{html.escape(r.verdict)}</td></tr>"
        for r in results
    )
    sections = []
    for r in results:
        images = []
        for name in r.figures:
            data = (ws.out / r.name / name).read_bytes()
            images.append(
                f"<img alt='{html.escape(name)}' src='data:image/png;base64,"
                f"{base64.b64encode(data).decode('ascii')}'>"
            )
        sections.append(
            f"<section id='{html.escape(r.name)}'><h2>{html.escape(r.name)}: "
            f"{html.escape(r.title)}</h2>"
            f"<p><b>Claim:</b> {html.escape(r.claim)}</p>"
            f"<p><b>Paper:</b> {html.escape(r.paper)}<br><b>Ours:</b> "
            f"{html.escape(r.summary)}</p><p>"
            + "".join(f"<b>Statistic:</b> {html.escape(line)}<br>" for line in r.claims)
            + f"<b>Interval:</b> {html.escape(str(r.statistics.get('interval', 'n/a')))}</p>"
            f"<p><b>Rule (stated before the run):</b> {html.escape(r.rule)}<br>"
            f"<b>Verdict:</b> <span class='{r.verdict.replace(' ', '-')}'>"
            f"{html.escape(r.verdict)}</span></p>"
            + (f"<pre>{html.escape(chr(10).join(r.statistics['table']))}</pre>"
               if r.statistics.get("table") else "")
            + f"<p><b>Population:</b> {html.escape(r.population)}</p>"
            "<p><b>Deviations from the paper's protocol:</b></p><ul>"
            + "".join(f"<li>{html.escape(d)}</li>" for d in r.deviations)
            + "</ul>"
            + "\n".join(images)
            + "</section>"
        )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>directionkit reproduce</title>
<style>{_STYLE}</style></head><body>
<h1>Morcos et al. (2018), reproduced with directionkit</h1>
<p>Scale <code>{html.escape(ws.scale.name)}</code> on <code>{html.escape(ws.dataset)}</code>,
directionkit {html.escape(__version__)}. Each verdict is computed by the rule shown, stated
before the run, from the numbers stored in the experiment's folder.</p>
<table><tr><th>experiment</th><th>paper</th><th>ours</th><th>verdict</th></tr>
{rows}</table>
{"".join(sections)}
</body></html>
"""


def write_summary(results: Sequence[ExperimentResult], ws: Workspace) -> tuple[Path, Path]:
    """Write ``SUMMARY.md`` and ``report.html`` into the workspace folder (atomically)."""
    summary, report = ws.out / "SUMMARY.md", ws.out / "report.html"
    write_text(summary, summary_markdown(results, ws))
    write_text(report, report_html(results, ws))
    return summary, report

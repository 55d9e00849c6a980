"""The report's last stage: report.json, report.md and a self-contained report.html (PNG plots
embedded), all rendered from the same tables; and a headless-Chromium screenshot of the HTML."""

from __future__ import annotations

import base64
import html
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from edge_sed.core.atomic import atomic_path, write_json
from edge_sed.core.errors import EdgeSedError
from edge_sed.report.plots import draw_plots
from edge_sed.report.tables import report_tables


def _md_table(t: dict) -> str:
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    lines = [
        f"### {t['title']}",
        "",
        "| " + " | ".join(map(esc, t["headers"])) + " |",
        "|" + "---|" * len(t["headers"]),
    ]
    lines += ["| " + " | ".join(map(esc, r)) + " |" for r in t["rows"]]
    lines += [""] + [n for n in t["notes"]] + [""]
    return "\n".join(lines)


def headline_markdown(report: dict) -> str:
    """The headline table alone (the demo prints it, the README shows it)."""
    return _md_table(report_tables(report)[0])


def _warnings(report: dict) -> list[str]:
    return sorted(
        {f"{r['objective']} {r['level']}: {w}" for r in report["summary"] for w in r.get("warnings", [])}
    )


def render_markdown(report: dict, plots: dict) -> str:
    out = [
        f"# {report['title']}",
        "",
        f"Created {report['created_utc']} in {report['seconds']} s. " + report["metrics_note"],
        "",
    ]
    sets = report["model_sets"]
    out += [
        "Models: "
        + ", ".join(
            f"`{s['name']}` ({s['model']}, {s['objective']}, seed {s['seed']}, data {s['dataset']})"
            for s in sets
        ),
        "",
    ]
    for t in report_tables(report):
        out.append(_md_table(t))
    warnings = _warnings(report)
    if warnings:
        out += ["### Warnings from conversion", ""] + [f"- {w}" for w in warnings] + [""]
    if plots:
        out += ["### Plots", ""] + [f"![{k}]({Path(v).name})" for k, v in plots.items()] + [""]
    out += ["Every number above is in report.json with the file and JSON field it came from (`sources`)."]
    return "\n".join(out) + "\n"


NUMERIC = re.compile(r"^[-+]?(\d|n/a$)")
BAD_WORDS = (
    "not available",
    "cannot run",
    "unsupported",
    "failed",
    "not built",
    "DOES NOT FIT",
    "invalid",
    "missing",
    "not simulated",
)
"""A cell with one of these is a reason, not a figure: shown in red."""
CSS = """body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;\
margin:24px auto;max-width:1200px;
color:#222;line-height:1.4;padding:0 16px}h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:8px 0;font-size:13px}th,td{border:1px solid #ccc;padding:3px 7px;
text-align:right;vertical-align:top}th{background:#f0f3f7;text-align:left}td:first-child,th:first-child{text-align:left}
td.bad{color:#a33;text-align:left}td.txt{text-align:left}\
.note{color:#555;font-size:12px;max-width:1100px}img{max-width:100%;
border:1px solid #ddd;margin:6px 0}.warn{color:#8a5a00;font-size:12px}\
code{background:#f4f4f4;padding:0 3px}"""


def _html_row(r: list[str]) -> str:
    """One table row; a row that says why it has no figures gets one cell across the rest."""
    filled = len(r)
    while filled > 1 and r[filled - 1] == "":
        filled -= 1
    if len(r) - filled < 3:
        filled = len(r)
    cells = []
    for i, c in enumerate(r[:filled]):
        span = f" colspan='{len(r) - i}'" if i == filled - 1 and filled < len(r) else ""
        cls = "bad" if any(w in c for w in BAD_WORDS) else "num" if NUMERIC.match(c) else "txt"
        cells.append(f"<td class='{cls}'{span}>{html.escape(c)}</td>")
    return "<tr>" + "".join(cells) + "</tr>"


def _html_table(t: dict) -> list[str]:
    e = html.escape
    return (
        [
            f"<h2 id='{t['id']}'>{e(t['title'])}</h2><table><tr>"
            + "".join(f"<th>{e(h)}</th>" for h in t["headers"])
            + "</tr>"
        ]
        + [_html_row(r) for r in t["rows"]]
        + ["</table>" + "".join(f"<p class='note'>{e(n)}</p>" for n in t["notes"])]
    )


def render_html(report: dict, plots: dict) -> str:
    e = html.escape
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{e(report['title'])}</title>"
        f"<style>{CSS}</style></head><body>",
        f"<h1>{e(report['title'])}</h1>",
        f"<p class='note'>Created {e(report['created_utc'])} in {report['seconds']} s. "
        f"{e(report['metrics_note'])}</p>",
        "<p class='note'>Models: "
        + ", ".join(
            f"<code>{e(s['name'])}</code> ({e(str(s['model']))}, {e(s['objective'])}, "
            f"seed {e(str(s['seed']))})"
            for s in report["model_sets"]
        )
        + "</p>",
    ]
    for t in report_tables(report):
        parts += _html_table(t)
    warnings = _warnings(report)
    if warnings:
        parts.append(
            "<h2>Warnings from conversion</h2>" + "".join(f"<p class='warn'>{e(w)}</p>" for w in warnings)
        )
    if plots:
        parts.append("<h2>Plots</h2>")
        for name, path in plots.items():
            data = base64.b64encode(Path(path).read_bytes()).decode()
            parts.append(f"<p><img alt='{e(name)}' src='data:image/png;base64,{data}'></p>")
    parts.append(
        "<p class='note'>Every number above is in report.json with the file and JSON field it came "
        "from (<code>sources</code>).</p></body></html>"
    )
    return "\n".join(parts)


def write_report(report: dict, out: Path, plots: bool = True) -> dict:
    """report.json, report.md, report.html (+ PNGs) into ``out``; returns {name: png path}."""
    out = Path(out)
    pngs = draw_plots(report, out) if plots else {}
    report["plots"] = {k: str(v) for k, v in pngs.items()}
    write_json(report, out / "report.json")
    for name, text in (
        ("report.md", render_markdown(report, pngs)),
        ("report.html", render_html(report, pngs)),
    ):
        with atomic_path(out / name) as tmp:
            tmp.write_text(text)
    return pngs


# ------------------------------------------------------------ opening it as a person


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def screenshot_html(
    html_path, png_path, width: int = 1300, height: int = 3000, timeout_s: float = 120
) -> Path:
    """Render ``html_path`` with headless Chromium to ``png_path`` (what a person would see)."""
    exe = chromium()
    if not exe:
        raise EdgeSedError("no chromium on this machine: apt-get install chromium")
    png_path = Path(png_path).resolve()
    with tempfile.TemporaryDirectory(prefix="edge-sed-chromium-") as profile:
        cmd = [
            exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--screenshot={png_path}",
            f"--window-size={width},{height}",
            Path(html_path).resolve().as_uri(),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    if not png_path.exists():
        raise EdgeSedError(
            f"chromium wrote no screenshot (exit {proc.returncode}): "
            f"{(proc.stderr.strip().splitlines() or [''])[-1]}"
        )
    return png_path

"""`raygan report`: a table of an experiment's trials and a static HTML page.

The page is one self-contained file (figures embedded as PNG data): the trials table, the
metric curves of every trial, the PBT exploit records (if any), and per trial its latest
samples, per-cell samples (images), per-cell score heatmap and the evolution of its grid
(learning rates, losses, genealogy, mixture weights, the ranking metric against its real-data
floor; `raygan.reporting.figures`, from `history.parquet`). Built offline from the
experiment directory (no Ray cluster).
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
from pathlib import Path
from typing import Any

from raygan.atomic import atomic_write_text
from raygan.config.catalog import BEST_PREFIX, FLOOR_SUFFIX, floor_name
from raygan.reporting.lineage import Exploit, inherited, read_exploits
from raygan.tuning.records import TrialRecord
from raygan.tuning.results import best_trial, load_trials, require_experiment

REPORT_FILE = "report.html"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def _with_floor(trial: TrialRecord) -> str:
    """The trial's ranking score, with the real-data floor beside it when there is one."""
    floor = trial.last.get(floor_name(trial.metric))
    if isinstance(floor, (int, float)) and math.isfinite(floor):
        return f"{_fmt(trial.score)} (real data: {floor:.3g})"
    return _fmt(trial.score)


def trial_rows(trials: list[TrialRecord]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the trials table (one row per trial)."""
    knob_keys = sorted({k for t in trials for k in t.knobs})
    metric = trials[0].metric if trials else "metric"
    header = ["trial", "status", "failures", "generation", metric, "best cell", *knob_keys]
    rows = []
    for t in trials:
        gen = t.last.get("generation")
        total = t.config.training.generations
        rows.append(
            [
                t.trial_id,
                t.status,
                str(t.failures),
                f"{gen if gen is not None else 0}/{total}",
                _with_floor(t),
                _fmt(t.last.get("best_cell", "")),
                *[_fmt(t.knobs.get(k, "")) for k in knob_keys],
            ]
        )
    return header, rows


def format_table(header: list[str], rows: list[list[str]]) -> str:
    """A plain-text table with aligned columns."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(line, widths)) for line in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


_KNOB_COLUMNS = 8  # beyond, the knobs share one cell, a line each: columns would not fit


def exploit_rows(exploits: list[Exploit]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the exploits table: one row per exploit, with the exploited trial's
    knobs after it (`new ← donor's` where the exploit perturbed the donor's value), a column
    each, or one cell of `knob: value` lines when there are more than `_KNOB_COLUMNS`."""
    keys = sorted({k for e in exploits for k in e.knobs})
    columns = len(keys) <= _KNOB_COLUMNS
    header = ["generation", "trial", "restarted from", *(keys if columns else ["knobs after"])]
    rows = []
    for e in exploits:
        knobs = []
        for key in keys:
            new, old = _fmt(e.knobs.get(key, "")), _fmt(e.donor_knobs.get(key, ""))
            knobs.append(new if new == old else f"{new}\u00a0← {old}")  # breaks after ←
        if not columns:
            knobs = ["\n".join(f"{key}: {value}" for key, value in zip(keys, knobs))]
        rows.append([str(e.generation), e.trial, f"{e.donor} at {e.donor_generation}", *knobs])
    return header, rows


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _img(data: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _file_img(path: Path) -> str:
    return _img(base64.b64encode(path.read_bytes()).decode(), path.name)


def curve_figures(trials: list[TrialRecord]) -> list[tuple[str, str]]:
    """One figure per reported score of the best mixture: every trial's curve over generations.

    A score with a real-data floor gets the floor as a dashed line in the same figure.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frames = [(t, t.curves) for t in trials if t.curves is not None and len(t.curves)]
    names = sorted({
        c for _, df in frames for c in df.columns
        if str(c).startswith(BEST_PREFIX) and not str(c).endswith(FLOOR_SUFFIX)
    })
    figures = []
    for name in names:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for trial, df in frames:
            if name in df.columns and "generation" in df.columns:
                # evaluated generations only (results carry scores forward between them); a
                # generation run twice (restart, PBT exploit) counts as its last run
                rows = df[df["evaluated"].astype(bool)] if "evaluated" in df.columns else df
                rows = rows[["generation", name]].dropna()
                rows = rows.drop_duplicates("generation", keep="last").sort_values("generation")
                ax.plot(rows["generation"], rows[name], marker=".", label=trial.trial_id)
        floors = [df[floor_name(name)].dropna() for _, df in frames if floor_name(name) in df]
        floors = [f for f in floors if len(f)]
        if floors:
            level = float(floors[0].iloc[-1])
            ax.axhline(level, color="k", linestyle="--", linewidth=1,
                       label=f"real data ({level:.3g})")
        ax.set_xlabel("generation")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        if len(frames) <= 12:
            ax.legend(fontsize=7)
        fig.tight_layout()
        figures.append((name, _png(fig)))
    return figures


def _breakable(text: str, after: str) -> str:
    """`text` escaped for HTML, free to wrap after any of the characters in `after`."""
    return re.sub(f"([{re.escape(after)}])", r"\1<wbr>", html.escape(text))


def _table_html(header: list[str], rows: list[list[str]], link_first: bool = False) -> str:
    # so that many knobs fit the page: a dotted knob name may wrap after its dots and
    # underscores, a value (a genome: blocks joined by + and /) after its separators
    head = "".join(f"<th>{_breakable(h, '._')}</th>" for h in header)
    body = []
    for row in rows:
        cells = [_breakable(c, "/+,=") for c in row]
        if link_first:
            cells[0] = f'<a href="#{html.escape(row[0])}">{cells[0]}</a>'
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


_STYLE = (
    "body{font-family:sans-serif;margin:2em;max-width:1200px}"
    "table{border-collapse:collapse;margin:1em 0}"
    "td,th{border:1px solid #ccc;padding:3px 6px;font-size:90%;text-align:left}"
    "td{white-space:pre-line}"  # a cell's lines (the knobs of an exploit)
    "img{max-width:560px;margin:4px;vertical-align:top}"
    ".best{background:#eef8ee}"
    "figure{margin:1em 0}figure img{max-width:100%}"
    "figcaption,.note{font-size:90%;color:#333;max-width:900px}"
)


def evolution_html(trial: TrialRecord, donors: list[Exploit] | None = None) -> str:
    """The trial's evolution section, drawn from its `history.parquet` (see
    `raygan.reporting.figures`): every figure with its caption, or why it is left out; where
    donors' history ends when exploits handed the trial its start (`lineage.inherited`)."""
    from raygan.engine.history import HISTORY_FILE, read_history
    from raygan.reporting.figures import evolution_panels  # matplotlib only when rendering

    head = f"<h3>Evolution of {html.escape(trial.trial_id)}</h3>"
    path = trial.path / HISTORY_FILE
    if not path.is_file():
        return head + f"<p>no {HISTORY_FILE} yet (written with every checkpoint)</p>"
    panels = evolution_panels(read_history(path), trial.config.grid.cols, trial.config.rank_by,
                              donors or [])
    parts = [head]
    for panel in panels:
        caption = f"<b>{html.escape(panel.title)}.</b> {html.escape(panel.caption)}"
        if panel.figure is None:
            parts.append(f"<p class='note'>{caption}</p>")
        else:
            parts.append(f"<figure>{_img(_png(panel.figure), panel.title)}"
                         f"<figcaption>{caption}</figcaption></figure>")
    return "\n".join(parts)


def render_html(experiment: Path, trials: list[TrialRecord]) -> str:
    """The report page."""
    header, rows = trial_rows(trials)
    best = best_trial(trials) if trials else None
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(experiment.name)}"
        f"</title><style>{_STYLE}</style></head><body>",
        f"<h1>raygan experiment {html.escape(experiment.name)}</h1>",
        f"<p>{html.escape(str(experiment))}: {len(trials)} trial(s)"
        + (f", best {html.escape(best.trial_id)} ({html.escape(best.metric)} = "
           f"{html.escape(_with_floor(best))})" if best else "")
        + "</p>",
        "<h2>Trials</h2>",
        _table_html(header, rows, link_first=True),
        "<h2>Metric curves</h2>",
        "".join(_img(data, name) for name, data in curve_figures(trials)) or "<p>no results</p>",
    ]
    exploits = read_exploits(experiment, [t.trial_id for t in trials])
    if exploits:
        parts.append(f"<h2>PBT exploits ({len(exploits)})</h2>")
        parts.append(_table_html(*exploit_rows(exploits)))
        parts.append("<p class='note'>At its generation in the first column, a trial restarted "
                     "from a donor's checkpoint (weights, history and generation count) with "
                     "the knobs shown: the donor's, or perturbed from it (new ← donor's).</p>")
    from raygan.reporting.evolve_report import evolve_html  # an evolve sweep's steps, if any

    parts.append(evolve_html(experiment, trials, _png, _img, _table_html))
    for trial in trials:
        parts.append(f"<h2 id='{html.escape(trial.trial_id)}'>Trial {html.escape(trial.trial_id)}"
                     f" ({html.escape(trial.status)})</h2>")
        parts.append(f"<p>{html.escape(str(trial.path))}"
                     + (f"<br>error: {html.escape(trial.error)}" if trial.error else "") + "</p>")
        figures = sorted(p for p in trial.path.glob("*.png") if "_gen" not in p.stem)
        parts.append("".join(_file_img(p) for p in figures) or "<p>no figures yet</p>")
        parts.append(evolution_html(trial, inherited(exploits, trial.trial_id)))
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(path: str | Path, out: str | Path | None = None) -> tuple[Path, str]:
    """Write the HTML report of the experiment (or plain run) at `path` (default
    `<path>/report.html`).

    Returns:
        The HTML file and the plain-text trials table.
    """
    experiment = require_experiment(path, plain_run=True)
    trials = load_trials(experiment)
    target = Path(out) if out else experiment / REPORT_FILE
    atomic_write_text(target, render_html(experiment, trials))
    return target, format_table(*trial_rows(trials))

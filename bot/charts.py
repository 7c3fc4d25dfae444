"""PNG charts for /chart: participation against targets; scores and the grade distribution.

Rendered with matplotlib's object API on the Agg backend (no pyplot, so charts can be drawn
in worker threads), 1080 px wide for a phone screen. Chinese labels need a CJK font: the
project depends on ``pylopdf-fonts-zh-cn`` (Noto Sans SC, SIL Open Font License 1.1),
loaded by path, so nothing depends on the fonts installed on the machine.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Sequence
from contextlib import AbstractContextManager
from decimal import Decimal
from functools import cache
from pathlib import Path

import matplotlib
from matplotlib import font_manager
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from bot.report_views import score, short_name
from storage.tallies import BranchTally, RoundTally
from surveys.categories import Audience
from surveys.i18n import t
from surveys.rules import GRADE_ORDER

WIDTH_PX = 1080
DPI = 150
_BAR_HEIGHT_PX = 42
_MIN_HEIGHT_PX = 720
_COLORS = {"met": "#2e7d32", "behind": "#c62828", "target": "#212121", "bar": "#1565c0"}
_GRADE_COLORS = ("#2e7d32", "#1565c0", "#f9a825", "#c62828")


@cache
def cjk_font_name() -> str | None:
    """Register Noto Sans SC from the font package with matplotlib once; its family name."""
    path = _font_path()
    if path is None:
        return None
    font_manager.fontManager.addfont(str(path))
    return font_manager.FontProperties(fname=str(path)).get_name()


def _cjk_style() -> AbstractContextManager[object]:
    """Draw with the CJK font first, falling back to matplotlib's own for Latin text."""
    name = cjk_font_name()
    families = [name, "DejaVu Sans"] if name else ["DejaVu Sans"]
    return matplotlib.rc_context({"font.family": "sans-serif", "font.sans-serif": families})


def _font_path() -> Path | None:
    try:
        import pylopdf_fonts_zh_cn  # a font package: Noto Sans SC
    except ImportError:  # charts still render, with boxes for Chinese; the tests catch that
        return None
    path = Path(pylopdf_fonts_zh_cn.sans_path())
    return path if path.is_file() else None


def _figure(rows: int) -> Figure:
    height_px = max(_MIN_HEIGHT_PX, 220 + rows * _BAR_HEIGHT_PX)
    return Figure(figsize=(WIDTH_PX / DPI, height_px / DPI), dpi=DPI)


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _respondents(branch: BranchTally) -> tuple[int, int]:
    """(respondents, required) over members and masses."""
    covs = [branch.coverage[a] for a in (Audience.MEMBERS, Audience.MASSES) if a in branch.coverage]
    return sum(c.respondents for c in covs), sum(c.required for c in covs)


def participation_chart(tally: RoundTally, locale: str) -> bytes:
    """Horizontal bars: respondents per branch, with each branch's target as a line."""
    with _cjk_style():
        return _png(participation_figure(tally, locale))


def participation_figure(tally: RoundTally, locale: str) -> Figure:
    """The participation chart as a figure: each bar labelled respondents/target."""
    with _cjk_style():  # the layout measures the Chinese labels, so the font must be known
        return _participation_figure(tally, locale)


def _participation_figure(tally: RoundTally, locale: str) -> Figure:
    branches: Sequence[BranchTally] = sorted(tally.branches, key=lambda b: b.name, reverse=True)
    figure = _figure(len(branches))
    axes = figure.add_subplot()
    names = [short_name(b.name, 16) for b in branches]
    counts = [_respondents(b) for b in branches]
    colors = [_COLORS["met"] if done >= need else _COLORS["behind"] for done, need in counts]
    positions = range(len(branches))
    bars = axes.barh(positions, [done for done, _ in counts], color=colors, height=0.6)
    # The number on the bar (issue 14): a phone screen is too small to read it off the axis.
    axes.bar_label(bars, labels=[f"{done}/{need}" for done, need in counts], padding=3)
    for position, (_, need) in zip(positions, counts, strict=True):
        axes.vlines(need, position - 0.4, position + 0.4, colors=_COLORS["target"], linewidth=2)
    axes.set_yticks(list(positions), names)
    axes.set_xlabel(t("chart.respondents", locale))
    axes.set_title(t("chart.participation_title", locale))
    axes.grid(axis="x", alpha=0.3)
    axes.margins(x=0.12)  # room for the label after the longest bar
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # people come whole
    figure.tight_layout()
    return figure


def score_chart(tally: RoundTally, locale: str) -> bytes:
    """Scores per branch with the grade lines (60/80/90), and the grades counted."""
    with _cjk_style():
        return _png(score_figure(tally, locale))


def score_figure(tally: RoundTally, locale: str) -> Figure:
    """The score chart as a figure: scores labelled as the tables show them, grades counted."""
    with _cjk_style():
        return _score_figure(tally, locale)


def _score_figure(tally: RoundTally, locale: str) -> Figure:
    scored = [b for b in tally.branches if b.grading_score is not None]
    scored.sort(key=lambda b: (b.grading_score or Decimal(0), b.name))
    figure = _figure(len(scored) + 6)
    top, bottom = figure.subplots(2, 1, gridspec_kw={"height_ratios": [max(3, len(scored)), 3]})
    positions = range(len(scored))
    bars = top.barh(positions, [float(b.grading_score or 0) for b in scored], color=_COLORS["bar"])
    # Inside the bar, centred: after its end a label would cross the 60/80/90 lines.
    labels = [score(b.grading_score) for b in scored]
    top.bar_label(bars, labels=labels, label_type="center", color="white")
    top.set_yticks(list(positions), [short_name(b.name, 16) for b in scored])
    for line in (60, 80, 90):
        top.axvline(line, color=_COLORS["target"], linestyle="--", linewidth=1)
    top.set_xlim(0, 100)
    top.set_title(t("chart.score_title", locale))
    counted = Counter(b.grade for b in scored if b.grade is not None)
    labels = [t(f"grade.{grade.value}", locale) for grade in GRADE_ORDER]
    values = [counted.get(grade, 0) for grade in GRADE_ORDER]
    columns = bottom.bar(labels, values, color=_GRADE_COLORS)
    bottom.bar_label(columns, padding=2)
    bottom.margins(y=0.15)
    bottom.set_title(
        # Quotas of the complete pools only (docs/rules.md §5.2); a dash while none is complete.
        t(
            "chart.grade_title",
            locale,
            max_good="—" if tally.max_good is None else tally.max_good,
            min_poor="—" if tally.min_poor is None else tally.min_poor,
        )
    )
    bottom.set_ylabel(t("chart.branches", locale))
    bottom.yaxis.set_major_locator(MaxNLocator(integer=True))
    figure.tight_layout()
    return figure

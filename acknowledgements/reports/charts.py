"""Geometry of the server-drawn SVG charts; templates under reports/includes/ draw them.

Each status has a colour *and* a fill pattern, and every chart carries a title, a description
and a table or list that says the same in words, so nothing relies on colour alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from acknowledgements.reports.figures import Completion, SignatureTimeline, StatusCount
from acknowledgements.standings.coverage import Status
from acknowledgements.templatetags.dates import written_date

# Colour, pattern (see includes/chart_patterns.svg.html) and label colour for each status.
STATUS_STYLE = {
    Status.SIGNED: {"colour": "#1d6b3a", "pattern": "solid", "ink": "#ffffff"},
    Status.PENDING: {"colour": "#c9d1de", "pattern": "dots", "ink": "#1a1f2b"},
    Status.OVERDUE: {"colour": "#a4161a", "pattern": "hatch", "ink": "#ffffff"},
    Status.DECLINED: {"colour": "#b86e00", "pattern": "cross", "ink": "#ffffff"},
    Status.RENEWAL_DUE: {"colour": "#e8d9a8", "pattern": "dots", "ink": "#1a1f2b"},
    Status.LAPSED: {"colour": "#6b0f12", "pattern": "hatch", "ink": "#ffffff"},
}


CHIP_WIDTH = 58
# A segment names its status as well as its share when it is this wide (pixels), so that no
# share can be read as another's (a bar that said only "99.5 %" read as complete).
NAMED_LABEL_WIDTH = 150
CHAR_WIDTH = 7.2  # of the 12 px bold label text, to size its chip
MAX_COLUMN_WIDTH = 28


def _fmt(number: float) -> str:
    """A coordinate with at most two decimals, never localised (SVG wants a dot)."""
    return f"{number:.2f}".rstrip("0").rstrip(".")


def percent_label(percent: float) -> str:
    return f"{percent:.1f}".rstrip("0").rstrip(".") + " %"


@dataclass(frozen=True)
class Segment:
    part: StatusCount
    x: str
    width: str
    fill: str  # url(#pattern) or a colour
    label: str  # shown on the segment when there is room, else ""
    label_x: str
    chip_width: str
    chip_x: str  # the light box behind the label, readable on any fill

    @property
    def title(self) -> str:
        return f"{self.part.label}: {self.part.count} ({percent_label(self.part.percent)})"


@dataclass(frozen=True)
class StackedBar:
    uid: str
    width: int
    height: int
    segments: list[Segment]
    title: str
    desc: str
    label_y: str
    chip_y: str


def describe_completion(completion: Completion) -> str:
    if not completion.total:
        return _("Nobody is in scope.")
    parts = "; ".join(
        f"{part.label} {part.count} ({percent_label(part.percent)})" for part in completion.parts
    )
    template = ngettext(
        "%(total)d person in scope: %(parts)s.",
        "%(total)d people in scope: %(parts)s.",
        completion.total,
    )
    return template % {"total": completion.total, "parts": parts}


def stacked_bar(
    uid: str, completion: Completion, *, title: str, width: int = 640, height: int = 34
) -> StackedBar:
    """One bar split by status, each part as wide as its share of the people in scope."""
    segments, x = [], 0.0
    for part in completion.parts:
        share = width * part.count / completion.total if completion.total else 0.0
        if share <= 0:
            continue
        style = STATUS_STYLE[part.status]
        fill = f"url(#{uid}-{style['pattern']})" if style["pattern"] != "solid" else style["colour"]
        label = ""
        if height >= 28 and share >= NAMED_LABEL_WIDTH:
            label = f"{part.label} {percent_label(part.percent)}"
        elif height >= 28 and share >= 64:
            label = percent_label(part.percent)
        chip = max(CHIP_WIDTH, len(label) * CHAR_WIDTH + 12)
        segments.append(
            Segment(
                part=part,
                x=_fmt(x),
                width=_fmt(share),
                fill=fill,
                label=label,
                label_x=_fmt(x + share / 2),
                chip_x=_fmt(x + share / 2 - chip / 2),
                chip_width=_fmt(chip),
            )
        )
        x += share
    return StackedBar(
        uid=uid,
        width=width,
        height=height,
        segments=segments,
        title=title,
        desc=describe_completion(completion),
        label_y=_fmt(height / 2 + 4.5),
        chip_y=_fmt(height / 2 - 9),
    )


@dataclass(frozen=True)
class Column:
    x: str
    y: str
    width: str
    height: str
    title: str


@dataclass(frozen=True)
class Tick:
    position: str
    label: str
    anchor: str = "middle"


@dataclass(frozen=True)
class ColumnChart:
    uid: str
    width: int
    height: int
    left: int
    top: int
    right: int
    bottom: int
    columns: list[Column]
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    title: str
    desc: str
    rows: list[tuple[str, int]]  # the text equivalent: (period, signatures)

    @property
    def empty(self) -> bool:
        return not any(count for _label, count in self.rows)

    @property
    def middle_x(self) -> str:
        return _fmt((self.left + self.right) / 2)

    @property
    def middle_y(self) -> str:
        return _fmt((self.top + self.bottom) / 2)


def _nice_ceiling(value: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten at or above value (at least 1)."""
    if value <= 1:
        return 1
    power = 10 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= value)


def _period(bucket, unit: str) -> str:
    if unit == "day":
        return written_date(bucket.start, "j M Y")
    if unit == "month":
        return written_date(bucket.start, "F Y")
    return _("%(start)s to %(end)s") % {
        "start": written_date(bucket.start, "j M"),
        "end": written_date(bucket.end, "j M Y"),
    }


def signatures_chart(
    uid: str, signatures: SignatureTimeline, *, title: str, width: int = 640, height: int = 200
) -> ColumnChart:
    """Columns of signatures per day (week, month), with a labelled scale and dates."""
    left, top, right, bottom = 44, 12, width - 8, height - 30
    buckets = signatures.buckets
    peak = _nice_ceiling(max((b.count for b in buckets), default=0))
    slot = (right - left) / max(len(buckets), 1)
    gap = min(2.0, slot * 0.2)
    columns = []
    for index, bucket in enumerate(buckets):
        if not bucket.count:
            continue
        bar = (bottom - top) * bucket.count / peak
        period = _period(bucket, signatures.unit)
        column_width = min(max(slot - gap, 1), MAX_COLUMN_WIDTH)
        columns.append(
            Column(
                x=_fmt(left + index * slot + (slot - column_width) / 2),
                y=_fmt(bottom - bar),
                width=_fmt(column_width),
                height=_fmt(bar),
                title=ngettext(
                    "%(period)s: %(n)d signature", "%(period)s: %(n)d signatures", bucket.count
                )
                % {"period": period, "n": bucket.count},
            )
        )
    y_ticks = [
        Tick(_fmt(bottom - (bottom - top) * value / peak), str(value), "end")
        for value in sorted({0, peak // 2 if peak % 2 == 0 else peak, peak})
    ]
    x_ticks = []
    if buckets:
        every = max(1, math.ceil(len(buckets) / 6))
        for index in range(0, len(buckets), every):
            label = written_date(
                buckets[index].start, "j M" if signatures.unit != "month" else "M Y"
            )
            x_ticks.append(Tick(_fmt(left + (index + 0.5) * slot), label))
    unit = {"day": _("day"), "week": _("week"), "month": _("month")}[signatures.unit]
    desc = ngettext(
        "%(total)d signature from %(since)s to %(until)s, counted per %(unit)s; peak %(peak)d.",
        "%(total)d signatures from %(since)s to %(until)s, counted per %(unit)s; peak %(peak)d.",
        signatures.total,
    ) % {
        "total": signatures.total,
        "since": written_date(signatures.since, "j M Y"),
        "until": written_date(signatures.until, "j M Y"),
        "unit": unit,
        "peak": max((b.count for b in buckets), default=0),
    }
    return ColumnChart(
        uid=uid,
        width=width,
        height=height,
        left=left,
        top=top,
        right=right,
        bottom=bottom,
        columns=columns,
        y_ticks=y_ticks,
        x_ticks=x_ticks,
        title=title,
        desc=desc,
        rows=[(_period(b, signatures.unit), b.count) for b in buckets],
    )

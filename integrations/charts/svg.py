"""Inline SVG drawn from buckets, as strings: no script, no stylesheet, readable without
JavaScript. Every text is escaped; every chart has ``role="img"``, a ``<title>`` and a
``<desc>`` summarising it, and each bucket a hover ``<title>`` with its numbers.

Colours are attributes (an inline SVG takes no admin stylesheet). Text uses
``currentColor``, so it follows the admin's light or dark theme at the theme's own
contrast; the lines and bars are at least 3:1 against both themes' backgrounds (WCAG
1.4.11), and p95 is dashed, so the two lines differ without colour too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from .periods import Bucket, Period

WIDTH, HEIGHT = 640, 180
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 16, 26
# Contrast on white / on the dark theme's #121212: 4.98/3.76, 4.60/4.08, 4.98/3.76.
P50_COLOUR, P95_COLOUR, FAIL_COLOUR, GRID_COLOUR = "#417690", "#b85c00", "#d32f2f", "#8888"
SPARK_WIDTH, SPARK_HEIGHT = 120, 24


def milliseconds(value: float | None) -> str:
    if value is None:
        return "–"
    if value >= 1000:
        return f"{value / 1000:.2f} s"
    return f"{value:.0f} ms"


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above ``value`` (axis top)."""
    if value <= 0:
        return 1.0
    step = 1.0
    while step * 10 <= value:
        step *= 10
    while step > value:
        step /= 10
    for factor in (1, 2, 5, 10):
        if step * factor >= value:
            return step * factor
    return step * 10  # pragma: no cover - the loop above always returns


def when(bucket: Bucket, fmt: str) -> str:
    return timezone.localtime(bucket.start).strftime(fmt)


def _frame(
    chart_id: str, title: str, desc: str, body: Sequence[str], width: int, height: int
) -> SafeString:
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" '
        f'aria-labelledby="{chart_id}-title" aria-describedby="{chart_id}-desc" '
        f'font-family="sans-serif" font-size="11">'
        f'<title id="{chart_id}-title">{escape(title)}</title>'
        f'<desc id="{chart_id}-desc">{escape(desc)}</desc>{"".join(body)}</svg>'
    )
    return mark_safe(svg)  # noqa: S308 - every text above went through escape()


def _axes(
    buckets: Sequence[Bucket], period: Period, top: float, label: Callable[[float], str]
) -> list[str]:
    """Grid lines with y labels at 0, half and top; x labels every tick_every buckets."""
    plot_height = HEIGHT - TOP - BOTTOM
    parts = []
    for fraction in (0.0, 0.5, 1.0):
        y = TOP + plot_height * (1 - fraction)
        parts.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" '
            f'stroke="{GRID_COLOUR}" stroke-width="1"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" fill="currentColor">'
            f"{escape(label(top * fraction))}</text>"
        )
    slot = (WIDTH - LEFT - RIGHT) / max(len(buckets), 1)
    for n, bucket in enumerate(buckets):
        if n % period.tick_every == 0:
            parts.append(
                f'<text x="{LEFT + slot * n:.1f}" y="{HEIGHT - 8}" fill="currentColor">'
                f"{escape(when(bucket, period.tick_format))}</text>"
            )
    return parts


def _hover(buckets: Sequence[Bucket], period: Period, text: Callable[[Bucket], str]
           ) -> list[str]:
    """A transparent column per bucket whose <title> the browser shows on hover."""
    slot = (WIDTH - LEFT - RIGHT) / max(len(buckets), 1)
    fmt = "%Y-%m-%d %H:%M" if period.width < 86400 else "%Y-%m-%d"
    return [
        f'<rect x="{LEFT + slot * n:.1f}" y="{TOP}" width="{slot:.1f}" '
        f'height="{HEIGHT - TOP - BOTTOM}" fill="transparent">'
        f"<title>{escape(when(bucket, fmt))}: {escape(text(bucket))}</title></rect>"
        for n, bucket in enumerate(buckets)
    ]


def _path(points: Sequence[tuple[float, float] | None]) -> str:
    """An SVG path through the points; a gap (None) lifts the pen."""
    commands, pen_down = [], False
    for point in points:
        if point is None:
            pen_down = False
            continue
        commands.append(f"{'L' if pen_down else 'M'}{point[0]:.1f} {point[1]:.1f}")
        pen_down = True
    return " ".join(commands)


def latency(buckets: Sequence[Bucket], period: Period, chart_id: str, name: str
            ) -> SafeString:
    """Two lines, p50 and p95, one point per bucket with calls."""
    measured = [b for b in buckets if b.p95 is not None]
    top = nice_ceiling(max((b.p95 or 0.0 for b in measured), default=0.0))
    plot_height = HEIGHT - TOP - BOTTOM
    slot = (WIDTH - LEFT - RIGHT) / max(len(buckets), 1)
    body = _axes(buckets, period, top, milliseconds)
    for attribute, colour, dash in (("p50", P50_COLOUR, ""), ("p95", P95_COLOUR, "4 3")):
        points: list[tuple[float, float] | None] = []
        for n, bucket in enumerate(buckets):
            value = getattr(bucket, attribute)
            points.append(
                None if value is None
                else (LEFT + slot * (n + 0.5), TOP + plot_height * (1 - value / top))
            )
        dashes = f' stroke-dasharray="{dash}"' if dash else ""
        body.append(f'<path d="{_path(points)}" fill="none" stroke="{colour}" '
                    f'stroke-width="2"{dashes}/>')
        body.extend(f'<circle cx="{p[0]:.1f}" cy="{p[1]:.1f}" r="2" fill="{colour}"/>'
                    for p in points if p is not None)
    body.append(
        f'<text x="{WIDTH - RIGHT}" y="11" text-anchor="end" fill="currentColor">'
        f'<tspan fill="{P50_COLOUR}">—</tspan> p50  <tspan fill="{P95_COLOUR}">- -</tspan> p95'
        "</text>"
    )
    body.extend(_hover(buckets, period, lambda b: (
        f"p50 {milliseconds(b.p50)}, p95 {milliseconds(b.p95)}, {b.calls:,} calls"
        if b.calls else "no calls")))
    if measured:
        peak = max(measured, key=lambda b: b.p95 or 0.0)
        desc = (
            f"p50 between {milliseconds(min(b.p50 or 0.0 for b in measured))} and "
            f"{milliseconds(max(b.p50 or 0.0 for b in measured))}; p95 peaked at "
            f"{milliseconds(peak.p95)} ({when(peak, '%Y-%m-%d %H:%M')}); "
            f"{sum(b.calls for b in buckets):,} calls."
        )
    else:
        desc = "No calls logged in this period."
    return _frame(chart_id, f"{name}: latency, {period.label}", desc, body, WIDTH, HEIGHT)


def failures(buckets: Sequence[Bucket], period: Period, chart_id: str, name: str
             ) -> SafeString:
    """One bar per bucket: the calls that failed."""
    top = nice_ceiling(max((b.failures for b in buckets), default=0))
    plot_height = HEIGHT - TOP - BOTTOM
    slot = (WIDTH - LEFT - RIGHT) / max(len(buckets), 1)
    body = _axes(buckets, period, top, lambda v: f"{v:g}")
    for n, bucket in enumerate(buckets):
        if bucket.failures:
            height = plot_height * bucket.failures / top
            body.append(
                f'<rect x="{LEFT + slot * n + 1:.1f}" y="{TOP + plot_height - height:.1f}" '
                f'width="{max(slot - 2, 1):.1f}" height="{height:.1f}" fill="{FAIL_COLOUR}"/>'
            )
    body.append(
        f'<text x="{WIDTH - RIGHT}" y="11" text-anchor="end" fill="currentColor">'
        f'<tspan fill="{FAIL_COLOUR}">■</tspan> failed calls</text>'
    )
    body.extend(_hover(buckets, period, lambda b: f"{b.failures:,} of {b.calls:,} calls failed"))
    total, failed = sum(b.calls for b in buckets), sum(b.failures for b in buckets)
    if failed:
        worst = max(buckets, key=lambda b: b.failures)
        desc = (
            f"{failed:,} of {total:,} calls failed; most in one bucket: {worst.failures:,} "
            f"({when(worst, '%Y-%m-%d %H:%M')})."
        )
    else:
        desc = f"No failed calls ({total:,} calls)."
    return _frame(chart_id, f"{name}: failures, {period.label}", desc, body, WIDTH, HEIGHT)


def sparkline(buckets: Sequence[Bucket]) -> SafeString:
    """A changelist row's last 24 h: the p95 line, a red tick under each hour with a
    failure. Titled with its totals, for hover and screen readers."""
    total, failed = sum(b.calls for b in buckets), sum(b.failures for b in buckets)
    peak = max((b.p95 for b in buckets if b.p95 is not None), default=None)
    label = (
        f"Last 24 hours: {total:,} calls, {failed:,} failed, p95 up to {milliseconds(peak)}"
        if total else "Last 24 hours: no calls"
    )
    top, height = nice_ceiling(peak or 0.0), SPARK_HEIGHT - 5
    slot = SPARK_WIDTH / max(len(buckets), 1)
    points = [
        None if b.p95 is None else (slot * (n + 0.5), 1 + (height - 1) * (1 - b.p95 / top))
        for n, b in enumerate(buckets)
    ]
    body = [f'<title>{escape(label)}</title>']
    if any(points):
        body.append(f'<path d="{_path(points)}" fill="none" stroke="{P50_COLOUR}" '
                    'stroke-width="1.5"/>')
    else:  # an empty box would read as "not loaded"
        body.append(f'<text x="0" y="{SPARK_HEIGHT - 8}" font-family="sans-serif" '
                    'font-size="11" fill="currentColor" opacity="0.7">no calls</text>')
    body.extend(
        f'<rect x="{slot * n:.1f}" y="{SPARK_HEIGHT - 3}" width="{max(slot - 1, 1):.1f}" '
        f'height="3" fill="{FAIL_COLOUR}"/>'
        for n, b in enumerate(buckets) if b.failures
    )
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{SPARK_WIDTH}" '
        f'height="{SPARK_HEIGHT}" viewBox="0 0 {SPARK_WIDTH} {SPARK_HEIGHT}" '
        f'aria-label="{escape(label)}">{"".join(body)}</svg>'
    )
    return mark_safe(svg)  # noqa: S308 - the only text is escaped

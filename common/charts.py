"""Server-rendered SVG bar charts for admin pages: no script, nothing fetched at run time."""

from collections.abc import Callable, Sequence
from decimal import Decimal

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

WIDTH, HEIGHT, PAD = 640, 200, 28


def bar_chart(
    points: Sequence[tuple[str, Decimal | int]],
    *,
    title: str,
    unit: str = "",
    shown: Callable[[Decimal | int], str] | None = None,
) -> SafeString:
    """Bars labelled underneath, each with its value in a tooltip; an empty series says so.
    `shown` writes a value as people read it (money: common.money.money_format)."""
    shown = shown or (lambda value: f"{value}{unit}")
    if not points:
        return format_html('<p class="chart-empty">{}: nothing yet.</p>', title)
    top = max((value for _, value in points), default=0) or 1
    slot = (WIDTH - 2 * PAD) / len(points)
    bar = max(slot * 0.7, 1)
    label_every = max(1, len(points) // 12)
    rows = []
    for i, (label, value) in enumerate(points):
        height = float(value) / float(top) * (HEIGHT - 2 * PAD) if value > 0 else 0
        x = PAD + i * slot + (slot - bar) / 2
        y = HEIGHT - PAD - height
        written = label if i % label_every == 0 else ""
        rows.append(
            (
                f"{x:.1f}",
                f"{y:.1f}",
                f"{bar:.1f}",
                f"{height:.1f}",
                f"{label}: {shown(value)}",
                f"{x + bar / 2:.1f}",
                HEIGHT - PAD + 14,
                written,
            )
        )
    bars = format_html_join(
        "",
        '<g><rect x="{}" y="{}" width="{}" height="{}" fill="#417690">'
        "<title>{}</title></rect>"
        '<text x="{}" y="{}" font-size="10" text-anchor="middle">{}</text></g>',
        rows,
    )
    return format_html(
        '<figure class="chart"><figcaption>{}</figcaption>'
        '<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{}" '
        'viewBox="0 0 {} {}" width="{}" height="{}">'
        '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#999"/>'
        '<text x="{}" y="{}" font-size="10">{}</text>{}</svg></figure>',
        title,
        title,
        WIDTH,
        HEIGHT,
        WIDTH,
        HEIGHT,
        PAD,
        HEIGHT - PAD,
        WIDTH - PAD,
        HEIGHT - PAD,
        2,
        PAD - 10,
        shown(top),
        bars,
    )

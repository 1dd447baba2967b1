"""The SVG chart: one bar per point, heights in proportion, labels escaped."""

import re
from decimal import Decimal

from common.charts import HEIGHT, PAD, bar_chart


def heights(svg: str) -> list[float]:
    return [float(h) for h in re.findall(r'<rect [^>]*height="([\d.]+)"', svg)]


def test_bars_are_in_proportion_to_their_values():
    svg = bar_chart(
        [("2026-01", Decimal("10")), ("2026-02", Decimal("5")), ("2026-03", 0)], title="t"
    )
    tallest = HEIGHT - 2 * PAD
    assert heights(svg) == [tallest, tallest / 2, 0]
    assert "2026-02: 5" in svg


def test_labels_are_escaped_and_an_empty_series_says_so():
    assert "&lt;b&gt;" in bar_chart([("<b>", 1)], title="x")
    assert "nothing yet" in bar_chart([], title="Rewards per month")

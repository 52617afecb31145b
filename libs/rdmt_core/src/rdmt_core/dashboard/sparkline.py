"""Small trend plots as inline SVG: a line through a metric's values over time, the latest point in its status colour.

The detector page shows dozens of them; drawn here as a few hundred bytes of SVG each (no JavaScript), they
cost nothing to render. The full interactive trend (Bokeh) is one click away.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .style import STATUS_LINE, escape

WIDTH, HEIGHT, PAD = 260, 90, 6


def sparkline(title: str, status: str, frame: pd.DataFrame, href: str) -> str:
    """An SVG figure of ``frame`` (file_time, value), oldest first, with its title, range and latest value."""
    t = pd.to_datetime(frame.file_time).astype("int64").to_numpy(dtype=float)
    v = frame.value.to_numpy(dtype=float)
    keep = np.isfinite(v)
    t, v = t[keep], v[keep]
    body = ""
    if v.size:
        t0, t1 = t.min(), t.max()
        lo, hi = v.min(), v.max()
        span_t = t1 - t0 or 1.0
        span_v = hi - lo or (abs(hi) or 1.0)
        x = PAD + (t - t0) / span_t * (WIDTH - 2 * PAD) if t1 > t0 else np.full(t.size, WIDTH / 2)
        y = HEIGHT - PAD - (v - lo) / span_v * (HEIGHT - 2 * PAD) if hi > lo else np.full(v.size, HEIGHT / 2)
        points = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(x, y, strict=True))
        body = (
            f'<polyline points="{points}" fill="none" stroke="#455a64" stroke-width="1.5"/>'
            + "".join(f'<circle cx="{a:.1f}" cy="{b:.1f}" r="2" fill="#455a64"/>' for a, b in zip(x, y, strict=True))
            + f'<circle cx="{x[-1]:.1f}" cy="{y[-1]:.1f}" r="4.5" fill="{STATUS_LINE.get(status, "#607d8b")}"/>'
        )
        caption = f"{v[-1]:.4g} (range {lo:.4g} to {hi:.4g}, {v.size} files)"
    else:
        caption = "no value"
    return (
        f'<figure class="spark"><a href="{escape(href)}"><figcaption><b>{escape(title)}</b> {escape(caption)}'
        f'</figcaption><svg width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)} over time">'
        f'<rect x="0.5" y="0.5" width="{WIDTH - 1}" height="{HEIGHT - 1}" fill="#fafafa" stroke="#cfd8dc"/>'
        f"{body}</svg></a></figure>"
    )

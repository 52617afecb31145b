"""The dashboard's interactive plots, drawn with Bokeh and embedded as a script and a div.

Bokeh (as JWQL uses) renders in the browser from a JSON document: zoom, pan, hover and saving a PNG
work without a round trip, and its JavaScript is served by the dashboard itself (no CDN).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from bokeh.embed import components
from bokeh.layouts import row
from bokeh.models import ColorBar, ColumnDataSource, HoverTool, LinearColorMapper, Span
from bokeh.palettes import Category10_10, Viridis256
from bokeh.plotting import figure
from bokeh.settings import settings

from .style import STATUS_LINE

# The figures are built by this code, the same every time: Bokeh's validation of each document (about a third of
# the time of a trend page) finds nothing to say.
settings.perform_document_validation.set_value(False)


TOOLS = "pan,wheel_zoom,box_zoom,reset,save"


def _status_colour(status: str) -> str:
    return STATUS_LINE.get(status, "#607d8b")


def trend_figure(frame: pd.DataFrame, title: str, unit: str, releases: list[str]):
    """The trend of one metric: one panel per release side by side (x linked), one line per detector.

    Points are filled with their status colour; the mission and SOC limits are dashed lines (per file,
    as a cell's limit may change with the configuration).
    """
    panels = []
    detectors = sorted(set(frame.detector))
    colours = {d: Category10_10[i % 10] for i, d in enumerate(detectors)}
    x_range = None
    for release in releases:
        mine = frame[frame.release == release]
        kwargs = {"x_range": x_range} if x_range is not None else {}
        fig = figure(
            title=f"release {release}" if len(releases) > 1 else f"{title}, release {release}",
            x_axis_type="datetime",
            width=610 if len(releases) > 1 else 1000,
            height=420,
            tools=TOOLS,
            active_scroll="wheel_zoom",
            name=f"trend-{release}",
            **kwargs,
        )
        x_range = fig.x_range
        fig.xaxis.axis_label = "file time (useafter / exposure start)"
        fig.yaxis.axis_label = unit or "value"
        point_renderers, limit_renderers = [], []
        for detector in detectors:
            d = mine[mine.detector == detector].sort_values("file_time")
            if d.empty:
                continue
            source = ColumnDataSource(
                {
                    "t": pd.to_datetime(d.file_time).dt.tz_localize(None).to_numpy(),
                    "when": pd.to_datetime(d.file_time).dt.strftime("%Y-%m-%d %H:%M:%S").to_list(),
                    "value": d.value.to_numpy(dtype=float),
                    "status": d.status.replace("", "none").to_list(),
                    "failing": d.failing.to_list(),
                    "colour": [_status_colour(s) for s in d.status],
                    "detector": [detector] * len(d),
                    "file_key": d.file_key.to_list(),
                }
            )
            fig.line("t", "value", source=source, color=colours[detector], line_width=1.5, legend_label=detector)
            points = fig.scatter(
                "t",
                "value",
                source=source,
                size=9,
                fill_color="colour",
                line_color=colours[detector],
                line_width=2,
                legend_label=detector,
            )
            point_renderers.append(points)
            fig.add_tools(
                HoverTool(
                    renderers=[points],
                    tooltips=[
                        ("detector", "@detector"),
                        ("time", "@when"),
                        ("value", "@value{0.[0000]}"),
                        ("status", "@status"),
                        ("failing", "@failing"),
                        ("file", "@file_key"),
                    ],
                )
            )
            for column, dash, label in (
                ("mission_limit", "dashed", "mission limit"),
                ("soc_limit", "dotted", "SOC limit"),
            ):
                limits = d[column].to_numpy(dtype=float)
                if np.isfinite(limits).any():
                    step = fig.step(
                        source.data["t"],
                        limits,
                        mode="after",
                        color="#d50000" if column == "mission_limit" else "#f59f00",
                        line_dash=dash,
                        line_width=2,
                        legend_label=label,
                    )
                    limit_renderers.append((step, float(np.nanmax(limits))))
        values = mine.value.to_numpy(dtype=float)
        values = values[np.isfinite(values)]
        if values.size:
            # the axis fits the values, and the limits close enough to them; a far limit is named, not drawn to scale
            low, high = float(values.min()), float(values.max())
            span = max(high - low, abs(high) * 0.1, 1e-12)
            near = [r for r, v in limit_renderers if low - 3 * span <= v <= high + 3 * span]
            far = sorted({v for r, v in limit_renderers if not low - 3 * span <= v <= high + 3 * span})
            fig.y_range.renderers = point_renderers + near
            if far:
                fig.title.text += f"; limits {', '.join(f'{v:.4g}' for v in far)} off the scale"
        if fig.legend:
            fig.legend.location = "top_left"
            fig.legend.click_policy = "hide"
        panels.append(fig)
    return components(row(*panels) if len(panels) > 1 else panels[0])


def superpixel_figures(values: np.ndarray, status: np.ndarray, ratio: np.ndarray | None, title: str, ratio_title: str):
    """The 32 x 32 super-pixel map (row 0 at the bottom) and, if given, the ratio to the previous file."""
    grid = 32
    rows, cols = np.divmod(np.arange(grid * grid), grid)
    panels = []
    for data, name, palette in ((values, title, Viridis256), (ratio, ratio_title, "RdBu11")):
        if data is None:
            continue
        data = np.asarray(data, dtype=float)
        finite = data[np.isfinite(data)]
        if finite.size:
            low, high = float(finite.min()), float(finite.max())  # the full range: an anomaly keeps its colour
            if name == ratio_title:
                low, high = np.percentile(finite, [1, 99])
                spread = max(abs(high - 1), abs(1 - low), 0.05)
                low, high = 1 - spread, 1 + spread
            elif high == low:
                low, high = low - 0.5, high + 0.5
        else:
            low, high = 0.0, 1.0
        mapper = LinearColorMapper(
            palette=palette, low=float(low), high=float(high), nan_color="#bdbdbd", low_color=None, high_color=None
        )
        if name == ratio_title:  # beyond the range (and a value from or to 0): the ends of the palette
            data = np.where(np.isposinf(data), high * 10, np.where(np.isneginf(data), low - 10, data))
        source = ColumnDataSource(
            {
                "x": cols + 0.5,
                "y": rows + 0.5,
                "cell": np.arange(grid * grid),
                "value": data,
                "status": [s or "none" for s in status],
                "edge": [{"fail": "#d50000", "caution": "#f59f00"}.get(s, None) or "rgba(0,0,0,0)" for s in status],
            }
        )
        fig = figure(
            title=name,
            width=470,
            height=430,
            x_range=(0, grid),
            y_range=(0, grid),
            tools=TOOLS,
            match_aspect=True,
            name="map",
        )
        fig.rect(
            "x",
            "y",
            width=1,
            height=1,
            source=source,
            fill_color={"field": "value", "transform": mapper},
            line_color="edge",
            line_width=2,
        )
        fig.add_tools(HoverTool(tooltips=[("super-pixel", "@cell"), ("value", "@value"), ("status", "@status")]))
        fig.add_layout(ColorBar(color_mapper=mapper, width=10), "right")
        fig.xaxis.axis_label = "column (amplifier − 1)"
        fig.yaxis.axis_label = "row"
        if name == ratio_title:
            fig.add_layout(Span(location=0, dimension="width", line_alpha=0))
        panels.append(fig)
    return components(row(*panels))

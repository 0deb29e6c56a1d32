"""Pure plotting functions of the explorer: numpy arrays in, plotly figures out (no Streamlit import here).

Every 2-D view uses the plane coordinates of the page's view (a 2-D model's data coordinates, or a
projection of a D-dimensional one, whose axis titles `AxisTitles` name), equal aspect and explicit axis
ranges (`Bounds`), so that panels drawn side by side share their axes exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.colors import get_colorscale, qualitative, sample_colorscale
from plotly.subplots import make_subplots

Bounds = tuple[tuple[float, float], tuple[float, float]]
#: Titles of a view's horizontal and vertical axes (column names, "PC1 (40% of variance)"); None: untitled.
AxisTitles = tuple[str, str] | None

DATA_COLOR = "rgba(120, 120, 120, 0.35)"
SAMPLE_COLOR = "#1f5fbf"
SOURCE_COLOR = "#e07b00"
ARROW_COLOR = "rgba(20, 20, 20, 0.75)"
PROBE_COLOR = "#d62728"
PALETTE = ("#1f5fbf", "#d62728", "#2ca02c", "#9467bd", "#e07b00", "#17becf")
#: Colours of a conditional model's classes (cycled past 24 classes).
CLASS_PALETTE: tuple[str, ...] = tuple(qualitative.Dark24)
DENSITY_SCALE = "Blues"
ERROR_SCALE = "Reds"
MARGIN = {"l": 10, "r": 10, "t": 40, "b": 10}


@dataclass(frozen=True)
class Markers:
    """A set of points drawn on a 2-D panel (data, samples, a probe, weighted data points)."""

    points: np.ndarray
    name: str
    color: str | tuple[str, ...] = SAMPLE_COLOR  # one colour, or one per point
    size: float | np.ndarray = 5.0
    symbol: str = "circle"
    opacity: float = 1.0
    customdata: np.ndarray | None = None
    hover: str | None = None
    #: Drawn under the panel's heatmap: for invisible click targets, which then never need redrawing.
    below: bool = False


@dataclass(frozen=True)
class Panel:
    """One 2-D panel: an optional heatmap on the grid, an optional arrow field and marker overlays."""

    title: str
    heat: np.ndarray | None = None
    heat_name: str = ""
    colorscale: str = DENSITY_SCALE
    show_scale: bool = False
    arrows: tuple[np.ndarray, np.ndarray] | None = None
    markers: Sequence[Markers] = field(default_factory=tuple)
    #: Clip the colour scale at this quantile of the heatmap (a field near a singular t: a few huge values
    #: would otherwise paint everything else one colour); the colour bar then says what it clipped.
    clip: float | None = None


def bounds_of(*clouds: np.ndarray, pad: float = 0.12, quantile: float = 0.005) -> Bounds:
    """Square axis ranges that hold (almost) all points of the clouds, with padding; robust to outliers."""
    points = np.concatenate([np.asarray(c, dtype=np.float64).reshape(-1, 2) for c in clouds])
    points = points[np.isfinite(points).all(axis=1)]
    if len(points) == 0:
        return (-1.0, 1.0), (-1.0, 1.0)
    lo = np.quantile(points, quantile, axis=0)
    hi = np.quantile(points, 1.0 - quantile, axis=0)
    centre = (lo + hi) / 2.0
    half = max(float(np.max(hi - lo)) / 2.0, 1e-6) * (1.0 + pad)
    return (float(centre[0] - half), float(centre[0] + half)), (float(centre[1] - half), float(centre[1] + half))


def union_bounds(*boxes: Bounds) -> Bounds:
    """The smallest axis ranges holding every box."""
    return ((min(b[0][0] for b in boxes), max(b[0][1] for b in boxes)),
            (min(b[1][0] for b in boxes), max(b[1][1] for b in boxes)))


def quiver_segments(
    points: np.ndarray, vectors: np.ndarray, length: float, head: float = 0.35,
    units: tuple[float, float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """x, y arrays of arrows (tail, tip, barb, tip, barb, gap) for a single go.Scatter line trace.

    Arrow lengths are normalised: `length` for vectors at or above the 90th percentile of the norms,
    shrinking with the norm down to a quarter of it, so both direction and relative speed stay readable.
    `units`: for axes drawn at different scales, the data length of one unit of screen along x and y
    (relative); the arrows are drawn in screen units, so they keep their shape and length on the screen.
    """
    if units is not None:
        scaled = np.array(units, dtype=np.float64)
        xs, ys = quiver_segments(np.asarray(points, dtype=np.float64).reshape(-1, 2) / scaled,
                                 np.asarray(vectors, dtype=np.float64).reshape(-1, 2) / scaled, length / scaled[0],
                                 head)
        return xs * scaled[0], ys * scaled[1]
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    vectors = np.asarray(vectors, dtype=np.float64).reshape(-1, 2)
    norms = np.linalg.norm(vectors, axis=1)
    finite = np.isfinite(norms) & (norms > 0)
    reference = float(np.quantile(norms[finite], 0.9)) if finite.any() else 1.0
    scale = np.where(finite, np.clip(norms / max(reference, 1e-12), 0.25, 1.0) * length, 0.0)
    unit = np.where(finite[:, None], vectors / np.where(finite, norms, 1.0)[:, None], 0.0)
    tips = points + unit * scale[:, None]
    barb = head * scale[:, None]
    cos, sin = np.cos(np.pi / 7), np.sin(np.pi / 7)
    back = -unit
    left = np.stack([back[:, 0] * cos - back[:, 1] * sin, back[:, 0] * sin + back[:, 1] * cos], axis=1)
    right = np.stack([back[:, 0] * cos + back[:, 1] * sin, -back[:, 0] * sin + back[:, 1] * cos], axis=1)
    gap = np.full((len(points), 2), np.nan)
    stacked = np.stack([points, tips, tips + barb * left, tips, tips + barb * right, gap], axis=1)
    stacked = stacked[finite].reshape(-1, 2)
    return stacked[:, 0], stacked[:, 1]


def clicked_customdata(point: Mapping[str, Any]) -> list[float]:
    """The customdata of a clicked point as a list, whether the browser sent a list or an indexed object."""
    data = point.get("customdata")
    if isinstance(data, Mapping):  # a typed array arrives as {"0": .., "1": ..}
        return [float(data[k]) for k in sorted(data, key=int)]
    return [float(v) for v in data] if isinstance(data, Sequence) and not isinstance(data, str) else []


def _marker_trace(m: Markers, showlegend: bool = False) -> go.Scatter:
    """A scatter trace for a Markers overlay."""
    return go.Scatter(**_marker_spec(m, showlegend))


def clipped_range(values: np.ndarray, quantile: float) -> tuple[float, float, float]:
    """(low, high, largest) of a heatmap's colour scale clipped at `quantile` of its finite values."""
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if len(finite) == 0:
        return 0.0, 1.0, 1.0
    low, high = float(finite.min()), float(np.quantile(finite, quantile))
    return low, max(high, low + 1e-12), float(finite.max())


def _heat_trace(panel: Panel, xs: np.ndarray, ys: np.ndarray, colorbar_x: float, colorbar_len: float = 0.8,
                colorbar_y: float = 0.5) -> go.Heatmap:
    """The heatmap of a panel on the grid (xs along columns, ys along rows), its colours clipped if asked."""
    title, limits = panel.heat_name, {}
    z = np.asarray(panel.heat, dtype=np.float64)
    if panel.clip is not None:
        low, high, top = clipped_range(z, panel.clip)
        limits = {"zmin": low, "zmax": high, "zauto": False}
        if top > high * 1.02:
            title = f"{panel.heat_name}<br>clipped at {high:.3g}<br>(max {top:.3g})"
    return go.Heatmap(
        x=xs, y=ys, z=z.astype(np.float32), colorscale=panel.colorscale, showscale=panel.show_scale,
        name=panel.heat_name, zsmooth="fast", hoverinfo="skip",  # clicks and hovers go to the points drawn over it
        colorbar={"title": {"text": title, "side": "right"}, "x": colorbar_x, "len": colorbar_len, "y": colorbar_y,
                  "thickness": 12}, **limits,
    )


def _square_axes(fig: go.Figure, bounds: Bounds, n_cols: int, titles: AxisTitles = None, equal: bool = True) -> None:
    """Give every subplot the same ranges, linked zoom and equal aspect unless `equal` is False (two columns
    of different scales), and the axes' titles, if any."""
    (x0, x1), (y0, y1) = bounds
    for col in range(1, n_cols + 1):
        suffix = "" if col == 1 else str(col)
        fig.update_xaxes(range=[x0, x1], matches="x", showgrid=False, zeroline=False, row=1, col=col,
                         constrain="domain")
        fig.update_yaxes(range=[y0, y1], matches="y", showgrid=False, zeroline=False, row=1, col=col,
                         scaleanchor=f"x{suffix}" if equal else None, scaleratio=1.0 if equal else None,
                         constrain="domain")
        if titles is not None:
            fig.update_xaxes(title={"text": titles[0], "font": {"size": 12}}, row=1, col=col)
            if col == 1:
                fig.update_yaxes(title={"text": titles[1], "font": {"size": 12}}, row=1, col=col)


def screen_units(bounds: Bounds) -> tuple[float, float]:
    """Data length per unit of screen along x and y (relative to x) of a view drawn without equal aspect."""
    (x0, x1), (y0, y1) = bounds
    return 1.0, (y1 - y0) / (x1 - x0)


def _panel_traces(panel: Panel, xs: np.ndarray, ys: np.ndarray, arrow_length: float,
                  units: tuple[float, float] | None) -> list[Any]:
    """The traces of one panel, in a fixed order: its heatmap, its arrows, then its marker overlays."""
    traces: list[Any] = []
    if panel.heat is not None:
        traces.append(_heat_trace(panel, xs, ys, colorbar_x=1.0 + 0.01))
    if panel.arrows is not None:
        traces.append(go.Scatter(**_arrow_spec(panel.arrows, arrow_length, units)))
    traces.extend(_marker_trace(markers) for markers in panel.markers)
    return traces


def panels_figure(panels: Sequence[Panel], xs: np.ndarray, ys: np.ndarray, bounds: Bounds,
                  arrow_length: float, height: int = 430, titles: AxisTitles = None, equal: bool = True) -> go.Figure:
    """Panels side by side on shared axes: heatmaps on the (xs, ys) grid, arrows and marker overlays.

    `equal`: equal aspect (the default); False for axes of different scales, whose arrows are drawn in
    screen units (`screen_units`).
    """
    n = len(panels)
    fig = make_subplots(rows=1, cols=n, subplot_titles=[p.title for p in panels], horizontal_spacing=0.03)
    units = None if equal else screen_units(bounds)
    for col, panel in enumerate(panels, start=1):
        for trace in _panel_traces(panel, xs, ys, arrow_length, units):
            fig.add_trace(trace, row=1, col=col)
    _square_axes(fig, bounds, n, titles, equal)
    fig.update_annotations(font={"size": 13})
    fig.update_layout(height=height, margin={**MARGIN, "t": 60}, template="plotly_white", dragmode="pan",
                      clickmode="event+select", uirevision="fields")
    return fig


@dataclass(frozen=True)
class Bars:
    """One frame of the bar chart under animated panels: heights, a label per bar and the chart's title."""

    heights: np.ndarray
    labels: Sequence[str]
    title: str


@dataclass(frozen=True)
class Curves:
    """The curves under animated panels, the same in every frame (losses by t), with a marker at each frame's t."""

    xs: np.ndarray
    series: Sequence[tuple[str, np.ndarray, str]]  # (name, values, colour)
    title: str
    y_title: str
    log: bool = True


#: Colours of a heatmap in animated panels: its values fall into this many bands of equal width.
HEAT_LEVELS = 10
#: Width of the colour key's column beside the last panel, relative to a panel's.
KEY_WIDTH = 0.08


def _cell_edges(centres: np.ndarray) -> np.ndarray:
    """The edges of the cells centred on an evenly spaced grid's nodes [len + 1]."""
    centres = np.asarray(centres, dtype=np.float64)
    half = (centres[1] - centres[0]) / 2 if len(centres) > 1 else 0.5
    return np.concatenate([[centres[0] - half], (centres[:-1] + centres[1:]) / 2, [centres[-1] + half]])


def heat_bands(xs: np.ndarray, ys: np.ndarray, z: np.ndarray, low: float, high: float,
               levels: int = HEAT_LEVELS) -> list[tuple[np.ndarray, np.ndarray]]:
    """A heatmap [len(ys), len(xs)] as `levels` colour bands of [low, high]: for each band, the x and y of the
    outlines of its grid cells (rectangles separated by NaN gaps, equal neighbours merged; values outside the
    range fall in the first or last band, NaN in the first).

    Why: a scatter trace filled with one colour per band is one SVG path, and plotly moves scatter traces
    between frames without redrawing the whole figure (a heatmap needs that full redraw, which made the
    Fields page's t slider slow in the browser).
    """
    ex, ey = _cell_edges(xs), _cell_edges(ys)
    scaled = (np.asarray(z, dtype=np.float64) - low) / max(high - low, 1e-300) * levels
    band = np.clip(np.floor(np.nan_to_num(scaled, nan=0.0, posinf=levels, neginf=0.0)), 0, levels - 1).astype(int)
    n_rows, n_cols = band.shape
    # runs of equal cells along each row: (row, first column, end column, band)
    starts = np.ones((n_rows, n_cols), dtype=bool)
    starts[:, 1:] = band[:, 1:] != band[:, :-1]
    rows, first = np.nonzero(starts)
    ends = np.append(first[1:], n_cols)
    ends[np.append(rows[1:] != rows[:-1], True)] = n_cols  # a row's last run ends at its end
    kinds = band[rows, first]
    # a run continues the rectangle of the same run in the row below: sort by run, then by row
    key = (first * (n_cols + 1) + ends) * levels + kinds
    order = np.lexsort((rows, key))
    key, rows, first, ends, kinds = key[order], rows[order], first[order], ends[order], kinds[order]
    new = np.ones(len(key), dtype=bool)
    new[1:] = (key[1:] != key[:-1]) | (rows[1:] != rows[:-1] + 1)
    head = np.flatnonzero(new)
    last = np.append(head[1:], len(key)) - 1
    c0, c1, r0, r1, kind = first[head], ends[head], rows[head], rows[last] + 1, kinds[head]
    out = []
    for k in range(levels):
        mine = kind == k
        gap = np.full(int(mine.sum()), np.nan)
        x = np.stack([ex[c0[mine]], ex[c1[mine]], ex[c1[mine]], ex[c0[mine]], gap], axis=1).ravel()
        y = np.stack([ey[r0[mine]], ey[r0[mine]], ey[r1[mine]], ey[r1[mine]], gap], axis=1).ravel()
        out.append((x.astype(np.float32), y.astype(np.float32)))
    return out


def band_colors(colorscale: str, levels: int = HEAT_LEVELS) -> list[str]:
    """The colour of each band of `heat_bands`: the colour scale from its first to its last colour."""
    return list(sample_colorscale(get_colorscale(colorscale), list(np.linspace(0.0, 1.0, levels))))


def _colour_range(panel: Panel) -> tuple[float, float, float]:
    """(low, high, largest) of a panel's heatmap colours: clipped at its quantile if asked, else its span."""
    if panel.clip is not None:
        return clipped_range(np.asarray(panel.heat), panel.clip)
    finite = np.asarray(panel.heat, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if len(finite) == 0:
        return 0.0, 1.0, 1.0
    return float(finite.min()), max(float(finite.max()), float(finite.min()) + 1e-300), float(finite.max())


def _fill(x: np.ndarray, y: np.ndarray, colour: str) -> dict[str, Any]:
    """A scatter trace filling the rectangles outlined by x, y (NaN between them) with one colour."""
    return {"type": "scatter", "x": x, "y": y, "mode": "lines", "fill": "toself", "fillcolor": colour,
            "line": {"width": 0}, "hoverinfo": "skip", "showlegend": False}


def _text(x: Sequence[float], y: Sequence[float], text: Sequence[str], position: str | Sequence[str],
          size: int = 13) -> dict[str, Any]:
    """A scatter trace of text only (titles and labels that change with the frame), not clipped by its axes."""
    return {"type": "scatter", "x": list(x), "y": list(y), "mode": "text", "text": list(text),
            "textposition": position if isinstance(position, str) else list(position), "textfont": {"size": size},
            "cliponaxis": False, "hoverinfo": "skip", "showlegend": False}


def _arrow_spec(arrows: tuple[np.ndarray, np.ndarray], arrow_length: float,
                units: tuple[float, float] | None) -> dict[str, Any]:
    """The scatter trace (as a dict) of a panel's field arrows (`quiver_segments`)."""
    ax, ay = quiver_segments(arrows[0], arrows[1], arrow_length, units=units)
    return {"type": "scatter", "x": ax.astype(np.float32), "y": ay.astype(np.float32), "mode": "lines",
            "name": "field", "showlegend": False, "hoverinfo": "skip", "line": {"color": ARROW_COLOR, "width": 1.1}}


def _marker_spec(m: Markers, showlegend: bool = False) -> dict[str, Any]:
    """The scatter trace (as a dict) of a Markers overlay; customdata as plain lists, which clicks send back."""
    return {"type": "scatter", "x": m.points[:, 0], "y": m.points[:, 1], "mode": "markers", "name": m.name,
            "showlegend": showlegend, "marker": {"color": m.color, "size": m.size, "symbol": m.symbol,
                                                 "opacity": m.opacity, "line": {"width": 0}},
            "customdata": None if m.customdata is None else np.asarray(m.customdata).tolist(),
            "hovertemplate": m.hover or f"{m.name}<br>(%{{x:.2f}}, %{{y:.2f}})<extra></extra>",
            "selected": {"marker": {"opacity": m.opacity}}, "unselected": {"marker": {"opacity": m.opacity}}}


def _animated_traces(panel: Panel, xs: np.ndarray, ys: np.ndarray, bounds: Bounds, arrow_length: float,
                     units: tuple[float, float] | None) -> list[dict[str, Any]]:
    """One frame of a panel, bottom to top: its markers that lie below (invisible click targets), its heatmap
    as colour bands (the first band one rectangle under the grid), its arrows, its other markers and its title
    (a text trace: frames can change it)."""
    traces: list[dict[str, Any]] = [_marker_spec(m) for m in panel.markers if m.below]
    if panel.heat is not None:
        colours = band_colors(panel.colorscale)
        low, high, _ = _colour_range(panel)
        bands = heat_bands(xs, ys, panel.heat, low, high)
        ex, ey = _cell_edges(xs), _cell_edges(ys)
        traces.append(_fill(np.array([ex[0], ex[-1], ex[-1], ex[0]]), np.array([ey[0], ey[0], ey[-1], ey[-1]]),
                            colours[0]))
        traces.extend(_fill(x, y, colour) for (x, y), colour in zip(bands[1:], colours[1:], strict=True))
    if panel.arrows is not None:
        traces.append(_arrow_spec(panel.arrows, arrow_length, units))
    traces.extend(_marker_spec(m) for m in panel.markers if not m.below)
    (x0, x1), (_, y1) = bounds
    traces.append(_text([(x0 + x1) / 2], [y1], [panel.title], "top center"))
    return traces


def _key_traces(panel: Panel) -> list[dict[str, Any]]:
    """The colour key of a panel's heatmap: its bands stacked in a column (scatter fills, which frames leave in
    place), its range written beside them and its name under them, saying where the colours were clipped
    (a frame's text: the range changes with t)."""
    low, high, top = _colour_range(panel)
    title = panel.heat_name + (f"<br>clipped at {high:.3g}<br>(max {top:.3g})" if top > high * 1.02 else "")
    cells = [_fill(np.array([-0.5, 0.5, 0.5, -0.5]), np.array([k - 0.5, k - 0.5, k + 0.5, k + 0.5]), colour)
             for k, colour in enumerate(band_colors(panel.colorscale))]
    labels = _text([0.6, 0.6, 0.6, 1.0], [0.0, (HEAT_LEVELS - 1) / 2, HEAT_LEVELS - 1, -0.5],  # inside its axes
                   [f"{low:.3g}", f"{(low + high) / 2:.3g}", f"{high:.3g}", title],
                   ["middle right", "middle right", "middle right", "bottom center"], size=11)
    return [*cells, labels]


def _equal(a: Any, b: Any) -> bool:
    """Whether two trace specs are equal (dicts, lists and arrays compared by value)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.shape(a) == np.shape(b) and np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


#: What a frame replaces in a trace that changes (the rest, its style, stays as the figure drew it).
_FRAME_KEYS = ("x", "y", "text", "customdata", "marker")


def time_label(t: float) -> str:
    """A time as the t slider shows it: 0.5, 0.025, 1."""
    return f"{t:.3f}".rstrip("0").rstrip(".") or "0"


def slider_labels(times: np.ndarray) -> list[str]:
    """The t slider's tick labels: only the multiples of 0.1 (the fine steps near 0 and 1 would crowd)."""
    return [time_label(float(t)) if abs(10 * t - round(10 * t)) < 1e-3 else "" for t in times]


def animated_panels(frames: Sequence[Sequence[Panel]], times: np.ndarray, xs: np.ndarray, ys: np.ndarray,
                    bounds: Bounds, arrow_length: float, *, active: int = 0, bars: Sequence[Bars] | None = None,
                    curves: Curves | None = None, height: int = 430, titles: AxisTitles = None,
                    equal: bool = True) -> go.Figure:
    """Panels side by side at each of `times`, with plotly's own t slider (and Play) moving between them.

    Every frame's panels must have the same structure (the same heatmaps, arrows and overlays). The browser
    moves between frames without the server and without redrawing the figure (`redraw: False`, which only
    moves scatter and bar traces; a full redraw of five panels took most of a slider move in headless
    chromium): heatmaps are drawn as colour bands (`heat_bands`), titles are text traces, and a frame carries
    the traces that change plus the static ones drawn above them (plotly would otherwise stack them below).
    `bars` (one per frame, on a log axis fixed for all frames) and `curves` (with a marker at the frame's t)
    make a second row under the panels. The last panel's colour scale, if shown, is a key beside it. The
    slider labels only the multiples of 0.1. The figure opens on frame `active`.
    """
    n = len(frames[0])
    if any(p.show_scale for p in frames[0][:-1]):
        raise ValueError("only the last panel can show its colour scale")
    key = frames[0][-1].show_scale and frames[0][-1].heat is not None
    cols = n + key
    below = bars is not None or curves is not None
    rows = 2 if below else 1
    specs: list[list[dict[str, Any] | None]] = [[{} for _ in range(cols)]]
    if below:
        specs.append([{}, {"colspan": n - 1}, *([None] * (n - 2))] if n > 1 else [{}])
        specs[1].extend([None] * key)
    extra_titles = ["", _curves_title(curves) if curves else ""] if below else []
    fig = make_subplots(rows=rows, cols=cols, specs=specs, horizontal_spacing=0.03,
                        vertical_spacing=0.16 if below else 0.3, row_heights=[0.64, 0.36] if below else None,
                        column_widths=[1.0] * n + [KEY_WIDTH] * key,
                        subplot_titles=[""] * cols + extra_titles)
    units = None if equal else screen_units(bounds)
    bar_range = _bar_range(bars) if bars is not None else (0.0, 0.0)
    cells: list[tuple[int, int]] = []
    per_frame: list[list[dict[str, Any]]] = []
    for k, panels in enumerate(frames):
        traces: list[dict[str, Any]] = []
        where: list[tuple[int, int]] = []
        for col, panel in enumerate(panels, start=1):
            made = _animated_traces(panel, xs, ys, bounds, arrow_length, units)
            traces += made
            where += [(1, col)] * len(made)
        if key:
            made = _key_traces(panels[-1])
            traces += made
            where += [(1, cols)] * len(made)
        if bars is not None:
            traces += [_bar_spec(bars[k]), _text([(len(bars[k].heights) - 1) / 2], [10 ** (bar_range[1] - 1e-6)],
                                                 [bars[k].title], "top center")]
            where += [(2, 1)] * 2
        if curves is not None:
            traces.append(_time_marker(curves, float(times[k])))
            where.append((2, 2 if n > 1 else 1))
        if k and (len(traces) != len(per_frame[0]) or where != cells):
            raise ValueError("every frame's panels need the same heatmaps, arrows and overlays")
        cells = where
        per_frame.append(traces)
    changing = [any(not _equal(f[i], per_frame[0][i]) for f in per_frame[1:]) for i in range(len(cells))]
    # plotly draws a frame's traces over the subplot's others: the static traces above a changing one come too
    sent = [changing[i] or any(changing[j] and cells[j] == cells[i] for j in range(i)) for i in range(len(cells))]
    if curves is not None:
        _add_curves(fig, curves, col=2 if n > 1 else 1)
    start = len(fig.data)
    for spec, (row, col) in zip(per_frame[active], cells, strict=True):
        fig.add_trace(spec, row=row, col=col)
    if bars is not None:
        fig.update_xaxes(range=[-0.6, len(bars[active].heights) - 0.4], showticklabels=False, row=2, col=1)
        fig.update_yaxes(title="posterior weight w_i", row=2, col=1, **log_axis(*bar_range))
    if key:
        fig.update_xaxes(range=[-0.5, 2.5], visible=False, fixedrange=True, row=1, col=cols)
        fig.update_yaxes(range=[-0.5, HEAT_LEVELS - 0.5], visible=False, fixedrange=True, row=1, col=cols)
    _square_axes(fig, bounds, n, titles, equal)
    fig.update_annotations(font={"size": 13})
    names = [f"{float(t):.5f}" for t in times]
    indices = [start + i for i in range(len(cells)) if sent[i]]
    fig.frames = [go.Frame(name=name, traces=indices, data=[
        {"type": spec["type"], **({k: spec[k] for k in _FRAME_KEYS if k in spec} if changing[i] else {})}
        for i, spec in enumerate(traces) if sent[i]]) for name, traces in zip(names, per_frame, strict=True)]
    fig.update_layout(
        height=height + (260 if below else 0) + 60, margin={**MARGIN, "t": 60, "b": 100, "r": 60 if key else 10},
        template="plotly_white", dragmode="pan", clickmode="event+select", uirevision="fields",
        **time_controls(times, names, active=active, redraw=False, play_ms=250, top=58))
    return fig


def time_controls(times: np.ndarray, names: Sequence[str], *, active: int, redraw: bool, play_ms: int,
                  top: int) -> dict[str, Any]:
    """The layout's Play / Pause buttons and t slider (labelled at the multiples of 0.1) over frames `names` at
    `times`, under the chart (`top` pixels below it), the rail starting right of the buttons however wide the
    chart. `redraw` False moves only scatter and bar traces, without plotly's full redraw; heatmap frames need it.
    The figure itself says the frame's t (plotly's readout would repeat the slider's labels, blank between them)."""
    step_args = {"frame": {"duration": 0, "redraw": redraw}, "transition": {"duration": 0}, "mode": "immediate"}
    return {
        "updatemenus": [{
            "type": "buttons", "direction": "left", "x": 0.0, "y": 0.0, "xanchor": "left", "yanchor": "top",
            "pad": {"r": 8, "t": top}, "showactive": False,
            "buttons": [
                {"label": "▶ Play", "method": "animate",
                 "args": [None, {**step_args, "frame": {"duration": play_ms, "redraw": redraw}, "fromcurrent": True}]},
                {"label": "❚❚ Pause", "method": "animate", "args": [[None], step_args]},
            ],
        }],
        "sliders": [{
            "name": "t", "active": active, "x": 0.0, "len": 1.0, "y": 0.0, "yanchor": "top",
            "pad": {"t": top, "b": 0, "l": 150},
            "currentvalue": {"visible": False},
            "ticklen": 3, "minorticklen": 0, "font": {"size": 10},
            "steps": [{"label": label, "value": name, "method": "animate", "args": [[name], step_args]}
                      for label, name in zip(slider_labels(times), names, strict=True)],
        }],
    }


def _bar_range(bars: Sequence[Bars]) -> tuple[float, float]:
    """log10 of a log axis for every frame's bars (fixed: frames do not rescale axes); bars far below the
    largest weight of the flattest frame fall under it."""
    largest = [float(np.nanmax(b.heights)) for b in bars if len(b.heights) and np.nanmax(b.heights) > 0]
    low = np.log10(min(largest)) - 1.0 if largest else -3.0  # a decade under the flattest frame's largest weight
    return min(float(low), -0.5), 0.15


def _bar_spec(bars: Bars) -> dict[str, Any]:
    """One frame of the bars: ranked heights, each bar labelled (e.g. the data point's index)."""
    return {"type": "bar", "x": np.arange(len(bars.heights)), "y": np.asarray(bars.heights, dtype=np.float32),
            "text": list(bars.labels), "textposition": "outside", "cliponaxis": False, "textangle": -90,
            "constraintext": "none", "textfont": {"size": 10},  # one readable size (plotly shrinks each to fit)
            "marker": {"color": PROBE_COLOR}, "showlegend": False,
            "hovertemplate": "%{text}: w = %{y:.3f}<extra></extra>"}


def _curves_title(curves: Curves) -> str:
    """The curves' title with each series' name in its colour (a key that never covers a curve)."""
    names = " · ".join(f"<span style='color:{colour}'>━ {name}</span>" for name, _, colour in curves.series)
    return f"{curves.title}<br>{names}"


def _time_marker(curves: Curves, t: float) -> dict[str, Any]:
    """The vertical marker at t on the curves' panel."""
    low, high = _curve_range(curves)
    return {"type": "scatter", "x": [t, t], "y": [10 ** low, 10 ** high] if curves.log else [low, high],
            "mode": "lines", "showlegend": False, "hoverinfo": "skip", "line": {"color": PROBE_COLOR, "dash": "dot"}}


def _curve_range(curves: Curves) -> tuple[float, float]:
    """The curves' vertical range: log10 of their positive values (padded) on a log axis, else their span."""
    values = np.concatenate([np.asarray(v, dtype=np.float64) for _, v, _ in curves.series])
    values = values[np.isfinite(values) & ((values > 0) if curves.log else True)]
    if len(values) == 0:
        return (-1.0, 1.0) if curves.log else (0.0, 1.0)
    if curves.log:
        return float(np.log10(values.min())) - 0.15, float(np.log10(values.max())) + 0.15  # nothing cut off
    return float(values.min()), float(values.max())


def _add_curves(fig: go.Figure, curves: Curves, col: int) -> None:
    """The curves on the second row with readable log ticks (their names are in the panel's title)."""
    for name, values, colour in curves.series:
        fig.add_trace(go.Scatter(x=curves.xs, y=values, mode="lines+markers", name=name, showlegend=False,
                                 line={"color": colour, "width": 2}, marker={"size": 4}), row=2, col=col)
    low, high = _curve_range(curves)
    fig.update_xaxes(title="t", range=[0.0, 1.0], row=2, col=col)
    fig.update_yaxes(title=curves.y_title, row=2, col=col, **(log_axis(low, high) if curves.log else {}))


def log_axis(low: float, high: float) -> dict[str, Any]:
    """A log axis on [10^low, 10^high] with readable ticks: 1, 2, 5 per decade (fewer over many decades)."""
    decades = range(int(np.floor(low)), int(np.ceil(high)) + 1)
    mantissas = (1, 2, 5) if high - low <= 3 else (1,)
    ticks = [m * 10.0 ** d for d in decades for m in mantissas if low <= np.log10(m * 10.0 ** d) <= high]
    return {"type": "log", "range": [low, high], "tickvals": ticks, "ticktext": [f"{v:g}" for v in ticks]}


def class_color(index: int) -> str:
    """The colour of class `index` of a conditional model."""
    return CLASS_PALETTE[index % len(CLASS_PALETTE)]


def class_colors(labels: np.ndarray) -> tuple[str, ...]:
    """The colour of each point's class [n]."""
    return tuple(class_color(int(k)) for k in np.asarray(labels))


def class_markers(points: np.ndarray, labels: np.ndarray, names: Sequence[str], chosen: int | None, *,
                  size: float = 5.0, customdata: np.ndarray | None = None, hover: str | None = None,
                  faint: float = 0.25) -> list[Markers]:
    """A conditional model's data points [n, 2] coloured by class: the other classes' points in one faint
    overlay (each in its class's colour), then the `chosen` class's (if any) larger and opaque on top.

    Two overlays whatever the number of classes. `customdata` [n, k]: kept per point (clickable data point
    indices); `hover`: its hover template.
    """
    labels = np.asarray(labels)
    mine = labels == chosen if chosen is not None else np.zeros(len(labels), dtype=bool)
    extra = None if customdata is None else np.asarray(customdata)
    markers = []
    if (~mine).any():
        markers.append(Markers(points[~mine], "other classes" if chosen is not None else "data by class",
                               class_colors(labels[~mine]), size, opacity=faint if chosen is not None else 0.6,
                               customdata=None if extra is None else extra[~mine], hover=hover))
    if mine.any():
        assert chosen is not None
        markers.append(Markers(points[mine], f"class {names[chosen]}", class_color(chosen), size + 1.5,
                               opacity=0.95, customdata=None if extra is None else extra[mine], hover=hover))
    return markers


def guidance_samples(samples: Sequence[tuple[float, np.ndarray, float]], data: np.ndarray, labels: np.ndarray,
                     names: Sequence[str], chosen: int, bounds: Bounds, *, titles: AxisTitles = None,
                     equal: bool = True, height: int = 400) -> go.Figure:
    """Samples of one class at several guidance scales, side by side on shared axes.

    Args:
        samples: per subplot (w, samples [n, 2], label accuracy in [0, 1]), in plane coordinates.
        data, labels: the model's data points [m, 2] and their classes [m]: the chosen class's in grey, the
            other classes' faint in their colours, behind the samples (in the chosen class's colour).
        names, chosen: the class names and the index of the sampled class.
    """
    n = len(samples)
    labels = np.asarray(labels)
    fig = make_subplots(rows=1, cols=n, horizontal_spacing=0.03,
                        subplot_titles=[f"w = {w:g} · label accuracy {accuracy:.0%}" for w, _, accuracy in samples])
    mine = labels == chosen
    for col, (_, points, _) in enumerate(samples, start=1):
        first = col == 1
        layers = [Markers(data[~mine], "other classes' data", class_colors(labels[~mine]), 3.0, opacity=0.18),
                  Markers(data[mine], f"class {names[chosen]}'s data", DATA_COLOR, 3.0),
                  Markers(points, f"samples of {names[chosen]}", class_color(chosen), 3.5, opacity=0.75)]
        for group, layer in zip(("others", "class", "samples"), layers, strict=True):
            fig.add_trace(_marker_trace(layer, showlegend=first).update(legendgroup=group), row=1, col=col)
    _square_axes(fig, bounds, n, titles, equal)
    fig.update_annotations(font={"size": 13})
    fig.update_layout(height=height, margin={**MARGIN, "t": 50}, template="plotly_white",
                      legend={"orientation": "h", "y": -0.08, "x": 0.0})
    return fig


def scatter(points: np.ndarray, *, bounds: Bounds | None = None, data: np.ndarray | None = None,
            title: str = "", labels: tuple[str, str] = ("x", "y"), height: int = 360,
            name: str = "samples") -> go.Figure:
    """Points (optionally over the data in grey) with equal aspect: previews and sample plots."""
    fig = go.Figure()
    if data is not None:
        fig.add_trace(_marker_trace(Markers(data, "data", DATA_COLOR, 4.0), showlegend=True))
    fig.add_trace(_marker_trace(Markers(points, name, SAMPLE_COLOR, 4.0, opacity=0.7), showlegend=data is not None))
    # every point shown (skewed data keep their outliers in view), with the padding of the other views
    (x0, x1), (y0, y1) = bounds or bounds_of(points if data is None else np.concatenate([points, data]), quantile=0.0)
    fig.update_xaxes(range=[x0, x1], title=labels[0], constrain="domain")
    fig.update_yaxes(range=[y0, y1], title=labels[1], scaleanchor="x", scaleratio=1.0, constrain="domain")
    fig.update_layout(title=title, height=height, margin=MARGIN, template="plotly_white",
                      legend={"orientation": "h", "y": -0.15})
    return fig


def thumbnail(points: np.ndarray, height: int = 190) -> go.Figure:
    """A small, static picture of a model's samples for gallery cards (no axes, no interaction)."""
    fig = go.Figure(go.Scatter(x=points[:, 0], y=points[:, 1], mode="markers", hoverinfo="skip",
                               marker={"size": 3, "color": SAMPLE_COLOR, "opacity": 0.6}))
    (x0, x1), (y0, y1) = bounds_of(points, pad=0.08)
    fig.update_xaxes(visible=False, range=[x0, x1])
    fig.update_yaxes(visible=False, range=[y0, y1], scaleanchor="x", scaleratio=1.0)
    fig.update_layout(height=height, margin={"l": 0, "r": 0, "t": 0, "b": 0}, template="plotly_white",
                      showlegend=False)
    return fig


def _segments(paths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Polylines [T, n, 2] as x, y arrays for one line trace, NaN between paths."""
    t, n, _ = paths.shape
    padded = np.concatenate([paths, np.full((1, n, 2), np.nan)], axis=0)  # [T + 1, n, 2]
    flat = padded.transpose(1, 0, 2).reshape(-1, 2)
    return flat[:, 0], flat[:, 1]


def flow_animation(trajectory: np.ndarray, times: np.ndarray, bounds: Bounds, *, data: np.ndarray | None = None,
                   n_lines: int = 60, height: int = 520, start_frame: int = -1,
                   titles: AxisTitles = None, equal: bool = True,
                   classes: Sequence[Markers] | None = None) -> go.Figure:
    """Particles moving from the source (t = 0) to the data (t = 1), their trajectories, Play/Pause and a t slider.

    Args:
        trajectory: positions [T, n, 2] at `times` [T].
        bounds: axis ranges.
        data: data points drawn faintly behind the particles.
        n_lines: how many particles also show their whole trajectory.
        start_frame: the frame shown before Play (default: the last, the samples).
        titles: the axes' titles (a projection's labels), if any.
        equal: equal aspect (False for two columns of different scales).
        classes: the data drawn by class instead of `data` (a conditional model's, `class_markers`).
    """
    traj = np.round(np.asarray(trajectory, dtype=np.float64), 4)
    k = int(start_frame) % len(times)
    fig = go.Figure()
    if classes:
        for markers in classes:
            fig.add_trace(_marker_trace(markers, showlegend=True))
    else:
        background = data if data is not None else np.empty((0, 2))
        fig.add_trace(_marker_trace(Markers(background, "data", DATA_COLOR, 4.0), showlegend=data is not None))
    particles = len(fig.data) + 1
    lx, ly = _segments(traj[:, :n_lines])
    fig.add_trace(go.Scatter(x=lx, y=ly, mode="lines", name="trajectories", hoverinfo="skip",
                             line={"color": "rgba(31, 95, 191, 0.35)", "width": 1}))
    fig.add_trace(go.Scatter(x=traj[k, :, 0], y=traj[k, :, 1], mode="markers", name="particles x_t",
                             marker={"size": 5, "color": SAMPLE_COLOR, "opacity": 0.8}, hoverinfo="skip"))
    names = [f"{t:.2f}" for t in times]
    fig.frames = [go.Frame(name=name, traces=[particles], data=[go.Scatter(x=traj[i, :, 0], y=traj[i, :, 1])])
                  for i, name in enumerate(names)]
    frame_args = {"frame": {"duration": 60, "redraw": False}, "transition": {"duration": 0}, "mode": "immediate"}
    fig.update_layout(
        updatemenus=[{
            "type": "buttons", "direction": "left", "x": 0.0, "y": -0.14, "xanchor": "left", "yanchor": "top",
            "pad": {"r": 8, "t": 0}, "showactive": False,
            "buttons": [
                {"label": "▶ Play", "method": "animate", "args": [None, {**frame_args, "fromcurrent": False}]},
                {"label": "❚❚ Pause", "method": "animate",
                 "args": [[None], {"frame": {"duration": 0, "redraw": False}, "mode": "immediate"}]},
            ],
        }],
        sliders=[{
            "active": k, "x": 0.3, "len": 0.7, "y": -0.08, "yanchor": "top", "pad": {"t": 0, "b": 0},
            "currentvalue": {"prefix": "t = ", "font": {"size": 13, "color": "#333333"}, "xanchor": "left"},
            "font": {"color": "rgba(0, 0, 0, 0)"}, "ticklen": 3, "minorticklen": 0,
            "steps": [{"label": name, "method": "animate",
                       "args": [[name], {"frame": {"duration": 0, "redraw": False}, "mode": "immediate"}]}
                      for name in names],
        }],
    )
    (x0, x1), (y0, y1) = bounds
    fig.update_xaxes(range=[x0, x1], showgrid=False, zeroline=False, constrain="domain")
    fig.update_yaxes(range=[y0, y1], showgrid=False, zeroline=False, scaleanchor="x" if equal else None,
                     scaleratio=1.0 if equal else None, constrain="domain")
    if titles is not None:
        fig.update_xaxes(title={"text": titles[0], "font": {"size": 12}, "standoff": 4})
        fig.update_yaxes(title={"text": titles[1], "font": {"size": 12}})
    fig.update_layout(height=height, margin={"l": 10, "r": 10, "t": 30, "b": 120}, template="plotly_white",
                      legend={"orientation": "h", "y": 1.06, "x": 0.0})
    return fig


def histogram_density(points: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """A histogram of points [n, 2] as a density on the cells centred on the grid (xs, ys) [len(ys), len(xs)]."""
    def edges(centres: np.ndarray) -> np.ndarray:
        half = (centres[1] - centres[0]) / 2 if len(centres) > 1 else 0.5
        return np.concatenate([[centres[0] - half], (centres[:-1] + centres[1:]) / 2, [centres[-1] + half]])

    ex, ey = edges(np.asarray(xs, dtype=np.float64)), edges(np.asarray(ys, dtype=np.float64))
    counts, _, _ = np.histogram2d(points[:, 0], points[:, 1], bins=[ex, ey])
    area = np.outer(np.diff(ex), np.diff(ey))
    return (counts / max(len(points), 1) / area).T


def density_pair(samples_t: np.ndarray, exact_density: np.ndarray, xs: np.ndarray, ys: np.ndarray,
                 bounds: Bounds, t: float, height: int = 380, titles: AxisTitles = None,
                 projected: bool = False, equal: bool = True, class_name: str | None = None,
                 guidance: float = 0.0) -> go.Figure:
    """Histogram of the model's particles x_t beside the exact p_t of the data, on shared axes.

    `projected`: the particles and the density are those of a projection of D-dimensional ones.
    `class_name`: the particles are a conditional model's of that class at guidance w, and the density is
    the exact p_t(x | y) of the class's points.
    """
    titles_of = ([f"model: projected x_t, t = {t:.2f}", f"exact projected p_t, t = {t:.2f}"] if projected else
                 [f"model: histogram of x_t, t = {t:.2f}", f"exact p_t of the data, t = {t:.2f}"])
    if class_name is not None:  # two lines: they share a column with the particles
        kind = "projected " if projected else ""
        titles_of = [f"model: {kind}x_t of y = {class_name}<br>w = {guidance:g}, t = {t:.2f}",
                     f"exact {kind}p_t(x | y = {class_name})<br>t = {t:.2f}"]
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.04, subplot_titles=titles_of)
    (x0, x1), (y0, y1) = bounds
    nbins = len(xs)
    fig.add_trace(go.Histogram2d(
        x=samples_t[:, 0], y=samples_t[:, 1], colorscale=DENSITY_SCALE, showscale=False,
        histnorm="probability density", hovertemplate="density %{z:.3g}<extra></extra>",
        xbins={"start": x0, "end": x1, "size": (x1 - x0) / nbins},
        ybins={"start": y0, "end": y1, "size": (y1 - y0) / nbins}), row=1, col=1)
    fig.add_trace(go.Heatmap(x=xs, y=ys, z=exact_density, colorscale=DENSITY_SCALE, showscale=False, zsmooth="best",
                             hovertemplate="p_t %{z:.3g}<extra></extra>"), row=1, col=2)
    _square_axes(fig, bounds, 2, titles, equal)
    fig.update_layout(height=height, margin={**MARGIN, "t": 60} if class_name is not None else MARGIN,
                      template="plotly_white")
    return fig


def loss_curve(losses: Sequence[float], *, height: int = 280, title: str = "training loss") -> go.Figure:
    """The CFM loss per step (faint) and its running mean, on a log scale."""
    values = np.asarray(losses, dtype=np.float64)
    steps = np.arange(1, len(values) + 1)
    fig = go.Figure()
    if len(values):
        window = max(1, min(100, len(values) // 10))
        smooth = np.convolve(values, np.ones(window) / window, mode="valid")
        fig.add_trace(go.Scatter(x=steps, y=values, mode="lines", name="per step",
                                 line={"color": "rgba(31, 95, 191, 0.25)", "width": 1}))
        fig.add_trace(go.Scatter(x=steps[window - 1:], y=smooth, mode="lines", name=f"mean of {window}",
                                 line={"color": SAMPLE_COLOR, "width": 2}))
    fig.update_xaxes(title="step")
    positive = values[np.isfinite(values) & (values > 0)]
    if len(positive):  # every value in view, ticks 1-2-5 per decade (or one per decade over many)
        fig.update_yaxes(title="CFM loss", **log_axis(float(np.log10(positive.min())) - 0.1,
                                                      float(np.log10(positive.max())) + 0.1))
    else:
        fig.update_yaxes(title="CFM loss", type="log")
    fig.update_layout(title=title, height=height, margin=MARGIN, template="plotly_white",
                      legend={"orientation": "h", "y": 1.12, "x": 1.0, "xanchor": "right"})
    return fig


def loss_by_t(ts: np.ndarray, irreducible: np.ndarray, model: np.ndarray | None, t: float,
              height: int = 300) -> go.Figure:
    """The irreducible CFM loss E||u_t(x|x1) - u_t(x)||^2 by t, the model's CFM loss by t and a marker at t."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=ts, y=irreducible, mode="lines+markers", name="irreducible (exact field)",
                             line={"color": "#555555", "width": 2}, marker={"size": 4}))
    if model is not None:
        fig.add_trace(go.Scatter(x=ts, y=model, mode="lines+markers", name="model v_theta",
                                 line={"color": SAMPLE_COLOR, "width": 2}, marker={"size": 4}))
    fig.add_vline(x=t, line={"color": PROBE_COLOR, "dash": "dot"})
    values = np.concatenate([irreducible, model if model is not None else []])
    values = values[np.isfinite(values) & (values > 0)]
    top = float(values.max()) if len(values) else 1.0
    bottom = float(values.min()) if len(values) else top * 1e-3  # nothing cut off
    fig.update_xaxes(title="t", range=[0.0, 1.0])
    fig.update_yaxes(title="CFM loss at t (normalised units)", **log_axis(np.log10(bottom) - 0.1, np.log10(top) + 0.1))
    fig.update_layout(height=height, margin=MARGIN, template="plotly_white",
                      legend={"orientation": "h", "y": 1.12, "x": 0.0})
    return fig


def posterior_bars(weights: np.ndarray, labels: Sequence[str], height: int = 300) -> go.Figure:
    """Posterior weights w_i(x, t) of the data points that dominate the marginal field at a probe point."""
    fig = go.Figure(go.Bar(x=list(labels), y=weights, marker={"color": PROBE_COLOR},
                           hovertemplate="%{x}: w = %{y:.3f}<extra></extra>"))
    fig.update_xaxes(title="data point", type="category")
    fig.update_yaxes(title="posterior weight w_i", range=[0.0, max(float(np.max(weights, initial=0.0)) * 1.1, 1e-3)])
    fig.update_layout(height=height, margin=MARGIN, template="plotly_white")
    return fig


def trajectories_side_by_side(trajectories: Sequence[np.ndarray], titles: Sequence[str], bounds: Bounds,
                              data: Sequence[np.ndarray | None] | None = None, height: int = 460,
                              axis_titles: Sequence[AxisTitles] | None = None, equal: bool = True) -> go.Figure:
    """Trajectories [T, n, 2] of several models from the same noise, side by side on shared axes.

    `axis_titles`: per panel, the titles of its axes (each model's projection), if any; `equal`: equal aspect.
    """
    n = len(trajectories)
    spacing = 0.03 if not any(axis_titles or []) else 0.07  # room for the second panel's vertical title
    fig = make_subplots(rows=1, cols=n, subplot_titles=list(titles), horizontal_spacing=spacing)
    for col, traj in enumerate(trajectories, start=1):
        points = data[col - 1] if data is not None else None
        if points is not None:
            fig.add_trace(_marker_trace(Markers(points, "data", DATA_COLOR, 3.0)), row=1, col=col)
        lx, ly = _segments(np.asarray(traj))
        fig.add_trace(go.Scatter(x=lx, y=ly, mode="lines", showlegend=False, hoverinfo="skip",
                                 line={"color": "rgba(31, 95, 191, 0.45)", "width": 1}), row=1, col=col)
        fig.add_trace(_marker_trace(Markers(traj[0], "x0 (noise)", SOURCE_COLOR, 4.0)), row=1, col=col)
        fig.add_trace(_marker_trace(Markers(traj[-1], "x1 (sample)", SAMPLE_COLOR, 4.0)), row=1, col=col)
    _square_axes(fig, bounds, n, equal=equal)
    for col, axes in enumerate(axis_titles or [], start=1):
        if axes is not None:
            fig.update_xaxes(title={"text": axes[0], "font": {"size": 12}}, row=1, col=col)
            fig.update_yaxes(title={"text": axes[1], "font": {"size": 12}}, row=1, col=col)
    fig.update_layout(height=height, margin=MARGIN, template="plotly_white")
    return fig


def sweep_figure(series: Sequence[tuple[str, np.ndarray, np.ndarray]],
                 floors: Sequence[tuple[str, float]] = (), height: int = 340) -> go.Figure:
    """W2 to the data against NFE (log scale) for each (name, nfe, w2) series; a dotted line at each
    (name, W2 floor): one when both models share their data, one per model otherwise."""
    fig = go.Figure()
    for i, (name, nfe, values) in enumerate(series):
        fig.add_trace(go.Scatter(x=nfe, y=values, mode="lines+markers", name=name,
                                 line={"color": PALETTE[i % len(PALETTE)], "width": 2}))
    for i, (name, floor) in enumerate(floors):
        fig.add_hline(y=floor, line={"color": "#777777" if len(floors) == 1 else PALETTE[i % len(PALETTE)],
                                     "dash": "dot"}, annotation_text=name if len(floors) > 1 else
                      "W2 floor (data vs data)")
    ticks = sorted({int(v) for _, nfe, _ in series for v in nfe})
    fig.update_xaxes(title="NFE (velocity evaluations)", type="log", tickvals=ticks, ticktext=[str(v) for v in ticks])
    fig.update_yaxes(title="W2 to the data")
    fig.update_layout(height=height, margin=MARGIN, template="plotly_white",
                      legend={"orientation": "h", "y": 1.15, "x": 0.0})
    return fig


# --- marginals of D-dimensional data -----------------------------------------------------------------------

HISTOGRAM_BINS = 30


def shared_bins(a: np.ndarray, b: np.ndarray, bins: int = HISTOGRAM_BINS) -> np.ndarray:
    """Bin edges [bins + 1] shared by two samples of one column: the 0.5%..99.5% range of both, padded 5%."""
    values = np.concatenate([np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)])
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return np.linspace(-1.0, 1.0, bins + 1)
    lo, hi = (float(v) for v in np.quantile(values, [0.005, 0.995]))
    pad = 0.05 * (hi - lo) if hi > lo else 0.5 * max(abs(lo), 1.0)
    return np.linspace(lo - pad, hi + pad, bins + 1)


def _densities(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Histogram heights as a density of all the points (those outside the bins count, as missing mass)."""
    counts, _ = np.histogram(values, bins=edges)
    return counts / max(len(values), 1) / np.diff(edges)


def _overlaid_bars(data: np.ndarray, samples: np.ndarray, edges: np.ndarray, axes: tuple[str, str],
                   showlegend: bool) -> list[go.Bar]:
    """Data (grey) and model samples (blue) of one column as overlaid histograms on the same bins."""
    centres, width = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
    return [go.Bar(x=centres, y=_densities(values, edges), width=width, name=name, legendgroup=name,
                   showlegend=showlegend, xaxis=axes[0], yaxis=axes[1], marker={"color": color, "line": {"width": 0}},
                   hovertemplate=f"{name}: %{{y:.3g}} at %{{x:.3g}}<extra></extra>")
            for values, name, color in ((data, "data", "rgba(110, 110, 110, 0.55)"),
                                        (samples, "model samples", "rgba(31, 95, 191, 0.5)"))]


def _axis_names(index: int) -> tuple[str, str, str, str]:
    """The trace references ("x3", "y3") and layout keys ("xaxis3", "yaxis3") of the index-th subplot (1-based)."""
    suffix = "" if index == 1 else str(index)
    return f"x{suffix}", f"y{suffix}", f"xaxis{suffix}", f"yaxis{suffix}"


def marginal_histograms(data: np.ndarray, samples: np.ndarray, names: Sequence[str], w1: np.ndarray, *,
                        columns: int = 4, row_height: int = 170) -> go.Figure:
    """Every column's histogram of the data and of the model's samples, overlaid on shared bins, in a grid
    of small panels titled with the column's name and the W1 distance between the two marginals."""
    dim = data.shape[1]
    columns = max(1, min(columns, dim))
    rows = -(-dim // columns)
    height = rows * row_height + 70
    fig = make_subplots(rows=rows, cols=columns, vertical_spacing=min(0.3, 48 / height), horizontal_spacing=0.04,
                        subplot_titles=[f"{names[j]} · W1 {w1[j]:.3g}" for j in range(dim)])
    traces: list[go.Bar] = []
    for j in range(dim):
        x, y, _, _ = _axis_names(j + 1)
        traces += _overlaid_bars(data[:, j], samples[:, j], shared_bins(data[:, j], samples[:, j]), (x, y),
                                 showlegend=j == 0)
    fig.add_traces(traces)
    fig.update_yaxes(showticklabels=False, showgrid=False)
    fig.update_xaxes(showgrid=False, tickfont={"size": 10})
    fig.update_annotations(font={"size": 12})
    fig.update_layout(barmode="overlay", bargap=0, height=height, margin={**MARGIN, "t": 50},
                      template="plotly_white",
                      legend={"orientation": "h", "y": 1.0 + 30 / height, "yanchor": "bottom", "x": 0.0})
    return fig


def pair_plot(data: np.ndarray, samples: np.ndarray, dims: Sequence[int], names: Sequence[str], w1: np.ndarray, *,
              n_points: int = 300, cell: int = 115) -> go.Figure:
    """A scatter matrix of the chosen columns: data (grey) and model samples (blue) for each pair, and on
    the diagonal their overlaid histograms with the W1 distance between the column's two marginals."""
    k = len(dims)
    height = max(420, cell * k + 80)
    fig = make_subplots(rows=k, cols=k, horizontal_spacing=0.015, vertical_spacing=0.015)
    edges = {j: shared_bins(data[:, j], samples[:, j]) for j in dims}
    shown = [(np.asarray(data[:n_points], dtype=np.float32), DATA_COLOR),
             (np.asarray(samples[:n_points], dtype=np.float32), "rgba(31, 95, 191, 0.45)")]
    traces: list[go.Bar | go.Scatter] = []
    axes: dict[str, dict[str, Any]] = {}
    notes = []
    for r, row_dim in enumerate(dims):
        for c, col_dim in enumerate(dims):
            x, y, xaxis, yaxis = _axis_names(r * k + c + 1)
            bottom, left = r == k - 1, c == 0
            axes[xaxis] = {"range": [edges[col_dim][0], edges[col_dim][-1]], "showticklabels": bottom,
                           "title": {"text": names[col_dim] if bottom else "", "font": {"size": 11}}}
            if r == c:
                bars = _overlaid_bars(data[:, col_dim], samples[:, col_dim], edges[col_dim], (x, y),
                                      showlegend=r == 0)
                top = max(float(np.max(bar.y, initial=0.0)) for bar in bars)
                traces += bars
                axes[yaxis] = {"showticklabels": False, "range": [0.0, 1.35 * top if top > 0 else 1.0],
                               "title": {"text": names[row_dim] if left else "", "font": {"size": 11}}}
                notes.append({"text": f"W1 {w1[col_dim]:.3g}", "xref": f"{x} domain", "yref": f"{y} domain",
                              "x": 0.02, "y": 0.98, "xanchor": "left", "yanchor": "top", "showarrow": False,
                              "font": {"size": 10, "color": "#333333"}})
                continue
            for points, color in shown:
                traces.append(go.Scatter(x=points[:, col_dim], y=points[:, row_dim], mode="markers", showlegend=False,
                                         hoverinfo="skip", xaxis=x, yaxis=y,
                                         marker={"size": 2.5, "color": color, "line": {"width": 0}}))
            axes[yaxis] = {"range": [edges[row_dim][0], edges[row_dim][-1]], "showticklabels": left,
                           "title": {"text": names[row_dim] if left else "", "font": {"size": 11}}}
    for axis in axes.values():
        axis.update(showgrid=False, zeroline=False, tickfont={"size": 9})
    fig.add_traces(traces)
    fig.update_layout(**axes, annotations=notes, barmode="overlay", bargap=0, height=height,
                      margin={**MARGIN, "t": 40}, template="plotly_white",
                      legend={"orientation": "h", "y": 1.0 + 10 / height, "yanchor": "bottom", "x": 0.0})
    return fig


# --- reflow: W2 / floor against Euler steps -----------------------------------------------------------------


def euler_steps_figure(series: Sequence[tuple[str, Sequence[int], Sequence[float]]], height: int = 340) -> go.Figure:
    """W2 / floor against the number of Euler steps (log scale) for each (name, steps, ratios) series, with a
    dotted line at 1 (as close to the data as a second draw of the data)."""
    fig = go.Figure()
    for i, (name, steps, ratios) in enumerate(series):
        fig.add_trace(go.Scatter(x=list(steps), y=list(ratios), mode="lines+markers", name=name,
                                 line={"color": PALETTE[i % len(PALETTE)], "width": 2}))
    fig.add_hline(y=1.0, line={"color": "#777777", "dash": "dot"}, annotation_text="floor (data vs data)")
    ticks = sorted({int(k) for _, steps, _ in series for k in steps})
    fig.update_xaxes(title="Euler steps (= NFE)", type="log", tickvals=ticks, ticktext=[str(k) for k in ticks])
    fig.update_yaxes(title="W2 / floor", type="log")
    fig.update_layout(height=height, margin=MARGIN, template="plotly_white",
                      legend={"orientation": "h", "y": 1.15, "x": 0.0})
    return fig


# --- images ------------------------------------------------------------------------------------------------
#
# An image model's pictures are drawn as one mosaic per figure (one heatmap for grey images, one RGB image for
# colour ones): rows of images with a gap between them, a title on the left of each row and a note under each
# image. A t slider's frames then replace one trace's pixels and the notes, nothing else.

#: Grey images: the pixel range's low end black, its high end white (the values as they are, never inverted).
GREY_SCALE = [[0.0, "black"], [1.0, "white"]]
#: Screen pixels an image is drawn at (its longer side), whatever its resolution.
IMAGE_PX = 64


@dataclass(frozen=True)
class ImageRow:
    """One row of images side by side: its title (left of the row), images [k, C, H, W] in data units, and a
    note under each image (e.g. its distance to the nearest training image), or none."""

    title: str
    images: np.ndarray
    notes: Sequence[str] = ()


@dataclass(frozen=True)
class _Layout:
    """Where each image of a mosaic sits: its shape, the column and row pitches and the notes' band."""

    channels: int
    height: int
    width: int
    columns: int
    rows: int
    pad: int
    note_band: int

    @property
    def pitch_x(self) -> int:
        """Mosaic pixels from one column's left edge to the next."""
        return self.width + self.pad

    @property
    def pitch_y(self) -> int:
        """Mosaic pixels from one row's top edge to the next (the notes sit in the band under each row)."""
        return self.height + self.note_band + self.pad

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the whole mosaic."""
        return self.rows * self.pitch_y - self.pad, self.columns * self.pitch_x - self.pad


def _image_layout(rows: Sequence[ImageRow]) -> _Layout:
    """The layout of rows of images of one shape (ValueError for mixed shapes or an empty set)."""
    shapes = {tuple(np.shape(row.images)[1:]) for row in rows if len(row.images)}
    if len(shapes) != 1 or len(next(iter(shapes))) != 3:
        raise ValueError(f"rows of images need one shape (C, H, W), got {sorted(shapes)}")
    c, h, w = next(iter(shapes))
    notes = any(len(row.notes) for row in rows)
    pad = max(1, round(max(h, w) / 8))
    return _Layout(c, h, w, max(len(row.images) for row in rows), len(rows), pad,
                   max(2, round(0.35 * h)) if notes else 0)


def image_mosaic(rows: Sequence[ImageRow], low: float, high: float) -> np.ndarray:
    """The rows' images laid out in one picture: grey images as [Hm, Wm] in data units with NaN (transparent)
    between them; colour images (3 or 4 channels; RGB drawn, alpha dropped) as uint8 [Hm, Wm, 3] with the pixel
    range mapped to 0..255 and white between them. Values outside [low, high] are clipped."""
    layout = _image_layout(rows)
    height, width = layout.size
    grey = layout.channels < 3
    canvas = np.full((height, width) if grey else (height, width, 3), np.nan if grey else 255.0)
    for r, row in enumerate(rows):
        for j, image in enumerate(np.asarray(row.images, dtype=np.float64)):
            top, left = r * layout.pitch_y, j * layout.pitch_x
            pixels = np.clip(image, low, high)
            if grey:
                canvas[top:top + layout.height, left:left + layout.width] = pixels[0]
            else:
                canvas[top:top + layout.height, left:left + layout.width] = \
                    255.0 * (pixels[:3].transpose(1, 2, 0) - low) / (high - low)
    return canvas if grey else np.round(canvas).astype(np.uint8)


def _image_trace(mosaic: np.ndarray, low: float, high: float) -> go.Heatmap | go.Image:
    """A mosaic as one trace: a heatmap on the grey scale (hover: the pixel value), or an RGB image."""
    if mosaic.ndim == 2:
        return go.Heatmap(z=mosaic, zmin=low, zmax=high, colorscale=GREY_SCALE, showscale=False,
                          hovertemplate="pixel value %{z:.3g}<extra></extra>", hoverongaps=False)
    return go.Image(z=mosaic, hoverinfo="skip")


def _note_trace(rows: Sequence[ImageRow], layout: _Layout) -> go.Scatter:
    """The notes under the images as one text trace (empty text where a row has none)."""
    xs, ys, texts = [], [], []
    for r, row in enumerate(rows):
        for j in range(len(row.images)):
            xs.append(j * layout.pitch_x + (layout.width - 1) / 2)
            ys.append(r * layout.pitch_y + layout.height - 0.5 + layout.note_band / 2)
            texts.append(row.notes[j] if j < len(row.notes) else "")
    return go.Scatter(x=xs, y=ys, text=texts, mode="text", textfont={"size": 11, "color": "#333333"},
                      hoverinfo="skip", showlegend=False)


def _image_axes(fig: go.Figure, rows: Sequence[ImageRow], layout: _Layout, column_titles: Sequence[str],
                image_px: int) -> None:
    """Square pixels, the rows' titles left of them, the columns' titles above, and a height that draws each image
    at about `image_px` screen pixels."""
    height, width = layout.size
    scale = image_px / max(layout.height, layout.width)
    fig.update_xaxes(range=[-0.5, width - 0.5], showgrid=False, zeroline=False, constrain="domain", side="top",
                     tickvals=[j * layout.pitch_x + (layout.width - 1) / 2 for j in range(len(column_titles))],
                     ticktext=list(column_titles), showticklabels=bool(column_titles), ticks="")
    fig.update_yaxes(range=[height - 0.5, -0.5], showgrid=False, zeroline=False, scaleanchor="x", scaleratio=1.0,
                     constrain="domain", ticks="",
                     tickvals=[r * layout.pitch_y + (layout.height - 1) / 2 for r in range(len(rows))],
                     ticktext=[row.title for row in rows])
    top = 40 if column_titles else 10
    fig.update_layout(height=int(height * scale) + top + 20, margin={"l": 10, "r": 10, "t": top, "b": 10},
                      template="plotly_white", plot_bgcolor="white", dragmode=False)


def image_rows(rows: Sequence[ImageRow], low: float, high: float, *, column_titles: Sequence[str] = (),
               image_px: int = IMAGE_PX) -> go.Figure:
    """Rows of images with their titles and notes (strips over t, samples beside their nearest training images):
    pixels in the data's range `low`..`high`, grey from black to white, or RGB."""
    layout = _image_layout(rows)
    fig = go.Figure([_image_trace(image_mosaic(rows, low, high), low, high), _note_trace(rows, layout)])
    _image_axes(fig, rows, layout, column_titles, image_px)
    return fig


def image_grid(images: np.ndarray, low: float, high: float, *, columns: int = 8, image_px: int = IMAGE_PX,
               notes: Sequence[str] = ()) -> go.Figure:
    """Images [n, C, H, W] in a grid of `columns` (samples, training images, thumbnails), optionally a note under
    each."""
    rows = [ImageRow("", images[k:k + columns], notes[k:k + columns]) for k in range(0, len(images), columns)]
    return image_rows(rows, low, high, image_px=image_px)


def animated_image_rows(frames: Sequence[Sequence[ImageRow]], times: np.ndarray, low: float, high: float, *,
                        active: int = 0, column_titles: Sequence[str] = (), image_px: int = IMAGE_PX) -> go.Figure:
    """Rows of images at each of `times`, with plotly's own t slider (and Play): a frame replaces the pixels, the
    notes and the rows' titles (which say the frame's t), so moving t never asks the server. Every frame must have
    the same rows of the same sizes."""
    layouts = {_image_layout(rows) for rows in frames}
    if len(layouts) != 1 or any([len(r.images) for r in rows] != [len(r.images) for r in frames[0]]
                                for rows in frames):
        raise ValueError("every frame needs the same rows of images, of the same shape")
    layout = layouts.pop()
    mosaics = [image_mosaic(rows, low, high) for rows in frames]
    notes = [_note_trace(rows, layout) for rows in frames]
    fig = go.Figure([_image_trace(mosaics[active], low, high), notes[active]])
    _image_axes(fig, frames[active], layout, column_titles, image_px)
    names = [f"{float(t):.5f}" for t in times]
    fig.frames = [go.Frame(name=name, traces=[0, 1], data=[_image_trace(m, low, high), note],
                           layout={"yaxis": {"ticktext": [row.title for row in rows]}})
                  for name, m, note, rows in zip(names, mosaics, notes, frames, strict=True)]
    fig.update_layout(height=fig.layout.height + 90, margin={**fig.layout.margin.to_plotly_json(), "b": 80},
                      **time_controls(times, names, active=active, redraw=True, play_ms=300, top=30))
    return fig


def distance_histograms(series: Sequence[tuple[str, np.ndarray, str]], *, height: int = 300,
                        title: str = "distance to the nearest training image") -> go.Figure:
    """Overlaid histograms (densities on shared bins) of distances, one per named set with its colour: e.g. the
    samples', the held-out real images' and the exact field's samples' distances to their nearest training
    image. A dotted line marks each set's median."""
    values = np.concatenate([np.asarray(v, dtype=np.float64) for _, v, _ in series])
    edges = np.histogram_bin_edges(values, bins=HISTOGRAM_BINS)
    fig = go.Figure()
    for name, distances, color in series:
        heights = _densities(np.asarray(distances, dtype=np.float64), edges)
        fig.add_trace(go.Bar(x=(edges[:-1] + edges[1:]) / 2, y=heights, width=np.diff(edges), name=name,
                             marker={"color": color}, opacity=0.55))
        fig.add_vline(x=float(np.median(distances)), line={"color": color, "dash": "dot"})
    fig.update_layout(barmode="overlay", height=height, margin=MARGIN, template="plotly_white", title=title,
                      legend={"x": 0.99, "xanchor": "right", "y": 0.99, "bgcolor": "rgba(255, 255, 255, 0.7)"},
                      xaxis_title="distance (data units)",
                      yaxis_title="density")
    return fig

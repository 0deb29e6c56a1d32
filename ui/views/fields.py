"""Fields: conditional vs exact marginal vs learned vector fields at time t, and the irreducible CFM loss; for a
class of a conditional model, its exact class field, the exact guided field and the learned guided field."""

from __future__ import annotations

import numpy as np
import streamlit as st

from flowscope_ui import compute, layout, plots, state, widgets

widgets.header("Fields", "At a time t, on shared axes: the conditional field u_t(x | x1) of one data point with its "
               "Gaussian p_t(x | x1); the exact marginal field u_t(x), which averages all conditional fields with "
               "the posterior weights w_i(x, t); and the learned field v_theta with its error |v_theta - u_t|.")
view = widgets.current_model()
widgets.model_caption(view)
axes = widgets.projection_picker(view)
guide = widgets.guidance_picker(view)  # a conditional model: a class and a guidance scale w
sliced = not axes.identity  # a D > 2 model: its fields on a plane through a point, spanned by the view's axes
support = widgets.field_support(view)
by_class = guide.label is not None and support.labels is not None  # the class fields need the data's classes
if guide.label is not None and not by_class:
    st.info(f"The data of {view.label!r} carry no class labels, so its exact class fields cannot be computed: the "
            "fields below are its unconditional ones (the class and w still apply on the Paths page).")
if by_class and guide.label is not None:
    try:
        support.rows_of(guide.label)
    except ValueError:
        st.info(f"Class {guide.name} has no point among the {len(support):,} data points the exact fields average "
                "over, so its class fields cannot be drawn: the fields below are the unconditional ones.")
        by_class = False
paired = support.z0 is not None
if paired:
    st.info(f"This model starts from samples, not from a Gaussian: its exact fields are those of the interpolant over "
            f"{len(support):,} (x0, x1) pairs drawn by its coupling ({view.flow.coupling}), with kernel width "
            f"{view.flow.path.noise_std:g}; “conditional” means given x1"
            + (" and its OT partner x0." if view.flow.coupling != "independent" else ", averaged over the sources."))
    widgets.view_width_caption(support)
elif view.flow.coupling != "independent":
    st.info(f"This model was trained with the {view.flow.coupling} coupling of noise and data; the exact fields "
            "drawn here are the paper's, for independent pairs (a Gaussian source has no finite set of pairs).")
n_points = len(support)
shown = min(n_points, 300)
bounds = widgets.bounds(view, axes)
centre = np.array([sum(bounds[0]), sum(bounds[1])]) / 2
data_uv = state.memo("support_points", view, (axes.key, shown),
                     lambda: compute.project(axes.projection, support.x1[:shown].numpy()))
keys = {name: f"fields_{name}_{view.key}" for name in ("t", "x1", "px", "py", "chart", "through")}
if sliced:  # the probe is a point of the view's plane: its own inputs per projection
    keys.update(px=f"fields_px_{view.key}_{axes.key}", py=f"fields_py_{view.key}_{axes.key}")
    st.caption(f"This {view.flow.dim}-D model is shown on a slice: the plane through the point chosen below, "
               f"spanned by the view's axes ({axes.projection.labels[0]}, {axes.projection.labels[1]}); the fields "
               f"are exact in all {view.flow.dim} dimensions at the plane's points (not a 2-D fit), the arrows are "
               "their components along the axes, the densities are those on the slice, and the error "
               f"|v_theta - u_t| is measured in all {view.flow.dim} dimensions, in the model's normalised units "
               "(each column divided by its scale, so that no column's units dominate).")
MEAN, X1 = "the data mean", "x1"
DATA_POINT, GRID_NODE, WEIGHTED = 0, 1, 2  # customdata[0] of clickable points


def on_click() -> None:
    """A click on a data point picks x1; a click on the marginal panel moves the probe there."""
    for point in st.session_state[keys["chart"]].selection.points:
        kind, index = (plots.clicked_customdata(point) + [-1.0, -1.0])[:2]
        if kind in (DATA_POINT, WEIGHTED):
            st.session_state[keys["x1"]] = int(index)
        elif kind == GRID_NODE:
            st.session_state[keys["px"]], st.session_state[keys["py"]] = float(point["x"]), float(point["y"])


def conditional_markers(f: compute.FieldsAtT) -> list[plots.Markers]:
    """x1 (star), the centre of p_t(x | x1) at t, and x1's source partner under an OT coupling."""
    markers = [plots.Markers(f.x1[None], "x1", plots.PROBE_COLOR, 14.0, "star")]
    if f.centre is not None:
        markers.append(plots.Markers(f.centre[None], "centre of p_t(x | x1)", "#111111", 10.0, "circle-open-dot"))
    if f.partner is not None:
        markers.append(plots.Markers(f.partner[None], "x0 paired with x1 (OT)", plots.SOURCE_COLOR, 12.0, "diamond"))
    return markers


def frames_now(x1: int, probe: tuple[float, float], through: str) -> tuple[np.ndarray, list[compute.FieldsAtT]]:
    """Every field at each time of the page's t grid on the view's plane (for D > 2 the slice through the data
    mean or x1), for the chosen class and w of a conditional model: computed once per model, view, x1 and probe
    (cached), then the browser moves between the frames."""
    label, w = (guide.label, guide.w) if by_class else (None, 0.0)
    times = compute.time_grid(view.flow.path.t_max)
    point = widgets.data_mean(view) if through == MEAN or not sliced else compute.slice_point(view.data, support, x1,
                                                                                               "x1")
    frames = state.memo("fields_frames", view, (axes.key, bounds, x1, probe, through if sliced else MEAN, label, w),
                        lambda: compute.fields_over_t(view.flow, support, axes.projection, point, bounds, times, x1,
                                                      probe, label=label, guidance=w))
    return times, frames


def class_panels(f: compute.FieldsAtT, clickable: np.ndarray) -> list[plots.Panel]:
    """The three panels of a class y at guidance w: the exact class field, the exact guided field, the learned
    guided field over its error; the data points coloured by class, y highlighted (click one to pick x1)."""
    assert support.labels is not None and guide.name is not None
    labels = support.labels[:shown].cpu().numpy()
    points = plots.class_markers(data_uv, labels, view.flow.labels, guide.label, customdata=clickable,
                                 hover="data point %{customdata[1]}<extra></extra>")
    y, w = guide.name, f"{f.guidance:g}"
    return [
        plots.Panel(f"exact class field u_t(x | y = {y}) at t = {f.t:.2f}<br>over p_t(x | y)", f.marginal_density,
                    "p_t(x|y)", arrows=compute.coarse(f.points, f.marginal), markers=points),
        plots.Panel(f"exact guided field u_w at w = {w}<br>over p_t(x | y)", f.marginal_density, "p_t(x|y)",
                    arrows=compute.coarse(f.points, f.guided), markers=points),
        plots.Panel(f"learned guided field v_w at w = {w}<br>over the error |v_w - u_w|"
                    + (" (normalised)" if sliced else ""), f.error, "|v_w - u_w|", plots.ERROR_SCALE,
                    show_scale=True, arrows=compute.coarse(f.points, f.learned), clip=ERROR_QUANTILE),
    ]


CLASS_CAPTION = (
    "Left: the exact field of class y alone, u_t(x | y): the marginal field of class y's data points only, over "
    "their p_t(x | y). Middle: the exact guided field u_w = u_t(x | y) + w (u_t(x | y) − u_t(x)), where u_t(x) is "
    "the exact field of every class's points. Right: the model's guided field v_w = v(x, t, y) + w (v(x, t, y) − "
    "v(x, t, none)), over its error |v_w − u_w|{units}. w = 0 is plain conditional sampling (then u_w = u_t(x | y)); "
    "larger w pushes samples away from the other classes; the same w as Ho & Salimans' guidance weight and Meta's "
    "flow_matching cfg_scale. Points: the data coloured by class, class {name} highlighted.")
#: The error's colour scale stops at this quantile of the grid's errors (near a singular t a few nodes are huge).
ERROR_QUANTILE = 0.98
SLIDER_CAPTION = ("Drag the t slider under the plots (or press ▶ Play): its {n} times are computed once, finer near "
                  "t = 0 and t = 1, and move in your browser without asking the server; x1 and the probe recompute "
                  "them. The error's colour bar stops at the {q:.0%} quantile of the grid's errors and says so "
                  "when it clips.")


def singular_note() -> str | None:
    """Why the field blows up near t = 1 for a path whose sigma_1 is 0 (VP; OT with sigma_min = 0), or None."""
    if view.flow.path.t_max >= 1.0:
        return None
    return (f"This {view.flow.path.name.upper()} path ends with σ_1 = 0, so u_t(x | x1) = (σ_t′/σ_t)(x − μ_t) + μ_t′ "
            f"is singular at t = 1: the last frame is t = {view.flow.path.t_max:g} (the core trains and samples on "
            "[0, 1 − 1e-5]), where off the data the exact fields and the error are huge; the colour bar clips them.")


def fields_panels(f: compute.FieldsAtT, clickable: np.ndarray) -> list[plots.Panel]:
    """The conditional, marginal and learned panels at one time (with the data, x1, the probe and its weights)."""
    grid = compute.coarse(f.points, f.points)[0]  # clickable nodes: those of the arrows (few markers redraw fast)
    nodes = np.stack([np.full(len(grid), GRID_NODE), np.arange(len(grid))], axis=1)
    weights = np.sqrt(f.top_weights / max(float(f.top_weights.max()), 0.02))  # spread-out weights stay small
    weighted = np.stack([np.full(len(weights), WEIGHTED), f.top_indices, f.top_weights], axis=1)
    return [
        plots.Panel(f"conditional u_t(x | x1) at t = {f.t:.2f}<br>over p_t(x | x1); star: x1", f.conditional_density,
                    "p_t(x|x1)",
                    arrows=compute.coarse(f.points, f.conditional), markers=[
                        plots.Markers(data_uv, "data point (click to pick x1)", "rgba(90, 90, 90, 0.55)", 5.0,
                                      customdata=clickable, hover="data point %{customdata[1]}<extra></extra>"),
                        *conditional_markers(f)]),
        plots.Panel("exact marginal u_t(x) over p_t(x)<br>orange: weights w_i at the probe (star)", f.marginal_density,
                    "p_t",
                    arrows=compute.coarse(f.points, f.marginal), markers=[
                        plots.Markers(grid, "grid", "rgba(0, 0, 0, 0)", 12.0, customdata=nodes, below=True,
                                      hover="click: move the probe here<extra></extra>"),
                        plots.Markers(f.top_points, "weighted data points", plots.SOURCE_COLOR, 3.0 + 15.0 * weights,
                                      opacity=0.85, customdata=weighted,
                                      hover="data point %{customdata[1]}: w = %{customdata[2]:.3f}<extra></extra>"),
                        plots.Markers(f.probe[None], "probe", plots.PROBE_COLOR, 14.0, "star")]),
        plots.Panel("learned v_theta(x, t)<br>over the error |v_theta - u_t|" + (" (normalised)" if sliced else ""),
                    f.error, "|v - u|", plots.ERROR_SCALE, show_scale=True, arrows=compute.coarse(f.points, f.learned),
                    clip=ERROR_QUANTILE),
    ]


def weight_bars(f: compute.FieldsAtT) -> plots.Bars:
    """The 12 largest posterior weights at the probe; u_t(probe) and the share the largest hold in the title."""
    along = " along the plane's axes" if sliced else ""
    title = (f"w_i at the probe · u_t = ({f.probe_velocity[0]:.3g}, {f.probe_velocity[1]:.3g}){along}"
             f"<br>the {len(f.top_weights)} largest hold {float(f.top_weights.sum()):.0%}")
    return plots.Bars(f.top_weights[:12], [f"#{i}" for i in f.top_indices[:12]], title)


@st.fragment
@layout.guarded("Fields")
def fields_at_t() -> None:
    """The choice of x1 and probe, and the figure whose frames cover every t (reruns alone when they change)."""
    # a class's three panels have no probe, and x1 only places the slice of a D > 2 model
    with_x1, with_probe = sliced or not by_class, not by_class
    top = st.columns([1] * (with_x1 + 2 * with_probe + sliced) + [3])
    x1 = st.session_state.get(keys["x1"], 0)
    if with_x1:
        x1 = top[0].number_input("data point x1", 0, n_points - 1, 0, key=keys["x1"],
                                 help="Its index in the data; or click a grey point in the left panel." if not by_class
                                 else "Its index in the data; or click a data point in the left panel. The slice can "
                                      "pass through it.")
    u, v = ("u", "v") if sliced else ("x", "y")
    where = " (plane coordinates)" if sliced else ""
    px, py = float(centre[0]), float(centre[1])
    if with_probe:
        px = top[1].number_input(f"probe {u}", value=px, format="%.2f", key=keys["px"],
                                 help=f"Where the aggregation is shown{where}; or click anywhere in the middle "
                                      "panel.")
        py = top[2].number_input(f"probe {v}", value=py, format="%.2f", key=keys["py"])
    through = top[-2].radio("slice through", [MEAN, X1], key=keys["through"],
                            help="The point the plane passes through: the data's mean, or the chosen data point "
                                 "x1.") if sliced else MEAN
    times, frames = frames_now(int(x1), (px, py), through or MEAN)
    active = compute.nearest_frame(times, 0.5)
    f = frames[active]
    clickable = np.stack([np.full(shown, DATA_POINT), np.arange(shown)], axis=1)
    note = singular_note()
    if by_class:
        figure = plots.animated_panels([class_panels(g, clickable) for g in frames], times, f.xs, f.ys, bounds,
                                       compute.arrow_length(bounds), active=active, titles=axes.titles,
                                       equal=axes.square)
        st.plotly_chart(figure, key=keys["chart"], on_select=on_click, selection_mode="points")
        st.caption(CLASS_CAPTION.format(name=guide.name, units=" (in normalised units)" if sliced else ""))
        st.caption(SLIDER_CAPTION.format(n=len(times), q=ERROR_QUANTILE) + (f" {note}" if note else ""))
        return
    ts, irreducible, model = state.memo("loss_by_t", view, (), lambda: compute.loss_by_t(view.flow, support))
    curves = plots.Curves(ts, [("irreducible (exact field)", irreducible, "#555555"),
                               ("model v_theta", model, plots.SAMPLE_COLOR)],
                          "CFM loss by t (normalised units)", "")
    figure = plots.animated_panels([fields_panels(g, clickable) for g in frames], times, f.xs, f.ys, bounds,
                                   compute.arrow_length(bounds), active=active, bars=[weight_bars(g) for g in frames],
                                   curves=curves, titles=axes.titles, equal=axes.square)
    st.plotly_chart(figure, key=keys["chart"], on_select=on_click, selection_mode="points")
    st.caption(f"The aggregation at the probe ({px:.2f}, {py:.2f}){where}: the bars are the largest posterior "
               f"weights w_i(probe, t) among the {n_points:,} data points (orange in the middle panel; a log axis, "
               "the same at every t), and the "
               f"title gives u_t(probe) = Σ_i w_i u_t(probe | x1_i) and the share of the {n_points:,} weights that the "
               "60 largest hold. The curves: the irreducible CFM loss E‖u_t(x|x1) − u_t(x)‖² by t, which no model can "
               "go below, beside the model's own CFM loss at each t (the dotted line follows the slider). "
               + SLIDER_CAPTION.format(n=len(times), q=ERROR_QUANTILE) + (f" {note}" if note else ""))


fields_at_t()

#: Guidance scales of the samples panel: plain conditional, then guided.
SAMPLE_GUIDANCE = (0.0, 1.0, 3.0)
SAMPLES = 500


def guided_samples(label: int) -> list[tuple[float, np.ndarray, float]]:
    """(w, samples in plane coordinates, label accuracy) of class `label` at each of SAMPLE_GUIDANCE (cached)."""
    assert view.data_labels is not None
    rows = []
    for w in SAMPLE_GUIDANCE:
        samples = state.memo("class_samples", view, (label, w, SAMPLES),
                             lambda w=w: compute.class_samples(view.flow, SAMPLES, label, w))
        accuracy = state.memo("label_accuracy", view, (label, w, SAMPLES), lambda s=samples: compute.label_accuracy(
            view.flow, s, label, view.data, view.data_labels))
        rows.append((w, state.memo("class_samples_uv", view, (label, w, SAMPLES, axes.key),
                                   lambda s=samples: compute.project(axes.projection, s)), accuracy))
    return rows


if by_class and guide.label is not None and view.data_labels is not None:
    st.subheader(f"Samples of class {guide.name} as guidance grows")
    background = widgets.projected_data(view, axes, 1500)
    runs = guided_samples(guide.label)
    around = bounds if not axes.square else plots.union_bounds(bounds, plots.bounds_of(*(s for _, s, _ in runs)))
    st.plotly_chart(plots.guidance_samples(runs, background, view.data_labels[:1500], view.flow.labels, guide.label,
                                           around, titles=axes.titles, equal=axes.square),
                    key="fields_guidance_samples")
    st.caption(f"{SAMPLES} samples of class {guide.name} from the same noise at w = 0, 1 and 3 (the sidebar's w "
               f"sets the fields above), over class {guide.name}'s data (grey) and the other classes' (faint, in "
               "their colours): guidance pushes samples away from the other classes. Label accuracy: the share of "
               "samples whose 5 nearest data points (in the model's normalised units) are mostly of class "
               f"{guide.name} (`flowscope.metrics.model_label_accuracy` against the model's data sample).")

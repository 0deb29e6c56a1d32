"""Fields: conditional vs exact marginal vs learned vector fields at time t, and the irreducible CFM loss; for a
class of a conditional model, its exact class field, the exact guided field and the learned guided field."""

from __future__ import annotations

import numpy as np
import streamlit as st

from flowscope_ui import compute, plots, state, widgets

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


def fields_now(t: float, x1: int, probe: tuple[float, float], through: str) -> compute.FieldsAtT:
    """Every field at t on the view's plane (for D > 2 the slice through the data mean or x1), for the chosen
    class and w of a conditional model: what a slider move recomputes, and only that."""
    label, w = (guide.label, guide.w) if by_class else (None, 0.0)
    if not sliced:
        return compute.fields_at(view.flow, support, bounds, t, x1, probe, label=label, guidance=w)
    point = widgets.data_mean(view) if through == MEAN else compute.slice_point(view.data, support, x1, "x1")
    return compute.fields_on_plane(view.flow, support, axes.projection, point, bounds, t, x1, probe, label=label,
                                   guidance=w)


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
                    show_scale=True, arrows=compute.coarse(f.points, f.learned)),
    ]


CLASS_CAPTION = (
    "Left: the exact field of class y alone, u_t(x | y): the marginal field of class y's data points only, over "
    "their p_t(x | y). Middle: the exact guided field u_w = u_t(x | y) + w (u_t(x | y) − u_t(x)), where u_t(x) is "
    "the exact field of every class's points. Right: the model's guided field v_w = v(x, t, y) + w (v(x, t, y) − "
    "v(x, t, none)), over its error |v_w − u_w|{units}. w = 0 is plain conditional sampling (then u_w = u_t(x | y)); "
    "larger w pushes samples away from the other classes; the same w as Ho & Salimans' guidance weight and Meta's "
    "flow_matching cfg_scale. Points: the data coloured by class, class {name} highlighted.")


@st.fragment
def fields_at_t() -> None:
    """The t slider, the choice of x1 and probe, and every plot that depends on them (reruns alone)."""
    # a class's three panels have no probe, and x1 only places the slice of a D > 2 model
    with_x1, with_probe = sliced or not by_class, not by_class
    top = st.columns([3] + [1] * (with_x1 + 2 * with_probe + sliced) + ([2] if not with_x1 else []))
    t = top[0].slider("t", 0.0, 1.0, 0.5, 0.01, key=keys["t"])
    x1 = st.session_state.get(keys["x1"], 0)
    if with_x1:
        x1 = top[1].number_input("data point x1", 0, n_points - 1, 0, key=keys["x1"],
                                 help="Its index in the data; or click a grey point in the left panel." if not by_class
                                 else "Its index in the data; or click a data point in the left panel. The slice can "
                                      "pass through it.")
    u, v = ("u", "v") if sliced else ("x", "y")
    where = " (plane coordinates)" if sliced else ""
    px, py = float(centre[0]), float(centre[1])
    if with_probe:
        px = top[2].number_input(f"probe {u}", value=px, format="%.2f", key=keys["px"],
                                 help=f"Where the aggregation is shown{where}; or click anywhere in the middle "
                                      "panel.")
        py = top[3].number_input(f"probe {v}", value=py, format="%.2f", key=keys["py"])
    through = top[-1].radio("slice through", [MEAN, X1], key=keys["through"],
                            help="The point the plane passes through: the data's mean, or the chosen data point "
                                 "x1.") if sliced else MEAN
    f = fields_now(t, int(x1), (px, py), through or MEAN)
    data = data_uv
    clickable = np.stack([np.full(shown, DATA_POINT), np.arange(shown)], axis=1)
    if by_class:
        figure = plots.panels_figure(class_panels(f, clickable), f.xs, f.ys, bounds, compute.arrow_length(bounds),
                                     titles=axes.titles, equal=axes.square)
        st.plotly_chart(figure, key=keys["chart"], on_select=on_click, selection_mode="points")
        st.caption(CLASS_CAPTION.format(name=guide.name, units=" (in normalised units)" if sliced else ""))
        return
    nodes = np.stack([np.full(len(f.points), GRID_NODE), np.arange(len(f.points))], axis=1)
    weights = np.sqrt(f.top_weights / max(float(f.top_weights.max()), 0.02))  # spread-out weights stay small
    weighted = np.stack([np.full(len(weights), WEIGHTED), f.top_indices, f.top_weights], axis=1)
    panels = [
        plots.Panel(f"conditional u_t(x | x1) at t = {f.t:.2f}<br>over p_t(x | x1); star: x1", f.conditional_density,
                    "p_t(x|x1)",
                    arrows=compute.coarse(f.points, f.conditional), markers=[
                        plots.Markers(data, "data point (click to pick x1)", "rgba(90, 90, 90, 0.55)", 5.0,
                                      customdata=clickable, hover="data point %{customdata[1]}<extra></extra>"),
                        *conditional_markers(f)]),
        plots.Panel("exact marginal u_t(x) over p_t(x)<br>orange: weights w_i at the probe (star)", f.marginal_density,
                    "p_t",
                    arrows=compute.coarse(f.points, f.marginal), markers=[
                        plots.Markers(f.points, "grid", "rgba(0, 0, 0, 0)", 8.0, customdata=nodes,
                                      hover="click: move the probe here<extra></extra>"),
                        plots.Markers(f.top_points, "weighted data points", plots.SOURCE_COLOR, 3.0 + 15.0 * weights,
                                      opacity=0.85, customdata=weighted,
                                      hover="data point %{customdata[1]}: w = %{customdata[2]:.3f}<extra></extra>"),
                        plots.Markers(f.probe[None], "probe", plots.PROBE_COLOR, 14.0, "star")]),
        plots.Panel("learned v_theta(x, t)<br>over the error |v_theta - u_t|" + (" (normalised)" if sliced else ""),
                    f.error, "|v - u|", plots.ERROR_SCALE,
                    show_scale=True, arrows=compute.coarse(f.points, f.learned)),
    ]
    figure = plots.panels_figure(panels, f.xs, f.ys, bounds, compute.arrow_length(bounds), titles=axes.titles,
                                 equal=axes.square)
    st.plotly_chart(figure, key=keys["chart"], on_select=on_click, selection_mode="points")
    left, right = st.columns(2)
    along = " along the plane's axes" if sliced else ""
    with left:
        st.markdown(f"**The aggregation at the probe** ({px:.2f}, {py:.2f}): u_t(probe) = Σ_i w_i u_t(probe | x1_i) "
                    f"= ({f.probe_velocity[0]:.2f}, {f.probe_velocity[1]:.2f}){along}. The {len(f.top_weights)} "
                    f"largest of the {n_points:,} weights (orange in the middle panel) sum to "
                    f"{f.top_weights.sum():.0%}; the 12 largest:")
        labels = [f"#{i}" for i in f.top_indices[:12]]
        st.plotly_chart(plots.posterior_bars(f.top_weights[:12], labels), key="fields_weights")
    with right:
        st.markdown("**Irreducible CFM loss by t**: E‖u_t(x|x1) − u_t(x)‖², which no model can go below, "
                    "beside the model's own CFM loss at each t.")
        losses = state.memo("loss_by_t", view, (), lambda: compute.loss_by_t(view.flow, support))
        st.plotly_chart(plots.loss_by_t(*losses, t=f.t), key="fields_loss")


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
               f"{guide.name} (`flowscope.metrics.label_accuracy` against the model's data sample).")

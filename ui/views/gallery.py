"""Gallery: every pretrained model as a card with its samples, dataset, path and metrics."""

from __future__ import annotations

import streamlit as st

from flowscope.evaluation.image_quality import image_samples
from flowscope.evaluation.records import stored_report
from flowscope.zoo import registry as zoo
from flowscope_ui import compute, plots, state, widgets
from flowscope_ui.image_compute import VIEW_SOLVER

widgets.header("Gallery", "Every pretrained model as a card: a picture of its samples, its dataset, probability path "
               "and measured quality; filter them, and Open one to see it in every view.")
entries, problem = state.zoo_entries()
if problem:
    st.warning(f"No pretrained models to show. {problem}")
    st.stop()
left, right = st.columns(2)
datasets = left.multiselect("Dataset", sorted({e.dataset for e in entries}), key="gallery_dataset",
                            placeholder="all datasets")
paths = right.multiselect("Path", sorted({e.path for e in entries}), key="gallery_path", placeholder="all paths")
chosen = [e for e in entries if (not datasets or e.dataset in datasets) and (not paths or e.path in paths)]
st.caption(f"{len(chosen)} of {len(entries)} models. W2 / floor: distance of 2,000 samples to fresh data, divided by "
           "that of two fresh draws of the data (1 is as good as it gets); NFE: velocity evaluations of dopri5 at "
           "tolerance 1e-5; straightness: of the trajectories (0 = straight). Each card's figures are those "
           "`flowscope train` prints; hover them for what each means.")


def card(entry: zoo.ZooEntry) -> None:
    """One model: thumbnail, facts, metrics and an Open button (errors stay inside the card)."""
    st.markdown(f"**{entry.name}**")
    try:
        view = state.resolve(f"zoo:{entry.name}")
    except zoo.ZooError as err:
        st.error(str(err))
        return
    if view.flow.image is not None:
        image_card(entry, view)
        return
    problem = None if view.flow.dim == 2 else widgets.drawable(view)  # a projection needs the model's data
    if problem:
        st.error(f"It cannot be drawn: {problem}.")
        return
    try:
        axes = widgets.view_axes(view)  # a D > 2 model: its samples on the principal axes of its data
    except ValueError as err:
        st.error(f"It cannot be drawn: {err}.")
        return
    samples = state.memo("thumbnail", view, (axes.key,),
                         lambda: compute.project(axes.projection, compute.preview_samples(view.flow, 600)))
    st.plotly_chart(plots.thumbnail(samples), config={"staticPlot": True}, key=f"gallery_thumb_{entry.name}")
    source = f" · source {entry.source}" if entry.source else ""
    dims = f" · {view.flow.dim}-D, drawn on its principal axes" if view.flow.dim > 2 else ""
    st.caption(f"data **{entry.dataset}** · path **{entry.path}** · coupling {entry.coupling}{source}{dims}")
    recorded_caption(entry)
    st.caption(f"{entry.steps:,} steps" + (f" · :material/label: **conditional**: {len(view.flow.labels)} classes, "
                                           "classifier-free guidance" if view.flow.conditional else ""))
    if st.button("Open", key=f"gallery_open_{entry.name}", on_click=state.select, args=(f"zoo:{entry.name}",),
                 icon=":material/open_in_new:"):
        st.switch_page("views/paths.py")


def recorded_caption(entry: zoo.ZooEntry) -> None:
    """The model's recorded quality: its report's rows (as `flowscope train` prints them), notes on hover."""
    report = stored_report(entry.metrics)
    if report is None:
        st.caption("no recorded quality")
        return
    text, notes = widgets.report_caption(report.rows())
    st.caption(text, help=notes or None)


#: Samples on an image model's card (a 4 x 4 grid).
THUMBNAIL_IMAGES = 16


def image_card(entry: zoo.ZooEntry, view: state.ModelView) -> None:
    """An image model's card: a grid of its samples, its recorded Frechet distance and class accuracy, and an
    Open button that shows it on the Images page."""
    spec = view.flow.image
    assert spec is not None
    samples, _ = state.memo("image_thumbnail", view, (THUMBNAIL_IMAGES,),
                            lambda: image_samples(view.flow, THUMBNAIL_IMAGES, solver=VIEW_SOLVER))
    st.plotly_chart(plots.image_grid(samples, spec.low, spec.high, columns=4, image_px=40),
                    config={"staticPlot": True}, key=f"gallery_thumb_{entry.name}")
    kind = f"conditional on {len(view.flow.labels)} classes, " if view.flow.conditional else ""
    st.caption(f"data **{entry.dataset}** · images of {spec.channels} × {spec.height} × {spec.width} · {kind}path "
               f"**{entry.path}** · {entry.steps:,} steps")
    recorded_caption(entry)
    if st.button("Open", key=f"gallery_open_{entry.name}", on_click=state.select, args=(f"zoo:{entry.name}",),
                 icon=":material/open_in_new:"):
        st.switch_page(widgets.IMAGES_PAGE)


for start in range(0, len(chosen), 4):
    for column, entry in zip(st.columns(4), chosen[start : start + 4], strict=False):
        with column.container(border=True):
            card(entry)

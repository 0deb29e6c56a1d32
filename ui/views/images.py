"""Images: an image model's samples, their trajectories, x_t beside the predicted x1 at any t, the memorisation
check, the exact marginal field's samples beside the learned model's from the same noise, and its quality."""

from __future__ import annotations

import numpy as np
import streamlit as st

from flowscope.data.images import ImageData
from flowscope.evaluation.image_quality import DEQUANTISATION, evaluate_images, nearest_neighbours
from flowscope.evaluation.records import ImageReport
from flowscope.zoo import registry as zoo
from flowscope_ui import image_compute, plots, state, uploads, widgets
from flowscope_ui.image_compute import VIEW_SOLVER

widgets.header("Images", "An image model's samples; their trajectories from noise (t = 0) to image (t = 1); at any "
               "t, x_t beside the image the model predicts from it; each sample beside its nearest training image "
               "(a memorisation check); and the exact marginal field of the training images, which reproduces them, "
               "beside the learned field, which makes new ones, from the same noise.")
#: Samples drawn in the trajectory strips and at the t slider; samples beside their nearest training image;
#: noise points integrated by both the exact and the learned field.
SHOWN, NEIGHBOURS, EXACT = 6, 12, 8
SOLVER_TEXT = (f"{VIEW_SOLVER.method} solver, {VIEW_SOLVER.steps} fixed steps (the same for every view of every "
               "image model, so that a page stays quick)")

view = widgets.current_model(images=True)
if view.flow.image is None:
    st.info(f"**{view.label}** is not an image model: this page shows models of images (the other pages show it).")
    choices = state.image_model_options()
    if not choices:
        st.info("No image model yet: build the zoo's digits models (`flowscope zoo build --only digits-ot "
                "digits-cond`), or train one on the Train page (the built-in digits, or your own images).")
        st.page_link("views/train.py", label="Train an image model", icon=":material/model_training:")
        st.stop()
    for column, (key, label) in zip(st.columns(min(len(choices), 4)), list(choices.items())[:4], strict=False):
        column.button(f"Show {label.split('  ')[0]}", key=f"images_pick_{key}", on_click=state.select, args=(key,),
                      icon=":material/image:")
    st.stop()

widgets.model_caption(view)
spec = view.flow.image
low, high = spec.low, spec.high
guide = widgets.guidance_picker(view)
labelled = view.data_labels is not None
exact_label = guide.label if labelled else None
digits = image_compute.is_digits(view.dataset, spec)
n = image_compute.grid_count(spec)
seed = int(st.columns([1, 4])[0].number_input("Noise seed", 0, 9999, 0, key=f"images_seed_{view.key}",
                                              help="The seed of the Gaussian noise every view on this page starts "
                                                   "from."))
of = f" of class **{guide.name}** at guidance w = {guide.w:g}" if guide.label is not None else (
    " (unconditional: pick a class in the sidebar for class samples)" if view.conditional else "")

with st.spinner("Sampling ..."):
    run = state.memo("image_run", view, (n, seed, *guide.key),
                     lambda: image_compute.run_images(view.flow, n, label=guide.label, guidance=guide.w, seed=seed,
                                                      shown=SHOWN))
training = state.memo("training_images", view, (), lambda: image_compute.training_images(view.flow, view.data))
held_out = state.held_out_digits()[0] if digits else None
yard = state.memo("image_yardstick", view, (digits,), lambda: image_compute.yardstick(training, held_out))
distances, neighbours = state.memo("image_neighbours", view, (n, seed, *guide.key),
                                   lambda: nearest_neighbours(run.samples, training))

left, right = st.columns([1, 1])
with left:
    st.subheader("Samples")
    st.plotly_chart(plots.image_grid(run.samples, low, high, image_px=48), key="images_grid",
                    config={"displayModeBar": False})
    st.caption(f"{n} samples{of} from seeded noise (seed {seed}): {SOLVER_TEXT}, {run.nfe} velocity evaluations"
               f"{' of both the conditional and unconditional fields' if guide.label is not None and guide.w else ''}."
               f" Pixels from {low:g} (black) to {high:g} (white); values beyond are clipped.")
    st.download_button(f"Download these {n} samples (.npy)", uploads.samples_npy(run.samples),
                       file_name=f"flowscope-{view.label.split()[0]}-samples-seed{seed}.npy",
                       mime="application/octet-stream", on_click="ignore", icon=":material/download:",
                       key="images_download", help=f"float32, shape ({n}, {spec.channels}, {spec.height}, "
                                                   f"{spec.width}), in the data's units.")
with right:
    st.subheader("Trajectories")
    strips = [plots.ImageRow(f"sample {k + 1}", run.strips[k]) for k in range(len(run.strips))]
    st.plotly_chart(plots.image_rows(strips, low, high, column_titles=[f"t = {t:.2f}" for t in run.strip_times],
                                     image_px=48), key="images_strips", config={"displayModeBar": False})
    st.caption(f"x_t of the first {len(run.strips)} samples at {len(run.strip_times)} times, from the Gaussian noise "
               "at t = 0 to the image at t = 1 (noise is clipped to the pixel range too).")

st.subheader("x_t and the model's prediction of x1")
frames = [[plots.ImageRow(f"x_t at t = {plots.time_label(t)}", run.frames_xt[f]),
           plots.ImageRow("predicted x1", run.frames_x1[f])] for f, t in enumerate(run.frame_times)]
active = int(np.argmin(np.abs(run.frame_times - 0.5)))
st.plotly_chart(plots.animated_image_rows(frames, run.frame_times, low, high, active=active, image_px=72,
                                          column_titles=[f"sample {k + 1}" for k in range(SHOWN)]),
                key="images_predicted", config={"displayModeBar": False})
st.caption("Drag the t slider (or ▶ Play): its "
           f"{len(run.frame_times)} times are computed once and move in your browser, without the server. Bottom: "
           f"where the model's field at x_t heads, x1 ≈ {view.flow.path.name.upper()} path's x1 prediction from x_t "
           "and v(x_t, t) (for the OT path x_t + (1 − t) v(x_t, t)): a blurred average of the images x_t could "
           "still become early on, sharpening into the sample as t grows.")

st.subheader("Memorisation check: each sample beside its nearest training image")
shown = min(NEIGHBOURS, n)
pairs = [plots.ImageRow("sample", run.samples[:shown], [f"d = {d:.3g}" for d in distances[:shown]]),
         plots.ImageRow("nearest training image", training[neighbours[:shown]],
                        [f"#{i}" for i in neighbours[:shown]])]
st.plotly_chart(plots.image_rows(pairs, low, high, image_px=56), key="images_neighbours",
                config={"displayModeBar": False})
ratio = float(np.median(distances)) / max(yard.median, 1e-12)
cols = st.columns(3)
cols[0].metric(f"median distance of the {n} samples", f"{np.median(distances):.3g}")
cols[1].metric(f"yardstick: median distance of {yard.name}", f"{yard.median:.3g}",
               help=f"Measured on {yard.what}.")
cols[2].metric("samples / yardstick", f"{ratio:.2f}",
               help=f"Near 1: the samples are as far from the training images as {yard.name} are. Far below 1: "
                    "they copy training images.")
st.caption(f"d: Euclidean distance to the nearest of the {len(training):,} training images, in pixel units; "
           f"the yardstick is the same distance for {yard.what}. A copy would be at 0.")

st.subheader("Exact marginal field against the learned field, from the same noise")
support = widgets.field_support(view)
count = min(EXACT, n)
w_exact = guide.w if exact_label is not None else 0.0
try:
    exact = state.memo("image_exact", view, (count, seed, exact_label, w_exact),
                       lambda: image_compute.exact_images(view.flow, support, run.x0[:count], label=exact_label,
                                                          guidance=w_exact))
except ValueError as err:  # e.g. a class with no image among the exact field's support
    st.info(f"The exact field cannot be drawn here: {err}.")
    exact = None
if exact is not None:
    exact_d, exact_i = nearest_neighbours(exact, training)
    learned_d, learned_i = distances[:count], neighbours[:count]  # the grid's first samples, from the same noise
    rows = [plots.ImageRow("exact field", exact, [f"d = {d:.2g}" for d in exact_d]),
            plots.ImageRow("its nearest training image", training[exact_i], [f"#{i}" for i in exact_i]),
            plots.ImageRow("learned model", run.samples[:count], [f"d = {d:.3g}" for d in learned_d]),
            plots.ImageRow("its nearest training image", training[learned_i], [f"#{i}" for i in learned_i])]
    left, right = st.columns([3, 2])
    left.plotly_chart(plots.image_rows(rows, low, high, image_px=52), key="images_exact",
                      config={"displayModeBar": False})
    right.plotly_chart(plots.distance_histograms([
        (f"learned samples ({n})", distances, plots.SAMPLE_COLOR),
        (f"{yard.name} ({len(yard.distances)})", yard.distances, "#555555"),
        (f"exact field's samples ({count})", exact_d, plots.SOURCE_COLOR)]), key="images_distances")
    field_of = (f"the exact field of class {guide.name}" + (f", guided at w = {guide.w:g}," if guide.w else "")
                if exact_label is not None else "the exact marginal field")
    st.caption(f"Both start from the same {count} noise images (the first of the grid's). Top: {field_of} of the "
               f"{len(support):,} training images, u_t(x) = Σ_i w_i(x, t) u_t(x | x1_i), integrated with the same "
               "solver: it is the minimiser of the flow matching loss on the training set, and it lands on training "
               f"images (median distance {np.median(exact_d):.2g}). Below: the learned model from the same noise "
               f"(median distance {np.median(learned_d):.3g}, against {yard.median:.3g} for {yard.name}): near that "
               "yardstick it makes new images, near 0 it copies."
               + (" This model's images carry no class labels, so the exact field is the unconditional one."
                  if guide.label is not None and not labelled else ""))

st.subheader("Quality, with its yardsticks")


def live_accuracy() -> None:
    """The digits classifier's accuracy on the grid's class samples, beside its accuracy on real held-out digits."""
    classifier, why = state.digits_classifier()
    if classifier is None:
        st.caption(f"No classifier accuracy: {why}.")
        return
    if guide.label is None or classifier.config.classes != view.flow.labels:
        return
    hits = float((classifier.predict(run.samples) == guide.label).mean())
    images, labels = state.held_out_digits()
    real = state.memo("digits_real_accuracy", view, (), lambda: float((classifier.predict(images) == labels).mean()))
    cols = st.columns(2)
    cols[0].metric(f"classified as {guide.name} (these {n} samples, w = {guide.w:g})", f"{hits:.0%}")
    cols[1].metric("the classifier on real held-out digits", f"{real:.0%}",
                   help="How often the classifier (trained by the project on the training split, never on samples) "
                        "is right on real digits it never saw: the best a sampler can expect.")


def measured_report(w: float) -> ImageReport:
    """evaluate_images on as many samples as held-out digits, with the page's solver (about ten seconds)."""
    images, labels = state.held_out_digits()
    train = ImageData(training, spec, view.data_labels, view.flow.labels if labelled else (), "training images")
    held = ImageData(images, spec, labels, tuple(str(k) for k in range(10)), "held-out digits")
    return evaluate_images(view.flow, train, held, zoo.classifier("digits"), guidance=(w,), solver=VIEW_SOLVER,
                           nll_images=0)


if digits:
    live_accuracy()
    recorded = widgets.recorded_report(view)
    if isinstance(recorded, ImageReport) and recorded.fd_floor is not None:
        st.markdown("**Recorded when the model was built** (dopri5 at tolerance 1e-5, as many samples as held-out "
                    "digits, seed 0)")
        st.dataframe(widgets.report_table(recorded.rows()), hide_index=True)
        if recorded.bits_per_dim is not None:
            st.caption(f"Held-out likelihood: {recorded.bits_per_dim:.2f} bits per dimension ({DEQUANTISATION}).")
    w = guide.w if guide.label is not None else 0.0
    measured_key = f"_images_measured_{view.key}_{w}"
    if st.button(f"Measure now ({VIEW_SOLVER.method}, {VIEW_SOLVER.steps} steps"
                 + (f", w = {w:g}" if view.conditional else "") + ")", key="images_measure",
                 icon=":material/speed:", help="Samples as many images as there are held-out digits (for a conditional "
                                               "model, every class in the training proportions) and measures them: "
                                               "about ten seconds."):
        st.session_state[measured_key] = True
    if st.session_state.get(measured_key):
        with st.spinner("Sampling and measuring (the digits classifier is trained first if the zoo lacks it) ..."):
            report = state.memo("image_report", view, (w,), lambda: measured_report(w))
        st.markdown(f"**Measured now** ({SOLVER_TEXT})")
        st.dataframe(widgets.report_table(report.rows()), hide_index=True)
    st.caption("FD: Frechet distance between the features of samples and of the training images, in the project's "
               "own digits classifier (no downloaded network); its floor is the FD of real held-out digits to the "
               "training images, so FD / floor near 1 is as good as real data. Class accuracy: how often the "
               "classifier reads a conditional sample as its class (worst class: its lowest; real accuracy: the "
               "classifier on real held-out digits). NN distance: the median distance of a sample to its nearest "
               "training image; held-out NN: the same for held-out digits; NN / held-out: their ratio (below 1: "
               "closer than new real digits).")
else:
    st.caption("The Frechet distance and class accuracy need a classifier of these images' classes: the project "
               "trains one for the built-in digits (`flowscope eval` trains one for a labelled upload). The "
               "memorisation check above is this model's measure.")

"""The Train page's image models: images uploaded (.npy / .npz / .zip of PNGs) or the built-in digits, a U-Net
trained live as a background job, and the result with its samples and downloads.

The page (views/train.py) routes an image upload or the digits here; the training itself is `trainer.run_images`
in a job's worker thread (`jobs`), like the vector models'.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import streamlit as st
from streamlit.runtime.uploaded_file_manager import UploadedFile

from flowscope import FlowModel, SolverConfig, StepInfo
from flowscope.data.image_loader import load_images_bytes
from flowscope.data.images import ImageData
from flowscope.data.loader import DataError
from flowscope.evaluation.image_quality import image_samples
from flowscope.io import checkpoint
from flowscope.training import recipes

from . import image_compute, jobs, plots, state, trainer, uploads, widgets
from .image_compute import VIEW_SOLVER

__all__ = ["DIGITS", "ChosenImages", "digits", "read", "section", "show_result"]

#: The Train page's choice of the built-in digits.
DIGITS = "Digits (8 × 8 images)"
#: Images shown in the data's preview; samples in a live preview and in the result.
PREVIEW_IMAGES, LIVE_SAMPLES, RESULT_SAMPLES = 32, 16, 32
#: The live preview's solver: cheap (it runs a dozen times during a training).
LIVE_SOLVER = SolverConfig(method="midpoint", steps=10)
#: Samples offered for download beside the model (drawn when the button is clicked).
DOWNLOAD_SAMPLES = 256
LR_OPTIONS = (1e-4, 3e-4, 1e-3, 2e-3, 3e-3)
REPORT_EVERY = 20


@dataclass(frozen=True)
class ChosenImages:
    """Images to train on: the set (with its classes, if any), a key naming the choice, and what was said about
    how it was read (e.g. channels-last)."""

    images: ImageData
    key: str

    @property
    def name(self) -> str:
        """The data's name (the file's, or "digits")."""
        return self.images.name


def digits() -> ChosenImages:
    """The built-in digits' training split: the held-out fifth stays unseen, for the Images page's yardsticks."""
    trained = image_compute.held_out_digits()[0]
    return ChosenImages(trained, "builtin:digits")


def read(upload: uploads.KeptFile | UploadedFile) -> ChosenImages | None:
    """An image upload's images (read once per file in this session), or the loader's named problem shown."""
    cached = st.session_state.get("_train_images")
    if cached is None or cached[0] != upload.file_id:
        try:
            found: ImageData | str = load_images_bytes(upload.getvalue(), upload.name)
        except DataError as err:
            found = f"This file cannot be used. {err}"
        cached = (upload.file_id, found)
        st.session_state["_train_images"] = cached
    if isinstance(cached[1], str):
        st.error(cached[1])
        return None
    return ChosenImages(cached[1], f"{upload.file_id}:images")


def describe(chosen: ChosenImages) -> None:
    """What the images are (count, shape, pixel range, classes) and a grid of the first of them."""
    data = chosen.images
    spec = data.spec
    levels = f", {spec.levels} levels" if spec.levels else ", continuous values"
    classes = ""
    if data.labels is not None:
        counts = np.bincount(data.labels, minlength=len(data.names))
        classes = f"; {len(data.names)} classes: " + ", ".join(f"{name} ({count:,})" for name, count in
                                                              zip(data.names[:10], counts[:10], strict=True))
        classes += ", …" if len(data.names) > 10 else ""
    st.caption(f"{data.name}: {len(data):,} images of {spec.channels} × {spec.height} × {spec.width} pixels, values "
               f"{spec.low:g} to {spec.high:g}{levels}{classes}." + (f" {data.note}." if data.note else ""))
    st.plotly_chart(plots.image_grid(data.images[:PREVIEW_IMAGES], spec.low, spec.high, columns=16, image_px=40),
                    key="train_image_preview", config={"displayModeBar": False})


def choose_settings(chosen: ChosenImages) -> trainer.ImageTrainSettings:
    """Path, steps, U-Net width, learning rate and (for images with classes) whether to condition on them."""
    c = st.columns(4)
    paths = [p for p in trainer.PATHS if p != "icfm"]
    path = c[0].selectbox("Probability path", paths, key="train_image_path",
                          help="The paper's OT path (straight), or a diffusion path (VP, VE).")
    steps = c[1].number_input(f"Steps (at most {uploads.MAX_STEPS:,})", 50, uploads.MAX_STEPS,
                              trainer.ImageTrainSettings.steps, 50, key="train_image_steps")
    base = c[2].select_slider("U-Net width (channels)", trainer.IMAGE_WIDTHS, trainer.ImageTrainSettings.base,
                              key="train_image_width")
    lr = c[3].select_slider("Learning rate", LR_OPTIONS, trainer.ImageTrainSettings.lr, format_func="{:g}".format,
                            key="train_image_lr")
    names = chosen.images.names
    conditional = st.checkbox(f"Conditional on its {len(names)} classes" if names else
                              "Conditional on its classes (these images have none)", key="train_image_conditional",
                              disabled=chosen.images.labels is None,
                              help="Learn each class (its folder in a zip): the Images page then draws a chosen class "
                                   "with classifier-free guidance." if names else
                                   "These images have no classes (a zip with one folder per class has).")
    settings = trainer.ImageTrainSettings(path=path, steps=int(steps), base=int(base), lr=float(lr),
                                          conditional=bool(conditional and chosen.images.labels is not None))
    st.caption(f"A U-Net (residual blocks with group norm, attention at the lowest resolution) of {settings.base} "
               f"channels on the images as they are; batches of {settings.batch_size}, AdamW with warm-up and cosine "
               "decay, EMA weights, one CPU thread: about 0.05–0.1 s a step for 8 × 8 images here, more for larger "
               f"ones. Starting point: the quick image recipe ({trainer.IMAGE_RECIPE.name}: "
               f"{trainer.IMAGE_RECIPE.why}); the command line uses `{recipes.IMAGES.name}`, "
               f"{recipes.IMAGES.config.steps:,} steps at batch {recipes.IMAGES.config.batch_size}."
               + (f" Conditional: labels dropped with probability {settings.label_dropout:g} so that it also learns "
                  "the unconditional field that guidance needs." if settings.conditional else ""))
    return settings


def training_work(chosen: ChosenImages, settings: trainer.ImageTrainSettings,
                  models: dict[str, state.ModelView]) -> Callable[[jobs.Job], str]:
    """What an image training job does in its worker thread (no Streamlit calls): train with progress and a grid of
    live samples reported into the job; the model is kept in `models`."""
    data = chosen.images
    chart_every = max(100, settings.steps // 8)

    def work(job: jobs.Job) -> str:
        def report(info: StepInfo, flow: FlowModel, losses: list[float]) -> None:
            preview = None
            if info.step % chart_every == 0 or info.step == info.steps:
                preview = image_samples(flow, LIVE_SAMPLES, solver=LIVE_SOLVER)[0]
            job.report(info.step, float(np.mean(losses[-50:])), info.seconds, losses, preview)

        outcome = trainer.run_images(data, settings, report=report, every=REPORT_EVERY,
                                     should_stop=lambda: job.stop_requested)
        info = {"note": outcome.message, "status": outcome.status, "losses": outcome.losses, "settings": settings,
                "seconds": outcome.seconds}
        by = " · by class" if outcome.flow.conditional else ""
        flow = outcome.flow.to("cpu")
        assert flow.data is not None
        view = state.new_session_model(models, flow, flow.data.numpy(), f"{data.name} · {settings.path} · U-Net · "
                                       f"{outcome.steps_done} steps{by}", data.name, info,
                                       labels=None if flow.data_labels is None else flow.data_labels.numpy())
        return view.key

    return work


def section(chosen: ChosenImages) -> None:
    """The Train page's image block: the data, the settings and the Train button (one training per session)."""
    describe(chosen)
    st.subheader("2 · Model and training")
    settings = choose_settings(chosen)
    running = [job for job in widgets.my_jobs() if job.active]
    if not st.button("Train", type="primary", icon=":material/play_arrow:", key="train_go", disabled=bool(running),
                     help="One training at a time per session." if running else None):
        return
    widgets.start_job(f"{chosen.name} · {settings.path} · U-Net", settings.steps,
                      training_work(chosen, settings, state.session_models()))


def show_result(view: state.ModelView, key: str) -> None:
    """An image model's result: loss curve, a grid of samples, the model and its samples to download, and the
    way to the Images page."""
    spec = view.flow.image
    assert spec is not None
    left, right = st.columns(2)
    left.plotly_chart(plots.loss_curve(view.info.get("losses", [])), key="train_loss")
    samples, _ = state.memo("result_samples", view, (RESULT_SAMPLES,),
                            lambda: image_samples(view.flow, RESULT_SAMPLES, solver=VIEW_SOLVER))
    with right:
        st.markdown("**samples**")
        st.plotly_chart(plots.image_grid(samples, spec.low, spec.high, image_px=44), key="train_samples",
                        config={"displayModeBar": False})
    name = f"flowscope-{key.replace(':', '-')}"
    flow = view.flow
    left, middle = st.columns(2)
    left.download_button("Download the model (.safetensors)", lambda: checkpoint.to_bytes(flow),
                         file_name=f"{name}.safetensors", mime="application/octet-stream", on_click="ignore",
                         icon=":material/download:", key="train_download")
    middle.download_button(f"Download {DOWNLOAD_SAMPLES} samples (.npy)",
                           lambda: uploads.samples_npy(image_samples(flow, DOWNLOAD_SAMPLES, solver=VIEW_SOLVER)[0]),
                           file_name=f"{name}-samples.npy", mime="application/octet-stream", on_click="ignore",
                           icon=":material/download:", key="train_download_npy")
    st.caption(f"Samples from seeded noise ({VIEW_SOLVER.method}, {VIEW_SOLVER.steps} steps), as an array of shape "
               f"({DOWNLOAD_SAMPLES}, {spec.channels}, {spec.height}, {spec.width}) in your images' units "
               f"({spec.low:g} to {spec.high:g}), drawn when you click (the model file holds its training images too, "
               "so it opens here again with them)."
               + (" The samples above are unconditional; the Images page draws a chosen class and guidance scale."
                  if view.conditional else ""))
    st.page_link(widgets.IMAGES_PAGE, label="Open the Images page: samples, trajectories, x1 predictions, "
                                            "memorisation check", icon=":material/image:")

"""Train: upload data (or pick a toy set), train a flow matching model live, explore and download it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np
import streamlit as st
from streamlit.runtime.uploaded_file_manager import UploadedFile

from flowscope import FlowModel, MLPConfig, StepInfo
from flowscope.data import selection
from flowscope.data.datasets import ALL_DATASETS, DATASETS, dataset_columns, dataset_labels
from flowscope.data.image_loader import is_image_upload
from flowscope.data.labels import LabelError, Labels, encode_labels
from flowscope.data.loader import DataError, Table
from flowscope.io import checkpoint
from flowscope.training import recipes
from flowscope_ui import compute, image_train, jobs, plots, reflow_panel, state, trainer, uploads, widgets
from flowscope_ui.image_train import ChosenImages

widgets.header("Train", "Upload a data file or images (or pick a toy dataset or the digits), train a flow matching "
               "model on it while the loss curve and samples update, then explore it in every view or download it; "
               "your data and models stay in this browser session only.")
LR_OPTIONS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 1.0, 10.0, 100.0, 1e3, 1e4)
#: Steps between progress updates: each is a point where a click on Stop can end training.
REPORT_EVERY = 20
#: A file to train on: the uploader's, or the one kept in the session from an earlier visit of the page.
Upload: TypeAlias = UploadedFile | uploads.KeptFile
KEPT_UPLOAD, USING_KEPT = "_train_kept_upload", "_train_using_kept"
PATH_LABELS = {"ot": "OT (CondOT, straight)", "vp": "VP diffusion", "ve": "VE diffusion", "cosine": "cosine",
               "icfm": f"I-CFM (sigma = {trainer.ICFM_SIGMA})"}


def read_upload(upload: Upload) -> Table | None:
    """The parsed upload (kept per file in this session, so reruns do not parse it again), or an error shown."""
    cached = st.session_state.get("_train_table")
    if cached is not None and cached[0] == upload.file_id:
        return cached[1]
    try:
        table = uploads.read_table(upload.getvalue(), upload.name)
    except DataError as err:
        st.error(f"This file cannot be used. {err}")
        return None
    st.session_state["_train_table"] = (upload.file_id, table)
    return table


def fresh_choices(upload: Upload, table: Table) -> None:
    """A new upload gets its own column, label and scaling choices: every column, no label, the suggested scaling.

    They are set through st.session_state, not as the widgets' defaults: the browser keeps a keyed widget's last
    value and sends it back with the next run, so a new file's defaults alone left the previous file's columns
    chosen (none of them among the new file's: 'choose at least 2 columns'). A value set here is sent to the
    browser. Also set when a widget's key is gone (Streamlit drops it while another page is shown)."""
    new = st.session_state.get("_train_choices_of") != upload.file_id
    st.session_state["_train_choices_of"] = upload.file_id
    defaults = {"train_columns": list(table.columns), "train_label": NO_LABEL,
                "train_std": uploads.suggest_standardise(table)}
    for key, value in defaults.items():
        if new or key not in st.session_state:
            st.session_state[key] = value


@dataclass(frozen=True)
class Chosen:
    """The data to train on: points [n, D] in data units, their name and columns, and the normalisation; for
    a conditional model, a class index per point and the class names."""

    points: np.ndarray
    name: str
    columns: tuple[str, ...] | None
    normalize: str
    key: str  # identifies the choice (file, columns, normalisation, labels) for the preview's cache
    labels: np.ndarray | None = None
    label_names: tuple[str, ...] = ()
    label_column: str | None = None


NO_LABEL = ""


def label_options(table: Table) -> list[str]:
    """The label column choices of an upload: none, its text columns, then its numeric columns."""
    text = [c.name for c in table.dropped if c.name in table.text]
    return [NO_LABEL, *text, *(c for c in table.columns if c not in text)]


def read_labels(upload: Upload, table: Table, column: str) -> Labels | None:
    """The classes of a label column (kept per file and column in this session), or the core's message shown."""
    cached = st.session_state.get("_train_labels")
    if cached is not None and cached[:2] == (upload.file_id, column):
        labels: Labels | None = cached[2]
        if labels is None:
            st.error(cached[3])
        return labels
    try:
        cells = selection.label_column(table, column, upload.name).cells  # the CLI's --labels rule
        found: Labels | None = encode_labels(cells, file=upload.name, column=column)
        message = ""
    except (LabelError, DataError) as err:
        found, message = None, f"This label column cannot be used. {err}"
        st.error(message)
    st.session_state["_train_labels"] = (upload.file_id, column, found, message)
    return found


def class_counts(labels: np.ndarray, names: tuple[str, ...]) -> str:
    """'a (120), b (80), …': the classes and their points, for captions (the first 8)."""
    counts = np.bincount(labels, minlength=len(names))
    shown = ", ".join(f"{name} ({count:,})" for name, count in zip(names[:8], counts[:8], strict=True))
    return shown + (f", and {len(names) - 8} more" if len(names) > 8 else "")


def left_out(table: Table) -> None:
    """Name the text columns the loader left out of the numbers, with the loader's reason."""
    if table.dropped:
        st.info("Left out of training (text, not numbers): " + "; ".join(
            f"**{c.name}** (column {c.index + 1}): {c.reason}" for c in table.dropped))


def uploaded_or_kept() -> Upload | None:
    """The file uploader's file, kept in the session; back on the page (the uploader then is empty), the kept
    file, said so; None when the user removed it or never uploaded one."""
    returning = "train_upload" not in st.session_state  # the uploader was not on the last page shown
    upload = st.file_uploader(
        f"A CSV, TSV, TXT, .npy or .npz file: at most {uploads.MAX_UPLOAD_MB} MB, {uploads.MAX_ROWS:,} rows and "
        f"{uploads.MAX_COLUMNS} columns; or images: an .npy / .npz array of shape (n, H, W) or (n, C, H, W), or a "
        ".zip of PNGs (one folder per class, optionally)",
        key="train_upload")  # any name: the loader explains what it refuses
    kept: uploads.KeptFile | None = st.session_state.get(KEPT_UPLOAD)
    if upload is not None:
        if kept is None or kept.file_id != upload.file_id:
            st.session_state[KEPT_UPLOAD] = uploads.KeptFile(upload.file_id, upload.name, upload.getvalue())
        st.session_state[USING_KEPT] = False
        return upload
    if kept is not None and (returning or st.session_state.get(USING_KEPT)):
        st.session_state[USING_KEPT] = True
        left, right = st.columns([5, 1])
        left.info(f"Using **{kept.name}**, uploaded earlier in this session; upload another file to replace it.")
        if right.button("Forget it", key="train_forget_upload"):
            st.session_state.pop(KEPT_UPLOAD, None)
            st.session_state[USING_KEPT] = False
            st.rerun()
        return kept
    st.session_state.pop(KEPT_UPLOAD, None)  # removed from the uploader on this page: forgotten
    return None


def choose_data() -> Chosen | ChosenImages | None:
    """The training data and their name, from an upload (points or images), a toy dataset or the built-in digits
    (None until there are some)."""
    kind = st.radio("Data", ["Upload a file", "Toy dataset", image_train.DIGITS], horizontal=True, key="train_kind")
    if kind == image_train.DIGITS:
        return image_train.digits()
    if kind == "Toy dataset":
        left, middle, right = st.columns([2, 2, 1])
        name = left.selectbox("Dataset", DATASETS, index=DATASETS.index("moons"), key="train_toy")
        n = middle.slider("Points", 500, 20_000, 5000, 500, key="train_n")
        names = dataset_labels(name)
        conditional = right.checkbox("conditional (natural labels)", key="train_conditional", disabled=not names,
                                     help=f"Train a model conditional on the parts of {name}: "
                                          + ", ".join(names[:8]) + (", …" if len(names) > 8 else "") + "."
                                     if names else f"{name} has no natural labels.")
        if conditional and names:
            points, labels, names = state.toy_labelled(name, n, 1)
            st.caption(f"A conditional model of {len(names)} classes: {class_counts(labels, names)}.")
            return Chosen(points, name, None, "column", f"toy:{name}:{n}:labelled", labels, names, "natural labels")
        return Chosen(state.toy_data(name, n, 1), name, None, "column", f"toy:{name}:{n}")
    upload = uploaded_or_kept()
    if upload is None:
        st.info("Upload a file of points (one row per point, two or more numeric columns; text columns are left "
                "out) or of images, or pick a toy dataset or the digits.")
        return None
    if is_image_upload(upload.getvalue(), upload.name):
        return image_train.read(upload)
    table = read_upload(upload)
    if table is None:
        return None
    n, d = table.values.shape
    st.caption(f"{upload.name}: {n:,} rows × {d} columns ({', '.join(table.columns[:8])}{', …' if d > 8 else ''})"
               + (f", and {len(table.dropped)} text column{'s' if len(table.dropped) > 1 else ''} left out"
                  if table.dropped else ""))
    left_out(table)
    with st.expander("First rows"):
        first = {c: table.values[:20, j] for j, c in enumerate(table.columns[:12])}
        first.update({c: np.asarray(cells[:20], dtype=object) for c, cells in list(table.text.items())[:4]})
        st.dataframe(first, hide_index=True)
    fresh_choices(upload, table)
    label = st.selectbox("Label column (optional)", label_options(table), key="train_label",
                         format_func=lambda c: "none: an unconditional model" if c == NO_LABEL else
                         f"{c} ({'text' if c in table.text else 'numbers'})",
                         help="A column of classes (text, or whole numbers): the model learns the data of each "
                              "class (a conditional model, which the views draw for a chosen class and guidance "
                              "scale). It is not one of the columns the model learns.")
    left, right = st.columns([3, 2])
    columns = left.multiselect(f"Columns the model learns (all {d} numeric columns unless you drop some)",
                               table.columns, key="train_columns",
                               help="The model learns the joint distribution of these columns.")
    standardise = right.checkbox("Standardise each column (mean 0, std 1)", key="train_std",
                                 help="How the model normalises the data it learns: each column by "
                                 "its own mean and std (useful when the scales differ), or one scale for all "
                                 "columns. The model, its samples and the views stay in your data's units.")
    features = [c for c in columns if c != label]  # the label column is never a feature (the CLI's rule too)
    try:
        column = None if label == NO_LABEL else selection.label_column(table, label, upload.name)
        selection.feature_columns(table, None, upload.name, column, min_columns=2)  # the file has enough columns
        selection.feature_columns(table, features, upload.name, column, min_columns=2)  # and enough are chosen
    except DataError as err:
        st.error(f"These columns cannot be used. {err}")
        return None
    labels = read_labels(upload, table, label) if label != NO_LABEL else None
    if label != NO_LABEL and labels is None:
        return None
    try:
        points = uploads.select_columns(table, features)
    except ValueError as err:
        st.error(str(err))
        return None
    if label in columns:
        st.caption(f"{label!r} is the label column: left out of the columns the model learns.")
    constant = uploads.constant_columns(table, features)
    if constant:
        st.caption(f"Constant: {', '.join(map(repr, constant))}; the model keeps "
                   f"{'them at their values' if len(constant) > 1 else 'it at its value'}.")
    normalize = "column" if standardise else "global"
    key = f"{upload.file_id}:{'|'.join(features)}:{normalize}:{label}"
    if labels is None:
        return Chosen(points, upload.name, tuple(features), normalize, key)
    st.caption(f"A conditional model of {len(labels.names)} classes of {label!r}: "
               f"{class_counts(labels.indices, labels.names)}.")
    return Chosen(points, upload.name, tuple(features), normalize, key, labels.indices, labels.names, label)


def preview_axes(chosen: Chosen) -> compute.ViewAxes:
    """The 2-D view of the chosen data (their principal axes for d > 2), kept for this choice in the session."""
    cached = st.session_state.get("_train_axes")
    if cached is None or cached[0] != chosen.key:
        cached = (chosen.key, compute.data_axes(chosen.points, chosen.columns, chosen.normalize))
        st.session_state["_train_axes"] = cached
    axes: compute.ViewAxes = cached[1]
    return axes


def choose_settings(normalize: str, conditional: bool = False) -> trainer.TrainSettings:
    """Path, coupling, steps, width and learning rate, with their caps shown."""
    c = st.columns(5)
    path = c[0].selectbox("Probability path", trainer.PATHS, format_func=PATH_LABELS.__getitem__, key="train_path")
    coupling = c[1].selectbox("Coupling", trainer.COUPLINGS, key="train_coupling",
                              help="independent: random pairs (the paper); ot: exact minibatch OT pairs; "
                                   "sinkhorn: entropic OT pairs.")
    recipe, default = trainer.RECIPE, trainer.TrainSettings()
    steps = c[2].number_input(f"Steps (at most {uploads.MAX_STEPS:,})", 100, uploads.MAX_STEPS, default.steps, 100,
                              key="train_steps")
    width = c[3].select_slider(f"Model width (at most {uploads.MAX_WIDTH})", trainer.WIDTHS, default.width,
                               key="train_width")
    lr = c[4].select_slider("Learning rate", LR_OPTIONS, default.lr, format_func="{:g}".format, key="train_lr")
    st.caption(f"Recipe **{recipe.name}** (`flowscope.training.recipes.{recipe.name.upper()}`): {recipe.why}; "
               f"`flowscope train` uses the default, {recipes.DEFAULT.config.steps:,} steps of batch "
               f"{recipes.DEFAULT.config.batch_size}. "
               f"An MLP of depth {default.depth} on x, {MLPConfig.fourier_features} random Fourier "
               f"features of x and t; batches of {default.batch_size}, AdamW with warm-up and cosine "
               "decay, EMA weights; one CPU thread per training."
               + (f" Conditional: each training point's label is replaced by “no label” with probability "
                  f"{trainer.TrainSettings.label_dropout:g}, so that the model also learns the unconditional field "
                  "that classifier-free guidance needs." if conditional else ""))
    return trainer.TrainSettings(path=path, coupling=coupling, steps=int(steps), width=int(width), lr=float(lr),
                                 normalize=normalize)


def training_work(chosen: Chosen, settings: trainer.TrainSettings, models: dict[str, state.ModelView],
                  axes: compute.ViewAxes) -> Callable[[jobs.Job], str]:
    """What a training job does in its worker thread (no Streamlit calls): train with progress and a live
    sample preview reported into the job, Stop honoured at each report; the model kept in `models`."""
    points, name = chosen.points, chosen.name
    chart_every = max(100, settings.steps // 15)

    def work(job: jobs.Job) -> str:
        def report(info: StepInfo, flow: FlowModel, losses: list[float]) -> None:
            preview = None
            if info.step % chart_every == 0 or info.step == info.steps:
                preview = compute.project(axes.projection, compute.preview_samples(flow, 500))
            job.report(info.step, float(np.mean(losses[-50:])), info.seconds, losses, preview)

        outcome = trainer.run(points, settings, dataset=name, columns=chosen.columns, report=report,
                              every=REPORT_EVERY, labels=chosen.labels, label_names=chosen.label_names,
                              should_stop=lambda: job.stop_requested)
        info = {"note": outcome.message, "status": outcome.status, "losses": outcome.losses,
                "settings": settings, "seconds": outcome.seconds}
        by = "" if chosen.labels is None else f" · by {chosen.label_column}"
        view = state.new_session_model(models, outcome.flow.to("cpu"), points, f"{name} · {settings.path} · "
                                       f"{outcome.steps_done} steps{by}", name, info, labels=chosen.labels)
        return view.key

    return work


def start_training(chosen: Chosen, settings: trainer.TrainSettings) -> None:
    """Submit the training as this session's background job (it goes on while other pages are open)."""
    widgets.start_job(f"{chosen.name} · {settings.path}", settings.steps,
                      training_work(chosen, settings, state.session_models(), preview_axes(chosen)))


@st.fragment(run_every=1.0)
def live_training(shown: np.ndarray, titles: tuple[str, str], pixels: tuple[float, float] | None = None) -> None:
    """The running job's progress, Stop, live loss curve and samples (refreshed each second, this part only); an
    image training's samples are drawn on the pixel range `pixels` of its images (None: the samples' own)."""
    active = [job for job in widgets.my_jobs() if job.active]
    if not active:
        st.rerun(scope="app")  # it ended: the page shows the result
    job = active[0]
    stop_col, bar_col = st.columns([1, 6])
    stop_col.button("Stop", icon=":material/stop:", key="train_stop", on_click=job.stop, disabled=job.stop_requested,
                    help="Stops at the current step and keeps that model.")
    text = widgets.job_line(job) if job.state == "waiting" or job.step else "Starting…"
    bar_col.progress(job.step / max(job.steps, 1), text=text)
    st.caption("The training runs in the background: open other pages meanwhile, its progress stays in the "
               "sidebar, and its model is selected in every view when it is done.")
    left, right = st.columns(2)
    if job.losses:
        left.plotly_chart(plots.loss_curve(list(job.losses)), key="train_live_loss")
    if job.preview is not None and np.ndim(job.preview) == 4:  # an image model's samples [n, C, H, W]
        right.markdown("**samples now**")
        low, high = pixels or (float(job.preview.min()), float(job.preview.max()))
        right.plotly_chart(plots.image_grid(job.preview, low, high, image_px=44),
                           key="train_live_samples", config={"displayModeBar": False})
    elif job.preview is not None:
        right.plotly_chart(plots.scatter(job.preview, data=shown, title="samples now", labels=titles),
                           key="train_live_samples")


def show_result(key: str) -> None:
    """The last training's outcome: status, loss curve, samples, download and links to the views."""
    view = state.session_models().get(key)
    if view is None:
        return
    status, note = view.info.get("status"), view.info.get("note", "")
    {"done": st.success, "stopped": st.warning}.get(status, st.error)(f"{view.label}: {note}")
    if view.flow.image is not None:
        image_train.show_result(view, key)
        return
    left, right = st.columns(2)
    left.plotly_chart(plots.loss_curve(view.info.get("losses", [])), key="train_loss")
    axes = widgets.remembered_axes(view)
    samples = state.memo("preview", view, (axes.key,),
                         lambda: compute.project(axes.projection, compute.preview_samples(view.flow, 1000)))
    right.plotly_chart(plots.scatter(samples, data=widgets.projected_data(view, axes, 1500), title="samples",
                                     labels=axes.titles or ("x", "y")), key="train_samples")
    st.download_button("Download the model (.safetensors)", checkpoint.to_bytes(view.flow),
                       file_name=f"flowscope-{key.replace(':', '-')}.safetensors", mime="application/octet-stream",
                       on_click="ignore", icon=":material/download:", key="train_download")
    samples_download(view, key)
    if view.conditional:
        st.caption(f"A conditional model of {len(view.flow.labels)} classes; the samples above are its unconditional "
                   "ones. Choose a class and a guidance scale in the sidebar of Paths or Fields.")
    st.markdown("It is now the model shown in every view:")
    links = st.columns(5)
    for col, (page, label) in zip(links, [("views/paths.py", "Paths"), ("views/fields.py", "Fields"),
                                          ("views/marginals.py", "Marginals"), ("views/compare.py", "Compare"),
                                          ("views/home.py", "Flow")], strict=True):
        col.page_link(page, label=f"Open {label}")


#: Samples offered for download beside the model.
DOWNLOAD_SAMPLES = 2000


def samples_download(view: state.ModelView, key: str) -> None:
    """Download buttons for DOWNLOAD_SAMPLES samples of the model (all its columns, data units): CSV and .npy."""
    samples = state.memo("download_samples", view, (DOWNLOAD_SAMPLES,),
                         lambda: compute.preview_samples(view.flow, DOWNLOAD_SAMPLES))
    csv_bytes, npy_bytes = uploads.samples_csv(samples, view.column_names), uploads.samples_npy(samples)
    name = f"flowscope-{key.replace(':', '-')}-samples"
    left, right = st.columns(2)
    left.download_button(f"Download {DOWNLOAD_SAMPLES:,} samples (.csv)", csv_bytes, file_name=f"{name}.csv",
                         mime="text/csv", on_click="ignore", icon=":material/download:", key="train_download_csv")
    right.download_button(f"Download {DOWNLOAD_SAMPLES:,} samples (.npy)", npy_bytes, file_name=f"{name}.npy",
                          mime="application/octet-stream", on_click="ignore", icon=":material/download:",
                          key="train_download_npy")
    st.caption(f"Samples from seeded noise (dopri5 at tolerance 1e-3), in your data's units, one column per "
               f"column of the data ({', '.join(view.column_names[:6])}{', …' if view.flow.dim > 6 else ''}).")


def model_data(flow: FlowModel, name: str, chosen: Chosen | None) -> tuple[np.ndarray, np.ndarray | None, str] | None:
    """The data an uploaded model is shown against, their labels (a conditional model's, when known) and their
    name: the sample it carries, else the data chosen above (of its dimension: `uploads.read_model` checked),
    else the built-in dataset it names; or None, with the reason shown."""
    dataset = str(flow.info.get("dataset", ""))
    if flow.data is not None:
        labels = None if flow.data_labels is None else flow.data_labels.detach().cpu().numpy()
        return flow.data.detach().cpu().numpy(), labels, dataset or "its data"
    if flow.image is not None:
        c, h, w = flow.image.shape
        st.error(f"{name} is an image model ({c} × {h} × {w} pixels) that carries no training images (saved with "
                 "--no-data-sample): the explorer shows an image model beside the images it learned, so it needs "
                 "them in the file.")
        return None
    if chosen is not None:
        same = chosen.labels is not None and chosen.label_names == flow.labels
        return chosen.points, chosen.labels if same else None, chosen.name
    if dataset in ALL_DATASETS and len(dataset_columns(dataset)) == flow.dim:
        try:
            if flow.conditional and dataset_labels(dataset) == flow.labels:
                points, labels, _ = state.toy_labelled(dataset, state.VIEW_POINTS, 0)
                return points, labels, dataset
            return state.toy_data(dataset, state.VIEW_POINTS, 0), None, dataset
        except ValueError as err:  # a real table whose package is missing
            st.error(f"{name} was trained on {dataset}, which cannot be loaded here: {err}")
            return None
    st.error(f"{name} is a {flow.dim}-dimensional model trained on {dataset or 'unknown data'} and carries no data "
             f"sample: choose its data ({flow.dim} columns) above first.")
    return None


def explore_model_file(chosen: Chosen | None) -> None:
    """Validate an uploaded .safetensors model and add it to this session, shown against its data."""
    upload = st.file_uploader("Or explore a .safetensors model saved by flowscope (on this page or by "
                              "`flowscope train`)", key="train_model_upload")
    if upload is None:
        return
    done: dict[str, str] = st.session_state.setdefault("_train_model_files", {})
    if upload.file_id in done:
        st.success(f"{upload.name} is in your models; it is shown in the views when selected in the sidebar.")
        return
    try:
        flow = uploads.read_model(upload.getvalue(), upload.name,
                                  data_dim=None if chosen is None else chosen.points.shape[1])
    except checkpoint.CheckpointError as err:
        st.error(f"This model cannot be used. {err}")
        return
    found = model_data(flow, upload.name, chosen)
    if found is None:
        return
    data, labels, dataset = found
    view = state.add_session_model(flow, data, upload.name, dataset or "upload", {"note": "uploaded model"}, labels)
    done[upload.file_id] = view.key
    st.rerun()


st.subheader("1 · Data")
chosen = choose_data()
if isinstance(chosen, ChosenImages):
    image_train.section(chosen)
elif chosen is not None:
    axes = preview_axes(chosen)
    dims = chosen.points.shape[1]
    view_of = "" if dims == 2 else (" on their principal axes" if axes.key == "pca" else " on their first two columns")
    st.plotly_chart(plots.scatter(compute.project(axes.projection, chosen.points[:3000]), name="data",
                                  title=f"{chosen.name}: {len(chosen.points):,} points × {dims} columns "
                                        f"(preview{view_of})",
                                  labels=axes.titles or ("x", "y"), height=320), key="train_preview")
    st.subheader("2 · Model and training")
    settings = choose_settings(chosen.normalize, chosen.labels is not None)
    running = [job for job in widgets.my_jobs() if job.active]
    if st.button("Train", type="primary", icon=":material/play_arrow:", key="train_go", disabled=bool(running),
                 help="One training at a time per session." if running else None):
        start_training(chosen, settings)
if any(job.active for job in widgets.my_jobs()):
    points = chosen if isinstance(chosen, Chosen) else None
    live_axes = preview_axes(points) if points is not None else None
    live_training(np.empty((0, 2)) if points is None or live_axes is None else
                  compute.project(live_axes.projection, points.points[:1500]),
                  (live_axes.titles if live_axes is not None else None) or ("x", "y"),
                  (chosen.images.spec.low, chosen.images.spec.high) if isinstance(chosen, ChosenImages) else None)
if widgets.TRAIN_FAILED in st.session_state:
    st.error(st.session_state[widgets.TRAIN_FAILED])
if state.LAST_TRAINED in st.session_state:
    st.subheader("3 · Result")
    show_result(st.session_state[state.LAST_TRAINED])
reflow_panel.reflow_section()
st.subheader("Explore a model file")
explore_model_file(chosen if isinstance(chosen, Chosen) else None)

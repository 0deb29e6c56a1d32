"""Train: upload data (or pick a toy set), train a flow matching model live, explore and download it."""

from __future__ import annotations

import numpy as np
import streamlit as st
from streamlit.runtime.uploaded_file_manager import UploadedFile

from flowscope import FlowModel, MLPConfig, StepInfo, checkpoint
from flowscope.data import DATASETS
from flowscope.loader import DataError, Table
from flowscope_ui import compute, plots, state, trainer, uploads, widgets

widgets.header("Train", "Upload a data file (or pick a toy dataset), train a flow matching model on it while the "
               "loss curve and samples update, then explore it in every view or download it; your data and "
               "models stay in this browser session only.")
LR_OPTIONS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 1.0, 10.0, 100.0, 1e3, 1e4)
#: Steps between progress updates: each is a point where a click on Stop can end training.
REPORT_EVERY = 20
PATH_LABELS = {"ot": "OT (CondOT, straight)", "vp": "VP diffusion", "ve": "VE diffusion", "cosine": "cosine",
               "icfm": f"I-CFM (sigma = {trainer.ICFM_SIGMA})"}


def read_upload(upload: UploadedFile) -> Table | None:
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


def choose_data() -> tuple[np.ndarray, str] | None:
    """The training data [n, 2] and its name, from an upload or a toy dataset (None until there are some)."""
    kind = st.radio("Data", ["Upload a file", "Toy dataset"], horizontal=True, key="train_kind")
    if kind == "Toy dataset":
        left, right = st.columns(2)
        name = left.selectbox("Dataset", DATASETS, index=DATASETS.index("moons"), key="train_toy")
        n = right.slider("Points", 500, 20_000, 5000, 500, key="train_n")
        return state.toy_data(name, n, 1), name
    upload = st.file_uploader(
        f"A CSV, TSV, TXT, .npy or .npz file: at most {uploads.MAX_UPLOAD_MB} MB, {uploads.MAX_ROWS:,} rows and "
        f"{uploads.MAX_COLUMNS} columns", key="train_upload")  # any name: the loader explains what it refuses
    if upload is None:
        st.info("Upload a file of points (one row per point, two or more numeric columns), or pick a toy dataset.")
        return None
    table = read_upload(upload)
    if table is None:
        return None
    n, d = table.values.shape
    st.caption(f"{upload.name}: {n:,} rows × {d} columns ({', '.join(table.columns[:8])}{', …' if d > 8 else ''})")
    with st.expander("First rows"):
        st.dataframe({c: table.values[:20, j] for j, c in enumerate(table.columns[:12])}, hide_index=True)
    left, middle, right = st.columns([2, 2, 3])
    cx = left.selectbox("x column", table.columns, index=0, key="train_cx", disabled=d == 2)
    cy = middle.selectbox("y column", table.columns, index=1, key="train_cy", disabled=d == 2)
    standardise = right.checkbox("Standardise each column (mean 0, std 1)", value=uploads.suggest_standardise(table),
                                 key="train_std", help="Useful when the columns have very different scales; "
                                 "the model then lives in standardised coordinates.")
    try:
        points = uploads.select_columns(table, (cx, cy), standardise)
    except ValueError as err:
        st.error(str(err))
        return None
    return points, upload.name


def choose_settings() -> trainer.TrainSettings:
    """Path, coupling, steps, width and learning rate, with their caps shown."""
    c = st.columns(5)
    path = c[0].selectbox("Probability path", trainer.PATHS, format_func=PATH_LABELS.__getitem__, key="train_path")
    coupling = c[1].selectbox("Coupling", trainer.COUPLINGS, key="train_coupling",
                              help="independent: random pairs (the paper); ot: exact minibatch OT pairs; "
                                   "sinkhorn: entropic OT pairs.")
    steps = c[2].number_input(f"Steps (at most {uploads.MAX_STEPS:,})", 100, uploads.MAX_STEPS, 2000, 100,
                              key="train_steps")
    width = c[3].select_slider(f"Model width (at most {uploads.MAX_WIDTH})", trainer.WIDTHS, 128, key="train_width")
    lr = c[4].select_slider("Learning rate", LR_OPTIONS, 3e-3, format_func="{:g}".format, key="train_lr")
    st.caption(f"An MLP of depth {trainer.TrainSettings.depth} on x, {MLPConfig.fourier_features} random Fourier "
               f"features of x and t; batches of {trainer.TrainSettings.batch_size}, AdamW with warm-up and cosine "
               "decay, EMA weights; one CPU thread per training.")
    return trainer.TrainSettings(path=path, coupling=coupling, steps=int(steps), width=int(width), lr=float(lr))


def train_live(points: np.ndarray, name: str, settings: trainer.TrainSettings) -> None:
    """Train with a progress bar, a live loss curve and sample preview; Stop keeps the model as it is."""
    stop_col, bar_col = st.columns([1, 6])
    stop_col.button("Stop", icon=":material/stop:", key="train_stop",
                    help="Stops at the current step and keeps that model.")
    bar = bar_col.progress(0.0, text="Starting…")
    left, right = st.columns(2)
    loss_slot, preview_slot = left.empty(), right.empty()
    shown, chart_every = points[:1500], max(100, settings.steps // 15)

    def report(info: StepInfo, flow: FlowModel, losses: list[float]) -> None:
        recent = float(np.mean(losses[-50:]))
        bar.progress(info.step / info.steps, text=f"step {info.step:,} / {info.steps:,} · loss {recent:.4f} · "
                                                  f"{info.seconds:.1f} s")
        if info.step % chart_every and info.step != info.steps:
            return
        loss_slot.plotly_chart(plots.loss_curve(losses), key=f"train_live_loss_{info.step}")
        samples = compute.preview_samples(flow, 500)
        preview_slot.plotly_chart(plots.scatter(samples, data=shown, title="samples now"),
                                  key=f"train_live_samples_{info.step}")

    job = state.start_training()
    try:
        outcome = trainer.run(points, settings, dataset=name, report=report, every=REPORT_EVERY)
        info = {"note": outcome.message, "status": outcome.status, "losses": outcome.losses,
                "settings": settings, "seconds": outcome.seconds}
        state.finish_training(job, outcome.flow.to("cpu"), points, f"{name} · {settings.path} · "
                              f"{outcome.steps_done} steps", name, info)
    finally:
        job.done.set()
    if outcome.interrupt is not None:
        raise outcome.interrupt  # Streamlit stopped this run for a click: let it go on with the new run
    st.rerun()


def show_result(key: str) -> None:
    """The last training's outcome: status, loss curve, samples, download and links to the views."""
    view = state.session_models().get(key)
    if view is None:
        return
    status, note = view.info.get("status"), view.info.get("note", "")
    {"done": st.success, "stopped": st.warning}.get(status, st.error)(f"{view.label}: {note}")
    left, right = st.columns(2)
    left.plotly_chart(plots.loss_curve(view.info.get("losses", [])), key="train_loss")
    samples = state.memo("preview", view, (), lambda: compute.preview_samples(view.flow, 1000))
    right.plotly_chart(plots.scatter(samples, data=view.data[:1500], title="samples"),
                       key="train_samples")
    st.download_button("Download the model (.safetensors)", checkpoint.to_bytes(view.flow),
                       file_name=f"flowscope-{key.replace(':', '-')}.safetensors", mime="application/octet-stream",
                       on_click="ignore", icon=":material/download:", key="train_download")
    st.markdown("It is now the model shown in every view:")
    links = st.columns(4)
    for col, (page, label) in zip(links, [("views/paths.py", "Paths"), ("views/fields.py", "Fields"),
                                          ("views/compare.py", "Compare"), ("views/home.py", "Flow")], strict=True):
        col.page_link(page, label=f"Open {label}")


def explore_model_file(points: np.ndarray | None) -> None:
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
        flow = uploads.read_model(upload.getvalue(), upload.name, data_dim=None if points is None else points.shape[1])
    except checkpoint.CheckpointError as err:
        st.error(f"This model cannot be used. {err}")
        return
    dataset = str(flow.info.get("dataset", ""))
    if points is None and dataset not in DATASETS:
        st.error(f"{upload.name} was trained on {dataset or 'unknown data'}: choose its data above first.")
        return
    data = points if points is not None else state.toy_data(dataset, state.VIEW_POINTS, 0)
    view = state.add_session_model(flow, data, upload.name, dataset or "upload", {"note": "uploaded model"})
    done[upload.file_id] = view.key
    st.rerun()


st.subheader("1 · Data")
chosen = choose_data()
if chosen is not None:
    points, name = chosen
    st.plotly_chart(plots.scatter(points[:3000], title=f"{name}: {len(points):,} points (preview)", name="data",
                                  labels=("x", "y"), height=320), key="train_preview")
    st.subheader("2 · Model and training")
    settings = choose_settings()
    if st.button("Train", type="primary", icon=":material/play_arrow:", key="train_go"):
        train_live(points, name, settings)
if state.LAST_TRAINED in st.session_state:
    st.subheader("3 · Result")
    show_result(st.session_state[state.LAST_TRAINED])
st.subheader("Explore a model file")
explore_model_file(None if chosen is None else chosen[0])

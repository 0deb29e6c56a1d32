"""Marginals: every dimension of the data against the model's samples, and a pair plot of chosen dimensions."""

from __future__ import annotations

import streamlit as st

from flowscope_ui import compute, plots, state, widgets

#: Model samples drawn for the page (seeded, cached per model): the same preview solve as the thumbnails.
SAMPLES = 2000
#: Most dimensions in the pair plot (a k x k grid of panels).
PAIR_DIMS = 8

widgets.header("Marginals", "Each dimension of the data against the same dimension of the model's samples, as "
               "overlaid histograms with the W1 distance between the two, and a pair plot of up to eight "
               "dimensions, for a model of any dimension.")
view = widgets.current_model()
widgets.model_caption(view)
samples = state.memo("marginal_samples", view, (SAMPLES,), lambda: compute.preview_samples(view.flow, SAMPLES))
w1 = state.memo("per_dimension_w1", view, (SAMPLES,), lambda: compute.per_dimension_w1(view.data, samples))
names = view.column_names
dim = view.flow.dim
st.caption(f"{SAMPLES:,} samples of the model (dopri5 at tolerance 1e-3, seeded) against its {len(view.data):,} data "
           "points; W1 is the 1-D Wasserstein distance between a column's two marginals, in the column's own units "
           "(0: the same distribution).")

st.subheader(f"Every dimension ({dim})")
histograms = state.memo("marginal_histograms", view, (SAMPLES,),
                        lambda: plots.marginal_histograms(view.data, samples, names, w1))
st.plotly_chart(histograms, key="marginals_histograms")

st.subheader("Pairs of dimensions")
dims = st.multiselect(f"Dimensions of the pair plot (at most {PAIR_DIMS})", list(range(dim)),
                      default=list(range(min(dim, PAIR_DIMS))), format_func=names.__getitem__,
                      max_selections=PAIR_DIMS, key=f"marginals_dims_{view.key}",
                      help="Off the diagonal: data (grey) and samples (blue) of each pair; on it, the two "
                           "marginals with their W1.")
if len(dims) < 2:
    st.info("Choose at least two dimensions for the pair plot.")
else:
    chosen = tuple(sorted(dims))
    pairs = state.memo("pair_plot", view, (SAMPLES, chosen),
                       lambda: plots.pair_plot(view.data, samples, chosen, names, w1))
    st.plotly_chart(pairs, key="marginals_pairs")

"""Page furniture that needs no torch: the page header and the session key of the selected model."""

from __future__ import annotations

import streamlit as st

#: st.session_state key of the model the views show ("zoo:<name>" or "mine:<n>").
MODEL_KEY = "model_key"


def header(title: str, sentence: str) -> None:
    """Page title and the one sentence saying what the page shows."""
    st.title(title)
    st.markdown(sentence)

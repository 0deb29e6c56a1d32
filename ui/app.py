"""flowscope's explorer: `streamlit run ui/app.py` (or `flowscope ui`) opens it with a pretrained model shown."""

from __future__ import annotations

import streamlit as st

from flowscope_ui.layout import guard

st.set_page_config(page_title="flowscope", page_icon=":material/air:", layout="wide")

# The pages live in views/, not pages/: a pages/ folder beside the entry point switches Streamlit to its
# legacy multipage mode, where opening e.g. /train on a fresh server runs that file without this script.
HOME = st.Page("views/home.py", title="Flow", icon=":material/air:", default=True)
PAGES = [
    HOME,
    st.Page("views/gallery.py", title="Gallery", icon=":material/grid_view:", url_path="gallery"),
    st.Page("views/paths.py", title="Paths", icon=":material/timeline:", url_path="paths"),
    st.Page("views/fields.py", title="Fields", icon=":material/explore:", url_path="fields"),
    st.Page("views/marginals.py", title="Marginals", icon=":material/bar_chart:", url_path="marginals"),
    st.Page("views/images.py", title="Images", icon=":material/image:", url_path="images"),
    st.Page("views/train.py", title="Train", icon=":material/model_training:", url_path="train"),
    st.Page("views/compare.py", title="Compare", icon=":material/compare:", url_path="compare"),
    st.Page("views/learn.py", title="Learn", icon=":material/school:", url_path="learn"),
]

page = st.navigation(PAGES)
with guard(page.title):  # an error reaching a page: one sentence under what was drawn, not a redacted error box
    if page is not HOME:  # the start page draws its first plot before importing torch, then calls this itself
        from flowscope_ui import widgets

        widgets.sidebar()
    page.run()

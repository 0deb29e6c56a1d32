"""flowscope's Streamlit explorer; run with `flowscope ui`."""

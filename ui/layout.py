"""Page furniture that needs no torch: the page header, the session key of the selected model, and the guard that
turns an error reaching a page into one sentence."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec

import streamlit as st
from streamlit.logger import get_logger
from streamlit.runtime.scriptrunner_utils.exceptions import ScriptControlException

#: st.session_state key of the model the views show ("zoo:<name>" or "mine:<n>").
MODEL_KEY = "model_key"
#: What every message of a page stopped by an error says (the tests look for it).
STOPPED = "could not be drawn in full"

_LOG = get_logger(__name__)
P = ParamSpec("P")


def header(title: str, sentence: str) -> None:
    """Page title and the one sentence saying what the page shows."""
    st.title(title)
    st.markdown(sentence)


def stopped_message(where: str, err: BaseException) -> str:
    """One sentence for an error that stopped a page: the core's own message for the errors it raises to say what
    is wrong (ValueError and its kin: bad data, model files, solvers), else the error's kind."""
    lines = str(err).strip().splitlines()
    if isinstance(err, ValueError | RuntimeError | OSError) and lines:
        return f"{where} {STOPPED}: {lines[0].rstrip('.')}."
    return f"{where} {STOPPED}: an unexpected {type(err).__name__} in the explorer (the server's log has the details)."


@contextmanager
def guard(where: str) -> Iterator[None]:
    """Run a page's body (or a fragment's): an error reaching it is shown as one sentence (`stopped_message`) below
    what was drawn, never as Streamlit's redacted error box, and logged on the server with its traceback.
    Streamlit's own st.stop / st.rerun / st.switch_page pass through."""
    try:
        yield
    except ScriptControlException:
        raise
    except Exception as err:  # noqa: BLE001  (the one place where any error becomes a sentence)
        _LOG.exception("%s stopped on an error", where)
        st.error(stopped_message(where, err), icon=":material/error:")


def guarded(where: str) -> Callable[[Callable[P, None]], Callable[P, None]]:
    """`guard` as a decorator, for a fragment (a fragment's own reruns do not run the page around it)."""

    def wrap(body: Callable[P, None]) -> Callable[P, None]:
        @functools.wraps(body)
        def run(*args: P.args, **kwargs: P.kwargs) -> None:
            with guard(where):
                body(*args, **kwargs)

        return run

    return wrap

"""Thumbs up / down under each response on the Preferences page's Rank tab: one click marks
the response desirable or not for KTO (feedback set `ratings`), beside the pairwise verdict."""

from __future__ import annotations

import streamlit as st

from backend.action import AlreadyDone
from backend.prefs.kto_actions import rate_response
from studio.components.safe_text import md_escape


def _rate(ctx, item_id: str, index: int, up: bool, rater: str) -> None:
    try:
        rate_response(ctx, item_id, index, up, rater=rater)
        st.toast("Rated " + ("up" if up else "down") + " for KTO")
    except AlreadyDone as exc:
        st.info(md_escape(str(exc)))
    except ValueError as exc:
        st.error(md_escape(str(exc)))


def buttons(ctx, item: dict, index: int, rater: str) -> None:
    """👍 / 👎 for response `index` of `item`, rated by `rater`."""
    up, down, _ = st.columns([1, 1, 6])
    for col, is_up, text in ((up, True, "👍"), (down, False, "👎")):
        col.button(
            text,
            key=f"thumb_{item['id']}_{index}_{int(is_up)}",
            help="Mark this answer " + ("good" if is_up else "bad") + " for KTO training "
            "(feedback set 'ratings').",
            on_click=_rate,
            args=(ctx, item["id"], index, is_up, rater),
        )

"""The dashboard as served: `streamlit run studio/server.py` (what `ftstudio up` runs).

Streamlit finds the `st.App` below and serves studio/app.py with the sign-in cookie routes of
studio/session.py beside it. `streamlit run studio/app.py` still works, without a cookie (a
reload then asks to sign in again).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from studio import session  # noqa: E402

os.environ[session.ROUTES_ENV] = "1"

app = st.App(Path(__file__).resolve().parent / "app.py", routes=session.routes)

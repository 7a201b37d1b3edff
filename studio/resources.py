"""Every st.cache_resource of the dashboard lives here.

The dashboard process holds the database: one connection for the whole process, and every call
takes a fresh cursor through `Store`.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from backend.config import Settings, saved_stamp
from backend.store import Store
from backend.workspace import Workspace


@st.cache_resource(show_spinner=False)
def _workspace_root() -> Path:
    """The workspace folder, from the environment, .env or secrets.toml (fixed per process)."""
    return Settings().workspace


@st.cache_resource(show_spinner=False, max_entries=4)
def _settings(stamp: tuple) -> Settings:  # noqa: ARG001  (the cache key)
    return Settings()


def settings() -> Settings:
    """The settings in effect, read again as soon as an admin saves some on the Settings page
    (the saved files' modification stamp is the cache key: no restart, no timer)."""
    return _settings(saved_stamp(_workspace_root()))


@st.cache_resource(show_spinner=False)
def workspace() -> Workspace:
    return Workspace(settings().workspace).ensure()


@st.cache_resource(show_spinner=False, on_release=lambda s: s.close())
def store() -> Store:
    return Store.open(workspace().db_path)


@st.cache_resource(show_spinner=False, on_release=lambda i: i.stop())
def ingestor():
    """The dashboard's ingestion thread (one per process): job folders -> DuckDB, a worker
    started whenever jobs are queued, and the monitors' folder watch."""
    from backend.demo_workspace import continue_demo
    from backend.ingest.loop import Ingestor

    db, ws = store(), workspace()
    watch = folder_watch()

    def after_tick() -> None:
        errors = []
        for step in (lambda: continue_demo(db, ws), watch.tick):
            try:  # one failing step never stops the other
                step()
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]

    return Ingestor(
        db, ws, stale_after_s=settings().stale_after_s, after_tick=after_tick, settings=settings()
    ).start()


@st.cache_resource(show_spinner=False)
def folder_watch():
    """Monitors' watched folders read every FTSTUDIO_WATCH_INTERVAL_S seconds and checks
    started from the ingestion thread (backend/drift/watch.py); the trigger rules run in the
    ingestion loop itself after each pass (backend/ingest/loop.py)."""
    from backend.drift.watch import FolderWatch

    return FolderWatch(
        store(), workspace(), interval_s=settings().watch_interval_s, settings=settings()
    )


@st.cache_resource(show_spinner=False, on_release=lambda r: r.stop())
def webhook_receiver(label_studio_url: str, _token: str):
    """The dashboard's Label Studio webhook receiver (one per process and Label Studio) on a
    free port of 127.0.0.1. It writes annotations to the review inbox; the ingestor stores
    them within seconds. The token only resolves annotators' e-mails (never a cache key)."""
    from backend.integrations.labelstudio import webhook as hook

    return hook.Receiver(
        workspace(), 0, reviewer_of=hook.user_emails(label_studio_url, _token)
    ).start()


@st.cache_resource(show_spinner="Loading the base model…", max_entries=1)
def chat_models(base_model: str, device: str):
    """The Playground's base model: one in memory at a time (a new base replaces the old),
    runs' adapters attached to it with PEFT and switched per answer."""
    from backend.playground.chat import ChatModels

    return ChatModels(base_model, device)
